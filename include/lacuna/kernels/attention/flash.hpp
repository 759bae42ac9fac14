// lacuna: fused attention, FlashAttention-style: a block of queries against tiles of keys, with an
// online softmax (running max, running sum, rescale of the accumulator on a new max), so the scores
// of a whole row never exist at once.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/kernels/panels.hpp"
#include "lacuna/kernels/primitives/convert.hpp"
#include "lacuna/kernels/primitives/transpose.hpp"
#include "lacuna/simd/compat.hpp"
#include "lacuna/simd/cpu.hpp"

namespace lacuna::kernels {

/// Element strides of the batch, head and sequence dimensions of a [B, H, L, D] operand (D is
/// contiguous); 0 where a dimension is broadcast.
struct head_strides {
    std::size_t b = 0, h = 0, l = 0;
    std::size_t at(std::size_t bi, std::size_t hi) const noexcept { return bi * b + hi * h; }
    /// The first element of head (bi, hi) of base; an empty tensor (null data, as for Lkv = 0) stays null.
    template <class T> T* head(T* base, std::size_t bi, std::size_t hi) const noexcept { return base ? base + at(bi, hi) : base; }
};

/// A tile of scaled scores handed to a score_hook: st[j · ldst + c] is the score of query i0 + c and
/// key j0 + j, for c < queries and j < keys (keys <= attention_key_block); `full` when the block mask
/// lists the tile's block as entirely unmasked; kv_len the keys of the whole call.
struct scores_view {
    float* st;
    std::size_t ldst, batch, head, i0, queries, j0, keys;
    bool full;
    std::size_t kv_len;
};

/// Code the caller compiles (FlexAttention's mask_mod and score_mod, inlined into a loop over the
/// tile) that the dispatched kernel calls once per tile, after the scores and before the softmax:
/// it may change scores and set them to -inf to mask them.
struct score_hook {
    void (*fn)(const void* context, const scores_view& tile) noexcept = nullptr;
    const void* context = nullptr;
};

/// The key blocks each block of queries visits, as FlexAttention's BlockMask lists them: for query
/// block qb of (b, h), num_partial[n] blocks at partial[n · max_blocks ...] and num_full[n] at full[...],
/// n = b · batch_stride + h · head_stride + qb (strides 0 where B or H is broadcast). Partial blocks go
/// through the hook's mask, full ones skip it.
struct kv_block_lists {
    const std::int32_t* num_partial;
    const std::int32_t* partial;
    const std::int32_t* num_full; // null: no full blocks
    const std::int32_t* full;
    std::size_t batch_stride, head_stride, max_blocks, kv_block;
};

/// The operands of one attention call, checked by the entry point: q [B, Hq, Lq, D], k [B, Hkv, Lkv, D],
/// v [B, Hkv, Lkv, Dv], out [B, Hq, Lq, Dv]; Hq a multiple of Hkv. Tasks are query_block rows of one
/// head. Query i may attend key j when causal is off or j <= i + Lkv - Lq, and the boolean mask (if
/// any) is true at [b, h, i, j]; the additive mask (if any) is added to the scaled score. With
/// blocks, only the listed key blocks are visited; the hook (if any) sees every tile. logsumexp, if
/// not null, receives one float per [b, h, i], contiguous.
template <class T> struct attention_args {
    const T* q;
    const T* k;
    const T* v;
    float* out;
    head_strides qs, ks, vs, os;
    std::size_t batch, q_heads, kv_heads, lq, lkv, d, dv;
    float scale;
    bool causal;
    bool bf16_probabilities; // bfloat16 inputs: probabilities rounded to bfloat16 for the product with v
    const float* additive_mask;
    head_strides additive_strides;
    const bool* boolean_mask;
    head_strides boolean_strides;
    float* logsumexp;
    std::size_t query_block;
    const kv_block_lists* blocks;
    score_hook hook;
};

/// Query rows of a task of attention() (flex_attention's tasks are the block mask's query blocks),
/// and keys per tile. Both fixed, not per arch, so that the order of the online softmax, and thus
/// every bit, is the same for any thread count.
inline constexpr std::size_t attention_query_block = 64;
inline constexpr std::size_t attention_key_block = 64;

/// Tasks of one call: every (batch, query head, block of query rows), in that order.
template <class T> std::size_t attention_tasks(const attention_args<T>& a) noexcept {
    return a.batch * a.q_heads * ((a.lq + a.query_block - 1) / a.query_block);
}

/// The floats of scratch one thread needs: the block's transposed queries, one tile of scores, the
/// block's output accumulator and softmax state, and (bfloat16) one tile of keys and values widened.
template <class T> std::size_t attention_workspace(const attention_args<T>& a) noexcept {
    constexpr std::size_t bq = attention_query_block, bk = attention_key_block;
    // Value rows of one key block (bfloat16 widened, or masked rows cleaned), and bfloat16 key rows;
    // with bf16_probabilities, the block's probabilities and values as bfloat16 pairs of keys.
    const bool bf16 = !std::is_same_v<T, float>;
    const std::size_t staged = bk * a.dv + (bf16 ? bk * a.d : 0) + (bf16 && a.bf16_probabilities ? bk / 2 * (bq + a.dv) : 0);
    return (a.d + 1) * bq + bk * bq + bq * a.dv + 3 * bq + staged;
}

/// Runs tasks [task_begin, task_end) (see attention_tasks) with attention_workspace floats of scratch.
struct flash_attention {
    template <class Arch, class T>
    void operator()(Arch, const attention_args<T>* args, float* workspace, std::size_t task_begin,
                    std::size_t task_end) const noexcept;
};

namespace detail {

// The register tiles of one arch: a block of bq queries spans `regs` registers; `rows` keys (for the
// scores) or queries (for the product with V) share each register tile.
template <class Arch> struct flash_shape {
    using V = simd::vec<float, Arch>;
    static constexpr std::size_t w = simd::width<V>;
    static constexpr std::size_t regs = 4;
    static constexpr std::size_t bq = regs * w;
    static constexpr std::size_t rows = w >= 16 ? 6 : 2; // 24 accumulators of 32 registers, or 8 of 16
};

// The scratch of one block: the queries transposed and scaled (d × bq, or for vdpbf16ps bfloat16
// pairs over d + 1 rounded to even), a tile of scores transposed
// (keys × bq, then the probabilities in place), the output accumulator (bq × dv), the running max and
// sum and the rescale factor per query, for bfloat16 the widened tile of keys and values, and for
// bf16_probabilities the tile's probabilities and values as pairs of keys (add_values_dpbf16).
struct flash_scratch {
    float *qt, *st, *o, *m, *l, *alpha, *kf, *vf, *pp, *vp;
    flash_scratch(float* w, std::size_t d, std::size_t dv) noexcept {
        constexpr std::size_t bq = attention_query_block, bk = attention_key_block;
        qt = w;
        st = qt + (d + 1) * bq;
        o = st + bk * bq;
        m = o + bq * dv;
        l = m + bq;
        alpha = l + bq;
        vf = alpha + bq;
        kf = vf + bk * dv; // bfloat16 only
        pp = kf + bk * d;  // bf16_probabilities only
        vp = pp + bk / 2 * bq;
    }
};

// Whether x[0, n) is all finite: x − x is 0 for finite values and NaN for NaN and ±inf.
template <class Arch> LACUNA_ALWAYS_INLINE bool all_finite(const float* x, std::size_t n) noexcept {
    using V = typename flash_shape<Arch>::V;
    constexpr std::size_t w = simd::width<V>;
    V acc(0.f);
    std::size_t i = 0;
    for (; i + w <= n; i += w) {
        const V v = simd::load<V>(x + i);
        acc = acc + (v - v);
    }
    float rest = 0.f;
    for (; i < n; ++i) rest += x[i] - x[i];
    return !simd::any(simd::is_nan(acc)) && rest == 0.f;
}

// A masked key gets weight exactly 0, but 0 · NaN (or inf) in its value row would still reach the
// output: masked keys must contribute nothing, as the reference has it (padding in a cache may hold
// anything). So in a tile with masked keys, value rows that are not all finite go through `staging`
// with their NaN and inf set to 0 (the tile's rows are copied there, unless they already are), and
// add_nonfinite_values then adds those elements for the queries that do keep the key. Returns the
// bit set of such rows (keys <= 64); finite tiles cost one pass over the rows.
template <class Arch, class VRow>
std::uint64_t stage_finite_values(std::size_t keys, std::size_t dv, const VRow& vrow, float* staging) noexcept {
    static_assert(attention_key_block <= 64, "one bit per key of a tile");
    std::uint64_t bad = 0;
    for (std::size_t j = 0; j < keys; ++j)
        if (!all_finite<Arch>(vrow(j), dv)) bad |= std::uint64_t(1) << j;
    if (bad == 0) return 0;
    for (std::size_t j = 0; j < keys; ++j) {
        float* row = staging + j * dv;
        if (vrow(j) != row) std::copy(vrow(j), vrow(j) + dv, row);
        if (bad >> j & 1)
            for (std::size_t e = 0; e < dv; ++e) row[e] = std::isfinite(row[e]) ? row[e] : 0.f;
    }
    return bad;
}

// The NaN and inf elements stage_finite_values held back, for the queries whose weight is not 0;
// value(j, e) is the element as the input has it.
template <class Value>
void add_nonfinite_values(const flash_scratch& s, std::size_t rows, std::size_t dv, std::uint64_t bad, std::size_t ld,
                          const Value& value) noexcept {
    for (; bad != 0; bad &= bad - 1) {
        const auto j = std::size_t(std::countr_zero(bad));
        for (std::size_t c = 0; c < rows; ++c)
            if (const float p = s.st[j * ld + c]; p != 0.f)
                for (std::size_t e = 0; e < dv; ++e)
                    if (const float x = value(j, e); !std::isfinite(x)) s.o[c * dv + e] += p * x;
    }
}

// st[r][c] = Σ_d krow[r][d] · qt[d][c] for R keys and the bq queries of the block.
template <class Arch, std::size_t R>
LACUNA_ALWAYS_INLINE void score_tile(const float* const* krow, const float* qt, std::size_t d, float* st) noexcept {
    using S = flash_shape<Arch>;
    using V = typename S::V;
    V acc[R][S::regs];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < S::regs; ++t) acc[r][t] = V(0.f);
    for (std::size_t c = 0; c < d; ++c) {
        V qv[S::regs];
        LACUNA_UNROLL for (std::size_t t = 0; t < S::regs; ++t) qv[t] = simd::load<V>(qt + c * S::bq + t * S::w);
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) {
            const V kb(krow[r][c]);
            LACUNA_UNROLL for (std::size_t t = 0; t < S::regs; ++t) acc[r][t] = simd::fma(kb, qv[t], acc[r][t]);
        }
    }
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < S::regs; ++t) simd::store(st + r * S::bq + t * S::w, acc[r][t]);
}

