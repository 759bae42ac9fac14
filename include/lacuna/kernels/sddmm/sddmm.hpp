// lacuna: SDDMM, out(i, j) = scale · dot(A[i, :], B[j, :]) at the stored positions of a CSR, BSR or
// bitmap mask, on a range of (block) rows.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The dense side of an SDDMM: A (rows of the mask × d, row stride lda) and B (columns of the mask
/// × d, row stride ldb), both row-major; each dot is scaled by `scale`.
struct sddmm_operands {
    const float* a;
    std::size_t lda;
    const float* b;
    std::size_t ldb;
    std::size_t d;
    float scale;
};

/// A CSR mask; out holds one value per stored position, in the mask's order.
template <class Index> struct sddmm_csr_args {
    sddmm_operands s;
    const Index* row_ptr;
    const Index* col_idx;
    float* out;
};

/// A BSR mask of block_rows × block_cols blocks over an m × n matrix; out holds the blocks'
/// values, row-major, padding (positions outside the matrix) set to 0.
template <class Index> struct sddmm_bsr_args {
    sddmm_operands s;
    const Index* block_row_ptr;
    const Index* block_col_idx;
    float* out;
    std::size_t m, n, block_rows, block_cols;
};

/// A bitmap mask (words_per_row words a row, word offsets); out holds the values in bit order.
template <class Index> struct sddmm_bitmap_args {
    sddmm_operands s;
    const std::uint64_t* bits;
    const Index* offsets;
    float* out;
    std::size_t words_per_row;
};

