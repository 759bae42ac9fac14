// MoE: routing on hand-written cases and on random logits against the brute-force reference,
// plan/gather/combine round trips, capacity and expert choice, and the whole layer against the
// reference with dense and sparse expert weights, every arch, 1 and 2 threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/moe.hpp"
#include "lacuna/reference/moe.hpp"
#include "support/arch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::matrix_view;
using lacuna::test::poisoned;
using lacuna::test::random_vector;
using lacuna::test::rel_error;
namespace moe = lacuna::moe;

namespace {

using ids = std::vector<std::int32_t>;

moe::routing route_rows(const std::vector<float>& logits, std::size_t E, const moe::router_config& cfg) {
    return moe::route(matrix_view<const float>(logits, logits.size() / E, E), cfg);
}

// Checks a routing against the reference token by token. Float scores may order two experts (or two
// groups) differently from double ones when their scores are within rounding: such a token must show
// that near-tie, and such tokens must be rare.
void check_routing(const std::vector<float>& logits, std::size_t E, const moe::router_config& cfg, const moe::routing& r) {
    const std::size_t T = logits.size() / E, k = cfg.k;
    constexpr double tie = 1e-6;
    std::size_t near_ties = 0;
    std::vector<lacuna::ref::routed_token> refs;
    for (std::size_t t = 0; t < T; ++t) {
        INFO("token " << t);
        const auto ref = lacuna::ref::route_token(&logits[t * E], E, cfg);
        refs.push_back(ref);
        const ids got(r.topk_ids.begin() + std::ptrdiff_t(t * k), r.topk_ids.begin() + std::ptrdiff_t((t + 1) * k));
        if (got != ref.ids) {
            ++near_ties;
            bool tie_found = false;
            if (cfg.n_group > 1) { // the last kept group and the first dropped one
                std::vector<double> g = ref.group_score;
                std::sort(g.rbegin(), g.rend());
                tie_found = cfg.topk_group < cfg.n_group && g[cfg.topk_group - 1] - g[cfg.topk_group] <= tie;
            }
            for (std::size_t j = 0; j < k && !tie_found; ++j)
                if (got[j] != ref.ids[j]) {
                    CHECK(std::abs(ref.key[std::size_t(got[j])] - ref.key[std::size_t(ref.ids[j])]) <= tie);
                    tie_found = true;
                }
            CHECK(tie_found);
            continue;
        }
        for (std::size_t j = 0; j < k; ++j)
            CHECK(std::abs(double(r.topk_weights[t * k + j]) - ref.weights[j]) <= 2e-6 * std::max(1.0, std::abs(ref.weights[j])));
    }
    CHECK(near_ties <= std::max<std::size_t>(1, T / 100));
    std::vector<std::int32_t> load(E, 0);
    for (std::int32_t e : r.topk_ids) ++load[std::size_t(e)];
    CHECK(r.tokens_per_expert == load);
    if (cfg.losses && T > 0) {
        const auto [lb, z] = lacuna::ref::router_losses(refs, E, k, cfg.scoring);
        CHECK(std::abs(r.load_balancing_loss - lb) <= 1e-5 * std::max(1.0, lb) + double(near_ties) / double(T * k) * E);
        CHECK(std::abs(r.z_loss - z) <= 1e-5 * std::max(1.0, z));
    }
}

} // namespace

