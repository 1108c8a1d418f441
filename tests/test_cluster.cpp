// Section 6 of flare_tools.hpp: the cluster model.
#include "flare_tools.hpp"
#include "test_nodes.hpp"
#include "test_server.hpp"

#include <atomic>
#include <filesystem>
#include <sys/stat.h>
#include <mutex>

#include <doctest/doctest.h>

using namespace flare;

namespace {


// The five-node cluster of 0.7.3's unit test: a down proxy, a master and two slaves of
// partition 0 (one still preparing), and a ready master of partition 1.
Cluster five_nodes() {
  return Cluster({make_node("h:12121", "proxy", "down", -1), make_node("h:12122", "master", "active", 0, 1),
                  make_node("h:12123", "slave", "active", 0, 1), make_node("h:12124", "slave", "prepare", 0, 0),
                  make_node("h:12125", "master", "ready", 1, 1)});
}

std::vector<std::string> keys(const std::vector<NodeInfo>& v) {
  std::vector<std::string> out;
  for (auto& n : v) out.push_back(n.key);
  return out;
}

} // namespace

TEST_CASE("the cluster knows its partitions, masters and slaves") {
  Cluster c = five_nodes();
  CHECK(c.partition_count() == 2);
  CHECK(c.find("h:99") == nullptr);
  CHECK(c.master_of(0)->key == "h:12122");
  CHECK(c.master_of(1)->key == "h:12125");
  CHECK(c.master_of(-1) == nullptr); // 0.7.3 returned the last partition's master here
  CHECK(c.master_of(2) == nullptr);
  CHECK(c.slaves_of(0).size() == 2);
  CHECK(c.active_slave_count(0) == 1);
  CHECK(Cluster().partition_count() == 0);
}

TEST_CASE("the cluster's lookups answer in the index's order, a copy of a cluster as the original") {
  // After a takeover the index lists two masters; a key listed twice is found at its first place.
  Cluster c({make_node("h:2", "master", "down", 3, 1), make_node("h:1", "slave", "active", 3, 1),
             make_node("h:3", "master", "active", 3, 1), make_node("h:2", "proxy", "active", -1),
             make_node("h:4", "slave", "prepare", 3, 0)});
  Cluster copy = c;
  for (const Cluster* k : {&c, &copy}) {
    CHECK(k->partition_count() == 4);
    REQUIRE(k->masters_of(3).size() == 2);
    CHECK(k->masters_of(3)[0]->key == "h:2");
    CHECK(k->masters_of(3)[1]->key == "h:3");
    CHECK(k->master_of(3)->key == "h:3");
    REQUIRE(k->slaves_of(3).size() == 2);
    CHECK(k->slaves_of(3)[0]->key == "h:1");
    CHECK(k->slaves_of(3)[1]->key == "h:4");
    CHECK(k->masters_of(0).empty());
    CHECK(k->slaves_of(-1).empty());
    REQUIRE(k->find("h:2") != nullptr);
    CHECK(k->find("h:2")->role == "master");
    CHECK(k->find("h:2") == &k->nodes()[0]); // a pointer into this cluster, not the one copied
  }
}

TEST_CASE("list order puts proxies last, stats order puts them first") {
  Cluster c = five_nodes();
  CHECK(keys(c.list_order()) == std::vector<std::string>{"h:12122", "h:12123", "h:12124", "h:12125", "h:12121"});
  CHECK(keys(c.stats_order()) == std::vector<std::string>{"h:12121", "h:12122", "h:12123", "h:12124", "h:12125"});
}

TEST_CASE("roles sort as text inside a partition, then keys") {
  Cluster c({make_node("b:2", "slave", "active", 0), make_node("a:1", "slave", "active", 0), make_node("z:9", "master", "active", 0)});
  CHECK(keys(c.list_order()) == std::vector<std::string>{"z:9", "a:1", "b:2"});
}

