// lacuna: CSR × dense products: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV), on a range of
// rows, so that the entry point can hand each thread its own rows.
#pragma once

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

// One tile of `tiles` registers of type V at column j of row range [k0, k1).
template <class V, std::size_t tiles, class T, class Index>
LACUNA_ALWAYS_INLINE void spmm_tile(const csr_product_args<T, Index>& a, std::size_t k0, std::size_t k1, float* c,
                                    std::size_t j) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V acc[tiles];
    for (std::size_t t = 0; t < tiles; ++t) acc[t] = V(0.f);
    for (std::size_t k = k0; k < k1; ++k) {
        if (k + prefetch_distance < k1) {
            const float* ahead = a.d.b + std::size_t(a.col_idx[k + prefetch_distance]) * a.d.ldb + j;
            for (std::size_t t = 0; t < tiles * w; t += 16) __builtin_prefetch(ahead + t);
        }
        const V v(float(a.values[k]));
        const float* b = a.d.b + std::size_t(a.col_idx[k]) * a.d.ldb + j;
        for (std::size_t t = 0; t < tiles; ++t) acc[t] = simd::fma(v, simd::load<V>(b + t * w), acc[t]);
    }
    for (std::size_t t = 0; t < tiles; ++t) finish(c + j + t * w, acc[t], a.d);
}

} // namespace detail

template <class Arch, class T, class Index>
void spmm_csr::operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    const csr_product_args<T, Index>& a = *args;
    detail::for_each_tile<Arch>(a.d.n, row_begin, row_end, [&]<class V, std::size_t tiles>(std::size_t i, std::size_t j) {
        detail::spmm_tile<V, tiles>(a, std::size_t(a.row_ptr[i]), std::size_t(a.row_ptr[i + 1]), a.d.c + i * a.d.ldc, j);
    });
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
        if constexpr (!simd::is_lane<V> && sizeof(Index) == 4) {
            using I = simd::vec<std::int32_t, Arch>;
            for (; k + 2 * w <= k1; k += 2 * w) {
                acc0 = simd::fma(simd::load<V>(a.values + k), V::gather(a.d.b, simd::load<I>(a.col_idx + k)), acc0);
                acc1 = simd::fma(simd::load<V>(a.values + k + w), V::gather(a.d.b, simd::load<I>(a.col_idx + k + w)), acc1);
            }
        }
        float sum = simd::reduce_add(acc0 + acc1);
        for (; k < k1; ++k) sum += float(a.values[k]) * a.d.b[std::size_t(a.col_idx[k])];
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}

} // namespace lacuna::kernels
