// MoE benchmarks: the whole layer (router GEMM, routing, permutation, SwiGLU experts, combine) with
// dense float, bfloat16 and 2:4 expert weights against the loop an engine writes by hand around
// OpenBLAS sgemm; the routing and permutation alone; the grouped router against std::partial_sort.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/moe.hpp"
#include "lacuna/primitives.hpp"
#include "lacuna/reference/moe.hpp"
#include "support/bench_main.hpp"

namespace {

using lacuna::bfloat16;
using lacuna::matrix_view;
using lacuna::bench::add_timed;
using lacuna::bench::timed_case;
using buffer = lacuna::aligned_buffer<float>;
namespace moe = lacuna::moe;

struct shape {
    std::size_t tokens, hidden, ffn, experts, k;
    bool grouped; // DeepSeek-V3 routing: sigmoid, 8 groups, 4 kept, correction bias

    std::string name() const {
        std::string out = "T"; // appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "T" + string
        out += std::to_string(tokens) + "_E" + std::to_string(experts) + "k" + std::to_string(k) + (grouped ? "g" : "");
        if (hidden) out += "_H" + std::to_string(hidden) + "F" + std::to_string(ffn);
        return out;
    }
    std::string weights_name() const { return name().substr(name().find('_')); }
};

// Fills with uniform values in [-scale, scale) from a fixed seed, fast enough for gigabytes.
void fill(float* p, std::size_t n, float scale, std::uint64_t seed) {
    std::uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (std::size_t i = 0; i < n; ++i) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = scale * (float(s >> 40) * (2.f / 16777216.f) - 1.f);
    }
}

// The experts of a shape (shared by every token count): float weights, and the bfloat16 and 2:4
// copies made on first use.
struct expert_store {
    std::size_t E, H, F;
    buffer gate, up, down, router, bias;
    lacuna::aligned_buffer<bfloat16> gate_b, up_b, down_b;
    std::vector<matrix_view<const float>> gate_v, up_v, down_v;
    std::vector<matrix_view<const bfloat16>> gate_bv, up_bv, down_bv;
    std::vector<lacuna::nm<float, 2, 4>> gate_s, up_s, down_s;

    moe::layer_weights<matrix_view<const float>> dense() { return {{router.data(), E, H}, {gate_v, up_v, down_v}}; }
    moe::layer_weights<matrix_view<const bfloat16>> bf16() {
        if (gate_bv.empty()) {
            const std::size_t n = E * F * H;
            for (auto [from, to] : {std::pair{&gate, &gate_b}, std::pair{&up, &up_b}, std::pair{&down, &down_b}}) {
                *to = lacuna::aligned_buffer<bfloat16>(n, lacuna::aligned_buffer<bfloat16>::uninitialized);
                lacuna::convert(std::span<const float>(from->data(), n), std::span<bfloat16>(to->data(), n));
            }
            gate_bv = moe::dense_experts<bfloat16>(gate_b, E, F, H);
            up_bv = moe::dense_experts<bfloat16>(up_b, E, F, H);
            down_bv = moe::dense_experts<bfloat16>(down_b, E, H, F);
        }
        return {{router.data(), E, H}, {gate_bv, up_bv, down_bv}};
    }
    moe::layer_weights<lacuna::nm<float, 2, 4>> sparse() {
        for (std::size_t e = gate_s.size(); e < E; ++e) {
            gate_s.push_back(lacuna::nm<float, 2, 4>::from_dense(gate_v[e]));
            up_s.push_back(lacuna::nm<float, 2, 4>::from_dense(up_v[e]));
            down_s.push_back(lacuna::nm<float, 2, 4>::from_dense(down_v[e]));
        }
        return {{router.data(), E, H}, {gate_s, up_s, down_s}};
    }
};

