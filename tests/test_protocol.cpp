// Section 4 of flare_tools.hpp: the protocol reader and the reply parsers, fed with the
// exact bytes a real flare 1.3.4 sends (tests/data/flare-protocol.md, tests/data/transcripts/).
#include "flare_tools.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>

using namespace flare;

namespace {

// Feeds `bytes` to read_reply through a socketpair, as if a server had sent them.
Reply reply_from(const std::string& bytes, bool close_after = true) {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  std::thread writer([&] {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(sv[1], bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    if (close_after) ::shutdown(sv[1], SHUT_WR);
  });
  detail::Socket s;
  s.adopt(sv[0], "peer");
  s.set_timeout(2000);
  struct Join {
    std::thread& t;
    int fd;
    ~Join() {
      t.join();
      ::close(fd);
    }
  } join{writer, sv[1]};
  return read_reply(s);
}

const char* kStatsNodes = "STAT 127.0.0.1:12121:role master\r\n"
                          "STAT 127.0.0.1:12121:state active\r\n"
                          "STAT 127.0.0.1:12121:partition 0\r\n"
                          "STAT 127.0.0.1:12121:balance 1\r\n"
                          "STAT 127.0.0.1:12121:thread_type 16\r\n"
                          "STAT 127.0.0.1:12122:role proxy\r\n"
                          "STAT 127.0.0.1:12122:state active\r\n"
                          "STAT 127.0.0.1:12122:partition -1\r\n"
                          "STAT 127.0.0.1:12122:balance 0\r\n"
                          "STAT 127.0.0.1:12122:thread_type 17\r\n"
                          "END\r\n";

} // namespace

TEST_CASE("stats nodes of a real index is parsed into nodes") {
  Reply r = reply_from(kStatsNodes);
  CHECK(r.status == "END");
  auto nodes = parse_stats_nodes(r.lines);
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0].key == "127.0.0.1:12121");
  CHECK(nodes[0].host == "127.0.0.1");
  CHECK(nodes[0].port == 12121);
  CHECK(nodes[0].role == "master");
  CHECK(nodes[0].state == "active");
  CHECK(nodes[0].partition == 0);
  CHECK(nodes[0].balance == 1);
  CHECK(nodes[0].thread_type == 16);
  CHECK(nodes[1].is_proxy());
  CHECK(nodes[1].partition == -1);
}

TEST_CASE("stats nodes with no node is just END") {
  Reply r = reply_from("END\r\n");
  CHECK(r.lines.empty());
  CHECK(parse_stats_nodes(r.lines).empty());
}

TEST_CASE("a node key is split at its last two colons") {
  auto nodes = parse_stats_nodes({"STAT ::1:12121:role slave", "STAT ::1:12121:state prepare", "STAT ::1:12121:partition 3",
                                  "STAT ::1:12121:balance 0"});
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].host == "::1");
  CHECK(nodes[0].port == 12121);
  CHECK(nodes[0].key == "::1:12121");
}

TEST_CASE("malformed stats nodes replies are errors, not guesses") {
  SUBCASE("missing field") {
    CHECK_THROWS_AS(parse_stats_nodes({"STAT h:1:role master", "STAT h:1:state active", "STAT h:1:partition 0"}), ProtocolError);
  }
  SUBCASE("partition out of range") {
    CHECK_THROWS_AS(parse_stats_nodes({"STAT h:1:partition 99999999999"}), ProtocolError);
  }
  SUBCASE("negative balance") { CHECK_THROWS_AS(parse_stats_nodes({"STAT h:1:balance -3"}), ProtocolError); }
  SUBCASE("bad port") { CHECK_THROWS_AS(parse_stats_nodes({"STAT h:x:role master"}), ProtocolError); }
  SUBCASE("no key") { CHECK_THROWS_AS(parse_stats_nodes({"STAT role master"}), ProtocolError); }
  SUBCASE("garbage") { CHECK_THROWS_AS(parse_stats_nodes({"\xff\xfe"}), ProtocolError); }
}

TEST_CASE("a repeated stats nodes field keeps the last value") {
  auto nodes = parse_stats_nodes({"STAT h:1:role proxy", "STAT h:1:role master", "STAT h:1:state active",
                                  "STAT h:1:partition 0", "STAT h:1:balance 1"});
  CHECK(nodes[0].role == "master");
}

TEST_CASE("node stats keep every field as text and read numbers on demand") {
  std::string bytes = "STAT pid 8982\r\nSTAT uptime 2\r\nSTAT time 1795556028\r\nSTAT version 1.3.4\r\n"
                      "STAT pointer_size 64\r\nSTAT rusage_user 0.013935\r\nSTAT curr_items 0\r\n"
                      "STAT bytes 528704\r\nSTAT cmd_get 18446744073709551616\r\nSTAT get_hits -5\r\nEND\r\n";
  auto s = parse_stats(reply_from(bytes).lines);
  CHECK(s.get("version") == "1.3.4");
  CHECK(s.number("pid").value() == 8982);
  CHECK(s.number("bytes").value() == 528704);
  CHECK_FALSE(s.number("rusage_user").has_value());
  CHECK_FALSE(s.number("cmd_get").has_value()); // > 2^64: shown as "-", never wrapped
  CHECK_FALSE(s.number("get_hits").has_value());
  CHECK_FALSE(s.number("missing").has_value());
}

