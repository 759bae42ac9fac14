// lacuna: attention of a few new queries over a long KV cache (decode), split over the keys: each
// task folds one range of keys into a partial (max, sum, accumulator) per query, which the entry
// point merges. Reading the cache once is the whole cost, so the scores are dot products that load
// each key row once for all queries of its KV head, not a product of transposed tiles.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "lacuna/kernels/attention/flash.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// Where key and value rows live: pages of page_size tokens, page p of sequence b being
/// block_table[b · table_stride + p] (a paged cache), or, without a block table, one page per batch
/// entry (a contiguous cache, page_size its capacity). Strides in elements: per page, KV head, token.
template <class T> struct kv_source {
    const T* k;
    const T* v;
    const std::int32_t* block_table;
    std::size_t table_stride, page_size;
    std::size_t k_page, k_head, k_row;
    std::size_t v_page, v_head, v_row;

    std::size_t page_of(std::size_t b, std::size_t j) const noexcept {
        return block_table ? std::size_t(block_table[b * table_stride + j / page_size]) : b;
    }
    const T* k_row_at(std::size_t b, std::size_t hk, std::size_t j) const noexcept {
        return k + page_of(b, j) * k_page + hk * k_head + j % page_size * k_row;
    }
    const T* v_row_at(std::size_t b, std::size_t hk, std::size_t j) const noexcept {
        return v + page_of(b, j) * v_page + hk * v_head + j % page_size * v_row;
    }
};

/// What the decode kernels read of one KV head of a sparse_kv_cache: key tiles (tile t, channel c at
/// t · d + c: a mask of the block's 64 tokens, bit i for token 64t + i, and the offset of its first
/// value), the dense key rows of the last, incomplete block (64 × d), and value tiles (token j,
/// chunk ch of 64 channels at j · chunks + ch). Value arrays may be read 16 elements past their end.
template <class T> struct sparse_kv_head {
    const std::uint64_t* k_bits;
    const std::uint32_t* k_offsets;
    const T* k_values;
    const T* k_tail;
    const std::uint64_t* v_bits;
    const std::uint32_t* v_offsets;
    const T* v_values;
};

/// The operands of a decode call, checked by the entry point: q [B, Hq, Lq, D] (strides qs), out
/// [B, Hq, Lq, Dv]; sequence b holds lengths[b] keys, of which its Lq queries are the last (causal:
/// query t sees keys j <= lengths[b] - Lq + t). Tasks are (b, KV head, range of split keys); task t
/// writes rows × (Dv + 2) floats at partials + t · rows · (Dv + 2), rows = (Hq / Hkv) · Lq: per
/// query, the running max, the sum, then the accumulator.
template <class T> struct decode_args {
    const T* q;
    head_strides qs;
    std::size_t batch, q_heads, kv_heads, lq, d, dv;
    float scale;
    bool causal;
    kv_source<T> kv;
    const std::size_t* lengths;
    std::size_t split, splits; // keys per task, tasks per (b, KV head)
    float* partials;
    const sparse_kv_head<T>* sparse; // per KV head, for sparse_decode (batch 1); null otherwise
};

/// Queries handled together in a decode task: their scores share each load of a key row.
inline constexpr std::size_t decode_rows = 16;

/// The row stride of a tile of scores of `rows` queries (key j, query r at j · stride + r): a power
/// of two, so that a register holds the scores of whole keys (four keys of four queries, the usual
/// group of query heads a KV head serves) and the softmax computes no lanes for absent queries.
inline std::size_t decode_stride(std::size_t rows) noexcept { return std::bit_ceil(rows); }

/// The floats of scratch one thread needs: attention's for bfloat16, whose staging area holds the
/// row of zeros that pads a tile of keys (decode widens nothing into it: values are widened as
/// they are loaded).
template <class T> std::size_t decode_workspace(const decode_args<T>& a) noexcept {
    attention_args<bfloat16> shape{};
    shape.d = a.d;
    shape.dv = a.dv;
    return attention_workspace(shape);
}

/// Runs decode tasks [task_begin, task_end) with decode_workspace floats of scratch.
struct flash_decode {
    template <class Arch, class T>
    void operator()(Arch, const decode_args<T>* args, float* workspace, std::size_t task_begin,
                    std::size_t task_end) const noexcept;
};

