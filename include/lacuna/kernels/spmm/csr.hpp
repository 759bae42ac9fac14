// lacuna: CSR × dense products: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV), on a range of
// rows, so that the entry point can hand each thread its own rows.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The operands of a CSR product; T is float or bfloat16.
template <class T, class Index> struct csr_product_args {
    dense_operands d;
    const Index* row_ptr;
    const Index* col_idx;
    const T* values;
};

/// SpMM on rows [row_begin, row_end): the columns of C in register tiles of four vectors,
/// accumulating a(i, k)·B[k, tile] over the row's nonzeros, so each tile of C is loaded and stored once.
struct spmm_csr {
    template <class Arch, class T, class Index>
    void operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// SpMV on rows [row_begin, row_end): y[i] = α·sum_k a(i, k)·x[col(k)] + β·y[i], where x is args.b and
/// y is args.c (n = 1).
struct spmv_csr {
    template <class Arch, class T, class Index>
    void operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

namespace detail {

// B's rows are picked by the column indices, which no hardware prefetcher predicts.
inline constexpr std::size_t prefetch_distance = 8;

// acc[r][t] += the stored elements [k0[r], k1[r]) of R rows against B's tile at column j: the rows'
// common length interleaved (R·tiles independent chains keep the FMA pipes busy, where one row's
// tiles alone wait on the FMA latency), then each row's rest on its own.
template <class V, std::size_t tiles, std::size_t R, class T, class Index>
LACUNA_ALWAYS_INLINE void csr_rows_tile(const csr_product_args<T, Index>& a, const std::size_t (&k0)[R],
                                        const std::size_t (&k1)[R], std::size_t j, V (&acc)[R][tiles]) noexcept {
    constexpr std::size_t w = simd::width<V>;
    auto element = [&](std::size_t r, std::size_t k) LACUNA_LAMBDA_INLINE {
        if (k + prefetch_distance < k1[r]) {
            const float* ahead = a.d.b + std::size_t(a.col_idx[k + prefetch_distance]) * a.d.ldb + j;
            for (std::size_t t = 0; t < tiles * w; t += 16) __builtin_prefetch(ahead + t);
        }
        const V v(float(a.values[k]));
        const float* b = a.d.b + std::size_t(a.col_idx[k]) * a.d.ldb + j;
        for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = simd::fma(v, simd::load<V>(b + t * w), acc[r][t]);
    };
    std::size_t common = k1[0] - k0[0];
    for (std::size_t r = 0; r < R; ++r) {
        common = std::min(common, k1[r] - k0[r]);
        for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = V(0.f);
    }
    for (std::size_t q = 0; q < common; ++q)
        for (std::size_t r = 0; r < R; ++r) element(r, k0[r] + q);
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t k = k0[r] + common; k < k1[r]; ++k) element(r, k);
}

} // namespace detail

template <class Arch, class T, class Index>
void spmm_csr::operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    const csr_product_args<T, Index>& a = *args;
    auto rows = [&]<class V, std::size_t tiles, std::size_t R>(std::size_t i0, std::size_t j) {
        constexpr std::size_t w = simd::width<V>;
        std::size_t k0[R], k1[R];
        for (std::size_t r = 0; r < R; ++r) k0[r] = std::size_t(a.row_ptr[i0 + r]), k1[r] = std::size_t(a.row_ptr[i0 + r + 1]);
        V acc[R][tiles];
        detail::csr_rows_tile(a, k0, k1, j, acc);
        for (std::size_t r = 0; r < R; ++r)
            for (std::size_t t = 0; t < tiles; ++t) detail::finish(a.d.c + (i0 + r) * a.d.ldc + j + t * w, acc[r][t], a.d);
    };
    // Column panels outermost: the rows of B that one panel touches stay in cache while every row of
    // A passes over them, instead of all of B competing for it. Rows two at a time.
    auto panel = [&]<class V, std::size_t tiles>(std::size_t j) {
        std::size_t i = row_begin;
        for (; i + 2 <= row_end; i += 2) rows.template operator()<V, tiles, 2>(i, j);
        if (i < row_end) rows.template operator()<V, tiles, 1>(i, j);
        return tiles * simd::width<V>;
    };
    detail::for_each_panel<Arch>(a.d.n, panel);
}

template <class Arch, class T, class Index>
void spmv_csr::operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const csr_product_args<T, Index>& a = *args;
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const auto k0 = std::size_t(a.row_ptr[i]), k1 = std::size_t(a.row_ptr[i + 1]);
        // Gathering x costs as much as the arithmetic; two accumulators hide the FMA latency.
        V acc0(0.f), acc1(0.f);
        std::size_t k = k0;
        if constexpr (!simd::is_lane<V>) {
            for (; k + 2 * w <= k1; k += 2 * w) {
                acc0 = simd::fma(simd::load<V>(a.values + k), simd::gather<V>(a.d.b, a.col_idx + k), acc0);
                acc1 = simd::fma(simd::load<V>(a.values + k + w), simd::gather<V>(a.d.b, a.col_idx + k + w), acc1);
            }
        }
        float sum = simd::reduce_add(acc0 + acc1);
        for (; k < k1; ++k) sum += float(a.values[k]) * a.d.b[std::size_t(a.col_idx[k])];
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}

} // namespace lacuna::kernels
