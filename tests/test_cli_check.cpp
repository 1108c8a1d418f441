// Integration (issue 20): `flare-admin check`, the cluster's health as a monitoring plugin
// tells it. Every finding has a case that makes the fake cluster unhealthy in that one way and
// sees exactly that finding and the plugin's exit status (0 OK, 1 WARNING, 2 CRITICAL,
// 3 UNKNOWN); then --json, the thresholds, flare-stats --prometheus's health figures, and the
// alert rules of contrib/prometheus read by a parser of our own.
#include "harness.hpp"
#include "prom_check.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <thread>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

struct CheckOutcome {
  int status = -1;
  std::string out, err, first;
  std::vector<std::string> codes; // the code of each finding line, in order
  std::vector<std::string> lines; // the finding lines
  std::string line(size_t i) const { return i < lines.size() ? lines[i] : std::string(); }
};

// Runs check against the fake; slave_same_host is ignored unless `same_host` (every fake node is
// on 127.0.0.1).
CheckOutcome check_run(FakeCluster& f, std::vector<std::string> extra = {}, bool same_host = false) {
  std::vector<std::string> args = {"check", "-i", f.index(), "--timeout", "2"};
  // An option is given once (issue 19): a case's own --ignore replaces this one.
  if (!same_host && std::find(extra.begin(), extra.end(), "--ignore") == extra.end())
    args.insert(args.end(), {"--ignore", "slave_same_host"});
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run(args);
  CheckOutcome o;
  o.status = r.status;
  o.out = r.out;
  o.err = r.err;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, o.first);
  while (std::getline(in, line)) {
    o.lines.push_back(line);
    std::istringstream words(line);
    std::string sev, code;
    words >> sev >> code;
    if (!code.empty() && code.back() == ':') code.pop_back(); // a finding of no partition or node
    o.codes.push_back(code);
  }
  return o;
}

bool check_has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The healthy fake: node 0 the master of partition 0, node 1 its slave, node 2 a proxy.
void check_healthy(FakeCluster& f) { harness::master_and_slave(f); }

// Waits (bounded) until the index lists `key` in `state`.
void check_wait_state(FakeCluster& f, const std::string& key, const std::string& state) {
  for (int i = 0; i < 1000; ++i) {
    const flare::NodeInfo* n = nullptr;
    flare::Cluster c = f.cluster();
    n = c.find(key);
    if (n && n->state == state) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("the index never listed " << key << " " << state);
}

// A node's real `stats` reply with one field changed, installed as that node's answer to
// every `stats ...` request (control override).
void check_override_stat(FakeCluster& f, size_t node, const std::string& field, const std::string& value) {
  auto reply = f.request(f.node_ports.at(node), "stats");
  std::string text;
  for (const auto& l : reply.lines) {
    std::string name = l.substr(5, l.find(' ', 5) - 5);
    text += name == field ? "STAT " + field + " " + value + "\r\n" : l + "\r\n";
  }
  text += "END\r\n";
  f.must("override " + f.node(node) + " stats " + harness::hex(text));
}

} // namespace

TEST_CASE("check: a healthy cluster is OK, exit 0, with its figures as performance data") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("fill " + f.node(0) + " 5 10");
  auto o = check_run(f);
  INFO(o.out, o.err);
  CHECK(o.status == 0);
  CHECK(o.codes.empty());
  CHECK(o.first ==
        "FLARE OK - 3 nodes, 1 partition, every partition has an active master and slave | nodes=3;;;0 partitions=1;;;0 "
        "lag_items=0;1000;100000;0 lag_seconds=0s;30;300;0 items=5;;;0");
  CHECK(o.err.empty());
  SUBCASE("--json: the same as one document") {
    auto r = run({"check", "-i", f.index(), "--ignore", "slave_same_host", "--json"});
    CHECK(r.status == 0);
    CHECK(r.out == "{\"status\":\"OK\",\"exit\":0,\"summary\":\"FLARE OK - 3 nodes, 1 partition, every partition has an "
                   "active master and slave\",\"perfdata\":{\"nodes\":3,\"partitions\":1,\"lag_items\":0,"
                   "\"lag_seconds\":0,\"items\":5,\"keys\":null},\"findings\":[]}\n");
  }
  SUBCASE("flare-check is check") {
    auto r = run({"-i", f.index(), "--ignore", "slave_same_host"}, "", {}, "flare-check");
    CHECK(r.status == 0);
    CHECK(r.out.rfind("FLARE OK - ", 0) == 0);
  }
}

TEST_CASE("check: the index server does not answer: CRITICAL index_down") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("refuse index 1");
  auto o = check_run(f);
  CHECK(o.status == 2);
  CHECK(o.codes == std::vector<std::string>{"index_down"});
  CHECK(o.first.rfind("FLARE CRITICAL - the index server " + f.index() + " does not answer: nothing can fail over | ", 0) == 0);
  // Nothing was read: the figures are unknown (U, as the plugins' guidelines say), not 0.
  CHECK(check_has(o.first, " | nodes=U;;;0 partitions=U;;;0 lag_items=U;1000;100000;0 lag_seconds=U;30;300;0 items=U;;;0"));
  auto j = run({"check", "-i", f.index(), "--json"});
  CHECK(check_has(j.out, "\"perfdata\":{\"nodes\":null,\"partitions\":null,\"lag_items\":null,\"lag_seconds\":null,"
                         "\"items\":null,\"keys\":null}"));
  CHECK(check_has(o.line(0), "; fix: start flarei on " + f.index() + " (its data dir holds the map"));
  // Seen on a real flare 1.3.4 (SIGSTOP): it accepts, then says nothing; starting it is not the fix.
  SUBCASE("stopped: it accepts but does not answer") {
    f.must("refuse index 0");
    f.must("stall index 1");
    auto s = run({"check", "-i", f.index(), "--timeout", "1"});
    f.must("stall index 0");
    INFO(s.out);
    CHECK(s.status == 2);
    CHECK(check_has(s.out, "\nCRITICAL index_down " + f.index() + ": the index server " + f.index() +
                               " does not answer: nothing can fail over (timed out"));
    CHECK(check_has(s.out, "; fix: flarei on " + f.index() + " accepts connections but does not answer in time: see "
                               "whether it is stopped (SIGCONT) or hung"));
  }
}

