// Helpers shared by the libFuzzer targets in this directory (see run.sh).
// Build from the project root: clang++ -std=c++17 -fsanitize=fuzzer,... -I. tests/fuzz/fuzz_X.cpp
#ifndef FLARE_FUZZ_UTIL_HPP
#define FLARE_FUZZ_UTIL_HPP

#include "../../flare_tools.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fuzz {

// A property of the code under test does not hold: report and crash (libFuzzer saves the input).
[[noreturn]] inline void fail(const char* what, const std::string& detail = std::string()) {
  std::fprintf(stderr, "\n*** fuzz property violated: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

// The harness itself could not do its job (out of descriptors, no memfd and no /tmp ...).
[[noreturn]] inline void harness_error(const char* what) {
  std::perror(what);
  std::abort();
}

inline void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = flare::detail::handle_EINTR([&] { return ::write(fd, data.data(), data.size()); });
    if (n <= 0) harness_error("fuzz: write");
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// An anonymous file holding `data`, positioned at its start. memfd_create where the kernel
// has it, else an unlinked file in $TMPDIR (or /tmp).
inline int file_with(std::string_view data) {
  int fd = -1;
#ifdef MFD_CLOEXEC
  fd = ::memfd_create("flare-fuzz", MFD_CLOEXEC);
#endif
  if (fd < 0) {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir && *dir ? dir : "/tmp") + "/flare-fuzz-XXXXXX";
    fd = ::mkstemp(&path[0]);
    if (fd < 0) harness_error("fuzz: mkstemp");
    ::unlink(path.c_str());
  }
  write_all(fd, data);
  if (::lseek(fd, 0, SEEK_SET) != 0) harness_error("fuzz: lseek");
  return fd;
}

// A new descriptor for the whole of `fd`'s file from its start (for a reader that takes
// ownership of what it is given and closes it). The offset is shared with `fd`: use one
// at a time.
inline int reopen(int fd) {
  int d = ::dup(fd);
  if (d < 0) harness_error("fuzz: dup");
  if (::lseek(d, 0, SEEK_SET) != 0) harness_error("fuzz: lseek");
  return d;
}

inline std::string contents(int fd) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) != 0) harness_error("fuzz: lseek");
  char buf[65536];
  for (;;) {
    ssize_t n = flare::detail::handle_EINTR([&] { return ::read(fd, buf, sizeof buf); });
    if (n < 0) harness_error("fuzz: read");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Splits like detail::Socket::read_line does: at '\n', one '\r' before it dropped. Text after
// the last '\n' is a last line too (a reply cut short still hands its lines to a parser).
inline std::vector<std::string> split_lines(std::string_view in) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < in.size()) {
    size_t nl = in.find('\n', start);
    size_t end = nl == std::string_view::npos ? in.size() : nl;
    std::string_view line = in.substr(start, end - start);
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.emplace_back(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out;
}

// A descriptor from which detail::Socket reads exactly `payload` and then end of input,
// delivered in several reads so that lines straddle the reader's refills.
//
// Layout of `selector` (the first byte of the fuzz input, so the fuzzer controls it):
//   bits 0-2: the payload after the first packet goes in 1..8 equal packets
//   bits 3-6: a first packet of 0..15 bytes (0: none)
//   bit  7  : the payload is sent twice in a row (reaches past FLARE_TOOLS_MAX_LINE_BYTES
//             even with -max_len=65536)
// It is a SOCK_SEQPACKET socketpair: each read() returns one whole packet, so the packet
// boundaries are the read boundaries. Everything is queued before the first read, from this
// thread, and the sending side is shut down for writing (end of input once drained), so
// nothing ever waits. Should the kernel not take it all (tiny socket buffers), a memfd
// holding the payload is used instead: same bytes, one read.
// The returned descriptor is the reading side; the caller owns it (Socket::adopt).
// `peer_out` receives the sending side, still open for reading (so requests sent by the code
// under test do not fail with EPIPE); the caller closes it after use (-1 for the memfd).
inline int feed(unsigned char selector, std::string_view payload, int& peer_out) {
  std::string data(payload);
  if (selector & 0x80) data += payload;
  size_t parts = 1 + (selector & 7u);
  size_t first = (selector >> 3) & 15u;
  std::vector<std::string_view> packets;
  std::string_view rest(data);
  if (first > 0 && first < rest.size()) {
    packets.push_back(rest.substr(0, first));
    rest.remove_prefix(first);
  }
  size_t each = (rest.size() + parts - 1) / parts;
  while (!rest.empty()) {
    size_t take = std::min(each, rest.size());
    packets.push_back(rest.substr(0, take));
    rest.remove_prefix(take);
  }
  peer_out = -1;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
    int big = 4 << 20;
    ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    bool ok = true;
    for (auto p : packets) {
      ssize_t n = flare::detail::handle_EINTR(
          [&] { return ::send(sv[1], p.data(), p.size(), MSG_DONTWAIT | MSG_NOSIGNAL); });
      if (n != static_cast<ssize_t>(p.size())) {
        ok = false;
        break;
      }
    }
    if (ok) {
      ::shutdown(sv[1], SHUT_WR);
      peer_out = sv[1];
      return sv[0];
    }
    ::close(sv[0]);
    ::close(sv[1]);
  }
  return file_with(data);
}

} // namespace fuzz

#endif // FLARE_FUZZ_UTIL_HPP
