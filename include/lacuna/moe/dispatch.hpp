// lacuna: MoE permutation: a routing becomes a dispatch (assignments sorted by expert, with capacity
// and padding), tokens are gathered into expert-contiguous rows, and the experts' outputs are
// combined back into token order with the routing weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/primitives/axpy.hpp"
#include "lacuna/moe/routing.hpp"
#include "lacuna/simd/dispatch.hpp"
#include "lacuna/spmm.hpp"

namespace lacuna::moe {

/// How plan() lays out a top-k routing.
struct plan_options {
    /// 0: dropless. Otherwise each expert takes at most ⌈capacity_factor · T · k / E⌉ assignments,
    /// claimed in priority order: every token's first choice (tokens in order), then every token's
    /// second choice, and so on; the rest are dropped.
    double capacity_factor = 0;
    /// Each expert's rows are padded to a multiple of this, for kernels that want whole blocks.
    std::size_t row_multiple = 1;
};

/// Rows grouped by expert: expert e owns rows [expert_offsets[e], expert_offsets[e + 1]), its
/// assignments in ascending id order, then padding. An assignment id indexes the routing's table
/// (top-k: t·k + j; expert choice: e·capacity + c); a padding row holds the id `assignments` (the
/// sentinel vLLM's moe_align_block_size uses), token -1 and weight 0. Token t's rows, in the order
/// of its choices, are token_rows[token_offsets[t] ... token_offsets[t + 1]).
struct dispatch {
    std::size_t tokens = 0, experts = 0, assignments = 0;
    std::vector<std::int32_t> expert_offsets;
    std::vector<std::int32_t> sorted_token_ids;
    std::vector<std::int32_t> row_token;
    std::vector<float> row_weight;
    std::vector<std::int32_t> token_offsets;
    std::vector<std::int32_t> token_rows;
    /// Assignment ids left out by the capacity limit, in priority order.
    std::vector<std::int32_t> dropped;

    std::size_t rows() const noexcept { return expert_offsets.empty() ? 0 : std::size_t(expert_offsets.back()); }
};

} // namespace lacuna::moe

namespace lacuna::detail {

inline void check_fits_int32(const char* where, const char* what, std::size_t n) {
    if (n > std::size_t(std::numeric_limits<std::int32_t>::max()))
        fail<shape_error>(where, ": ", n, " ", what, " do not fit the int32 ids of a dispatch");
}

// Lays out the rows of a dispatch whose kept assignments (in ascending id order) and their experts,
// tokens and weights are given by for_each_kept(f), f(id, expert, token, weight).
template <class ForEachKept>
void lay_out_rows(moe::dispatch& d, const std::vector<std::int32_t>& kept_per_expert, std::size_t row_multiple,
                  ForEachKept&& for_each_kept) {
    const char* where = "lacuna::moe::plan";
    d.expert_offsets.assign(d.experts + 1, 0);
    std::size_t total = 0;
    for (std::size_t e = 0; e < d.experts; ++e) {
        const std::size_t n = std::size_t(kept_per_expert[e]);
        total += (n + row_multiple - 1) / row_multiple * row_multiple;
        check_fits_int32(where, "rows", total);
        d.expert_offsets[e + 1] = std::int32_t(total);
    }
    d.sorted_token_ids.assign(total, std::int32_t(d.assignments));
    d.row_token.assign(total, -1);
    d.row_weight.assign(total, 0.f);
    std::vector<std::int32_t> cursor(d.expert_offsets.begin(), d.expert_offsets.end() - 1);
    std::vector<std::int32_t> rows_per_token(d.tokens + 1, 0);
    for_each_kept([&](std::size_t id, std::size_t e, std::size_t t, float w) {
        const std::int32_t r = cursor[e]++;
        d.sorted_token_ids[std::size_t(r)] = std::int32_t(id);
        d.row_token[std::size_t(r)] = std::int32_t(t);
        d.row_weight[std::size_t(r)] = w;
        ++rows_per_token[t + 1];
    });
    for (std::size_t t = 0; t < d.tokens; ++t) rows_per_token[t + 1] += rows_per_token[t];
    d.token_offsets = rows_per_token;
}

} // namespace lacuna::detail

