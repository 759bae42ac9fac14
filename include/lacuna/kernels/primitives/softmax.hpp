// lacuna: elementwise exp and the numerically stable softmax of a row, optionally masked.
#pragma once

#include <cstddef>
#include <limits>

#include "lacuna/kernels/primitives/reduce.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// y[i] = exp(x[i]) for i < n; y may equal x.
struct exp {
    template <class Arch>
    void operator()(Arch, const float* x, float* y, std::size_t n) const noexcept;
};

/// y = softmax(x) over n elements, computed as exp(x - max) / sum with the max subtracted first.
/// With a mask, positions where mask[i] is false take no part and get 0. A row with nothing kept,
/// or whose kept values are all -inf, gives zeros, never NaN; a NaN or +inf among the kept values
/// makes every kept output NaN. `mask` may be null (nothing masked); y may equal x.
struct softmax {
    template <class Arch>
    void operator()(Arch, const float* x, const bool* mask, float* y, std::size_t n) const noexcept;
};

template <class Arch>
void exp::operator()(Arch, const float* x, float* y, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t i = 0;
    for (; i + w <= n; i += w) simd::store(y + i, simd::exp(simd::load<V>(x + i)));
    for (; i < n; ++i) y[i] = simd::exp(x[i]);
}

namespace detail {

// Runs the body on full registers, then on single lanes for the tail.
template <class Arch, class Body>
LACUNA_ALWAYS_INLINE void for_each_register(std::size_t n, Body&& body) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t i = 0;
    for (; i + w <= n; i += w) body(V{}, i);
    for (; i < n; ++i) body(float{}, i);
}

template <class Arch, bool masked>
void softmax_row(const float* x, const bool* mask, float* y, std::size_t n) noexcept {
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    bool nan = false;
    float m = max_and_nan<Arch, masked>(x, mask, n, nan);
    if (nan) {
        m = std::numeric_limits<float>::quiet_NaN();
    } else if (m == neg_inf) { // nothing kept: zeros, not 0/0
        for (std::size_t i = 0; i < n; ++i) y[i] = 0.f;
        return;
    }

    using VA = simd::vec<float, Arch>;
    VA sum_v(0.f);
    float sum_tail = 0.f;
    for_each_register<Arch>(n, [&](auto v, std::size_t i) {
        using V = decltype(v);
        V e = simd::exp(load_kept<V, masked>(x, mask, i) - V(m));
        simd::store(y + i, e);
        if constexpr (std::is_same_v<V, VA>) sum_v += e;
        else sum_tail += e;
    });
    const float inv = 1.f / (simd::reduce_add(sum_v) + sum_tail);
    for_each_register<Arch>(n, [&](auto v, std::size_t i) {
        using V = decltype(v);
        V r = simd::load<V>(y + i) * V(inv);
        // A NaN sum must not reach masked positions, which stay 0.
        if constexpr (masked) r = simd::select(simd::load_mask<V>(mask + i), r, V(0.f));
        simd::store(y + i, r);
    });
}

} // namespace detail

template <class Arch>
void softmax::operator()(Arch, const float* x, const bool* mask, float* y, std::size_t n) const noexcept {
    if (mask) detail::softmax_row<Arch, true>(x, mask, y, n);
    else detail::softmax_row<Arch, false>(x, nullptr, y, n);
}

} // namespace lacuna::kernels