TEST_CASE("check: the index not read and its finding left out by --ignore: UNKNOWN, nothing was checked") {
  FakeCluster f(3);
  check_healthy(f);
  SUBCASE("index_down") {
    f.must("refuse index 1");
    auto r = run({"check", "-i", f.index(), "--ignore", "index_down"});
    CHECK(r.status == 3);
    CHECK(r.out.rfind("FLARE UNKNOWN - the index server was not read and --ignore left out why (index_down): nothing was "
                      "checked | ", 0) == 0);
  }
  SUBCASE("index_is_node") {
    auto r = run({"check", "-i", f.node(1), "--ignore", "index_is_node", "--json"});
    CHECK(r.status == 3);
    CHECK(check_has(r.out, "\"status\":\"UNKNOWN\",\"exit\":3,"));
  }
}

TEST_CASE("check: the index address is a data node: CRITICAL index_is_node") {
  FakeCluster f(3);
  check_healthy(f);
  auto r = run({"check", "-i", f.node(1)});
  CHECK(r.status == 2);
  CHECK(r.out.rfind("FLARE CRITICAL - " + f.node(1) + " is a data node, not the index server | ", 0) == 0);
  CHECK(check_has(r.out, "\nCRITICAL index_is_node " + f.node(1) + ": " + f.node(1) +
                             " is a data node, not the index server (it answers ERROR to `meta`, as a flared does); fix: "
                             "give flarei's address with -i/--index-server\n"));
}

TEST_CASE("check: a partition with no active master: CRITICAL no_active_master") {
  SUBCASE("its master is down while a slave is listed") {
    FakeCluster f(3, {"--revive-ms", "600000"});
    check_healthy(f);
    f.must("set-node " + f.node(0) + " master down 0 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"no_active_master"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0 has no active master | "));
    CHECK(check_has(o.line(0), "(master " + f.node(0) + " down)"));
  }
  SUBCASE("no node is its master (partition 1 has one)") {
    FakeCluster f(3);
    f.must("set-node " + f.node(0) + " master active 1 1");
    f.must("set-node " + f.node(1) + " slave active 1 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"no_active_master"});
    CHECK(check_has(o.line(0), "CRITICAL no_active_master partition 0: partition 0 has no active master (no master)"));
  }
}

TEST_CASE("check: a killed master with no slave: CRITICAL master_down_no_slave") {
  SUBCASE("the index has marked it down") {
    FakeCluster f(3, {"--dead-after-ms", "100", "--revive-ms", "600000"});
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("kill " + f.node(0));
    check_wait_state(f, f.node(0), "down");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_down_no_slave"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0 is offline: its master " + f.node(0) +
                                 " is down and it has no slave | "));
  }
  // Seen on a real flare 1.3.4: until flarei's monitor notices (monitor-threshold pings), a killed
  // or stopped master stays `master active` in the index; with no slave to fail over to, the
  // partition's only copy is offline from the first second, not a node merely not answering.
  SUBCASE("the index still lists it active: it does not answer") {
    FakeCluster f(3, {"--dead-after-ms", "600000"});
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("kill " + f.node(0));
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_down_no_slave"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0 is offline: its master " + f.node(0) +
                                 " does not answer and it has no active slave | "));
    CHECK(check_has(o.line(0), "(master active in the index, "));
    CHECK(check_has(o.line(0), "; 0 slaves); fix: see whether flared runs on " + f.node(0)));
    // The figure the alert rule FlareMasterDownNoSlave reads for this case.
    auto r = run({"stats", "-i", f.index(), "--prometheus"});
    auto ex = prom::parse_strict(r.out);
    CHECK(ex.value("flare_partition_master_up", {{"index", f.index()}, {"partition", "0"}, {"node", f.node(0)}}) == "0");
    f.must("start " + f.node(0));
    r = run({"stats", "-i", f.index(), "--prometheus"});
    CHECK(prom::parse_strict(r.out).value("flare_partition_master_up", {{"partition", "0"}}) == "1");
  }
  SUBCASE("stopped, its only slave down: still the only copy") {
    FakeCluster f(3, {"--dead-after-ms", "600000"});
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("set-node " + f.node(1) + " slave down 0 1");
    f.must("stall " + f.node(0) + " 1");
    auto o = check_run(f);
    INFO(o.out);
    f.must("stall " + f.node(0) + " 0");
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_down_no_slave", "node_down"});
    CHECK(check_has(o.line(0), "timed out"));
    CHECK(check_has(o.line(0), "; 1 slave, none active)"));
  }
  SUBCASE("not answering with an active slave: the index fails over, a warning") {
    FakeCluster f(3, {"--dead-after-ms", "600000"});
    check_healthy(f);
    f.must("kill " + f.node(0));
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"node_unreachable"});
  }
  // A slave that does not answer either is no copy to fail over to: every copy is offline.
  SUBCASE("neither it nor its active slave answers") {
    FakeCluster f(3, {"--dead-after-ms", "600000"});
    check_healthy(f);
    SUBCASE("both killed") {
      f.must("kill " + f.node(0));
      f.must("kill " + f.node(1));
    }
    SUBCASE("both stopped") {
      f.must("stall " + f.node(0) + " 1");
      f.must("stall " + f.node(1) + " 1");
    }
    auto o = check_run(f);
    auto r = run({"stats", "-i", f.index(), "--prometheus", "--timeout", "1"});
    f.must("stall " + f.node(0) + " 0");
    f.must("stall " + f.node(1) + " 0");
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_down_no_slave", "node_unreachable"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0 is offline: its master " + f.node(0) +
                                 " does not answer, nor do its active slaves; 1 warning | "));
    CHECK(check_has(o.line(0), "; 1 active slave, none answers); fix: see whether flared runs on " + f.node(0) + " and " +
                                   f.node(1) + " (flare-admin ping " + f.node(0) + " " + f.node(1)));
    CHECK(check_has(o.line(1), "WARNING node_unreachable partition 0 " + f.node(1) + ": "));
    // The figures the alert rule FlareMasterDownNoSlave reads for this case.
    auto ex = prom::parse_strict(r.out);
    CHECK(ex.value("flare_partition_master_up", {{"partition", "0"}}) == "0");
    CHECK(ex.value("flare_partition_active_slaves_up", {{"index", f.index()}, {"partition", "0"}}) == "0");
  }
  // Seen on a real flare 1.3.4 (master and slave SIGSTOPped): flarei's monitor sets the master
  // down and promotes the stopped slave, then blocks syncing it, which stays master active.
  SUBCASE("both stopped until the index fails over to the stopped slave") {
    FakeCluster f(3, {"--dead-after-ms", "300", "--revive-ms", "600000"});
    check_healthy(f);
    f.must("stall " + f.node(0) + " 1");
    // The master first, as the real monitor noticed it first (stopped together, each node's
    // monitor pings on its own schedule: either may be seen first).
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    f.must("stall " + f.node(1) + " 1");
    check_wait_state(f, f.node(0), "down");
    auto o = check_run(f);
    const flare::Cluster c = f.cluster();
    f.must("stall " + f.node(0) + " 0");
    f.must("stall " + f.node(1) + " 0");
    INFO(o.out);
    REQUIRE(c.find(f.node(1)));
    CHECK(c.find(f.node(1))->is_master());
    CHECK(c.find(f.node(1))->state == "active");
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_down_no_slave", "node_down"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0 is offline: its master " + f.node(1) +
                                 " does not answer and it has no active slave; 1 warning | "));
  }
}

