// libFuzzer target: the CLI's option parser. The input split at NUL bytes is the argument
// vector after the subcommand; parse_options(cmd, words) runs for every command of
// commands(), then the option checks every command makes first (--timeout, the index
// address, --wait/--count) and the --bwlimit parser. Only UsageError and flare::Error may
// escape them.
//
// cli.cpp is included whole, with its main() switched off by FLARE_CLI_NO_MAIN
// (cli.cpp wraps main in #ifndef FLARE_CLI_NO_MAIN ... #endif).
#define FLARE_CLI_NO_MAIN 1
#include "../../cli.cpp"

#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

namespace {

// --bwlimit: digits, then k/M/G (x1024 each), then an optional B (bytes, else bits). What
// parse_bandwidth returns must be that exact number of bytes per second, or nothing.
void check_bandwidth(const std::string& text) {
  auto got = flare::parse_bandwidth(text);
  if (!got) return;
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  unsigned __int128 v = 0;
  for (size_t k = 0; k < i; ++k) v = v * 10 + static_cast<unsigned>(text[k] - '0');
  std::string unit = text.substr(i);
  bool bytes = !unit.empty() && unit.back() == 'B';
  if (bytes) unit.pop_back();
  if (unit == "k") v *= 1024;
  else if (unit == "M") v *= 1024 * 1024;
  else if (unit == "G") v *= 1024ULL * 1024 * 1024;
  else if (!unit.empty()) fuzz::fail("parse_bandwidth accepted an unknown unit", text);
  if (!bytes) v /= 8;
  if (v != static_cast<unsigned __int128>(*got))
    fuzz::fail("parse_bandwidth returned a wrong rate (overflow?)", text + " -> " + std::to_string(*got));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!in.empty()) {
    for (auto w : flare::detail::split(in, '\0')) words.emplace_back(w);
  }
  static const std::vector<Command> cmds = commands();
  for (const Command& c : cmds) {
    Options o;
    try {
      o = parse_options(c, words);
    } catch (const UsageError&) {
      continue;
    } catch (const flare::Error&) {
      continue;
    }
    auto specs = all_options(c);
    for (auto& [name, value] : o.values) {
      bool known = false;
      for (auto& s : specs) known = known || (s.value && name == s.name);
      if (!known) fuzz::fail("parse_options stored a value for an option the command does not have", name);
    }
    for (auto& name : o.flags) {
      bool known = false;
      for (auto& s : specs) known = known || (!s.value && name == s.name);
      if (!known) fuzz::fail("parse_options set a flag the command does not have", name);
    }
    if (o.args.size() > words.size()) fuzz::fail("more arguments than words");
    if (o.has("bwlimit")) check_bandwidth(o.get("bwlimit"));
    try {
      (void)parse_positive(o, "wait", 1, 0);
      (void)parse_positive(o, "count", 1, 1);
      int ms = parse_timeout(o);
      if (ms < 1) fuzz::fail("parse_timeout gave a deadline below 1 ms");
      if (c.uses_index) (void)resolve_index(o);
    } catch (const UsageError&) {
    } catch (const flare::Error&) {
    }
  }
  return 0;
}
