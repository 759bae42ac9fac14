// lacuna: a sparse KV cache (Mustafar's tile bitmaps): every appended token keeps, per KV head, the
// largest-magnitude channels of its key and of its value; keys are stored in tiles of 64 tokens of
// one channel, values in tiles of 64 channels of one token, each tile a 64-bit mask and its kept
// values packed in order.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/kernels/attention/decode.hpp"
#include "lacuna/layout/kv_cache.hpp"

namespace lacuna {

/// One sequence's keys and values for kv_heads heads, pruned per token: of each appended token's key
/// row (d channels) the keep_k of largest magnitude stay, of its value row (dv) the keep_v (ties to
/// the lower channel). Storage per head, in the tile-bitmap form (bit i of a mask ⇔ element i of the
/// tile, least significant first; ../shared/FORMATS.md describes Mustafar's interchange, which counts
/// from the most significant bit): keys of every complete block of 64 tokens as d tiles of 64 tokens
/// of one channel, the last tokens (fewer than 64) as dense rows with the pruned channels zero until
/// their block completes; values as ⌈dv / 64⌉ tiles of one token each. Each tile has the offset of
/// its first value. Appending compresses a block once, when it completes, and never re-packs what is
/// stored.
template <class T> class sparse_kv_cache {
public:
    /// Throws shape_error for no KV heads, or keep_k > d, keep_v > dv.
    sparse_kv_cache(std::size_t kv_heads, std::size_t d, std::size_t dv, std::size_t keep_k, std::size_t keep_v)
        : kv_heads_(kv_heads), d_(d), dv_(dv), keep_k_(keep_k), keep_v_(keep_v), chunks_((dv + 63) / 64), heads_(kv_heads) {
        const char* where = "lacuna::sparse_kv_cache";
        if (kv_heads == 0) detail::fail<shape_error>(where, ": there must be at least one KV head");
        if (keep_k > d) detail::fail<shape_error>(where, ": keep_k = ", keep_k, " exceeds the ", d, " key channels");
        if (keep_v > dv) detail::fail<shape_error>(where, ": keep_v = ", keep_v, " exceeds the ", dv, " value channels");
        for (head& h : heads_) {
            h.k_tail.assign(block * d, T(0.f));
            h.k_values.assign(padding, T(0.f));
            h.v_values.assign(padding, T(0.f));
        }
    }

    /// Appends n tokens: k [1, kv_heads, n, d] and v [1, kv_heads, n, dv], any strides. Throws
    /// shape_error for other shapes, error if a head would store 2^32 values or more (nothing is
    /// appended then).
    void append(tensor4_view<const T> k, tensor4_view<const T> v) {
        const char* where = "lacuna::sparse_kv_cache::append";
        const std::size_t n = k.extent(2);
        detail::check_appended(where, k, v, kv_heads_, d_, dv_);
        const std::size_t most = std::size_t(std::numeric_limits<std::uint32_t>::max());
        if (heads_[0].k_values.size() + (n + block) * keep_k_ >= most || heads_[0].v_values.size() + n * keep_v_ >= most)
            detail::fail(where, ": ", n, " more tokens would take a head past 2^32 stored values");
        std::vector<std::size_t> order(std::max(d_, dv_));
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t slot = length_ % block;
            for (std::size_t hk = 0; hk < kv_heads_; ++hk) {
                head& h = heads_[hk];
                // The key: its kept channels into the dense row of its block.
                T* row = h.k_tail.data() + slot * d_;
                std::fill(row, row + d_, T(0.f));
                for (std::size_t c : largest(&k(0, hk, t, 0), k.stride(3), d_, keep_k_, order)) row[c] = k(0, hk, t, c);
                // The value: its tiles, appended.
                const auto kept = largest(&v(0, hk, t, 0), v.stride(3), dv_, keep_v_, order);
                std::sort(order.begin(), order.begin() + std::ptrdiff_t(keep_v_));
                for (std::size_t ch = 0; ch < chunks_; ++ch) {
                    std::uint64_t bits = 0;
                    h.v_offsets.push_back(std::uint32_t(h.v_values.size() - padding));
                    for (std::size_t c : kept)
                        if (c / 64 == ch) {
                            bits |= std::uint64_t(1) << (c % 64);
                            push(h.v_values, v(0, hk, t, c));
                        }
                    h.v_bits.push_back(bits);
                }
            }
            ++length_;
            if (length_ % block == 0)
                for (head& h : heads_) compress_block(h);
        }
    }

    std::size_t kv_heads() const noexcept { return kv_heads_; }
    std::size_t d() const noexcept { return d_; }
    std::size_t dv() const noexcept { return dv_; }
    std::size_t keep_k() const noexcept { return keep_k_; }
    std::size_t keep_v() const noexcept { return keep_v_; }
    std::size_t length() const noexcept { return length_; }

