// apps/kv/kv_client.hpp — clients of the two key-value servers (kv_server.hpp).
//
//  UipcClient  async: wraps an ipc::Client (one shared-memory channel to a UipcServer);
//              `co_await client.call(Op::get, "k")` on the thread running its Runtime. Many calls
//              may be in flight at once (up to the `inflight` given to connect; more wait).
//  TwinClient  blocking, for the twin (a Unix stream socket, length-prefixed frames):
//              call() sends one request and reads its response; call_many() pipelines a batch
//              (one write for all requests, responses read as they come; it never deadlocks on
//              full socket buffers: it reads while it writes).
//
// What they guarantee: a transport failure (server gone, connection closed, a response that is
// not a valid kv response) is an error Result; a kv-level refusal is a valid Response with its
// Status. Who may call: UipcClient on its Runtime's thread; TwinClient on one thread at a time.
// What blocks: UipcClient::connect and everything in TwinClient (the socket).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kv/kv_protocol.hpp"
#include "uipc/ipc/endpoint.hpp"

namespace uipc::apps::kv {

class UipcClient {
 public:
  static Result<std::unique_ptr<UipcClient>> connect(Runtime& rt, const std::string& path, unsigned inflight = 8);
  explicit UipcClient(std::unique_ptr<ipc::Client> c) : c_(std::move(c)) {}

  Task<Result<Response>> call(Op op, std::string_view key, std::string_view value = {});
  // A request message sent as is (tests send malformed ones); the response bytes land in `reply`
  // (at least kMaxResponse bytes). Returns the response's length.
  Task<Result<std::size_t>> call_raw(std::span<const std::byte> request, std::span<std::byte> reply) {
    return c_->call(request, reply);
  }
  ipc::Client& channel() noexcept { return *c_; }

 private:
  std::unique_ptr<ipc::Client> c_;
};

class TwinClient {
 public:
  static Result<std::unique_ptr<TwinClient>> connect(const std::string& path);
  explicit TwinClient(int fd) : fd_(fd) {}
  ~TwinClient();
  TwinClient(const TwinClient&) = delete;
  TwinClient& operator=(const TwinClient&) = delete;

  Result<Response> call(Op op, std::string_view key, std::string_view value = {});
  // Each message framed (u32 length + bytes) and sent; one response read per message, in order.
  Result<std::vector<Response>> call_many(const std::vector<std::vector<std::byte>>& requests);
  // Raw bytes onto the stream (no framing added): tests send truncated or oversized frames.
  Result<void> send_bytes(std::span<const std::byte> bytes);
  Result<Response> read_response();
  int fd() const noexcept { return fd_; }

 private:
  Result<void> read_exact(std::byte* p, std::size_t n);
  int fd_ = -1;
};

// A request message as bytes (tests and the command-line client).
std::vector<std::byte> make_request(Op op, std::string_view key, std::string_view value = {});

}  // namespace uipc::apps::kv
