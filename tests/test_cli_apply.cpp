// Integration (issue 34): `flare-admin apply LAYOUT` against the fake cluster. The plan's rules
// are unit tests of plan_layout (test_layout.cpp); here: the dry run shows the plan the real run
// runs, a run converges and a second one sends nothing, a swap keeps every item, a refusal and a
// stale saved plan change nothing, a run cut short by Ctrl-C is finished by the next, --diff's
// and check --layout's verdicts, and `part -n` plans what `part` makes.
#include "harness.hpp"

#include <memory>
#include <thread>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

bool apply_has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A layout file in a fresh directory.
std::string apply_layout_file(const std::string& text) {
  const std::string path = harness::make_temp_dir() + "/layout";
  harness::write_text(path, text);
  return path;
}

// The plan's step lines of `apply -n` ("  1. what"), each as its `what` (the items note cut off).
std::vector<std::string> apply_planned(const std::string& out) {
  std::vector<std::string> whats;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    size_t dot = line.find(". ");
    if (line.rfind("  ", 0) != 0 || dot == std::string::npos || dot < 3 ||
        line.find_first_not_of("0123456789", 2) != dot)
      continue;
    std::string what = line.substr(dot + 2);
    size_t copies = what.find(" (copies ");
    if (copies != std::string::npos) what.resize(copies);
    whats.push_back(what);
  }
  return whats;
}

// The fake's map set by hand: each line "HOST:PORT ROLE STATE PARTITION BALANCE" (set-node).
void apply_set_nodes(FakeCluster& f, const std::vector<std::string>& lines) {
  for (const auto& line : lines) f.must("set-node " + line);
}

// Polls the fake's map (at most ~10 s) until NODE is ROLE STATE.
bool apply_until(FakeCluster& f, const std::string& node, const std::string& role, const std::string& state) {
  for (int i = 0; i < 200; ++i) {
    auto c = f.cluster();
    if (auto* n = c.find(node); n && n->role == role && n->state == state) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

} // namespace

TEST_CASE("apply: the dry run shows the plan the real run runs; a second run, and list's own output, send nothing") {
  FakeCluster f(4);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);
  f.must("set-node " + n0 + " master active 0 1");
  f.must("fill " + n0 + " 300 10");
  const std::string layout = apply_layout_file("# two partitions, a slave each for the first\n" + n0 + " 0 master active 1\n" +
                                               n1 + " 0 slave active 1\n" + n2 + " 1 master - 1\n" + n3 + " - proxy - 0\n");

  auto diff = run(with({"apply", "--diff", layout}, idx));
  CHECK(diff.status == 1);
  CHECK(diff.out == n1 + ": proxy active; the layout: slave of partition 0, balance 1\n" + n2 +
                        ": proxy active; the layout: master of partition 1, balance 1\n");

  const size_t before = f.state_changes().size();
  auto dry = run(with({"apply", "-n", layout}, idx));
  CHECK(dry.status == 0);
  CHECK(f.state_changes().size() == before);
  const auto planned = apply_planned(dry.out);
  CHECK(planned == std::vector<std::string>{"make " + n2 + " the master of new partition 1 (balance 1), and activate it",
                                            "build " + n1 + " as a slave of partition 0 from " + n0 + ", then give it balance 1"});
  CHECK(apply_has(dry.out, "  2. build " + n1 + " as a slave of partition 0 from " + n0 + ", then give it balance 1 (copies at most 300 items)\n"
                           "       flare-admin slave -i " + f.index() + " " + n1 + ":1:0\n"));
  CHECK(apply_has(dry.out, "dry run: nothing was changed.\n"));

  auto real = run(with({"apply", "--force", layout}, idx));
  CHECK(real.status == 0);
  for (size_t i = 0; i < planned.size(); ++i)
    CHECK(apply_has(real.out, "step " + std::to_string(i + 1) + "/2: " + planned[i] + "\n"));
  CHECK(apply_has(real.out, "\nthe cluster matches the layout.\n"));
  auto c = f.cluster();
  REQUIRE(c.find(n1));
  CHECK(c.find(n1)->role == "slave");
  CHECK(c.find(n1)->state == "active");
  CHECK(c.find(n1)->balance == 1);
  CHECK(c.find(n2)->role == "master");
  CHECK(c.find(n2)->state == "active");
  CHECK(f.items(1) == 300);

  const size_t done = f.state_changes().size();
  auto again = run(with({"apply", "--force", layout}, idx));
  CHECK(again.status == 0);
  CHECK(apply_has(again.out, "the cluster matches the layout (node_map_version "));
  CHECK(apply_has(again.out, "): nothing to do.\n"));
  auto listed = run(with({"list"}, idx));
  REQUIRE(listed.status == 0);
  const std::string as_listed = apply_layout_file(listed.out);
  auto same = run(with({"apply", "--force", as_listed}, idx));
  CHECK(same.status == 0);
  CHECK(apply_has(same.out, "nothing to do"));
  CHECK(f.state_changes().size() == done);
  CHECK(run(with({"apply", "--diff", layout}, idx)).status == 0);
}

