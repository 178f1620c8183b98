// apps/files/files.hpp — `uipc sum` and `uipc cp`: walk a directory tree, hash every regular file
// (SHA-256) or copy the tree, with every file operation made through uipc's asynchronous system
// calls (uipc/sys/syscall.hpp) and many files in flight; or, with RunOptions::sync, the same code
// making plain system calls one at a time on the calling thread (the synchronous twin).
//
// What it guarantees:
//  * Every name reached is either handled (hashed / copied) or reported once through
//    RunOptions::on_error as "PATH: reason" (or "cannot create 'PATH': reason" and the like for
//    the destination); the walk goes on with the rest of the tree. RunStats::errors counts the
//    reports; the command exits non-zero when it is not 0.
//  * The sync and async forms make the same system calls on the same paths (openat, fstat,
//    getdents64, pread, pwrite, close, mkdirat, newfstatat, readlinkat, symlinkat, fchmodat) and
//    produce the same digests, copies and error lines; only the order of work differs. The
//    exceptions are the kernel's: a pread that returns less than asked before the end of the
//    file is followed by one more pread for the rest (RunStats::short_reads counts those), and a
//    directory whose entries getdents64 returns in more than one part takes one more getdents64
//    per extra part (RunStats::split_listings; the kernel ends a listing early when a signal, or
//    an io_uring completion's task work, is pending on the listing thread: seen with the
//    io_uring backend after the page cache was dropped). calls - short_reads - split_listings is
//    the same in both forms.
//    sum()'s entries are sorted by path (byte order), so its output does not depend on it.
//  * At most RunOptions::inflight items (a file or a directory each) are worked on at once, so
//    at most that many system calls are in flight; each item's own calls are made in order.
//  * Walking: directories are read with getdents64 and never left open while their entries
//    wait (paths are opened from the current directory), so a deep or wide tree needs at most
//    2 * inflight descriptors. Symbolic links inside a tree are never descended into (no cycle
//    is possible): `sum` follows a link to a regular file and hashes it under the link's name,
//    skips a link to a directory, and reports a dangling link (ENOENT) or a loop (ELOOP);
//    `cp` recreates links as links. FIFOs, sockets and devices are reported ("not a regular
//    file") and skipped; they are opened with O_NONBLOCK, so nothing waits on them.
// Who may call: any thread that runs no uipc Runtime (sum/copy create their own Runtime, and,
//  unless RunOptions::executor is given, their own Executor).
// What blocks: sum and copy, until the walk is done.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "files/sha256.hpp"
#include "uipc/sys/executor.hpp"

namespace uipc::apps::files {

constexpr unsigned kDefaultInflight = 64;
constexpr unsigned kMaxInflight = 4096;

// The executor the async form uses when RunOptions::executor is null.
struct ExecConfig {
  // The tool's default, hybrid-shared-direct, was the fastest in `uipc bench files` on the
  // project machine (docs/files.md): the kernel core and the walking thread (when it would
  // otherwise wait) share the calls while the walking thread hashes; io_uring cost more CPU per
  // file than plain calls there.
  sys::WakeMode wake = sys::WakeMode::hybrid;
  sys::Placement placement = sys::Placement::shared;
  sys::Backend backend = sys::Backend::direct;
  std::vector<int> cpus;  // kernel cores, pinned; empty: one unpinned core (not used by local)
  std::string name() const;  // "hybrid-shared-direct"
  static ExecConfig recommended() { return {}; }
};

struct RunOptions {
  bool sync = false;                 // the synchronous twin: plain system calls, one at a time
  unsigned inflight = kDefaultInflight;  // 1 .. kMaxInflight items worked on at once (async)
  ExecConfig exec = ExecConfig::recommended();
  sys::Executor* executor = nullptr; // an executor to use instead of creating one from `exec`
  int caller_cpu = -1;               // pin the calling thread there while walking (-1: not)
  std::size_t buffer_bytes = 64 * 1024;  // read/write buffer per item in flight
  bool record_latency = false;       // fill RunStats::latency_ns
  // One line per problem, without the program name ("a/b: Permission denied"). Default: print
  // "uipc: " + line to stderr. Called on the calling thread.
  std::function<void(const std::string&)> on_error;
  // Test hook: called after a directory's entries were queued and the directory closed, before
  // the item's worker takes more work (with inflight 1 no entry of it has been opened yet).
  std::function<void(const std::string& dir)> after_list;
};

struct RunStats {
  std::uint64_t files = 0;        // regular files hashed or copied completely
  std::uint64_t bytes = 0;        // bytes read from them
  std::uint64_t dirs = 0;         // directories read
  std::uint64_t links = 0;        // symbolic links recreated (cp)
  std::uint64_t errors = 0;       // lines reported through on_error
  std::uint64_t calls = 0;        // system calls made (sync) or submitted (async)
  std::uint64_t short_reads = 0;  // preads short of both the buffer and the file's end (one more pread each)
  std::uint64_t split_listings = 0;  // getdents64 calls that returned entries after a directory's first part
  std::map<long, std::uint64_t> calls_by_nr;  // `calls` by system call number (SYS_*)
  std::uint64_t kernel_entries = 0;        // sync: = calls; async: caller + executor + pool
  std::uint64_t caller_kernel_entries = 0; // the walking thread's own
  double wall_s = 0;              // from the first call to the last completion
  double cpu_s = 0;               // process CPU time (user + system) over the same interval
  std::vector<std::uint64_t> latency_ns;  // per file: first call (openat) to its close completing
  std::string mode;               // "sync" or the executor's "wake-placement-backend"
};

struct SumEntry {
  std::string path;
  Digest digest;
};

struct SumResult {
  std::vector<SumEntry> entries;  // sorted by path, byte order
  RunStats stats;
};

// Hashes every regular file named by or below `paths` (a path naming a directory is walked; a
// link given here is followed, also to a directory).
SumResult sum(const std::vector<std::string>& paths, const RunOptions& o);

// Copies `src` (a file or a directory tree) like `cp -r SRC DST`: when `dst` is an existing
// directory the copy is dst/basename(src), else dst itself. Existing files are overwritten,
// existing directories merged; a directory is never copied into itself.
RunStats copy(const std::string& src, const std::string& dst, const RunOptions& o);

// One line exactly as `sha256sum` prints it, with its newline: "HEX  PATH\n"; a path with a
// backslash, newline or carriage return is escaped and the line starts with a backslash.
std::string sha256sum_line(const SumEntry& e);

}  // namespace uipc::apps::files
