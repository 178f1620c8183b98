// apps/alloc/alloc.hpp — the memory-allocation server (issue 6, the reference implementation's
// allocator workload): clients ask a server thread for memory; the server maps and unmaps it.
// Two twins with one protocol and one set of rules (docs/alloc.md):
//   AllocServer / AllocClient          asynchronous IPC (ipc::Server / ipc::Client) and
//                                      asynchronous mmap/munmap (sys::mmap / sys::munmap): every
//                                      request runs in a handler coroutine that co_awaits the
//                                      system call, so many allocations are in flight at once.
//   SyncAllocServer / SyncAllocClient  the synchronous baseline (ipc/sync_call.hpp: Call /
//                                      ReplyRecv) and plain mmap/munmap, one request at a time.
//
// What it guarantees (both twins):
//  * Clients and the server live in one process (the memory is mapped into the address space
//    the client uses). A client is a connection: an ipc channel (async) or an endpoint slot
//    (sync). The server keeps, per client, the blocks it handed out; only that client may free
//    them. Client identity comes from the connection, never from the request bytes.
//  * allocate(n): 1 <= n <= limits.max_block_bytes; the server maps n rounded up to whole pages
//    (anonymous, private, read+write, zero-filled) and replies with the address and the mapped
//    size. A client holds at most limits.max_client_bytes at once (reserved before the mmap is
//    issued, so concurrent requests cannot overshoot).
//  * free(addr, n): addr must be the start of a block this client holds; n is 0 or the block's
//    size as requested or as mapped. The block leaves the client's table before munmap is issued,
//    so a concurrent second free of it fails instead of unmapping twice, and an address the
//    kernel hands out again is never still listed.
//  * Every bad request is answered with an error to that caller alone and changes nothing
//    (AllocError below): the server and every other request carry on. A failed mmap/munmap is
//    answered with its errno (the block stays the client's when munmap fails).
//  * Every request is answered exactly once. When the server stops, blocks still held are
//    unmapped (counted as AllocStats::reclaimed): a block is valid until it is freed or the
//    server stops.
// Who may call:
//  * AllocServer: serve() awaited once, on the thread running the server runtime (it registers
//    that thread with the executor). connect / stop / stats / kernel-entry counts: any thread.
//    Destroy the server after serve() has returned (or if it never started).
//  * AllocClient: the thread running the client runtime given to connect().
//  * SyncAllocServer: serve() on one thread (it blocks until stop()); connect / stop / stats:
//    any thread. SyncAllocClient: one thread at a time; it blocks in each call. Destroy the
//    SyncAllocClients before their SyncAllocServer (they live in its endpoint).
// What blocks: SyncAllocServer::serve and SyncAllocClient's calls; nothing else blocks a thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "uipc/ipc/client.hpp"
#include "uipc/ipc/server.hpp"
#include "uipc/ipc/sync_call.hpp"
#include "uipc/notify/counters.hpp"
#include "uipc/result.hpp"
#include "uipc/runtime/runtime.hpp"
#include "uipc/sys/syscall.hpp"

namespace uipc::apps::alloc {

// ---- wire format (same bytes on both twins) ---------------------------------------------------

enum class Op : std::uint32_t { allocate = 1, free = 2 };

struct Request {
  std::uint32_t op = 0;        // Op
  std::uint32_t reserved = 0;  // must be 0
  std::uint64_t size = 0;      // allocate: bytes wanted; free: 0 or the block's size
  std::uint64_t addr = 0;      // free: the block's address; allocate: must be 0
};
static_assert(sizeof(Request) == 24);

struct Reply {
  std::uint64_t addr = 0;  // the block
  std::uint64_t size = 0;  // bytes mapped (a whole number of pages) / unmapped
};
static_assert(sizeof(Reply) == 16);

// The error each bad request gets (std::errc, generic category: compare with ==).
struct AllocError {
  static constexpr std::errc malformed = std::errc::invalid_argument;         // wrong length, reserved bits, addr on allocate
  static constexpr std::errc unknown_op = std::errc::operation_not_supported; // op not allocate/free
  static constexpr std::errc bad_size = std::errc::invalid_argument;          // size 0, or free with a wrong size
  static constexpr std::errc too_large = std::errc::value_too_large;          // size > max_block_bytes
  static constexpr std::errc over_quota = std::errc::not_enough_memory;       // client would exceed max_client_bytes
  static constexpr std::errc not_owned = std::errc::bad_address;              // free of an address this client does not hold
};

struct AllocLimits {
  std::uint64_t max_block_bytes = 64ull << 20;   // per allocation (64 MiB)
  std::uint64_t max_client_bytes = 1ull << 30;   // held by one client at once (1 GiB)
  // MAP_POPULATE: the server's mmap allocates and maps every page before it answers, as mapping a
  // frame does on seL4 (the reference's kernel); false: pages appear at the client's first touch.
  bool populate = true;
};

struct Block {
  void* addr = nullptr;
  std::size_t size = 0;  // mapped bytes (whole pages)
};

// Server-side counts. Single writer (the server thread); readable from any thread (relaxed).
struct AllocStats {
  std::uint64_t requests = 0;
  std::uint64_t allocations = 0;   // successful allocate
  std::uint64_t frees = 0;         // successful free
  std::uint64_t rejected = 0;      // bad requests (AllocError), answered with an error
  std::uint64_t failed = 0;        // mmap/munmap that returned an error
  std::uint64_t syscalls = 0;      // mmap + munmap issued (async: submitted; sync: made)
  std::uint64_t live_blocks = 0;   // blocks held by clients now
  std::uint64_t live_bytes = 0;    // bytes mapped for them now
  std::uint64_t reclaimed = 0;     // blocks unmapped at stop because their client never freed them
  std::uint64_t peak_in_flight = 0;  // async: most mmap/munmap calls awaited at once
};

// Encodes a request (what the clients send; tests use it to send bad ones).
std::vector<std::byte> encode(const Request& r);

// ---- the rules, shared by both twins -------------------------------------------------------------

// Each client's blocks and the counters. Used on the server thread only (the counters are
// readable anywhere). Client ids are small integers handed out by the server (async: in connect
// order; sync: the endpoint slot). A request goes through begin_* (validate, reserve or take the block),
// then the system call, then end_* (commit or roll back).
class Ledger {
 public:
  explicit Ledger(AllocLimits limits);

