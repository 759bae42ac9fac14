// lacuna: the epilogue of a linear layer: y = act(y + bias), in place.
#pragma once

#include <cmath>
#include <cstddef>

#include "lacuna/simd/compat.hpp"

namespace lacuna {

/// The activation a linear layer applies after its bias.
enum class activation {
    none,
    relu, ///< max(x, 0); NaN stays NaN
    gelu, ///< x·Φ(x) = x·(1 + erf(x/√2))/2, the exact form (PyTorch's default)
    silu, ///< x·sigmoid(x) = x/(1 + e^−x)
};

namespace kernels {

/// y[i] = act(y[i] + bias[i]) for i < n; bias may be null (no bias).
struct bias_activation {
    template <class Arch>
    void operator()(Arch, activation act, const float* bias, float* y, std::size_t n) const noexcept;
};

namespace detail {

template <activation Act, class V> LACUNA_ALWAYS_INLINE V activate(const V& x) noexcept {
    if constexpr (Act == activation::relu) {
        return simd::select<V>(x < V(0.f), V(0.f), x); // x < 0 is false for NaN, which passes through
    } else if constexpr (Act == activation::gelu) {
        if constexpr (simd::is_lane<V>) return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
        else return V(0.5f) * x * (V(1.f) + xsimd::erf(x * V(0.70710678118654752f)));
    } else if constexpr (Act == activation::silu) {
        return x / (V(1.f) + simd::exp(-x));
    } else {
        return x;
    }
}

template <activation Act, class Arch> void bias_activation_loop(const float* bias, float* y, std::size_t n) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    auto one = [](const float* b, float* at) {
        V x = simd::load<V>(at);
        if (b) x = x + simd::load<V>(b);
        simd::store(at, activate<Act>(x));
    };
    std::size_t i = 0;
    for (; i < n - n % w; i += w) one(bias ? bias + i : nullptr, y + i);
    if (i == n) return;
    // The tail through the same vector code, from a padded copy: an element's result must not depend
    // on where a thread's part of the row ends.
    float tail_y[w] = {}, tail_bias[w] = {};
    for (std::size_t t = 0; t < n - i; ++t) tail_y[t] = y[i + t], tail_bias[t] = bias ? bias[i + t] : 0.f;
    one(tail_bias, tail_y);
    for (std::size_t t = 0; t < n - i; ++t) y[i + t] = tail_y[t];
}

} // namespace detail

template <class Arch>
void bias_activation::operator()(Arch, activation act, const float* bias, float* y, std::size_t n) const noexcept {
    switch (act) {
    case activation::none: return detail::bias_activation_loop<activation::none, Arch>(bias, y, n);
    case activation::relu: return detail::bias_activation_loop<activation::relu, Arch>(bias, y, n);
    case activation::gelu: return detail::bias_activation_loop<activation::gelu, Arch>(bias, y, n);
    case activation::silu: return detail::bias_activation_loop<activation::silu, Arch>(bias, y, n);
    }
}

} // namespace kernels
} // namespace lacuna