namespace lacuna::moe {

/// Sorts a top-k routing's T·k assignments by expert (a stable counting sort: within an expert,
/// ascending id, which is token order), applies the capacity limit and pads each expert's rows.
/// Token t's rows are listed in the order of its choices j. O(T·k + E) work and memory. Throws
/// shape_error if the routing's arrays do not have T·k elements or exceed int32 ids, lacuna::error
/// for an expert id outside [0, E), a weight that is NaN or infinite, a negative or non-finite
/// capacity factor, or row_multiple 0.
inline dispatch plan(const routing& r, const plan_options& opts = {}) {
    const char* where = "lacuna::moe::plan";
    const std::size_t T = r.tokens, k = r.k, E = r.experts, n = T * k;
    detail::check_size(where, "topk_ids", r.topk_ids.size(), n, "tokens x k");
    detail::check_size(where, "topk_weights", r.topk_weights.size(), n, "tokens x k");
    detail::check_fits_int32(where, "assignments", n + 1);
    if (!(opts.capacity_factor >= 0) || !std::isfinite(opts.capacity_factor))
        detail::fail(where, ": capacity_factor = ", opts.capacity_factor, " must be 0 (dropless) or positive");
    if (opts.row_multiple == 0) detail::fail(where, ": row_multiple must be at least 1");
    for (std::size_t a = 0; a < n; ++a) {
        if (r.topk_ids[a] < 0 || std::size_t(r.topk_ids[a]) >= E)
            detail::fail(where, ": topk_ids[", a, "] (token ", a / k, ", choice ", a % k, ") is ", r.topk_ids[a],
                         ", outside the ", E, " experts");
        if (!std::isfinite(r.topk_weights[a]))
            detail::fail(where, ": topk_weights[", a, "] (token ", a / k, ", choice ", a % k, ") is ", r.topk_weights[a],
                         "; routing weights must be finite");
    }
    dispatch d;
    d.tokens = T, d.experts = E, d.assignments = n;
    std::vector<char> kept(n, 1);
    std::vector<std::int32_t> per_expert(E, 0);
    if (opts.capacity_factor > 0) {
        const auto capacity = std::int32_t(std::min<double>(
            std::ceil(opts.capacity_factor * double(n) / double(std::max<std::size_t>(E, 1))), double(n)));
        for (std::size_t j = 0; j < k; ++j)
            for (std::size_t t = 0; t < T; ++t) {
                const std::size_t a = t * k + j, e = std::size_t(r.topk_ids[a]);
                if (per_expert[e] < capacity) ++per_expert[e];
                else kept[a] = 0, d.dropped.push_back(std::int32_t(a));
            }
    } else {
        for (std::int32_t e : r.topk_ids) ++per_expert[std::size_t(e)];
    }
    detail::lay_out_rows(d, per_expert, opts.row_multiple, [&](auto&& place) {
        for (std::size_t a = 0; a < n; ++a)
            if (kept[a]) place(a, std::size_t(r.topk_ids[a]), a / k, r.topk_weights[a]);
    });
    // Token t's rows in the order of its choices: the row of each kept assignment, found again by id.
    std::vector<std::int32_t> row_of(n, -1);
    for (std::size_t row = 0; row < d.rows(); ++row)
        if (d.row_token[row] >= 0) row_of[std::size_t(d.sorted_token_ids[row])] = std::int32_t(row);
    d.token_rows.clear();
    for (std::int32_t row : row_of)
        if (row >= 0) d.token_rows.push_back(row);
    return d;
}

/// The dispatch of an expert-choice routing: expert e's rows are its capacity tokens (ascending),
/// then padding to row_multiple; token t's rows are listed in expert order. O(E·capacity + T) work.
/// Throws lacuna::error for a token id outside [0, T), a weight that is NaN or infinite, or
/// row_multiple 0; shape_error if the arrays do not have E·capacity elements.
inline dispatch plan(const expert_choice_routing& r, std::size_t row_multiple = 1) {
    const char* where = "lacuna::moe::plan";
    const std::size_t n = r.experts * r.capacity;
    detail::check_size(where, "token_ids", r.token_ids.size(), n, "experts x capacity");
    detail::check_size(where, "weights", r.weights.size(), n, "experts x capacity");
    detail::check_fits_int32(where, "assignments", n + 1);
    if (row_multiple == 0) detail::fail(where, ": row_multiple must be at least 1");
    for (std::size_t a = 0; a < n; ++a) {
        if (r.token_ids[a] < 0 || std::size_t(r.token_ids[a]) >= r.tokens)
            detail::fail(where, ": token_ids[", a, "] (expert ", a / r.capacity, ") is ", r.token_ids[a], ", outside the ",
                         r.tokens, " tokens");
        if (!std::isfinite(r.weights[a]))
            detail::fail(where, ": weights[", a, "] (expert ", a / r.capacity, ") is ", r.weights[a],
                         "; routing weights must be finite");
    }
    dispatch d;
    d.tokens = r.tokens, d.experts = r.experts, d.assignments = n;
    std::vector<std::int32_t> per_expert(r.experts, std::int32_t(r.capacity));
    detail::lay_out_rows(d, per_expert, row_multiple, [&](auto&& place) {
        for (std::size_t a = 0; a < n; ++a) place(a, a / r.capacity, std::size_t(r.token_ids[a]), r.weights[a]);
    });
    std::vector<std::int32_t> cursor(d.token_offsets.begin(), d.token_offsets.end() - 1);
    d.token_rows.assign(std::size_t(d.token_offsets.back()), 0);
    for (std::size_t row = 0; row < d.rows(); ++row)
        if (const std::int32_t t = d.row_token[row]; t >= 0) d.token_rows[std::size_t(cursor[std::size_t(t)]++)] = std::int32_t(row);
    return d;
}

} // namespace lacuna::moe