  // A block as the ledger holds it.
  struct Held {
    std::uint64_t size = 0;       // mapped (whole pages)
    std::uint64_t requested = 0;  // as asked for
  };

  // A request's bytes (copied once) as a Request: AllocError::malformed for a wrong length or
  // reserved bits, AllocError::unknown_op for an op that is neither allocate nor free.
  Result<Request> decode(std::span<const std::byte> bytes);

  // Checks an allocate and reserves its bytes; returns the length to map (whole pages).
  Result<std::uint64_t> begin_allocate(std::uint32_t client, const Request& rq);
  // The mmap's outcome: addr (committed to the client) or failure (reservation released).
  void end_allocate(std::uint32_t client, const Request& rq, std::uint64_t len, void* addr, bool ok);
  // Checks a free and takes the block out of the client's table.
  Result<Held> begin_free(std::uint32_t client, const Request& rq);
  // The munmap's outcome; on failure the block goes back to the client.
  void end_free(std::uint32_t client, std::uint64_t addr, const Held& h, bool ok);
  void count_request() noexcept { requests_.add(); }
  void count_syscall() noexcept { syscalls_.add(); }
  void note_in_flight(std::uint64_t n) noexcept {
    if (n > peak_in_flight_.get()) peak_in_flight_.add(n - peak_in_flight_.get());
  }
  // Takes every block still held (for unmapping at stop); counts them as reclaimed.
  std::vector<Block> take_all();

  AllocStats stats() const noexcept;
  std::uint64_t page_size() const noexcept { return page_; }
  int map_flags() const noexcept;  // for mmap: anonymous, private, populated when the limits say so

 private:
  struct Client {
    std::unordered_map<std::uint64_t, Held> blocks;  // address -> block
    std::uint64_t bytes = 0;  // mapped + reserved
  };
  Client& client(std::uint32_t id);  // grows the table on first use of an id
  std::error_code reject(std::errc e) {
    rejected_.add();
    return std::make_error_code(e);
  }

  AllocLimits limits_;
  std::uint64_t page_;
  std::vector<Client> clients_;
  Counter requests_, allocations_, frees_, rejected_, failed_, syscalls_, live_blocks_, live_bytes_, reclaimed_,
      peak_in_flight_;
};

// ---- asynchronous twin ---------------------------------------------------------------------------

class AllocServer;

class AllocClient {
 public:
  AllocClient(std::unique_ptr<ipc::Client> c, std::uint32_t id) : c_(std::move(c)), id_(id) {}
  Task<Result<Block>> allocate(std::size_t bytes);
  Task<Result<void>> free(void* addr, std::size_t bytes = 0);
  // Sends `request` as is (tests: malformed requests); the reply's length or the server's error.
  Task<Result<std::size_t>> call_raw(std::span<const std::byte> request, std::span<std::byte> reply);
  std::uint32_t id() const noexcept { return id_; }
  ipc::Client& channel() noexcept { return *c_; }

