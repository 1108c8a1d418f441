// libFuzzer target: flare::ItemReader in DataFormat::flare (a dump file: VALUE lines, data,
// END) over the input, reading every item. Properties:
//  * the data-free first pass that restore makes (next(item, false)) sees the same items
//    and the same verdict (error or not) as the full read;
//  * the items read, written back with ItemWriter in the flare format, read back identical
//    and without error (round trip);
//  * the same items written as CSV read back identical too (a node's dump saved with
//    `dump --format=csv` must restore).
#include "../../flare_tools.hpp"
#include "fuzz_items.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = fuzz::file_with(std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::ReadResult full = fuzz::read_items(fd, flare::DataFormat::flare, true);
  fuzz::ReadResult scan = fuzz::read_items(fd, flare::DataFormat::flare, false);
  ::close(fd);

  if (full.error != scan.error || full.items.size() != scan.items.size())
    fuzz::fail("the data-free pass and the full read disagree",
               "full: " + std::to_string(full.items.size()) + " items" + (full.error ? ", " + full.message : "") +
                   "; first pass: " + std::to_string(scan.items.size()) + " items" +
                   (scan.error ? ", " + scan.message : ""));
  for (size_t i = 0; i < full.items.size(); ++i) {
    const auto& a = full.items[i].header;
    const auto& b = scan.items[i].header;
    if (a.key != b.key || a.flags != b.flags || a.length != b.length || a.version != b.version || a.expire != b.expire)
      fuzz::fail("the data-free pass reads different headers");
  }
  if (full.items.empty()) return 0;
  fuzz::check_round_trip(full.items, flare::DataFormat::flare, "flare-format round trip");
  fuzz::check_round_trip(full.items, flare::DataFormat::csv, "flare dump -> CSV -> read back");
  return 0;
}
