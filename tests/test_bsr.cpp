// BSR: static and run-time block shapes, padding, block pruning, checked construction.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/prune.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::block_size;
using lacuna::dynamic;
using lacuna::test::awkward_shapes;
using lacuna::test::masked;
using lacuna::test::same_bits;
using lacuna::test::sparse_dense;

namespace {
// The block a test uses for a BSR type: its own, or 3 × 2 when the shape is dynamic.
template <class M> block_size test_block() {
    if constexpr (M::static_block_rows == dynamic) return {3, 2};
    else return {M::static_block_rows, M::static_block_cols};
}
} // namespace

TEMPLATE_TEST_CASE("bsr round-trips dense exactly and keeps padding out", "[layout][bsr]",
                   (lacuna::bsr<float, 4, 4>), (lacuna::bsr<float, 1, 8>), (lacuna::bsr<double, 2, 2>),
                   (lacuna::bsr<bfloat16, 2, 3, std::int64_t>), (lacuna::bsr<float, dynamic, dynamic>),
                   (lacuna::bsr<bfloat16, dynamic, dynamic, std::int64_t>)) {
    using T = typename TestType::value_type;
    using Index = typename TestType::index_type;
    const block_size b = test_block<TestType>();
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed() << ", block " << b.rows << " x " << b.cols);
    for (auto [rows, cols] : awkward_shapes)
        for (double density : {0.0, 0.05, 0.4, 1.0}) {
            INFO(rows << " x " << cols << ", density " << density);
            auto dense = sparse_dense<T>(rng, rows, cols, density, true);
            lacuna::matrix_view<const T> view(dense, rows, cols);
            auto m = TestType::from_dense(view, b);
            CHECK(m.rows() == rows);
            CHECK(m.cols() == cols);
            CHECK(m.row_blocks() == (rows + b.rows - 1) / b.rows);
            CHECK(m.col_blocks() == (cols + b.cols - 1) / b.cols);
            CHECK(same_bits(m.to_dense(), dense));
            CHECK(m.nnz() == m.nnz_blocks() * b.rows * b.cols);
            CHECK(m.bytes() == (m.row_blocks() + 1) * sizeof(Index) + m.nnz_blocks() * sizeof(Index) +
                                   m.nnz() * sizeof(T));
            if (density == 1.0 && rows && cols) CHECK(m.density() == 1.0);

            // The checked constructor accepts what from_dense built, even with garbage in the padding.
            std::vector<T> values(m.values(), m.values() + m.nnz());
            for (std::size_t k = 0; k < m.nnz_blocks(); ++k) {
                std::size_t bi = 0;
                while (std::size_t(m.block_row_ptr()[bi + 1]) <= k) ++bi;
                std::size_t bj = std::size_t(m.block_col_idx()[k]);
                for (std::size_t r = 0; r < b.rows; ++r)
                    for (std::size_t c = 0; c < b.cols; ++c)
                        if (bi * b.rows + r >= rows || bj * b.cols + c >= cols) {
                            REQUIRE(float(values[k * b.rows * b.cols + r * b.cols + c]) == 0.f); // built with zeros
                            values[k * b.rows * b.cols + r * b.cols + c] = T(99.f);
                        }
            }
            TestType rebuilt(rows, cols, b, std::span<const Index>(m.block_row_ptr(), m.row_blocks() + 1),
                             std::span<const Index>(m.block_col_idx(), m.nnz_blocks()), std::span<const T>(values));
            CHECK(same_bits(rebuilt.to_dense(), dense));

            auto copy = rebuilt;
            auto moved = std::move(copy);
            CHECK(copy.nnz_blocks() == 0); // NOLINT: the moved-from state is specified
            CHECK(same_bits(moved.to_dense(), dense));
            lacuna::bsr_view<const T, TestType::static_block_rows, TestType::static_block_cols, Index> v = moved;
            CHECK(v.values() == moved.values());
        }
}

TEST_CASE("bsr from an element rule stores the selected elements only", "[layout][bsr][prune]") {
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    auto dense = sparse_dense<float>(rng, 37, 29, 0.8);
    lacuna::matrix_view<const float> view(dense, 37, 29);
    lacuna::prune::top_fraction rule(0.1);
    auto m = lacuna::bsr<float, 4, 4>::from_dense(view, rule);
    CHECK(m.to_dense() == masked(dense, rule.select(view)));
}

