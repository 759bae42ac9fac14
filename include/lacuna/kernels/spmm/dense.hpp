// lacuna: dense × dense on the products' interface: C = α·A·B + β·C and y = α·A·x + β·y for a dense
// row-major A (float or bfloat16), so that dense weights run wherever sparse ones do (the linear
// layer, the experts of a MoE layer) and benchmarks compare the two in one code path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "lacuna/kernels/spmm/common.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// The last `count` of C's columns taken from B's columns as rows (row t: B's column n - count + t,
/// rows `ld` apart), so that spmm_dense computes them as dot products: a ragged last register of
/// columns (a MoE expert's last tokens) then costs its columns, not a whole register.
struct b_columns_as_rows {
    const float* rows = nullptr;
    std::size_t ld = 0, count = 0;
};

/// The operands of a dense product, checked by the entry point: A is rows × k, row-major with row
/// stride lda.
template <class T> struct dense_product_args {
    dense_operands d;
    const T* a;
    std::size_t lda, k;
    b_columns_as_rows tail = {};
};

/// C = α·A·B + β·C on rows [row_begin, row_end): register tiles of R rows of C × a panel of
/// columns, each element of A broadcast against the panel's registers of a row of B; A's columns
/// in chunks whose rows of B stay in L1 while a block of A's rows passes over them. The columns of
/// args.tail, if any, as dot products of the block's rows (still in L2) with the tail's rows.
struct spmm_dense {
    template <class Arch, class T>
    void operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// y = α·A·x + β·y on rows [row_begin, row_end), x = args.b, y = args.c: four rows of A streamed
/// at once against one register of x.
struct spmv_dense {
    template <class Arch, class T>
    void operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

/// Vectors spmv_dense_rows takes at once.
inline constexpr std::size_t dense_max_vectors = 8;

/// C[t·ldc + i] = α·Σ_c A[i, c]·X[t, c] + β·C[t·ldc + i] for rows i in [row_begin, row_end) and the
/// n <= dense_max_vectors rows of X (args.b, row stride ldb): several matrix-vector products that
/// stream A once, for the few tokens of a decode step or of a lightly loaded expert.
struct spmv_dense_rows {
    template <class Arch, class T>
    void operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept;
};

namespace detail {

// A's columns per chunk (B's rows: 128 × a 64-float panel is 32 KiB of L1) and C's rows per block,
// whose partial sums wait in a scratch tile between chunks.
inline constexpr std::size_t dense_chunk_cols = 128, dense_block_rows = 24;

// Rows of C per register tile: with `tiles` registers per row, as many rows as keep the
// accumulators, B's registers and a broadcast within the register file. With AVX-512's 32: eight
// rows of three registers (measured faster than six), six of four, six of one or two (twelve rows
// and five-register panels measured slower).
template <class V, std::size_t tiles> inline constexpr std::size_t dense_tile_rows =
    simd::width<V> >= 16 ? (tiles == 3 ? 8 : std::min<std::size_t>(6, 24 / tiles))
                         : std::min<std::size_t>(4, 8 / tiles);

// for_each_panel for the dense product, whose C often has a few registers of columns (a MoE expert's
// tokens, a linear layer's batch): with AVX-512, whole registers go four to a panel except that the
// last five go as three and two and the last six as three and three, rather than a one-register
// panel after a four, whose tile loads a broadcast for every FMA or two.
template <class Arch, class Panel> LACUNA_ALWAYS_INLINE void for_each_dense_panel(std::size_t n, Panel&& panel) {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    if constexpr (w >= 16) {
        std::size_t j = 0;
        for (std::size_t m = n / w; m > 0;) {
            const std::size_t take = m == 5 || m == 6 ? 3 : std::min<std::size_t>(m, 4);
            switch (take) {
                case 4: panel.template operator()<V, 4>(j); break;
                case 3: panel.template operator()<V, 3>(j); break;
                case 2: panel.template operator()<V, 2>(j); break;
                default: panel.template operator()<V, 1>(j); break;
            }
            j += take * w;
            m -= take;
        }
        for_each_panel<Arch>(n - j, [&]<class U, std::size_t tiles>(std::size_t at) { return panel.template operator()<U, tiles>(j + at); });
    } else {
        for_each_panel<Arch>(n, panel);
    }
}

// acc[r][t] += Σ_c a[r][c] · B[k0 + c, j + t·w] for c < cols, a[r] rows of float.
template <class V, std::size_t tiles, std::size_t R>
LACUNA_ALWAYS_INLINE void dense_tile(const float* const (&a)[R], const float* b, std::size_t ldb, std::size_t cols,
                                     V (&acc)[R][tiles]) noexcept {
    constexpr std::size_t w = simd::width<V>;
    for (std::size_t c = 0; c < cols; ++c) {
        V bv[tiles];
        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) bv[t] = simd::load<V>(b + c * ldb + t * w);
        LACUNA_UNROLL for (std::size_t r = 0; r < R; ++r) {
            const V av(a[r][c]);
            LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[r][t] = simd::fma(av, bv[t], acc[r][t]);
        }
    }
}

// out[t·ct + i·ci] = α·dot(A[i], X[t]) + β·out[...] for N vectors X[t] = x + t·ldx, rows i in [r0, r1):
// G rows of A at a time, each register of A meeting every vector's register.
template <class Arch, class T, std::size_t N>
void dense_rows_dot(const dense_product_args<T>& a, const float* x, std::size_t ldx, float* out, std::size_t ct,
                    std::size_t ci, std::size_t r0, std::size_t r1) noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>, R = N <= 2 ? 8 : 2;
    const std::size_t vk = simd::is_lane<V> ? 0 : a.k - a.k % w;
    auto rows = [&]<std::size_t G>(std::size_t i) {
        V acc[G][N];
        LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r)
            LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t) acc[r][t] = V(0.f);
        for (std::size_t c = 0; c < vk; c += w) {
            V xv[N];
            LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t) xv[t] = simd::load<V>(x + t * ldx + c);
            LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r) {
                // bfloat16 rows are short streams (2 KiB for 1024 columns), which the hardware
                // prefetcher picks up late: fetch the next rows' same columns ahead (float rows
                // stream faster without).
                if constexpr (sizeof(T) == 2) __builtin_prefetch(a.a + std::min(i + r + G, r1 - 1) * a.lda + c);
                const V av = simd::load<V>(a.a + (i + r) * a.lda + c);
                LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t) acc[r][t] = simd::fma(av, xv[t], acc[r][t]);
            }
        }
        LACUNA_UNROLL for (std::size_t r = 0; r < G; ++r)
            LACUNA_UNROLL for (std::size_t t = 0; t < N; ++t) {
                float sum = simd::reduce_add(acc[r][t]);
                for (std::size_t c = vk; c < a.k; ++c) sum += float(a.a[(i + r) * a.lda + c]) * x[t * ldx + c];
                finish(out + t * ct + (i + r) * ci, sum, a.d);
            }
    };
    std::size_t i = r0;
    for (; i + R <= r1; i += R) rows.template operator()<R>(i);
    for (; i < r1; ++i) rows.template operator()<1>(i);
}