namespace detail {

// The key or value rows `distance` positions past the one being read, in this tile or the next (a
// tile stays in one page, so its rows are evenly spaced), prefetched as the tile computes: the
// cache then streams from memory while the core works. Prefetching the whole next tile at once
// instead left the core waiting on that burst, then computing while memory idled.
struct rows_ahead {
    // About 8 KiB ahead: 16 float rows of 128 measured faster than 8 or 48, and bfloat16 rows of 128
    // faster 32 ahead than 16.
    static constexpr std::size_t reach = 8192;
    static std::size_t distance_for(std::size_t row_bytes) noexcept {
        return std::clamp<std::size_t>(reach / std::max<std::size_t>(row_bytes, 1), 1, attention_key_block);
    }

    std::size_t distance;   // rows ahead, at most a tile
    const char* here;       // row 0 of this tile
    std::size_t keys;       // rows in this tile
    const char* next;       // row 0 of the next tile
    std::size_t next_keys;  // rows in the next tile (0: none)
    std::size_t stride;     // bytes from row to row
    std::size_t bytes;      // bytes of a row

    // The row `distance` past row j.
    LACUNA_ALWAYS_INLINE void operator()(std::size_t j) const noexcept {
        j += distance;
        const char* row = j < keys ? here + j * stride : j - keys < next_keys ? next + (j - keys) * stride : nullptr;
        if (!row) return;
        const auto end = std::uintptr_t(row + bytes);
        for (auto line = std::uintptr_t(row) & ~std::uintptr_t(63); line < end; line += 64) __builtin_prefetch(reinterpret_cast<const void*>(line));
    }
};

// The scores of a block of RB queries from r0 and width / RB keys from j0, lane kb · RB + rb of
// total (query r0 + rb, key j0 + kb), into st: runs of RB, one store when they fill the stride ld.
template <std::size_t RB, class V> LACUNA_ALWAYS_INLINE void store_score_runs(const V& total, float* st, std::size_t ld, std::size_t r0, std::size_t j0) noexcept {
    constexpr std::size_t w = simd::width<V>;
    if (RB == ld) return simd::store(st + j0 * ld, total);
    alignas(64) float sums[w];
    simd::store(sums, total);
    LACUNA_UNROLL for (std::size_t kb = 0; kb < w / RB; ++kb) std::memcpy(st + (j0 + kb) * ld + r0, sums + kb * RB, RB * sizeof(float));
}

// st[j · ld + r] = qf[r] · krow[j] for RB query rows from r0 and the keys of the tile: blocks of
// RB rows × (width / RB) keys, whose width<V> dot products accumulate in one register each and are
// reduced together; each step loads RB pieces of queries and width / RB of keys for width FMAs.
// krow holds the keys rounded up to the register width (rows of zeros past the last), whose scores
// may be written past the tile's keys.
// ahead, if given, prefetches key rows as the keys are read.
template <class Arch, std::size_t RB, class T>
LACUNA_ALWAYS_INLINE void decode_scores(const float* qf, std::size_t r0, std::size_t d, const T* const* krow,
                                        std::size_t keys, float* st, std::size_t ld, const rows_ahead* ahead) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, KB = w / RB;
    const std::size_t body = d / w * w;
    const float* q = qf + r0 * d;
    for (std::size_t j0 = 0; j0 < keys; j0 += KB) {
        V part[w];
        LACUNA_UNROLL for (std::size_t e = 0; e < w; ++e) part[e] = V(0.f);
        for (std::size_t c = 0; c < body; c += w) {
            V qc[RB], kc[KB];
            LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) qc[rb] = simd::load_to_register<V>(q + rb * d + c);
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb) kc[kb] = simd::load_to_register<V>(krow[j0 + kb] + c);
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb)
                LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) part[kb * RB + rb] = simd::fma(qc[rb], kc[kb], part[kb * RB + rb]);
        }
        if (ahead)
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb) (*ahead)(j0 + kb);
        const V total = [&] {
            if constexpr (w == 1) return part[0];
            else return simd::sums_of(part);
        }();
        if (body == d) { // no tail: the sums are the scores
            store_score_runs<RB>(total, st, ld, r0, j0);
            continue;
        }
        alignas(64) float sums[w];
        simd::store(sums, total);
        for (std::size_t kb = 0; kb < KB && j0 + kb < keys; ++kb)
            LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) {
                float tail = 0.f;
                for (std::size_t c = body; c < d; ++c) tail += q[rb * d + c] * float(krow[j0 + kb][c]);
                st[(j0 + kb) * ld + r0 + rb] = sums[kb * RB + rb] + tail;
            }
    }
}

