// lacuna: a paged KV cache, as inference servers keep one: the keys and values of many sequences in
// fixed-size pages, each sequence with a block table of its pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"

namespace lacuna {

namespace detail {

// Throws shape_error unless k is [1, kv_heads, n, d] and v [1, kv_heads, n, dv]: the tokens a cache appends.
template <class T>
void check_appended(const char* where, tensor4_view<const T> k, tensor4_view<const T> v, std::size_t kv_heads, std::size_t d,
                    std::size_t dv) {
    const std::size_t n = k.extent(2);
    if (k.extent(0) != 1 || k.extent(1) != kv_heads || k.extent(3) != d)
        fail<shape_error>(where, ": k is [", k.extent(0), ", ", k.extent(1), ", ", n, ", ", k.extent(3), "], expected [1, ", kv_heads,
                          ", n, ", d, "]");
    if (v.extent(0) != 1 || v.extent(1) != kv_heads || v.extent(2) != n || v.extent(3) != dv)
        fail<shape_error>(where, ": v is [", v.extent(0), ", ", v.extent(1), ", ", v.extent(2), ", ", v.extent(3), "], expected [1, ",
                          kv_heads, ", ", n, ", ", dv, "]");
}

} // namespace detail

/// Keys and values of several sequences in pages of page_size tokens. Page p holds, for every KV
/// head h and slot s, key row k_pages()[((p · kv_heads + h) · page_size + s) · d + c] and value row
/// v_pages()[((p · kv_heads + h) · page_size + s) · dv + c]. All max_pages pages are allocated up
/// front; appending writes into a sequence's last page or takes the next free page, and never moves
/// what is stored.
template <class T> class paged_kv_cache {
public:
    /// Throws shape_error for a page size of 0 or no KV heads.
    paged_kv_cache(std::size_t kv_heads, std::size_t d, std::size_t dv, std::size_t page_size, std::size_t max_pages)
        : kv_heads_(kv_heads), d_(d), dv_(dv), page_size_(page_size), max_pages_(max_pages),
          k_(max_pages * kv_heads * page_size * d), v_(max_pages * kv_heads * page_size * dv) {
        if (page_size == 0 || kv_heads == 0)
            detail::fail<shape_error>("lacuna::paged_kv_cache: the page size and the KV heads must be positive");
    }

    /// A new, empty sequence; returns its index.
    std::size_t add_sequence() {
        tables_.emplace_back();
        lengths_.push_back(0);
        return lengths_.size() - 1;
    }

    /// Appends n tokens to sequence s: k [1, kv_heads, n, d] and v [1, kv_heads, n, dv]. Throws
    /// shape_error for other shapes or an unknown sequence, error when the pages run out (nothing is
    /// appended then).
    void append(std::size_t s, tensor4_view<const T> k, tensor4_view<const T> v) {
        const char* where = "lacuna::paged_kv_cache::append";
        if (s >= lengths_.size()) detail::fail<shape_error>(where, ": no sequence ", s, " (", lengths_.size(), " added)");
        const std::size_t n = k.extent(2);
        detail::check_appended(where, k, v, kv_heads_, d_, dv_);
        const std::size_t length = lengths_[s], pages_needed = (length + n + page_size_ - 1) / page_size_;
        if (pages_needed - tables_[s].size() > max_pages_ - used_)
            detail::fail(where, ": ", n, " more tokens need ", pages_needed - tables_[s].size(), " more page(s), ", max_pages_ - used_,
                         " of ", max_pages_, " are free");
        while (tables_[s].size() < pages_needed) tables_[s].push_back(std::int32_t(used_++));
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t pos = length + t, page = std::size_t(tables_[s][pos / page_size_]), slot = pos % page_size_;
            for (std::size_t h = 0; h < kv_heads_; ++h) {
                T* kr = k_.data() + ((page * kv_heads_ + h) * page_size_ + slot) * d_;
                T* vr = v_.data() + ((page * kv_heads_ + h) * page_size_ + slot) * dv_;
                for (std::size_t c = 0; c < d_; ++c) kr[c] = k(0, h, t, c);
                for (std::size_t c = 0; c < dv_; ++c) vr[c] = v(0, h, t, c);
            }
        }
        lengths_[s] += n;
    }

    std::size_t kv_heads() const noexcept { return kv_heads_; }
    std::size_t d() const noexcept { return d_; }
    std::size_t dv() const noexcept { return dv_; }
    std::size_t page_size() const noexcept { return page_size_; }
    std::size_t max_pages() const noexcept { return max_pages_; }
    std::size_t pages_used() const noexcept { return used_; }
    std::size_t sequences() const noexcept { return lengths_.size(); }
    std::size_t length(std::size_t s) const noexcept { return lengths_[s]; }
    /// The pages of sequence s in order: its token t is in page block_table(s)[t / page_size()].
    const std::vector<std::int32_t>& block_table(std::size_t s) const noexcept { return tables_[s]; }
    const T* k_pages() const noexcept { return k_.data(); }
    const T* v_pages() const noexcept { return v_.data(); }

private:
    std::size_t kv_heads_, d_, dv_, page_size_, max_pages_, used_ = 0;
    aligned_buffer<T> k_, v_;
    std::vector<std::vector<std::int32_t>> tables_;
    std::vector<std::size_t> lengths_;
};

} // namespace lacuna
