// Integration: the read-only subcommands (ping, list, stats, threads, summary, index) run as
// the built binary against tests/fake-flare, their whole output compared with expected text.
#include "harness.hpp"

#include <algorithm>

using harness::FakeCluster;
using harness::run;
using harness::with;

namespace {

std::string list_row(const std::string& key, const std::string& part, const std::string& role, const std::string& state,
                     const std::string& balance) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-32s %9s %6s %6s %7s\n", key.c_str(), part.c_str(), role.c_str(), state.c_str(),
                balance.c_str());
  return buf;
}

const std::string kListHeader = "node                             partition   role  state balance\n";

// master + slave in partition 0 and a proxy, like the tutorial after step (c).
void tutorial_layout(FakeCluster& f) {
  f.must("set-node " + f.node(0) + " master active 0 1");
  f.must("set-node " + f.node(1) + " slave active 0 0");
}

// Fixes each node's `stats` reply to a real flared's bytes so that the whole table is exact.
void fixed_stats(FakeCluster& f, size_t i, long long items, long long bytes, long long uptime, long long gets = 0,
                 long long hits = 0) {
  f.must("override " + f.node(i) + " +stats " + harness::hex(harness::node_stats_reply(items, bytes, uptime, gets, hits)));
}

} // namespace

TEST_CASE("ping says alive when every server answers") {
  FakeCluster f(2);
  auto r = run({"ping", f.index(), f.node(0), f.node(1)});
  CHECK(r.status == 0);
  CHECK(r.out == "alive\n");
  CHECK(r.err == "");
}

TEST_CASE("ping of a server that is down says so and fails") {
  FakeCluster f(1);
  f.must("refuse " + f.node(0) + " 1");
  auto r = run({"ping", f.node(0)});
  CHECK(r.status == 1);
  CHECK(r.out == f.node(0) + " is down\n");
}

TEST_CASE("ping refuses an argument that is not host:port") {
  for (const char* bad : {"host", ":12121", "host:12121:1"}) {
    CAPTURE(bad);
    auto r = run({"ping", bad});
    CHECK(r.status == 2);
    CHECK(r.err == std::string("invalid argument '") + bad + "'. it must be hostname:port. (see: flare-admin ping --help)\n");
  }
}