TEST_CASE("block rules keep whole blocks by Frobenius norm", "[layout][bsr][prune]") {
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    for (auto shape : awkward_shapes)
        for (block_size b : {block_size{4, 4}, block_size{3, 5}, block_size{1, 1}}) {
            const std::size_t rows = shape.first, cols = shape.second; // lambdas below capture them
            INFO(rows << " x " << cols << ", block " << b.rows << " x " << b.cols);
            auto dense = sparse_dense<float>(rng, rows, cols, 0.3);
            lacuna::matrix_view<const float> view(dense, rows, cols);
            const std::size_t nbr = (rows + b.rows - 1) / b.rows, nbc = (cols + b.cols - 1) / b.cols;
            std::vector<double> norms(nbr * nbc, 0.0); // brute force, block by block
            for (std::size_t bi = 0; bi < nbr; ++bi)
                for (std::size_t bj = 0; bj < nbc; ++bj) {
                    double s = 0;
                    for (std::size_t i = bi * b.rows; i < std::min(rows, (bi + 1) * b.rows); ++i)
                        for (std::size_t j = bj * b.cols; j < std::min(cols, (bj + 1) * b.cols); ++j)
                            s += double(dense[i * cols + j]) * dense[i * cols + j];
                    norms[bi * nbc + bj] = std::sqrt(s);
                }
            auto expand = [&](const std::vector<bool>& blocks) {
                std::vector<bool> keep(rows * cols);
                for (std::size_t i = 0; i < rows; ++i)
                    for (std::size_t j = 0; j < cols; ++j) keep[i * cols + j] = blocks[(i / b.rows) * nbc + j / b.cols];
                return keep;
            };
            std::vector<bool> over(norms.size());
            for (std::size_t k = 0; k < norms.size(); ++k) over[k] = norms[k] > 0.9;
            CHECK(lacuna::prune::block_threshold(b, 0.9).select(view) == expand(over));

            for (double f : {0.0, 0.25, 0.5, 1.0}) {
                std::vector<std::size_t> order(norms.size());
                std::iota(order.begin(), order.end(), 0);
                std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) { return norms[x] > norms[y]; });
                std::vector<bool> top(norms.size());
                for (std::size_t k = 0; k < std::size_t(std::floor(f * double(norms.size()) + 0.5)); ++k) top[order[k]] = true;
                lacuna::prune::block_top_fraction rule(b, f);
                CHECK(rule.select(view) == expand(top));
                if (b == block_size{4, 4}) {
                    auto m = lacuna::bsr<float, 4, 4>::from_dense(view, rule);
                    CHECK(m.to_dense() == masked(dense, expand(top)));
                }
            }
        }
    CHECK_THROWS_WITH(lacuna::prune::block_threshold({0, 4}, 1.0),
                      "lacuna::prune::block_threshold: block size 0 x 4 is empty");
    CHECK_THROWS_WITH(lacuna::prune::block_top_fraction({2, 2}, -0.5),
                      "lacuna::prune::block_top_fraction: fraction must be in [0, 1], got -0.5");
}

TEST_CASE("bsr rejects arrays that break an invariant", "[layout][bsr]") {
    using lacuna::invalid_layout;
    using span = std::span<const std::int32_t>;
    std::vector<float> v(3 * 4, 1.f);
    // A 5 × 4 matrix of 2 × 2 blocks: 3 block rows (the last one padded), 2 block columns.
    auto make = [&](std::vector<std::int32_t> rp, std::vector<std::int32_t> ci, std::size_t nv) {
        return lacuna::bsr<float, 2, 2>(5, 4, span(rp), span(ci), std::span<const float>(v.data(), nv));
    };
    CHECK_NOTHROW(make({0, 1, 1, 3}, {1, 0, 1}, 12));
    CHECK_THROWS_WITH(make({0, 1, 3}, {1, 0, 1}, 12),
                      "lacuna::bsr_view: block_row_ptr has 3 elements, expected 4 (block rows + 1)");
    CHECK_THROWS_WITH(make({0, 1, 1, 3}, {1, 0, 1}, 11),
                      "lacuna::bsr_view: values has 11 elements, expected 12 (3 blocks of 2 x 2)");
    CHECK_THROWS_WITH(make({0, 1, 1, 3}, {1, 0, 2}, 12),
                      "lacuna::bsr_view: block_col_idx[2] = 2 is outside [0, 2) (block row 2)");
    CHECK_THROWS_WITH(make({0, 1, 1, 3}, {1, 1, 0}, 12),
                      "lacuna::bsr_view: block_col_idx[2] = 0 does not follow block_col_idx[1] = 1 (block columns "
                      "must be sorted and unique within block row 2)");
    CHECK_THROWS_WITH(make({0, 2, 1, 3}, {1, 0, 1}, 12),
                      "lacuna::bsr_view: block_row_ptr[2] = 1 is less than block_row_ptr[1] = 2 (block row pointers "
                      "must not decrease)");
    std::vector<std::int32_t> rp{0, 1, 1, 3}, ci{1, 0, 1};
    CHECK_THROWS_WITH((lacuna::bsr<float, 2, 2>(5, 4, {2, 3}, span(rp), span(ci), std::span<const float>(v))),
                      "lacuna::bsr: block size 2 x 3 differs from the type's 2 x 2");
    CHECK_THROWS_WITH((lacuna::bsr<float, dynamic, dynamic>(5, 4, {0, 2}, span(rp), span(ci), std::span<const float>(v))),
                      "lacuna::bsr: block size 0 x 2 is empty");
    auto m = make({0, 1, 1, 3}, {1, 0, 1}, 12);
    CHECK(m.density() == (4.0 + 2.0 + 2.0) / 20.0); // the last block row has one real row
}
