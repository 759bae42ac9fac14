// lacuna: CSR × dense products: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV), on a range of
// rows, so that the entry point can hand each thread its own rows.
#pragma once

#include <cstddef>

#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The dense side of every product C = α·A·B + β·C, checked by the entry point: B row-major
/// (A's columns × n, row stride ldb), C row-major (A's rows × n, row stride ldc); for SpMV, b is x and
/// c is y. With beta = 0, C is written without being read (NaN in C does not survive).
struct dense_operands {
    const float* b;
    std::size_t ldb;
    float* c;
    std::size_t ldc;
    std::size_t n;
    float alpha, beta;
};

/// The operands of a CSR product.
template <class Index> struct csr_product_args {
    dense_operands d;
    const Index* row_ptr;
    const Index* col_idx;
    const float* values;
};

/// SpMM on rows [row_begin, row_end): the columns of C in register tiles of four vectors, accumulating a(i, k)·B[k, tile] over the row's nonzeros, so each tile of C is loaded and
/// stored once.
struct spmm_csr {
    template <class Arch, class Index>
    void operator()(Arch, const csr_product_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// SpMV on rows [row_begin, row_end): y[i] = α·sum_k a(i, k)·x[col(k)] + β·y[i], where x is args.b and
/// y is args.c (n = 1).
struct spmv_csr {
    template <class Arch, class Index>
    void operator()(Arch, const csr_product_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

namespace detail {

// C[tile] = α·acc + β·C[tile], not reading C when β = 0 (V may be a single float: SpMV's y[i]).
template <class V> LACUNA_ALWAYS_INLINE void finish(float* c, const V& acc, const dense_operands& d) noexcept {
    if (d.beta == 0.f) simd::store(c, V(d.alpha) * acc);
    else simd::store(c, simd::fma(V(d.beta), simd::load<V>(c), V(d.alpha) * acc));
}

// B's rows are picked by the column indices, which no hardware prefetcher predicts.
inline constexpr std::size_t prefetch_distance = 8;

// One tile of `tiles` registers of type V at column j of row range [k0, k1).
template <class V, std::size_t tiles, class Index>
LACUNA_ALWAYS_INLINE void spmm_tile(const csr_product_args<Index>& a, std::size_t k0, std::size_t k1, float* c,
                                    std::size_t j) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V acc[tiles];
    for (std::size_t t = 0; t < tiles; ++t) acc[t] = V(0.f);
    for (std::size_t k = k0; k < k1; ++k) {
        if (k + prefetch_distance < k1) {
            const float* ahead = a.d.b + std::size_t(a.col_idx[k + prefetch_distance]) * a.d.ldb + j;
            for (std::size_t t = 0; t < tiles * w; t += 16) __builtin_prefetch(ahead + t);
        }
        const V v(a.values[k]);
        const float* b = a.d.b + std::size_t(a.col_idx[k]) * a.d.ldb + j;
        for (std::size_t t = 0; t < tiles; ++t) acc[t] = simd::fma(v, simd::load<V>(b + t * w), acc[t]);
    }
    for (std::size_t t = 0; t < tiles; ++t) finish(c + j + t * w, acc[t], a.d);
}

} // namespace detail

template <class Arch, class Index>
void spmm_csr::operator()(Arch, const csr_product_args<Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const csr_product_args<Index>& a = *args;
    // Column panels outermost: the rows of B that one panel touches stay in cache while every row of
    // A passes over them, instead of all of B competing for it.
    std::size_t j = 0;
    auto rows = [&](auto tile) {
        for (std::size_t i = row_begin; i < row_end; ++i)
            tile(std::size_t(a.row_ptr[i]), std::size_t(a.row_ptr[i + 1]), a.d.c + i * a.d.ldc);
    };
    for (; j + 4 * w <= a.d.n; j += 4 * w)
        rows([&](std::size_t k0, std::size_t k1, float* c) { detail::spmm_tile<V, 4>(a, k0, k1, c, j); });
    for (; j + w <= a.d.n; j += w)
        rows([&](std::size_t k0, std::size_t k1, float* c) { detail::spmm_tile<V, 1>(a, k0, k1, c, j); });
    for (; j < a.d.n; ++j)
        rows([&](std::size_t k0, std::size_t k1, float* c) { detail::spmm_tile<float, 1>(a, k0, k1, c, j); });
}

template <class Arch, class Index>
void spmv_csr::operator()(Arch, const csr_product_args<Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const csr_product_args<Index>& a = *args;
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const auto k0 = std::size_t(a.row_ptr[i]), k1 = std::size_t(a.row_ptr[i + 1]);
        // Gathering x costs as much as the arithmetic; two accumulators hide the FMA latency.
        V acc0(0.f), acc1(0.f);
        std::size_t k = k0;
        if constexpr (!simd::is_lane<V> && sizeof(Index) == 4) {
            using I = simd::vec<std::int32_t, Arch>;
            for (; k + 2 * w <= k1; k += 2 * w) {
                acc0 = simd::fma(simd::load<V>(a.values + k), V::gather(a.d.b, simd::load<I>(a.col_idx + k)), acc0);
                acc1 = simd::fma(simd::load<V>(a.values + k + w), V::gather(a.d.b, simd::load<I>(a.col_idx + k + w)), acc1);
            }
        }
        float sum = simd::reduce_add(acc0 + acc1);
        for (; k < k1; ++k) sum += a.values[k] * a.d.b[std::size_t(a.col_idx[k])];
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}

} // namespace lacuna::kernels