TEST_CASE("route: ties go to the lower expert, weights renormalised and scaled", "[moe][route]") {
    LACUNA_FOR_EACH_ARCH();
    // Token 0: experts 1 and 3 tie for first, 0 and 2 for third. Token 1: all equal.
    const std::vector<float> logits{0.5f, 2.f, 0.5f, 2.f, -1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
    moe::router_config cfg;
    cfg.k = 3;
    const auto r = route_rows(logits, 5, cfg);
    CHECK(r.topk_ids == ids{1, 3, 0, 0, 1, 2});
    const float e2 = std::exp(2.f), e05 = std::exp(0.5f), total = 2 * e2 + 2 * e05 + std::exp(-1.f);
    CHECK(r.topk_weights[0] == Approx(e2 / total).epsilon(1e-6));
    CHECK(r.topk_weights[2] == Approx(e05 / total).epsilon(1e-6));
    CHECK(r.topk_weights[3] == Approx(0.2f).epsilon(1e-6));
    CHECK(r.tokens_per_expert == ids{2, 2, 1, 1, 0});
    cfg.renormalize = true;
    cfg.routed_scaling_factor = 2.5f;
    const auto n = route_rows(logits, 5, cfg);
    CHECK(n.topk_ids == r.topk_ids);
    CHECK(n.topk_weights[0] == Approx(2.5 * e2 / (2 * e2 + e05)).epsilon(1e-6));
    CHECK(n.topk_weights[3] == Approx(2.5 / 3).epsilon(1e-6));
    // k = E, one expert, -inf logits (never chosen while a finite one is left; weight 0 when forced).
    cfg = {};
    cfg.k = 4;
    const float ninf = -std::numeric_limits<float>::infinity();
    const auto all = route_rows({ninf, 3.f, ninf, 1.f}, 4, cfg);
    CHECK(all.topk_ids == ids{1, 3, 0, 2});
    CHECK(all.topk_weights[2] == 0.f);
    cfg.k = 1;
    CHECK(route_rows({7.f}, 1, cfg).topk_weights == std::vector<float>{1.f});
    // Ties across the registers of a wide row (from eight registers of keys, the search runs four
    // chains over every fourth register, then the rest): 200 experts, the largest at 197, 85, 37,
    // 21 and 5 (one lane, in registers of chains 0, 1, 2 and the rest with 16 lanes; 0 and 2 with
    // 8), the others equal; then all equal.
    std::vector<float> wide(400, 0.f);
    for (std::size_t e : {197, 85, 37, 21, 5}) wide[e] = 3.f;
    cfg.k = 8;
    CHECK(route_rows(wide, 200, cfg).topk_ids == ids{5, 21, 37, 85, 197, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("route: grouped top-k picks on biased scores and weighs with unbiased ones", "[moe][route]") {
    LACUNA_FOR_EACH_ARCH();
    // 8 experts in 4 groups of 2, sigmoid scores; the bias lifts expert 6 (score 0.27) to 1.27.
    const std::vector<float> logits{-2.f, 1.f, 0.f, -3.f, -1.f, -1.f, -1.f, 0.5f};
    const std::vector<float> bias{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f, 0.f};
    moe::router_config cfg;
    cfg.scoring = moe::scoring::sigmoid;
    cfg.k = 2;
    cfg.n_group = 4;
    cfg.topk_group = 2;
    cfg.correction_bias = bias;
    cfg.renormalize = true;
    cfg.routed_scaling_factor = 2.f;
    auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
    // Biased group scores: g0 = s(-2) + s(1) = 0.85, g1 = s(0) + s(-3) = 0.55, g2 = 2·s(-1) = 0.54,
    // g3 = s(-1) + 1 + s(0.5) = 1.89: groups 3 and 0 are kept, and their best biased scores are
    // experts 6 (1.27) and 1 (0.73). The weights come from the unbiased scores s(-1) and s(1).
    const auto r = route_rows(logits, 8, cfg);
    CHECK(r.topk_ids == ids{6, 1});
    const double w6 = sig(-1), w1 = sig(1);
    CHECK(r.topk_weights[0] == Approx(2 * w6 / (w6 + w1)).epsilon(1e-6));
    CHECK(r.topk_weights[1] == Approx(2 * w1 / (w6 + w1)).epsilon(1e-6));
    // Without the bias, group 3 scores s(-1) + s(0.5) = 0.89 and still wins, group 0 second:
    // experts 1 (0.73) and 7 (0.62).
    cfg.correction_bias = {};
    CHECK(route_rows(logits, 8, cfg).topk_ids == ids{1, 7});
}
TEST_CASE("route: renormalised weights of scores too small for a float still split right", "[moe][route]") {
    // Found by fuzz_moe: sigmoid(-512) is 0 in float, and the renormalised weight of a lone chosen
    // expert came out 0 instead of 1. Two such experts split their weight as e^(l1 - l2).
    LACUNA_FOR_EACH_ARCH();
    moe::router_config cfg;
    cfg.k = 2;
    cfg.renormalize = true;
    const double split = 1 / (1 + std::exp(-1.0)); // e^-200 / (e^-200 + e^-201)
    SECTION("sigmoid") {
        cfg.scoring = moe::scoring::sigmoid;
        // sigmoid(-90) and sigmoid(-100) are subnormal floats (a ratio good to 2% only); the second
        // token's scores are all 0 in float.
        const std::vector<float> logits{-90.f, -100.f, -200.f, -201.f, -200.f, -201.f, -300.f, -400.f};
        const moe::routing r = moe::route(matrix_view<const float>(logits.data(), 2, 4), cfg);
        CHECK(r.topk_ids == ids{0, 1, 0, 1});
        CHECK(r.topk_weights[1] == Approx(std::exp(-10.0) / (1 + std::exp(-10.0))).epsilon(1e-5));
        CHECK(r.topk_weights[2] == Approx(split).epsilon(1e-6));
        CHECK(r.topk_weights[3] == Approx(1 - split).epsilon(1e-6));
    }
    SECTION("softmax, with a bias that picks experts whose probabilities underflow") {
        const std::vector<float> bias{-10.f, 0.f, 0.f, 0.f};
        cfg.correction_bias = bias;
        const std::vector<float> logits{0.f, -200.f, -201.f, -400.f};
        const moe::routing r = moe::route(matrix_view<const float>(logits.data(), 1, 4), cfg);
        CHECK(r.topk_ids == ids{1, 2});
        CHECK(r.topk_weights[0] == Approx(split).epsilon(1e-6));
        CHECK(r.topk_weights[1] == Approx(1 - split).epsilon(1e-6));
    }
}


TEST_CASE("route matches the reference on random logits", "[moe][route]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    struct router_case {
        std::size_t T, E, k, n_group, topk_group;
        moe::scoring scoring;
        bool bias, renormalize;
    };
    for (const router_case c : {router_case{1, 8, 2, 1, 1, moe::scoring::softmax, false, false},
                                router_case{67, 8, 2, 1, 1, moe::scoring::softmax, false, true},
                                router_case{130, 60, 6, 1, 1, moe::scoring::softmax, true, false},
                                router_case{129, 64, 8, 8, 4, moe::scoring::sigmoid, true, true},
                                router_case{70, 256, 8, 8, 4, moe::scoring::sigmoid, true, true},
                                router_case{65, 17, 17, 1, 1, moe::scoring::sigmoid, false, false},
                                router_case{0, 4, 2, 1, 1, moe::scoring::softmax, false, false}}) {
        INFO(c.T << " tokens, " << c.E << " experts, k " << c.k << ", groups " << c.n_group << "/" << c.topk_group);
        const auto logits = random_vector(rng, c.T * c.E, -4.f, 4.f);
        const auto bias = random_vector(rng, c.E, -0.2f, 0.2f);
        moe::router_config cfg;
        cfg.k = c.k, cfg.scoring = c.scoring, cfg.n_group = c.n_group, cfg.topk_group = c.topk_group;
        cfg.renormalize = c.renormalize, cfg.routed_scaling_factor = c.renormalize ? 2.5f : 1.f;
        if (c.bias) cfg.correction_bias = bias;
        cfg.losses = true;
        lacuna::set_num_threads(1);
        const auto one = route_rows(logits, c.E, cfg);
        lacuna::set_num_threads(2);
        const auto two = route_rows(logits, c.E, cfg);
        lacuna::set_num_threads(0);
        CHECK(one.topk_ids == two.topk_ids);
        CHECK(lacuna::test::same_bits(one.topk_weights, two.topk_weights));
        CHECK(one.load_balancing_loss == two.load_balancing_loss);
        CHECK(one.z_loss == two.z_loss);
        check_routing(logits, c.E, cfg, one);
    }
}

TEST_CASE("route rejects bad configs and NaN logits", "[moe][route][errors]") {
    std::vector<float> logits(3 * 8, 0.f);
    moe::router_config cfg;
    cfg.k = 9;
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg), "lacuna::moe::route: k = 9 must be between 1 and the number of experts, 8");
    cfg.k = 2, cfg.n_group = 3;
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg), "lacuna::moe::route: n_group = 3 must divide the number of experts, 8");
    cfg.n_group = 8;
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg),
                      "lacuna::moe::route: groups of 1 expert; a group scores the sum of its two best, so it needs at least 2");
    cfg.n_group = 4, cfg.topk_group = 5;
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg), "lacuna::moe::route: topk_group = 5 must be between 1 and n_group = 4");
    cfg.topk_group = 1, cfg.k = 3;
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg), "lacuna::moe::route: k = 3 exceeds the 2 experts of the 1 kept groups");
    cfg = {};
    const std::vector<float> short_bias(7, 0.f);
    cfg.correction_bias = short_bias;
    CHECK_THROWS_AS(route_rows(logits, 8, cfg), lacuna::shape_error);
    cfg = {};
    logits[2 * 8 + 5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg),
                      "lacuna::moe::route: the logit of token 2 for expert 5 is nan; logits must be finite or -inf");
    logits[2 * 8 + 5] = 0.f;
    std::fill(logits.begin() + 8, logits.begin() + 16, -std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH(route_rows(logits, 8, cfg),
                      "lacuna::moe::route: every logit of token 1 is -inf; softmax routing needs at least one finite logit");
    cfg.scoring = moe::scoring::sigmoid; // sigmoid scores -inf as 0: allowed
    CHECK_NOTHROW(route_rows(logits, 8, cfg));
    logits[0] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS(route_rows(logits, 8, cfg), lacuna::error);
}

