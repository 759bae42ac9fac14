// lacuna: block compressed sparse rows (BSR) with R × C blocks.
//
//   block_row_ptr[block_rows + 1]  block row i owns blocks [block_row_ptr[i], block_row_ptr[i + 1])
//   block_col_idx[nnz_blocks]      block column of each stored block; sorted and unique in a block row
//   values[nnz_blocks · R · C]     the blocks, one after another, each row-major
//
// The matrix is rows × cols with block_rows = ceil(rows / R) and block_cols = ceil(cols / C). When R
// or C does not divide the matrix, the last block row or column is padded: its blocks are stored
// whole, the padding elements hold zeros when lacuna builds them, and nothing outside rows × cols is
// ever read as part of the matrix. The block shape is a compile-time constant (kernels unroll on it)
// or, with bsr<T, dynamic, dynamic>, chosen at run time. Same layout as SciPy's and PyTorch's BSR.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/prune.hpp"

namespace lacuna {

/// The block extent of a run-time-shaped BSR: bsr<T, dynamic, dynamic>.
inline constexpr std::size_t dynamic = std::numeric_limits<std::size_t>::max();

namespace detail {

inline constexpr compressed_names bsr_names{"block_row_ptr", "block_col_idx", "block row", "block column"};

// The block shape: constants, or two run-time members for dynamic.
template <std::size_t R, std::size_t C> struct block_shape {
    static_assert((R == dynamic) == (C == dynamic), "both block extents are static or both are dynamic");
    static_assert(R > 0 && C > 0, "blocks have at least one row and one column");
    constexpr block_shape() = default;
    explicit block_shape(block_size b) {
        if (b.rows != R || b.cols != C)
            fail<invalid_layout>("lacuna::bsr: block size ", b.rows, " x ", b.cols, " differs from the type's ", R,
                                 " x ", C);
    }
    static constexpr std::size_t rows() noexcept { return R; }
    static constexpr std::size_t cols() noexcept { return C; }
};
template <> struct block_shape<dynamic, dynamic> {
    block_shape() = default;
    explicit block_shape(block_size b) : r(b.rows), c(b.cols) {
        if (b.rows == 0 || b.cols == 0)
            fail<invalid_layout>("lacuna::bsr: block size ", b.rows, " x ", b.cols, " is empty");
    }
    std::size_t rows() const noexcept { return r; }
    std::size_t cols() const noexcept { return c; }
    std::size_t r = 1, c = 1;
};

inline std::size_t ceil_div(std::size_t a, std::size_t b) noexcept { return a / b + (a % b != 0); }

} // namespace detail

/// A BSR matrix over arrays owned elsewhere. `T` may be const; the structure is read-only.
template <class T, std::size_t R, std::size_t C, layout_index Index = std::int32_t>
class bsr_view : public detail::dense_conversion<bsr_view<T, R, C, Index>> {
public:
    static constexpr const char* name = "bsr";
    using value_type = std::remove_const_t<T>;
    using index_type = Index;
    using const_view = bsr_view<const T, R, C, Index>;
    static_assert(layout_value<value_type>, "bsr holds float, double or bfloat16");
    static constexpr std::size_t static_block_rows = R, static_block_cols = C;

    bsr_view() = default;

    /// Views the arrays after checking every invariant (O(block_rows + nnz_blocks)); throws
    /// invalid_layout. `block` must equal R × C for a static shape.
    bsr_view(std::size_t rows, std::size_t cols, block_size block, std::span<const Index> block_row_ptr,
             std::span<const Index> block_col_idx, std::span<T> values)
        : bsr_view(unchecked, rows, cols, block, block_row_ptr.data(), block_col_idx.data(), values.data()) {
        validate("lacuna::bsr_view", block_row_ptr, block_col_idx, values.size());
    }
    bsr_view(std::size_t rows, std::size_t cols, std::span<const Index> block_row_ptr,
             std::span<const Index> block_col_idx, std::span<T> values)
        requires(R != dynamic)
        : bsr_view(rows, cols, block_size{R, C}, block_row_ptr, block_col_idx, values) {}

