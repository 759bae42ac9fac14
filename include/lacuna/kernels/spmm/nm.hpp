// lacuna: N:M × dense: C = α·A·B + β·C (SpMM) and y = α·A·x + β·y (SpMV) on a range of rows.
#pragma once

#include <algorithm>
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

/// Columns of x that 16 slots of N:M span: 16·M/N.
template <std::size_t N, std::size_t M> inline constexpr std::size_t nm_span16 = 16 * M / N;

/// SpMV on rows [row_begin, row_end), x = args.b, y = args.c. A register of slots meets a register of
/// x gathered at the slots' columns. On AVX-512, when 16 slots span 32 or 64 columns (2:4, 4:8,
/// 1:4, 2:8, ...), the slots' positions come from one metadata word by variable shifts and x's
/// register from two-source permutes of the span, read contiguously: no index, no gather.
struct spmv_nm {
    template <class Arch, class T, std::size_t N, std::size_t M>
    void operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
#if XSIMD_WITH_AVX512BW
    template <class T, std::size_t N, std::size_t M>
        requires(16 % N == 0 && (nm_span16<N, M> == 32 || nm_span16<N, M> == 64))
    void operator()(xsimd::avx512bw, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                    std::size_t row_end) const noexcept;
#endif
};

namespace detail {

// acc[r][t] += A(i0 + r, groups [g_begin, g_end))·B[those rows, j + t·width : ...] for R rows at
// once: R·tiles independent accumulator chains, enough to keep the FMA pipes busy (one row's tiles
// alone wait on the FMA latency).
template <class V, std::size_t tiles, std::size_t R, class T, std::size_t N, std::size_t M>
LACUNA_ALWAYS_INLINE void nm_rows_tile(const nm_product_args<T, N, M>& a, std::size_t i0, std::size_t j,
                                       std::size_t g_begin, std::size_t g_end, V (&acc)[R][tiles]) noexcept {
    using format = nm_format<N, M>;
    constexpr std::size_t w = simd::width<V>;
    const T* v[R];
    const std::uint64_t* meta[R];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) {
        v[r] = a.values + (i0 + r) * a.groups * N;
        meta[r] = a.meta + (i0 + r) * a.words_per_row;
        // The next chunk of these rows: a row is read a chunk at a time, with other rows between,
        // which the hardware prefetcher does not follow.
        const std::size_t next = std::min(2 * g_end - g_begin, a.groups);
        for (std::size_t at = g_end * N; at < next * N; at += 64 / sizeof(T)) __builtin_prefetch(v[r] + at);
        __builtin_prefetch(meta[r] + next / format::groups_per_word);
    }
    const float* b = a.d.b + j;
    auto slot = [&](std::size_t r, std::size_t col, std::size_t at) LACUNA_LAMBDA_INLINE {
        const V value = V(float(v[r][at]));
        const float* row = b + col * a.d.ldb;
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = simd::fma(value, simd::load<V>(row + t * w), acc[r][t]);
    };
    const std::size_t full = std::min(g_end, a.k / M); // groups wholly inside the matrix
    for (std::size_t g = g_begin; g < full; ++g) {
        std::uint64_t code[R];
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) code[r] = format::code(meta[r], g);
        LACUNA_UNROLL for (std::size_t s = 0; s < N; ++s)
            LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) slot(r, g * M + format::position(code[r], s), g * N + s);
    }
    if (full < g_end)
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) {
            const std::uint64_t code = format::code(meta[r], full);
            LACUNA_UNROLL for (std::size_t s = 0; s < N; ++s)
                if (const std::size_t col = full * M + format::position(code, s); col < a.k) slot(r, col, full * N + s);
        }
}

// A's columns (rows of B) per chunk of a panel of four registers, and A's rows per block: the rows
// of a block take one chunk of B's panel at a time (64 rows of B × 64 floats: 16 KiB) from L1,
// instead of the whole panel from L2 for every row. The block's partial sums wait in a scratch tile
// between chunks.
inline constexpr std::size_t nm_chunk_cols = 64, nm_block_rows = 32;

