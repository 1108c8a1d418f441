// Integration: every command that talks to a peer, against peers that misbehave: silent,
// cut off, garbage, huge lines, absurd numbers, slow, refused, unresolvable. The tool must end
// with a one-line error (or show the field as "-"), within --timeout, in bounded memory.
#include "harness.hpp"

#include <algorithm>

using harness::count_lines;
using harness::FakeCluster;
using harness::master_and_slave;
using harness::run;
using harness::with;

namespace {


// Every subcommand that asks the index server something, with arguments naming node 0/1.
std::vector<std::vector<std::string>> index_commands(FakeCluster& f, const std::string& dump_file) {
  std::string n0 = f.node(0), n1 = f.node(1);
  return {{"list"},
          {"stats"},
          {"threads"},
          {"summary"},
          {"index"},
          {"master", "--force", n1 + ":1:1"},
          {"slave", "--force", n1 + ":1:0"},
          {"balance", "--force", n0 + ":2"},
          {"down", "--force", n1},
          {"activate", "--force", n1},
          {"remove", "--force", n1},
          {"reconstruct", "--force", n0},
          {"part", "--force", n1 + ":1:1"},
          {"dump", "--all"},
          {"dumpkey", "--all"},
          {"restore", "--input", dump_file},
          {"verify"}};
}

void check_one_line_failure(const harness::Result& r, const std::string& what) {
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(count_lines(r.err) >= 1);
  CHECK(r.err.find(what) != std::string::npos);
  if (harness::rss_limit_kb() > 0) CHECK(r.max_rss_kb < harness::rss_limit_kb());
}

std::vector<std::string> index_option(const std::vector<std::string>& cmd, FakeCluster& f) {
  // restore's -i is its input: it names the index server with the long option.
  return cmd[0] == "restore" ? std::vector<std::string>{"--index-server", f.index()} : f.index_args();
}

} // namespace

