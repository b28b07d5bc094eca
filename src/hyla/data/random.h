// Deterministic randomness for data: a small PRNG whose stream is fixed by this file
// alone (std::uniform_int_distribution and std::shuffle differ between standard
// libraries), so a seed gives the same split, order and synthetic samples everywhere.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace hyla::data {

// SplitMix64 finaliser (Steele et al., 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Derives an independent stream id from a parent seed and up to two indices
// (e.g. seed, epoch, sample), so samples can be generated out of order.
inline uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  return mix64(mix64(mix64(seed) ^ a) ^ (b * 0xD6E8FEB86659FD93ull));
}

// 64-bit FNV-1a of bytes: a cheap, stable content key (not cryptographic).
inline uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), unbiased (rejects the short top bucket).
  uint64_t below(uint64_t n) {
    uint64_t threshold = (0 - n) % n;
    for (;;) {
      uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }
  int64_t range(int64_t lo, int64_t hi_inclusive) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi_inclusive - lo) + 1));
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

  // Fisher–Yates over a whole vector.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
  // `k` distinct values from [lo, hi), in draw order (partial Fisher–Yates when the
  // range is small, rejection otherwise).
  std::vector<int64_t> sample_distinct(int64_t lo, int64_t hi, int64_t k);

 private:
  uint64_t state_;
};

}  // namespace hyla::data
