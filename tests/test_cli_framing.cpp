// Integration (issue 17, parts 1 and 2): every key flared stores can be backed up, and a listing
// the server cannot frame is never reported complete. The built binary against tests/fake-flare,
// which stores and writes such keys raw, as a real flare 1.3.4 does (tests/data/flare-protocol.md,
// "Hard states").
#include "harness.hpp"

#include <fstream>

using harness::exists;
using harness::FakeCluster;
using harness::run;
using harness::slurp;
using harness::with;

namespace {


// `set` through a node, as a text client would: the key may hold any byte but space and LF.
void store(FakeCluster& f, const std::string& key, const std::string& data) {
  flare::NodeClient c(flare::Endpoint{"127.0.0.1", f.node_ports.at(0)}, 10000);
  c.send_raw("set " + key + " 0 0 " + std::to_string(data.size()) + "\r\n" + data + "\r\n");
  REQUIRE(std::string(c.socket().read_line()) == "STORED");
}

// A key as a binary-protocol client stores it (a space, CR LF, a lone LF ...).
void put_binary(FakeCluster& f, const std::string& key, const std::string& value = "v") {
  f.must("put-hex " + f.node(0) + " " + harness::hex(key) + " " + harness::hex(value));
}

const std::vector<std::string> kOddKeys = {"k\rD", "t\tab", "v\x0b" "f\x0c", "c\x01\xff", "endcr\r", "\rstart"};

} // namespace

TEST_CASE("framing: keys holding a lone CR, TAB, VT, FF, control and high bytes go through dump and restore, both formats") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  for (size_t i = 0; i < kOddKeys.size(); ++i) store(f, kOddKeys[i], "value" + std::to_string(i));
  store(f, "plain", "p");
  for (std::string format : {"flare", "csv"}) {
    CAPTURE(format);
    std::string first = f.dir() + "/first." + format, second = f.dir() + "/second." + format;
    auto d = run(with({"dump", "--all", "-f", format, "-o", first}, idx));
    CAPTURE(d.err);
    REQUIRE(d.status == 0);
    REQUIRE(f.request(f.node_ports.at(0), "flush_all").status == "OK");
    auto r = run(with({"restore", "--input", first}, {"--index-server", f.index()}));
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(r.err == "7 entries have been restored.\n");
    CHECK(f.items(0) == 7);
    REQUIRE(run(with({"dump", "--all", "-f", format, "-o", second}, idx)).status == 0);
    CHECK(slurp(first) == slurp(second));
  }
  auto k = run(with({"dumpkey", "--all"}, idx));
  CHECK(k.status == 0);
  for (const auto& key : kOddKeys) CHECK(k.out.find(key + "\n") != std::string::npos);
  auto v = run(with({"verify"}, idx));
  CHECK(v.status == 0);
  CHECK(v.out.find("7 keys, 0 misplaced OK") != std::string::npos);
}

TEST_CASE("framing: a key listing with an END inside a key fails dumpkey, verify and keycheck --all") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  for (int i = 0; i < 5; ++i) store(f, "a" + std::to_string(i), "x");
  put_binary(f, "c\r\nEND");
  for (int i = 0; i < 5; ++i) store(f, "z" + std::to_string(i), "x");
  auto k = run(with({"dumpkey", "--all"}, idx));
  CAPTURE(k.err);
  CHECK(k.status == 1);
  CHECK(k.err.find("the key listing from " + f.node(0) + " did not end at its END line: 'KEY z0' came after it") !=
        std::string::npos);
  auto o = f.dir() + "/keys.txt";
  CHECK(run(with({"dumpkey", "--all", "-o", o}, idx)).status == 1);
  CHECK(!exists(o));
  auto v = run(with({"verify"}, idx));
  CAPTURE(v.out);
  CAPTURE(v.err);
  CHECK(v.status == 1);
  CHECK(v.out.find("failed") != std::string::npos);
  CHECK(v.out.find("OK\n") == std::string::npos);
  CHECK(v.err.find("did not end at its END line") != std::string::npos);
  auto c = run({"keycheck", "--all", "--index-server", f.index()});
  CAPTURE(c.err);
  CHECK(c.status != 0);
  CHECK(c.err.find("did not end at its END line") != std::string::npos);
}

TEST_CASE("framing: a key holding CR LF inside the listing is named, not taken for two keys") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  put_binary(f, "c\r\nhello");
  auto k = run(with({"dumpkey", "--all"}, idx));
  CHECK(k.status == 1);
  CHECK(k.err.find("unexpected line in the key dump from " + f.node(0) + ": 'hello' (a key holding CR LF") !=
        std::string::npos);
}

