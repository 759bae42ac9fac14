// lacuna: fused attention, the public entry point: check the operands once, split (batch, head, block
// of queries) tasks over threads by the keys each one visits, run the active arch's kernel.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/bits.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/attention/decode.hpp"
#include "lacuna/kernels/attention/flash.hpp"
#include "lacuna/kernels/attention/sparse_decode.hpp"
#include "lacuna/primitives.hpp"
#include "lacuna/layout/block_mask.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/kv_cache.hpp"
#include "lacuna/layout/sparse_kv_cache.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna {

struct attention_options {
    /// Multiplies q·k before the masks; NaN (the default) means 1/√D.
    float scale = std::numeric_limits<float>::quiet_NaN();
    /// Query i attends key j only when j <= i + Lkv − Lq: causal, aligned to the bottom right when
    /// Lq < Lkv (the queries are the last Lq positions), as FlashAttention does.
    bool causal = false;
    /// Added to the scaled scores: [B or 1, Hq or 1, Lq, Lkv], the last dimension contiguous; an
    /// extent of 1 broadcasts. Empty (the default) for none; -inf entries mask.
    tensor4_view<const float> additive_mask{};
    /// Query i attends key j only where true: same shape rules as additive_mask. Empty for none.
    tensor4_view<const bool> boolean_mask{};
    /// When not empty: receives log Σ_j exp(score_ij) for every [b, h, i], B·Hq·Lq floats in that order
    /// (-inf for a query that attends nothing), as the backward pass needs.
    std::span<float> logsumexp{};
    /// bfloat16 q, k, v on a CPU with AVX-512 BF16 and Dv a multiple of 16: round the probabilities to
    /// bfloat16 for the product with v, which then runs on vdpbf16ps at twice the rate of float FMAs
    /// (FlashAttention on GPUs does the same). The softmax's max and sum stay float; each output moves
    /// by at most 2⁻⁹ · max |v| over its keys. Off by default; no effect on float inputs or elsewhere.
    bool bf16_probabilities = false;
};

/// The input value types of attention: float, or bfloat16 (widened to float, accumulated in float).
template <class T> concept attention_value = std::same_as<T, float> || std::same_as<T, bfloat16>;

