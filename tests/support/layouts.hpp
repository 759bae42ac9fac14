// Test data and comparisons shared by the layout tests.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/prune.hpp"

namespace lacuna::test {

/// The bit pattern of x, so that NaN payloads and signed zeros count in comparisons.
template <class T> auto bits(T x) {
    if constexpr (std::is_same_v<T, bfloat16>) return x.bits;
    else if constexpr (std::is_same_v<T, float>) return std::bit_cast<std::uint32_t>(x);
    else return std::bit_cast<std::uint64_t>(x);
}

template <class T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (bits(a[i]) != bits(b[i])) return false;
    return true;
}

/// A rows × cols matrix with about `density` of its elements nonzero, plus NaN and ±inf when asked.
template <class T>
std::vector<T> sparse_dense(std::mt19937_64& rng, std::size_t rows, std::size_t cols, double density,
                            bool specials = false) {
    std::vector<T> d(rows * cols, T(0.f));
    std::bernoulli_distribution keep(density);
    std::uniform_real_distribution<float> value(-2.f, 2.f);
    for (auto& x : d)
        if (keep(rng)) x = T(value(rng));
    if (specials && d.size() >= 3) {
        d[0] = T(std::numeric_limits<float>::quiet_NaN());
        d[d.size() / 2] = T(std::numeric_limits<float>::infinity());
        d[d.size() - 1] = T(-std::numeric_limits<float>::infinity());
    }
    return d;
}

/// dense with the elements `keep` does not flag set to zero.
template <class T> std::vector<T> masked(std::vector<T> dense, const std::vector<bool>& keep) {
    for (std::size_t i = 0; i < dense.size(); ++i)
        if (!keep[i]) dense[i] = T(0.f);
    return dense;
}

/// A random m × k matrix of layout L at about `density`: N:M keeps the N largest of each group of
/// that, BSR (3 × 5 blocks when the shape is a run-time one) half of the blocks that hold anything.
template <class L> L random_layout(std::mt19937_64& rng, std::size_t m, std::size_t k, double density) {
    using T = typename L::value_type;
    const std::vector<T> dense = sparse_dense<T>(rng, m, k, density);
    const matrix_view<const T> v(dense, m, k);
    if constexpr (block_sparse<L>) {
        const block_size block = L::static_block_rows == dynamic ? block_size{3, 5}
                                                                  : block_size{L::static_block_rows, L::static_block_cols};
        return L::from_dense(v, block, prune::block_top_fraction(block, 0.5));
    } else {
        return L::from_dense(v);
    }
}

/// Shapes every layout is tried on: empty, one row or column, and sizes no block or group divides.
inline const std::vector<std::pair<std::size_t, std::size_t>> awkward_shapes{
    {0, 0}, {0, 5}, {5, 0}, {1, 1}, {1, 17}, {17, 1}, {7, 13}, {64, 64}, {33, 100}};

} // namespace lacuna::test
