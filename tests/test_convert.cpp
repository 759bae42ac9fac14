// Every layout converts into every other without a dense intermediate, exactly.
#include <cstdint>
#include <typeinfo>
#include <vector>

#include "lacuna/layout/convert.hpp"
#include "lacuna/layout/prune.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::dynamic;
using lacuna::test::awkward_shapes;
using lacuna::test::masked;
using lacuna::test::same_bits;
using lacuna::test::sparse_dense;

namespace {

template <class Target, class Source>
void check_conversion(const Source& source, const std::vector<typename Source::value_type>& dense,
                      lacuna::block_size block = {0, 0}) {
    INFO("to " << typeid(Target).name());
    Target t = lacuna::convert_to<Target>(source, block);
    CHECK(t.rows() == source.rows());
    CHECK(t.cols() == source.cols());
    CHECK(same_bits(t.to_dense(), dense));
}

template <class Source> Source build(const std::vector<typename Source::value_type>& dense, std::size_t rows, std::size_t cols) {
    lacuna::matrix_view<const typename Source::value_type> view(dense, rows, cols);
    if constexpr (requires { Source::from_dense(view, lacuna::block_size{3, 3}); } && !requires { Source::from_dense(view); })
        return Source::from_dense(view, lacuna::block_size{3, 3}); // a dynamic block shape
    else
        return Source::from_dense(view, lacuna::prune::nonzero{});
}

} // namespace

TEMPLATE_TEST_CASE("convert_to carries every stored nonzero between layouts", "[layout][convert]", (lacuna::csr<float>),
                   (lacuna::bsr<float, 4, 4>), (lacuna::bsr<float, dynamic, dynamic, std::int64_t>),
                   (lacuna::nm<float, 2, 4>), (lacuna::bitmap<float>)) {
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    for (auto [rows, cols] : awkward_shapes) {
        INFO(rows << " x " << cols);
        // 2:4-sparse data with NaN and inf, so that it fits every target, N:M included.
        auto full = sparse_dense<float>(rng, rows, cols, 0.7, true);
        auto dense = masked(full, lacuna::prune::n_m(2, 4).select(lacuna::matrix_view<const float>(full, rows, cols)));
        TestType source = build<TestType>(dense, rows, cols);
        REQUIRE(same_bits(source.to_dense(), dense));
        check_conversion<lacuna::csr<float, std::int64_t>>(source, dense);
        check_conversion<lacuna::bsr<float, 2, 3>>(source, dense);
        check_conversion<lacuna::bsr<float, dynamic, dynamic>>(source, dense, {5, 2});
        check_conversion<lacuna::nm<float, 2, 4>>(source, dense);
        check_conversion<lacuna::nm<float, 4, 8, std::int64_t>>(source, dense);
        check_conversion<lacuna::bitmap<float>>(source, dense);

        std::size_t nonzeros = 0;
        for (float x : dense) nonzeros += x != 0.f;
        CHECK(lacuna::convert_to<lacuna::csr<float>>(source.view()).nnz() == nonzeros); // fill zeros dropped
    }
}

TEST_CASE("convert_to refuses data that does not fit N:M", "[layout][convert]") {
    std::vector<double> dense{1, 2, 3, 0, 0, 0, 0, 4};
    auto m = lacuna::csr<double>::from_dense(lacuna::matrix_view<const double>(dense, 1, 8));
    using nm24 = lacuna::nm<double, 2, 4>;
    CHECK_THROWS_WITH(lacuna::convert_to<nm24>(m),
                      "lacuna::convert_to: row 0, group 0 (columns 0 to 3) holds more than 2 nonzeros");
    auto b = lacuna::convert_to<lacuna::bitmap<double>>(m);
    CHECK(b.to_dense() == dense);
    using bsr22 = lacuna::bsr<double, 2, 2>;
    CHECK_THROWS_WITH(lacuna::convert_to<bsr22>(m, {4, 4}), "lacuna::bsr: block size 4 x 4 differs from the type's 2 x 2");
}
