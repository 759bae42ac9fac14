// CSR: checked construction, round trips through dense, triplets, and the pruning rules.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "lacuna/layout/coo.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/prune.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;

using lacuna::test::awkward_shapes;
using lacuna::test::same_bits;
using lacuna::test::sparse_dense;

TEMPLATE_PRODUCT_TEST_CASE("csr round-trips dense exactly", "[layout][csr]", lacuna::csr,
                           ((float, std::int32_t), (double, std::int32_t), (bfloat16, std::int32_t),
                            (float, std::int64_t), (bfloat16, std::int64_t))) {
    using T = typename TestType::value_type;
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    for (auto [rows, cols] : awkward_shapes)
        for (double density : {0.0, 0.3, 1.0}) {
            INFO(rows << " x " << cols << ", density " << density);
            auto dense = sparse_dense<T>(rng, rows, cols, density, true);
            auto m = TestType::from_dense(lacuna::matrix_view<const T>(dense, rows, cols));
            std::size_t nonzeros = 0;
            for (T x : dense) nonzeros += float(x) != 0.f;
            CHECK(m.nnz() == nonzeros);
            CHECK(m.rows() == rows);
            CHECK(m.cols() == cols);
            CHECK(same_bits(m.to_dense(), dense));
            CHECK(m.bytes() == (rows + 1) * sizeof(typename TestType::index_type) +
                                   nonzeros * (sizeof(typename TestType::index_type) + sizeof(T)));
            // A copy is deep, a move leaves the source empty, and a view sees the same arrays.
            auto copy = m;
            CHECK(same_bits(copy.to_dense(), dense));
            if (m.nnz()) CHECK(copy.values() != m.values());
            auto moved = std::move(copy);
            CHECK(copy.nnz() == 0); // NOLINT: the moved-from state is specified
            CHECK(same_bits(moved.to_dense(), dense));
            lacuna::csr_view<const T, typename TestType::index_type> v = m;
            CHECK(v.values() == m.values());
            // The checked constructors accept what from_dense built.
            std::span<const typename TestType::index_type> rp(m.row_ptr(), rows + 1), ci(m.col_idx(), m.nnz());
            TestType rebuilt(rows, cols, rp, ci, std::span<const T>(m.values(), m.nnz()));
            CHECK(same_bits(rebuilt.to_dense(), dense));
        }
}

TEST_CASE("csr to_dense writes column-major and strided views", "[layout][csr]") {
    std::vector<float> dense{0, 1, 0, 2, 0, 0, 3, 0, 4, 0, 5, 0};
    auto m = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 3, 4));
    std::vector<float> col(12, -1.f);
    m.to_dense(lacuna::matrix_view<float, lacuna::order::col_major>(col, 3, 4));
    CHECK(col == std::vector<float>{0, 0, 4, 1, 0, 0, 0, 3, 5, 2, 0, 0});
    std::vector<float> wide(3 * 6, -1.f);
    m.to_dense(lacuna::matrix_view<float>(wide, 3, 4, 6));
    CHECK(wide[6 + 2] == 3.f);
    CHECK(wide[4] == -1.f); // the stride padding is not touched
    CHECK_THROWS_WITH(m.to_dense(lacuna::matrix_view<float>(wide, 3, 5, 6)),
                      "lacuna::csr::to_dense: out is 3 x 5, expected 3 x 4");
    CHECK(m.density() == 5.0 / 12.0);
    CHECK(lacuna::csr<float>().density() == 0);
    CHECK(lacuna::csr<float>().nnz() == 0);
}