    /// Views trusted arrays without checking them.
    bsr_view(unchecked_t, std::size_t rows, std::size_t cols, block_size block, const Index* block_row_ptr,
             const Index* block_col_idx, T* values)
        : shape_(block), rows_(rows), cols_(cols), row_ptr_(block_row_ptr), col_idx_(block_col_idx), values_(values) {}

    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    bsr_view(const bsr_view<U, R, C, Index>& o) // NOLINT: implicit, like T* to const T*
        : bsr_view(unchecked, o.rows(), o.cols(), o.block(), o.block_row_ptr(), o.block_col_idx(), o.values()) {}

    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    std::size_t block_rows() const noexcept { return shape_.rows(); }
    std::size_t block_cols() const noexcept { return shape_.cols(); }
    block_size block() const noexcept { return {shape_.rows(), shape_.cols()}; }
    /// Rows and columns of blocks: ceil(rows / R) and ceil(cols / C).
    std::size_t row_blocks() const noexcept { return detail::ceil_div(rows_, block_rows()); }
    std::size_t col_blocks() const noexcept { return detail::ceil_div(cols_, block_cols()); }
    std::size_t nnz_blocks() const noexcept { return row_ptr_ ? std::size_t(row_ptr_[row_blocks()]) : 0; }
    /// Stored values, padding included: nnz_blocks · R · C.
    std::size_t nnz() const noexcept { return nnz_blocks() * block_rows() * block_cols(); }
    /// The fraction of the rows × cols elements that lie in stored blocks (padding not counted).
    double density() const noexcept {
        if (!rows_ || !cols_) return 0;
        double inside = 0;
        for (std::size_t bi = 0; bi < row_blocks(); ++bi)
            for (auto k = std::size_t(row_ptr_[bi]); k < std::size_t(row_ptr_[bi + 1]); ++k)
                inside += double(extent(bi, rows_, block_rows()) * extent(std::size_t(col_idx_[k]), cols_, block_cols()));
        return inside / (double(rows_) * double(cols_));
    }
    std::size_t bytes() const noexcept {
        return (row_ptr_ ? row_blocks() + 1 : 0) * sizeof(Index) + nnz_blocks() * sizeof(Index) +
               nnz() * sizeof(value_type);
    }

    const Index* block_row_ptr() const noexcept { return row_ptr_; }
    const Index* block_col_idx() const noexcept { return col_idx_; }
    T* values() const noexcept { return values_; }
    /// The R · C values of stored block k, row-major.
    T* block_values(std::size_t k) const noexcept { return values_ + k * block_rows() * block_cols(); }

    /// Calls f(j, value) for every stored element of row i inside the matrix (block fill included,
    /// padding not), in column order.
    template <class F> void for_each_in_row(std::size_t i, F&& f) const {
        const std::size_t br = block_rows(), bc = block_cols(), bi = i / br, r = i % br;
        for (auto k = std::size_t(row_ptr_[bi]); k < std::size_t(row_ptr_[bi + 1]); ++k) {
            const std::size_t bj = std::size_t(col_idx_[k]);
            const T* b = block_values(k) + r * bc;
            for (std::size_t c = 0; c < extent(bj, cols_, bc); ++c) f(bj * bc + c, b[c]);
        }
    }

private:
    // Rows (or columns) of block number b that lie inside a dimension of size n.
    static std::size_t extent(std::size_t b, std::size_t n, std::size_t block) noexcept {
        return std::min(block, n - b * block);
    }

    void validate(const char* where, std::span<const Index> ptr, std::span<const Index> idx, std::size_t values_size) const {
        detail::check_fits_index<Index>(where, "row count", rows_);
        detail::check_fits_index<Index>(where, "column count", cols_);
        if (values_size != idx.size() * block_rows() * block_cols())
            detail::fail<invalid_layout>(where, ": values has ", values_size, " elements, expected ",
                                         idx.size() * block_rows() * block_cols(), " (", idx.size(), " blocks of ",
                                         block_rows(), " x ", block_cols(), ")");
        detail::validate_compressed<Index>(where, detail::bsr_names, row_blocks(), col_blocks(), ptr, idx);
    }

    [[no_unique_address]] detail::block_shape<R, C> shape_;
    std::size_t rows_ = 0, cols_ = 0;
    const Index* row_ptr_ = nullptr;
    const Index* col_idx_ = nullptr;
    T* values_ = nullptr;
};

namespace detail {
template <class T, class Index> using bsr_storage = csr_storage<T, Index>;
} // namespace detail

/// A BSR matrix that owns its arrays; it is a bsr_view of them. Copies are deep; a moved-from
/// matrix is empty.
template <layout_value T, std::size_t R, std::size_t C, layout_index Index = std::int32_t>
class bsr : public detail::owning_layout<bsr<T, R, C, Index>, detail::bsr_storage<T, Index>, bsr_view<T, R, C, Index>> {
    using storage = detail::bsr_storage<T, Index>;
    using view_type = bsr_view<T, R, C, Index>;
    using base = detail::owning_layout<bsr, storage, view_type>;
    friend base;

public:
    /// An empty 0 × 0 matrix (with 1 × 1 blocks when the shape is dynamic).
    bsr() : bsr(unchecked, 0, 0, default_block(), aligned_buffer<Index>(1), {}, {}) {}