namespace detail {

inline void check_contiguous_rows(const char* where, const char* name, const auto& t) {
    if (t.size() != 0 && t.stride(3) != 1)
        fail<shape_error>(where, ": the last dimension of ", name, " must be contiguous (stride 1), its stride is ",
                          t.stride(3));
}

inline void check_extents(const char* where, const char* name, const std::array<std::size_t, 4>& e,
                          const std::array<std::size_t, 4>& expected, const char* why) {
    if (e != expected)
        fail<shape_error>(where, ": ", name, " is [", e[0], ", ", e[1], ", ", e[2], ", ", e[3], "], expected [", expected[0],
                          ", ", expected[1], ", ", expected[2], ", ", expected[3], "] (", why, ")");
}

// Bytes from the first to one past the last element a view reaches.
template <class T> std::size_t span_bytes(const tensor4_view<T>& t) {
    if (t.size() == 0) return 0;
    std::size_t last = 0;
    for (std::size_t d = 0; d < 4; ++d) last += (t.extent(d) - 1) * t.stride(d);
    return (last + 1) * sizeof(T);
}

template <class T> kernels::head_strides strides_of(const tensor4_view<T>& t) {
    return {t.stride(0), t.stride(1), t.stride(2)};
}

// The strides of a mask that broadcasts over batch and heads where its extent is 1; an empty view
// means no mask (null). Throws shape_error for any other shape.
template <class M>
const M* mask_operand(const char* where, const char* name, const tensor4_view<const M>& mask, std::size_t batch,
                      std::size_t heads, std::size_t lq, std::size_t lkv, kernels::head_strides& strides) {
    if (mask.data() == nullptr && mask.size() == 0) return nullptr;
    const auto& e = mask.extents();
    if ((e[0] != 1 && e[0] != batch) || (e[1] != 1 && e[1] != heads) || e[2] != lq || e[3] != lkv)
        fail<shape_error>(where, ": ", name, " is [", e[0], ", ", e[1], ", ", e[2], ", ", e[3], "], expected [", batch, ", ",
                          heads, ", ", lq, ", ", lkv, "] (B, Hq, Lq, Lkv; an extent of 1 broadcasts over B or Hq)");
    check_contiguous_rows(where, name, mask);
    strides = {e[0] == 1 ? 0 : mask.stride(0), e[1] == 1 ? 0 : mask.stride(1), mask.stride(2)};
    return mask.data();
}

// The checks every attention entry point makes: shapes, contiguous rows, aliasing, logsumexp's size.
// Fills the operand fields of args.
template <class T>
void check_attention_operands(const char* where, tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v,
                              tensor4_view<float> out, std::span<float> logsumexp, kernels::attention_args<T>& args) {
    const std::size_t batch = q.extent(0), q_heads = q.extent(1), lq = q.extent(2), d = q.extent(3);
    const std::size_t kv_heads = k.extent(1), lkv = k.extent(2), dv = v.extent(3);
    check_extents(where, "k", k.extents(), {batch, kv_heads, lkv, d}, "q's batch and D");
    check_extents(where, "v", v.extents(), {batch, kv_heads, lkv, dv}, "k's batch, heads and length");
    check_extents(where, "out", out.extents(), {batch, q_heads, lq, dv}, "q's batch, heads and length, v's Dv");
    if (q_heads != 0 && (kv_heads == 0 || q_heads % kv_heads != 0))
        fail<shape_error>(where, ": q has ", q_heads, " heads and k ", kv_heads,
                          "; the query heads must be a multiple of the key heads");
    for (auto [name, view] : {std::pair{"q", q}, std::pair{"k", k}, std::pair{"v", v}}) check_contiguous_rows(where, name, view);
    check_contiguous_rows(where, "out", out);
    if (!logsumexp.empty()) check_size(where, "logsumexp", logsumexp.size(), batch * q_heads * lq, "B · Hq · Lq");

    const std::size_t out_bytes = span_bytes(out);
    auto check_apart = [&](const char* name, const void* p, std::size_t bytes) {
        const auto o = reinterpret_cast<std::uintptr_t>(out.data()), x = reinterpret_cast<std::uintptr_t>(p);
        if (out_bytes && bytes && o < x + bytes && x < o + out_bytes)
            fail<aliasing_error>(where, ": out and ", name, " overlap in memory; attention cannot run in place");
    };
    check_apart("q", q.data(), span_bytes(q));
    check_apart("k", k.data(), span_bytes(k));
    check_apart("v", v.data(), span_bytes(v));
    check_apart("logsumexp", logsumexp.data(), logsumexp.size_bytes());

    args.q = q.data();
    args.k = k.data();
    args.v = v.data();
    args.out = out.data();
    args.qs = strides_of(q);
    args.ks = strides_of(k);
    args.vs = strides_of(v);
    args.os = strides_of(out);
    args.batch = batch;
    args.q_heads = q_heads;
    args.kv_heads = kv_heads;
    args.lq = lq;
    args.lkv = lkv;
    args.d = d;
    args.dv = dv;
    args.logsumexp = logsumexp.empty() ? nullptr : logsumexp.data();
}

inline float attention_scale(float scale, std::size_t d) {
    return std::isnan(scale) ? (d ? float(1.0 / std::sqrt(double(d))) : 1.f) : scale;
}

// Runs the tasks of args over threads, split by keys_of(task), the keys each one visits.
template <class T, class KeysOf> void run_attention(const kernels::attention_args<T>& args, KeysOf&& keys_of) {
    const std::size_t tasks = kernels::attention_tasks(args);
    if (tasks == 0) return;
    std::vector<std::size_t> work(tasks + 1, 0);
    for (std::size_t t = 0; t < tasks; ++t) work[t + 1] = work[t] + keys_of(t);
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), tasks);
    const std::vector<std::size_t> bounds = balanced_row_parts(tasks, parts, [&](std::size_t t) { return work[t]; });
    const std::size_t scratch = kernels::attention_workspace(args);
    aligned_buffer<float> workspace(parts * scratch, aligned_buffer<float>::uninitialized);
    parallel_for(parts, [&](std::size_t p) {
        dispatch<kernels::flash_attention>(&args, workspace.data() + p * scratch, bounds[p], bounds[p + 1]);
    });
}

} // namespace detail

