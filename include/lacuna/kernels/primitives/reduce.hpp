// lacuna: sum and maximum of a float vector, and the column sums of a block of rows.
#pragma once

#include <cstddef>
#include <limits>

#include "lacuna/simd/bf16.hpp"
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

/// y[c] += sum over r < rows of x[r·ld + c], for c < n: the column sums of a row-major block of
/// float or bfloat16 rows, in float, each column summed in row order (so bit-identical on every
/// arch). Columns a few registers at a time held across all the rows: one pass over the rows, where
/// y += row per row pays a call and a store of y for each of them.
struct add_rows {
    template <class Arch, class T>
    void operator()(Arch, const T* x, std::size_t ld, std::size_t rows, float* y, std::size_t n) const noexcept;
};

template <class Arch, class T>
void add_rows::operator()(Arch, const T* x, std::size_t ld, std::size_t rows, float* y, std::size_t n) const noexcept {
    if (rows == 0) return; // x may be null, and no row moves y
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t c = 0;
    for (; c + 4 * w <= n; c += 4 * w) {
        V s0 = simd::load<V>(y + c), s1 = simd::load<V>(y + c + w), s2 = simd::load<V>(y + c + 2 * w),
          s3 = simd::load<V>(y + c + 3 * w);
        for (const T* row = x + c; row != x + c + rows * ld; row += ld) {
            s0 += simd::load<V>(row);
            s1 += simd::load<V>(row + w);
            s2 += simd::load<V>(row + 2 * w);
            s3 += simd::load<V>(row + 3 * w);
        }
        simd::store(y + c, s0);
        simd::store(y + c + w, s1);
        simd::store(y + c + 2 * w, s2);
        simd::store(y + c + 3 * w, s3);
    }
    for (; c + w <= n; c += w) {
        V s = simd::load<V>(y + c);
        for (std::size_t r = 0; r < rows; ++r) s += simd::load<V>(x + r * ld + c);
        simd::store(y + c, s);
    }
    for (; c < n; ++c) {
        float s = y[c];
        for (std::size_t r = 0; r < rows; ++r) s += simd::load<float>(x + r * ld + c);
        y[c] = s;
    }
}

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
