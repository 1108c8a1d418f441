// Makes a proxy a slave of a partition and waits until it is one, as `flare-admin slave --force`
// does: the node is flushed, copied to, and given its balance once `slave active`. Every step and
// wait, and the refusals (a node that is not a proxy, a partition with no master), are the
// header's (ClusterAdmin); this program only prints.
//   usage: add_slave INDEX_HOST[:PORT] NODE_HOST:PORT:BALANCE:PARTITION
// Ctrl-C stops it safely: nothing is sent after it (OperationIO::interrupted, see ClusterAdmin).
#include "flare_tools.hpp"

#include <csignal>
#include <iostream>

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_sigint(int) { g_stop = 1; }
} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: add_slave INDEX_HOST[:PORT] NODE_HOST:PORT:BALANCE:PARTITION\n";
    return 2;
  }
  try {
    flare::NodeArg node = flare::parse_node_arg(argv[2], 4, 4);
    flare::IndexClient index(flare::parse_host_port(argv[1], FLARE_TOOLS_DEFAULT_INDEX_PORT), 10000 /* ms */);
    flare::OperationOptions options;
    options.force = true; // no questions: this program was asked once, by being run
    flare::OperationIO io;
    io.say = [](const std::string& line) { std::cout << line << "\n"; };
    io.warn = [](const std::string& line) { std::cerr << line << "\n"; };
    io.progress = [](const std::string& line) { std::cerr << line << "\n"; };
    io.interrupted = [] { return g_stop != 0; };
    std::signal(SIGINT, on_sigint);
    flare::ClusterAdmin admin(index, options, io);
    try {
      return admin.slave({node}) == flare::Outcome::ok ? 0 : 1;
    } catch (const flare::Interrupted& e) { // Ctrl-C before a change to the node: what was sent, if anything
      std::cerr << flare::interruption_text(*index.change_log(), e.what(), index.endpoint()) << "\n";
      return 130;
    }
  } catch (const flare::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
