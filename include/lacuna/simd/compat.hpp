// lacuna: the vector vocabulary kernels are written in, the same from xsimd 8.1 to 14.
//
// Kernels use `vec<T, Arch>`: an xsimd batch for a vector arch, plain `T` for simd::scalar (one lane),
// so one kernel body serves every arch and its own scalar tail. Every xsimd call whose spelling
// changed between versions goes through a function here; kernels call xsimd directly only for API
// that all versions share (DESIGN.md, "xsimd compatibility rules").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "lacuna/simd/arch.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::simd {

template <class T, class Arch> struct vec_of { using type = xsimd::batch<T, Arch>; };
template <class T> struct vec_of<T, scalar> { using type = T; };

/// The register type of T on Arch: an xsimd batch, or T itself on the scalar arch.
template <class T, class Arch> using vec = typename vec_of<T, Arch>::type;

template <class V> inline constexpr bool is_lane = std::is_arithmetic_v<V>;

/// The arch of half the register width (AVX-512 → AVX2 → SSE4.2), scalar below: for what is left at
/// the end of a row when a whole register is too wide. The narrower instructions are part of the
/// wider instruction set, so a kernel compiled for Arch may use them.
template <class Arch> struct half_arch_of { using type = scalar; };
#if XSIMD_WITH_AVX512BW
template <> struct half_arch_of<xsimd::avx512bw> { using type = xsimd::fma3<xsimd::avx2>; };
#endif
#if XSIMD_WITH_FMA3_AVX2
template <> struct half_arch_of<xsimd::fma3<xsimd::avx2>> { using type = xsimd::sse4_2; };
#endif
template <class Arch> using half_arch = typename half_arch_of<Arch>::type;

template <class V> struct width_of { static constexpr std::size_t value = V::size; };
template <class V>
    requires is_lane<V>
struct width_of<V> {
    static constexpr std::size_t value = 1;
};

/// Lanes in a register of type V.
template <class V> inline constexpr std::size_t width = width_of<V>::value;

/// The element type of V.
template <class V> struct lane_of { using type = typename V::value_type; };
template <class V>
    requires is_lane<V>
struct lane_of<V> {
    using type = V;
};
template <class V> using lane = typename lane_of<V>::type;

template <class V> LACUNA_ALWAYS_INLINE V load(const lane<V>* p) noexcept {
    if constexpr (is_lane<V>) return *p;
    else return V::load_unaligned(p);
}

/// x, in a register the compiler must keep: GCC otherwise folds the load that produced x into every
/// instruction that uses it, reading it from memory once per use (a loop of FMAs then runs out of
/// load ports before FMA units), or into vexpandps, whose memory form is several times slower on
/// Zen 4 and 5. An empty asm that claims to change the register stops the folding. V is an xsimd
/// batch or a raw x86 register.
template <class V> LACUNA_ALWAYS_INLINE V in_register(V x) noexcept {
#if LACUNA_X86_64 && defined(__GNUC__)
    if constexpr (requires { typename V::register_type; }) {
        auto r = typename V::register_type(x);
        asm("" : "+v"(r));
        return V(r);
    } else if constexpr (!is_lane<V>) {
        asm("" : "+v"(x));
    }
#endif
    return x;
}

/// load() into a register the compiler must keep (see in_register).
template <class V> LACUNA_ALWAYS_INLINE V load_to_register(const lane<V>* p) noexcept { return in_register(load<V>(p)); }

template <class V> LACUNA_ALWAYS_INLINE void store(lane<V>* p, const V& v) noexcept {
    if constexpr (is_lane<V>) *p = v;
    else v.store_unaligned(p);
}

template <class V> LACUNA_ALWAYS_INLINE V fma(const V& a, const V& b, const V& c) noexcept {
    if constexpr (is_lane<V>) return a * b + c;
    else return xsimd::fma(a, b, c);
}

/// max(a, b); which operand a NaN yields differs by arch, so kernels that must propagate NaN track
/// it separately (see has_nan).
template <class V> LACUNA_ALWAYS_INLINE V max(const V& a, const V& b) noexcept {
    if constexpr (is_lane<V>) return a < b ? b : a;
    else return xsimd::max(a, b);
}

template <class V> LACUNA_ALWAYS_INLINE V exp(const V& x) noexcept {
    if constexpr (is_lane<V>) return std::exp(x);
    else return xsimd::exp(x);
}

