// bench/peers/pipe.cpp — mode "pipe": two pipes between the client thread and the server thread
// (requests one way, replies the other), blocking, pipelined and batched exactly like "uds":
// one read() takes every message that is there, one write() sends every message that is ready.
// Each pipe is grown to hold the whole window when the system allows (F_SETPIPE_SZ, up to
// /proc/sys/fs/pipe-max-size).  The client's write end is O_NONBLOCK so that a window bigger than
// the pipe cannot deadlock (see blocking_client); everything else blocks.
#include "peer_common.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace uipc::bench::peers::pipes {
namespace {

struct PipeIo {
  static ssize_t write_some(int fd, const void* p, std::size_t n) { return ::write(fd, p, n); }  // fd is O_NONBLOCK
  static ssize_t read_some(int fd, void* p, std::size_t n) { return ::read(fd, p, n); }
  static ssize_t write_all(int fd, const void* p, std::size_t n) { return ::write(fd, p, n); }
};

// Grow the pipe to the window (at least 64 KiB, a power of two, at most what we may); returns
// its capacity.
long size_pipe(const char* mode, int fd, std::size_t window) {
  long cap = ::fcntl(fd, F_GETPIPE_SZ);
  if (cap < 0) die_errno(mode, "fcntl(F_GETPIPE_SZ)");
  std::size_t want = 64 * 1024;
  while (want < window && want < (std::size_t{1} << 30)) want *= 2;
  // Unprivileged processes may not exceed pipe-max-size (EPERM) or their pipe-user-pages
  // allowance (EPERM); settle for the largest size granted.
  for (; want > static_cast<std::size_t>(cap); want /= 2) {
    const long got = ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(want));
    if (got >= 0) return got;
    if (errno != EPERM && errno != EBUSY) die_errno(mode, "fcntl(F_SETPIPE_SZ)");
  }
  return cap;
}

IpcResult run(const IpcParams& p) {
  const char* mode = "pipe";
  int req[2], rep[2];  // [0]: read end, [1]: write end
  if (::pipe2(req, O_CLOEXEC) != 0 || ::pipe2(rep, O_CLOEXEC) != 0) die_errno(mode, "pipe2");
  if (::fcntl(req[1], F_SETFL, O_NONBLOCK) != 0) die_errno(mode, "fcntl(F_SETFL)");
  const std::size_t window = p.inflight * p.msg_bytes;
  const long cap = std::min(size_pipe(mode, req[1], window), size_pipe(mode, rep[1], window));

  SyscallCounter client_calls, server_calls;
  Measure m(p, client_calls, server_calls);
  LatencyRecorder lat;
  StreamClient client(p, mode, m, lat);
  StreamServer server(p);
  run_pair(
      p,
      [&] {
        blocking_client<PipeIo>(mode, rep[0], req[1], client, client_calls);
        ::close(req[1]);  // the server reads end-of-file and returns
        req[1] = -1;
      },
      [&] { blocking_server<PipeIo>(mode, req[0], rep[1], server, server_calls); });
  for (int fd : {req[0], rep[0], rep[1]}) ::close(fd);

  IpcResult r = m.result(lat);
  if (static_cast<std::size_t>(cap) < window)
    r.note = "pipe capacity " + std::to_string(cap / 1024) + " KiB < window " + std::to_string(window / 1024) +
             " KiB: writes go out in parts";
  return r;
}

const IpcModeRegistrar registrar("pipe", run);

}  // namespace
}  // namespace uipc::bench::peers::pipes
