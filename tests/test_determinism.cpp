// Determinism as docs/guarantees.md promises it: every entry point its table marks "yes" gives the
// same bits on 1 thread, on 2 threads, and on 2 threads again, on every arch. Each row of the table has
// a call here that returns everything the entry point wrote, and every call here has its row.
#include <cstdint>
#include <iterator>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lacuna/lacuna.hpp"
#include "support/arch.hpp"
#include "support/catch.hpp"
#include "support/doc_table.hpp"
#include "support/random.hpp"

using lacuna::matrix_view;
using lacuna::tensor4_view;
namespace moe = lacuna::moe;

namespace {

using bytes = std::vector<unsigned char>;

// The bytes of every argument, one after another.
template <class... Ranges> bytes bits_of(const Ranges&... ranges) {
    bytes out;
    auto add = [&](const auto& r) {
        const auto* p = reinterpret_cast<const unsigned char*>(std::data(r));
        out.insert(out.end(), p, p + std::size(r) * sizeof(*std::data(r)));
    };
    (add(ranges), ...);
    return out;
}

// Operands shared by the calls: shapes that give each of 2 threads several rows, tasks or key
// splits, with some NaN-free random data.
struct operands {
    std::mt19937_64 rng = lacuna::test::make_rng();
    std::size_t m = 300, k = 200, n = 40;
    std::vector<float> dense = lacuna::test::random_vector(rng, m * k), b = lacuna::test::random_vector(rng, k * n),
                       x = lacuna::test::random_vector(rng, 70 * m);
    lacuna::csr<float> csr = lacuna::csr<float>::from_dense(matrix_view<const float>(dense, m, k), lacuna::prune::top_fraction(0.2));
    lacuna::bsr<float, 4, 4> bsr =
        lacuna::bsr<float, 4, 4>::from_dense(matrix_view<const float>(dense, m, k), lacuna::prune::block_top_fraction({4, 4}, 0.3));
    std::vector<lacuna::bfloat16> dense_bf16 = lacuna::test::random_vector<lacuna::bfloat16>(rng, m * k);
    lacuna::nm<lacuna::bfloat16, 2, 4> nm = lacuna::nm<lacuna::bfloat16, 2, 4>::from_dense(matrix_view<const lacuna::bfloat16>(dense_bf16, m, k));
    lacuna::bitmap<float> bitmap = lacuna::bitmap<float>::from_dense(matrix_view<const float>(dense, m, k), lacuna::prune::top_fraction(0.3));

    // Attention: B = 1, Hq = 4, Hkv = 2, L = 300, D = 40.
    std::size_t heads = 4, kv_heads = 2, len = 300, d = 40;
    std::vector<float> q = lacuna::test::random_vector(rng, heads * len * d), kk = lacuna::test::random_vector(rng, kv_heads * 2500 * d),
                       vv = lacuna::test::random_vector(rng, kv_heads * 2500 * d);
    tensor4_view<const float> qv() const { return {q.data(), {1, heads, len, d}}; }
    tensor4_view<const float> kv(std::size_t l = 300) const { return {kk.data(), {1, kv_heads, l, d}}; }
    tensor4_view<const float> vw(std::size_t l = 300) const { return {vv.data(), {1, kv_heads, l, d}}; }

