// lacuna: bitmap sparsity: one bit per element plus the kept values packed in bit order.
//
//   bits[rows][words_per_row]   uint64 words along each row, words_per_row = ceil(cols / 64);
//                               bit j % 64 of word j / 64 (least significant first) is set when
//                               element (i, j) is kept; bits past the last column are zero
//   offsets[rows · words_per_row + 1]
//                               exclusive prefix sum of the words' popcounts: word w's values
//                               start at values[offsets[w]], so any row or word is reached in O(1)
//   values[nnz]                 the kept values, row by row, in column order
//
// Worth it between about 30% and 80% density, where CSR's column indices cost more than the bits.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/prune.hpp"

namespace lacuna {

namespace detail {

inline std::size_t bitmap_words_per_row(std::size_t cols) noexcept { return (cols + 63) / 64; }

template <layout_index Index>
void validate_bitmap(const char* where, std::size_t rows, std::size_t cols, std::span<const std::uint64_t> bits,
                     std::span<const Index> offsets, std::size_t values_size) {
    check_fits_index<Index>(where, "row count", rows);
    check_fits_index<Index>(where, "column count", cols);
    check_fits_index<Index>(where, "nonzero count", values_size);
    const std::size_t words = bitmap_words_per_row(cols);
    if (bits.size() != rows * words)
        fail<invalid_layout>(where, ": bits has ", bits.size(), " words, expected ", rows * words, " (", rows,
                             " rows of ", words, ")");
    if (offsets.size() != rows * words + 1)
        fail<invalid_layout>(where, ": offsets has ", offsets.size(), " elements, expected ", rows * words + 1,
                             " (one per word, plus one)");
    if (offsets[0] != 0) fail<invalid_layout>(where, ": offsets[0] = ", offsets[0], ", expected 0");
    const std::size_t tail = cols % 64;
    for (std::size_t w = 0; w < bits.size(); ++w) {
        if (tail != 0 && w % words == words - 1 && (bits[w] >> tail) != 0)
            fail<invalid_layout>(where, ": bits[", w, "] sets bits past the last column of row ", w / words);
        const auto expected = std::size_t(offsets[w]) + std::size_t(std::popcount(bits[w]));
        if (offsets[w + 1] < offsets[w] || std::size_t(offsets[w + 1]) != expected)
            fail<invalid_layout>(where, ": offsets[", w + 1, "] = ", offsets[w + 1], ", expected ", expected,
                                 " (offsets[", w, "] plus the bits set in bits[", w, "])");
    }
    if (std::size_t(offsets[bits.size()]) != values_size)
        fail<invalid_layout>(where, ": values has ", values_size, " elements, expected ", offsets[bits.size()],
                             " (the bits set)");
}

} // namespace detail

/// A bitmap matrix over arrays owned elsewhere. `T` may be const; bits and offsets are read-only.
template <class T, layout_index Index = std::int32_t>
class bitmap_view : public detail::dense_conversion<bitmap_view<T, Index>> {
public:
    static constexpr const char* name = "bitmap";
    using value_type = std::remove_const_t<T>;
    using index_type = Index;
    using const_view = bitmap_view<const T, Index>;
    static_assert(layout_value<value_type>, "bitmap holds float, double or bfloat16");

    bitmap_view() = default;

    /// Views the arrays after checking every invariant (O(rows · words)); throws invalid_layout.
    bitmap_view(std::size_t rows, std::size_t cols, std::span<const std::uint64_t> bits, std::span<const Index> offsets,
                std::span<T> values)
        : bitmap_view(unchecked, rows, cols, bits.data(), offsets.data(), values.data()) {
        detail::validate_bitmap<Index>("lacuna::bitmap", rows, cols, bits, offsets, values.size());
    }

    /// Views trusted arrays without checking them.
    bitmap_view(unchecked_t, std::size_t rows, std::size_t cols, const std::uint64_t* bits, const Index* offsets,
                T* values) noexcept
        : rows_(rows), cols_(cols), bits_(bits), offsets_(offsets), values_(values) {}

    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    bitmap_view(const bitmap_view<U, Index>& o) noexcept // NOLINT: implicit, like T* to const T*
        : bitmap_view(unchecked, o.rows(), o.cols(), o.bits(), o.offsets(), o.values()) {}

    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    std::size_t words_per_row() const noexcept { return detail::bitmap_words_per_row(cols_); }
    std::size_t nnz() const noexcept { return offsets_ ? std::size_t(offsets_[rows_ * words_per_row()]) : 0; }
    double density() const noexcept { return rows_ && cols_ ? double(nnz()) / (double(rows_) * double(cols_)) : 0; }
    std::size_t bytes() const noexcept {
        const std::size_t words = rows_ * words_per_row();
        return words * 8 + (offsets_ ? words + 1 : 0) * sizeof(Index) + nnz() * sizeof(value_type);
    }

