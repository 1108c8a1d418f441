// Integration: dump, dumpkey, restore and verify as the built binary against tests/fake-flare.
#include "harness.hpp"

#include <algorithm>
#include <fstream>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Stores items through a node with `set`, as a client would (the fake routes them).
void store(FakeCluster& f, size_t node, const std::string& key, const std::string& data, unsigned flags, long long exptime) {
  flare::NodeClient c(flare::Endpoint{"127.0.0.1", f.node_ports.at(node)}, 10000);
  c.send_raw("set " + key + " " + std::to_string(flags) + " " + std::to_string(exptime) + " " +
             std::to_string(data.size()) + "\r\n" + data + "\r\n");
  REQUIRE(std::string(c.socket().read_line()) == "STORED");
}

void tricky_data(FakeCluster& f) {
  store(f, 0, "empty", "", 0, 0);
  store(f, 0, "crlf", "one\r\ntwo\r\nEND\r\nVALUE x 0 1 1 0\r\n", 3, 0);
  store(f, 0, "nul", std::string("\0a\0b\0", 5), 4294967295U, 0);
  store(f, 0, "expiring", "soon", 12, 2000000000);
  store(f, 0, "latin1", "caf\xe9", 0, 0);
  std::string big(1 << 20, 'q');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>(i % 251);
  store(f, 0, "one-megabyte", big, 9, 0);
  for (int i = 0; i < 200; ++i) store(f, 0, "k" + std::to_string(i), "value " + std::to_string(i), 1, 0);
}

void flush(FakeCluster& f, size_t node) { REQUIRE(f.request(f.node_ports.at(node), "flush_all").status == "OK"); }

} // namespace

TEST_CASE("dump, flush_all, restore, dump gives identical bytes, in both formats") {
  FakeCluster f(2);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  tricky_data(f);
  for (std::string format : {"flare", "csv"}) {
    CAPTURE(format);
    std::string first = f.dir() + "/first." + format, second = f.dir() + "/second." + format;
    auto d = run(with({"dump", "--all", "-f", format, "-o", first}, idx));
    REQUIRE(d.status == 0);
    CHECK(d.err == "dumping from " + f.node(0) + "::-1 of 0 partitions ... 206\n");
    CHECK_FALSE(exists(first + ".tmp"));
    flush(f, 0);
    CHECK(f.items(0) == 0);
    auto r = run(with({"restore", "--input", first}, {"--index-server", f.index()}));
    CHECK(r.status == 0);
    CHECK(r.err == "206 entries have been restored.\n");
    CHECK(f.items(0) == 206);
    auto d2 = run(with({"dump", "--all", "-f", format, "-o", second}, idx));
    REQUIRE(d2.status == 0);
    CHECK(slurp(first) == slurp(second));
    CHECK(slurp(first).size() > (1 << 20));
  }
}

TEST_CASE("a dump to stdout is the same stream") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  store(f, 0, "a", "xyz", 5, 0);
  auto d = run(with({"dump", f.node(0)}, f.index_args()));
  CHECK(d.status == 0);
  CHECK(d.out == "VALUE a 5 3 1 0\r\nxyz\r\nEND\r\n");
}

TEST_CASE("a dump cut short leaves no file that looks complete") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 100 1000");
  std::string out = f.dir() + "/cut.flare";
  SUBCASE("connection reset in the middle of a value") {
    f.must("cut " + f.node(0) + " 50500");
    auto d = run(with({"dump", "--all", "-o", out}, f.index_args()));
    CHECK(d.status == 1);
    CHECK(d.err.find("dump failed after 49 items ('" + out + "' was not written)\n") != std::string::npos);
  }
  SUBCASE("a stream that ends without END") {
    f.must("override " + f.node(0) + " dump " + harness::hex("VALUE a 0 1 1 0\r\nx\r\n") + " 1 close");
    auto d = run(with({"dump", "--all", "-o", out}, f.index_args()));
    CHECK(d.status == 1);
    CHECK(d.err.find("connection closed by " + f.node(0)) != std::string::npos);
    CHECK(d.err.find("dump failed after 1 items") != std::string::npos);
  }
  SUBCASE("a VALUE whose length disagrees with its data") {
    f.must("override " + f.node(0) + " dump " + harness::hex("VALUE a 0 1 1 0\r\nxyz\r\nEND\r\n"));
    auto d = run(with({"dump", "--all", "-o", out}, f.index_args()));
    CHECK(d.status == 1);
    CHECK(d.err.find("is longer than its VALUE line says") != std::string::npos);
  }
  CHECK_FALSE(exists(out));
  CHECK_FALSE(exists(out + ".tmp"));
}

TEST_CASE("restore refuses a malformed file before sending anything") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  std::string path = f.dir() + "/bad.flare";
  std::ofstream(path, std::ios::binary) << "VALUE a 0 3 1 0\r\nabc\r\nVALUE b 0 9 1 0\r\nshort\r\n";
  f.control("requests-clear");
  auto r = run(with({"restore", "-i", path}, {"--index-server", f.index()}));
  CHECK(r.status == 1);
  CHECK(r.err == "'" + path + "': malformed record at byte 22: the file ends inside the data of 'b'\n");
  CHECK(f.state_changes().empty());
}

