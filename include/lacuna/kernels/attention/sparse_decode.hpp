// lacuna: decode over a sparse KV cache (sparse_kv_cache): the same split tasks and online softmax
// as flash_decode, with keys and values read from tile bitmaps. A key tile (64 tokens of one
// channel) expands into registers of tokens that meet the broadcast query channel, so a tile of
// scores needs no reduction; a value tile (64 channels of one token) spreads into registers of
// channels that meet the broadcast probability (on AVX-512 by the permute of simd/spread.hpp, which
// measured faster than vexpandps there at 5 to 50% kept; for the keys, vexpandps measured faster).
// Only the kept values and the masks are read.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lacuna/kernels/attention/decode.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"
#include "lacuna/simd/spread.hpp"

#if LACUNA_X86_64
#include <immintrin.h>
#endif

namespace lacuna::kernels {

/// Runs decode tasks [task_begin, task_end) (see decode_args) over args.sparse, with
/// decode_workspace floats of scratch.
struct sparse_decode {
    template <class Arch, class T>
    void operator()(Arch, const decode_args<T>* args, float* workspace, std::size_t task_begin,
                    std::size_t task_end) const noexcept;
};

namespace detail {

// The register whose lane l is the next stored value if bit l of `bits` is set, else 0; `values`
// holds the popcount(bits) stored values (and may be read up to 16 elements further).
template <class V, class T> LACUNA_ALWAYS_INLINE V expand(std::uint32_t bits, const T* values) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (!simd::is_lane<V>) {
        if constexpr (std::is_base_of_v<xsimd::avx512f, typename V::arch_type>) {
            // A load, then a register expand: vexpandps from memory is several times slower.
            return V(_mm512_maskz_expand_ps(__mmask16(bits), __m512(simd::load_to_register<V>(values))));
        }
    }
#endif
    alignas(64) float lanes[simd::width<V>] = {};
    for (; bits; bits &= bits - 1) lanes[std::countr_zero(bits)] = float(*values++);
    return simd::load<V>(lanes);
}

// st[j · ld + r] = Σ_c qt[r][c] · K[64·tile + j][c] for R rows from r0 and the 64 keys of a
// complete tile: per channel, its stored keys expanded into registers of tokens.
template <class Arch, std::size_t R, class T>
void sparse_tile_scores(const float* qt, std::size_t r0, std::size_t d, const sparse_kv_head<T>& h, std::size_t tile,
                        float* st, std::size_t ld) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, P = 64 / w;
    constexpr std::uint64_t piece_mask = w == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << w) - 1;
    V acc[R][P];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p) acc[r][p] = V(0.f);
    const std::uint64_t* bits = h.k_bits + tile * d;
    const std::uint32_t* offsets = h.k_offsets + tile * d;
    for (std::size_t c = 0; c < d; ++c) {
        const std::uint64_t mask = bits[c];
        const T* values = h.k_values + offsets[c];
        V q[R];
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) q[r] = V(qt[(r0 + r) * d + c]);
        LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p) {
            const auto piece = std::uint32_t(mask >> (p * w) & piece_mask);
            const V k = expand<V>(piece, values);
            values += std::popcount(piece);
            LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) acc[r][p] = simd::fma(q[r], k, acc[r][p]);
        }
    }
    alignas(64) float lanes[R][64];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p) simd::store(lanes[r] + p * w, acc[r][p]);
    for (std::size_t j = 0; j < 64; ++j)
        for (std::size_t r = 0; r < R; ++r) st[j * ld + r0 + r] = lanes[r][j];
}

// o[r] = o[r]·alpha[r] + Σ_j st[j · ld + r] · V[j0 + j] for the rows and the tile's keys, values from their
// tiles: per chunk of 64 channels and group of G rows, each key's mask and probabilities are read
// once, its stored values expanded into registers of channels that accumulate in registers.
template <class Arch, class T>
void sparse_add_values(const flash_scratch& s, std::size_t rows, std::size_t dv, std::size_t keys, const sparse_kv_head<T>& h,
                       std::size_t j0) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, P = 64 / w, R = w >= 16 ? 4 : 1;
    constexpr std::uint64_t piece_mask = w == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << w) - 1;
    const std::size_t chunks = (dv + 63) / 64, ld = decode_stride(rows);
    for (std::size_t ch = 0; ch < chunks; ++ch) {
        const std::size_t c0 = ch * 64, width = std::min<std::size_t>(64, dv - c0), pieces = width / w;
        // Whole chunks with a compile-time count of registers, so that the loops over them unroll.
        auto group = [&]<std::size_t G, std::size_t Pieces>(std::size_t r0) {
            const std::size_t count = Pieces ? Pieces : pieces;
            V acc[G][P];
            LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r)
                LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p)
                    acc[r][p] = p < count ? simd::load<V>(s.o + (r0 + r) * dv + c0 + p * w) * V(s.alpha[r0 + r]) : V(0.f);
            for (std::size_t j = 0; j < keys; ++j) {
                const std::size_t tile = (j0 + j) * chunks + ch;
                const std::uint64_t mask = h.v_bits[tile];
                const T* values = h.v_values + h.v_offsets[tile];
                V prob[G];
                LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) prob[r] = V(s.st[j * ld + r0 + r]);
