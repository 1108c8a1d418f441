// Section 7b of flare_tools.hpp: dump formats, the file reader, bandwidth, pipelined restore.
#include "flare_tools.hpp"
#include "test_server.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <sstream>

using namespace flare;

namespace {

struct TempFile {
  std::string path;
  TempFile() {
    char tmpl[] = "/tmp/flare-data-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
  }
  ~TempFile() { ::unlink(path.c_str()); }
  void write(const std::string& bytes) const {
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  std::string read() const {
    FILE* f = std::fopen(path.c_str(), "rb");
    std::string out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
    return out;
  }
  int open_read() const { return ::open(path.c_str(), O_RDONLY); }
};

std::vector<Item> tricky_items() {
  std::vector<Item> items;
  auto add = [&](std::string key, std::string data, unsigned long long flags, long long expire) {
    Item i;
    i.header.key = std::move(key);
    i.header.flags = flags;
    i.header.version = 3;
    i.header.expire = expire;
    i.header.length = data.size();
    i.data = std::move(data);
    items.push_back(std::move(i));
  };
  add("empty", "", 0, 0);
  add("crlf", "line one\r\nline two\r\nEND\r\n", 7, 2000000000);
  add("nul", std::string("a\0b\0\0c", 6), 4294967295ULL, 0);
  add("quotes,commas", "say \"hi\", then, bye", 1, 0);
  add("latin1", "caf\xe9", 0, 0);
  add("utf8", "caf\xc3\xa9 \xe2\x82\xac", 0, 0);
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>(i & 0xff);
  add("one-megabyte", big, 2, 0);
  return items;
}

std::string write_items(const std::vector<Item>& items, DataFormat f) {
  TempFile t;
  int fd = ::open(t.path.c_str(), O_WRONLY | O_TRUNC);
  {
    FdWriter out(fd, t.path);
    ItemWriter w(out, f);
    for (auto& i : items) w.write(i.header, i.data);
    w.finish();
  }
  ::close(fd);
  return t.read();
}

std::vector<Item> read_items(const std::string& bytes, DataFormat f) {
  TempFile t;
  t.write(bytes);
  ItemReader r(t.open_read(), "test", f);
  std::vector<Item> out;
  Item i;
  while (r.next(i)) out.push_back(i);
  return out;
}

} // namespace

TEST_CASE("bandwidth takes 0.7.3's units: bits per second, k/M/G x1024, B for bytes") {
  CHECK(parse_bandwidth("800").value() == 100);
  CHECK(parse_bandwidth("100B").value() == 100);
  CHECK(parse_bandwidth("100k").value() == 12800);
  CHECK(parse_bandwidth("100kB").value() == 102400);
  CHECK(parse_bandwidth("1M").value() == 131072);
  CHECK(parse_bandwidth("1MB").value() == 1048576);
  CHECK(parse_bandwidth("2GB").value() == 2147483648ULL);
  CHECK(parse_bandwidth("0").value() == 0);
  for (const char* bad : {"", "B", "kB", "10x", "-5", "1.5M", "10 k", "99999999999999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_bandwidth(bad).has_value());
  }
}

TEST_CASE("the flare format is the node's own byte stream, closed by END") {
  Item i;
  i.header.key = "withexp";
  i.header.flags = 7;
  i.header.version = 1;
  i.header.expire = 1795559666;
  i.data = "exp!";
  CHECK(write_items({i}, DataFormat::flare) == "VALUE withexp 7 4 1 1795559666\r\nexp!\r\nEND\r\n");
}

TEST_CASE("CSV rows are RFC 4180, and data that is not text is base64 and marked") {
  auto items = tricky_items();
  items.pop_back();
  std::string csv = write_items(items, DataFormat::csv);
  CHECK(csv.rfind("key,flag,len,version,expire,data,encoding\r\n", 0) == 0);
  CHECK(csv.find("empty,0,0,3,0,,\r\n") != std::string::npos);
  CHECK(csv.find("crlf,7,25,3,2000000000,\"line one\r\nline two\r\nEND\r\n\",\r\n") != std::string::npos);
  CHECK(csv.find("nul,4294967295,6,3,0,YQBiAABj,base64\r\n") != std::string::npos);
  CHECK(csv.find("\"quotes,commas\",1,19,3,0,\"say \"\"hi\"\", then, bye\",\r\n") != std::string::npos);
  CHECK(csv.find("latin1,0,4,3,0,Y2Fm6Q==,base64\r\n") != std::string::npos);
  CHECK(csv.find("utf8,0,9,3,0,caf\xc3\xa9 \xe2\x82\xac,\r\n") != std::string::npos);
}

TEST_CASE("both formats read back exactly what was written") {
  for (DataFormat f : {DataFormat::flare, DataFormat::csv}) {
    CAPTURE(static_cast<int>(f));
    auto items = tricky_items();
    auto back = read_items(write_items(items, f), f);
    REQUIRE(back.size() == items.size());
    for (size_t k = 0; k < items.size(); ++k) {
      CAPTURE(items[k].header.key);
      CHECK(back[k].header.key == items[k].header.key);
      CHECK(back[k].header.flags == items[k].header.flags);
      CHECK(back[k].header.expire == items[k].header.expire);
      CHECK(back[k].header.version == items[k].header.version);
      CHECK(back[k].data == items[k].data);
    }
  }
}

TEST_CASE("a damaged file is refused with the offset of the bad record") {
  std::string good = "VALUE a 0 3 1 0\r\nabc\r\nVALUE b 0 2 1 0\r\nxy\r\nEND\r\n";
  auto error_of = [](const std::string& bytes, DataFormat f) {
    try {
      read_items(bytes, f);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(error_of(good, DataFormat::flare) == "accepted");
  SUBCASE("cut short: no END") {
    CHECK(error_of(good.substr(0, good.size() - 5), DataFormat::flare) ==
          "test: malformed record at byte 43: the input ends without END (it was cut short)");
  }
  SUBCASE("cut inside a value") {
    CHECK(error_of(good.substr(0, 40), DataFormat::flare) ==
          "test: malformed record at byte 22: the input ends inside the data of 'b'");
    CHECK(error_of(good.substr(0, 37), DataFormat::flare) ==
          "test: malformed record at byte 22: the input ends inside a VALUE line");
  }
  SUBCASE("a length that disagrees with the data") {
    std::string bad = "VALUE a 0 2 1 0\r\nabc\r\nEND\r\n";
    CHECK(error_of(bad, DataFormat::flare) ==
          "test: malformed record at byte 0: the data is longer than its length field says");
  }
  SUBCASE("garbage") {
    CHECK(error_of("VALUE a 0 3 1 0\r\nabc\r\nhello\r\nEND\r\n", DataFormat::flare).find("malformed record at byte 22") !=
          std::string::npos);
  }
  SUBCASE("data after END") { CHECK(error_of(good + "x", DataFormat::flare).find("data after END") != std::string::npos); }
  SUBCASE("CSV with a wrong len") {
    std::string csv = std::string(csv_header()) + "a,0,3,1,0,abc,\r\nb,0,5,1,0,xy,\r\n";
    CHECK(error_of(csv, DataFormat::csv) == "test: malformed record at byte 59: data is 2 bytes, its len field says 5");
  }
  SUBCASE("CSV cut inside a quoted cell") {
    std::string csv = std::string(csv_header()) + "a,0,3,1,0,\"ab";
    CHECK(error_of(csv, DataFormat::csv).find("the input ends inside a quoted cell") != std::string::npos);
  }
  SUBCASE("CSV without the header") {
    CHECK(error_of("a,0,3,1,0,abc,\r\n", DataFormat::csv).find("not a flare-tools CSV dump") != std::string::npos);
  }
}

TEST_CASE("restore pipelines its sets and names the keys that failed") {
  std::atomic<int> max_unanswered{0};
  TestServer node([&](int fd) {
    // Reads everything first (as a pipelining client expects), answers in order.
    std::string line;
    int n = 0;
    while (TestServer::read_line(fd, line)) {
      if (line.rfind("set ", 0) != 0) continue;
      std::string data;
      TestServer::read_line(fd, data);
      ++n;
      TestServer::send_all(fd, line.find(" bad") != std::string::npos ? "NOT_STORED\r\n"
                               : line.find(" oops") != std::string::npos ? "SERVER_ERROR out of memory\r\n"
                                                                           : "STORED\r\n");
    }
    max_unanswered = n;
  });
  NodeClient c(Endpoint{"127.0.0.1", node.port()}, 5000);
  PipelinedWriter w(c, 0, 4096);
  ItemHeader h;
  for (int i = 0; i < 2000; ++i) {
    h.key = i == 10 ? "bad" : i == 20 ? "oops" : "k" + std::to_string(i);
    w.set(h, "value");
  }
  RestoreReport r = w.finish();
  CHECK(r.sent == 2000);
  CHECK(r.stored == 1998);
  CHECK(r.failed == 2);
  REQUIRE(r.first_failures.size() == 2);
  CHECK(r.first_failures[0] == "bad: NOT_STORED");
  CHECK(r.first_failures[1] == "oops: SERVER_ERROR out of memory");
}

TEST_CASE("a bandwidth below 8 bits per second is refused, not taken as unlimited") {
  CHECK_FALSE(parse_bandwidth("7").has_value());
  CHECK_FALSE(parse_bandwidth("1").has_value());
  CHECK(parse_bandwidth("8").value() == 1);
  CHECK(parse_bandwidth("0").value() == 0); // 0 is "no limit", as in 0.7.3
  CHECK(parse_bandwidth("1B").value() == 1);
}

TEST_CASE("a CSV record with more than seven cells is refused at the eighth") {
  TempFile t;
  std::string csv = std::string(csv_header()) + "a,0,1,1,0,x,";
  for (int i = 0; i < 1000; ++i) csv += ",";
  csv += "\r\n";
  t.write(csv);
  ItemReader r(t.open_read(), "test", DataFormat::csv);
  Item i;
  CHECK_THROWS_WITH_AS(r.next(i), doctest::Contains("more than 7 cells"), InputError);
}

TEST_CASE("a reader hands a value over in pieces, and can start at any record") {
  TempFile t;
  std::string big(300000, 'b');
  std::string file = "VALUE a 0 1 1 0\r\nx\r\nVALUE big 3 300000 2 0\r\n" + big + "\r\nVALUE c 0 1 1 0\r\nz\r\nEND\r\n";
  t.write(file);
  SUBCASE("pieces no larger than the read buffer") {
    ItemReader r(t.open_read(), "test", DataFormat::flare);
    ItemHeader h;
    REQUIRE(r.next_header(h));
    REQUIRE(r.next_header(h)); // the first record's data is skipped on the way
    CHECK(h.key == "big");
    size_t pieces = 0, total = 0, largest = 0;
    r.read_data([&](std::string_view chunk) {
      ++pieces;
      total += chunk.size();
      largest = std::max(largest, chunk.size());
      CHECK(chunk.find_first_not_of('b') == std::string_view::npos);
    });
    CHECK(total == big.size());
    CHECK(pieces > 1);
    CHECK(largest <= static_cast<size_t>(FLARE_TOOLS_READ_BUFFER_BYTES) + FLARE_TOOLS_MAX_LINE_BYTES);
    REQUIRE(r.next_header(h));
    CHECK(h.key == "c");
  }
  SUBCASE("skip_to a record start, and refuse anything else") {
    size_t c_at = file.find("VALUE c");
    ItemReader r(t.open_read(), "test", DataFormat::flare);
    r.skip_to(c_at);
    Item i;
    REQUIRE(r.next(i));
    CHECK(i.header.key == "c");
    CHECK(r.offset() == c_at);
    CHECK_FALSE(r.next(i));
    ItemReader r2(t.open_read(), "test", DataFormat::flare);
    CHECK_THROWS_WITH_AS(r2.skip_to(c_at - 1), doctest::Contains("is not the start of a record"), InputError);
    ItemReader r3(t.open_read(), "test", DataFormat::flare);
    CHECK_THROWS_WITH_AS(r3.skip_to(file.size() + 10), doctest::Contains("is past the last record"), InputError);
  }
}

TEST_CASE("a restore against a node that answers one reply at a time, slowly, counts every reply") {
  TestServer trickle([&](int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string line, data;
    int n = 0;
    while (TestServer::read_line(fd, line)) {
      if (line.rfind("set ", 0) != 0) continue;
      TestServer::read_line(fd, data);
      if (++n % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      TestServer::send_all(fd, n == 1500 ? "NOT_STORED\r\n" : "STORED\r\n"); // one write per reply
    }
  });
  TempFile t;
  std::string file;
  for (int i = 0; i < 3000; ++i) file += "VALUE k" + std::to_string(i) + " 0 5 1 0\r\nvalue\r\n";
  file += "END\r\n";
  t.write(file);
  ItemReader r(t.open_read(), "test", DataFormat::flare);
  NodeClient c(Endpoint{"127.0.0.1", trickle.port()}, 5000);
  RestoreOptions opt;
  opt.window_bytes = 16 << 10;
  RestoreReport rep = restore_items(r, c, opt);
  CHECK(rep.complete);
  CHECK(rep.sent == 3000);
  CHECK(rep.stored == 2999);
  CHECK(rep.failed == 1);
  REQUIRE(rep.first_failures.size() == 1);
  CHECK(rep.first_failures[0] == "k1499: NOT_STORED");
  CHECK(rep.unacknowledged == 0);
  CHECK(rep.resume_offset == file.size() - 5);
}

namespace {
// A `stats nodes` map from "HOST:PORT role state partition" rows.
Cluster routing_map(const std::vector<std::string>& rows) {
  std::vector<std::string> lines;
  int tt = 16;
  for (const auto& r : rows) {
    std::istringstream in(r);
    std::string key, role, state, part;
    in >> key >> role >> state >> part;
    lines.push_back("STAT " + key + ":role " + role);
    lines.push_back("STAT " + key + ":state " + state);
    lines.push_back("STAT " + key + ":partition " + part);
    lines.push_back("STAT " + key + ":balance 1");
    lines.push_back("STAT " + key + ":thread_type " + std::to_string(tt++));
  }
  return Cluster(parse_stats_nodes(lines));
}
} // namespace

TEST_CASE("restore_routing: one active master per partition, the key's partition as the cluster computes it") {
  Meta meta = parse_meta({"META partition-size 1024", "META key-hash-algorithm crc32", "META partition-type modular",
                          "META partition-modular-hint 1", "META partition-modular-virtual 4096"});
  // a replaced master stays listed, down, beside the new one: that partition still routes
  auto r = restore_routing(routing_map({"h:1 master active 0", "h:2 master down 1", "h:3 master active 1",
                                        "h:4 master active 2", "h:5 slave active 2", "h:6 proxy active -1"}),
                           meta);
  REQUIRE(r.masters.size() == 3);
  CHECK(r.masters[1].key == "h:3");
  CHECK(r.partitioning.algorithm == KeyHashAlgorithm::crc32);
  ModularResolver m;
  for (const char* key : {"a", "user:1", "item:00042", "zzz"})
    CHECK(r.partition_of(key) == m.partition_of(key_hash(key, KeyHashAlgorithm::crc32), 3));
  auto refusal = [&](const std::vector<std::string>& rows) {
    try {
      restore_routing(routing_map(rows), meta);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no refusal");
  };
  CHECK(refusal({"h:1 master active 0", "h:2 master prepare 1"}).find("partition 1: its master h:2 is in prepare") !=
        std::string::npos);
  CHECK(refusal({"h:1 master active 0", "h:2 master active 0"}).find("partition 0: two active masters (") !=
        std::string::npos);
  CHECK(refusal({"h:1 master active 0", "h:3 master active 2"}).find("partition 1: no master") != std::string::npos);
  CHECK(refusal({"h:6 proxy active -1"}).find("the cluster has no partition") != std::string::npos);
  CHECK(refusal({"h:1 master active 0"}) == "no refusal");
}

// Issue 32.3: dump_items returned 0 unless DumpOptions::on_item was set, though it says it
// returns the item count.
TEST_CASE("dump_items returns the item count with no hook set, from one node and from several") {
  auto serve = [](const std::string& items) {
    return [items](int fd) {
      std::string line;
      while (TestServer::read_line(fd, line)) {
        if (line.rfind("dump", 0) == 0) TestServer::send_all(fd, items + "END\r\n");
        else if (line == "version") TestServer::send_all(fd, "VERSION flare-1.3.4\r\n");
      }
    };
  };
  TestServer a(serve("VALUE a 0 1 0 0\r\nx\r\nVALUE b 0 1 0 0\r\ny\r\n"));
  TestServer b(serve("VALUE c 0 1 0 0\r\nz\r\n"));
  TempFile t;
  int fd = ::open(t.path.c_str(), O_WRONLY | O_TRUNC);
  REQUIRE(fd >= 0);
  {
    FdWriter out(fd, t.path);
    ItemWriter w(out, DataFormat::flare);
    DumpOptions none; // no hook at all
    none.timeout_ms = 5000;
    SUBCASE("one node") { CHECK(dump_items({DumpTarget{Endpoint{"127.0.0.1", a.port()}, {}}}, w, none) == 2); }
    SUBCASE("two nodes at once") {
      CHECK(dump_items({DumpTarget{Endpoint{"127.0.0.1", a.port()}, {}}, DumpTarget{Endpoint{"127.0.0.1", b.port()}, {}}}, w,
                       none) == 3);
    }
    w.finish();
  }
  ::close(fd);
}
