// Integration: one convention for every subcommand (issue 19). Data on stdout; errors,
// refusals, warnings and notes on stderr; exit 0 done, 1 failed or refused at run time, 2 the
// command line is wrong, 130 interrupted. One table of bad inputs walked through every
// subcommand, then the parts of the convention that are not a table: JSON Lines, the
// "did you mean", help SUB, deploy's values, and the bash completion of every option value.
#include "harness.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <sys/stat.h>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

// Subcommands that keep another convention on purpose (named in the man page's EXIT STATUS):
// `check` answers with monitoring-plugin codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
const std::set<std::string> kConventionExceptions = {"check"};

// The subcommands flare-admin lists in its overview.
std::vector<std::string> convention_subcommands() {
  auto r = run({"--help"});
  REQUIRE(r.status == 0);
  std::vector<std::string> out;
  std::istringstream in(r.out);
  std::string line;
  bool on = false;
  while (std::getline(in, line)) {
    if (line == "Subcommands:") {
      on = true;
      continue;
    }
    if (!on) continue;
    if (line.empty()) break;
    std::istringstream w(line);
    std::string name;
    w >> name;
    out.push_back(name);
  }
  return out;
}

// For each subcommand: arguments that are right in form (so that only the row's fault is
// wrong), and whether it needs an argument or --input to run at all.
struct ConventionCmd {
  std::vector<std::string> good; // well-formed arguments, without the index server
  bool needs_argument;           // run without any argument is a usage error
  bool talks_to_server;          // with `good`, it asks the index server (or a node) something
};

std::map<std::string, ConventionCmd> convention_table(const std::string& dump_file, const std::string& layout_file) {
  const std::string node = "127.0.0.1:2";
  return {
      {"ping", {{node}, false, true}},
      {"list", {{}, false, true}},
      {"stats", {{}, false, true}},
      {"threads", {{}, false, true}},
      {"summary", {{}, false, true}},
      {"index", {{}, false, true}},
      {"master", {{"--force", node + ":1:0"}, true, true}},
      {"slave", {{"--force", node + ":1:0"}, true, true}},
      {"balance", {{"--force", node + ":1"}, true, true}},
      {"down", {{"--force", node}, true, true}},
      {"activate", {{"--force", node}, true, true}},
      {"remove", {{"--force", node}, true, true}},
      {"reconstruct", {{"--force", node}, true, true}},
      {"part", {{"--force", node + ":1:0"}, true, true}},
      {"dump", {{"--all"}, true, true}},
      {"dumpkey", {{"--all"}, true, true}},
      {"restore", {{"--input", dump_file}, true, true}},
      {"verify", {{}, false, true}},
      {"deploy", {{"--deploy-index"}, true, false}},
      {"keycheck", {{"--all"}, false, true}},
      {"apply", {{"--force", layout_file}, true, true}},
      // It serves until stopped, an unreachable index included (its scrapes say flare_index_up 0).
      {"exporter", {{"--web.listen-address", "127.0.0.1:0"}, false, false}},
  };
}

// A usage error: status 2, one line on stderr that points at --help, nothing on stdout.
void convention_usage_error(const harness::Result& r) {
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(harness::count_lines(r.err) == 1);
  CHECK(r.err.find("--help") != std::string::npos);
}

// A failure at run time: status 1, the reason on stderr, nothing on stdout (`ping` prints its
// answer, "HOST:PORT is down", on stdout as 0.7.3 did; the reason is on stderr all the same).
void convention_run_time_failure(const std::string& sub, const harness::Result& r) {
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK_FALSE(r.err.empty());
  if (sub != "ping") CHECK(r.out.empty());
}

std::string convention_joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

} // namespace

