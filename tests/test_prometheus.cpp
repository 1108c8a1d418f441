// Unit tests: the Prometheus exposition (format_prometheus) read back by a strict 0.0.4 parser,
// and the open-files limit that lets a gather reach thousands of nodes.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "flare_tools.hpp"
#include "prom_check.hpp"

using namespace flare;

namespace {

NodeInfo node(const std::string& host, int port, const std::string& role, const std::string& state, int partition,
              int balance) {
  NodeInfo n;
  n.host = host;
  n.port = port;
  n.key = host + ":" + std::to_string(port);
  n.role = role;
  n.state = state;
  n.partition = partition;
  n.balance = balance;
  return n;
}

StatsResult answered(const NodeInfo& n, std::vector<std::pair<std::string, std::string>> fields) {
  StatsResult r;
  r.endpoint = n.endpoint();
  r.ok = true;
  r.stats.fields = std::move(fields);
  return r;
}

StatsResult failed(const NodeInfo& n) {
  StatsResult r;
  r.endpoint = n.endpoint();
  r.error = "Connection refused";
  return r;
}

// Runs `fn` in a child process (so that the test's own limits are left alone); true if it exited 0.
template <typename F> bool in_child(F fn) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(fn() ? 0 : 1);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

} // namespace

TEST_CASE("the prometheus exposition passes a strict format check and carries every node's stats") {
  auto m = node("10.0.0.1", 12121, "master", "active", 0, 1);
  auto s = node("10.0.0.2", 12121, "slave", "active", 0, 2);
  auto p = node("10.0.0.3", 12121, "proxy", "active", -1, 0);
  Cluster cluster({m, s, p});
  std::vector<StatsResult> results = {
      answered(m, {{"uptime", "22"}, {"curr_items", "20000"}, {"bytes", "21648704"}, {"cmd_get", "7"},
                   {"rusage_user", "2.766564"}, {"version", "1.3.4"}}),
      answered(s, {{"uptime", "21"}, {"curr_items", "19999"}, {"bytes", "21000000"}, {"cmd_get", "x1"}}),
      failed(p)};
  std::string text = format_prometheus("10.0.0.9:12120", cluster, results);
  prom::Exposition ex;
  REQUIRE_NOTHROW(ex = prom::parse_strict(text));

  // A node's series carry its cluster and itself only; its role, state, partition and version
  // are flare_node_info's labels (a failover changes them, and must not start new series).
  std::map<std::string, std::string> ml = {{"index", "10.0.0.9:12120"}, {"node", "10.0.0.1:12121"}};
  CHECK(ex.value("flare_up", ml) == "1");
  for (const auto& smp : ex.samples)
    if (smp.labels.count("node") && smp.name != "flare_node_info" && smp.name != "flare_version_info") {
      INFO(smp.name);
      CHECK(smp.labels.size() == 2);
    }
  CHECK(ex.value("flare_node_info", {{"node", "10.0.0.1:12121"}, {"role", "master"}, {"state", "active"}, {"partition", "0"},
                                     {"version", "1.3.4"}}) == "1");
  CHECK(ex.value("flare_node_info", {{"node", "10.0.0.3:12121"}, {"role", "proxy"}, {"partition", "-1"}, {"version", ""}}) == "1");
  CHECK(ex.value("flare_current_items", ml) == "20000");
  CHECK(ex.value("flare_bytes", ml) == "21648704");
  CHECK(ex.value("flare_uptime_seconds", ml) == "22");
  CHECK(ex.value("flare_cmd_get_total", ml) == "7");
  CHECK(ex.value("flare_cpu_user_seconds_total", ml) == "2.766564");
  CHECK(ex.value("flare_balance", {{"node", "10.0.0.2:12121"}}) == "2");
  CHECK(ex.types.at("flare_cmd_get_total") == "counter");
  CHECK(ex.types.at("flare_current_items") == "gauge");
  // A malformed value is left out, not guessed.
  CHECK(ex.count("flare_cmd_get_total") == 1);
  // The unreachable node is there, as down, and has no stats samples.
  CHECK(ex.value("flare_up", {{"node", "10.0.0.3:12121"}}) == "0");
  for (const auto& smp : ex.samples) {
    auto it = smp.labels.find("node");
    if (it != smp.labels.end() && it->second == "10.0.0.3:12121")
      CHECK((smp.name == "flare_up" || smp.name == "flare_balance" || smp.name == "flare_node_info"));
  }
  // Cluster-level gauges: the masters' sums and the nodes by role and state (zeros included).
  CHECK(ex.value("flare_index_up", {{"index", "10.0.0.9:12120"}}) == "1");
  CHECK(ex.value("flare_cluster_items") == "20000");
  CHECK(ex.value("flare_cluster_bytes") == "21648704");
  CHECK(ex.value("flare_cluster_partitions") == "1");
  CHECK(ex.value("flare_cluster_nodes", {{"role", "slave"}, {"state", "active"}}) == "1");
  CHECK(ex.value("flare_cluster_nodes", {{"role", "master"}, {"state", "down"}}) == "0");
  CHECK(ex.count("flare_cluster_nodes") == 12);
  // Counters end in _total and nothing else does.
  for (const auto& [name, type] : ex.types) CHECK((type == "counter") == (name.size() > 6 && name.substr(name.size() - 6) == "_total"));
}

