// lacuna: selection rules: which elements of a dense matrix a sparse layout keeps.
//
// A rule's select(dense) returns one flag per element, row-major. Magnitude rules rank by |x| with
// NaN counted as +inf (a NaN weight is kept, never hidden), and break ties by the lower row-major
// index, so every rule is deterministic.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/common.hpp"

namespace lacuna {

/// A rule that picks the elements to keep: select(dense) gives rows·cols flags, row-major.
template <class R>
concept selection_rule = requires(const R& rule, matrix_view<const float> dense) {
    { rule.select(dense) } -> std::same_as<std::vector<bool>>;
};

namespace prune {

namespace detail {
// The rank key of x: |x| in the precision of T (float for float and bfloat16), NaN as +inf.
template <class T> using key_type = std::conditional_t<std::is_same_v<T, double>, double, float>;
template <class T> key_type<T> magnitude(T x) noexcept {
    key_type<T> v = key_type<T>(x);
    return v != v ? std::numeric_limits<key_type<T>>::infinity() : std::abs(v);
}

// Sets keep[at(i)] for the k elements of largest key among n (key(i) for i < n), ties to lower i.
template <class Key, class At>
void keep_top_k(std::size_t n, std::size_t k, Key&& key, At&& at, std::vector<bool>& keep) {
    if (k == 0) return;
    if (k >= n) {
        for (std::size_t i = 0; i < n; ++i) keep[at(i)] = true;
        return;
    }
    using K = decltype(key(std::size_t(0)));
    if (n <= 64) { // N:M groups and short rows: rank on the stack, no allocation
        std::array<std::uint8_t, 64> order;
        for (std::size_t i = 0; i < n; ++i) order[i] = std::uint8_t(i);
        std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.begin() + std::ptrdiff_t(n),
                          [&](std::uint8_t a, std::uint8_t b) {
                              K ka = key(a), kb = key(b);
                              return ka > kb || (ka == kb && a < b);
                          });
        for (std::size_t i = 0; i < k; ++i) keep[at(order[i])] = true;
        return;
    }
    std::vector<K> keys(n);
    for (std::size_t i = 0; i < n; ++i) keys[i] = key(i);
    std::nth_element(keys.begin(), keys.begin() + std::ptrdiff_t(k - 1), keys.end(), std::greater<K>());
    const K kth = keys[k - 1];
    std::size_t above = 0;
    for (std::size_t i = 0; i < n; ++i) above += key(i) > kth;
    std::size_t ties = k - above;
    for (std::size_t i = 0; i < n; ++i) {
        K v = key(i);
        if (v > kth) {
            keep[at(i)] = true;
        } else if (v == kth && ties > 0) {
            keep[at(i)] = true;
            --ties;
        }
    }
}

inline std::size_t fraction_count(double fraction, std::size_t n) noexcept {
    return std::min(n, std::size_t(std::floor(fraction * double(n) + 0.5)));
}

inline void check_fraction(const char* where, double f) {
    if (!(f >= 0 && f <= 1)) lacuna::detail::fail(where, ": fraction must be in [0, 1], got ", f);
}

inline void check_block(const char* where, block_size b) {
    if (b.rows == 0 || b.cols == 0) lacuna::detail::fail(where, ": block size ", b.rows, " x ", b.cols, " is empty");
}

// The Frobenius norm of every block (row-major block order; padding counts as zero), NaN as +inf.
template <class T, order O> std::vector<double> block_norms(matrix_view<const T, O> dense, block_size b) {
    const std::size_t nbr = (dense.rows() + b.rows - 1) / b.rows, nbc = (dense.cols() + b.cols - 1) / b.cols;
    std::vector<double> norms(nbr * nbc, 0.0);
    for (std::size_t i = 0; i < dense.rows(); ++i)
        for (std::size_t j = 0; j < dense.cols(); ++j) {
            double v = double(dense(i, j));
            norms[(i / b.rows) * nbc + j / b.cols] += v * v;
        }
    for (double& n : norms) n = n != n ? std::numeric_limits<double>::infinity() : std::sqrt(n);
    return norms;
}

// Element flags of the blocks flagged in `blocks`.
inline std::vector<bool> expand_blocks(const std::vector<bool>& blocks, std::size_t rows, std::size_t cols, block_size b) {
    const std::size_t nbc = (cols + b.cols - 1) / b.cols;
    std::vector<bool> keep(rows * cols);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) keep[i * cols + j] = blocks[(i / b.rows) * nbc + j / b.cols];
    return keep;
}
} // namespace detail

/// Keeps every element that is not zero (NaN included): the exact conversion of a dense matrix.
struct nonzero {
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        std::vector<bool> keep(dense.rows() * dense.cols());
        for (std::size_t i = 0; i < dense.rows(); ++i)
            for (std::size_t j = 0; j < dense.cols(); ++j) keep[i * dense.cols() + j] = float(dense(i, j)) != 0.f;
        return keep;
    }
};

