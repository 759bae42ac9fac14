// lacuna: BSR arrays as SciPy (bsr_array) and PyTorch (sparse_bsr) hold them.
//
//   indptr[block_rows + 1], indices[nnz_blocks] (block column, sorted within a block row),
//   data[nnz_blocks][R][C] (each block row-major); R divides the rows and C the columns.
// This is lacuna's BSR layout exactly, so both directions can share memory.
#pragma once

#include <cstddef>
#include <span>

#include "lacuna/core/error.hpp"
#include "lacuna/layout/bsr.hpp"

namespace lacuna {

/// The arrays of a SciPy or PyTorch BSR matrix, by their names there.
template <class T, layout_index Index = std::int32_t> struct scipy_bsr_arrays {
    std::size_t rows = 0, cols = 0; // shape
    block_size blocksize{1, 1};
    std::span<const Index> indptr;  // PyTorch: crow_indices
    std::span<const Index> indices; // PyTorch: col_indices
    std::span<const T> data;        // PyTorch: values, [nnz_blocks, R, C]
};

namespace detail {
inline void check_blocks_divide(const char* where, std::size_t rows, std::size_t cols, block_size b) {
    if (b.rows == 0 || b.cols == 0 || rows % b.rows != 0 || cols % b.cols != 0)
        fail<invalid_layout>(where, ": blocksize ", b.rows, " x ", b.cols, " must divide the shape ", rows, " x ", cols,
                             " (SciPy and PyTorch do not pad)");
}
} // namespace detail

/// A lacuna view of SciPy/PyTorch BSR arrays, sharing their memory, after checking every invariant.
/// Throws invalid_layout (naming the array, the position and the rule).
template <class T, std::size_t R = dynamic, std::size_t C = dynamic, layout_index Index>
bsr_view<const T, R, C, Index> bsr_view_of(const scipy_bsr_arrays<T, Index>& a) {
    detail::check_blocks_divide("lacuna::bsr_view_of", a.rows, a.cols, a.blocksize);
    return bsr_view<const T, R, C, Index>(a.rows, a.cols, a.blocksize, a.indptr, a.indices, a.data);
}

/// The SciPy/PyTorch arrays of a lacuna BSR matrix, sharing its memory. Throws invalid_layout if
/// the block does not divide the shape (lacuna pads; SciPy and PyTorch cannot).
template <class T, std::size_t R, std::size_t C, layout_index Index>
scipy_bsr_arrays<std::remove_const_t<T>, Index> to_scipy_bsr(const bsr_view<T, R, C, Index>& m) {
    detail::check_blocks_divide("lacuna::to_scipy_bsr", m.rows(), m.cols(), m.block());
    return {m.rows(),
            m.cols(),
            m.block(),
            {m.block_row_ptr(), m.row_blocks() + 1},
            {m.block_col_idx(), m.nnz_blocks()},
            {m.values(), m.nnz()}};
}

} // namespace lacuna
