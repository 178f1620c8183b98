// apps/alloc/alloc.cpp — see alloc.hpp and docs/alloc.md.
#include "alloc/alloc.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace uipc::apps::alloc {

namespace {
constexpr int kProt = PROT_READ | PROT_WRITE;

void sub(Counter& c, std::uint64_t n) noexcept { c.add(~n + 1); }  // modular: c - n

std::span<const std::byte> bytes_of(const Request& r) { return std::as_bytes(std::span(&r, 1)); }

Result<Block> decode_block(const Result<std::size_t>& r, const Reply& rp) {
  if (!r) return r.error();
  if (r.value() != sizeof(Reply)) return std::errc::bad_message;
  return Block{reinterpret_cast<void*>(static_cast<std::uintptr_t>(rp.addr)), static_cast<std::size_t>(rp.size)};
}

std::size_t put_reply(std::span<std::byte> out, std::uint64_t addr, std::uint64_t size) {
  const Reply rp{addr, size};
  std::memcpy(out.data(), &rp, sizeof rp);
  return sizeof rp;
}

std::uint64_t addr_of(const void* p) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)); }
}  // namespace

std::vector<std::byte> encode(const Request& r) {
  const auto b = bytes_of(r);
  return {b.begin(), b.end()};
}

// ---- Ledger ----------------------------------------------------------------------------------------

Ledger::Ledger(AllocLimits limits) : limits_(limits), page_(static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE))) {}

int Ledger::map_flags() const noexcept {
  return MAP_PRIVATE | MAP_ANONYMOUS | (limits_.populate ? MAP_POPULATE : 0);
}

Ledger::Client& Ledger::client(std::uint32_t id) {
  if (id >= clients_.size()) clients_.resize(id + 1);
  return clients_[id];
}

Result<Request> Ledger::decode(std::span<const std::byte> bytes) {
  requests_.add();
  if (bytes.size() != sizeof(Request)) return reject(AllocError::malformed);
  Request r;
  std::memcpy(&r, bytes.data(), sizeof r);  // once: a client may rewrite shared memory meanwhile
  if (r.reserved != 0) return reject(AllocError::malformed);
  if (r.op != static_cast<std::uint32_t>(Op::allocate) && r.op != static_cast<std::uint32_t>(Op::free))
    return reject(AllocError::unknown_op);
  return r;
}

Result<std::uint64_t> Ledger::begin_allocate(std::uint32_t id, const Request& rq) {
  if (rq.addr != 0) return reject(AllocError::malformed);
  if (rq.size == 0) return reject(AllocError::bad_size);
  if (rq.size > limits_.max_block_bytes) return reject(AllocError::too_large);
  const std::uint64_t len = (rq.size + page_ - 1) / page_ * page_;
  Client& c = client(id);
  if (len > limits_.max_client_bytes || c.bytes > limits_.max_client_bytes - len) return reject(AllocError::over_quota);
  c.bytes += len;  // reserved now, so requests in flight together cannot overshoot the quota
  return len;
}

void Ledger::end_allocate(std::uint32_t id, const Request& rq, std::uint64_t len, void* addr, bool ok) {
  Client& c = client(id);
  if (!ok) {
    c.bytes -= len;
    failed_.add();
    return;
  }
  // A listed address cannot come back from mmap unless a client unmapped a block behind the
  // server's back (docs/alloc.md); the stale entry is then replaced, not kept twice.
  auto [it, fresh] = c.blocks.insert_or_assign(addr_of(addr), Held{len, rq.size});
  (void)it;
  if (!fresh) c.bytes -= len;
  allocations_.add();
  if (fresh) {
    live_blocks_.add();
    live_bytes_.add(len);
  }
}

Result<Ledger::Held> Ledger::begin_free(std::uint32_t id, const Request& rq) {
  Client& c = client(id);
  auto it = c.blocks.find(rq.addr);
  if (it == c.blocks.end()) return reject(AllocError::not_owned);
  const Held h = it->second;
  if (rq.size != 0 && rq.size != h.size && rq.size != h.requested) return reject(AllocError::bad_size);
  c.blocks.erase(it);  // before munmap: a second free of it fails, and the address is not listed when reused
  return h;
}