// Whether bfloat16 scores come from vdpbf16ps: on the AVX-512 table, where the CPU has the instruction.
template <class Arch, class T> bool scores_by_dpbf16() noexcept {
#if XSIMD_WITH_AVX512BW
    if constexpr (std::is_same_v<T, bfloat16> && std::is_same_v<Arch, xsimd::avx512bw>) return cpu().avx512_bf16;
#endif
    return false;
}

#if XSIMD_WITH_AVX512BW
// score_tile for bfloat16 keys and queries with vdpbf16ps: qt2 holds the block's queries as pairs
// along d ([⌈d/2⌉][64 queries][2], a zero after an odd d), each key contributes one broadcast pair
// per step, and every product is exact in float. Scores come out times scale.
template <std::size_t R>
LACUNA_TARGET_AVX512BF16 inline void
score_tile_dpbf16(const bfloat16* const* krow, const bfloat16* qt2, std::size_t d, float scale, float* st) noexcept {
    constexpr std::size_t regs = 4, bq = 64;
    __m512 acc[R][regs];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < regs; ++t) acc[r][t] = _mm512_setzero_ps();
    for (std::size_t p = 0; p < (d + 1) / 2; ++p) {
        __m512bh qv[regs];
        LACUNA_UNROLL for (std::size_t t = 0; t < regs; ++t) qv[t] = (__m512bh)_mm512_loadu_si512(qt2 + (p * bq + t * 16) * 2);
        const bool whole = 2 * p + 1 < d; // an odd d's last pair holds one key element (its partner in q is 0)
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) {
            std::uint32_t bits;
            if (whole) {
                std::memcpy(&bits, krow[r] + 2 * p, 4);
            } else {
                std::uint16_t half;
                std::memcpy(&half, krow[r] + 2 * p, 2);
                bits = half;
            }
            const __m512bh kb = (__m512bh)_mm512_set1_epi32(std::int32_t(bits));
            LACUNA_UNROLL for (std::size_t t = 0; t < regs; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], qv[t], kb);
        }
    }
    const __m512 s = _mm512_set1_ps(scale);
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < regs; ++t) _mm512_storeu_ps(st + r * bq + t * 16, _mm512_mul_ps(acc[r][t], s));
}

