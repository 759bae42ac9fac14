// libFuzzer target for MoE routing and permutation: random configs (valid or not) and logits (any bit
// pattern, NaN and inf included) go through route, plan, gather and combine. A config or logits the
// documentation calls invalid must raise lacuna::error, and only those may; a routing must be a
// valid top-k under the double reference's scores (up to float rounding), its weights must match,
// and the dispatch must hold every kept assignment once, within capacity, with gather and combine
// agreeing with a direct sum. Anything else (another exception, a crash, a sanitizer report, a
// mismatch) is a finding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/moe.hpp"
#include "lacuna/reference/moe.hpp"
#include "support/fuzz.hpp"

namespace {

namespace moe = lacuna::moe;

using lacuna::fuzz::check;

float value(FuzzedDataProvider& in) {
    if (in.ConsumeBool()) return float(in.ConsumeIntegralInRange<int>(-64, 64)) / 8.f; // ties are common
    return lacuna::fuzz::any_float(in); // any pattern: NaN, inf, subnormal
}

// A bias or scaling factor: within ±1e6 (weights and keys of FLT_MAX's size are not a use), or now
// and then NaN or inf, which the router must reject.
float bounded(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return -std::numeric_limits<float>::infinity();
    default: {
        const float x = value(in);
        return std::isfinite(x) ? std::clamp(x, -1e6f, 1e6f) : 0.5f;
    }
    }
}

// How far apart two float-computed keys of this size may land in either order.
double slack(double key) { return 4e-6 * std::max(1.0, std::abs(key)); }

// The routing of token t is a top-k the reference's scores allow: the chosen groups and experts are
// at least as good as every one left out, up to rounding, in non-increasing order, and the weights
// are the reference's for the chosen experts.
void check_token(const lacuna::ref::routed_token& ref, const float* logits, const moe::router_config& cfg, std::size_t E,
                 const std::int32_t* ids, const float* weights) {
    const std::size_t size = E / cfg.n_group;
    std::vector<char> chosen(E, 0), group_used(cfg.n_group, 0);
    for (std::size_t j = 0; j < cfg.k; ++j) {
        check(ids[j] >= 0 && std::size_t(ids[j]) < E && !chosen[std::size_t(ids[j])]);
        chosen[std::size_t(ids[j])] = 1;
        group_used[std::size_t(ids[j]) / size] = 1;
        if (j > 0) check(ref.key[std::size_t(ids[j])] <= ref.key[std::size_t(ids[j - 1])] + slack(ref.key[std::size_t(ids[j - 1])]));
    }
    // The groups the choice used must be ones a top-topk_group selection could keep.
    // The groups used must be ones a top-topk_group choice could keep (no worse than the reference's
    // topk_group-th best, up to rounding). The candidates the chosen experts must beat: the experts
    // of the groups used and of the groups any choice keeps.
    std::vector<char> candidate(E, 1);
    if (cfg.n_group > 1) {
        std::vector<double> sorted = ref.group_score;
        std::sort(sorted.rbegin(), sorted.rend());
        const double cut = sorted[cfg.topk_group - 1];
        std::size_t used = 0;
        for (std::size_t g = 0; g < cfg.n_group; ++g)
            if (group_used[g]) check(ref.group_score[g] >= cut - slack(cut)), ++used;
        check(used <= cfg.topk_group);
        for (std::size_t e = 0; e < E; ++e) candidate[e] = group_used[e / size] || ref.group_score[e / size] > cut + slack(cut);
    }
    double worst_chosen = INFINITY;
    for (std::size_t e = 0; e < E; ++e)
        if (chosen[e]) worst_chosen = std::min(worst_chosen, ref.key[e]);
    for (std::size_t e = 0; e < E; ++e)
        if (!chosen[e] && candidate[e]) check(ref.key[e] <= worst_chosen + slack(worst_chosen) + slack(ref.key[e]));
    const std::vector<double> renormalized = lacuna::ref::renormalized_weights(logits, ids, cfg.k, cfg.scoring);
    for (std::size_t j = 0; j < cfg.k; ++j) {
        const double want = (cfg.renormalize ? renormalized[j] : ref.score[std::size_t(ids[j])]) * cfg.routed_scaling_factor;
        check(std::abs(double(weights[j]) - want) <= 1e-5 * std::max(1.0, std::abs(want)) * std::max(1.0, std::abs(double(cfg.routed_scaling_factor))));
    }
}

