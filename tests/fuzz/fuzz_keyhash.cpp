// libFuzzer target: flare::key_hash (all six algorithms) on the input as a key, and
// ModularResolver::partition_of for partition counts 1..9 under several (max, hint, virtual)
// settings. Every result must be -1 or within [0, count); abort otherwise. Also checked:
// key_hash is >= 0 or INT_MIN, stops at the first NUL byte, and where the server has a
// table entry (valid settings, count < max, hash % virtual >= 0) the result is not -1.
#include "../../flare_tools.hpp"
#include "fuzz_util.hpp"

#include <climits>
#include <cstddef>
#include <cstdint>

namespace {

struct Setting {
  int max, hint, virt;
};

// Built once: rows are cached inside each resolver, as in a long verify.
flare::ModularResolver* resolvers() {
  static const Setting settings[] = {
      {1024, 1, 4096}, // flare's defaults
      {1024, 3, 4096}, // hint above some counts: plain-modulo rows
      {1024, 1, 1000}, // virtual not a power of two: INT_MIN has no bucket
      {1024, 2, 7},    // fewer buckets than partitions
      {1024, 9, 1},    // a single bucket
      {5, 1, 64},      // counts >= max fall outside the table
      {1024, 0, 4096}, // invalid: hint < 1
      {1024, 1, 0},    // invalid: no buckets
      {0, 1, 4096},    // invalid: no table
      {1024, 1, -16},  // invalid: negative virtual
  };
  static flare::ModularResolver* all = [] {
    auto* r = new flare::ModularResolver[sizeof settings / sizeof settings[0]];
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; ++i)
      r[i] = flare::ModularResolver(settings[i].max, settings[i].hint, settings[i].virt);
    return r;
  }();
  return all;
}
constexpr size_t kResolvers = 10;

constexpr flare::KeyHashAlgorithm kAlgorithms[] = {
    flare::KeyHashAlgorithm::simple, flare::KeyHashAlgorithm::bitshift, flare::KeyHashAlgorithm::crc32,
    flare::KeyHashAlgorithm::adler32, flare::KeyHashAlgorithm::murmur, flare::KeyHashAlgorithm::jenkins,
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view key(reinterpret_cast<const char*>(data), size);
  std::string_view c_key = key.substr(0, key.find('\0'));
  flare::ModularResolver* rs = resolvers();
  for (auto alg : kAlgorithms) {
    int h = flare::key_hash(key, alg);
    if (h < 0 && h != INT_MIN) fuzz::fail("key_hash negative but not INT_MIN", flare::to_string(alg));
    if (flare::key_hash(c_key, alg) != h) fuzz::fail("key_hash does not stop at the first NUL", flare::to_string(alg));
    flare::KeyHashAlgorithm parsed;
    if (!flare::parse_key_hash_algorithm(flare::to_string(alg), parsed) || parsed != alg)
      fuzz::fail("algorithm name does not parse back");

    for (size_t i = 0; i < kResolvers; ++i) {
      const flare::ModularResolver& r = rs[i];
      for (int count = 1; count <= 9; ++count) {
        int p = r.partition_of(h, count);
        if (p != -1 && (p < 0 || p >= count))
          fuzz::fail("partition_of out of range",
                     std::string(flare::to_string(alg)) + " hash " + std::to_string(h) + " count " +
                         std::to_string(count) + " resolver " + std::to_string(i) + " -> " + std::to_string(p));
        bool has_entry = r.valid() && count < r.max_partitions() && h % r.virtual_buckets() >= 0;
        if (has_entry && p == -1)
          fuzz::fail("partition_of gave -1 where the server has a table entry",
                     "hash " + std::to_string(h) + " count " + std::to_string(count) + " resolver " + std::to_string(i));
        if (!has_entry && p != -1) fuzz::fail("partition_of answered where the server has no table entry");
      }
    }
  }
  return 0;
}
