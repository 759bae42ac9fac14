// lacuna: mixture-of-experts, the family header: routing (moe/routing.hpp), permutation
// (moe/dispatch.hpp), the grouped experts (moe/experts.hpp), and the whole layer here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/moe/dispatch.hpp"
#include "lacuna/moe/experts.hpp"
#include "lacuna/moe/routing.hpp"
#include "lacuna/spmm.hpp"

namespace lacuna::moe {

/// The weights of a MoE layer: the router [E, H] (dense float), the routed experts, and optional
/// shared experts (DeepSeek-style) that every token passes through with weight 1.
template <weight_operand W> struct layer_weights {
    matrix_view<const float> router;
    expert_weights<W> routed;
    expert_weights<W> shared = {};
};

/// How moe_layer routes, lays out and runs its experts.
struct layer_config {
    router_config router = {};
    plan_options plan = {};
    expert_activation act = expert_activation::swiglu;
};

/// y = Σ_j weight_j · FFN_{expert_j}(x) + Σ_s FFN_shared_s(x) for every token of x [T, H] (row-major
/// float) into y [T, H]: router logits x · routerᵀ, route, plan, gather, experts, combine, each as
/// its entry point documents (and throws). Returns the routing, with its per-expert loads and, if the
/// config asks, its losses. Allocates the logits (T · E floats) and the sorted rows (2 · rows · H
/// floats, rows = T · k plus padding) besides what experts() does. Deterministic for any thread
/// count. Throws shape_error if the router is not E x H or y not T x H, aliasing_error if y overlaps x.
template <weight_operand W>
routing moe_layer(matrix_view<const float> x, const layer_weights<W>& w, matrix_view<float> y, const layer_config& cfg = {}) {
    const char* where = "lacuna::moe::moe_layer";
    const std::size_t T = x.rows(), H = x.cols(), E = w.router.rows();
    if (w.router.cols() != H)
        detail::fail<shape_error>(where, ": the router is ", E, " x ", w.router.cols(), ", expected E x ", H, " (the hidden size)");
    if (y.rows() != T || y.cols() != H)
        detail::fail<shape_error>(where, ": y is ", y.rows(), " x ", y.cols(), ", expected ", T, " x ", H, " (as x)");
    detail::check_disjoint(where, "y", y, "x", x);
    aligned_buffer<float> logits(T * E, aligned_buffer<float>::uninitialized);
    linear(x, w.router, matrix_view<float>(logits.data(), T, E));
    routing r = route(matrix_view<const float>(logits.data(), T, E), cfg.router);
    const dispatch routed = plan(r, cfg.plan);
    // Every check before y is first written (the shared experts write it before the routed ones).
    const std::size_t S = w.shared.up.size();
    detail::check_expert_weights("lacuna::moe::experts", w.routed, E, H, cfg.act);
    if (S > 0) detail::check_expert_weights("lacuna::moe::experts", w.shared, S, H, cfg.act);
    bool accumulate = false;
    auto run = [&](const dispatch& d, const expert_weights<W>& weights) {
        aligned_buffer<float> sorted(2 * d.rows() * H, aligned_buffer<float>::uninitialized);
        const matrix_view<float> xs(sorted.data(), d.rows(), H), ys(sorted.data() + d.rows() * H, d.rows(), H);
        gather(x, d, xs);
        experts(xs, d, weights, ys, {cfg.act});
        combine(ys, d, y, {accumulate});
        accumulate = true;
    };
    if (S > 0) {
        // Every token to every shared expert, weight 1: the same path as the routed experts.
        routing all{T, S, S, std::vector<std::int32_t>(T * S), std::vector<float>(T * S, 1.f), {}, 0, 0};
        for (std::size_t a = 0; a < T * S; ++a) all.topk_ids[a] = std::int32_t(a % S);
        run(plan(all), w.shared);
    }
    run(routed, w.routed);
    return r;
}

} // namespace lacuna::moe
