// lacuna: compressed sparse rows (CSR).
//
//   row_ptr[rows + 1]  row i owns positions [row_ptr[i], row_ptr[i + 1]) of the two arrays below;
//                      row_ptr[0] = 0 and row_ptr[rows] = nnz
//   col_idx[nnz]       column of each stored value; sorted and unique within a row
//   values[nnz]        the stored values, row by row
//
// csr_view looks at arrays someone else owns; csr owns its arrays (64-byte aligned) and is a
// csr_view of them, so every function that takes a view takes a csr too.
#pragma once

#include <cstddef>
#include <cstring>
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

/// The names a compressed layout's arrays go by in error messages.
struct compressed_names {
    const char* ptr;   // "row_ptr"
    const char* idx;   // "col_idx"
    const char* outer; // "row"
    const char* inner; // "column"
};
inline constexpr compressed_names csr_names{"row_ptr", "col_idx", "row", "column"};

/// Checks the invariants of a compressed structure (CSR, or BSR's blocks): ptr[outer + 1] starts at
/// 0, never decreases and ends at idx.size(); idx is in [0, inner), sorted and unique within each
/// outer. Throws invalid_layout naming the array, the position and the rule.
template <layout_index Index>
void validate_compressed(const char* where, const compressed_names& n, std::size_t outer, std::size_t inner,
                         std::span<const Index> ptr, std::span<const Index> idx) {
    check_fits_index<Index>(where, "nonzero count", idx.size());
    if (ptr.size() != outer + 1)
        fail<invalid_layout>(where, ": ", n.ptr, " has ", ptr.size(), " elements, expected ", outer + 1, " (",
                             n.outer, "s + 1)");
    if (ptr[0] != 0) fail<invalid_layout>(where, ": ", n.ptr, "[0] = ", ptr[0], ", expected 0");
    for (std::size_t i = 0; i < outer; ++i)
        if (ptr[i + 1] < ptr[i])
            fail<invalid_layout>(where, ": ", n.ptr, "[", i + 1, "] = ", ptr[i + 1], " is less than ", n.ptr, "[", i,
                                 "] = ", ptr[i], " (", n.outer, " pointers must not decrease)");
    if (std::size_t(ptr[outer]) != idx.size())
        fail<invalid_layout>(where, ": ", n.ptr, "[", outer, "] = ", ptr[outer], ", expected ", idx.size(), " (the number of ",
                             n.inner, " indices)");
    for (std::size_t i = 0; i < outer; ++i)
        for (auto k = std::size_t(ptr[i]); k < std::size_t(ptr[i + 1]); ++k) {
            if (idx[k] < 0 || std::size_t(idx[k]) >= inner)
                fail<invalid_layout>(where, ": ", n.idx, "[", k, "] = ", idx[k], " is outside [0, ", inner, ") (", n.outer,
                                     " ", i, ")");
            if (k > std::size_t(ptr[i]) && idx[k] <= idx[k - 1])
                fail<invalid_layout>(where, ": ", n.idx, "[", k, "] = ", idx[k], " does not follow ", n.idx, "[", k - 1,
                                     "] = ", idx[k - 1], " (", n.inner, "s must be sorted and unique within ", n.outer,
                                     " ", i, ")");
        }
}

/// Checks every CSR invariant; throws invalid_layout naming the array, the position and the rule.
template <layout_index Index>
void validate_csr(const char* where, std::size_t rows, std::size_t cols, std::span<const Index> row_ptr,
                  std::span<const Index> col_idx, std::size_t values_size) {
    check_fits_index<Index>(where, "row count", rows);
    check_fits_index<Index>(where, "column count", cols);
    if (values_size != col_idx.size())
        fail<invalid_layout>(where, ": values has ", values_size, " elements, expected ", col_idx.size(),
                             " (one per column index)");
    validate_compressed<Index>(where, csr_names, rows, cols, row_ptr, col_idx);
}

} // namespace detail

/// A CSR matrix over arrays owned elsewhere. `T` may be const (read-only values); the structure
/// arrays are always read-only. Copying a view copies pointers only.
template <class T, layout_index Index = std::int32_t>
class csr_view : public detail::dense_conversion<csr_view<T, Index>> {
public:
    static constexpr const char* name = "csr";
    using value_type = std::remove_const_t<T>;
    using index_type = Index;
    using const_view = csr_view<const T, Index>;
    static_assert(layout_value<value_type>, "csr holds float, double or bfloat16");

    csr_view() = default;

    /// Views the arrays after checking every invariant (O(rows + nnz)); throws invalid_layout.
    csr_view(std::size_t rows, std::size_t cols, std::span<const Index> row_ptr, std::span<const Index> col_idx,
             std::span<T> values)
        : csr_view(unchecked, rows, cols, row_ptr.data(), col_idx.data(), values.data()) {
        detail::validate_csr<Index>("lacuna::csr_view", rows, cols, row_ptr, col_idx, values.size());
    }

    /// Views trusted arrays without checking them.
    csr_view(unchecked_t, std::size_t rows, std::size_t cols, const Index* row_ptr, const Index* col_idx,
             T* values) noexcept
        : rows_(rows), cols_(cols), row_ptr_(row_ptr), col_idx_(col_idx), values_(values) {}

