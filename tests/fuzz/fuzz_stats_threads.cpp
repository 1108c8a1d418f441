// libFuzzer target: flare::parse_stats_threads on the input split into lines, then
// format_threads_table and format_threads_json.
#include "../../flare_tools.hpp"
#include "fuzz_checks.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto lines = fuzz::split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<flare::ThreadInfo> threads;
  try {
    threads = flare::parse_stats_threads(lines);
  } catch (const flare::Error&) {
    return 0;
  }
  if (threads.size() > lines.size()) fuzz::fail("more threads than lines");
  fuzz::exercise_threads(threads);
  return 0;
}
