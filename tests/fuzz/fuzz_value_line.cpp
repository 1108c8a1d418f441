// libFuzzer target: flare::parse_value_line on the input as one line.
// Only flare::Error may escape (caught here); on success the header is checked against the
// line and re-written the way ItemWriter writes it, which must parse back identically.
#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  flare::ItemHeader h;
  try {
    h = flare::parse_value_line(line);
  } catch (const flare::Error&) {
    return 0;
  }
  if (h.key.empty() || h.key.size() > FLARE_TOOLS_MAX_KEY_BYTES || h.key.find(' ') != std::string::npos)
    fuzz::fail("parse_value_line accepted a bad key", flare::detail::printable(h.key));
  if (h.flags > UINT32_MAX) fuzz::fail("flags out of range");
  if (h.length > static_cast<size_t>(FLARE_TOOLS_MAX_VALUE_BYTES)) fuzz::fail("length over the limit");
  if (h.expire < 0) fuzz::fail("negative expire");
  if (line.find(h.key) == std::string_view::npos) fuzz::fail("key is not part of the line");

  std::string again = "VALUE " + h.key + " " + std::to_string(h.flags) + " " + std::to_string(h.length) + " " +
                      std::to_string(h.version) + " " + std::to_string(h.expire);
  flare::ItemHeader h2;
  try {
    h2 = flare::parse_value_line(again);
  } catch (const flare::Error& e) {
    fuzz::fail("a re-written VALUE line does not parse", e.what());
  }
  if (h2.key != h.key || h2.flags != h.flags || h2.length != h.length || h2.version != h.version ||
      h2.expire != h.expire)
    fuzz::fail("a re-written VALUE line parses differently", again);
  return 0;
}
