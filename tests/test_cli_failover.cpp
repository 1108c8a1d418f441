// Integration: before and around a failover (issue 17 part 3, issue 18 parts 3 and 4): the
// replication lag a master shows (`stats threads slave`), flare-stats' behind column, `down`
// and `reconstruct` of a master waiting for its slaves to drain, asking the slaves that would
// take over, reporting the new master, and Ctrl-C before a change is sent.
#include "harness.hpp"

#include <climits>
#include <signal.h>

using harness::FakeCluster;
using harness::run;

namespace {

// A real flare 1.3.4 master's replication threads (flared --proxy-concurrency 2) towards a
// slave stopped with SIGSTOP after 50,000 writes: two threads, each with its own queue.
const char* const kFailoverRealSlaveThreads =
    "STAT 22:type 16\r\nSTAT 22:peer 127.0.0.1:21121\r\nSTAT 22:op proxy_write\r\nSTAT 22:uptime 19\r\n"
    "STAT 22:state execute\r\nSTAT 22:info \r\nSTAT 22:queue 24942\r\nSTAT 22:behind 11\r\n"
    "STAT 23:type 16\r\nSTAT 23:peer 127.0.0.1:21121\r\nSTAT 23:op proxy_write\r\nSTAT 23:uptime 19\r\n"
    "STAT 23:state execute\r\nSTAT 23:info \r\nSTAT 23:queue 25056\r\nSTAT 23:behind 11\r\n";

std::vector<std::string> failover_lines(const std::string& raw) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t crlf; (crlf = raw.find("\r\n", start)) != std::string::npos; start = crlf + 2)
    out.push_back(raw.substr(start, crlf - start));
  return out;
}

flare::NodeInfo failover_node(const std::string& key, const std::string& role, int partition, int thread_type) {
  flare::NodeInfo n;
  n.key = key;
  n.host = key.substr(0, key.rfind(':'));
  n.port = std::stoi(key.substr(key.rfind(':') + 1));
  n.role = role;
  n.state = "active";
  n.partition = partition;
  n.thread_type = thread_type;
  return n;
}

} // namespace

TEST_CASE("a master's replication threads give each slave's lag: writes waiting summed, the oldest's age") {
  auto threads = flare::parse_stats_threads(failover_lines(kFailoverRealSlaveThreads));
  SUBCASE("the peer is the slave's own name in the map") {
    auto lags = flare::slave_lags(threads);
    REQUIRE(lags.size() == 1);
    CHECK(lags[0].slave == "127.0.0.1:21121");
    CHECK(lags[0].queue == 24942 + 25056);
    CHECK(lags[0].behind == 11);
    CHECK(lags[0].threads == 2);
    CHECK(lags[0].writing);
    CHECK(lags[0].pending() == 24942 + 25056 + 1);
  }
  SUBCASE("numbers no master would send add up without overflow") {
    auto huge = flare::parse_stats_threads(failover_lines(
        "STAT 1:type 16\r\nSTAT 1:peer h:1\r\nSTAT 1:queue 9223372036854775807\r\nSTAT 1:behind 0\r\n"
        "STAT 2:type 16\r\nSTAT 2:peer h:1\r\nSTAT 2:queue 9223372036854775807\r\nSTAT 2:behind 7\r\n"));
    auto lags = flare::slave_lags(huge);
    REQUIRE(lags.size() == 1);
    CHECK(lags[0].queue == LLONG_MAX);
    CHECK(lags[0].behind == 7);
  }
  SUBCASE("a figure that is not a count is an error, not a lag of 0") {
    for (const char* bad : {"STAT 1:queue 5000x\r\nSTAT 1:behind 0\r\n", "STAT 1:queue \r\nSTAT 1:behind 0\r\n",
                            "STAT 1:queue 9223372036854775808\r\nSTAT 1:behind 0\r\n",
                            "STAT 1:queue 3\r\nSTAT 1:behind -5\r\n", "STAT 1:queue abc\r\nSTAT 1:behind 0\r\n",
                            "STAT 1:behind 0\r\n"}) {
      INFO(bad);
      const auto lines = failover_lines(std::string("STAT 1:type 16\r\nSTAT 1:peer h:1\r\n") + bad);
      CHECK_THROWS_AS(flare::slave_lags(flare::parse_stats_threads(lines)), flare::ProtocolError);
    }
  }
  SUBCASE("a peer the map names otherwise is matched by the thread type (the node's thread_type)") {
    std::vector<flare::NodeInfo> nodes = {failover_node("db1.example:21121", "slave", 0, 16),
                                          failover_node("db2.example:21122", "master", 0, 18)};
    auto lags = flare::slave_lags(threads, nodes);
    REQUIRE(lags.size() == 1);
    CHECK(lags[0].slave == "db1.example:21121");
  }
}

