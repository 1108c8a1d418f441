// Section 7a of flare_tools.hpp: layouts, and the plan that takes a cluster to one (apply). The
// planner is pure (a map in, steps out), so its rules are tested here without a process or a fake.
#include "flare_tools.hpp"
#include "test_nodes.hpp"

#include <doctest/doctest.h>

using namespace flare;

namespace {

Layout layout_of(const std::string& text) { return parse_layout(text); }

// Each step as its first command, for whole-plan comparisons.
std::vector<std::string> commands_of(const LayoutPlan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.steps)
    for (const auto& c : s.commands) out.push_back(c);
  return out;
}

std::string refusals_of(const LayoutPlan& p) {
  std::string out;
  for (const auto& r : p.refusals) out += r + "\n";
  return out;
}

// Partition 0: a master and a slave; partition 1: a master; two proxies.
Cluster two_partitions() {
  return Cluster({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
                  make_node("h:3", "master", "active", 1, 1), make_node("h:4", "proxy", "active", -1),
                  make_node("h:5", "proxy", "active", -1)});
}

// The layout the cluster is: what `list` prints of it, read back.
Layout as_listed(const Cluster& c) { return parse_layout(format_node_table(c.list_order())); }

// The cluster a plan leaves, step by step as flare 1.3.4 does each (a check that the planner's
// own model of the steps reaches the layout).
Cluster after(const Cluster& c, const LayoutPlan& p) {
  std::map<std::string, NodeInfo> nodes;
  for (const auto& n : c.nodes()) nodes[n.key] = n;
  for (const auto& s : p.steps) {
    NodeInfo& n = nodes[s.node];
    switch (s.kind) {
    case PlanStep::Kind::master:
    case PlanStep::Kind::slave:
      n.role = s.kind == PlanStep::Kind::master ? "master" : "slave";
      n.state = "active";
      n.partition = s.partition;
      n.balance = s.balance;
      break;
    case PlanStep::Kind::failover: {
      NodeInfo& w = nodes[s.source];
      int total = 0;
      for (const auto& [k, x] : nodes)
        if (x.is_slave() && x.partition == s.partition) total += x.balance;
      w.role = "master";
      if (total == 0) ++w.balance;
      n.role = "proxy";
      n.partition = -1;
      n.balance = 0;
      break;
    }
    case PlanStep::Kind::release:
      n.role = "proxy";
      n.partition = -1;
      n.balance = 0;
      break;
    case PlanStep::Kind::balance: n.balance = s.balance; break;
    case PlanStep::Kind::remove: nodes.erase(s.node); break;
    }
  }
  std::vector<NodeInfo> out;
  for (auto& [k, n] : nodes) out.push_back(n);
  return Cluster(out);
}

} // namespace

TEST_CASE("a layout is what list prints: its header, comments, blank lines and a missing state column are read") {
  Layout l = layout_of("node                             partition   role  state balance\n"
                       "h:1  0 master active 1   # the master\n"
                       "\n"
                       "# a comment line\n"
                       "h:2\t0\tslave\t2\n"
                       "h:4  -  proxy active 0\n");
  REQUIRE(l.nodes.size() == 3);
  CHECK(l.nodes[0].node == "h:1");
  CHECK(l.nodes[0].role == "master");
  CHECK(l.nodes[0].partition == 0);
  CHECK(l.nodes[0].balance == 1);
  CHECK(l.nodes[1].balance == 2);
  CHECK(l.nodes[1].line == 5);
  CHECK(l.nodes[2].partition == -1);
  CHECK(l.find("h:2") == &l.nodes[1]);
  CHECK(l.find("h:9") == nullptr);
}

