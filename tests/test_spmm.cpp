// SpMM (sparse × dense and dense × sparse) and SpMV in every layout against the reference, on every
// arch, at 1 and 2 threads.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/reference/spmm.hpp"
#include "lacuna/spmm.hpp"
#include "support/arch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::test::poisoned;
using lacuna::test::random_vector;
using lacuna::test::rel_error;
using lacuna::bfloat16;

namespace {

// A rows × cols CSR matrix: uniform density, or power-law row lengths with empty rows.
template <class Index>
lacuna::csr<float, Index> random_csr(std::mt19937_64& rng, std::size_t rows, std::size_t cols, double density,
                                     bool power_law) {
    std::vector<float> dense(rows * cols, 0.f);
    std::uniform_real_distribution<float> value(-1.f, 1.f), u(0.f, 1.f);
    for (std::size_t i = 0; i < rows; ++i) {
        // Power law: row i keeps about density · cols · 3 / (1 + i)^0.8 elements, many rows none.
        double d = power_law ? std::min(1.0, density * 3.0 / std::pow(double(i % 50) + 1.0, 0.8)) : density;
        if (power_law && i % 7 == 3) d = 0;
        for (std::size_t j = 0; j < cols; ++j)
            if (u(rng) < d) dense[i * cols + j] = value(rng);
    }
    return lacuna::csr<float, Index>::from_dense(lacuna::matrix_view<const float>(dense, rows, cols));
}

struct shape {
    std::size_t m, k, n;
};
// n covers every width a row of C is cut into: 64, 32, 16, 8 and 4 columns and single ones.
const std::vector<shape> shapes{{0, 0, 0},     {0, 5, 3},      {5, 0, 4},      {1, 1, 1},    {7, 13, 1},
                                {33, 17, 5},   {40, 64, 16},   {29, 31, 24},   {13, 40, 12}, {65, 31, 17},
                                {100, 80, 64}, {37, 200, 67},  {128, 96, 100}, {9, 70, 60}};

} // namespace

TEMPLATE_TEST_CASE("csr spmm matches the reference", "[spmm][csr]", std::int32_t, std::int64_t) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (auto [m, k, n] : shapes)
        for (bool power_law : {false, true})
            for (double density : {0.0, 0.1, 0.6}) {
                INFO(m << " x " << k << " times " << k << " x " << n << ", density " << density
                       << (power_law ? ", power-law rows" : ""));
                auto a = random_csr<TestType>(rng, m, k, density, power_law);
                auto b = random_vector(rng, k * n);
                for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{-0.5f, 0.f}, std::pair{2.f, 0.75f}}) {
                    INFO("alpha " << alpha << ", beta " << beta);
                    auto c0 = beta == 0.f ? poisoned(m * n) : random_vector(rng, m * n);
                    auto c = c0, c_ref = c0;
                    lacuna::matrix_view<const float> bv(b, k, n);
                    lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n), {alpha, beta});
                    lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), alpha, beta);
                    CHECK(rel_error(c, c_ref, beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(c0)) <= 1e-6);
                }
            }
}

TEST_CASE("csr spmm: strided operands, thread counts, NaN in B", "[spmm][csr]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t m = 91, k = 57, n = 35;
    auto a = random_csr<std::int32_t>(rng, m, k, 0.3, true);
    auto b = random_vector(rng, k * 40);          // row stride 40
    lacuna::matrix_view<const float> bv(b, k, n, 40);
    std::vector<float> c_ref = poisoned(m * n);
    lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), 1.f, 0.f);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        lacuna::set_num_threads(threads);
        std::vector<float> c = poisoned(m * 48); // row stride 48
        lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n, 48));
        std::vector<float> packed(m * n);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) packed[i * n + j] = c[i * 48 + j];
        CHECK(rel_error(packed, c_ref) <= 1e-6);
        if (first.empty()) first = packed;
        CHECK(lacuna::test::same_bits(packed, first)); // the thread count does not change a bit
        CHECK(std::isnan(c[47]));                       // the stride padding is not written
    }
    lacuna::set_num_threads(0);

    // NaN in B reaches exactly the rows that store its column.
    std::vector<float> b2(k * n, 1.f);
    b2[5 * n + 2] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> c(m * n);
    lacuna::spmm(a, lacuna::matrix_view<const float>(b2, k, n), lacuna::matrix_view<float>(c, m, n));
    for (std::size_t i = 0; i < m; ++i) {
        bool stores_5 = false;
        a.for_each_in_row(i, [&](std::size_t j, float) { stores_5 = stores_5 || j == 5; });
        CHECK(std::isnan(c[i * n + 2]) == stores_5);
    }
}