// One shape's experts at a time (the cases of a shape run one after another): the largest shapes
// take gigabytes.
expert_store& experts_for(const shape& s) {
    static std::string key;
    static std::unique_ptr<expert_store> p;
    if (!p || key != s.weights_name()) {
        p.reset();
        key = s.weights_name();
        p = std::make_unique<expert_store>();
        p->E = s.experts, p->H = s.hidden, p->F = s.ffn;
        const std::size_t n = s.experts * s.ffn * s.hidden;
        std::uint64_t seed = 1;
        for (auto* w : {&p->gate, &p->up, &p->down}) {
            *w = buffer(n, buffer::uninitialized);
            fill(w->data(), n, 1.f / std::sqrt(float(s.hidden)), seed++);
        }
        p->router = buffer(s.experts * s.hidden, buffer::uninitialized);
        fill(p->router.data(), p->router.size(), 1.f / std::sqrt(float(s.hidden)), seed++);
        p->bias = buffer(s.experts, buffer::uninitialized);
        fill(p->bias.data(), s.experts, 0.1f, seed++);
        p->gate_v = moe::dense_experts<float>(p->gate, s.experts, s.ffn, s.hidden);
        p->up_v = moe::dense_experts<float>(p->up, s.experts, s.ffn, s.hidden);
        p->down_v = moe::dense_experts<float>(p->down, s.experts, s.hidden, s.ffn);
    }
    return *p;
}

moe::layer_config config_for(const shape& s, const expert_store& w) {
    moe::layer_config cfg;
    cfg.router.k = s.k;
    if (s.grouped) {
        cfg.router.scoring = moe::scoring::sigmoid;
        cfg.router.n_group = 8, cfg.router.topk_group = 4;
        cfg.router.correction_bias = std::span<const float>(w.bias.data(), s.experts);
        cfg.router.renormalize = true;
        cfg.router.routed_scaling_factor = 2.5f;
    }
    return cfg;
}

// The tokens of a case and its output.
struct layer_case {
    shape s;
    expert_store* w;
    moe::layer_config cfg;
    buffer x, y;
    std::size_t experts_used; // distinct experts the tokens reach: their weights are what T = 1 streams
};

layer_case& case_for(const shape& s) {
    static std::unique_ptr<layer_case> c;
    const bool fresh = !c || c->s.name() != s.name();
    if (fresh) c = std::make_unique<layer_case>();
    // The store may have been rebuilt for another shape in between: point at the current one.
    c->s = s, c->w = &experts_for(s), c->cfg = config_for(s, *c->w);
    if (fresh) {
        c->x = buffer(s.tokens * s.hidden, buffer::uninitialized);
        fill(c->x.data(), c->x.size(), 1.f, 99);
        c->y = buffer(s.tokens * s.hidden);
        const auto r = moe::moe_layer(matrix_view<const float>(c->x.data(), s.tokens, s.hidden), c->w->dense(),
                                      matrix_view<float>(c->y.data(), s.tokens, s.hidden), c->cfg);
        c->experts_used = std::size_t(std::count_if(r.tokens_per_expert.begin(), r.tokens_per_expert.end(), [](auto n) { return n > 0; }));
    }
    return *c;
}

// The router an engine writes by hand: scores, then std::partial_sort for the groups and the top-k.
void partial_sort_route(const float* logits, std::size_t T, std::size_t E, const moe::router_config& cfg, std::int32_t* ids,
                        float* weights) {
    std::vector<float> score(E), key(E), group_score(cfg.n_group);
    std::vector<std::int32_t> order(std::max(E, cfg.n_group));
    for (std::size_t t = 0; t < T; ++t) {
        const float* l = logits + t * E;
        if (cfg.scoring == moe::scoring::sigmoid) {
            for (std::size_t e = 0; e < E; ++e) score[e] = 1.f / (1.f + std::exp(-l[e]));
        } else {
            const float m = *std::max_element(l, l + E);
            float sum = 0;
            for (std::size_t e = 0; e < E; ++e) sum += score[e] = std::exp(l[e] - m);
            for (float& v : score) v /= sum;
        }
        for (std::size_t e = 0; e < E; ++e) key[e] = score[e] + (cfg.correction_bias.empty() ? 0.f : cfg.correction_bias[e]);
        auto better = [&](const std::vector<float>& v) {
            return [&v](std::int32_t a, std::int32_t b) { return v[std::size_t(a)] > v[std::size_t(b)] || (v[std::size_t(a)] == v[std::size_t(b)] && a < b); };
        };
        if (cfg.n_group > 1) {
            const std::size_t size = E / cfg.n_group;
            for (std::size_t g = 0; g < cfg.n_group; ++g) {
                std::vector<float> top(key.begin() + std::ptrdiff_t(g * size), key.begin() + std::ptrdiff_t((g + 1) * size));
                std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<>());
                group_score[g] = top[0] + top[1];
            }
            std::iota(order.begin(), order.begin() + std::ptrdiff_t(cfg.n_group), 0);
            std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(cfg.topk_group), order.begin() + std::ptrdiff_t(cfg.n_group),
                              better(group_score));
            std::vector<char> kept(cfg.n_group, 0);
            for (std::size_t g = 0; g < cfg.topk_group; ++g) kept[std::size_t(order[g])] = 1;
            for (std::size_t e = 0; e < E; ++e)
                if (!kept[e / size]) key[e] = -INFINITY;
        }
        std::iota(order.begin(), order.begin() + std::ptrdiff_t(E), 0);
        std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(cfg.k), order.begin() + std::ptrdiff_t(E), better(key));
        float sum = 0;
        for (std::size_t j = 0; j < cfg.k; ++j) sum += score[std::size_t(order[j])];
        for (std::size_t j = 0; j < cfg.k; ++j) {
            ids[t * cfg.k + j] = order[j];
            weights[t * cfg.k + j] = score[std::size_t(order[j])] / (cfg.renormalize ? sum : 1.f) * cfg.routed_scaling_factor;
        }
    }
}