// out[jp · ld + c] = the bfloat16 pair (row(2jp)[c], row(2jp + 1)[c]) for c < cols (a multiple of 16),
// low half first, with 0 as the partner of an odd last row: the operand layout of vdpbf16ps, so that
// one instruction takes two keys. Rows of float round to nearest even (exact for values that came
// from bfloat16); rows of bfloat16 are taken as they are.
LACUNA_TARGET_AVX512BF16 LACUNA_ALWAYS_INLINE __m512i bf16_in_low_halves(const float* x) noexcept {
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x)));
}
LACUNA_TARGET_AVX512BF16 LACUNA_ALWAYS_INLINE __m512i bf16_in_low_halves(const bfloat16* x) noexcept {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
}

template <class Row>
LACUNA_TARGET_AVX512BF16 inline void bf16_key_pairs(const Row& row, std::size_t keys, std::size_t cols, std::uint32_t* out,
                                                    std::size_t ld) noexcept {
    for (std::size_t jp = 0; jp < (keys + 1) / 2; ++jp) {
        const auto* lo = row(2 * jp);
        const auto* hi = 2 * jp + 1 < keys ? row(2 * jp + 1) : nullptr;
        for (std::size_t c = 0; c < cols; c += 16) {
            const __m512i high = hi ? _mm512_slli_epi32(bf16_in_low_halves(hi + c), 16) : _mm512_setzero_si512();
            _mm512_storeu_si512(out + jp * ld + c, _mm512_or_si512(bf16_in_low_halves(lo + c), high));
        }
    }
}