TEST_CASE("check: a cluster with no partition serves nothing: CRITICAL no_partition") {
  SUBCASE("nodes, all proxies") {
    FakeCluster f(3);
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"no_partition"});
    CHECK(check_has(o.first, "FLARE CRITICAL - the cluster has no partition: it serves no data | nodes=3;;;0 partitions=0;;;0"));
    CHECK(check_has(o.line(0), "(3 nodes, no master); fix: if this cluster held data, the index may have lost its map: rebuild "
                               "no node; write flare.xml from a node's own map (flare-admin index --from-node HOST:PORT -o "
                               "flare.xml) and restart flarei with it. A new cluster: flare-admin master -i " + f.index() + " HOST:PORT:1:0 with one "
                               "of its proxy nodes (refused while it holds items)"));
    auto r = run({"stats", "-i", f.index(), "--prometheus"});
    CHECK(prom::parse_strict(r.out).value("flare_cluster_partitions", {{"index", f.index()}}) == "0");
  }
  // Seen on a real flare 1.3.4: after flarei lost its flare.xml, a restarted flared registers as
  // a proxy holding its data; `master` of it would flush it.
  SUBCASE("proxies holding items: the index has likely lost its map") {
    FakeCluster f(3);
    f.must("put " + f.node(1) + " kept x");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(check_has(o.line(0), "it serves no data; proxies hold items (" + f.node(1) +
                                   " 1 item): the index has likely lost its map (3 nodes, no master); fix: if this cluster "
                                   "held data, the index may have lost its map"));
  }
  SUBCASE("no node at all") {
    FakeCluster f(0);
    auto o = check_run(f, {"--json"});
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(check_has(o.out, "\"code\":\"no_partition\""));
    CHECK(check_has(o.out, "\"figure\":\"no node registered with the index\""));
  }
}

TEST_CASE("check: nodes hold a newer map than the index: CRITICAL map_newer_than_index") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("index-restart 1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 2);
  CHECK(o.codes == std::vector<std::string>{"map_newer_than_index"});
  CHECK(check_has(o.line(0), "fix: flare-admin index --increment "));
}

TEST_CASE("check --keys: a key listing that cannot be framed: CRITICAL keys_unframed") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("fill " + f.node(0) + " 3 4");
  f.must("put-hex " + f.node(0) + " " + harness::hex("bad\r\nEND") + " " + harness::hex("v"));
  auto o = check_run(f, {"--keys"});
  INFO(o.out, o.err);
  CHECK(o.status == 2);
  CHECK(o.codes == std::vector<std::string>{"keys_unframed"});
  CHECK(check_has(o.line(0), "CRITICAL keys_unframed partition 0 " + f.node(0) + ": "));
  SUBCASE("without --keys no key is listed") {
    auto plain = check_run(f);
    CHECK(plain.status == 0);
  }
}

TEST_CASE("check: a partition without an active slave: WARNING no_active_slave") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"no_active_slave"});
  CHECK(check_has(o.first, "FLARE WARNING - partition 0 has no active slave: no redundancy | "));
}

TEST_CASE("check: a slave behind its master: slave_lag, WARNING or CRITICAL by the thresholds") {
  FakeCluster f(3);
  check_healthy(f);
  SUBCASE("more items than --lag-warning: WARNING") {
    f.must("lag " + f.node(1) + " 5000 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"slave_lag"});
    CHECK(check_has(o.line(0), "WARNING slave_lag partition 0 " + f.node(1) + ": slave " + f.node(1) + " is 5001 items"));
    CHECK(check_has(o.first, " lag_items=5001;1000;100000;0 ")); // 5000 queued and the one being sent
    SUBCASE("a higher --lag-warning: OK") {
      auto ok = check_run(f, {"--lag-warning", "10000"});
      CHECK(ok.status == 0);
    }
  }
  SUBCASE("more items than --lag-critical: CRITICAL") {
    f.must("lag " + f.node(1) + " 200000 1");
    auto o = check_run(f);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"slave_lag"});
    CHECK(o.line(0).rfind("CRITICAL slave_lag ", 0) == 0);
  }
  SUBCASE("more seconds than --lag-critical-seconds: CRITICAL") {
    f.must("lag " + f.node(1) + " 10 400");
    auto o = check_run(f);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"slave_lag"});
  }
}

