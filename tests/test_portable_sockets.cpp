// Socket portability of flare_tools.hpp (detail::new_socket, detail::kSendFlags). Part of the
// unit tests, and built again by `make matrix` with FLARE_TOOLS_PORTABLE_SOCKETS, which forces
// the fallback for systems without MSG_NOSIGNAL or SOCK_CLOEXEC (macOS, older BSDs) on Linux.
#include "flare_tools.hpp"
#include "test_server.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <fcntl.h>

using namespace flare;

namespace {

#if !FLARE_TOOLS_HAVE_MSG_NOSIGNAL && !defined(SO_NOSIGPIPE)
// This build has neither MSG_NOSIGNAL nor SO_NOSIGPIPE (the fallback forced on Linux), so a
// send to a peer that has gone raises SIGPIPE, and the library leaves signal dispositions to
// the program. This test program does what the README asks of a program on such a platform:
// it ignores SIGPIPE, so the send fails with EPIPE instead. Only here: the normal build must
// not, so that its test below proves MSG_NOSIGNAL works.
struct IgnoreSigpipe {
  IgnoreSigpipe() { std::signal(SIGPIPE, SIG_IGN); }
} ignore_sigpipe;
#endif

} // namespace

TEST_CASE("portable sockets: the build uses the path the feature tests chose") {
#if defined(FLARE_TOOLS_PORTABLE_SOCKETS)
  CHECK(FLARE_TOOLS_HAVE_MSG_NOSIGNAL == 0);
  CHECK(FLARE_TOOLS_HAVE_SOCK_CLOEXEC == 0);
  CHECK(detail::kSendFlags == 0);
#elif defined(__linux__)
  CHECK(FLARE_TOOLS_HAVE_MSG_NOSIGNAL == 1);
  CHECK(FLARE_TOOLS_HAVE_SOCK_CLOEXEC == 1);
  CHECK(detail::kSendFlags == MSG_NOSIGNAL);
#endif
}

TEST_CASE("portable sockets: every socket is close-on-exec") {
  int fd = detail::new_socket(AF_INET);
  REQUIRE(fd >= 0);
  CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  ::close(fd);

  TestServer s([](int fd) {
    char buf[64];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  detail::Socket sock;
  sock.connect(Endpoint{"127.0.0.1", s.port()}, 2000);
  CHECK((::fcntl(sock.fd(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("portable sockets: a send to a peer that has gone is an error, not a SIGPIPE") {
  TestServer gone([](int) {}); // closes each connection at once
  detail::Socket sock;
  sock.connect(Endpoint{"127.0.0.1", gone.port()}, 2000);
  sock.set_timeout(5000);
  std::string chunk(65536, 'x');
  // The first sends may still be taken by the kernel; once the peer's reset is back, the
  // next one fails (EPIPE or ECONNRESET). Without protection this process would die here.
  auto keep_sending = [&] {
    for (int i = 0; i < 500; ++i) {
      sock.send_all(chunk);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  CHECK_THROWS_WITH_AS(keep_sending(), doctest::Contains("send to"), NetworkError);

  // The same through send_some, the non-blocking send of the pipelined restore.
  sock.connect(Endpoint{"127.0.0.1", gone.port()}, 2000);
  auto keep_sending_some = [&] {
    for (int i = 0; i < 500; ++i) {
      sock.send_some(chunk);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  CHECK_THROWS_WITH_AS(keep_sending_some(), doctest::Contains("send to"), NetworkError);
}
