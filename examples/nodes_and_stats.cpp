// The nodes of a flare cluster and their item counts: the index's map, then every node's
// `stats` at once (one poll() loop, one deadline in all), as `flare-admin list` and
// `flare-stats` read them.
//   usage: nodes_and_stats INDEX_HOST[:PORT]
#include "flare_tools.hpp"

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: nodes_and_stats INDEX_HOST[:PORT]\n";
    return 2;
  }
  try {
    flare::IndexClient index(flare::parse_host_port(argv[1], FLARE_TOOLS_DEFAULT_INDEX_PORT), 5000 /* ms */);
    index.require_index(); // a flared given by mistake answers with its own, maybe stale, map
    flare::Cluster cluster(index.stats_nodes());
    std::vector<flare::NodeInfo> nodes = cluster.list_order();
    std::vector<flare::Endpoint> endpoints;
    for (const auto& n : nodes) endpoints.push_back(n.endpoint());
    std::vector<flare::StatsResult> stats = flare::gather_stats(endpoints, 5000 /* ms */);
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& n = nodes[i];
      std::cout << n.key << " " << n.role << " " << n.state << " partition " << n.partition << " items "
                << (stats[i].ok ? stats[i].stats.get("curr_items") : "? (" + stats[i].error + ")") << "\n";
    }
  } catch (const flare::Error& e) { // every failure is one line
    std::cerr << e.what() << "\n";
    return 1;
  }
}
