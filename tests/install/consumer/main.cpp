// A program outside the project that uses an installed uipc: one call through a channel.
#include <uipc/ipc/server.hpp>

#include <cstring>
#include <thread>

int main() {
  uipc::Runtime srt, crt;
  uipc::ipc::Server server(srt, [](std::span<const std::byte> req, std::span<std::byte> reply)
                                    -> uipc::Task<uipc::Result<std::size_t>> {
    std::memcpy(reply.data(), req.data(), req.size());
    co_return req.size();
  });
  std::thread t([&] { srt.block_on(server.serve()); });
  auto client = server.connect(crt).value();
  auto r = crt.block_on(client->call(std::as_bytes(std::span("ping", 4))));
  client.reset();
  server.stop();
  t.join();
  return r && r->size() == 4 ? 0 : 1;
}
