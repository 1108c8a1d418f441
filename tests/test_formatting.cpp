// Section 8 of flare_tools.hpp: the tables, byte for byte as flare-tools 0.7.3 prints them (the contract this project keeps).
#include "flare_tools.hpp"
#include "test_nodes.hpp"

#include <doctest/doctest.h>

using namespace flare;

namespace {


StatsResult stats_result(const NodeInfo& n, std::vector<std::pair<std::string, std::string>> fields) {
  StatsResult r;
  r.endpoint = n.endpoint();
  r.ok = true;
  r.stats.fields = std::move(fields);
  return r;
}

Cluster tutorial_cluster() {
  return Cluster({make_node("127.0.0.1:12121", "master", "active", 0, 1, 16), make_node("127.0.0.1:12122", "slave", "active", 0, 0, 17),
                  make_node("127.0.0.1:12123", "proxy", "active", -1, 0, 18)});
}

} // namespace

TEST_CASE("the node table matches flare-admin list") {
  Cluster c = tutorial_cluster();
  CHECK(format_node_table(c.list_order()) == "node                             partition   role  state balance\n"
                                             "127.0.0.1:12121                          0 master active       1\n"
                                             "127.0.0.1:12122                          0  slave active       0\n"
                                             "127.0.0.1:12123                          -  proxy active       0\n");
}

TEST_CASE("the stats table matches flare-stats") {
  Cluster c = tutorial_cluster();
  std::vector<StatsResult> results;
  std::vector<StatsRow> rows;
  auto nodes = c.stats_order();
  for (auto& n : nodes) {
    std::string items = n.is_proxy() ? "0" : "20000";
    results.push_back(stats_result(n, {{"uptime", "22"}, {"version", "1.3.4"}, {"curr_items", items}, {"bytes", "528704"},
                                       {"curr_connections", "2"}, {"cmd_get", "0"}, {"get_hits", "0"}}));
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    StatsRow r;
    r.node = nodes[i];
    r.result = &results[i];
    if (r.node.is_slave()) r.lag = SlaveLag{};
    rows.push_back(r);
  }
  SUBCASE("default delimiter") {
    CHECK(format_stats_table(rows, false) ==
          "hostname:port   state  role   partition balance items conn behind hit size uptime version\n"
          "127.0.0.1:12123 active proxy         -1       0     0    2      0   -    0    22s   1.3.4\n"
          "127.0.0.1:12121 active master         0       1 20000    2      0   -    0    22s   1.3.4\n"
          "127.0.0.1:12122 active slave          0       0 20000    2      0   -    0    22s   1.3.4\n");
  }
  SUBCASE("a custom delimiter goes between padded cells") {
    std::vector<StatsRow> one = {rows[2]};
    one[0].node = make_node("127.0.0.1:12122", "master", "active", 0, 1);
    results[2].stats.fields.push_back({"uptime", "45"});
    CHECK(format_stats_table(one, false, ",") ==
          "hostname:port  ,state ,role  ,partition,balance,items,conn,behind,hit,size,uptime,version\n"
          "127.0.0.1:12122,active,master,        0,      1,20000,   2,     0,  -,   0,   45s,  1.3.4\n");
  }
  SUBCASE("a node that did not answer keeps its row with empty cells") {
    StatsResult dead;
    dead.endpoint = rows[1].node.endpoint();
    dead.error = "Connection refused";
    rows[1].result = &dead;
    std::string t = format_stats_table(rows, false);
    CHECK(t.find("127.0.0.1:12121 active master         0       1                 -                        \n") !=
          std::string::npos);
  }
}

TEST_CASE("hit rate, size and uptime cells") {
  NodeStats s;
  s.fields = {{"cmd_get", "3"}, {"get_hits", "2"}};
  CHECK(hit_rate_cell(s) == "67");
  s.fields = {{"cmd_get", "8"}, {"get_hits", "1"}};
  CHECK(hit_rate_cell(s) == "13"); // 12.5 rounds half away from zero
  s.fields = {{"cmd_get", "0"}, {"get_hits", "0"}};
  CHECK(hit_rate_cell(s) == "-");
  CHECK(short_duration(59) == "59s");
  CHECK(short_duration(60) == "1m");
  CHECK(short_duration(12913) == "3h");
  CHECK(short_duration(86400) == "1d");
  CHECK(short_duration(200000) == "2d");
}

