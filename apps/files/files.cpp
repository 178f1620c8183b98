// apps/files/files.cpp — see files.hpp.
//
// One body of code serves both forms. Every system call goes through Io::call, which returns an
// IoCall: in the async form it wraps a sys::SyscallAwaiter (the call is submitted to the kernel
// executor and the coroutine suspends until it completes); in the sync form the constructor makes
// the plain system call on this thread and the awaiter is ready at once, so the coroutine never
// suspends and one worker walks the tree call after call. Both forms therefore make exactly the
// same calls with the same arguments and decide everything the same way.
#include "files/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>

#include "uipc/runtime/runtime.hpp"
#include "uipc/runtime/task.hpp"
#include "uipc/sys/syscall.hpp"

namespace uipc::apps::files {

std::string ExecConfig::name() const {
  return std::string(sys::to_string(wake)) + "-" + sys::to_string(placement) + "-" + sys::to_string(backend);
}

std::string sha256sum_line(const SumEntry& e) {
  std::string name;
  bool escaped = false;
  for (char c : e.path) {
    switch (c) {
      case '\\': name += "\\\\"; escaped = true; break;
      case '\n': name += "\\n"; escaped = true; break;
      case '\r': name += "\\r"; escaped = true; break;
      default: name += c;
    }
  }
  std::string line;
  line.reserve(name.size() + 68);
  if (escaped) line += '\\';
  line += to_hex(e.digest);
  line += "  ";
  line += name;
  line += '\n';
  return line;
}

namespace {

using I64 = std::int64_t;

I64 p2i(const void* p) noexcept { return static_cast<I64>(reinterpret_cast<std::uintptr_t>(p)); }

std::uint64_t mono_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no kernel entry
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

double process_cpu_s() noexcept {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

std::string why(I64 r) { return std::strerror(static_cast<int>(-r)); }

// ---- the one system-call interface of both forms -------------------------------------------

class [[nodiscard]] IoCall {
 public:
  IoCall(sys::Registration* reg, long nr, const std::array<I64, 6>& a) noexcept {
    if (reg != nullptr) {
      async_.emplace(reg, nr, a, sys::CallOptions{});
    } else {
      const long v = ::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
      result_ = v == -1 ? -static_cast<I64>(errno) : static_cast<I64>(v);
    }
  }
  bool await_ready() const noexcept { return !async_ || async_->await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return async_->await_suspend(h); }
  I64 await_resume() const noexcept { return async_ ? async_->await_resume() : result_; }

 private:
  std::optional<sys::SyscallAwaiter> async_;
  I64 result_ = 0;
};

struct Io {
  sys::Registration* reg = nullptr;  // null: the synchronous twin
  std::uint64_t calls = 0;
  std::uint64_t short_reads = 0;     // see RunStats::short_reads
  std::uint64_t split_listings = 0;  // see RunStats::split_listings
  std::array<std::uint64_t, 512> by_nr{};  // x86-64 and arm64 numbers are below 512
  IoCall call(long nr, I64 a0 = 0, I64 a1 = 0, I64 a2 = 0, I64 a3 = 0, I64 a4 = 0, I64 a5 = 0) noexcept {
    ++calls;
    if (nr >= 0 && static_cast<std::size_t>(nr) < by_nr.size()) ++by_nr[static_cast<std::size_t>(nr)];
    return IoCall(reg, nr, {a0, a1, a2, a3, a4, a5});
  }
};

// ---- the walk ----------------------------------------------------------------------------------

struct Item {
  std::string src;   // the path to read (sum, cp)
  std::string dst;   // cp: the path to create
  unsigned char type;  // DT_*; DT_UNKNOWN: find out first (stat for top-level items, lstat below)
  bool top;
};

std::string join(const std::string& dir, const char* name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + '/' + name;
}

unsigned char dtype_of(mode_t m) {
  if (S_ISREG(m)) return DT_REG;
  if (S_ISDIR(m)) return DT_DIR;
  if (S_ISLNK(m)) return DT_LNK;
  if (S_ISFIFO(m)) return DT_FIFO;
  if (S_ISSOCK(m)) return DT_SOCK;
  if (S_ISCHR(m)) return DT_CHR;
  if (S_ISBLK(m)) return DT_BLK;
  return DT_UNKNOWN;
}

const char* type_name(unsigned char t) {
  switch (t) {
    case DT_FIFO: return "a FIFO";
    case DT_SOCK: return "a socket";
    case DT_CHR: return "a character device";
    case DT_BLK: return "a block device";
    case DT_DIR: return "a directory";
    default: return "of an unknown type";
  }
}

// linux_dirent64, read field by field (the buffer holds records of varying length).
constexpr std::size_t kDirentReclen = 16, kDirentType = 18, kDirentName = 19;

class Walk {
 public:
  enum class Kind { sum, cp };
  Walk(Kind k, const RunOptions& o, Io& io) : kind_(k), o_(o), io_(io) {}

  void push(Item it) {
    q_.push_back(std::move(it));
    idle_.wake_one();
  }

  Task<void> worker() {
    std::vector<std::byte> buf(o_.buffer_bytes);
    std::optional<Sha256> hasher;
    if (kind_ == Kind::sum) hasher.emplace();
    for (;;) {
      if (q_.empty()) {
        if (active_ == 0) {  // nothing queued and nobody can queue more: the walk is over
          idle_.wake_all();
          co_return;
        }
        co_await idle_.wait();
        continue;
      }
      Item it = std::move(q_.front());
      q_.pop_front();
      ++active_;
      co_await run(it, buf, hasher ? &*hasher : nullptr);
      --active_;
    }
  }

  // cp: where the copy goes (dst itself, or dst/basename(src) when dst is a directory).
  Task<void> resolve_target(const std::string& src, const std::string& dst) {
    struct stat sb {};
    std::string target = dst;
    if (co_await io_.call(SYS_newfstatat, AT_FDCWD, p2i(dst.c_str()), p2i(&sb), 0) == 0 && S_ISDIR(sb.st_mode)) {
      std::string base = src;
      while (base.size() > 1 && base.back() == '/') base.pop_back();
      base = base.substr(base.find_last_of('/') == std::string::npos ? 0 : base.find_last_of('/') + 1);
      if (base != "." && base != ".." && base != "/" && !base.empty()) target = join(dst, base.c_str());
    }
    push({src, target, DT_UNKNOWN, true});
  }

  // cp: directory modes without owner rwx are set once their contents are in (deepest first).
  Task<void> fix_modes() {
    std::sort(fixups_.begin(), fixups_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [path, mode] : fixups_) {
      const I64 r = co_await io_.call(SYS_fchmodat, AT_FDCWD, p2i(path.c_str()), mode);
      if (r < 0) error("cannot set the mode of '" + path + "': " + why(r));
    }
  }

  std::vector<SumEntry> sums;
  RunStats st;

 private:
  void error(const std::string& line) {
    ++st.errors;
    if (o_.on_error) o_.on_error(line);
    else std::fprintf(stderr, "uipc: %s\n", line.c_str());
  }

  Task<void> close_quietly(I64 fd) { (void)co_await io_.call(SYS_close, fd); }

  Task<void> run(Item& it, std::vector<std::byte>& buf, Sha256* h) {
    unsigned char type = it.type;
    if (type == DT_UNKNOWN) {
      struct stat sb {};
      const I64 r = co_await io_.call(SYS_newfstatat, AT_FDCWD, p2i(it.src.c_str()), p2i(&sb),
                                      it.top ? 0 : AT_SYMLINK_NOFOLLOW);
      if (r < 0) {
        error(it.src + ": " + why(r));
        co_return;
      }
      type = dtype_of(sb.st_mode);
      it.type = type;
    }
    if (type == DT_DIR) co_await directory(it, buf);
    else if (kind_ == Kind::sum && (type == DT_REG || type == DT_LNK)) co_await sum_file(it, buf, *h);
    else if (kind_ == Kind::cp && type == DT_REG) co_await cp_file(it, buf);
    else if (kind_ == Kind::cp && type == DT_LNK) co_await cp_link(it, buf);
    else error(it.src + ": not a regular file (" + type_name(type) + "), skipped");
  }

  Task<void> directory(Item& it, std::vector<std::byte>& buf) {
    const I64 fd = co_await io_.call(SYS_openat, AT_FDCWD, p2i(it.src.c_str()),
                                     O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      error(it.src + ": " + why(fd));
      co_return;
    }
    if (kind_ == Kind::cp && !co_await make_directory(it, fd)) {
      co_await close_quietly(fd);
      co_return;
    }
    for (bool first = true;; first = false) {
      const I64 n = co_await io_.call(SYS_getdents64, fd, p2i(buf.data()), static_cast<I64>(buf.size()));
      if (n < 0) {
        error(it.src + ": " + why(n));
        break;
      }
      if (n == 0) break;
      if (!first) ++io_.split_listings;  // the kernel gave this directory's entries in more parts
      for (I64 off = 0; off < n;) {
        const std::byte* d = buf.data() + off;
        unsigned short reclen;
        unsigned char dtype;
        std::memcpy(&reclen, d + kDirentReclen, sizeof reclen);
        std::memcpy(&dtype, d + kDirentType, sizeof dtype);
        const char* name = reinterpret_cast<const char*>(d + kDirentName);
        off += reclen;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        push({join(it.src, name), kind_ == Kind::cp ? join(it.dst, name) : std::string(), dtype, false});
      }
    }
    co_await close_quietly(fd);
    ++st.dirs;
    if (o_.after_list) o_.after_list(it.src);
  }

  // cp: creates it.dst for the source directory open as `fd`; false (reported) to skip it.
  Task<bool> make_directory(Item& it, I64 fd) {
    struct stat sb {};
    I64 r = co_await io_.call(SYS_fstat, fd, p2i(&sb));
    if (r < 0) {
      error(it.src + ": " + why(r));
      co_return false;
    }
    if (have_target_ && sb.st_dev == target_dev_ && sb.st_ino == target_ino_) {
      error("cannot copy a directory, '" + it.src + "', into itself (the copy is there)");
      co_return false;
    }
    const mode_t want = sb.st_mode & 07777;
    r = co_await io_.call(SYS_mkdirat, AT_FDCWD, p2i(it.dst.c_str()), want | S_IRWXU);
    if (r == -EEXIST) {  // merge into an existing directory; anything else there is in the way
      struct stat db {};
      const I64 s = co_await io_.call(SYS_newfstatat, AT_FDCWD, p2i(it.dst.c_str()), p2i(&db), 0);
      if (s < 0 || !S_ISDIR(db.st_mode)) {
        error("cannot create directory '" + it.dst + "': " + (s < 0 ? why(s) : why(-EEXIST)));
        co_return false;
      }
    } else if (r < 0) {
      error("cannot create directory '" + it.dst + "': " + why(r));
      co_return false;
    } else if ((want & S_IRWXU) != S_IRWXU) {
      fixups_.emplace_back(it.dst, want);
    }
    if (it.top) {  // the copy's top directory: no source directory may be it
      struct stat tb {};
      if (co_await io_.call(SYS_newfstatat, AT_FDCWD, p2i(it.dst.c_str()), p2i(&tb), 0) == 0) {
        have_target_ = true;
        target_dev_ = tb.st_dev;
        target_ino_ = tb.st_ino;
      }
    }
    co_return true;
  }

  void record_latency(std::uint64_t t0) {
    if (o_.record_latency) st.latency_ns.push_back(mono_ns() - t0);
  }

  Task<void> sum_file(Item& it, std::vector<std::byte>& buf, Sha256& h) {
    const std::uint64_t t0 = o_.record_latency ? mono_ns() : 0;
    const I64 fd = co_await io_.call(SYS_openat, AT_FDCWD, p2i(it.src.c_str()), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      error(it.src + ": " + why(fd));
      co_return;
    }
    struct stat sb {};
    I64 r = co_await io_.call(SYS_fstat, fd, p2i(&sb));
    if (r < 0 || !S_ISREG(sb.st_mode)) {
      // A link (below the top) to a directory is skipped: links are never descended into.
      if (r < 0) error(it.src + ": " + why(r));
      else if (!(S_ISDIR(sb.st_mode) && it.type == DT_LNK)) error(it.src + ": not a regular file (" + type_name(dtype_of(sb.st_mode)) + "), skipped");
      co_await close_quietly(fd);
      co_return;
    }
    I64 off = 0;
    bool ok = true;
    const I64 size = static_cast<I64>(buf.size());
    for (;;) {
      const I64 n = co_await io_.call(SYS_pread64, fd, p2i(buf.data()), size, off);
      if (n < 0) {
        error(it.src + ": " + why(n));
        ok = false;
        break;
      }
      if (n == 0) break;
      h.update(buf.data(), static_cast<std::size_t>(n));
      off += n;
      if (n < size) {
        if (off >= sb.st_size) break;  // short read at the size fstat gave: the end
        ++io_.short_reads;             // short before it: the next pread reads on
      }
    }
    r = co_await io_.call(SYS_close, fd);
    if (ok && r < 0) {
      error(it.src + ": " + why(r));
      ok = false;
    }
    const Digest d = h.finish();  // also resets the hasher after a failure
    if (!ok) co_return;
    sums.push_back({it.src, d});
    ++st.files;
    st.bytes += static_cast<std::uint64_t>(off);
    record_latency(t0);
  }

  Task<void> cp_file(Item& it, std::vector<std::byte>& buf) {
    const std::uint64_t t0 = o_.record_latency ? mono_ns() : 0;
    // Below the top a link is copied as a link, so a name that turned into one meanwhile is
    // not followed (ELOOP).
    const I64 in = co_await io_.call(SYS_openat, AT_FDCWD, p2i(it.src.c_str()),
                                     O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (it.top ? 0 : O_NOFOLLOW));
    if (in < 0) {
      error(it.src + ": " + why(in));
      co_return;
    }
    struct stat sb {};
    I64 r = co_await io_.call(SYS_fstat, in, p2i(&sb));
    if (r < 0 || !S_ISREG(sb.st_mode)) {
      error(it.src + ": " + (r < 0 ? why(r) : std::string("not a regular file (") + type_name(dtype_of(sb.st_mode)) + "), skipped"));
      co_await close_quietly(in);
      co_return;
    }
    if (it.top) {  // `cp f f` must not truncate f
      struct stat db {};
      if (co_await io_.call(SYS_newfstatat, AT_FDCWD, p2i(it.dst.c_str()), p2i(&db), 0) == 0 && db.st_dev == sb.st_dev &&
          db.st_ino == sb.st_ino) {
        error("'" + it.src + "' and '" + it.dst + "' are the same file");
        co_await close_quietly(in);
        co_return;
      }
    }
    const I64 out = co_await io_.call(SYS_openat, AT_FDCWD, p2i(it.dst.c_str()),
                                      O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, sb.st_mode & 0777);
    if (out < 0) {
      error("cannot create regular file '" + it.dst + "': " + why(out));
      co_await close_quietly(in);
      co_return;
    }
    I64 off = 0;
    bool ok = true;
    const I64 size = static_cast<I64>(buf.size());
    while (ok) {
      const I64 n = co_await io_.call(SYS_pread64, in, p2i(buf.data()), size, off);
      if (n < 0) {
        error("error reading '" + it.src + "': " + why(n));
        ok = false;
        break;
      }
      if (n == 0) break;
      for (I64 done = 0; done < n;) {
        const I64 w = co_await io_.call(SYS_pwrite64, out, p2i(buf.data() + done), n - done, off + done);
        if (w <= 0) {
          error("error writing '" + it.dst + "': " + why(w < 0 ? w : -ENOSPC));
          ok = false;
          break;
        }
        done += w;
      }
      off += n;
      if (n < size) {
        if (off >= sb.st_size) break;
        ++io_.short_reads;
      }
    }
    co_await close_quietly(in);
    r = co_await io_.call(SYS_close, out);  // may report a deferred write error
    if (ok && r < 0) {
      error("error writing '" + it.dst + "': " + why(r));
      ok = false;
    }
    if (!ok) co_return;
    ++st.files;
    st.bytes += static_cast<std::uint64_t>(off);
    record_latency(t0);
  }

  Task<void> cp_link(Item& it, std::vector<std::byte>& buf) {
    char* target = reinterpret_cast<char*>(buf.data());
    const I64 n = co_await io_.call(SYS_readlinkat, AT_FDCWD, p2i(it.src.c_str()), p2i(target),
                                    static_cast<I64>(buf.size() - 1));
    if (n < 0) {
      error(it.src + ": " + why(n));
      co_return;
    }
    target[n] = '\0';
    const I64 r = co_await io_.call(SYS_symlinkat, p2i(target), AT_FDCWD, p2i(it.dst.c_str()));
    if (r < 0) {
      error("cannot create symbolic link '" + it.dst + "': " + why(r));
      co_return;
    }
    ++st.links;
  }

  Kind kind_;
  const RunOptions& o_;
  Io& io_;
  std::deque<Item> q_;
  unsigned active_ = 0;
  WaitList idle_;
  std::vector<std::pair<std::string, mode_t>> fixups_;
  bool have_target_ = false;
  dev_t target_dev_ = 0;
  ino_t target_ino_ = 0;
};

std::uint64_t executor_entries(const sys::Executor& ex) {
  std::uint64_t k = ex.pool_stats().kernel_entries();
  for (const auto& c : ex.core_stats()) k += c.kernel_entries();
  return k;
}

// Pins the calling thread for the walk and puts its old mask back afterwards.
class Pin {
 public:
  explicit Pin(int cpu) {
    if (cpu < 0 || ::sched_getaffinity(0, sizeof old_, &old_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
      throw std::runtime_error("cannot pin the calling thread to CPU " + std::to_string(cpu) + ": " + std::strerror(errno));
    pinned_ = true;
  }
  ~Pin() {
    if (pinned_) ::sched_setaffinity(0, sizeof old_, &old_);
  }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;

 private:
  cpu_set_t old_{};
  bool pinned_ = false;
};

// Runs `w` (already seeded, or seeded by `prologue`) in the chosen form and fills w.st.
template <class Prologue, class Epilogue>
void execute(Walk& w, Io& io, const RunOptions& o, Prologue prologue, Epilogue epilogue) {
  if (o.inflight < 1 || o.inflight > kMaxInflight)
    throw std::invalid_argument("in-flight count must be 1.." + std::to_string(kMaxInflight));
  if (o.buffer_bytes < 4096 || o.buffer_bytes > (1u << 30)) throw std::invalid_argument("buffer size must be 4 KiB .. 1 GiB");
  std::unique_ptr<sys::Executor> own;
  sys::Executor* ex = o.executor;
  if (!o.sync && ex == nullptr) {
    sys::ExecutorOptions eo;
    eo.wake = o.exec.wake;
    eo.placement = o.exec.placement;
    eo.backend = o.exec.backend;
    eo.cpus = o.exec.cpus;
    auto r = sys::Executor::create(eo);
    if (!r) throw std::runtime_error("cannot start the kernel executor (" + o.exec.name() + "): " + r.error().message());
    own = std::move(r.value());
    ex = own.get();
  }
  const Pin pin(o.caller_cpu);
  Runtime rt;
  std::unique_ptr<sys::Registration> reg;
  if (!o.sync) {
    sys::SyscallOptions so;
    so.capacity = 8;
    while (so.capacity < o.inflight) so.capacity *= 2;
    auto r = sys::configure_async_syscall(rt, *ex, so);
    if (!r) throw std::runtime_error("cannot register with the kernel executor: " + r.error().message());
    reg = std::move(r.value());
    io.reg = reg.get();
    const auto& eo = ex->options();
    w.st.mode = std::string(sys::to_string(eo.wake)) + "-" + sys::to_string(eo.placement) + "-" + sys::to_string(ex->backend());
  } else {
    w.st.mode = "sync";
  }
  const std::uint64_t k_caller0 = reg ? reg->caller_kernel_entries() : 0;
  const std::uint64_t k_exec0 = ex && !o.sync ? executor_entries(*ex) : 0;
  const double cpu0 = process_cpu_s();
  const std::uint64_t t0 = mono_ns();
  rt.block_on(prologue());
  const unsigned workers = o.sync ? 1 : o.inflight;
  for (unsigned i = 0; i < workers; ++i) rt.spawn(w.worker());
  rt.run();
  rt.block_on(epilogue());
  w.st.wall_s = static_cast<double>(mono_ns() - t0) * 1e-9;
  w.st.cpu_s = process_cpu_s() - cpu0;
  w.st.calls = io.calls;
  w.st.short_reads = io.short_reads;
  w.st.split_listings = io.split_listings;
  for (std::size_t nr = 0; nr < io.by_nr.size(); ++nr)
    if (io.by_nr[nr] != 0) w.st.calls_by_nr[static_cast<long>(nr)] = io.by_nr[nr];
  if (reg) {
    w.st.caller_kernel_entries = reg->caller_kernel_entries() - k_caller0;
    w.st.kernel_entries = w.st.caller_kernel_entries + (executor_entries(*ex) - k_exec0);
  } else {
    w.st.kernel_entries = w.st.caller_kernel_entries = io.calls;
  }
  io.reg = nullptr;
}

Task<void> nothing() { co_return; }

}  // namespace

SumResult sum(const std::vector<std::string>& paths, const RunOptions& o) {
  Io io;
  Walk w(Walk::Kind::sum, o, io);
  for (const auto& p : paths) w.push({p, std::string(), DT_UNKNOWN, true});
  execute(w, io, o, nothing, nothing);
  SumResult res;
  res.entries = std::move(w.sums);
  std::sort(res.entries.begin(), res.entries.end(), [](const SumEntry& a, const SumEntry& b) { return a.path < b.path; });
  res.stats = std::move(w.st);
  return res;
}

RunStats copy(const std::string& src, const std::string& dst, const RunOptions& o) {
  Io io;
  Walk w(Walk::Kind::cp, o, io);
  execute(w, io, o, [&] { return w.resolve_target(src, dst); }, [&] { return w.fix_modes(); });
  return std::move(w.st);
}

}  // namespace uipc::apps::files