TEST_CASE("every subcommand takes bad input the same way: the stream and the exit status say what went wrong" * doctest::test_suite("slow")) {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  const std::string dir = harness::make_temp_dir();
  const std::string dump_file = dir + "/all.flare";
  harness::write_text(dump_file, "");
  const std::string layout_file = dir + "/layout";
  harness::write_text(layout_file, "127.0.0.1:2 0 master active 1\n");
  const auto table = convention_table(dump_file, layout_file);
  const std::vector<std::string> unreachable = {"--index-server", "127.0.0.1:1", "--timeout", "2"};
  for (const auto& sub : convention_subcommands()) {
    if (kConventionExceptions.count(sub)) continue;
    CAPTURE(sub);
    auto it = table.find(sub);
    REQUIRE_MESSAGE(it != table.end(), "a subcommand missing from the convention table: " << sub);
    const ConventionCmd& cmd = it->second;
    // The rows of the table (not SUBCASEs: every row for every subcommand in one pass).
    auto usage_row = [&](const char* row, const std::vector<std::string>& args) {
      INFO(row);
      auto r = run(args);
      convention_usage_error(r);
      return r;
    };
    usage_row("wrong option", with(with({sub}, cmd.good), {"--no-such-option"}));
    usage_row("repeated option", with(with({sub}, cmd.good), {"--timeout", "1", "--timeout", "2"}));
    usage_row("bad value", with(with({sub}, cmd.good), {"--timeout", "86401"}));
    usage_row("missing value", with(with({sub}, cmd.good), {"--timeout"}));
    if (cmd.needs_argument) usage_row("missing argument", with({sub}, unreachable));
    auto nl = usage_row("a newline inside an argument", with(with({sub}, cmd.good), {"--no-such\noption"}));
    CHECK(nl.err.find("\\x0a") != std::string::npos);
    if (cmd.talks_to_server) {
      INFO("unreachable server");
      convention_run_time_failure(sub, run(with(with({sub}, cmd.good), unreachable)));
    }
  }
  std::string rm = "rm -rf '" + dir + "'";
  CHECK(std::system(rm.c_str()) == 0);
}

// The table above, and the two cases below, were one test case with two SUBCASEs: doctest runs
// a case's body once per SUBCASE, so the whole table ran twice.
TEST_CASE("bad input: a value of the wrong form is a usage error found before the index is asked, for each subcommand with its own") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  const std::string dir = harness::make_temp_dir();
  const std::string dump_file = dir + "/all.flare";
  harness::write_text(dump_file, "");
  const std::vector<std::string> unreachable = {"--index-server", "127.0.0.1:1", "--timeout", "2"};
  {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"dump", "--all", "--format", "json"},
             {"dumpkey", "--all", "--bwlimit", "fast"},
             {"restore", "--input", dump_file, "--format", "json"},
             {"verify", "--key-hash-algorithm", "bogus"},
             {"keycheck", "--hash", "nope"},
             {"deploy", "127.0.0.1:13125", "--storage-type=bogus"},
             {"deploy", "127.0.0.1:13125:1"},
             {"master", "--force", "127.0.0.1:2:0:1"},
             {"ping", "host"},
             {"threads", "nohost"},
             {"stats", "--count", "0"},
             {"stats", "nohost"},
             {"dump", "nohost"},
             {"restore", "--input", dump_file, "nohost"},
         }) {
      INFO(convention_joined(args));
      // The index server is unreachable: a usage error is found before anything is asked.
      convention_usage_error(run(with(args, unreachable)));
    }
  }
  std::string rm = "rm -rf '" + dir + "'";
  CHECK(std::system(rm.c_str()) == 0);
}

TEST_CASE("bad input: a directory given as a file is named as one, by every subcommand that reads or writes a file") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  const std::string dir = harness::make_temp_dir();
  const std::vector<std::string> unreachable = {"--index-server", "127.0.0.1:1", "--timeout", "2"};
  {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"dump", "--all", "-o", dir},
             {"dumpkey", "--all", "-o", dir},
             {"index", "-o", dir},
             {"stats", "--prometheus", "-o", dir},
             {"keycheck", "-o", dir},
             {"restore", "-i", dir},
             {"keycheck", "-i", dir},
             {"keycheck", dir},
         }) {
      INFO(convention_joined(args));
      auto r = run(with(args, unreachable), "user::1\n");
      convention_run_time_failure(args[0], r);
      CHECK(r.err.find("'" + dir + "' is a directory") != std::string::npos);
    }
  }
  std::string rm = "rm -rf '" + dir + "'";
  CHECK(std::system(rm.c_str()) == 0);
}

TEST_CASE("restore -i and keycheck -i are the input file: given twice, or given HOST:PORT, they are usage errors that say so") {
  FakeCluster f(1);
  const std::string file = f.dir() + "/all.flare";
  harness::write_text(file, "");
  for (const std::string sub : {"restore", "keycheck"}) {
    CAPTURE(sub);
    // -i HOST:PORT that is no file
    auto r = run({sub, "-i", f.index()});
    convention_usage_error(r);
    CHECK(r.err.find("-i is the input file") != std::string::npos);
    CHECK(r.err.find("--index-server " + f.index()) != std::string::npos);
    // -i and --input both
    auto both = run({sub, "-i", f.index(), "--input", file});
    convention_usage_error(both);
    CHECK(both.err.find("--input is given twice: here -i is the input file") != std::string::npos);
  }
  CHECK(f.state_changes().empty());
}