TEST_CASE("a line that is not a node of a layout is refused with its number and the reason") {
  auto error_of = [](const std::string& text) {
    try {
      parse_layout(text);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("h:1 0 master active 1\nh:2 0 boss active 1\n") ==
        "line 2: the role is master, slave or proxy: h:2 0 boss active 1");
  CHECK(error_of("h:1 0 master active 1\nh:1 0 slave active 1\n") ==
        "line 2: h:1 is listed twice (line 1 too): h:1 0 slave active 1");
  CHECK(error_of("h:1 0 master active 0\n").find("a master's balance is more than 0") != std::string::npos);
  CHECK(error_of("h:1 - slave active 1\n").find("a slave needs a partition") != std::string::npos);
  CHECK(error_of("h:1 3 proxy active 0\n").find("a proxy has no partition") != std::string::npos);
  CHECK(error_of("h:1 - proxy active 1\n").find("a proxy's balance is 0") != std::string::npos);
  CHECK(error_of("h:1 x master active 1\n").find("the partition is a number") != std::string::npos);
  CHECK(error_of("h:1 0 master active -1\n").find("the balance is a number") != std::string::npos);
  CHECK(error_of("h 0 master active 1\n").find("'h' is not HOST:PORT") != std::string::npos);
  CHECK(error_of("h:1 0 master\n").find("line 1: a node is 'HOST:PORT PARTITION ROLE STATE BALANCE'") != std::string::npos);
}

TEST_CASE("the cluster as list prints it is a layout it already matches: nothing to do") {
  SUBCASE("two partitions and proxies") {
    Cluster c = two_partitions();
    LayoutPlan p = plan_layout(c, as_listed(c));
    CHECK(p.converged());
    CHECK(layout_differences(c, as_listed(c)).empty());
  }
  SUBCASE("no node at all") {
    LayoutPlan p = plan_layout(Cluster(), Layout());
    CHECK(p.converged());
  }
}

TEST_CASE("a new cluster: the masters of new partitions in partition order, each activated, then the slaves") {
  Cluster c({make_node("h:1", "proxy", "active", -1), make_node("h:2", "proxy", "active", -1),
             make_node("h:3", "proxy", "active", -1), make_node("h:4", "proxy", "active", -1)});
  Layout l = layout_of("h:4 1 slave - 2\nh:3 1 master - 1\nh:2 0 slave - 1\nh:1 0 master - 1\n");
  LayoutPlan p = plan_layout(c, l);
  REQUIRE(p.refusals.empty());
  CHECK(commands_of(p) == std::vector<std::string>{"flare-admin master --activate h:1:1:0", "flare-admin master --activate h:3:1:1",
                                                   "flare-admin slave h:2:1:0", "flare-admin slave h:4:2:1"});
  CHECK(p.steps[2].source == "h:1");
  CHECK(p.steps[3].source == "h:3");
  CHECK(p.warnings.empty());
  CHECK(plan_layout(after(c, p), l).converged());
}

TEST_CASE("a slave added and a partition added to a running cluster: additions only, balances last") {
  Cluster c = two_partitions();
  Layout l = layout_of("h:1 0 master - 1\nh:2 0 slave - 3\nh:3 1 master - 1\nh:4 1 slave - 1\nh:5 2 master - 1\n");
  LayoutPlan p = plan_layout(c, l);
  REQUIRE(p.refusals.empty());
  CHECK(commands_of(p) == std::vector<std::string>{"flare-admin master --activate h:5:1:2", "flare-admin slave h:4:1:1",
                                                   "flare-admin balance h:2:3"});
  CHECK(p.steps[0].items_bound);
  annotate_plan(p, {{"h:1", 100}, {"h:3", 50}, {"h:4", 7}, {"h:5", 0}}, {"h:1", "h:3"});
  CHECK(p.steps[0].items == 150);
  CHECK(p.steps[0].held == 0);
  CHECK(p.steps[1].items == 50);
  CHECK(p.steps[1].held == 7);
  CHECK(format_layout_plan(p).find("  2. build h:4 as a slave of partition 1 from h:3, then give it balance 1 (copies at most 50 "
                                   "items); flush_all first deletes the 7 items it holds\n"
                                   "       flare-admin slave --discard-items h:4:1:1\n") != std::string::npos);
  CHECK(commands_of(p)[0] == "flare-admin master --activate h:5:1:2"); // holds nothing: no --discard-items
  CHECK(plan_layout(after(c, p), l).converged());
}

TEST_CASE("a master swapped for its slave: a planned failover, the old master rebuilt as the slave the layout names") {
  Cluster c = two_partitions();
  Layout l = layout_of("h:2 0 master - 1\nh:1 0 slave - 1\nh:3 1 master - 1\n");
  LayoutPlan p = plan_layout(c, l);
  REQUIRE(p.refusals.empty());
  CHECK(commands_of(p) == std::vector<std::string>{"flare-admin down h:1", "flare-admin slave --discard-items h:1:1:0"});
  CHECK(p.steps[0].kind == PlanStep::Kind::failover);
  CHECK(p.steps[0].source == "h:2");
  CHECK(p.steps[1].discard);
  REQUIRE(p.warnings.size() == 1);
  CHECK(p.warnings[0].find("a failover loses the writes") == 0);
  CHECK(plan_layout(after(c, p), l).converged());
  CHECK(p.not_in_layout == std::vector<std::string>{"h:4 (proxy active)", "h:5 (proxy active)"});
}

TEST_CASE("a failover goes where flare sends it: the active slave of the highest balance, the first by key on a tie") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
             make_node("h:3", "slave", "active", 0, 1), make_node("h:4", "slave", "active", 0, 0)});
  SUBCASE("the layout names the slave flare promotes") {
    LayoutPlan p = plan_layout(c, layout_of("h:2 0 master - 1\nh:1 0 slave - 1\nh:3 0 slave - 1\nh:4 0 slave - 0\n"));
    CHECK(p.refusals.empty());
    CHECK(p.steps.size() == 2);
  }
  SUBCASE("another slave: refused, with the way out") {
    LayoutPlan p = plan_layout(c, layout_of("h:3 0 master - 1\nh:1 0 slave - 1\nh:2 0 slave - 1\nh:4 0 slave - 0\n"));
    CHECK(p.steps.empty());
    CHECK(refusals_of(p) == "a failover of partition 0 goes to h:2, not h:3: flare 1.3.4 promotes the active slave of the "
                            "highest balance (the first by name on a tie). Give h:3 the highest balance first (flare-admin "
                            "balance h:3:N), or make h:2 the master in the layout\n");
  }
  SUBCASE("a new slave that would outrank the one named is built at balance 0, and gets its balance last") {
    Cluster c2({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
                make_node("h:10", "proxy", "active", -1)});
    Layout l = layout_of("h:2 0 master - 1\nh:1 0 slave - 1\nh:10 0 slave - 5\n");
    LayoutPlan p = plan_layout(c2, l);
    REQUIRE(p.refusals.empty());
    CHECK(commands_of(p) == std::vector<std::string>{"flare-admin slave h:10:0:0", "flare-admin down h:1",
                                                     "flare-admin slave --discard-items h:1:1:0", "flare-admin balance h:10:5"});
    CHECK(plan_layout(after(c2, p), l).converged());
  }
}

