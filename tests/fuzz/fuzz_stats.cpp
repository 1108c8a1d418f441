// libFuzzer target: flare::parse_stats on the input split into lines, then a flare-stats
// row built from it: stats_cells, format_stats_table, format_stats_json (with and without
// the qps columns), and the same for a node that did not answer.
#include "../../flare_tools.hpp"
#include "fuzz_checks.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto lines = fuzz::split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  flare::NodeStats s;
  try {
    s = flare::parse_stats(lines);
  } catch (const flare::Error&) {
    return 0;
  }
  if (s.fields.size() != lines.size()) fuzz::fail("parse_stats lost or added fields");
  for (auto& f : s.fields) {
    if (f.first.empty() || f.first.find(' ') != std::string::npos) fuzz::fail("bad stats field name");
    auto n = s.number(f.first);
    if (n && *n < 0) fuzz::fail("number() returned a negative value");
  }
  fuzz::exercise_stats(s);
  return 0;
}
