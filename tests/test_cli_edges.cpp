// Integration: the process's edges (issue 33). Closed standard descriptors, failed writes,
// every terminating signal, leftover temporaries, and answers, names and values as people give
// them. Each case runs the built binary through a shell, with the shell's own redirections.
#include "harness.hpp"

#include <set>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

// Quotes a word for sh.
std::string edges_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct EdgeRun {
  int status = -1;
  std::string out, err; // what reached the files the redirections name (if any)
};

// Runs `flare-admin ARGS` under sh with `redirs` (e.g. "<&-", ">&-", "2>&-", "> /dev/full"),
// stdout and stderr into files unless `redirs` says otherwise, stdin from /dev/null unless it
// does. Killed after 60 s (`timeout`), so a hang shows as status 124, not a stuck suite.
EdgeRun edges_sh(const std::string& dir, const std::vector<std::string>& args, const std::string& redirs,
                 const std::string& input_cmd = "") {
  std::string cmd = "exec ";
  if (!input_cmd.empty()) cmd = input_cmd + " | exec ";
  cmd += "timeout -k 5 60 " + edges_quote(harness::admin_binary());
  for (const auto& a : args) cmd += " " + edges_quote(a);
  const std::string out = dir + "/edge.out", err = dir + "/edge.err";
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  std::string full = redirs;
  if (full.find(">&-") == std::string::npos && full.find("1>") == std::string::npos && full.find("> ") == std::string::npos)
    full += " >" + edges_quote(out);
  if (full.find("2>") == std::string::npos) full += " 2>" + edges_quote(err);
  if (full.find("<") == std::string::npos && input_cmd.empty()) full += " </dev/null";
  std::string sh = "sh -c " + edges_quote(cmd + " " + full);
  // The test's own environment minus FLARE_* (as harness::run gives the tool).
  int st = std::system(("env -u FLARE_INDEX_SERVER -u FLARE_INDEX_SERVER_PORT -u FLARE_INDEX_SERVERS " + sh).c_str());
  EdgeRun r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = harness::slurp(out);
  r.err = harness::slurp(err);
  return r;
}

// The pid of a process that has ended (a child, reaped).
long edges_dead_pid() {
  pid_t p = ::fork();
  REQUIRE(p >= 0);
  if (p == 0) ::_exit(0);
  int st;
  ::waitpid(p, &st, 0);
  return static_cast<long>(p);
}

} // namespace

TEST_CASE("a closed stdin answers a question no at once, never the index's connection") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  auto r = edges_sh(f.dir(), with({"balance", f.node(0) + ":3"}, f.index_args()), "<&-");
  CAPTURE(r.err);
  CHECK(r.status == 1); // before: the prompt read the index's socket (fd 0) until killed
  CHECK(r.err.find("skipped: " + f.node(0) + " left as it is") != std::string::npos);
  CHECK(f.cluster().find(f.node(0))->balance == 1);
  CHECK(f.state_changes().empty());
}

TEST_CASE("an answer without its final newline is the answer, as 0.7.3 took it") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  SUBCASE("y") {
    auto r = edges_sh(f.dir(), with({"balance", f.node(0) + ":2"}, f.index_args()), "", "printf y");
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(f.cluster().find(f.node(0))->balance == 2);
  }
  SUBCASE("n") {
    auto r = edges_sh(f.dir(), with({"balance", f.node(0) + ":2"}, f.index_args()), "", "printf n");
    CHECK(r.status == 1);
    CHECK(f.cluster().find(f.node(0))->balance == 1);
  }
  SUBCASE("yes, as an operator types it") {
    auto r = edges_sh(f.dir(), with({"balance", f.node(0) + ":2"}, f.index_args()), "", "printf ' Yes \\n'");
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(f.cluster().find(f.node(0))->balance == 2);
    CHECK(r.err.find("(y/n): \n") != std::string::npos); // a piped answer ends the prompt's line
  }
}

TEST_CASE("a closed stdout is an error, and nothing meant for it reaches a peer") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  // What the index reads for one `list` with stdout open: the same, to the byte, with it closed.
  const long long a = f.received("index");
  auto open_run = edges_sh(f.dir(), with({"list"}, f.index_args()), "");
  REQUIRE(open_run.status == 0);
  const long long b = f.received("index");
  auto closed = edges_sh(f.dir(), with({"list"}, f.index_args()), ">&-");
  const long long c = f.received("index");
  CAPTURE(closed.err);
  CHECK(closed.status == 1); // before: 0, the table written into the index's connection
  CHECK(closed.err == "cannot write standard output: it is closed\n");
  CHECK(c - b == b - a);
  SUBCASE("a change is refused before anything is sent: its steps would be lost") {
    auto r = edges_sh(f.dir(), with({"balance", "--force", f.node(0) + ":2"}, f.index_args()), ">&-");
    CHECK(r.status == 1);
    CHECK(r.err == "refused: standard output is closed: the steps and the outcome of a change would be lost. Nothing was changed.\n");
    CHECK(f.state_changes().empty());
    CHECK(f.cluster().find(f.node(0))->balance == 1);
  }
  SUBCASE("a dump to stdout fails before the cluster is read, in the same words") {
    const long long before = f.received(f.node(0));
    auto r = edges_sh(f.dir(), with({"dump", "--all"}, f.index_args()), ">&-");
    CHECK(r.status == 1);
    CHECK(r.err == "cannot write standard output: it is closed\n");
    CHECK(f.received(f.node(0)) == before);
  }
  SUBCASE("ping and --version too") {
    CHECK(edges_sh(f.dir(), {"ping", f.node(0)}, ">&-").status == 1);
    CHECK(edges_sh(f.dir(), {"--version"}, ">&-").status == 1);
  }
}