TEST_CASE("a layout that would take data away, or cannot be carried out, is refused with nothing planned") {
  Cluster c = two_partitions();
  auto refused = [&](const std::string& text) {
    LayoutPlan p = plan_layout(c, layout_of(text));
    CHECK(p.steps.empty());
    return refusals_of(p);
  };
  // A partition the layout does not mention is left as it is; one whose master it moves, or
  // --prune would take away, is refused.
  CHECK(plan_layout(c, layout_of("h:1 0 master - 1\nh:2 0 slave - 1\n")).converged());
  CHECK(refused("h:1 0 master - 1\nh:2 0 slave - 1\nh:3 0 slave - 1\n") ==
        "the layout has no partition 1, which the cluster serves (it moves its master h:3 elsewhere): flare 1.3.4 cannot take a "
        "partition away (its keys would be lost to readers); list its master in the layout\n");
  LayoutOptions prune;
  prune.prune = true;
  CHECK(refusals_of(plan_layout(c, layout_of("h:1 0 master - 1\nh:2 0 slave - 1\n"), prune)) ==
        "the layout has no partition 1, which the cluster serves (--prune would take its master h:3 away): flare 1.3.4 cannot "
        "take a partition away (its keys would be lost to readers); list its master in the layout\n");
  // A layout that lists a slave of a partition but not its master names that, and only that.
  CHECK(refused("h:1 0 master - 1\nh:2 1 slave - 1\n") == "partition 1 has slaves but no master in the layout: name its master\n");
  CHECK(refused("h:1 0 master - 1\nh:3 1 master - 1\nh:4 3 master - 1\n").find(
            "partition 2 has no master in the layout, though partition 3 has") != std::string::npos);
  CHECK(refused("h:1 0 master - 1\nh:3 1 master - 1\nh:4 1 master - 1\n").find("partition 1 has two masters") != std::string::npos);
  CHECK(refused("h:1 0 master - 1\nh:3 1 master - 1\nh:4 2 slave - 1\n").find(
            "partition 2 has slaves but no master in the layout") != std::string::npos);
  CHECK(refused("h:1 0 master - 1\nh:3 1 master - 1\nh:9 0 slave - 1\n").find(
            "h:9 (line 3) is not in the cluster: start its flared") != std::string::npos);
  // A proxy made the master of a partition that has data: it would serve none of it.
  CHECK(refused("h:4 0 master - 1\nh:1 0 slave - 1\nh:3 1 master - 1\n").find(
            "h:4 would become the master of partition 0 with none of its data") != std::string::npos);
  // The master a swap replaces must be named (never taken out by omission).
  CHECK(refused("h:2 0 master - 1\nh:3 1 master - 1\n").find(
            "partition 0's master h:1 is not in the layout, which makes h:2 its master") != std::string::npos);
}

