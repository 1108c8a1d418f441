// Integration (issue 17, parts 4, 5 and 7): answers that looked right and were not. An index
// address that is really a data node; nodes that hold a newer map than the index and ignore its
// changes; a change reported done only when the nodes show it; ping with no argument; dump --all
// while a new partition's master is ready; activate of a dead node; verify with no active master;
// a slave whose copy failed because its master was busy. Each was seen on a real flare 1.3.4.
#include "harness.hpp"

#include <thread>

using harness::count_lines;
using harness::FakeCluster;
using harness::master_and_slave;
using harness::run;
using harness::with;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

size_t count_of(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}



} // namespace

TEST_CASE("cluster_truth: an index address that is a data node is named as such, by every command") {
  FakeCluster f(3);
  master_and_slave(f);
  std::vector<std::string> at_node = {"-i", f.node(1)};
  std::string out_file = f.dir() + "/flare.xml";
  const std::vector<std::vector<std::string>> commands = {
      {"list"}, {"list", "--json"}, {"stats"}, {"stats", "--json"}, {"summary"}, {"index"},
      {"index", "-o", out_file}, {"threads"}, {"down", "--force", f.node(2)}, {"balance", "--force", f.node(1) + ":2"},
      {"remove", "--force", f.node(2)}, {"dump", "--all"}, {"dumpkey", "--all"}, {"verify"},
  };
  for (const auto& cmd : commands) {
    auto r = run(with(cmd, at_node));
    INFO(cmd[0], " ", r.out, " / ", r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(count_lines(r.err) == 1);
    CHECK(has(r.err, f.node(1) + " is a data node (flared), not an index server (flarei)"));
  }
  CHECK(access(out_file.c_str(), F_OK) != 0); // no flare.xml written from a node's stale copy
  CHECK(f.state_changes().empty());
  auto p = run(with({"ping"}, at_node));
  CHECK(p.status == 1);
  CHECK(p.out == f.node(1) + " is not an index server\n");
}

TEST_CASE("cluster_truth: nodes holding a newer map than the index: read commands warn, changes refuse") {
  FakeCluster f(3);
  master_and_slave(f);
  auto idx = f.index_args();
  long long nodes_version = -1;
  {
    flare::NodeClient n(flare::Endpoint{"127.0.0.1", f.node_ports[0]}, 10000);
    nodes_version = n.stats().number("node_map_version").value_or(-1);
  }
  REQUIRE(nodes_version > 2);
  f.must("index-restart 2"); // flarei restarted from an older flare.xml
  std::string way_out = "flare-admin index --increment 1 -o flare.xml (it writes the map the nodes hold";

  auto l = run(with({"list"}, idx));
  CHECK(l.status == 0);
  CHECK(has(l.err, "warning: the nodes hold a newer node map than the index (index node_map_version 2;"));
  CHECK(has(l.err, way_out));
  auto lj = run(with({"list", "--json"}, idx));
  CHECK(has(lj.out, "\"node_map_version\":2,\"warnings\":[\"the nodes hold a newer node map"));

  auto s = run(with({"stats", "--json"}, idx));
  CHECK(s.status == 0);
  CHECK(count_of(s.out, "\"map_newer_than_index\":true") == 3);
  CHECK(has(s.err, "warning: the nodes hold a newer node map"));
  auto st = run(with({"stats"}, idx));
  CHECK(has(st.err, "warning: the nodes hold a newer node map"));

  auto sj = run(with({"summary", "--json"}, idx));
  CHECK(has(sj.out, "\"warnings\":[\"the nodes hold a newer node map"));
  CHECK(has(sj.err, "warning: the nodes hold a newer node map"));

  // Every change command refuses, sends nothing, and says how to get out.
  f.control("requests-clear");
  const std::vector<std::vector<std::string>> changes = {
      {"down", "--force", f.node(1)}, {"balance", "--force", f.node(1) + ":3"}, {"activate", "--force", f.node(2)},
      {"slave", "--force", f.node(2) + ":1:0"}, {"master", "--force", f.node(2) + ":1:1"},
      {"reconstruct", "--force", f.node(1)}, {"remove", "--force", f.node(2)}, {"down", "-n", f.node(1)},
  };
  for (const auto& cmd : changes) {
    auto r = run(with(cmd, idx));
    INFO(cmd[0], " ", r.out, " / ", r.err);
    CHECK(r.status == 1);
    CHECK(has(r.err, "refused: the nodes hold a newer node map than the index"));
    CHECK(has(r.err, way_out));
  }
  CHECK(f.state_changes().empty());

  // index: the map the nodes hold, one version above theirs with --increment 1 (below).
  auto ok = run(with({"index", "--increment", "1"}, idx));
  INFO(ok.err);
  CHECK(ok.status == 0);
  CHECK(has(ok.out, "<version>" + std::to_string(nodes_version + 1) + "</version>"));
  CHECK(has(ok.err, "which lists the same nodes the same way"));
}

// A real flare 1.3.4: flarei restarted from an old flare.xml whose map has node 3 as a proxy,
// while the nodes route by a newer one where it is partition 1's master. `index --increment N`
// once wrote the index's old map above the nodes' version: put back, the nodes took it, partition
// 1 was gone, its keys served from stale copies, and check said OK.
TEST_CASE("cluster_truth: index of an index restored from an old map writes the nodes' map, not its own") {
  FakeCluster f(3);
  master_and_slave(f);
  f.must("set-node " + f.node(2) + " master active 1 1");
  auto idx = f.index_args();
  long long nodes_version = -1;
  {
    flare::NodeClient n(flare::Endpoint{"127.0.0.1", f.node_ports[0]}, 10000);
    nodes_version = n.stats().number("node_map_version").value_or(-1);
  }
  f.must("index-restart 2");
  f.must("set-node " + f.node(2) + " proxy active -1 0"); // the old file's map: node 3 a proxy
  for (const char* increment : {"0", "1", "5"}) {
    CAPTURE(increment);
    auto r = run(with({"index", "--increment", increment}, idx));
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(has(r.out, "<version>" + std::to_string(nodes_version + std::stoll(increment)) + "</version>"));
    CHECK(has(r.out, "<node_server_port>" + std::to_string(f.node_ports[2]) + "</node_server_port>\n\t\t\t<node_role>0</node_role>\n"
                     "\t\t\t<node_state>0</node_state>\n\t\t\t<node_partition>1</node_partition>"));
    CHECK(has(r.err, "note: the nodes hold a newer node map than the index (index node_map_version 3, nodes " +
                         std::to_string(nodes_version) + "): the file holds the map they route by, read from "));
    CHECK(has(r.err, "(and the same on 2 more), not the index's, which differs:\n  " + f.node(2) +
                         ": the index's map: proxy active partition -1 balance 0 thread_type "));
    CHECK(has(r.err, "; the nodes': master active partition 1 balance 1 thread_type "));
  }
}

// The index's version is read before the nodes'; a change made while a slow node is asked (here
// the index's own, as its monitor or another admin makes them) once made every node look ahead of
// the index: a refusal, a false warning, a false CRITICAL in check.
TEST_CASE("cluster_truth: a map change made while the nodes are asked is not a node ahead of the index") {
  FakeCluster f(3);
  master_and_slave(f);
  auto idx = f.index_args();
  f.must("stats-delay " + f.node(2) + " 600");
  auto during = [&](const std::vector<std::string>& cmd) {
    std::thread change([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      f.must("set-node " + f.node(2) + " proxy active -1 0"); // a new map version, the same map
    });
    auto r = run(with(cmd, idx));
    change.join();
    return r;
  };
  auto l = during({"list"});
  INFO(l.err);
  CHECK(l.status == 0);
  CHECK(!has(l.err, "newer node map"));
  auto c = during({"check", "--ignore", "slave_same_host"});
  INFO(c.out);
  CHECK(c.status == 0);
  CHECK(!has(c.out, "map_newer_than_index"));
  auto b = during({"balance", "--force", f.node(1) + ":3"});
  INFO(b.err);
  CHECK(b.status == 0);
  CHECK(!has(b.err, "refused"));
  // index: the map written is the one of the version written (read again once it stood still).
  std::thread change([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    f.must("set-node " + f.node(1) + " slave active 0 7");
  });
  auto x = run(with({"index", "--increment", "1"}, idx));
  change.join();
  INFO(x.err);
  CHECK(x.status == 0);
  flare::IndexClient ic(flare::Endpoint{"127.0.0.1", f.index_port}, 10000);
  const long long now = ic.stats().number("node_map_version").value_or(-1);
  CHECK(has(x.out, "<version>" + std::to_string(now + 1) + "</version>"));
  CHECK(has(x.out, "<node_server_port>" + std::to_string(f.node_ports[1]) + "</node_server_port>\n\t\t\t<node_role>1</node_role>\n"
                   "\t\t\t<node_state>0</node_state>\n\t\t\t<node_partition>0</node_partition>\n\t\t\t<node_balance>7</node_balance>"));
}

TEST_CASE("cluster_truth: a change is done only when the nodes show the index's new map") {
  FakeCluster f(3);
  master_and_slave(f);
  auto idx = f.index_args();
  // 127.0.0.1:node(2) keeps an old map (its `stats` stays at node_map_version 3).
  f.must("override " + f.node(2) + " stats " + harness::hex(harness::node_stats_reply(0, 0, 5)));
  auto r = run(with({"balance", "--force", "--timeout", "1", f.node(1) + ":3"}, idx));
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "failed to change the balance of " + f.node(1) + ": the index answered OK"));
  CHECK(has(r.err, "these nodes still do not route by that map: " + f.node(2) + " (holds 3)"));
  f.must("override " + f.node(2) + " stats off");
  auto again = run(with({"balance", "--force", f.node(1) + ":4"}, idx));
  CHECK(again.status == 0);
}