    /// A view with mutable values converts to a read-only one.
    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    csr_view(const csr_view<U, Index>& o) noexcept // NOLINT: implicit, like T* to const T*
        : csr_view(unchecked, o.rows(), o.cols(), o.row_ptr(), o.col_idx(), o.values()) {}

    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    std::size_t nnz() const noexcept { return row_ptr_ ? std::size_t(row_ptr_[rows_]) : 0; }
    /// nnz / (rows · cols); 0 for an empty shape.
    double density() const noexcept { return rows_ && cols_ ? double(nnz()) / (double(rows_) * double(cols_)) : 0; }
    /// The bytes the three arrays occupy.
    std::size_t bytes() const noexcept {
        return (row_ptr_ ? rows_ + 1 : 0) * sizeof(Index) + nnz() * (sizeof(Index) + sizeof(value_type));
    }

    const Index* row_ptr() const noexcept { return row_ptr_; }
    const Index* col_idx() const noexcept { return col_idx_; }
    T* values() const noexcept { return values_; }

    /// The column indices and the values of row i.
    std::span<const Index> row_cols(std::size_t i) const noexcept {
        return {col_idx_ + row_ptr_[i], std::size_t(row_ptr_[i + 1] - row_ptr_[i])};
    }
    std::span<T> row_values(std::size_t i) const noexcept {
        return {values_ + row_ptr_[i], std::size_t(row_ptr_[i + 1] - row_ptr_[i])};
    }

    /// Calls f(j, value) for every stored element of row i, in column order.
    template <class F> void for_each_in_row(std::size_t i, F&& f) const {
        for (auto k = std::size_t(row_ptr_[i]); k < std::size_t(row_ptr_[i + 1]); ++k) f(std::size_t(col_idx_[k]), values_[k]);
    }

private:
    std::size_t rows_ = 0, cols_ = 0;
    const Index* row_ptr_ = nullptr;
    const Index* col_idx_ = nullptr;
    T* values_ = nullptr;
};

namespace detail {
// Named apart from the view's accessors, which the owner also has.
template <class T, class Index> struct csr_storage {
    aligned_buffer<Index> row_ptr_buf;
    aligned_buffer<Index> col_idx_buf;
    aligned_buffer<T> values_buf;
};
} // namespace detail

/// A CSR matrix that owns its arrays. It is a csr_view of them (values mutable), so anything that
/// takes a view takes it. Copies are deep; a moved-from matrix is empty.
template <layout_value T, layout_index Index = std::int32_t>
class csr : public detail::owning_layout<csr<T, Index>, detail::csr_storage<T, Index>, csr_view<T, Index>> {
    using storage = detail::csr_storage<T, Index>;
    using view_type = csr_view<T, Index>;
    using base = detail::owning_layout<csr, storage, view_type>;
    friend base;

public:
    /// An empty 0 × 0 matrix.
    csr() : csr(unchecked, 0, 0, aligned_buffer<Index>(1), {}, {}) {}

    /// Copies the arrays after checking every invariant; throws invalid_layout.
    csr(std::size_t rows, std::size_t cols, std::span<const Index> row_ptr, std::span<const Index> col_idx,
        std::span<const T> values)
        : csr(unchecked, rows, cols, aligned_buffer<Index>(row_ptr), aligned_buffer<Index>(col_idx),
              aligned_buffer<T>(values)) {
        detail::validate_csr<Index>("lacuna::csr", rows, cols, row_ptr, col_idx, values.size());
    }

    /// Takes ownership of trusted arrays without checking them.
    csr(unchecked_t, std::size_t rows, std::size_t cols, aligned_buffer<Index> row_ptr, aligned_buffer<Index> col_idx,
        aligned_buffer<T> values)
        : base(storage{std::move(row_ptr), std::move(col_idx), std::move(values)},
               view_type(unchecked, rows, cols, nullptr, nullptr, nullptr)) {}

    /// Builds from a dense matrix, keeping the elements `rule` selects (see layout/prune.hpp; by
    /// default every nonzero, NaN included). Throws invalid_layout if a count does not fit Index.
    template <order O, selection_rule Rule = prune::nonzero>
    static csr from_dense(matrix_view<const T, O> dense, const Rule& rule = {}) {
        const std::size_t rows = dense.rows(), cols = dense.cols();
        detail::check_fits_index<Index>("lacuna::csr::from_dense", "row count", rows);
        detail::check_fits_index<Index>("lacuna::csr::from_dense", "column count", cols);
        const std::vector<bool> keep = rule.select(dense);
        std::size_t nnz = 0;
        for (bool k : keep) nnz += k;
        detail::check_fits_index<Index>("lacuna::csr::from_dense", "nonzero count", nnz);
        aligned_buffer<Index> row_ptr(rows + 1);
        aligned_buffer<Index> col_idx(nnz, aligned_buffer<Index>::uninitialized);
        aligned_buffer<T> values(nnz, aligned_buffer<T>::uninitialized);
        std::size_t k = 0;
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < cols; ++j)
                if (keep[i * cols + j]) {
                    col_idx[k] = Index(j);
                    values[k++] = dense(i, j);
                }
            row_ptr[i + 1] = Index(k);
        }
        return csr(unchecked, rows, cols, std::move(row_ptr), std::move(col_idx), std::move(values));
    }

private:
    static view_type rebind(const view_type& shape, storage& s) noexcept {
        return view_type(unchecked, shape.rows(), shape.cols(), s.row_ptr_buf.data(), s.col_idx_buf.data(),
                         s.values_buf.data());
    }
};

} // namespace lacuna