TEST_CASE("nodes down or copying are refused until they are up or done") {
  Cluster c({make_node("h:1", "master", "down", 0, 1), make_node("h:2", "proxy", "down", -1),
             make_node("h:3", "slave", "prepare", 0, 0), make_node("h:4", "proxy", "active", -1)});
  LayoutPlan p = plan_layout(c, layout_of("h:1 0 master - 1\nh:2 0 slave - 1\nh:3 - proxy - 0\n"));
  CHECK(p.steps.empty());
  const std::string r = refusals_of(p);
  CHECK(r.find("h:1 is master down: start its flared (the index brings it back with its data)") != std::string::npos);
  CHECK(r.find("h:2 is proxy down: start its flared (the index brings it back as a proxy)") != std::string::npos);
  CHECK(r.find("h:3 is slave prepare of partition 0 (a copy under way): let it finish") != std::string::npos);
}

TEST_CASE("a run cut short is finished by the next plan: a copy under way is waited for, not started again") {
  SUBCASE("a slave in prepare where the layout puts it") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "prepare", 0, 0)});
    LayoutPlan p = plan_layout(c, layout_of("h:1 0 master - 1\nh:2 0 slave - 2\n"));
    CHECK(commands_of(p) == std::vector<std::string>{"flare-admin slave h:2:2:0"});
    CHECK(p.steps[0].what.rfind("finish building h:2 as a slave", 0) == 0);
  }
  SUBCASE("a new partition's master ready") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "master", "ready", 1, 1)});
    LayoutPlan p = plan_layout(c, layout_of("h:1 0 master - 1\nh:2 1 master - 1\n"));
    CHECK(commands_of(p) == std::vector<std::string>{"flare-admin master --activate h:2:1:1"});
    CHECK(p.steps[0].what.rfind("finish h:2 as the master of new partition 1", 0) == 0);
  }
}

TEST_CASE("a slave moved to another partition is taken out after the additions, then built where the layout puts it") {
  Cluster c = two_partitions();
  Layout l = layout_of("h:1 0 master - 1\nh:3 1 master - 1\nh:2 1 slave - 1\nh:4 0 slave - 1\n");
  LayoutPlan p = plan_layout(c, l);
  REQUIRE(p.refusals.empty());
  CHECK(commands_of(p) == std::vector<std::string>{"flare-admin slave h:4:1:0", "flare-admin down h:2",
                                                   "flare-admin slave --discard-items h:2:1:1"});
  CHECK(plan_layout(after(c, p), l).converged());
}

TEST_CASE("nodes the layout leaves out are left alone, unless --prune") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
             make_node("h:3", "proxy", "down", -1), make_node("h:4", "proxy", "active", -1)});
  Layout l = layout_of("h:1 0 master - 1\n");
  LayoutPlan kept = plan_layout(c, l);
  CHECK(kept.converged());
  CHECK(kept.not_in_layout == std::vector<std::string>{"h:2 (slave active, partition 0)", "h:3 (proxy down)", "h:4 (proxy active)"});
  CHECK(layout_differences(c, l).empty());
  LayoutOptions prune;
  prune.prune = true;
  LayoutPlan pruned = plan_layout(c, l, prune);
  CHECK(commands_of(pruned) == std::vector<std::string>{"flare-admin down h:2", "flare-admin remove h:3"});
  CHECK(pruned.not_in_layout == std::vector<std::string>{"h:4 (proxy active)"});
  CHECK(layout_differences(c, l, prune) == std::vector<std::string>{"h:2: slave active of partition 0, balance 1; not in the layout (--prune)",
                                                                    "h:3: proxy down; not in the layout (--prune)"});
}

TEST_CASE("layout_differences names each node that differs, and how") {
  Cluster c = two_partitions();
  Layout l = layout_of("h:1 0 master - 2\nh:2 0 slave - 1\nh:3 1 master - 1\nh:4 1 slave - 1\nh:9 - proxy - 0\n");
  CHECK(layout_differences(c, l) == std::vector<std::string>{
                                        "h:1: master active of partition 0, balance 1; the layout: master of partition 0, balance 2",
                                        "h:4: proxy active; the layout: slave of partition 1, balance 1",
                                        "h:9: not in the cluster; the layout: proxy"});
}

TEST_CASE("a saved plan keeps its index, version, --prune and layout, and nothing else reads as one") {
  Cluster c = two_partitions();
  Layout l = layout_of("h:1 0 master - 1\nh:2 0 slave - 1\nh:3 1 master - 1\nh:4 1 slave - 1\n");
  SavedPlan s{"127.0.0.1:12120", 42, true, l};
  const std::string text = format_saved_plan(s, plan_layout(c, l));
  CHECK(text.find("#  1. build h:4 as a slave of partition 1") != std::string::npos);
  SavedPlan back = parse_saved_plan(text);
  CHECK(back.index == "127.0.0.1:12120");
  CHECK(back.node_map_version == 42);
  CHECK(back.prune);
  CHECK(layout_differences(after(c, plan_layout(c, l)), back.layout).empty());
  CHECK_THROWS_AS(parse_saved_plan("h:1 0 master active 1\n"), InputError);
  CHECK_THROWS_AS(parse_saved_plan(std::string(kSavedPlanFirstLine) + "\n# index h:1\nh:1 0 master - 1\n"), InputError);
}

