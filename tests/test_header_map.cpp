// The header's "Entry points at a glance" map is what a vendoring reader reads first: every type
// and function it names must exist in the code below it (a renamed or removed entry point left in
// the map is a lie to that reader).
#include "flare_tools.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace {

struct HeaderMapText {
  std::string map;  // the map's comment lines
  std::string code; // every line that is not a comment
};

HeaderMapText header_map_read() {
  std::ifstream in("flare_tools.hpp");
  HeaderMapText t;
  bool in_map = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("//  Entry points at a glance", 0) == 0) in_map = true;
    else if (line.rfind("//  Every network call is bounded", 0) == 0) in_map = false;
    size_t first = line.find_first_not_of(" \t");
    bool comment = first != std::string::npos && line.compare(first, 2, "//") == 0;
    if (in_map && comment) t.map += line + "\n";
    else if (!comment) t.code += line + "\n";
  }
  return t;
}

} // namespace

TEST_CASE("every type and function the header's map names exists in the header's code") {
  HeaderMapText t = header_map_read();
  REQUIRE_MESSAGE(t.map.size() > 5000, "run the tests from the source tree (flare_tools.hpp)");
  // Types: "struct X", "class X", "enum class X".
  std::regex type_re("\\b(struct|class|enum class) ([A-Z][A-Za-z0-9_]*)");
  std::set<std::string> types;
  for (std::sregex_iterator it(t.map.begin(), t.map.end(), type_re), end; it != end; ++it) {
    const std::string kind = (*it)[1], name = (*it)[2];
    types.insert(name);
    INFO(kind, " ", name);
    // A plain search with a word boundary after the name (a std::regex over the 400 KB of code,
    // per type, took 8 s under the sanitizers).
    const std::string decl = kind + " " + name;
    bool found = false;
    for (size_t at = t.code.find(decl); at != std::string::npos && !found; at = t.code.find(decl, at + 1)) {
      const size_t after = at + decl.size();
      const bool starts = at == 0 || !(std::isalnum(static_cast<unsigned char>(t.code[at - 1])) || t.code[at - 1] == '_');
      const bool ends = after == t.code.size() || !(std::isalnum(static_cast<unsigned char>(t.code[after])) || t.code[after] == '_');
      found = starts && ends;
    }
    CHECK(found);
  }
  CHECK(types.count("ClusterAdmin") == 1);
  CHECK(types.count("CheckReport") == 1);
  // Functions and members: every "name(" of the map is a "name(" of the code.
  std::regex call_re("\\b([a-z_][a-z0-9_]*)\\(");
  std::set<std::string> names;
  for (std::sregex_iterator it(t.map.begin(), t.map.end(), call_re), end; it != end; ++it) names.insert((*it)[1]);
  REQUIRE(names.size() > 150);
  for (const auto& name : names) {
    INFO(name);
    CHECK(t.code.find(name + "(") != std::string::npos);
  }
  CHECK(names.count("settle_map_versions") == 1);
  CHECK(names.count("copy_blocked_on") == 1);
}

TEST_CASE("cli.cpp calls nothing of flare::detail: what the CLI needs, a vendoring user gets from the header's surface") {
  std::ifstream in("cli.cpp");
  REQUIRE_MESSAGE(in.good(), "run the tests from the source tree (cli.cpp)");
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    INFO("cli.cpp:", line_no, ": ", line);
    CHECK(line.find("detail::") == std::string::npos);
  }
}
