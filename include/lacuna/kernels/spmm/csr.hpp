// lacuna: CSR × dense products: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV), on a range of
// rows, so that the entry point can hand each thread its own rows.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The operands of a CSR product; T is float or bfloat16. A has k columns and nnz stored elements
/// over `rows` rows (the whole matrix, whichever rows a thread takes).
template <class T, class Index> struct csr_product_args {
    dense_operands d;
    const Index* row_ptr;
    const Index* col_idx;
    const T* values;
    std::size_t rows, k, nnz;
};

/// SpMM on rows [row_begin, row_end): the columns of C in register tiles of up to four vectors,
/// accumulating a(i, k)·B[k, tile] over the row's nonzeros. Where rows are dense enough, blocks of
/// rows take A's columns a chunk at a time, so that B's rows for a chunk are read from L1 by every
/// row of the block.
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
inline constexpr std::size_t prefetch_distance = 16;

// A row's stored elements from k on whose columns are below `stop` (all up to `last` for a whole
// row), against B's tile at column j: returns where they end, their sum in acc. Elements alternate
// between two sets of accumulators, added at the end (two independent chains a register of the
// tile hide the FMA latency). A whole row prefetches B's rows; a chunk's are in L1 already.
template <bool whole_row, class V, std::size_t tiles, class T, class Index>
LACUNA_ALWAYS_INLINE std::size_t csr_row_tile(const csr_product_args<T, Index>& a, std::size_t k, std::size_t last,
                                              std::size_t stop, std::size_t j, V (&acc)[tiles]) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V odd[tiles];
    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[t] = odd[t] = V(0.f);
    auto element = [&](V(&sum)[tiles], std::size_t at) LACUNA_LAMBDA_INLINE {
        if (whole_row && at + prefetch_distance < last) {
            const float* ahead = a.d.b + std::size_t(a.col_idx[at + prefetch_distance]) * a.d.ldb + j;
            LACUNA_UNROLL for (std::size_t t = 0; t < tiles * w; t += 16) __builtin_prefetch(ahead + t);
        }
        const V v(float(a.values[at]));
        const float* b = a.d.b + std::size_t(a.col_idx[at]) * a.d.ldb + j;
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) sum[t] = simd::fma(v, simd::load<V>(b + t * w), sum[t]);
    };
    // Columns rise along a row, so the second of a pair below `stop` means both are.
    for (; k + 2 <= last && (whole_row || std::size_t(a.col_idx[k + 1]) < stop); k += 2) {
        element(acc, k);
        element(odd, k + 1);
    }
    if (k < last && (whole_row || std::size_t(a.col_idx[k]) < stop)) element(acc, k++);
    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[t] += odd[t];
    return k;
}

// Rows of A a block takes through the chunks, and the bytes of B's panel a chunk keeps in L1.
inline constexpr std::size_t csr_block_rows = 32, csr_chunk_bytes = 32 * 1024;

// Chunks pay where B's panel would not stay in L2 beside A's stream, and where a row's share of a
// chunk is long enough to repay its bookkeeping (the loop's exit, C's partial sums read and
// written again): measured at 4096 columns, 50% dense rows gain 1.2-1.5x, 30% (38 elements a
// chunk) lose at 64 columns of C, and a panel of one register (B's panel 256 KiB) loses at any
// density.
inline constexpr std::size_t csr_cached_panel_bytes = 512 * 1024;
inline constexpr double csr_min_chunk_elements = 48;

// A's columns a chunk takes in a panel `width` floats wide, or A's whole width (no chunks).
template <class T, class Index>
std::size_t csr_chunk_cols(const csr_product_args<T, Index>& a, std::size_t width) noexcept {
    if (a.nnz == 0 || a.k * width * sizeof(float) <= csr_cached_panel_bytes) return a.k;
    const std::size_t fit = csr_chunk_bytes / (width * sizeof(float));
    const double per_row = double(a.nnz) / double(a.rows) * double(fit) / double(a.k);
    return per_row >= csr_min_chunk_elements ? fit : a.k;
}

} // namespace detail

template <class Arch, class T, class Index>
void spmm_csr::operator()(Arch, const csr_product_args<T, Index>* args, std::size_t row_begin,
                          std::size_t row_end) const noexcept {
    const csr_product_args<T, Index>& a = *args;
    dense_operands later = a.d; // a chunk after the first: C = α·acc + C
    later.beta = 1.f;
    // A block of rows through the chunks: each row's cursor advances through its elements of the
    // chunk; C holds the partial sums between chunks (the first chunk applies β).
    auto block = [&]<class V, std::size_t tiles>(std::size_t i0, std::size_t i1, std::size_t j, std::size_t chunk) {
        constexpr std::size_t w = simd::width<V>;
        std::size_t at[detail::csr_block_rows];
        for (std::size_t i = i0; i < i1; ++i) at[i - i0] = std::size_t(a.row_ptr[i]);
        for (std::size_t c0 = 0; c0 < a.k; c0 += chunk) {
            const std::size_t stop = std::min(a.k, c0 + chunk);
            for (std::size_t i = i0; i < i1; ++i) {
                V acc[tiles];
                const std::size_t from = at[i - i0];
                at[i - i0] = detail::csr_row_tile<false>(a, from, std::size_t(a.row_ptr[i + 1]), stop, j, acc);
                // β applies in the first chunk only; a later chunk with none of the row's elements
                // leaves C as it is.
                if (c0 == 0 || at[i - i0] != from)
                    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t)
                        detail::finish(a.d.c + i * a.d.ldc + j + t * w, acc[t], c0 == 0 ? a.d : later);
            }
        }
    };
    // Column panels outermost: the rows of B that one panel touches stay in cache while every row of
    // A passes over them, instead of all of B competing for it.
    auto panel = [&]<class V, std::size_t tiles>(std::size_t j) {
        const std::size_t chunk = detail::csr_chunk_cols(a, tiles * simd::width<V>);
        constexpr std::size_t w = simd::width<V>;
        if (chunk < a.k) {
            for (std::size_t i0 = row_begin; i0 < row_end; i0 += detail::csr_block_rows)
                block.template operator()<V, tiles>(i0, std::min(row_end, i0 + detail::csr_block_rows), j, chunk);
        } else {
            for (std::size_t i = row_begin; i < row_end; ++i) {
                V acc[tiles];
                detail::csr_row_tile<true>(a, std::size_t(a.row_ptr[i]), std::size_t(a.row_ptr[i + 1]), a.k, j, acc);
                LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) detail::finish(a.d.c + i * a.d.ldc + j + t * w, acc[t], a.d);
            }
        }
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