void check_dispatch(const moe::routing& r, const moe::plan_options& opts, const moe::dispatch& d) {
    const std::size_t n = r.tokens * r.k;
    check(d.expert_offsets.size() == r.experts + 1 && d.expert_offsets[0] == 0);
    std::vector<int> seen(n, 0);
    for (std::size_t e = 0; e < r.experts; ++e) {
        const auto begin = std::size_t(d.expert_offsets[e]), end = std::size_t(d.expert_offsets[e + 1]);
        check(begin <= end && (end - begin) % opts.row_multiple == 0);
        std::size_t kept = 0;
        std::int32_t last = -1;
        for (std::size_t row = begin; row < end; ++row) {
            const std::int32_t a = d.sorted_token_ids[row];
            if (d.row_token[row] < 0) {
                check(a == std::int32_t(n) && d.row_weight[row] == 0.f);
                continue;
            }
            check(a > last && std::size_t(a) < n && std::size_t(r.topk_ids[std::size_t(a)]) == e);
            check(d.row_token[row] == std::int32_t(std::size_t(a) / r.k) && d.row_weight[row] == r.topk_weights[std::size_t(a)]);
            last = a;
            ++seen[std::size_t(a)];
            ++kept;
        }
        if (opts.capacity_factor > 0)
            check(double(kept) <= std::ceil(opts.capacity_factor * double(n) / double(r.experts)));
    }
    for (std::int32_t a : d.dropped) ++seen[std::size_t(a)];
    for (int s : seen) check(s == 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    lacuna::fuzz::pick_arch_and_threads(in);
    const std::size_t T = in.ConsumeIntegralInRange<std::size_t>(0, 24), E = in.ConsumeIntegralInRange<std::size_t>(0, 24);
    moe::router_config cfg;
    cfg.k = in.ConsumeIntegralInRange<std::size_t>(0, E + 1);
    cfg.scoring = in.ConsumeBool() ? moe::scoring::sigmoid : moe::scoring::softmax;
    cfg.n_group = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::size_t>(0, 8) : 1;
    cfg.topk_group = in.ConsumeIntegralInRange<std::size_t>(0, 9);
    cfg.renormalize = in.ConsumeBool();
    cfg.routed_scaling_factor = in.ConsumeBool() ? 1.f : bounded(in);
    cfg.losses = in.ConsumeBool();
    std::vector<float> bias;
    if (in.ConsumeBool())
        for (std::size_t e = 0, n = in.ConsumeBool() ? E : E + 1; e < n; ++e) bias.push_back(bounded(in));
    cfg.correction_bias = bias;
    std::vector<float> logits(T * E);
    for (float& x : logits) x = value(in);

    // What the documentation calls invalid.
    const std::size_t group = cfg.n_group ? E / std::max<std::size_t>(cfg.n_group, 1) : 0;
    bool invalid = E == 0 || cfg.k == 0 || cfg.k > E || cfg.n_group == 0 || E % cfg.n_group != 0 ||
                   !std::isfinite(cfg.routed_scaling_factor) || (!bias.empty() && bias.size() != E);
    if (!invalid && cfg.n_group > 1)
        invalid = group < 2 || cfg.topk_group == 0 || cfg.topk_group > cfg.n_group || cfg.k > cfg.topk_group * group;
    for (float b : bias) invalid = invalid || (bias.size() == E && !std::isfinite(b));
    for (std::size_t t = 0; t < T && !invalid; ++t) {
        bool all_neg_inf = true;
        for (std::size_t e = 0; e < E; ++e) {
            const float x = logits[t * E + e];
            invalid = invalid || std::isnan(x) || x == std::numeric_limits<float>::infinity();
            all_neg_inf = all_neg_inf && x == -std::numeric_limits<float>::infinity();
        }
        invalid = invalid || (cfg.scoring == moe::scoring::softmax && all_neg_inf);
    }

    moe::routing r;
    try {
        r = moe::route(lacuna::matrix_view<const float>(logits.data(), T, E), cfg);
    } catch (const lacuna::error&) {
        check(invalid);
        return 0;
    }
    check(!invalid);
    if (cfg.n_group <= 1) cfg.topk_group = 1, cfg.n_group = 1;
    for (std::size_t t = 0; t < T; ++t)
        check_token(lacuna::ref::route_token(&logits[t * E], E, cfg), &logits[t * E], cfg, E, &r.topk_ids[t * cfg.k], &r.topk_weights[t * cfg.k]);

    moe::plan_options opts;
    opts.capacity_factor = in.ConsumeBool() ? 0.0 : double(in.ConsumeIntegralInRange<int>(1, 12)) / 4.0;
    opts.row_multiple = in.ConsumeIntegralInRange<std::size_t>(1, 5);
    const moe::dispatch d = moe::plan(r, opts); // valid routings plan without error
    check_dispatch(r, opts, d);

    const std::size_t H = in.ConsumeIntegralInRange<std::size_t>(1, 9);
    std::vector<float> x(T * H), xs(d.rows() * H), y(T * H);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 13) - 6) / 4.f;
    moe::gather(lacuna::matrix_view<const float>(x.data(), T, H), d, lacuna::matrix_view<float>(xs.data(), d.rows(), H));
    moe::combine(lacuna::matrix_view<const float>(xs.data(), d.rows(), H), d, lacuna::matrix_view<float>(y.data(), T, H));
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t c = 0; c < H; ++c) {
            double want = 0, size = 0;
            for (std::size_t j = 0; j < cfg.k; ++j) {
                const std::size_t a = t * cfg.k + j;
                if (std::find(d.dropped.begin(), d.dropped.end(), std::int32_t(a)) != d.dropped.end()) continue;
                want += double(r.topk_weights[a]) * x[t * H + c];
                size += std::abs(double(r.topk_weights[a]) * x[t * H + c]);
            }
            if (std::isfinite(size)) check(std::abs(double(y[t * H + c]) - want) <= 1e-5 * size + 1e-30);
        }
    return 0;
}