TEST_CASE("check: a master that does not tell its replication threads: WARNING lag_unknown") {
  FakeCluster f(3);
  check_healthy(f);
  // Its answer to every `stats ...` is its plain stats: `stats threads slave` cannot be read.
  check_override_stat(f, 0, "pid", "1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"lag_unknown"});
}

TEST_CASE("check: a figure that is not a count is not read as 0: lag_unknown, node_unreachable") {
  FakeCluster f(3);
  check_healthy(f);
  SUBCASE("a replication thread's queue") {
    // The master's real `stats threads slave` with its queue made unreadable.
    auto threads = f.request(f.node_ports.at(0), "stats threads slave");
    std::string text;
    for (const auto& l : threads.lines) {
      const bool queue = l.find(":queue ") != std::string::npos;
      text += (queue ? l.substr(0, l.find(":queue ")) + ":queue 5000x" : l) + "\r\n";
    }
    REQUIRE(check_has(text, ":queue 5000x"));
    std::string plain; // its own `stats`, still answered as it is
    for (const auto& l : f.request(f.node_ports.at(0), "stats").lines) plain += l + "\r\n";
    f.must("override " + f.node(0) + " stats " + harness::hex(text + "END\r\n"));
    f.must("override " + f.node(0) + " +stats " + harness::hex(plain + "END\r\n"));
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"lag_unknown"});
    CHECK(check_has(o.line(0), "'s queue is '5000x', not a count"));
  }
  SUBCASE("a node's curr_items") {
    check_override_stat(f, 1, "curr_items", "12abc");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"node_unreachable"});
    CHECK(check_has(o.line(0), f.node(1) + " (slave active) answers stats that cannot be read (its stats give curr_items "
                                           "'12abc', not a count)"));
  }
}

TEST_CASE("check, stats, list, summary: Ctrl-C while nodes are silent ends at once, exit 130, no verdict") {
  FakeCluster f(3, {"--dead-after-ms", "600000"});
  check_healthy(f);
  f.must("stall " + f.node(1) + " 1");
  // Ctrl-C once the tool has asked node 2 (a proxy that answers): it is then in the gather, its
  // handler long installed (a fixed delay could come first under a sanitizer's slow start).
  auto asked_node2 = [&f] {
    return [&f, calls = 0LL, base = -1LL]() mutable {
      auto n = flare::parse_stats(f.request(f.node_ports.at(2), "stats").lines).number("total_connections").value_or(0);
      if (base < 0) base = n; // each call of ours adds a connection too
      return n > base + calls++;
    };
  };
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"check"}, {"stats"}, {"stats", "--prometheus"}, {"list"}, {"summary"}}) {
    INFO(cmd[0] << (cmd.size() > 1 ? " " + cmd[1] : ""));
    auto args = with(cmd, {"-i", f.index(), "--timeout", "20"});
    auto r = harness::interrupt_after(args, 0, SIGINT, nullptr, asked_node2());
    CHECK(r.status == 130);
    CHECK(r.seconds_after_signal < 15); // against the 20 s --timeout it must not wait out
    CHECK(r.err == (cmd == std::vector<std::string>{"stats"} ? "INTERRUPTED\n" : "interrupted\n")); // stats: 0.7.3's word
  }
  SUBCASE("the index stopped") {
    f.must("stall " + f.node(1) + " 0");
    f.must("stall index 1");
    // Once the tool has connected to the stopped index (it accepts, as a SIGSTOPped one's kernel does).
    const long long before = f.connections("index");
    auto r = harness::interrupt_after({"check", "-i", f.index(), "--timeout", "20"}, 0, SIGINT, nullptr,
                                      [&] { return f.connections("index") > before; });
    f.must("stall index 0");
    CHECK(r.status == 130);
    CHECK(r.seconds_after_signal < 15); // against the 20 s --timeout it must not wait out
  }
  f.must("stall " + f.node(1) + " 0");
}

TEST_CASE("check --debug shows every node's requests and replies, not only the index's") {
  FakeCluster f(3);
  check_healthy(f);
  auto r = run({"check", "-i", f.index(), "--debug"});
  CHECK(r.status == 1); // slave_same_host
  CHECK(check_has(r.err, "--> " + f.index() + " stats nodes\n"));
  CHECK(check_has(r.err, "--> " + f.node(0) + " stats\n"));
  CHECK(check_has(r.err, "--> " + f.node(0) + " stats threads slave\n"));
  CHECK(check_has(r.err, "--> " + f.node(2) + " stats\n"));
  CHECK(check_has(r.err, "<-- " + f.node(1) + " STAT curr_items "));
  CHECK(check_has(r.err, "<-- " + f.node(1) + " END\n"));
}

TEST_CASE("check: a node down or not answering: WARNING node_down / node_unreachable") {
  SUBCASE("a killed proxy the index has marked down") {
    FakeCluster f(3, {"--dead-after-ms", "100", "--revive-ms", "600000"});
    check_healthy(f);
    f.must("kill " + f.node(2));
    check_wait_state(f, f.node(2), "down");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"node_down"});
    CHECK(check_has(o.first, "FLARE WARNING - " + f.node(2) + " is down | "));
  }
  SUBCASE("a slave stopped longer than the index's monitor waits: down, as on a real flare") {
    // Seen on a real flare 1.3.4: a SIGSTOPped slave is set down by flarei's monitor (its pings
    // time out), and check then reports it down and the partition without an active slave.
    FakeCluster f(3, {"--dead-after-ms", "200", "--revive-ms", "600000"});
    check_healthy(f);
    f.must("stall " + f.node(1) + " 1");
    check_wait_state(f, f.node(1), "down");
    auto o = check_run(f);
    INFO(o.out);
    f.must("stall " + f.node(1) + " 0");
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"node_down", "no_active_slave"});
    SUBCASE("then continued (SIGCONT): its flared answers, the fix is a role, not a restart") {
      auto c = check_run(f);
      INFO(c.out);
      CHECK(c.codes == std::vector<std::string>{"node_down", "no_active_slave"});
      // A real flarei lists a slave it set down as `proxy down` (its partition -1).
      CHECK(check_has(c.line(0), "(proxy down; its flared answers: the index brings it back as a proxy); "
                                 "fix: no restart needed: once the index lists it as a proxy (its monitor's next pings), "
                                 "give it a role again (flare-admin slave -i " + f.index() + " " + f.node(1) + ":1:PARTITION; it copies its data anew)"));
      CHECK(!check_has(c.out, "restart flared on " + f.node(1)));
    }
  }
  SUBCASE("a stopped node the index still lists active costs one --timeout") {
    FakeCluster f(3);
    check_healthy(f);
    f.must("stall " + f.node(2) + " 1");
    auto o = check_run(f);
    INFO(o.out);
    f.must("stall " + f.node(2) + " 0");
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"node_unreachable"});
    CHECK(check_has(o.line(0), "timed out"));
  }
}