#if LACUNA_BENCH_OPENBLAS
// The layer as engines write it by hand: router sgemm, partial_sort routing, then per expert:
// gather its tokens, gate and up with sgemm, SiLU times up, down with sgemm, scatter-add weighted.
void handwritten_layer(layer_case& c) {
    const shape& s = c.s;
    const int H = int(s.hidden), F = int(s.ffn);
    static buffer logits, xs, g, u, ys;
    static std::vector<std::int32_t> ids;
    static std::vector<float> weights;
    auto grow = [](buffer& b, std::size_t n) {
        if (b.size() < n) b = buffer(n, buffer::uninitialized);
    };
    grow(logits, s.tokens * s.experts);
    grow(xs, s.tokens * s.hidden), grow(ys, s.tokens * s.hidden);
    grow(g, s.tokens * s.ffn), grow(u, s.tokens * s.ffn);
    ids.resize(s.tokens * s.k), weights.resize(s.tokens * s.k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.tokens), int(s.experts), H, 1.f, c.x.data(), H, c.w->router.data(), H,
                0.f, logits.data(), int(s.experts));
    partial_sort_route(logits.data(), s.tokens, s.experts, c.cfg.router, ids.data(), weights.data());
    std::fill(c.y.begin(), c.y.end(), 0.f);
    std::vector<std::size_t> rows;
    for (std::size_t e = 0; e < s.experts; ++e) {
        rows.clear();
        for (std::size_t a = 0; a < ids.size(); ++a)
            if (std::size_t(ids[a]) == e) rows.push_back(a);
        if (rows.empty()) continue;
        const int n = int(rows.size());
        for (std::size_t r = 0; r < rows.size(); ++r)
            std::copy_n(c.x.data() + rows[r] / s.k * s.hidden, s.hidden, xs.data() + r * s.hidden);
        const std::size_t mat = s.ffn * s.hidden;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, F, H, 1.f, xs.data(), H, c.w->gate.data() + e * mat, H, 0.f, g.data(), F);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, F, H, 1.f, xs.data(), H, c.w->up.data() + e * mat, H, 0.f, u.data(), F);
        for (std::size_t i = 0; i < rows.size() * s.ffn; ++i) u[i] *= g[i] / (1.f + std::exp(-g[i]));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, F, 1.f, u.data(), F, c.w->down.data() + e * mat, F, 0.f, ys.data(), H);
        for (std::size_t r = 0; r < rows.size(); ++r)
            cblas_saxpy(H, weights[rows[r]], ys.data() + r * s.hidden, 1, c.y.data() + rows[r] / s.k * s.hidden, 1);
    }
}
#endif

// Routing, permutation and combine without the experts: what the layer spends outside its GEMMs.
void overhead_only(layer_case& c) {
    const shape& s = c.s;
    static buffer logits, sorted;
    if (logits.size() < s.tokens * s.experts) logits = buffer(s.tokens * s.experts, buffer::uninitialized);
    const matrix_view<const float> x(c.x.data(), s.tokens, s.hidden);
    lacuna::linear(x, c.w->dense().router, matrix_view<float>(logits.data(), s.tokens, s.experts));
    const auto r = moe::route(matrix_view<const float>(logits.data(), s.tokens, s.experts), c.cfg.router);
    const auto d = moe::plan(r, c.cfg.plan);
    if (sorted.size() < d.rows() * s.hidden) sorted = buffer(d.rows() * s.hidden, buffer::uninitialized);
    moe::gather(x, d, matrix_view<float>(sorted.data(), d.rows(), s.hidden));
    moe::combine(matrix_view<const float>(sorted.data(), d.rows(), s.hidden), d, matrix_view<float>(c.y.data(), s.tokens, s.hidden));
}

