// flare_tools.hpp is included from every test file of this binary; this one exists to make the
// point explicit: two translation units including the header link into one program with no
// duplicate symbols (everything in it is inline).
#include "flare_tools.hpp"

#include <doctest/doctest.h>

namespace second_unit {
int parse_port_here(const char* s) { return flare::parse_host_port(s, 1).port; }
} // namespace second_unit

TEST_CASE("the header links from two translation units into one program") {
  CHECK(second_unit::parse_port_here("h:42") == 42);
  CHECK(flare::to_int("7").value() == 7);
}