TEST_CASE("plan: counting sort by expert, capacity drops in priority order, padding", "[moe][plan]") {
    // 4 tokens, k = 2, 3 experts. Assignment ids t*2 + j.
    moe::routing r;
    r.tokens = 4, r.experts = 3, r.k = 2;
    r.topk_ids = {0, 1, 0, 2, 1, 0, 0, 1};
    r.topk_weights = {0.5f, 0.25f, 0.75f, 0.125f, 0.625f, 0.375f, 0.875f, 0.0625f};
    const auto d = moe::plan(r);
    CHECK(d.expert_offsets == ids{0, 4, 7, 8});
    CHECK(d.sorted_token_ids == ids{0, 2, 5, 6, 1, 4, 7, 3});
    CHECK(d.row_token == ids{0, 1, 2, 3, 0, 2, 3, 1});
    CHECK(d.token_offsets == ids{0, 2, 4, 6, 8});
    CHECK(d.token_rows == ids{0, 4, 1, 7, 5, 2, 3, 6});
    CHECK(d.dropped.empty());
    // Capacity ⌈0.75 · 8 / 3⌉ = 2: first choices claim first (tokens 0, 1 and 3 want expert 0: token
    // 3's is dropped), then second choices (token 2's expert 0 and token 3's expert 1 are full).
    const auto c = moe::plan(r, {0.75, 1});
    CHECK(c.dropped == ids{6, 5, 7});
    CHECK(c.expert_offsets == ids{0, 2, 4, 5});
    CHECK(c.sorted_token_ids == ids{0, 2, 1, 4, 3});
    CHECK(c.token_offsets == ids{0, 2, 4, 5, 5});
    // Padding to multiples of 4: the sentinel id is the assignment count.
    const auto p = moe::plan(r, {0, 4});
    CHECK(p.expert_offsets == ids{0, 4, 8, 12});
    CHECK(p.sorted_token_ids == ids{0, 2, 5, 6, 1, 4, 7, 8, 3, 8, 8, 8});
    CHECK(p.row_token[7] == -1);
    CHECK(p.row_weight[7] == 0.f);
    // Bad routings.
    auto bad = r;
    bad.topk_ids[3] = 3;
    CHECK_THROWS_WITH(moe::plan(bad), "lacuna::moe::plan: topk_ids[3] (token 1, choice 1) is 3, outside the 3 experts");
    bad = r;
    bad.topk_weights[1] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(moe::plan(bad), lacuna::error);
    bad = r;
    bad.topk_ids.pop_back();
    CHECK_THROWS_AS(moe::plan(bad), lacuna::shape_error);
    CHECK_THROWS_AS(moe::plan(r, {-1, 1}), lacuna::error);
    CHECK_THROWS_AS(moe::plan(r, {0, 0}), lacuna::error);
}

