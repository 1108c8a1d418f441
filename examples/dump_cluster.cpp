// The whole cluster to standard output in the flare dump format, each key exactly once:
// dump_targets() reads each partition's master, limited to its own keys (a master keeps stale
// copies of the keys a newer partition took over). The item count goes to standard error.
//   usage: dump_cluster INDEX_HOST[:PORT] > backup.flare
#include "flare_tools.hpp"

#include <csignal>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dump_cluster INDEX_HOST[:PORT]\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN); // a reader that goes away is an error (EPIPE), not a silent death
  try {
    flare::IndexClient index(flare::parse_host_port(argv[1], FLARE_TOOLS_DEFAULT_INDEX_PORT), 5000 /* ms */);
    index.require_index();
    flare::Cluster cluster(index.stats_nodes());
    flare::DumpSelection all;
    all.all = true;
    flare::DumpChoice choice = flare::dump_targets(cluster, all, index.endpoint()); // throws if a master is down
    for (const auto& note : choice.notes) std::cerr << note << "\n";
    flare::FdWriter out(1, "standard output");
    flare::ItemWriter writer(out, flare::DataFormat::flare);
    unsigned long long items = flare::dump_items(choice.targets, writer); // throws on the first failure
    writer.finish();
    out.flush();
    std::cerr << items << " items\n";
  } catch (const flare::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