TEMPLATE_TEST_CASE("csr spmv matches the reference", "[spmv][csr]", std::int32_t, std::int64_t) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (auto [m, k, n] : shapes)
        for (bool power_law : {false, true}) {
            INFO(m << " x " << k << (power_law ? ", power-law rows" : ""));
            auto a = random_csr<TestType>(rng, m, k, 0.4, power_law);
            auto x = random_vector(rng, k);
            auto y0 = random_vector(rng, m);
            for (float beta : {0.f, 1.5f}) {
                auto y = beta == 0.f ? poisoned(m) : y0, y_ref = y;
                const double floor = beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(y0);
                lacuna::spmv(a, x, y, {0.5f, beta});
                lacuna::ref::spmm(a, lacuna::matrix_view<const float>(x, k, 1), lacuna::matrix_view<float>(y_ref, m, 1),
                                  0.5f, beta);
                CHECK(rel_error(y, y_ref, floor) <= 1e-6);
            }
        }
}

TEST_CASE("spmm and spmv reject bad shapes and aliasing", "[spmm][errors]") {
    std::vector<float> dense{1, 0, 2, 0, 3, 0};
    auto a = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 2, 3));
    std::vector<float> b(12), c(8);
    CHECK_THROWS_WITH(lacuna::spmm(a, lacuna::matrix_view<const float>(b, 4, 3), lacuna::matrix_view<float>(c, 2, 3)),
                      "lacuna::spmm: B has 4 rows, expected 3 (the columns of A, 2 x 3)");
    CHECK_THROWS_WITH(lacuna::spmm(a, lacuna::matrix_view<const float>(b, 3, 4), lacuna::matrix_view<float>(c, 2, 3)),
                      "lacuna::spmm: C is 2 x 3, expected 2 x 4 (rows of A x columns of B)");
    CHECK_THROWS_AS(lacuna::spmm(a, lacuna::matrix_view<const float>(b, 3, 4), lacuna::matrix_view<float>(b, 2, 4)),
                    lacuna::aliasing_error);
    CHECK_THROWS_AS(lacuna::spmm(a, lacuna::matrix_view<const float>(b.data() + 2, 3, 2),
                                 lacuna::matrix_view<float>(b.data(), 2, 2)),
                    lacuna::aliasing_error);
    std::vector<float> x(3), y(2);
    CHECK_THROWS_WITH(lacuna::spmv(a, std::span<const float>(x).first(2), y),
                      "lacuna::spmv: x has 2 elements, expected 3 (the columns of A)");
    CHECK_THROWS_WITH(lacuna::spmv(a, x, std::span<float>(x)), "lacuna::spmv: y has 3 elements, expected 2 (the rows of A)");
    CHECK_NOTHROW(lacuna::spmv(a.view(), x, y));
}

TEST_CASE("rows are split by work, not by count", "[spmm][threads]") {
    // Row 0 holds 90 of 100 nonzeros: two parts split right after it.
    std::vector<std::int32_t> row_ptr{0, 90, 92, 94, 96, 98, 100};
    auto bounds = lacuna::detail::balanced_row_parts(6, 2, [&](std::size_t i) { return row_ptr[i]; });
    CHECK(bounds == std::vector<std::size_t>{0, 1, 6});
    std::vector<std::int32_t> empty_rows(11, 0);
    CHECK(lacuna::detail::balanced_row_parts(10, 3, [&](std::size_t i) { return empty_rows[i]; }) ==
          std::vector<std::size_t>{0, 4, 7, 10});
}

