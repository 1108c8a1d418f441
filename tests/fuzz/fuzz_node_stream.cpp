// libFuzzer target: the streaming readers of a data node's replies, which do not go through
// read_reply: flare::dump_node (`dump`: VALUE line, data, CRLF ... END), flare::dump_keys
// (`dump_key`: KEY lines ... END) and ServerClient::version(). The input is what the node
// sends:
//   byte 0   : how the bytes are cut into reads (see fuzz::feed in fuzz_util.hpp)
//   byte 1   : which request: 0 dump, 1 dump_key, 2 version, then stats (mod 3)
//   the rest : the node's byte stream; the request is repeated on it until it fails
//              (at most 8 times), as one connection serves several requests.
// Only flare::Error may escape (caught); items must match their VALUE line.
#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 2, size - 2);
  int mode = data[1] % 3;
  int peer = -1;
  int fd = fuzz::feed(data[0], payload, peer);
  {
    flare::NodeClient node(flare::Endpoint{"127.0.0.1", 12121}, 2000);
    node.socket().adopt(fd, "fuzz-node"); // already "connected": requests go to `peer`
    for (int round = 0; round < 8 && node.socket().is_open(); ++round) {
      try {
        if (mode == 0) {
          flare::DumpRange range;
          if (round % 2) range.partition = 0, range.partition_size = 2;
          unsigned long long seen = 0;
          unsigned long long n = flare::dump_node(node, range, [&](const flare::Item& item) {
            if (item.data.size() != item.header.length) fuzz::fail("dump_node: data size differs from the VALUE line");
            ++seen;
          });
          if (n != seen) fuzz::fail("dump_node: count differs from the items handed over");
        } else if (mode == 1) {
          unsigned long long seen = 0;
          unsigned long long n = flare::dump_keys(node, round % 2 ? 0 : -1, 2, [&](std::string_view key) {
            if (key.empty()) fuzz::fail("dump_keys: empty key");
            // A listing's line ends at CR LF only: a key may hold a lone CR or LF, never both.
            if (key.find("\r\n") != std::string_view::npos) fuzz::fail("dump_keys: key holds CR LF");
            ++seen;
          });
          if (n != seen) fuzz::fail("dump_keys: count differs from the keys handed over");
        } else {
          std::string v = node.version();
          (void)v;
          flare::NodeStats s = node.stats();
          (void)s;
        }
      } catch (const flare::Error&) {
        break;
      }
    }
  }
  if (peer >= 0) ::close(peer);
  return 0;
}
