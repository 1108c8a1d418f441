// What the fuzz targets do with a parser's result: feed it to everything downstream that the
// tools feed it to (cluster model, orderings, table/JSON/XML renderers) and check properties
// that must hold for any input. Shared by fuzz_reply and the direct-parser targets.
#ifndef FLARE_FUZZ_CHECKS_HPP
#define FLARE_FUZZ_CHECKS_HPP

#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

// ---- a strict JSON (RFC 8259) syntax check, for the --json outputs -----------------------

class JsonChecker {
public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  bool document() {
    ws();
    if (!value(0)) return false;
    ws();
    return i_ == s_.size();
  }

private:
  bool value(int depth) {
    if (depth > 64 || i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return string();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    return literal("true") || literal("false") || literal("null");
  }
  bool object(int depth) {
    ++i_;
    ws();
    if (peek('}')) return ++i_, true;
    for (;;) {
      ws();
      if (!string()) return false;
      ws();
      if (!peek(':')) return false;
      ++i_;
      ws();
      if (!value(depth + 1)) return false;
      ws();
      if (peek(',')) {
        ++i_;
        continue;
      }
      if (peek('}')) return ++i_, true;
      return false;
    }
  }
  bool array(int depth) {
    ++i_;
    ws();
    if (peek(']')) return ++i_, true;
    for (;;) {
      ws();
      if (!value(depth + 1)) return false;
      ws();
      if (peek(',')) {
        ++i_;
        continue;
      }
      if (peek(']')) return ++i_, true;
      return false;
    }
  }
  bool string() {
    if (!peek('"')) return false;
    ++i_;
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return false;
      if (c >= 0x80) return false; // the library promises ASCII-only JSON (everything else escaped)
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
          i_ += 5;
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) return false;
      }
      ++i_;
    }
    return false;
  }
  bool number() {
    if (peek('-')) ++i_;
    if (peek('0')) {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (peek('.')) {
      ++i_;
      if (digits() == 0) return false;
    }
    if (peek('e') || peek('E')) {
      ++i_;
      if (peek('+') || peek('-')) ++i_;
      if (digits() == 0) return false;
    }
    return true;
  }
  size_t digits() {
    size_t n = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_, ++n;
    return n;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  std::string_view s_;
  size_t i_ = 0;
};

inline void check_json(const std::string& doc, const char* what) {
  if (!JsonChecker(doc).document()) fail(what, flare::detail::printable(doc, 400));
}

inline size_t count_of(std::string_view s, std::string_view needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string_view::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

inline void check_printable(const std::string& s, const char* what) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) fail(what, flare::detail::printable(s, 400));
}

// ---- stats nodes -> cluster model and its renderers --------------------------------------

inline flare::Cluster exercise_nodes(const std::vector<flare::NodeInfo>& nodes) {
  flare::Cluster c(nodes);
  auto lo = c.list_order();
  auto so = c.stats_order();
  if (lo.size() != nodes.size() || so.size() != nodes.size()) fail("an ordering lost or added nodes");
  int pc = c.partition_count();
  if (pc < 0) fail("negative partition_count");
  for (auto& n : nodes) {
    if (n.key != n.host + ":" + std::to_string(n.port)) fail("node key is not host:port", n.key);
    if (!c.find(n.key)) fail("find() misses a node", n.key);
    bool r = c.reconstructable(n);
    bool s = c.safely_reconstructable(n);
    if (s && !r) fail("safely_reconstructable but not reconstructable", n.key);
    if (n.partition >= pc) fail("partition beyond partition_count", n.key);
    const flare::NodeInfo* m = c.master_of(n.partition);
    if (m && (!m->is_master() || m->partition != n.partition)) fail("master_of returned a wrong node");
    for (auto* sl : c.slaves_of(n.partition))
      if (!sl->is_slave() || sl->partition != n.partition) fail("slaves_of returned a wrong node");
    int active = c.active_slave_count(n.partition);
    if (active < 0 || active > static_cast<int>(nodes.size())) fail("active_slave_count out of range");
  }
  int serving = flare::serving_partition_count(c);
  if (serving < 0 || serving > pc) fail("serving_partition_count out of range");

  std::string table = flare::format_node_table(lo);
  if (count_of(table, "\n") != nodes.size() + 1) fail("node table: not one line per node", table);
  check_json(flare::format_node_json(nodes), "format_node_json is not valid JSON");
  std::string xml = flare::format_index_xml(c, 1);
  if (count_of(xml, "\t<item ") + count_of(xml, "\t<item>") != nodes.size() || count_of(xml, "</item>") != nodes.size())
    fail("index XML: not one <item> per node", flare::detail::printable(xml, 400));
  (void)flare::format_index_xml(c, LLONG_MAX);
  return c;
}

