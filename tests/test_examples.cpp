// Integration (issue 36): the programs of examples/, what a user who vendors the header writes,
// run against the fake cluster. A program that needs anything the header does not offer would
// not build; one that gets a wrong answer from the surface fails here.
#include "harness.hpp"

#include <fcntl.h>

using harness::FakeCluster;

namespace {

// build/plain/examples/NAME (make test builds them beside the plain suite; the tests run from
// the source tree).
harness::Result example_run(const std::string& name, const std::vector<std::string>& args) {
  const std::string path = "build/plain/examples/" + name;
  REQUIRE_MESSAGE(::access(path.c_str(), X_OK) == 0, path << " is not built (make test builds it)");
  std::string command = path;
  for (const auto& a : args) command += " '" + a + "'";
  const std::string dir = harness::make_temp_dir();
  int rc = std::system((command + " > " + dir + "/out 2> " + dir + "/err").c_str());
  harness::Result r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  r.out = harness::slurp(dir + "/out");
  r.err = harness::slurp(dir + "/err");
  return r;
}

// Node 0 the master of partition 0 holding 100 keys, node 1 the master of partition 1 built
// from them by flare-admin (node 0 keeps its stale copies of partition 1's keys).
void example_two_partitions(FakeCluster& f) {
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 100 10");
  REQUIRE(harness::run(harness::with({"master", "--force", "--activate", f.node(1) + ":1:1"}, f.index_args())).status == 0);
  REQUIRE(f.items(0) == 100);
  REQUIRE(f.items(1) > 0);
}

} // namespace

TEST_CASE("examples/nodes_and_stats lists every node with its items") {
  FakeCluster f(3);
  example_two_partitions(f);
  auto r = example_run("nodes_and_stats", {f.index()});
  CHECK(r.status == 0);
  CHECK(r.out == f.node(0) + " master active partition 0 items 100\n" + f.node(1) + " master active partition 1 items " +
                     std::to_string(f.items(1)) + "\n" + f.node(2) + " proxy active partition -1 items 0\n");
  auto bad = example_run("nodes_and_stats", {f.node(0)}); // a data node given as the index
  CHECK(bad.status == 1);
  CHECK(bad.err.find("is a data node (flared), not an index server") != std::string::npos);
}

TEST_CASE("examples/dump_cluster dumps each key exactly once after a partition was added") {
  FakeCluster f(3);
  example_two_partitions(f);
  auto r = example_run("dump_cluster", {f.index()});
  CHECK(r.status == 0);
  CHECK(r.err == "100 items\n");
  // Read back with the header's own reader: 100 records, 100 distinct keys.
  const std::string path = harness::make_temp_dir() + "/backup";
  harness::write_text(path, r.out);
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  flare::ItemReader reader(fd, path, flare::DataFormat::flare); // it owns fd from here
  std::set<std::string> keys;
  size_t records = 0;
  flare::Item item;
  while (reader.next(item)) {
    ++records;
    keys.insert(item.header.key);
  }
  CHECK(records == 100);
  CHECK(keys.size() == 100);
}

TEST_CASE("examples/add_slave makes a proxy a slave and waits until it holds its partition") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 40 10");
  auto r = example_run("add_slave", {f.index(), f.node(2) + ":1:0"});
  CHECK(r.status == 0);
  CHECK(r.out.find("state is active -> stop waiting\n") != std::string::npos);
  auto c = f.cluster();
  REQUIRE(c.find(f.node(2)));
  CHECK(c.find(f.node(2))->role == "slave");
  CHECK(c.find(f.node(2))->state == "active");
  CHECK(c.find(f.node(2))->balance == 1);
  CHECK(f.items(2) == 40);
  // The header's refusals reach the program: a node that is not a proxy.
  auto again = example_run("add_slave", {f.index(), f.node(0) + ":1:0"});
  CHECK(again.status == 1);
  CHECK(again.err.find(f.node(0) + " is not a proxy.") != std::string::npos);
}