namespace lacuna::detail {

// A dispatch is plain data that a caller may have built or edited: its arrays must fit each other and
// index inside their ranges before the kernels follow them. O(rows + tokens), small beside the
// H-wide rows the callers move.
inline void check_dispatch(const char* where, const moe::dispatch& d) {
    if (d.expert_offsets.size() != d.experts + 1 || d.row_token.size() != d.rows() || d.row_weight.size() != d.rows() ||
        d.token_offsets.size() != d.tokens + 1 || d.token_rows.size() != std::size_t(d.token_offsets.back()))
        fail<shape_error>(where, ": the dispatch's arrays do not fit its ", d.tokens, " tokens, ", d.experts,
                          " experts and ", d.rows(), " rows; make it with lacuna::moe::plan");
    auto check_offsets = [&](const char* name, const std::vector<std::int32_t>& offsets) {
        if (offsets[0] != 0 || !std::is_sorted(offsets.begin(), offsets.end()))
            fail<shape_error>(where, ": the dispatch's ", name, " must start at 0 and not decrease");
    };
    check_offsets("expert_offsets", d.expert_offsets);
    check_offsets("token_offsets", d.token_offsets);
    auto check_range = [&](const char* name, const std::vector<std::int32_t>& ids, std::int64_t lo, std::size_t end) {
        for (std::size_t i = 0; i < ids.size(); ++i)
            if (ids[i] < lo || std::int64_t(ids[i]) >= std::int64_t(end))
                fail<shape_error>(where, ": the dispatch's ", name, "[", i, "] is ", ids[i], ", outside [", lo, ", ", end, ")");
    };
    check_range("row_token", d.row_token, -1, d.tokens);
    check_range("token_rows", d.token_rows, 0, d.rows());
}

inline void check_rows(const char* where, const char* name, std::size_t rows, std::size_t expected, const char* why) {
    if (rows != expected) fail<shape_error>(where, ": ", name, " has ", rows, " rows, expected ", expected, " (", why, ")");
}

} // namespace lacuna::detail

