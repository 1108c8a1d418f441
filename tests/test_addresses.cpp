// Section 2 of flare_tools.hpp: addresses and node arguments.
#include "flare_tools.hpp"

#include <doctest/doctest.h>

using namespace flare;

TEST_CASE("host:port arguments are parsed and keep the host as written") {
  SUBCASE("name and port") {
    auto ep = parse_host_port("localhost:12121", 1);
    CHECK(ep.host == "localhost");
    CHECK(ep.port == 12121);
    CHECK(ep.key() == "localhost:12121");
  }
  SUBCASE("the default port applies when none is given") {
    auto ep = parse_host_port("127.0.0.1", 12120);
    CHECK(ep.port == 12120);
  }
  SUBCASE("IPv6 literals go in brackets and are shown with them") {
    auto ep = parse_host_port("[::1]:12120", 1);
    CHECK(ep.host == "::1");
    CHECK(ep.port == 12120);
    CHECK(ep.display() == "[::1]:12120");
    CHECK(ep.key() == "::1:12120");
    CHECK(parse_host_port("[fe80::1]", 7).port == 7);
  }
}

TEST_CASE("malformed addresses are refused with a clear error") {
  for (const char* bad : {"", ":12120", "host:", "host:0", "host:65536", "host:12x", "host:-1", "a:1:2", "[::1", "[]:1",
                          "[::1]x", "ho st:1", "host:99999999999999999999"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_host_port(bad, 1), Error);
  }
}

TEST_CASE("node arguments take as many fields as the subcommand needs") {
  SUBCASE("host:port") {
    auto a = parse_node_arg("127.0.0.1:12121", 2, 2);
    CHECK(a.endpoint.key() == "127.0.0.1:12121");
    CHECK_FALSE(a.balance.has_value());
  }
  SUBCASE("host:port:balance") {
    auto a = parse_node_arg("127.0.0.1:12121:3", 3, 3);
    CHECK(a.balance.value() == 3);
  }
  SUBCASE("host:port:balance:partition") {
    auto a = parse_node_arg("node1:12121:1:0", 4, 4);
    CHECK(a.endpoint.host == "node1");
    CHECK(a.balance.value() == 1);
    CHECK(a.partition.value() == 0);
  }
  SUBCASE("IPv6 with balance and partition") {
    auto a = parse_node_arg("[::1]:12121:1:2", 4, 4);
    CHECK(a.endpoint.host == "::1");
    CHECK(a.partition.value() == 2);
  }
}

TEST_CASE("a node argument with the wrong shape says invalid argument") {
  auto message = [](const char* arg, int lo, int hi) {
    try {
      parse_node_arg(arg, lo, hi);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(message("host", 2, 2) == "invalid argument 'host'.");
  CHECK(message(":12121", 2, 2) == "invalid argument ':12121'.");
  CHECK(message("host:12121:1", 2, 2) == "invalid argument 'host:12121:1'.");
  CHECK(message("host:12121", 4, 4) == "invalid argument 'host:12121'.");
  CHECK(message("host:12121:x:0", 4, 4) == "invalid argument 'host:12121:x:0'.");
  CHECK(message("host:12121:-1:0", 4, 4) == "invalid argument 'host:12121:-1:0'.");
  CHECK(message("host:12121:1:99999999999", 4, 4) == "invalid argument 'host:12121:1:99999999999'.");
}

TEST_CASE("integers from peers and users are parsed strictly") {
  CHECK(to_int("0").value() == 0);
  CHECK(to_int("-1").value() == -1);
  CHECK(to_int("9223372036854775807").value() == LLONG_MAX);
  CHECK(to_int("-9223372036854775808").value() == LLONG_MIN);
  CHECK_FALSE(to_int("9223372036854775808").has_value());
  CHECK_FALSE(to_int("18446744073709551616").has_value());
  CHECK_FALSE(to_int("").has_value());
  CHECK_FALSE(to_int("-").has_value());
  CHECK_FALSE(to_int("1 ").has_value());
  CHECK_FALSE(to_int("0x10").has_value());
  CHECK_FALSE(to_int32("2147483648").has_value());
  CHECK(to_int32("-2147483648").value() == INT_MIN);
}