void Ledger::end_free(std::uint32_t id, std::uint64_t addr, const Held& h, bool ok) {
  Client& c = client(id);
  if (!ok) {
    c.blocks.emplace(addr, h);  // munmap failed: the mapping is intact and still the client's
    failed_.add();
    return;
  }
  c.bytes -= h.size;
  frees_.add();
  sub(live_blocks_, 1);
  sub(live_bytes_, h.size);
}

std::vector<Block> Ledger::take_all() {
  std::vector<Block> out;
  for (Client& c : clients_) {
    for (const auto& [addr, h] : c.blocks) {
      out.push_back({reinterpret_cast<void*>(static_cast<std::uintptr_t>(addr)), static_cast<std::size_t>(h.size)});
      sub(live_blocks_, 1);
      sub(live_bytes_, h.size);
      reclaimed_.add();
    }
    c.blocks.clear();
    c.bytes = 0;
  }
  return out;
}

AllocStats Ledger::stats() const noexcept {
  AllocStats s;
  s.requests = requests_.get();
  s.allocations = allocations_.get();
  s.frees = frees_.get();
  s.rejected = rejected_.get();
  s.failed = failed_.get();
  s.syscalls = syscalls_.get();
  s.live_blocks = live_blocks_.get();
  s.live_bytes = live_bytes_.get();
  s.reclaimed = reclaimed_.get();
  s.peak_in_flight = peak_in_flight_.get();
  return s;
}

// ---- asynchronous twin -------------------------------------------------------------------------------

Task<Result<Block>> AllocClient::allocate(std::size_t bytes) {
  const Request rq{static_cast<std::uint32_t>(Op::allocate), 0, bytes, 0};
  Reply rp;
  const Result<std::size_t> r = co_await c_->call(bytes_of(rq), std::as_writable_bytes(std::span(&rp, 1)));
  co_return decode_block(r, rp);
}

Task<Result<void>> AllocClient::free(void* addr, std::size_t bytes) {
  const Request rq{static_cast<std::uint32_t>(Op::free), 0, bytes, addr_of(addr)};
  Reply rp;
  const Result<std::size_t> r = co_await c_->call(bytes_of(rq), std::as_writable_bytes(std::span(&rp, 1)));
  if (!r) co_return r.error();
  if (r.value() != sizeof(Reply) || rp.addr != addr_of(addr)) co_return std::errc::bad_message;
  co_return Result<void>{};
}

Task<Result<std::size_t>> AllocClient::call_raw(std::span<const std::byte> request, std::span<std::byte> reply) {
  co_return co_await c_->call(request, reply);
}

AllocServer::AllocServer(Runtime& rt, sys::Executor& ex, AllocServerOptions opts)
    : rt_(rt), ex_(ex), opts_(opts), ledger_(opts.limits) {}

AllocServer::~AllocServer() = default;

Result<std::unique_ptr<AllocClient>> AllocServer::connect(Runtime& client_rt) {
  std::lock_guard lk(mu_);
  if (stopped_) return std::errc::connection_refused;
  const auto id = static_cast<std::uint32_t>(conns_.size());
  auto s = std::make_unique<ipc::Server>(
      rt_, ipc::Handler([this, id](std::span<const std::byte> rq, std::span<std::byte> reply) {
        return handle(id, rq, reply);
      }));
  auto c = s->connect(client_rt, opts_.channel);
  if (!c) return c.error();
  fresh_.push_back(s.get());
  conns_.push_back(std::move(s));
  rt_.post([c = control_] { c->wake_all(); });
  return std::make_unique<AllocClient>(std::move(c.value()), id);
}

void AllocServer::stop() noexcept {
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
  }
  rt_.post([c = control_] { c->wake_all(); });
}

std::uint64_t AllocServer::server_kernel_entries() const noexcept {
  std::lock_guard lk(mu_);
  const sys::Registration* reg = reg_.load(std::memory_order_relaxed);  // relaxed: mu_ orders it
  return reg ? reg->caller_kernel_entries() : final_server_entries_;
}

std::uint64_t AllocServer::executor_kernel_entries() const noexcept {
  std::uint64_t k = ex_.pool_stats().kernel_entries();
  for (const auto& c : ex_.core_stats()) k += c.kernel_entries();
  return k;
}

