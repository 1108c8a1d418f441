// Integration: flare-stats --prometheus against tests/fake-flare (read back by the strict
// exposition parser of prom_check.hpp, and by promtool when it is installed), and the tools on
// clusters of hundreds and thousands of nodes, under a low open-files limit.
#include "harness.hpp"
#include "prom_check.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>

using harness::count_lines;
using harness::FakeCluster;
using harness::master_and_slave;
using harness::slurp;
using harness::run;
using harness::with;

namespace {


// Runs flare-admin with RLIMIT_NOFILE set to `nofile` (soft and hard, so it cannot raise it).
harness::Result run_with_nofile(rlim_t nofile, const std::vector<std::string>& args, int limit_s = 120) {
  std::string dir = harness::make_temp_dir();
  const std::string out_path = dir + "/out", err_path = dir + "/err";
  harness::ChildExec child(harness::admin_binary(), "flare-admin", args, harness::child_env({}));
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit rl{nofile, nofile};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(126);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::close(out);
    ::close(err);
    child.exec();
  }
  harness::Result r;
  int st = 0;
  for (;;) {
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(limit_s)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      FAIL("flare-admin did not finish within " << limit_s << " s");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  std::string cmd = "rm -rf '" + dir + "'";
  int rc = std::system(cmd.c_str());
  (void)rc;
  return r;
}

// Every data row of the stats table has its items cell filled (a node that did not answer has it empty).
bool every_row_answered(const std::string& table) {
  std::istringstream in(table);
  std::string line;
  std::getline(in, line); // header
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string key, state, role, part, balance, items;
    if (!(w >> key >> state >> role >> part >> balance >> items)) return false;
    if (!std::all_of(items.begin(), items.end(), ::isdigit)) return false;
  }
  return true;
}

} // namespace

TEST_CASE("stats --prometheus exports every node and the cluster in strict exposition format") {
  FakeCluster f(3);
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 2");
  f.must("fill " + f.node(0) + " 150 10");
  f.must("refuse " + f.node(2) + " 1");
  auto r = run(with({"stats", "--prometheus"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.err == f.node(2) + ": Connection refused\n");
  prom::Exposition ex;
  REQUIRE_NOTHROW(ex = prom::parse_strict(r.out));
  std::map<std::string, std::string> master = {{"index", f.index()}, {"node", f.node(0)}};
  CHECK(ex.value("flare_node_info", {{"node", f.node(0)}, {"role", "master"}, {"state", "active"}, {"partition", "0"}}) == "1");
  CHECK(ex.value("flare_up", master) == "1");
  CHECK(ex.value("flare_current_items", master) == std::to_string(f.items(0)));
  CHECK(ex.value("flare_current_items", {{"node", f.node(1)}}) == std::to_string(f.items(1)));
  CHECK(ex.value("flare_balance", {{"node", f.node(1)}}) == "2");
  CHECK(std::stoll(ex.value("flare_bytes", master)) > 0);
  // The refused node is reported down, not left out.
  CHECK(ex.value("flare_up", {{"node", f.node(2)}}) == "0");
  CHECK(ex.count("flare_up") == 3);
  CHECK(ex.count("flare_current_items") == 2);
  CHECK(ex.value("flare_index_up", {{"index", f.index()}}) == "1");
  CHECK(ex.value("flare_cluster_items") == std::to_string(f.items(0)));
  CHECK(ex.value("flare_cluster_partitions") == "1");
  CHECK(ex.value("flare_cluster_nodes", {{"role", "proxy"}, {"state", "active"}}) == "1");

  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::string file = f.dir() + "/out.prom";
    std::ofstream(file) << r.out;
    CHECK(std::system(("promtool check metrics < '" + file + "' >/dev/null 2>&1").c_str()) == 0);
  } else {
    MESSAGE("promtool not installed: only the built-in strict check ran");
  }
}

TEST_CASE("stats --prometheus -o FILE replaces the file atomically, and a dead index is flare_index_up 0") {
  FakeCluster f(2);
  std::string file = f.dir() + "/flare.prom";
  std::ofstream(file) << "old\n";
  struct stat before {};
  REQUIRE(::stat(file.c_str(), &before) == 0);
  auto r = run(with({"stats", "--prometheus", "-o", file}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  struct stat after {};
  REQUIRE(::stat(file.c_str(), &after) == 0);
  CHECK(after.st_ino != before.st_ino); // renamed into place, not rewritten in place
  CHECK(harness::temporaries_beside(file).empty());
  auto ex = prom::parse_strict(slurp(file));
  CHECK(ex.count("flare_up") == 2);

  auto dead = run({"stats", "--prometheus", "-o", file, "-i", "127.0.0.1:1"});
  CHECK(dead.status == 1);
  CHECK(count_lines(dead.err) == 1);
  auto down = prom::parse_strict(slurp(file));
  CHECK(down.value("flare_index_up", {{"index", "127.0.0.1:1"}}) == "0");
  CHECK(down.count("flare_up") == 0);
}

TEST_CASE("stats --prometheus refuses the table's options and node arguments") {
  FakeCluster f(1);
  for (auto extra : std::vector<std::vector<std::string>>{{"--json"}, {"--qps"}, {"-d", ","}, {f.node(0)}}) {
    auto r = run(with(with({"stats", "--prometheus"}, f.index_args()), extra));
    CHECK(r.status == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.out.empty());
  }
  auto r = run(with({"stats", "-o", f.dir() + "/x"}, f.index_args()));
  CHECK(r.status == 2);
  CHECK(::access((f.dir() + "/x").c_str(), F_OK) != 0);
}

TEST_CASE("stats of 200 nodes under an open-files limit of 64 works in windows instead of failing") {
  FakeCluster f(200, {"--stats-delay-ms", "20"});
  auto r = run_with_nofile(64, with({"stats"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(count_lines(r.out) == 201);
  CHECK(every_row_answered(r.out));
  auto p = run_with_nofile(64, with({"stats", "--prometheus"}, f.index_args()));
  CHECK(p.status == 0);
  auto ex = prom::parse_strict(p.out);
  CHECK(ex.count("flare_up") == 200);
  CHECK(ex.count("flare_uptime_seconds") == 200);
}

TEST_CASE("2,000 fake nodes start and list, stats, summary and --prometheus see all of them" * doctest::test_suite("slow")) {
  FakeCluster f(2000);
  REQUIRE(f.node_ports.size() == 2000);
  auto list = run(with({"list"}, f.index_args()));
  CHECK(list.status == 0);
  CHECK(count_lines(list.out) == 2001);
  auto stats = run(with({"stats"}, f.index_args()));
  CHECK(stats.status == 0);
  CHECK(stats.err.empty());
  CHECK(count_lines(stats.out) == 2001);
  CHECK(every_row_answered(stats.out));
  if (harness::rss_limit_kb() > 0) CHECK(stats.max_rss_kb <= harness::rss_limit_kb());
  auto summary = run(with({"summary"}, f.index_args()));
  CHECK(summary.status == 0);
  CHECK(summary.out.find(" 2000 ") != std::string::npos);
  auto p = run(with({"stats", "--prometheus"}, f.index_args()));
  CHECK(p.status == 0);
  auto ex = prom::parse_strict(p.out);
  CHECK(ex.count("flare_up") == 2000);
  CHECK(ex.count("flare_current_items") == 2000);
  CHECK(ex.value("flare_cluster_nodes", {{"role", "proxy"}, {"state", "active"}}) == "2000");
}
