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

/// up[i] = silu(gate[i]) · up[i] for i < n: the gated activation of a SwiGLU feed-forward layer.
struct swiglu {
    template <class Arch> void operator()(Arch, const float* gate, float* up, std::size_t n) const noexcept;
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

// f(register of x, register of y) over n elements in registers, the tail from padded copies so that
// an element's result does not depend on where a thread's part of the row ends.
template <class Arch, class F> LACUNA_ALWAYS_INLINE void padded_map(const float* x, float* y, std::size_t n, F&& f) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t i = 0;
    for (; i < n - n % w; i += w) simd::store(y + i, f(x ? simd::load<V>(x + i) : V(0.f), simd::load<V>(y + i)));
    if (i == n) return;
    float tail_x[w] = {}, tail_y[w] = {};
    for (std::size_t t = 0; t < n - i; ++t) tail_y[t] = y[i + t], tail_x[t] = x ? x[i + t] : 0.f;
    simd::store(tail_y, f(simd::load<V>(tail_x), simd::load<V>(tail_y)));
    for (std::size_t t = 0; t < n - i; ++t) y[i + t] = tail_y[t];
}

template <activation Act, class Arch> void bias_activation_loop(const float* bias, float* y, std::size_t n) noexcept {
    using V = simd::vec<float, Arch>;
    padded_map<Arch>(bias, y, n, [](const V& b, const V& x) { return activate<Act>(x + b); });
}

} // namespace detail

template <class Arch> void swiglu::operator()(Arch, const float* gate, float* up, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    detail::padded_map<Arch>(gate, up, n, [](const V& g, const V& u) { return detail::activate<activation::silu>(g) * u; });
}

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