void add_layer(const shape& s, bool two_threads, bool reference) {
    const std::string op = "layer", size = s.name();
    const double flops = 6.0 * double(s.tokens * s.k) * double(s.hidden) * double(s.ffn);
    // bytes: what one expert's three matrices occupy in the weights an impl reads.
    auto add = [&](const std::string& impl, int threads, std::function<double(expert_store&)> bytes,
                   std::function<void(layer_case&)> run) {
        add_timed(op + "/" + impl + "/" + size, threads, [=] {
            layer_case& c = case_for(s);
            return timed_case{[&c, run] { run(c); }, flops, double(c.experts_used) * bytes(*c.w)};
        });
    };
    auto layer = [](auto weights) {
        return [weights](layer_case& c) {
            moe::moe_layer(matrix_view<const float>(c.x.data(), c.s.tokens, c.s.hidden), (c.w->*weights)(),
                           matrix_view<float>(c.y.data(), c.s.tokens, c.s.hidden), c.cfg);
        };
    };
    auto dense_bytes = [](double value_bytes) {
        return [value_bytes](expert_store& w) { return 3.0 * double(w.H * w.F) * value_bytes; };
    };
    const auto sparse_bytes = [](expert_store& w) {
        const auto s = w.sparse();
        return double(s.routed.gate[0].bytes() + s.routed.up[0].bytes() + s.routed.down[0].bytes());
    };
    for (int threads : {1, 2}) {
        if (threads == 2 && !two_threads) continue;
        const std::string suffix = threads == 1 ? "" : ".2t";
        add("lacuna" + suffix, threads, dense_bytes(4), layer(&expert_store::dense));
        add("lacuna_bf16" + suffix, threads, dense_bytes(2), layer(&expert_store::bf16));
        add("lacuna_2:4" + suffix, threads, sparse_bytes, layer(&expert_store::sparse));
#if LACUNA_BENCH_OPENBLAS
        add("openblas" + suffix, threads, dense_bytes(4), handwritten_layer);
#endif
    }
    add("overhead", 1, dense_bytes(0), overhead_only);
    if (reference)
        add("ref", 1, dense_bytes(4), [](layer_case& c) {
            const auto w = c.w->dense();
            std::vector<float> logits(c.s.tokens * c.s.experts);
            lacuna::linear(matrix_view<const float>(c.x.data(), c.s.tokens, c.s.hidden), w.router,
                           matrix_view<float>(logits.data(), c.s.tokens, c.s.experts));
            const auto routed = moe::route(matrix_view<const float>(logits.data(), c.s.tokens, c.s.experts), c.cfg.router);
            const auto y = lacuna::ref::moe_layer(matrix_view<const float>(c.x.data(), c.s.tokens, c.s.hidden), w, routed, {}, c.cfg.act);
            benchmark::DoNotOptimize(y.data());
        });
}

// The layer's steps one at a time (dense float experts, one thread), for the plot of where its time
// goes: each case runs every step once while it prepares, then times its own.
struct layer_steps {
    buffer logits, x_sorted, y_sorted;
    moe::routing r;
    moe::dispatch d;

    void router(layer_case& c) {
        const shape& s = c.s;
        lacuna::linear(matrix_view<const float>(c.x.data(), s.tokens, s.hidden), c.w->dense().router,
                       matrix_view<float>(logits.data(), s.tokens, s.experts));
        r = moe::route(matrix_view<const float>(logits.data(), s.tokens, s.experts), c.cfg.router);
    }
    void permute(layer_case& c) {
        d = moe::plan(r, c.cfg.plan);
        if (x_sorted.size() < d.rows() * c.s.hidden) {
            x_sorted = buffer(d.rows() * c.s.hidden);
            y_sorted = buffer(d.rows() * c.s.hidden);
        }
        moe::gather(matrix_view<const float>(c.x.data(), c.s.tokens, c.s.hidden), d, sorted_view(x_sorted, c));
    }
    void experts(layer_case& c) { moe::experts(sorted_view(x_sorted, c), d, c.w->dense().routed, sorted_view(y_sorted, c), {c.cfg.act}); }
    void combine(layer_case& c) {
        moe::combine(sorted_view(y_sorted, c), d, matrix_view<float>(c.y.data(), c.s.tokens, c.s.hidden));
    }
    matrix_view<float> sorted_view(buffer& b, const layer_case& c) const { return {b.data(), d.rows(), c.s.hidden}; }
};

