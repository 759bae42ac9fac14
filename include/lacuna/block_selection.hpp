// lacuna: content-based sparse attention: block masks chosen from q and k themselves, for
// flex_attention to consume. MoBA's gate over mean-pooled key blocks, and MInference's
// vertical-slash estimate from the last queries.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/block_mask.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/primitives.hpp"

namespace lacuna {

namespace masks {

/// One pattern per (batch, head): patterns[b · heads + h] decides for head h of batch b. For the
/// per-head results of content-based selection.
template <class Pattern> struct per_head {
    std::vector<Pattern> patterns;
    std::size_t heads;
    bool operator()(std::size_t b, std::size_t h, std::size_t q, std::size_t kv) const {
        return patterns[b * heads + h](b, h, q, kv);
    }
    template <class F>
    void for_each_run(std::size_t b, std::size_t h, std::size_t q, std::size_t kv_begin, std::size_t kv_end, F&& f) const {
        patterns[b * heads + h].for_each_run(b, h, q, kv_begin, kv_end, f);
    }
    void kept_bits(std::size_t b, std::size_t h, std::size_t q_begin, std::size_t queries, std::size_t kv_begin,
                   std::size_t keys, std::uint64_t* kept) const noexcept
        requires bit_listed_mask<Pattern>
    {
        patterns[b * heads + h].kept_bits(b, h, q_begin, queries, kv_begin, keys, kept);
    }
    block_kind classify_block(std::size_t b, std::size_t h, std::size_t q_begin, std::size_t q_end, std::size_t kv_begin,
                              std::size_t kv_end) const
        requires block_classified_mask<Pattern>
    {
        return patterns[b * heads + h].classify_block(b, h, q_begin, q_end, kv_begin, kv_end);
    }
};

} // namespace masks

struct moba_options {
    /// Tokens per block, of queries and keys alike.
    std::size_t block = 128;
    /// Past key blocks each query block keeps besides its own.
    std::size_t top_k = 3;
};

/// MoBA's gate (Mixture of Block Attention): for each head and block of queries, the top_k key
/// blocks whose mean-pooled key scores highest against the block's mean query, among the blocks
/// wholly before the block's first query (causal, aligned to the bottom right), plus the blocks the
/// causal bound crosses, which are always kept. The result lists the chosen past blocks as full and
/// the crossing ones as partial: pass masks::causal{Lkv − Lq} as flex_attention's mask_mod. Ties go
/// to the earlier block. q [B, Hq, Lq, D], k [B, Hkv, Lkv, D] as attention() takes them.
/// Work O((Lq + Lkv)·D + n_q·n_kv·D) per head. Throws shape_error as attention() does, or for a
/// block of 0.
template <attention_value T>
block_mask moba_block_mask(tensor4_view<const T> q, tensor4_view<const T> k, const moba_options& opts = {}) {
    const char* where = "lacuna::moba_block_mask";
    const std::size_t batch = q.extent(0), heads = q.extent(1), lq = q.extent(2), d = q.extent(3);
    const std::size_t kv_heads = k.extent(1), lkv = k.extent(2), bs = opts.block;
    detail::check_extents(where, "k", k.extents(), {batch, kv_heads, lkv, d}, "q's batch and D");
    if (heads != 0 && (kv_heads == 0 || heads % kv_heads != 0))
        detail::fail<shape_error>(where, ": q has ", heads, " heads and k ", kv_heads, "; the query heads must be a multiple of the key heads");
    detail::check_contiguous_rows(where, "q", q);
    detail::check_contiguous_rows(where, "k", k);
    if (bs == 0) detail::fail<shape_error>(where, ": the block size must be positive");
    const std::size_t nq = (lq + bs - 1) / bs, nkv = (lkv + bs - 1) / bs, rows = batch * heads * nq;
    const auto offset = std::ptrdiff_t(lkv) - std::ptrdiff_t(lq);
    std::vector<std::int32_t> num_partial(rows, 0), partial(rows * nkv, 0), num_full(rows, 0), full(rows * nkv, 0);
    // Adds rows [first, first + count) of head (b, h) of t to sum.
    auto add_rows = [d](tensor4_view<const T> t, std::size_t b, std::size_t h, std::size_t first, std::size_t count, float* sum) {
        detail::dispatch<kernels::add_rows>(static_cast<const T*>(t.row(b, h, first)), t.stride(2), count, sum, d);
    };
    // Mean key of each block, per (batch, key head).
    std::vector<float> pooled(batch * kv_heads * nkv * d, 0.f);
    parallel_for(batch * kv_heads, [&](std::size_t bh) {
        for (std::size_t kb = 0; kb < nkv; ++kb) {
            float* mean = pooled.data() + (bh * nkv + kb) * d;
            const std::size_t count = std::min(bs, lkv - kb * bs);
            add_rows(k, bh / kv_heads, bh % kv_heads, kb * bs, count, mean);
            scale(1.f / float(count), std::span<float>(mean, d));
        }
    });
    parallel_for(rows, [&](std::size_t row) {
        const std::size_t qb = row % nq, h = row / nq % heads, b = row / nq / heads;
        const std::size_t first = qb * bs, last = std::min(lq, first + bs) - 1;
        std::vector<float> mean(d, 0.f); // the sum of the block's queries: ranks as their mean does
        add_rows(q, b, h, first, last + 1 - first, mean.data());
        const float* keys = pooled.data() + (b * kv_heads + h / (heads / kv_heads)) * nkv * d;
        std::vector<std::pair<float, std::int32_t>> past; // (-score, block): sorts best first, ties to the earlier
        for (std::size_t kb = 0; kb < nkv; ++kb) {
            const auto k_first = std::ptrdiff_t(kb * bs), k_last = std::ptrdiff_t(std::min(lkv, kb * bs + bs) - 1);
            if (k_first > std::ptrdiff_t(last) + offset) break; // in the future of every query of the block
            if (k_last > std::ptrdiff_t(first) + offset) {      // the causal bound crosses it: always kept
                partial[row * nkv + std::size_t(num_partial[row]++)] = std::int32_t(kb);
                continue;
            }
            const float score = dot(std::span<const float>(mean), std::span<const float>(keys + kb * d, d));
            past.push_back({std::isnan(score) ? std::numeric_limits<float>::infinity() : -score, std::int32_t(kb)});
        }
        const std::size_t kept = std::min(opts.top_k, past.size());
        std::partial_sort(past.begin(), past.begin() + std::ptrdiff_t(kept), past.end());
        std::sort(past.begin(), past.begin() + std::ptrdiff_t(kept), [](auto x, auto y) { return x.second < y.second; });
        for (std::size_t e = 0; e < kept; ++e) full[row * nkv + std::size_t(num_full[row]++)] = past[e].second;
    });
    return block_mask(batch, heads, lq, lkv, bs, bs, num_partial, partial, num_full, full);
}

struct vertical_slash_options {
    /// Queries at the end of the sequence whose attention is estimated.
    std::size_t last_queries = 64;
    /// Key columns and diagonals kept per head, by their estimated attention mass.
    std::size_t columns = 1000, diagonals = 200;
    /// The first columns (attention sinks) and the diagonals nearest the main one (local context)
    /// kept whatever their estimate.
    std::size_t sink_columns = 30, local_diagonals = 30;
    /// Multiplies q·k; NaN (the default) means 1/√D.
    float scale = std::numeric_limits<float>::quiet_NaN();
};

/// MInference's vertical-slash estimate: the causal attention of the last `last_queries` queries of
/// each head over every key (softmax of q·k·scale), summed per key column and per diagonal q − kv;
/// the heaviest columns and diagonals per head, plus the first sink_columns columns and the nearest
/// local_diagonals diagonals. Returns one masks::vertical_slash per (batch, head) as a per_head
/// mask: pass it to create_block_mask for the blocks and to flex_attention as mask_mod. For prefill:
/// Lq = Lkv, causal. Work: last_queries·Lkv·D per head. Throws shape_error as attention() does, or
/// if Lq ≠ Lkv.
template <attention_value T>
masks::per_head<masks::vertical_slash> estimate_vertical_slash(tensor4_view<const T> q, tensor4_view<const T> k,
                                                               const vertical_slash_options& opts = {}) {
    const char* where = "lacuna::estimate_vertical_slash";
    const std::size_t batch = q.extent(0), heads = q.extent(1), lq = q.extent(2), d = q.extent(3);
    const std::size_t kv_heads = k.extent(1), lkv = k.extent(2);
    detail::check_extents(where, "k", k.extents(), {batch, kv_heads, lkv, d}, "q's batch and D");
    if (heads != 0 && (kv_heads == 0 || heads % kv_heads != 0))
        detail::fail<shape_error>(where, ": q has ", heads, " heads and k ", kv_heads, "; the query heads must be a multiple of the key heads");
    detail::check_contiguous_rows(where, "q", q);
    detail::check_contiguous_rows(where, "k", k);
    if (lq != lkv)
        detail::fail<shape_error>(where, ": q has ", lq, " positions and k ", lkv, "; the estimate is for prefill, where they match");
    const float s = detail::attention_scale(opts.scale, d);
    const std::size_t last = std::min(opts.last_queries, lq), first_query = lq - last;
    masks::per_head<masks::vertical_slash> out{std::vector<masks::vertical_slash>(batch * heads), heads};
    // The heaviest indices of a sum, always with the first `forced`; sorted ascending.
    auto heaviest = [](std::vector<double>& mass, std::size_t count, std::size_t forced) {
        for (std::size_t j = 0; j < std::min(forced, mass.size()); ++j) mass[j] = std::numeric_limits<double>::infinity();
        std::vector<std::size_t> order(mass.size());
        std::iota(order.begin(), order.end(), std::size_t(0));
        const std::size_t kept = std::min(count, order.size());
        std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(kept), order.end(), [&](std::size_t x, std::size_t y) {
            return mass[x] > mass[y] || (mass[x] == mass[y] && x < y);
        });
        order.resize(kept);
        std::erase_if(order, [&](std::size_t j) { return mass[j] == 0.0; });
        std::sort(order.begin(), order.end());
        return order;
    };
    // The scores of a group of the last queries against every key as one dense product (linear's
    // threads split the keys), then each query's softmax over its causal keys; groups of 16 queries
    // bound the scores to 16·Lkv floats.
    const std::size_t group = std::min<std::size_t>(16, last);
    std::vector<float> queries(group * d), scores(group * lkv);
    for (std::size_t bh = 0; bh < batch * heads; ++bh) {
        const std::size_t b = bh / heads, h = bh % heads, hk = h / (heads / kv_heads);
        std::vector<double> column(lkv, 0.0), diagonal(lkv, 0.0);
        for (std::size_t g0 = first_query; g0 < lq; g0 += group) {
            const std::size_t rows = std::min(group, lq - g0);
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t c = 0; c < d; ++c) queries[i * d + c] = s * float(q(b, h, g0 + i, c));
            linear(matrix_view<const float>(queries.data(), rows, d), matrix_view<const T>(k.row(b, hk, 0), lkv, d, k.stride(2)),
                   matrix_view<float>(scores.data(), rows, lkv));
            for (std::size_t i = 0; i < rows; ++i) {
                const std::size_t query = g0 + i, keys = query + 1;
                const std::span<float> row(scores.data() + i * lkv, keys);
                softmax(std::span<const float>(row), row);
                for (std::size_t j = 0; j < keys; ++j) {
                    column[j] += row[j];
                    diagonal[query - j] += row[j];
                }
            }
        }
        out.patterns[bh] = masks::vertical_slash{heaviest(column, opts.columns, opts.sink_columns),
                                                 heaviest(diagonal, opts.diagonals, opts.local_diagonals)};
    }
    return out;
}

} // namespace lacuna