// dense_rows_dot for n <= dense_max_vectors vectors.
template <class Arch, class T>
void dense_rows_dot_n(const dense_product_args<T>& a, std::size_t n, const float* x, std::size_t ldx, float* out, std::size_t ct,
                      std::size_t ci, std::size_t r0, std::size_t r1) noexcept {
    [&]<std::size_t... N>(std::index_sequence<N...>) {
        ((n == N + 1 ? dense_rows_dot<Arch, T, N + 1>(a, x, ldx, out, ct, ci, r0, r1) : void()), ...);
    }(std::make_index_sequence<dense_max_vectors>{});
}

// C's tail columns (args.tail) for rows [r0, r1).
template <class Arch, class T> void dense_tail(const dense_product_args<T>& a, std::size_t r0, std::size_t r1) noexcept {
    const std::size_t first = a.d.n - a.tail.count;
    for (std::size_t t = 0; t < a.tail.count; t += dense_max_vectors)
        dense_rows_dot_n<Arch, T>(a, std::min(dense_max_vectors, a.tail.count - t), a.tail.rows + t * a.tail.ld, a.tail.ld,
                                  a.d.c + first + t, 1, a.d.ldc, r0, r1);
}

} // namespace detail

template <class Arch, class T>
void spmm_dense::operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    const dense_product_args<T>& a = *args;
    constexpr std::size_t kc = detail::dense_chunk_cols, block = detail::dense_block_rows;
    // bfloat16 rows are widened a chunk at a time into this buffer, so that the tile broadcasts floats.
    alignas(64) float widened[std::is_same_v<T, float> ? 1 : block * kc];
    // Blocks of rows outermost: a block of A (block × k) is read from memory once and stays in L2
    // while every panel of B's columns passes over it.
    for (std::size_t i0 = row_begin; i0 < row_end; i0 += block) {
        const std::size_t rows = std::min(block, row_end - i0);
        detail::for_each_dense_panel<Arch>(a.d.n - a.tail.count, [&]<class V, std::size_t tiles>(std::size_t j) {
            constexpr std::size_t w = simd::width<V>, R = detail::dense_tile_rows<V, tiles>;
            V scratch[block][tiles];
            for (std::size_t r = 0; r < rows; ++r)
                LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) scratch[r][t] = V(0.f);
            for (std::size_t k0 = 0; k0 < a.k; k0 += kc) {
                const std::size_t cols = std::min(kc, a.k - k0);
                const float* arow[block];
                for (std::size_t r = 0; r < rows; ++r) {
                    const T* src = a.a + (i0 + r) * a.lda + k0;
                    if constexpr (std::is_same_v<T, float>) {
                        arow[r] = src;
                    } else {
                        // The row's next chunk, while this one is widened: the block's rows are
                        // read a short burst each, which the hardware prefetcher does not follow.
                        for (std::size_t at = kc; at < std::min(2 * kc, a.k - k0); at += 64 / sizeof(T)) __builtin_prefetch(src + at);
                        using W = simd::vec<float, Arch>;
                        constexpr std::size_t ww = simd::width<W>;
                        float* dst = widened + r * kc;
                        std::size_t c = 0;
                        for (; c + ww <= cols; c += ww) simd::store(dst + c, simd::load<W>(src + c));
                        for (; c < cols; ++c) dst[c] = float(src[c]);
                        arow[r] = dst;
                    }
                }
                const float* b = a.d.b + k0 * a.d.ldb + j;
                auto pass = [&]<std::size_t G>(std::size_t r) {
                    V acc[G][tiles];
                    const float* rows_of_a[G];
                    LACUNA_UNROLL for (std::size_t q = 0; q < G; ++q) {
                        rows_of_a[q] = arow[r + q];
                        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) acc[q][t] = scratch[r + q][t];
                    }
                    detail::dense_tile<V, tiles, G>(rows_of_a, b, a.d.ldb, cols, acc);
                    LACUNA_UNROLL for (std::size_t q = 0; q < G; ++q)
                        LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) scratch[r + q][t] = acc[q][t];
                };
                detail::for_each_group<R>(rows, pass);
            }
            for (std::size_t r = 0; r < rows; ++r)
                LACUNA_UNROLL for (std::size_t t = 0; t < tiles; ++t) detail::finish(a.d.c + (i0 + r) * a.d.ldc + j + t * w, scratch[r][t], a.d);
            return tiles * w;
        });
        if (a.tail.count) detail::dense_tail<Arch>(a, i0, i0 + rows);
    }
}


template <class Arch, class T>
void spmv_dense::operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin, std::size_t row_end) const noexcept {
    detail::dense_rows_dot<Arch, T, 1>(*args, args->d.b, 0, args->d.c, 0, args->d.ldc, row_begin, row_end);
}

template <class Arch, class T>
void spmv_dense_rows::operator()(Arch, const dense_product_args<T>* args, std::size_t row_begin,
                                 std::size_t row_end) const noexcept {
    detail::dense_rows_dot_n<Arch, T>(*args, args->d.n, args->d.b, args->d.ldb, args->d.c, args->d.ldc, 1, row_begin, row_end);
}

} // namespace lacuna::kernels