/// Scaled dot-product attention, fused: out[b, h, i, :] = Σ_j softmax_j(s_ij) · v[b, h / (Hq/Hkv), j, :]
/// with s_ij = scale · q[b, h, i, :] · k[b, h / (Hq/Hkv), j, :] (+ additive mask), over the keys j that
/// the causal and boolean masks keep.
///
/// Shapes: q [B, Hq, Lq, D], k [B, Hkv, Lkv, D], v [B, Hkv, Lkv, Dv], out [B, Hq, Lq, Dv], strided
/// views whose last dimension is contiguous; Hq a multiple of Hkv (GQA; Hkv = 1 is MQA). q, k and v are
/// float or bfloat16, out float; accumulation in float. A query that attends nothing (everything
/// masked) gets zeros, never NaN; a NaN among the kept inputs makes its output NaN, while NaN or inf
/// in the keys and values of masked positions (padding, say) has no effect.
///
/// Cost: 2·Lq·Lkv·(D + Dv) FLOPs per head times the kept fraction (tiles of 64 × 64 that the causal
/// mask removes are never touched); scratch of (D + 2·Dv + 68)·64 floats per thread (plus 64·D for
/// bfloat16, and 32·(64 + Dv) with bf16_probabilities), never proportional to Lq·Lkv. Tasks of 64
/// queries of one head are split over threads by the keys they visit; each output is computed by one
/// thread in a fixed order, so results do not depend on the thread count.
///
/// Throws shape_error for shapes that do not fit (naming the operand and its extents) or a last
/// dimension that is not contiguous, aliasing_error if out overlaps q, k, v or logsumexp.
template <attention_value T>
void attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, tensor4_view<float> out,
               const attention_options& opts = {}) {
    const char* where = "lacuna::attention";
    kernels::attention_args<T> args{};
    detail::check_attention_operands(where, q, k, v, out, opts.logsumexp, args);
    args.additive_mask = detail::mask_operand(where, "additive_mask", opts.additive_mask, args.batch, args.q_heads,
                                              args.lq, args.lkv, args.additive_strides);
    args.boolean_mask = detail::mask_operand(where, "boolean_mask", opts.boolean_mask, args.batch, args.q_heads, args.lq,
                                             args.lkv, args.boolean_strides);
    args.scale = detail::attention_scale(opts.scale, args.d);
    args.causal = opts.causal;
    args.bf16_probabilities = opts.bf16_probabilities;
    args.query_block = kernels::attention_query_block;
    const std::size_t blocks = (args.lq + args.query_block - 1) / args.query_block;
    detail::run_attention(args, [&](std::size_t t) {
        if (!opts.causal) return args.lkv;
        // keys up to the causal bound of the block's last query
        const std::size_t end = std::min(args.lq, (t % blocks + 1) * args.query_block);
        return std::size_t(std::clamp<std::ptrdiff_t>(std::ptrdiff_t(end + args.lkv) - std::ptrdiff_t(args.lq), 0,
                                                      std::ptrdiff_t(args.lkv)));
    });
}

struct flex_options {
    /// Multiplies q·k before score_mod; NaN (the default) means 1/√D.
    float scale = std::numeric_limits<float>::quiet_NaN();
    /// As attention_options::logsumexp.
    std::span<float> logsumexp{};
    /// As attention_options::bf16_probabilities.
    bool bf16_probabilities = false;
};

/// The default score_mod: the score unchanged.
struct no_score_mod {
    float operator()(float score, std::size_t, std::size_t, std::size_t, std::size_t) const noexcept { return score; }
};

/// The default mask_mod: every position of a partial block kept.
struct no_mask_mod {
    bool operator()(std::size_t, std::size_t, std::size_t, std::size_t) const noexcept { return true; }
};

