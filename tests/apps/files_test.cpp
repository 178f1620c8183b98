// Tests of apps/files: SHA-256 vectors, `sum` against sha256sum, `cp` byte by byte, the error
// cases (each reported once, the rest of the tree done), and many in flight against the
// synchronous twin.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "files/files.hpp"
#include "files/sha256.hpp"
#include "uipc/sys/executor.hpp"

namespace {

using namespace uipc::apps::files;

}  // namespace
namespace uipc::apps::files {
void PrintTo(Sha256::Impl i, std::ostream* os) { *os << (i == Sha256::Impl::portable ? "portable" : "openssl"); }
}  // namespace uipc::apps::files
namespace {

// ---- helpers -----------------------------------------------------------------------------------

std::string hex_of(Sha256& h, const std::string& s) {
  h.update(s.data(), s.size());
  return to_hex(h.finish());
}

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& p, const std::string& data, mode_t mode = 0644) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(::close(fd), 0);
}

void make_dir(const std::string& p) { ASSERT_EQ(::mkdir(p.c_str(), 0755), 0) << p << ": " << std::strerror(errno); }

void remove_tree(const std::string& root) {
  ::nftw(
      root.c_str(),
      [](const char* p, const struct stat*, int type, FTW*) -> int {
        if (type == FTW_DP) ::chmod(p, 0700), ::rmdir(p);
        else ::unlink(p);
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS);
}

std::string capture(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(::popen(cmd.c_str(), "r"), ::pclose);
  if (!f) return {};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
  return out;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A scratch directory per test, removed afterwards; every test is bounded by an alarm (a hang —
// e.g. a FIFO opened without O_NONBLOCK — kills the test binary instead of the CI job).
class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::alarm(120);
    char tmpl[] = "/tmp/uipc-files-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    remove_tree(dir_);
    ::alarm(0);
  }
  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }

  // `files` files of varied sizes in nested directories under `root` (created).
  void make_tree(const std::string& root, unsigned files, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    make_dir(root);
    // sizes around the 64 KiB read buffer and the 64-byte SHA block, and many small ones
    const std::size_t special[] = {0, 1, 55, 56, 63, 64, 65, 4096, 65535, 65536, 65537, 200000};
    for (unsigned i = 0; i < files; ++i) {
      std::string d = root + "/d" + std::to_string(i % 5);
      if (i < 5) make_dir(d);
      if (i % 3 == 0) {
        d += "/s" + std::to_string(i % 4);
        if (::access(d.c_str(), F_OK) != 0) make_dir(d);
      }
      const std::size_t size = i < std::size(special) ? special[i] : 1 + rng() % 16384;
      write_file(d + "/f" + std::to_string(i), random_bytes(rng, size));
    }
  }

  // sum() with errors collected instead of printed.
  SumResult run_sum(const std::vector<std::string>& paths, bool sync, unsigned inflight = 64,
                    std::vector<std::string>* errors = nullptr, ExecConfig exec = ExecConfig::recommended()) {
    RunOptions o;
    o.sync = sync;
    o.inflight = inflight;
    o.exec = exec;
    o.on_error = [errors](const std::string& line) {
      if (errors) errors->push_back(line);
    };
    return sum(paths, o);
  }
  RunStats run_cp(const std::string& src, const std::string& dst, bool sync, unsigned inflight = 64,
                  std::vector<std::string>* errors = nullptr) {
    RunOptions o;
    o.sync = sync;
    o.inflight = inflight;
    o.on_error = [errors](const std::string& line) {
      if (errors) errors->push_back(line);
    };
    return copy(src, dst, o);
  }

  std::string dir_;
};

std::string lines(const SumResult& r) {
  std::string s;
  for (const auto& e : r.entries) s += sha256sum_line(e);
  return s;
}

// ---- SHA-256 -----------------------------------------------------------------------------------

class Sha256Vectors : public ::testing::TestWithParam<Sha256::Impl> {};