TEST_CASE("check: a node holding an older map than the index: WARNING map_differs") {
  FakeCluster f(3);
  check_healthy(f);
  check_override_stat(f, 2, "node_map_version", "1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"map_differs"});
  CHECK(check_has(o.line(0), f.node(2) + " holds an older node map than the index (node_map_version 1, index "));
}

TEST_CASE("check: a new partition's master in ready or prepare: WARNING master_not_serving") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("set-node " + f.node(2) + " master ready 1 1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
  CHECK(check_has(o.line(0), "fix: flare-admin activate -i " + f.index() + " " + f.node(2)));
}

TEST_CASE("check: a new cluster's first master not yet active serves nothing: CRITICAL master_not_serving") {
  FakeCluster f(3, {"--copy-rate", "1"});
  SUBCASE("ready, waiting for activate") {
    f.must("set-node " + f.node(0) + " master ready 0 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    CHECK(check_has(o.first, "FLARE CRITICAL - partition 0's master " + f.node(0) +
                                 " is ready and no partition has an active master: the cluster serves no data | "));
    CHECK(check_has(o.line(0), "fix: flare-admin activate -i " + f.index() + " " + f.node(0)));
  }
  SUBCASE("in prepare: not OK as a partition building beside serving ones is") {
    f.must("set-node " + f.node(0) + " master prepare 0 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 2);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    // (With nothing to copy the fake's master may already be ready: critical either way.)
    CHECK((check_has(o.first, " is in prepare and no partition has an active master: the cluster serves no data | ") ||
           check_has(o.first, " is ready and no partition has an active master: the cluster serves no data | ")));
  }
}

// As on a real flare 1.3.4 (a master of partition 1 copying 15 MB from partition 0's master at
// reconstruction-bwlimit 1024): its `stats threads` shows a type 3 thread, op dump, peer the
// source, whose uptime is how long the copy has run; a ready master shows none.
TEST_CASE("check: a new partition's master copying is OK until --prepare-seconds, stuck without a copy is WARNING") {
  FakeCluster f(3, {"--copy-rate", "50"});
  check_healthy(f);
  f.must("fill " + f.node(0) + " 5000 10");
  REQUIRE(f.request(f.index_port, "node role 127.0.0.1 " + std::to_string(f.node_ports[2]) + " master 1 1").status == "OK");
  check_wait_state(f, f.node(2), "prepare");

  SUBCASE("copying for less than the bound: OK, named in the summary") {
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 0);
    CHECK(o.codes == std::vector<std::string>{"master_building"});
    CHECK(check_has(o.first, "FLARE OK - partition 1's master " + f.node(2) + " is copying its data"));
    CHECK(check_has(o.line(0), "(prepare for "));
    CHECK(check_has(o.line(0), " s of 1800 s)"));
  }
  SUBCASE("with master_building ignored, the summary claims nothing about the partitions") {
    auto o = check_run(f, {"--ignore", "slave_same_host,master_building"});
    INFO(o.out);
    CHECK(o.status == 0);
    CHECK(o.codes.empty());
    CHECK(check_has(o.first, "FLARE OK - 3 nodes, 2 partitions, nothing found but what --ignore left out (master_building) |"));
  }
  SUBCASE("copying for longer than --prepare-seconds: WARNING, with the way out") {
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    auto o = check_run(f, {"--prepare-seconds", "1"});
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    CHECK(check_has(o.line(0), f.node(2) + " has been copying for "));
    CHECK(check_has(o.line(0), "then flare-admin master -i " + f.index() + " " + f.node(2) + ":1:1 --activate"));
  }
  SUBCASE("in prepare with no copy running: WARNING at once") {
    f.must("stall 1");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    CHECK(check_has(o.line(0), "is in prepare with no copy running"));
    CHECK(check_has(o.line(0), "fix: restart the flared of " + f.node(2) + ", then flare-admin master -i " + f.index() + " " + f.node(2) + ":1:1 --activate"));
    f.must("stall 0");
  }
  SUBCASE("a copy that ends while check asks is shown as it ends (ready), not as stuck") {
    // The node answers its `stats` (and so the `stats threads` behind it) after the copy is over.
    f.must("stats-delay " + f.node(2) + " 1200");
    std::thread finish([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      f.must("set-node " + f.node(2) + " master ready 1 1");
    });
    auto o = check_run(f);
    finish.join();
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    CHECK(check_has(o.line(0), "is ready: the partition does not serve yet"));
    CHECK(check_has(o.line(0), "fix: flare-admin activate -i " + f.index() + " " + f.node(2)));
  }
  SUBCASE("copying from a source that stopped and was failed over: WARNING, the copy does not move") {
    // A real flare 1.3.4: the source SIGSTOPped, flarei fails its partition over; the new
    // master's reconstruction thread still reads the old source, blocked.
    for (int i = 0; i < 500 && f.items(2) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(f.items(2) > 0); // its copy from node 0 has begun
    f.must("stall " + f.node(0) + " 1");
    f.must("set-node " + f.node(0) + " proxy down -1 0");
    f.must("set-node " + f.node(1) + " master active 0 1");
    // (The fake's monitor would do the same after --dead-after-ms: a stopped node does not answer it.)
    auto o = check_run(f, {"--ignore", "slave_same_host,no_active_slave,node_down"});
    INFO(o.out);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"master_not_serving"});
    CHECK(check_has(o.line(0), "partition 1's master " + f.node(2) + " is copying from " + f.node(0) + " (now proxy "));
    CHECK(check_has(o.line(0), "): its copy does not move"));
    CHECK(check_has(o.line(0), "fix: start the flared of " + f.node(0) + " again"));
    f.must("stall " + f.node(0) + " 0");
  }
  SUBCASE("a source killed: the new master falls back to proxy, as a real flared does") {
    f.must("kill " + f.node(0));
    check_wait_state(f, f.node(2), "active");
    CHECK(f.cluster().find(f.node(2))->role == "proxy");
  }
  SUBCASE("a warning elsewhere comes first in the summary, the OK finding after it") {
    f.must("kill " + f.node(1));
    check_wait_state(f, f.node(1), "down");
    auto o = check_run(f);
    INFO(o.out);
    CHECK(o.status == 1);
    REQUIRE(o.codes.size() >= 2);
    CHECK(o.codes.back() == "master_building");
    CHECK(!check_has(o.first, "is copying its data"));
  }
}

