// lacuna: the experts of a MoE layer in one grouped call: every expert's feed-forward network over
// its rows of a dispatch, with weights dense (float, bfloat16) or in any sparse layout.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/kernels/primitives/activation.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/moe/dispatch.hpp"
#include "lacuna/simd/dispatch.hpp"
#include "lacuna/spmm.hpp"

namespace lacuna::moe {

/// The feed-forward network of an expert.
enum class expert_activation {
    swiglu, ///< down · (silu(gate · x) ⊙ (up · x)) (Mixtral, DeepSeek, Qwen)
    gelu,   ///< down · gelu(up · x), the exact erf form; no gate
};

/// The weights of E experts, as nn.Linear stores them (out × in): gate[e] and up[e] are F × H,
/// down[e] is H × F. Each matrix is a lacuna sparse layout or a dense row-major view (W), so experts
/// may be pruned one by one; F may differ between experts. gate is empty for expert_activation::gelu.
template <weight_operand W> struct expert_weights {
    std::span<const W> gate, up, down;
};

/// Views of E dense matrices of rows × cols stored one after another (a [E, rows, cols] array, as
/// checkpoints keep expert weights). Throws shape_error if `data` is shorter than E · rows · cols.
template <class T>
std::vector<matrix_view<const T>> dense_experts(std::span<const T> data, std::size_t experts, std::size_t rows,
                                                std::size_t cols) {
    detail::check_size("lacuna::moe::dense_experts", "data", data.size(), experts * rows * cols, "experts x rows x cols");
    std::vector<matrix_view<const T>> out;
    for (std::size_t e = 0; e < experts; ++e) out.emplace_back(data.data() + e * rows * cols, rows, cols);
    return out;
}

} // namespace lacuna::moe

namespace lacuna::detail {

// Rows of one expert taken at once: bounds the scratch (about (2H + 2F) · 256 floats) without
// costing reuse, since the products read their weights once per 64 columns anyway.
inline constexpr std::size_t expert_chunk_rows = 256;

template <class W>
void check_expert_weights(const char* where, const moe::expert_weights<W>& w, std::size_t experts, std::size_t hidden,
                          moe::expert_activation act) {
    const bool gated = act == moe::expert_activation::swiglu;
    check_size(where, "up", w.up.size(), experts, "one matrix per expert");
    check_size(where, "down", w.down.size(), experts, "one matrix per expert");
    check_size(where, "gate", w.gate.size(), gated ? experts : 0,
               gated ? "one matrix per expert (SwiGLU)" : "none: the GELU network has no gate");
    for (std::size_t e = 0; e < experts; ++e) {
        const std::size_t F = w.up[e].rows();
        if (w.up[e].cols() != hidden)
            fail<shape_error>(where, ": up[", e, "] is ", F, " x ", w.up[e].cols(), ", expected F x ", hidden, " (the hidden size)");
        if (gated && (w.gate[e].rows() != F || w.gate[e].cols() != hidden))
            fail<shape_error>(where, ": gate[", e, "] is ", w.gate[e].rows(), " x ", w.gate[e].cols(), ", expected ", F, " x ",
                              hidden, " (as up[", e, "])");
        if (w.down[e].rows() != hidden || w.down[e].cols() != F)
            fail<shape_error>(where, ": down[", e, "] is ", w.down[e].rows(), " x ", w.down[e].cols(), ", expected ", hidden,
                              " x ", F, " (hidden x the rows of up[", e, "])");
    }
}

// The scratch of the experts: the chunk's rows transposed (H × ld), the gate and up products (F × ld
// each, up then holding the activation), the output transposed (H × ld). Zeroed once, so that
// columns past a chunk's rows only ever hold finite values.
struct expert_scratch {
    std::size_t ld;
    aligned_buffer<float> xt, gate, up, yt;
    expert_scratch(std::size_t hidden, std::size_t ffn, std::size_t rows)
        : ld(transposed_stride(rows)), xt(hidden * ld), gate(ffn * ld), up(ffn * ld), yt(hidden * ld) {}
};

// y = down · act(gate · x, up · x) for the rows of x (n × H), into y (n × H), on every thread.
template <class W>
void expert_ffn(const moe::expert_weights<W>& w, std::size_t e, moe::expert_activation act, const float* x, std::size_t ldx,
                float* y, std::size_t ldy, std::size_t n, expert_scratch& s) {
    const std::size_t H = w.down[e].rows(), F = w.up[e].rows();
    const bool gated = act == moe::expert_activation::swiglu;
    auto activate = [&](float* up, const float* gate, std::size_t count) {
        if (gated) run<&kernel_table::swiglu_f32>(gate, up, count);
        else run<&kernel_table::bias_activation_f32>(activation::gelu, static_cast<const float*>(nullptr), up, count);
    };
    if (n <= max_product_rows<W>) {
        const auto none = [](std::size_t, std::size_t, std::size_t, std::size_t) {};
        if (gated) run_product_rows(w.gate[e], x, ldx, n, s.gate.data(), F, none);
        run_product_rows(w.up[e], x, ldx, n, s.up.data(), F, [&](std::size_t t0, std::size_t t1, std::size_t o0, std::size_t o1) {
            for (std::size_t t = t0; t < t1; ++t) activate(s.up.data() + t * F + o0, s.gate.data() + t * F + o0, o1 - o0);
        });
        run_product_rows(w.down[e], s.up.data(), F, n, y, ldy, none);
        return;
    }
    const std::size_t ld = s.ld;
    // Dense weights compute the ragged last columns as dot products with rows of tokens
    // (ragged_columns). Sparse weights run whole registers of columns: a ragged tail would run in
    // narrow panels at a fraction of the speed; the extra columns hold finite values (see
    // expert_scratch) and are never read back.
    const std::size_t cols =
        dense_operand<W> ? n : std::min(ld, (n + register_floats - 1) / register_floats * register_floats);
    auto product = [&](const W& weights, const float* b, float* c, kernels::b_columns_as_rows ragged, auto&& after) {
        const kernels::dense_operands d{b, ld, c, ld, cols, 1.f, 0.f};
        if constexpr (dense_operand<W>) run_product(weights, d, after, ragged);
        else run_product(weights, d, after);
    };
    const kernels::b_columns_as_rows x_ragged = ragged_columns(x, ldx, n);
    transpose(x, ldx, n, H, s.xt.data(), ld);
    if (gated) product(w.gate[e], s.xt.data(), s.gate.data(), x_ragged, [](std::size_t, std::size_t) {});
    product(w.up[e], s.xt.data(), s.up.data(), x_ragged, [&](std::size_t o0, std::size_t o1) {
        activate(s.up.data() + o0 * ld, s.gate.data() + o0 * ld, (o1 - o0) * ld);
    });
    // The activation's ragged columns as rows (at most 15 × F), where the gate product was: the
    // activation has used it up, and dense weights leave no padding columns that would read it.
    if (dense_operand<W> && x_ragged.count)
        transpose(s.up.data() + (n - x_ragged.count), ld, F, x_ragged.count, s.gate.data(), F);
    product(w.down[e], s.up.data(), s.yt.data(), {s.gate.data(), F, x_ragged.count}, [&](std::size_t o0, std::size_t o1) {
        transpose(s.yt.data() + o0 * ld, ld, o1 - o0, n, y + o0, ldy);
    });
}

} // namespace lacuna::detail