// Bytes of B's panel that every block of rows walks before the next slice: the slice stays in L2
// while all the blocks pass over it, where a whole panel of a long row (4096 rows × 256 bytes)
// would come from L3 again for every block.
inline constexpr std::size_t nm_slice_bytes = 256 * 1024;

} // namespace detail

template <class Arch, class T, std::size_t N, std::size_t M>
void spmm_nm::operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    const nm_product_args<T, N, M>& a = *args;
    dense_operands later = a.d; // a slice after the first: C = α·acc + C
    later.beta = 1.f;
    // Column panels outermost, as for_each_tile; then slices of A's columns, blocks of rows, chunks
    // of the slice, and rows: two a pass up to four registers, one in a panel of eight (eight
    // accumulator chains either way).
    auto panel = [&]<class V, std::size_t tiles>(std::size_t j) {
        constexpr std::size_t w = simd::width<V>;
        constexpr std::size_t slice_groups = detail::nm_slice_bytes / (tiles * w * sizeof(float)) / M;
        // A chunk of B stays 16 KiB in a panel of eight registers: half the columns.
        constexpr std::size_t chunk_groups = detail::nm_chunk_cols * 4 / std::max<std::size_t>(tiles, 4) / M;
        constexpr std::size_t pass_rows = tiles > 4 ? 1 : 2;
        V scratch[detail::nm_block_rows][tiles];
        // At least one slice, so that an empty K still leaves C = beta * C.
        for (std::size_t s0 = 0; s0 == 0 || s0 < a.groups; s0 += slice_groups) {
            const std::size_t s1 = std::min(a.groups, s0 + slice_groups);
            for (std::size_t i0 = row_begin; i0 < row_end; i0 += detail::nm_block_rows) {
                const std::size_t rows = std::min(detail::nm_block_rows, row_end - i0);
                for (std::size_t r = 0; r < rows; ++r)
                    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) scratch[r][t] = V(0.f);
                auto pass = [&]<std::size_t R>(std::size_t r, std::size_t g0, std::size_t g1) {
                    V acc[R][tiles];
                    LACUNA_UNROLL for (std::size_t q = 0; q < R; ++q)
                        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[q][t] = scratch[r + q][t];
                    detail::nm_rows_tile(a, i0 + r, j, g0, g1, acc);
                    LACUNA_UNROLL for (std::size_t q = 0; q < R; ++q)
                        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) scratch[r + q][t] = acc[q][t];
                };
                for (std::size_t g0 = s0; g0 < s1; g0 += chunk_groups) {
                    const std::size_t g1 = std::min(s1, g0 + chunk_groups);
                    std::size_t r = 0;
                    for (; r + pass_rows <= rows; r += pass_rows) pass.template operator()<pass_rows>(r, g0, g1);
                    if (r < rows) pass.template operator()<1>(r, g0, g1);
                }
                for (std::size_t r = 0; r < rows; ++r)
                    LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t)
                        detail::finish(a.d.c + (i0 + r) * a.d.ldc + j + t * w, scratch[r][t], s0 == 0 ? a.d : later);
            }
        }
        return tiles * w;
    };
    // Panels of eight registers while n allows: A's rows and metadata are read once for 128 columns
    // of C (AVX-512) rather than twice, and each slot's column decoded once for eight FMAs.
    using V = simd::vec<float, Arch>;
    std::size_t j0 = 0;
    if constexpr (!simd::is_lane<V>)
        while (j0 + 8 * simd::width<V> <= a.d.n) j0 += panel.template operator()<V, 8>(j0);
    detail::for_each_panel<Arch>(a.d.n - j0, [&]<class U, std::size_t tiles>(std::size_t j) {
        return panel.template operator()<U, tiles>(j0 + j);
    });
}

template <class Arch, class T, std::size_t N, std::size_t M>
void spmv_nm::operator()(Arch, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    using V = simd::vec<float, Arch>;
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
                acc = simd::fma(simd::load<V>(v + s), simd::gather<V>(a.d.b, cols), acc);
            }
        }
        float sum = simd::reduce_add(acc);
        // The slots the vector loop left, and the last group's slots inside the matrix.
        for (std::size_t g = s / N; g < a.groups; ++g) {
            const std::uint64_t code = nm_format<N, M>::code(meta, g);
            LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t)
                if (const std::size_t col = g * M + nm_format<N, M>::position(code, t); col < a.k)
                    sum += float(v[g * N + t]) * a.d.b[col];
        }
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}

