// lacuna: the attention patterns of sparse-attention papers, each a FlexAttention mask_mod that also
// lists its kept keys as runs, so that create_block_mask and flex_attention's partial tiles need not
// call it per position; vertical-slash, with its thousand runs, also classifies a block in closed form.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "lacuna/core/bits.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/block_mask.hpp"

namespace lacuna::detail {
// The lookups of the patterns binary-search their position lists, and a block is full only when no
// position of a range is missing: sorted, each once.
inline std::vector<std::size_t> sorted_unique(std::vector<std::size_t> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}
} // namespace lacuna::detail

namespace lacuna::masks {

/// Query q attends key kv when kv <= q + offset: offset = Lkv − Lq aligns it to the bottom right.
struct causal {
    std::ptrdiff_t offset = 0;
    bool operator()(std::size_t, std::size_t, std::size_t q, std::size_t kv) const noexcept {
        return std::ptrdiff_t(kv) <= std::ptrdiff_t(q) + offset;
    }
    template <class F> void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t, std::size_t, F&& f) const {
        const std::ptrdiff_t end = std::ptrdiff_t(q) + offset + 1;
        if (end > 0) f(std::size_t(0), std::size_t(end), true);
    }
};

/// Keys q − before ≤ kv ≤ q + after (a causal local window of w keys: before = w − 1, after = 0).
struct sliding_window {
    std::size_t before, after = 0;
    bool operator()(std::size_t, std::size_t, std::size_t q, std::size_t kv) const noexcept {
        return kv + before >= q && kv <= q + after;
    }
    template <class F> void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t, std::size_t, F&& f) const {
        f(q > before ? q - before : 0, q + after + 1, true);
    }
};

/// The window of sliding_window, keeping every dilation-th key counted from the query (LongNet,
/// dilated sliding windows): q − kv a multiple of dilation.
struct dilated_window {
    std::size_t before, after, dilation;
    bool operator()(std::size_t b, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        const std::size_t distance = q > kv ? q - kv : kv - q;
        return sliding_window{before, after}(b, h, q, kv) && distance % dilation == 0;
    }
    template <class F> void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t, std::size_t, F&& f) const {
        f(q > before ? q - before : 0, q + after + 1, dilation == 1);
    }
};

/// StreamingLLM's A shape: the first `sinks` keys and a causal window of `window` keys, nothing in
/// the future.
struct sinks_and_window {
    std::size_t sinks, window;
    bool operator()(std::size_t, std::size_t, std::size_t q, std::size_t kv) const noexcept {
        return kv <= q && (kv < sinks || q - kv < window);
    }
    template <class F> void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t, std::size_t, F&& f) const {
        const std::size_t first = q + 1 > window ? q + 1 - window : 0;
        if (first > sinks) f(std::size_t(0), std::min(sinks, q + 1), true);
        f(first > sinks ? first : 0, q + 1, true);
    }
};

/// Longformer's global attention over a local window: the listed global positions attend every key
/// and are attended by every query; other pairs keep q − before ≤ kv ≤ q + after.
struct global_tokens {
    std::vector<std::size_t> global; // strictly increasing
    std::size_t before = 0, after = 0;
    global_tokens() = default;
    /// The positions in any order; repeats are dropped.
    global_tokens(std::vector<std::size_t> positions, std::size_t window_before, std::size_t window_after = 0)
        : global(detail::sorted_unique(std::move(positions))), before(window_before), after(window_after) {}
    bool is_global(std::size_t i) const noexcept { return std::binary_search(global.begin(), global.end(), i); }
    bool operator()(std::size_t b, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        return is_global(q) || is_global(kv) || sliding_window{before, after}(b, h, q, kv);
    }
    template <class F>
    void for_each_run(std::size_t b, std::size_t h, std::size_t q, std::size_t kv_begin, std::size_t kv_end, F&& f) const {
        if (is_global(q)) return f(kv_begin, kv_end, true);
        for (auto g = std::lower_bound(global.begin(), global.end(), kv_begin); g != global.end() && *g < kv_end; ++g)
            f(*g, *g + 1, true);
        sliding_window{before, after}.for_each_run(b, h, q, kv_begin, kv_end, f);
    }
};

/// BigBird: a window of `window_blocks` blocks either side of the query's block, the first
/// `global_blocks` blocks as global rows and columns, and `random_blocks` key blocks per query block
/// and head, drawn from `seed` over the ⌈kv_len / block⌉ key blocks (the same for every query of the
/// block); blocks of `block` tokens.
struct bigbird {
    std::size_t block, window_blocks, global_blocks, random_blocks, kv_len;
    std::uint64_t seed;