/// Rows [row_begin, row_end) (block rows for BSR). Four positions of a row at a time share each
/// register of A's row against four rows of B, so A is loaded once per four dots.
struct sddmm {
    template <class Arch, class Index>
    void operator()(Arch, const sddmm_csr_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
    template <class Arch, class Index>
    void operator()(Arch, const sddmm_bsr_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
    template <class Arch, class Index>
    void operator()(Arch, const sddmm_bitmap_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

namespace detail {

// out[q] = scale · dot(A row i, B row col(q)) for q < count: a register's width of positions at a
// time, their sums reduced together (sums_of), then fours and ones with a reduction each. Which way
// a position goes depends only on its place in the row, so the thread split changes no bit.
template <class Arch, bool scattered, class Col>
LACUNA_ALWAYS_INLINE void sddmm_dots(const sddmm_operands& s, std::size_t i, Col&& col, std::size_t count,
                                     float* out) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const float* a = s.a + i * s.lda;
    const std::size_t body = s.d - s.d % w;
    auto accumulate = [&]<std::size_t G>(std::size_t q, const float* (&b)[G], V (&acc)[G]) LACUNA_LAMBDA_INLINE {
        LACUNA_UNROLL for (std::size_t g = 0; g < G; ++g) b[g] = s.b + std::size_t(col(q + g)) * s.ldb, acc[g] = V(0.f);
        for (std::size_t x = 0; x < body; x += w) {
            const V av = simd::load<V>(a + x);
            LACUNA_UNROLL for (std::size_t g = 0; g < G; ++g) acc[g] = simd::fma(av, simd::load<V>(b[g] + x), acc[g]);
        }
    };
    auto tail = [&](const float* b, std::size_t x, float sum) {
        for (; x < s.d; ++x) sum += a[x] * b[x];
        return sum;
    };
    std::size_t q = 0;
    if constexpr (!simd::is_lane<V>) {
        // Scattered columns (CSR, bitmap) pick B's rows in an order no hardware prefetcher predicts:
        // the next group's rows are fetched while this group's dots run (20-40% faster at 90%
        // sparsity, d = 64). Consecutive columns (BSR) are left to the hardware, which was faster.
        auto prefetch_row = [&](std::size_t at, std::size_t d) LACUNA_LAMBDA_INLINE {
            if (!scattered || at >= count) return;
            const float* ahead = s.b + std::size_t(col(at)) * s.ldb;
            // d is a constant in `fixed`, where the lines are unrolled.
            LACUNA_UNROLL for (std::size_t x = 0; x < d; x += 64 / sizeof(float)) __builtin_prefetch(ahead + x);
        };
        // d of 1 to 8 registers (attention heads of 16 to 128 on AVX-512): A's row waits in
        // registers and each position's dot is one short chain, so only one row pointer of B is live.
        auto fixed = [&]<std::size_t chunks>() LACUNA_LAMBDA_INLINE {
            V av[chunks];
            LACUNA_UNROLL for (std::size_t c = 0; c < chunks; ++c) av[c] = simd::load<V>(a + c * w);
            for (; q + w <= count; q += w) {
                V acc[w];
                LACUNA_UNROLL for (std::size_t g = 0; g < w; ++g) {
                    prefetch_row(q + w + g, chunks * w);
                    const float* b = s.b + std::size_t(col(q + g)) * s.ldb;
                    V sum = av[0] * simd::load<V>(b);
                    LACUNA_UNROLL for (std::size_t c = 1; c < chunks; ++c) sum = simd::fma(av[c], simd::load<V>(b + c * w), sum);
                    acc[g] = sum;
                }
                simd::store(out + q, V(s.scale) * simd::sums_of(acc));
            }
        };
        if (s.d % w == 0) [&]<std::size_t... c>(std::index_sequence<c...>) LACUNA_LAMBDA_INLINE {
            ((s.d == (c + 1) * w ? fixed.template operator()<c + 1>() : void()), ...);
        }(std::make_index_sequence<8>{});
        for (; q + w <= count; q += w) {
            LACUNA_UNROLL for (std::size_t g = 0; g < w; ++g) prefetch_row(q + w + g, s.d);
            const float* b[w];
            V acc[w];
            accumulate.template operator()<w>(q, b, acc);
            V sums = simd::sums_of(acc);
            if (body < s.d) {
                alignas(64) float lanes[w];
                simd::store(lanes, sums);
                for (std::size_t g = 0; g < w; ++g) lanes[g] = tail(b[g], body, lanes[g]);
                sums = simd::load<V>(lanes);
            }
            simd::store(out + q, V(s.scale) * sums);
        }
    }
    auto group = [&]<std::size_t G>(std::size_t at) {
        const float* b[G];
        V acc[G];
        accumulate.template operator()<G>(at, b, acc);
        LACUNA_UNROLL for (std::size_t g = 0; g < G; ++g) out[at + g] = s.scale * tail(b[g], body, simd::reduce_add(acc[g]));
    };
    for (; q + 4 <= count; q += 4) group.template operator()<4>(q);
    for (; q < count; ++q) group.template operator()<1>(q);
}

} // namespace detail

template <class Arch, class Index>
void sddmm::operator()(Arch, const sddmm_csr_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    const sddmm_csr_args<Index>& m = *args;
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const auto k0 = std::size_t(m.row_ptr[i]);
        detail::sddmm_dots<Arch, true>(m.s, i, [&](std::size_t q) { return m.col_idx[k0 + q]; },
                                 std::size_t(m.row_ptr[i + 1]) - k0, m.out + k0);
    }
}

template <class Arch, class Index>
void sddmm::operator()(Arch, const sddmm_bsr_args<Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    const sddmm_bsr_args<Index>& m = *args;
    const std::size_t br = m.block_rows, bc = m.block_cols;
    for (std::size_t bi = row_begin; bi < row_end; ++bi)
        for (auto k = std::size_t(m.block_row_ptr[bi]); k < std::size_t(m.block_row_ptr[bi + 1]); ++k) {
            const std::size_t col0 = std::size_t(m.block_col_idx[k]) * bc;
            const std::size_t rows = std::min(br, m.m - bi * br), cols = std::min(bc, m.n - col0);
            float* block = m.out + k * br * bc;
            for (std::size_t r = 0; r < br; ++r) {
                float* out = block + r * bc;
                const std::size_t inside = r < rows ? cols : 0;
                if (inside)
                    detail::sddmm_dots<Arch, false>(m.s, bi * br + r, [&](std::size_t q) { return col0 + q; }, inside, out);
                for (std::size_t c = inside; c < bc; ++c) out[c] = 0.f;
            }
        }
}

template <class Arch, class Index>
void sddmm::operator()(Arch, const sddmm_bitmap_args<Index>* args, std::size_t row_begin,
                       std::size_t row_end) const noexcept {
    const sddmm_bitmap_args<Index>& m = *args;
    for (std::size_t i = row_begin; i < row_end; ++i)
        for (std::size_t w = 0; w < m.words_per_row; ++w) {
            std::uint32_t cols[64];
            std::size_t count = 0;
            for (std::uint64_t bits = m.bits[i * m.words_per_row + w]; bits != 0; bits &= bits - 1)
                cols[count++] = std::uint32_t(w * 64 + std::size_t(std::countr_zero(bits)));
            detail::sddmm_dots<Arch, true>(m.s, i, [&](std::size_t q) { return cols[q]; }, count,
                                     m.out + std::size_t(m.offsets[i * m.words_per_row + w]));
        }
}

} // namespace lacuna::kernels