/// Keeps the elements with |x| > t (compared in the precision of the values), and NaN. Throws lacuna::error for a negative or NaN t.
struct threshold {
    double t;
    explicit threshold(double t_) : t(t_) {
        if (!(t >= 0)) lacuna::detail::fail("lacuna::prune::threshold: t must be >= 0, got ", t);
    }
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        // Compared in T's precision, so that threshold(0.3) drops a float 0.3f.
        const auto limit = detail::key_type<T>(t);
        std::vector<bool> keep(dense.rows() * dense.cols());
        for (std::size_t i = 0; i < dense.rows(); ++i)
            for (std::size_t j = 0; j < dense.cols(); ++j) keep[i * dense.cols() + j] = detail::magnitude(dense(i, j)) > limit;
        return keep;
    }
};

/// Where top_fraction counts: over the whole matrix, or in each row separately.
enum class scope { matrix, row };

/// Keeps the round(fraction · n) elements of largest magnitude, n counted over the whole matrix or
/// per row; ties go to the lower index. O(n) expected time. Throws lacuna::error unless
/// 0 <= fraction <= 1.
struct top_fraction {
    double fraction;
    scope over;
    explicit top_fraction(double f, scope s = scope::matrix) : fraction(f), over(s) {
        detail::check_fraction("lacuna::prune::top_fraction", f);
    }
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        const std::size_t rows = dense.rows(), cols = dense.cols();
        std::vector<bool> keep(rows * cols);
        if (over == scope::matrix) {
            detail::keep_top_k(
                rows * cols, detail::fraction_count(fraction, rows * cols),
                [&](std::size_t k) { return detail::magnitude(dense(k / cols, k % cols)); },
                [](std::size_t k) { return k; }, keep);
        } else {
            for (std::size_t i = 0; i < rows; ++i)
                detail::keep_top_k(
                    cols, detail::fraction_count(fraction, cols),
                    [&](std::size_t j) { return detail::magnitude(dense(i, j)); },
                    [&](std::size_t j) { return i * cols + j; }, keep);
        }
        return keep;
    }
};

/// Keeps the n largest magnitudes in every group of m consecutive columns of a row (the last group
/// of a row may be shorter: it keeps min(n, its size)); ties go to the lower column. The standard
/// rule for 2:4 and other N:M sparsity. Throws lacuna::error unless 0 < n < m.
struct n_m {
    std::size_t n, m;
    n_m(std::size_t n_, std::size_t m_) : n(n_), m(m_) {
        if (!(0 < n && n < m)) lacuna::detail::fail("lacuna::prune::n_m: needs 0 < n < m, got ", n, ":", m);
    }
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        const std::size_t rows = dense.rows(), cols = dense.cols();
        std::vector<bool> keep(rows * cols);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t g0 = 0; g0 < cols; g0 += m)
                detail::keep_top_k(
                    std::min(m, cols - g0), n, [&](std::size_t p) { return detail::magnitude(dense(i, g0 + p)); },
                    [&](std::size_t p) { return i * cols + g0 + p; }, keep);
        return keep;
    }
};

/// Keeps whole blocks (of `block` shape, aligned to the matrix origin) whose Frobenius norm is > t,
/// and blocks holding a NaN. Throws lacuna::error for an empty block or a negative or NaN t.
struct block_threshold {
    block_size block;
    double t;
    block_threshold(block_size b, double t_) : block(b), t(t_) {
        detail::check_block("lacuna::prune::block_threshold", b);
        if (!(t >= 0)) lacuna::detail::fail("lacuna::prune::block_threshold: t must be >= 0, got ", t);
    }
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        std::vector<double> norms = detail::block_norms(dense, block);
        std::vector<bool> blocks(norms.size());
        for (std::size_t k = 0; k < norms.size(); ++k) blocks[k] = norms[k] > t;
        return detail::expand_blocks(blocks, dense.rows(), dense.cols(), block);
    }
};

/// Keeps the round(fraction · blocks) blocks of largest Frobenius norm, ties to the lower block
/// (row-major block order). Throws lacuna::error for an empty block or a fraction outside [0, 1].
struct block_top_fraction {
    block_size block;
    double fraction;
    block_top_fraction(block_size b, double f) : block(b), fraction(f) {
        detail::check_block("lacuna::prune::block_top_fraction", b);
        detail::check_fraction("lacuna::prune::block_top_fraction", f);
    }
    template <class T, order O> std::vector<bool> select(matrix_view<const T, O> dense) const {
        std::vector<double> norms = detail::block_norms(dense, block);
        std::vector<bool> blocks(norms.size());
        detail::keep_top_k(
            norms.size(), detail::fraction_count(fraction, norms.size()), [&](std::size_t k) { return norms[k]; },
            [](std::size_t k) { return k; }, blocks);
        return detail::expand_blocks(blocks, dense.rows(), dense.cols(), block);
    }
};

} // namespace prune
} // namespace lacuna
