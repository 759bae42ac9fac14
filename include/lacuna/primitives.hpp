// lacuna: the vector primitives every kernel family builds on, as public, dispatched entry points.
//
// Each function checks its arguments, then runs the kernel of the active arch (see
// simd/dispatch.hpp). All are O(n), allocate nothing, and accumulate in float.
#pragma once

#include <cstddef>
#include <span>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/kernels/primitives/axpy.hpp"
#include "lacuna/kernels/primitives/convert.hpp"
#include "lacuna/kernels/primitives/dot.hpp"
#include "lacuna/kernels/primitives/reduce.hpp"
#include "lacuna/kernels/primitives/softmax.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna {

namespace detail {
template <class X, class Y>
void check_same_size(const char* where, std::span<X> x, std::span<Y> y, const char* y_name = "y") {
    check_size(where, y_name, y.size(), x.size(), "the length of x");
}
template <class X, class Y>
void check_in_place_or_disjoint(const char* where, std::span<X> x, std::span<Y> y) {
    check_no_partial_overlap(where, "x", x.data(), x.size_bytes(), "y", y.data(), y.size_bytes());
}
} // namespace detail

/// sum_i x[i]·y[i], accumulated in float. Throws shape_error if the lengths differ.
inline float dot(std::span<const float> x, std::span<const float> y) {
    detail::check_same_size("lacuna::dot", x, y);
    return detail::run<&detail::kernel_table::dot_f32>(x.data(), y.data(), x.size());
}

/// sum_i x[i]·y[i] of bfloat16 vectors, products and sums in float (vdpbf16ps where the CPU has
/// AVX-512 BF16). Throws shape_error if the lengths differ.
inline float dot(std::span<const bfloat16> x, std::span<const bfloat16> y) {
    detail::check_same_size("lacuna::dot", x, y);
    return detail::run<&detail::kernel_table::dot_bf16>(x.data(), y.data(), x.size());
}

/// sum_i x[i]·y[i] of a bfloat16 and a float vector, in float. Throws shape_error if the lengths differ.
inline float dot(std::span<const bfloat16> x, std::span<const float> y) {
    detail::check_same_size("lacuna::dot", x, y);
    return detail::run<&detail::kernel_table::dot_bf16_f32>(x.data(), y.data(), x.size());
}

/// y += a·x. Throws shape_error if the lengths differ, aliasing_error if x and y partly overlap.
inline void axpy(float a, std::span<const float> x, std::span<float> y) {
    detail::check_same_size("lacuna::axpy", x, y);
    detail::check_in_place_or_disjoint("lacuna::axpy", x, y);
    detail::run<&detail::kernel_table::axpy_f32>(a, x.data(), y.data(), x.size());
}

/// x *= a.
inline void scale(float a, std::span<float> x) {
    detail::run<&detail::kernel_table::scale_f32>(a, x.data(), x.size());
}

/// The sum of x in float; 0 for an empty x.
inline float reduce_sum(std::span<const float> x) {
    return detail::run<&detail::kernel_table::reduce_sum_f32>(x.data(), x.size());
}

/// The largest element of x; NaN if any element is NaN; -inf for an empty x.
inline float reduce_max(std::span<const float> x) {
    return detail::run<&detail::kernel_table::reduce_max_f32>(x.data(), x.size());
}

/// y[i] = exp(x[i]) (xsimd's vector exp, within a few ulp). y may be x itself (in place).
/// Throws shape_error if the lengths differ, aliasing_error if x and y partly overlap.
inline void exp(std::span<const float> x, std::span<float> y) {
    detail::check_same_size("lacuna::exp", x, y);
    detail::check_in_place_or_disjoint("lacuna::exp", x, y);
    detail::run<&detail::kernel_table::exp_f32>(x.data(), y.data(), x.size());
}

/// y = softmax(x) = exp(x - max x) / sum exp(x - max x). An empty x, or one that is all -inf, gives
/// zeros; a NaN or +inf in x makes y all NaN. y may be x itself. Throws shape_error if the lengths
/// differ, aliasing_error if x and y partly overlap.
inline void softmax(std::span<const float> x, std::span<float> y) {
    detail::check_same_size("lacuna::softmax", x, y);
    detail::check_in_place_or_disjoint("lacuna::softmax", x, y);
    detail::run<&detail::kernel_table::softmax_f32>(x.data(), static_cast<const bool*>(nullptr), y.data(),
                                                    x.size());
}

/// Softmax over the positions where mask is true; the others get 0. A row with nothing kept gives
/// zeros, never NaN; NaN in a masked-out position is ignored. Throws shape_error if the lengths
/// differ, aliasing_error if x and y partly overlap.
inline void softmax(std::span<const float> x, std::span<const bool> mask, std::span<float> y) {
    detail::check_same_size("lacuna::softmax", x, y);
    detail::check_same_size("lacuna::softmax", x, mask, "mask");
    detail::check_in_place_or_disjoint("lacuna::softmax", x, y);
    detail::run<&detail::kernel_table::softmax_f32>(x.data(), mask.data(), y.data(), x.size());
}

/// y[i] = x[i] rounded to bfloat16 (nearest even; NaN stays NaN; bit-identical on every arch).
/// Throws shape_error if the lengths differ.
inline void convert(std::span<const float> x, std::span<bfloat16> y) {
    detail::check_same_size("lacuna::convert", x, y);
    detail::check_no_partial_overlap("lacuna::convert", "x", x.data(), x.size_bytes(), "y", y.data(), y.size_bytes());
    detail::run<&detail::kernel_table::convert_f32_bf16>(x.data(), y.data(), x.size());
}

/// y[i] = x[i] widened to float (exact). Throws shape_error if the lengths differ.
inline void convert(std::span<const bfloat16> x, std::span<float> y) {
    detail::check_same_size("lacuna::convert", x, y);
    detail::check_no_partial_overlap("lacuna::convert", "x", x.data(), x.size_bytes(), "y", y.data(), y.size_bytes());
    detail::run<&detail::kernel_table::convert_bf16_f32>(x.data(), y.data(), x.size());
}

} // namespace lacuna