TEST_CASE("csr rejects arrays that break an invariant, naming the array and the rule", "[layout][csr]") {
    using lacuna::invalid_layout;
    using span = std::span<const std::int32_t>;
    std::vector<float> v(4, 1.f);
    auto make = [&](std::size_t rows, std::size_t cols, std::vector<std::int32_t> rp, std::vector<std::int32_t> ci,
                    std::size_t nv) { return lacuna::csr<float>(rows, cols, span(rp), span(ci), std::span<const float>(v.data(), nv)); };
    CHECK_NOTHROW(make(2, 3, {0, 2, 4}, {0, 2, 1, 2}, 4));
    CHECK_THROWS_MATCHES(make(2, 3, {0, 2}, {0, 2, 1, 2}, 4), invalid_layout,
                         Catch::Matchers::Message("lacuna::csr: row_ptr has 2 elements, expected 3 (rows + 1)"));
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 4}, {0, 2, 1, 2}, 3),
                      "lacuna::csr: values has 3 elements, expected 4 (one per column index)");
    CHECK_THROWS_WITH(make(2, 3, {1, 2, 4}, {0, 2, 1, 2}, 4), "lacuna::csr: row_ptr[0] = 1, expected 0");
    CHECK_THROWS_WITH(make(2, 3, {0, 3, 2}, {0, 2, 1, 2}, 4),
                      "lacuna::csr: row_ptr[2] = 2 is less than row_ptr[1] = 3 (row pointers must not decrease)");
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 3}, {0, 2, 1, 2}, 4),
                      "lacuna::csr: row_ptr[2] = 3, expected 4 (the number of column indices)");
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 4}, {0, 3, 1, 2}, 4), "lacuna::csr: col_idx[1] = 3 is outside [0, 3) (row 0)");
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 4}, {0, -1, 1, 2}, 4), "lacuna::csr: col_idx[1] = -1 is outside [0, 3) (row 0)");
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 4}, {0, 2, 2, 1}, 4),
                      "lacuna::csr: col_idx[3] = 1 does not follow col_idx[2] = 2 (columns must be sorted and "
                      "unique within row 1)");
    CHECK_THROWS_WITH(make(2, 3, {0, 2, 4}, {0, 2, 1, 1}, 4),
                      "lacuna::csr: col_idx[3] = 1 does not follow col_idx[2] = 1 (columns must be sorted and "
                      "unique within row 1)");
    CHECK_THROWS_WITH(make(std::size_t(1) << 31, 3, {0}, {}, 0),
                      "lacuna::csr: row count 2147483648 does not fit int32_t indices (max 2147483647); use int64_t");
    // The view's checked constructor applies the same rules; `unchecked` skips them.
    std::vector<std::int32_t> rp{0, 2, 1}, ci{0, 1};
    CHECK_THROWS_AS((lacuna::csr_view<float>(2, 2, span(rp), span(ci), std::span<float>(v.data(), 2))), invalid_layout);
    CHECK_NOTHROW(lacuna::csr_view<float>(lacuna::unchecked, 2, 2, rp.data(), ci.data(), v.data()));
}

TEST_CASE("triplets sum duplicates in any order into sorted CSR and any layout", "[layout][coo]") {
    lacuna::triplets<float> t(3, 4);
    t.add(2, 3, 1.f);
    t.add(0, 1, 2.f);
    t.add(2, 0, 3.f);
    t.add(0, 1, 0.5f);
    t.add(1, 2, 4.f);
    t.add(1, 2, -4.f); // sums to an explicit zero, still stored
    auto m = t.to_csr();
    CHECK(m.nnz() == 4);
    CHECK(m.to_dense() == std::vector<float>{0, 2.5f, 0, 0, 0, 0, 0, 0, 3, 0, 0, 1});
    CHECK(std::vector<std::int32_t>(m.col_idx(), m.col_idx() + 4) == std::vector<std::int32_t>{1, 2, 0, 3});
    CHECK_THROWS_WITH(t.add(3, 0, 1.f), "lacuna::triplets::add: (3, 0) is outside the 3 x 4 matrix");
    CHECK(lacuna::triplets<double>(0, 0).to_csr().nnz() == 0);

    // Random triplets against a dense accumulation.
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    std::uniform_int_distribution<std::size_t> row(0, 40), col(0, 30);
    std::uniform_int_distribution<int> value(-8, 8); // small integers: sums exact in any order
    lacuna::triplets<double, std::int64_t> r(41, 31);
    std::vector<double> dense(41 * 31, 0.0);
    std::vector<bool> touched(41 * 31);
    for (int k = 0; k < 2000; ++k) {
        std::size_t i = row(rng), j = col(rng);
        double v = value(rng);
        r.add(i, j, v);
        dense[i * 31 + j] += v;
        touched[i * 31 + j] = true;
    }
    auto rm = r.to_csr();
    CHECK(rm.to_dense() == dense);
    CHECK(r.to<lacuna::bitmap<double, std::int64_t>>().to_dense() == dense);
    CHECK(r.to<lacuna::bsr<double, lacuna::dynamic, lacuna::dynamic, std::int64_t>>({4, 3}).to_dense() == dense);
    CHECK(rm.nnz() == std::size_t(std::count(touched.begin(), touched.end(), true)));
}

TEST_CASE("threshold keeps |x| > t and NaN", "[layout][prune]") {
    std::vector<float> d{0.5f, -0.2f, 0.3f, -0.7f, std::numeric_limits<float>::quiet_NaN(), 0.3f, 0.f, -0.31f};
    auto keep = lacuna::prune::threshold(0.3).select(lacuna::matrix_view<const float>(d, 2, 4));
    CHECK(keep == std::vector<bool>{true, false, false, true, true, false, false, true});
    CHECK_THROWS_WITH(lacuna::prune::threshold(-1), "lacuna::prune::threshold: t must be >= 0, got -1");
    CHECK_THROWS_AS(lacuna::prune::threshold(std::nan("")), lacuna::error);
}

