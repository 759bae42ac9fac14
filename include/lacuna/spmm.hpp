// lacuna: sparse × dense products, the public entry points: check the operands once, split the rows
// over threads by their stored count, run the active arch's kernel for A's layout on each part.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/spmm/bitmap.hpp"
#include "lacuna/kernels/spmm/bsr.hpp"
#include "lacuna/kernels/spmm/csr.hpp"
#include "lacuna/kernels/spmm/dense.hpp"
#include "lacuna/kernels/spmm/dense_sparse.hpp"
#include "lacuna/kernels/spmm/nm.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna {

/// Scalars of C = α·op + β·C. With β = 0, C is only written (whatever it held, NaN included, is gone).
struct product_options {
    float alpha = 1.f;
    float beta = 0.f;
};

/// The value types the products take for A: float, or bfloat16 (widened to float, accumulated in float).
template <class T> concept product_value = std::same_as<T, float> || std::same_as<T, bfloat16>;

/// A sparse matrix the products take: any lacuna layout (owning or view) of float or bfloat16.
template <class S>
concept product_operand = sparse_matrix<S> && product_value<typename S::value_type> &&
                          (compressed_rows<S> || block_sparse<S> || semi_structured<S> || bitmap_sparse<S>);

/// A dense matrix taken where a sparse one may be (weights of linear and of MoE experts): a
/// row-major view of float or bfloat16.
template <class W>
concept dense_operand = std::same_as<W, matrix_view<const float>> || std::same_as<W, matrix_view<const bfloat16>>;

/// The weights of a layer: any sparse layout the products take, or a dense row-major view.
template <class W> concept weight_operand = product_operand<W> || dense_operand<W>;

