// libFuzzer target: flare::parse_host_port and flare::parse_node_arg on the input as one
// string. Only flare::Error may come out of them; anything else escapes and crashes.
// Properties checked on success: the fields are in range, and an address re-written from
// the parsed result parses back to the same result.
#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

namespace {

void check_endpoint(const flare::Endpoint& ep, int default_port, std::string_view in) {
  if (!flare::detail::valid_host(ep.host)) fuzz::fail("parsed host is not a valid host", std::string(in));
  if (ep.port != default_port && (ep.port < 1 || ep.port > 65535)) fuzz::fail("parsed port out of range", std::string(in));
  // The display form (brackets for IPv6) is what messages and connections use: it must
  // parse back to the same endpoint.
  if (ep.port >= 1) {
    flare::Endpoint again;
    try {
      again = flare::parse_host_port(ep.display(), 1);
    } catch (const flare::Error& e) {
      fuzz::fail("display() of a parsed endpoint does not parse", ep.display() + ": " + e.what());
    }
    if (!(again == ep)) fuzz::fail("display() of a parsed endpoint parses differently", ep.display());
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  for (int default_port : {0, 12120, 65535}) {
    try {
      flare::Endpoint ep = flare::parse_host_port(in, default_port);
      check_endpoint(ep, default_port, in);
    } catch (const flare::Error&) {
    }
  }

  for (int min_fields = 2; min_fields <= 4; ++min_fields) {
    for (int max_fields = min_fields; max_fields <= 4; ++max_fields) {
      try {
        flare::NodeArg a = flare::parse_node_arg(in, min_fields, max_fields);
        check_endpoint(a.endpoint, -1, in);
        if (a.text != in) fuzz::fail("NodeArg::text differs from the input");
        if (a.balance && *a.balance < 0) fuzz::fail("negative balance accepted", std::string(in));
        if (a.partition && *a.partition < 0) fuzz::fail("negative partition accepted", std::string(in));
        if (a.partition && !a.balance) fuzz::fail("partition without balance");
        int fields = 2 + (a.balance ? 1 : 0) + (a.partition ? 1 : 0);
        if (fields < min_fields || fields > max_fields) fuzz::fail("field count outside [min, max]", std::string(in));
        // The same text with a wider range of fields must give the same result.
        flare::NodeArg wide = flare::parse_node_arg(in, 2, 4);
        if (!(wide.endpoint == a.endpoint) || wide.balance != a.balance || wide.partition != a.partition)
          fuzz::fail("parse_node_arg depends on min/max beyond accepting or refusing", std::string(in));
      } catch (const flare::Error&) {
      }
    }
  }
  return 0;
}
