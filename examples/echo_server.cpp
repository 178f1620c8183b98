// uipc_echo_server — serves an upper-casing echo over uipc channels to other processes.
//
//   uipc_echo_server SOCKET_PATH [--max-clients N]
//
// Clients find the server through SOCKET_PATH (a Unix socket used only to hand each client its
// shared-memory channel); every request then travels through shared memory. The server exits
// after N clients have connected and gone (default: runs until SIGINT/SIGTERM).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "uipc/ipc/endpoint.hpp"

using namespace uipc;

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

int usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s SOCKET_PATH [--max-clients N]\n"
               "Serves an upper-casing echo to uipc clients (see uipc_echo_client).\n"
               "  --max-clients N  exit after N clients have connected and disconnected\n",
               argv0);
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(argv[0], 2);
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) return usage(argv[0], 0);
  const std::string path = argv[1];
  long max_clients = -1;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--max-clients") && i + 1 < argc) {
      char* end = nullptr;
      max_clients = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || max_clients <= 0) {
        std::fprintf(stderr, "%s: --max-clients wants a positive number, not '%s'\n", argv[0], argv[i]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
      return usage(argv[0], 2);
    }
  }

  Runtime rt;
  ipc::Server server(rt, [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    for (std::size_t i = 0; i < req.size(); ++i)
      reply[i] = static_cast<std::byte>(std::toupper(static_cast<unsigned char>(req[i])));
    co_return req.size();
  });
  auto listener = ipc::Listener::listen(server, path);
  if (!listener) {
    std::fprintf(stderr, "%s: cannot listen on %s: %s\n", argv[0], path.c_str(), listener.error().message().c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("uipc_echo_server: listening on %s\n", path.c_str());
  std::fflush(stdout);

  // A watcher thread stops the server on a signal or once enough clients came and went.
  std::thread watcher([&] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const auto st = listener.value()->stats();
      if (g_stop || (max_clients > 0 && st.accepted >= static_cast<std::uint64_t>(max_clients) &&
                     server.channel_count() == 0)) {
        server.stop();
        return;
      }
    }
  });
  rt.block_on(server.serve());
  watcher.join();
  const auto s = server.stats();
  std::printf("uipc_echo_server: served %llu requests on %llu channels\n",
              static_cast<unsigned long long>(s.requests),
              static_cast<unsigned long long>(listener.value()->stats().accepted));
  return 0;
}