// value_tile with the tile's probabilities and values as bfloat16 pairs of keys (bf16_key_pairs):
// o[c][cols] = o[c][cols] · alpha[c] + Σ_jp pp[jp][c] · vp[jp][cols] for R queries, one vdpbf16ps per
// pair of keys and register of columns (16 from col).
template <std::size_t tiles, std::size_t R>
LACUNA_TARGET_AVX512BF16 inline void value_tile_dpbf16(float* o, std::size_t ldo, const float* alpha, const std::uint32_t* pp,
                                                       std::size_t ldp, std::size_t pairs, const std::uint32_t* vp,
                                                       std::size_t ldv, std::size_t col) noexcept {
    __m512 acc[R][tiles];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t)
            acc[r][t] = _mm512_mul_ps(_mm512_loadu_ps(o + r * ldo + col + t * 16), _mm512_set1_ps(alpha[r]));
    for (std::size_t jp = 0; jp < pairs; ++jp) {
        __m512bh pr[R];
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) pr[r] = (__m512bh)_mm512_set1_epi32(std::int32_t(pp[jp * ldp + r]));
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) {
            const __m512bh vt = (__m512bh)_mm512_loadu_si512(vp + jp * ldv + col + t * 16);
            LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], pr[r], vt);
        }
    }
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) _mm512_storeu_ps(o + r * ldo + col + t * 16, acc[r][t]);
}

// add_values for bf16_probabilities, dv a multiple of 16: the tile's probabilities (st, keys × bq)
// and value rows vrow(j) rounded to bfloat16 pairs of keys, then products on vdpbf16ps, twice the
// keys an instruction of float FMAs takes.
template <std::size_t bq, class VRow>
LACUNA_TARGET_AVX512BF16 inline void add_values_dpbf16(const flash_scratch& s, std::size_t rows, std::size_t dv, std::size_t keys,
                                                       const VRow& vrow) noexcept {
    constexpr std::size_t R = 6;
    auto* pp = reinterpret_cast<std::uint32_t*>(s.pp);
    auto* vp = reinterpret_cast<std::uint32_t*>(s.vp);
    bf16_key_pairs([&](std::size_t j) { return s.st + j * bq; }, keys, (rows + 15) / 16 * 16, pp, bq);
    bf16_key_pairs(vrow, keys, dv, vp, dv);
    const std::size_t pairs = (keys + 1) / 2;
    auto panel = [&]<std::size_t tiles>(std::size_t col) {
        auto group = [&]<std::size_t G>(std::size_t c) {
            value_tile_dpbf16<tiles, G>(s.o + c * dv, dv, s.alpha + c, pp + c, bq, pairs, vp, dv, col);
        };
        for_each_group<R>(rows, group);
        return col + tiles * 16;
    };
    std::size_t col = 0;
    while (col + 64 <= dv) col = panel.template operator()<4>(col);
    if (col + 32 <= dv) col = panel.template operator()<2>(col);
    if (col + 16 <= dv) panel.template operator()<1>(col);
}
#endif

// A prefetch hook of add_values that fetches nothing (see rows_ahead in decode.hpp).
struct no_prefetch {
    void operator()(std::size_t) const noexcept {}
};