TEST_CASE("qps is computed between two samples and shown with one decimal") {
  auto t0 = Clock::now();
  QpsSample a{100, 50, t0}, b{700, 150, t0 + std::chrono::seconds(2)};
  auto r = qps_between(a, b);
  CHECK(qps_cell(r.total) == "350.0");
  CHECK(qps_cell(r.reads) == "300.0");
  CHECK(qps_cell(r.writes) == "50.0");
  CHECK(qps_cell(qps_between(std::nullopt, b).total) == "-");
  CHECK(qps_cell(qps_between(b, a).total) == "-"); // counters went backwards: a restart
}

TEST_CASE("the threads table matches flare-admin threads") {
  std::vector<ThreadInfo> t(3);
  t[0].id = "47", t[0].peer = "127.0.0.1:50078", t[0].op = "stats", t[0].type = "1", t[0].queue = "0";
  t[1].id = "1", t[1].peer = ":0", t[1].type = "2", t[1].queue = "0";
  t[2].id = "2", t[2].peer = "127.0.0.1:41796", t[2].type = "1", t[2].queue = "0";
  CHECK(format_threads_table(t) == "   id peer                             operation     type    queue\n"
                                   "    2 127.0.0.1:41796                  -                1        0\n"
                                   "   47 127.0.0.1:50078                  stats            1        0\n"
                                   "    1 :0                               -                2        0\n");
}

TEST_CASE("the summary matches flare-admin summary") {
  Cluster c({make_node("127.0.0.1:12121", "master", "active", 0, 1), make_node("127.0.0.1:12122", "slave", "active", 0, 1)});
  std::vector<StatsResult> r = {stats_result(*c.find("127.0.0.1:12121"), {{"bytes", "21648704"}, {"curr_items", "20000"}})};
  Summary s = summarize("127.0.0.1:12120", c, r);
  CHECK(format_summary(s) == "#cluster                        part  node master slave            size        items\n"
                             "127.0.0.1:12120                    1     2      1     1        21648704        20000\n");
  CHECK(format_summary_json(s) == "{\"cluster\":\"127.0.0.1:12120\",\"partitions\":1,\"nodes\":2,\"masters\":1,\"slaves\":1,"
                                  "\"bytes\":21648704,\"items\":20000,\"unreachable_masters\":0,\"warnings\":[]}");
  s.warnings.push_back("a \"quoted\" warning");
  CHECK(format_summary_json(s).find(",\"warnings\":[\"a \\\"quoted\\\" warning\"]}") != std::string::npos);
}

TEST_CASE("node map versions: nodes newer than the index, and the way out (the nodes' map written one version above)") {
  Cluster c({make_node("127.0.0.1:12121", "master", "active", 0, 1), make_node("127.0.0.1:12122", "slave", "active", 0, 1)});
  std::vector<StatsResult> r = {stats_result(*c.find("127.0.0.1:12121"), {{"node_map_version", "27"}}),
                                stats_result(*c.find("127.0.0.1:12122"), {{"node_map_version", "26"}})};
  MapVersions v = map_versions(7, r);
  CHECK(v.newer().size() == 2);
  CHECK(v.highest() == 27);
  CHECK(v.highest_node() == "127.0.0.1:12121");
  CHECK(map_version_warning(v) == "the nodes hold a newer node map than the index (index node_map_version 7; 127.0.0.1:12121 "
                                  "holds 27, and 1 more node): they ignore every change the index makes.");
  CHECK(map_version_way_out(v).find("flare-admin index --increment 1 -o flare.xml (it writes the map the nodes hold") !=
        std::string::npos);
  CHECK(map_version_warning(map_versions(27, r)).empty());
  CHECK(map_version_warning(map_versions(-1, r)).empty()); // the index's version unknown: no claim
  r[1].ok = false;
  CHECK(map_versions(7, r).nodes.size() == 1); // a node that did not answer is left out
}