namespace detail {

template <class MaskMod, class ScoreMod> struct flex_mods {
    const MaskMod& mask_mod;
    const ScoreMod& score_mod;
};

// Sets the scores of a partial tile that mask_mod drops to -inf. A bit_listed_mask writes the tile's
// kept keys itself; a run_listed_mask (the patterns of lacuna::masks) lists each query's kept keys
// as runs, so only the keys of runs that are not dense need a call of mask_mod: a tile on a window's
// edge then costs a few runs per query, not a call per score.
template <class MaskMod> void mask_partial_tile(const MaskMod& mask_mod, const kernels::scores_view& t) noexcept {
    constexpr float masked = -std::numeric_limits<float>::infinity();
    if constexpr (bit_listed_mask<MaskMod> || run_listed_mask<MaskMod>) {
        static_assert(kernels::attention_key_block <= 64 && kernels::attention_query_block <= 64,
                      "a tile's keys and queries fit 64-bit words");
        std::uint64_t kept[64] = {}; // kept[c] bit j: query i0 + c keeps key j0 + j; then transposed
        if constexpr (bit_listed_mask<MaskMod>) {
            mask_mod.kept_bits(t.batch, t.head, t.i0, t.queries, t.j0, t.keys, kept);
        } else {
            const std::size_t j_end = t.j0 + t.keys;
            for (std::size_t c = 0; c < t.queries; ++c) {
                const std::size_t q = t.i0 + c;
                mask_mod.for_each_run(t.batch, t.head, q, t.j0, j_end, [&](std::size_t first, std::size_t end, bool dense) {
                    first = std::max(first, t.j0);
                    end = std::min(end, j_end);
                    if (first >= end) return;
                    if (dense) kept[c] |= low_mask(end - first) << (first - t.j0);
                    else
                        for (std::size_t j = first; j < end; ++j)
                            if (mask_mod(t.batch, t.head, q, j)) kept[c] |= std::uint64_t(1) << (j - t.j0);
                });
            }
        }
        // By key: each key's dropped queries are runs along its row of the tile, set a run at a
        // time, where a store per dropped score went down a column (a line each, about five
        // cycles a store: 4% of a sliding window's time).
        transpose_bits(kept);
        for (std::size_t j = 0; j < t.keys; ++j) {
            float* row = t.st + j * t.ldst;
            for (std::uint64_t drop = ~kept[j] & low_mask(t.queries); drop;) {
                const auto first = std::size_t(std::countr_zero(drop));
                const auto count = std::size_t(std::countr_one(drop >> first));
                std::fill(row + first, row + first + count, masked);
                drop &= ~(low_mask(count) << first);
            }
        }
    } else {
        for (std::size_t j = 0; j < t.keys; ++j)
            for (std::size_t c = 0; c < t.queries; ++c)
                if (!mask_mod(t.batch, t.head, t.i0 + c, t.j0 + j)) t.st[j * t.ldst + c] = masked;
    }
}

// The hook the kernel calls per tile: score_mod on every score, then mask_mod on partial blocks.
template <class MaskMod, class ScoreMod> void apply_flex_mods(const void* context, const kernels::scores_view& t) noexcept {
    const auto& mods = *static_cast<const flex_mods<MaskMod, ScoreMod>*>(context);
    if constexpr (!std::is_same_v<ScoreMod, no_score_mod>)
        for (std::size_t j = 0; j < t.keys; ++j)
            for (std::size_t c = 0; c < t.queries; ++c) {
                float& s = t.st[j * t.ldst + c];
                s = mods.score_mod(s, t.batch, t.head, t.i0 + c, t.j0 + j);
            }
    if constexpr (!std::is_same_v<MaskMod, no_mask_mod>)
        if (!t.full) mask_partial_tile(mods.mask_mod, t);
}

} // namespace detail