    /// Throws shape_error for a block of 0 or an empty key sequence with random blocks.
    bigbird(std::size_t block_size, std::size_t window, std::size_t globals, std::size_t randoms, std::size_t keys,
            std::uint64_t random_seed = 0)
        : block(block_size), window_blocks(window), global_blocks(globals), random_blocks(randoms), kv_len(keys),
          seed(random_seed) {
        if (block == 0 || (random_blocks > 0 && kv_len == 0))
            detail::fail<shape_error>("lacuna::masks::bigbird: the block size and, with random blocks, kv_len must be positive");
    }

    /// Key block r-th random pick of query block qb for head h.
    std::size_t random_block(std::size_t h, std::size_t qb, std::size_t r) const noexcept {
        std::uint64_t x = seed + 0x9e3779b97f4a7c15ull * (1 + ((std::uint64_t(h) << 40) ^ (std::uint64_t(qb) << 8) ^ r));
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; // splitmix64's finaliser
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return std::size_t((x ^ (x >> 31)) % ((kv_len + block - 1) / block));
    }
    bool operator()(std::size_t, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        const std::size_t qb = q / block, kb = kv / block;
        if (qb < global_blocks || kb < global_blocks || (qb > kb ? qb - kb : kb - qb) <= window_blocks) return true;
        for (std::size_t r = 0; r < random_blocks; ++r)
            if (random_block(h, qb, r) == kb) return true;
        return false;
    }
    template <class F>
    void for_each_run(std::size_t, std::size_t h, std::size_t q, std::size_t kv_begin, std::size_t kv_end, F&& f) const {
        const std::size_t qb = q / block;
        if (qb < global_blocks) return f(kv_begin, kv_end, true);
        f(std::size_t(0), global_blocks * block, true);
        f((qb > window_blocks ? qb - window_blocks : 0) * block, (qb + window_blocks + 1) * block, true);
        for (std::size_t r = 0; r < random_blocks; ++r) {
            const std::size_t kb = random_block(h, qb, r);
            f(kb * block, (kb + 1) * block, true);
        }
    }
};