namespace detail {

/// C = α·A·B + β·C on the kernel of A's layout (the SpMV kernel when n = 1 and B is contiguous),
/// rows split over threads by stored count. after(r0, r1) runs on the thread that computed rows
/// [r0, r1) of C, right after it, while they are in its cache.
template <product_operand Sparse, class After>
void run_product(const Sparse& a, const kernels::dense_operands& d, After&& after) {
    using T = typename Sparse::value_type;
    using Index = typename Sparse::index_type;
    const bool vector = d.n == 1 && d.ldb == 1;
    if constexpr (compressed_rows<Sparse>) {
        const kernels::csr_product_args<T, Index> args{d, a.row_ptr(), a.col_idx(), a.values(), a.rows(), a.cols(), a.nnz()};
        run_on_rows(a.rows(), [&](std::size_t i) { return a.row_ptr()[i]; }, [&](std::size_t r0, std::size_t r1) {
            if (vector) dispatch<kernels::spmv_csr>(&args, r0, r1);
            else dispatch<kernels::spmm_csr>(&args, r0, r1);
            after(r0, r1);
        });
    } else if constexpr (block_sparse<Sparse>) {
        constexpr std::size_t R = Sparse::static_block_rows, C = Sparse::static_block_cols;
        const kernels::bsr_product_args<T, R, C, Index> args{d,        a.block_row_ptr(), a.block_col_idx(), a.values(),
                                                             a.rows(), a.cols(),          a.block_rows(),    a.block_cols()};
        run_on_rows(a.row_blocks(), [&](std::size_t i) { return a.block_row_ptr()[i]; }, [&](std::size_t b0, std::size_t b1) {
            dispatch<kernels::spmm_bsr>(&args, b0, b1);
            after(std::min(b0 * a.block_rows(), a.rows()), std::min(b1 * a.block_rows(), a.rows()));
        });
    } else if constexpr (semi_structured<Sparse>) {
        constexpr std::size_t N = Sparse::n, M = Sparse::m;
        const kernels::nm_product_args<T, N, M> args{d, a.values(), a.meta(), a.cols(), a.groups(), a.words_per_row()};
        run_on_rows(a.rows(), [&](std::size_t i) { return i * a.groups() * N; }, [&](std::size_t r0, std::size_t r1) {
            if (vector) dispatch<kernels::spmv_nm>(&args, r0, r1);
            else dispatch<kernels::spmm_nm>(&args, r0, r1);
            after(r0, r1);
        });
    } else {
        static_assert(bitmap_sparse<Sparse>);
        const kernels::bitmap_product_args<T, Index> args{d, a.bits(), a.offsets(), a.values(), a.words_per_row()};
        run_on_rows(a.rows(), [&](std::size_t i) { return a.offsets()[i * a.words_per_row()]; },
                    [&](std::size_t r0, std::size_t r1) {
                        if (vector) dispatch<kernels::spmv_bitmap>(&args, r0, r1);
                        else dispatch<kernels::spmm_bitmap>(&args, r0, r1);
                        after(r0, r1);
                    });
    }
}

/// Floats in a register of the widest arch (AVX-512): the columns of C a product's panels take at once.
inline constexpr std::size_t register_floats = 16;

/// The row stride of an operand transposed for a product over n columns (Xᵀ in linear and the
/// experts): whole registers, rows starting on cache lines and not a multiple of 512 bytes apart,
/// since the rows of B a kernel keeps in L1 would otherwise fall into a few of its sets and evict
/// each other.
inline std::size_t transposed_stride(std::size_t n) noexcept {
    const std::size_t ld = (n + register_floats - 1) / register_floats * register_floats;
    return ld % 128 == 0 ? ld + register_floats : ld;
}

/// For run_product with a dense A: C's last n % register_floats columns (those that would fill only
/// part of a register) as dot products with rows of x, which holds B's n columns as rows (row stride
/// ldx), as X does before it is transposed.
inline kernels::b_columns_as_rows ragged_columns(const float* x, std::size_t ldx, std::size_t n) noexcept {
    const std::size_t ragged = n % register_floats;
    return {x + (n - ragged) * ldx, ldx, ragged};
}

/// C = α·A·B + β·C for a dense A, rows split over threads evenly, as run_product does for a sparse A;
/// C's last tail.count columns as dot products with tail's rows (see b_columns_as_rows).
template <dense_operand Dense, class After>
void run_product(const Dense& a, const kernels::dense_operands& d, After&& after, kernels::b_columns_as_rows tail = {}) {
    const kernels::dense_product_args<typename Dense::value_type> args{d, a.data(), a.stride(), a.cols(), tail};
    const bool vector = d.n == 1 && d.ldb == 1;
    run_on_rows(a.rows(), [&](std::size_t i) { return i * a.cols(); }, [&](std::size_t r0, std::size_t r1) {
        if (vector) dispatch<kernels::spmv_dense>(&args, r0, r1);
        else dispatch<kernels::spmm_dense>(&args, r0, r1);
        after(r0, r1);
    });
}

/// Up to this many vectors, run_product_rows multiplies A by each alone (sparse A) or by all at once
/// (dense A, which then streams once for all).
template <class Weights>
inline constexpr std::size_t max_product_rows = dense_operand<Weights> ? kernels::dense_max_vectors : 4;

/// C[t, :] = A·X[t, :] for the n <= max_product_rows<A> rows of X (row stride ldx) into the rows of
/// C (row stride ldc): a few matrix-vector products, the tokens of a decode step. after(t0, t1, r0,
/// r1) runs on the thread that finished elements [r0, r1) of rows [t0, t1) of C, right after.
template <class Weights, class After>
void run_product_rows(const Weights& a, const float* x, std::size_t ldx, std::size_t n, float* c, std::size_t ldc,
                      After&& after) {
    if constexpr (dense_operand<Weights>) {
        const kernels::dense_product_args<typename Weights::value_type> args{{x, ldx, c, ldc, n, 1.f, 0.f}, a.data(), a.stride(), a.cols()};
        run_on_rows(a.rows(), [&](std::size_t i) { return i * a.cols(); }, [&](std::size_t r0, std::size_t r1) {
            dispatch<kernels::spmv_dense_rows>(&args, r0, r1);
            after(std::size_t(0), n, r0, r1);
        });
    } else {
        for (std::size_t t = 0; t < n; ++t)
            run_product(a, {x + t * ldx, 1, c + t * ldc, 1, 1, 1.f, 0.f}, [&](std::size_t r0, std::size_t r1) { after(t, t + 1, r0, r1); });
    }
}

template <product_operand Sparse> const void* values_of(const Sparse& a) { return a.values(); }
template <product_operand Sparse> std::size_t value_bytes(const Sparse& a) {
    return a.nnz() * sizeof(typename Sparse::value_type);
}

template <class T, order O> std::size_t span_bytes(matrix_view<T, O> v) {
    if (v.empty()) return 0;
    const std::size_t outer = O == order::row_major ? v.rows() : v.cols(), inner = O == order::row_major ? v.cols() : v.rows();
    return ((outer - 1) * v.stride() + inner) * sizeof(T);
}

template <dense_operand Dense> const void* values_of(const Dense& a) { return a.data(); }
template <dense_operand Dense> std::size_t value_bytes(const Dense& a) { return span_bytes(a); }

// Throws aliasing_error if the output `out` shares memory with the input `in` (in part or whole).
template <class TOut, order OOut, class TIn, order OIn>
void check_disjoint(const char* where, const char* out_name, matrix_view<TOut, OOut> out, const char* in_name,
                    matrix_view<TIn, OIn> in) {
    check_disjoint_memory(where, out_name, out.data(), span_bytes(out), in_name, in.data(), span_bytes(in));
}

// Checks C = A·B for an m × k A; throws shape_error or aliasing_error.
template <class Sparse, class TB, order O>
void check_product(const char* where, const Sparse& a, matrix_view<TB, O> b, matrix_view<float> c,
                   const char* b_name = "B", const char* c_name = "C") {
    const std::size_t m = a.rows(), k = a.cols();
    if (b.rows() != k)
        fail<shape_error>(where, ": B has ", b.rows(), " rows, expected ", k, " (the columns of A, ", m, " x ", k, ")");
    if (c.rows() != m || c.cols() != b.cols())
        fail<shape_error>(where, ": C is ", c.rows(), " x ", c.cols(), ", expected ", m, " x ", b.cols(),
                          " (rows of A x columns of B)");
    check_disjoint(where, c_name, c, b_name, b);
    check_disjoint_memory(where, c_name, c.data(), span_bytes(c), "the values of A", values_of(a), value_bytes(a));
}

inline kernels::dense_operands dense_side(matrix_view<const float> b, matrix_view<float> c, const product_options& o) {
    return {b.data(), b.stride(), c.data(), c.stride(), c.cols(), o.alpha, o.beta};
}

// B as a packed row-major float copy: for column-major or bfloat16 B.
template <class TB, order O> aligned_buffer<float> row_major_float_copy(matrix_view<TB, O> b) {
    aligned_buffer<float> out(b.rows() * b.cols(), aligned_buffer<float>::uninitialized);
    for (std::size_t i = 0; i < b.rows(); ++i)
        for (std::size_t j = 0; j < b.cols(); ++j) out[i * b.cols() + j] = float(b(i, j));
    return out;
}

} // namespace detail