TEST_CASE("an index server that accepts and never answers: every command ends within --timeout") {
  FakeCluster f(2);
  f.must("set-node " + f.node(0) + " master active 0 1");
  std::string file = f.dir() + "/d.flare";
  REQUIRE(run(with({"dump", "--all", "-o", file}, f.index_args())).status == 0);
  f.must("hang index 1");
  // Every command at once: each waits out its own one-second deadline (one after another, they
  // took 17 s).
  auto cmds = index_commands(f, file);
  std::vector<harness::Result> results(cmds.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cmds.size(); ++i)
    threads.emplace_back([&, i] { results[i] = run(with(with(cmds[i], index_option(cmds[i], f)), {"--timeout", "1"})); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < cmds.size(); ++i) {
    const auto& cmd = cmds[i];
    const auto& r = results[i];
    CAPTURE(cmd[0]);
    check_one_line_failure(r, "timed out waiting for index server " + f.index());
    CHECK(count_lines(r.err) == 1);
    // Ended, not hung (the harness would wait 120 s): a bound far above the 1 s deadline, for
    // seventeen sanitized tools started at once on a busy machine. The deadline's own length is
    // a unit test's (test_socket.cpp).
    CHECK(r.seconds < 30);
  }
}

TEST_CASE("an index server that is refused or does not resolve: one line, exit 1") {
  FakeCluster f(2);
  std::string file = f.dir() + "/d.flare";
  std::ofstream(file) << "END\r\n";
  f.must("refuse index 1");
  for (auto& cmd : index_commands(f, file)) {
    CAPTURE(cmd[0]);
    auto r = run(with(cmd, index_option(cmd, f)));
    check_one_line_failure(r, "cannot connect to index server " + f.index() + ": Connection refused");
    CHECK(count_lines(r.err) == 1);
    auto u = run(with(cmd, {cmd[0] == "restore" ? "--index-server" : "-i", "no-such-host.invalid"}));
    check_one_line_failure(u, "cannot resolve 'no-such-host.invalid'");
    CHECK(count_lines(u.err) == 1);
  }
}

TEST_CASE("an index server that closes in the middle of a reply: a clear error, no partial success") {
  FakeCluster f(2);
  f.must("set-node " + f.node(0) + " master active 0 1");
  std::string file = f.dir() + "/d.flare";
  REQUIRE(run(with({"dump", "--all", "-o", file}, f.index_args())).status == 0);
  f.must("cut index 40");
  for (auto& cmd : index_commands(f, file)) {
    CAPTURE(cmd[0]);
    auto r = run(with(cmd, index_option(cmd, f)));
    check_one_line_failure(r, "connection closed by index server " + f.index());
    CHECK(r.out == "");
  }
}

TEST_CASE("an index server that sends garbage, bytes that are not UTF-8, or a 10 MB line") {
  FakeCluster f(2);
  std::string file = f.dir() + "/d.flare";
  std::ofstream(file) << "END\r\n";
  SUBCASE("garbage") {
    f.must("override index stats " + harness::hex("HTTP/1.1 400 Bad Request\r\n\xff\xfe\r\n"));
    auto r = run(with({"list"}, f.index_args()));
    check_one_line_failure(r, "unexpected reply line from " + f.index() + ": 'HTTP/1.1 400 Bad Request'");
  }
  SUBCASE("not UTF-8: escaped, so the message stays one printable line") {
    f.must("override index stats " + harness::hex("\xff\xfe\x01\x1b[2J\r\n"));
    auto r = run(with({"stats"}, f.index_args()));
    check_one_line_failure(r, "'\\xff\\xfe\\x01\\x1b[2J'");
  }
  SUBCASE("a 10 MB line without a newline, for every command: memory stays bounded") {
    f.must("override index stats " + harness::hex("A") + " 10485760");
    for (auto& cmd : index_commands(f, file)) {
      CAPTURE(cmd[0]);
      auto r = run(with(cmd, index_option(cmd, f)));
      check_one_line_failure(r, "longer than " + std::to_string(FLARE_TOOLS_MAX_LINE_BYTES) + " bytes");
    }
  }
}

TEST_CASE("numbers out of range in the node map are refused, not wrapped") {
  FakeCluster f(1);
  for (const char* bad : {"-5", "18446744073709551617", "99999999999", "1x"}) {
    CAPTURE(bad);
    f.must("override index stats " +
           harness::hex("STAT 127.0.0.1:1:role master\r\nSTAT 127.0.0.1:1:state active\r\n"
                        "STAT 127.0.0.1:1:partition " + std::string(bad) + "\r\nSTAT 127.0.0.1:1:balance 1\r\nEND\r\n"));
    auto r = run(with({"list"}, f.index_args()));
    check_one_line_failure(r, "bad partition");
  }
  SUBCASE("a node entry with a missing field") {
    f.must("override index stats " + harness::hex("STAT 127.0.0.1:1:role master\r\nEND\r\n"));
    check_one_line_failure(run(with({"list"}, f.index_args())), "lacks one of role, state, partition, balance");
  }
}

TEST_CASE("a node's bad stats show as '-' or as a dead row, never spoil the table") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  SUBCASE("numbers out of range, duplicated and missing fields") {
    f.must("override " + f.node(0) + " stats " +
           harness::hex("STAT curr_items 18446744073709551617\r\nSTAT curr_connections -3\r\nSTAT uptime 5\r\n"
                        "STAT uptime 7200\r\nSTAT version 1.3.4\r\nEND\r\n"));
    auto r = run(with({"stats", f.node(0)}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out.find(f.node(0) + " active master         0       1     -    -      0   -    -     2h   1.3.4\n") !=
          std::string::npos);
  }
  SUBCASE("garbage, a 10 MB line, a cut reply, silence: the row stays, the reason goes to stderr") {
    f.must("override " + f.node(0) + " stats " + harness::hex("\x01garbage\r\nEND\r\n"));
    f.must("override " + f.node(1) + " stats " + harness::hex("B") + " 10485760");
    f.must("hang " + f.node(2) + " 1");
    auto r = run(with({"stats", "--timeout", "1"}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(count_lines(r.out) == 4);
    CHECK(r.err.find(f.node(0) + ": malformed stats line '\\x01garbage'\n") != std::string::npos);
    CHECK(r.err.find(f.node(1) + ": reply larger than 4194304 bytes\n") != std::string::npos);
    CHECK(r.err.find(f.node(2) + ": timed out\n") != std::string::npos);
    CHECK(r.seconds < 30); // ended, not hung
    if (harness::rss_limit_kb() > 0) CHECK(r.max_rss_kb < harness::rss_limit_kb());
  }
}

TEST_CASE("a node that misbehaves during a data command: clear error, exit 1" * doctest::test_suite("slow")) {
  FakeCluster f(2);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 10 10");
  std::string file = f.dir() + "/d.flare";
  REQUIRE(run(with({"dump", "--all", "-o", file}, f.index_args())).status == 0);
  auto restore = [&] { return run({"restore", "--input", file, "--index-server", f.index(), f.node(0), "--timeout", "1"}); };
  SUBCASE("silence") {
    f.must("hang " + f.node(0) + " 1");
    check_one_line_failure(run(with({"dumpkey", "--all", "--timeout", "1"}, f.index_args())), "timed out");
    check_one_line_failure(restore(), "timed out waiting for " + f.node(0));
    check_one_line_failure(run(with({"verify", "--timeout", "1"}, f.index_args())), "timed out");
  }
  SUBCASE("a reply cut short") {
    f.must("cut " + f.node(0) + " 30");
    check_one_line_failure(run(with({"dumpkey", "--all"}, f.index_args())), "connection closed by " + f.node(0));
    check_one_line_failure(run(with({"verify"}, f.index_args())), "connection closed by " + f.node(0));
  }
  SUBCASE("garbage in a key dump") {
    f.must("override " + f.node(0) + " dump_key " + harness::hex("KEY a\r\nhello\r\nEND\r\n"));
    check_one_line_failure(run(with({"dumpkey", "--all"}, f.index_args())), "unexpected line in the key dump");
  }
  SUBCASE("refused") {
    f.must("refuse " + f.node(0) + " 1");
    check_one_line_failure(restore(), "Connection refused");
    check_one_line_failure(run(with({"dump", "--all"}, f.index_args())), "Connection refused");
    auto p = run({"ping", f.node(0)});
    CHECK(p.status == 1);
  }
}

TEST_CASE("a wedged node that stats or summary does not show costs one --timeout, not a second gather's" *
          doctest::test_suite("slow")) {
  // stats NODE and summary ask, besides what they show, every other node for its map version
  // (and the masters of the slaves shown for their lag): all of it in one gather. They used to
  // ask the others in a second gather once the first had ended, 2 x --timeout in all. With a
  // 5 s deadline one gather ends after 5 s, two after 10 s: the 4.5 s between is left for a
  // busy machine's start-up (a 2 s deadline left 1.5 s, and a loaded machine took more).
  FakeCluster f(3);
  master_and_slave(f);
  SUBCASE("stats of the slave, its master wedged") {
    f.must("hang " + f.node(0) + " 1");
    auto r = run(with({"stats", "--timeout", "5", f.node(1)}, f.index_args()));
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find(f.node(1) + " active slave") != std::string::npos);
    CHECK(r.err == f.node(0) + ": its slaves' lag is unknown: timed out\n");
    CHECK(r.seconds < 9.5); // one 5 s deadline, not two after one another
  }
  SUBCASE("summary, the master and the proxy wedged") {
    f.must("hang " + f.node(0) + " 1");
    f.must("hang " + f.node(2) + " 1");
    auto r = run(with({"summary", "--timeout", "5"}, f.index_args()));
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK(r.err == f.node(0) + ": timed out\nsummary is incomplete: 1 master(s) did not answer\n");
    CHECK(r.seconds < 9.5);
  }
  SUBCASE("stats of the master, it and the proxy wedged") {
    f.must("hang " + f.node(0) + " 1");
    f.must("hang " + f.node(2) + " 1");
    auto r = run(with({"stats", "--timeout", "5", f.node(0)}, f.index_args()));
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.err == f.node(0) + ": timed out\n");
    CHECK(r.seconds < 9.5);
  }
}

TEST_CASE("a slow peer, one byte per 100 ms: correct, or a timeout, never a hang") {
  FakeCluster f(1);
  SUBCASE("a short reply arrives in time and is right") {
    f.must("drip " + f.node(0) + " 100");
    auto r = run({"ping", f.node(0), "--timeout", "3"});
    CHECK(r.status == 0);
    CHECK(r.out == "alive\n");
  }
  SUBCASE("a long reply outlasts the deadline") {
    f.must("drip index 100");
    auto r = run(with({"list", "--timeout", "1"}, f.index_args()));
    check_one_line_failure(r, "timed out waiting for index server");
    CHECK(r.seconds < 30); // ended at its deadline, not when the 10 MB reply would have
  }
}
