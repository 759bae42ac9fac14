// lacuna: the reference for MoE routing and experts: brute force in double, written to be obviously
// right (scores, then a stable sort of the experts, then the weights; each token run through its
// experts one by one).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "lacuna/core/dense.hpp"
#include "lacuna/moe.hpp"

namespace lacuna::ref {

/// The reference routing of one token, with the scores selection used.
struct routed_token {
    std::vector<double> score, key;        // per expert: unbiased score, score + bias
    std::vector<double> group_score;       // per group (grouped top-k)
    std::vector<std::size_t> groups;       // the kept groups, best first
    std::vector<std::int32_t> ids;         // best first, ties to the lower id
    std::vector<double> weights;
    double lse = 0;                        // logsumexp of the logits
};

/// The renormalised weights of the chosen experts, in double and in log space: exp(log score − the
/// largest) / Σ, with log score = the logit for softmax and log sigmoid(l) = min(l, 0) − log1p(e^−|l|)
/// for sigmoid, so that scores too small for any float still split their weight right. All 0 when
/// every chosen score is 0 (logits of -inf).
inline std::vector<double> renormalized_weights(const float* logits, const std::int32_t* ids, std::size_t k, moe::scoring scoring) {
    std::vector<double> w(k);
    double top = -INFINITY;
    for (std::size_t j = 0; j < k; ++j) {
        const double l = logits[ids[j]];
        w[j] = scoring == moe::scoring::softmax ? l : std::min(l, 0.0) - std::log1p(std::exp(-std::abs(l)));
        top = std::max(top, w[j]);
    }
    double sum = 0;
    for (double& x : w) sum += x = top == -INFINITY ? 0.0 : std::exp(x - top);
    for (double& x : w) x = sum > 0 ? x / sum : 0.0;
    return w;
}

/// moe::route for one token's logits (E of them), in double.
inline routed_token route_token(const float* logits, std::size_t E, const moe::router_config& cfg) {
    routed_token r;
    double m = -INFINITY;
    for (std::size_t e = 0; e < E; ++e) m = std::max(m, double(logits[e]));
    double sum = 0;
    for (std::size_t e = 0; e < E; ++e) sum += std::exp(double(logits[e]) - m);
    r.lse = m + std::log(sum);
    for (std::size_t e = 0; e < E; ++e) {
        const double l = logits[e];
        // exp(l - m) / sum, not exp(l - lse): with logits near 1e29 the lse absorbs log(sum).
        const double s = cfg.scoring == moe::scoring::softmax ? std::exp(l - m) / sum : 1 / (1 + std::exp(-l));
        r.score.push_back(s);
        r.key.push_back(s + (cfg.correction_bias.empty() ? 0.0 : double(cfg.correction_bias[e])));
    }
    std::vector<char> candidate(E, 1);
    if (cfg.n_group > 1) {
        const std::size_t size = E / cfg.n_group;
        for (std::size_t g = 0; g < cfg.n_group; ++g) {
            std::vector<double> keys(r.key.begin() + std::ptrdiff_t(g * size), r.key.begin() + std::ptrdiff_t((g + 1) * size));
            std::sort(keys.rbegin(), keys.rend());
            r.group_score.push_back(keys[0] + keys[1]);
        }
        std::vector<std::size_t> order(cfg.n_group);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return r.group_score[a] > r.group_score[b]; });
        r.groups.assign(order.begin(), order.begin() + std::ptrdiff_t(cfg.topk_group));
        for (std::size_t e = 0; e < E; ++e)
            candidate[e] = std::find(r.groups.begin(), r.groups.end(), e / size) != r.groups.end();
    }
    std::vector<std::int32_t> order;
    for (std::size_t e = 0; e < E; ++e)
        if (candidate[e]) order.push_back(std::int32_t(e));
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return r.key[std::size_t(a)] > r.key[std::size_t(b)]; });
    r.ids.assign(order.begin(), order.begin() + std::ptrdiff_t(cfg.k));
    if (cfg.renormalize)
        r.weights = renormalized_weights(logits, r.ids.data(), cfg.k, cfg.scoring);
    else
        for (std::int32_t e : r.ids) r.weights.push_back(r.score[std::size_t(e)]);
    for (double& w : r.weights) w *= cfg.routed_scaling_factor;
    return r;
}

