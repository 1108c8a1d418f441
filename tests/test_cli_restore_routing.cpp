// Integration: restore straight to every partition's master (issue 21), and resume advice that
// stays safe when the master that acknowledged items dies before its slave has them (issue 18,
// part 1). The built binary against tests/fake-flare.
#include "harness.hpp"

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

// A flare-format dump of `count` items "PREFIX%05d" of `size` bytes each; returns its keys.
std::vector<std::string> routing_write_dump(const std::string& path, int count, size_t size,
                                            const std::string& prefix = "rk") {
  std::ostringstream out;
  std::vector<std::string> keys;
  for (int i = 0; i < count; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "%s%05d", prefix.c_str(), i);
    keys.push_back(key);
    std::string data(size, static_cast<char>('a' + i % 26));
    out << "VALUE " << key << " " << (i % 7) << " " << size << " 1 0\r\n" << data << "\r\n";
  }
  out << "END\r\n";
  harness::write_text(path, out.str());
  return keys;
}

// Every key a node holds (dump_key straight to it).
std::set<std::string> routing_keys_on(FakeCluster& f, size_t node) {
  flare::NodeClient c(flare::Endpoint{"127.0.0.1", f.node_ports.at(node)}, 10000);
  std::set<std::string> keys;
  flare::dump_keys(c, -1, 0, [&](std::string_view k) { keys.insert(std::string(k)); });
  return keys;
}

// The partition the cluster chooses for `key` among `count` (the index's meta: simple, 1024).
int routing_partition(const std::string& key, int count) {
  static flare::ModularResolver r; // its rows are cached: one resolver a key built a row each time
  return r.partition_of(flare::key_hash(key, flare::KeyHashAlgorithm::simple), count);
}

// The byte offset of "resume with --resume-from N" in a restore's report (-1: none).
long long routing_advice(const std::string& err) {
  const std::string marker = "resume with --resume-from ";
  size_t at = err.find(marker);
  if (at == std::string::npos) return -1;
  return std::stoll(err.substr(at + marker.size()));
}

// Waits (at most 10 s) until the index lists `node` as an active master.
void routing_wait_master(FakeCluster& f, size_t node) {
  for (int i = 0; i < 200; ++i) {
    const flare::NodeInfo* n = f.cluster().find(f.node(node));
    if (n && n->is_master() && n->is_active()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the index never promoted " << f.node(node));
}

// Checks that masters[p] holds exactly the keys of partition p, and nothing else holds any.
void routing_check_placement(FakeCluster& f, const std::vector<std::string>& keys, const std::vector<size_t>& masters) {
  int count = static_cast<int>(masters.size());
  for (int p = 0; p < count; ++p) {
    std::set<std::string> want;
    for (const auto& k : keys)
      if (routing_partition(k, count) == p) want.insert(k);
    CAPTURE(p);
    CHECK(!want.empty());
    CHECK(routing_keys_on(f, masters[static_cast<size_t>(p)]) == want);
  }
}

} // namespace

TEST_CASE("a master killed mid-restore: the advice covers what its slave never got, and following it restores every item") {
  // The master acknowledges every set at once but its slave applies them 1,000 writes behind
  // (the fake's repl-lag, as a real flared's asynchronous replication); the master's process
  // dies right after its 3,000th answer; flarei promotes the slave, which lacks the last 1,000.
  FakeCluster f(3, {"--dead-after-ms", "300"});
  std::string path = f.dir() + "/items.flare";
  auto keys = routing_write_dump(path, 5000, 100);
  harness::master_and_slave(f);
  f.must("repl-lag " + f.node(1) + " 1000");
  f.must("kill-after " + f.node(0) + " 3000");
  std::vector<std::string> args = {"restore", "-i", path, "--index-server", f.index()};
  SUBCASE("into the cluster") {}
  SUBCASE("through the master named") { args.push_back(f.node(0)); }
  auto r = run(args);
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("restore stopped: 3000 items acknowledged (3000 stored, 0 failed)") != std::string::npos);
  CHECK(r.err.find("these acknowledgements do not all count:\n  " + f.node(0) +
                   " acknowledged 3000 items, and then does not answer") != std::string::npos);
  // Not the record after the 3,000th: its slave never had the last 1,000 before it.
  CHECK(routing_advice(r.err) == 0);
  CHECK(r.err.find("where this run started, byte 0") != std::string::npos);
  routing_wait_master(f, 1);
  CHECK(f.items(1) == 2000); // what reached the slave before its master died
  auto again = run({"restore", "-i", path, "--resume-from", std::to_string(routing_advice(r.err)), "--index-server", f.index()});
  CHECK(again.status == 0);
  CHECK(again.err == "5000 entries have been restored.\n");
  CHECK(f.items(1) == 5000);
  CHECK(routing_keys_on(f, 1) == std::set<std::string>(keys.begin(), keys.end()));
}