    const std::uint64_t* bits() const noexcept { return bits_; }
    const Index* offsets() const noexcept { return offsets_; }
    T* values() const noexcept { return values_; }
    /// The words of row i, and the first of its values.
    const std::uint64_t* row_bits(std::size_t i) const noexcept { return bits_ + i * words_per_row(); }
    T* row_values(std::size_t i) const noexcept { return values_ + offsets_[i * words_per_row()]; }

    /// Calls f(j, value) for every kept element of row i, in column order.
    template <class F> void for_each_in_row(std::size_t i, F&& f) const {
        const std::size_t words = words_per_row();
        for (std::size_t w = 0; w < words; ++w) {
            T* v = values_ + offsets_[i * words + w];
            for (std::uint64_t b = bits_[i * words + w]; b != 0; b &= b - 1) f(w * 64 + std::size_t(std::countr_zero(b)), *v++);
        }
    }

private:
    std::size_t rows_ = 0, cols_ = 0;
    const std::uint64_t* bits_ = nullptr;
    const Index* offsets_ = nullptr;
    T* values_ = nullptr;
};

namespace detail {
template <class T, class Index> struct bitmap_storage {
    aligned_buffer<std::uint64_t> bits_buf;
    aligned_buffer<Index> offsets_buf;
    aligned_buffer<T> values_buf;
};
} // namespace detail

/// A bitmap matrix that owns its arrays; it is a bitmap_view of them. Copies are deep; a moved-from
/// matrix is empty.
template <layout_value T, layout_index Index = std::int32_t>
class bitmap : public detail::owning_layout<bitmap<T, Index>, detail::bitmap_storage<T, Index>, bitmap_view<T, Index>> {
    using storage = detail::bitmap_storage<T, Index>;
    using view_type = bitmap_view<T, Index>;
    using base = detail::owning_layout<bitmap, storage, view_type>;
    friend base;

public:
    /// An empty 0 × 0 matrix.
    bitmap() : bitmap(unchecked, 0, 0, {}, aligned_buffer<Index>(1), {}) {}

    /// Copies the arrays after checking every invariant; throws invalid_layout.
    bitmap(std::size_t rows, std::size_t cols, std::span<const std::uint64_t> bits, std::span<const Index> offsets,
           std::span<const T> values)
        : bitmap(unchecked, rows, cols, aligned_buffer<std::uint64_t>(bits), aligned_buffer<Index>(offsets),
                 aligned_buffer<T>(values)) {
        detail::validate_bitmap<Index>("lacuna::bitmap", rows, cols, bits, offsets, values.size());
    }

    /// Takes ownership of trusted arrays without checking them.
    bitmap(unchecked_t, std::size_t rows, std::size_t cols, aligned_buffer<std::uint64_t> bits,
           aligned_buffer<Index> offsets, aligned_buffer<T> values)
        : base(storage{std::move(bits), std::move(offsets), std::move(values)},
               view_type(unchecked, rows, cols, nullptr, nullptr, nullptr)) {}

    /// Builds from a dense matrix, keeping what `rule` selects (by default every nonzero; for a KV
    /// cache, prune::top_fraction(f, prune::scope::row) keeps each token's largest values). Throws
    /// invalid_layout if a count does not fit Index.
    template <order O, selection_rule Rule = prune::nonzero>
    static bitmap from_dense(matrix_view<const T, O> dense, const Rule& rule = {}) {
        const char* where = "lacuna::bitmap::from_dense";
        const std::size_t rows = dense.rows(), cols = dense.cols(), words = detail::bitmap_words_per_row(cols);
        detail::check_fits_index<Index>(where, "row count", rows);
        detail::check_fits_index<Index>(where, "column count", cols);
        const std::vector<bool> keep = rule.select(dense);
        std::size_t nnz = 0;
        for (bool k : keep) nnz += k;
        detail::check_fits_index<Index>(where, "nonzero count", nnz);
        aligned_buffer<std::uint64_t> bits(rows * words);
        aligned_buffer<Index> offsets(rows * words + 1);
        aligned_buffer<T> values(nnz, aligned_buffer<T>::uninitialized);
        std::size_t k = 0;
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t w = 0; w < words; ++w) {
                for (std::size_t j = w * 64; j < std::min(cols, w * 64 + 64); ++j)
                    if (keep[i * cols + j]) {
                        bits[i * words + w] |= std::uint64_t(1) << (j % 64);
                        values[k++] = dense(i, j);
                    }
                offsets[i * words + w + 1] = Index(k);
            }
        return bitmap(unchecked, rows, cols, std::move(bits), std::move(offsets), std::move(values));
    }

private:
    static view_type rebind(const view_type& shape, storage& s) noexcept {
        return view_type(unchecked, shape.rows(), shape.cols(), s.bits_buf.data(), s.offsets_buf.data(),
                         s.values_buf.data());
    }
};

} // namespace lacuna
