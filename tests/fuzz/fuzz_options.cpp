// libFuzzer target: the CLI's option parser. The input split at NUL bytes is the argument
// vector after the subcommand; parse_options(cmd, words) runs for every command of
// commands(), then the option checks every command makes first (--timeout, the index
// address). Only UsageError and flare::Error may escape them.
//
// cli.cpp is included whole, with its main() disabled by FLARE_CLI_NO_MAIN; it needs
//   #ifndef FLARE_CLI_NO_MAIN   before   int main(int argc, char** argv) {
//   #endif                      after    main's closing brace
#define FLARE_CLI_NO_MAIN 1
#include "../../cli.cpp"

#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <cstddef>
#include <cstdint>

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
    try {
      int ms = parse_timeout(o);
      if (ms < 1) fuzz::fail("parse_timeout gave a deadline below 1 ms");
      if (c.uses_index) (void)resolve_index(o);
    } catch (const UsageError&) {
    } catch (const flare::Error&) {
    }
  }
  return 0;
}