TEST_CASE("list shows the nodes in list order") {
  FakeCluster f(3);
  SUBCASE("a fresh cluster: all proxies") {
    std::vector<std::string> keys = {f.node(0), f.node(1), f.node(2)};
    std::sort(keys.begin(), keys.end());
    std::string expected = kListHeader;
    for (auto& k : keys) expected += list_row(k, "-", "proxy", "active", "0");
    auto r = run(with({"list"}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out == expected);
    CHECK(r.err == "");
  }
  SUBCASE("the tutorial layout: master, slave, then the proxy") {
    tutorial_layout(f);
    auto r = run(with({"list"}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out == kListHeader + list_row(f.node(0), "0", "master", "active", "1") +
                       list_row(f.node(1), "0", "slave", "active", "0") + list_row(f.node(2), "-", "proxy", "active", "0"));
  }
  SUBCASE("--json gives numbers as numbers") {
    tutorial_layout(f);
    auto r = run(with({"list", "--json"}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out.find("{\"node\":\"" + f.node(0) + "\",\"host\":\"127.0.0.1\",\"port\":" + std::to_string(f.node_ports[0]) +
                     ",\"partition\":0,\"role\":\"master\",\"state\":\"active\",\"balance\":1,\"thread_type\":16}") !=
          std::string::npos);
  }
}

TEST_CASE("the index server is found from options and the environment") {
  FakeCluster f(1);
  std::string port = std::to_string(f.index_port);
  SUBCASE("-i host -p port") { CHECK(run({"list", "-i", "127.0.0.1", "-p", port}).status == 0); }
  SUBCASE("--index-server=host:port") { CHECK(run({"list", "--index-server=127.0.0.1:" + port}).status == 0); }
  SUBCASE("an abbreviated long option") { CHECK(run({"list", "--index-server", f.index(), "--tim", "5"}).status == 0); }
  SUBCASE("an ambiguous abbreviation is a usage error") {
    auto r = run({"list", "--index-s", f.index()});
    CHECK(r.status == 2);
    CHECK(r.err == "ambiguous option '--index-s' (see: flare-admin list --help)\n");
  }
  SUBCASE("FLARE_INDEX_SERVER=host:port") {
    CHECK(run({"list"}, "", {{"FLARE_INDEX_SERVER", f.index()}}).status == 0);
  }
  SUBCASE("FLARE_INDEX_SERVER and FLARE_INDEX_SERVER_PORT") {
    CHECK(run({"list"}, "", {{"FLARE_INDEX_SERVER", "127.0.0.1"}, {"FLARE_INDEX_SERVER_PORT", port}}).status == 0);
  }
  SUBCASE("--cluster picks a name from FLARE_INDEX_SERVERS") {
    auto r = run({"list", "--cluster", "b"}, "", {{"FLARE_INDEX_SERVERS", "a:127.0.0.1:1;b:127.0.0.1:" + port}});
    CHECK(r.status == 0);
    auto u = run({"list", "--cluster", "zz"}, "", {{"FLARE_INDEX_SERVERS", "a:127.0.0.1:1"}});
    CHECK(u.status == 1);
    CHECK(u.err == "unknown cluster 'zz': not in FLARE_INDEX_SERVERS\n");
  }
  SUBCASE("options win over the environment") {
    CHECK(run({"list", "-i", f.index()}, "", {{"FLARE_INDEX_SERVER", "127.0.0.1:1"}}).status == 0);
  }
  SUBCASE("a port in -i and -p together is a usage error") {
    auto r = run({"list", "-i", f.index(), "-p", port});
    CHECK(r.status == 2);
    CHECK(r.err.find("--index-server-port option isn't allowed.") != std::string::npos);
  }
}

TEST_CASE("an unreachable index server is one line on stderr and exit 1") {
  FakeCluster f(1);
  SUBCASE("connection refused") {
    f.must("refuse index 1");
    auto r = run({"list", "-i", f.index()});
    CHECK(r.status == 1);
    CHECK(r.out == "");
    CHECK(r.err == "cannot connect to index server " + f.index() + ": Connection refused\n");
  }
  SUBCASE("accepts and never answers: ends within --timeout") {
    f.must("hang index 1");
    auto r = run({"list", "-i", f.index(), "--timeout", "1"});
    CHECK(r.status == 1);
    CHECK(r.err == "timed out waiting for index server " + f.index() + "\n");
    CHECK(r.seconds < 30); // ended by the 1 s deadline, not hung on the fake (a busy machine's margin)
  }
  SUBCASE("a name that does not resolve") {
    auto r = run({"stats", "-i", "no-such-host.invalid"});
    CHECK(r.status == 1);
    CHECK(r.err.find("index server no-such-host.invalid:12120: cannot resolve 'no-such-host.invalid'") == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("stats shows every node in stats order, byte for byte") {
  FakeCluster f(3);
  tutorial_layout(f);
  fixed_stats(f, 0, 20000, 21648704, 22);
  fixed_stats(f, 1, 20000, 21648704, 22);
  fixed_stats(f, 2, 0, 528704, 22);
  std::string k0 = f.node(0), k1 = f.node(1), k2 = f.node(2);
  std::string expected = "hostname:port   state  role   partition balance items conn behind hit size uptime version\n" +
                         k2 + " active proxy         -1       0     0    2      0   -    0    22s   1.3.4\n" + k0 +
                         " active master         0       1 20000    2      0   -    0    22s   1.3.4\n" + k1 +
                         " active slave          0       0 20000    2      0   -    0    22s   1.3.4\n";
  SUBCASE("flare-admin stats") {
    auto r = run(with({"stats"}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out == expected);
    CHECK(r.err == "");
  }
  SUBCASE("flare-stats is the same command") {
    auto r = run(f.index_args(), "", {}, "flare-stats");
    CHECK(r.status == 0);
    CHECK(r.out == expected);
  }
  SUBCASE("node arguments restrict the rows") {
    auto r = run(with({"stats", k1}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out == "hostname:port   state  role  partition balance items conn behind hit size uptime version\n" + k1 +
                       " active slave         0       0 20000    2      0   -    0    22s   1.3.4\n");
  }
  SUBCASE("an unknown node argument is refused") {
    auto r = run(with({"stats", "127.0.0.1:1"}, f.index_args()));
    CHECK(r.status == 1);
    CHECK(r.err == "unknown node: 127.0.0.1:1: the index lists no such node (see: flare-admin list)\n");
  }
  SUBCASE("a delimiter goes between the padded cells") {
    auto r = run(with({"stats", "-d", ",", k0}, f.index_args()));
    CHECK(r.out == "hostname:port  ,state ,role  ,partition,balance,items,conn,behind,hit,size,uptime,version\n" + k0 +
                       ",active,master,        0,      1,20000,   2,     0,  -,   0,   22s,  1.3.4\n");
  }
  SUBCASE("--json") {
    auto r = run(with({"stats", "--json", k0}, f.index_args()));
    CHECK(r.status == 0);
    CHECK(r.out == "[\n  {\"node\":\"" + k0 +
                       "\",\"state\":\"active\",\"role\":\"master\",\"partition\":0,\"balance\":1,\"reachable\":true,"
                       "\"behind\":0,\"items\":20000,\"conn\":2,\"hit\":null,\"bytes\":21648704,\"uptime\":22,"
                       "\"version\":\"1.3.4\",\"cmd_get\":0,\"cmd_set\":0,\"node_map_version\":3}\n]\n");
  }
}

TEST_CASE("a dead node shows as such in the stats table instead of failing the command") {
  FakeCluster f(3);
  tutorial_layout(f);
  fixed_stats(f, 0, 20000, 21648704, 22);
  fixed_stats(f, 2, 0, 528704, 22);
  f.must("refuse " + f.node(1) + " 1");
  auto r = run(with({"stats"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out.find(f.node(1) + " active slave          0       0                 0                        \n") !=
        std::string::npos);
  CHECK(r.err == f.node(1) + ": Connection refused\n");
}

TEST_CASE("stats --qps shows rates between samples and --count repeats the table" * doctest::test_suite("slow")) {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  auto r = run(with({"stats", "--qps", "--count", "2", "--wait", "1"}, f.index_args()));
  CHECK(r.status == 0);
  auto first = r.out.find("hostname:port");
  auto second = r.out.find("hostname:port", first + 1);
  CHECK(second != std::string::npos);
  CHECK(r.out.find(" version qps") != std::string::npos);
  CHECK(r.out.find("qps-r qps-w\n") != std::string::npos);
}

TEST_CASE("hit rate and size come from the node's counters") {
  FakeCluster f(1);
  f.must("set-node " + f.node(0) + " master active 0 1");
  fixed_stats(f, 0, 5, 3LL * 1024 * 1024 * 1024 + 5, 200000, 8, 1);
  auto r = run(with({"stats"}, f.index_args()));
  CHECK(r.out == "hostname:port   state  role   partition balance items conn behind hit size uptime version\n" + f.node(0) +
                     " active master         0       1     5    2      0  13    3     2d   1.3.4\n");
}

TEST_CASE("threads lists the threads of the index or of a node") {
  FakeCluster f(2);
  auto r = run(with({"threads"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out.rfind("   id peer                             operation     type    queue\n", 0) == 0);
  CHECK(r.out.find(" " + harness::pad(f.node(0), 32) + " -               16        0\n") != std::string::npos);
  CHECK(r.out.find(" " + harness::pad(f.node(1), 32) + " -               17        0\n") != std::string::npos);
  auto n = run(with({"threads", f.node(0)}, f.index_args()));
  CHECK(n.status == 0);
  CHECK(n.out.find("stats") != std::string::npos); // our own connection, executing stats threads
  auto bad = run(with({"threads", "nohost"}, f.index_args()));
  CHECK(bad.status == 2);
  CHECK(bad.err == "invalid argument 'nohost'. it must be hostname:port. (see: flare-admin threads --help)\n");
}

TEST_CASE("summary adds up the masters") {
  FakeCluster f(3);
  tutorial_layout(f);
  fixed_stats(f, 0, 20000, 21648704, 22);
  auto r = run(with({"summary"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out == "#cluster                        part  node master slave            size        items\n" +
                     harness::pad(f.index(), 30) + "     1     3      1     1        21648704        20000\n");
  SUBCASE("an unreachable master makes it incomplete, and says so") {
    f.must("refuse " + f.node(0) + " 1");
    auto d = run(with({"summary"}, f.index_args()));
    CHECK(d.status == 1);
    CHECK(d.err == f.node(0) + ": Connection refused\nsummary is incomplete: 1 master(s) did not answer\n");
  }
}

TEST_CASE("index prints the node map as flare's XML and writes files atomically") {
  FakeCluster f(2);
  tutorial_layout(f);
  auto r = run(with({"index"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(r.out.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n", 0) == 0);
  CHECK(r.out.find("\t\t<first>" + f.node(0) + "</first>\n") != std::string::npos);
  CHECK(r.out.find("<count>2</count>") != std::string::npos);
  CHECK(r.out.find("<thread_type>18</thread_type>") != std::string::npos);
  std::string file = f.dir() + "/flare.xml";
  auto w = run(with({"index", "--output", file}, f.index_args()));
  CHECK(w.status == 0);
  std::ifstream in(file);
  std::stringstream got;
  got << in.rdbuf();
  CHECK(got.str() == r.out);
}

TEST_CASE("usage errors exit 2 with a one-line hint") {
  SUBCASE("unknown subcommand") {
    auto r = run({"bogus"});
    CHECK(r.status == 2);
    CHECK(r.err == "unknown subcommand 'bogus' (run flare-admin --help for the list)\n");
  }
  SUBCASE("unknown option") {
    auto r = run({"list", "--bogus"});
    CHECK(r.status == 2);
    CHECK(r.err == "unknown option '--bogus' (see: flare-admin list --help)\n");
  }
  SUBCASE("missing value") {
    auto r = run({"list", "--index-server"});
    CHECK(r.status == 2);
  }
  SUBCASE("bad --timeout") { CHECK(run({"list", "--timeout", "soon"}).status == 2); }
  SUBCASE("no subcommand prints the overview") {
    auto r = run({});
    CHECK(r.status == 2);
    CHECK(r.err.find("Subcommands:") != std::string::npos);
  }
  SUBCASE("--help exits 0") {
    auto r = run({"stats", "--help"});
    CHECK(r.status == 0);
    CHECK(r.out.rfind("Usage: flare-admin stats", 0) == 0);
  }
}

TEST_CASE("flare-stats asks each node on one connection: a master's `stats` and `stats threads slave` share it") {
  // Two connections made a master's `conn` column one more than the node has (real flare 1.3.4:
  // 3 where a raw `stats`, and 0.7.3, show 2).
  harness::FakeCluster f(3);
  harness::master_and_slave(f);
  const std::string n0 = f.node(0), n1 = f.node(1);
  const long long m = f.connections(n0), s = f.connections(n1);
  auto r = harness::run(harness::with({"stats"}, f.index_args()));
  CHECK(r.status == 0);
  CHECK(f.connections(n0) - m == 1);
  CHECK(f.connections(n1) - s == 1);
}