/// C = α·A·B + β·C for A sparse (m × k: CSR, BSR, N:M or bitmap; float or bfloat16 values), B dense
/// row-major float (k × n), C dense row-major float (m × n). O(stored · n) work; no allocation.
/// Rows (block rows for BSR) are split over num_threads() threads by stored count, and every element
/// of C is summed by one thread in one order, so the result does not depend on the thread count.
/// Elements A does not store contribute nothing, even against inf or NaN in B. The table of the
/// dispatch build holds int32_t indices (and int64_t for float CSR and bitmap), the 4×4 to 32×32 and
/// run-time BSR blocks (float) and 2:4, 1:4, 2:8; other combinations run the arch this translation
/// unit is compiled for. Throws shape_error if the shapes do not fit, aliasing_error if C overlaps B
/// or A's values.
template <product_operand Sparse>
void spmm(const Sparse& a, matrix_view<const float> b, matrix_view<float> c, product_options opts = {}) {
    detail::check_product("lacuna::spmm", a, b, c);
    if (c.empty()) return;
    detail::run_product(a, detail::dense_side(b, c, opts), [](std::size_t, std::size_t) {});
}

/// spmm for B column-major or bfloat16 (widened): B is first copied into a row-major float buffer
/// (k × n floats of extra memory, O(k · n) time), then as above.
template <product_operand Sparse, class TB, order O>
    requires(product_value<std::remove_const_t<TB>> && (O == order::col_major || !std::same_as<std::remove_const_t<TB>, float>))
