// libFuzzer target: flare::parse_layout and flare::parse_saved_plan on the input (an operator's
// file), then flare::plan_layout of what parsed against a fixed cluster. Only flare::Error may
// escape the parsers (caught here); a layout that parses plans without throwing, every node it
// names is one it read, and its own table (format_layout) parses back to the same nodes.
#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"
#include "../test_nodes.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    flare::parse_saved_plan(text);
  } catch (const flare::Error&) {
  }
  flare::Layout l;
  try {
    l = flare::parse_layout(text);
  } catch (const flare::Error&) {
    return 0;
  }
  static const flare::Cluster cluster({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1),
                                       make_node("h:3", "proxy", "active", -1, 0), make_node("h:4", "master", "down", 1, 1),
                                       make_node("h:5", "slave", "prepare", 1, 0)});
  for (bool prune : {false, true}) {
    flare::LayoutOptions o;
    o.prune = prune;
    flare::LayoutPlan p = flare::plan_layout(cluster, l, o);
    if (!p.refusals.empty() && !p.steps.empty()) fuzz::fail("a refused plan has steps");
    for (const auto& s : p.steps)
      if (!l.find(s.node) && !cluster.find(s.node)) fuzz::fail("a step names a node neither side has", s.node);
    flare::layout_differences(cluster, l, o);
  }
  flare::Layout back = flare::parse_layout(flare::format_layout(l));
  if (back.nodes.size() != l.nodes.size()) fuzz::fail("format_layout does not read back");
  for (const auto& n : l.nodes) {
    const flare::LayoutNode* b = back.find(n.node);
    if (!b || b->role != n.role || b->partition != n.partition || b->balance != n.balance)
      fuzz::fail("format_layout reads back differently", n.node);
  }
  return 0;
}