TEST_CASE("check: every slave of a partition at balance 0: WARNING slaves_balance_zero") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 0");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"slaves_balance_zero"});
  CHECK(check_has(o.line(0), "fix: flare-admin balance -i " + f.index() + " " + f.node(1) + ":1"));
}

TEST_CASE("check: a slave on its master's host: WARNING slave_same_host (unless ignored)") {
  FakeCluster f(3);
  check_healthy(f);
  auto o = check_run(f, {}, true);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"slave_same_host"});
}

TEST_CASE("check: servers on different flare versions: WARNING versions_differ") {
  FakeCluster f(3);
  check_healthy(f);
  check_override_stat(f, 2, "version", "1.3.3");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"versions_differ"});
  CHECK(check_has(o.line(0), "1.3.3 on 1 server (" + f.node(2) + ")"));
}

TEST_CASE("check: a slave whose items differ from its master's with nothing queued: WARNING items_differ") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("put " + f.node(0) + " only-on-master v");
  CHECK(check_run(f).status == 0); // 1 item apart: within the default 1000
  auto o = check_run(f, {"--items-difference", "0"});
  INFO(o.out);
  CHECK(o.status == 1);
  CHECK(o.codes == std::vector<std::string>{"items_differ"});
  SUBCASE("a queue towards the slave explains the difference: no finding") {
    f.must("lag " + f.node(1) + " 1 0");
    CHECK(check_run(f, {"--items-difference", "0"}).status == 0);
  }
}

TEST_CASE("check --keys: a key only on another partition: WARNING keys_misplaced; a stale copy: none; a busy node: keys_unreadable") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("set-node " + f.node(2) + " master active 1 1");
  flare::ModularResolver resolver;
  std::string key;
  for (int i = 0; key.empty(); ++i)
    if (resolver.partition_of(flare::key_hash("k" + std::to_string(i), flare::KeyHashAlgorithm::simple), 2) == 0)
      key = "k" + std::to_string(i);
  SUBCASE("misplaced, and its partition's master does not hold it: lost to readers") {
    f.must("put " + f.node(2) + " " + key + " v");
    auto o = check_run(f, {"--keys", "--ignore", "slave_same_host,no_active_slave"});
    INFO(o.out, o.err);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"keys_misplaced"});
    CHECK(check_has(o.line(0), "1 only here, 0 not looked up, 0 stale copies, of 1 keys, e.g. " + key +
                                   " belongs to partition 0 (only here: its master does not hold it)"));
    CHECK(check_has(o.out, "if that master lost its data, do not rebuild or flush " + f.node(2)));
  }
  SUBCASE("a stale copy (its partition's master holds it too): normal after a partition is added") {
    f.must("put " + f.node(2) + " " + key + " v");
    f.must("put " + f.node(0) + " " + key + " v");
    auto o = check_run(f, {"--keys", "--ignore", "slave_same_host,no_active_slave"});
    INFO(o.out, o.err);
    CHECK(o.codes.empty());
  }
  SUBCASE("unreadable") {
    f.must("override " + f.node(2) + " dump_key " + harness::hex("SERVER_ERROR database busy\r\n"));
    auto o = check_run(f, {"--keys", "--ignore", "slave_same_host,no_active_slave"});
    INFO(o.out, o.err);
    CHECK(o.status == 1);
    CHECK(o.codes == std::vector<std::string>{"keys_unreadable"});
  }
}

TEST_CASE("check --keys on a terminal redraws one progress line while the nodes list their keys; elsewhere none") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("fill " + f.node(0) + " 200 4");
  auto t = harness::run_tty({"check", "-i", f.index(), "--keys", "--ignore", "slave_same_host"}, {});
  INFO(t.out);
  CHECK(t.status == 0);
  CHECK(t.out.find("\rchecking keys: " + f.node(0) + " 200 done, " + f.node(1) + " 200 done; 400 keys\x1b[K") !=
        std::string::npos);
  CHECK(t.out.find("FLARE OK - ") != std::string::npos);
  auto plain = check_run(f, {"--keys"});
  CHECK(plain.status == 0);
  CHECK(plain.err.empty());
  // How many keys it looked at: a nightly job's log says that the listing ran, not only OK.
  CHECK(check_has(plain.first, "every partition has an active master and slave, 400 keys listed, each in its partition | "));
  CHECK(check_has(plain.first, " items=200;;;0 keys=400;;;0"));
  auto j = run({"check", "-i", f.index(), "--keys", "--json", "--ignore", "slave_same_host"});
  CHECK(check_has(j.out, "\"items\":200,\"keys\":400}"));
}

TEST_CASE("check: several findings: the worst first, the summary counts the rest") {
  FakeCluster f(3, {"--revive-ms", "600000"});
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " master down 1 1");
  f.must("set-node " + f.node(2) + " slave active 1 1");
  auto o = check_run(f);
  INFO(o.out);
  CHECK(o.status == 2);
  CHECK(o.codes == std::vector<std::string>{"no_active_master", "no_active_slave"});
  CHECK(check_has(o.first, "FLARE CRITICAL - partition 1 has no active master; 1 warning | "));
  auto j = run({"check", "-i", f.index(), "--ignore", "slave_same_host", "--json"});
  CHECK(j.status == 2);
  CHECK(check_has(j.out, "\"findings\":[{\"severity\":\"critical\",\"code\":\"no_active_master\",\"partition\":1,\"node\":\"" +
                             f.node(1) + "\""));
  auto ignored = check_run(f, {"--ignore", "no_active_master,no_active_slave"});
  CHECK(ignored.status == 0);
}