/// The mask type of comparisons on V: bool for a lane, batch_bool for a batch.
template <class V> using mask = decltype(std::declval<V>() < std::declval<V>());

template <class V> LACUNA_ALWAYS_INLINE V select(const mask<V>& m, const V& a, const V& b) noexcept {
    if constexpr (is_lane<V>) return m ? a : b;
    else return xsimd::select(m, a, b);
}

template <class M> LACUNA_ALWAYS_INLINE bool any(const M& m) noexcept {
    if constexpr (std::is_same_v<M, bool>) return m;
    else return xsimd::any(m);
}

/// Lanes of x that are NaN (not `x != x`: xsimd 8's AVX-512 != is an ordered compare, false on NaN).
template <class V> LACUNA_ALWAYS_INLINE mask<V> is_nan(const V& x) noexcept {
    if constexpr (is_lane<V>) return x != x;
    else return xsimd::isnan(x);
}

/// A mask from `width<V>` bools in memory. xsimd builds it lane by lane; the x86 archs widen the
/// bytes in registers instead (4× faster for a masked softmax on AVX-512).
template <class V> LACUNA_ALWAYS_INLINE mask<V> load_mask(const bool* p) noexcept {
    if constexpr (is_lane<V>) {
        return *p;
    } else {
        using Arch [[maybe_unused]] = typename V::arch_type;
#if XSIMD_WITH_AVX512BW
        if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch> && width<V> == 16) {
            __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            return mask<V>(_mm_test_epi8_mask(bytes, bytes));
        } else
#endif
#if XSIMD_WITH_AVX2
        if constexpr (std::is_base_of_v<xsimd::avx2, Arch> && width<V> == 8) {
            __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
            return mask<V>(_mm256_castsi256_ps(_mm256_cmpgt_epi32(w, _mm256_setzero_si256())));
        } else
#endif
#if XSIMD_WITH_SSE4_2
        if constexpr (std::is_base_of_v<xsimd::sse4_2, Arch> && width<V> == 4) {
            std::int32_t four;
            std::memcpy(&four, p, sizeof four);
            __m128i w = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
            return mask<V>(_mm_castsi128_ps(_mm_cmpgt_epi32(w, _mm_setzero_si128())));
        } else
#endif
        {
            return mask<V>::load_unaligned(p);
        }
    }
}

/// x[idx[0]], ..., x[idx[width<V> - 1]] for float lanes, any integer index type. On x86 the lanes are
/// loaded one by one and assembled in 128-bit quarters: vgatherdps is slower than that on AMD's cores
/// (Zen 5, a CSR SpMV with x in L1: 19 GB/s by vgatherdps, 35 assembled; AVX2 17 against 35) and on
/// Intel's since the Gather Data Sampling microcode.
template <class V, class Index> LACUNA_ALWAYS_INLINE V gather(const float* x, const Index* idx) noexcept {
    static_assert(std::is_same_v<lane<V>, float> && std::is_integral_v<Index>);
    if constexpr (is_lane<V>) {
        return x[std::size_t(*idx)];
    } else {
#if LACUNA_X86_64
        auto quarter = [&](std::size_t q) LACUNA_LAMBDA_INLINE {
            const Index* c = idx + 4 * q;
            return _mm_set_ps(x[std::size_t(c[3])], x[std::size_t(c[2])], x[std::size_t(c[1])], x[std::size_t(c[0])]);
        };
        using Arch [[maybe_unused]] = typename V::arch_type;
#if XSIMD_WITH_AVX512F
        if constexpr (std::is_base_of_v<xsimd::avx512f, Arch> && width<V> == 16) {
            __m512 r = _mm512_castps128_ps512(quarter(0));
            r = _mm512_insertf32x4(r, quarter(1), 1);
            r = _mm512_insertf32x4(r, quarter(2), 2);
            return V(_mm512_insertf32x4(r, quarter(3), 3));
        } else
#endif
#if XSIMD_WITH_AVX
        if constexpr (std::is_base_of_v<xsimd::avx, Arch> && width<V> == 8) {
            return V(_mm256_insertf128_ps(_mm256_castps128_ps256(quarter(0)), quarter(1), 1));
        } else
#endif
#if XSIMD_WITH_SSE2
        if constexpr (std::is_base_of_v<xsimd::sse2, Arch> && width<V> == 4) {
            return V(quarter(0));
        } else
#endif
#endif
        {
            alignas(64) float lanes[width<V>];
            for (std::size_t l = 0; l < width<V>; ++l) lanes[l] = x[std::size_t(idx[l])];
            return load<V>(lanes);
        }
    }
}