// ---- stats threads -----------------------------------------------------------------------

inline void exercise_threads(const std::vector<flare::ThreadInfo>& threads) {
  if (flare::threads_order(threads).size() != threads.size()) fail("threads_order lost or added threads");
  std::string table = flare::format_threads_table(threads);
  if (count_of(table, "\n") != threads.size() + 1) fail("threads table: not one line per thread", table);
  check_json(flare::format_threads_json(threads), "format_threads_json is not valid JSON");
}

// ---- stats -> flare-stats rows -------------------------------------------------------------

inline void exercise_stats(const flare::NodeStats& s) {
  using namespace std::chrono;
  const auto t0 = flare::Clock::time_point{} + hours(1);

  flare::StatsResult up;
  up.endpoint = flare::Endpoint{"127.0.0.1", 12121};
  up.ok = true;
  up.stats = s;
  up.fetched_at = t0 + seconds(1);
  flare::StatsResult down;
  down.endpoint = flare::Endpoint{"127.0.0.1", 12122};
  down.ok = false;
  down.error = s.get("version"); // any peer text may end up in an error message

  flare::NodeInfo n1;
  n1.key = "127.0.0.1:12121", n1.host = "127.0.0.1", n1.port = 12121;
  n1.role = "master", n1.state = "active", n1.partition = 0, n1.balance = 1;
  flare::NodeInfo n2 = n1;
  n2.key = "127.0.0.1:12122", n2.port = 12122, n2.role = "slave";
  flare::NodeInfo n3 = n1;
  n3.key = "127.0.0.1:12123", n3.port = 12123, n3.role = "proxy", n3.partition = -1;

  std::vector<flare::StatsRow> rows(3);
  rows[0].node = n1;
  rows[0].result = &up;
  // The counters since a first sample of zero one second earlier (a node that just started).
  rows[0].qps = flare::qps_between(flare::QpsSample{0, 0, t0}, flare::qps_sample(up));
  rows[1].node = n2;
  rows[1].result = &down;
  // A slave's lag from the fuzzed figures (any value, negative and huge too).
  flare::SlaveLag lag;
  lag.slave = n2.key;
  lag.queue = std::strtoll(s.get("uptime").c_str(), nullptr, 10);
  if (auto* b = s.find("behind")) lag.behind = std::strtoll(b->c_str(), nullptr, 10);
  lag.writing = lag.queue % 2 != 0;
  rows[1].lag = lag;
  rows[1].qps = flare::qps_between(flare::qps_sample(up), flare::qps_sample(up));
  rows[2].node = n3; // never asked

  for (bool q : {false, true}) {
    for (auto& r : rows)
      if (flare::stats_cells(r, q).size() != flare::stats_header(q).size()) fail("stats_cells: wrong number of cells");
    for (const char* delim : {" ", "\t", ""}) {
      std::string table = flare::format_stats_table(rows, q, delim);
      if (count_of(table, "\n") != rows.size() + 1) fail("stats table: not one line per node", table);
    }
    check_json(flare::format_stats_json(rows, q), "format_stats_json is not valid JSON");
  }
  check_printable(flare::hit_rate_cell(s), "hit_rate_cell is not printable");
  if (auto u = s.number("uptime")) (void)flare::short_duration(*u);
}

// ---- meta -> partitioning (what verify does with it) -------------------------------------

inline void exercise_meta(const flare::Meta& m, const flare::Cluster* cluster) {
  flare::Partitioning p;
  try {
    p = flare::partitioning_from_meta(m);
  } catch (const flare::Error&) {
    return;
  }
  if (!p.resolver.valid()) fail("partitioning_from_meta gave an invalid resolver");
  std::vector<int> counts = {1, 2};
  if (cluster) counts.push_back(flare::serving_partition_count(*cluster));
  for (int count : counts) {
    for (std::string_view key : {"key0", "withexp"}) {
      int r = p.resolver.partition_of(flare::key_hash(key, p.algorithm), count);
      if (r != -1 && (r < 0 || r >= count)) fail("partition_of out of range");
    }
  }
}

} // namespace fuzz

#endif // FLARE_FUZZ_CHECKS_HPP