    // MoE: T = 200 tokens of H = 48, E = 8 experts of F = 64, k = 2.
    std::size_t T = 200, H = 48, E = 8, F = 64;
    std::vector<float> tokens = lacuna::test::random_vector(rng, T * H), logits = lacuna::test::random_vector(rng, T * E),
                       router = lacuna::test::random_vector(rng, E * H), wg = lacuna::test::random_vector(rng, E * F * H),
                       wu = lacuna::test::random_vector(rng, E * F * H), wd = lacuna::test::random_vector(rng, E * H * F);
    moe::router_config routing_config() const {
        moe::router_config cfg;
        cfg.k = 2;
        cfg.renormalize = true;
        cfg.losses = true;
        return cfg;
    }
};

// One call per row of the table in docs/guarantees.md.
std::map<std::string, std::function<bytes(const operands&)>> calls() {
    std::map<std::string, std::function<bytes(const operands&)>> c;
    c["spmm"] = [](const operands& o) {
        std::vector<float> c1(o.m * o.n, 1.f), c2(o.m * o.n, 1.f), c3(o.m * o.n, 1.f), c4(o.m * o.n, 1.f);
        const matrix_view<const float> b(o.b, o.k, o.n);
        lacuna::spmm(o.csr, b, matrix_view<float>(c1, o.m, o.n), {0.5f, 0.25f});
        lacuna::spmm(o.bsr, b, matrix_view<float>(c2, o.m, o.n));
        lacuna::spmm(o.nm, b, matrix_view<float>(c3, o.m, o.n));
        lacuna::spmm(o.bitmap, matrix_view<const float, lacuna::order::col_major>(o.b.data(), o.k, o.n), matrix_view<float>(c4, o.m, o.n));
        return bits_of(c1, c2, c3, c4);
    };
    c["spmm.dense_sparse"] = [](const operands& o) {
        std::vector<float> c(70 * o.k);
        lacuna::spmm(matrix_view<const float>(o.x, 70, o.m), o.csr, matrix_view<float>(c, 70, o.k));
        return bits_of(c);
    };
    c["spmv"] = [](const operands& o) {
        std::vector<float> y1(o.m), y2(o.m);
        lacuna::spmv(o.bitmap, std::span<const float>(o.b).first(o.k), std::span<float>(y1));
        lacuna::spmv(o.nm, std::span<const float>(o.b).first(o.k), std::span<float>(y2));
        return bits_of(y1, y2);
    };
    c["linear"] = [](const operands& o) {
        std::vector<float> y1(3 * o.m), y2(70 * o.m), bias(o.m, 0.5f);
        lacuna::linear(matrix_view<const float>(o.b, 3, o.k), o.csr, matrix_view<float>(y1, 3, o.m), {bias, lacuna::activation::gelu});
        lacuna::linear(matrix_view<const float>(o.x, 70, o.k), matrix_view<const float>(o.dense, o.m, o.k), matrix_view<float>(y2, 70, o.m));
        return bits_of(y1, y2);
    };
    c["sddmm"] = [](const operands& o) {
        const auto out = lacuna::sddmm(matrix_view<const float>(o.x, o.m, 40), matrix_view<const float>(o.x, o.k, 40), o.csr);
        return bits_of(std::span<const float>(out.values(), out.nnz()));
    };
    c["attention"] = [](const operands& o) {
        std::vector<float> out(o.heads * o.len * o.d), lse(o.heads * o.len);
        lacuna::attention_options opts;
        opts.causal = true;
        opts.logsumexp = lse;
        lacuna::attention(o.qv(), o.kv(), o.vw(), tensor4_view<float>(out.data(), {1, o.heads, o.len, o.d}), opts);
        return bits_of(out, lse);
    };
    c["flex_attention"] = [](const operands& o) {
        std::vector<float> out(o.heads * o.len * o.d);
        const lacuna::masks::sinks_and_window local{4, 50};
        const auto blocks = lacuna::create_block_mask(local, 1, 1, o.len, o.len, 32, 32);
        lacuna::flex_attention(o.qv(), o.kv(), o.vw(), blocks, tensor4_view<float>(out.data(), {1, o.heads, o.len, o.d}), local);
        return bits_of(out);
    };
    c["masked_attention"] = [](const operands& o) {
        std::vector<float> out(o.heads * o.len * o.d);
        const auto mask = lacuna::csr<float>::from_dense(matrix_view<const float>(o.kk, o.len, o.len), lacuna::prune::top_fraction(0.1));
        lacuna::masked_attention(o.qv(), o.kv(), o.vw(), mask, tensor4_view<float>(out.data(), {1, o.heads, o.len, o.d}));
        return bits_of(out);
    };
    c["decode_attention"] = [](const operands& o) {
        // Two new tokens over 2500 cached: three key splits, contiguous and paged.
        std::vector<float> out1(o.heads * 2 * o.d), out2(o.heads * 2 * o.d);
        const tensor4_view<const float> q(o.q.data(), {1, o.heads, 2, o.d});
        lacuna::decode_attention(q, o.kv(2500), o.vw(2500), tensor4_view<float>(out1.data(), {1, o.heads, 2, o.d}));
        lacuna::paged_kv_cache<float> cache(o.kv_heads, o.d, o.d, 64, 80);
        const auto s = cache.add_sequence();
        cache.append(s, o.kv(2500), o.vw(2500));
        lacuna::decode_attention(q, cache, std::vector<std::size_t>{s}, tensor4_view<float>(out2.data(), {1, o.heads, 2, o.d}));
        return bits_of(out1, out2);
    };
    c["sparse_kv_cache"] = [](const operands& o) {
        lacuna::sparse_kv_cache<float> cache(o.kv_heads, o.d, o.d, 12, 12);
        cache.append(o.kv(2500), o.vw(2500));
        std::vector<float> out(o.heads * o.d);
        lacuna::decode_attention(tensor4_view<const float>(o.q.data(), {1, o.heads, 1, o.d}), cache,
                                 tensor4_view<float>(out.data(), {1, o.heads, 1, o.d}));
        return bits_of(out, cache.keys(), cache.values());
    };
    c["create_block_mask"] = [](const operands& o) {
        const auto m = lacuna::create_block_mask(lacuna::masks::bigbird(16, 1, 1, 2, o.len, 7), 1, 2, o.len, o.len, 16, 16);
        return bits_of(m.kv_num_blocks(), m.kv_indices(), m.full_kv_num_blocks(), m.full_kv_indices());
    };
    c["moba_block_mask"] = [](const operands& o) {
        const auto m = lacuna::moba_block_mask(o.qv(), o.kv(), {32, 2});
        return bits_of(m.kv_num_blocks(), m.kv_indices(), m.full_kv_num_blocks(), m.full_kv_indices());
    };
    c["estimate_vertical_slash"] = [](const operands& o) {
        const auto est = lacuna::estimate_vertical_slash(o.qv(), o.kv(), {32, 20, 10, 3, 3});
        bytes out;
        for (const auto& p : est.patterns) {
            const auto b = bits_of(p.columns, p.diagonals);
            out.insert(out.end(), b.begin(), b.end());
        }
        return out;
    };
    c["route"] = [](const operands& o) {
        auto cfg = o.routing_config();
        const auto r = moe::route(matrix_view<const float>(o.logits, o.T, o.E), cfg);
        cfg.n_group = 4, cfg.topk_group = 2, cfg.scoring = moe::scoring::sigmoid;
        const auto g = moe::route(matrix_view<const float>(o.logits, o.T, o.E), cfg);
        const double losses[]{r.load_balancing_loss, r.z_loss};
        return bits_of(r.topk_ids, r.topk_weights, g.topk_ids, g.topk_weights, losses);
    };
    c["expert_choice"] = [](const operands& o) {
        const auto r = moe::expert_choice(matrix_view<const float>(o.logits, o.T, o.E), 40);
        return bits_of(r.token_ids, r.weights);
    };
    c["plan_gather_combine"] = [](const operands& o) {
        const auto r = moe::route(matrix_view<const float>(o.logits, o.T, o.E), o.routing_config());
        const auto d = moe::plan(r, {1.0, 4});
        std::vector<float> sorted(d.rows() * o.H), y(o.T * o.H);
        moe::gather(matrix_view<const float>(o.tokens, o.T, o.H), d, matrix_view<float>(sorted, d.rows(), o.H));
        moe::combine(matrix_view<const float>(sorted, d.rows(), o.H), d, matrix_view<float>(y, o.T, o.H));
        return bits_of(d.sorted_token_ids, d.expert_offsets, d.dropped, sorted, y);
    };
    c["experts_moe_layer"] = [](const operands& o) {
        const auto gate = moe::dense_experts<float>(o.wg, o.E, o.F, o.H), up = moe::dense_experts<float>(o.wu, o.E, o.F, o.H),
                   down = moe::dense_experts<float>(o.wd, o.E, o.H, o.F);
        moe::layer_weights<matrix_view<const float>> w{matrix_view<const float>(o.router, o.E, o.H), {gate, up, down},
                                                       {std::span(gate).first(1), std::span(up).first(1), std::span(down).first(1)}};
        moe::layer_config cfg;
        cfg.router = o.routing_config();
        std::vector<float> y(o.T * o.H);
        const auto r = moe::moe_layer(matrix_view<const float>(o.tokens, o.T, o.H), w, matrix_view<float>(y, o.T, o.H), cfg);
        return bits_of(y, r.topk_weights);
    };
    c["from_dense"] = [](const operands& o) {
        const auto top = lacuna::csr<float>::from_dense(matrix_view<const float>(o.dense, o.m, o.k), lacuna::prune::top_fraction(0.37));
        const auto blocks =
            lacuna::bsr<float, 8, 8>::from_dense(matrix_view<const float>(o.dense, o.m, o.k), lacuna::prune::block_top_fraction({8, 8}, 0.4));
        return bits_of(std::span(top.col_idx(), top.nnz()), std::span(blocks.block_col_idx(), blocks.nnz_blocks()));
    };
    return c;
}

// The rows of the table in docs/guarantees.md: | `id` | entry points | extra memory | deterministic |
std::vector<std::vector<std::string>> documented_rows() {
    return lacuna::test::doc_rows("guarantees.md", R"(^\| `([a-z_.]+)` \|.*\| (yes|no)[^|]* \|$)");
}

} // namespace

TEST_CASE("entry points documented as deterministic give the same bits on 1 and 2 threads, and again", "[determinism]") {
    LACUNA_FOR_EACH_ARCH();
    const operands o;
    const auto all = calls();
    for (const auto& r : documented_rows()) {
        if (r[1] != "yes") continue;
        INFO(r[0]);
        const auto call = all.find(r[0]);
        REQUIRE(call != all.end());
        lacuna::set_num_threads(1);
        const bytes one = call->second(o);
        lacuna::set_num_threads(2);
        const bytes two = call->second(o), again = call->second(o);
        lacuna::set_num_threads(0);
        CHECK(!one.empty());
        CHECK((one == two && two == again));
    }
}

TEST_CASE("every determinism call has its row in docs/guarantees.md", "[determinism]") {
    lacuna::test::check_one_row_per_call(calls(), documented_rows());
}