TEST_CASE("the lag of every slave is asked from the masters at once, one request each") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  f.must("set-node " + f.node(2) + " slave active 0 0");
  f.must("lag " + f.node(1) + " 21572 5");
  flare::Cluster c = f.cluster();
  flare::Endpoint m{"127.0.0.1", f.node_ports[0]};
  auto lags = flare::gather_slave_lag({m, flare::Endpoint{"127.0.0.1", 1}}, 2000, c.nodes());
  REQUIRE(lags.size() == 2);
  REQUIRE(lags[0].ok);
  CHECK_FALSE(lags[1].ok);
  const flare::SlaveLag* l1 = lags[0].find(f.node(1));
  REQUIRE(l1 != nullptr);
  CHECK(l1->queue == 21572);
  CHECK(l1->behind >= 5);
  auto l2 = flare::lag_of(c, *c.find(f.node(2)), lags);
  REQUIRE(l2.has_value());
  CHECK(l2->pending() == 0);
  auto one = flare::ask_slave_lag(m, 2000, c.nodes());
  REQUIRE(one.size() == 2);
  auto it = std::find_if(one.begin(), one.end(), [&](const flare::SlaveLag& l) { return l.slave == f.node(1); });
  REQUIRE(it != one.end());
  CHECK(it->queue == 21572);
}

namespace {

// Node 0 master of partition 0, node 1 its slave (balance 1 each); node 2 a proxy.
void failover_pair(FakeCluster& f) {
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
}

// The fake index's `node state` requests received (state-changing requests of that kind).
std::vector<std::string> failover_state_requests(FakeCluster& f) {
  std::vector<std::string> out;
  for (const auto& r : f.state_changes())
    if (r.find("node state") != std::string::npos || r.find("node role") != std::string::npos ||
        r.find("node remove") != std::string::npos || r.find("flush_all") != std::string::npos)
      out.push_back(r);
  return out;
}

std::string failover_row_of(const std::string& table, const std::string& key) {
  size_t at = table.find(key + " ");
  if (at == std::string::npos) return "";
  return table.substr(at, table.find('\n', at) - at);
}

} // namespace

TEST_CASE("flare-stats' behind is each slave's lag as its master sees it, in the table, JSON and Prometheus") {
  FakeCluster f(3);
  failover_pair(f);
  f.must("lag " + f.node(1) + " 21572 5");
  auto idx = f.index_args();
  SUBCASE("table: seconds, then the writes waiting") {
    auto r = run(harness::with({"stats"}, idx));
    CHECK(r.status == 0);
    std::string row = failover_row_of(r.out, f.node(1));
    CHECK(row.find("s/21572 ") != std::string::npos);
    CHECK(failover_row_of(r.out, f.node(0)).find(" 0   -") != std::string::npos); // a master is behind nobody
  }
  SUBCASE("--json: behind in seconds and the queue") {
    auto r = run(harness::with({"stats", "--json", f.node(1)}, idx));
    CHECK(r.status == 0);
    CHECK(r.out.find("\"queue\":21572") != std::string::npos);
    CHECK(r.out.find("\"behind\":0,") == std::string::npos);
  }
  SUBCASE("--prometheus: the queue and its age per slave") {
    auto r = run(harness::with({"stats", "--prometheus"}, idx));
    CHECK(r.status == 0);
    CHECK(r.out.find("flare_slave_queue_items{") != std::string::npos);
    CHECK(r.out.find(",slave=\"" + f.node(1) + "\"} 2157") != std::string::npos);
    CHECK(r.out.find("flare_slave_behind_seconds{") != std::string::npos);
  }
  SUBCASE("a slave caught up shows 0") {
    f.must("lag " + f.node(1) + " 0 0");
    auto r = run(harness::with({"stats", f.node(1)}, idx));
    CHECK(failover_row_of(r.out, f.node(1)).find(" 0   -") != std::string::npos);
  }
  SUBCASE("a slave whose master does not answer shows -") {
    f.must("refuse " + f.node(0) + " 1");
    auto r = run(harness::with({"stats", f.node(1)}, idx));
    CHECK(r.status == 0);
    CHECK(failover_row_of(r.out, f.node(1)).find(" - ") != std::string::npos);
  }
}

