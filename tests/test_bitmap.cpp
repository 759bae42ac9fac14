// Bitmap: round trips, per-row pruning for KV caches, word offsets, checked construction.
#include <bit>
#include <cstdint>
#include <vector>

#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/prune.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::test::awkward_shapes;
using lacuna::test::masked;
using lacuna::test::same_bits;
using lacuna::test::sparse_dense;

TEMPLATE_PRODUCT_TEST_CASE("bitmap round-trips dense exactly", "[layout][bitmap]", lacuna::bitmap,
                           ((float, std::int32_t), (double, std::int32_t), (bfloat16, std::int32_t),
                            (float, std::int64_t), (bfloat16, std::int64_t))) {
    using T = typename TestType::value_type;
    using Index = typename TestType::index_type;
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    auto shapes = awkward_shapes;
    shapes.push_back({3, 64});
    shapes.push_back({5, 129});
    for (auto [rows, cols] : shapes)
        for (double density : {0.0, 0.5, 1.0}) {
            INFO(rows << " x " << cols << ", density " << density);
            auto dense = sparse_dense<T>(rng, rows, cols, density, true);
            lacuna::matrix_view<const T> view(dense, rows, cols);
            auto m = TestType::from_dense(view);
            std::size_t nonzeros = 0;
            for (T x : dense) nonzeros += float(x) != 0.f;
            CHECK(m.nnz() == nonzeros);
            CHECK(same_bits(m.to_dense(), dense));
            const std::size_t words = rows * ((cols + 63) / 64);
            CHECK(m.bytes() == words * 8 + (words + 1) * sizeof(Index) + nonzeros * sizeof(T));
            for (std::size_t i = 0; i < rows; ++i) { // row_values reaches each row's first value in O(1)
                std::size_t before = 0;
                for (std::size_t k = 0; k < i * cols; ++k) before += float(dense[k]) != 0.f;
                REQUIRE(m.row_values(i) == m.values() + before);
            }

            TestType rebuilt(rows, cols, std::span<const std::uint64_t>(m.bits(), words),
                             std::span<const Index>(m.offsets(), words + 1), std::span<const T>(m.values(), m.nnz()));
            CHECK(same_bits(rebuilt.to_dense(), dense));
            auto moved = std::move(rebuilt);
            CHECK(rebuilt.nnz() == 0); // NOLINT: the moved-from state is specified
            CHECK(same_bits(moved.to_dense(), dense));
            lacuna::bitmap_view<const T, Index> v = moved;
            CHECK(v.values() == moved.values());
        }
}

TEST_CASE("bitmap with the per-row rule keeps each row's largest values", "[layout][bitmap][prune]") {
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    auto dense = sparse_dense<float>(rng, 40, 200, 1.0); // 40 tokens of 200 channels
    lacuna::matrix_view<const float> view(dense, 40, 200);
    lacuna::prune::top_fraction rule(0.3, lacuna::prune::scope::row);
    auto m = lacuna::bitmap<float>::from_dense(view, rule);
    CHECK(m.nnz() == 40 * 60);
    CHECK(m.to_dense() == masked(dense, rule.select(view)));
    for (std::size_t i = 0; i < 40; ++i) {
        std::size_t kept = 0;
        for (std::size_t w = 0; w < m.words_per_row(); ++w) kept += std::size_t(std::popcount(m.row_bits(i)[w]));
        CHECK(kept == 60);
    }
}

TEST_CASE("bitmap rejects arrays that break an invariant", "[layout][bitmap]") {
    using span = std::span<const std::int32_t>;
    std::vector<float> v(8, 1.f);
    auto make = [&](std::size_t cols, std::vector<std::uint64_t> bits, std::vector<std::int32_t> offsets, std::size_t nv) {
        return lacuna::bitmap<float>(2, cols, std::span<const std::uint64_t>(bits), span(offsets),
                                     std::span<const float>(v.data(), nv));
    };
    CHECK_NOTHROW(make(10, {0b101, 0b1}, {0, 2, 3}, 3));
    CHECK_THROWS_WITH(make(10, {0b101}, {0, 2, 3}, 3), "lacuna::bitmap: bits has 1 words, expected 2 (2 rows of 1)");
    CHECK_THROWS_WITH(make(10, {0b101, 0b1}, {0, 2}, 3),
                      "lacuna::bitmap: offsets has 2 elements, expected 3 (one per word, plus one)");
    CHECK_THROWS_WITH(make(10, {0b101, 0b1}, {1, 3, 4}, 4), "lacuna::bitmap: offsets[0] = 1, expected 0");
    CHECK_THROWS_WITH(make(10, {0b101, 0b1}, {0, 1, 3}, 3),
                      "lacuna::bitmap: offsets[1] = 1, expected 2 (offsets[0] plus the bits set in bits[0])");
    CHECK_THROWS_WITH(make(10, {0b101, 1u << 10}, {0, 2, 3}, 3),
                      "lacuna::bitmap: bits[1] sets bits past the last column of row 1");
    CHECK_THROWS_WITH(make(10, {0b101, 0b1}, {0, 2, 3}, 4), "lacuna::bitmap: values has 4 elements, expected 3 (the bits set)");
    CHECK_NOTHROW(make(64, {~std::uint64_t(0) >> 58, 0}, {0, 6, 6}, 6));
}