TEST_CASE("apply swaps a master for its slave: a planned failover, the old master rebuilt as its slave, every item kept") {
  FakeCluster f(3);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1);
  f.must("set-node " + n0 + " master active 0 1");
  f.must("fill " + n0 + " 200 10");
  REQUIRE(run(with({"apply", "--force", apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n")}, idx)).status == 0);
  REQUIRE(f.items(1) == 200);

  auto r = run(with({"apply", "--force", apply_layout_file(n1 + " 0 master - 1\n" + n0 + " 0 slave - 1\n")}, idx));
  CHECK(r.status == 0);
  CHECK(apply_has(r.out, "step 1/2: fail partition 0 over from " + n0 + " to its slave " + n1));
  CHECK(apply_has(r.out, "step 2/2: build " + n0 + " as a slave of partition 0 from " + n1));
  CHECK(apply_has(r.err, "warning: a failover loses the writes its master takes after the slave last caught up"));
  // One empty line between steps, after a failover's table too.
  CHECK(r.out.find("\n\n\n") == std::string::npos);
  auto c = f.cluster();
  CHECK(c.master_of(0)->key == n1);
  REQUIRE(c.find(n0));
  CHECK(c.find(n0)->role == "slave");
  CHECK(c.find(n0)->state == "active");
  CHECK(f.items(1) == 200);
  CHECK(f.items(0) == 200);
}

TEST_CASE("apply refuses a layout that drops a partition, or a saved plan the cluster moved past, and sends nothing") {
  FakeCluster f(4);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);
  apply_set_nodes(f, {n0 + " master active 0 1", n1 + " slave active 0 1", n2 + " master active 1 1"});
  const size_t before = f.state_changes().size();

  SUBCASE("a partition dropped") {
    const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n");
    // Without --prune, a partition the layout does not mention is left as it is.
    CHECK(run(with({"apply", "--force", layout}, idx)).status == 0);
    auto r = run(with({"apply", "--force", "--prune", layout}, idx));
    CHECK(r.status == 1);
    CHECK(apply_has(r.err, "refused: the layout has no partition 1, which the cluster serves (--prune would take its master " +
                               n2 + " away)"));
    CHECK(apply_has(r.err, "Nothing was changed.\n"));
  }
  SUBCASE("a saved plan: run as made, refused once the map moved") {
    const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n" + n2 + " 1 master - 1\n" + n3 +
                                                 " 1 slave - 1\n");
    const std::string plan = harness::make_temp_dir() + "/plan";
    auto made = run(with({"apply", "-n", "--plan-out", plan, layout}, idx));
    CHECK(made.status == 0);
    CHECK(apply_has(made.out, "wrote the plan to " + plan + "; run it with: flare-admin apply -i " + f.index() + " --plan " + plan));
    CHECK(f.state_changes().size() == before);
    const std::string stale = harness::make_temp_dir() + "/stale";
    harness::write_text(stale, harness::slurp(plan));
    REQUIRE(run(with({"balance", "--force", n1 + ":2"}, idx)).status == 0);
    const size_t moved = f.state_changes().size();
    auto refused = run(with({"apply", "--force", "--plan", stale}, idx));
    CHECK(refused.status == 1);
    CHECK(apply_has(refused.err, "refused: the plan was made from node_map_version "));
    CHECK(apply_has(refused.err, "the cluster changed since. Nothing was changed."));
    CHECK(f.state_changes().size() == moved);
    // A plan made now runs.
    REQUIRE(run(with({"apply", "-n", "--plan-out", plan, layout}, idx)).status == 0);
    auto ran = run(with({"apply", "--force", "--plan", plan}, idx));
    CHECK(ran.status == 0);
    CHECK(apply_has(ran.out, "the cluster matches the layout."));
    return;
  }
  CHECK(f.state_changes().size() == before);
}

TEST_CASE("apply cut short by Ctrl-C in a construction is finished by the next run") {
  FakeCluster f(3, {"--copy-rate", "200"});
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1);
  f.must("set-node " + n0 + " master active 0 1");
  f.must("fill " + n0 + " 600 10");
  const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 2\n");
  auto cut = harness::interrupt_after(with({"apply", "--force", layout}, idx), 0, SIGINT, nullptr, [&] {
    auto c = f.cluster();
    const flare::NodeInfo* n = c.find(n1);
    return n && n->is_slave() && n->state == "prepare";
  });
  CHECK(cut.status == 130);
  CHECK(apply_has(cut.err, "step 1/1 was interrupted. To finish the plan, run apply again with the same layout"));
  auto plan = run(with({"apply", "-n", layout}, idx));
  CHECK(apply_has(plan.out, "1. finish building " + n1 + " as a slave of partition 0"));
  auto r = run(with({"apply", "--force", layout}, idx));
  CHECK(r.status == 0);
  CHECK(apply_has(r.out, "the cluster matches the layout."));
  REQUIRE(apply_until(f, n1, "slave", "active"));
  CHECK(f.cluster().find(n1)->balance == 2);
  CHECK(f.items(1) == 600);
}

