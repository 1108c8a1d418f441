// The header is laid out as cpp-httplib's: Part 1 declares every public type and function (the
// surface a vendoring reader reads), Part 2 holds the bodies. These cases keep it so: a body
// written into Part 1, or a public function or type defined in Part 2 without a declaration in
// Part 1, fails here.
#include "flare_tools.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

struct HeaderParts {
  std::vector<std::string> declarations;   // Part 1's lines
  std::vector<std::string> implementation; // Part 2's lines
};

// The code of a line: its // comment and the insides of its string literals dropped.
std::string code_of(const std::string& line) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false, out += c;
      continue;
    }
    if (c == '/' && i + 1 < line.size() && line[i + 1] == '/') break;
    if (c == '\'' && i + 2 < line.size()) { // a character literal: '{', '\n'
      size_t end = line.find('\'', i + (line[i + 1] == '\\' ? 3 : 2));
      if (end != std::string::npos && end - i <= 4) {
        i = end;
        continue;
      }
    }
    if (c == '"') in_string = true;
    out += c;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  return out;
}

// Whether `text` holds `word` with no identifier character before it (a plain search: a
// std::regex over Part 1, once per function, takes seconds under the sanitizers).
bool holds_word(const std::string& text, const std::string& word) {
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    char before = at == 0 ? ' ' : text[at - 1];
    if (!(std::isalnum(static_cast<unsigned char>(before)) || before == '_')) return true;
  }
  return false;
}

HeaderParts header_parts() {
  std::ifstream in("flare_tools.hpp");
  HeaderParts parts;
  int part = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("// Part 1. Declarations", 0) == 0) part = 1;
    else if (line.rfind("// Part 2. Implementation", 0) == 0) part = 2;
    else if (part == 1) parts.declarations.push_back(line);
    else if (part == 2) parts.implementation.push_back(line);
  }
  return parts;
}

} // namespace

TEST_CASE("the header's Part 1 declares and Part 2 implements") {
  HeaderParts p = header_parts();
  REQUIRE_MESSAGE(p.declarations.size() > 1000, "run the tests from the source tree (flare_tools.hpp)");
  REQUIRE(p.implementation.size() > 5000);
  std::string declared;
  for (auto& l : p.declarations) declared += code_of(l) + "\n";

  SUBCASE("no function body longer than a line is written in Part 1") {
    // A line of Part 1 that opens a block opens a type or a namespace, never a body.
    const std::regex opens_type("^\\s*(template <.*> )?(struct|class|union|enum|enum class|namespace)\\b.*\\{$");
    for (auto& l : p.declarations) {
      std::string c = code_of(l);
      if (c.empty() || c.back() != '{') continue;
      INFO(l);
      CHECK(std::regex_match(c, opens_type));
    }
  }

  SUBCASE("every public function and type defined in Part 2 is declared in Part 1") {
    // Part 2's own lines at the namespace level: outside `namespace detail { ... }` blocks.
    const std::regex defines_function("^(template <.*> )?(inline|constexpr) .*?([A-Za-z_][A-Za-z0-9_]*(::[~A-Za-z_][A-Za-z0-9_]*)*)\\(");
    const std::regex defines_type("^(struct|class|union|enum|enum class) ([A-Za-z_][A-Za-z0-9_]*)\\b");
    bool in_detail = false;
    std::string pending_template;
    size_t functions = 0;
    for (auto& l : p.implementation) {
      if (l.rfind("namespace detail {", 0) == 0) in_detail = true;
      else if (l.rfind("} // namespace detail", 0) == 0) in_detail = false;
      if (in_detail) continue;
      std::string c = code_of(l);
      if (c.rfind("template <", 0) == 0 && c.back() == '>') {
        pending_template = c + " ";
        continue;
      }
      std::smatch m;
      std::string line = pending_template + c;
      pending_template.clear();
      INFO(l);
      CHECK_FALSE(std::regex_search(line, m, defines_type));
      if (!std::regex_search(line, m, defines_function)) continue;
      ++functions;
      std::string name = m[3];
      size_t colons = name.rfind("::");
      if (colons == std::string::npos) {
        // A free function: its prototype in Part 1.
        CHECK_MESSAGE(holds_word(declared, name + "("), name, " is not declared in Part 1");
      } else {
        // A member: its class in Part 1, and the member declared there.
        std::string member = name.substr(colons + 2), cls = name.substr(0, colons);
        cls = cls.substr(cls.rfind("::") == std::string::npos ? 0 : cls.rfind("::") + 2);
        CHECK_MESSAGE((holds_word(declared, "class " + cls + " ") || holds_word(declared, "struct " + cls + " ")), cls,
                      " is not declared in Part 1");
        CHECK_MESSAGE(holds_word(declared, member + "("), name, " is not declared in Part 1");
      }
    }
    CHECK(functions > 300);
  }
}