TEST_CASE("a closed stderr: a question nobody saw is not answered yes; an error still exits non-zero") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  auto r = edges_sh(f.dir(), with({"balance", f.node(0) + ":3"}, f.index_args()), "2>&-", "yes");
  CHECK(r.status == 1);
  CHECK(f.cluster().find(f.node(0))->balance == 1);
  CHECK(f.state_changes().empty());
  CHECK(edges_sh(f.dir(), with({"balance", "--force", f.node(0) + ":3"}, f.index_args()), "2>&-").status == 1);
  CHECK(f.cluster().find(f.node(0))->balance == 1); // --force too: its refusals would be unseen
  CHECK(edges_sh(f.dir(), {"list", "-i", "127.0.0.1:1"}, "2>&-").status == 1);
}

TEST_CASE("a full stdout fails every command that prints, with the reason on stderr") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list"}, {"list", "--json"}, {"stats"}, {"stats", "--json"}, {"stats", "--prometheus"}, {"summary"},
           {"index"}, {"threads", f.node(0)}, {"verify"}, {"ping", f.node(0)}, {"check"}, {"dump", "--all"},
           {"--version"}, {"--help"}}) {
    std::vector<std::string> full = args;
    if (args[0] != "--version" && args[0] != "--help" && args[0] != "ping" && args[0] != "threads")
      full = with(args, f.index_args());
    if (args[0] == "threads") full = with(args, f.index_args());
    INFO(args[0] << (args.size() > 1 ? " " + args[1] : ""));
    auto r = edges_sh(f.dir(), full, "> /dev/full");
    CAPTURE(r.err);
    CHECK(r.status != 0); // check: its own codes (1 WARNING at least), never 0
    if (args[0] != "check") CHECK(r.status == 1);
    CHECK(r.err.find("cannot write standard output: No space left on device") != std::string::npos);
  }
}

TEST_CASE("every catchable terminating signal stops a dump as Ctrl-C does: exit 128+N, no file, no temporary") {
  for (int sig : {SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF}) {
    CAPTURE(sig);
    FakeCluster f(1); // a fresh node: one whose dump was dropped stays busy for a moment
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("fill " + f.node(0) + " 40 1000");
    f.must("dump-rate " + f.node(0) + " 10"); // about 4 s
    const std::string out = f.dir() + "/sig.flare";
    const long long before = f.connections(f.node(0));
    auto r = harness::interrupt_after(with({"dump", "--all", "-o", out}, f.index_args()), 0, sig, nullptr,
                                      [&] { return f.connections(f.node(0)) > before; });
    CHECK(r.status == 128 + sig);
    CHECK(r.err.find("interrupted after ") != std::string::npos);
    CHECK_FALSE(harness::exists(out));
    CHECK(harness::temporaries_beside(out).empty());
  }
}

TEST_CASE("a temporary left by a killed write is named by the next write beside it, never removed") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 10 10");
  const long dead = edges_dead_pid();
  const std::string left = f.dir() + "/.old.flare.flare-tmp-" + std::to_string(dead) + ".Ab12Cd";
  harness::write_text(left, std::string(4096, 'x'));
  // A live writer's temporary (this process's pid) and a stranger's file are not named.
  const std::string live = f.dir() + "/.other.flare-tmp-" + std::to_string(::getpid()) + ".Zz99Yy";
  harness::write_text(live, "y");
  harness::write_text(f.dir() + "/.bashrc.abcdef", "z");
  for (const auto& args : std::vector<std::vector<std::string>>{{"dump", "--all", "-o", f.dir() + "/new.flare"},
                                                                {"index", "-o", f.dir() + "/flare.xml"},
                                                                {"stats", "--prometheus", "-o", f.dir() + "/flare.prom"}}) {
    INFO(args[0]);
    auto r = run(with(args, f.index_args()));
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(r.err.find("note: a temporary of an earlier write that was killed before finishing (process " + std::to_string(dead) +
                     ", gone)") != std::string::npos);
    CHECK(r.err.find("4096 bytes") != std::string::npos);
    CHECK(r.err.find("rm -- '" + left + "'") != std::string::npos);
    CHECK(r.err.find(live) == std::string::npos);
    CHECK(r.err.find(".bashrc") == std::string::npos);
    CHECK(harness::exists(left));
  }
  SUBCASE("the rm command printed removes exactly the leftover, whatever its name holds") {
    for (const std::string name : {"it's", "new\nline", "a'; touch PWNED; echo '"}) {
      CAPTURE(name);
      const std::string odd = f.dir() + "/." + name + ".flare-tmp-" + std::to_string(dead) + ".Qq11Rr";
      harness::write_text(odd, "x");
      auto r = run(with({"index", "-o", f.dir() + "/again.xml"}, f.index_args()));
      REQUIRE(r.status == 0);
      const size_t at = r.err.find("to remove them: rm -- ");
      REQUIRE(at != std::string::npos);
      const std::string cmd = r.err.substr(at + 16, r.err.find('\n', at) - at - 16);
      // bash: a name holding a line break is printed as $'...' (one line; POSIX sh has no such quote)
      CHECK(std::system(("cd '" + f.dir() + "' && bash -c " + edges_quote(cmd) + " >/dev/null 2>&1").c_str()) == 0);
      CHECK_FALSE(harness::exists(odd));
      CHECK_FALSE(harness::exists(f.dir() + "/PWNED"));
      CHECK_FALSE(harness::exists(left)); // removed by the command too: both were named
      harness::write_text(left, std::string(4096, 'x'));
    }
  }
}

