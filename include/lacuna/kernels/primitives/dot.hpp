// lacuna: dot products of float and bfloat16 vectors, accumulated in float.
#pragma once

#include <cstddef>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"
#include "lacuna/simd/cpu.hpp"

namespace lacuna::kernels {

/// sum_i x[i]·y[i] over n elements; x and y float or bfloat16, products and sums in float with four
/// independent accumulators. The bf16·bf16 form uses vdpbf16ps on CPUs with AVX-512 BF16.
struct dot {
    template <class Arch, class X, class Y>
    float operator()(Arch, const X* x, const Y* y, std::size_t n) const noexcept;
#if XSIMD_WITH_AVX512BW
    float operator()(xsimd::avx512bw, const bfloat16* x, const bfloat16* y, std::size_t n) const noexcept;
#endif
};

template <class Arch, class X, class Y>
float dot::operator()(Arch, const X* x, const Y* y, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    V acc0(0.f), acc1(0.f), acc2(0.f), acc3(0.f);
    std::size_t i = 0;
    for (; i + 4 * w <= n; i += 4 * w) {
        acc0 = simd::fma(simd::load<V>(x + i), simd::load<V>(y + i), acc0);
        acc1 = simd::fma(simd::load<V>(x + i + w), simd::load<V>(y + i + w), acc1);
        acc2 = simd::fma(simd::load<V>(x + i + 2 * w), simd::load<V>(y + i + 2 * w), acc2);
        acc3 = simd::fma(simd::load<V>(x + i + 3 * w), simd::load<V>(y + i + 3 * w), acc3);
    }
    for (; i + w <= n; i += w) acc0 = simd::fma(simd::load<V>(x + i), simd::load<V>(y + i), acc0);
    float sum = simd::reduce_add((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) sum += float(x[i]) * float(y[i]);
    return sum;
}

#if XSIMD_WITH_AVX512BW
namespace detail {
// dot of bfloat16 rows by vdpbf16ps (see LACUNA_TARGET_AVX512BF16): the sum over the leading
// multiple of 32 elements.
LACUNA_TARGET_AVX512BF16 inline float
dot_bf16_dpbf16(const bfloat16* x, const bfloat16* y, std::size_t n) noexcept {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    auto lx = [x](std::size_t i) { return (__m512bh)_mm512_loadu_si512(x + i); };
    auto ly = [y](std::size_t i) { return (__m512bh)_mm512_loadu_si512(y + i); };
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_dpbf16_ps(acc0, lx(i), ly(i));
        acc1 = _mm512_dpbf16_ps(acc1, lx(i + 32), ly(i + 32));
    }
    if (i + 32 <= n) acc0 = _mm512_dpbf16_ps(acc0, lx(i), ly(i));
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
} // namespace detail

inline float dot::operator()(xsimd::avx512bw a, const bfloat16* x, const bfloat16* y, std::size_t n) const noexcept {
    if (!cpu().avx512_bf16) return operator()<xsimd::avx512bw, bfloat16, bfloat16>(a, x, y, n);
    std::size_t head = n / 32 * 32;
    return detail::dot_bf16_dpbf16(x, y, head) +
           operator()<xsimd::avx512bw, bfloat16, bfloat16>(a, x + head, y + head, n - head);
}
#endif

} // namespace lacuna::kernels
