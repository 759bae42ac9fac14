// N:M: round trips, the n_m rule against brute force, the metadata encoding, checked construction.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "lacuna/layout/nm.hpp"
#include "lacuna/layout/prune.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::test::awkward_shapes;
using lacuna::test::masked;
using lacuna::test::same_bits;
using lacuna::test::sparse_dense;

TEMPLATE_TEST_CASE("nm keeps the N largest of every M and round-trips the kept elements", "[layout][nm]",
                   (lacuna::nm<float, 2, 4>), (lacuna::nm<bfloat16, 1, 4>), (lacuna::nm<double, 2, 8>),
                   (lacuna::nm<float, 4, 8, std::int64_t>), (lacuna::nm<bfloat16, 1, 2>), (lacuna::nm<float, 3, 5>),
                   (lacuna::nm<float, 15, 16>), (lacuna::nm<float, 8, 16>)) {
    using T = typename TestType::value_type;
    constexpr std::size_t N = TestType::n, M = TestType::m;
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed() << ", " << N << ":" << M);
    for (auto shape : awkward_shapes)
        for (double density : {0.0, 0.3, 1.0}) {
            const std::size_t rows = shape.first, cols = shape.second; // captured by lambdas below
            INFO(rows << " x " << cols << ", density " << density);
            auto dense = sparse_dense<T>(rng, rows, cols, density, true);
            lacuna::matrix_view<const T> view(dense, rows, cols);
            auto m = TestType::from_dense(view);

            // Brute force: in each group, rank by (magnitude desc, column asc) and keep N.
            std::vector<bool> keep(rows * cols);
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t g0 = 0; g0 < cols; g0 += M) {
                    std::vector<std::size_t> order(std::min(M, cols - g0));
                    std::iota(order.begin(), order.end(), g0);
                    auto mag = [&](std::size_t j) {
                        float v = float(dense[i * cols + j]);
                        return std::isnan(v) ? std::numeric_limits<float>::infinity() : std::abs(v);
                    };
                    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return mag(a) > mag(b); });
                    for (std::size_t k = 0; k < std::min(N, order.size()); ++k) keep[i * cols + order[k]] = true;
                }
            CHECK(lacuna::prune::n_m(N, M).select(view) == keep);
            CHECK(same_bits(m.to_dense(), masked(dense, keep)));
            CHECK(m.nnz() == rows * ((cols + M - 1) / M) * N);

            // Already N:M-sparse data converts exactly with the nonzero rule, and the checked
            // constructor accepts what from_dense built.
            auto sparse = masked(dense, keep);
            auto exact = TestType::from_dense(lacuna::matrix_view<const T>(sparse, rows, cols), lacuna::prune::nonzero{});
            CHECK(same_bits(exact.to_dense(), sparse));
            TestType rebuilt(rows, cols, std::span<const T>(m.values(), m.nnz()),
                             std::span<const std::uint64_t>(m.meta(), rows * m.words_per_row()));
            CHECK(same_bits(rebuilt.to_dense(), masked(dense, keep)));
            auto moved = std::move(rebuilt);
            CHECK(rebuilt.nnz() == 0); // NOLINT: the moved-from state is specified
            CHECK(same_bits(moved.to_dense(), masked(dense, keep)));
        }
}

