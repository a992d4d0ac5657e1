#include "runtime/random.h"

namespace pinmark {

namespace {

// The splitmix64 finalizer: a bijection on 64-bit words with full avalanche, so consecutive
// indices (and names that differ in one bit) give unrelated outputs.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

}  // namespace

uint64_t hash_name(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t random_bits(uint64_t seed, std::string_view name, uint64_t index) {
  // Each key is folded in behind a full mixing round, so (seed, name, index) triples that
  // differ in any one component land in unrelated states; the golden-ratio offsets keep an
  // all-zero key away from the mixer's fixed point at 0.
  uint64_t x = mix64(seed + kGolden);
  x = mix64(x ^ (hash_name(name) + kGolden));
  x = mix64(x ^ (index + kGolden));
  return mix64(x + kGolden);
}

double random_uniform(uint64_t seed, std::string_view name, uint64_t index) {
  // k in [0, 2^53); (k - 2^52) * 2^-52 is then an exact multiple of 2^-52 in [-1, 1).
  const int64_t k = static_cast<int64_t>(random_bits(seed, name, index) >> 11);
  return static_cast<double>(k - (int64_t{1} << 52)) * 0x1p-52;
}

std::vector<double> random_tensor(uint64_t seed, std::string_view name, size_t count, double scale,
                                  double offset) {
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = scale * random_uniform(seed, name, i) + offset;
  return values;
}

}  // namespace pinmark
