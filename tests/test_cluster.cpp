// Section 6 of flare_tools.hpp: the cluster model.
#include "flare_tools.hpp"
#include "test_nodes.hpp"

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