TEST_CASE("check --layout: a cluster that matches is OK, one that differs a layout_drift warning, a bad file UNKNOWN") {
  FakeCluster f(3);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2);
  harness::master_and_slave(f);
  const std::string same = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n");
  const std::string other = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n" + n2 + " 0 slave - 1\n");
  auto ok = run(with({"check", "--ignore", "slave_same_host", "--layout", same}, idx));
  CHECK(ok.status == 0);
  auto drift = run(with({"check", "--ignore", "slave_same_host", "--layout", other}, idx));
  CHECK(drift.status == 1);
  CHECK(apply_has(drift.out, "layout_drift"));
  CHECK(apply_has(drift.out, n2 + ": proxy active; the layout: slave of partition 0, balance 1"));
  auto bad = run(with({"check", "--layout", apply_layout_file("nonsense\n")}, idx));
  CHECK(bad.status == 3);
  CHECK(apply_has(bad.out, "FLARE UNKNOWN - "));
}

TEST_CASE("part -n plans what part makes: the second partition's master is planned on the first one's, not refused") {
  FakeCluster f(3);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2);
  const std::vector<std::string> args = {n0 + ":1:0", n1 + ":1:0", n2 + ":1:1"};
  auto dry = run(with(with({"part", "-n"}, args), idx));
  CHECK(dry.status == 0);
  CHECK_FALSE(apply_has(dry.err, "cannot be made now"));
  // Every request the dry run names is one the real run sends, in the same order.
  std::vector<std::string> would;
  std::istringstream in(dry.out);
  for (std::string line; std::getline(in, line);) {
    const std::string head = "send '";
    const size_t at = line.find(head), to = line.rfind("' to ");
    if (line.rfind("dry run: ", 0) == 0 && at != std::string::npos && to != std::string::npos && line.find("flush_all") == std::string::npos)
      would.push_back(line.substr(at + head.size(), to - at - head.size()));
  }
  CHECK(would.size() == 5); // two masters and their activation, a slave and its balance
  auto real = run(with(with({"part", "--force"}, args), idx));
  CHECK(real.status == 0);
  std::vector<std::string> sent;
  for (const auto& r : f.state_changes())
    if (r.find("node ") != std::string::npos) sent.push_back(r);
  REQUIRE(sent.size() >= would.size());
  for (size_t i = 0; i < would.size(); ++i) {
    INFO(i);
    CHECK(apply_has(sent[i], would[i]));
  }
}

TEST_CASE("apply --prune sets down the slaves the layout leaves out and removes dead proxies, never a live one") {
  FakeCluster f(4);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);
  f.must("kill " + n3);
  apply_set_nodes(f, {n0 + " master active 0 1", n1 + " slave active 0 1", n2 + " slave active 0 1", n3 + " proxy down -1 0"});
  const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n1 + " 0 slave - 1\n");
  CHECK(run(with({"apply", "--diff", "--prune", layout}, idx)).status == 1);
  auto r = run(with({"apply", "--force", "--prune", layout}, idx));
  CHECK(r.status == 0);
  CHECK(apply_has(r.out, "take " + n2 + " out of partition 0: it becomes a proxy"));
  CHECK(apply_has(r.out, "remove the down proxy " + n3 + " from the map"));
  CHECK(apply_has(r.out, "the cluster matches the layout."));
  // Run again at once: n2 (set down a moment ago, its flared running) is left for the index to
  // bring back, not removed.
  auto again = run(with({"apply", "--force", "--prune", layout}, idx));
  CHECK(again.status == 0);
  auto c = f.cluster();
  REQUIRE(c.find(n2) != nullptr);
  CHECK(c.find(n2)->role == "proxy");
  CHECK(c.find(n3) == nullptr);
}

