// Sections 3 and 5 of flare_tools.hpp: deadlines and the one-thread stats gather.
#include "flare_tools.hpp"
#include "test_server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <pthread.h>

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

namespace {
extern "C" void ignore_signal(int) {}
} // namespace

TEST_CASE("a signal never restarts a timeout: after EINTR only the time left is waited") {
  TestServer silent([&](int fd) {
    char buf[64];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  // A handler without SA_RESTART, so that every signal interrupts poll() with EINTR.
  struct sigaction sa {}, old {};
  sa.sa_handler = ignore_signal;
  ::sigaction(SIGUSR1, &sa, &old);
  std::atomic<bool> done{false};
  pthread_t me = ::pthread_self();
  std::thread pester([&] {
    while (!done) {
      ::pthread_kill(me, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  ServerClient c(Endpoint{"127.0.0.1", silent.port()}, 300);
  auto start = Clock::now();
  CHECK_THROWS_WITH_AS(c.request("stats"), doctest::Contains("timed out"), NetworkError);
  double took = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  pester.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  CHECK(took < 2.0); // restarting the full 300 ms after each signal (every 20 ms) would never end
}

TEST_CASE("a cancel check stops a wait on a silent server within its slice") {
  TestServer silent([&](int fd) {
    char buf[64];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  std::atomic<bool> stop{false};
  ServerClient c(Endpoint{"127.0.0.1", silent.port()}, 60000);
  c.set_cancel([&] { return stop.load(); });
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  auto start = Clock::now();
  CHECK_THROWS_AS(c.request("stats"), Interrupted);
  later.join();
  CHECK(std::chrono::duration<double>(Clock::now() - start).count() < 2.0);
  CHECK_FALSE(c.socket().is_open());
}

TEST_CASE("a line longer than the limit closes the connection, like every protocol error") {
  TestServer flood([](int fd) {
    std::string line;
    if (!TestServer::read_line(fd, line)) return;
    std::string chunk(65536, 'x');
    for (int i = 0; i < 4; ++i) TestServer::send_all(fd, chunk);
  });
  ServerClient c(Endpoint{"127.0.0.1", flood.port()}, 2000);
  CHECK_THROWS_WITH_AS(c.request("stats"), doctest::Contains("longer than"), ProtocolError);
  CHECK_FALSE(c.socket().is_open());
}

TEST_CASE("a stats gather ends at an error reply instead of waiting for its timeout") {
  TestServer refuses([](int fd) {
    std::string line;
    while (TestServer::read_line(fd, line)) TestServer::send_all(fd, "SERVER_ERROR busy\r\n");
  });
  auto start = Clock::now();
  auto results = gather_stats({Endpoint{"127.0.0.1", refuses.port()}}, 5000);
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0].ok);
  CHECK(results[0].error == "answered 'SERVER_ERROR busy' to stats");
  CHECK(std::chrono::duration<double>(Clock::now() - start).count() < 2.5);
}