TEST_CASE("StatsSampler, as a program of its own uses it: each node's row, its rates since the last sample, a slave's lag") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 1");
  f.must("fill " + f.node(0) + " 20 10");
  flare::IndexClient index(flare::parse_host_port(f.index(), 0), 5000);
  flare::StatsSampler sampler(index, 5000);
  const auto first = sampler.sample();
  REQUIRE(first.rows.size() == 3);
  CHECK(first.unreachable.empty());
  CHECK(first.reading.stable);
  for (const auto& row : first.rows) CHECK_FALSE(row.qps.reads); // no earlier sample: no rate
  {
    flare::ServerClient node(flare::parse_host_port(f.node(0), 0), 5000);
    for (int i = 0; i < 5; ++i) node.request("get no-such-key" + std::to_string(i)); // a miss counts as a get
  }
  const auto second = sampler.sample();
  REQUIRE(second.rows.size() == 3);
  const flare::StatsRow* master = nullptr;
  const flare::StatsRow* slave = nullptr;
  for (const auto& row : second.rows) {
    if (row.node.key == f.node(0)) master = &row;
    if (row.node.key == f.node(1)) slave = &row;
  }
  REQUIRE(master);
  REQUIRE(slave);
  REQUIRE(master->result);
  CHECK(master->result->stats.get("curr_items") == "20");
  REQUIRE(master->qps.reads);
  CHECK(*master->qps.reads > 0);
  REQUIRE(slave->lag); // asked of its master in the same gather
  CHECK(slave->lag->pending() == 0);
  f.must("kill " + f.node(1));
  const auto third = sampler.sample();
  REQUIRE(third.unreachable.size() == 1);
  CHECK(third.unreachable[0].rfind(f.node(1) + ": ", 0) == 0);
}

TEST_CASE("ClusterAdmin, as a program of its own uses it, sends nothing once its interrupted hook says stop") {
  // A program that wires OperationIO::interrupted (its own SIGINT flag) and no more: the
  // cancellation rule (guard_changes) is ClusterAdmin's own, not a step the caller must know of.
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("requests-clear");
  flare::IndexClient index(flare::parse_host_port(f.index(), 0), 5000);
  flare::OperationOptions options;
  options.force = true;
  flare::OperationIO io;
  std::string said;
  io.say = io.warn = io.progress = [&](const std::string& line) { said += line + "\n"; };
  io.interrupted = [] { return true; }; // Ctrl-C came before the command
  SUBCASE("the index answering") {}
  SUBCASE("the index stopped (SIGSTOP): its waits end at once, not at the timeout") { f.must("stall index 1"); }
  flare::ClusterAdmin admin(index, options, io);
  bool interrupted = false;
  try {
    interrupted = admin.slave({flare::parse_node_arg(f.node(1) + ":1:0", 4, 4)}) == flare::Outcome::interrupted;
  } catch (const flare::Interrupted&) {
    interrupted = true; // before anything was sent
  }
  CHECK(interrupted);
  INFO(said);
  f.must("stall index 0");
  CHECK(f.state_changes().empty());
  REQUIRE(index.change_log());
  CHECK(index.change_log()->sent.empty());
}

TEST_CASE("run_restore, as a program of its own uses it: one job in, one report out, and what the report means") {
  FakeCluster f(3);
  example_two_partitions(f);
  // The whole cluster dumped by the example, then restored into a cluster emptied of it.
  auto dumped = example_run("dump_cluster", {f.index()});
  REQUIRE(dumped.status == 0);
  const std::string path = harness::make_temp_dir() + "/backup";
  harness::write_text(path, dumped.out);
  auto restore = [&](std::optional<flare::Endpoint> through) {
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    flare::ItemReader reader(fd, path, flare::DataFormat::flare);
    flare::RestoreJob job;
    job.index = flare::parse_host_port(f.index(), 0);
    job.through = through;
    return flare::run_restore(reader, job);
  };
  SUBCASE("each key to its partition's master") {
    const flare::RestoreReport r = restore(std::nullopt);
    CHECK(r.complete);
    CHECK(r.stored == 100);
    const flare::RestoreSummary s = flare::summarize_restore(r);
    CHECK(s.end == flare::RestoreSummary::End::complete);
    CHECK_FALSE(s.failures);
    CHECK(s.lines == std::vector<std::string>{"100 entries have been restored."});
  }
  SUBCASE("through one node, which forwards") {
    const flare::RestoreReport r = restore(flare::parse_host_port(f.node(2), 0));
    CHECK(r.complete);
    CHECK(r.stored == 100);
  }
  SUBCASE("a partition with no active master: refused before anything is sent, naming it") {
    f.must("set-node " + f.node(1) + " master down 1 1");
    CHECK_THROWS_AS(restore(std::nullopt), flare::Error);
  }
  SUBCASE("a report cut short says where to resume") {
    flare::RestoreReport r;
    r.stored = 7;
    r.resume_offset = 120;
    r.stopped_by = "127.0.0.1:1: connection reset";
    const flare::RestoreSummary s = flare::summarize_restore(r);
    CHECK(s.end == flare::RestoreSummary::End::stopped);
    CHECK(s.lines == std::vector<std::string>{"127.0.0.1:1: connection reset",
                                              "restore stopped: 7 items acknowledged (7 stored, 0 failed), 0 sent but not "
                                              "acknowledged (their fate is unknown); the first record not known to be stored "
                                              "starts at byte 120: resume with --resume-from 120"});
  }
}
