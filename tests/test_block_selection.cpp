// Content-based block selection: MoBA's gate and MInference's vertical-slash estimate pick what was
// planted in q and k, and flex_attention over their masks matches the reference.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/block_selection.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

std::vector<std::int32_t> row_of(std::span<const std::int32_t> count, std::span<const std::int32_t> index, std::size_t row,
                                 std::size_t nkv) {
    return {index.begin() + std::ptrdiff_t(row * nkv), index.begin() + std::ptrdiff_t(row * nkv + std::size_t(count[row]))};
}

} // namespace

TEST_CASE("MoBA's gate keeps the planted block, the crossing block and no future one", "[attention][selection]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t heads = 2, l = 300, d = 16, block = 32; // 10 blocks, the last one short
    auto q = lacuna::test::random_vector(rng, heads * l * d, -0.1f, 0.1f), k = lacuna::test::random_vector(rng, heads * l * d, -0.1f, 0.1f);
    // Every query leans along e_0; the keys of block 2 (head 0) and block 5 (head 1) point there too.
    for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t i = 0; i < l; ++i) {
            q[(h * l + i) * d] += 1.f;
            if (i / block == (h == 0 ? 2 : 5)) k[(h * l + i) * d] += 3.f;
        }
    const lacuna::tensor4_view<const float> qv(q.data(), {1, heads, l, d}), kv(k.data(), {1, heads, l, d});
    const auto m = lacuna::moba_block_mask(qv, kv, {block, 1});
    const std::size_t n = m.q_blocks();
    REQUIRE(n == 10);
    for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t qb = 0; qb < n; ++qb) {
            INFO("head " << h << ", query block " << qb);
            const std::size_t row = h * n + qb;
            CHECK(row_of(m.kv_num_blocks(), m.kv_indices(), row, n) == std::vector<std::int32_t>{std::int32_t(qb)});
            const auto chosen = row_of(m.full_kv_num_blocks(), m.full_kv_indices(), row, n);
            const std::size_t planted = h == 0 ? 2 : 5;
            if (qb == 0) CHECK(chosen.empty());
            else if (qb > planted) CHECK(chosen == std::vector<std::int32_t>{std::int32_t(planted)});
            else REQUIRE(chosen.size() == 1);
            if (!chosen.empty()) CHECK(std::size_t(chosen[0]) < qb);
        }

    // Attention over the mask: the crossing blocks need the causal mask_mod.
    auto v = lacuna::test::random_vector(rng, heads * l * d);
    const lacuna::tensor4_view<const float> vv(v.data(), {1, heads, l, d});
    std::vector<float> out = lacuna::test::poisoned(heads * l * d), want(out.size());
    const auto wide = lacuna::moba_block_mask(qv, kv, {block, 3});
    lacuna::flex_attention(qv, kv, vv, wide, {out.data(), {1, heads, l, d}}, lacuna::masks::causal{});
    lacuna::ref::attention(qv, kv, vv, lacuna::tensor4_view<float>(want.data(), {1, heads, l, d}),
                           [&](std::size_t, std::size_t h, std::size_t i, std::size_t j, double dot) {
                               const std::size_t row = h * n + i / block;
                               const auto full = row_of(wide.full_kv_num_blocks(), wide.full_kv_indices(), row, n);
                               const bool kept = j / block == i / block ? j <= i : std::count(full.begin(), full.end(), std::int32_t(j / block)) > 0;
                               return kept ? dot / 4.0 : -std::numeric_limits<double>::infinity();
                           });
    CHECK(lacuna::test::rel_error(out, want) <= 5e-6);
    CHECK_THROWS_AS(lacuna::moba_block_mask(qv, kv, {0, 1}), lacuna::shape_error);
}