TEST_CASE("gather and combine round trip in a fixed order", "[moe][plan]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t T = 37, E = 6, k = 3, H = 21;
    const auto logits = random_vector(rng, T * E);
    moe::router_config cfg;
    cfg.k = k;
    const auto r = route_rows(logits, E, cfg);
    const auto x = random_vector(rng, T * H);
    for (const moe::plan_options opts : {moe::plan_options{0, 1}, moe::plan_options{0, 8}, moe::plan_options{0.6, 4}}) {
        INFO("capacity " << opts.capacity_factor << ", row multiple " << opts.row_multiple);
        const auto d = moe::plan(r, opts);
        std::vector<float> first;
        for (int threads : {1, 2}) {
            lacuna::set_num_threads(threads);
            auto xs = poisoned(d.rows() * H), y = poisoned(T * H);
            moe::gather(matrix_view<const float>(x, T, H), d, matrix_view<float>(xs, d.rows(), H));
            moe::combine(matrix_view<const float>(xs, d.rows(), H), d, matrix_view<float>(y, T, H));
            std::vector<double> expect(T * H, 0.0);
            for (std::size_t a = 0; a < T * k; ++a) {
                if (std::find(d.dropped.begin(), d.dropped.end(), std::int32_t(a)) != d.dropped.end()) continue;
                for (std::size_t i = 0; i < H; ++i) expect[a / k * H + i] += double(r.topk_weights[a]) * x[a / k * H + i];
            }
            CHECK(rel_error(y, expect) <= 1e-6);
            if (first.empty()) first = y;
            CHECK(lacuna::test::same_bits(y, first));
            // accumulate adds onto y
            moe::combine(matrix_view<const float>(xs, d.rows(), H), d, matrix_view<float>(y, T, H), {true});
            for (auto& v : expect) v *= 2;
            CHECK(rel_error(y, expect) <= 1e-6);
        }
        lacuna::set_num_threads(0);
    }
}

