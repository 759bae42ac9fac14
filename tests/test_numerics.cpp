// The numerical policy of docs/guarantees.md on every arch: stored zeros multiply like any stored
// value (0 · inf is NaN) while what is not stored contributes nothing, and subnormal values and results
// are kept, never flushed. (NaN in attention, NaN in pruning and bfloat16 rounding have their tests
// beside their kernels.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/layouts.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/spmm.hpp"
#include "support/arch.hpp"
#include "support/catch.hpp"

using lacuna::bfloat16;
using lacuna::matrix_view;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float quiet_nan = std::numeric_limits<float>::quiet_NaN();

// C = A·B for n columns of B whose row j is all rows[j], and y = A·x with x[j] = rows[j].
template <class A> std::pair<std::vector<float>, std::vector<float>> products(const A& a, const std::vector<float>& rows, std::size_t n) {
    std::vector<float> b(a.cols() * n), c(a.rows() * n), y(a.rows());
    for (std::size_t j = 0; j < a.cols(); ++j) std::fill_n(b.begin() + std::ptrdiff_t(j * n), n, rows[j]);
    lacuna::spmm(a, matrix_view<const float>(b, a.cols(), n), matrix_view<float>(c, a.rows(), n));
    lacuna::spmv(a, std::span<const float>(rows), std::span<float>(y));
    return {c, y};
}

} // namespace

TEST_CASE("a stored zero times inf is NaN; what is not stored meets NaN and inf without effect", "[numerics]") {
    LACUNA_FOR_EACH_ARCH();
    // Row 0 stores a zero at column 1 and 1 at column 2; row 1 stores 2 at column 3. Column 0 is
    // stored nowhere: NaN there reaches nothing. Column 1 holds inf: it meets row 0's stored zero.
    const std::vector<std::int32_t> row_ptr{0, 2, 3}, col_idx{1, 2, 3};
    const std::vector<float> values{0.f, 1.f, 2.f};
    const lacuna::csr<float> a(2, 4, std::span<const std::int32_t>(row_ptr), std::span<const std::int32_t>(col_idx),
                               std::span<const float>(values));
    const std::vector<float> rows{quiet_nan, inf, 1.f, 1.f};
    for (std::size_t n : {1, 5, 16}) {
        INFO("n = " << n);
        const auto [c, y] = products(a, rows, n);
        for (std::size_t j = 0; j < n; ++j) {
            CHECK(std::isnan(c[j]));
            CHECK(c[n + j] == 2.f);
        }
        CHECK(std::isnan(y[0]));
        CHECK(y[1] == 2.f);
    }
    // N:M stores N slots per group: the group [1, 0, 0, 0] stores 1 and one zero, which meets the inf
    // wherever it sits; the bitmap of the same row stores only the 1.
    const std::vector<float> dense{1.f, 0.f, 0.f, 0.f};
    const std::vector<float> infs{1.f, inf, inf, inf};
    const auto nm = lacuna::nm<float, 2, 4>::from_dense(matrix_view<const float>(dense, 1, 4));
    CHECK(std::isnan(products(nm, infs, 8).first[0]));
    CHECK(std::isnan(products(nm, infs, 1).second[0]));
    const auto bits = lacuna::bitmap<float>::from_dense(matrix_view<const float>(dense, 1, 4));
    CHECK(products(bits, infs, 8).first[0] == 1.f);
    CHECK(products(bits, infs, 1).second[0] == 1.f);
}

TEMPLATE_TEST_CASE("subnormal values and sums are kept exactly, never flushed", "[numerics]", float, bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    // Multiples of 2^-133, the least bfloat16 subnormal (and a float subnormal): every product with 1
    // and every partial sum below is exact and below 2^-126, so the results must be those subnormals.
    const float tiny = std::ldexp(1.f, -133);
    const std::size_t m = 37, k = 70;
    std::vector<TestType> dense(m * k, TestType(0.f));
    std::vector<float> expected(m, 0.f);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = i % 3; j < k; j += 3) {
            const float v = tiny * float(1 + (i + j) % 4);
            dense[i * k + j] = TestType(v);
            expected[i] += v;
        }
    REQUIRE(expected[0] > 0.f);
    REQUIRE(*std::max_element(expected.begin(), expected.end()) < std::numeric_limits<float>::min());
    const matrix_view<const TestType> view(dense, m, k);
    const std::vector<float> ones(k, 1.f);
    auto check = [&](const auto& a) {
        for (std::size_t n : {1, 3, 16}) {
            INFO("n = " << n);
            const auto [c, y] = products(a, ones, n);
            for (std::size_t i = 0; i < m; ++i) {
                CHECK(c[i * n] == expected[i]);
                CHECK(c[i * n + n - 1] == expected[i]);
                CHECK(y[i] == expected[i]);
            }
        }
        // The linear layer, for a decode step and for a prefill.
        for (std::size_t tokens : {1, 9}) {
            const std::vector<float> x(tokens * k, 1.f);
            std::vector<float> out(tokens * m);
            lacuna::linear(matrix_view<const float>(x, tokens, k), a, matrix_view<float>(out, tokens, m));
            for (std::size_t i = 0; i < m; ++i) CHECK(out[(tokens - 1) * m + i] == expected[i]);
        }
    };
    SECTION("csr") { check(lacuna::csr<TestType>::from_dense(view)); }
    SECTION("bsr") { check(lacuna::bsr<TestType, 4, 4>::from_dense(view)); }
    SECTION("bitmap") { check(lacuna::bitmap<TestType>::from_dense(view)); }
    SECTION("n:m") {
        // 2:4 keeps two of every four: the expected sums are those of what it kept.
        const auto a = lacuna::nm<TestType, 2, 4>::from_dense(view);
        const auto kept = a.to_dense();
        std::fill(expected.begin(), expected.end(), 0.f);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < k; ++j) expected[i] += float(kept[i * k + j]);
        REQUIRE(expected[0] > 0.f);
        check(a);
    }
}

TEST_CASE("attention keeps subnormal values: uniform weights over subnormal value rows", "[numerics][attention]") {
    LACUNA_FOR_EACH_ARCH();
    // q = 0: every score is 0 and each of the 4 keys gets weight 1/4 exactly; value rows hold
    // (j + 1) · 2^-140, so the output is 10 · 2^-142 exactly.
    const std::size_t len = 4, d = 16;
    const std::vector<float> q(len * d, 0.f), k(len * d, 0.5f);
    std::vector<float> v(len * d), out(len * d, quiet_nan);
    for (std::size_t j = 0; j < len; ++j) std::fill_n(v.begin() + std::ptrdiff_t(j * d), d, std::ldexp(float(j + 1), -140));
    lacuna::attention(lacuna::tensor4_view<const float>(q.data(), {1, 1, len, d}), lacuna::tensor4_view<const float>(k.data(), {1, 1, len, d}),
                      lacuna::tensor4_view<const float>(v.data(), {1, 1, len, d}), lacuna::tensor4_view<float>(out.data(), {1, 1, len, d}));
    for (float o : out) CHECK(o == std::ldexp(10.f, -142));
}