/// FlexAttention on the CPU: attention over the key blocks `mask` lists for each query block, with
/// mask_mod(b, h, q, kv) -> bool applied per element in partial blocks (full blocks skip it) and
/// score_mod(score, b, h, q, kv) -> score applied to every scaled score before the mask, both plain
/// C++ callables inlined into the loop over each tile. Blocks the mask does not list are never
/// touched. Shapes as attention(); the mask is [B or 1, Hq or 1] over Lq × Lkv. A query whose blocks
/// are all masked gets zeros and logsumexp -inf. Callables must be safe to call concurrently.
///
/// Cost: 4·D·(listed blocks' elements) FLOPs plus one call of the callables per visited score;
/// scratch as attention(). Tasks (one query block of one head) are split over threads by the key
/// blocks they visit; results do not depend on the thread count.
///
/// Throws shape_error if the shapes (or the mask's) do not fit, aliasing_error as attention().
template <attention_value T, class MaskMod = no_mask_mod, class ScoreMod = no_score_mod>
void flex_attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, const block_mask& mask,
                    tensor4_view<float> out, const MaskMod& mask_mod = {}, const ScoreMod& score_mod = {},
                    const flex_options& opts = {}) {
    const char* where = "lacuna::flex_attention";
    kernels::attention_args<T> args{};
    detail::check_attention_operands(where, q, k, v, out, opts.logsumexp, args);
    if ((mask.batch() != 1 && mask.batch() != args.batch) || (mask.heads() != 1 && mask.heads() != args.q_heads) ||
        mask.q_len() != args.lq || mask.kv_len() != args.lkv)
        detail::fail<shape_error>(where, ": the block mask is for [", mask.batch(), ", ", mask.heads(), "] x ", mask.q_len(),
                                  " x ", mask.kv_len(), ", the operands are [", args.batch, ", ", args.q_heads, "] x ",
                                  args.lq, " x ", args.lkv, " (B and H of the mask may be 1)");
    args.scale = detail::attention_scale(opts.scale, args.d);
    args.bf16_probabilities = opts.bf16_probabilities;
    args.query_block = mask.q_block();
    const std::size_t nq = mask.q_blocks();
    const kernels::kv_block_lists lists{mask.kv_num_blocks().data(),
                                        mask.kv_indices().data(),
                                        mask.full_kv_num_blocks().empty() ? nullptr : mask.full_kv_num_blocks().data(),
                                        mask.full_kv_indices().data(),
                                        mask.batch() == 1 ? 0 : mask.heads() * nq,
                                        mask.heads() == 1 ? 0 : nq,
                                        mask.kv_blocks(),
                                        mask.kv_block()};
    args.blocks = &lists;
    const detail::flex_mods<MaskMod, ScoreMod> mods{mask_mod, score_mod};
    if constexpr (!std::is_same_v<MaskMod, no_mask_mod> || !std::is_same_v<ScoreMod, no_score_mod>)
        args.hook = {&detail::apply_flex_mods<MaskMod, ScoreMod>, &mods};
    detail::run_attention(args, [&](std::size_t t) {
        const std::size_t qb = t % nq, h = t / nq % args.q_heads, b = t / nq / args.q_heads;
        const std::size_t row = b * lists.batch_stride + h * lists.head_stride + qb;
        std::size_t blocks = std::size_t(lists.num_partial[row]);
        if (lists.num_full) blocks += std::size_t(lists.num_full[row]);
        return blocks * mask.kv_block();
    });
}

/// Attention where an element-level sparse mask says which keys each query attends: scores are
/// computed only at the mask's stored positions (a dot product each), then softmax over them and the
/// weighted sum of their value rows, for every batch entry and head (the mask is shared). For masks
/// too scattered for blocks: at 1% density this reads 1% of K and V, where a block mask would read
/// every block with a kept element. mask is CSR or bitmap, Lq × Lkv, its values unused. Shapes and
/// results otherwise as attention() (a query with nothing stored gets zeros and logsumexp -inf).
/// Cost: (2·D + 2·Dv)·nnz FLOPs per head; scratch of Lkv floats and Lkv size_t per thread (plus
/// max(D, Dv) floats for bfloat16) and Lq + 1 size_t of row offsets; rows split over threads
/// by stored count, each computed by one thread (deterministic). Throws as attention(), and
/// shape_error if the mask is not Lq × Lkv.
template <attention_value T, class Mask>
    requires(compressed_rows<Mask> || bitmap_sparse<Mask>)