TEST_CASE("top_fraction keeps the largest magnitudes, ties to the lower index", "[layout][prune]") {
    // Brute force: rank all positions by (magnitude desc, index asc) and keep the first k.
    auto brute = [](const std::vector<float>& d, std::size_t first, std::size_t n, std::size_t k, std::vector<bool>& keep) {
        std::vector<std::size_t> idx(n);
        std::iota(idx.begin(), idx.end(), first);
        auto mag = [&](std::size_t i) { return std::isnan(d[i]) ? std::numeric_limits<float>::infinity() : std::abs(d[i]); };
        std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return mag(a) > mag(b); });
        for (std::size_t i = 0; i < k; ++i) keep[idx[i]] = true;
    };
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    std::uniform_int_distribution<int> small(-3, 3); // many ties
    for (auto [rows, cols] : awkward_shapes)
        for (double f : {0.0, 0.1, 0.5, 0.77, 1.0}) {
            INFO(rows << " x " << cols << ", fraction " << f);
            std::vector<float> d(rows * cols);
            for (auto& x : d) x = float(small(rng));
            if (d.size() > 4) {
                d[1] = std::numeric_limits<float>::quiet_NaN();
                d[3] = -std::numeric_limits<float>::infinity();
            }
            lacuna::matrix_view<const float> view(d, rows, cols);
            std::vector<bool> expected(d.size());
            brute(d, 0, d.size(), std::size_t(std::floor(f * double(d.size()) + 0.5)), expected);
            CHECK(lacuna::prune::top_fraction(f).select(view) == expected);

            std::vector<bool> per_row(d.size());
            for (std::size_t i = 0; i < rows; ++i)
                brute(d, i * cols, cols, std::size_t(std::floor(f * double(cols) + 0.5)), per_row);
            CHECK(lacuna::prune::top_fraction(f, lacuna::prune::scope::row).select(view) == per_row);

            auto m = lacuna::csr<float>::from_dense(view, lacuna::prune::top_fraction(f));
            std::size_t kept = std::size_t(std::count(expected.begin(), expected.end(), true));
            CHECK(m.nnz() == kept);
        }
    CHECK_THROWS_WITH(lacuna::prune::top_fraction(1.5),
                      "lacuna::prune::top_fraction: fraction must be in [0, 1], got 1.5");
}

#if LACUNA_WITH_EIGEN
#include "lacuna/interop/eigen.hpp"

TEST_CASE("csr to and from Eigen, by copy and as views", "[layout][csr][eigen]") {
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    for (auto [rows, cols] : awkward_shapes) {
        INFO(rows << " x " << cols);
        auto dense = sparse_dense<double>(rng, rows, cols, 0.2);
        Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> e =
            Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                dense.data(), Eigen::Index(rows), Eigen::Index(cols));
        Eigen::SparseMatrix<double, Eigen::ColMajor> col_major = e.sparseView();
        Eigen::SparseMatrix<double, Eigen::RowMajor, std::int64_t> row_major = e.sparseView();

        auto from_col = lacuna::csr_from_eigen(col_major);
        auto from_row = lacuna::csr_from_eigen<std::int32_t>(row_major);
        CHECK(from_col.to_dense() == dense);
        CHECK(from_row.to_dense() == dense);

        auto back = lacuna::to_eigen(from_col);
        CHECK(Eigen::MatrixXd(back) == e);

        auto view = lacuna::csr_view_of(row_major);
        CHECK(view.values() == row_major.valuePtr()); // shared, not copied
        CHECK(view.to_dense() == dense);
        auto map = lacuna::eigen_view_of(from_col.view());
        CHECK(map.valuePtr() == from_col.values());
        CHECK(Eigen::MatrixXd(map) == e);
    }
    Eigen::SparseMatrix<float, Eigen::RowMajor, std::int32_t> uncompressed(3, 3);
    uncompressed.insert(1, 1) = 2.f;
    CHECK_THROWS_WITH(lacuna::csr_view_of(uncompressed),
                      "lacuna::csr_view_of: the Eigen matrix is not compressed; call makeCompressed() first");
    CHECK(lacuna::csr_from_eigen(uncompressed).to_dense() == std::vector<float>{0, 0, 0, 0, 2, 0, 0, 0, 0});
}
#endif