#if XSIMD_WITH_AVX512BW
// decode_scores for bfloat16 queries and keys with vdpbf16ps: each instruction takes 32 products of
// a query and a key, every one exact in float, with no widening. q2 holds the rows unscaled
// (bfloat16, d apart); the scores come out times scale.
template <std::size_t RB>
LACUNA_TARGET_AVX512BF16 inline void
decode_scores_dpbf16(const bfloat16* q2, std::size_t r0, std::size_t d, const bfloat16* const* krow, std::size_t keys,
                     float scale, float* st, std::size_t ld, const rows_ahead* ahead) noexcept {
    using V = simd::vec<float, xsimd::avx512bw>;
    constexpr std::size_t KB = 16 / RB;
    const std::size_t body = d / 32 * 32;
    const bfloat16* q = q2 + r0 * d;
    for (std::size_t j0 = 0; j0 < keys; j0 += KB) {
        __m512 part[16];
        LACUNA_UNROLL for (std::size_t e = 0; e < 16; ++e) part[e] = _mm512_setzero_ps();
        for (std::size_t c = 0; c < body; c += 32) {
            __m512bh qc[RB], kc[KB];
            LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) qc[rb] = (__m512bh)_mm512_loadu_si512(q + rb * d + c);
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb) kc[kb] = (__m512bh)_mm512_loadu_si512(krow[j0 + kb] + c);
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb)
                LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) part[kb * RB + rb] = _mm512_dpbf16_ps(part[kb * RB + rb], qc[rb], kc[kb]);
        }
        if (ahead)
            LACUNA_UNROLL for (std::size_t kb = 0; kb < KB; ++kb) (*ahead)(j0 + kb);
        V rows[16];
        LACUNA_UNROLL for (std::size_t e = 0; e < 16; ++e) rows[e] = V(part[e]);
        const V total = simd::sums_of(rows);
        if (body == d) { // no tail: the sums are the scores
            store_score_runs<RB>(total * V(scale), st, ld, r0, j0);
            continue;
        }
        alignas(64) float sums[16];
        simd::store(sums, total);
        for (std::size_t kb = 0; kb < KB && j0 + kb < keys; ++kb)
            LACUNA_UNROLL for (std::size_t rb = 0; rb < RB; ++rb) {
                float tail = 0.f;
                for (std::size_t c = body; c < d; ++c) tail += float(q[rb * d + c]) * float(krow[j0 + kb][c]);
                st[(j0 + kb) * ld + r0 + rb] = scale * (sums[kb * RB + rb] + tail);
            }
    }
}
#endif

// Calls block.template operator()<RB>(r) for the rows [r, rows) in blocks of the largest power of
// two RB <= most (a power of two) that fits.
template <std::size_t most, class Block> LACUNA_ALWAYS_INLINE void for_row_blocks(std::size_t rows, Block&& block, std::size_t r = 0) {
    for (; r + most <= rows; r += most) block.template operator()<most>(r);
    if constexpr (most > 1) for_row_blocks<most / 2>(rows, block, r);
}

// The scores of `rows` queries into st (see decode_scores): qt holds the rows scaled as floats, or
// with `pairs` (bfloat16 on a CPU with vdpbf16ps) unscaled as bfloat16. ahead, if given, prefetches
// key rows as the first block of rows reads the keys.
template <class Arch, class T>
LACUNA_ALWAYS_INLINE void decode_score_rows(const float* qt, bool pairs, float scale, std::size_t rows, std::size_t d,
                                            const T* const* krow, std::size_t keys, float* st, std::size_t ld,
                                            const rows_ahead* ahead = nullptr) noexcept {
    // Eight queries a block on AVX-512 (the usual eight query heads a KV head of large models read
    // each key once), four below: 8 + 2 loads for 16 FMAs there, and AVX2's 8 + 1 for 8 would not pay.
    constexpr std::size_t w = simd::width<simd::vec<float, Arch>>, most = w >= 16 ? 8 : std::min<std::size_t>(4, w);
#if XSIMD_WITH_AVX512BW
    if constexpr (std::is_same_v<T, bfloat16> && std::is_same_v<Arch, xsimd::avx512bw>)
        if (pairs) {
            const auto* q2 = reinterpret_cast<const bfloat16*>(qt);
            for_row_blocks<most>(rows, [&]<std::size_t RB>(std::size_t r) { decode_scores_dpbf16<RB>(q2, r, d, krow, keys, scale, st, ld, r == 0 ? ahead : nullptr); });
            return;
        }
#endif
    (void)pairs, (void)scale;
    for_row_blocks<most>(rows, [&]<std::size_t RB>(std::size_t r) { decode_scores<Arch, RB>(qt, r, d, krow, keys, st, ld, r == 0 ? ahead : nullptr); });
}