TEMPLATE_TEST_CASE("bsr spmm matches the reference, padding never read into C", "[spmm][bsr]", (lacuna::bsr<float, 4, 4>),
                   (lacuna::bsr<float, 16, 16>), (lacuna::bsr<float, 32, 32>), (lacuna::bsr<float, 2, 3>),
                   (lacuna::bsr<float, 8, 8, std::int64_t>), (lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>)) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const lacuna::block_size block = TestType::static_block_rows == lacuna::dynamic
                                         ? lacuna::block_size{3, 5}
                                         : lacuna::block_size{TestType::static_block_rows, TestType::static_block_cols};
    for (auto [m, k, n] : shapes)
        for (double density : {0.0, 0.3, 1.0}) {
            INFO(m << " x " << k << " times " << k << " x " << n << ", block density " << density);
            auto dense = lacuna::test::sparse_dense<float>(rng, m, k, 0.8);
            lacuna::matrix_view<const float> dv(dense, m, k);
            auto a = TestType::from_dense(dv, block, lacuna::prune::block_top_fraction(block, density));
            // NaN in the padding (the parts of edge blocks outside the matrix) must not reach C.
            for (std::size_t bi = 0; bi < a.row_blocks(); ++bi)
                for (auto blk = std::size_t(a.block_row_ptr()[bi]); blk < std::size_t(a.block_row_ptr()[bi + 1]); ++blk)
                    for (std::size_t r = 0; r < block.rows; ++r)
                        for (std::size_t col = 0; col < block.cols; ++col)
                            if (bi * block.rows + r >= m || std::size_t(a.block_col_idx()[blk]) * block.cols + col >= k)
                                a.block_values(blk)[r * block.cols + col] = std::numeric_limits<float>::quiet_NaN();
            auto b = random_vector(rng, k * n);
            lacuna::matrix_view<const float> bv(b, k, n);
            for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{1.5f, -0.5f}}) {
                auto c = beta == 0.f ? poisoned(m * n) : random_vector(rng, m * n), c_ref = c;
                const double floor = beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(c);
                lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n), {alpha, beta});
                lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), alpha, beta);
                CHECK(rel_error(c, c_ref, floor) <= 1e-6);
            }
        }
}

TEMPLATE_TEST_CASE("bitmap spmv matches the reference", "[spmv][bitmap]", std::int32_t, std::int64_t) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (auto [m, k, n] : shapes)
        for (double density : {0.0, 0.05, 0.3, 0.7, 1.0}) { // AVX-512 rows sparser than 1 in 8 take another path
            INFO(m << " x " << k << ", density " << density);
            auto dense = lacuna::test::sparse_dense<float>(rng, m, k, density);
            auto a = lacuna::bitmap<float, TestType>::from_dense(lacuna::matrix_view<const float>(dense, m, k));
            auto x = random_vector(rng, k);
            for (float beta : {0.f, -1.f}) {
                auto y = beta == 0.f ? poisoned(m) : random_vector(rng, m), y_ref = y;
                const double floor = beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(y);
                lacuna::spmv(a, x, y, {1.25f, beta});
                lacuna::ref::spmm(a, lacuna::matrix_view<const float>(x, k, 1), lacuna::matrix_view<float>(y_ref, m, 1),
                                  1.25f, beta);
                CHECK(rel_error(y, y_ref, floor) <= 1e-6);
            }
        }
}

namespace {
// Every layout and value type the products take, the dispatched combinations and some that run the
// translation unit's own arch.
#define LACUNA_PRODUCT_LAYOUTS                                                                                         \
    lacuna::csr<float>, lacuna::csr<bfloat16>, (lacuna::bsr<bfloat16, 4, 4>), (lacuna::nm<float, 2, 4>),             \
        (lacuna::nm<float, 1, 4>), (lacuna::nm<float, 2, 8>), (lacuna::nm<float, 4, 8>), (lacuna::nm<bfloat16, 2, 4>), \
        (lacuna::nm<bfloat16, 2, 8>), lacuna::bitmap<float>, lacuna::bitmap<bfloat16>, (lacuna::bitmap<float, std::int64_t>), \
        (lacuna::csr<float, std::int64_t>)

// Runs f() at 1 and 2 threads and checks that the outputs are the same bits.
template <class F> void same_for_1_and_2_threads(F&& f) {
    lacuna::set_num_threads(1);
    const std::vector<float> one = f();
    lacuna::set_num_threads(2);
    const std::vector<float> two = f();
    lacuna::set_num_threads(0);
    CHECK(lacuna::test::same_bits(one, two));
}
} // namespace