TEST_CASE("cluster_truth: ping with no argument pings the index server") {
  FakeCluster f(1);
  auto idx = f.index_args();
  auto up = run(with({"ping"}, idx));
  CHECK(up.status == 0);
  CHECK(up.out == "alive\n");
  f.must("refuse index 1");
  auto down = run(with({"ping"}, idx));
  CHECK(down.status == 1);
  CHECK(down.out == f.index() + " is down\n");
}

TEST_CASE("cluster_truth: dump --all while a new partition's master is ready writes each key once") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 200 10");
  // The new partition's master has copied its share (the same keys) and is ready, not active.
  f.must("set-node " + f.node(1) + " master ready 1 1");
  f.must("fill " + f.node(1) + " 100 10");
  auto r = run(with({"dump", "--all"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(count_of(r.out, "VALUE ") == 200);
  CHECK(has(r.err, "partition 1 is skipped: its master " + f.node(1) + " is ready, not yet active"));
}

TEST_CASE("cluster_truth: activate of a node whose flared is dead says it is not answering") {
  FakeCluster f(3);
  master_and_slave(f);
  f.must("kill " + f.node(2));
  f.must("set-node " + f.node(2) + " proxy down -1 0");
  auto r = run(with({"activate", "--force", f.node(2)}, f.index_args()));
  CHECK(r.status == 1);
  CHECK(has(r.err, f.node(2) + " is not answering (is its flared running?): not activated."));
  for (const auto& c : f.state_changes()) CHECK(!has(c, "node state"));
}

TEST_CASE("cluster_truth: verify on a cluster with no active master gives one line and exit 1") {
  FakeCluster f(2);
  auto r = run(with({"verify"}, f.index_args()));
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "cannot verify: no partition has an active master (the cluster serves no data; see flare-admin list -i " + f.index() + ")\n");
}

TEST_CASE("cluster_truth: a slave whose copy failed on a busy master says so and names the master") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 2000 100");
  f.must("dump-rate " + f.node(0) + " 1"); // a dump that goes on while the slave is made
  flare::ServerClient dumper(flare::Endpoint{"127.0.0.1", f.node_ports[0]}, 10000);
  dumper.send_line("dump");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = run(with({"slave", "--force", f.node(1) + ":1:0"}, f.index_args()));
  CHECK(r.status == 1);
  CHECK(has(r.err, "construction of " + f.node(1) + " failed: the node fell back to proxy active because its copy from "
                   "the master " + f.node(0) + " failed"));
  CHECK(has(r.err, "flare-admin slave -i " + f.index() + " --discard-items " + f.node(1) + ":1:0")); // what its cut copy left is deleted
  dumper.close();
}

