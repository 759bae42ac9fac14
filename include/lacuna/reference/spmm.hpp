// lacuna: the reference for sparse × dense products, for every layout. Plain loops over the stored
// elements (so that, as in the kernels, an element that is not stored contributes nothing, even
// against inf or NaN in B), double accumulation.
#pragma once

#include <cstddef>
#include <vector>

#include "lacuna/core/dense.hpp"

namespace lacuna::ref {

/// C = α·A·B + β·C for any layout A (anything with rows() and for_each_in_row); β = 0 does not
/// read C.
template <class Layout>
void spmm(const Layout& a, matrix_view<const float> b, matrix_view<float> c, float alpha, float beta) {
    std::vector<double> row(b.cols());
    for (std::size_t i = 0; i < a.rows(); ++i) {
        std::fill(row.begin(), row.end(), 0.0);
        a.for_each_in_row(i, [&](std::size_t k, const auto& v) {
            for (std::size_t j = 0; j < b.cols(); ++j) row[j] += double(float(v)) * double(b(k, j));
        });
        for (std::size_t j = 0; j < b.cols(); ++j)
            c(i, j) = float(double(alpha) * row[j] + (beta == 0.f ? 0.0 : double(beta) * double(c(i, j))));
    }
}

} // namespace lacuna::ref