TEMPLATE_TEST_CASE("spmm and spmv in every layout match the reference", "[spmm][spmv][layouts]", LACUNA_PRODUCT_LAYOUTS) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (auto [m, k, n] : shapes)
        for (double density : {0.0, 0.3, 0.9}) {
            INFO(m << " x " << k << " times " << k << " x " << n << ", density " << density);
            const auto a = lacuna::test::random_layout<TestType>(rng, m, k, density);
            const auto b = random_vector(rng, k * n);
            const lacuna::matrix_view<const float> bv(b, k, n);
            for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, -1.25f}}) {
                INFO("alpha " << alpha << ", beta " << beta);
                const auto c0 = beta == 0.f ? poisoned(m * n) : random_vector(rng, m * n);
                const double floor = beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(c0);
                auto c_ref = c0;
                lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), alpha, beta);
                const lacuna::product_options opts{alpha, beta};
                same_for_1_and_2_threads([&, m = m, n = n] {
                    auto c = c0;
                    lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n), opts);
                    CHECK(rel_error(c, c_ref, floor) <= 1e-6);
                    return c;
                });
                if (n != 1) continue;
                same_for_1_and_2_threads([&] {
                    auto y = c0;
                    lacuna::spmv(a, std::span<const float>(b), std::span<float>(y), opts);
                    CHECK(rel_error(y, c_ref, floor) <= 1e-6);
                    return y;
                });
            }
        }
}

TEMPLATE_TEST_CASE("spmv in every layout: long rows, NaN in x only where stored", "[spmv][layouts]", LACUNA_PRODUCT_LAYOUTS) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // Rows long enough for every vector loop and its tails (2:4 on AVX-512 takes 32 columns at a time).
    for (std::size_t k : {std::size_t(64), std::size_t(250), std::size_t(1000)}) {
        const std::size_t m = 37;
        INFO(m << " x " << k);
        const auto a = lacuna::test::random_layout<TestType>(rng, m, k, 0.6);
        auto x = random_vector(rng, k);
        auto y = poisoned(m), y_ref = poisoned(m);
        lacuna::spmv(a, x, y);
        lacuna::ref::spmm(a, lacuna::matrix_view<const float>(x, k, 1), lacuna::matrix_view<float>(y_ref, m, 1), 1.f, 0.f);
        CHECK(rel_error(y, y_ref) <= 1e-6);
        x[k / 2 + 1] = std::numeric_limits<float>::quiet_NaN();
        lacuna::spmv(a, x, y);
        for (std::size_t i = 0; i < m; ++i) {
            bool stored = false;
            a.for_each_in_row(i, [&](std::size_t j, auto) { stored = stored || j == k / 2 + 1; });
            CHECK(std::isnan(y[i]) == stored);
        }
    }
}

TEMPLATE_TEST_CASE("bitmap spmv: an infinite value stays in its row", "[spmv][bitmap]", float, bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // The AVX-512 kernel loads sixteen packed values at a time, past the slice's own: an empty slice
    // at the end of a row sees the next row's. Every third row is all infinities, and the row before
    // it ends in an empty slice (columns 240 to 249): no infinity may reach that row's sum.
    for (double density : {0.05, 0.3, 0.6}) {
        const std::size_t m = 37, k = 250;
        INFO("density " << density);
        auto dense = lacuna::test::sparse_dense<TestType>(rng, m, k, density);
        std::vector<bool> infinite(m);
        for (std::size_t i = 1; i < m; i += 3) {
            for (std::size_t j = 240; j < k; ++j) dense[(i - 1) * k + j] = TestType(0.f);
            for (std::size_t j = 0; j < k; ++j)
                if (float(dense[i * k + j]) != 0.f) {
                    dense[i * k + j] = TestType(std::numeric_limits<float>::infinity());
                    infinite[i] = true;
                }
        }
        const auto a = lacuna::bitmap<TestType>::from_dense(lacuna::matrix_view<const TestType>(dense, m, k));
        const auto x = random_vector(rng, k);
        auto y = poisoned(m);
        lacuna::spmv(a, x, y);
        for (std::size_t i = 0; i < m; ++i) CHECK(std::isfinite(y[i]) == !infinite[i]);
    }
}