TEST_CASE("the index document is flare's boost XML") {
  Cluster c({make_node("127.0.0.1:12121", "master", "active", 0, 1, 16), make_node("127.0.0.1:12122", "proxy", "down", -1, 0, 17)});
  CHECK(format_index_xml(c, 7) == "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n"
                                  "<!DOCTYPE boost_serialization>\n"
                                  "<boost_serialization signature=\"serialization::archive\" version=\"4\">\n"
                                  "<version>7</version>\n"
                                  "<node_map class_id=\"0\" tracking_level=\"0\" version=\"0\">\n"
                                  "\t<count>2</count>\n"
                                  "\t<item_version>0</item_version>\n"
                                  "\t<item class_id=\"1\" tracking_level=\"0\" version=\"0\">\n"
                                  "\t\t<first>127.0.0.1:12121</first>\n"
                                  "\t\t<second class_id=\"2\" tracking_level=\"0\" version=\"0\">\n"
                                  "\t\t\t<node_server_name>127.0.0.1</node_server_name>\n"
                                  "\t\t\t<node_server_port>12121</node_server_port>\n"
                                  "\t\t\t<node_role>0</node_role>\n"
                                  "\t\t\t<node_state>0</node_state>\n"
                                  "\t\t\t<node_partition>0</node_partition>\n"
                                  "\t\t\t<node_balance>1</node_balance>\n"
                                  "\t\t\t<node_thread_type>16</node_thread_type>\n"
                                  "\t\t</second>\n"
                                  "\t</item>\n"
                                  "\t<item>\n"
                                  "\t\t<first>127.0.0.1:12122</first>\n"
                                  "\t\t<second>\n"
                                  "\t\t\t<node_server_name>127.0.0.1</node_server_name>\n"
                                  "\t\t\t<node_server_port>12122</node_server_port>\n"
                                  "\t\t\t<node_role>2</node_role>\n"
                                  "\t\t\t<node_state>2</node_state>\n"
                                  "\t\t\t<node_partition>-1</node_partition>\n"
                                  "\t\t\t<node_balance>0</node_balance>\n"
                                  "\t\t\t<node_thread_type>17</node_thread_type>\n"
                                  "\t\t</second>\n"
                                  "\t</item>\n"
                                  "</node_map>\n"
                                  "<thread_type>18</thread_type>\n"
                                  "</boost_serialization>\n");
}

TEST_CASE("JSON output escapes bytes that are not printable ASCII") {
  Cluster c({make_node("h\xff:1", "master", "active", 0, 1)});
  std::string j = format_node_json(c.nodes());
  CHECK(j.find("\"node\":\"h\\u00ff:1\"") != std::string::npos);
  CHECK(j.find("\"partition\":0") != std::string::npos);
}

TEST_CASE("the progress of many nodes read at once shows each node while the line fits, else the one behind") {
  SUBCASE("every node, its count, and the total") {
    StreamsProgress p("dumping", {"127.0.0.1:12121", "127.0.0.1:12122", "127.0.0.1:12123"}, "items", 120);
    CHECK(p.line() == "dumping: 127.0.0.1:12121 0, 127.0.0.1:12122 0, 127.0.0.1:12123 0; 0 items");
    p.count(0, 5230);
    p.count(1, 4980);
    p.count(2, 5012);
    p.finish(1);
    CHECK(p.line() == "dumping: 127.0.0.1:12121 5230, 127.0.0.1:12122 4980 done, 127.0.0.1:12123 5012; 15222 items");
    p.count(7, 1); // a target it does not know is ignored, not a crash
    p.finish(7);
    CHECK(p.line().find("15222 items") != std::string::npos);
  }
  SUBCASE("too many for one line: how many are done, the total, and the node furthest behind") {
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) names.push_back("node" + std::to_string(i) + ":12121");
    StreamsProgress p("dumping keys", names, "keys");
    for (size_t i = 0; i < names.size(); ++i) p.count(i, 1000 + i);
    p.count(3, 7);  // the slowest, but done: not the one waited for
    p.finish(3);
    p.count(11, 90);
    p.finish(0);
    std::string l = p.line();
    CHECK(l == "dumping keys: 2 of 20 nodes done; 18273 keys; behind: node11:12121 90");
    StreamsProgress narrow("dumping keys", names, "keys", 40);
    CHECK(narrow.line() == "dumping keys: 0 of 20 nodes done; 0 keys");
    CHECK(narrow.line().size() == 40);
  }
  SUBCASE("a redraw is due at once, then not again within the interval") {
    StreamsProgress p("verifying", {"a:1", "b:2"}, "keys");
    CHECK(p.line_if_due(60000).has_value());
    CHECK_FALSE(p.line_if_due(60000).has_value());
    CHECK(p.line_if_due(0).has_value());
  }
}

TEST_CASE("a duration in milliseconds is shown in seconds, with the fraction when there is one") {
  CHECK(flare::detail::seconds_text(10000) == "10");
  CHECK(flare::detail::seconds_text(500) == "0.5");
  CHECK(flare::detail::seconds_text(2250) == "2.25");
  CHECK(flare::detail::seconds_text(1005) == "1.005");
  CHECK(flare::detail::seconds_text(0) == "0");
}