 private:
  std::unique_ptr<ipc::Client> c_;
  std::uint32_t id_;
};

struct AllocServerOptions {
  AllocLimits limits;
  ipc::ChannelOptions channel;          // per client connection (capacity: requests queued at once)
  std::uint32_t syscall_capacity = 1024;  // async system calls in flight (a power of two)
};

class AllocServer {
 public:
  AllocServer(Runtime& rt, sys::Executor& ex, AllocServerOptions opts = {});
  ~AllocServer();
  AllocServer(const AllocServer&) = delete;
  AllocServer& operator=(const AllocServer&) = delete;

  // Any thread: a new client with its own channel, bound to `client_rt`. Requests it sends before
  // serve() starts wait in the channel. Errors: connection_refused after stop(), or the
  // channel's setup errors.
  Result<std::unique_ptr<AllocClient>> connect(Runtime& client_rt);
  // The server thread: registers it with the executor (configure_async_syscall), serves until
  // stop(), then unmaps the blocks still held. Errors: the registration's.
  Task<Result<void>> serve();
  void stop() noexcept;

  AllocStats stats() const noexcept { return ledger_.stats(); }
  // Kernel entries the server thread made (its runtime's futex calls plus the system calls it
  // executed itself, local/shared placement) and those the executor's cores and pool made.
  std::uint64_t server_kernel_entries() const noexcept;
  std::uint64_t executor_kernel_entries() const noexcept;
  Runtime& runtime() noexcept { return rt_; }

 private:
  struct Conn;
  Task<Result<std::size_t>> handle(std::uint32_t client, std::span<const std::byte> rq, std::span<std::byte> reply);
  Task<void> run_conn(ipc::Server* s);

  Runtime& rt_;
  sys::Executor& ex_;
  AllocServerOptions opts_;
  Ledger ledger_;
  mutable std::mutex mu_;                           // guards conns_, fresh_, stopped_, reg_'s lifetime
  std::vector<std::unique_ptr<ipc::Server>> conns_; // one ipc::Server per client: its channel is its identity
  std::vector<ipc::Server*> fresh_;                 // connected, not yet served
  bool stopped_ = false;
  bool serving_ = false;
  std::shared_ptr<WaitList> control_ = std::make_shared<WaitList>();  // serve() waits here (runtime thread)
  unsigned running_ = 0;                            // connection serve() tasks alive (runtime thread)
  std::uint64_t in_flight_ = 0;                     // mmap/munmap awaited now (runtime thread)
  // Set by serve() once registered and cleared before the registration goes, both under mu_,
  // which server_kernel_entries() takes to read it.
  std::atomic<sys::Registration*> reg_{nullptr};
  std::uint64_t final_server_entries_ = 0;         // server_kernel_entries() once reg_ is gone (mu_)
};

// ---- synchronous twin ----------------------------------------------------------------------------

class SyncAllocClient {
 public:
  SyncAllocClient() = default;
  explicit SyncAllocClient(ipc::SyncClient c) : c_(std::move(c)) {}
  Result<Block> allocate(std::size_t bytes);
  Result<void> free(void* addr, std::size_t bytes = 0);
  Result<std::size_t> call_raw(std::span<const std::byte> request, std::span<std::byte> reply);
  std::uint32_t id() const noexcept { return c_.slot(); }
  const ipc::SyncClient& channel() const noexcept { return c_; }

 private:
  ipc::SyncClient c_;
};

class SyncAllocServer {
 public:
  // Up to `max_clients` connections (1 .. 4096). Errors: invalid_argument, or the endpoint's.
  static Result<std::unique_ptr<SyncAllocServer>> create(std::uint32_t max_clients, AllocLimits limits = {},
                                                         ipc::SyncOptions sync = {});
  ~SyncAllocServer();

  // Any thread: a client on the next free slot. Errors: too_many_files_open when all slots are
  // taken, connection_aborted after stop().
  Result<SyncAllocClient> connect();
  // Serves until stop(), then unmaps the blocks still held. Errors: the endpoint's.
  Result<void> serve();
  void stop() noexcept { ep_.close(); }

  AllocStats stats() const noexcept { return ledger_.stats(); }
  // Kernel entries of the server thread: its futex calls plus every mmap/munmap it made.
  std::uint64_t server_kernel_entries() const noexcept;

 private:
  SyncAllocServer(ipc::SyncEndpoint ep, AllocLimits limits, ipc::SyncOptions sync);
  Result<std::size_t> handle(std::uint32_t client, std::span<const std::byte> rq, std::span<std::byte> reply);

  ipc::SyncEndpoint ep_;
  ipc::SyncOptions sync_;
  Ledger ledger_;
  std::atomic<std::uint32_t> next_slot_{0};
  ipc::SyncServer srv_;  // after ep_: destroyed first (it closes the endpoint)
};

}  // namespace uipc::apps::alloc