void masked_attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, const Mask& mask,
                      tensor4_view<float> out, const flex_options& opts = {}) {
    const char* where = "lacuna::masked_attention";
    kernels::attention_args<T> a{};
    detail::check_attention_operands(where, q, k, v, out, opts.logsumexp, a);
    if (mask.rows() != a.lq || mask.cols() != a.lkv)
        detail::fail<shape_error>(where, ": the mask is ", mask.rows(), " x ", mask.cols(), ", the queries and keys need ", a.lq, " x ",
                                  a.lkv);
    if (out.size() == 0) return;
    const float scale = detail::attention_scale(opts.scale, a.d);
    const std::size_t group = a.q_heads / a.kv_heads, rows = a.batch * a.q_heads * a.lq;
    std::vector<std::size_t> stored(a.lq + 1, 0);
    for (std::size_t i = 0; i < a.lq; ++i) {
        std::size_t n = 0;
        mask.for_each_in_row(i, [&](std::size_t, auto) { ++n; });
        stored[i + 1] = stored[i] + n;
    }
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), rows);
    const auto bounds = detail::balanced_row_parts(rows, parts, [&](std::size_t r) {
        return r / a.lq * stored[a.lq] + stored[r % a.lq];
    });
    parallel_for(parts, [&](std::size_t part) {
        std::vector<float> scores(a.lkv), widened(std::is_same_v<T, float> ? 0 : std::max(a.d, a.dv));
        std::vector<std::size_t> keys(a.lkv);
        for (std::size_t r = bounds[part]; r < bounds[part + 1]; ++r) {
            const std::size_t i = r % a.lq, h = r / a.lq % a.q_heads, b = r / a.lq / a.q_heads, hk = h / group;
            const T* qi = a.qs.head(a.q, b, h) + i * a.qs.l;
            std::size_t n = 0;
            mask.for_each_in_row(i, [&](std::size_t j, auto) {
                const T* kj = a.ks.head(a.k, b, hk) + j * a.ks.l;
                scores[n] = scale * lacuna::dot(std::span<const T>(qi, a.d), std::span<const T>(kj, a.d));
                keys[n++] = j;
            });
            float* o = a.os.head(a.out, b, h) + i * a.os.l;
            std::fill(o, o + a.dv, 0.f);
            float lse = -std::numeric_limits<float>::infinity();
            if (n != 0) {
                const std::span<float> s(scores.data(), n);
                const float m = lacuna::reduce_max(s);
                for (float& x : s) x -= m;
                lacuna::exp(s, s);
                const float sum = lacuna::reduce_sum(s);
                lse = m + std::log(sum);
                for (std::size_t e = 0; e < n; ++e) {
                    const T* vj = a.vs.head(a.v, b, hk) + keys[e] * a.vs.l;
                    if constexpr (std::is_same_v<T, float>) {
                        lacuna::axpy(s[e] / sum, std::span<const float>(vj, a.dv), std::span<float>(o, a.dv));
                    } else {
                        lacuna::convert(std::span<const bfloat16>(vj, a.dv), std::span<float>(widened.data(), a.dv));
                        lacuna::axpy(s[e] / sum, std::span<const float>(widened.data(), a.dv), std::span<float>(o, a.dv));
                    }
                }
            }
            if (a.logsumexp) a.logsumexp[r] = lse;
        }
    });
}

struct decode_options {
    /// Multiplies q·k; NaN (the default) means 1/√D.
    float scale = std::numeric_limits<float>::quiet_NaN();
    /// The Lq queries are the last Lq positions of their sequence, each seeing the keys up to its own
    /// position (several new tokens at once, as speculative decoding has them). Off: every query
    /// sees every key.
    bool causal = true;
    /// As attention_options::logsumexp.
    std::span<float> logsumexp{};
};