TEST_CASE("a master with one active slave is reconstructable but not safely") {
  Cluster c = five_nodes();
  CHECK(c.reconstructable(*c.find("h:12122")));
  CHECK_FALSE(c.safely_reconstructable(*c.find("h:12122")));
  SUBCASE("a proxy or a node that is not active is not reconstructable") {
    CHECK_FALSE(c.reconstructable(*c.find("h:12121")));
    CHECK_FALSE(c.reconstructable(*c.find("h:12124")));
    CHECK_FALSE(c.reconstructable(*c.find("h:12125")));
  }
  SUBCASE("a slave with no other active slave is not safely reconstructable") {
    CHECK(c.reconstructable(*c.find("h:12123")));
    CHECK_FALSE(c.safely_reconstructable(*c.find("h:12123")));
  }
}

TEST_CASE("any other active slave makes a slave safe to rebuild, wherever it is listed") {
  // 0.7.3 looked only at the last other slave in server order (defect 23).
  Cluster c({make_node("h:1", "master", "active", 0, 1), make_node("h:2", "slave", "active", 0, 1), make_node("h:3", "slave", "active", 0, 1),
             make_node("h:4", "slave", "prepare", 0, 0)});
  CHECK(c.safely_reconstructable(*c.find("h:2")));
  CHECK(c.safely_reconstructable(*c.find("h:3")));
  CHECK(c.safely_reconstructable(*c.find("h:1")));
}

namespace {
// A node that answers `stats nodes` with its map (STAT lines, END; set once the ports are known),
// and counts what it was asked.
struct MapNode {
  MapNode()
      : server([this](int fd) {
          std::string line;
          while (TestServer::read_line(fd, line)) {
            ++asked;
            std::string reply = "ERROR\r\n";
            if (line == "stats nodes") {
              std::lock_guard<std::mutex> lock(mu);
              reply = map + "END\r\n";
            }
            TestServer::send_all(fd, reply);
          }
        }) {}
  std::string key() const { return "127.0.0.1:" + std::to_string(server.port()); }
  void set_map(const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    map = m;
  }
  std::mutex mu;
  std::string map;
  std::atomic<int> asked{0};
  TestServer server;
};

std::string map_lines(const std::string& key, const std::string& role, int partition) {
  return "STAT " + key + ":role " + role + "\r\nSTAT " + key + ":state active\r\nSTAT " + key + ":partition " +
         std::to_string(partition) + "\r\nSTAT " + key + ":balance " + (role == "proxy" ? "0" : "1") + "\r\nSTAT " + key +
         ":thread_type 16\r\n";
}
} // namespace

TEST_CASE("the index's flare.xml holds the nodes' newest map when they are ahead of the index, if they agree") {
  // The nodes route by a map where b is partition 1's master; the index was restored from one
  // where b is a proxy.
  MapNode a, b;
  const std::string a_key = a.key(), b_key = b.key();
  const std::string newest = map_lines(a_key, "master", 0) + map_lines(b_key, "master", 1);
  a.set_map(newest);
  b.set_map(newest);
  Cluster index_map({make_node(a_key, "master", "active", 0, 1), make_node(b_key, "proxy", "active", -1, 0)});
  MapVersions v;
  v.index = 3;
  v.nodes = {{a_key, 9}, {b_key, 9}};
  SUBCASE("ahead and agreeing: their map, their version, and how the index's differs") {
    IndexMapChoice c = choose_index_map(index_map, v, 2000);
    CHECK(c.version == 9);
    CHECK(c.from == a_key);
    CHECK(c.agreeing == 2);
    REQUIRE(c.cluster.find(b_key) != nullptr);
    CHECK(c.cluster.find(b_key)->role == "master");
    CHECK(c.cluster.find(b_key)->partition == 1);
    CHECK(c.differences == std::vector<std::string>{b_key + ": the index's map: proxy active partition -1 balance 0 "
                                                            "thread_type 16; the nodes': master active partition 1 balance 1 "
                                                            "thread_type 16"});
  }
  SUBCASE("not ahead: the index's own map, no node asked") {
    v.nodes = {{a_key, 3}, {b_key, 2}};
    IndexMapChoice c = choose_index_map(index_map, v, 2000);
    CHECK(c.version == 3);
    CHECK(c.from.empty());
    CHECK(c.cluster.find(b_key)->role == "proxy");
    CHECK(a.asked == 0);
    CHECK(b.asked == 0);
  }
  SUBCASE("ahead but disagreeing: no map is known to be the cluster's") {
    b.set_map(map_lines(a_key, "master", 0));
    CHECK_THROWS_WITH_AS(choose_index_map(index_map, v, 2000), doctest::Contains("answer different maps"), ServerError);
  }
  SUBCASE("ahead and the only newest node silent: an error, not the index's old map") {
    v.nodes = {{a_key, 3}, {"127.0.0.1:1", 9}};
    CHECK_THROWS_AS(choose_index_map(index_map, v, 2000), NetworkError);
  }
}

