// lacuna: building a sparse matrix from (row, column, value) triplets in any order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/convert.hpp"
#include "lacuna/layout/csr.hpp"

namespace lacuna {

/// Collects triplets in any order, duplicates allowed, then builds a layout. Duplicates are summed
/// in double in the order they were added, then converted to T, so the result depends on nothing
/// but the input. A position whose triplets sum to zero stays stored (an explicit zero),
/// as in Eigen's setFromTriplets.
template <layout_value T, layout_index Index = std::int32_t>
class triplets {
public:
    /// An empty rows × cols matrix. Throws invalid_layout if a dimension does not fit Index.
    triplets(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols) {
        detail::check_fits_index<Index>("lacuna::triplets", "row count", rows);
        detail::check_fits_index<Index>("lacuna::triplets", "column count", cols);
    }

    /// Adds value v at (i, j). Throws shape_error if (i, j) is outside the matrix.
    void add(std::size_t i, std::size_t j, T v) {
        if (i >= rows_ || j >= cols_)
            detail::fail<shape_error>("lacuna::triplets::add: (", i, ", ", j, ") is outside the ", rows_, " x ",
                                      cols_, " matrix");
        entries_.push_back({Index(i), Index(j), v});
    }

    void reserve(std::size_t n) { entries_.reserve(n); }
    /// Triplets added so far (duplicates counted).
    std::size_t size() const noexcept { return entries_.size(); }
    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }

    /// The CSR matrix of the triplets: O(size + rows) to bucket by row, then a stable sort of each
    /// row by column. Throws invalid_layout if the stored count does not fit Index.
    csr<T, Index> to_csr() const {
        // Bucket by row (counting sort, stable), then order each row by column and merge duplicates.
        std::vector<std::size_t> start(rows_ + 1, 0);
        for (const entry& e : entries_) ++start[std::size_t(e.row) + 1];
        for (std::size_t i = 0; i < rows_; ++i) start[i + 1] += start[i];
        std::vector<entry> by_row(entries_.size());
        {
            std::vector<std::size_t> next(start.begin(), start.end() - 1);
            for (const entry& e : entries_) by_row[next[std::size_t(e.row)]++] = e;
        }
        std::vector<Index> row_ptr(rows_ + 1, 0), col_idx;
        std::vector<T> values;
        col_idx.reserve(entries_.size());
        values.reserve(entries_.size());
        for (std::size_t i = 0; i < rows_; ++i) {
            auto first = by_row.begin() + std::ptrdiff_t(start[i]), last = by_row.begin() + std::ptrdiff_t(start[i + 1]);
            std::stable_sort(first, last, [](const entry& a, const entry& b) { return a.col < b.col; });
            for (auto it = first; it != last;) {
                double sum = 0;
                Index c = it->col;
                for (; it != last && it->col == c; ++it) sum += as_double(it->value);
                col_idx.push_back(c);
                values.push_back(T(sum));
            }
            detail::check_fits_index<Index>("lacuna::triplets::to_csr", "nonzero count", col_idx.size());
            row_ptr[i + 1] = Index(col_idx.size());
        }
        return csr<T, Index>(unchecked, rows_, cols_, aligned_buffer<Index>(std::span<const Index>(row_ptr)),
                             aligned_buffer<Index>(std::span<const Index>(col_idx)),
                             aligned_buffer<T>(std::span<const T>(values)));
    }

    /// The triplets as any layout (csr, bsr, nm or bitmap; `block` for a dynamic-shape BSR), through
    /// to_csr() and convert_to(): summed duplicates that cancel to zero are not stored there.
    template <class Target> Target to(block_size block = {0, 0}) const { return convert_to<Target>(to_csr(), block); }

private:
    struct entry {
        Index row, col;
        T value;
    };
    static double as_double(T x) noexcept {
        if constexpr (std::is_same_v<T, double>) return x;
        else return double(float(x));
    }
    std::size_t rows_, cols_;
    std::vector<entry> entries_;
};

} // namespace lacuna
