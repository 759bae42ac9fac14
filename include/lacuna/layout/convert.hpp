// lacuna: converting one sparse layout into another, row by row, never through a dense matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/nm.hpp"

namespace lacuna {

/// A layout whose rows can be read in column order: every lacuna layout and view.
template <class S>
concept row_readable = sparse_matrix<S> && requires(const S& s) {
    s.for_each_in_row(std::size_t(0), [](std::size_t, const typename S::value_type&) {});
};

namespace detail {

template <class T> bool is_nonzero(const T& v) noexcept {
    if constexpr (std::is_same_v<T, double>) return v != 0;
    else return float(v) != 0.f; // NaN counts as nonzero
}

// f(j, v) for the nonzero stored elements of row i of s, in column order.
template <class S, class F> void for_each_nonzero_in_row(const S& s, std::size_t i, F&& f) {
    s.for_each_in_row(i, [&](std::size_t j, const typename S::value_type& v) {
        if (is_nonzero(v)) f(j, v);
    });
}

template <class U> aligned_buffer<U> to_buffer(const std::vector<U>& v) { return aligned_buffer<U>(std::span<const U>(v)); }

} // namespace detail

/// Converts `source` into the layout `Target` (csr, bsr, nm or bitmap, with any index type) in
/// O(rows + stored elements), without a dense intermediate. Every stored nonzero of the source is
/// carried over, NaN included; stored zeros (the fill of BSR blocks and N:M groups) are dropped.
/// A dynamic-shape BSR target takes its block size as `block`. Throws invalid_layout if a count does
/// not fit the target's index type, or (N:M targets) if a group of M columns holds more than N
/// nonzeros.
template <class Target, row_readable Source>
Target convert_to(const Source& source, block_size block = {0, 0}) {
    using T = typename Target::value_type;
    using Index = typename Target::index_type;
    static_assert(std::is_same_v<T, typename Source::value_type>,
                  "convert_to keeps the value type; convert values with lacuna::convert first");
    const char* where = "lacuna::convert_to";
    const std::size_t rows = source.rows(), cols = source.cols();
    detail::check_fits_index<Index>(where, "row count", rows);
    detail::check_fits_index<Index>(where, "column count", cols);

    if constexpr (compressed_rows<Target>) {
        std::vector<Index> row_ptr(rows + 1, 0), col_idx;
        std::vector<T> values;
        for (std::size_t i = 0; i < rows; ++i) {
            detail::for_each_nonzero_in_row(source, i, [&](std::size_t j, const T& v) {
                col_idx.push_back(Index(j));
                values.push_back(v);
            });
            detail::check_fits_index<Index>(where, "nonzero count", col_idx.size());
            row_ptr[i + 1] = Index(col_idx.size());
        }
        return Target(unchecked, rows, cols, detail::to_buffer(row_ptr), detail::to_buffer(col_idx),
                      detail::to_buffer(values));
    } else if constexpr (bitmap_sparse<Target>) {
        const std::size_t words = detail::bitmap_words_per_row(cols);
        aligned_buffer<std::uint64_t> bits(rows * words);
        aligned_buffer<Index> offsets(rows * words + 1);
        std::vector<T> values;
        for (std::size_t i = 0; i < rows; ++i) {
            detail::for_each_nonzero_in_row(source, i, [&](std::size_t j, const T& v) {
                bits[i * words + j / 64] |= std::uint64_t(1) << (j % 64);
                values.push_back(v);
            });
            detail::check_fits_index<Index>(where, "nonzero count", values.size());
        }
        for (std::size_t w = 0; w < rows * words; ++w)
            offsets[w + 1] = Index(std::size_t(offsets[w]) + std::size_t(std::popcount(bits[w])));
        return Target(unchecked, rows, cols, std::move(bits), std::move(offsets), detail::to_buffer(values));
    } else if constexpr (semi_structured<Target>) {
        constexpr std::size_t N = Target::n, M = Target::m;
        using format = nm_format<N, M>;
        const std::size_t G = format::groups(cols), words = format::words_per_row(cols);
        aligned_buffer<T> values(rows * G * N);
        aligned_buffer<std::uint64_t> meta(rows * words);
        std::vector<std::size_t> count(G);
        std::vector<std::size_t> kept(G * N);
        std::vector<T> kept_values(G * N);
        for (std::size_t i = 0; i < rows; ++i) {
            std::fill(count.begin(), count.end(), 0);
            detail::for_each_nonzero_in_row(source, i, [&](std::size_t j, const T& v) {
                const std::size_t g = j / M;
                if (count[g] == N)
                    detail::fail<invalid_layout>(where, ": row ", i, ", group ", g, " (columns ", g * M, " to ",
                                                 std::min(cols, g * M + M) - 1, ") holds more than ", N, " nonzeros");
                kept[g * N + count[g]] = j % M;
                kept_values[g * N + count[g]++] = v;
            });
            for (std::size_t g = 0; g < G; ++g)
                format::set_code(meta.data() + i * words, g,
                                 detail::encode_nm_group<N, M>(&kept[g * N], &kept_values[g * N], count[g],
                                                               values.data() + (i * G + g) * N));
        }
        return Target(unchecked, rows, cols, std::move(values), std::move(meta));
    } else {
        static_assert(block_sparse<Target>, "convert_to makes csr, bsr, nm or bitmap layouts");
        if constexpr (Target::static_block_rows != dynamic)
            if (block == block_size{0, 0}) block = {Target::static_block_rows, Target::static_block_cols};
        const detail::block_shape<Target::static_block_rows, Target::static_block_cols> shape(block);
        const std::size_t br = shape.rows(), bc = shape.cols();
        const std::size_t nbr = detail::ceil_div(rows, br), nbc = detail::ceil_div(cols, bc);
        // Pass 1: the blocks each block row touches, in column order.
        std::vector<Index> row_ptr(nbr + 1, 0), col_idx;
        std::vector<char> touched(nbc);
        for (std::size_t bi = 0; bi < nbr; ++bi) {
            std::fill(touched.begin(), touched.end(), 0);
            for (std::size_t i = bi * br; i < std::min(rows, bi * br + br); ++i)
                detail::for_each_nonzero_in_row(source, i, [&](std::size_t j, const T&) { touched[j / bc] = 1; });
            for (std::size_t bj = 0; bj < nbc; ++bj)
                if (touched[bj]) col_idx.push_back(Index(bj));
            detail::check_fits_index<Index>(where, "stored block count", col_idx.size());
            row_ptr[bi + 1] = Index(col_idx.size());
        }
        // Pass 2: scatter into zeroed blocks.
        aligned_buffer<T> values(col_idx.size() * br * bc);
        std::vector<std::size_t> slot(nbc);
        for (std::size_t bi = 0; bi < nbr; ++bi) {
            for (auto k = std::size_t(row_ptr[bi]); k < std::size_t(row_ptr[bi + 1]); ++k) slot[std::size_t(col_idx[k])] = k;
            for (std::size_t i = bi * br; i < std::min(rows, bi * br + br); ++i)
                detail::for_each_nonzero_in_row(source, i, [&](std::size_t j, const T& v) {
                    values[slot[j / bc] * br * bc + (i - bi * br) * bc + j % bc] = v;
                });
        }
        return Target(unchecked, rows, cols, block, detail::to_buffer(row_ptr), detail::to_buffer(col_idx),
                      std::move(values));
    }
}

} // namespace lacuna