TEST_CASE("the vertical-slash estimate finds a planted column and keeps the sinks and local diagonals", "[attention][selection]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t heads = 2, l = 200, d = 16;
    auto q = lacuna::test::random_vector(rng, heads * l * d, -0.1f, 0.1f), k = lacuna::test::random_vector(rng, heads * l * d, -0.1f, 0.1f);
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t i = 0; i < l; ++i) q[(h * l + i) * d] += 1.f;
        k[(h * l + 40 + h) * d] += 8.f; // key 40 (head 0) and 41 (head 1) draw every query
    }
    const lacuna::tensor4_view<const float> qv(q.data(), {1, heads, l, d}), kv(k.data(), {1, heads, l, d});
    lacuna::vertical_slash_options o;
    o.columns = 3;
    o.sink_columns = 2;
    o.diagonals = 4;
    o.local_diagonals = 4;
    o.last_queries = 16;
    const auto pattern = lacuna::estimate_vertical_slash(qv, kv, o);
    REQUIRE(pattern.patterns.size() == heads);
    for (std::size_t h = 0; h < heads; ++h) {
        INFO("head " << h);
        const auto& p = pattern.patterns[h];
        REQUIRE(p.columns.size() == 3);
        CHECK(p.columns[0] == 0);
        CHECK(p.columns[1] == 1);
        CHECK(p.columns[2] == 40 + h);
        CHECK(p.diagonals == std::vector<std::size_t>{0, 1, 2, 3});
    }
    auto v = lacuna::test::random_vector(rng, heads * l * d);
    const lacuna::tensor4_view<const float> vv(v.data(), {1, heads, l, d});
    std::vector<float> out = lacuna::test::poisoned(heads * l * d), want(out.size());
    lacuna::flex_attention(qv, kv, vv, lacuna::create_block_mask(pattern, 1, heads, l, l, 64, 64), {out.data(), {1, heads, l, d}}, pattern);
    lacuna::ref::attention(qv, kv, vv, lacuna::tensor4_view<float>(want.data(), {1, heads, l, d}),
                           [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
                               return pattern(b, h, i, j) ? dot / 4.0 : -std::numeric_limits<double>::infinity();
                           });
    CHECK(lacuna::test::rel_error(out, want) <= 5e-6);
    CHECK_THROWS_AS(lacuna::estimate_vertical_slash(lacuna::tensor4_view<const float>(q.data(), {1, heads, 100, d}), kv, o),
                    lacuna::shape_error);
}

TEST_CASE("content-based selection on bfloat16 q and k", "[attention][selection]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t heads = 2, l = 200, d = 16;
    auto q = lacuna::test::random_vector<lacuna::bfloat16>(rng, heads * l * d, -0.5f, 0.5f),
         k = lacuna::test::random_vector<lacuna::bfloat16>(rng, heads * l * d, -0.5f, 0.5f);
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t i = 0; i < l; ++i) q[(h * l + i) * d] = lacuna::bfloat16(1.f);
        k[(h * l + 70 + h) * d] = lacuna::bfloat16(8.f); // key 70 (head 0) and 71 (head 1) draw every query
    }
    std::vector<float> qf(q.size()), kf(k.size());
    std::transform(q.begin(), q.end(), qf.begin(), [](lacuna::bfloat16 x) { return float(x); });
    std::transform(k.begin(), k.end(), kf.begin(), [](lacuna::bfloat16 x) { return float(x); });
    const lacuna::tensor4_view<const lacuna::bfloat16> qv(q.data(), {1, heads, l, d}), kv(k.data(), {1, heads, l, d});
    const lacuna::tensor4_view<const float> qfv(qf.data(), {1, heads, l, d}), kfv(kf.data(), {1, heads, l, d});

    // MoBA pools and scores in float: the same blocks as for the widened values.
    const auto m = lacuna::moba_block_mask(qv, kv, {32, 2}), mf = lacuna::moba_block_mask(qfv, kfv, {32, 2});
    CHECK(std::ranges::equal(m.kv_num_blocks(), mf.kv_num_blocks()));
    CHECK(std::ranges::equal(m.kv_indices(), mf.kv_indices()));
    CHECK(std::ranges::equal(m.full_kv_num_blocks(), mf.full_kv_num_blocks()));
    CHECK(std::ranges::equal(m.full_kv_indices(), mf.full_kv_indices()));
    CHECK(m.listed_blocks() > 0);

    lacuna::vertical_slash_options o;
    o.columns = 3;
    o.sink_columns = 2;
    o.last_queries = 16;
    const auto pattern = lacuna::estimate_vertical_slash(qv, kv, o);
    for (std::size_t h = 0; h < heads; ++h) {
        INFO("head " << h);
        CHECK(pattern.patterns[h].columns == std::vector<std::size_t>{0, 1, 70 + h});
    }
}
