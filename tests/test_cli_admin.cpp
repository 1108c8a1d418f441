// Integration: the cluster-changing subcommands against tests/fake-flare, which models the
// index's state machine (slave construction over time, failover, monitor revival, remove).
#include "harness.hpp"

#include <algorithm>
#include <cctype>

using harness::count_lines;
using harness::FakeCluster;
using harness::master_and_slave;
using harness::run;
using harness::with;
using harness::run_tty;

namespace {

std::string row(const std::string& key, const std::string& part, const std::string& role, const std::string& state,
                const std::string& balance) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-32s %9s %6s %6s %7s\n", key.c_str(), part.c_str(), role.c_str(), state.c_str(),
                balance.c_str());
  return buf;
}

const std::string kHeader = "node                             partition   role  state balance\n";

// Progress lines with their numbers masked, for whole-output comparisons:
// "12/34 (role = slave, state = prepare) [ETA: 3 sec (elapsed = 1 sec)]" becomes
// "N/N (role = slave, state = prepare) [ETA: * sec (elapsed = * sec)]".
std::string masked_progress(const std::string& err) {
  std::istringstream in(err);
  std::string line, out;
  while (std::getline(in, line)) {
    size_t slash = line.find('/'), open = line.find(" (role = "), eta = line.find(") [ETA: ");
    bool numbers = slash != std::string::npos && open != std::string::npos && slash < open &&
                   line.find_first_not_of("0123456789/") == open;
    if (numbers && eta != std::string::npos) line = "N/N" + line.substr(open, eta - open) + ") [ETA: * sec (elapsed = * sec)]";
    out += line + "\n";
  }
  return out;
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}


} // namespace

