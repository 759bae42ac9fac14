// lacuna: bitmap × dense: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV) on a range of rows.
#pragma once

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

/// SpMV over rows [row_begin, row_end). On AVX-512, each 16-bit slice of a row's bit word expands
/// that many packed values into a register (vexpandps) against a masked load of x, so the arithmetic
/// is dense and no index is read; elsewhere, one multiply-add per set bit.
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
    // The packed values of a 16-bit slice, spread to its set lanes. The register form of vexpandps
    // after a masked load of exactly the slice's values (bfloat16 widened first): the memory form is
    // much slower on AMD.
    auto expand = [](__mmask16 m, const T* v) {
        const auto count = __mmask16((1u << std::popcount(unsigned(m))) - 1u);
        if constexpr (std::is_same_v<T, float>) {
            return _mm512_maskz_expand_ps(m, _mm512_maskz_loadu_ps(count, v));
        } else {
            const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(count, v));
            return _mm512_maskz_expand_ps(m, _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, wide, 16)));
        }
    };
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const T* v = a.values + a.offsets[i * a.words_per_row];
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        for (std::size_t w = 0; w < a.words_per_row; ++w) {
            const std::uint64_t bits = a.bits[i * a.words_per_row + w];
            const float* x = a.d.b + w * 64;
            for (int q = 0; q < 4; q += 2) {
                // Only the kept lanes of x are loaded: bits past the last column are zero, so the
                // masked load never reads past x.
                const auto m0 = __mmask16(bits >> (16 * q)), m1 = __mmask16(bits >> (16 * q + 16));
                acc0 = _mm512_fmadd_ps(expand(m0, v), _mm512_maskz_loadu_ps(m0, x + 16 * q), acc0);
                v += std::popcount(unsigned(m0));
                acc1 = _mm512_fmadd_ps(expand(m1, v), _mm512_maskz_loadu_ps(m1, x + 16 * q + 16), acc1);
                v += std::popcount(unsigned(m1));
            }
        }
        detail::finish(a.d.c + i, _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)), a.d);
    }
}
#endif

} // namespace lacuna::kernels