Task<void> AllocServer::run_conn(ipc::Server* s) {
  co_await s->serve();
  --running_;
  control_->wake_all();
}

Task<Result<std::size_t>> AllocServer::handle(std::uint32_t client, std::span<const std::byte> bytes,
                                              std::span<std::byte> reply) {
  const Result<Request> rq = ledger_.decode(bytes);
  if (!rq) co_return rq.error();
  if (rq.value().op == static_cast<std::uint32_t>(Op::allocate)) {
    const Result<std::uint64_t> len = ledger_.begin_allocate(client, rq.value());
    if (!len) co_return len.error();
    ledger_.count_syscall();
    ledger_.note_in_flight(++in_flight_);
    const Result<void*> m = co_await sys::mmap(nullptr, len.value(), kProt, ledger_.map_flags(), -1, 0);
    --in_flight_;
    ledger_.end_allocate(client, rq.value(), len.value(), m ? m.value() : nullptr, m.has_value());
    if (!m) co_return m.error();
    co_return put_reply(reply, addr_of(m.value()), len.value());
  }
  const Result<Ledger::Held> h = ledger_.begin_free(client, rq.value());
  if (!h) co_return h.error();
  ledger_.count_syscall();
  ledger_.note_in_flight(++in_flight_);
  const Result<void> u = co_await sys::munmap(reinterpret_cast<void*>(static_cast<std::uintptr_t>(rq.value().addr)),
                                              h.value().size);
  --in_flight_;
  ledger_.end_free(client, rq.value().addr, h.value(), u.has_value());
  if (!u) co_return u.error();
  co_return put_reply(reply, rq.value().addr, h.value().size);
}

Task<Result<void>> AllocServer::serve() {
  sys::SyscallOptions so;
  so.capacity = opts_.syscall_capacity;
  auto r = sys::configure_async_syscall(rt_, ex_, so);
  if (!r) {
    stop();
    // The connections made so far still need their channels closed: serve them until stopped.
  }
  std::unique_ptr<sys::Registration> reg = r ? std::move(r.value()) : nullptr;
  {
    std::lock_guard lk(mu_);
    reg_.store(reg.get(), std::memory_order_relaxed);  // relaxed: readers take mu_
  }
  for (;;) {
    std::vector<ipc::Server*> fresh;
    bool stop_now;
    {
      std::lock_guard lk(mu_);
      fresh.swap(fresh_);
      stop_now = stopped_;
    }
    for (ipc::Server* s : fresh) {
      ++running_;
      rt_.spawn(run_conn(s));
    }
    if (stop_now) break;
    co_await control_->wait();
  }
  {
    std::lock_guard lk(mu_);
    for (auto& s : conns_) s->stop();
  }
  while (running_ > 0) co_await control_->wait();
  // Every handler has finished (ipc::Server::serve returns after them): unmap what is still held.
  for (const Block& b : ledger_.take_all()) {
    ledger_.count_syscall();
    if (reg) {
      if (!co_await sys::munmap(b.addr, b.size)) ::munmap(b.addr, b.size);
    } else {
      ::munmap(b.addr, b.size);
    }
  }
  {
    std::lock_guard lk(mu_);
    final_server_entries_ = reg ? reg->caller_kernel_entries() : 0;
    reg_.store(nullptr, std::memory_order_relaxed);
  }
  if (!r) co_return r.error();
  reg.reset();
  co_return Result<void>{};
}

// ---- synchronous twin -------------------------------------------------------------------------------

Result<Block> SyncAllocClient::allocate(std::size_t bytes) {
  const Request rq{static_cast<std::uint32_t>(Op::allocate), 0, bytes, 0};
  Reply rp;
  const Result<std::size_t> r = c_.call(bytes_of(rq), std::as_writable_bytes(std::span(&rp, 1)));
  return decode_block(r, rp);
}

Result<void> SyncAllocClient::free(void* addr, std::size_t bytes) {
  const Request rq{static_cast<std::uint32_t>(Op::free), 0, bytes, addr_of(addr)};
  Reply rp;
  const Result<std::size_t> r = c_.call(bytes_of(rq), std::as_writable_bytes(std::span(&rp, 1)));
  if (!r) return r.error();
  if (r.value() != sizeof(Reply) || rp.addr != addr_of(addr)) return std::errc::bad_message;
  return {};
}

