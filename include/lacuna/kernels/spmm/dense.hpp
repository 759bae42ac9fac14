// lacuna: dense × dense on the products' interface: C = α·A·B + β·C and y = α·A·x + β·y for a dense
// row-major A (float or bfloat16), so that dense weights run wherever sparse ones do (the linear
// layer, the experts of a MoE layer) and benchmarks compare the two in one code path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The operands of a dense product, checked by the entry point: A is rows × k, row-major with row
/// stride lda.
template <class T> struct dense_product_args {
    dense_operands d;
    const T* a;
    std::size_t lda, k;
};

/// C = α·A·B + β·C on rows [row_begin, row_end): register tiles of R rows of C × a panel of
/// columns, each element of A broadcast against the panel's registers of a row of B; A's columns
/// in chunks whose rows of B stay in L1 while every row of the part passes over them.
struct spmm_dense {
    template <class Arch, class T>
    void operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// y = α·A·x + β·y on rows [row_begin, row_end), x = args.b, y = args.c: four rows of A streamed
/// at once against one register of x.
struct spmv_dense {
    template <class Arch, class T>
    void operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

namespace detail {

// A's columns per chunk (B's rows: 128 × a 64-float panel is 32 KiB of L1) and C's rows per block,
// whose partial sums wait in a scratch tile between chunks.
inline constexpr std::size_t dense_chunk_cols = 128, dense_block_rows = 24;

// Rows of C per register tile: with `tiles` registers per row, as many rows as keep the
// accumulators, B's registers and a broadcast within the register file.
template <class V, std::size_t tiles> inline constexpr std::size_t dense_tile_rows =
    simd::width<V> >= 16 ? std::min<std::size_t>(6, 24 / tiles) : std::min<std::size_t>(4, 8 / tiles);

// acc[r][t] += Σ_c a[r][c] · B[k0 + c, j + t·w] for c < cols, a[r] rows of float.
template <class V, std::size_t tiles, std::size_t R>
LACUNA_ALWAYS_INLINE void dense_tile(const float* const (&a)[R], const float* b, std::size_t ldb, std::size_t cols,
                                     V (&acc)[R][tiles]) noexcept {
    constexpr std::size_t w = simd::width<V>;
    for (std::size_t c = 0; c < cols; ++c) {
        V bv[tiles];
        for (std::size_t t = 0; t < tiles; ++t) bv[t] = simd::load<V>(b + c * ldb + t * w);
        for (std::size_t r = 0; r < R; ++r) {
            const V av(a[r][c]);
            for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = simd::fma(av, bv[t], acc[r][t]);
        }
    }
}

} // namespace detail

template <class Arch, class T>
void spmm_dense::operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    const dense_product_args<T>& a = *args;
    constexpr std::size_t kc = detail::dense_chunk_cols, block = detail::dense_block_rows;
    // bfloat16 rows are widened a chunk at a time into this buffer, so that the tile broadcasts floats.
    alignas(64) float widened[std::is_same_v<T, float> ? 1 : block * kc];
    detail::for_each_panel<Arch>(a.d.n, [&]<class V, std::size_t tiles>(std::size_t j) {
        constexpr std::size_t w = simd::width<V>, R = detail::dense_tile_rows<V, tiles>;
        V scratch[block][tiles];
        for (std::size_t i0 = row_begin; i0 < row_end; i0 += block) {
            const std::size_t rows = std::min(block, row_end - i0);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t t = 0; t < tiles; ++t) scratch[r][t] = V(0.f);
            for (std::size_t k0 = 0; k0 < a.k; k0 += kc) {
                const std::size_t cols = std::min(kc, a.k - k0);
                const float* arow[block];
                for (std::size_t r = 0; r < rows; ++r) {
                    const T* src = a.a + (i0 + r) * a.lda + k0;
                    if constexpr (std::is_same_v<T, float>) {
                        arow[r] = src;
                    } else {
                        float* dst = widened + r * kc;
                        for (std::size_t c = 0; c < cols; ++c) dst[c] = float(src[c]);
                        arow[r] = dst;
                    }
                }
                const float* b = a.d.b + k0 * a.d.ldb + j;
                auto pass = [&]<std::size_t G>(std::size_t r) {
                    V acc[G][tiles];
                    const float* rows_of_a[G];
                    for (std::size_t q = 0; q < G; ++q) {
                        rows_of_a[q] = arow[r + q];
                        for (std::size_t t = 0; t < tiles; ++t) acc[q][t] = scratch[r + q][t];
                    }
                    detail::dense_tile<V, tiles, G>(rows_of_a, b, a.d.ldb, cols, acc);
                    for (std::size_t q = 0; q < G; ++q)
                        for (std::size_t t = 0; t < tiles; ++t) scratch[r + q][t] = acc[q][t];
                };
                std::size_t r = 0;
                for (; r + R <= rows; r += R) pass.template operator()<R>(r);
                [&]<std::size_t... G>(std::index_sequence<G...>) {
                    ((rows - r == G + 1 ? pass.template operator()<G + 1>(r) : void()), ...);
                }(std::make_index_sequence<R - 1>{});
            }
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t t = 0; t < tiles; ++t) detail::finish(a.d.c + (i0 + r) * a.d.ldc + j + t * w, scratch[r][t], a.d);
        }
        return tiles * w;
    });
}

template <class Arch, class T>
void spmv_dense::operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, R = 4;
    const dense_product_args<T>& a = *args;
    const float* x = a.d.b;
    const std::size_t vk = simd::is_lane<V> ? 0 : a.k - a.k % w;
    auto rows = [&]<std::size_t G>(std::size_t i) {
        V acc[G];
        for (std::size_t r = 0; r < G; ++r) acc[r] = V(0.f);
        for (std::size_t c = 0; c < vk; c += w) {
            const V xv = simd::load<V>(x + c);
            for (std::size_t r = 0; r < G; ++r) acc[r] = simd::fma(simd::load<V>(a.a + (i + r) * a.lda + c), xv, acc[r]);
        }
        for (std::size_t r = 0; r < G; ++r) {
            float sum = simd::reduce_add(acc[r]);
            for (std::size_t c = vk; c < a.k; ++c) sum += float(a.a[(i + r) * a.lda + c]) * x[c];
            detail::finish(a.d.c + (i + r) * a.d.ldc, sum, a.d);
        }
    };
    std::size_t i = row_begin;
    for (; i + R <= row_end; i += R) rows.template operator()<R>(i);
    for (; i < row_end; ++i) rows.template operator()<1>(i);
}

} // namespace lacuna::kernels
