// A DeepSeek-style mixture-of-experts layer on random weights: sigmoid router with a correction
// bias, grouped top-k (8 groups, 4 kept), renormalised and scaled weights, one shared expert, 64
// routed SwiGLU experts. Prints the load of each expert, the auxiliary losses, and the time of
// lacuna::moe::moe_layer against the loop an engine writes by hand (route, then per expert: gather
// its tokens, three dense linear layers, SiLU, scatter-add), with the largest difference between
// the two outputs.
//
//   moe_layer [tokens [experts]]      (default 512 tokens, 64 experts; experts a multiple of 8)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <lacuna/lacuna.hpp>

namespace {

namespace moe = lacuna::moe;
using lacuna::matrix_view;

template <class F> double best_ms(F&& f) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

std::vector<float> random_values(std::mt19937& rng, std::size_t n, float scale) {
    std::normal_distribution<float> dist(0.f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// The hand-written layer: the same routing, then every expert's tokens through three linear layers.
void by_hand(matrix_view<const float> x, const moe::layer_weights<matrix_view<const float>>& w, const moe::layer_config& cfg,
             matrix_view<float> y) {
    const std::size_t T = x.rows(), H = x.cols(), E = w.router.rows(), F = w.routed.up[0].rows(), k = cfg.router.k;
    std::vector<float> logits(T * E);
    lacuna::linear(x, w.router, matrix_view<float>(logits, T, E));
    const auto r = moe::route(matrix_view<const float>(logits, T, E), cfg.router);
    std::vector<float> xs(T * H), g(T * F), u(T * F), ys(T * H);
    auto ffn = [&](const moe::expert_weights<matrix_view<const float>>& ew, std::size_t e, std::size_t n) {
        lacuna::linear(matrix_view<const float>(xs.data(), n, H), ew.gate[e], matrix_view<float>(g.data(), n, F));
        lacuna::linear(matrix_view<const float>(xs.data(), n, H), ew.up[e], matrix_view<float>(u.data(), n, F));
        for (std::size_t i = 0; i < n * F; ++i) u[i] *= g[i] / (1.f + std::exp(-g[i]));
        lacuna::linear(matrix_view<const float>(u.data(), n, F), ew.down[e], matrix_view<float>(ys.data(), n, H));
    };
    std::copy_n(x.data(), T * H, xs.data()); // the shared expert sees every token
    ffn(w.shared, 0, T);
    std::copy_n(ys.data(), T * H, y.data());
    std::vector<std::size_t> picked;
    for (std::size_t e = 0; e < E; ++e) {
        picked.clear();
        for (std::size_t a = 0; a < T * k; ++a)
            if (std::size_t(r.topk_ids[a]) == e) picked.push_back(a);
        for (std::size_t i = 0; i < picked.size(); ++i) std::copy_n(&x(picked[i] / k, 0), H, xs.data() + i * H);
        if (picked.empty()) continue;
        ffn(w.routed, e, picked.size());
        for (std::size_t i = 0; i < picked.size(); ++i)
            for (std::size_t c = 0; c < H; ++c) y(picked[i] / k, c) += r.topk_weights[picked[i]] * ys[i * H + c];
    }
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t T = argc > 1 ? std::size_t(std::atol(argv[1])) : 512;
    const std::size_t E = argc > 2 ? std::size_t(std::atol(argv[2])) : 64, H = 1024, F = 512;
    if (E == 0 || E % 8 != 0) {
        std::fprintf(stderr, "moe_layer: the experts form 8 groups; give a positive multiple of 8\n");
        return 2;
    }
    std::mt19937 rng(42);
    const float scale = 1.f / std::sqrt(float(H));
    const auto x = random_values(rng, T * H, 1.f), router = random_values(rng, E * H, scale);
    const auto bias = random_values(rng, E, 0.05f);
    const auto gate = random_values(rng, E * F * H, scale), up = random_values(rng, E * F * H, scale),
               down = random_values(rng, E * H * F, scale);
    const auto shared_gate = random_values(rng, F * H, scale), shared_up = random_values(rng, F * H, scale),
               shared_down = random_values(rng, H * F, scale);
    const auto gate_v = moe::dense_experts<float>(gate, E, F, H), up_v = moe::dense_experts<float>(up, E, F, H),
               down_v = moe::dense_experts<float>(down, E, H, F);
    const auto sgate_v = moe::dense_experts<float>(shared_gate, 1, F, H), sup_v = moe::dense_experts<float>(shared_up, 1, F, H),
               sdown_v = moe::dense_experts<float>(shared_down, 1, H, F);
    const moe::layer_weights<matrix_view<const float>> w{
        matrix_view<const float>(router, E, H), {gate_v, up_v, down_v}, {sgate_v, sup_v, sdown_v}};

    moe::layer_config cfg;
    cfg.router.k = 6;
    cfg.router.scoring = moe::scoring::sigmoid;
    cfg.router.n_group = 8;
    cfg.router.topk_group = 4;
    cfg.router.correction_bias = bias;
    cfg.router.renormalize = true;
    cfg.router.routed_scaling_factor = 2.5f;
    cfg.router.losses = true;

    std::vector<float> y(T * H), y_hand(T * H);
    const matrix_view<const float> xv(x, T, H);
    moe::routing r;
    const double lacuna_ms = best_ms([&] { r = moe::moe_layer(xv, w, matrix_view<float>(y, T, H), cfg); });
    const double hand_ms = best_ms([&] { by_hand(xv, w, cfg, matrix_view<float>(y_hand, T, H)); });

    std::printf("MoE layer: %zu tokens, hidden %zu, %zu experts of FFN %zu (SwiGLU) + 1 shared, top-%zu in 4 of 8 groups\n", T, H,
                E, F, cfg.router.k);
    std::printf("tokens per expert:");
    for (std::size_t e = 0; e < E; ++e) std::printf("%s%d", e % 16 == 0 ? "\n  " : " ", r.tokens_per_expert[e]);
    const auto [lo, hi] = std::minmax_element(r.tokens_per_expert.begin(), r.tokens_per_expert.end());
    std::printf("\n  min %d, max %d, mean %.1f\n", *lo, *hi, double(T * cfg.router.k) / double(E));
    std::printf("load-balancing loss %.4f (1 is perfectly balanced), z-loss %.4f\n", r.load_balancing_loss, r.z_loss);
    double diff = 0, size = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        diff = std::max(diff, double(std::abs(y[i] - y_hand[i])));
        size = std::max(size, double(std::abs(y_hand[i])));
    }
    std::printf("moe_layer %.2f ms, hand-written loop %.2f ms (%.2fx); largest difference %.2e of max |y| %.2e\n", lacuna_ms,
                hand_ms, hand_ms / lacuna_ms, diff, size);
    return diff <= 1e-4 * size ? 0 : 1;
}