TEMPLATE_TEST_CASE("N:M spmm over long rows: several slices of B, wide and narrow panels", "[spmm][nm]", (lacuna::nm<float, 2, 4>),
                   (lacuna::nm<bfloat16, 2, 8>)) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // k past the kernel's slice of B for every panel width (one register wide: 4096 columns of A on
    // AVX-512); n = 150 takes a panel of eight registers, then narrower ones for the rest.
    const std::size_t m = 37, k = 4500, n = 150;
    const auto a = lacuna::test::random_layout<TestType>(rng, m, k, 0.5);
    const auto b = random_vector(rng, k * n);
    const lacuna::matrix_view<const float> bv(b, k, n);
    const auto c0 = random_vector(rng, m * n);
    auto c_ref = c0;
    lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), 0.5f, -1.25f);
    same_for_1_and_2_threads([&] {
        auto c = c0;
        lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n), {0.5f, -1.25f});
        CHECK(rel_error(c, c_ref) <= 1e-6);
        return c;
    });
}

TEMPLATE_TEST_CASE("csr spmm over long dense rows: A's columns a chunk at a time", "[spmm][csr]", lacuna::csr<float>,
                   lacuna::csr<bfloat16>, (lacuna::csr<float, std::int64_t>)) {
    LACUNA_FOR_EACH_ARCH();
    using T = typename TestType::value_type;
    auto rng = lacuna::test::make_rng();
    // Rows 60% dense over 9000 columns take the chunked path for every panel of B wider than 8 KiB
    // a row (all of a 64-column panel on AVX-512, 32 on AVX2, 16 on SSE), with a last chunk
    // part-filled; 70 rows are two blocks of rows and a partial one; every fifth row is empty and row
    // 9 is full, so chunks with none or all of a row's elements come up. n = 67 adds narrow panels.
    const std::size_t m = 70, k = 9000, n = 67;
    auto dense = lacuna::test::sparse_dense<T>(rng, m, k, 0.6);
    for (std::size_t i = 0; i < m; i += 5) std::fill_n(dense.begin() + std::ptrdiff_t(i * k), k, T(0.f));
    for (std::size_t j = 0; j < k; ++j) dense[9 * k + j] = T(1.f + float(j % 3));
    const auto a = TestType::from_dense(lacuna::matrix_view<const T>(dense, m, k));
    const auto b = random_vector(rng, k * n);
    const lacuna::matrix_view<const float> bv(b, k, n);
    for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, -1.25f}}) {
        INFO("alpha " << alpha << ", beta " << beta);
        const auto c0 = beta == 0.f ? poisoned(m * n) : random_vector(rng, m * n);
        auto c_ref = c0;
        lacuna::ref::spmm(a, bv, lacuna::matrix_view<float>(c_ref, m, n), alpha, beta);
        same_for_1_and_2_threads([&, alpha = alpha, beta = beta] {
            auto c = c0;
            lacuna::spmm(a, bv, lacuna::matrix_view<float>(c, m, n), {alpha, beta});
            // Rows of up to 9000 terms summed in float (one chain on the scalar arch): rounding
            // grows like √9000 · 2⁻²⁴ ≈ 6e-6 of the sums, not the 1e-6 of short rows (a seed measured 1.008e-6).
            CHECK(rel_error(c, c_ref, beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(c0)) <= 1e-5);
            return c;
        });
    }
}