void spmm(const Sparse& a, matrix_view<TB, O> b, matrix_view<float> c, product_options opts = {}) {
    detail::check_product("lacuna::spmm", a, b, c);
    if (c.empty()) return;
    const aligned_buffer<float> packed = detail::row_major_float_copy(b);
    const matrix_view<const float> bv(packed.data(), b.rows(), b.cols());
    detail::run_product(a, detail::dense_side(bv, c, opts), [](std::size_t, std::size_t) {});
}

/// y = α·A·x + β·y for A sparse (m × k, any layout and value type spmm takes), x of length k, y of
/// length m. Memory-bound: CSR gathers x by index; bitmap expands packed values against x under the
/// row's bits (AVX-512); 2:4 permutes x into the slots' columns (AVX-512). Same threading,
/// determinism and errors as spmm (shape_error for wrong lengths).
template <product_operand Sparse>
void spmv(const Sparse& a, std::span<const float> x, std::span<float> y, product_options opts = {}) {
    const char* where = "lacuna::spmv";
    detail::check_size(where, "x", x.size(), a.cols(), "the columns of A");
    detail::check_size(where, "y", y.size(), a.rows(), "the rows of A");
    detail::check_product(where, a, matrix_view<const float>(x.data(), x.size(), 1, 1),
                          matrix_view<float>(y.data(), y.size(), 1, 1), "x", "y");
    if (y.empty()) return;
    detail::run_product(a, {x.data(), 1, y.data(), 1, 1, opts.alpha, opts.beta}, [](std::size_t, std::size_t) {});
}

/// C = α·X·A + β·C for X dense row-major float (t × m), A sparse (m × k, any layout and value type
/// spmm takes), C dense row-major (t × k): dense × sparse, as the backward pass of a sparse linear
/// layer needs (dX = dY·W). O(t · stored) work, no allocation; rows of X are split over threads, and
/// each element of C is summed by one thread in A's storage order, so the result does not depend on
/// the thread count. Throws shape_error if the shapes do not fit, aliasing_error if C overlaps X or
/// A's values.
template <product_operand Sparse>
void spmm(matrix_view<const float> x, const Sparse& a, matrix_view<float> c, product_options opts = {}) {
    const char* where = "lacuna::spmm";
    if (x.cols() != a.rows())
        detail::fail<shape_error>(where, ": X has ", x.cols(), " columns, expected ", a.rows(), " (the rows of A, ",
                                  a.rows(), " x ", a.cols(), ")");
    if (c.rows() != x.rows() || c.cols() != a.cols())
        detail::fail<shape_error>(where, ": C is ", c.rows(), " x ", c.cols(), ", expected ", x.rows(), " x ", a.cols(),
                                  " (rows of X x columns of A)");
    detail::check_disjoint(where, "C", c, "X", x);
    detail::check_disjoint_memory(where, "C", c.data(), detail::span_bytes(c), "the values of A", a.values(),
                                  detail::value_bytes(a));
    if (c.empty()) return;
    const kernels::dense_operands d{nullptr, 0, c.data(), c.stride(), c.cols(), opts.alpha, opts.beta};
    detail::run_on_rows(x.rows(), [&](std::size_t t) { return t * a.nnz(); }, [&](std::size_t t0, std::size_t t1) {
        kernels::dense_sparse_rows(a, x.data(), x.stride(), d, t0, t1);
    });
}

} // namespace lacuna