// o[c][cols] = o[c][cols] · alpha[c] + Σ_j p[j][c] · vrow(j)[cols] for R queries c0 .. c0 + R - 1 and
// the columns [col, col + tiles · width<V>); ahead(j) is called as key j is read.
template <class V, std::size_t tiles, std::size_t R, class VRow, class Ahead>
LACUNA_ALWAYS_INLINE void value_tile(float* o, std::size_t ldo, const float* alpha, const float* p, std::size_t ldp,
                                     std::size_t keys, const VRow& vrow, std::size_t col, const Ahead& ahead) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V acc[R][tiles];
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = simd::load<V>(o + r * ldo + col + t * w) * V(alpha[r]);
    for (std::size_t j = 0; j < keys; ++j) {
        ahead(j);
        V pr[R];
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) pr[r] = V(p[j * ldp + r]);
        const auto* row = vrow(j) + col; // float, or bfloat16 widened as it is loaded
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) {
            const V vt = simd::load_to_register<V>(row + t * w);
            LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) acc[r][t] = simd::fma(pr[r], vt, acc[r][t]);
        }
    }
    LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r)
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) simd::store(o + r * ldo + col + t * w, acc[r][t]);
}

// The accumulator of `rows` queries (rows × dv) rescaled by alpha, plus the probabilities of the
// tile (keys × ld, in st) times the values vrow(j), several queries at a time; ahead(j) is called
// as value row j is first read.
template <class Arch, class VRow, class Ahead = no_prefetch>
LACUNA_ALWAYS_INLINE void add_values(const flash_scratch& s, std::size_t rows, std::size_t dv, std::size_t keys, std::size_t ld,
                                     const VRow& vrow, const Ahead& ahead = {}) noexcept {
    constexpr std::size_t R = flash_shape<Arch>::rows;
    for_each_panel<Arch>(dv, [&]<class V, std::size_t tiles>(std::size_t col) {
        auto group = [&]<std::size_t G>(std::size_t c) {
            if (c == 0 && col == 0) value_tile<V, tiles, G>(s.o + c * dv, dv, s.alpha + c, s.st + c, ld, keys, vrow, col, ahead);
            else value_tile<V, tiles, G>(s.o + c * dv, dv, s.alpha + c, s.st + c, ld, keys, vrow, col, no_prefetch{});
        };
        for_each_group<R>(rows, group);
        return tiles * simd::width<V>;
    });
}

// Each lane of v combined by op with the lanes congruent to it modulo period (which divides the
// width): once a tile, so plain scalar code.
template <class V, class Op> LACUNA_ALWAYS_INLINE V fold_lanes(V v, std::size_t period, Op op) noexcept {
    constexpr std::size_t w = simd::width<V>;
    alignas(64) float lane[w];
    simd::store(lane, v);
    for (std::size_t l = period; l < w; ++l) lane[l % period] = op(lane[l % period], lane[l]);
    for (std::size_t l = period; l < w; ++l) lane[l] = lane[l % period];
    return simd::load<V>(lane);
}

// Folds a tile of scores (keys × the first `columns` of ld columns, a multiple of the register
// width; masked scores -inf) into the running max m and sum l of each query, leaving exp(score - max)
// in place and the factor that rescales the accumulator in alpha. A period below the width packs
// several keys in a register row (ld = columns = width): query q is every lane l with l % period = q,
// whose m, l and alpha are kept in all of those lanes.
template <class Arch>
LACUNA_ALWAYS_INLINE void online_softmax(const flash_scratch& s, std::size_t keys, std::size_t ld, std::size_t columns,
                                         std::size_t period = simd::width<simd::vec<float, Arch>>) noexcept {
    using V = simd::vec<float, Arch>;
    const V neg_inf(-std::numeric_limits<float>::infinity());
    const bool packed = period < simd::width<V>;
    for (std::size_t c = 0; c < columns; c += simd::width<V>) {
        const V m_old = simd::load<V>(s.m + c);
        V m_new = m_old;
        for (std::size_t j = 0; j < keys; ++j) m_new = simd::max(m_new, simd::load<V>(s.st + j * ld + c));
        if (packed) m_new = fold_lanes(m_new, period, [](float x, float y) { return std::max(x, y); });
        // Nothing kept yet: subtract 0, so that exp(-inf - 0) = 0 rather than exp(-inf + inf) = NaN.
        const V m_use = simd::select(m_new == neg_inf, V(0.f), m_new);
        V sum(0.f);
        for (std::size_t j = 0; j < keys; ++j) {
            const V p = simd::exp(simd::load<V>(s.st + j * ld + c) - m_use);
            simd::store(s.st + j * ld + c, p);
            sum += p;
        }
        if (packed) sum = fold_lanes(sum, period, std::plus<float>());
        const V alpha = simd::exp(m_old - m_use);
        simd::store(s.alpha + c, alpha);
        simd::store(s.l + c, simd::fma(simd::load<V>(s.l + c), alpha, sum));
        simd::store(s.m + c, m_new);
    }
}

