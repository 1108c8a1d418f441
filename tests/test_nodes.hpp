// A node-map entry for unit tests of the cluster model and the tables.
#pragma once

#include "flare_tools.hpp"

inline flare::NodeInfo make_node(const std::string& key, const std::string& role, const std::string& state, int partition,
                                 int balance = 0, int thread_type = 16) {
  flare::NodeInfo n;
  n.key = key;
  n.host = key.substr(0, key.rfind(':'));
  n.port = std::stoi(key.substr(key.rfind(':') + 1));
  n.role = role;
  n.state = state;
  n.partition = partition;
  n.balance = balance;
  n.thread_type = thread_type;
  return n;
}
