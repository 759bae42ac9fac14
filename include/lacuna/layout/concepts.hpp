// lacuna: the concepts sparse layouts model, so that a kernel states what it needs and a wrong
// argument fails with one readable line.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "lacuna/layout/common.hpp"

namespace lacuna {

/// Any lacuna sparse matrix or view: shape, stored count, density, footprint, and a dense copy.
template <class M>
concept sparse_matrix = requires(const M& m) {
    typename M::value_type;
    typename M::index_type;
    requires layout_value<typename M::value_type>;
    requires layout_index<typename M::index_type>;
    { m.rows() } -> std::convertible_to<std::size_t>;
    { m.cols() } -> std::convertible_to<std::size_t>;
    { m.nnz() } -> std::convertible_to<std::size_t>;
    { m.density() } -> std::convertible_to<double>;
    { m.bytes() } -> std::convertible_to<std::size_t>;
    m.to_dense();
};

/// CSR: row pointers, column indices, values.
template <class M>
concept compressed_rows = sparse_matrix<M> && requires(const M& m) {
    { m.row_ptr() } -> std::convertible_to<const typename M::index_type*>;
    { m.col_idx() } -> std::convertible_to<const typename M::index_type*>;
    m.values();
};

/// BSR: CSR of R × C blocks, each stored row-major.
template <class M>
concept block_sparse = sparse_matrix<M> && requires(const M& m) {
    { m.block_row_ptr() } -> std::convertible_to<const typename M::index_type*>;
    { m.block_col_idx() } -> std::convertible_to<const typename M::index_type*>;
    { m.block() } -> std::convertible_to<block_size>;
    m.values();
};

/// N:M: N slots in every group of M columns, with position metadata.
template <class M>
concept semi_structured = sparse_matrix<M> && requires(const M& m) {
    { M::n } -> std::convertible_to<std::size_t>;
    { M::m } -> std::convertible_to<std::size_t>;
    { m.meta() } -> std::convertible_to<const std::uint64_t*>;
    m.values();
};

/// Bitmap: a bit per element, word offsets, values in bit order.
template <class M>
concept bitmap_sparse = sparse_matrix<M> && requires(const M& m) {
    { m.bits() } -> std::convertible_to<const std::uint64_t*>;
    { m.offsets() } -> std::convertible_to<const typename M::index_type*>;
    m.values();
};

} // namespace lacuna