// Calls block(b, hk, r0, rows, j_begin, j_end, partials) for every block of up to decode_rows
// query rows of tasks [task_begin, task_end): rows [r0, r0 + rows) of sequence b and KV head hk over
// keys [j_begin, j_end), their partials written from `partials`.
template <class T, class Block>
void for_each_decode_block(const decode_args<T>& a, std::size_t task_begin, std::size_t task_end, Block&& block) noexcept {
    const std::size_t rows = a.q_heads / a.kv_heads * a.lq;
    for (std::size_t t = task_begin; t < task_end; ++t) {
        const std::size_t split = t % a.splits, hk = t / a.splits % a.kv_heads, b = t / a.splits / a.kv_heads;
        const std::size_t j_begin = std::min(a.lengths[b], split * a.split), j_end = std::min(a.lengths[b], j_begin + a.split);
        float* partials = a.partials + t * rows * (a.dv + 2);
        for (std::size_t r0 = 0; r0 < rows; r0 += decode_rows)
            block(b, hk, r0, std::min(decode_rows, rows - r0), j_begin, j_end, partials);
    }
}

// The start of rows [r0, r0 + rows) of task (b, hk): their queries in s.qt (scaled floats, or with
// `pairs` the bfloat16 queries as they are), empty softmax state and accumulator, and zeros in the
// score columns past the rows.
template <class T>
void decode_begin(const decode_args<T>& a, const flash_scratch& s, bool pairs, std::size_t b, std::size_t hk, std::size_t r0,
                  std::size_t rows) noexcept {
    const std::size_t group = a.q_heads / a.kv_heads;
    for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t h = hk * group + (r0 + r) / a.lq, t = (r0 + r) % a.lq;
        const T* q = a.qs.head(a.q, b, h) + t * a.qs.l;
        if constexpr (std::is_same_v<T, bfloat16>)
            if (pairs) {
                std::copy(q, q + a.d, reinterpret_cast<bfloat16*>(s.qt) + r * a.d);
                continue;
            }
        for (std::size_t c = 0; c < a.d; ++c) s.qt[r * a.d + c] = a.scale * float(q[c]);
    }
    for (std::size_t c = 0; c < decode_rows; ++c) {
        s.m[c] = -std::numeric_limits<float>::infinity();
        s.l[c] = 0.f;
    }
    std::fill(s.o, s.o + rows * a.dv, 0.f);
    const std::size_t ld = decode_stride(rows);
    for (std::size_t j = 0; j < attention_key_block; ++j) std::fill(s.st + j * ld + rows, s.st + (j + 1) * ld, 0.f);
}

// Causal: scores of the tile's keys [j0, j0 + keys) that are in a query's future become -inf.
template <class T>
void decode_mask_future(const decode_args<T>& a, const flash_scratch& s, std::size_t length, std::size_t r0, std::size_t rows,
                        std::size_t j0, std::size_t keys) noexcept {
    if (!a.causal || j0 + keys + a.lq <= length + 1) return;
    const std::size_t ld = decode_stride(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t last = length - a.lq + (r0 + r) % a.lq; // the query's own position
        for (std::size_t j = std::max(last + 1, j0); j < j0 + keys; ++j) s.st[(j - j0) * ld + r] = -std::numeric_limits<float>::infinity();
    }
}

// online_softmax over a tile of scores of `rows` queries (keys × decode_stride(rows)): a stride
// narrower than a register packs the keys, whose last register is filled with -inf past them.
template <class Arch> LACUNA_ALWAYS_INLINE void decode_softmax(const flash_scratch& s, std::size_t rows, std::size_t keys) noexcept {
    constexpr std::size_t w = simd::width<simd::vec<float, Arch>>;
    const std::size_t ld = decode_stride(rows);
    if (ld >= w) return online_softmax<Arch>(s, keys, ld, ld);
    const std::size_t packed = (keys * ld + w - 1) / w;
    std::fill(s.st + keys * ld, s.st + packed * w, -std::numeric_limits<float>::infinity());
    online_softmax<Arch>(s, packed, w, w, ld);
}

