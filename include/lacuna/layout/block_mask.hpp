// lacuna: FlexAttention's BlockMask: for each block of queries, the key blocks attention visits,
// split into partial blocks (the mask function runs per element) and full blocks (it is skipped).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"

namespace lacuna {

/// The block-sparse structure of an attention mask, in FlexAttention's arrays (../FORMATS.md):
/// kv_num_blocks [B, H, n_q_blocks] and kv_indices [B, H, n_q_blocks, n_kv_blocks] list the partial
/// key blocks of each query block (only the first kv_num_blocks entries of a row count), and
/// full_kv_num_blocks / full_kv_indices the full ones. B or H may be 1 to broadcast. Blocks not
/// listed are never touched. n_q_blocks = ⌈Lq / q_block⌉, n_kv_blocks = ⌈Lkv / kv_block⌉; a last
/// block that runs past the sequence covers only what is inside it.
class block_mask {
public:
    block_mask() = default;

    /// Imports FlexAttention's arrays as they are (copied). The full arrays may be empty (no full
    /// blocks). Throws invalid_layout naming the array and position if a count exceeds n_kv_blocks,
    /// an index is out of range, or a block is listed twice for one query block (in either list);
    /// shape_error if an array's size does not match the shape.
    block_mask(std::size_t batch, std::size_t heads, std::size_t q_len, std::size_t kv_len, std::size_t q_block,
               std::size_t kv_block, std::span<const std::int32_t> kv_num_blocks, std::span<const std::int32_t> kv_indices,
               std::span<const std::int32_t> full_kv_num_blocks = {}, std::span<const std::int32_t> full_kv_indices = {})
        : batch_(batch), heads_(heads), q_len_(q_len), kv_len_(kv_len), q_block_(q_block), kv_block_(kv_block),
          num_partial_(kv_num_blocks.begin(), kv_num_blocks.end()), partial_(kv_indices.begin(), kv_indices.end()),
          num_full_(full_kv_num_blocks.begin(), full_kv_num_blocks.end()), full_(full_kv_indices.begin(), full_kv_indices.end()) {
        validate();
    }

    std::size_t batch() const noexcept { return batch_; }
    std::size_t heads() const noexcept { return heads_; }
    std::size_t q_len() const noexcept { return q_len_; }
    std::size_t kv_len() const noexcept { return kv_len_; }
    std::size_t q_block() const noexcept { return q_block_; }
    std::size_t kv_block() const noexcept { return kv_block_; }
    std::size_t q_blocks() const noexcept { return (q_len_ + q_block_ - 1) / q_block_; }
    std::size_t kv_blocks() const noexcept { return (kv_len_ + kv_block_ - 1) / kv_block_; }

    std::span<const std::int32_t> kv_num_blocks() const noexcept { return num_partial_; }
    std::span<const std::int32_t> kv_indices() const noexcept { return partial_; }
    std::span<const std::int32_t> full_kv_num_blocks() const noexcept { return num_full_; }
    std::span<const std::int32_t> full_kv_indices() const noexcept { return full_; }

