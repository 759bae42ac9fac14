// lacuna: MoE routing, the public entry points: top-k routing in its forms (softmax or sigmoid
// scores, DeepSeek-V3 grouped top-k with a correction bias, renormalisation, scaling), the auxiliary
// values training needs from the same pass, and expert-choice routing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/kernels/moe/router.hpp"
#include "lacuna/kernels/primitives/softmax.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna::moe {

/// How route() picks k experts per token (../shared/FORMATS.md, "MoE routing outputs").
struct router_config {
    std::size_t k = 2;
    moe::scoring scoring = moe::scoring::softmax;
    /// Divide the k weights by their sum (when it is positive).
    bool renormalize = false;
    /// Multiplies every weight, after renormalisation (DeepSeek-V3's routed_scaling_factor).
    float routed_scaling_factor = 1.f;
    /// Grouped top-k when n_group > 1: the experts form n_group equal groups, a group scores the sum
    /// of its two largest biased scores, and only the topk_group best groups take part in the top-k.
    std::size_t n_group = 1, topk_group = 1;
    /// Added to the scores for selection only (DeepSeek-V3's e_score_correction_bias); empty or one
    /// per expert.
    std::span<const float> correction_bias = {};
    /// Also compute load_balancing_loss and z_loss (one more pass over the logits with sigmoid).
    bool losses = false;
};

/// The result of route(): for token t, its k experts at topk_ids[t·k ...] in the order selected
/// (best biased score first, ties to the lower expert id) and their weights at topk_weights[t·k ...].
struct routing {
    std::size_t tokens = 0, experts = 0, k = 0;
    std::vector<std::int32_t> topk_ids;
    std::vector<float> topk_weights;
    /// Assignments per expert (before any capacity limit).
    std::vector<std::int32_t> tokens_per_expert;
    /// With router_config::losses: the Switch/GShard load-balancing loss E · Σ_e f_e · P_e, where f_e
    /// is expert e's share of the T·k assignments and P_e the mean over tokens of e's normalised
    /// score (softmax probability, or sigmoid score divided by the token's sum of them), and the
    /// router z-loss, the mean over tokens of logsumexp(logits)². Unscaled: the coefficients are the
    /// caller's. 0 without losses.
    double load_balancing_loss = 0, z_loss = 0;
};

} // namespace lacuna::moe

namespace lacuna::detail {

inline void check_router_config(const char* where, std::size_t experts, const moe::router_config& cfg) {
    if (experts == 0) fail<shape_error>(where, ": the logits have no experts (0 columns)");
    if (cfg.k == 0 || cfg.k > experts)
        fail(where, ": k = ", cfg.k, " must be between 1 and the number of experts, ", experts);
    if (cfg.n_group == 0 || experts % cfg.n_group != 0)
        fail(where, ": n_group = ", cfg.n_group, " must divide the number of experts, ", experts);
    if (cfg.n_group > 1) {
        const std::size_t size = experts / cfg.n_group;
        if (size < 2)
            fail(where, ": groups of ", size, " expert; a group scores the sum of its two best, so it needs at least 2");
        if (cfg.topk_group == 0 || cfg.topk_group > cfg.n_group)
            fail(where, ": topk_group = ", cfg.topk_group, " must be between 1 and n_group = ", cfg.n_group);
        if (cfg.k > cfg.topk_group * size)
            fail(where, ": k = ", cfg.k, " exceeds the ", cfg.topk_group * size, " experts of the ", cfg.topk_group,
                 " kept groups");
    }
    if (!cfg.correction_bias.empty()) {
        check_size(where, "correction_bias", cfg.correction_bias.size(), experts, "one per expert");
        for (std::size_t e = 0; e < experts; ++e)
            if (!std::isfinite(cfg.correction_bias[e]))
                fail(where, ": correction_bias[", e, "] = ", cfg.correction_bias[e], " is not finite");
    }
    if (!std::isfinite(cfg.routed_scaling_factor))
        fail(where, ": routed_scaling_factor = ", cfg.routed_scaling_factor, " is not finite");
}

// Throws if token t's logits (E of them at row) hold NaN or +inf, or are all -inf (which softmax
// cannot score).
inline void check_logits(const char* where, const float* row, std::size_t experts, std::size_t t) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    for (std::size_t e = 0; e < experts; ++e)
        if (std::isnan(row[e]) || row[e] == inf)
            fail(where, ": the logit of token ", t, " for expert ", e, " is ", row[e], "; logits must be finite or -inf");
    if (std::all_of(row, row + experts, [](float x) { return x == -inf; }))
        fail(where, ": every logit of token ", t, " is -inf; softmax routing needs at least one finite logit");
}

} // namespace lacuna::detail