namespace lacuna::moe {

/// x_sorted[r] = x[row_token[r]] for every row of the dispatch, zeros for padding rows: x [T, H]
/// and x_sorted [rows, H], row-major float (strided rows allowed). Rows split over threads. Throws
/// shape_error if the shapes do not fit the dispatch, aliasing_error if the two overlap.
inline void gather(matrix_view<const float> x, const dispatch& d, matrix_view<float> x_sorted) {
    const char* where = "lacuna::moe::gather";
    detail::check_dispatch(where, d);
    detail::check_rows(where, "x", x.rows(), d.tokens, "the dispatch's tokens");
    detail::check_rows(where, "x_sorted", x_sorted.rows(), d.rows(), "the dispatch's rows");
    if (x_sorted.cols() != x.cols())
        detail::fail<shape_error>(where, ": x_sorted has ", x_sorted.cols(), " columns, x has ", x.cols());
    detail::check_disjoint(where, "x_sorted", x_sorted, "x", x);
    const std::size_t H = x.cols();
    detail::run_on_rows(d.rows(), [&](std::size_t r) { return r * H; }, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            float* dst = x_sorted.data() + r * x_sorted.stride();
            if (const std::int32_t t = d.row_token[r]; t >= 0) std::copy_n(x.data() + std::size_t(t) * x.stride(), H, dst);
            else std::fill_n(dst, H, 0.f);
        }
    });
}

/// How combine() writes y.
struct combine_options {
    /// Add to y (for instance to a shared expert's output) instead of overwriting it.
    bool accumulate = false;
};

/// y[t] (+)= Σ row_weight[r] · y_sorted[r] over token t's rows, in the order the dispatch lists them
/// (its choices), so that the sum, and every bit of y, is the same for any thread count. A token
/// with no rows (all dropped) gets zeros (or keeps y). y_sorted [rows, H], y [T, H], row-major
/// float. Tokens split over threads. Throws shape_error if the shapes do not fit the dispatch,
/// aliasing_error if the two overlap.
inline void combine(matrix_view<const float> y_sorted, const dispatch& d, matrix_view<float> y, combine_options opts = {}) {
    const char* where = "lacuna::moe::combine";
    detail::check_dispatch(where, d);
    detail::check_rows(where, "y_sorted", y_sorted.rows(), d.rows(), "the dispatch's rows");
    detail::check_rows(where, "y", y.rows(), d.tokens, "the dispatch's tokens");
    if (y_sorted.cols() != y.cols())
        detail::fail<shape_error>(where, ": y has ", y.cols(), " columns, y_sorted has ", y_sorted.cols());
    detail::check_disjoint(where, "y", y, "y_sorted", y_sorted);
    const std::size_t H = y.cols();
    detail::run_on_rows(d.tokens, [&](std::size_t t) { return std::size_t(d.token_offsets[t]) * H; },
                        [&](std::size_t t0, std::size_t t1) {
                            for (std::size_t t = t0; t < t1; ++t) {
                                float* dst = y.data() + t * y.stride();
                                if (!opts.accumulate) std::fill_n(dst, H, 0.f);
                                for (auto i = d.token_offsets[t]; i < d.token_offsets[t + 1]; ++i) {
                                    const auto r = std::size_t(d.token_rows[std::size_t(i)]);
                                    detail::run<&detail::kernel_table::axpy_f32>(
                                        d.row_weight[r], y_sorted.data() + r * y_sorted.stride(), dst, H);
                                }
                            }
                        });
}

} // namespace lacuna::moe
