// lacuna: bitmap × dense: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV) on a range of rows.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/compat.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::kernels {

/// The operands of a bitmap product, checked by the entry point: A's bits (words_per_row words a
/// row), word offsets and packed values (float or bfloat16).
template <class T, class Index> struct bitmap_product_args {
    dense_operands d;
    const std::uint64_t* bits;
    const Index* offsets;
    const T* values;
    std::size_t words_per_row;
};

/// SpMM on rows [row_begin, row_end): register tiles of C as for CSR, the columns read from the bits.
struct spmm_bitmap {
    template <class Arch, class T, class Index>
    void operator()(Arch, const bitmap_product_args<T, Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// SpMV over rows [row_begin, row_end). On AVX-512, each 16-bit slice of a row's bit word spreads
/// its packed values to their lanes of a register (vexpandps, or a permute) against a masked load of
/// x, so the arithmetic is dense and no index is read; elsewhere, one multiply-add per set bit.
struct spmv_bitmap {
    template <class Arch, class T, class Index>
    void operator()(Arch, const bitmap_product_args<T, Index>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
#if XSIMD_WITH_AVX512BW
    template <class T, class Index>
    void operator()(xsimd::avx512bw, const bitmap_product_args<T, Index>* args, std::size_t row_begin,
                    std::size_t row_end) const noexcept;
#endif
};

template <class Arch, class T, class Index>
void spmm_bitmap::operator()(Arch, const bitmap_product_args<T, Index>* args, std::size_t row_begin,
                             std::size_t row_end) const noexcept {
    const bitmap_product_args<T, Index>& a = *args;
    const auto walk = [&](std::size_t i, auto&& f) {
        const T* v = a.values + a.offsets[i * a.words_per_row];
        for (std::size_t w = 0; w < a.words_per_row; ++w)
            for (std::uint64_t bits = a.bits[i * a.words_per_row + w]; bits != 0; bits &= bits - 1)
                f(w * 64 + std::size_t(std::countr_zero(bits)), float(*v++));
    };
    detail::for_each_tile<Arch>(a.d.n, row_begin, row_end, [&]<class V, std::size_t tiles>(std::size_t i, std::size_t j) {
        detail::walk_tile<V, tiles>(a.d, i, j, walk);
    });
}

template <class Arch, class T, class Index>
void spmv_bitmap::operator()(Arch, const bitmap_product_args<T, Index>* args, std::size_t row_begin,
                             std::size_t row_end) const noexcept {
    const bitmap_product_args<T, Index>& a = *args;
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const T* v = a.values + a.offsets[i * a.words_per_row];
        float sum0 = 0.f, sum1 = 0.f; // two chains: the adds do not wait on each other
        for (std::size_t w = 0; w < a.words_per_row; ++w) {
            const float* x = a.d.b + w * 64;
            std::uint64_t bits = a.bits[i * a.words_per_row + w];
            for (; bits & (bits - 1); bits &= bits - 1, bits &= bits - 1) {
                sum0 += float(*v++) * x[std::countr_zero(bits)];
                sum1 += float(*v++) * x[std::countr_zero(bits & (bits - 1))];
            }
            if (bits) sum0 += float(*v++) * x[std::countr_zero(bits)];
        }
        detail::finish(a.d.c + i, sum0 + sum1, a.d);
    }
}

#if XSIMD_WITH_AVX512BW
namespace detail {
// byte_ranks[b], byte j: how many bits of b are set below bit j, i.e. where lane j's value sits among
// the byte's packed values.
inline constexpr auto byte_ranks = [] {
    std::array<std::uint64_t, 256> ranks{};
    for (unsigned b = 0; b < 256; ++b)
        for (unsigned j = 0, rank = 0; j < 8; ++j)
            if (b >> j & 1) ranks[b] |= std::uint64_t(rank++) << (8 * j);
    return ranks;
}();
} // namespace detail

template <class T, class Index>
void spmv_bitmap::operator()(xsimd::avx512bw, const bitmap_product_args<T, Index>* args, std::size_t row_begin,
                             std::size_t row_end) const noexcept {
    const bitmap_product_args<T, Index>& a = *args;
    // Sixteen values from v, whole registers where that stays inside the rows' values (the last few
    // slices load only their own), bfloat16 widened to float.
    const T* const end = a.values + a.offsets[row_end * a.words_per_row];
    auto load16 = [end](const T* v) {
        const bool whole = end - v >= 16;
        const auto count = __mmask16(whole ? 0xffff : (1u << (end - v)) - 1u);
        if constexpr (std::is_same_v<T, float>) {
            return whole ? _mm512_loadu_ps(v) : _mm512_maskz_loadu_ps(count, v);
        } else {
            const __m256i raw = whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v))
                                      : _mm256_maskz_loadu_epi16(count, v);
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
        }
    };
    // The packed values of a 16-bit slice moved to its set lanes (zero elsewhere), two ways. vexpandps
    // costs about 2 + 1.6 cycles a kept value on Zen 5; the permute, whose indices come from two byte
    // lookups, a flat 5.5 a slice: rows sparser than 1 in 8 expand, the others permute.
    auto expand = [](__mmask16 m, __m512 packed) { return _mm512_maskz_expand_ps(m, packed); };
    auto permute = [](__mmask16 m, __m512 packed) {
        const unsigned low = m & 0xffu, high = unsigned(m) >> 8;
        const std::uint64_t high_ranks = detail::byte_ranks[high] + std::uint64_t(std::popcount(low)) * 0x0101010101010101u;
        const __m512i index = _mm512_cvtepu8_epi32(_mm_set_epi64x(std::int64_t(high_ranks), std::int64_t(detail::byte_ranks[low])));
        return _mm512_maskz_permutexvar_ps(m, index, packed);
    };
    auto row = [&](std::size_t i, auto spread) LACUNA_LAMBDA_INLINE {
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        for (std::size_t w = 0; w < a.words_per_row; ++w) {
            const std::uint64_t bits = a.bits[i * a.words_per_row + w];
            const T* v = a.values + a.offsets[i * a.words_per_row + w];
            const float* x = a.d.b + w * 64;
            for (int q = 0; q < 4; q += 2) {
                // Only the kept lanes of x are loaded: bits past the last column are zero, so the
                // masked load never reads past x.
                const auto m0 = __mmask16(bits >> (16 * q)), m1 = __mmask16(bits >> (16 * q + 16));
                const T* v1 = v + std::popcount(unsigned(m0));
                acc0 = _mm512_fmadd_ps(spread(m0, load16(v)), _mm512_maskz_loadu_ps(m0, x + 16 * q), acc0);
                acc1 = _mm512_fmadd_ps(spread(m1, load16(v1)), _mm512_maskz_loadu_ps(m1, x + 16 * q + 16), acc1);
                v = v1 + std::popcount(unsigned(m1));
            }
        }
        detail::finish(a.d.c + i, _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)), a.d);
    };
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const auto kept = std::size_t(a.offsets[(i + 1) * a.words_per_row] - a.offsets[i * a.words_per_row]);
        if (kept * 8 < a.words_per_row * 64) row(i, expand);
        else row(i, permute);
    }
}
#endif

} // namespace lacuna::kernels