TEST_CASE("nm metadata follows the documented encoding", "[layout][nm]") {
    // 2:4 on one row of 8: kept [1,1,0,0] -> 0b0100, kept [0,0,1,1] -> 0b1110, lowest group first.
    std::vector<float> row{1, 2, 0, 0, 0, 0, 3, 4};
    auto m = lacuna::nm<float, 2, 4>::from_dense(lacuna::matrix_view<const float>(row, 1, 8), lacuna::prune::nonzero{});
    CHECK(m.meta()[0] == 0xe4u);
    CHECK(std::vector<float>(m.values(), m.values() + 4) == std::vector<float>{1, 2, 3, 4});
    // [1,0,1,0] -> 0b1000; a group with one kept element fills the other slot with the lowest free position.
    std::vector<float> row2{5, 0, 6, 0, 0, 0, 0, 7};
    auto m2 = lacuna::nm<float, 2, 4>::from_dense(lacuna::matrix_view<const float>(row2, 1, 8), lacuna::prune::nonzero{});
    CHECK(m2.meta()[0] == ((0b1100u << 4) | 0b1000u));
    CHECK(std::vector<float>(m2.values(), m2.values() + 4) == std::vector<float>{5, 6, 0, 7});
    // 4:8 uses 3-bit positions in 16-bit group codes.
    using F48 = lacuna::nm_format<4, 8>;
    static_assert(F48::position_bits == 3 && F48::group_bits == 16 && F48::groups_per_word == 4);
    static_assert(lacuna::nm_format<2, 8>::group_bits == 8 && lacuna::nm_format<1, 2>::group_bits == 1);
    static_assert(lacuna::nm_format<15, 16>::group_bits == 64 && lacuna::nm_format<2, 4>::groups_per_word == 16);
    std::vector<float> three{1, 2, 3, 0};
    lacuna::matrix_view<const float> three_view(three, 1, 4);
    using M24 = lacuna::nm<float, 2, 4>;
    CHECK_THROWS_WITH(M24::from_dense(three_view, lacuna::prune::nonzero{}),
                      "lacuna::nm::from_dense: the rule keeps more than 2 elements in row 0, group 0 (columns 0 to 3)");
    CHECK_THROWS_WITH(lacuna::prune::n_m(4, 4), "lacuna::prune::n_m: needs 0 < n < m, got 4:4");
}

TEST_CASE("nm rejects illegal metadata and sizes", "[layout][nm]") {
    using M24 = lacuna::nm<float, 2, 4>;
    std::vector<float> v(4, 1.f);
    auto make = [&](std::size_t cols, std::vector<std::uint64_t> meta, std::size_t nv) {
        return M24(1, cols, std::span<const float>(v.data(), nv), std::span<const std::uint64_t>(meta));
    };
    CHECK_NOTHROW(make(8, {0xe4}, 4));
    CHECK_NOTHROW(make(7, {0xe4}, 4)); // the last group is padded
    CHECK_THROWS_WITH(make(8, {0xe4}, 3), "lacuna::nm: values has 3 elements, expected 4 (1 rows of 2 groups of 2)");
    CHECK_THROWS_WITH(make(8, {0xe4, 0}, 4), "lacuna::nm: meta has 2 words, expected 1 (1 rows of 1)");
    CHECK_THROWS_WITH(make(8, {0xe1}, 4),
                      "lacuna::nm: meta of row 0, group 0, slot 1 is position 0, not above slot 0's 1 (positions "
                      "must increase within a group)");
    CHECK_THROWS_WITH(make(8, {0xe5}, 4),
                      "lacuna::nm: meta of row 0, group 0, slot 1 is position 1, not above slot 0's 1 (positions "
                      "must increase within a group)");
    CHECK_THROWS_WITH(make(8, {0x1e4}, 4), "lacuna::nm: meta of row 0 sets bits past its last group");
    using M38 = lacuna::nm<float, 1, 8>; // 3-bit positions in 4-bit fields: bit 3 is unused
    std::vector<float> one(1, 1.f);
    CHECK_THROWS_WITH((M38(1, 8, std::span<const float>(one), std::vector<std::uint64_t>{0x8})),
                      "lacuna::nm: meta of row 0, group 0 sets bits above its 3-bit code");
    using M35 = lacuna::nm<float, 1, 5>; // 3-bit positions, M = 5: position 5 is illegal
    CHECK_THROWS_WITH((M35(1, 5, std::span<const float>(one), std::vector<std::uint64_t>{0x5})),
                      "lacuna::nm: meta of row 0, group 0, slot 0 is position 5, outside [0, 5)");
}
