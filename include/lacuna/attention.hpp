// lacuna: fused attention, the public entry point: check the operands once, split (batch, head, block
// of queries) tasks over threads by the keys each one visits, run the active arch's kernel.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/attention/flash.hpp"
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

} // namespace detail

/// Scaled dot-product attention, fused: out[b, h, i, :] = Σ_j softmax_j(s_ij) · v[b, h / (Hq/Hkv), j, :]
/// with s_ij = scale · q[b, h, i, :] · k[b, h / (Hq/Hkv), j, :] (+ additive mask), over the keys j that
/// the causal and boolean masks keep.
///
/// Shapes: q [B, Hq, Lq, D], k [B, Hkv, Lkv, D], v [B, Hkv, Lkv, Dv], out [B, Hq, Lq, Dv], strided
/// views whose last dimension is contiguous; Hq a multiple of Hkv (GQA; Hkv = 1 is MQA). q, k and v are
/// float or bfloat16, out float; accumulation in float. A query that attends nothing (everything
/// masked) gets zeros, never NaN; a NaN among the kept inputs makes its output NaN.
///
/// Cost: 2·Lq·Lkv·(D + Dv) FLOPs per head times the kept fraction (tiles of 64 × 64 that the causal
/// mask removes are never touched); scratch of (D + Dv + 67)·64 floats per thread (plus 64·(D + Dv)
/// for bfloat16), never proportional to Lq·Lkv. Tasks of 64 queries of one head are split over
/// threads by the keys they visit; each output is computed by one thread in a fixed order, so results
/// do not depend on the thread count.
///
/// Throws shape_error for shapes that do not fit (naming the operand and its extents) or a last
/// dimension that is not contiguous, aliasing_error if out overlaps q, k, v or logsumexp.
template <attention_value T>
void attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, tensor4_view<float> out,
               const attention_options& opts = {}) {
    const char* where = "lacuna::attention";
    const std::size_t batch = q.extent(0), q_heads = q.extent(1), lq = q.extent(2), d = q.extent(3);
    const std::size_t kv_heads = k.extent(1), lkv = k.extent(2), dv = v.extent(3);
    detail::check_extents(where, "k", k.extents(), {batch, kv_heads, lkv, d}, "q's batch and D");
    detail::check_extents(where, "v", v.extents(), {batch, kv_heads, lkv, dv}, "k's batch, heads and length");
    detail::check_extents(where, "out", out.extents(), {batch, q_heads, lq, dv}, "q's batch, heads and length, v's Dv");
    if (q_heads != 0 && (kv_heads == 0 || q_heads % kv_heads != 0))
        detail::fail<shape_error>(where, ": q has ", q_heads, " heads and k ", kv_heads,
                                  "; the query heads must be a multiple of the key heads");
    for (auto [name, view] : {std::pair{"q", q}, std::pair{"k", k}, std::pair{"v", v}})
        detail::check_contiguous_rows(where, name, view);
    detail::check_contiguous_rows(where, "out", out);
    if (!opts.logsumexp.empty())
        detail::check_size(where, "logsumexp", opts.logsumexp.size(), batch * q_heads * lq, "B · Hq · Lq");

    kernels::attention_args<T> args{};
    args.additive_mask = detail::mask_operand(where, "additive_mask", opts.additive_mask, batch, q_heads, lq, lkv,
                                              args.additive_strides);
    args.boolean_mask =
        detail::mask_operand(where, "boolean_mask", opts.boolean_mask, batch, q_heads, lq, lkv, args.boolean_strides);

    const std::size_t out_bytes = detail::span_bytes(out);
    auto check_apart = [&](const char* name, const void* p, std::size_t bytes) {
        const auto o = reinterpret_cast<std::uintptr_t>(out.data()), x = reinterpret_cast<std::uintptr_t>(p);
        if (out_bytes && bytes && o < x + bytes && x < o + out_bytes)
            detail::fail<aliasing_error>(where, ": out and ", name, " overlap in memory; attention cannot run in place");
    };
    check_apart("q", q.data(), detail::span_bytes(q));
    check_apart("k", k.data(), detail::span_bytes(k));
    check_apart("v", v.data(), detail::span_bytes(v));
    check_apart("logsumexp", opts.logsumexp.data(), opts.logsumexp.size_bytes());
    if (out.size() == 0) return;

    args.q = q.data();
    args.k = k.data();
    args.v = v.data();
    args.out = out.data();
    args.qs = detail::strides_of(q);
    args.ks = detail::strides_of(k);
    args.vs = detail::strides_of(v);
    args.os = detail::strides_of(out);
    args.batch = batch;
    args.q_heads = q_heads;
    args.kv_heads = kv_heads;
    args.lq = lq;
    args.lkv = lkv;
    args.d = d;
    args.dv = dv;
    args.scale = std::isnan(opts.scale) ? (d ? float(1.0 / std::sqrt(double(d))) : 1.f) : opts.scale;
    args.causal = opts.causal;
    args.logsumexp = opts.logsumexp.empty() ? nullptr : opts.logsumexp.data();

    // Work per task: the keys its queries visit (all of them, or up to the causal bound).
    constexpr std::size_t block = kernels::attention_query_block;
    const std::size_t tasks = kernels::attention_tasks(args), blocks = tasks / (batch * q_heads);
    std::vector<std::size_t> work(tasks + 1, 0);
    for (std::size_t t = 0; t < tasks; ++t) {
        std::size_t keys = lkv;
        if (opts.causal) {
            const std::size_t last = std::min(lq, (t % blocks + 1) * block); // one past the block's last query
            keys = std::size_t(std::clamp<std::ptrdiff_t>(std::ptrdiff_t(last + lkv) - std::ptrdiff_t(lq), 0, std::ptrdiff_t(lkv)));
        }
        work[t + 1] = work[t] + keys;
    }
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), tasks);
    const std::vector<std::size_t> bounds = detail::balanced_row_parts(tasks, parts, [&](std::size_t t) { return work[t]; });
    const std::size_t scratch = kernels::attention_workspace(args);
    aligned_buffer<float> workspace(parts * scratch, aligned_buffer<float>::uninitialized);
    parallel_for(parts, [&](std::size_t p) {
        const kernels::attention_args<T>* operands = &args; // the table's slots take a pointer to const
        detail::dispatch<kernels::flash_attention>(operands, workspace.data() + p * scratch, bounds[p], bounds[p + 1]);
    });
}

} // namespace lacuna
