// Section 6b of flare_tools.hpp: key hashing and the modular partition map, checked against
// values produced by the upstream flare 1.3.4 code itself (tests/data/keyhash_*.txt: hashes from
// storage.h's get_key_hash_value linked with zlib and libhashkit, partitions from
// key_resolver_modular.cc compiled unchanged; how they were made is in each file's header).
#include "flare_tools.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace flare;

namespace {

// Key field of the vector files: "" is the empty key, \xHH one byte, the rest literal.
std::string unescape(const std::string& field) {
  if (field == "\"\"") return "";
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() + 0 && field[i + 1] == 'x') {
      out += static_cast<char>(std::stoi(field.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

std::uint64_t row_digest(const std::vector<int>& row) {
  std::uint64_t h = 1469598103934665603ULL; // FNV-1a 64 over 4 little-endian bytes per entry
  for (int v : row) {
    auto u = static_cast<std::uint32_t>(v);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xffu;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

std::ifstream open_data(const std::string& name) {
  std::ifstream in("tests/data/" + name);
  REQUIRE_MESSAGE(in.good(), "run the tests from the project's top directory (tests/data/" << name << ")");
  return in;
}

} // namespace

TEST_CASE("every hash algorithm and partition agrees with upstream flare's own values") {
  auto in = open_data("keyhash_vectors.txt");
  ModularResolver resolver;
  std::string line;
  int checked = 0;
  std::map<std::string, int> per_algorithm;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string first;
    ss >> first;
    if (first == "@resolver") {
      int max = 0, hint = 0, virt = 0;
      ss >> max >> hint >> virt;
      resolver = ModularResolver(max, hint, virt);
      continue;
    }
    std::string field;
    long long hash = 0;
    int p[5];
    ss >> field >> hash >> p[0] >> p[1] >> p[2] >> p[3] >> p[4];
    KeyHashAlgorithm alg{};
    REQUIRE(parse_key_hash_algorithm(first, alg));
    CAPTURE(line);
    int h = key_hash(unescape(field), alg);
    CHECK(h == hash);
    const int counts[5] = {1, 2, 3, 4, 8};
    for (int i = 0; i < 5; ++i) CHECK(resolver.partition_of(h, counts[i]) == p[i]);
    ++checked;
    ++per_algorithm[first];
  }
  CHECK(checked > 250);
  CHECK(per_algorithm.size() == 6);
}

TEST_CASE("whole partition maps agree with upstream's, row by row") {
  auto in = open_data("keyhash_rows.txt");
  std::string line, word;
  int checked = 0;
  std::map<std::tuple<int, int, int>, std::unique_ptr<ModularResolver>> resolvers;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    int max, hint, virt, n;
    std::string digest;
    ss >> word >> max >> hint >> virt >> n >> digest;
    REQUIRE(word == "row");
    auto& r = resolvers[{max, hint, virt}];
    if (!r) r = std::make_unique<ModularResolver>(max, hint, virt);
    std::vector<int> row(static_cast<size_t>(virt));
    for (int b = 0; b < virt; ++b) row[static_cast<size_t>(b)] = r->partition_of(b, n);
    char hex[32];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(row_digest(row)));
    CAPTURE(line);
    CHECK(digest == hex);
    ++checked;
  }
  CHECK(checked > 1000);
}

TEST_CASE("the behaviour notes' examples") {
  ModularResolver r;
  SUBCASE("crc32") {
    CHECK(key_hash("key1", KeyHashAlgorithm::crc32) == 744252496);
    CHECK(key_hash("hoge", KeyHashAlgorithm::crc32) == 1959140262); // negative as int32, negated
    int h = key_hash("key2", KeyHashAlgorithm::crc32);
    CHECK(r.partition_of(h, 1) == 0);
    CHECK(r.partition_of(h, 2) == 1);
    CHECK(r.partition_of(h, 3) == 2);
  }
  SUBCASE("simple is the signed byte sum") {
    CHECK(key_hash("key1", KeyHashAlgorithm::simple) == 378);
    CHECK(key_hash("\xff", KeyHashAlgorithm::simple) == 1); // -1, negated
  }
  SUBCASE("the map's first buckets") {
    std::vector<int> row3;
    for (int b = 0; b < 12; ++b) row3.push_back(r.partition_of(b, 3));
    CHECK(row3 == std::vector<int>{1, 0, 2, 2, 1, 0, 1, 0, 2, 2, 1, 0});
  }
  SUBCASE("where flare has no row, there is no partition") {
    CHECK(r.partition_of(5, 0) == -1);
    CHECK(r.partition_of(5, 1024) == -1);
  }
}

TEST_CASE("every algorithm name round-trips and others are refused") {
  for (const char* name : {"simple", "bitshift", "crc32", "adler32", "murmur", "jenkins"}) {
    KeyHashAlgorithm a{};
    REQUIRE(parse_key_hash_algorithm(name, a));
    CHECK(std::string(to_string(a)) == name);
  }
  KeyHashAlgorithm a{};
  CHECK_FALSE(parse_key_hash_algorithm("CRC32", a));
  CHECK_FALSE(parse_key_hash_algorithm("md5", a));
}