#if XSIMD_WITH_AVX512BW
                if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
                    const __m512i ranks = simd::slice_ranks(mask);
                    auto slice = [&]<int p>() LACUNA_LAMBDA_INLINE {
                        if (std::size_t(p) >= count) return;
                        const V v(simd::spread_slice<p>(ranks, mask, __m512(simd::load<V>(values))));
                        values += std::popcount(std::uint16_t(mask >> (16 * p)));
                        LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) acc[r][p] = simd::fma(prob[r], v, acc[r][p]);
                    };
                    slice.template operator()<0>();
                    slice.template operator()<1>();
                    slice.template operator()<2>();
                    slice.template operator()<3>();
                } else
#endif
                LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p) {
                    if (p >= count) break;
                    const auto piece = std::uint32_t(mask >> (p * w) & piece_mask);
                    const V v = expand<V>(piece, values);
                    values += std::popcount(piece);
                    LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) acc[r][p] = simd::fma(prob[r], v, acc[r][p]);
                }
            }
            LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r)
                LACUNA_UNROLL for (std::size_t p = 0; p < P; ++p)
                    if (p < count) simd::store(s.o + (r0 + r) * dv + c0 + p * w, acc[r][p]);
        };
        auto groups = [&]<std::size_t Pieces>() {
            std::size_t r0 = 0;
            for (; r0 + R <= rows; r0 += R) group.template operator()<R, Pieces>(r0);
            for (; r0 < rows; ++r0) group.template operator()<1, Pieces>(r0);
        };
        if (pieces == P) groups.template operator()<P>();
        else groups.template operator()<0>();
        // The chunk's channels past its whole registers, one at a time.
        for (std::size_t c = c0 + pieces * w; c < c0 + width; ++c)
            for (std::size_t r = 0; r < rows; ++r) {
                float sum = s.o[r * dv + c] * s.alpha[r];
                for (std::size_t j = 0; j < keys; ++j) {
                    const std::size_t tile = (j0 + j) * chunks + ch;
                    const std::uint64_t mask = h.v_bits[tile];
                    if (mask >> (c - c0) & 1)
                        sum = simd::fma(s.st[j * ld + r], float(h.v_values[h.v_offsets[tile] + std::popcount(mask & ((std::uint64_t(1) << (c - c0)) - 1))]), sum);
                }
                s.o[r * dv + c] = sum;
            }
    }
}

// Rows [r0, r0 + rows) of task (0, hk) over keys [j_begin, j_end) (j_begin a multiple of 64);
// writes their partials.
template <class Arch, class T>
void sparse_decode_block(const decode_args<T>& a, const flash_scratch& s, std::size_t hk, std::size_t r0, std::size_t rows,
                         std::size_t j_begin, std::size_t j_end, float* partials) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, bk = attention_key_block, R = w >= 16 ? 4 : 1;
    static_assert(bk == 64, "a tile of scores is one key tile");
    const sparse_kv_head<T>& h = a.sparse[hk];
    const std::size_t ld = decode_stride(rows), length = a.lengths[0], full_tiles = length / bk;
    decode_begin(a, s, false, 0, hk, r0, rows); // queries scaled as floats: the tiles expand to floats
    std::fill(s.kf, s.kf + a.d, 0.f);
    const T* zero_row = reinterpret_cast<const T*>(s.kf);
    for (std::size_t j0 = j_begin; j0 < j_end; j0 += bk) {
        const std::size_t keys = std::min(bk, j_end - j0), tile = j0 / bk;
        if (tile < full_tiles) {
            std::size_t r = 0;
            for (; r + R <= rows; r += R) sparse_tile_scores<Arch, R>(s.qt, r, a.d, h, tile, s.st, ld);
            for (; r < rows; ++r) sparse_tile_scores<Arch, 1>(s.qt, r, a.d, h, tile, s.st, ld);
        } else { // the last block's dense rows
            const T* krow[bk + w];
            for (std::size_t j = 0; j < keys; ++j) krow[j] = h.k_tail + j * a.d;
            for (std::size_t j = keys; j < (keys + w - 1) / w * w; ++j) krow[j] = zero_row;
            decode_score_rows<Arch>(s.qt, false, a.scale, rows, a.d, krow, keys, s.st, ld);
        }
        decode_mask_future(a, s, length, r0, rows, j0, keys);
        decode_softmax<Arch>(s, rows, keys);
        sparse_add_values<Arch>(s, rows, a.dv, keys, h, j0);
    }
    decode_end(a, s, r0, rows, partials);
}

} // namespace detail

template <class Arch, class T>
void sparse_decode::operator()(Arch, const decode_args<T>* args, float* workspace, std::size_t task_begin,
                               std::size_t task_end) const noexcept {
    const detail::flash_scratch s(workspace, args->d, args->dv);
    detail::for_each_decode_block(*args, task_begin, task_end, [&](std::size_t, std::size_t hk, std::size_t r0, std::size_t rows,
                                                                   std::size_t j_begin, std::size_t j_end, float* partials) {
        detail::sparse_decode_block<Arch>(*args, s, hk, r0, rows, j_begin, j_end, partials);
    });
}

} // namespace lacuna::kernels