TEST_CASE("expert choice: each expert takes its best tokens", "[moe][plan]") {
    // 3 tokens, 2 experts; softmax over experts per token.
    const std::vector<float> logits{2.f, 0.f, 0.f, 1.f, 1.f, 1.f};
    const auto r = moe::expert_choice(matrix_view<const float>(logits, 3, 2), 2);
    // expert 0 scores: t0 0.88, t1 0.27, t2 0.5 → t0, t2; expert 1: 0.12, 0.73, 0.5 → t1, t2
    CHECK(r.token_ids == ids{0, 2, 1, 2});
    CHECK(r.weights[1] == Approx(0.5f));
    const auto d = moe::plan(r);
    CHECK(d.expert_offsets == ids{0, 2, 4});
    CHECK(d.row_token == ids{0, 2, 1, 2});
    CHECK(d.token_offsets == ids{0, 1, 2, 4});
    CHECK(d.token_rows == ids{0, 2, 1, 3});
    CHECK_THROWS_WITH(moe::expert_choice(matrix_view<const float>(logits, 3, 2), 4),
                      "lacuna::moe::expert_choice: capacity 4 exceeds the 3 tokens");
}

namespace {

// The weights of E experts in layout L (or dense views of T), F × H and H × F, and their storage.
template <class L> struct expert_set {
    std::vector<L> gate, up, down;
    moe::expert_weights<L> view() const { return {gate, up, down}; }
};

template <class L> expert_set<L> random_experts(std::mt19937_64& rng, std::size_t E, std::size_t H, std::size_t F) {
    expert_set<L> s;
    for (std::size_t e = 0; e < E; ++e) {
        s.gate.push_back(lacuna::test::random_layout<L>(rng, F, H, 0.5));
        s.up.push_back(lacuna::test::random_layout<L>(rng, F, H, 0.5));
        s.down.push_back(lacuna::test::random_layout<L>(rng, H, F, 0.5));
    }
    return s;
}

template <class L> void check_layer(std::mt19937_64& rng, const expert_set<L>& routed, const expert_set<L>& shared,
                                    std::size_t T, std::size_t H, std::size_t E, moe::layer_config cfg, float hot) {
    auto router = random_vector(rng, E * H);
    router[0] += hot; // with x[t][0] = 1, expert 0's logit is hot higher for every token
    auto x = random_vector(rng, T * H);
    for (std::size_t t = 0; t < T; ++t) x[t * H] = 1.f;
    moe::layer_weights<L> w{matrix_view<const float>(router, E, H), routed.view(), shared.view()};
    std::vector<float> first;
    moe::routing first_routing;
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        auto y = poisoned(T * H);
        const auto r = moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, T, H), cfg);
        if (first.empty()) {
            first = y, first_routing = r;
            const auto dropped = moe::plan(r, cfg.plan).dropped;
            const auto ref = lacuna::ref::moe_layer(matrix_view<const float>(x, T, H), w, r, dropped, cfg.act);
            CHECK(rel_error(y, ref) <= 2e-6);
        } else {
            CHECK(r.topk_ids == first_routing.topk_ids);
            CHECK(lacuna::test::same_bits(y, first));
        }
    }
    lacuna::set_num_threads(0);
}

} // namespace