TEST_CASE("a host name that does not resolve is named as such, and a node the index lacks as that") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  {
    for (const auto& args : std::vector<std::vector<std::string>>{{"down", "--force", "nosuch.invalid:25121"},
                                                                  {"slave", "--force", "nosuch.invalid:25121:1:0"},
                                                                  {"balance", "--force", "nosuch.invalid:25121:1"},
                                                                  {"stats", "nosuch.invalid:25121"}}) {
      INFO(args[0]);
      auto r = run(with(args, f.index_args()));
      CAPTURE(r.err);
      CHECK(r.status == 1);
      CHECK(r.err.find("nosuch.invalid:25121: cannot resolve 'nosuch.invalid'") != std::string::npos);
      CHECK(r.err.find("(the name does not resolve)") != std::string::npos);
    }
    auto r = run(with({"down", "--force", "127.0.0.1:1"}, f.index_args()));
    CHECK(r.err.find("127.0.0.1:1: the index lists no such node") != std::string::npos);
  }
}

TEST_CASE("a value of 5,000 digits is cut where it is echoed, for every option that takes a value") {
  harness::SurfaceRuns surface; // usage errors: no leak check at exit (harness.hpp)
  {
    const std::string huge(5000, '7');
    std::set<std::string> tried;
    int runs = 0;
    for (const std::string sub : {"list", "stats", "dump", "dumpkey", "restore", "verify", "master", "balance", "check",
                                  "keycheck", "index", "reconstruct"}) {
      std::istringstream in(run({sub, "--help"}).out);
      for (std::string line; std::getline(in, line);) {
        size_t dd = line.find("--"), eq = line.find('=', line.find("--"));
        if (dd == std::string::npos || eq == std::string::npos || line.find_first_not_of(' ') == 0) continue;
        if (eq > line.find(' ', dd)) continue;
        const std::string option = line.substr(dd, eq - dd);
        if (option == "--output" || option == "--input" || !tried.insert(option).second) continue;
        INFO(sub << " " << option);
        auto r = run({sub, option + "=" + huge, "-i", "127.0.0.1:1", "--timeout", "1"});
        ++runs;
        CHECK(r.err.size() < 1000);
        CHECK(r.err.find(std::string(201, '7')) == std::string::npos);
      }
    }
    CHECK(runs > 20);
  }
}

TEST_CASE("Ctrl-C at a question says one thing: nothing was changed") {
  FakeCluster f(4, {"--revive-ms", "600000"});
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  f.must("set-node " + f.node(2) + " slave active 0 1");
  f.must("kill " + f.node(3));
  f.must("set-node " + f.node(3) + " proxy down -1 0");
  std::vector<std::string> args;
  SUBCASE("balance") { args = {"balance", f.node(0) + ":4"}; }
  SUBCASE("down") { args = {"down", f.node(1)}; }
  SUBCASE("reconstruct") { args = {"reconstruct", f.node(1)}; }
  SUBCASE("remove") { args = {"remove", f.node(3)}; }
  const size_t before = f.state_changes().size();
  auto r = harness::run_tty(with(args, f.index_args()), {}, "): ");
  CAPTURE(r.out);
  CHECK(r.status == 130);
  // The question's line ends, then the one line: no table, no empty line of a table after it
  // (down's and reconstruct's ended with one on stdout).
  CHECK(r.out.find("): \ninterrupted: nothing was changed.\n") != std::string::npos);
  CHECK(r.out.substr(r.out.find("interrupted: nothing was changed.\n") + 34).empty());
  CHECK(r.out.find("skipped:") == std::string::npos); // before: both lines
  CHECK(f.state_changes().size() == before);
  CHECK(f.cluster().find(f.node(0))->balance == 1);
}
