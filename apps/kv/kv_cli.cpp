// apps/kv/kv_cli.cpp — `uipc kv serve | get | put | del`: the key-value store as a service.
//
//   uipc kv serve --socket PATH [--twin] [--preload N --value-bytes B] [--max-keys N]
//   uipc kv get --socket PATH [--twin] KEY          prints the value (exit 1: not found)
//   uipc kv put --socket PATH [--twin] KEY VALUE
//   uipc kv del --socket PATH [--twin] KEY
// `serve` runs until SIGINT or SIGTERM. See docs/kv.md.
#include <CLI/CLI.hpp>

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "command_registry.hpp"
#include "kv/kv_client.hpp"
#include "kv/kv_server.hpp"

namespace uipc::apps::kv {
namespace {

struct CliOptions {
  std::string socket;
  bool twin = false;
  std::size_t preload = 0;
  std::size_t value_bytes = 64;
  std::size_t max_keys = Store::kDefaultMaxKeys;
  std::string key, value;
};

template <class Server>
void serve_until_signal(Server& s, const CliOptions& o, const char* what) {
  if (auto r = s.listen(o.socket); !r)
    throw std::runtime_error("kv serve: cannot listen on " + o.socket + ": " + r.error().message());
  std::printf("uipc kv serve: %s server listening on %s (Ctrl-C to stop)\n", what, o.socket.c_str());
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  std::thread waiter([&s, set] {
    int sig = 0;
    sigwait(&set, &sig);
    s.stop();
  });
  s.run();
  waiter.join();
}

void serve(const CliOptions& o) {
  if (o.value_bytes > kMaxValue) throw CLI::ValidationError("--value-bytes: at most " + std::to_string(kMaxValue), 2);
  if (o.preload > o.max_keys) throw CLI::ValidationError("--preload: more keys than --max-keys", 2);
  // SIGINT / SIGTERM go to the waiter thread only: block them before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Store store(o.max_keys);
  store.preload(o.preload, o.value_bytes);
  if (o.twin) {
    TwinServer s(store);
    serve_until_signal(s, o, "uds-epoll (twin)");
    const auto st = s.stats();
    std::printf("uipc kv serve: %llu requests on %llu connections; %zu keys\n",
                static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.accepted), store.size());
  } else {
    UipcServer s(store);
    serve_until_signal(s, o, "uipc");
    const auto st = s.stats();
    std::printf("uipc kv serve: %llu requests on %llu channels; %zu keys\n",
                static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(s.channels_accepted()),
                store.size());
  }
}

// One op against a server; prints the value (get) or "ok"; a kv error status is exit 1.
void client_op(const CliOptions& o, Op op) {
  if (o.key.empty() || o.key.size() > kMaxKey)
    throw CLI::ValidationError("KEY: must be 1.." + std::to_string(kMaxKey) + " bytes", 2);
  if (o.value.size() > kMaxValue) throw CLI::ValidationError("VALUE: at most " + std::to_string(kMaxValue) + " bytes", 2);
  Result<Response> r = std::errc::not_connected;
  if (o.twin) {
    auto c = TwinClient::connect(o.socket);
    if (!c) throw std::runtime_error("kv: cannot connect to " + o.socket + ": " + c.error().message());
    r = c.value()->call(op, o.key, o.value);
  } else {
    Runtime rt;
    auto c = UipcClient::connect(rt, o.socket, 1);
    if (!c) throw std::runtime_error("kv: cannot connect to " + o.socket + ": " + c.error().message());
    r = rt.block_on(c.value()->call(op, o.key, o.value));
  }
  if (!r) throw std::runtime_error("kv: call failed: " + r.error().message());
  if (r.value().status != Status::ok)
    throw std::runtime_error("kv: " + o.key + ": " + status_name(r.value().status));
  if (op == Op::get) {
    std::fwrite(r.value().value.data(), 1, r.value().value.size(), stdout);
    std::fputc('\n', stdout);
  } else {
    std::printf("ok\n");
  }
}

void add_kv(CLI::App& top) {
  auto o = std::make_shared<CliOptions>();
  CLI::App* kv = top.add_subcommand("kv", "A key-value store served over uipc channels (or its Unix-socket twin), "
                                          "and a client for it. See docs/kv.md");
  kv->require_subcommand(1);
  auto add_common = [&](CLI::App* c) {
    c->add_option("--socket", o->socket, "Unix socket path of the server")->required()->type_name("PATH");
    c->add_flag("--twin", o->twin, "The conventional twin (length-prefixed frames on a stream socket, one epoll thread) "
                                   "instead of uipc");
  };
  CLI::App* serve_cmd = kv->add_subcommand("serve", "Serve the store until SIGINT/SIGTERM: one server thread; uipc "
                                                    "clients get a shared-memory channel each");
  add_common(serve_cmd);
  serve_cmd->add_option("--preload", o->preload, "Put keys key:00000000 .. key:N-1 first (default 0)")->type_name("N");
  serve_cmd->add_option("--value-bytes", o->value_bytes, "Value size of the preloaded keys (default 64, at most 4096)")
      ->type_name("B");
  serve_cmd->add_option("--max-keys", o->max_keys, "Keys the store may hold; a put of a new key past it answers "
                                                   "store_full (default 1048576)")
      ->type_name("N")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  serve_cmd->callback([o] { serve(*o); });

  struct OpCmd {
    const char* name;
    const char* help;
    Op op;
    bool value;
  };
  for (const OpCmd& d : {OpCmd{"get", "Print KEY's value (exit 1 if not found)", Op::get, false},
                         OpCmd{"put", "Set KEY to VALUE", Op::put, true},
                         OpCmd{"del", "Delete KEY (exit 1 if not found)", Op::del, false}}) {
    CLI::App* c = kv->add_subcommand(d.name, d.help);
    add_common(c);
    c->add_option("KEY", o->key, "1..256 bytes")->required();
    if (d.value) c->add_option("VALUE", o->value, "0..4096 bytes")->required();
    c->callback([o, op = d.op] { client_op(*o, op); });
  }
}

const uipc::bench::CommandRegistration reg{uipc::bench::Group::top, "kv", add_kv};

}  // namespace
}  // namespace uipc::apps::kv