    /// Bytes the stored keys and values take: masks, offsets, packed values and the dense rows of the
    /// last block.
    std::size_t bytes() const noexcept {
        std::size_t total = 0;
        for (const head& h : heads_)
            total += (h.k_bits.size() + h.v_bits.size()) * 8 + (h.k_offsets.size() + h.v_offsets.size()) * 4 +
                     (h.k_values.size() + h.v_values.size() - 2 * padding) * sizeof(T) + (length_ % block) * d_ * sizeof(T);
        return total;
    }

    /// The keys [1, kv_heads, length, d] and values [1, kv_heads, length, dv] as decode sees them:
    /// dense, the pruned channels zero. For tests and for moving a cache elsewhere.
    std::vector<T> keys() const {
        std::vector<T> out(kv_heads_ * length_ * d_, T(0.f));
        for (std::size_t hk = 0; hk < kv_heads_; ++hk) {
            const head& h = heads_[hk];
            T* dst = out.data() + hk * length_ * d_;
            for (std::size_t tile = 0; tile < length_ / block; ++tile)
                for (std::size_t c = 0; c < d_; ++c) {
                    std::uint64_t bits = h.k_bits[tile * d_ + c];
                    const T* value = h.k_values.data() + h.k_offsets[tile * d_ + c];
                    for (; bits; bits &= bits - 1) dst[(tile * block + std::size_t(std::countr_zero(bits))) * d_ + c] = *value++;
                }
            std::copy_n(h.k_tail.data(), (length_ % block) * d_, dst + length_ / block * block * d_);
        }
        return out;
    }
    std::vector<T> values() const {
        std::vector<T> out(kv_heads_ * length_ * dv_, T(0.f));
        for (std::size_t hk = 0; hk < kv_heads_; ++hk) {
            const head& h = heads_[hk];
            for (std::size_t j = 0; j < length_; ++j)
                for (std::size_t ch = 0; ch < chunks_; ++ch) {
                    std::uint64_t bits = h.v_bits[j * chunks_ + ch];
                    const T* value = h.v_values.data() + h.v_offsets[j * chunks_ + ch];
                    for (; bits; bits &= bits - 1)
                        out[(hk * length_ + j) * dv_ + ch * 64 + std::size_t(std::countr_zero(bits))] = *value++;
                }
        }
        return out;
    }

    /// What the decode kernel reads of head hk.
    kernels::sparse_kv_head<T> head_view(std::size_t hk) const noexcept {
        const head& h = heads_[hk];
        return {h.k_bits.data(), h.k_offsets.data(), h.k_values.data(), h.k_tail.data(),
                h.v_bits.data(), h.v_offsets.data(), h.v_values.data()};
    }

private:
    static constexpr std::size_t block = 64;
    // Values a kernel may read past the last stored one (a register of 16 loaded before expanding).
    static constexpr std::size_t padding = 16;

    struct head {
        std::vector<std::uint64_t> k_bits, v_bits;
        std::vector<std::uint32_t> k_offsets, v_offsets;
        std::vector<T> k_values, v_values; // `padding` zeros at the end
        std::vector<T> k_tail;             // block × d
    };

    // Appends x before the padding at the end of values.
    static void push(std::vector<T>& values, T x) { values.insert(values.end() - std::ptrdiff_t(padding), x); }

    // The `keep` channels of largest magnitude among n (stride apart), ties to the lower channel;
    // in order[0 .. keep).
    static std::span<const std::size_t> largest(const T* x, std::size_t stride, std::size_t n, std::size_t keep,
                                                std::vector<std::size_t>& order) {
        std::iota(order.begin(), order.begin() + std::ptrdiff_t(n), std::size_t(0));
        // NaN ranks first: it is kept, and propagates.
        const auto mag = [&](std::size_t c) {
            const float a = std::abs(float(x[c * stride]));
            return std::isnan(a) ? std::numeric_limits<float>::infinity() : a;
        };
        std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(keep), order.begin() + std::ptrdiff_t(n),
                         [&](std::size_t a, std::size_t b) { return mag(a) > mag(b) || (mag(a) == mag(b) && a < b); });
        return {order.data(), keep};
    }

    // The block of 64 tokens in the dense rows becomes d key tiles.
    void compress_block(head& h) const {
        for (std::size_t c = 0; c < d_; ++c) {
            std::uint64_t bits = 0;
            h.k_offsets.push_back(std::uint32_t(h.k_values.size() - padding));
            for (std::size_t s = 0; s < block; ++s)
                if (const T x = h.k_tail[s * d_ + c]; float(x) != 0.f) { // a kept 0 need not be stored
                    bits |= std::uint64_t(1) << s;
                    push(h.k_values, x);
                }
            h.k_bits.push_back(bits);
        }
    }

    std::size_t kv_heads_, d_, dv_, keep_k_, keep_v_, chunks_, length_ = 0;
    std::vector<head> heads_;
};

} // namespace lacuna