TEMPLATE_TEST_CASE("moe_layer matches the reference for dense and sparse experts", "[moe][layer]", lacuna::csr<float>,
                   (lacuna::nm<float, 2, 4>), (lacuna::nm<bfloat16, 2, 4>), (lacuna::bsr<float, 4, 4>)) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t H = 24, F = 20, E = 6;
    const auto routed = random_experts<TestType>(rng, E, H, F), shared = random_experts<TestType>(rng, 1, H, F);
    moe::layer_config cfg;
    cfg.router.k = 2;
    for (std::size_t T : {std::size_t(1), std::size_t(3), std::size_t(40)}) {
        INFO(T << " tokens");
        check_layer(rng, routed, {}, T, H, E, cfg, 0.f);
    }
    INFO("shared expert, capacity, padding, GELU");
    cfg.plan = {1.0, 4};
    cfg.act = moe::expert_activation::gelu;
    auto gelu_routed = routed, gelu_shared = shared;
    gelu_routed.gate.clear(), gelu_shared.gate.clear();
    check_layer(rng, gelu_routed, gelu_shared, 33, H, E, cfg, 0.f);
}

TEMPLATE_TEST_CASE("moe_layer with dense expert weights, a hot expert over one chunk", "[moe][layer]", float, bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t H = 33, F = 40, E = 4;
    const auto g = random_vector<TestType>(rng, E * F * H), u = random_vector<TestType>(rng, E * F * H),
               dn = random_vector<TestType>(rng, E * H * F);
    expert_set<matrix_view<const TestType>> routed{moe::dense_experts<TestType>(g, E, F, H), moe::dense_experts<TestType>(u, E, F, H),
                                                   moe::dense_experts<TestType>(dn, E, H, F)};
    moe::layer_config cfg;
    cfg.router.k = 2;
    check_layer(rng, routed, {}, 300, H, E, cfg, 50.f); // expert 0 takes all 300 tokens: two chunks
    check_layer(rng, routed, {}, 5, H, E, cfg, 0.f);
    // About 12 rows an expert: no whole register of them, all computed as dot products.
    check_layer(rng, routed, {}, 24, H, E, cfg, 0.f);
    INFO("GELU");
    cfg.act = moe::expert_activation::gelu;
    auto gelu_routed = routed;
    gelu_routed.gate.clear();
    check_layer(rng, gelu_routed, {}, 70, H, E, cfg, 0.f);
}

TEST_CASE("experts and moe_layer reject weights that do not fit", "[moe][layer][errors]") {
    const std::size_t H = 8, F = 6, E = 2, T = 3;
    std::vector<float> wg(E * F * H, 0.1f), wd(E * H * F, 0.1f), router(E * H, 0.f), x(T * H, 1.f), y(T * H);
    const auto gate = moe::dense_experts<float>(wg, E, F, H), down = moe::dense_experts<float>(wd, E, H, F);
    moe::layer_weights<matrix_view<const float>> w{matrix_view<const float>(router, E, H), {gate, gate, down}};
    moe::layer_config cfg;
    cfg.router.k = 1;
    CHECK_NOTHROW(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, T, H), cfg));
    w.routed.down = gate; // F x H where H x F is needed
    CHECK_THROWS_WITH(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, T, H), cfg),
                      "lacuna::moe::experts: down[0] is 6 x 8, expected 8 x 6 (hidden x the rows of up[0])");
    w.routed = {gate, gate, down};
    cfg.act = moe::expert_activation::gelu;
    CHECK_THROWS_WITH(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, T, H), cfg),
                      "lacuna::moe::experts: gate has 2 elements, expected 0 (none: the GELU network has no gate)");
    cfg.act = moe::expert_activation::swiglu;
    CHECK_THROWS_WITH(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, 2, H), cfg),
                      "lacuna::moe::moe_layer: y is 2 x 8, expected 3 x 8 (as x)");
    CHECK_THROWS_AS(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(x, T, H), cfg), lacuna::aliasing_error);
    // Bad routed weights throw before the shared expert writes y.
    w.shared = {std::span(gate).first(1), std::span(gate).first(1), std::span(down).first(1)};
    w.routed.down = gate;
    std::fill(y.begin(), y.end(), 7.f);
    CHECK_THROWS_AS(moe::moe_layer(matrix_view<const float>(x, T, H), w, matrix_view<float>(y, T, H), cfg), lacuna::shape_error);
    CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 7.f; }));
    CHECK_THROWS_AS(moe::dense_experts<float>(wg, 3, F, H), lacuna::shape_error);
}