TEMPLATE_TEST_CASE("spmm with column-major or bfloat16 B", "[spmm][layouts]", lacuna::csr<float>, (lacuna::nm<bfloat16, 2, 4>),
                   (lacuna::bsr<float, 16, 16>)) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t m = 45, k = 70, n = 19;
    const auto a = lacuna::test::random_layout<TestType>(rng, m, k, 0.4);
    const auto b = random_vector(rng, k * n);
    std::vector<float> b_col(k * n);
    std::vector<bfloat16> b_bf16(k * n);
    std::vector<float> b_rounded(k * n);
    for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            b_col[j * k + i] = b[i * n + j];
            b_bf16[i * n + j] = bfloat16(b[i * n + j]);
            b_rounded[i * n + j] = float(b_bf16[i * n + j]);
        }
    auto c_ref = poisoned(m * n), c_ref_bf16 = poisoned(m * n);
    lacuna::ref::spmm(a, lacuna::matrix_view<const float>(b, k, n), lacuna::matrix_view<float>(c_ref, m, n), 1.f, 0.f);
    lacuna::ref::spmm(a, lacuna::matrix_view<const float>(b_rounded, k, n), lacuna::matrix_view<float>(c_ref_bf16, m, n),
                      1.f, 0.f);
    auto c = poisoned(m * n);
    lacuna::spmm(a, lacuna::matrix_view<const float, lacuna::order::col_major>(b_col, k, n),
                 lacuna::matrix_view<float>(c, m, n));
    CHECK(rel_error(c, c_ref) <= 1e-6);
    c = poisoned(m * n);
    lacuna::spmm(a, lacuna::matrix_view<const bfloat16>(b_bf16, k, n), lacuna::matrix_view<float>(c, m, n));
    CHECK(rel_error(c, c_ref_bf16) <= 1e-6);
}

TEMPLATE_TEST_CASE("dense x sparse spmm matches the reference", "[spmm][dense-sparse]", LACUNA_PRODUCT_LAYOUTS,
                   (lacuna::bsr<float, 16, 16>)) {
    auto rng = lacuna::test::make_rng();
    for (auto [t, m, k] : shapes)
        for (double density : {0.0, 0.5}) {
            INFO(t << " x " << m << " times " << m << " x " << k << ", density " << density);
            const auto a = lacuna::test::random_layout<TestType>(rng, m, k, density);
            const auto x = random_vector(rng, t * m);
            const lacuna::matrix_view<const float> xv(x, t, m);
            for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{-2.f, 0.5f}}) {
                const auto c0 = beta == 0.f ? poisoned(t * k) : random_vector(rng, t * k);
                const double floor = beta == 0.f ? 0.0 : std::abs(beta) * lacuna::test::norm(c0);
                auto c_ref = c0;
                lacuna::ref::spmm(xv, a, lacuna::matrix_view<float>(c_ref, t, k), alpha, beta);
                const lacuna::product_options opts{alpha, beta};
                same_for_1_and_2_threads([&, t = t, k = k] {
                    auto c = c0;
                    lacuna::spmm(xv, a, lacuna::matrix_view<float>(c, t, k), opts);
                    CHECK(rel_error(c, c_ref, floor) <= 1e-6);
                    return c;
                });
            }
        }
}

TEST_CASE("dense x sparse spmm rejects bad shapes and aliasing", "[spmm][dense-sparse][errors]") {
    std::vector<float> dense{1, 0, 2, 0, 3, 0};
    const auto a = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 2, 3));
    std::vector<float> x(8), c(12);
    CHECK_THROWS_WITH(lacuna::spmm(lacuna::matrix_view<const float>(x, 4, 2), a, lacuna::matrix_view<float>(c, 4, 2)),
                      "lacuna::spmm: C is 4 x 2, expected 4 x 3 (rows of X x columns of A)");
    CHECK_THROWS_WITH(lacuna::spmm(lacuna::matrix_view<const float>(x, 2, 4), a, lacuna::matrix_view<float>(c, 2, 3)),
                      "lacuna::spmm: X has 4 columns, expected 2 (the rows of A, 2 x 3)");
    CHECK_THROWS_AS(lacuna::spmm(lacuna::matrix_view<const float>(c.data(), 2, 2), a, lacuna::matrix_view<float>(c.data() + 1, 2, 3)),
                    lacuna::aliasing_error);
}