TEST_CASE("check: what it cannot tell is UNKNOWN, exit 3") {
  FakeCluster f(1);
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--lag-warning", "x"},
                                                               {"--lag-warning", "10", "--lag-critical", "5"},
                                                               {"--ignore", "no_such_finding"},
                                                               {"--bogus"},
                                                               {"extra-argument"}}) {
    auto r = run(with({"check", "-i", f.index()}, bad));
    INFO(bad[0]);
    CHECK(r.status == 3);
    CHECK(r.out.rfind("FLARE UNKNOWN - ", 0) == 0);
    CHECK(!r.err.empty());
  }
  // With --json, one JSON document still (a monitoring agent parses stdout).
  auto j = run({"check", "-i", f.index(), "--json", "--prepare-seconds", "abc"});
  CHECK(j.status == 3);
  CHECK(j.out == "{\"status\":\"UNKNOWN\",\"exit\":3,\"summary\":\"FLARE UNKNOWN - invalid --prepare-seconds 'abc': give "
                 "a number, 0 or more\",\"perfdata\":null,\"findings\":[]}\n");
}

TEST_CASE("flare-stats --prometheus: the figures of check's findings, valid exposition") {
  FakeCluster f(3);
  check_healthy(f);
  f.must("lag " + f.node(1) + " 42 7");
  auto r = run({"stats", "-i", f.index(), "--prometheus"});
  REQUIRE(r.status == 0);
  auto ex = prom::parse_strict(r.out);
  const std::string idx = f.index();
  CHECK(ex.value("flare_slave_queue_items", {{"index", idx}, {"master", f.node(0)}, {"slave", f.node(1)}}) == "43");
  CHECK(std::stoll(ex.value("flare_slave_behind_seconds", {{"slave", f.node(1)}})) >= 7);
  CHECK(ex.value("flare_partition_nodes", {{"partition", "0"}, {"role", "master"}, {"state", "active"}}) == "1");
  CHECK(ex.value("flare_partition_nodes", {{"partition", "0"}, {"role", "slave"}, {"state", "down"}}) == "0");
  CHECK(ex.value("flare_node_map_version_delta", {{"node", f.node(2)}}) == "0");
  CHECK(ex.value("flare_version_info", {{"node", f.node(0)}, {"version", "1.3.4"}}) == "1");
  CHECK(ex.value("flare_slave_lag_known", {{"master", f.node(0)}}) == "1");
  CHECK(ex.value("flare_partition_slaves_on_master_host", {{"partition", "0"}}) == "1");
  CHECK(ex.value("flare_index_node_map_version", {{"index", idx}}) != "");
}

namespace {

struct CheckRule {
  std::string alert, expr, for_, severity, finding;
};

// The alert rules file, read by a parser of our own for its one shape (groups: - name: rules:
// - alert: / expr: (inline or `|` block) / for: / labels: / annotations:).
std::vector<CheckRule> check_read_rules(const std::string& text) {
  std::vector<CheckRule> rules;
  std::istringstream in(text);
  std::string line;
  std::string section;
  size_t block_indent = 0;
  bool in_block = false;
  auto indent_of = [](const std::string& l) { return l.find_first_not_of(' '); };
  while (std::getline(in, line)) {
    if (line.find('\t') != std::string::npos) throw std::runtime_error("a tab in the rules: " + line);
    size_t ind = indent_of(line);
    if (ind == std::string::npos || line[ind] == '#') continue;
    if (in_block) {
      if (ind >= block_indent) {
        rules.back().expr += line.substr(block_indent) + "\n";
        continue;
      }
      in_block = false;
    }
    std::string body = line.substr(ind);
    if (body.rfind("- alert: ", 0) == 0) {
      rules.push_back(CheckRule{body.substr(9), "", "", "", ""});
      section.clear();
      continue;
    }
    if (rules.empty()) continue;
    if (body.rfind("expr: ", 0) == 0) {
      std::string v = body.substr(6);
      if (v == "|") {
        in_block = true;
        block_indent = ind + 2;
      } else {
        rules.back().expr = v;
      }
    } else if (body.rfind("for: ", 0) == 0) {
      rules.back().for_ = body.substr(5);
    } else if (body == "labels:" || body == "annotations:") {
      section = body;
    } else if (section == "labels:" && body.rfind("severity: ", 0) == 0) {
      rules.back().severity = body.substr(10);
    } else if (section == "labels:" && body.rfind("finding: ", 0) == 0) {
      rules.back().finding = body.substr(9);
    } else if (section.empty()) {
      throw std::runtime_error("unexpected line in a rule: " + line);
    }
  }
  return rules;
}

} // namespace

TEST_CASE("contrib/prometheus/flare-alerts.yml: every finding without --keys has its alert, on exported figures") {
  std::ifstream file("contrib/prometheus/flare-alerts.yml");
  REQUIRE_MESSAGE(file.good(), "run the tests from the source tree");
  std::stringstream text;
  text << file.rdbuf();
  auto rules = check_read_rules(text.str());
  REQUIRE(rules.size() >= 10);
  // Every family the expressions use is one flare-stats --prometheus writes.
  FakeCluster f(3);
  check_healthy(f);
  auto r = run({"stats", "-i", f.index(), "--prometheus"});
  REQUIRE(r.status == 0);
  auto ex = prom::parse_strict(r.out);
  std::set<std::string> findings, names;
  std::regex metric("flare_[a-z_]+");
  for (const auto& rule : rules) {
    INFO(rule.alert);
    CHECK(!rule.expr.empty());
    CHECK((rule.severity == "warning" || rule.severity == "critical"));
    CHECK(std::regex_match(rule.for_, std::regex("[0-9]+[smh]")));
    CHECK(names.insert(rule.alert).second);
    int depth = 0;
    for (char ch : rule.expr) {
      depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
      CHECK(depth >= 0);
    }
    CHECK(depth == 0);
    for (std::sregex_iterator it(rule.expr.begin(), rule.expr.end(), metric), end; it != end; ++it) {
      INFO(it->str());
      CHECK(ex.types.count(it->str()) == 1);
    }
    const auto& codes = flare::check_codes();
    CHECK(std::any_of(codes.begin(), codes.end(), [&](const flare::CheckCode& c) { return rule.finding == c.code; }));
    findings.insert(rule.finding);
  }
  for (const auto& c : flare::check_codes()) {
    std::string code = c.code;
    // OK findings (master_building) raise nothing.
    if (code.rfind("keys_", 0) == 0 || code == "layout_drift" || code == "index_is_node" || code == "node_unreachable" ||
        c.severity == flare::Severity::ok)
      continue;
    INFO(code);
    CHECK(findings.count(code) == 1);
  }
}

