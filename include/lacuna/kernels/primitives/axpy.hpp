// lacuna: y += a·x and x *= a over float vectors.
#pragma once

#include <cstddef>

#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// y[i] += a·x[i] for i < n (one fused multiply-add per element on FMA archs).
struct axpy {
    template <class Arch>
    void operator()(Arch, float a, const float* x, float* y, std::size_t n) const noexcept;
};

/// x[i] *= a for i < n.
struct scale {
    template <class Arch>
    void operator()(Arch, float a, float* x, std::size_t n) const noexcept;
};

template <class Arch>
void axpy::operator()(Arch, float a, const float* x, float* y, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const V va(a);
    std::size_t i = 0;
    for (; i + w <= n; i += w) simd::store(y + i, simd::fma(va, simd::load<V>(x + i), simd::load<V>(y + i)));
    for (; i < n; ++i) y[i] = simd::fma(a, x[i], y[i]);
}

template <class Arch>
void scale::operator()(Arch, float a, float* x, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const V va(a);
    std::size_t i = 0;
    for (; i + w <= n; i += w) simd::store(x + i, va * simd::load<V>(x + i));
    for (; i < n; ++i) x[i] *= a;
}

} // namespace lacuna::kernels
