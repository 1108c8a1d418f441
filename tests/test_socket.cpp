// Sections 3 and 5 of flare_tools.hpp: deadlines and the one-thread stats gather.
#include "flare_tools.hpp"
#include "test_server.hpp"

#include <doctest/doctest.h>

using namespace flare;

namespace {

const char* kStats = "STAT pid 1\r\nSTAT uptime 5\r\nSTAT version 1.3.4\r\nSTAT curr_items 3\r\nEND\r\n";

// A port on which nothing listens: bind one, then close it.
int closed_port() {
  TestServer s([](int) {});
  return s.port();
}

} // namespace

TEST_CASE("a server that never answers ends in a timeout, not a hang") {
  TestServer silent([&](int fd) {
    char buf[64];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  ServerClient c(Endpoint{"127.0.0.1", silent.port()}, 300);
  CHECK_THROWS_WITH_AS(c.request("stats"), doctest::Contains("timed out"), NetworkError);
}

TEST_CASE("a refused connection is a one-line network error") {
  ServerClient c(Endpoint{"127.0.0.1", closed_port()}, 1000);
  CHECK_THROWS_WITH_AS(c.request("ping"), doctest::Contains("Connection refused"), NetworkError);
}

TEST_CASE("a name that does not resolve is a network error") {
  ServerClient c(Endpoint{"no-such-host.invalid", 12120}, 1000);
  CHECK_THROWS_WITH_AS(c.request("ping"), doctest::Contains("cannot resolve"), NetworkError);
}

TEST_CASE("a slow server dripping one byte at a time is still read correctly") {
  TestServer drip([](int fd) {
    std::string line;
    if (!TestServer::read_line(fd, line)) return;
    for (char ch : std::string("OK\r\n")) {
      TestServer::send_all(fd, std::string(1, ch));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  ServerClient c(Endpoint{"127.0.0.1", drip.port()}, 2000);
  CHECK(c.request("ping").status == "OK");
}

TEST_CASE("stats are gathered from all nodes at once and a dead node does not spoil the rest") {
  TestServer good([](int fd) {
    std::string line;
    while (TestServer::read_line(fd, line))
      if (line == "stats") TestServer::send_all(fd, kStats);
  });
  TestServer hang([&](int fd) {
    std::string line;
    TestServer::read_line(fd, line);
    char buf[16];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  TestServer garbage([](int fd) {
    std::string line;
    TestServer::read_line(fd, line);
    TestServer::send_all(fd, "garbage\r\nEND\r\n");
  });
  TestServer cut([](int fd) {
    std::string line;
    TestServer::read_line(fd, line);
    TestServer::send_all(fd, "STAT pid 1\r\nSTAT upt");
  });
  std::vector<Endpoint> eps = {{"127.0.0.1", good.port()},  {"127.0.0.1", hang.port()}, {"127.0.0.1", closed_port()},
                               {"127.0.0.1", good.port()},  {"127.0.0.1", garbage.port()}, {"127.0.0.1", cut.port()}};
  auto r = gather_stats(eps, 500);
  REQUIRE(r.size() == eps.size());
  CHECK(r[0].ok);
  CHECK(r[0].stats.number("curr_items").value() == 3);
  CHECK_FALSE(r[1].ok);
  CHECK(r[1].error == "timed out");
  CHECK_FALSE(r[2].ok);
  CHECK(r[2].error == "Connection refused");
  CHECK(r[3].ok);
  CHECK_FALSE(r[4].ok);
  CHECK(r[4].error.find("malformed stats line") != std::string::npos);
  CHECK_FALSE(r[5].ok);
  CHECK(r[5].error.find("closed") != std::string::npos);
}

TEST_CASE("a reply that never ends is bounded in memory") {
  TestServer flood([](int fd) {
    std::string line;
    TestServer::read_line(fd, line);
    std::string chunk(65536, 'x');
    for (int i = 0; i < 200; ++i) TestServer::send_all(fd, chunk);
  });
  auto r = gather_stats({{"127.0.0.1", flood.port()}}, 3000);
  CHECK_FALSE(r[0].ok);
  CHECK(r[0].error.find("larger than") != std::string::npos);
}