// Masks a tile of scores st (keys × bq) for queries [i0, i0 + n) and keys [j0, j0 + keys): the
// causal bound (when the tile crosses it) and the dense masks.
template <class T>
void mask_tile(const attention_args<T>& a, std::size_t bi, std::size_t h, std::size_t i0, std::size_t n, std::size_t j0,
               std::size_t keys, bool crosses_diagonal, float* st, std::size_t ldst) noexcept {
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    if (crosses_diagonal) {
        // key j is kept for query i when j <= i + lkv - lq, i.e. for c >= j - (lkv - lq) - i0
        const auto offset = std::ptrdiff_t(a.lkv) - std::ptrdiff_t(a.lq);
        for (std::size_t j = 0; j < keys; ++j) {
            const std::ptrdiff_t first = std::ptrdiff_t(j0 + j) - offset - std::ptrdiff_t(i0);
            const std::size_t masked = std::size_t(std::clamp<std::ptrdiff_t>(first, 0, std::ptrdiff_t(n)));
            for (std::size_t c = 0; c < masked; ++c) st[j * ldst + c] = neg_inf;
        }
    }
    if (a.additive_mask) {
        const float* add = a.additive_mask + a.additive_strides.at(bi, h) + j0;
        for (std::size_t c = 0; c < n; ++c)
            for (std::size_t j = 0; j < keys; ++j) st[j * ldst + c] += add[(i0 + c) * a.additive_strides.l + j];
    }
    if (a.boolean_mask) {
        const bool* keep = a.boolean_mask + a.boolean_strides.at(bi, h) + j0;
        for (std::size_t c = 0; c < n; ++c)
            for (std::size_t j = 0; j < keys; ++j)
                if (!keep[(i0 + c) * a.boolean_strides.l + j]) st[j * ldst + c] = neg_inf;
    }
}

// Calls visit(j_begin, j_end, full) for the key ranges queries [i0, i0 + n) of task block qb visit:
// the listed blocks of a block mask, else every key up to the causal bound.
template <class T, class Visit>
LACUNA_ALWAYS_INLINE void for_each_key_range(const attention_args<T>& a, std::size_t bi, std::size_t h, std::size_t qb,
                                             std::size_t i0, std::size_t n, Visit&& visit) noexcept {
    if (const kv_block_lists* lists = a.blocks) {
        const std::size_t row = bi * lists->batch_stride + h * lists->head_stride + qb;
        auto visit_list = [&](const std::int32_t* count, const std::int32_t* index, bool full) {
            for (std::size_t e = 0; e < std::size_t(count[row]); ++e) {
                const std::size_t first = std::size_t(index[row * lists->max_blocks + e]) * lists->kv_block;
                visit(first, std::min(a.lkv, first + lists->kv_block), full);
            }
        };
        visit_list(lists->num_partial, lists->partial, false);
        if (lists->num_full) visit_list(lists->num_full, lists->full, true);
        return;
    }
    // Keys past the last one the block's last query may see take no part.
    std::size_t kv_end = a.lkv;
    if (a.causal)
        kv_end = std::size_t(std::clamp<std::ptrdiff_t>(std::ptrdiff_t(i0 + n + a.lkv) - std::ptrdiff_t(a.lq), 0, std::ptrdiff_t(a.lkv)));
    visit(0, kv_end, false);
}