TEST_P(Sha256Vectors, FipsVectors) {
  if (GetParam() == Sha256::Impl::openssl && !Sha256::openssl_available()) GTEST_SKIP() << "built without libcrypto";
  Sha256 h(GetParam());
  EXPECT_EQ(h.impl(), GetParam());
  EXPECT_EQ(hex_of(h, ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of(h, "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of(h, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex_of(h, "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                      "mnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  // one million 'a', fed in uneven pieces
  const std::string chunk(999, 'a');
  std::size_t left = 1'000'000;
  while (left > 0) {
    const std::size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(to_hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

INSTANTIATE_TEST_SUITE_P(Impl, Sha256Vectors, ::testing::Values(Sha256::Impl::portable, Sha256::Impl::openssl),
                         [](const auto& info) { return info.param == Sha256::Impl::portable ? "portable" : "openssl"; });

TEST(Sha256, PiecewiseEqualsWholeAndImplementationsAgree) {
  std::mt19937_64 rng(7);
  Sha256 a(Sha256::Impl::portable), b(Sha256::Impl::portable), c;  // c: the best one
  for (std::size_t len : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 127u, 128u, 129u, 1000u, 4097u}) {
    const std::string s = random_bytes(rng, len);
    a.update(s.data(), s.size());
    std::size_t off = 0;
    while (off < s.size()) {  // random pieces, some empty
      const std::size_t n = std::min<std::size_t>(s.size() - off, rng() % 70);
      b.update(s.data() + off, n);
      off += n;
    }
    c.update(s.data(), s.size());
    const Digest da = a.finish();
    EXPECT_EQ(da, b.finish()) << len;
    EXPECT_EQ(da, c.finish()) << len;
  }
}

TEST(Sha256Line, EscapesLikeSha256sum) {
  SumEntry e{"a/b", {}};
  e.digest[0] = 0xab;
  EXPECT_EQ(sha256sum_line(e), "ab" + std::string(62, '0') + "  a/b\n");
  e.path = "x\\y\nz\r";
  EXPECT_EQ(sha256sum_line(e), "\\ab" + std::string(62, '0') + "  x\\\\y\\nz\\r\n");
}

// ---- sum -------------------------------------------------------------------------------------

TEST_F(FilesTest, SumEqualsSha256sum) {
  const std::string root = path("tree");
  make_tree(root, 60);
  write_file(root + "/back\\slash", "b");
  write_file(root + "/new\nline", "n");
  write_file(root + "/sp ace", "s");
  // Plain files only (links are covered below): the reference is sha256sum over find's list.
  const std::string ref =
      capture("find " + quote(root) + " -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum");
  if (ref.empty()) GTEST_SKIP() << "find / sort / sha256sum not available";
  for (bool sync : {true, false}) {
    std::vector<std::string> errors;
    const SumResult r = run_sum({root}, sync, 16, &errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    EXPECT_EQ(r.stats.errors, 0u);
    EXPECT_EQ(r.stats.files, 63u);
    EXPECT_EQ(lines(r), ref) << (sync ? "sync" : "async");
  }
  // A file given directly, and a directory given with a trailing slash.
  const SumResult one = run_sum({root + "/d0/f0", root + "/d1/"}, false);
  const std::string ref2 = capture("sha256sum " + quote(root + "/d0/f0") + "; find " + quote(root + "/d1/") +
                                   " -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum");
  EXPECT_EQ(lines(one), ref2);
}

// A listing longer than the buffer comes in several getdents64 calls; split_listings counts the
// parts after the first, the same in both forms, and every entry is still reached once.
TEST_F(FilesTest, ListingsLongerThanTheBufferComeInParts) {
  const std::string root = path("wide");
  make_dir(root);
  for (unsigned i = 0; i < 600; ++i) write_file(root + "/a-rather-long-file-name-" + std::to_string(i), std::to_string(i));
  std::uint64_t calls[2] = {};
  for (bool sync : {true, false}) {
    RunOptions o;
    o.sync = sync;
    o.inflight = 8;
    o.buffer_bytes = 4096;  // about 85 entries of these names per part
    const SumResult r = sum({root}, o);
    EXPECT_EQ(r.stats.files, 600u);
    EXPECT_EQ(r.stats.errors, 0u);
    EXPECT_GE(r.stats.split_listings, 6u) << (sync ? "sync" : "async");
    EXPECT_EQ(r.stats.calls_by_nr.at(SYS_getdents64), r.stats.split_listings + 2) << (sync ? "sync" : "async");
    calls[sync] = r.stats.calls - r.stats.short_reads - r.stats.split_listings;
  }
  EXPECT_EQ(calls[0], calls[1]);
}

TEST_F(FilesTest, SumFollowsLinksToFilesNotToDirectories) {
  const std::string root = path("tree");
  make_dir(root);
  make_dir(root + "/sub");
  write_file(root + "/sub/a", "hello");
  ASSERT_EQ(::symlink("sub/a", (root + "/to-file").c_str()), 0);
  ASSERT_EQ(::symlink("sub", (root + "/to-dir").c_str()), 0);
  ASSERT_EQ(::symlink("..", (root + "/sub/up").c_str()), 0);  // a cycle, were links descended into
  for (bool sync : {true, false}) {
    std::vector<std::string> errors;
    const SumResult r = run_sum({root}, sync, 8, &errors);
    EXPECT_TRUE(errors.empty());
    ASSERT_EQ(r.entries.size(), 2u);
    EXPECT_EQ(r.entries[0].path, root + "/sub/a");
    EXPECT_EQ(r.entries[1].path, root + "/to-file");
    EXPECT_EQ(r.entries[0].digest, r.entries[1].digest);
  }
  // A link given on the command line is followed, also to a directory.
  const SumResult r = run_sum({root + "/to-dir"}, false);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].path, root + "/to-dir/a");
}

// Every kind of broken entry: reported once with a clear reason, everything else hashed, in both
// forms identically.
TEST_F(FilesTest, SumReportsEachBrokenEntryAndCarriesOn) {
  const std::string root = path("tree");
  make_tree(root, 20);
  ASSERT_EQ(::symlink("nowhere", (root + "/dangling").c_str()), 0);
  ASSERT_EQ(::symlink("loop", (root + "/loop").c_str()), 0);
  ASSERT_EQ(::mkfifo((root + "/d1/fifo").c_str(), 0644), 0);
  write_file(root + "/d2/secret", "unreadable", 0000);
  const bool root_user = ::geteuid() == 0;  // root reads a mode-000 file anyway
  std::vector<std::string> expected = {
      root + "/dangling: No such file or directory",
      root + "/loop: Too many levels of symbolic links",
      root + "/d1/fifo: not a regular file (a FIFO), skipped",
      path("missing") + ": No such file or directory",
  };
  if (!root_user) expected.push_back(root + "/d2/secret: Permission denied");
  std::sort(expected.begin(), expected.end());
  std::string first;
  for (bool sync : {true, false}) {
    std::vector<std::string> errors;
    const SumResult r = run_sum({root, path("missing")}, sync, 32, &errors);
    std::sort(errors.begin(), errors.end());
    EXPECT_EQ(errors, expected) << (sync ? "sync" : "async");
    EXPECT_EQ(r.stats.errors, expected.size());
    EXPECT_EQ(r.stats.files, root_user ? 21u : 20u);
    if (first.empty()) first = lines(r);
    else EXPECT_EQ(lines(r), first);
  }
}

// An unreadable file and an unreadable directory. Root reads them anyway, so as root the test
// takes another effective user id for the whole process (glibc applies it to every thread, the
// executor's included) and gives it back at the end; the saved user id stays 0.
TEST_F(FilesTest, SumReportsUnreadableFilesAndDirectories) {
  const std::string root = path("tree");
  make_tree(root, 12);
  write_file(root + "/secret", "s", 0000);
  make_dir(root + "/locked");
  write_file(root + "/locked/x", "x");
  ASSERT_EQ(::chmod((root + "/locked").c_str(), 0000), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // mkdtemp made it 0700
  struct Euid {
    bool switched = false;
    ~Euid() {
      if (switched && ::seteuid(0) != 0) std::abort();  // every later test would run as nobody
    }
  } euid;
  if (::geteuid() == 0) {
    if (::seteuid(65534) != 0) GTEST_SKIP() << "cannot take another user id: " << std::strerror(errno);
    euid.switched = true;
  }
  std::vector<std::string> expected = {root + "/locked: Permission denied", root + "/secret: Permission denied"};
  std::string first;
  for (bool sync : {true, false}) {
    std::vector<std::string> errors;
    const SumResult r = run_sum({root}, sync, 16, &errors);
    std::sort(errors.begin(), errors.end());
    EXPECT_EQ(errors, expected) << (sync ? "sync" : "async");
    EXPECT_EQ(r.stats.files, 12u);
    if (first.empty()) first = lines(r);
    else EXPECT_EQ(lines(r), first);
  }
}

// A directory that vanishes between being listed and being read: with one item in flight the
// walk is breadth-first, so the hook runs after the top directory's entries were queued and
// before any of them was opened.
TEST_F(FilesTest, SumReportsADirectoryThatVanishedMidWalk) {
  for (bool sync : {true, false}) {
    const std::string root = path(sync ? "s" : "a");
    make_tree(root, 10);
    make_dir(root + "/gone");
    write_file(root + "/gone/x", "x");
    RunOptions o;
    o.sync = sync;
    o.inflight = 1;
    std::vector<std::string> errors;
    o.on_error = [&](const std::string& l) { errors.push_back(l); };
    o.after_list = [&](const std::string& d) {
      if (d == root) remove_tree(root + "/gone");
    };
    const SumResult r = sum({root}, o);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], root + "/gone: No such file or directory");
    EXPECT_EQ(r.stats.files, 10u);
  }
}

// ---- cp ----------------------------------------------------------------------------------------

// Compares two trees entry by entry: same names, same types, same bytes, same file modes, same
// link targets.
void expect_same_tree(const std::string& a, const std::string& b) {
  std::map<std::string, std::string> ea, eb;
  static std::map<std::string, std::string>* out;
  static std::size_t prefix;
  auto collect = [](const std::string& root, std::map<std::string, std::string>& m) {
    out = &m;
    prefix = root.size();
    ::nftw(
        root.c_str(),
        [](const char* p, const struct stat* sb, int type, FTW*) -> int {
          std::string what;
          if (type == FTW_SL) {
            char t[4096];
            const ssize_t n = ::readlink(p, t, sizeof t);
            what = "link " + std::string(t, n > 0 ? static_cast<std::size_t>(n) : 0);
          } else if (S_ISREG(sb->st_mode)) {
            what = "file " + std::to_string(sb->st_mode & 0777) + " " + read_file(p);
          } else if (S_ISDIR(sb->st_mode)) {
            what = "dir";
          } else {
            what = "other";
          }
          (*out)[std::string(p).substr(prefix)] = what;
          return 0;
        },
        64, FTW_PHYS);
  };
  collect(a, ea);
  collect(b, eb);
  for (const auto& [k, v] : eb) EXPECT_TRUE(ea.count(k)) << k << " is in the copy " << b << " only";
  for (const auto& [k, v] : ea) {
    auto it = eb.find(k);
    ASSERT_NE(it, eb.end()) << k << " missing in the copy";
    EXPECT_TRUE(it->second == v) << k << " differs";
  }
}

TEST_F(FilesTest, CopyIsByteForByte) {
  const std::string src = path("src");
  make_tree(src, 80);
  write_file(src + "/exec", "#!/bin/sh\n", 0755);
  ASSERT_EQ(::symlink("d1/f1", (src + "/link").c_str()), 0);
  ASSERT_EQ(::symlink("loop", (src + "/loop").c_str()), 0);  // copied as it is
  for (bool sync : {true, false}) {
    const std::string dst = path(sync ? "copy-sync" : "copy-async");
    std::vector<std::string> errors;
    const RunStats s = run_cp(src, dst, sync, 64, &errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    EXPECT_EQ(s.files, 81u);
    EXPECT_EQ(s.links, 2u);
    expect_same_tree(src, dst);
    if (::system("command -v diff >/dev/null 2>&1") == 0)
      EXPECT_EQ(::system(("diff -r --no-dereference " + quote(src) + " " + quote(dst) + " >/dev/null").c_str()), 0);
  }
  // Into an existing directory: DST/basename(SRC), like cp -r; a second copy overwrites and merges.
  make_dir(path("into"));
  EXPECT_EQ(run_cp(src + "/", path("into"), false).errors, 0u);
  expect_same_tree(src, path("into/src"));
  write_file(path("into/src/d1/f1"), "changed");
  std::vector<std::string> errors;
  const RunStats again = run_cp(src, path("into"), false, 64, &errors);  // files overwritten, directories merged
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<std::string>{"cannot create symbolic link '" + path("into/src/link") + "': File exists",
                                              "cannot create symbolic link '" + path("into/src/loop") + "': File exists"}));
  EXPECT_EQ(again.files, 81u);
  expect_same_tree(src, path("into/src"));
  write_file(path("one"), "single file");
  EXPECT_EQ(run_cp(path("one"), path("into"), false).errors, 0u);
  EXPECT_EQ(read_file(path("into/one")), "single file");
}

TEST_F(FilesTest, CopyReportsWhatCannotBeWrittenAndCarriesOn) {
  const std::string src = path("src");
  make_tree(src, 30);
  ASSERT_EQ(::mkfifo((src + "/d3/fifo").c_str(), 0644), 0);
  for (bool sync : {true, false}) {
    const std::string dst = path(sync ? "dst-sync" : "dst-async");
    make_dir(dst);
    write_file(dst + "/d1", "a file where a directory goes");
    std::vector<std::string> errors;
    const RunStats s = run_cp(src, dst, sync, 16, &errors);  // dst exists: the copy is dst/src
    (void)s;
    errors.clear();
    // Now copy onto dst directly (merging), where d1 is in the way.
    remove_tree(dst + "/src");
    const RunStats t = run_cp(src + "/.", dst, sync, 16, &errors);
    std::sort(errors.begin(), errors.end());
    std::vector<std::string> expected = {
        "cannot create directory '" + dst + "/d1': File exists",
        src + "/./d3/fifo: not a regular file (a FIFO), skipped",
    };
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(errors, expected);
    EXPECT_EQ(t.errors, 2u);
    // everything but d1's files arrived intact
    for (unsigned i = 0; i < 30; ++i) {
      if (i % 5 == 1) continue;
      const std::string rel = "/d" + std::to_string(i % 5) + (i % 3 == 0 ? "/s" + std::to_string(i % 4) : "") + "/f" + std::to_string(i);
      EXPECT_EQ(read_file(dst + rel), read_file(src + rel)) << rel;
    }
  }
  // A device that refuses every write.
  write_file(path("data"), std::string(10000, 'x'));
  for (bool sync : {true, false}) {
    std::vector<std::string> errors;
    const RunStats s = run_cp(path("data"), "/dev/full", sync, 4, &errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "error writing '/dev/full': No space left on device");
    EXPECT_EQ(s.files, 0u);
  }
  // The same file, and a directory into itself.
  std::vector<std::string> errors;
  EXPECT_EQ(run_cp(path("data"), path("data"), false, 4, &errors).errors, 1u);
  EXPECT_EQ(read_file(path("data")), std::string(10000, 'x'));
  errors.clear();
  const RunStats in = run_cp(src, src + "/d0/inside", false, 8, &errors);
  std::sort(errors.begin(), errors.end());
  ASSERT_EQ(errors.size(), 2u);  // the FIFO, and the copy met inside the source
  EXPECT_EQ(errors[0], src + "/d3/fifo: not a regular file (a FIFO), skipped");
  EXPECT_EQ(errors[1], "cannot copy a directory, '" + src + "/d0/inside', into itself (the copy is there)");
  EXPECT_EQ(in.files, 30u);  // the copy's own directory was skipped, nothing else
}

// ---- many in flight against the synchronous twin ---------------------------------------------

struct Config {
  const char* name;
  ExecConfig exec;
};
void PrintTo(const Config& c, std::ostream* os) { *os << c.name; }

// "nr=a/s" for every system call number whose counts differ, for a failure message.
std::string by_number(const RunStats& a, const RunStats& s) {
  std::map<long, std::pair<std::uint64_t, std::uint64_t>> m;
  for (const auto& [nr, n] : a.calls_by_nr) m[nr].first = n;
  for (const auto& [nr, n] : s.calls_by_nr) m[nr].second = n;
  std::string out;
  for (const auto& [nr, p] : m)
    if (p.first != p.second) out += " " + std::to_string(nr) + "=" + std::to_string(p.first) + "/" + std::to_string(p.second);
  return out.empty() ? " no difference" : out;
}

class FilesConcurrency : public FilesTest, public ::testing::WithParamInterface<Config> {};

TEST_P(FilesConcurrency, ManyInFlightMatchTheSyncTwin) {
  const ExecConfig exec = GetParam().exec;
  if (exec.backend == uipc::sys::Backend::io_uring && !uipc::sys::Executor::io_uring_available())
    GTEST_SKIP() << "io_uring unavailable";
  const std::string root = path("tree");
  make_tree(root, 300, 3);
  const SumResult ref = run_sum({root}, true);
  ASSERT_EQ(ref.stats.files, 300u);
  for (unsigned n : {1u, 7u, 64u, 512u}) {
    std::vector<std::string> errors;
    const SumResult r = run_sum({root}, false, n, &errors, exec);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(lines(r), lines(ref)) << "inflight " << n;
    // The same system calls in both forms, but for the pread that follows a short one and the
    // getdents64 that reads a listing's next part.
    const auto same = [](const RunStats& s) { return s.calls - s.short_reads - s.split_listings; };
    EXPECT_EQ(same(r.stats), same(ref.stats))
        << "inflight " << n << ": " << r.stats.calls << " calls, " << r.stats.short_reads << " short reads, "
        << r.stats.split_listings << " split listings; sync " << ref.stats.calls << " calls, "
        << ref.stats.short_reads << " short reads, " << ref.stats.split_listings
        << " split listings; by number (async/sync):" << by_number(r.stats, ref.stats);
    std::uint64_t counted = 0;
    for (const auto& [nr, k] : r.stats.calls_by_nr) counted += k;
    EXPECT_EQ(counted, r.stats.calls);
  }
  RunOptions o;
  o.inflight = 256;
  o.exec = exec;
  const RunStats c = copy(root, path("copy"), o);
  EXPECT_EQ(c.errors, 0u);
  EXPECT_EQ(c.files, 300u);
  expect_same_tree(root, path("copy"));
}

ExecConfig cfg(uipc::sys::WakeMode w, uipc::sys::Placement p, uipc::sys::Backend b) {
  ExecConfig e;
  e.wake = w;
  e.placement = p;
  e.backend = b;
  return e;
}

using uipc::sys::Backend;
using uipc::sys::Placement;
using uipc::sys::WakeMode;
INSTANTIATE_TEST_SUITE_P(
    Executor, FilesConcurrency,
    ::testing::Values(Config{"recommended", ExecConfig::recommended()},
                      Config{"hybrid_affine_direct", cfg(WakeMode::hybrid, Placement::affine, Backend::direct)},
                      Config{"irq_shared_uring", cfg(WakeMode::irq, Placement::shared, Backend::io_uring)},
                      Config{"hybrid_local_uring", cfg(WakeMode::hybrid, Placement::local, Backend::io_uring)}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
