// uipc_echo_client — connects to uipc_echo_server and sends messages, many in flight at once.
//
//   uipc_echo_client SOCKET_PATH [MESSAGE...] [--repeat N] [--inflight K]
//
// Prints each distinct reply once and a summary; exits 1 if any reply is wrong or an error
// occurs (the error is printed).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "uipc/ipc/endpoint.hpp"

using namespace uipc;

namespace {
int usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s SOCKET_PATH [MESSAGE...] [--repeat N] [--inflight K]\n"
               "Sends each MESSAGE (default: 'hello, uipc') N times (default 1), K calls in flight\n"
               "(default 8), to a uipc_echo_server, and checks every reply.\n",
               argv0);
  return code;
}

bool parse_positive(const char* argv0, const char* flag, const char* text, long& out) {
  char* end = nullptr;
  out = std::strtol(text, &end, 10);
  if (*end != '\0' || out <= 0) {
    std::fprintf(stderr, "%s: %s wants a positive number, not '%s'\n", argv0, flag, text);
    return false;
  }
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(argv[0], 2);
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) return usage(argv[0], 0);
  const std::string path = argv[1];
  std::vector<std::string> messages;
  long repeat = 1, inflight = 8;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) {
      if (!parse_positive(argv[0], "--repeat", argv[++i], repeat)) return 2;
    } else if (!std::strcmp(argv[i], "--inflight") && i + 1 < argc) {
      if (!parse_positive(argv[0], "--inflight", argv[++i], inflight)) return 2;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      std::fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
      return usage(argv[0], 2);
    } else {
      messages.emplace_back(argv[i]);
    }
  }
  if (messages.empty()) messages.emplace_back("hello, uipc");

  Runtime rt;
  auto client = ipc::connect(rt, path);
  if (!client) {
    std::fprintf(stderr, "%s: cannot connect to %s: %s\n", argv[0], path.c_str(), client.error().message().c_str());
    return 1;
  }
  ipc::Client& c = *client.value();
  for (const auto& m : messages) {
    if (m.size() > c.layout().max_payload) {
      std::fprintf(stderr, "%s: message of %zu bytes is over the channel's limit of %u\n", argv[0], m.size(),
                   c.layout().max_payload);
      return 1;
    }
  }
  long good = 0, bad = 0;
  std::vector<bool> shown(messages.size(), false);
  const long total = repeat * static_cast<long>(messages.size());
  long next = 0;
  for (long w = 0; w < inflight; ++w) {
    rt.spawn([](ipc::Client& cl, const std::vector<std::string>& msgs, std::vector<bool>& seen, long& n,
                long all, long& ok, long& ko) -> Task<void> {
      std::vector<std::byte> reply(cl.layout().max_payload);
      while (n < all) {
        const std::size_t k = static_cast<std::size_t>(n++ % static_cast<long>(msgs.size()));
        const std::string& m = msgs[k];
        auto r = co_await cl.call(std::as_bytes(std::span(m.data(), m.size())), reply);
        if (!r) {
          std::fprintf(stderr, "call failed: %s\n", r.error().message().c_str());
          ++ko;
          co_return;
        }
        std::string want = m;
        std::transform(want.begin(), want.end(), want.begin(), [](unsigned char ch) { return std::toupper(ch); });
        const std::string got(reinterpret_cast<const char*>(reply.data()), r.value());
        if (got != want) {
          std::fprintf(stderr, "wrong reply: '%s' for '%s'\n", got.c_str(), m.c_str());
          ++ko;
        } else {
          ++ok;
          if (!seen[k]) {
            seen[k] = true;
            std::printf("%s -> %s\n", m.c_str(), got.c_str());
          }
        }
      }
    }(c, messages, shown, next, total, good, bad));
  }
  rt.run();
  std::printf("uipc_echo_client: %ld replies checked, %ld bad\n", good, bad);
  return bad == 0 && good == total ? 0 : 1;
}