TEST_CASE("balance's rules, decided from the map: a proxy refused, the same balance skipped, no reader left refused") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 0),
             make_node("h:3", "proxy", "active", -1)});
  auto arg = [](const std::string& text) { return parse_node_arg(text, 3, 3); };
  SUBCASE("a change: the request and 0.7.3's question") {
    NodeDecision d = decide_balance(c, arg("h:2:3"), false);
    CHECK(d.kind == NodeDecision::Kind::send);
    CHECK(d.request == "node role h 2 slave 3 0");
    CHECK(d.prompt == "updating node balance (node=h:2, balance=0 -> 3) (y/n): ");
  }
  SUBCASE("a proxy") {
    NodeDecision d = decide_balance(c, arg("h:3:1"), false);
    CHECK(d.kind == NodeDecision::Kind::refuse);
    CHECK(d.message == "h:3 is a proxy: a balance applies to masters and slaves only.");
  }
  SUBCASE("the same balance") {
    CHECK(decide_balance(c, arg("h:1:1"), false).kind == NodeDecision::Kind::skip);
  }
  SUBCASE("the master to 0 while its only slave reads nothing: refused, unless --unsafe") {
    NodeDecision d = decide_balance(c, arg("h:1:0"), false);
    CHECK(d.kind == NodeDecision::Kind::refuse);
    CHECK(d.message == "refused: balance 0 on h:1 leaves partition 0 no active node of balance above 0 to read from. "
                       "Nothing was changed; --unsafe sets it anyway.");
    CHECK(decide_balance(c, arg("h:1:0"), true).kind == NodeDecision::Kind::send);
  }
  SUBCASE("a node the map does not list") {
    CHECK(decide_balance(c, arg("h:9:1"), false).kind == NodeDecision::Kind::unknown);
  }
  SUBCASE("a slave still copying: flarei refuses it; the way on is slave again, which waits for the copy") {
    Cluster copying({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "prepare", 0, 0)});
    NodeDecision d = decide_balance(copying, arg("h:2:3"), false);
    CHECK(d.kind == NodeDecision::Kind::refuse);
    CHECK(d.message == "h:2 is slave prepare, still copying: the index refuses its balance until its copy is done.");
    CHECK(d.advice == "To give it balance 3 once it is, run: flare-admin slave h:2:3:0 (it waits for the copy, then gives the balance)");
  }
}

TEST_CASE("remove's rules, decided from the map: a down proxy or a replaced down master goes, nothing else") {
  Cluster c({make_node("h:1", "master", "down", 0, 1), make_node("h:2", "master", "active", 0, 1),
             make_node("h:3", "proxy", "down", -1), make_node("h:4", "slave", "active", 0, 1),
             make_node("h:5", "master", "down", 1, 1)});
  auto arg = [](const std::string& text) { return parse_node_arg(text, 2, 2); };
  CHECK(decide_remove(c, arg("h:3")).request == "node remove h 3");
  CHECK(decide_remove(c, arg("h:1")).kind == NodeDecision::Kind::send); // its partition has another master
  NodeDecision only = decide_remove(c, arg("h:5"));
  CHECK(only.kind == NodeDecision::Kind::refuse);
  CHECK(only.message == "node is the down master of partition 1 and holds its only copy; the index keeps it. (node=h:5)");
  CHECK(decide_remove(c, arg("h:4")).message == "node should role=proxy and state=down. (node=h:4 role=slave state=active)");
  CHECK(decide_remove(c, arg("h:9")).message == "node not found in cluster. (node=h:9)");
}

