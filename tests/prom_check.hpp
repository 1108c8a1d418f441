// A strict reader of the Prometheus text exposition format, version 0.0.4, for the tests: it
// throws on anything the format (or node_exporter's textfile collector) does not accept, and
// returns the samples so that a test can look values up.
//   - lines end in '\n'; empty lines are ignored; '#' lines are HELP, TYPE or free comments;
//   - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not __*);
//   - label values are "..." with only \\, \" and \n escaped; no label name twice in a sample;
//   - values are Go floats (digits, fraction, exponent, NaN, +Inf, -Inf); no timestamps
//     (the textfile collector refuses them);
//   - every family has one TYPE (counter or gauge here) before its first sample and at most one
//     HELP; a sample's name is its family's; a family's samples are contiguous; no series twice.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace prom {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types; // family -> type
  std::vector<std::string> order;           // families in order of their samples

  // The value of the one sample of `name` whose labels include all of `match`; throws if not exactly one.
  std::string value(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    const Sample* found = nullptr;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) ok = false;
      }
      if (!ok) continue;
      if (found) throw std::runtime_error("more than one sample of " + name);
      found = &s;
    }
    if (!found) throw std::runtime_error("no sample of " + name);
    return found->value;
  }
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& s : samples) n += s.name == name;
    return n;
  }
};

namespace detail {

inline bool name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
inline bool name_char(char c, bool colon) { return name_start(c, colon) || (c >= '0' && c <= '9'); }

inline bool valid_name(const std::string& s, bool colon) {
  if (s.empty() || !name_start(s[0], colon)) return false;
  for (char c : s)
    if (!name_char(c, colon)) return false;
  return true;
}

inline bool valid_float(const std::string& v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf" || v == "Inf") return true;
  size_t i = 0;
  if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
  size_t digits = 0;
  while (i < v.size() && isdigit(static_cast<unsigned char>(v[i]))) ++i, ++digits;
  if (i < v.size() && v[i] == '.') {
    ++i;
    while (i < v.size() && isdigit(static_cast<unsigned char>(v[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    size_t e = 0;
    while (i < v.size() && isdigit(static_cast<unsigned char>(v[i]))) ++i, ++e;
    if (e == 0) return false;
  }
  return i == v.size();
}

inline bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

} // namespace detail

inline Exposition parse_strict(const std::string& text) {
  using detail::valid_name;
  Exposition ex;
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("the last line does not end in a newline");
  if (!detail::valid_utf8(text)) throw std::runtime_error("not UTF-8");
  std::set<std::string> helped, finished, series;
  std::string current; // family whose samples are being read
  size_t start = 0, lineno = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    ++lineno;
    auto fail = [&](const std::string& why) {
      throw std::runtime_error("line " + std::to_string(lineno) + ": " + why + ": " + line);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::string rest = line.substr(1);
      bool help = rest.rfind(" HELP ", 0) == 0, type = rest.rfind(" TYPE ", 0) == 0;
      if (!help && !type) continue; // a free comment
      rest = rest.substr(6);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (!valid_name(name, true)) fail("bad metric name");
      if (sp == std::string::npos) fail("nothing after the name");
      std::string arg = rest.substr(sp + 1);
      if (finished.count(name) || name == current) fail("HELP/TYPE after the family's samples");
      if (help) {
        if (!helped.insert(name).second) fail("second HELP");
        for (size_t i = 0; i < arg.size(); ++i)
          if (arg[i] == '\\' && (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n'))) fail("bad escape in HELP");
          else if (arg[i] == '\\') ++i;
      } else {
        if (ex.types.count(name)) fail("second TYPE");
        if (arg != "counter" && arg != "gauge") fail("type other than counter or gauge");
        ex.types[name] = arg;
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && detail::name_char(line[i], true)) ++i;
    s.name = line.substr(0, i);
    if (!valid_name(s.name, true)) fail("bad metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t b = i;
        while (i < line.size() && detail::name_char(line[i], false)) ++i;
        std::string lname = line.substr(b, i - b);
        if (!valid_name(lname, false) || lname.rfind("__", 0) == 0) fail("bad label name");
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') fail("label without =\"");
        i += 2;
        std::string value;
        for (;;) {
          if (i >= line.size()) fail("unterminated label value");
          char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) fail("unterminated escape");
            char e = line[i++];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else fail("bad escape in label value");
          } else {
            value += c;
          }
        }
        if (!s.labels.emplace(lname, value).second) fail("label given twice");
        if (i < line.size() && line[i] == ',') ++i;
        else if (i < line.size() && line[i] == '}') continue;
        else fail("expected , or }");
      }
    }
    if (i >= line.size() || line[i] != ' ') fail("no space before the value");
    ++i;
    s.value = line.substr(i);
    if (s.value.find(' ') != std::string::npos) fail("a timestamp (or trailing text)");
    if (!detail::valid_float(s.value)) fail("bad value");
    if (!ex.types.count(s.name)) fail("sample before its family's TYPE");
    if (s.name != current) {
      if (finished.count(s.name)) fail("family not contiguous");
      if (!current.empty()) finished.insert(current);
      current = s.name;
      ex.order.push_back(s.name);
    }
    std::string id = s.name;
    for (const auto& [k, v] : s.labels) id += "\x01" + k + "\x02" + v;
    if (!series.insert(id).second) fail("series given twice");
    ex.samples.push_back(std::move(s));
  }
  return ex;
}

} // namespace prom
