// libFuzzer target: the protocol reader. The input is what a server sends:
//   byte 0   : how the bytes are cut into reads (see fuzz::feed in fuzz_util.hpp)
//   the rest : the reply stream, read with flare::read_reply until it fails (up to 64 replies,
//              as pipelined replies arrive)
// Every reply's lines then go to parse_stats, parse_stats_nodes, parse_stats_threads and
// parse_meta (each in its own try: only flare::Error may escape), and what parses goes on
// to the cluster model and the renderers (fuzz_checks.hpp). A stats nodes reply, stats replies
// and a meta reply of the same stream are also combined (summary, verify's partitioning).
#include "../../flare_tools.hpp"
#include "fuzz_checks.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  int peer = -1;
  int fd = fuzz::feed(data[0], payload, peer);

  std::optional<flare::Cluster> cluster;
  std::vector<flare::NodeStats> all_stats;
  std::optional<flare::Meta> meta;
  {
    flare::detail::Socket sock;
    sock.adopt(fd, "fuzz-peer");
    sock.set_timeout(2000); // all the input is queued already: nothing should ever wait
    flare::TraceFn trace = [](const std::string& line) {
      fuzz::check_printable(line, "a trace line is not printable");
    };
    for (int i = 0; i < 64 && sock.is_open(); ++i) {
      flare::Reply r;
      try {
        r = flare::read_reply(sock, trace);
      } catch (const flare::Error&) {
        break;
      }
      if (!flare::detail::is_terminal_line(r.status)) fuzz::fail("reply status is not a terminal line", r.status);
      if (r.ok() && r.is_error()) fuzz::fail("a reply both ok and an error", r.status);
      for (auto& l : r.lines)
        if (l.find('\n') != std::string::npos) fuzz::fail("a reply line holds a newline");

      bool is_nodes = false;
      try {
        auto nodes = flare::parse_stats_nodes(r.lines);
        is_nodes = true;
        cluster = fuzz::exercise_nodes(nodes);
        // What the cluster-changing commands look at, for every node.
        for (auto& n : cluster->nodes()) {
          (void)cluster->reconstructable(n);
          (void)cluster->safely_reconstructable(n);
        }
      } catch (const flare::Error&) {
      }
      try {
        flare::NodeStats s = flare::parse_stats(r.lines);
        if (s.fields.size() != r.lines.size()) fuzz::fail("parse_stats lost or added fields");
        fuzz::exercise_stats(s);
        if (!is_nodes) all_stats.push_back(std::move(s)); // a node's stats, for the summary
      } catch (const flare::Error&) {
      }
      try {
        fuzz::exercise_threads(flare::parse_stats_threads(r.lines));
      } catch (const flare::Error&) {
      }
      try {
        meta = flare::parse_meta(r.lines);
      } catch (const flare::Error&) {
      }
    }
  }
  if (peer >= 0) ::close(peer);

  if (meta) fuzz::exercise_meta(*meta, cluster ? &*cluster : nullptr);
  if (cluster && !all_stats.empty()) {
    // flare-admin summary: the stats of every node (the stats replies in turn).
    std::vector<flare::StatsResult> results;
    size_t k = 0;
    for (auto& n : cluster->nodes()) {
      flare::StatsResult r;
      r.endpoint = n.endpoint();
      r.ok = true;
      r.stats = all_stats[k++ % all_stats.size()];
      results.push_back(std::move(r));
    }
    flare::Summary s = flare::summarize("127.0.0.1:12120", *cluster, results);
    if (s.nodes != static_cast<int>(cluster->nodes().size()) || s.masters + s.slaves > s.nodes)
      fuzz::fail("summary counts are inconsistent");
    (void)flare::format_summary(s);
    fuzz::check_json(flare::format_summary_json(s), "format_summary_json is not valid JSON");
  }
  return 0;
}