TEST_CASE("framing: dump refuses records it cannot frame; --skip-unframed names them, writes the rest, exits 1") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  store(f, "a", "1");
  put_binary(f, "b\r\nEND", "xyz");
  put_binary(f, "b sp ace", "12");
  store(f, "k\rD", "2");
  put_binary(f, "c\r\nVALUE d 0 1 1 0", "q");
  store(f, "z", "3");
  for (std::string format : {"flare", "csv"}) {
    CAPTURE(format);
    std::string out = f.dir() + "/d." + format;
    auto d = run(with({"dump", "--all", "-f", format, "-o", out}, idx));
    CAPTURE(d.err);
    CHECK(d.status == 1);
    CHECK(d.err.find("too few fields: the key may hold CR LF") != std::string::npos);
    CHECK(!exists(out));
    auto s = run(with({"dump", "--all", "--skip-unframed", "-f", format, "-o", out}, idx));
    CAPTURE(s.err);
    CHECK(s.status == 1);
    CHECK(s.err.find("skipped a record " + f.node(0) + " cannot frame: byte 20 of its dump, 27 bytes, key 'b\\x0d\\x0aEND' (3-byte value)") !=
          std::string::npos);
    CHECK(s.err.find("key 'b sp ace' (2-byte value)") != std::string::npos);
    CHECK(s.err.find("key 'c\\x0d\\x0aVALUE d 0 1 1 0' (1-byte value)") != std::string::npos);
    CHECK(s.err.find("3 records skipped") != std::string::npos);
    CHECK(s.err.find("the other 3 items were written") != std::string::npos);
    REQUIRE(exists(out));
    REQUIRE(f.request(f.node_ports.at(0), "flush_all").status == "OK");
    auto r = run(with({"restore", "--input", out}, {"--index-server", f.index()}));
    CAPTURE(r.err);
    CHECK(r.status == 0);
    CHECK(r.err == "3 entries have been restored.\n");
    CHECK(f.items(0) == 3);
    put_binary(f, "b\r\nEND", "xyz");
    put_binary(f, "b sp ace", "12");
    put_binary(f, "c\r\nVALUE d 0 1 1 0", "q");
  }
}

TEST_CASE("framing: a key only the binary protocol stores (a lone LF) is dumped, and restore names why it is not sent") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  put_binary(f, "lf\nx", "v");
  store(f, "a", "1");
  std::string out = f.dir() + "/d.flare";
  auto d = run(with({"dump", "--all", "-o", out}, idx));
  CAPTURE(d.err);
  REQUIRE(d.status == 0);
  CHECK(slurp(out).find("VALUE lf\nx 0 1 1 0\r\nv\r\n") != std::string::npos);
  auto k = run(with({"dumpkey", "--all"}, idx));
  CHECK(k.status == 1);
  CHECK(k.err.find("'lf\\x0ax' holds a line feed (--skip-unframed skips it)") != std::string::npos);
  k = run(with({"dumpkey", "--all", "--skip-unframed"}, idx));
  CHECK(k.status == 1);
  CHECK(k.out == "a\n");
  CHECK(k.err.find("1 key skipped") != std::string::npos);
  auto r = run(with({"restore", "--input", out}, {"--index-server", f.index()}));
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("the key holds a line feed, where flared's text protocol ends a request") != std::string::npos);
}

TEST_CASE("framing: dumpkey --skip-unframed names the keys holding CR LF, writes the rest, exits 1") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  store(f, "a", "1");
  put_binary(f, "c\r\nEND");
  put_binary(f, "d\r\nx\r\ny");
  put_binary(f, "e sp ace");
  store(f, "z", "3");
  std::string out = f.dir() + "/keys.txt";
  auto k = run(with({"dumpkey", "--all", "--skip-unframed", "-o", out}, idx));
  CAPTURE(k.err);
  CHECK(k.status == 1);
  CHECK(k.err.find("skipped a key " + f.node(0) + " cannot frame: 'c\\x0d\\x0aEND'") != std::string::npos);
  CHECK(k.err.find("skipped a key " + f.node(0) + " cannot frame: 'd\\x0d\\x0ax\\x0d\\x0ay'") != std::string::npos);
  CHECK(k.err.find("2 keys skipped") != std::string::npos);
  CHECK(k.err.find("the other 3 keys were written") != std::string::npos);
  CHECK(slurp(out) == "a\ne sp ace\nz\n");
}
