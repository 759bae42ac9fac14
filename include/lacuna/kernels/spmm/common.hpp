// lacuna: what every sparse × dense product kernel shares: the dense operands, the store of a
// finished tile of C, and the walk over register tiles of C's columns.
#pragma once

#include <cstddef>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/kernels/panels.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The dense side of every product C = α·A·B + β·C, checked by the entry point: B row-major
/// (A's columns × n, row stride ldb), C row-major (A's rows × n, row stride ldc); for SpMV, b is x
/// (contiguous) and c is y (stride ldc). With beta = 0, C is written without being read (NaN in C
/// does not survive).
struct dense_operands {
    const float* b;
    std::size_t ldb;
    float* c;
    std::size_t ldc;
    std::size_t n;
    float alpha, beta;
};

namespace detail {

// C[tile] = α·acc + β·C[tile], not reading C when β = 0 (V may be a single float: SpMV's y[i]).
template <class V> LACUNA_ALWAYS_INLINE void finish(float* c, const V& acc, const dense_operands& d) noexcept {
    if (d.beta == 0.f) simd::store(c, V(d.alpha) * acc);
    else simd::store(c, simd::fma(V(d.beta), simd::load<V>(c), V(d.alpha) * acc));
}

// Calls tile.template operator()<V, tiles>(i, j) for every row i in [row_begin, row_end) and every
// tile of C's columns (for_each_panel). Column panels outermost: the rows of B that one panel
// touches stay in cache while every row of A passes over them, instead of all of B competing for it.
template <class Arch, class Tile>
LACUNA_ALWAYS_INLINE void for_each_tile(std::size_t n, std::size_t row_begin, std::size_t row_end, Tile&& tile) {
    for_each_panel<Arch>(n, [&]<class V, std::size_t tiles>(std::size_t j) {
        for (std::size_t i = row_begin; i < row_end; ++i) tile.template operator()<V, tiles>(i, j);
        return tiles * simd::width<V>;
    });
}

// One tile of C: row i's stored elements, which walk(i, f) hands to f(column, value) in any order,
// each accumulate value·B[column, j : j + tiles·width).
template <class V, std::size_t tiles, class Walk>
LACUNA_ALWAYS_INLINE void walk_tile(const dense_operands& d, std::size_t i, std::size_t j, const Walk& walk) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V acc[tiles];
    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[t] = V(0.f);
    walk(i, [&](std::size_t col, float value) {
        const V v(value);
        const float* b = d.b + col * d.ldb + j;
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[t] = simd::fma(v, simd::load<V>(b + t * w), acc[t]);
    });
    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) finish(d.c + i * d.ldc + j + t * w, acc[t], d);
}

} // namespace detail
} // namespace lacuna::kernels
