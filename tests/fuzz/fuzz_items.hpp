// Item-stream helpers of fuzz_dump_stream and fuzz_csv: read a whole input with ItemReader,
// write items with ItemWriter, and the round-trip property between the two.
#ifndef FLARE_FUZZ_ITEMS_HPP
#define FLARE_FUZZ_ITEMS_HPP

#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <string>
#include <vector>

namespace fuzz {

struct ReadResult {
  std::vector<flare::Item> items; // every item read before the end or the error
  bool error = false;
  std::string message;
};

// Reads the whole of `fd`'s file (from its start) in `format`; `fd` itself stays open.
inline ReadResult read_items(int fd, flare::DataFormat format, bool with_data = true) {
  ReadResult out;
  try {
    flare::ItemReader reader(reopen(fd), "fuzz-input", format);
    flare::Item item;
    while (reader.next(item, with_data)) {
      if (with_data && item.data.size() != item.header.length) fail("item data size differs from its length");
      out.items.push_back(item);
      if (out.items.size() > 1000000) fail("more items than the input could hold");
    }
  } catch (const flare::Error& e) {
    out.error = true;
    out.message = e.what();
  }
  return out;
}

// Writes `items` as ItemWriter does in `format` (with finish()) to a new anonymous file.
inline int write_items(const std::vector<flare::Item>& items, flare::DataFormat format) {
  int fd = file_with("");
  {
    flare::FdWriter out(fd, "fuzz-output");
    flare::ItemWriter writer(out, format);
    for (auto& it : items) writer.write(it.header, it.data);
    writer.finish();
  }
  return fd;
}

inline bool same_item(const flare::Item& a, const flare::Item& b) {
  return a.header.key == b.header.key && a.header.flags == b.header.flags && a.header.length == b.header.length &&
         a.header.version == b.header.version && a.header.expire == b.header.expire && a.data == b.data;
}

inline std::string describe(const flare::Item& it) {
  return "key '" + flare::detail::printable(it.header.key) + "' flags " + std::to_string(it.header.flags) + " len " +
         std::to_string(it.header.length) + " version " + std::to_string(it.header.version) + " expire " +
         std::to_string(it.header.expire) + " data '" + flare::detail::printable(it.data) + "'";
}

// Writing `items` in `format` and reading the file back must give exactly `items`, no error.
inline void check_round_trip(const std::vector<flare::Item>& items, flare::DataFormat format, const char* what) {
  int fd = write_items(items, format);
  ReadResult back = read_items(fd, format);
  if (back.error)
    fail(what, "what ItemWriter wrote does not read back: " + back.message + "\nfile: " +
                   flare::detail::printable(contents(fd), 600));
  if (back.items.size() != items.size())
    fail(what, "wrote " + std::to_string(items.size()) + " items, read back " + std::to_string(back.items.size()));
  for (size_t i = 0; i < items.size(); ++i)
    if (!same_item(items[i], back.items[i]))
      fail(what, "item " + std::to_string(i) + " changed:\n  wrote " + describe(items[i]) + "\n  read  " +
                     describe(back.items[i]));
  ::close(fd);
}

} // namespace fuzz

#endif // FLARE_FUZZ_ITEMS_HPP