namespace detail {

// Keys per decode task: fixed, so that the partials, and thus every bit, do not depend on the threads.
inline constexpr std::size_t decode_split = 1024;

// Runs the decode tasks over threads, then merges each query's partials in split order: the checked
// operands of q and out, keys and values from kv (or, batch 1, from the sparse heads), lengths[b]
// keys in sequence b.
template <class T>
void run_decode(const kernels::attention_args<T>& checked, const decode_options& opts, const kernels::kv_source<T>& kv,
                const std::vector<std::size_t>& lengths, tensor4_view<float> out,
                const kernels::sparse_kv_head<T>* sparse = nullptr) {
    kernels::decode_args<T> args{};
    args.q = checked.q;
    args.qs = checked.qs;
    args.batch = checked.batch;
    args.q_heads = checked.q_heads;
    args.kv_heads = checked.kv_heads;
    args.lq = checked.lq;
    args.d = checked.d;
    args.dv = checked.dv;
    args.scale = attention_scale(opts.scale, checked.d);
    args.causal = opts.causal;
    args.kv = kv;
    args.lengths = lengths.data();
    args.sparse = sparse;
    const std::span<float> logsumexp = opts.logsumexp;
    const std::size_t group = args.q_heads / args.kv_heads, rows = group * args.lq, width = args.dv + 2;
    std::size_t longest = 0;
    for (std::size_t b = 0; b < args.batch; ++b) longest = std::max(longest, args.lengths[b]);
    args.split = decode_split;
    args.splits = std::max<std::size_t>(1, (longest + decode_split - 1) / decode_split);
    const std::size_t tasks = args.batch * args.kv_heads * args.splits;
    aligned_buffer<float> partials(tasks * rows * width, aligned_buffer<float>::uninitialized);
    args.partials = partials.data();
    std::vector<std::size_t> work(tasks + 1, 0);
    for (std::size_t t = 0; t < tasks; ++t) {
        const std::size_t length = args.lengths[t / args.splits / args.kv_heads], first = t % args.splits * decode_split;
        work[t + 1] = work[t] + (length > first ? std::min(decode_split, length - first) : 0);
    }
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), tasks);
    const std::vector<std::size_t> bounds = balanced_row_parts(tasks, parts, [&](std::size_t t) { return work[t]; });
    const std::size_t scratch = kernels::decode_workspace(args);
    aligned_buffer<float> workspace(parts * scratch, aligned_buffer<float>::uninitialized);
    const kernels::decode_args<T>& operands = args;
    parallel_for(parts, [&](std::size_t p) {
        if (sparse) dispatch<kernels::sparse_decode>(&operands, workspace.data() + p * scratch, bounds[p], bounds[p + 1]);
        else dispatch<kernels::flash_decode>(&operands, workspace.data() + p * scratch, bounds[p], bounds[p + 1]);
    });
    // out = Σ_s e^(m_s − m)·O_s / Σ_s e^(m_s − m)·l_s over the splits s that kept something.
    parallel_for(args.batch * args.kv_heads, [&](std::size_t bh) {
        const std::size_t b = bh / args.kv_heads, hk = bh % args.kv_heads;
        std::vector<double> acc(args.dv);
        for (std::size_t r = 0; r < rows; ++r) {
            const float* first = partials.data() + bh * args.splits * rows * width + r * width;
            auto split = [&](std::size_t s) { return first + s * rows * width; };
            double m = -std::numeric_limits<double>::infinity();
            for (std::size_t s = 0; s < args.splits; ++s)
                if (split(s)[1] != 0.f) m = std::max(m, double(split(s)[0]));
            double l = 0;
            std::fill(acc.begin(), acc.end(), 0.0);
            for (std::size_t s = 0; s < args.splits; ++s) {
                if (split(s)[1] == 0.f) continue;
                const double scale = std::exp(double(split(s)[0]) - m);
                l += scale * double(split(s)[1]);
                for (std::size_t c = 0; c < args.dv; ++c) acc[c] += scale * double(split(s)[2 + c]);
            }
            const std::size_t h = hk * group + r / args.lq, t = r % args.lq;
            float* o = out.row(b, h, t);
            for (std::size_t c = 0; c < args.dv; ++c) o[c] = l == 0 ? 0.f : float(acc[c] / l);
            if (!logsumexp.empty())
                logsumexp[(b * args.q_heads + h) * args.lq + t] = float(l == 0 ? -std::numeric_limits<double>::infinity() : m + std::log(l));
        }
    });
}

} // namespace detail

/// Attention of Lq new queries per sequence over a contiguous KV cache, split over the keys (decode):
/// q [B, Hq, Lq, D], k [B, Hkv, L, D], v [B, Hkv, L, Dv], out [B, Hq, Lq, Dv], Lq <= L; the queries are
/// the last Lq positions (see decode_options::causal). Same semantics as attention() with causal
/// set, computed for few queries and many keys: each key row is read once for all Hq/Hkv query heads
/// that share it, and ranges of 1024 keys are spread over threads, their partial softmax states
/// merged in a fixed order (results do not depend on the thread count). Scratch: as attention() for
/// bfloat16 per thread, plus (Dv + 2) floats per query per 1024 keys. Throws as attention(), and shape_error
/// if causal and Lq > L.
template <attention_value T>
void decode_attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, tensor4_view<float> out,
                      const decode_options& opts = {}) {
    const char* where = "lacuna::decode_attention";
    kernels::attention_args<T> checked{};
    detail::check_attention_operands(where, q, k, v, out, opts.logsumexp, checked);
    if (opts.causal && checked.lq > checked.lkv)
        detail::fail<shape_error>(where, ": ", checked.lq, " queries are more than the ", checked.lkv, " positions of the cache");
    if (out.size() == 0) return;
    const kernels::kv_source<T> kv{k.data(),    v.data(),    nullptr,     0,           std::max<std::size_t>(checked.lkv, 1),
                                   k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1),
                                   v.stride(2)};
    detail::run_decode(checked, opts, kv, std::vector<std::size_t>(checked.batch, checked.lkv), out);
}