// Queries [i0, i0 + n) of head h in batch bi, n <= bq of the arch, inside task block qb.
template <class Arch, class T>
void attend_block(const attention_args<T>& a, const flash_scratch& s, std::size_t bi, std::size_t h, std::size_t qb,
                  std::size_t i0, std::size_t n) noexcept {
    using S = flash_shape<Arch>;
    constexpr std::size_t bk = attention_key_block;
    const std::size_t hk = h / (a.q_heads / a.kv_heads);
    const T* q = a.qs.head(a.q, bi, h) + i0 * a.qs.l;
    const T* k = a.ks.head(a.k, bi, hk);
    const T* v = a.vs.head(a.v, bi, hk);

    // bfloat16 on a CPU with vdpbf16ps: scores from the bfloat16 values themselves, and with
    // bf16_probabilities the product with v too.
    const bool pairs = scores_by_dpbf16<Arch, T>();
    const bool paired_values = pairs && a.bf16_probabilities && a.dv % 16 == 0;
    // The queries, scaled, as columns: the score tile is then a product of broadcast keys and
    // whole registers of queries. The padding columns are zero and never leave the scratch.
    if (pairs) {
        auto* qt2 = reinterpret_cast<bfloat16*>(s.qt);
        if (a.d % 2 == 0 && a.qs.l % 2 == 0 && reinterpret_cast<std::uintptr_t>(q) % 4 == 0) {
            // A pair of bfloat16 is 32 bits: the pairs of the queries' rows transposed as floats,
            // bits unchanged.
            transpose{}(Arch{}, reinterpret_cast<const float*>(q), a.qs.l / 2, n, a.d / 2, s.qt, S::bq);
            for (std::size_t e = 0; e < a.d / 2; ++e) std::fill(s.qt + e * S::bq + n, s.qt + (e + 1) * S::bq, 0.f);
        } else {
            for (std::size_t e = 0; e < (a.d + 1) / 2 * 2; ++e)
                for (std::size_t c = 0; c < S::bq; ++c)
                    qt2[(e / 2 * S::bq + c) * 2 + e % 2] = c < n && e < a.d ? bfloat16(q[c * a.qs.l + e]) : bfloat16(0.f);
        }
    } else if constexpr (std::is_same_v<T, float>) {
        transpose{}(Arch{}, q, a.qs.l, n, a.d, s.qt, S::bq);
        using V = typename S::V;
        for (std::size_t e = 0; e < a.d; ++e) {
            float* row = s.qt + e * S::bq;
            for (std::size_t c = 0; c < S::bq; c += S::w) simd::store(row + c, V(a.scale) * simd::load<V>(row + c));
            std::fill(row + n, row + S::bq, 0.f); // after the scale: whatever the scratch held there
        }
    } else {
        for (std::size_t c = 0; c < S::bq; ++c)
            for (std::size_t e = 0; e < a.d; ++e) s.qt[e * S::bq + c] = c < n ? a.scale * float(q[c * a.qs.l + e]) : 0.f;
    }
    for (std::size_t c = 0; c < S::bq; ++c) {
        s.m[c] = -std::numeric_limits<float>::infinity();
        s.l[c] = 0.f;
    }
    std::fill(s.o, s.o + n * a.dv, 0.f);

    const auto offset = std::ptrdiff_t(a.lkv) - std::ptrdiff_t(a.lq);
    for_each_key_range(a, bi, h, qb, i0, n, [&](std::size_t j_begin, std::size_t j_end, bool full) {
    for (std::size_t j0 = j_begin; j0 < j_end; j0 += bk) {
        const std::size_t keys = std::min(bk, j_end - j0);
        const bool crosses_diagonal = a.causal && std::ptrdiff_t(j0 + keys - 1) > std::ptrdiff_t(i0) + offset;
        // A tile with masked keys stages its value rows as float (stage_finite_values).
        const bool masked = crosses_diagonal || a.additive_mask || a.boolean_mask || (a.hook.fn && !full);
        const float* kt = nullptr;
        const float* vt = nullptr;
        std::size_t ldk = a.ks.l, ldv = a.vs.l;
        if constexpr (std::is_same_v<T, float>) {
            kt = k + j0 * a.ks.l;
            vt = v + j0 * a.vs.l;
        } else {
            for (std::size_t j = 0; j < keys; ++j) {
                if (!pairs) convert{}(Arch{}, k + (j0 + j) * a.ks.l, s.kf + j * a.d, a.d);
                if (!paired_values || masked) convert{}(Arch{}, v + (j0 + j) * a.vs.l, s.vf + j * a.dv, a.dv);
            }
            kt = s.kf;
            vt = s.vf;
            ldk = a.d;
            ldv = a.dv;
        }

        // Scores, S::rows keys at a time.
        bool scored = false;
#if XSIMD_WITH_AVX512BW
        if constexpr (std::is_same_v<T, bfloat16> && std::is_same_v<Arch, xsimd::avx512bw>)
            if (pairs) {
                const auto* qt2 = reinterpret_cast<const bfloat16*>(s.qt);
                for_each_group<S::rows>(keys, [&]<std::size_t G>(std::size_t j) {
                    const bfloat16* krow[G];
                    LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) krow[r] = k + (j0 + j + r) * a.ks.l;
                    score_tile_dpbf16<G>(krow, qt2, a.d, a.scale, s.st + j * S::bq);
                });
                scored = true;
            }
#endif
        if (!scored)
            for_each_group<S::rows>(keys, [&]<std::size_t G>(std::size_t j) {
                const float* krow[G];
                LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) krow[r] = kt + (j + r) * ldk;
                score_tile<Arch, G>(krow, s.qt, a.d, s.st + j * S::bq);
            });

        if (crosses_diagonal || a.additive_mask || a.boolean_mask)
            mask_tile(a, bi, h, i0, n, j0, keys, crosses_diagonal, s.st, S::bq);
        if (a.hook.fn) a.hook.fn(a.hook.context, scores_view{s.st, S::bq, bi, h, i0, n, j0, keys, full, a.lkv});
        online_softmax<Arch>(s, keys, S::bq, S::bq);

        std::uint64_t nonfinite = 0;
        if (masked) {
            nonfinite = stage_finite_values<Arch>(keys, a.dv, [&](std::size_t jj) { return vt + jj * ldv; }, s.vf);
            if (nonfinite) vt = s.vf, ldv = a.dv;
        }
        auto vrow = [&](std::size_t jj) { return vt + jj * ldv; };
#if XSIMD_WITH_AVX512BW
        if constexpr (std::is_same_v<T, bfloat16> && std::is_same_v<Arch, xsimd::avx512bw>)
            if (paired_values && !masked) // pairs straight from the input rows, never widened
                add_values_dpbf16<S::bq>(s, n, a.dv, keys, [&](std::size_t jj) { return v + (j0 + jj) * a.vs.l; });
            else if (paired_values)
                add_values_dpbf16<S::bq>(s, n, a.dv, keys, vrow);
            else
                add_values<Arch>(s, n, a.dv, keys, S::bq, vrow);
        else
#endif
            add_values<Arch>(s, n, a.dv, keys, S::bq, vrow);
        if (nonfinite)
            add_nonfinite_values(s, n, a.dv, nonfinite, S::bq,
                                 [&](std::size_t jj, std::size_t e) { return float(v[(j0 + jj) * a.vs.l + e]); });
    }
    });

    // out = accumulator / sum; a query with nothing kept gets zeros and logsumexp -inf. In
    // registers: the compiler left this loop scalar, a store an element (4% of a 5%-dense block mask).
    using V = typename S::V;
    for (std::size_t c = 0; c < n; ++c) {
        float* out = a.os.head(a.out, bi, h) + (i0 + c) * a.os.l;
        const float* acc = s.o + c * a.dv;
        const float l = s.l[c];
        if (l == 0.f) {
            std::fill(out, out + a.dv, 0.f);
        } else {
            const float inv = 1.f / l;
            std::size_t e = 0;
            for (; e + S::w <= a.dv; e += S::w) simd::store(out + e, V(inv) * simd::load<V>(acc + e));
            for (; e < a.dv; ++e) out[e] = acc[e] * inv;
        }
        if (a.logsumexp)
            a.logsumexp[(bi * a.q_heads + h) * a.lq + i0 + c] =
                l == 0.f ? -std::numeric_limits<float>::infinity() : s.m[c] + std::log(l);
    }
}

} // namespace detail

template <class Arch, class T>
void flash_attention::operator()(Arch, const attention_args<T>* args, float* workspace, std::size_t task_begin,
                                 std::size_t task_end) const noexcept {
    const attention_args<T>& a = *args;
    const detail::flash_scratch s(workspace, a.d, a.dv);
    constexpr std::size_t bq = detail::flash_shape<Arch>::bq;
    static_assert(attention_query_block % bq == 0, "an arch's query block divides attention()'s tasks");
    const std::size_t blocks = (a.lq + a.query_block - 1) / a.query_block;
    for (std::size_t t = task_begin; t < task_end; ++t) {
        const std::size_t block = t % blocks, h = t / blocks % a.q_heads, bi = t / blocks / a.q_heads;
        const std::size_t end = std::min(a.lq, (block + 1) * a.query_block);
        for (std::size_t i0 = block * a.query_block; i0 < end; i0 += bq)
            detail::attend_block<Arch>(a, s, bi, h, block, i0, std::min(bq, end - i0));
    }
}

} // namespace lacuna::kernels
