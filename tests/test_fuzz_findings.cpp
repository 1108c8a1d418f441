// What fuzzing found (tests/fuzz/crashes/ holds each reproducer): every finding is a test here.
#include "flare_tools.hpp"
#include "test_nodes.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

using namespace flare;

namespace {

std::vector<Item> read_all(const std::string& bytes, DataFormat f) {
  char path[] = "/tmp/flare-fuzzfind-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::lseek(fd, 0, SEEK_SET);
  ::unlink(path);
  ItemReader r(fd, "fuzz", f);
  std::vector<Item> out;
  Item i;
  while (r.next(i)) out.push_back(i);
  return out;
}

std::string write_all(const std::vector<Item>& items, DataFormat f) {
  char path[] = "/tmp/flare-fuzzfind-XXXXXX";
  int fd = ::mkstemp(path);
  {
    FdWriter out(fd, path);
    ItemWriter w(out, f);
    for (auto& i : items) w.write(i.header, i.data);
    w.finish();
  }
  std::string bytes;
  ::lseek(fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
  ::close(fd);
  ::unlink(path);
  return bytes;
}

Meta meta(std::vector<std::pair<std::string, std::string>> f) {
  Meta m;
  m.fields = std::move(f);
  return m;
}

} // namespace

TEST_CASE("a key holding a tab survives both formats (flare splits on spaces only)") {
  auto items = read_all("VALUE a\tb 0 1 1 0\r\nx\r\nEND\r\n", DataFormat::flare);
  REQUIRE(items.size() == 1);
  CHECK(items[0].header.key == "a\tb");
  auto back = read_all(write_all(items, DataFormat::csv), DataFormat::csv);
  REQUIRE(back.size() == 1);
  CHECK(back[0].header.key == "a\tb");
  CHECK_THROWS_AS(parse_value_line(std::string("VALUE a\0b 0 1 1 0", 17)), ProtocolError);
}

TEST_CASE("a bandwidth too large to represent is refused, not wrapped") {
  CHECK_FALSE(parse_bandwidth("17179869184G").has_value());
  CHECK_FALSE(parse_bandwidth("999999999999999GB").has_value());
  CHECK(parse_bandwidth("4194303G").has_value());
}

TEST_CASE("meta asking for a partition map too large to build is refused") {
  CHECK_THROWS_WITH_AS(partitioning_from_meta(meta({{"partition-modular-virtual", "2147483647"}})),
                       doctest::Contains("more than this tool computes"), Error);
  CHECK_THROWS_AS(partitioning_from_meta(meta({{"partition-size", "2147483647"}})), Error);
  CHECK_NOTHROW(partitioning_from_meta(meta({{"partition-size", "1024"}, {"partition-modular-virtual", "65536"}})));
}

TEST_CASE("sums and rates of huge counters saturate instead of overflowing") {
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "master", "active", 1, 1)});
  std::vector<StatsResult> r(2);
  for (int i = 0; i < 2; ++i) {
    r[static_cast<size_t>(i)].endpoint = Endpoint{"h", i + 1};
    r[static_cast<size_t>(i)].ok = true;
    r[static_cast<size_t>(i)].stats.fields = {{"bytes", "9223372036854775807"}, {"curr_items", "9223372036854775807"}};
  }
  Summary s = summarize("x", c, r);
  CHECK(s.bytes == LLONG_MAX);
  CHECK(s.items == LLONG_MAX);
  auto t0 = Clock::now();
  auto q = qps_between(QpsSample{0, 0, t0}, QpsSample{LLONG_MAX, 1, t0 + std::chrono::seconds(1)});
  REQUIRE(q.total.has_value());
  CHECK(*q.total > 9e18);
}

TEST_CASE("a hit rate from counters that make no sense is '?', not a conversion out of range") {
  // tests/fuzz/crashes/fuzz_stats-hit-rate-out-of-range: get_hits 973232236854775806, cmd_get 2
  NodeStats s;
  s.fields = {{"cmd_get", "2"}, {"get_hits", "973232236854775806"}};
  CHECK(hit_rate_cell(s) == "?");
  s.fields = {{"cmd_get", "5"}, {"get_hits", "7"}}; // more hits than gets
  CHECK(hit_rate_cell(s) == "?");
  s.fields = {{"cmd_get", "9223372036854775807"}, {"get_hits", "9223372036854775807"}};
  CHECK(hit_rate_cell(s) == "100");
}

TEST_CASE("an ETA from counters beyond range is n/a, and one already passed is 0") {
  ConstructionProgress p;
  p.items = 1;
  p.elapsed = 1e6; // one item in eleven days
  p.master_items = LLONG_MAX;
  CHECK(eta_text(p) == "n/a");
  p.master_items = LLONG_MIN; // a hostile master's count: no overflow
  CHECK(eta_text(p) == "0");
  p.elapsed = 1;
  p.master_items = 11;
  CHECK(eta_text(p) == "10");
}

TEST_CASE("partition numbers and thread types at the int limits") {
  CHECK_THROWS_AS(parse_stats_nodes({"STAT h:1:role master", "STAT h:1:state active", "STAT h:1:partition 2147483647",
                                     "STAT h:1:balance 1"}),
                  ProtocolError);
  auto nodes = parse_stats_nodes({"STAT h:1:role proxy", "STAT h:1:state active", "STAT h:1:partition -1",
                                  "STAT h:1:balance 0", "STAT h:1:thread_type 2147483647"});
  CHECK(format_index_xml(Cluster(nodes), 0).find("<thread_type>2147483648</thread_type>") != std::string::npos);
}