TEST_CASE("stats threads keeps empty op and info (the trailing space)") {
  std::string bytes = "STAT 2:type 1\r\nSTAT 2:peer 127.0.0.1:39196\r\nSTAT 2:op \r\nSTAT 2:uptime 5\r\n"
                      "STAT 2:state wait\r\nSTAT 2:info \r\nSTAT 2:queue 0\r\nSTAT 2:behind 0\r\n"
                      "STAT 5:type 1\r\nSTAT 5:peer 127.0.0.1:39236\r\nSTAT 5:op stats\r\nSTAT 5:uptime 3\r\n"
                      "STAT 5:state execute\r\nSTAT 5:info \r\nSTAT 5:queue 0\r\nSTAT 5:behind 0\r\nEND\r\n";
  auto t = parse_stats_threads(reply_from(bytes).lines);
  REQUIRE(t.size() == 2);
  CHECK(t[0].id == "2");
  CHECK(t[0].op == "");
  CHECK(t[0].peer == "127.0.0.1:39196");
  CHECK(t[1].op == "stats");
  CHECK(t[1].behind.value() == "0");
}

TEST_CASE("meta of a real index") {
  std::string bytes = "META partition-size 1024\r\nMETA key-hash-algorithm simple\r\nMETA partition-type modular\r\n"
                      "META partition-modular-hint 1\r\nMETA partition-modular-virtual 4096\r\nEND\r\n";
  auto m = parse_meta(reply_from(bytes).lines);
  CHECK(m.get("partition-size") == "1024");
  CHECK(m.get("key-hash-algorithm") == "simple");
  CHECK(m.get("partition-modular-virtual") == "4096");
  CHECK(m.get("nothing") == "");
}

TEST_CASE("terminating status lines end a reply") {
  CHECK(reply_from("OK\r\n").ok());
  CHECK(reply_from("ERROR\r\n").is_error());
  Reply se = reply_from("SERVER_ERROR failed to set role (and balance)\r\n");
  CHECK(se.is_error());
  CHECK(se.status == "SERVER_ERROR failed to set role (and balance)");
  CHECK(reply_from("CLIENT_ERROR thread not found\r\n").is_error());
  CHECK_FALSE(reply_from("NOT_STORED\r\n").ok());
  CHECK(reply_from("STORED\r\n").ok());
  SUBCASE("a bare newline is accepted as flare does") { CHECK(reply_from("OK\n").ok()); }
}

TEST_CASE("hostile replies end in a clear error") {
  SUBCASE("garbage line") {
    CHECK_THROWS_WITH_AS(reply_from("HTTP/1.1 400 Bad Request\r\n"), doctest::Contains("unexpected reply line"), ProtocolError);
  }
  SUBCASE("closed in the middle of a reply") {
    CHECK_THROWS_WITH_AS(reply_from("STAT pid 1\r\nSTAT upt"), doctest::Contains("connection closed"), NetworkError);
  }
  SUBCASE("a line longer than the limit without a newline") {
    std::string huge(FLARE_TOOLS_MAX_LINE_BYTES + 10, 'A');
    CHECK_THROWS_WITH_AS(reply_from(huge, false), doctest::Contains("longer than"), ProtocolError);
  }
  SUBCASE("a reply larger than the limit") {
    std::string line = "STAT x " + std::string(60000, 'y') + "\r\n";
    std::string many;
    while (many.size() <= FLARE_TOOLS_MAX_REPLY_BYTES) many += line;
    CHECK_THROWS_WITH_AS(reply_from(many, false), doctest::Contains("larger than"), ProtocolError);
  }
  SUBCASE("bytes that are not UTF-8 are escaped in the message") {
    try {
      reply_from("\xff\xfe\x01zz\r\n");
      FAIL("accepted garbage");
    } catch (const ProtocolError& e) {
      CHECK(std::string(e.what()).find("\\xff\\xfe\\x01zz") != std::string::npos);
    }
  }
}

TEST_CASE("VALUE lines of a dump are parsed with range checks") {
  auto h = parse_value_line("VALUE withexp 7 4 1 1795559666");
  CHECK(h.key == "withexp");
  CHECK(h.flags == 7);
  CHECK(h.length == 4);
  CHECK(h.version == 1);
  CHECK(h.expire == 1795559666);
  CHECK_THROWS_AS(parse_value_line("VALUE k 0 4 1"), ProtocolError);
  CHECK_THROWS_AS(parse_value_line("VALUE k 0 -4 1 0"), ProtocolError);
  CHECK_THROWS_AS(parse_value_line("VALUE k 4294967296 4 1 0"), ProtocolError);
  CHECK_THROWS_AS(parse_value_line("VALUE k 0 99999999999999999999 1 0"), ProtocolError);
  CHECK_NOTHROW(parse_value_line("VALUE k 0 2147483647 1 0"));                      // flared's own limit
  CHECK_THROWS_AS(parse_value_line("VALUE k 0 2147483648 1 0"), ProtocolError); // over it
  CHECK_THROWS_AS(parse_value_line("KEY k"), ProtocolError);
}