TEST_CASE("slave's rules, decided from the map: resume, not a proxy (with the way to move it), proxy down, no master") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "prepare", 0, 0),
             make_node("h:3", "proxy", "down", -1), make_node("h:4", "proxy", "active", -1),
             make_node("h:5", "master", "down", 1, 1)});
  auto arg = [](const std::string& text) { return parse_node_arg(text, 3, 4); };
  CHECK(decide_slave(c, arg("h:2:1:0")).kind == NodeDecision::Kind::resume);
  NodeDecision send = decide_slave(c, arg("h:4:1:0"));
  CHECK(send.kind == NodeDecision::Kind::send);
  CHECK(send.request == "node role h 4 slave 0 0");
  NodeDecision moved = decide_slave(c, arg("h:2:1:1"));
  CHECK(moved.kind == NodeDecision::Kind::refuse);
  CHECK(moved.message == "h:2 is not a proxy.");
  CHECK(moved.advice == "h:2 is already a slave of partition 0 (prepare); to move it to partition 1 (`reconstruct` keeps "
                        "its partition), turn it down: flare-admin down h:2; once the index brings it back as proxy active, "
                        "run: flare-admin slave h:2:1:1");
  NodeDecision down = decide_slave(c, arg("h:3:1:0"));
  CHECK(down.kind == NodeDecision::Kind::refuse);
  CHECK(down.message.empty());
  CHECK(down.advice.rfind("h:3 is proxy down: its flared is not running, or it was set down a moment ago", 0) == 0);
  CHECK(decide_slave(c, arg("h:4:1:1")).message == "partition 1 has no master to copy from.");
  CHECK(decide_slave(c, arg("h:9:1:0")).kind == NodeDecision::Kind::unknown);
}

TEST_CASE("master's rules, decided from the map: resume, a live master, not a proxy, a down master's only copy, not yet") {
  auto arg = [](const std::string& text) { return parse_node_arg(text, 4, 4); };
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "master", "ready", 1, 1),
             make_node("h:3", "proxy", "active", -1), make_node("h:4", "slave", "active", 0, 1)});
  CHECK(decide_master(c, arg("h:2:1:1"), false).kind == NodeDecision::Kind::resume);
  CHECK(decide_master(c, arg("h:3:1:0"), false).message == "the partition already has a master h:1.");
  CHECK(decide_master(c, arg("h:4:1:2"), false).message == "h:4 is not a proxy.");
  CHECK(decide_master(c, arg("h:3:1:2"), false).message ==
        "partition 2 cannot be made now: the next new partition is 2, after the ready one is activated.");
  CHECK(decide_master(c, arg("h:3:1:5"), false).kind == NodeDecision::Kind::refuse);
  Cluster down({make_node("h:1", "master", "down", 0, 1), make_node("h:3", "proxy", "active", -1)});
  NodeDecision kept = decide_master(down, arg("h:3:1:0"), false);
  CHECK(kept.kind == NodeDecision::Kind::refuse);
  CHECK(kept.message.find("h:1 holds its only copy of the data") != std::string::npos);
  NodeDecision replaced = decide_master(down, arg("h:3:1:0"), true);
  CHECK(replaced.kind == NodeDecision::Kind::send);
  CHECK(replaced.advice.rfind("replacing the down master h:1 of partition 0: h:3 starts empty", 0) == 0);
  CHECK(replaced.request == "node role h 3 master 1 0");
}

TEST_CASE("down's rules, decided from the map: already down skipped, the last active slave warned of, a master failed over") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
             make_node("h:3", "proxy", "down", -1), make_node("h:4", "slave", "active", 1, 1),
             make_node("h:5", "slave", "active", 1, 1), make_node("h:6", "master", "active", 1, 1)});
  auto arg = [](const std::string& text) { return parse_node_arg(text, 2, 2); };
  SUBCASE("a master: the request and 0.7.3's question; the failover is the executor's") {
    NodeDecision d = decide_down(c, arg("h:1"));
    CHECK(d.kind == NodeDecision::Kind::send);
    CHECK(d.request == "node state h 1 down");
    CHECK(d.prompt == "turning node down (node=h:1, state=active -> down) (y/n): ");
    CHECK(d.advice.empty());
  }
  SUBCASE("the last active slave of its partition: sent, with the warning said first") {
    NodeDecision d = decide_down(c, arg("h:2"));
    CHECK(d.kind == NodeDecision::Kind::send);
    CHECK(d.advice == "warning: h:2 is the last active slave of partition 0: set down, the partition has no redundancy "
                      "until a slave is built (flare-admin slave HOST:PORT:BALANCE:0).");
    CHECK(decide_down(c, arg("h:4")).advice.empty()); // h:5 is still there
  }
  SUBCASE("already down, and a node the map does not list") {
    NodeDecision d = decide_down(c, arg("h:3"));
    CHECK(d.kind == NodeDecision::Kind::skip);
    CHECK(d.message == "h:3 is already down.");
    NodeDecision unknown = decide_down(c, arg("h:9"));
    CHECK(unknown.kind == NodeDecision::Kind::unknown);
    CHECK(unknown.message.rfind("invalid 'hostname:port' pair: ", 0) == 0);
  }
}

