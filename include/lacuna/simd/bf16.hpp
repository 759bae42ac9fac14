// lacuna: bfloat16 to and from float registers.
//
// Widening is exact: the 16 bits go to the top of a float. Narrowing rounds to nearest even exactly as
// bfloat16::round_from_float does, so a vector conversion and a scalar one give the same bits. x86
// archs use their own widen/narrow instructions; other archs go through xsimd's converting loads.
#pragma once

#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/simd/compat.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::simd {

/// width<V> bfloat16 values at p, widened to a float register.
template <class V>
    requires std::is_same_v<lane<V>, float>
LACUNA_ALWAYS_INLINE V load(const bfloat16* p) noexcept {
    if constexpr (is_lane<V>) {
        return float(*p);
    } else {
        using Arch = typename V::arch_type;
        const auto* q = reinterpret_cast<const std::uint16_t*>(p);
#if XSIMD_WITH_AVX512BW
        if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
            // The all-ones maskz forms avoid GCC 12's false -Wmaybe-uninitialized in the unmasked ones.
            __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
            return V(_mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, w, 16)));
        } else
#endif
#if XSIMD_WITH_AVX2
        if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
            return V(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        } else
#endif
#if XSIMD_WITH_SSE4_2
        if constexpr (std::is_base_of_v<xsimd::sse4_2, Arch>) {
            __m128i w = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
            return V(_mm_castsi128_ps(_mm_slli_epi32(w, 16)));
        } else
#endif
        {
            using U = xsimd::batch<std::uint32_t, Arch>;
            return bit_cast<float>(U::load_unaligned(q) << 16);
        }
    }
}

/// load() of bfloat16, whose widening already leaves the values in a register (see compat.hpp).
template <class V>
    requires std::is_same_v<lane<V>, float>
LACUNA_ALWAYS_INLINE V load_to_register(const bfloat16* p) noexcept {
    return load<V>(p);
}

/// Rounds the float lanes of v to bfloat16 (nearest even, NaN kept) and stores width<V> of them at p.
template <class V>
    requires std::is_same_v<lane<V>, float>
LACUNA_ALWAYS_INLINE void store(bfloat16* p, const V& v) noexcept {
    if constexpr (is_lane<V>) {
        *p = bfloat16(v);
    } else {
        using Arch = typename V::arch_type;
        using U = xsimd::batch<std::uint32_t, Arch>;
        const U u = bit_cast<std::uint32_t>(v);
        const U rounded = (u + U(0x7fffu) + ((u >> 16) & U(1u))) >> 16;
        const U quiet_nan = (u >> 16) | U(0x40u);
        const U r = xsimd::select((u & U(0x7fffffffu)) > U(0x7f800000u), quiet_nan, rounded);
        auto* q = reinterpret_cast<std::uint16_t*>(p);
#if XSIMD_WITH_AVX512BW
        if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm512_maskz_cvtepi32_epi16(0xffff, r));
        } else
#endif
#if XSIMD_WITH_AVX2
        if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
            __m256i w = r;
            __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(q), packed);
        } else
#endif
#if XSIMD_WITH_SSE4_2
        if constexpr (std::is_base_of_v<xsimd::sse4_2, Arch>) {
            _mm_storel_epi64(reinterpret_cast<__m128i*>(q), _mm_packus_epi32(r, r));
        } else
#endif
        {
            alignas(64) std::uint32_t lanes[U::size];
            r.store_aligned(lanes);
            for (std::size_t i = 0; i < U::size; ++i) q[i] = static_cast<std::uint16_t>(lanes[i]);
        }
    }
}

} // namespace lacuna::simd
