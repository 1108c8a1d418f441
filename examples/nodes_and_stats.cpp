// The nodes of a flare cluster and their item counts: the index's map, then every node's
// `stats` at once (one poll() loop, one deadline in all), as `flare-admin list` and
// `flare-stats` read them (read_cluster; flare-stats' rounds, with rates: StatsSampler).
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
    // One reading: the map, and every node's `stats` in one gather, with the index's
    // node_map_version read before and after (a map read while it changed is read again).
    flare::ClusterReading r =
        flare::read_cluster(index, 5000 /* ms */, [](const flare::Cluster& c) { return c.list_order(); }, false, {}, 3);
    for (size_t i = 0; i < r.shown.size(); ++i) {
      const auto& n = r.shown[i];
      std::cout << n.key << " " << n.role << " " << n.state << " partition " << n.partition << " items "
                << (r.stats[i].ok ? r.stats[i].stats.get("curr_items") : "? (" + r.stats[i].error + ")") << "\n";
    }
    const std::string problem = flare::map_version_problem(r.versions); // a node ignoring the index
    if (!problem.empty()) std::cerr << "warning: " << problem << "\n";
  } catch (const flare::Error& e) { // every failure is one line
    std::cerr << e.what() << "\n";
    return 1;
  }
}