/// The load-balancing loss and z-loss route() reports, from the reference routing of every token.
inline std::pair<double, double> router_losses(const std::vector<routed_token>& tokens, std::size_t E, std::size_t k,
                                               moe::scoring scoring) {
    const std::size_t T = tokens.size();
    std::vector<double> share(E, 0), mean(E, 0);
    double z = 0;
    for (const routed_token& r : tokens) {
        for (std::int32_t e : r.ids) share[std::size_t(e)] += 1.0 / double(T * k);
        const double total = scoring == moe::scoring::softmax ? 1.0 : std::accumulate(r.score.begin(), r.score.end(), 0.0);
        for (std::size_t e = 0; e < E; ++e) mean[e] += r.score[e] / total / double(T);
        z += r.lse * r.lse / double(T);
    }
    double lb = 0;
    for (std::size_t e = 0; e < E; ++e) lb += share[e] * mean[e];
    return {double(E) * lb, z};
}

/// Calls f(j, value) for the stored elements of row o of a weight matrix: a sparse layout or a
/// dense view.
template <class W, class F> void for_each_weight(const W& w, std::size_t o, F&& f) {
    if constexpr (requires { w.for_each_in_row(o, f); }) w.for_each_in_row(o, f);
    else
        for (std::size_t j = 0; j < w.cols(); ++j) f(j, w(o, j));
}

/// FFN_e(x) in double for one token x of H features.
template <class W>
std::vector<double> expert_ffn(const moe::expert_weights<W>& w, std::size_t e, moe::expert_activation act, const float* x) {
    const std::size_t F = w.up[e].rows(), H = w.down[e].rows();
    auto product = [](const W& m, std::size_t o, const auto& v) {
        double s = 0;
        for_each_weight(m, o, [&](std::size_t j, const auto& value) { s += double(float(value)) * double(v[j]); });
        return s;
    };
    std::vector<double> h(F);
    for (std::size_t f = 0; f < F; ++f) {
        const double u = product(w.up[e], f, x);
        if (act == moe::expert_activation::swiglu) {
            const double g = product(w.gate[e], f, x);
            h[f] = g / (1 + std::exp(-g)) * u;
        } else {
            h[f] = 0.5 * u * (1 + std::erf(u / std::sqrt(2.0)));
        }
    }
    std::vector<double> y(H);
    for (std::size_t o = 0; o < H; ++o) y[o] = product(w.down[e], o, h);
    return y;
}

/// moe_layer's output for a given routing: every token through its chosen experts one by one
/// (weighted), plus every shared expert, in double. Assignments the dispatch dropped do not count.
template <class W>
std::vector<float> moe_layer(matrix_view<const float> x, const moe::layer_weights<W>& w, const moe::routing& r,
                             const std::vector<std::int32_t>& dropped, moe::expert_activation act) {
    const std::size_t T = x.rows(), H = x.cols();
    std::vector<float> y(T * H);
    for (std::size_t t = 0; t < T; ++t) {
        std::vector<double> sum(H, 0.0);
        for (std::size_t s = 0; s < w.shared.up.size(); ++s) {
            const auto ys = expert_ffn(w.shared, s, act, &x(t, 0));
            for (std::size_t i = 0; i < H; ++i) sum[i] += ys[i];
        }
        for (std::size_t j = 0; j < r.k; ++j) {
            const std::size_t a = t * r.k + j;
            if (std::find(dropped.begin(), dropped.end(), std::int32_t(a)) != dropped.end()) continue;
            const auto ye = expert_ffn(w.routed, std::size_t(r.topk_ids[a]), act, &x(t, 0));
            for (std::size_t i = 0; i < H; ++i) sum[i] += double(r.topk_weights[a]) * ye[i];
        }
        for (std::size_t i = 0; i < H; ++i) y[t * H + i] = float(sum[i]);
    }
    return y;
}

} // namespace lacuna::ref
