// libFuzzer target: flare::ItemReader in DataFormat::csv (our CSV dump: the header line
// key,flag,len,version,expire,data,encoding then RFC 4180 rows) over the input. Every item
// read successfully is written back with ItemWriter (CSV), and that file must read back to
// exactly the same items without error; the items must survive the flare format too.
#include "../../flare_tools.hpp"
#include "fuzz_items.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = fuzz::file_with(std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::ReadResult got = fuzz::read_items(fd, flare::DataFormat::csv, true);
  ::close(fd);
  for (auto& it : got.items) {
    if (it.header.key.empty() || it.header.key.size() > FLARE_TOOLS_MAX_KEY_BYTES) fuzz::fail("CSV reader accepted a bad key");
    if (it.header.flags > UINT32_MAX) fuzz::fail("CSV reader accepted flags out of range");
  }
  if (got.items.empty()) return 0;
  fuzz::check_round_trip(got.items, flare::DataFormat::csv, "CSV round trip");
  fuzz::check_round_trip(got.items, flare::DataFormat::flare, "CSV -> flare format -> read back");
  return 0;
}