/// Sum of the lanes (xsimd 8 calls it hadd, 9 and later reduce_add).
template <class V> LACUNA_ALWAYS_INLINE lane<V> reduce_add(const V& x) noexcept {
    if constexpr (is_lane<V>) return x;
#if XSIMD_VERSION_MAJOR >= 9
    else return xsimd::reduce_add(x);
#else
    else return xsimd::hadd(x);
#endif
}

/// The sums of width<V> registers at once: lane i of the result is the sum of the lanes of rows[i];
/// cheaper than width<V> separate reductions. xsimd's haddp, except on AVX-512, where 8.1's returns
/// the sums in the wrong lanes: a transpose-and-add tree of our own (blocks of 128 bits first, then
/// lanes), whose lanes come out in order.
template <class V>
    requires(!is_lane<V>)
LACUNA_ALWAYS_INLINE V sums_of(const V* rows) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same_v<lane<V>, float> && std::is_base_of_v<xsimd::avx512f, typename V::arch_type>) {
        // s: blocks 0-1 fold row i, blocks 2-3 row i + 4; u_i: one block each of rows i, i+4, i+8, i+12.
        __m512 s[12], u[4];
        LACUNA_UNROLL for (int i : {0, 1, 2, 3, 8, 9, 10, 11}) {
            const __m512 a = rows[i], b = rows[i + 4];
            s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
        }
        LACUNA_UNROLL for (int i = 0; i < 4; ++i)
            u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[i], s[i + 8], 0x88), _mm512_shuffle_f32x4(s[i], s[i + 8], 0xdd));
        // Within each block, a 4 × 4 transpose-and-add: block k ends as rows 4k .. 4k + 3.
        const __m512d p = _mm512_castps_pd(_mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1])));
        const __m512d q = _mm512_castps_pd(_mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3])));
        return V(_mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p, q)), _mm512_castpd_ps(_mm512_unpackhi_pd(p, q))));
    } else
#endif
    {
        return xsimd::haddp(rows);
    }
}

/// Largest lane (unspecified which when a lane is NaN: callers track NaN themselves). On x86, float
/// lanes fold in registers; elsewhere xsimd's (from 9; 8 has none: the lanes go through memory).
template <class V> LACUNA_ALWAYS_INLINE lane<V> reduce_max(const V& x) noexcept {
    if constexpr (is_lane<V>) {
        return x;
    } else {
#if LACUNA_X86_64
        if constexpr (std::is_same_v<lane<V>, float>) {
            __m128 m;
#if XSIMD_WITH_AVX512F
            if constexpr (std::is_base_of_v<xsimd::avx512f, typename V::arch_type>) {
                const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)); // AVX-512F only
                const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(x), high);
                m = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            } else
#endif
#if XSIMD_WITH_AVX
            if constexpr (std::is_base_of_v<xsimd::avx, typename V::arch_type>) {
                m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
            } else
#endif
            {
                m = x;
            }
            m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        } else
#endif
        {
#if XSIMD_VERSION_MAJOR >= 9
            return xsimd::reduce_max(x);
#else
            alignas(64) lane<V> lanes[width<V>];
            x.store_aligned(lanes);
            return *std::max_element(lanes, lanes + width<V>);
#endif
        }
    }
}

/// Reinterprets the bits of a batch as another element type of the same width
/// (xsimd 8 to 10 name the target batch type, 11 and later the target element type).
template <class To, class From, class Arch>
LACUNA_ALWAYS_INLINE xsimd::batch<To, Arch> bit_cast(const xsimd::batch<From, Arch>& x) noexcept {
    static_assert(sizeof(To) == sizeof(From), "bit_cast keeps the lane width");
#if XSIMD_VERSION_MAJOR >= 11
    return xsimd::bitwise_cast<To>(x);
#else
    return xsimd::bitwise_cast<xsimd::batch<To, Arch>>(x);
#endif
}

} // namespace lacuna::simd