/// MInference's vertical-slash pattern, causal: the listed key columns for every query, and the
/// listed diagonals (offsets q − kv ≥ 0).
struct vertical_slash {
    std::vector<std::size_t> columns;   // strictly increasing
    std::vector<std::size_t> diagonals; // strictly increasing
    vertical_slash() = default;
    /// The columns and diagonals in any order; repeats are dropped.
    vertical_slash(std::vector<std::size_t> key_columns, std::vector<std::size_t> offsets)
        : columns(detail::sorted_unique(std::move(key_columns))), diagonals(detail::sorted_unique(std::move(offsets))) {}
    bool operator()(std::size_t, std::size_t, std::size_t q, std::size_t kv) const noexcept {
        return kv <= q && (std::binary_search(columns.begin(), columns.end(), kv) ||
                           std::binary_search(diagonals.begin(), diagonals.end(), q - kv));
    }
    /// The first column at or after key kv.
    auto columns_from(std::size_t kv) const { return std::lower_bound(columns.begin(), columns.end(), kv); }
    /// The first diagonal that keeps a key below kv_end for a query at or after q_begin.
    auto diagonals_from(std::size_t q_begin, std::size_t kv_end) const {
        return std::lower_bound(diagonals.begin(), diagonals.end(), q_begin + 1 > kv_end ? q_begin + 1 - kv_end : 0);
    }
    // Only the columns and diagonals that meet [kv_begin, kv_end): a tile of 64 keys looks up its
    // few among a thousand, where listing them all for every query cost 6x dense attention.
    template <class F>
    void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t kv_begin, std::size_t kv_end, F&& f) const {
        const std::size_t end = std::min(kv_end, q + 1); // causal
        if (kv_begin >= end) return;
        for (auto c = columns_from(kv_begin); c != columns.end() && *c < end; ++c) f(*c, *c + 1, true);
        // kv = q − d in [kv_begin, end) for d in [q + 1 − end, q − kv_begin].
        for (auto d = diagonals_from(q, end); d != diagonals.end() && *d <= q - kv_begin; ++d)
            f(q - *d, q - *d + 1, true);
    }
    // A tile's columns found once, then each diagonal that meets the tile along its queries; the
    // binary searches per query of for_each_run cost a quarter of the attention.
    void kept_bits(std::size_t, std::size_t, std::size_t q_begin, std::size_t queries, std::size_t kv_begin, std::size_t keys,
                   std::uint64_t* kept) const noexcept {
        const std::size_t q_end = q_begin + queries, kv_end = kv_begin + keys;
        std::uint64_t column_bits = 0;
        for (auto c = columns_from(kv_begin); c != columns.end() && *c < kv_end; ++c) column_bits |= std::uint64_t(1) << (*c - kv_begin);
        std::fill_n(kept, queries, column_bits);
        // Diagonal d keeps key kv of query kv + d; none meets a tile whose keys are all in the future.
        for (auto d = diagonals_from(q_begin, kv_end); d != diagonals.end() && *d + kv_begin < q_end; ++d) {
            const std::size_t first_key = q_begin > kv_begin + *d ? q_begin - kv_begin - *d : 0;
            for (std::size_t j = first_key; j < keys && kv_begin + j + *d < q_end; ++j)
                kept[kv_begin + j + *d - q_begin] |= std::uint64_t(1) << j;
        }
        for (std::size_t i = 0; i < queries; ++i) // causal
            kept[i] &= q_begin + i < kv_begin ? 0 : detail::low_mask(std::min(keys, q_begin + i + 1 - kv_begin));
    }
    // A block from the columns and diagonals that meet it: create_block_mask would otherwise list
    // every column and diagonal for every query (0.25 s for 8 heads of 8192 tokens).
    block_kind classify_block(std::size_t, std::size_t, std::size_t q_begin, std::size_t q_end, std::size_t kv_begin,
                              std::size_t kv_end) const {
        if (kv_begin >= q_end) return block_kind::empty; // every key in the future of every query
        const auto column = columns_from(kv_begin);
        const auto diagonal = diagonals_from(q_begin, kv_end); // meets the block if at most q_end − 1 − kv_begin
        const bool any_column = column != columns.end() && *column < std::min(kv_end, q_end);
        if (!any_column && (diagonal == diagonals.end() || *diagonal > q_end - 1 - kv_begin)) return block_kind::empty;
        if (kv_end - 1 > q_begin) return block_kind::partial; // reaches into a query's future
        // Full when each key that is not a column is kept on every query by a diagonal.
        for (auto [kv, c] = std::pair{kv_begin, column}; kv < kv_end; ++kv) {
            if (c != columns.end() && *c == kv) {
                ++c;
                continue;
            }
            const auto first = std::lower_bound(diagonals.begin(), diagonals.end(), q_begin - kv);
            if (std::size_t(std::upper_bound(first, diagonals.end(), q_end - 1 - kv) - first) != q_end - q_begin)
                return block_kind::partial;
        }
        return block_kind::full;
    }
};

/// Packed variable-length sequences (document masking): query and key in the same sequence, where
/// sequence s holds positions [cu_seqlens[s], cu_seqlens[s + 1]); causal within it if asked.
struct document {
    std::vector<std::size_t> cu_seqlens; // starts with 0, nondecreasing
    bool causal = true;
    explicit document(std::vector<std::size_t> cu, bool is_causal = true) : cu_seqlens(std::move(cu)), causal(is_causal) {
        if (cu_seqlens.empty() || cu_seqlens.front() != 0 || !std::is_sorted(cu_seqlens.begin(), cu_seqlens.end()))
            detail::fail<shape_error>("lacuna::masks::document: cu_seqlens must start at 0 and not decrease");
    }
    /// The sequence position i belongs to, or the count of sequences past the end.
    std::size_t sequence(std::size_t i) const noexcept {
        return std::size_t(std::upper_bound(cu_seqlens.begin(), cu_seqlens.end(), i) - cu_seqlens.begin()) - 1;
    }
    bool operator()(std::size_t, std::size_t, std::size_t q, std::size_t kv) const noexcept {
        return q < cu_seqlens.back() && kv < cu_seqlens.back() && sequence(q) == sequence(kv) && (!causal || kv <= q);
    }
    template <class F> void for_each_run(std::size_t, std::size_t, std::size_t q, std::size_t, std::size_t, F&& f) const {
        if (q >= cu_seqlens.back()) return;
        const std::size_t s = sequence(q);
        f(cu_seqlens[s], causal ? q + 1 : cu_seqlens[s + 1], true);
    }
};

/// A different causal window per head (Mixture of Attention spans): head h keeps q − kv < window[h].
struct per_head_window {
    std::vector<std::size_t> window;
    bool operator()(std::size_t, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        return kv <= q && q - kv < window[h];
    }
    template <class F> void for_each_run(std::size_t, std::size_t h, std::size_t q, std::size_t, std::size_t, F&& f) const {
        f(q + 1 > window[h] ? q + 1 - window[h] : 0, q + 1, true);
    }
};

} // namespace lacuna::masks
