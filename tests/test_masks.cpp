// The attention patterns of lacuna::masks: each pattern's runs hold exactly what its mask_mod keeps,
// create_block_mask from the runs agrees with the element-by-element build, and flex_attention over
// a pattern matches the reference.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

namespace masks = lacuna::masks;

// Every pattern under test, with the lengths it is checked over.
template <class F> void for_each_pattern(F&& f) {
    f("causal", masks::causal{}, 50, 50);
    f("causal, bottom right", masks::causal{30}, 20, 50);
    f("sliding window", masks::sliding_window{6}, 50, 50);
    f("symmetric window", masks::sliding_window{4, 7}, 50, 50);
    f("dilated window", masks::dilated_window{12, 0, 3}, 50, 50);
    f("sinks and window", masks::sinks_and_window{3, 5}, 50, 50);
    f("global tokens", masks::global_tokens{{0, 17, 31}, 4, 4}, 50, 50);
    f("bigbird", masks::bigbird(8, 1, 1, 2, 50, 42), 50, 50);
    f("vertical slash", masks::vertical_slash{{0, 5, 22}, {0, 3, 10}}, 50, 50);
    std::vector<std::size_t> first_20(20);
    std::iota(first_20.begin(), first_20.end(), std::size_t(0));
    f("vertical slash with full blocks", masks::vertical_slash{{0, 1, 2, 3, 4, 5, 6, 7, 30}, first_20}, 50, 50);
    f("document", masks::document({0, 7, 7, 30, 45}), 50, 50);
    f("document, not causal", masks::document({0, 20, 50}, false), 50, 50);
    f("per-head window", masks::per_head_window{{3, 9, 50}}, 50, 50);
}

// The blocks a mask lists for each row, partial and full, as sets.
std::pair<std::set<std::pair<std::size_t, int>>, std::set<std::pair<std::size_t, int>>> listed(const lacuna::block_mask& m) {
    std::set<std::pair<std::size_t, int>> partial, full;
    const std::size_t nkv = m.kv_blocks();
    for (std::size_t row = 0; row < m.kv_num_blocks().size(); ++row) {
        for (int e = 0; e < m.kv_num_blocks()[row]; ++e) partial.insert({row, m.kv_indices()[row * nkv + std::size_t(e)]});
        for (int e = 0; e < m.full_kv_num_blocks()[row]; ++e) full.insert({row, m.full_kv_indices()[row * nkv + std::size_t(e)]});
    }
    return {partial, full};
}

} // namespace

TEST_CASE("mask patterns keep what the papers keep", "[masks]") {
    auto kept = [](const auto& m, std::size_t h, std::size_t q, std::size_t len) {
        std::vector<std::size_t> out;
        for (std::size_t kv = 0; kv < len; ++kv)
            if (m(0, h, q, kv)) out.push_back(kv);
        return out;
    };
    using v = std::vector<std::size_t>;
    CHECK(kept(masks::causal{}, 0, 3, 10) == v{0, 1, 2, 3});
    CHECK(kept(masks::causal{2}, 0, 0, 10) == v{0, 1, 2});
    CHECK(kept(masks::sliding_window{2}, 0, 5, 10) == v{3, 4, 5});
    CHECK(kept(masks::sliding_window{1, 2}, 0, 5, 10) == v{4, 5, 6, 7});
    CHECK(kept(masks::dilated_window{6, 0, 2}, 0, 8, 10) == v{2, 4, 6, 8});
    CHECK(kept(masks::sinks_and_window{2, 3}, 0, 10, 12) == v{0, 1, 8, 9, 10});
    CHECK(kept(masks::global_tokens{{1}, 1, 0}, 0, 6, 8) == v{1, 5, 6});
    CHECK(kept(masks::global_tokens{{1}, 1, 0}, 0, 1, 4) == v{0, 1, 2, 3});
    CHECK(kept(masks::vertical_slash{{0, 2}, {0, 4}}, 0, 6, 10) == v{0, 2, 6});
    // Position lists in any order, with repeats: kept sorted and once, as the lookups need.
    const masks::vertical_slash shuffled{{22, 0, 5, 5}, {10, 0, 3, 0}};
    CHECK(shuffled.columns == v{0, 5, 22});
    CHECK(shuffled.diagonals == v{0, 3, 10});
    CHECK(masks::global_tokens{{31, 0, 17, 17}, 4}.global == v{0, 17, 31});
    CHECK(kept(masks::global_tokens{{5, 1, 1}, 1, 0}, 0, 6, 8) == v{1, 5, 6});
    CHECK(kept(masks::document({0, 3, 7}), 0, 4, 8) == v{3, 4});
    CHECK(kept(masks::document({0, 3, 7}), 0, 7, 8).empty()); // past the last sequence
    CHECK(kept(masks::per_head_window{{1, 2}}, 1, 4, 8) == v{3, 4});
    const masks::bigbird bb(4, 0, 1, 1, 32, 7);
    for (std::size_t q : {0, 1, 2, 3}) CHECK(kept(bb, 0, q, 32).size() == 32); // global rows
    const v row = kept(bb, 0, 20, 32);                                          // block 5: globals, itself, one random block
    CHECK(std::count_if(row.begin(), row.end(), [](std::size_t kv) { return kv < 4 || (kv >= 20 && kv < 24); }) == 8);
    CHECK((row.size() == 8 || row.size() == 12));
    CHECK_THROWS_AS(masks::document({1, 4}), lacuna::shape_error);
    CHECK_THROWS_AS(masks::bigbird(0, 1, 1, 1, 10), lacuna::shape_error);
}

