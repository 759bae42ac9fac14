// lacuna: dense × sparse: C = α·X·A + β·C, the product a sparse layer's backward pass needs.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/kernels/spmm/common.hpp"

namespace lacuna::kernels {

/// Rows [row_begin, row_end) of C = α·X·A + β·C, X row-major (t × m, row stride ldx), A any layout
/// with for_each_in_row (m × k), C row-major (t × k). Each stored a(i, j) meets four rows of X at a
/// time and scatters into the same four rows of C, which stay in cache: A is read once per four
/// rows of X, in the order it is stored, whatever its layout. Plain code: the scatter by column
/// index defeats vectors, and this product is not on an inference path.
template <class Sparse>
void dense_sparse_rows(const Sparse& a, const float* x, std::size_t ldx, const dense_operands& d, std::size_t row_begin,
                       std::size_t row_end) noexcept {
    constexpr std::size_t rows_at_once = 4;
    for (std::size_t t0 = row_begin; t0 < row_end; t0 += rows_at_once) {
        const std::size_t rows = std::min(rows_at_once, row_end - t0);
        float* c[rows_at_once];
        for (std::size_t r = 0; r < rows; ++r) {
            c[r] = d.c + (t0 + r) * d.ldc;
            for (std::size_t j = 0; j < d.n; ++j) c[r][j] = d.beta == 0.f ? 0.f : d.beta * c[r][j];
        }
        for (std::size_t i = 0; i < a.rows(); ++i) {
            float xs[rows_at_once];
            for (std::size_t r = 0; r < rows; ++r) xs[r] = d.alpha * x[(t0 + r) * ldx + i];
            a.for_each_in_row(i, [&](std::size_t j, const auto& v) {
                const float value = float(v);
                for (std::size_t r = 0; r < rows; ++r) c[r][j] += xs[r] * value;
            });
        }
    }
}

} // namespace lacuna::kernels
