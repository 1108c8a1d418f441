// Integration: how every writer of a file (dump, dumpkey, keycheck, index, stats --prometheus)
// creates it: never through a symbolic link, private unless it is for a monitoring agent, and
// two writers to one path kept apart (issue 23).
#include "harness.hpp"

#include <sys/stat.h>
#include <sys/types.h>

using harness::FakeCluster;
using harness::run;
using harness::slurp;
using harness::with;

namespace {

struct Writer {
  std::string name;
  std::vector<std::string> args; // without -o FILE
  std::string input;             // standard input
  unsigned mode;                 // the mode its file gets by default
};

// One writer per command that writes a file; each run against `f` makes a non-empty file.
std::vector<Writer> writers(FakeCluster& f) {
  return {
      {"dump", with({"dump", "--all"}, f.index_args()), "", 0600},
      {"dumpkey", with({"dumpkey", "--all"}, f.index_args()), "", 0600},
      {"keycheck", {"keycheck", "-s", "3"}, "user::1\nuser::2\nitem::3\n", 0600},
      {"index", with({"index"}, f.index_args()), "", 0600},
      {"stats --prometheus", with({"stats", "--prometheus"}, f.index_args()), "", 0644},
  };
}

void cluster_with_items(FakeCluster& f) {
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 50 100");
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

bool is_regular(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Sets the umask for one scope (the child inherits it).
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

} // namespace

TEST_CASE("no writer follows a symbolic link planted at its file or beside it") {
  FakeCluster f(1);
  cluster_with_items(f);
  for (const auto& w : writers(f)) {
    CAPTURE(w.name);
    std::string victim = f.dir() + "/victim", out = f.dir() + "/out";
    harness::write_text(victim, "precious\n");
    SUBCASE("a link at the old fixed temporary name FILE.tmp") {
      REQUIRE(::symlink(victim.c_str(), (out + ".tmp").c_str()) == 0);
      auto r = run(with(w.args, {"-o", out}), w.input);
      CHECK(r.status == 0);
      CHECK(slurp(victim) == "precious\n");
      CHECK(is_regular(out));
      CHECK_FALSE(slurp(out).empty());
      ::unlink((out + ".tmp").c_str());
    }
    SUBCASE("a link at the file itself is replaced, not written through") {
      REQUIRE(::symlink(victim.c_str(), out.c_str()) == 0);
      auto r = run(with(w.args, {"-o", out}), w.input);
      CHECK(r.status == 0);
      CHECK(slurp(victim) == "precious\n");
      CHECK(is_regular(out));
      CHECK_FALSE(slurp(out).empty());
    }
    SUBCASE("a link of another user's to a device at the file is refused") {
      if (::geteuid() != 0) return; // needs a link owned by someone else
      REQUIRE(::symlink("/dev/null", out.c_str()) == 0);
      REQUIRE(::lchown(out.c_str(), 65534, 65534) == 0);
      auto r = run(with(w.args, {"-o", out}), w.input);
      CHECK(r.status == 1);
      CHECK(r.err.find("'" + out + "' is a symbolic link of another user's to a device; not following it\n") !=
            std::string::npos);
    }
    CHECK(harness::temporaries_beside(out).empty());
    ::unlink(out.c_str());
    ::unlink(victim.c_str());
  }
}

TEST_CASE("files of cluster data are private to their owner, Prometheus' file is readable, --file-mode sets both") {
  FakeCluster f(1);
  cluster_with_items(f);
  for (mode_t umask : {mode_t(0), mode_t(022), mode_t(077)}) {
    CAPTURE(umask);
    Umask scoped(umask);
    for (const auto& w : writers(f)) {
      CAPTURE(w.name);
      std::string out = f.dir() + "/out";
      auto r = run(with(w.args, {"-o", out}), w.input);
      CHECK(r.status == 0);
      CHECK(mode_of(out) == w.mode); // exactly: the umask neither widens nor narrows it
      auto given = run(with(w.args, {"-o", out, "--file-mode", "0640"}), w.input);
      CHECK(given.status == 0);
      CHECK(mode_of(out) == 0640);
      ::unlink(out.c_str());
    }
  }
  SUBCASE("a mode the owner cannot read and write is a usage error") {
    for (std::string bad : {"0444", "abc", "99", "12345", ""}) {
      CAPTURE(bad);
      auto r = run(with({"dump", "--all", "-o", f.dir() + "/x", "--file-mode", bad}, f.index_args()));
      CHECK(r.status == 2);
      CHECK(r.err.find("invalid --file-mode") != std::string::npos);
    }
    auto alone = run(with({"dump", "--all", "--file-mode", "0600"}, f.index_args()));
    CHECK(alone.status == 2);
    CHECK(alone.err.find("--file-mode goes with -o FILE") != std::string::npos);
  }
}

TEST_CASE("a file that exists, even another user's, is replaced by a new one, never rewritten in place") {
  FakeCluster f(1);
  cluster_with_items(f);
  for (const auto& w : writers(f)) {
    CAPTURE(w.name);
    std::string out = f.dir() + "/out", other_name = f.dir() + "/hardlink";
    harness::write_text(out, "theirs\n");
    REQUIRE(::chmod(out.c_str(), 0666) == 0);
    if (::geteuid() == 0) REQUIRE(::chown(out.c_str(), 65534, 65534) == 0);
    REQUIRE(::link(out.c_str(), other_name.c_str()) == 0); // a hard link to the old file
    auto r = run(with(w.args, {"-o", out}), w.input);
    CHECK(r.status == 0);
    struct stat st {};
    REQUIRE(::stat(out.c_str(), &st) == 0);
    CHECK(st.st_uid == ::geteuid());
    CHECK((st.st_mode & 07777) == w.mode);
    CHECK(slurp(other_name) == "theirs\n"); // the old file's bytes are untouched
    CHECK(slurp(out) != "theirs\n");
    ::unlink(out.c_str());
    ::unlink(other_name.c_str());
  }
}

TEST_CASE("a directory given as the output file is named as one") {
  FakeCluster f(1);
  cluster_with_items(f);
  for (const auto& w : writers(f)) {
    CAPTURE(w.name);
    auto r = run(with(w.args, {"-o", f.dir()}), w.input);
    CHECK(r.status != 0);
    CHECK(r.err.find("'" + f.dir() + "' is a directory") != std::string::npos);
  }
}

TEST_CASE("two dumps to one path at once: the file is one complete dump, a failed one removes only its own temporary" * doctest::test_suite("slow")) {
  FakeCluster f(2);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " master active 1 1");
  f.must("fill " + f.node(0) + " 40 1000 a");
  f.must("fill " + f.node(1) + " 40 1000 b");
  std::string out = f.dir() + "/both.flare";
  // Each node alone, for comparison.
  std::string only0 = run(with({"dump", f.node(0)}, idx)).out, only1 = run(with({"dump", f.node(1)}, idx)).out;
  REQUIRE(only0.size() > 15000); // each node dumps its own partition's keys, about half of its 40
  REQUIRE(only1.size() > 15000);
  f.must("dump-rate " + f.node(0) + " 20"); // about 1 s a dump
  f.must("dump-rate " + f.node(1) + " 20");

  SUBCASE("both succeed: the later rename wins, whole") {
    harness::Result r0, r1;
    std::thread t0([&] { r0 = run(with({"dump", f.node(0), "-o", out}, idx)); });
    std::thread t1([&] { r1 = run(with({"dump", f.node(1), "-o", out}, idx)); });
    t0.join();
    t1.join();
    CHECK(r0.status == 0);
    CHECK(r1.status == 0);
    std::string got = slurp(out);
    CHECK((got == only0 || got == only1));
  }
  SUBCASE("the node refuses the second (database busy): the first's file is whole") {
    harness::Result first, second;
    std::thread t0([&] { first = run(with({"dump", f.node(0), "-o", out}, idx)); });
    // The second starts once the first's temporary exists, so the node is iterating for it.
    for (int i = 0; i < 500 && harness::temporaries_beside(out).empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    second = run(with({"dump", f.node(0), "-o", out}, idx));
    t0.join();
    CHECK(second.status == 1);
    CHECK(second.err.find("database busy") != std::string::npos);
    CHECK(first.status == 0);
    CHECK(slurp(out) == only0);
  }
  CHECK(harness::temporaries_beside(out).empty());
}

TEST_CASE("SIGTERM stops a dump as Ctrl-C does: no file, no temporary, nothing half-written") {
  for (int sig : {SIGTERM, SIGINT}) {
    CAPTURE(sig);
    FakeCluster f(1); // a fresh node: one whose dump was dropped stays busy for a moment
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("fill " + f.node(0) + " 40 1000");
    f.must("dump-rate " + f.node(0) + " 1"); // about 40 s: a stop in time is told from the end by far
    std::string out = f.dir() + "/term.flare";
    // Once the dump has connected to the node (its stream then takes about 40 s).
    const long long before = f.connections(f.node(0));
    auto r = harness::interrupt_after(with({"dump", "--all", "-o", out}, f.index_args()), 0, sig, nullptr,
                                      [&] { return f.connections(f.node(0)) > before; });
    CHECK(r.status == 128 + sig);
    CHECK(r.seconds_after_signal < 20);
    CHECK(::access(out.c_str(), F_OK) != 0);
    CHECK(harness::temporaries_beside(out).empty());
  }
}