TEST_CASE("a dump is a whole copy of a partition only from its active master or an active slave") {
  Cluster c = five_nodes();
  SUBCASE("an active master or slave: nothing to say") {
    CHECK_FALSE(partial_copy_reason(c, *c.find("h:12122")).has_value());
    CHECK_FALSE(partial_copy_reason(c, *c.find("h:12123")).has_value());
  }
  SUBCASE("a slave in prepare: part of the partition; its master named instead") {
    auto why = partial_copy_reason(c, *c.find("h:12124"));
    REQUIRE(why);
    CHECK(why->find("h:12124 is a slave of partition 0 in prepare: its copy is still being made") == 0);
    CHECK(why->find("read partition 0 from its active master instead: flare-admin dump h:12122") != std::string::npos);
  }
  SUBCASE("a proxy, down or not: no partition; dump --all named") {
    auto why = partial_copy_reason(c, *c.find("h:12121"));
    REQUIRE(why);
    CHECK(why->find("h:12121 is a proxy (down): it holds no partition") == 0);
    CHECK(why->find("flare-admin dump --all") != std::string::npos);
  }
  SUBCASE("a master in ready serves nothing yet, and its partition has no other copy") {
    auto why = partial_copy_reason(c, *c.find("h:12125"));
    REQUIRE(why);
    CHECK(why->find("in ready: it serves no data yet") != std::string::npos);
    CHECK(why->find("partition 1 has no active master or slave to dump now") != std::string::npos);
  }
  SUBCASE("a down master: its partition's new master named") {
    Cluster d({make_node("h:1", "master", "down", 0, 1), make_node("h:2", "master", "active", 0, 1)});
    auto why = partial_copy_reason(d, *d.find("h:1"));
    REQUIRE(why);
    CHECK(why->find("h:1 is master down (partition 0): it holds what it had when it went down") == 0);
    CHECK(why->find("flare-admin dump h:2") != std::string::npos);
  }
}

TEST_CASE("a slave's progress names the master's count an upper bound when the cluster has several partitions") {
  ConstructionProgress p;
  p.role = "slave";
  p.state = "prepare";
  p.items = 15000;
  p.master_items = 30000;
  p.elapsed = 10;
  SUBCASE("one partition: the master's count is the total, and the ETA follows from it") {
    CHECK(format_slave_progress(p) == "15000/30000 (role = slave, state = prepare) [ETA: 10 sec (elapsed = 10 sec)]");
  }
  SUBCASE("several: the copy skips other partitions' stale keys, so no ETA is made up from that count") {
    p.master_total_is_bound = true;
    CHECK(format_slave_progress(p) == "15000/30000 at most (role = slave, state = prepare) [ETA: n/a sec (elapsed = 10 sec)]");
  }
}

