// lacuna: CSR to and from Eigen's SparseMatrix, by copy or as zero-copy views.
//
// Needs Eigen 3.3 or newer; include this header only where Eigen is available. Eigen holds float and
// double here (bfloat16 has no Eigen NumTraits in lacuna).
#pragma once

#include <cstddef>
#include <vector>

#include <Eigen/SparseCore>

#include "lacuna/core/error.hpp"
#include "lacuna/layout/csr.hpp"

namespace lacuna {

/// Copies an Eigen sparse matrix (row- or column-major, compressed or not) into a CSR matrix with
/// `Index` indices. O(nnz) for row-major input; column-major input is transposed in storage first.
/// Throws invalid_layout if a count does not fit Index or the matrix breaks a CSR invariant.
template <layout_index Index = std::int32_t, class Scalar, int Options, class StorageIndex>
csr<Scalar, Index> csr_from_eigen(const Eigen::SparseMatrix<Scalar, Options, StorageIndex>& m) {
    Eigen::SparseMatrix<Scalar, Eigen::RowMajor, StorageIndex> r = m;
    r.makeCompressed();
    const auto rows = std::size_t(r.rows()), cols = std::size_t(r.cols()), nnz = std::size_t(r.nonZeros());
    detail::check_fits_index<Index>("lacuna::csr_from_eigen", "nonzero count", nnz);
    std::vector<Index> row_ptr(r.outerIndexPtr(), r.outerIndexPtr() + rows + 1);
    std::vector<Index> col_idx(r.innerIndexPtr(), r.innerIndexPtr() + nnz);
    return csr<Scalar, Index>(rows, cols, row_ptr, col_idx, std::span<const Scalar>(r.valuePtr(), nnz));
}

/// Copies a CSR matrix into a compressed row-major Eigen sparse matrix.
template <class Scalar, layout_index Index>
Eigen::SparseMatrix<std::remove_const_t<Scalar>, Eigen::RowMajor, Index> to_eigen(csr_view<Scalar, Index> a) {
    using value = std::remove_const_t<Scalar>;
    Eigen::SparseMatrix<value, Eigen::RowMajor, Index> m(Eigen::Index(a.rows()), Eigen::Index(a.cols()));
    m.resizeNonZeros(Eigen::Index(a.nnz()));
    std::copy(a.row_ptr(), a.row_ptr() + a.rows() + 1, m.outerIndexPtr());
    std::copy(a.col_idx(), a.col_idx() + a.nnz(), m.innerIndexPtr());
    std::copy(a.values(), a.values() + a.nnz(), m.valuePtr());
    return m;
}
template <class Scalar, layout_index Index>
Eigen::SparseMatrix<Scalar, Eigen::RowMajor, Index> to_eigen(const csr<Scalar, Index>& a) {
    return to_eigen(a.view());
}

/// A CSR view of a compressed row-major Eigen sparse matrix, sharing its arrays (valid while `m`
/// is alive and unchanged). Throws lacuna::error if `m` is not compressed (call makeCompressed()).
template <class Scalar, class StorageIndex>
    requires layout_index<StorageIndex>
csr_view<const Scalar, StorageIndex>
csr_view_of(const Eigen::SparseMatrix<Scalar, Eigen::RowMajor, StorageIndex>& m) {
    if (!m.isCompressed())
        detail::fail("lacuna::csr_view_of: the Eigen matrix is not compressed; call makeCompressed() first");
    return csr_view<const Scalar, StorageIndex>(unchecked, std::size_t(m.rows()), std::size_t(m.cols()),
                                                m.outerIndexPtr(), m.innerIndexPtr(), m.valuePtr());
}

/// An Eigen map of a CSR view, sharing its arrays: Eigen's sparse algebra on lacuna's storage.
template <class Scalar, layout_index Index>
Eigen::Map<const Eigen::SparseMatrix<std::remove_const_t<Scalar>, Eigen::RowMajor, Index>>
eigen_view_of(csr_view<Scalar, Index> a) {
    return {Eigen::Index(a.rows()), Eigen::Index(a.cols()), Eigen::Index(a.nnz()), a.row_ptr(), a.col_idx(),
            a.values()};
}

} // namespace lacuna