TEST_CASE("usage errors are found before anything is asked: an unreachable index changes nothing about exit 2") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  // 0.7.3 and the tool before issue 19 exited 1 for these; a script tells them from run-time
  // failures by the status.
  for (const auto& args : std::vector<std::vector<std::string>>{{"dump", "--format", "json", "--all"},
                                                                {"verify", "--key-hash-algorithm", "bogus"},
                                                                {"dump"},
                                                                {"balance"}}) {
    INFO(convention_joined(args));
    auto r = run(with(args, {"-i", "127.0.0.1:1"}));
    CHECK(r.status == 2);
  }
}

TEST_CASE("an unknown subcommand suggests the nearest one, and help SUB shows SUB's help") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  auto r = run({"lsit"});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("did you mean 'list'?") != std::string::npos);
  auto far = run({"frobnicate"});
  CHECK(far.status == 2);
  CHECK(far.err.find("did you mean") == std::string::npos);
  auto h = run({"help", "dump"});
  CHECK(h.status == 0);
  CHECK(h.out == run({"dump", "--help"}).out);
  CHECK(run({"help", "nosuch"}).status == 2);
  auto hh = run({"help", "help"}); // help on help: the overview, as --help
  CHECK(hh.status == 0);
  CHECK(hh.out == run({"--help"}).out);
  CHECK(hh.err.empty());
}

TEST_CASE("--timeout states its real range in the error and in --help") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  auto r = run({"list", "--timeout", "604800"});
  convention_usage_error(r);
  CHECK(r.err.find("at most 86400") != std::string::npos);
  CHECK(run({"list", "--help"}).out.find("at most 86400") != std::string::npos);
}

TEST_CASE("arguments are shown the same way in every message") {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  // A non-ASCII host: escaped alike by list -i and by ping.
  auto l = run({"list", "-i", "h\xc3\xb4st"});
  auto p = run({"ping", "h\xc3\xb4st:1"});
  CHECK(l.err.find("'h\\xc3\\xb4st'") != std::string::npos);
  CHECK(p.err.find("'h\\xc3\\xb4st:1'") != std::string::npos);
  CHECK(l.status == 2);
  CHECK(p.status == 2);
}

TEST_CASE("a host name that does not resolve is named as such without --debug") {
  auto r = run({"ping", "nosuchhost.invalid:12120"});
  CHECK(r.status == 1);
  CHECK(r.err.find("cannot resolve 'nosuchhost.invalid'") != std::string::npos);
}

