// Test data from one seed per process: LACUNA_SEED from the environment, else a fresh one. The seed
// is printed at start and with every failure, so a failing run can be repeated exactly.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "lacuna/core/bfloat16.hpp"

namespace lacuna::test {

inline std::uint64_t seed() {
    static const std::uint64_t s = [] {
        if (const char* env = std::getenv("LACUNA_SEED"); env && *env) return std::uint64_t(std::stoull(env));
        return (std::uint64_t(std::random_device{}()) << 32) | std::random_device{}();
    }();
    return s;
}

inline std::mt19937_64 make_rng() { return std::mt19937_64(seed()); }

/// n values uniform in [lo, hi), as T (float, double or bfloat16).
template <class T = float>
std::vector<T> random_vector(std::mt19937_64& rng, std::size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<T> v(n);
    for (auto& x : v) x = T(dist(rng));
    return v;
}

/// n bools, each true with probability p.
inline std::vector<char> random_mask(std::mt19937_64& rng, std::size_t n, double p) {
    std::bernoulli_distribution dist(p);
    std::vector<char> m(n);
    for (auto& b : m) b = dist(rng);
    return m;
}

inline std::span<const bool> as_bools(const std::vector<char>& m) {
    return {reinterpret_cast<const bool*>(m.data()), m.size()};
}

} // namespace lacuna::test
