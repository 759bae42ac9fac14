// lacuna: sampled dense × dense (SDDMM), the public entry point: out = scale · (A·Bᵀ) at the stored
// positions of a sparse mask, as masked attention scores and the gradient of a sparse weight need.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/kernels/sddmm/sddmm.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/simd/dispatch.hpp"
#include "lacuna/spmm.hpp"

namespace lacuna {

struct sddmm_options {
    float scale = 1.f;
};

/// A layout SDDMM samples at: CSR, BSR or bitmap, of any value type (the values are not read).
template <class M> concept sddmm_mask = sparse_matrix<M> && (compressed_rows<M> || block_sparse<M> || bitmap_sparse<M>);

namespace detail {

template <class A, class B> constexpr bool same_layout_kind =
    (compressed_rows<A> && compressed_rows<B>) || (block_sparse<A> && block_sparse<B>) || (bitmap_sparse<A> && bitmap_sparse<B>);

// Throws invalid_layout unless arrays x and y (n elements each) are equal.
template <class T> void check_same_array(const char* where, const char* name, const T* x, const T* y, std::size_t n) {
    if (x == y) return;
    for (std::size_t i = 0; i < n; ++i)
        if (x[i] != y[i])
            fail<invalid_layout>(where, ": out does not have the mask's structure (", name, " differs at ", i, ")");
}

template <class Mask, class Out> void check_same_structure(const char* where, const Mask& mask, const Out& out) {
    if (out.rows() != mask.rows() || out.cols() != mask.cols() || out.nnz() != mask.nnz())
        fail<invalid_layout>(where, ": out is ", out.rows(), " x ", out.cols(), " with ", out.nnz(), " stored, the mask ",
                             mask.rows(), " x ", mask.cols(), " with ", mask.nnz(), "; out must have the mask's structure");
    if constexpr (compressed_rows<Mask>) {
        check_same_array(where, "row_ptr", mask.row_ptr(), out.row_ptr(), mask.rows() + 1);
        check_same_array(where, "col_idx", mask.col_idx(), out.col_idx(), mask.nnz());
    } else if constexpr (block_sparse<Mask>) {
        if (out.block_rows() != mask.block_rows() || out.block_cols() != mask.block_cols())
            fail<invalid_layout>(where, ": out has ", out.block_rows(), " x ", out.block_cols(), " blocks, the mask ",
                                 mask.block_rows(), " x ", mask.block_cols());
        check_same_array(where, "block_row_ptr", mask.block_row_ptr(), out.block_row_ptr(), mask.row_blocks() + 1);
        check_same_array(where, "block_col_idx", mask.block_col_idx(), out.block_col_idx(), mask.nnz_blocks());
    } else {
        check_same_array(where, "bits", mask.bits(), out.bits(), mask.rows() * mask.words_per_row());
        check_same_array(where, "offsets", mask.offsets(), out.offsets(), mask.rows() * mask.words_per_row() + 1);
    }
}

} // namespace detail

/// out(i, j) = scale · dot(A[i, :], B[j, :]) at every position (i, j) the mask stores. A is m × d and
/// B is n × d, both dense row-major float; the mask is m × n, CSR, BSR or bitmap (its values are not
/// read); out is a float layout of the same kind with the mask's structure (the mask itself, or a
/// copy of it), whose values are overwritten in the mask's storage order (BSR padding gets 0).
/// O(stored · d) work, no allocation; rows are split over threads by stored count, each value is
/// summed by one thread in one order (deterministic). Throws shape_error if the shapes do not fit,
/// invalid_layout if out's structure is not the mask's, aliasing_error if out's values overlap A or B.
template <sddmm_mask Mask, class Out>
    requires(sddmm_mask<std::remove_cvref_t<Out>> && detail::same_layout_kind<Mask, std::remove_cvref_t<Out>> &&
             std::same_as<typename std::remove_cvref_t<Out>::value_type, float>)
void sddmm(matrix_view<const float> a, matrix_view<const float> b, const Mask& mask, Out&& out, sddmm_options opts = {}) {
    const char* where = "lacuna::sddmm";
    if (a.rows() != mask.rows() || b.rows() != mask.cols())
        detail::fail<shape_error>(where, ": A is ", a.rows(), " x ", a.cols(), " and B is ", b.rows(), " x ", b.cols(),
                                  "; a ", mask.rows(), " x ", mask.cols(), " mask needs ", mask.rows(), " rows of A and ",
                                  mask.cols(), " of B");
    if (a.cols() != b.cols())
        detail::fail<shape_error>(where, ": A has ", a.cols(), " columns and B ", b.cols(), "; they must match");
    detail::check_same_structure(where, mask, out);
    float* values = out.values();
    const std::size_t value_bytes = out.nnz() * sizeof(float);
    detail::check_disjoint_memory(where, "out", values, value_bytes, "A", a.data(), detail::span_bytes(a));
    detail::check_disjoint_memory(where, "out", values, value_bytes, "B", b.data(), detail::span_bytes(b));
    if (out.nnz() == 0) return;
    using Index = typename Mask::index_type;
    const kernels::sddmm_operands s{a.data(), a.stride(), b.data(), b.stride(), a.cols(), opts.scale};
    if constexpr (compressed_rows<Mask>) {
        const kernels::sddmm_csr_args<Index> args{s, mask.row_ptr(), mask.col_idx(), values};
        detail::run_on_rows(mask.rows(), [&](std::size_t i) { return mask.row_ptr()[i]; },
                            [&](std::size_t r0, std::size_t r1) { detail::dispatch<kernels::sddmm>(&args, r0, r1); });
    } else if constexpr (block_sparse<Mask>) {
        const kernels::sddmm_bsr_args<Index> args{s,           mask.block_row_ptr(), mask.block_col_idx(), values,
                                                  mask.rows(), mask.cols(),          mask.block_rows(),    mask.block_cols()};
        detail::run_on_rows(mask.row_blocks(), [&](std::size_t i) { return mask.block_row_ptr()[i]; },
                            [&](std::size_t b0, std::size_t b1) { detail::dispatch<kernels::sddmm>(&args, b0, b1); });
    } else {
        const kernels::sddmm_bitmap_args<Index> args{s, mask.bits(), mask.offsets(), values, mask.words_per_row()};
        detail::run_on_rows(mask.rows(), [&](std::size_t i) { return mask.offsets()[i * mask.words_per_row()]; },
                            [&](std::size_t r0, std::size_t r1) { detail::dispatch<kernels::sddmm>(&args, r0, r1); });
    }
}

/// SDDMM into a new layout: a copy of the mask (an owning float layout) with the sampled values.
template <sddmm_mask Mask>
    requires(std::same_as<typename Mask::value_type, float> && requires(Mask& m) { m.view(); })
Mask sddmm(matrix_view<const float> a, matrix_view<const float> b, const Mask& mask, sddmm_options opts = {}) {
    Mask out = mask;
    sddmm(a, b, mask, out, opts);
    return out;
}

} // namespace lacuna