TEST_CASE("errors and refusals of the changing commands go to stderr; their tables stay on stdout") {
  FakeCluster f(3);
  harness::master_and_slave(f);
  auto idx = f.index_args();
  SUBCASE("a node that is not in the cluster: one wording everywhere") {
    auto b = run(with({"balance", "--force", "127.0.0.1:1:1"}, idx));
    CHECK(b.status == 1);
    CHECK(b.err.find("unknown node: 127.0.0.1:1") != std::string::npos);
    CHECK(b.out.find("unknown") == std::string::npos);
    auto s = run(with({"stats", "127.0.0.1:1"}, idx));
    CHECK(s.status == 1);
    CHECK(s.err.find("unknown node: 127.0.0.1:1") != std::string::npos);
  }
  SUBCASE("master over an existing master: spelled right, on stderr") {
    auto r = run(with({"master", "--force", f.node(2) + ":1:0"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("the partition already has a master " + f.node(0) + ".") != std::string::npos);
    CHECK(r.out.find("already has a master") == std::string::npos);
    CHECK(r.out.rfind("node ", 0) == 0); // the table
  }
}

TEST_CASE("flare-stats: JSON Lines for several samples, and --fail-on-unreachable for monitoring") {
  FakeCluster f(2);
  harness::master_and_slave(f);
  auto idx = f.index_args();
  SUBCASE("-c 2 --json: one compact document per line") {
    auto r = run(with({"stats", "--json", "-c", "2", "-w", "0"}, idx));
    CHECK(r.status == 0);
    CHECK(harness::count_lines(r.out) == 2);
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      CHECK(line.front() == '[');
      CHECK(line.back() == ']');
      CHECK(line.find("\"bytes\":") != std::string::npos);
    }
  }
  SUBCASE("one sample stays one (indented) document") {
    auto r = run(with({"stats", "--json"}, idx));
    CHECK(r.status == 0);
    CHECK(harness::count_lines(r.out) > 1);
  }
  SUBCASE("a node that does not answer: exit 0 as 0.7.3, exit 1 when asked") {
    f.must("kill " + f.node(1));
    auto plain = run(with({"stats"}, idx));
    CHECK(plain.status == 0);
    CHECK(plain.err.find(f.node(1)) != std::string::npos);
    auto strict = run(with({"stats", "--fail-on-unreachable"}, idx));
    CHECK(strict.status == 1);
    CHECK(strict.out.find(f.node(0)) != std::string::npos); // the table all the same
    auto prom = run(with({"stats", "--prometheus", "--fail-on-unreachable"}, idx));
    CHECK(prom.status == 1);
    CHECK(prom.out.find("flare_up{") != std::string::npos);
  }
  SUBCASE("the size column's unit is in --help") {
    CHECK(run({"stats", "--help"}).out.find("whole GiB") != std::string::npos);
  }
}

TEST_CASE("deploy refuses a value flarei/flared would not read as meant, before writing anything") {
  const std::string dir = harness::make_temp_dir();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--storage-type=bogus"}, {"--thread-pool-size=-5"}, {"--thread-pool-size=2147483648"},
           {"--daemonize=false"}, {"--storage-compress=zip"}, {"--partition-type=ring"},
           {"--key-hash-algorithm=md5"}, {"--proxy-prior-netmask=33"}, {"--index-servers=a:1,b"},
           {"--log-facility=local 0"}, {"--storage-bucket-size=18446744073709551616"}, {"--monitor-interval=0"}}) {
    INFO(args[0]);
    std::string cmd = "cd '" + dir + "' && '" + harness::admin_binary() + "' deploy --deploy-index -i 127.0.0.1:13120 127.0.0.1:13121 '" +
                      args[0] + "' >/dev/null 2>&1";
    int st = std::system(cmd.c_str());
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 2);
    CHECK(harness::dir_entries(dir).empty());
  }
  std::string cmd = "cd '" + dir + "' && '" + harness::admin_binary() +
                    "' deploy --deploy-index -i 127.0.0.1:13120 127.0.0.1:13121 --storage-type=tcb --thread-pool-size=4 "
                    "--index-servers=127.0.0.1:13120,127.0.0.2:13120 --daemonize=true --proxy-prior-netmask=24 >/dev/null 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
  CHECK(harness::dir_entries(dir).size() == 2);
  std::string rm = "rm -rf '" + dir + "'";
  CHECK(std::system(rm.c_str()) == 0);
}