TEST_CASE("the unreachable node of a prometheus exposition has flare_up 0 and no other stats") {
  auto a = node("10.0.0.1", 12121, "master", "active", 0, 1);
  auto b = node("10.0.0.2", 12121, "master", "active", 1, 1);
  Cluster cluster({a, b});
  auto ex = prom::parse_strict(format_prometheus("i:1", cluster, {answered(a, {{"curr_items", "5"}}), failed(b)}));
  CHECK(ex.value("flare_up", {{"node", "10.0.0.2:12121"}}) == "0");
  for (const auto& smp : ex.samples) {
    auto it = smp.labels.find("node");
    if (it != smp.labels.end() && it->second == "10.0.0.2:12121")
      CHECK((smp.name == "flare_up" || smp.name == "flare_balance" || smp.name == "flare_node_info"));
  }
  CHECK(ex.value("flare_cluster_unreachable_masters") == "1");
  CHECK(ex.value("flare_cluster_items") == "5");
}

TEST_CASE("prometheus label values escape backslash, quote and newline") {
  auto n = node("we\"ird\\host\nname", 1, "master", "active", 0, 1);
  Cluster cluster({n});
  std::string text = format_prometheus("idx\"1", cluster, {answered(n, {{"curr_items", "1"}})});
  CHECK(text.find("node=\"we\\\"ird\\\\host\\nname:1\"") != std::string::npos);
  auto ex = prom::parse_strict(text);
  CHECK(ex.value("flare_current_items", {{"node", "we\"ird\\host\nname:1"}}) == "1");
  CHECK(ex.value("flare_index_up", {{"index", "idx\"1"}}) == "1");
}

TEST_CASE("an index server that cannot be read is flare_index_up 0") {
  auto ex = prom::parse_strict(format_prometheus_index_down("127.0.0.1:12120"));
  CHECK(ex.value("flare_index_up", {{"index", "127.0.0.1:12120"}}) == "0");
  CHECK(ex.samples.size() == 1);
}

TEST_CASE("the strict exposition checker refuses what the format does not allow") {
  const std::string ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\"} 1\n";
  CHECK_NOTHROW(prom::parse_strict(ok));
  CHECK_THROWS(prom::parse_strict("a_total 1\n"));                                        // no TYPE
  CHECK_THROWS(prom::parse_strict("# TYPE 1a gauge\n1a 1\n"));                             // bad name
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na{l=\"\\t\"} 1\n"));                    // bad escape
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na{l=\"x\",l=\"y\"} 1\n"));              // label twice
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na 1\na 2\n"));                          // series twice
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n")); // interleaved
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na 1 1700000000\n"));                    // timestamp
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na one\n"));                             // value
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na 1"));                                 // no final newline
  CHECK_THROWS(prom::parse_strict("# TYPE a gauge\na 1\n# HELP a late\n"));                // HELP after samples
  CHECK_NOTHROW(prom::parse_strict("# TYPE a gauge\na{} 1.5e3\na{b=\"\"} -Inf\n"));
}

TEST_CASE("a gather raises the soft open-files limit as far as it needs, never past the hard limit") {
  CHECK(in_child([] {
    rlimit rl{64, 4096};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    if (detail::gather_window(1000) != 1000) return false;
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur == 1000 + FLARE_TOOLS_RESERVED_FDS && rl.rlim_max == 4096;
  }));
  CHECK(in_child([] {
    rlimit rl{64, 64};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    // Above the hard limit: a window of what the limit leaves beside the reserve.
    if (detail::gather_window(1000) != 64 - FLARE_TOOLS_RESERVED_FDS) return false;
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur == 64;
  }));
}

TEST_CASE("a failover keeps every per-node series: only flare_node_info's labels change") {
  // Before: 10.0.0.1 master, 10.0.0.2 its slave. After: 10.0.0.2 master, 10.0.0.1 a proxy.
  auto m = node("10.0.0.1", 12121, "master", "active", 0, 1);
  auto s = node("10.0.0.2", 12121, "slave", "active", 0, 1);
  auto m2 = node("10.0.0.1", 12121, "proxy", "active", -1, 0);
  auto s2 = node("10.0.0.2", 12121, "master", "active", 0, 1);
  auto series = [](const std::string& text) {
    std::set<std::string> out;
    for (const auto& smp : prom::parse_strict(text).samples) {
      if (!smp.labels.count("node") || smp.name == "flare_node_info") continue;
      std::string id = smp.name;
      for (const auto& [k, v] : smp.labels) id += "," + k + "=" + v;
      out.insert(id);
    }
    return out;
  };
  auto before = series(format_prometheus("i:1", Cluster({m, s}), {answered(m, {{"curr_items", "5"}}), answered(s, {{"curr_items", "5"}})}));
  auto after = series(format_prometheus("i:1", Cluster({m2, s2}), {answered(m2, {{"curr_items", "5"}}), answered(s2, {{"curr_items", "5"}})}));
  CHECK(before.size() > 4);
  CHECK(before == after);
}
