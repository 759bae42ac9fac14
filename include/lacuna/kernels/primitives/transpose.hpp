// lacuna: out-of-place transpose of a float matrix, which turns tokens × features into the features ×
// tokens operand of the products and back.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/simd/compat.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::kernels {

/// dst[j·ld_dst + i] = src[i·ld_src + j] for i < rows, j < cols. Exact (a copy) on every arch.
struct transpose {
    template <class Arch>
    void operator()(Arch, const float* src, std::size_t ld_src, std::size_t rows, std::size_t cols, float* dst,
                    std::size_t ld_dst) const noexcept;
#if XSIMD_WITH_AVX512BW
    void operator()(xsimd::avx512bw, const float* src, std::size_t ld_src, std::size_t rows, std::size_t cols,
                    float* dst, std::size_t ld_dst) const noexcept;
#endif
};

// 16 × 16 tiles, so that both sides move through whole cache lines rather than one of them a float
// a line.
template <class Arch>
void transpose::operator()(Arch, const float* src, std::size_t ld_src, std::size_t rows, std::size_t cols, float* dst,
                           std::size_t ld_dst) const noexcept {
    constexpr std::size_t tile = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += tile)
        for (std::size_t j0 = 0; j0 < cols; j0 += tile)
            for (std::size_t i = i0; i < std::min(rows, i0 + tile); ++i)
                for (std::size_t j = j0; j < std::min(cols, j0 + tile); ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

#if XSIMD_WITH_AVX512BW
// A 16 × 16 tile in registers: pairs of rows interleaved, then pairs of pairs, then a 4 × 4
// transpose of the 128-bit blocks. Ragged edges load and store under masks (rows beyond the matrix
// read as zeros and are never stored).
inline void transpose::operator()(xsimd::avx512bw, const float* src, std::size_t ld_src, std::size_t rows,
                                  std::size_t cols, float* dst, std::size_t ld_dst) const noexcept {
    for (std::size_t i0 = 0; i0 < rows; i0 += 16) {
        const std::size_t tile_rows = std::min<std::size_t>(16, rows - i0);
        const __mmask16 store_mask = __mmask16((1u << tile_rows) - 1);
        for (std::size_t j0 = 0; j0 < cols; j0 += 16) {
            const std::size_t tile_cols = std::min<std::size_t>(16, cols - j0);
            const __mmask16 load_mask = __mmask16((1u << tile_cols) - 1);
            __m512 r[16], a[16], b[16];
            LACUNA_UNROLL for (std::size_t i = 0; i < 16; ++i)
                r[i] = i < tile_rows ? _mm512_maskz_loadu_ps(load_mask, src + (i0 + i) * ld_src + j0) : _mm512_setzero_ps();
            LACUNA_UNROLL for (int i = 0; i < 16; i += 2) { // a[i]: columns 4k, 4k+1 of rows i, i+1; a[i+1]: 4k+2, 4k+3
                a[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                a[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            LACUNA_UNROLL for (int i = 0; i < 16; i += 4) { // b[i + c], block k: rows i .. i+3 of column 4k + c
                const __m512d a0 = _mm512_castps_pd(a[i]), a1 = _mm512_castps_pd(a[i + 1]);
                const __m512d a2 = _mm512_castps_pd(a[i + 2]), a3 = _mm512_castps_pd(a[i + 3]);
                b[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                b[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                b[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                b[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            LACUNA_UNROLL for (std::size_t c = 0; c < 4; ++c) { // column 4k + c gathers block k of b[c], b[4+c], b[8+c], b[12+c]
                const __m512 e0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44), e1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xee);
                const __m512 e2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44), e3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xee);
                const __m512 column[4] = {_mm512_shuffle_f32x4(e0, e2, 0x88), _mm512_shuffle_f32x4(e0, e2, 0xdd),
                                          _mm512_shuffle_f32x4(e1, e3, 0x88), _mm512_shuffle_f32x4(e1, e3, 0xdd)};
                LACUNA_UNROLL for (std::size_t k = 0; k < 4; ++k)
                    if (const std::size_t j = 4 * k + c; j < tile_cols)
                        _mm512_mask_storeu_ps(dst + (j0 + j) * ld_dst + i0, store_mask, column[k]);
            }
        }
    }
}
#endif

} // namespace lacuna::kernels
