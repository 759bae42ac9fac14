// SDDMM at the positions of CSR, BSR and bitmap masks against the reference, on every arch, at 1 and
// 2 threads.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/reference/spmm.hpp"
#include "lacuna/sddmm.hpp"
#include "support/arch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::test::random_vector;
using lacuna::test::rel_error;

namespace {
// The values of a layout in for_each_in_row order (what the reference returns).
template <class L> std::vector<float> values_in_row_order(const L& l) {
    std::vector<float> out;
    for (std::size_t i = 0; i < l.rows(); ++i) l.for_each_in_row(i, [&](std::size_t, float v) { out.push_back(v); });
    return out;
}
} // namespace

TEMPLATE_TEST_CASE("sddmm matches the reference", "[sddmm]", lacuna::csr<float>, (lacuna::csr<float, std::int64_t>),
                   (lacuna::bsr<float, 4, 4>), (lacuna::bsr<float, 16, 16>), (lacuna::bsr<float, 64, 64>),
                   (lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>), lacuna::bitmap<float>) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    struct shape {
        std::size_t m, n, d;
    };
    for (auto s : {shape{0, 0, 4}, shape{3, 4, 0}, shape{1, 1, 1}, shape{7, 13, 17}, shape{33, 65, 64}, shape{70, 40, 128},
                   shape{9, 150, 80}, shape{6, 70, 48}, shape{5, 130, 3}})
        for (double density : {0.0, 0.2, 1.0}) {
            INFO(s.m << " x " << s.n << " mask, d = " << s.d << ", density " << density);
            const auto mask = lacuna::test::random_layout<TestType>(rng, s.m, s.n, density);
            const auto a = random_vector(rng, s.m * s.d), b = random_vector(rng, s.n * s.d);
            const lacuna::matrix_view<const float> av(a, s.m, s.d), bv(b, s.n, s.d);
            const std::vector<float> expected = lacuna::ref::sddmm(av, bv, mask, 0.125f);
            std::vector<float> first;
            for (int threads : {1, 2}) {
                lacuna::set_num_threads(threads);
                auto out = mask;
                std::fill(out.values(), out.values() + out.nnz(), std::numeric_limits<float>::quiet_NaN());
                lacuna::sddmm(av, bv, mask, out, {0.125f});
                const std::vector<float> got = values_in_row_order(out);
                CHECK(rel_error(got, expected) <= 1e-6);
                // Every stored value is written: positions outside the matrix (BSR padding) with 0.
                const std::vector<float> all(out.values(), out.values() + out.nnz());
                CHECK(std::none_of(all.begin(), all.end(), [](float v) { return std::isnan(v); }));
                if (first.empty()) first = all;
                CHECK(lacuna::test::same_bits(all, first));
            }
            lacuna::set_num_threads(0);
            // Into the mask itself, and into a new copy.
            auto in_place = mask;
            lacuna::sddmm(av, bv, in_place, in_place, {0.125f});
            CHECK(rel_error(values_in_row_order(in_place), expected) <= 1e-6);
            CHECK(rel_error(values_in_row_order(lacuna::sddmm(av, bv, mask, {0.125f})), expected) <= 1e-6);
        }
}

TEST_CASE("sddmm rejects bad shapes, another structure and aliasing", "[sddmm][errors]") {
    std::vector<float> dense{1, 0, 2, 0, 3, 0};
    const auto mask = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 2, 3));
    std::vector<float> a(8), b(12);
    auto out = mask;
    CHECK_THROWS_WITH(lacuna::sddmm(lacuna::matrix_view<const float>(a, 2, 4), lacuna::matrix_view<const float>(b, 2, 4),
                                    mask, out),
                      "lacuna::sddmm: A is 2 x 4 and B is 2 x 4; a 2 x 3 mask needs 2 rows of A and 3 of B");
    CHECK_THROWS_WITH(lacuna::sddmm(lacuna::matrix_view<const float>(a, 2, 4), lacuna::matrix_view<const float>(b, 3, 3),
                                    mask, out),
                      "lacuna::sddmm: A has 4 columns and B 3; they must match");
    std::vector<float> other_dense{1, 2, 0, 0, 3, 0};
    auto other = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(other_dense, 2, 3));
    CHECK_THROWS_WITH(lacuna::sddmm(lacuna::matrix_view<const float>(a, 2, 4), lacuna::matrix_view<const float>(b, 3, 4),
                                    mask, other),
                      "lacuna::sddmm: out does not have the mask's structure (col_idx differs at 1)");
    CHECK_THROWS_AS(lacuna::sddmm(lacuna::matrix_view<const float>(out.values() + 1, 1, 1),
                                  lacuna::matrix_view<const float>(b, 3, 1), mask.view(), out.view()),
                    lacuna::shape_error);
    auto over = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 2, 3));
    CHECK_THROWS_AS(lacuna::sddmm(lacuna::matrix_view<const float>(over.values() + 1, 2, 1),
                                  lacuna::matrix_view<const float>(b, 3, 1), mask, over),
                    lacuna::aliasing_error);
}