TEST_CASE("down of a master shows its slaves' lag, waits for them to catch up, and refuses if they do not") {
  FakeCluster f(3);
  failover_pair(f);
  auto idx = f.index_args();
  const std::string down_req = "node state 127.0.0.1 " + std::to_string(f.node_ports[0]) + " down";
  SUBCASE("-n shows the lag and what a real run would do") {
    f.must("lag " + f.node(1) + " 21572 5");
    auto r = run(harness::with({"down", "-n", f.node(0)}, idx));
    CHECK(r.status == 0);
    CHECK(r.out.find("replication from " + f.node(0) + " to " + f.node(1) + ": 21572 writes waiting") != std::string::npos);
    CHECK(r.out.find("dry run: a real run would wait up to") != std::string::npos);
    // Who takes over is said before anything is sent (and reconstruct, a failover too, says it).
    CHECK(r.out.find("the index promotes " + f.node(1) + ", the active slave of the highest balance") != std::string::npos);
    auto rebuild = run(harness::with({"reconstruct", "-n", "--unsafe", f.node(0)}, idx));
    CHECK(rebuild.out.find("the index promotes " + f.node(1) + ", the active slave of the highest balance") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
  }
  SUBCASE("a slave that does not catch up: refused with the figures, nothing sent") {
    f.must("lag " + f.node(1) + " 21572 5");
    auto r = run(harness::with({"down", "--force", "--timeout", "1", f.node(0)}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: the slaves of " + f.node(0) + " did not catch up") != std::string::npos);
    CHECK(r.err.find(f.node(1) + ": 21572 writes waiting") != std::string::npos);
    CHECK(r.err.find("--unsafe") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
    CHECK(f.cluster().find(f.node(0))->role == "master");
  }
  SUBCASE("a slave the index would not promote counts too: it would never get those writes") {
    f.must("set-node " + f.node(2) + " slave active 0 0");
    f.must("lag " + f.node(2) + " 500 3");
    auto r = run(harness::with({"down", "--force", "--timeout", "1", f.node(0)}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find(f.node(2) + ": 500 writes waiting") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
  }
  SUBCASE("a slave that catches up: the failover goes on") {
    f.must("lag " + f.node(1) + " 300 1 1000");
    auto r = run(harness::with({"down", "--force", f.node(0)}, idx));
    CHECK(r.status == 0);
    CHECK(failover_state_requests(f).size() == 1);
    CHECK(f.cluster().find(f.node(1))->role == "master");
  }
  SUBCASE("--unsafe goes on, saying what is lost") {
    f.must("lag " + f.node(1) + " 21572 5");
    auto r = run(harness::with({"down", "--force", "--unsafe", "--timeout", "1", f.node(0)}, idx));
    CHECK(r.status == 0);
    CHECK(r.err.find("warning: --unsafe") != std::string::npos);
    CHECK(f.cluster().find(f.node(1))->role == "master");
  }
  SUBCASE("reconstruct of a master waits for the same") {
    f.must("set-node " + f.node(2) + " slave active 0 1");
    f.must("lag " + f.node(1) + " 21572 5");
    f.must("lag " + f.node(2) + " 21572 5");
    auto r = run(harness::with({"reconstruct", "--force", "--timeout", "1", f.node(0)}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: the slaves of " + f.node(0) + " did not catch up") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
  }
}

TEST_CASE("a failover onto a slave whose flared is dead is refused, naming the slave") {
  FakeCluster f(3);
  failover_pair(f);
  f.must("kill " + f.node(1)); // the index still lists it slave active for a while
  REQUIRE(f.cluster().find(f.node(1))->state == "active");
  SUBCASE("down") {
    auto r = run(harness::with({"down", "--force", f.node(0)}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: " + f.node(0) + " is the master of partition 0") != std::string::npos);
    CHECK(r.err.find(f.node(1)) != std::string::npos);
    CHECK(r.err.find("does not answer") != std::string::npos);
  }
  SUBCASE("reconstruct") {
    auto r = run(harness::with({"reconstruct", "--force", "--unsafe", f.node(0)}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err.find("does not answer") != std::string::npos);
  }
  CHECK(failover_state_requests(f).empty());
  CHECK(f.cluster().find(f.node(0))->role == "master");
}

TEST_CASE("down --force of a master reports the new master, and succeeds when the index answers late") {
  FakeCluster f(3);
  failover_pair(f);
  SUBCASE("the index answers at once") {
    auto r = run(harness::with({"down", "--force", f.node(0)}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.err.find("partition 0 failed over: its master is now " + f.node(1)) != std::string::npos);
  }
  SUBCASE("the index answers after the tool's timeout (it syncs the new master first)") {
    // As on a real cluster: by the time the tool gives up waiting, the old master, alive, is
    // back as a proxy (revive-ms 1000 < --timeout 2).
    f.must("sync-delay 5000");
    auto r = run(harness::with({"down", "--force", "--timeout", "2", f.node(0)}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.err.find("but made the change") != std::string::npos);
    CHECK(r.err.find("partition 0 failed over: its master is now " + f.node(1)) != std::string::npos);
  }
  CHECK(f.cluster().find(f.node(1))->role == "master");
}

TEST_CASE("Ctrl-C while the index is stalled cancels the change: nothing is sent afterwards, exit 130") {
  FakeCluster f(3);
  failover_pair(f);
  f.must("set-node " + f.node(2) + " proxy down -1 0");
  std::vector<std::string> args;
  SUBCASE("down") { args = {"down", "--force", f.node(0)}; }
  SUBCASE("remove") { args = {"remove", "--force", f.node(2)}; }
  SUBCASE("reconstruct") { args = {"reconstruct", "--force", "--unsafe", f.node(1)}; }
  SUBCASE("balance") { args = {"balance", "--force", f.node(1) + ":3"}; }
  args.insert(args.end(), {"--timeout", "8", "-i", f.index()});
  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    f.must("stall index 1");
    // The signal once the tool is seen waiting on the stalled index (it connected), not after a
    // guessed delay: on a busy machine the tool had not even set its handlers up.
    const long long before = f.connections("index");
    auto r = harness::interrupt_after(args, 0, sig, [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      f.must("stall index 0");
    }, [&] { return f.connections("index") > before; });
    CHECK(r.status == 128 + sig); // 130 Ctrl-C, 143 SIGTERM
    CHECK(r.err.find("interrupted: nothing was changed") != std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // what the index still had, handled
    CHECK(failover_state_requests(f).empty());
  }
}

TEST_CASE("a failover refused for a dead slave among two tells to set the dead one down, not the live one") {
  FakeCluster f(3);
  failover_pair(f);
  f.must("set-node " + f.node(2) + " slave active 0 1");
  f.must("kill " + f.node(2)); // the index still lists it slave active for a while
  REQUIRE(f.cluster().find(f.node(2))->state == "active");
  auto r = run(harness::with({"down", "--force", f.node(0)}, f.index_args()));
  CHECK(r.status == 1);
  CHECK(r.err.find("then set the dead one down (flare-admin down -i " + f.index() + " " + f.node(2) + ")") != std::string::npos);
  CHECK(r.err.find("give the partition a working slave first (flare-admin slave -i " + f.index() + " HOST:PORT:1:0 on a proxy)") != std::string::npos);
  CHECK(r.err.find("flare-admin down " + f.node(1)) == std::string::npos);
  CHECK(failover_state_requests(f).empty());
}

namespace {

// Runs flare-admin with a pipe on stdin; once its stderr shows a "(y/n): " prompt, runs
// `meanwhile` (the cluster changes while the operator reads the question), then answers.
harness::Result failover_answer_at_prompt(const std::vector<std::string>& args, const std::function<void()>& meanwhile,
                                          const std::string& answer) {
  int in[2], out[2], err[2];
  harness::ChildExec child(harness::admin_binary(), "flare-admin", args, harness::child_env({}));
  pid_t pid = harness::spawn_with_pipes(child, in, out, err);
  ::signal(SIGPIPE, SIG_IGN);
  harness::Result r;
  bool answered = false;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 200) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
    if (!answered && r.err.find("(y/n): ") != std::string::npos) {
      answered = true;
      meanwhile();
      std::string a = answer + "\n";
      ssize_t n = ::write(in[1], a.data(), a.size());
      (void)n;
      ::close(in[1]);
    }
  }
  if (!answered) ::close(in[1]);
  if (open_fds > 0) ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  for (auto& p : fds)
    if (p.fd >= 0) ::close(p.fd);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  CHECK(answered);
  return r;
}

} // namespace

TEST_CASE("down of a master asked at a prompt checks the slaves again after the answer, not only before the question") {
  FakeCluster f(3);
  failover_pair(f);
  SUBCASE("the slave that would take over died while the question was asked: refused, nothing sent") {
    auto r = failover_answer_at_prompt(harness::with({"down", f.node(0)}, f.index_args()),
                                       [&] { f.must("kill " + f.node(1)); }, "y");
    CHECK(r.status == 1);
    CHECK(r.err.find("does not answer") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
    CHECK(f.cluster().find(f.node(0))->role == "master");
  }
  SUBCASE("the slave fell behind while the question was asked: the wait and refusal apply") {
    auto r = failover_answer_at_prompt(harness::with({"down", "--timeout", "1", f.node(0)}, f.index_args()),
                                       [&] { f.must("lag " + f.node(1) + " 21572 5"); }, "y");
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: the slaves of " + f.node(0) + " did not catch up") != std::string::npos);
    CHECK(failover_state_requests(f).empty());
  }
  SUBCASE("nothing changed meanwhile: the failover goes on") {
    auto r = failover_answer_at_prompt(harness::with({"down", f.node(0)}, f.index_args()), [] {}, "y");
    CHECK(r.status == 0);
    CHECK(f.cluster().find(f.node(1))->role == "master");
  }
}

TEST_CASE("a --timeout under a second is shown as it is in down's plan and refusal, not as 0 s") {
  FakeCluster f(3);
  failover_pair(f);
  f.must("lag " + f.node(1) + " 40 3");
  auto idx = f.index_args();
  SUBCASE("-n") {
    auto r = run(harness::with({"down", "-n", "--timeout", "0.5", f.node(0)}, idx));
    CHECK(r.status == 0);
    CHECK(r.out.find("a real run would wait up to 0.5 s") != std::string::npos);
  }
  SUBCASE("the refusal") {
    auto r = run(harness::with({"down", "--force", "--timeout", "0.5", f.node(0)}, idx));
    CHECK(r.status == 1);
    CHECK(r.err.find("did not catch up within 0 s") == std::string::npos);
    CHECK(r.err.find("did not catch up within 0.") != std::string::npos);
  }
}

// Issue 32.2, seen on a real flare 1.3.4: `down --force` of a live master with no slave printed a
// warning, exited 0 and showed `master down`; 100 of 100 gets failed, and about a second later
// flarei made it `master active` again: an outage, nothing lasting.
TEST_CASE("down of a partition's only active copy, and balance 0 that leaves none to read, are refused without --unsafe") {
  FakeCluster f(3, {"--revive-ms", "600000"});
  f.must("set-node " + f.node(0) + " master active 0 1");
  SUBCASE("down of a master with no slave") {
    auto r = run(harness::with({"down", "--force", f.node(0)}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: " + f.node(0) + " is the master of partition 0 and it has no active slave to take over") == 0);
    CHECK(r.err.find("give the partition a slave first (flare-admin slave -i " + f.index() + " HOST:PORT:1:0 on a proxy)") != std::string::npos);
    CHECK(f.state_changes().empty());
    auto dry = run(harness::with({"down", "-n", f.node(0)}, f.index_args()));
    CHECK(dry.status == 1); // the dry run refuses as the real run does
    auto unsafe = run(harness::with({"down", "--force", "--unsafe", f.node(0)}, f.index_args()));
    CHECK(unsafe.status == 0);
    CHECK(f.cluster().find(f.node(0))->state == "down");
  }
  SUBCASE("balance 0 on the only node of balance above 0") {
    f.must("set-node " + f.node(1) + " slave active 0 0");
    auto r = run(harness::with({"balance", "--force", f.node(0) + ":0"}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: balance 0 on " + f.node(0) + " leaves partition 0 no active node of balance above 0 to read from.") == 0);
    CHECK(f.state_changes().empty());
    f.must("set-node " + f.node(1) + " slave active 0 1");
    CHECK(run(harness::with({"balance", "--force", f.node(0) + ":0"}, f.index_args())).status == 0); // its slave serves reads
  }
}

// Issue 32.4, seen on a real flare 1.3.4: `master --force --activate H:1:1` while partition 0's
// only master (its copy source) was killed flushed H, left it master prepare with nothing, and
// each run again said to restart H's flared, forever.
TEST_CASE("a new partition's master is refused, nothing sent, while a partition it copies from has no working master") {
  FakeCluster f(3, {"--dead-after-ms", "600000"});
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 20 10");
  SUBCASE("killed, still listed active") {
    f.must("kill " + f.node(0));
    auto r = run(harness::with({"master", "--force", "--activate", f.node(1) + ":1:1"}, f.index_args()));
    CAPTURE(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("refused: partition 1's master copies its keys from the master of every older partition, and partition "
                     "0's master " + f.node(0) + " does not answer") == 0);
    CHECK(f.state_changes().empty()); // no flush_all, no node role
    auto dry = run(harness::with({"master", "-n", f.node(1) + ":1:1"}, f.index_args()));
    CHECK(dry.status == 1);
  }
  SUBCASE("listed down") {
    f.must("set-node " + f.node(0) + " master down 0 1");
    auto r = run(harness::with({"master", "--force", f.node(1) + ":1:1"}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err.find("partition 0's master " + f.node(0) + " is down, not active") != std::string::npos);
    CHECK(f.state_changes().empty());
  }
}