TEST_CASE("a master of one of two partitions killed mid-restore: resuming as advised ends with exactly the file's items") {
  FakeCluster f(3, {"--dead-after-ms", "300"});
  std::string path = f.dir() + "/items.flare";
  auto keys = routing_write_dump(path, 6000, 100);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " master active 1 1");
  f.must("set-node " + f.node(2) + " slave active 1 1");
  f.must("repl-lag " + f.node(2) + " 500");
  f.must("kill-after " + f.node(1) + " 1500");
  auto r = run({"restore", "-i", path, "--index-server", f.index()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("  " + f.node(1) + " acknowledged 1500 items, and then does not answer") != std::string::npos);
  CHECK(r.err.find(f.node(0) + " acknowledged") == std::string::npos); // the live master's count
  CHECK(routing_advice(r.err) == 0);
  routing_wait_master(f, 2);
  auto again = run({"restore", "-i", path, "--resume-from", std::to_string(routing_advice(r.err)), "--index-server", f.index()});
  CHECK(again.status == 0);
  CHECK(again.err == "6000 entries have been restored.\n");
  routing_check_placement(f, keys, {0, 2});
}

TEST_CASE("a master killed right after answering the last item: the restore ended, and the advice covers it all") {
  FakeCluster f(3, {"--dead-after-ms", "300"});
  std::string path = f.dir() + "/items.flare";
  auto keys = routing_write_dump(path, 2000, 100);
  harness::master_and_slave(f);
  f.must("repl-lag " + f.node(1) + " 400");
  f.must("kill-after " + f.node(0) + " 2000");
  auto r = run({"restore", "-i", path, "--index-server", f.index()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.rfind("restore ended: 2000 items acknowledged (2000 stored, 0 failed), 0 sent but not acknowledged", 0) == 0);
  CHECK(r.err.find("entries have been restored") == std::string::npos);
  CHECK(routing_advice(r.err) == 0);
  routing_wait_master(f, 1);
  CHECK(f.items(1) == 1600);
  REQUIRE(run({"restore", "-i", path, "--index-server", f.index()}).status == 0);
  CHECK(routing_keys_on(f, 1) == std::set<std::string>(keys.begin(), keys.end()));
}

TEST_CASE("a restore whose master's connection is only cut keeps its exact advice") {
  // The node lives and is still the master: what it acknowledged is stored.
  FakeCluster f(2);
  std::string path = f.dir() + "/items.flare";
  routing_write_dump(path, 1000, 50);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  f.must("cut " + f.node(0) + " " + std::to_string(300 * 8));
  auto r = run({"restore", "-i", path, "--index-server", f.index()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("restore stopped: 300 items acknowledged (300 stored, 0 failed)") != std::string::npos);
  CHECK(r.err.find("do not all count") == std::string::npos);
  std::string file = harness::slurp(path);
  long long at = routing_advice(r.err);
  REQUIRE(at > 0);
  CHECK(file.compare(static_cast<size_t>(at), 14, "VALUE rk00300 ") == 0);
}

TEST_CASE("a dump of a one-partition cluster restored into three partitions: each key straight to its master, nowhere else") {
  FakeCluster src(1);
  src.must("set-node " + src.node(0) + " master active 0 1");
  src.must("fill " + src.node(0) + " 3000 60 item:");
  std::string path = src.dir() + "/one.flare";
  REQUIRE(run({"dump", "--all", "-o", path, "--index-server", src.index()}).status == 0);
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) {
    char k[32];
    std::snprintf(k, sizeof k, "item:%05d", i);
    keys.push_back(k);
  }
  FakeCluster f(4);
  for (int p = 0; p < 3; ++p) f.must("set-node " + f.node(static_cast<size_t>(p)) + " master active " + std::to_string(p) + " 1");
  f.control("requests-clear");
  std::vector<std::string> args = {"restore", "-i", path, "--index-server", f.index()};
  SUBCASE("no node given") {}
  SUBCASE("--all") { args.push_back("--all"); }
  SUBCASE("from standard input, csv") {
    std::string csv = src.dir() + "/one.csv";
    REQUIRE(run({"dump", "--all", "-f", "csv", "-o", csv, "--index-server", src.index()}).status == 0);
    auto r = run({"restore", "-i", "-", "-f", "csv", "--index-server", f.index()}, harness::slurp(csv));
    CHECK(r.status == 0);
    CHECK(r.err == "3000 entries have been restored.\n");
    args.clear();
  }
  if (!args.empty()) {
    auto r = run(args);
    CHECK(r.status == 0);
    CHECK(r.err == "3000 entries have been restored.\n");
  }
  // every set went to the master of its key's partition, none through another node
  size_t sets = 0;
  for (const auto& line : f.state_changes()) {
    std::istringstream in(line);
    std::string node, cmd, key;
    in >> node >> cmd >> key;
    if (cmd != "set") continue;
    ++sets;
    CHECK_MESSAGE(node == f.node(static_cast<size_t>(routing_partition(key, 3))), line);
  }
  CHECK(sets == 3000);
  routing_check_placement(f, keys, {0, 1, 2});
  CHECK(f.items(3) == 0);
  auto v = run({"verify", "--index-server", f.index()});
  CHECK(v.status == 0);
  CHECK(v.out.find(" misplaced NG") == std::string::npos);
}

TEST_CASE("a four-partition restore stopped halfway resumes to exactly the file's items") {
  FakeCluster f(4);
  std::string path = f.dir() + "/items.flare";
  auto keys = routing_write_dump(path, 4000, 80);
  for (int p = 0; p < 4; ++p) f.must("set-node " + f.node(static_cast<size_t>(p)) + " master active " + std::to_string(p) + " 1");
  SUBCASE("Ctrl-C while one master is silent") {
    f.must("hang " + f.node(2) + " 1");
    // the first record of partition 2: the first one its silent master never answered
    size_t first = 0;
    while (routing_partition(keys[first], 4) != 2) ++first;
    // Ctrl-C once the other masters hold records read after it (more than the `first` records
    // before it) and their count has stood still for 1 s: the tool has done all it can while
    // the silent master holds its window, and every acknowledgement of the others is in. Not
    // after a fixed time, which under load could come before the tool read that far.
    long long last = -1;
    auto still_since = std::chrono::steady_clock::now();
    auto done_all_it_can = [&] {
      long long total = f.items(0) + f.items(1) + f.items(3);
      auto now = std::chrono::steady_clock::now();
      if (total != last) {
        last = total;
        still_since = now;
      }
      return static_cast<size_t>(total) > first && now - still_since >= std::chrono::milliseconds(1000);
    };
    auto r = harness::interrupt_after({"restore", "-i", path, "--index-server", f.index(), "--timeout", "60"}, 300,
                                      SIGINT, nullptr, done_all_it_can);
    CHECK(r.status == 130);
    CHECK(r.err.find("restore interrupted: ") != std::string::npos);
    long long at = routing_advice(r.err);
    std::string file = harness::slurp(path);
    REQUIRE(at >= 0);
    CHECK(file.compare(static_cast<size_t>(at), 6 + keys[first].size() + 1, "VALUE " + keys[first] + " ") == 0);
    f.must("hang " + f.node(2) + " 0");
    auto again = run({"restore", "-i", path, "--resume-from", std::to_string(at), "--index-server", f.index()});
    CHECK(again.status == 0);
  }
  SUBCASE("one master's connection cut, from a pipe") {
    f.must("cut " + f.node(3) + " " + std::to_string(200 * 8));
    auto r = run({"restore", "-i", "-", "--index-server", f.index()}, harness::slurp(path));
    CHECK(r.status == 1);
    CHECK(r.err.find("connection closed by " + f.node(3)) != std::string::npos);
    long long at = routing_advice(r.err);
    REQUIRE(at > 0);
    f.must("cut " + f.node(3) + " 0");
    // a pipe is read once: the file given again, from that byte
    auto again = run({"restore", "-i", path, "--resume-from", std::to_string(at), "--index-server", f.index()});
    CHECK(again.status == 0);
  }
  routing_check_placement(f, keys, {0, 1, 2, 3});
  long long total = 0;
  for (size_t i = 0; i < 4; ++i) total += f.items(i);
  CHECK(total == 4000);
}

TEST_CASE("a partition whose master cannot take writes is refused before anything is sent, naming it") {
  FakeCluster f(4);
  std::string path = f.dir() + "/items.flare";
  routing_write_dump(path, 200, 10);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " master down 1 1");
  f.must("set-node " + f.node(2) + " master ready 2 1");
  f.control("requests-clear");
  auto r = run({"restore", "-i", path, "--index-server", f.index()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err == "cannot restore into the cluster, nothing was sent: partition 1: its master " + f.node(1) +
                     " is down; partition 2: its master " + f.node(2) + " is ready, not yet active (flare-admin activate " +
                     f.node(2) + ") (its keys cannot be written through any node either: start the down master's flared "
                     "again, or give the partition a master, then run this again)\n");
  CHECK(f.state_changes().empty());
  SUBCASE("no master down, one only ready: the cluster routes by the active ones, and a node written through forwards") {
    f.must("set-node " + f.node(1) + " master active 1 1");
    auto ready = run({"restore", "-i", path, "--index-server", f.index()});
    CHECK(ready.status == 1);
    CHECK(ready.err.find("is ready, not yet active (flare-admin activate " + f.node(2) + ") (name one node to write through "
                         "instead, and it forwards each item as it would a client's)\n") != std::string::npos);
  }
  SUBCASE("a node named is written through, as before") {
    f.must("set-node " + f.node(1) + " master active 1 1");
    auto t = run({"restore", "-i", path, "--index-server", f.index(), f.node(0)});
    CHECK(t.status == 0);
    CHECK(t.err == "200 entries have been restored.\n");
    for (const auto& line : f.state_changes())
      if (line.find(" set ") != std::string::npos) CHECK(line.rfind(f.node(0) + " ", 0) == 0);
  }
  SUBCASE("--all with a node is a usage error") {
    auto u = run({"restore", "-i", path, "--all", f.node(0), "--index-server", f.index()});
    CHECK(u.status == 2);
  }
}

TEST_CASE("acknowledgement_doubts: a node that does not answer, or that the index lists otherwise, is doubted") {
  flare::Endpoint a{"127.0.0.1", 1}, b{"127.0.0.1", 2};
  std::vector<flare::Acknowledger> nodes = {{a, 0, 10, true, true, false}, {b, 1, 5, false, true, false}};
  flare::StatsResult dead;
  dead.endpoint = a;
  dead.error = "connect: Connection refused";
  auto d = flare::acknowledgement_doubts(nodes, {dead}, nullptr);
  REQUIRE(d.size() == 1);
  CHECK(d[0] == "127.0.0.1:1 acknowledged 10 items, and then does not answer (connect: Connection refused)");
  flare::Cluster now(flare::parse_stats_nodes({"STAT 127.0.0.1:1:role proxy", "STAT 127.0.0.1:1:state down",
                                               "STAT 127.0.0.1:1:partition -1", "STAT 127.0.0.1:1:balance 0",
                                               "STAT 127.0.0.1:1:thread_type 16", "STAT 127.0.0.1:2:role master",
                                               "STAT 127.0.0.1:2:state active", "STAT 127.0.0.1:2:partition 1",
                                               "STAT 127.0.0.1:2:balance 1", "STAT 127.0.0.1:2:thread_type 17",
                                               "STAT 127.0.0.1:3:role master", "STAT 127.0.0.1:3:state active",
                                               "STAT 127.0.0.1:3:partition 0", "STAT 127.0.0.1:3:balance 1",
                                               "STAT 127.0.0.1:3:thread_type 18"}));
  d = flare::acknowledgement_doubts(nodes, {}, &now);
  REQUIRE(d.size() == 1);
  CHECK(d[0] == "127.0.0.1:1 acknowledged 10 items, and then the index now lists it as proxy down (partition 0's master "
                "is now 127.0.0.1:3)");
  nodes[0].acknowledged = 0; // nothing acknowledged: nothing to doubt
  CHECK(flare::acknowledgement_doubts(nodes, {dead}, &now).empty());
  // a master a node written through forwarded to, now silent; and a proxy, never doubted
  nodes = {{a, 0, 10, false, true, true}, {b, -1, 10, true, false, false}};
  dead.endpoint = b;
  CHECK(flare::acknowledgement_doubts(nodes, {dead}, nullptr).empty());
  dead.endpoint = a;
  d = flare::acknowledgement_doubts(nodes, {dead}, nullptr);
  REQUIRE(d.size() == 1);
  CHECK(d[0] == "127.0.0.1:1, the master of partition 0 that items written through another node were forwarded to, "
                "does not answer (connect: Connection refused)");
}

TEST_CASE("Ctrl-C of a restore through one node of two partitions: the live masters' acknowledgements count") {
  FakeCluster f(2);
  std::string path = f.dir() + "/items.flare";
  routing_write_dump(path, 2000, 20);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " master active 1 1");
  f.must("set-service " + f.node(0) + " 2000"); // 500 sets a second: still going at the interrupt
  // Ctrl-C once the restore is well under way (200 items stored: the first ones' acknowledgements
  // are in), not after a fixed time.
  auto r = harness::interrupt_after({"restore", "-i", path, "--index-server", f.index(), f.node(0)}, 300, SIGINT, nullptr,
                                    [&] { return f.items(0) + f.items(1) > 200; });
  CHECK(r.status == 130);
  CHECK(r.err.find("restore interrupted: ") != std::string::npos);
  CHECK(r.err.find("do not all count") == std::string::npos);
  CHECK(routing_advice(r.err) > 0);
}
