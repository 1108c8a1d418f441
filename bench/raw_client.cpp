// The ceiling for bench/data_bench.sh: the fastest a client can move the same bytes over
// loopback, with no parsing or formatting at all.
//   raw_client dump PORT          send "dump", read until the stream ends with "END\r\n"
//   raw_client restore PORT FILE  send FILE's sets (prepared by the bench) in 1 MiB writes from one
//                                 thread while another counts the replies in 1 MiB reads
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

static int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string mode = argv[1];
  int fd = connect_to(std::atoi(argv[2]));
  auto t0 = std::chrono::steady_clock::now();
  unsigned long long bytes = 0;
  std::vector<char> buf(1 << 20);
  if (mode == "dump") {
    ::send(fd, "dump\r\n", 6, MSG_NOSIGNAL);
    char tail[5] = {0, 0, 0, 0, 0};
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n <= 0) break;
      bytes += static_cast<unsigned long long>(n);
      size_t k = static_cast<size_t>(n);
      if (k >= 5) std::memcpy(tail, buf.data() + k - 5, 5);
      else {
        std::memmove(tail, tail + k, 5 - k);
        std::memcpy(tail + 5 - k, buf.data(), k);
      }
      if (std::memcmp(tail, "END\r\n", 5) == 0) break;
    }
  } else if (mode == "restore" && argc == 4) {
    // As the reference client of the restore benchmark: one thread sends the sets in 1 MiB
    // blocking writes, another reads the replies in 1 MiB blocking reads and counts them.
    std::ifstream in(argv[3], std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    unsigned long long expected = 0;
    for (size_t p = data.find("set "); p != std::string::npos; p = data.find("\r\nset ", p + 1)) ++expected;
    t0 = std::chrono::steady_clock::now(); // the clock starts once the bytes are in memory
    std::thread writer([&] {
      for (size_t off = 0; off < data.size();) {
        ssize_t n = ::send(fd, data.data() + off, std::min<size_t>(1 << 20, data.size() - off), MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
    });
    unsigned long long replies = 0;
    while (replies < expected) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i)
        if (buf[static_cast<size_t>(i)] == '\n') ++replies;
    }
    writer.join();
    bytes = data.size();
    std::fprintf(stderr, "%llu replies\n", replies);
  } else {
    return 2;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%.3f %llu\n", secs, bytes);
  return 0;
}
