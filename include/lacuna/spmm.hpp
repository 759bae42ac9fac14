// lacuna: sparse × dense products, the public entry points: check the operands once, split the rows
// over threads by their nonzero count, run the active arch's kernel on each part.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/spmm/csr.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna {

/// Scalars of C = α·op + β·C. With β = 0, C is only written (whatever it held, NaN included, is gone).
struct product_options {
    float alpha = 1.f;
    float beta = 0.f;
};

namespace detail {

/// Row boundaries of `parts` parts with about equal work, work counted as nonzeros plus one per row
/// (so that empty rows and skewed rows both balance). parts + 1 boundaries, first 0, last rows.
template <class Index>
std::vector<std::size_t> balanced_row_parts(const Index* row_ptr, std::size_t rows, std::size_t parts) {
    std::vector<std::size_t> bounds(parts + 1, rows);
    bounds[0] = 0;
    const double total = double(row_ptr[rows]) + double(rows);
    std::size_t i = 0;
    for (std::size_t p = 1; p < parts; ++p) {
        const double target = total * double(p) / double(parts);
        while (i < rows && double(row_ptr[i]) + double(i) < target) ++i;
        bounds[p] = i;
    }
    return bounds;
}

// Runs the kernel of Slot on balanced parts of A's rows, one part per thread.
template <auto Slot, class Index>
void run_on_rows(const kernels::csr_product_args<Index>& args, const Index* row_ptr, std::size_t rows) {
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), std::max<std::size_t>(rows, 1));
    const std::vector<std::size_t> bounds = balanced_row_parts(row_ptr, rows, parts);
    parallel_for(parts, [&](std::size_t p) { run<Slot>(&args, bounds[p], bounds[p + 1]); });
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
    const char* where = "lacuna::spmm";
    if (b.rows() != a.cols())
        detail::fail<shape_error>(where, ": B has ", b.rows(), " rows, expected ", a.cols(), " (the columns of A, ",
                                  a.rows(), " x ", a.cols(), ")");
    if (c.rows() != a.rows() || c.cols() != b.cols())
        detail::fail<shape_error>(where, ": C is ", c.rows(), " x ", c.cols(), ", expected ", a.rows(), " x ", b.cols(),
                                  " (rows of A x columns of B)");
    const std::size_t c_bytes = c.empty() ? 0 : ((c.rows() - 1) * c.stride() + c.cols()) * sizeof(float);
    const std::size_t b_bytes = b.empty() ? 0 : ((b.rows() - 1) * b.stride() + b.cols()) * sizeof(float);
    detail::check_no_partial_overlap(where, "C", c.data(), c_bytes, "B", b.data(), b_bytes);
    if (c_bytes && b_bytes && c.data() == b.data())
        detail::fail<aliasing_error>(where, ": C and B are the same memory; the product cannot be computed in place");
    detail::check_no_partial_overlap(where, "C", c.data(), c_bytes, "the values of A", a.values(), a.nnz() * sizeof(float));
    if (c.empty()) return;
    const kernels::csr_product_args<Index> args{a.row_ptr(), a.col_idx(), a.values(), b.data(), b.stride(),
                                                c.data(),    c.stride(),  c.cols(),   opts.alpha, opts.beta};
    detail::run_on_rows<detail::spmm_slot<Index>()>(args, a.row_ptr(), a.rows());
}

/// y = α·A·x + β·y for a CSR matrix A (m × k, float): SpMV, with x of length k and y of length m.
/// Same threading and determinism as spmm. Throws shape_error for wrong lengths, aliasing_error if y
/// overlaps x or A's values.
template <compressed_rows Sparse>
    requires std::same_as<typename Sparse::value_type, float>
void spmv(const Sparse& a, std::span<const float> x, std::span<float> y, product_options opts = {}) {
    using Index = typename Sparse::index_type;
    const char* where = "lacuna::spmv";
    detail::check_size(where, "x", x.size(), a.cols(), "the columns of A");
    detail::check_size(where, "y", y.size(), a.rows(), "the rows of A");
    detail::check_no_partial_overlap(where, "y", y.data(), y.size_bytes(), "x", x.data(), x.size_bytes());
    if (!y.empty() && !x.empty() && y.data() == x.data())
        detail::fail<aliasing_error>(where, ": y and x are the same memory; the product cannot be computed in place");
    detail::check_no_partial_overlap(where, "y", y.data(), y.size_bytes(), "the values of A", a.values(),
                                     a.nnz() * sizeof(float));
    if (y.empty()) return;
    const kernels::csr_product_args<Index> args{a.row_ptr(), a.col_idx(), a.values(), x.data(), 0,
                                                y.data(),    1,           1,          opts.alpha, opts.beta};
    detail::run_on_rows<detail::spmv_slot<Index>()>(args, a.row_ptr(), a.rows());
}

} // namespace lacuna