Result<std::size_t> SyncAllocClient::call_raw(std::span<const std::byte> request, std::span<std::byte> reply) {
  return c_.call(request, reply);
}

Result<std::unique_ptr<SyncAllocServer>> SyncAllocServer::create(std::uint32_t max_clients, AllocLimits limits,
                                                                 ipc::SyncOptions sync) {
  if (max_clients < 1 || max_clients > ipc::kSyncMaxSlots) return std::errc::invalid_argument;
  auto ep = ipc::SyncEndpoint::create(max_clients, ipc::kSyncMinPayload);
  if (!ep) return ep.error();
  return std::unique_ptr<SyncAllocServer>(new SyncAllocServer(std::move(ep.value()), limits, sync));
}

SyncAllocServer::SyncAllocServer(ipc::SyncEndpoint ep, AllocLimits limits, ipc::SyncOptions sync)
    : ep_(std::move(ep)), sync_(sync), ledger_(limits) {
  auto s = ep_.server(sync_);
  if (s) srv_ = std::move(s.value());  // a fresh endpoint has no server yet: this cannot fail
}

SyncAllocServer::~SyncAllocServer() = default;

Result<SyncAllocClient> SyncAllocServer::connect() {
  const std::uint32_t slot = next_slot_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a ticket
  if (slot >= ep_.layout().slots) return std::errc::too_many_files_open;
  auto c = ep_.client(slot, sync_);
  if (!c) return c.error();
  return SyncAllocClient(std::move(c.value()));
}

std::uint64_t SyncAllocServer::server_kernel_entries() const noexcept {
  return srv_.counters().snapshot().kernel_entries() + ledger_.stats().syscalls;
}

Result<std::size_t> SyncAllocServer::handle(std::uint32_t client, std::span<const std::byte> bytes,
                                            std::span<std::byte> reply) {
  const Result<Request> rq = ledger_.decode(bytes);
  if (!rq) return rq.error();
  if (rq.value().op == static_cast<std::uint32_t>(Op::allocate)) {
    const Result<std::uint64_t> len = ledger_.begin_allocate(client, rq.value());
    if (!len) return len.error();
    ledger_.count_syscall();
    void* m = ::mmap(nullptr, len.value(), kProt, ledger_.map_flags(), -1, 0);
    const int err = m == MAP_FAILED ? errno : 0;
    ledger_.end_allocate(client, rq.value(), len.value(), m, m != MAP_FAILED);
    if (m == MAP_FAILED) return errno_code(err);
    return put_reply(reply, addr_of(m), len.value());
  }
  const Result<Ledger::Held> h = ledger_.begin_free(client, rq.value());
  if (!h) return h.error();
  ledger_.count_syscall();
  const int rc = ::munmap(reinterpret_cast<void*>(static_cast<std::uintptr_t>(rq.value().addr)), h.value().size);
  const int err = rc != 0 ? errno : 0;
  ledger_.end_free(client, rq.value().addr, h.value(), rc == 0);
  if (rc != 0) return errno_code(err);
  return put_reply(reply, rq.value().addr, h.value().size);
}

Result<void> SyncAllocServer::serve() {
  if (!srv_) return std::errc::bad_file_descriptor;
  std::byte reply[sizeof(Reply)];
  Result<ipc::SyncRequest> r = srv_.recv();
  while (r) {
    const Result<std::size_t> n = handle(r.value().badge, r.value().data, reply);
    if (n) {
      r = srv_.reply_recv(std::span<const std::byte>(reply, n.value()));
      continue;
    }
    // Our errors are errno values (generic category), which reply_error carries as they are.
    if (auto e = srv_.reply_error(static_cast<std::errc>(n.error().value())); !e) return e.error();
    r = srv_.recv();
  }
  for (const Block& b : ledger_.take_all()) {
    ledger_.count_syscall();
    ::munmap(b.addr, b.size);
  }
  if (r.error() != std::errc::connection_aborted) return r.error();
  return {};
}

}  // namespace uipc::apps::alloc
