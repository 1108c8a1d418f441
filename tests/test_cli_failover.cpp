// Integration: before and around a failover (issue 17 part 3, issue 18 parts 3 and 4): the
// replication lag a master shows (`stats threads slave`), flare-stats' behind column, `down`
// and `reconstruct` of a master waiting for its slaves to drain, asking the slaves that would
// take over, reporting the new master, and Ctrl-C before a change is sent.
#include "harness.hpp"

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