TEST_CASE("activate's rules, decided from the map: a copy under way waited for, never activated; already active skipped") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "prepare", 0, 1),
             make_node("h:3", "master", "prepare", 1, 1), make_node("h:4", "master", "ready", 2, 1),
             make_node("h:5", "proxy", "down", -1)});
  auto arg = [](const std::string& text) { return parse_node_arg(text, 2, 2); };
  CHECK(decide_activate(c, arg("h:2")).kind == NodeDecision::Kind::resume);
  CHECK(decide_activate(c, arg("h:3")).kind == NodeDecision::Kind::resume);
  NodeDecision ready = decide_activate(c, arg("h:4"));
  CHECK(ready.kind == NodeDecision::Kind::send);
  CHECK(ready.request == "node state h 4 active");
  CHECK(ready.prompt == "turning node up (node=h:4, state=ready -> activate) (y/n): ");
  CHECK(decide_activate(c, arg("h:5")).request == "node state h 5 active");
  NodeDecision active = decide_activate(c, arg("h:1"));
  CHECK(active.kind == NodeDecision::Kind::skip);
  CHECK(active.message == "h:1 is already active.");
  CHECK(decide_activate(c, arg("h:9")).kind == NodeDecision::Kind::unknown);
}

TEST_CASE("reconstruct's rules, decided from the map: the only serving copy refused with the way out, no redundancy only --unsafe") {
  auto arg = [](const std::string& text) { return parse_node_arg(text, 2, 2); };
  SUBCASE("a master with two active slaves, or a slave beside another: rebuilt safely") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
               make_node("h:3", "slave", "active", 0, 1)});
    for (const char* node : {"h:1", "h:2"}) {
      NodeDecision d = decide_reconstruct(c, arg(node), false);
      CHECK(d.kind == NodeDecision::Kind::send);
      CHECK(d.advice.empty());
    }
    NodeDecision d = decide_reconstruct(c, arg("h:1"), false);
    CHECK(d.request == "node state h 1 down");
    CHECK(d.prompt == "reconstructing node (node=h:1, role=master) (y/n/a/q/h:help): ");
  }
  SUBCASE("a master with one active slave: refused, unless --unsafe, which says it") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1)});
    NodeDecision d = decide_reconstruct(c, arg("h:1"), false);
    CHECK(d.kind == NodeDecision::Kind::refuse);
    CHECK(d.message == "The partition needs one more slave to reconstruct h:1 safely.");
    CHECK(d.advice.find("flare-admin slave HOST:PORT:BALANCE:0, then run this again") != std::string::npos);
    NodeDecision unsafe = decide_reconstruct(c, arg("h:1"), true);
    CHECK(unsafe.kind == NodeDecision::Kind::send);
    CHECK(unsafe.advice == "you are trying to reconstruct h:1 without redanduncy.");
  }
  SUBCASE("a master alone, a proxy, a node down: not reconstructable, each with its way out") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "proxy", "active", -1),
               make_node("h:3", "proxy", "down", -1), make_node("h:4", "master", "ready", 1, 2)});
    NodeDecision alone = decide_reconstruct(c, arg("h:1"), true);
    CHECK(alone.kind == NodeDecision::Kind::refuse);
    CHECK(alone.message == "h:1 is not reconstructable.");
    CHECK(alone.advice.find("has no active slave to take over while it is rebuilt") != std::string::npos);
    CHECK(decide_reconstruct(c, arg("h:2"), false).advice.find("flare-admin slave --discard-items h:2:BALANCE:PARTITION") !=
          std::string::npos);
    // The balance an earlier run cut short was to give is named, not a placeholder.
    PendingBalance kept{"i:1", "h:3", 0, 5, 0};
    CHECK(decide_reconstruct(c, arg("h:3"), false, kept).advice.find("flare-admin slave --discard-items h:3:5:0") !=
          std::string::npos);
    // From the map alone the flared's fate is not known: a node set down a moment ago, its flared
    // running, is proxy down too until the index brings it back (seen on a real flare 1.3.4).
    CHECK(decide_reconstruct(c, arg("h:3"), false).advice.find(
              "its flared is not running (a node whose flared stops loses its partition), or it was set down a moment "
              "ago and the index brings it back as a proxy") != std::string::npos);
    CHECK(decide_reconstruct(c, arg("h:4"), false).advice.find("flare-admin master --activate h:4:2:1") != std::string::npos);
  }
  SUBCASE("a slave still copying: waited for, not rebuilt again; a node not in the map stops the command") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "prepare", 0, 1)});
    CHECK(decide_reconstruct(c, arg("h:2"), false).kind == NodeDecision::Kind::resume);
    NodeDecision unknown = decide_reconstruct(c, arg("h:9"), false);
    CHECK(unknown.kind == NodeDecision::Kind::unknown);
    CHECK(unknown.message == "h:9 is not found in this cluster.");
  }
}