// The partials of rows [r0, r0 + rows): running max, sum, accumulator.
template <class T>
void decode_end(const decode_args<T>& a, const flash_scratch& s, std::size_t r0, std::size_t rows, float* partials) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        float* p = partials + (r0 + r) * (a.dv + 2);
        p[0] = s.m[r];
        p[1] = s.l[r];
        std::copy(s.o + r * a.dv, s.o + (r + 1) * a.dv, p + 2);
    }
}

// Rows [r0, r0 + rows) of task (b, hk) over keys [j_begin, j_end); writes their partials.
template <class Arch, class T>
void decode_block(const decode_args<T>& a, const flash_scratch& s, std::size_t b, std::size_t hk, std::size_t r0,
                  std::size_t rows, std::size_t j_begin, std::size_t j_end, float* partials) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, bk = attention_key_block;
    const std::size_t ld = decode_stride(rows);
    const bool pairs = scores_by_dpbf16<Arch, T>();
    decode_begin(a, s, pairs, b, hk, r0, rows);
    // A row of zeros (in the unused staging area) for the key slots past the end of a tile.
    std::fill(s.kf, s.kf + a.d, 0.f);
    const T* zero_row = reinterpret_cast<const T*>(s.kf);

    const std::size_t k_distance = rows_ahead::distance_for(a.d * sizeof(T)), v_distance = rows_ahead::distance_for(a.dv * sizeof(T));
    // A tile stays inside one page, so its rows are evenly spaced.
    auto tile_keys = [&](std::size_t j) { return std::min({bk, j_end - j, (j / a.kv.page_size + 1) * a.kv.page_size - j}); };
    for (std::size_t j0 = j_begin, keys; j0 < j_end; j0 += keys) {
        keys = tile_keys(j0);
        const std::size_t next = j0 + keys, next_keys = next < j_end ? tile_keys(next) : 0;
        const T* kt = a.kv.k_row_at(b, hk, j0);
        const T* vt = a.kv.v_row_at(b, hk, j0);
        const T* krow[bk + w];
        for (std::size_t j = 0; j < keys; ++j) krow[j] = kt + j * a.kv.k_row;
        for (std::size_t j = keys; j < (keys + w - 1) / w * w; ++j) krow[j] = zero_row;
        auto rows_of = [&](std::size_t distance, const T* here, const T* after, std::size_t stride, std::size_t elements) {
            return rows_ahead{distance, reinterpret_cast<const char*>(here), keys, reinterpret_cast<const char*>(after), next_keys,
                              stride * sizeof(T), elements * sizeof(T)};
        };
        const rows_ahead k_ahead = rows_of(k_distance, kt, next_keys ? a.kv.k_row_at(b, hk, next) : nullptr, a.kv.k_row, a.d);
        const rows_ahead v_ahead = rows_of(v_distance, vt, next_keys ? a.kv.v_row_at(b, hk, next) : nullptr, a.kv.v_row, a.dv);
        decode_score_rows<Arch>(s.qt, pairs, a.scale, rows, a.d, krow, keys, s.st, ld, &k_ahead);
        decode_mask_future(a, s, a.lengths[b], r0, rows, j0, keys);
        decode_softmax<Arch>(s, rows, keys);
        // bfloat16 values are widened as they are loaded: each load serves all rows of the group.
        add_values<Arch>(s, rows, a.dv, keys, ld, [&](std::size_t j) { return vt + j * a.kv.v_row; }, v_ahead);
    }
    decode_end(a, s, r0, rows, partials);
}

} // namespace detail

template <class Arch, class T>
void flash_decode::operator()(Arch, const decode_args<T>* args, float* workspace, std::size_t task_begin,
                              std::size_t task_end) const noexcept {
    const detail::flash_scratch s(workspace, args->d, args->dv);
    detail::for_each_decode_block(*args, task_begin, task_end, [&](std::size_t b, std::size_t hk, std::size_t r0, std::size_t rows,
                                                                   std::size_t j_begin, std::size_t j_end, float* partials) {
        detail::decode_block<Arch>(*args, s, b, hk, r0, rows, j_begin, j_end, partials);
    });
}

} // namespace lacuna::kernels