// A test of the completion script: its cost is bash's (8 s of CPU), the tool only prints its
// --help; in test suite "slow-script", which the sanitized suite leaves out (tests/run-suites).
TEST_CASE("bash completion offers files where a file goes and values where a value goes, for every option that takes one" *
          doctest::test_suite("slow-script")) {
  harness::SurfaceRuns surface; // usage errors and --help: no leak check at exit (harness.hpp)
  if (std::system("command -v bash >/dev/null 2>&1") != 0) {
    MESSAGE("bash is not installed: completion not tested");
    return;
  }
  FakeCluster f(2); // live nodes, so that a wrong offer of node addresses would show
  const std::string dir = f.dir();
  harness::write_text(dir + "/alpha.flare", "");
  const std::string completion = harness::absolute("contrib/bash-completion/flare-admin");
  const std::string prog = harness::admin_binary();
  // Every subcommand's options with a value, from its --help: "--name=PLACEHOLDER".
  struct Case {
    std::string sub, option, placeholder;
  };
  // An option that several subcommands share (--timeout, --index-server, ...) is completed from
  // the same --help line by the same code: it is tried once, with the first subcommand that has
  // it; an option whose value differs between subcommands (a placeholder of its own) is tried
  // for each. Every option that takes a value is tried (the completion forks a dozen processes
  // per try: 338 tries took 53 s, 179 s under the sanitizers).
  std::vector<Case> cases;
  std::set<std::string> tried;
  for (const auto& sub : convention_subcommands()) {
    std::istringstream in(run({sub, "--help"}).out);
    std::string line;
    while (std::getline(in, line)) {
      size_t dd = line.find("--");
      size_t first = line.find_first_not_of(' ');
      if (first == std::string::npos || first == 0 || line[first] != '-' || dd == std::string::npos) continue;
      size_t eq = line.find('=', dd), end = line.find(' ', dd);
      if (eq == std::string::npos || (end != std::string::npos && eq > end)) continue;
      Case c{sub, line.substr(dd, eq - dd), line.substr(eq + 1, end == std::string::npos ? end : end - eq - 1)};
      // the whole help line: an option whose values differ by subcommand says so in its help
      // (deploy's --key-hash-algorithm names three, verify's six)
      if (tried.insert(line.substr(first)).second) cases.push_back(c);
    }
  }
  REQUIRE(cases.size() > 50);
  // One bash runs every case twice (--opt VALUE and --opt=VALUE), printing the replies.
  std::string script = "source '" + completion + "'\nexport FLARE_INDEX_SERVER=" + f.index() + "\n";
  if (std::getenv("ASAN_OPTIONS")) script += "export ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\"\n"; // --help only
  script += "try() { COMP_LINE=\"$1\"; COMP_POINT=${#COMP_LINE}; COMP_WORDBREAKS=$' \\t\\n\"\\'><=;|&(:'; "
            "COMPREPLY=(); _flare_admin; printf '%s\\t' \"$1\"; printf '%s|' \"${COMPREPLY[@]}\"; printf '\\n'; }\n";
  auto prefix_of = [&](const Case& c) {
    if (c.placeholder == "FILE" || c.placeholder == "PATH") return dir + "/al";
    return std::string();
  };
  for (const auto& c : cases) {
    std::string head = prog + " " + c.sub + " ";
    script += "try '" + head + c.option + " " + prefix_of(c) + "'\n";
    script += "try '" + head + c.option + "=" + prefix_of(c) + "'\n";
  }
  // Positional arguments: keycheck's KEYFILE is a file; dump's HOST:PORT a node.
  script += "try '" + prog + " keycheck " + dir + "/al'\n";
  script += "try '" + prog + " dump 127.0.0.1:'\n";
  const std::string script_path = dir + "/complete.sh";
  harness::write_text(script_path, script);
  std::string out;
  {
    std::string cmd = "bash '" + script_path + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  std::map<std::string, std::string> replies;
  {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      size_t tab = line.find('\t');
      if (tab != std::string::npos) replies[line.substr(0, tab)] = line.substr(tab + 1);
    }
  }
  for (const auto& c : cases) {
    for (const std::string sep : {" ", "="}) {
      const std::string line = prog + " " + c.sub + " " + c.option + sep + prefix_of(c);
      CAPTURE(line);
      CAPTURE(c.placeholder);
      REQUIRE(replies.count(line));
      const std::string& got = replies[line];
      // Never node addresses, never an option name in place of a value.
      CHECK(got.find(f.node(0)) == std::string::npos);
      CHECK(got.find("--") == std::string::npos);
      if (c.placeholder == "FILE" || c.placeholder == "PATH") {
        // bash replaces the part after the last word break (= and :), so that is what comes back.
        CHECK(got.find("alpha.flare") != std::string::npos);
      } else if (c.placeholder == "FORMAT") {
        CHECK(got == "flare|csv|");
      } else if (c.placeholder == "MODE") {
        CHECK(got.find("0600|") != std::string::npos);
      } else if (c.option == "--key-hash-algorithm" && c.sub == "deploy") {
        CHECK(got == "simple|crc32|jenkins|"); // what flarei 1.3.4 starts with
      } else if (c.option == "--hash" || c.option == "--key-hash-algorithm") {
        CHECK(got == "simple|bitshift|crc32|adler32|murmur|jenkins|");
      } else if (c.option == "--storage-type") {
        CHECK(got == "tch|tcb|");
      }
    }
  }
  CHECK(replies[prog + " keycheck " + dir + "/al"].find("alpha.flare") != std::string::npos);
  CHECK(replies[prog + " dump 127.0.0.1:"].find(std::to_string(f.node_ports[0])) != std::string::npos);
}

TEST_CASE("dump --all on a terminal erases its redrawn progress line before each node's own line") {
  FakeCluster f(2);
  for (int p = 0; p < 2; ++p) {
    f.must("set-node " + f.node(p) + " master active " + std::to_string(p) + " 1");
    f.must("fill " + f.node(p) + " 200 10");
  }
  auto d = harness::run_tty(with({"dump", "--all", "-o", f.dir() + "/tty.flare"}, f.index_args()), {});
  CHECK(d.status == 0);
  CAPTURE(d.out);
  // Before: the progress line was ended with a line break and stayed above the node's line.
  CHECK(d.out.find("\x1b[K\r\ndumping from") == std::string::npos);
  CHECK(d.out.find("\r\x1b[Kdumping from " + f.node(0)) != std::string::npos);
  CHECK(d.out.find("\r\x1b[Kdumping from " + f.node(1)) != std::string::npos);
}