TEST_CASE("gather_replies: the requests to one node share a connection, pipelined, each reply its own") {
  FakeCluster f(2);
  check_healthy(f);
  auto before = flare::parse_stats(f.request(f.node_ports[0], "stats").lines).number("total_connections").value_or(-1);
  flare::Endpoint n0{"127.0.0.1", f.node_ports[0]}, n1{"127.0.0.1", f.node_ports[1]};
  auto r = flare::gather_replies({{n0, "stats bogus"}, {n1, "stats"}, {n0, "stats threads slave"}, {n0, "stats"}}, 5000);
  REQUIRE(r.size() == 4);
  CHECK_FALSE(r[0].ok);
  CHECK(r[0].error == "answered 'ERROR' to stats bogus");
  CHECK(r[1].ok);
  CHECK(r[2].ok);
  CHECK(flare::slave_lags(flare::parse_stats_threads(r[2].lines)).size() == 1);
  CHECK(r[3].ok);
  CHECK(flare::parse_stats(r[3].lines).number("curr_items"));
  auto after = flare::parse_stats(f.request(f.node_ports[0], "stats").lines).number("total_connections").value_or(-1);
  CHECK(after - before == 2); // the gather's one connection, and this request's
}

TEST_CASE("the bash completion offers check's finding codes after --ignore, one after another") {
  auto complete = [](const std::string& line) {
    std::string script = "source contrib/bash-completion/flare-admin; COMP_LINE='" + line +
                         "'; COMP_POINT=${#COMP_LINE}; _flare_admin; printf '%s\\n' \"${COMPREPLY[@]}\"";
    const std::string dir = harness::make_temp_dir(), path = dir + "/complete.sh";
    harness::write_text(path, script);
    FILE* q = ::popen(("env -u FLARE_INDEX_SERVER bash " + path + " 2>/dev/null").c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while (q && (n = std::fread(buf, 1, sizeof buf, q)) > 0) out.append(buf, n);
    if (q) ::pclose(q);
    int rc = std::system(("rm -rf '" + dir + "'").c_str());
    (void)rc;
    std::vector<std::string> words;
    std::istringstream in(out);
    std::string w;
    while (in >> w) words.push_back(w);
    std::sort(words.begin(), words.end());
    return words;
  };
  const std::string admin = harness::admin_binary();
  CHECK(complete(admin + " check --ignore no_a") == std::vector<std::string>{"no_active_master", "no_active_slave"});
  CHECK(complete(admin + " check --ignore slave_same_host,node_") ==
        std::vector<std::string>{"slave_same_host,node_down", "slave_same_host,node_unreachable"});
  // Every code the program knows is offered.
  auto all = complete(admin + " check --ignore ");
  for (const auto& c : flare::check_codes()) CHECK(std::count(all.begin(), all.end(), c.code) == 1);
  CHECK(all.size() == flare::check_codes().size());
}

TEST_CASE("evaluate_check: the verdict and the summary line from data alone") {
  auto node = [](int port, const char* role, const char* state, int partition, int balance) {
    flare::NodeInfo n;
    n.host = "10.0.0." + std::to_string(port % 10);
    n.port = port;
    n.key = n.host + ":" + std::to_string(port);
    n.role = role;
    n.state = state;
    n.partition = partition;
    n.balance = balance;
    return n;
  };
  flare::CheckData d;
  d.index_name = "10.0.0.9:12120";
  d.index_map_version = 5;
  d.cluster = flare::Cluster({node(12121, "master", "down", 0, 1), node(12132, "master", "down", 1, 1),
                              node(12143, "master", "active", 2, 1), node(12154, "proxy", "down", -1, 0)});
  for (const auto& n : d.cluster.nodes()) {
    flare::StatsResult r;
    r.endpoint = n.endpoint();
    r.ok = n.state != "down";
    if (r.ok) r.stats.fields = {{"version", "1.3.4"}, {"curr_items", "7"}, {"node_map_version", "5"}};
    d.stats.push_back(r);
  }
  auto r = flare::evaluate_check(d);
  CHECK(r.status == flare::Severity::critical);
  std::vector<std::string> codes;
  for (const auto& f : r.findings) codes.push_back(f.code);
  CHECK(codes == std::vector<std::string>{"master_down_no_slave", "master_down_no_slave", "node_down", "no_active_slave"});
  CHECK(r.summary() == "FLARE CRITICAL - partition 0 is offline: its master 10.0.0.1:12121 is down and it has no slave; "
                       "1 more critical; 2 warnings");
  CHECK(r.items == 7);
  CHECK(flare::worse(flare::Severity::unknown, flare::Severity::critical) == flare::Severity::critical);
  CHECK(flare::worse(flare::Severity::warning, flare::Severity::unknown) == flare::Severity::unknown);
  flare::CheckThresholds t;
  t.ignore = {"master_down_no_slave", "node_down"};
  auto quiet = flare::evaluate_check(d, t);
  CHECK(quiet.status == flare::Severity::warning);
  CHECK(quiet.summary() == "FLARE WARNING - partition 2 has no active slave: no redundancy");
}
