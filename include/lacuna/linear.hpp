// lacuna: the linear layer Y = act(X·Wᵀ + bias), the call an inference engine makes for every
// pruned layer (and, with dense weights, for the layers it left dense).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/kernels/primitives/activation.hpp"
#include "lacuna/kernels/primitives/transpose.hpp"
#include "lacuna/simd/dispatch.hpp"
#include "lacuna/spmm.hpp"

namespace lacuna {

/// The optional parts of a linear layer: a bias (empty, or one per output) and an activation.
struct linear_options {
    std::span<const float> bias = {};
    activation act = activation::none;
};

namespace detail {

// dst[j · ld_dst + i] = src[i · ld_src + j] for i < rows, j < cols.
inline void transpose(const float* src, std::size_t ld_src, std::size_t rows, std::size_t cols, float* dst,
                      std::size_t ld_dst) noexcept {
    run<&kernel_table::transpose_f32>(src, ld_src, rows, cols, dst, ld_dst);
}
} // namespace detail

/// Y = act(X·Wᵀ + bias): X dense row-major float (T tokens × in), W (out × in) sparse in any layout
/// and value type spmm takes, or dense (a row-major float or bfloat16 view), Y dense row-major float
/// (T × out), bias of length out or empty. The bias and activation are applied by the thread that
/// computed each part of Y, while it is in cache. Few tokens (sparse W: T <= 4, one SpMV each; dense
/// W: T <= 8, W streamed once for all) need no extra memory. More tokens run as one SpMM over Xᵀ
/// (dense W: its last T % 16 tokens as dot products with their rows of X); allocates about
/// (in + out)·T floats (Xᵀ, and the out × T product before it is turned into Y). O(stored · T) work.
/// Deterministic for any thread count.
/// Throws shape_error if the shapes do not fit, aliasing_error if Y overlaps X, W's values or the bias.
template <weight_operand Weights>
void linear(matrix_view<const float> x, const Weights& w, matrix_view<float> y, linear_options opts = {}) {
    const char* where = "lacuna::linear";
    const std::size_t tokens = x.rows(), in = x.cols(), out = w.rows();
    if (w.cols() != in)
        detail::fail<shape_error>(where, ": X is ", tokens, " x ", in, " and W is ", out, " x ", w.cols(),
                                  "; the columns of X and W (the input features) must match");
    if (y.rows() != tokens || y.cols() != out)
        detail::fail<shape_error>(where, ": Y is ", y.rows(), " x ", y.cols(), ", expected ", tokens, " x ", out,
                                  " (rows of X x rows of W)");
    if (!opts.bias.empty()) detail::check_size(where, "bias", opts.bias.size(), out, "the rows of W");
    detail::check_disjoint(where, "Y", y, "X", x);
    detail::check_disjoint_memory(where, "Y", y.data(), detail::span_bytes(y), "the values of W", detail::values_of(w),
                                  detail::value_bytes(w));
    detail::check_disjoint_memory(where, "Y", y.data(), detail::span_bytes(y), "the bias", opts.bias.data(),
                                  opts.bias.size_bytes());
    if (y.empty()) return;
    const float* bias = opts.bias.empty() ? nullptr : opts.bias.data();
    const auto epilogue = [&](float* row, std::size_t o0, std::size_t o1) {
        if (bias || opts.act != activation::none)
            detail::run<&detail::kernel_table::bias_activation_f32>(opts.act, bias ? bias + o0 : nullptr, row + o0, o1 - o0);
    };
    if (tokens <= detail::max_product_rows<Weights>) {
        detail::run_product_rows(w, x.data(), x.stride(), tokens, y.data(), y.stride(),
                                 [&](std::size_t t0, std::size_t t1, std::size_t o0, std::size_t o1) {
                                     for (std::size_t t = t0; t < t1; ++t) epilogue(y.data() + t * y.stride(), o0, o1);
                                 });
        return;
    }
    const std::size_t ld = detail::transposed_stride(tokens);
    aligned_buffer<float> xt(in * ld, aligned_buffer<float>::uninitialized);
    aligned_buffer<float> z(out * tokens, aligned_buffer<float>::uninitialized);
    detail::transpose(x.data(), x.stride(), tokens, in, xt.data(), ld);
    const kernels::dense_operands product{xt.data(), ld, z.data(), tokens, tokens, 1.f, 0.f};
    const auto after = [&](std::size_t o0, std::size_t o1) {
        detail::transpose(z.data() + o0 * tokens, tokens, o1 - o0, tokens, y.data() + o0, y.stride());
        for (std::size_t t = 0; t < tokens; ++t) epilogue(y.data() + t * y.stride(), o0, o1);
    };
    if constexpr (dense_operand<Weights>) detail::run_product(w, product, after, detail::ragged_columns(x.data(), x.stride(), tokens));
    else detail::run_product(w, product, after);
}

} // namespace lacuna