TEST_CASE("restore filters keys, prints them, and a dry run sends nothing") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 5 3 prefix");
  f.must("fill " + f.node(0) + " 5 3 other");
  std::string path = f.dir() + "/all.flare";
  REQUIRE(run(with({"dump", "--all", "-o", path}, idx)).status == 0);
  flush(f, 0);
  f.control("requests-clear");
  auto dry = run(with({"restore", "-i", path, "-n", "--print-keys", "--prefix-include", "prefix"}, {"--index-server", f.index()}));
  CHECK(dry.status == 0);
  CHECK(dry.out == "prefix00000\nprefix00001\nprefix00002\nprefix00003\nprefix00004\n");
  CHECK(dry.err == "dry run: 5 of 10 entries would be restored; nothing was sent.\n");
  CHECK(f.state_changes().empty());
  auto r = run(with({"restore", "-i", path, "--include", "^o", "--exclude", "3$", f.node(0)}, {"--index-server", f.index()}));
  CHECK(r.status == 0);
  CHECK(r.err == "4 entries have been restored.\n");
  CHECK(f.items(0) == 4);
  auto bad = run(with({"restore", "-i", path, "--include", "("}, {"--index-server", f.index()}));
  CHECK(bad.status == 2);
  CHECK(bad.err.rfind("( isn't a valid regular expression.", 0) == 0);
}

TEST_CASE("a restore whose sets fail says which keys failed and exits 1") {
  FakeCluster f(1);
  auto idx = f.index_args();
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 3 3");
  std::string path = f.dir() + "/d.flare";
  REQUIRE(run(with({"dump", "--all", "-o", path}, idx)).status == 0);
  f.must("override " + f.node(0) + " set " + harness::hex("SERVER_ERROR out of memory\r\n"));
  auto r = run(with({"restore", "-i", path}, {"--index-server", f.index()}));
  CHECK(r.status == 1);
  CHECK(r.err == "0 entries have been restored.\n3 entries failed:\n  key00000: SERVER_ERROR out of memory\n"
                 "  key00001: SERVER_ERROR out of memory\n  key00002: SERVER_ERROR out of memory\n");
}

TEST_CASE("dumpkey lists keys, one per line, of each master's own partition") {
  FakeCluster f(2);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("fill " + f.node(0) + " 3 10");
  auto r = run(with({"dumpkey", "--all"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out == "key00000\nkey00001\nkey00002\n");
  auto none = run(with({"dumpkey"}, f.index_args()));
  CHECK(none.status == 1);
  CHECK(none.err == "please specify --all option to get complete dump.\n");
}

namespace {

// Keys of tests/data/keyhash_vectors.txt (flare's default resolver) and the partition that
// upstream flare computes for each among 2 partitions, for one algorithm. Only plain keys.
std::vector<std::pair<std::string, int>> upstream_partitions(const std::string& algorithm) {
  std::ifstream in("tests/data/keyhash_vectors.txt");
  REQUIRE(in.good());
  std::vector<std::pair<std::string, int>> out;
  std::string line;
  bool defaults = false;
  while (std::getline(in, line)) {
    if (line.rfind("@resolver", 0) == 0) defaults = line == "@resolver 1024 1 4096";
    if (!defaults || line.empty() || line[0] == '#' || line[0] == '@') continue;
    std::istringstream ss(line);
    std::string alg, key;
    long long hash;
    int p1, p2;
    ss >> alg >> key >> hash >> p1 >> p2;
    if (alg != algorithm || key == "\"\"" || key.find('\\') != std::string::npos) continue;
    out.emplace_back(key, p2);
  }
  return out;
}

} // namespace

TEST_CASE("verify passes a correct cluster and catches a misplaced key, for every hash algorithm") {
  for (std::string alg : {"simple", "bitshift", "crc32", "adler32", "murmur", "jenkins"}) {
    CAPTURE(alg);
    FakeCluster f(3, {"--key-hash-algorithm", alg});
    auto idx = f.index_args();
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("set-node " + f.node(1) + " master active 1 1");
    f.must("set-node " + f.node(2) + " slave active 0 1");
    auto keys = upstream_partitions(alg);
    REQUIRE(keys.size() >= 10);
    std::string wrong_key;
    int in_zero = 0;
    for (auto& [key, part] : keys) {
      if (part == 0) {
        f.must("put " + f.node(0) + " " + key);
        f.must("put " + f.node(2) + " " + key);
        ++in_zero;
      } else {
        f.must("put " + f.node(1) + " " + key);
        wrong_key = key;
      }
    }
    REQUIRE(in_zero > 0);
    REQUIRE(!wrong_key.empty());
    auto ok = run(with({"verify"}, idx));
    CHECK(ok.status == 0);
    CHECK(ok.out.rfind("key_hash_algorithm = " + alg + "\npartition_size: 2\n", 0) == 0);
    CHECK(ok.out.find("checking " + f.node(0) + " (partition 0) ... " + std::to_string(in_zero) + " keys, 0 misplaced OK\n") !=
          std::string::npos);
    CHECK(ok.out.substr(ok.out.size() - 3) == "OK\n");

    f.must("put " + f.node(2) + " " + wrong_key); // a partition-1 key on a partition-0 slave
    auto ng = run(with({"verify"}, idx));
    CHECK(ng.status == 1);
    CHECK(ng.out.find("checking " + f.node(2) + " (partition 0) ... " + std::to_string(in_zero + 1) +
                      " keys, 1 misplaced NG\n  " + wrong_key + " belongs to partition 1\n") != std::string::npos);
    CHECK(ng.out.substr(ng.out.size() - 3) == "NG\n");
  }
}

TEST_CASE("verify of keys written through the cluster's own routing") {
  for (std::string alg : {"simple", "bitshift", "crc32"}) {
    CAPTURE(alg);
    FakeCluster f(2, {"--key-hash-algorithm", alg});
    f.must("set-node " + f.node(0) + " master active 0 1");
    f.must("set-node " + f.node(1) + " master active 1 1");
    for (int i = 0; i < 300; ++i) store(f, 0, "item:" + std::to_string(i), "x", 0, 0);
    CHECK(f.items(0) > 50);
    CHECK(f.items(1) > 50);
    auto r = run(with({"verify"}, f.index_args()));
    CHECK(r.status == 0);
  }
}
