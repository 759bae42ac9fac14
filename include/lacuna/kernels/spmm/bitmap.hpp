// lacuna: bitmap × dense: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV) on a range of rows.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/compat.hpp"
#include "lacuna/simd/spread.hpp"

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
template <class T, class Index>
void spmv_bitmap::operator()(xsimd::avx512bw, const bitmap_product_args<T, Index>* args, std::size_t row_begin,
                             std::size_t row_end) const noexcept {
    const bitmap_product_args<T, Index>& a = *args;
    // Sixteen values from v, bfloat16 widened to float: a whole register in every row whose values
    // are followed by sixteen more of the range's (all rows but the last one or two), else only the
    // values the range has.
    const auto end_offset = std::size_t(a.offsets[row_end * a.words_per_row]);
    const T* const end = a.values + end_offset;
    auto load16 = [end]<bool whole>(const T* v) {
        const auto count = __mmask16(whole || end - v >= 16 ? 0xffff : (1u << (end - v)) - 1u);
        if constexpr (std::is_same_v<T, float>) {
            return whole ? _mm512_loadu_ps(v) : _mm512_maskz_loadu_ps(count, v);
        } else {
            const __m256i raw = whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v))
                                      : _mm256_maskz_loadu_epi16(count, v);
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
        }
    };
    // A row of words; each 16-bit slice of a word spreads its packed values to its set lanes (zero
    // elsewhere) against a masked load of x, which never reads past x (bits past the last column are
    // zero). Two ways to spread: vexpandps costs about 2 + 1.6 cycles a kept value on Zen 5, the
    // permute of simd/spread.hpp the same at any density: rows sparser than 1 in 8 expand, the others
    // permute.
    auto row = [&]<bool whole, bool permute>(std::size_t i) LACUNA_LAMBDA_INLINE {
        __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (std::size_t w = 0; w < a.words_per_row; ++w) {
            const std::uint64_t bits = a.bits[i * a.words_per_row + w];
            const T* v = a.values + a.offsets[i * a.words_per_row + w];
            const float* x = a.d.b + w * 64;
            const __m512i ranks = permute ? simd::slice_ranks(bits) : _mm512_setzero_si512();
            [&]<int... q>(std::integer_sequence<int, q...>) LACUNA_LAMBDA_INLINE {
                ([&] {
                    const auto m = __mmask16(bits >> (16 * q));
                    const __m512 packed = load16.template operator()<whole>(v);
                    __m512 spread;
                    if constexpr (permute) {
                        spread = simd::spread_slice<q>(ranks, bits, packed);
                    } else {
                        // From a register: the memory form of vexpandps made 10% dense rows ~9% slower.
                        spread = _mm512_maskz_expand_ps(m, simd::in_register(packed));
                    }
                    acc[q % 2] = _mm512_fmadd_ps(spread, _mm512_maskz_loadu_ps(m, x + 16 * q), acc[q % 2]);
                    v += std::popcount(unsigned(m));
                }(), ...);
            }(std::make_integer_sequence<int, 4>{});
        }
        detail::finish(a.d.c + i, _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])), a.d);
    };
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const auto first = std::size_t(a.offsets[i * a.words_per_row]), last = std::size_t(a.offsets[(i + 1) * a.words_per_row]);
        const bool whole = last + 16 <= end_offset, sparse = (last - first) * 8 < a.words_per_row * 64;
        if (whole) sparse ? row.template operator()<true, false>(i) : row.template operator()<true, true>(i);
        else sparse ? row.template operator()<false, false>(i) : row.template operator()<false, true>(i);
    }
}
#endif

} // namespace lacuna::kernels
