// lacuna: BSR × dense: C = α·A·B + β·C on a range of block rows, a block row at a time.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The operands of a BSR product, checked by the entry point. R × C is the block (R = dynamic for a
/// run-time shape, given in block_rows × block_cols); m × k is A's shape; T is float or bfloat16.
template <class T, std::size_t R, std::size_t C, class Index> struct bsr_product_args {
    dense_operands d;
    const Index* block_row_ptr;
    const Index* block_col_idx;
    const T* values;
    std::size_t m, k, block_rows, block_cols;
};

/// For each block row and each register-wide column tile of C, up to 16 rows of accumulators take
/// every block's contribution: one load of B per block column feeds a whole column of the block
/// (R FMAs), so the kernel is bound by arithmetic, not by B.
struct spmm_bsr {
    template <class Arch, class T, std::size_t R, std::size_t C, class Index>
    void operator()(Arch, const bsr_product_args<T, R, C, Index>* args, std::size_t block_row_begin,
                    std::size_t block_row_end) const noexcept;
};

namespace detail {

inline constexpr std::size_t bsr_rows_per_pass = 16; // accumulators: half the AVX-512 registers

// Rows [r0, r0 + rows) of block row bi (rows <= 16, all inside the matrix), columns [j, j + width<V>).
template <class V, class T, std::size_t R, std::size_t C, class Index>
LACUNA_ALWAYS_INLINE void bsr_pass(const bsr_product_args<T, R, C, Index>& a, std::size_t bi, std::size_t r0,
                                   std::size_t rows, std::size_t j) noexcept {
    const std::size_t br = R == dynamic ? a.block_rows : R, bc = C == dynamic ? a.block_cols : C;
    constexpr std::size_t max_rows = R == dynamic ? bsr_rows_per_pass : std::min(R, bsr_rows_per_pass);
    V acc[max_rows];
    LACUNA_UNROLL for (std::size_t r = 0; r < max_rows; ++r) acc[r] = V(0.f);
    for (auto blk = std::size_t(a.block_row_ptr[bi]); blk < std::size_t(a.block_row_ptr[bi + 1]); ++blk) {
        const std::size_t col0 = std::size_t(a.block_col_idx[blk]) * bc;
        const std::size_t cols = std::min(bc, a.k - col0); // the padding columns meet no row of B
        const T* block = a.values + blk * br * bc + r0 * bc;
        for (std::size_t c = 0; c < cols; ++c) {
            const V b = simd::load<V>(a.d.b + (col0 + c) * a.d.ldb + j);
            // A static block whose passes are all full (R <= 16 or a multiple of 16) unrolls over a
            // constant row count; the rows past the matrix are computed from the block's padding
            // and never stored.
            if constexpr (R != dynamic && (R <= bsr_rows_per_pass || R % bsr_rows_per_pass == 0)) {
                LACUNA_UNROLL for (std::size_t r = 0; r < max_rows; ++r) acc[r] = simd::fma(V(float(block[r * bc + c])), b, acc[r]);
            } else {
                for (std::size_t r = 0; r < rows; ++r) acc[r] = simd::fma(V(float(block[r * bc + c])), b, acc[r]);
            }
        }
    }
    for (std::size_t r = 0; r < rows; ++r) finish(a.d.c + (bi * br + r0 + r) * a.d.ldc + j, acc[r], a.d);
}

} // namespace detail

template <class Arch, class T, std::size_t R, std::size_t C, class Index>
void spmm_bsr::operator()(Arch, const bsr_product_args<T, R, C, Index>* args, std::size_t block_row_begin,
                          std::size_t block_row_end) const noexcept {
    const bsr_product_args<T, R, C, Index>& a = *args;
    const std::size_t br = R == dynamic ? a.block_rows : R;
    for (std::size_t bi = block_row_begin; bi < block_row_end; ++bi) {
        const std::size_t inside = std::min(br, a.m - bi * br); // the padding rows are never written
        for (std::size_t r0 = 0; r0 < inside; r0 += detail::bsr_rows_per_pass) {
            const std::size_t rows = std::min(detail::bsr_rows_per_pass, inside - r0);
            detail::for_each_panel<Arch>(a.d.n, [&]<class U, std::size_t tiles>(std::size_t j) {
                for (std::size_t t = 0; t < tiles; ++t) detail::bsr_pass<U>(a, bi, r0, rows, j + t * simd::width<U>);
                return tiles * simd::width<U>;
            });
        }
    }
}

} // namespace lacuna::kernels