TEST_CASE("the seed tutorial, end to end" * doctest::test_suite("slow")) {
  // Four nodes; slaves copy 4000 items per second so that progress is visible.
  FakeCluster f(4, {"--copy-rate", "4000"});
  auto idx = f.index_args();
  std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);

  CHECK(run({"ping", f.index(), n0, n1, n2, n3}).out == "alive\n");

  // master of partition 0
  auto m = run(with({"master", "--force", n0 + ":1:0"}, idx));
  CHECK(m.status == 0);
  CHECK(m.out == "executed flush_all command before constructing the master node.\n"
                 "started constructing the master node...\n"
                 "state is ready -> stop waiting\n" +
                     kHeader + row(n0, "0", "master", "active", "1"));
  CHECK(m.err == "0 (role = master, state = active) [ETA: n/a sec (elapsed = 0 sec)]\n");

  // store items through the master, as a client would
  f.must("fill " + n0 + " 6000 100");
  CHECK(f.items(0) == 6000);

  // two slaves, with progress
  for (auto& n : {n1, n2}) {
    auto s = run(with({"slave", "--force", n + ":1:0"}, idx));
    CHECK(s.status == 0);
    CHECK(s.out == "executed flush_all command before constructing the slave node.\n"
                   "started constructing slave node...\n"
                   "state is active -> stop waiting\n" +
                       kHeader + row(n, "0", "slave", "active", "1"));
    CHECK(masked_progress(s.err).rfind("N/N (role = slave, state = prepare) [ETA: * sec (elapsed = * sec)]\n", 0) == 0);
    CHECK(last_line(s.err).rfind("6000/6000 (role = slave, state = active)", 0) == 0);
  }
  CHECK(f.items(1) == 6000);

  // reconstruct the master: the index fails over to a slave; the old master comes back as a slave
  auto r = run(with({"reconstruct", "--force", n0}, idx));
  CHECK(r.status == 0);
  auto c = f.cluster();
  CHECK(c.find(n0)->role == "slave");
  CHECK(c.find(n0)->balance == 1);
  const flare::NodeInfo* promoted = c.master_of(0);
  REQUIRE(promoted != nullptr);
  CHECK((promoted->key == n1 || promoted->key == n2)); // the index picks among equal balances
  // 0.7.3 ends with the table of the nodes it was given, and an empty line
  std::string after = kHeader + row(n0, "0", "slave", "active", "1");
  CHECK(r.out == kHeader + row(n0, "0", "master", "active", "1") + "\n" +
                     "turning down...\n"
                     "waiting for node to be active again...\n"
                     "started constructing node...\n"
                     "state is active -> stop waiting\n"
                     "done.\n" +
                     after + "\n");
  CHECK(f.items(0) == 6000);

  // every master and slave, one after the other
  auto all = run(with({"reconstruct", "--all", "--force"}, idx));
  CHECK(all.status == 0);
  CHECK(std::count(all.out.begin(), all.out.end(), 'd') > 0);
  size_t done = 0;
  for (size_t p = all.out.find("done.\n"); p != std::string::npos; p = all.out.find("done.\n", p + 1)) ++done;
  CHECK(done == 3);
  c = f.cluster();
  CHECK(c.master_of(0) != nullptr);
  CHECK(c.active_slave_count(0) == 2);

  // down a slave; it comes back as a proxy; make it a slave again
  auto d = run(with({"down", "--force", n2}, idx));
  CHECK(d.status == 0);
  CHECK(d.out == kHeader + row(n2, "-", "proxy", "down", "0") + "\n"); // 0.7.3's empty line after down's table
  for (int i = 0; i < 100 && f.cluster().find(n2)->state != "active"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // It came back holding its old items: flush_all would delete them, so it is refused unless
  // the operator says they may go (issue 32.2: a proxy with items may hold a partition's only copy).
  auto refused = run(with({"slave", "--force", n2 + ":1:0"}, idx));
  CHECK(refused.status == 1);
  CHECK(refused.err.find("refused: " + n2 + " is a proxy holding ") != std::string::npos);
  CHECK(refused.err.find("flare-admin slave -i " + f.index() + " --discard-items " + n2 + ":1:0") != std::string::npos);
  CHECK(f.cluster().find(n2)->role == "proxy");
  auto again = run(with({"slave", "--force", "--discard-items", n2 + ":1:0"}, idx));
  CHECK(again.status == 0);
  CHECK(again.out.find(row(n2, "0", "slave", "active", "1")) != std::string::npos);

  // a node whose flared was stopped is marked down by the index, then removed
  f.must("kill " + n3);
  for (int i = 0; i < 200 && f.cluster().find(n3)->state != "down"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto rm = run(with({"remove", "--force", n3}, idx));
  CHECK(rm.status == 0);
  CHECK(rm.out.rfind("removing " + n3 + ".\n\n" + kHeader, 0) == 0);
  CHECK(rm.out.substr(rm.out.size() - 2) == "\n\n"); // the whole table, then 0.7.3's empty line
  CHECK(f.cluster().find(n3) == nullptr);
}

TEST_CASE("refusals exit 1 and change nothing") {
  FakeCluster f(3);
  auto idx = f.index_args();
  master_and_slave(f);
  f.control("requests-clear");
  std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2);
  SUBCASE("master of a partition that has one, even with --force") {
    auto r = run(with({"master", "--force", n2 + ":1:0"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err == "the partition already has a master " + n0 + ".\n");
    CHECK(r.out == kHeader + row(n2, "-", "proxy", "active", "0"));
  }
  SUBCASE("master of a node that is not a proxy") {
    auto r = run(with({"master", "--force", n1 + ":1:1"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind(n1 + " is not a proxy.\n", 0) == 0);
  }
  SUBCASE("slave of a node that is not a proxy") {
    auto r = run(with({"slave", "--force", n0 + ":1:0"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind(n0 + " is not a proxy.\n", 0) == 0);
  }
  SUBCASE("a new partition that is not the next one") {
    auto r = run(with({"master", "--force", n2 + ":1:5"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind("partition 5 cannot be made now: the next new partition is 1.\n", 0) == 0);
  }
  SUBCASE("reconstruct that would leave the partition without redundancy") {
    auto r = run(with({"reconstruct", "--force", n0}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("The partition needs one more slave to reconstruct " + n0 + " safely.\n") != std::string::npos);
  }
  SUBCASE("reconstruct of a proxy") {
    auto r = run(with({"reconstruct", "--force", n2}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find(n2 + " is not reconstructable.\n") != std::string::npos);
  }
  SUBCASE("remove of a node that is not down") {
    auto r = run(with({"remove", "--force", n1}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind("node should role=proxy and state=down. (node=" + n1 + " role=slave state=active)\n", 0) == 0);
  }
  SUBCASE("unknown node") {
    for (auto& cmd : std::vector<std::vector<std::string>>{{"down", "127.0.0.1:1"},
                                                           {"activate", "127.0.0.1:1"},
                                                           {"balance", "127.0.0.1:1:2"},
                                                           {"master", "127.0.0.1:1:1:1"},
                                                           {"slave", "127.0.0.1:1:1:0"},
                                                           {"remove", "127.0.0.1:1"},
                                                           {"reconstruct", "127.0.0.1:1"}}) {
      CAPTURE(cmd[0]);
      auto r = run(with(with(cmd, {"--force"}), idx));
      CHECK(r.status == 1);
    }
  }
  SUBCASE("an argument of the wrong shape") {
    auto r = run(with({"master", "--force", n2 + ":1"}, idx));
    CHECK(r.status == 2);
    CHECK(r.err == "invalid argument '" + n2 + ":1'. it must be hostname:port:balance:partition. (see: flare-admin master --help)\n");
    auto b = run(with({"master", "--force", n2 + ":0:1"}, idx));
    CHECK(b.status == 2);
    CHECK(b.err == "invalid balance '" + n2 + ":0:1'. it must be more than 0. (see: flare-admin master --help)\n");
  }
  CHECK(f.state_changes().empty());
}

TEST_CASE("--dry-run sends no state change") {
  FakeCluster f(3);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.control("requests-clear");
  SUBCASE("slave") {
    auto r = run(with({"slave", "--dry-run", "--force", f.node(1) + ":2:0"}, idx));
    CHECK(r.status == 0);
    CHECK(r.out.find("dry run: would send 'flush_all' to " + f.node(1) + "\n") != std::string::npos);
    CHECK(r.out.find("dry run: would send 'node role 127.0.0.1 " + std::to_string(f.node_ports[1]) + " slave 0 0' to " +
                     f.index()) != std::string::npos);
    CHECK(r.out.find(" slave 2 0' to ") != std::string::npos);
  }
  SUBCASE("master, balance, down, activate, remove, reconstruct") {
    CHECK(run(with({"master", "-n", "--force", f.node(1) + ":1:1"}, idx)).status == 0);
    CHECK(run(with({"balance", "-n", "--force", f.node(0) + ":5"}, idx)).status == 0);
    CHECK(run(with({"down", "-n", "--force", "--unsafe", f.node(0)}, idx)).status == 0); // its only copy: --unsafe
    CHECK(run(with({"activate", "-n", "--force", f.node(0)}, idx)).status == 0);
  }
  CHECK(f.state_changes().empty());
  CHECK(f.cluster().find(f.node(1))->role == "proxy");
}

TEST_CASE("prompt answers" * doctest::test_suite("slow")) {
  FakeCluster f(3, {"--copy-rate", "100000"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 100 10");
  std::string n1 = f.node(1);

  SUBCASE("y builds the slave, then y gives it its balance") {
    auto r = run_tty(with({"slave", n1 + ":1:0"}, idx), {"y", "y"});
    CHECK(r.status == 0);
    CHECK(r.out.find("making node slave (node=" + n1 + ", role=proxy -> slave) (y/n): y\n") != std::string::npos);
    CHECK(r.out.find("changing node's balance (node=" + n1 + ", balance=0 -> 1) (y/n): y\n") != std::string::npos);
    CHECK(f.cluster().find(n1)->balance == 1);
  }
  SUBCASE("n leaves the node as it is, says so, and exits 1") {
    auto r = run_tty(with({"slave", n1 + ":1:0"}, idx), {"n"});
    CHECK(r.status == 1);
    CHECK(r.out.find("skipped: " + n1 + " left as it is (role=proxy, state=active, balance=0); to do it later: flare-admin slave -i " + f.index() + " " +
                     n1 + ":1:0") != std::string::npos);
    CHECK(r.out.find(row(n1, "-", "proxy", "active", "0")) != std::string::npos);
    CHECK(f.cluster().find(n1)->role == "proxy");
  }
  SUBCASE("end of input at the balance question leaves a built slave at balance 0, and says how to finish") {
    auto r = run_tty(with({"slave", n1 + ":1:0"}, idx), {"y"});
    CHECK(r.status == 1);
    CHECK(r.out.find("skipped: " + n1 + " is slave active with balance 0 (it serves no reads); to finish: flare-admin balance -i " + f.index() + " " +
                     n1 + ":1") != std::string::npos);
    auto cluster = f.cluster();
    auto n = cluster.find(n1);
    CHECK(n->role == "slave");
    CHECK(n->balance == 0);
  }
  SUBCASE("an answer piped into stdin is an answer, as scripts of 0.7.3 use it (echo y |)") {
    auto r = run(with({"down", "--unsafe", f.node(0)}, idx), "y\n"); // the partition's only copy: --unsafe
    CHECK(r.status == 0);
    CHECK(r.err == "--unsafe: " + f.node(0) + " is the only active copy of partition 0: the partition serves nothing while it is down.\n"
                   "turning node down (node=" + f.node(0) + ", state=active -> down) (y/n): \nwarning: partition 0 has no "
                   "active master now (" + f.node(0) + " is master down): its reads and writes fail.\n");
    // a master without slave stays master of its partition, down (flarei "preserves" it)
    CHECK(r.out == kHeader + row(f.node(0), "0", "master", "down", "1") + "\n");
    CHECK(f.cluster().find(f.node(0))->state == "down");
  }
  SUBCASE("a piped n, and a pipe that ends before the answer, are no") {
    for (const char* input : {"n\n", ""}) {
      CAPTURE(input);
      auto r = run(with({"down", "--unsafe", f.node(0)}, idx), input);
      CHECK(r.status == 1);
      CHECK(r.err.find("skipped: " + f.node(0) + " left as it is (role=master, state=active, balance=1); to do it later: "
                       "flare-admin down -i " + f.index() + " --unsafe " + f.node(0)) != std::string::npos);
      CHECK(f.cluster().find(f.node(0))->state == "active");
    }
  }
}

TEST_CASE("reconstruct prompt answers: a, q, h" * doctest::test_suite("slow")) {
  FakeCluster f(4, {"--copy-rate", "100000"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  for (int i = 1; i <= 3; ++i) f.must("set-node " + f.node(i) + " slave active 0 1");
  std::string n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);
  SUBCASE("h shows the help and asks again; q quits") {
    auto r = run_tty(with({"reconstruct", n1, n2}, idx), {"h", "q"});
    CHECK(r.status == 1);
    CHECK(r.out.find("reconstructing node (node=" + n1 + ", role=slave) (y/n/a/q/h:help): h\n"
                     "y: execute, n: skip, a: execute all the left nodes, q: quit, h: help\n"
                     "reconstructing node (node=" + n1 + ", role=slave) (y/n/a/q/h:help): q\n") != std::string::npos);
    CHECK(r.out.find("turning down...") == std::string::npos);
  }
  SUBCASE("a executes this node and all the left ones without asking again") {
    auto r = run_tty(with({"reconstruct", n1, n2}, idx), {"a"});
    CHECK(r.status == 0);
    size_t asked = 0;
    for (size_t p = r.out.find("(y/n/a/q/h:help)"); p != std::string::npos; p = r.out.find("(y/n/a/q/h:help)", p + 1)) ++asked;
    CHECK(asked == 1);
    size_t done = 0;
    for (size_t p = r.out.find("done.\n"); p != std::string::npos; p = r.out.find("done.\n", p + 1)) ++done;
    CHECK(done == 2);
  }
  SUBCASE("n skips a node, y does the next") {
    auto r = run_tty(with({"reconstruct", n1, n2}, idx), {"n", "y", "y"});
    CHECK(r.status == 1); // one node was skipped
    size_t done = 0;
    for (size_t p = r.out.find("done.\n"); p != std::string::npos; p = r.out.find("done.\n", p + 1)) ++done;
    CHECK(done == 1);
  }
  SUBCASE("end of input is no") {
    auto r = run_tty(with({"reconstruct", n3}, idx), {});
    CHECK(r.status == 1);
    CHECK(r.out.find("turning down...") == std::string::npos);
  }
}

TEST_CASE("a master set down is replaced by its slave") {
  FakeCluster f(2);
  master_and_slave(f);
  auto r = run(with({"down", "--force", f.node(0)}, f.index_args()));
  CHECK(r.status == 0);
  auto c = f.cluster();
  CHECK(c.find(f.node(1))->role == "master");
  CHECK(c.find(f.node(0))->role == "proxy");
  CHECK(c.find(f.node(0))->state == "down");
}

TEST_CASE("balance and activate") {
  FakeCluster f(3);
  auto idx = f.index_args();
  master_and_slave(f);
  auto b = run(with({"balance", "--force", f.node(1) + ":3"}, idx));
  CHECK(b.status == 0);
  CHECK(b.out == kHeader + row(f.node(1), "0", "slave", "active", "3"));
  auto same = run(with({"balance", "--force", f.node(1) + ":3"}, idx));
  CHECK(same.err.rfind("no need to change the balance of " + f.node(1) + ".\n", 0) == 0);
  auto a = run(with({"activate", "--force", f.node(0)}, idx));
  CHECK(a.err.rfind(f.node(0) + " is already active.\n", 0) == 0);
}

TEST_CASE("a new partition's master waits for ready, and --activate makes it active") {
  FakeCluster f(3, {"--copy-rate", "100000"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 1000 10");
  auto r = run(with({"master", "--force", "--activate", f.node(2) + ":1:1"}, idx));
  CHECK(r.status == 0);
  CHECK(r.out.find("state is ready -> stop waiting\n") != std::string::npos);
  CHECK(r.out.find(row(f.node(2), "1", "master", "active", "1")) != std::string::npos);
}

TEST_CASE("Ctrl-C while waiting stops, says where the node is and how to go on") {
  FakeCluster f(2, {"--copy-rate", "50"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 5000 10");
  auto r = run_tty(with({"slave", "--force", f.node(1) + ":1:0"}, idx), {}, "started constructing slave node...");
  CHECK(r.status == 130);
  CHECK(r.out.find("interrupted: " + f.node(1) + " is now slave prepare, balance 0, ") != std::string::npos);
  // Not `balance`: run while the node copies, flarei refuses it (seen on a real flare 1.3.4).
  CHECK(r.out.find("The node keeps copying from its master. To finish the job (it waits for the copy, then gives balance 1), "
                   "run: flare-admin slave -i " + f.index() + " " + f.node(1) + ":1:0") != std::string::npos);
}

TEST_CASE("a construction that makes no progress for --timeout seconds ends with a clear error" * doctest::test_suite("slow")) {
  FakeCluster f(2, {"--copy-rate", "1000"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 5000 10");
  f.must("stall 1");
  auto r = run(with({"slave", "--force", "--timeout", "2", f.node(1) + ":1:0"}, idx));
  CHECK(r.status == 1);
  CHECK(r.err.find("construction of " + f.node(1) + " made no progress for 2 s (role = slave, state = prepare, items = ") !=
        std::string::npos);
  CHECK(r.seconds < 20);
  f.must("stall 0");
}

TEST_CASE("on a terminal the progress line is redrawn in place" * doctest::test_suite("slow")) {
  FakeCluster f(2, {"--copy-rate", "2000"});
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 3000 10");
  auto r = run_tty(with({"slave", "--force", f.node(1) + ":1:0"}, f.index_args()), {});
  CHECK(r.status == 0);
  // A progress line redrawn in place: "\rN/3000 (role = slave, state = prepare)". N is whatever the
  // first poll saw (0 on a quiet machine; more when the copy started first under load).
  bool redrawn = false;
  for (size_t at = r.out.find("/3000 (role = slave, state = prepare)"); at != std::string::npos && !redrawn;
       at = r.out.find("/3000 (role = slave, state = prepare)", at + 1)) {
    size_t digits = at;
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(r.out[digits - 1]))) --digits;
    redrawn = digits < at && digits > 0 && r.out[digits - 1] == '\r';
  }
  CHECK(redrawn);
  CHECK(r.out.find("\x1b[K\r") != std::string::npos);
  CHECK(r.out.find("3000/3000 (role = slave, state = active) [ETA: 0 sec (elapsed = ") != std::string::npos);
}

TEST_CASE("a dry run never asks, shows every request it would send, and exits 0") {
  FakeCluster f(3);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.control("requests-clear");
  std::string n1 = f.node(1), port1 = std::to_string(f.node_ports[1]);
  SUBCASE("slave, with nothing on stdin") {
    auto r = run(with({"slave", "--dry-run", n1 + ":2:0"}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("(y/n)") == std::string::npos);
    CHECK(r.out.find("dry run: would send 'flush_all' to " + n1 + "\n") != std::string::npos);
    CHECK(r.out.find("dry run: would send 'node role 127.0.0.1 " + port1 + " slave 0 0' to " + f.index()) != std::string::npos);
    CHECK(r.out.find("dry run: would send 'node role 127.0.0.1 " + port1 + " slave 2 0' to " + f.index()) != std::string::npos);
    CHECK(r.out.find("executed flush_all") == std::string::npos);
    CHECK(f.cluster().find(n1)->role == "proxy");
  }
  SUBCASE("master") {
    auto r = run(with({"master", "-n", n1 + ":1:1"}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("(y/n)") == std::string::npos);
    CHECK(r.out.find("dry run: would send 'flush_all' to " + n1 + "\n") != std::string::npos);
    CHECK(r.out.find("executed flush_all") == std::string::npos);
  }
  SUBCASE("down and reconstruct") {
    auto d = run(with({"down", "-n", "--unsafe", f.node(0)}, idx)); // its only copy: --unsafe
    CHECK(d.status == 0);
    CHECK(d.out.find("dry run: would send 'node state 127.0.0.1 " + std::to_string(f.node_ports[0]) + " down'") !=
          std::string::npos);
    f.must("set-node " + f.node(1) + " slave active 0 1");
    f.must("set-node " + f.node(2) + " slave active 0 1");
    f.control("requests-clear");
    auto r = run(with({"reconstruct", "-n", f.node(1)}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("(y/n/a/q/h:help)") == std::string::npos);
    CHECK(r.out.find("dry run: would send 'node state 127.0.0.1 " + port1 + " down'") != std::string::npos);
  }
  SUBCASE("activate of nodes in prepare: the wait a real run does, not an activation at once") {
    f.must("stall 1"); // the copies stand still: both stay in prepare
    f.must("set-node " + n1 + " master prepare 1 1");
    f.must("set-node " + f.node(2) + " slave prepare 0 1");
    f.control("requests-clear");
    auto r = run(with({"activate", "-n", n1, f.node(2)}, idx));
    f.must("stall 0");
    INFO(r.out, r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("dry run: " + n1 + " is master prepare; would wait for it to be ready, then send 'node state 127.0.0.1 " +
                     port1 + " active' to " + f.index() + "\n") != std::string::npos);
    CHECK(r.out.find("dry run: " + f.node(2) + " is slave prepare: it becomes active by itself when its copy is done; would "
                     "wait for it to be active, and send nothing\n") != std::string::npos);
    CHECK(r.out.find("dry run: would send") == std::string::npos);
  }
  CHECK(f.state_changes().empty());
}

TEST_CASE("answers piped in drive reconstruct --all, as yes | flare-admin does" * doctest::test_suite("slow")) {
  FakeCluster f(4, {"--copy-rate", "100000"});
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  f.must("set-node " + f.node(2) + " slave active 0 1");
  f.must("fill " + f.node(0) + " 50 10");
  std::string yes;
  for (int i = 0; i < 20; ++i) yes += "y\n";
  auto r = run(with({"reconstruct", "--all"}, idx), yes);
  CHECK(r.status == 0);
  size_t done = 0;
  for (size_t p = r.out.find("done.\n"); p != std::string::npos; p = r.out.find("done.\n", p + 1)) ++done;
  CHECK(done == 3);
  // the closing table holds the nodes it was given (not the proxy), then an empty line
  CHECK(r.out.find(f.node(3)) == std::string::npos);
  CHECK(r.out.substr(r.out.size() - 2) == "\n\n");
}

TEST_CASE("a master that is down keeps its partition") {
  FakeCluster f(3);
  auto idx = f.index_args();
  std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2);
  // what the real index shows for a dead master without slave: master down, partition kept
  f.must("kill " + n0);
  f.must("set-node " + n0 + " master down 0 1");
  f.control("requests-clear");
  SUBCASE("master on its partition is refused, even with --force, naming the ways out") {
    auto r = run(with({"master", "--force", n1 + ":1:0"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind("partition 0 has a master that is down: " + n0 + " holds its only copy of the data. Start its "
                      "flared again (the index makes it active with its data), or, to give that data up, replace it "
                      "with: flare-admin master -i " + f.index() + " --unsafe " + n1 + ":1:0\n", 0) == 0);
    CHECK(f.state_changes().empty());
    CHECK(f.cluster().find(n1)->role == "proxy");
  }
  SUBCASE("--unsafe replaces it knowingly") {
    auto r = run(with({"master", "--force", "--unsafe", n1 + ":1:0"}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("replacing the down master " + n0 + " of partition 0: " + n1 + " starts empty") != std::string::npos);
    auto c = f.cluster();
    REQUIRE(c.master_of(0) != nullptr);
    CHECK(c.master_of(0)->key == n1);
  }
  SUBCASE("remove refuses the preserved master") {
    auto r = run(with({"remove", "--force", n0}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind("node is the down master of partition 0 and holds its only copy; the index keeps it. (node=" + n0 +
                      ")\n", 0) == 0);
    CHECK(f.state_changes().empty());
  }
  SUBCASE("after a takeover: the active master is the partition's master, the down one can be removed") {
    f.must("set-node " + n1 + " master active 0 1");
    f.must("fill " + n1 + " 20 10");
    auto s = run(with({"slave", "--force", n2 + ":1:0"}, idx));
    CHECK(s.status == 0);
    CHECK(f.cluster().find(n2)->role == "slave");
    CHECK(f.items(2) == 20);
    auto rm = run(with({"remove", "--force", n0}, idx));
    CHECK(rm.status == 0);
    CHECK(f.cluster().find(n0) == nullptr);
  }
}

TEST_CASE("smaller refusals: part with balance 0, balance of a proxy, --retry 0") {
  FakeCluster f(3);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.control("requests-clear");
  SUBCASE("part refuses a master of balance 0 before flushing anything") {
    auto r = run(with({"part", "--force", f.node(1) + ":0:1"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("invalid balance '" + f.node(1) + ":0:1'.") != std::string::npos);
  }
  SUBCASE("balance of a proxy") {
    auto r = run(with({"balance", "--force", f.node(1) + ":3"}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.rfind(f.node(1) + " is a proxy: a balance applies to masters and slaves only.\n", 0) == 0);
  }
  SUBCASE("--retry 0") {
    auto r = run(with({"slave", "--force", "--retry", "0", f.node(1) + ":1:0"}, idx));
    CHECK(r.status == 2);
    CHECK(r.err.rfind("invalid --retry '0'", 0) == 0);
  }
  CHECK(f.state_changes().empty());
}

TEST_CASE("a change that leaves a partition without redundancy says so, and a refused rebuild names --unsafe") {
  FakeCluster f(3);
  auto idx = f.index_args();
  master_and_slave(f);
  SUBCASE("down of the last active slave warns in the plan and in the run") {
    auto dry = run(with({"down", "-n", f.node(1)}, idx));
    CHECK(dry.status == 0);
    CHECK(dry.out.find("warning: " + f.node(1) + " is the last active slave of partition 0: set down, the partition has no "
                       "redundancy until a slave is built") != std::string::npos);
    auto r = run(with({"down", "--force", f.node(1)}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("is the last active slave of partition 0") != std::string::npos);
  }
  SUBCASE("a failover to the only slave says the partition has none left") {
    auto r = run(with({"down", "--force", f.node(0)}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("partition 0 has no active slave now: no redundancy until one is built") != std::string::npos);
  }
  SUBCASE("reconstruct of the only slave: refused, naming --unsafe and the slave to add first") {
    auto r = run(with({"reconstruct", "--force", f.node(1)}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("The partition needs one more slave to reconstruct " + f.node(1) + " safely.\n--unsafe rebuilds it anyway") !=
          std::string::npos);
  }
}