TEST_CASE("the balance record keeps one figure per node and index, and forgets it once given") {
  char tmpl[] = "/tmp/flare-balance-test.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  BalanceRecord r(dir + "/state/balances"); // its folder is made, private
  CHECK_FALSE(r.find("i:1", "n:2"));
  r.keep({"i:1", "n:2", 0, 3, 100});
  r.keep({"i:1", "n:3", 1, 2, 101});
  r.keep({"i:9", "n:2", 0, 7, 102});
  r.keep({"i:1", "n:2", 0, 4, 103}); // replaces the node's line
  REQUIRE(r.find("i:1", "n:2"));
  CHECK(r.find("i:1", "n:2")->balance == 4);
  CHECK(r.find("i:9", "n:2")->balance == 7);
  CHECK(r.find("i:1", "n:3")->partition == 1);
  struct stat st {};
  REQUIRE(::stat((dir + "/state/balances").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((dir + "/state").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  r.forget("i:1", "n:2");
  CHECK_FALSE(r.find("i:1", "n:2"));
  CHECK(r.find("i:9", "n:2"));
  BalanceRecord none("");
  none.keep({"i:1", "n:2", 0, 3, 100}); // keeps nothing, fails nothing
  CHECK_FALSE(none.find("i:1", "n:2"));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("advised commands name the index the tool was run against") {
  const Endpoint idx{"10.0.0.5", 13120};
  CHECK(with_index_option("run: flare-admin slave 10.0.0.7:12121:1:0", idx) == "run: flare-admin slave -i 10.0.0.5:13120 10.0.0.7:12121:1:0");
  CHECK(with_index_option("flare-admin slave --discard-items h:1:1:0; then flare-admin balance h:1:2.", idx) ==
        "flare-admin slave -i 10.0.0.5:13120 --discard-items h:1:1:0; then flare-admin balance -i 10.0.0.5:13120 h:1:2.");
  CHECK(with_index_option("see flare-admin list", idx) == "see flare-admin list -i 10.0.0.5:13120");
  SUBCASE("left as they are") {
    for (const char* same : {"flare-admin slave -i 1.2.3.4:5 h:1:1:0", "flare-admin keycheck --partitions 4",
                             "flare-admin listing", "flare-admin deploy h:1", "no command here", "flare-admin "}) {
      CAPTURE(same);
      CHECK(with_index_option(same, idx) == same);
    }
  }
}

TEST_CASE("keys are placed by every partition flare routes by: a down master's counts, one being built does not") {
  auto node = [](const char* key, const char* role, const char* state, int part) {
    NodeInfo n;
    n.key = key;
    n.role = role;
    n.state = state;
    n.partition = part;
    return n;
  };
  Cluster c({node("h:1", "master", "active", 0), node("h:2", "master", "active", 1), node("h:3", "master", "down", 2),
             node("h:4", "master", "prepare", 3)});
  CHECK(routing_partition_count(c) == 3);
  CHECK(serving_partition_count(c) == 2);
}

TEST_CASE("a reading whose node_map_version moved is read again up to tries, and otherwise says so") {
  // A scripted index (no nodes to gather): `stats` gives node_map_version 5, then 6 from the
  // second `stats` on, as a change landing while the map was read.
  std::atomic<int> stats_asked{0};
  TestServer index([&](int fd) {
    std::string line;
    while (TestServer::read_line(fd, line)) {
      std::string reply = "ERROR\r\n";
      if (line == "stats") {
        const int version = stats_asked++ == 0 ? 5 : 6;
        reply = "STAT pid 1\r\nSTAT node_map_version " + std::to_string(version) + "\r\nEND\r\n";
      } else if (line == "stats nodes") {
        reply = "END\r\n";
      }
      TestServer::send_all(fd, reply);
    }
  });
  SUBCASE("one try: not stable, and the note names both versions") {
    IndexClient ic(Endpoint{"127.0.0.1", index.port()}, 5000);
    ClusterReading r = read_cluster(ic, 5000);
    CHECK_FALSE(r.stable);
    CHECK(r.node_map_version == 5);
    CHECK(r.version_after == 6);
    CHECK(reading_note(r) ==
          "the node map changed while it was read (node_map_version 5, then 6): what is shown may be from before that "
          "change, or mix both maps; run it again to see the cluster after it.");
  }
  SUBCASE("two tries: the second one is stable, and there is nothing to say") {
    IndexClient ic(Endpoint{"127.0.0.1", index.port()}, 5000);
    ClusterReading r = read_cluster(ic, 5000, nullptr, false, {}, 2);
    CHECK(r.stable);
    CHECK(r.node_map_version == 6);
    CHECK(reading_note(r).empty());
  }
}