    /// Blocks listed (partial plus full) over all rows, and the fraction of all B·H·n_q·n_kv blocks.
    std::size_t listed_blocks() const noexcept {
        std::size_t n = 0;
        for (auto c : num_partial_) n += std::size_t(c);
        for (auto c : num_full_) n += std::size_t(c);
        return n;
    }
    double density() const noexcept {
        const double all = double(batch_ * heads_ * q_blocks() * kv_blocks());
        return all > 0 ? double(listed_blocks()) / all : 0.0;
    }

private:
    void validate() const {
        const char* where = "lacuna::block_mask";
        if (q_block_ == 0 || kv_block_ == 0)
            detail::fail<shape_error>(where, ": block sizes must be positive, got ", q_block_, " x ", kv_block_);
        const std::size_t rows = batch_ * heads_ * q_blocks(), nkv = kv_blocks();
        detail::check_size(where, "kv_num_blocks", num_partial_.size(), rows, "B · H · n_q_blocks");
        detail::check_size(where, "kv_indices", partial_.size(), rows * nkv, "B · H · n_q_blocks · n_kv_blocks");
        if (!num_full_.empty() || !full_.empty()) {
            detail::check_size(where, "full_kv_num_blocks", num_full_.size(), rows, "B · H · n_q_blocks");
            detail::check_size(where, "full_kv_indices", full_.size(), rows * nkv, "B · H · n_q_blocks · n_kv_blocks");
        }
        std::vector<std::size_t> seen(nkv, std::size_t(-1)); // the last row that listed each block
        auto check_row = [&](std::size_t row, const std::vector<std::int32_t>& count, const std::vector<std::int32_t>& index,
                             const char* count_name, const char* index_name) {
            if (count[row] < 0 || std::size_t(count[row]) > nkv)
                detail::fail<invalid_layout>(where, ": ", count_name, "[", row, "] is ", count[row], ", outside [0, ", nkv, "]");
            for (std::size_t e = 0; e < std::size_t(count[row]); ++e) {
                const std::int32_t blk = index[row * nkv + e];
                if (blk < 0 || std::size_t(blk) >= nkv)
                    detail::fail<invalid_layout>(where, ": ", index_name, "[", row * nkv + e, "] is ", blk,
                                                 ", outside the ", nkv, " key blocks");
                if (seen[std::size_t(blk)] == row)
                    detail::fail<invalid_layout>(where, ": key block ", blk, " is listed twice for query block row ", row,
                                                 " (", index_name, "[", row * nkv + e, "])");
                seen[std::size_t(blk)] = row;
            }
        };
        for (std::size_t row = 0; row < rows; ++row) {
            check_row(row, num_partial_, partial_, "kv_num_blocks", "kv_indices");
            if (!num_full_.empty()) check_row(row, num_full_, full_, "full_kv_num_blocks", "full_kv_indices");
        }
    }

