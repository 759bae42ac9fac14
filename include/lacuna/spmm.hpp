// lacuna: sparse × dense products, the public entry points: check the operands once, split the rows
// over threads by their nonzero count, run the active arch's kernel on each part.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/spmm/bitmap.hpp"
#include "lacuna/kernels/spmm/bsr.hpp"
#include "lacuna/kernels/spmm/csr.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna {

/// Scalars of C = α·op + β·C. With β = 0, C is only written (whatever it held, NaN included, is gone).
struct product_options {
    float alpha = 1.f;
    float beta = 0.f;
};

namespace detail {

/// Row boundaries of `parts` parts with about equal work, work counted as stored elements plus one
/// per row (so that empty rows and skewed rows both balance); start(i) is the count stored before
/// row i (a CSR row pointer). parts + 1 boundaries, first 0, last rows.
template <class Start> std::vector<std::size_t> balanced_row_parts(std::size_t rows, std::size_t parts, Start&& start) {
    std::vector<std::size_t> bounds(parts + 1, rows);
    bounds[0] = 0;
    const double total = double(start(rows)) + double(rows);
    std::size_t i = 0;
    for (std::size_t p = 1; p < parts; ++p) {
        const double target = total * double(p) / double(parts);
        while (i < rows && double(start(i)) + double(i) < target) ++i;
        bounds[p] = i;
    }
    return bounds;
}

// Calls run_part(begin, end) on balanced parts of the (block) rows, one part per thread.
template <class Start, class RunPart> void run_on_rows(std::size_t rows, Start&& start, RunPart&& run_part) {
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), std::max<std::size_t>(rows, 1));
    const std::vector<std::size_t> bounds = balanced_row_parts(rows, parts, start);
    parallel_for(parts, [&](std::size_t p) { run_part(bounds[p], bounds[p + 1]); });
}

// The table slot of a BSR product, or nullptr for a combination the table does not hold.
template <std::size_t R, std::size_t C, class Index> constexpr auto bsr_slot() {
    if constexpr (!std::is_same_v<Index, std::int32_t> || R != C) return nullptr;
    else if constexpr (R == 4) return &kernel_table::spmm_bsr_4x4;
    else if constexpr (R == 8) return &kernel_table::spmm_bsr_8x8;
    else if constexpr (R == 16) return &kernel_table::spmm_bsr_16x16;
    else if constexpr (R == 32) return &kernel_table::spmm_bsr_32x32;
    else if constexpr (R == dynamic) return &kernel_table::spmm_bsr_dynamic;
    else return nullptr;
}

inline kernels::dense_operands dense_side(matrix_view<const float> b, matrix_view<float> c, const product_options& o) {
    return {b.data(), b.stride(), c.data(), c.stride(), c.cols(), o.alpha, o.beta};
}
inline kernels::dense_operands dense_side(std::span<const float> x, std::span<float> y, const product_options& o) {
    return {x.data(), 0, y.data(), 1, 1, o.alpha, o.beta};
}

// Checks C = op(A)·B for an m × k A; throws shape_error or aliasing_error.
inline void check_product(const char* where, std::size_t m, std::size_t k, matrix_view<const float> b, matrix_view<float> c,
                          const float* a_values, std::size_t a_count) {
    if (b.rows() != k)
        fail<shape_error>(where, ": B has ", b.rows(), " rows, expected ", k, " (the columns of A, ", m, " x ", k, ")");
    if (c.rows() != m || c.cols() != b.cols())
        fail<shape_error>(where, ": C is ", c.rows(), " x ", c.cols(), ", expected ", m, " x ", b.cols(),
                          " (rows of A x columns of B)");
    const std::size_t c_bytes = c.empty() ? 0 : ((c.rows() - 1) * c.stride() + c.cols()) * sizeof(float);
    const std::size_t b_bytes = b.empty() ? 0 : ((b.rows() - 1) * b.stride() + b.cols()) * sizeof(float);
    check_no_partial_overlap(where, "C", c.data(), c_bytes, "B", b.data(), b_bytes);
    if (c_bytes && b_bytes && c.data() == b.data())
        fail<aliasing_error>(where, ": C and B are the same memory; the product cannot be computed in place");
    check_no_partial_overlap(where, "C", c.data(), c_bytes, "the values of A", a_values, a_count * sizeof(float));
}

template <class Index> constexpr auto spmm_slot() {
    if constexpr (sizeof(Index) == 4) return &kernel_table::spmm_csr_i32;
    else return &kernel_table::spmm_csr_i64;
}
template <class Index> constexpr auto spmv_slot() {
    if constexpr (sizeof(Index) == 4) return &kernel_table::spmv_csr_i32;
    else return &kernel_table::spmv_csr_i64;
}

} // namespace detail

/// C = α·A·B + β·C for a CSR matrix A (m × k, float), B dense row-major (k × n), C dense row-major
/// (m × n). O(nnz · n) work; rows are split over num_threads() threads by nonzero count, and every
/// row is computed by one thread in one order, so the result does not depend on the thread count.
/// Throws shape_error if the shapes do not fit, aliasing_error if C overlaps B or A's values.
template <compressed_rows Sparse>
    requires std::same_as<typename Sparse::value_type, float>