#if XSIMD_WITH_AVX512BW
template <class T, std::size_t N, std::size_t M>
    requires(16 % N == 0 && (nm_span16<N, M> == 32 || nm_span16<N, M> == 64))
void spmv_nm::operator()(xsimd::avx512bw, const nm_product_args<T, N, M>* args, std::size_t row_begin,
                         std::size_t row_end) const noexcept {
    using V = simd::vec<float, xsimd::avx512bw>;
    using format = nm_format<N, M>;
    constexpr std::size_t span = nm_span16<N, M>, groups16 = 16 / N;
    static_assert(groups16 * format::group_bits <= 64, "16 slots' codes fit one metadata word");
    const nm_product_args<T, N, M>& a = *args;
    // Slot l belongs to group l / N of the 16 slots; its position is at bit (l / N)·group_bits +
    // (l % N)·position_bits of their codes (one word; lanes at bit 32 or more read its high half)
    // and its column within the span is (l / N)·M + position.
    alignas(64) std::int32_t shift[16], base[16];
    __mmask16 high = 0;
    for (int l = 0; l < 16; ++l) {
        const std::size_t bit = std::size_t(l) / N * format::group_bits + std::size_t(l) % N * format::position_bits;
        shift[l] = int(bit % 32);
        base[l] = int(std::size_t(l) / N * M);
        if (bit >= 32) high = __mmask16(high | (1u << l));
    }
    const __m512i shifts = _mm512_load_si512(shift), bases = _mm512_load_si512(base);
    const __m512i position_mask = _mm512_set1_epi32(int(format::position_mask));
    const __m512i thirty_one = _mm512_set1_epi32(31);
    const std::size_t chunks = a.k / span; // chunks of 16 slots wholly inside the matrix
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const T* v = a.values + i * a.groups * N;
        const std::uint64_t* meta = a.meta + i * a.words_per_row;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        auto step = [&](__m512 acc, std::size_t q) {
            const std::size_t g0 = q * groups16;
            const std::uint64_t word = meta[g0 / format::groups_per_word] >>
                                       ((g0 % format::groups_per_word) * format::group_bits % 64);
            const __m512i codes = _mm512_mask_blend_epi32(high, _mm512_set1_epi32(int(std::uint32_t(word))),
                                                          _mm512_set1_epi32(int(std::uint32_t(word >> 32))));
            const __m512i idx =
                _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(codes, shifts), position_mask), bases);
            const float* x = a.d.b + q * span;
            __m512 xs = _mm512_permutex2var_ps(_mm512_loadu_ps(x), idx, _mm512_loadu_ps(x + 16));
            if constexpr (span == 64) {
                const __m512 upper = _mm512_permutex2var_ps(_mm512_loadu_ps(x + 32), idx, _mm512_loadu_ps(x + 48));
                xs = _mm512_mask_blend_ps(_mm512_cmpgt_epi32_mask(idx, thirty_one), xs, upper);
            }
            return _mm512_fmadd_ps(__m512(simd::load<V>(v + q * 16)), xs, acc);
        };
        std::size_t c = 0;
        for (; c + 2 <= chunks; c += 2) { // two chains: the FMAs do not wait on each other
            acc0 = step(acc0, c);
            acc1 = step(acc1, c + 1);
        }
        if (c < chunks) acc0 = step(acc0, c++);
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        for (std::size_t g = c * groups16; g < a.groups; ++g) {
            const std::uint64_t code = format::code(meta, g);
            LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t)
                if (const std::size_t col = g * M + format::position(code, t); col < a.k) sum += float(v[g * N + t]) * a.d.b[col];
        }
        detail::finish(a.d.c + i * a.d.ldc, sum, a.d);
    }
}
#endif

} // namespace lacuna::kernels