/// decode_attention() over a paged cache: batch entry b is sequence sequences[b] of the cache, whose
/// length L_b counts the new tokens (append them first). q [B, Hq, Lq, D] with Hq a multiple of the
/// cache's KV heads and D its d; out [B, Hq, Lq, dv]. Throws shape_error for an unknown sequence, a
/// sequence shorter than Lq (causal), or shapes that do not fit the cache.
template <attention_value T>
void decode_attention(tensor4_view<const T> q, const paged_kv_cache<T>& cache, std::span<const std::size_t> sequences,
                      tensor4_view<float> out, const decode_options& opts = {}) {
    const char* where = "lacuna::decode_attention";
    const std::size_t batch = q.extent(0), lq = q.extent(2);
    detail::check_size(where, "sequences", sequences.size(), batch, "one per batch entry of q");
    std::vector<std::size_t> lengths(batch);
    std::size_t pages = 1;
    for (std::size_t b = 0; b < batch; ++b) {
        if (sequences[b] >= cache.sequences())
            detail::fail<shape_error>(where, ": sequences[", b, "] is ", sequences[b], ", the cache has ", cache.sequences());
        lengths[b] = cache.length(sequences[b]);
        if (opts.causal && lengths[b] < lq)
            detail::fail<shape_error>(where, ": sequence ", sequences[b], " holds ", lengths[b], " tokens, fewer than the ", lq,
                                      " queries");
        pages = std::max(pages, cache.block_table(sequences[b]).size());
    }
    // The cache's layout as views, for the checks attention() makes (the first page stands for all).
    const std::size_t hk = cache.kv_heads();
    kernels::attention_args<T> checked{};
    detail::check_attention_operands(where, q, tensor4_view<const T>(cache.k_pages(), {batch, hk, 0, cache.d()}),
                                     tensor4_view<const T>(cache.v_pages(), {batch, hk, 0, cache.dv()}), out, opts.logsumexp, checked);
    if (out.size() == 0) return;
    std::vector<std::int32_t> table(batch * pages, 0);
    for (std::size_t b = 0; b < batch; ++b) std::ranges::copy(cache.block_table(sequences[b]), table.begin() + std::ptrdiff_t(b * pages));
    const std::size_t ps = cache.page_size();
    const kernels::kv_source<T> kv{cache.k_pages(),      cache.v_pages(), table.data(), pages, ps, hk * ps * cache.d(),
                                   ps * cache.d(),       cache.d(),       hk * ps * cache.dv(), ps * cache.dv(),
                                   cache.dv()};
    detail::run_decode(checked, opts, kv, lengths, out);
}

/// decode_attention() over a sparse KV cache (one sequence, batch 1): q [1, Hq, Lq, D] with Hq a
/// multiple of the cache's KV heads and D its d, out [1, Hq, Lq, dv]; the cache's length counts the
/// new tokens (append them first). Attends to exactly what the cache kept (its keys() and
/// values()), reading only the kept values and their masks: per tile of 64 keys, each channel's
/// stored keys expand into registers (vexpandps on AVX-512) against the query, and each key's
/// stored values against its probability. Same splitting, determinism and scratch as the other
/// overloads. Throws as they do.
template <attention_value T>
void decode_attention(tensor4_view<const T> q, const sparse_kv_cache<T>& cache, tensor4_view<float> out,
                      const decode_options& opts = {}) {
    const char* where = "lacuna::decode_attention";
    const std::size_t length = cache.length(), hk = cache.kv_heads();
    if (q.extent(0) != 1) detail::fail<shape_error>(where, ": q holds ", q.extent(0), " sequences; a sparse cache holds 1");
    if (opts.causal && length < q.extent(2))
        detail::fail<shape_error>(where, ": the cache holds ", length, " tokens, fewer than the ", q.extent(2), " queries");
    // The cache's shape as views, for the checks attention() makes (no element is read through them).
    const T* none = nullptr;
    kernels::attention_args<T> checked{};
    detail::check_attention_operands(where, q, tensor4_view<const T>(none, {1, hk, 0, cache.d()}),
                                     tensor4_view<const T>(none, {1, hk, 0, cache.dv()}), out, opts.logsumexp, checked);
    if (out.size() == 0) return;
    std::vector<kernels::sparse_kv_head<T>> heads;
    for (std::size_t h = 0; h < hk; ++h) heads.push_back(cache.head_view(h));
    const kernels::kv_source<T> kv{nullptr, nullptr, nullptr, 0, std::max<std::size_t>(length, 1), 0, 0, 0, 0, 0, 0};
    detail::run_decode(checked, opts, kv, {length}, out, heads.data());
}

} // namespace lacuna