TEST_CASE("a pattern's runs hold its kept keys, and its block mask agrees with the element-wise build", "[masks]") {
    for_each_pattern([](const char* name, const auto& m, std::size_t lq, std::size_t lkv) {
        INFO(name);
        // Every key at once (as create_block_mask asks), and ranges of 7 keys (as a tile asks).
        for (std::size_t width : {lkv, std::size_t(7)})
            for (std::size_t h = 0; h < 3; ++h)
                for (std::size_t q = 0; q < lq; ++q)
                    for (std::size_t begin = 0; begin < lkv; begin += width) {
                        const std::size_t end = std::min(begin + width, lkv);
                        std::vector<char> in_run(lkv, 0), in_dense_run(lkv, 0);
                        m.for_each_run(0, h, q, begin, end, [&](std::size_t first, std::size_t last, bool dense) {
                            for (std::size_t kv = std::max(first, begin); kv < std::min(last, end); ++kv) {
                                in_run[kv] = 1;
                                if (dense) in_dense_run[kv] = 1;
                            }
                        });
                        for (std::size_t kv = begin; kv < end; ++kv) {
                            INFO("head " << h << ", query " << q << ", key " << kv << " of [" << begin << ", " << end << ")");
                            if (m(0, h, q, kv)) CHECK(in_run[kv]);
                            else CHECK(!in_dense_run[kv]);
                        }
                    }
        // A tile's kept keys as bits, where the pattern writes them itself (flex_attention's tiles
        // are at most 64 x 64; tiles of 7 start anywhere relative to the pattern).
        if constexpr (lacuna::bit_listed_mask<std::decay_t<decltype(m)>>)
            for (std::size_t width : {std::size_t(7), std::size_t(64)})
                for (std::size_t h = 0; h < 3; ++h)
                    for (std::size_t q0 = 0; q0 < lq; q0 += width)
                        for (std::size_t k0 = 0; k0 < lkv; k0 += width) {
                            const std::size_t queries = std::min(width, lq - q0), keys = std::min(width, lkv - k0);
                            std::uint64_t kept[64];
                            m.kept_bits(0, h, q0, queries, k0, keys, kept);
                            std::size_t wrong = 0;
                            for (std::size_t c = 0; c < queries; ++c) {
                                wrong += keys < 64 && (kept[c] >> keys) != 0; // no bit past the tile's keys
                                for (std::size_t j = 0; j < keys; ++j) wrong += bool(kept[c] >> j & 1) != m(0, h, q0 + c, k0 + j);
                            }
                            INFO("head " << h << ", tile at query " << q0 << ", key " << k0);
                            CHECK(wrong == 0);
                        }
        for (auto [qb, kb] : {std::pair{8, 8}, std::pair{16, 12}, std::pair{64, 64}}) {
            INFO("blocks " << qb << " x " << kb);
            const auto built = lacuna::create_block_mask(m, 1, 3, lq, lkv, qb, kb);
            const auto elementwise = lacuna::create_block_mask(
                [&m](std::size_t b, std::size_t h, std::size_t q, std::size_t kv) { return m(b, h, q, kv); }, 1, 3, lq, lkv, qb, kb);
            // The same blocks listed; full from runs only where every position is kept, and from a
            // closed-form classification exactly there.
            const auto [built_partial, built_full] = listed(built);
            const auto [elem_partial, elem_full] = listed(elementwise);
            std::set<std::pair<std::size_t, int>> built_all = built_partial, elem_all = elem_partial;
            built_all.insert(built_full.begin(), built_full.end());
            elem_all.insert(elem_full.begin(), elem_full.end());
            CHECK(built_all == elem_all);
            CHECK(std::includes(elem_full.begin(), elem_full.end(), built_full.begin(), built_full.end()));
            if constexpr (lacuna::block_classified_mask<std::decay_t<decltype(m)>>) CHECK(built_full == elem_full);
        }
    });
}

TEST_CASE("flex_attention over the patterns matches the reference", "[masks][attention]") {
    auto rng = lacuna::test::make_rng();
    for_each_pattern([&](const char* name, const auto& m, std::size_t lq, std::size_t lkv) {
        INFO(name << ", LACUNA_SEED=" << lacuna::test::seed());
        const std::size_t heads = 3, d = 16;
        const auto q = lacuna::test::random_vector(rng, heads * lq * d), k = lacuna::test::random_vector(rng, heads * lkv * d),
                   v = lacuna::test::random_vector(rng, heads * lkv * d);
        const lacuna::tensor4_view<const float> qv(q.data(), {1, heads, lq, d}), kv(k.data(), {1, heads, lkv, d}),
            vv(v.data(), {1, heads, lkv, d});
        std::vector<float> out = lacuna::test::poisoned(heads * lq * d), want(out.size());
        lacuna::flex_attention(qv, kv, vv, lacuna::create_block_mask(m, 1, heads, lq, lkv, 16, 16), {out.data(), {1, heads, lq, d}}, m);
        const double scale = 0.25;
        lacuna::ref::attention(qv, kv, vv, lacuna::tensor4_view<float>(want.data(), {1, heads, lq, d}),
                               [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
                                   return m(b, h, i, j) ? scale * dot : -std::numeric_limits<double>::infinity();
                               });
        CHECK(lacuna::test::rel_error(out, want) <= 5e-6);
    });
}
