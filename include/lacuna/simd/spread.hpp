// lacuna: the packed values of a bitmap spread to the lanes of their set bits (the bitmap SpMV, the
// values of the sparse KV cache). On AVX-512, a zero-masked permute by each value's rank among the
// set bits of its 16-bit slice, the ranks of a whole 64-bit word from one prefix sum over its bits
// as bytes: a fixed cost a slice, where vexpandps with a new mask each time costs about 2 + 1.6
// cycles a kept value on Zen 5.
#pragma once

#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "lacuna/core/config.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::simd {

#if XSIMD_WITH_AVX512BW
/// Byte 16q + j: the number of set bits of `bits` below bit 16q + j in its slice q, which is the
/// index of that bit's value among the slice's packed values (meaningful where the bit is set).
LACUNA_ALWAYS_INLINE __m512i slice_ranks(std::uint64_t bits) noexcept {
    const __m512i one = _mm512_set1_epi8(1);
    __m512i ranks = _mm512_maskz_mov_epi8(_cvtu64_mask64(bits), one);
    ranks = _mm512_add_epi8(ranks, _mm512_bslli_epi128(ranks, 1));
    ranks = _mm512_add_epi8(ranks, _mm512_bslli_epi128(ranks, 2));
    ranks = _mm512_add_epi8(ranks, _mm512_bslli_epi128(ranks, 4));
    ranks = _mm512_add_epi8(ranks, _mm512_bslli_epi128(ranks, 8));
    return _mm512_sub_epi8(ranks, one);
}

/// Lane j: packed[rank of bit 16q + j] where that bit of `bits` is set, else 0, so that lanes of
/// packed past the slice's values (read past the end of an array) never come through.
/// ranks = slice_ranks(bits).
template <int q> LACUNA_ALWAYS_INLINE __m512 spread_slice(__m512i ranks, std::uint64_t bits, __m512 packed) noexcept {
    const __m512i index = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(ranks, q));
    return _mm512_maskz_permutexvar_ps(__mmask16(bits >> (16 * q)), index, packed);
}
#endif

} // namespace lacuna::simd