TEST_CASE("part's plan: the first node named for each partition is its master, the others its slaves, in the order given") {
  std::vector<NodeArg> args;
  for (const char* text : {"h:1:1:1", "h:2:1:0", "h:3:1:1", "h:4:2:0", "h:5:1:2"}) args.push_back(parse_node_arg(text, 4, 4));
  const PartPlan p = plan_part(args);
  std::vector<std::string> masters, slaves;
  for (const auto& a : p.masters) masters.push_back(a.text);
  for (const auto& a : p.slaves) slaves.push_back(a.text);
  CHECK(masters == std::vector<std::string>{"h:1:1:1", "h:2:1:0", "h:5:1:2"});
  CHECK(slaves == std::vector<std::string>{"h:3:1:1", "h:4:2:0"});
}

TEST_CASE("each step of a plan names the requests its command sends, in order, and what it waits for") {
  auto lines = [](const PlanStep& s) {
    std::vector<std::string> out;
    for (const auto& r : s.requests) out.push_back((r.to.empty() ? std::string("index") : r.to) + " " + r.line);
    return out;
  };
  SUBCASE("a new partition's master, a slave, a balance") {
    Cluster c = two_partitions();
    LayoutPlan p = plan_layout(c, layout_of("h:1 0 master - 1\nh:2 0 slave - 3\nh:3 1 master - 1\nh:4 1 slave - 1\nh:5 2 master - 2\n"));
    REQUIRE(p.steps.size() == 3);
    CHECK(lines(p.steps[0]) == std::vector<std::string>{"h:5 flush_all", "index node role h 5 master 2 2", "index node state h 5 active"});
    CHECK(p.steps[0].requests[1].then.find("until it is master ready") != std::string::npos);
    CHECK(lines(p.steps[1]) == std::vector<std::string>{"h:4 flush_all", "index node role h 4 slave 0 1", "index node role h 4 slave 1 1"});
    CHECK(p.steps[1].requests[1].then.find("its copy from h:3, until it is slave active") != std::string::npos);
    CHECK(lines(p.steps[2]) == std::vector<std::string>{"index node role h 2 slave 3 0"});
  }
  SUBCASE("partition 0's master is active at once: no activation") {
    Cluster c({make_node("h:1", "proxy", "active", -1)});
    LayoutPlan p = plan_layout(c, layout_of("h:1 0 master - 1\n"));
    REQUIRE(p.steps.size() == 1);
    CHECK(lines(p.steps[0]) == std::vector<std::string>{"h:1 flush_all", "index node role h 1 master 1 0"});
  }
  SUBCASE("a master moved to a new partition: its step waits first for the index to bring it back as a proxy") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
               make_node("h:3", "proxy", "active", -1), make_node("h:4", "proxy", "active", -1)});
    LayoutPlan p = plan_layout(c, layout_of("h:2 0 master - 1\nh:3 0 slave - 1\nh:1 1 master - 1\nh:4 1 slave - 1\n"));
    REQUIRE(p.refusals.empty());
    const auto moved = std::find_if(p.steps.begin(), p.steps.end(),
                                    [](const PlanStep& s) { return s.kind == PlanStep::Kind::master && s.node == "h:1"; });
    REQUIRE(moved != p.steps.end());
    CHECK(moved->waits_first == "the index to bring h:1 back as proxy active (an earlier step set it down)");
    CHECK(format_layout_plan(p, true).find("         waits first for the index to bring h:1 back") != std::string::npos);
    CHECK(format_layout_plan(p).find("waits first") == std::string::npos); // the plan before the question: steps only
    for (const auto& s : p.steps)
      if (&s != &*moved) CHECK(s.waits_first.empty());
  }
  SUBCASE("a failover and a release send a down each; a copy under way sends nothing until it is done") {
    Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
               make_node("h:3", "slave", "prepare", 0, 0), make_node("h:4", "slave", "active", 0, 1)});
    LayoutPlan p = plan_layout(c, layout_of("h:2 0 master - 1\nh:3 0 slave - 1\nh:1 - proxy - 0\n"));
    REQUIRE(p.refusals.empty());
    std::vector<std::string> all;
    for (const auto& s : p.steps)
      for (const auto& l : lines(s)) all.push_back(l);
    CHECK(all.front() == "index node role h 3 slave 1 0"); // finish h:3: its balance once its copy is done
    CHECK(std::find(all.begin(), all.end(), "index node state h 1 down") != all.end());
    CHECK(std::count(all.begin(), all.end(), "h:3 flush_all") == 0);
  }
}
