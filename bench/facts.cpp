// bench/facts.cpp — see facts.hpp.
#include "facts.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.hpp"

namespace uipc::bench {
namespace {

using cli::run_capture;

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  for (const char* key : {"model name", "Hardware", "cpu model", "CPU part"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      if (line.rfind(key, 0) != 0) continue;
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const auto b = line.find_first_not_of(" \t", colon + 1);
      if (b != std::string::npos) return line.substr(b);
    }
  }
  return "unknown";
}

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release;
}


// The commit of the source tree this tool was built from (its checkout, if still there), else of
// the current directory's repository, else "unknown".
std::string git_commit() {
  std::string src = __FILE__;  // .../bench/facts.cpp
  std::vector<std::string> dirs;
  if (const auto slash = src.rfind("/bench/"); slash != std::string::npos && src[0] == '/') dirs.push_back(src.substr(0, slash));
  dirs.push_back(".");
  for (const auto& d : dirs) {
    std::string quoted = "'";
    for (char c : d) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    const std::string c = run_capture("git -C " + quoted + " rev-parse --short HEAD 2>/dev/null");
    if (!c.empty() && c.find_first_not_of("0123456789abcdef") == std::string::npos) return c;
  }
  return "unknown";
}


}  // namespace

Facts machine_facts() {
  Facts f;
  f.cpu_model = cpu_model();
  f.cores = std::max(1u, std::thread::hardware_concurrency());
  f.kernel = kernel_release();
#ifdef NDEBUG
  f.build_type = "release";
#else
  f.build_type = "debug";
#endif
  f.commit = git_commit();
  return f;
}

}  // namespace uipc::bench
