// lacuna: N:M × dense: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV) on a range of rows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/simd/compat.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::kernels {

/// The operands of an N:M product, checked by the entry point: A is rows × k with groups groups of
/// N slots a row (values row-major) and words_per_row metadata words a row.
template <class T, std::size_t N, std::size_t M> struct nm_product_args {
    dense_operands d;
    const T* values;
    const std::uint64_t* meta;
    std::size_t k, groups, words_per_row;
};

/// SpMM on rows [row_begin, row_end): register tiles of C as for CSR, each slot's column read from
/// the metadata, so a row walks B's rows in order (N of every M), which the prefetcher follows.
struct spmm_nm {
    template <class Arch, class T, std::size_t N, std::size_t M>
    void operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// SpMV on rows [row_begin, row_end), x = args.b, y = args.c. A register of slots meets a register of
/// x gathered at the slots' columns; on AVX-512, 2:4 builds that register with one two-source
/// permute of the 32 columns the 16 slots span, so it reads x contiguously and no index.
struct spmv_nm {
    template <class Arch, class T, std::size_t N, std::size_t M>
    void operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
#if XSIMD_WITH_AVX512BW
    template <class T>
    void operator()(xsimd::avx512bw, const nm_product_args<T, 2, 4>* args, std::size_t row_begin,
                    std::size_t row_end) const noexcept;
#endif
};

namespace detail {

// Calls f(column, value) for every slot of row i inside the matrix, in column order: the metadata
// word by word, a group's code at a time; the slots of a last group past column k are skipped.
template <class T, std::size_t N, std::size_t M, class F>
LACUNA_ALWAYS_INLINE void walk_nm_row(const nm_product_args<T, N, M>& a, std::size_t i, F&& f) noexcept {
    using format = nm_format<N, M>;
    const T* v = a.values + i * a.groups * N;
    const std::uint64_t* meta = a.meta + i * a.words_per_row;
    const std::size_t full = a.k / M; // groups wholly inside the matrix
    for (std::size_t g0 = 0; g0 < full; g0 += format::groups_per_word) {
        std::uint64_t word = meta[g0 / format::groups_per_word];
        const std::size_t g1 = g0 + format::groups_per_word < full ? g0 + format::groups_per_word : full;
        for (std::size_t g = g0; g < g1; ++g, word >>= format::group_bits % 64)
            for (std::size_t s = 0; s < N; ++s) f(g * M + format::position(word, s), float(v[g * N + s]));
    }
    if (full < a.groups) {
        const std::uint64_t code = format::code(meta, full);
        for (std::size_t s = 0; s < N; ++s)
            if (const std::size_t col = full * M + format::position(code, s); col < a.k) f(col, float(v[full * N + s]));
    }
}

} // namespace detail

template <class Arch, class T, std::size_t N, std::size_t M>
void spmm_nm::operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    const nm_product_args<T, N, M>& a = *args;
    const auto walk = [&](std::size_t i, auto&& f) { detail::walk_nm_row(a, i, f); };
    detail::for_each_tile<Arch>(a.d.n, row_begin, row_end, [&]<class V, std::size_t tiles>(std::size_t i, std::size_t j) {
        detail::walk_tile<V, tiles>(a.d, i, j, walk);
    });
}

template <class Arch, class T, std::size_t N, std::size_t M>
void spmv_nm::operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
    using I = simd::vec<std::int32_t, Arch>;
    constexpr std::size_t w = simd::width<V>;
    const nm_product_args<T, N, M>& a = *args;
    const std::size_t full = a.k / M, slots = full * N; // slots wholly inside the matrix
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const T* v = a.values + i * a.groups * N;
        const std::uint64_t* meta = a.meta + i * a.words_per_row;
        V acc(0.f);
        std::size_t s = 0;
        if constexpr (!simd::is_lane<V>) {
            alignas(64) std::int32_t cols[w];
            for (; s + w <= slots; s += w) {
                for (std::size_t l = 0; l < w; ++l) {
                    const std::size_t g = (s + l) / N;
                    cols[l] = std::int32_t(g * M + nm_format<N, M>::position(nm_format<N, M>::code(meta, g), (s + l) % N));
                }
                acc = simd::fma(simd::load<V>(v + s), V::gather(a.d.b, simd::load<I>(cols)), acc);
            }
        }
        float sum = simd::reduce_add(acc);
        // The slots the vector loop left, and the last group's slots inside the matrix.
        for (std::size_t g = s / N; g < a.groups; ++g) {
            const std::uint64_t code = nm_format<N, M>::code(meta, g);
            for (std::size_t t = 0; t < N; ++t)
                if (const std::size_t col = g * M + nm_format<N, M>::position(code, t); col < a.k)
                    sum += float(v[g * N + t]) * a.d.b[col];
        }
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}

#if XSIMD_WITH_AVX512BW
template <class T>
void spmv_nm::operator()(xsimd::avx512bw, const nm_product_args<T, 2, 4>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    using V = simd::vec<float, xsimd::avx512bw>;
    const nm_product_args<T, 2, 4>& a = *args;
    // Slot l of 16 belongs to group l / 2 and reads its 2-bit position at bit 2·l of the 32-bit code
    // of the 8 groups; its column within the 32 is 4·(l / 2) + position.
    const __m512i shifts = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i bases = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
    const __m512i three = _mm512_set1_epi32(3);
    const std::size_t chunks = a.k / 32; // 8 groups, 16 slots, 32 columns of x each
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const T* v = a.values + i * a.groups * 2;
        const std::uint64_t* meta = a.meta + i * a.words_per_row;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        auto step = [&](__m512 acc, std::size_t q) {
            const __m512i code = _mm512_set1_epi32(int(std::uint32_t(meta[q / 2] >> (32 * (q % 2)))));
            const __m512i idx = _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(code, shifts), three), bases);
            const float* x = a.d.b + q * 32;
            const __m512 xs = _mm512_permutex2var_ps(_mm512_loadu_ps(x), idx, _mm512_loadu_ps(x + 16));
            return _mm512_fmadd_ps(__m512(simd::load<V>(v + q * 16)), xs, acc);
        };
        std::size_t c = 0;
        for (; c + 2 <= chunks; c += 2) { // two chains: the FMAs do not wait on each other
            acc0 = step(acc0, c);
            acc1 = step(acc1, c + 1);
        }
        if (c < chunks) acc0 = step(acc0, c++);
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        for (std::size_t g = c * 8; g < a.groups; ++g) {
            const std::uint64_t code = nm_format<2, 4>::code(meta, g);
            for (std::size_t t = 0; t < 2; ++t)
                if (const std::size_t col = g * 4 + nm_format<2, 4>::position(code, t); col < a.k)
                    sum += float(v[g * 2 + t]) * a.d.b[col];
        }
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}
#endif

} // namespace lacuna::kernels