    /// Copies the arrays after checking every invariant; throws invalid_layout.
    bsr(std::size_t rows, std::size_t cols, block_size block, std::span<const Index> block_row_ptr,
        std::span<const Index> block_col_idx, std::span<const T> values)
        : bsr(unchecked, rows, cols, block, aligned_buffer<Index>(block_row_ptr), aligned_buffer<Index>(block_col_idx),
              aligned_buffer<T>(values)) {
        (void)bsr_view<const T, R, C, Index>(rows, cols, block, block_row_ptr, block_col_idx, values); // validates
    }
    bsr(std::size_t rows, std::size_t cols, std::span<const Index> block_row_ptr, std::span<const Index> block_col_idx,
        std::span<const T> values)
        requires(R != dynamic)
        : bsr(rows, cols, block_size{R, C}, block_row_ptr, block_col_idx, values) {}

    /// Takes ownership of trusted arrays without checking them.
    bsr(unchecked_t, std::size_t rows, std::size_t cols, block_size block, aligned_buffer<Index> block_row_ptr,
        aligned_buffer<Index> block_col_idx, aligned_buffer<T> values)
        : base(storage{std::move(block_row_ptr), std::move(block_col_idx), std::move(values)},
               view_type(unchecked, rows, cols, block, nullptr, nullptr, nullptr)) {}

    /// Builds from a dense matrix: stores every block that holds an element `rule` selects, with
    /// the unselected elements of a stored block and its padding set to zero. Block rules
    /// (prune::block_threshold, prune::block_top_fraction) select whole blocks; element rules
    /// (prune::nonzero by default) select elements. Throws invalid_layout if a count does not fit Index.
    template <order O, selection_rule Rule = prune::nonzero>
    static bsr from_dense(matrix_view<const T, O> dense, const Rule& rule = {})
        requires(R != dynamic)
    {
        return from_dense(dense, block_size{R, C}, rule);
    }
    template <order O, selection_rule Rule = prune::nonzero>
    static bsr from_dense(matrix_view<const T, O> dense, block_size block, const Rule& rule = {}) {
        const char* where = "lacuna::bsr::from_dense";
        const std::size_t rows = dense.rows(), cols = dense.cols();
        detail::check_fits_index<Index>(where, "row count", rows);
        detail::check_fits_index<Index>(where, "column count", cols);
        const detail::block_shape<R, C> shape(block);
        const std::size_t br = shape.rows(), bc = shape.cols();
        const std::size_t nbr = detail::ceil_div(rows, br), nbc = detail::ceil_div(cols, bc);
        const std::vector<bool> keep = rule.select(dense);

        // Which blocks hold a selected element, block row by block row.
        std::vector<Index> row_ptr_v(nbr + 1, 0), col_idx_v;
        std::vector<bool> block_used(nbc);
        for (std::size_t bi = 0; bi < nbr; ++bi) {
            std::fill(block_used.begin(), block_used.end(), false);
            for (std::size_t i = bi * br; i < std::min(rows, (bi + 1) * br); ++i)
                for (std::size_t j = 0; j < cols; ++j)
                    if (keep[i * cols + j]) block_used[j / bc] = true;
            for (std::size_t bj = 0; bj < nbc; ++bj)
                if (block_used[bj]) col_idx_v.push_back(Index(bj));
            detail::check_fits_index<Index>(where, "stored block count", col_idx_v.size());
            row_ptr_v[bi + 1] = Index(col_idx_v.size());
        }
        aligned_buffer<T> values(col_idx_v.size() * br * bc); // zeroed: padding and unselected stay 0
        for (std::size_t bi = 0; bi < nbr; ++bi)
            for (auto k = std::size_t(row_ptr_v[bi]); k < std::size_t(row_ptr_v[bi + 1]); ++k) {
                const std::size_t bj = std::size_t(col_idx_v[k]);
                T* b = values.data() + k * br * bc;
                for (std::size_t r = 0; r < br && bi * br + r < rows; ++r)
                    for (std::size_t c = 0; c < bc && bj * bc + c < cols; ++c) {
                        const std::size_t i = bi * br + r, j = bj * bc + c;
                        b[r * bc + c] = keep[i * cols + j] ? dense(i, j) : T(0.f);
                    }
            }
        return bsr(unchecked, rows, cols, block, aligned_buffer<Index>(std::span<const Index>(row_ptr_v)),
                   aligned_buffer<Index>(std::span<const Index>(col_idx_v)), std::move(values));
    }

private:
    static block_size default_block() noexcept { return R == dynamic ? block_size{1, 1} : block_size{R, C}; }
    static view_type rebind(const view_type& shape, storage& s) {
        return view_type(unchecked, shape.rows(), shape.cols(), shape.block(), s.row_ptr_buf.data(),
                         s.col_idx_buf.data(), s.values_buf.data());
    }
};

} // namespace lacuna