void spmm(const Sparse& a, matrix_view<const float> b, matrix_view<float> c, product_options opts = {}) {
    using Index = typename Sparse::index_type;
    detail::check_product("lacuna::spmm", a.rows(), a.cols(), b, c, a.values(), a.nnz());
    if (c.empty()) return;
    const kernels::csr_product_args<Index> args{detail::dense_side(b, c, opts), a.row_ptr(), a.col_idx(), a.values()};
    detail::run_on_rows(a.rows(), [&](std::size_t i) { return a.row_ptr()[i]; },
                        [&](std::size_t r0, std::size_t r1) { detail::run<detail::spmm_slot<Index>()>(&args, r0, r1); });
}

/// C = α·A·B + β·C for a BSR matrix A (m × k, float, any block shape; padding never read into C),
/// B and C dense row-major. O(nnz_blocks · R · C · n) work; block rows are split over threads by
/// their block count; the result does not depend on the thread count. The 4×4, 8×8, 16×16, 32×32
/// and run-time shapes with int32_t indices use the dispatched kernels; other combinations the
/// arch this translation unit is compiled for. Throws shape_error or aliasing_error as spmm for CSR.
template <block_sparse Sparse>
    requires std::same_as<typename Sparse::value_type, float>
void spmm(const Sparse& a, matrix_view<const float> b, matrix_view<float> c, product_options opts = {}) {
    using Index = typename Sparse::index_type;
    constexpr std::size_t R = Sparse::static_block_rows, C = Sparse::static_block_cols;
    detail::check_product("lacuna::spmm", a.rows(), a.cols(), b, c, a.values(), a.nnz());
    if (c.empty()) return;
    const kernels::bsr_product_args<R, C, Index> args{detail::dense_side(b, c, opts), a.block_row_ptr(),
                                                      a.block_col_idx(), a.values(), a.rows(), a.cols(),
                                                      a.block_rows(),    a.block_cols()};
    constexpr auto slot = detail::bsr_slot<R, C, Index>();
    if constexpr (std::is_same_v<decltype(slot), const std::nullptr_t>)
        detail::run_on_rows(a.row_blocks(), [&](std::size_t i) { return a.block_row_ptr()[i]; }, [&](std::size_t b0, std::size_t b1) {
            detail::run_compiled_in(kernels::spmm_bsr{}, &args, b0, b1);
        });
    else
        detail::run_on_rows(a.row_blocks(), [&](std::size_t i) { return a.block_row_ptr()[i]; },
                            [&](std::size_t b0, std::size_t b1) { detail::run<slot>(&args, b0, b1); });
}

namespace detail {
inline void check_spmv(const char* where, std::size_t m, std::size_t k, std::span<const float> x, std::span<float> y,
                       const float* a_values, std::size_t a_count) {
    check_size(where, "x", x.size(), k, "the columns of A");
    check_size(where, "y", y.size(), m, "the rows of A");
    check_no_partial_overlap(where, "y", y.data(), y.size_bytes(), "x", x.data(), x.size_bytes());
    if (!y.empty() && !x.empty() && y.data() == x.data())
        fail<aliasing_error>(where, ": y and x are the same memory; the product cannot be computed in place");
    check_no_partial_overlap(where, "y", y.data(), y.size_bytes(), "the values of A", a_values, a_count * sizeof(float));
}
} // namespace detail

/// y = α·A·x + β·y for a bitmap matrix A (m × k, float): the bits say which x each packed value
/// meets, so no index is read (AVX-512 expands the packed values into registers). Rows are split
/// over threads by their kept count; deterministic. Throws shape_error or aliasing_error as for CSR.
template <bitmap_sparse Sparse>
    requires std::same_as<typename Sparse::value_type, float>
void spmv(const Sparse& a, std::span<const float> x, std::span<float> y, product_options opts = {}) {
    using Index = typename Sparse::index_type;
    detail::check_spmv("lacuna::spmv", a.rows(), a.cols(), x, y, a.values(), a.nnz());
    if (y.empty()) return;
    const kernels::bitmap_spmv_args<Index> args{detail::dense_side(x, y, opts), a.bits(), a.offsets(), a.values(),
                                                a.words_per_row()};
    const auto start = [&](std::size_t i) { return a.offsets()[i * a.words_per_row()]; };
    detail::run_on_rows(a.rows(), start, [&](std::size_t r0, std::size_t r1) {
        if constexpr (sizeof(Index) == 4) detail::run<&detail::kernel_table::spmv_bitmap_i32>(&args, r0, r1);
        else detail::run<&detail::kernel_table::spmv_bitmap_i64>(&args, r0, r1);
    });
}

/// y = α·A·x + β·y for a CSR matrix A (m × k, float): SpMV, with x of length k and y of length m.
/// Same threading and determinism as spmm. Throws shape_error for wrong lengths, aliasing_error if y
/// overlaps x or A's values.
template <compressed_rows Sparse>
    requires std::same_as<typename Sparse::value_type, float>
void spmv(const Sparse& a, std::span<const float> x, std::span<float> y, product_options opts = {}) {
    using Index = typename Sparse::index_type;
    detail::check_spmv("lacuna::spmv", a.rows(), a.cols(), x, y, a.values(), a.nnz());
    if (y.empty()) return;
    const kernels::csr_product_args<Index> args{detail::dense_side(x, y, opts), a.row_ptr(), a.col_idx(), a.values()};
    detail::run_on_rows(a.rows(), [&](std::size_t i) { return a.row_ptr()[i]; },
                        [&](std::size_t r0, std::size_t r1) { detail::run<detail::spmv_slot<Index>()>(&args, r0, r1); });
}

} // namespace lacuna