// Issue 32.2, seen on a real flare 1.3.4: flarei restarted on an empty data dir lists no node at
// node_map_version 0, while the nodes serve by the map they hold; `index -i NODE` was refused as a
// data node and the tool had no way to write flare.xml from the only copies of the map left.
TEST_CASE("cluster_truth: index --from-node writes the map a node routes by, asking no index") {
  FakeCluster f(3);
  master_and_slave(f);
  f.must("set-node " + f.node(2) + " master active 1 1");
  auto before = run(with({"index"}, f.index_args()));
  REQUIRE(before.status == 0);
  f.must("index-restart 1"); // the index's map no longer the cluster's; the nodes keep theirs
  f.must("set-node " + f.node(2) + " proxy active -1 0");
  SUBCASE("from a node: the map the cluster had, at its version, whatever the index holds") {
    auto r = run({"index", "--from-node", f.node(1), "-i", "127.0.0.1:1"}); // the index is not asked
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(r.out == before.out);
    CHECK(has(r.err, "note: the map of node_map_version "));
    CHECK(has(r.err, "start flarei with this file as its flare.xml, before any node is restarted or rebuilt"));
    auto file = run({"index", "--from-node", f.node(0), "-o", f.dir() + "/flare.xml"});
    CHECK(file.status == 0);
    CHECK(harness::slurp(f.dir() + "/flare.xml") == before.out);
  }
  SUBCASE("a data node given as the index names the way") {
    auto r = run({"index", "-i", f.node(1)});
    CHECK(r.status == 1);
    CHECK(has(r.err, "is a data node (flared), not an index server"));
    CHECK(has(r.err, "flare-admin index --from-node " + f.node(1)));
  }
  SUBCASE("a node that does not answer: exit 1, nothing written") {
    f.must("kill " + f.node(1));
    auto r = run({"index", "--from-node", f.node(1), "-o", f.dir() + "/never.xml"});
    CHECK(r.status == 1);
    CHECK_FALSE(harness::exists(f.dir() + "/never.xml"));
  }
}