namespace lacuna::moe {

/// How experts() runs each expert.
struct expert_config {
    expert_activation act = expert_activation::swiglu;
};

/// y_sorted[rows of e] = FFN_e(x_sorted[rows of e]) for every expert e of the dispatch (padding rows
/// included: zeros in give zeros out). x_sorted and y_sorted are [rows, H] row-major float. An
/// expert with more than 8 rows (dense weights; 4 sparse) runs as three products over its rows
/// transposed (in chunks of 256), each split over threads by the weights' rows, so that one hot
/// expert uses every thread; fewer rows run as matrix-vector products (dense weights streamed once
/// for all of them). Allocates about (2H + 2F) · min(256, most rows of an expert)
/// floats. O(Σ_e rows_e · stored(e)) work; deterministic for any thread count. Throws shape_error if
/// the weights, the dispatch and the operands do not fit, aliasing_error if y_sorted overlaps
/// x_sorted.
template <weight_operand W>
void experts(matrix_view<const float> x_sorted, const dispatch& d, const expert_weights<W>& w, matrix_view<float> y_sorted,
             expert_config cfg = {}) {
    const char* where = "lacuna::moe::experts";
    detail::check_dispatch(where, d);
    detail::check_rows(where, "x_sorted", x_sorted.rows(), d.rows(), "the dispatch's rows");
    detail::check_rows(where, "y_sorted", y_sorted.rows(), d.rows(), "the dispatch's rows");
    const std::size_t H = x_sorted.cols();
    if (y_sorted.cols() != H)
        detail::fail<shape_error>(where, ": y_sorted has ", y_sorted.cols(), " columns, x_sorted has ", H);
    detail::check_expert_weights(where, w, d.experts, H, cfg.act);
    detail::check_disjoint(where, "y_sorted", y_sorted, "x_sorted", x_sorted);
    std::size_t most_rows = 0, widest = 0;
    for (std::size_t e = 0; e < d.experts; ++e) {
        const std::size_t rows = std::size_t(d.expert_offsets[e + 1] - d.expert_offsets[e]);
        if (rows == 0) continue;
        most_rows = std::max(most_rows, rows);
        widest = std::max(widest, w.up[e].rows());
    }
    if (most_rows == 0 || H == 0) return;
    detail::expert_scratch s(H, widest, std::min(most_rows, detail::expert_chunk_rows));
    for (std::size_t e = 0; e < d.experts; ++e)
        for (std::size_t r0 = std::size_t(d.expert_offsets[e]); r0 < std::size_t(d.expert_offsets[e + 1]);
             r0 += detail::expert_chunk_rows) {
            const std::size_t n = std::min(detail::expert_chunk_rows, std::size_t(d.expert_offsets[e + 1]) - r0);
            detail::expert_ffn(w, e, cfg.act, x_sorted.data() + r0 * x_sorted.stride(), x_sorted.stride(),
                               y_sorted.data() + r0 * y_sorted.stride(), y_sorted.stride(), n, s);
        }
}

} // namespace lacuna::moe
