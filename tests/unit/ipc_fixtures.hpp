// Pieces the IPC tests share: an echo handler, a server on its own thread, byte views.
#pragma once

#include <cstring>
#include <string_view>
#include <thread>

#include "uipc/ipc/server.hpp"

namespace uipc::test {

inline ipc::Handler echo() {
  return [](std::span<const std::byte> req, std::span<std::byte> reply) -> Task<Result<std::size_t>> {
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  };
}

// A server on its own thread for the duration of a test.
struct ServerThread {
  Runtime rt;
  ipc::Server server;
  std::thread t;
  explicit ServerThread(ipc::Handler h, RuntimeOptions o = {}) : rt(o), server(rt, std::move(h)) {
    t = std::thread([this] { rt.block_on(server.serve()); });
  }
  ~ServerThread() {
    server.stop();
    t.join();
  }
};

inline std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace uipc::test