void add_layer_steps(const shape& s) {
    using step = void (layer_steps::*)(layer_case&);
    const std::pair<const char*, step> steps[] = {
        {"router", &layer_steps::router}, {"permute", &layer_steps::permute}, {"experts", &layer_steps::experts}, {"combine", &layer_steps::combine}};
    for (const auto& [name, run] : steps)
        add_timed(std::string("layer_steps/") + name + "/" + s.name(), 1, [s, run = run] {
            layer_case& c = case_for(s);
            auto st = std::make_shared<layer_steps>();
            st->logits = buffer(s.tokens * s.experts);
            for (step each : {&layer_steps::router, &layer_steps::permute, &layer_steps::experts, &layer_steps::combine}) ((*st).*each)(c);
            return timed_case{[&c, st, run] { ((*st).*run)(c); }, 0, 0};
        });
}

// The router alone on precomputed logits.
void add_router(std::size_t tokens, std::size_t experts, std::size_t k, bool grouped) {
    const shape s{tokens, 0, 0, experts, k, grouped};
    struct router_case {
        buffer logits, bias;
        std::vector<std::int32_t> ids;
        std::vector<float> weights;
        moe::router_config cfg;
    };
    auto prepare = [s] {
        static std::map<std::string, std::unique_ptr<router_case>> cache;
        auto& c = cache[s.name()];
        if (!c) {
            c = std::make_unique<router_case>();
            c->logits = buffer(s.tokens * s.experts, buffer::uninitialized);
            fill(c->logits.data(), c->logits.size(), 4.f, 5);
            c->bias = buffer(s.experts, buffer::uninitialized);
            fill(c->bias.data(), s.experts, 0.1f, 6);
            c->ids.resize(s.tokens * s.k), c->weights.resize(s.tokens * s.k);
            c->cfg.k = s.k;
            if (s.grouped) {
                c->cfg.scoring = moe::scoring::sigmoid;
                c->cfg.n_group = 8, c->cfg.topk_group = 4, c->cfg.renormalize = true;
                c->cfg.correction_bias = std::span<const float>(c->bias.data(), s.experts);
            }
        }
        return c.get();
    };
    const std::string size = s.name();
    const double bytes = double(tokens * experts) * sizeof(float);
    add_timed("router/lacuna/" + size, 1, [=] {
        router_case* c = prepare();
        return timed_case{[c, s] {
                              const auto r = moe::route(matrix_view<const float>(c->logits.data(), s.tokens, s.experts), c->cfg);
                              benchmark::DoNotOptimize(r.topk_ids.data());
                          },
                          0, bytes};
    });
    add_timed("router/partial_sort/" + size, 1, [=] {
        router_case* c = prepare();
        return timed_case{[c, s] { partial_sort_route(c->logits.data(), s.tokens, s.experts, c->cfg, c->ids.data(), c->weights.data()); },
                          0, bytes};
    });
}

void register_cases() {
    const bool full = lacuna::bench::full_run();
    add_router(4096, 256, 8, true);
    add_router(4096, 64, 8, false);
    std::vector<std::size_t> token_counts{1, 16, 512};
    if (full) token_counts.push_back(4096);
    for (std::size_t t : token_counts) {
        add_layer({t, 1024, 2048, 64, 8, false}, t == 512, t == 1);
        add_layer_steps({t, 1024, 2048, 64, 8, false});
    }
    add_layer({512, 1024, 1408, 8, 2, false}, false, false);
    if (full)
        for (std::size_t t : {std::size_t(1), std::size_t(512)}) {
            add_layer({t, 2048, 1408, 256, 8, true}, false, false);
            add_layer({t, 2048, 2048, 64, 8, false}, false, false);
        }
}

} // namespace

int main(int argc, char** argv) {
#if LACUNA_BENCH_OPENBLAS
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
    return lacuna::bench::run(argc, argv, register_cases, {"ref", "openblas", "partial_sort", "lacuna"}, {"GFLOP/s", "GB/s"});
}