TEST_CASE("remove refuses a down proxy whose flared answers: flarei would drop a running node from its map") {
  FakeCluster f(3, {"--revive-ms", "600000"});
  const auto idx = f.index_args();
  const std::string n2 = f.node(2);
  f.must("set-node " + n2 + " proxy down -1 0");
  auto r = run(with({"remove", "--force", n2}, idx));
  CHECK(r.status == 1);
  CHECK(apply_has(r.err, "refused: " + n2 + " is proxy down, but its flared answers"));
  CHECK(f.cluster().find(n2) != nullptr);
  CHECK(f.state_changes().empty());
}

TEST_CASE("apply names the items a flush deletes, and refuses a proxy holding items without --discard-items") {
  FakeCluster f(3);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n2 = f.node(2);
  f.must("set-node " + n0 + " master active 0 1");
  f.must("fill " + n0 + " 40 10");
  f.must("fill " + n2 + " 5 10 stale");
  const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n2 + " 0 slave - 1\n");
  auto dry = run(with({"apply", "-n", layout}, idx));
  CHECK(dry.status == 1);
  CHECK(apply_has(dry.out, "(copies 40 items); flush_all first deletes the 5 items it holds\n"));
  CHECK(apply_has(dry.err, "refused: " + n2 + " is a proxy holding 5 items, which step 1 deletes (flush_all) before it copies"));
  CHECK(run(with({"apply", "--force", layout}, idx)).status == 1);
  CHECK(f.state_changes().empty());
  auto r = run(with({"apply", "--force", "--discard-items", layout}, idx));
  CHECK(r.status == 0);
  CHECK(f.items(2) == 40);
}

namespace {

// The requests a dry run names ("... send 'REQUEST' to TARGET"), each as the fake logs a request
// it received: "TARGET REQUEST", the index's target "index".
std::vector<std::string> apply_dry_requests(const std::string& out, const std::string& index) {
  std::vector<std::string> out_requests;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("send '"), to = line.rfind("' to ");
    if (line.rfind("dry run: ", 0) != 0 || at == std::string::npos || to == std::string::npos || to < at) continue;
    const std::string target = line.substr(to + 5);
    out_requests.push_back((target == index ? std::string("index") : target) + " " + line.substr(at + 6, to - at - 6));
  }
  return out_requests;
}

} // namespace

