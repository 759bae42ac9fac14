// lacuna: the reference for sparse × dense products, for every layout. Plain loops over the stored
// elements (so that, as in the kernels, an element that is not stored contributes nothing, even
// against inf or NaN in B), double accumulation.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
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

/// C = α·X·A + β·C for X dense (t × m) and any layout A (m × k); β = 0 does not read C.
template <class Layout>
void spmm(matrix_view<const float> x, const Layout& a, matrix_view<float> c, float alpha, float beta) {
    std::vector<double> row(a.cols());
    for (std::size_t t = 0; t < x.rows(); ++t) {
        std::fill(row.begin(), row.end(), 0.0);
        for (std::size_t i = 0; i < a.rows(); ++i)
            a.for_each_in_row(i, [&](std::size_t j, const auto& v) { row[j] += double(x(t, i)) * double(float(v)); });
        for (std::size_t j = 0; j < a.cols(); ++j)
            c(t, j) = float(double(alpha) * row[j] + (beta == 0.f ? 0.0 : double(beta) * double(c(t, j))));
    }
}

/// Y = act(X·Wᵀ + bias) for X dense (T × in) and any layout W (out × in); act is "none", "relu",
/// "gelu" (exact, with erf) or "silu", in double.
template <class Layout>
void linear(matrix_view<const float> x, const Layout& w, matrix_view<float> y, std::span<const float> bias,
            const char* act) {
    const std::string_view a(act);
    for (std::size_t o = 0; o < w.rows(); ++o)
        for (std::size_t t = 0; t < x.rows(); ++t) {
            double s = bias.empty() ? 0.0 : double(bias[o]);
            w.for_each_in_row(o, [&](std::size_t i, const auto& v) { s += double(float(v)) * double(x(t, i)); });
            if (a == "relu") s = s < 0 ? 0 : s;
            else if (a == "gelu") s = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
            else if (a == "silu") s = s / (1 + std::exp(-s));
            y(t, o) = float(s);
        }
}

/// scale · dot(A[i, :], B[j, :]) in double for every position (i, j) the mask stores inside the
/// matrix, in for_each_in_row order (row by row, columns ascending).
template <class Mask>
std::vector<float> sddmm(matrix_view<const float> a, matrix_view<const float> b, const Mask& mask, float scale) {
    std::vector<float> out;
    for (std::size_t i = 0; i < mask.rows(); ++i)
        mask.for_each_in_row(i, [&](std::size_t j, const auto&) {
            double s = 0;
            for (std::size_t x = 0; x < a.cols(); ++x) s += double(a(i, x)) * double(b(j, x));
            out.push_back(float(double(scale) * s));
        });
    return out;
}

} // namespace lacuna::ref