    std::size_t batch_ = 0, heads_ = 0, q_len_ = 0, kv_len_ = 0, q_block_ = 128, kv_block_ = 128;
    std::vector<std::int32_t> num_partial_, partial_, num_full_, full_;
};

/// A mask_mod that can also list the keys query q keeps as runs: for_each_run(b, h, q, kv_begin,
/// kv_end, f) calls f(begin, end, dense) for key ranges that together hold every kept key of q in
/// [kv_begin, kv_end), with dense true only when every key of [begin, end) is kept. Runs may overlap
/// and reach past the range (callers clip them); a mask with many runs lists only those that meet it,
/// since attention asks for one tile's keys at a time.
/// The patterns of lacuna::masks are such masks.
template <class M>
concept run_listed_mask = requires(const M& m, void (*f)(std::size_t, std::size_t, bool)) {
    m.for_each_run(std::size_t{}, std::size_t{}, std::size_t{}, std::size_t{}, std::size_t{}, f);
};

/// A mask_mod that writes the keys a tile of at most 64 queries keeps as bits: kept_bits(b, h,
/// q_begin, queries, kv_begin, keys, kept) sets kept[c] to the keys [kv_begin, kv_begin + keys),
/// keys <= 64, that query q_begin + c keeps (bit j for key kv_begin + j), for c < queries <= 64.
/// flex_attention's partial tiles use it before runs: a pattern whose runs are the same for every
/// query of a tile (vertical-slash's columns) finds them once a tile, not once a query.
template <class M>
concept bit_listed_mask = requires(const M& m, std::size_t i, std::uint64_t* kept) {
    m.kept_bits(i, i, i, i, i, i, kept);
};

/// What a mask keeps of a block of queries × keys: nothing, some positions, or every one.
enum class block_kind { empty, partial, full };

/// A mask_mod that classifies a block in closed form: classify_block(b, h, q_begin, q_end, kv_begin,
/// kv_end) is block_kind::full when every position of [q_begin, q_end) × [kv_begin, kv_end) is kept,
/// partial when some is, empty when none is (both ranges nonempty). For patterns with many runs
/// per query (vertical-slash's thousand columns), where listing them for every query would cost
/// more than the attention it serves.
template <class M>
concept block_classified_mask = requires(const M& m, std::size_t i) {
    { m.classify_block(i, i, i, i, i, i) } -> std::same_as<block_kind>;
};

/// The block mask of mask_mod(b, h, q, kv) -> bool over [batch, heads, q_len, kv_len], as FlexAttention's
/// create_block_mask builds it, without a compile step: a block where mask_mod is true at every
/// position inside the sequences is full, one where it is true somewhere is partial, the rest are
/// dropped. Pass batch or heads as 1 when mask_mod does not depend on them (it is then called with
/// 0). Work: Lq·Lkv·B·H calls of mask_mod; for a block_classified_mask one classify_block per
/// block; for a run_listed_mask (the other patterns of lacuna::masks) one for_each_run per query
/// and O(key blocks its runs touch). Spread over threads by query block.
/// mask_mod must be safe to call concurrently. Throws shape_error for block sizes of 0.
template <class MaskMod>
block_mask create_block_mask(const MaskMod& mask_mod, std::size_t batch, std::size_t heads, std::size_t q_len,
                             std::size_t kv_len, std::size_t q_block = 128, std::size_t kv_block = 128) {
    if (q_block == 0 || kv_block == 0)
        detail::fail<shape_error>("lacuna::create_block_mask: block sizes must be positive, got ", q_block, " x ", kv_block);
    const std::size_t nq = (q_len + q_block - 1) / q_block, nkv = (kv_len + kv_block - 1) / kv_block;
    const std::size_t rows = batch * heads * nq;
    std::vector<std::int32_t> num_partial(rows, 0), partial(rows * nkv, 0), num_full(rows, 0), full(rows * nkv, 0);
    parallel_for(rows, [&](std::size_t row) {
        const std::size_t qb = row % nq, h = row / nq % heads, b = row / nq / heads;
        const std::size_t q_begin = qb * q_block, q_end = std::min(q_len, q_begin + q_block);
        auto keys_of = [&](std::size_t kb) { return std::pair{kb * kv_block, std::min(kv_len, (kb + 1) * kv_block)}; };
        auto classify = [&](std::size_t kb, bool any, bool all) {
            if (all) full[row * nkv + std::size_t(num_full[row]++)] = std::int32_t(kb);
            else if (any) partial[row * nkv + std::size_t(num_partial[row]++)] = std::int32_t(kb);
        };
        if constexpr (block_classified_mask<MaskMod>) {
            for (std::size_t kb = 0; kb < nkv; ++kb) {
                const auto [k0, k1] = keys_of(kb);
                const block_kind kind = mask_mod.classify_block(b, h, q_begin, q_end, k0, k1);
                classify(kb, kind != block_kind::empty, kind == block_kind::full);
            }
        } else if constexpr (run_listed_mask<MaskMod>) {
            // A block is full when each of its queries has one dense run over all of it.
            std::vector<std::size_t> covered(nkv, 0), last_row(nkv, q_len);
            std::vector<char> touched(nkv, 0);
            for (std::size_t i = q_begin; i < q_end; ++i)
                mask_mod.for_each_run(b, h, i, 0, kv_len, [&](std::size_t first, std::size_t end, bool dense) {
                    end = std::min(end, kv_len);
                    if (first >= end) return;
                    for (std::size_t kb = first / kv_block; kb <= (end - 1) / kv_block; ++kb) {
                        touched[kb] = 1;
                        const auto [k0, k1] = keys_of(kb);
                        if (dense && first <= k0 && end >= k1 && last_row[kb] != i) {
                            last_row[kb] = i;
                            ++covered[kb];
                        }
                    }
                });
            for (std::size_t kb = 0; kb < nkv; ++kb) classify(kb, touched[kb], covered[kb] == q_end - q_begin);
        } else {
            for (std::size_t kb = 0; kb < nkv; ++kb) {
                const auto [k0, k1] = keys_of(kb);
                bool any = false, all = true;
                for (std::size_t i = q_begin; i < q_end && (all || !any); ++i)
                    for (std::size_t j = k0; j < k1; ++j) {
                        const bool keep = mask_mod(b, h, i, j);
                        any = any || keep;
                        all = all && keep;
                    }
                classify(kb, any, all);
            }
        }
    });
    return block_mask(batch, heads, q_len, kv_len, q_block, kv_block, num_partial, partial, num_full, full);
}

} // namespace lacuna