TEST_CASE("the dry run of every change command names the requests its real run sends, in order" * doctest::test_suite("slow")) {
  // (apply's dry run is its plan of steps, each a command whose own dry run names its requests:
  // the first apply case compares its steps with the real run's.)
  std::unique_ptr<FakeCluster> fp;
  std::string n0, n1, n2, n3;
  auto start = [&](const std::vector<std::string>& extra) {
    fp = std::make_unique<FakeCluster>(4, extra);
    n0 = fp->node(0), n1 = fp->node(1), n2 = fp->node(2), n3 = fp->node(3);
  };
  std::vector<std::string> args;
  SUBCASE("master of partition 0") {
    start({});
    args = {"master", n0 + ":1:0"};
  }
  SUBCASE("master --activate of a new partition") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1"});
    args = {"master", "--activate", n1 + ":1:1"};
  }
  SUBCASE("slave") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1"});
    fp->must("fill " + n0 + " 30 10");
    args = {"slave", n1 + ":2:0"};
  }
  SUBCASE("balance") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1", n1 + " slave active 0 1"});
    args = {"balance", n1 + ":3"};
  }
  SUBCASE("down of a slave") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1", n1 + " slave active 0 1"});
    args = {"down", n1};
  }
  SUBCASE("down of a master: a failover") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1", n1 + " slave active 0 1", n2 + " slave active 0 1"});
    args = {"down", n0};
  }
  SUBCASE("activate of a down node that answers") {
    start({"--revive-ms", "600000"}); // not brought back by the fake's monitor first
    apply_set_nodes(*fp, {n2 + " proxy down -1 0"});
    args = {"activate", n2};
  }
  SUBCASE("remove of a dead proxy") {
    start({});
    fp->must("kill " + n3);
    apply_set_nodes(*fp, {n3 + " proxy down -1 0"});
    args = {"remove", n3};
  }
  SUBCASE("reconstruct of a slave") {
    start({});
    apply_set_nodes(*fp, {n0 + " master active 0 1", n1 + " slave active 0 1", n2 + " slave active 0 1"});
    args = {"reconstruct", n1};
  }
  SUBCASE("part") {
    start({});
    args = {"part", n0 + ":1:0", n1 + ":1:0", n2 + ":1:1"};
  }
  REQUIRE(fp);
  FakeCluster& f = *fp;
  const auto idx = f.index_args();
  CAPTURE(args);
  const size_t before = f.state_changes().size();
  auto dry = run(with(with(args, {"-n"}), idx));
  CAPTURE(dry.out);
  CAPTURE(dry.err);
  REQUIRE(dry.status == 0);
  REQUIRE(f.state_changes().size() == before);
  const auto planned = apply_dry_requests(dry.out, f.index());
  CHECK_FALSE(planned.empty());
  auto real = run(with(with(args, {"--force"}), idx));
  CAPTURE(real.out);
  CAPTURE(real.err);
  REQUIRE(real.status == 0);
  auto all = f.state_changes();
  const std::vector<std::string> sent(all.begin() + static_cast<long>(before), all.end());
  CHECK(sent == planned);
}

TEST_CASE("apply --diff of a layout apply refuses is an error (2), not a match; check --layout says it") {
  FakeCluster f(3);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2);
  apply_set_nodes(f, {n0 + " master active 0 1", n1 + " master active 1 1", n2 + " slave active 1 1"});
  // Partition 1's slave listed, its master not: nothing differs, but the layout is wrong.
  const std::string layout = apply_layout_file(n0 + " 0 master - 1\n" + n2 + " 1 slave - 1\n");
  auto d = run(with({"apply", "--diff", layout}, idx));
  CHECK(d.status == 2);
  CHECK(d.out.empty());
  CHECK(d.err == "apply would refuse it: partition 1 has slaves but no master in the layout: name its master\n");
  auto c = run(with({"check", "--layout", layout}, idx));
  CHECK(c.status == 1);
  CHECK(apply_has(c.out, "layout_drift: apply refuses the layout " + layout));
}

TEST_CASE("apply's plan names every request its run sends, in order: a master moved to a new partition, its slave promoted") {
  // The layout a helper ran on a real flare 1.3.4 (index + 4 nodes, 20,000 keys): the requests in
  // --debug were the plan's, step by step; here each one is compared with what the fake received.
  FakeCluster f(4);
  const auto idx = f.index_args();
  const std::string n0 = f.node(0), n1 = f.node(1), n2 = f.node(2), n3 = f.node(3);
  apply_set_nodes(f, {n0 + " master active 0 1", n1 + " slave active 0 1"});
  f.must("fill " + n0 + " 200 10");
  const std::string layout = apply_layout_file(n1 + " 0 master - 1\n" + n2 + " 0 slave - 1\n" + n0 + " 1 master - 1\n" + n3 +
                                               " 1 slave - 2\n");
  const size_t before = f.state_changes().size();
  auto dry = run(with({"apply", "-n", layout}, idx));
  INFO(dry.out, dry.err);
  REQUIRE(dry.status == 0);
  std::vector<std::string> planned;
  std::istringstream in(dry.out);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("sends '"), to = line.find("' to ");
    if (line.rfind("         sends '", 0) != 0 || to == std::string::npos) continue;
    std::string target = line.substr(to + 5);
    target = target.substr(0, target.find(';'));
    planned.push_back((target == "the index" ? std::string("index") : target) + " " + line.substr(at + 7, to - at - 7));
  }
  CHECK(planned.size() == 10); // 2 + 1 + 3 + 3 + 1: a slave, the failover, the new master, its slave, a balance
  auto real = run(with({"apply", "--force", layout}, idx));
  INFO(real.out, real.err);
  REQUIRE(real.status == 0);
  auto all = f.state_changes();
  const std::vector<std::string> sent(all.begin() + static_cast<long>(before), all.end());
  CHECK(sent == planned);
  CHECK(apply_has(real.out, "the cluster matches the layout."));
}
