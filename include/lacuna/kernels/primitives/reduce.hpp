// lacuna: sum and maximum of a float vector.
#pragma once

#include <cstddef>
#include <limits>

#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// sum_i x[i] in float, with four independent accumulators; 0 for n = 0.
struct reduce_sum {
    template <class Arch>
    float operator()(Arch, const float* x, std::size_t n) const noexcept;
};

/// max_i x[i]; NaN if any x[i] is NaN; -inf for n = 0.
struct reduce_max {
    template <class Arch>
    float operator()(Arch, const float* x, std::size_t n) const noexcept;
};

template <class Arch>
float reduce_sum::operator()(Arch, const float* x, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    V acc0(0.f), acc1(0.f), acc2(0.f), acc3(0.f);
    std::size_t i = 0;
    for (; i + 4 * w <= n; i += 4 * w) {
        acc0 += simd::load<V>(x + i);
        acc1 += simd::load<V>(x + i + w);
        acc2 += simd::load<V>(x + i + 2 * w);
        acc3 += simd::load<V>(x + i + 3 * w);
    }
    for (; i + w <= n; i += w) acc0 += simd::load<V>(x + i);
    float sum = simd::reduce_add((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) sum += x[i];
    return sum;
}

namespace detail {

// x[i], or -inf where a mask is given and mask[i] is false.
template <class V, bool masked>
LACUNA_ALWAYS_INLINE V load_kept(const float* x, const bool* mask, std::size_t i) noexcept {
    V v = simd::load<V>(x + i);
    if constexpr (masked) v = simd::select(simd::load_mask<V>(mask + i), v, V(-std::numeric_limits<float>::infinity()));
    return v;
}

// Largest kept value of x[0, n) (-inf if none) and whether any kept value is NaN, which max() alone
// may drop.
template <class Arch, bool masked>
float max_and_nan(const float* x, const bool* mask, std::size_t n, bool& nan) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    constexpr float lowest = -std::numeric_limits<float>::infinity();
    V m0(lowest), m1(lowest);
    simd::mask<V> seen_nan(false);
    std::size_t i = 0;
    for (; i + 2 * w <= n; i += 2 * w) {
        V a = load_kept<V, masked>(x, mask, i), b = load_kept<V, masked>(x, mask, i + w);
        seen_nan = seen_nan || simd::is_nan(a) || simd::is_nan(b);
        m0 = simd::max(m0, a);
        m1 = simd::max(m1, b);
    }
    for (; i + w <= n; i += w) {
        V a = load_kept<V, masked>(x, mask, i);
        seen_nan = seen_nan || simd::is_nan(a);
        m0 = simd::max(m0, a);
    }
    float m = simd::reduce_max(simd::max(m0, m1));
    nan = simd::any(seen_nan);
    for (; i < n; ++i) {
        float a = load_kept<float, masked>(x, mask, i);
        nan = nan || a != a;
        m = a > m ? a : m;
    }
    return m;
}

} // namespace detail

template <class Arch>
float reduce_max::operator()(Arch, const float* x, std::size_t n) const noexcept {
    bool nan = false;
    float m = detail::max_and_nan<Arch, false>(x, nullptr, n, nan);
    return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}

} // namespace lacuna::kernels
