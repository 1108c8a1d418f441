// libFuzzer target: flare::parse_stats_nodes on the input split into lines (as read_reply
// hands them over, without the END line), then the cluster model and its renderers.
#include "../../flare_tools.hpp"
#include "fuzz_checks.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto lines = fuzz::split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<flare::NodeInfo> nodes;
  try {
    nodes = flare::parse_stats_nodes(lines);
  } catch (const flare::Error&) {
    return 0;
  }
  for (auto& n : nodes) {
    if (n.port < 1 || n.port > 65535) fuzz::fail("node port out of range", n.key);
    if (n.partition < -1) fuzz::fail("partition below -1", n.key);
    if (n.balance < 0) fuzz::fail("negative balance", n.key);
  }
  fuzz::exercise_nodes(nodes);
  return 0;
}