namespace lacuna::moe {

/// Routes every token to k experts: logits [T, E] (row-major float, rows may be strided) → scores
/// (softmax or sigmoid, in float) → optional group pruning → top-k by arg-max passes on score +
/// correction_bias → weights from the unbiased scores, optionally renormalised, times
/// routed_scaling_factor. O(T · E · k) work, tokens split over threads; every result, the losses
/// included, is the same for any thread count. Throws lacuna::error for a config that cannot route
/// (k outside [1, E], n_group not dividing E, groups of one expert, k above the kept groups' experts,
/// a non-finite bias or factor), shape_error for a wrong bias length, and lacuna::error naming the
/// token for NaN or +inf logits (or, with softmax, a token whose logits are all -inf): NaN never
/// routes silently.
inline routing route(matrix_view<const float> logits, const router_config& cfg = {}) {
    const char* where = "lacuna::moe::route";
    const std::size_t T = logits.rows(), E = logits.cols();
    detail::check_router_config(where, E, cfg);
    routing r;
    r.tokens = T, r.experts = E, r.k = cfg.k;
    r.topk_ids.resize(T * cfg.k);
    r.topk_weights.resize(T * cfg.k);
    r.tokens_per_expert.assign(E, 0);
    if (T == 0) return r;
    const std::size_t blocks = (T + kernels::router_block - 1) / kernels::router_block;
    std::vector<double> stats(cfg.losses ? blocks * (E + 1) : 0, 0.0);
    const kernels::router_args args{logits.data(), logits.stride(), E, cfg.k, cfg.scoring,
                                    cfg.correction_bias.empty() ? nullptr : cfg.correction_bias.data(),
                                    cfg.n_group, cfg.n_group > 1 ? cfg.topk_group : 1, cfg.renormalize,
                                    cfg.routed_scaling_factor, r.topk_ids.data(), r.topk_weights.data(),
                                    cfg.losses ? stats.data() : nullptr};
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), blocks);
    parallel_for(parts, [&](std::size_t p) {
        std::vector<float> workspace(kernels::router_workspace(args));
        const std::size_t t0 = blocks * p / parts * kernels::router_block;
        const std::size_t t1 = std::min(T, blocks * (p + 1) / parts * kernels::router_block);
        detail::dispatch<kernels::route_topk>(&args, workspace.data(), t0, t1);
    });
    for (std::size_t t = 0; t < T; ++t)
        if (r.topk_ids[t * cfg.k] < 0) detail::check_logits(where, logits.data() + t * logits.stride(), E, t);
    for (std::int32_t e : r.topk_ids) ++r.tokens_per_expert[std::size_t(e)];
    if (cfg.losses) {
        double lb = 0, z = 0;
        for (std::size_t e = 0; e < E; ++e) {
            double p = 0;
            for (std::size_t b = 0; b < blocks; ++b) p += stats[b * (E + 1) + e];
            lb += double(r.tokens_per_expert[e]) / double(T * cfg.k) * (p / double(T));
        }
        for (std::size_t b = 0; b < blocks; ++b) z += stats[b * (E + 1) + E];
        r.load_balancing_loss = double(E) * lb;
        r.z_loss = z / double(T);
    }
    return r;
}

/// The result of expert_choice(): expert e takes the tokens at token_ids[e·capacity ...] (ascending)
/// with the weights at weights[e·capacity ...].
struct expert_choice_routing {
    std::size_t tokens = 0, experts = 0, capacity = 0;
    std::vector<std::int32_t> token_ids;
    std::vector<float> weights;
};

/// Expert-choice routing (Zhou et al., 2022): scores are the softmax over experts of each token's
/// logits; each expert takes the `capacity` tokens with its highest scores (ties to the lower
/// token), weighted by those scores. A token may go to several experts or none. O(T · E · log T)
/// work, on one thread. Throws lacuna::error if capacity exceeds the token count or a logit is NaN or +inf (or a
/// token's logits are all -inf).
inline expert_choice_routing expert_choice(matrix_view<const float> logits, std::size_t capacity) {
    const char* where = "lacuna::moe::expert_choice";
    const std::size_t T = logits.rows(), E = logits.cols();
    if (E == 0) detail::fail<shape_error>(where, ": the logits have no experts (0 columns)");
    if (capacity > T) detail::fail(where, ": capacity ", capacity, " exceeds the ", T, " tokens");
    std::vector<float> score(T * E);
    for (std::size_t t = 0; t < T; ++t) {
        const float* row = logits.data() + t * logits.stride();
        detail::check_logits(where, row, E, t);
        detail::run<&detail::kernel_table::softmax_f32>(row, static_cast<const bool*>(nullptr), score.data() + t * E, E);
    }
    expert_choice_routing r{T, E, capacity, std::vector<std::int32_t>(E * capacity), std::vector<float>(E * capacity)};
    std::vector<std::int32_t> order(T);
    for (std::size_t e = 0; e < E; ++e) {
        std::iota(order.begin(), order.end(), 0);
        const auto better = [&](std::int32_t a, std::int32_t b) {
            const float sa = score[std::size_t(a) * E + e], sb = score[std::size_t(b) * E + e];
            return sa > sb || (sa == sb && a < b);
        };
        std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(capacity), order.end(), better);
        std::sort(order.begin(), order.begin() + std::ptrdiff_t(capacity));
        for (std::size_t c = 0; c < capacity; ++c) {
            r.token_ids[e * capacity + c] = order[c];
            r.weights[e * capacity + c] = score[std::size_t(order[c]) * E + e];
        }
    }
    return r;
}

} // namespace lacuna::moe
