// The vector primitives against their references, on every arch.
#include <cmath>
#include <bit>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "lacuna/linear.hpp"
#include "lacuna/primitives.hpp"
#include "lacuna/reference/primitives.hpp"
#include "support/arch.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::test::as_bools;
using lacuna::test::poisoned;
using lacuna::test::random_vector;
using lacuna::test::rel_error;

namespace {

// Lengths around every register width (4, 8, 16 floats and the 4× unrolled loops), and long rows.
const std::vector<std::size_t> lengths{0, 1, 3, 4, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000, 4099};

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

// |out − ref| relative to sum |x_i y_i|: the bound a float dot product can promise.
template <class X, class Y> double dot_error(float out, const std::vector<X>& x, const std::vector<Y>& y) {
    double ref = lacuna::ref::dot<X, Y>(x, y), scale = 0;
    for (std::size_t i = 0; i < x.size(); ++i) scale += std::abs(double(float(x[i])) * double(float(y[i])));
    return scale > 0 ? std::abs(out - ref) / scale : std::abs(out - ref);
}

} // namespace

TEST_CASE("dot matches the reference for float, bf16 and mixed inputs", "[primitives][dot]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        auto x = random_vector(rng, n), y = random_vector(rng, n);
        auto xb = random_vector<bfloat16>(rng, n), yb = random_vector<bfloat16>(rng, n);
        CHECK(dot_error(lacuna::dot(x, y), x, y) <= 1e-6);
        CHECK(dot_error(lacuna::dot(xb, yb), xb, yb) <= 1e-6);
        CHECK(dot_error(lacuna::dot(xb, y), xb, y) <= 1e-6);
    }
}

TEST_CASE("dot propagates NaN and infinity", "[primitives][dot]") {
    LACUNA_FOR_EACH_ARCH();
    std::vector<float> x(37, 1.f), y(37, 2.f);
    x[20] = nan_f;
    CHECK(std::isnan(lacuna::dot(x, y)));
    x[20] = inf_f;
    CHECK(lacuna::dot(x, y) == inf_f);
}

TEST_CASE("axpy and scale match the reference", "[primitives][axpy]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        auto x = random_vector(rng, n), y = random_vector(rng, n);
        auto y_ref = y;
        lacuna::axpy(0.75f, x, y);
        lacuna::ref::axpy(0.75f, x, y_ref);
        // Relative to |a·x| + |y|, not to the result, which cancellation can make tiny.
        double err = 0, scale = 0;
        for (std::size_t i = 0; i < n; ++i) {
            err = std::max(err, std::abs(double(y[i]) - double(y_ref[i])));
            scale = std::max(scale, std::abs(0.75 * x[i]) + std::abs(double(y_ref[i]) - 0.75 * x[i]));
        }
        CHECK(err <= 1e-6 * scale);

        auto x_ref = x;
        lacuna::scale(-1.5f, x);
        lacuna::ref::scale(-1.5f, x_ref);
        CHECK(rel_error(x, x_ref) <= 1e-7);
    }
}

TEST_CASE("axpy in place doubles y", "[primitives][axpy]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    auto y = random_vector(rng, 45);
    auto expected = y;
    for (float& v : expected) v *= 2.f;
    lacuna::axpy(1.f, y, y);
    CHECK(rel_error(y, expected) == 0);
}

TEST_CASE("reduce_sum and reduce_max match the reference", "[primitives][reduce]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        auto x = random_vector(rng, n, -10.f, 10.f);
        double abs_sum = 0;
        for (float v : x) abs_sum += std::abs(v);
        CHECK(std::abs(lacuna::reduce_sum(x) - lacuna::ref::reduce_sum(x)) <= 1e-6 * std::max(abs_sum, 1.0));
        CHECK(lacuna::reduce_max(x) == lacuna::ref::reduce_max(x));
    }
}

TEMPLATE_TEST_CASE("add_rows adds the column sums of a block to y, in row order", "[primitives][reduce]", float, bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : {0, 1, 7, 16, 17, 64, 100, 130})
        for (std::size_t rows : {0, 1, 5, 128}) {
            INFO("n = " << n << ", rows = " << rows);
            const std::size_t ld = n + 3; // rows apart by more than their length
            const auto x = random_vector<TestType>(rng, rows * ld, -4.f, 4.f);
            auto y = random_vector(rng, n), want = y;
            for (std::size_t c = 0; c < n; ++c)
                for (std::size_t r = 0; r < rows; ++r) want[c] += float(x[r * ld + c]);
            lacuna::detail::dispatch<lacuna::kernels::add_rows>(static_cast<const TestType*>(x.data()), ld, rows, y.data(), n);
            CHECK(y == want);
        }
}

TEST_CASE("reduce_max: NaN anywhere gives NaN, empty gives -inf", "[primitives][reduce]") {
    LACUNA_FOR_EACH_ARCH();
    CHECK(lacuna::reduce_max(std::vector<float>{}) == -inf_f);
    CHECK(lacuna::reduce_sum(std::vector<float>{}) == 0.f);
    for (std::size_t n : {1u, 5u, 16u, 40u, 67u})
        for (std::size_t at : {std::size_t(0), n / 2, n - 1}) {
            INFO("n = " << n << ", NaN at " << at);
            std::vector<float> x(n, -3.f);
            x[at] = nan_f;
            CHECK(std::isnan(lacuna::reduce_max(x)));
            x[at] = inf_f;
            CHECK(lacuna::reduce_max(x) == inf_f);
        }
}

TEST_CASE("exp matches the reference, in place too", "[primitives][exp]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        auto x = random_vector(rng, n, -30.f, 30.f);
        auto y = poisoned(n), y_ref = poisoned(n);
        lacuna::exp(x, y);
        lacuna::ref::exp(x, y_ref);
        CHECK(rel_error(y, y_ref) <= 1e-6);
        lacuna::exp(x, x);
        CHECK(rel_error(x, y) == 0);
    }
    std::vector<float> special{-inf_f, inf_f, 0.f, nan_f, -200.f}, out = poisoned(5);
    lacuna::exp(special, out);
    CHECK(out[0] == 0.f);
    CHECK(out[1] == inf_f);
    CHECK(out[2] == 1.f);
    CHECK(std::isnan(out[3]));
    CHECK(out[4] == 0.f);
}

TEST_CASE("softmax matches the reference, masked and unmasked", "[primitives][softmax]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (std::size_t n : lengths) {
        INFO("n = " << n);
        auto x = random_vector(rng, n, -20.f, 20.f);
        auto y = poisoned(n), y_ref = poisoned(n);
        lacuna::softmax(x, y);
        lacuna::ref::softmax(x, {}, y_ref);
        CHECK(rel_error(y, y_ref) <= 1e-5);

        for (double keep : {0.0, 0.1, 0.5, 1.0}) {
            INFO("kept fraction " << keep);
            auto mask = lacuna::test::random_mask(rng, n, keep);
            auto ym = poisoned(n), ym_ref = poisoned(n);
            lacuna::softmax(x, as_bools(mask), ym);
            lacuna::ref::softmax(x, as_bools(mask), ym_ref);
            CHECK(rel_error(ym, ym_ref) <= 1e-5);
        }
    }
}

TEST_CASE("softmax: empty and fully masked rows give zeros, NaN propagates", "[primitives][softmax]") {
    LACUNA_FOR_EACH_ARCH();
    for (std::size_t n : {1u, 7u, 16u, 50u}) {
        INFO("n = " << n);
        std::vector<float> x(n, 1.f), y = poisoned(n);
        std::vector<char> none(n, 0);
        lacuna::softmax(x, as_bools(none), y);
        CHECK(rel_error(y, std::vector<float>(n, 0.f)) == 0);

        std::vector<float> all_neg_inf(n, -inf_f);
        y = poisoned(n);
        lacuna::softmax(all_neg_inf, y);
        CHECK(rel_error(y, std::vector<float>(n, 0.f)) == 0);

        y = poisoned(n);
        lacuna::softmax(x, y);
        CHECK(rel_error(y, std::vector<float>(n, 1.f / float(n))) <= 1e-6);

        // A NaN that is kept poisons every kept output; a masked-out NaN is ignored.
        std::vector<char> keep_first(n, 1);
        keep_first[n - 1] = 0;
        x[n - 1] = nan_f;
        y = poisoned(n);
        lacuna::softmax(x, as_bools(keep_first), y);
        CHECK(y[n - 1] == 0.f);
        if (n > 1) CHECK(rel_error(std::span<const float>(y).first(n - 1), std::vector<float>(n - 1, 1.f / float(n - 1))) <= 1e-6);
        y = poisoned(n);
        lacuna::softmax(x, y);
        for (float v : y) CHECK(std::isnan(v));
    }
    std::vector<float> empty;
    lacuna::softmax(empty, empty);
}

TEST_CASE("softmax in place equals out of place", "[primitives][softmax]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    auto x = random_vector(rng, 333, -5.f, 5.f);
    auto y = poisoned(x.size());
    lacuna::softmax(x, y);
    lacuna::softmax(x, x);
    CHECK(rel_error(x, y) == 0);
}

TEST_CASE("float <-> bf16 conversion is bit-exact on every arch", "[primitives][convert]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    std::vector<float> x = random_vector(rng, 1000, -1e4f, 1e4f);
    auto bits = [](std::uint32_t u) { return std::bit_cast<float>(u); };
    for (float special : {0.f, -0.f, inf_f, -inf_f, nan_f, -nan_f, bits(0x7f800001u), bits(0xff812345u),
                          bits(0x3f808000u) /* tie, even below */, bits(0x3f818000u) /* tie, odd below */,
                          bits(0x3f808001u), bits(0x7f7fffffu) /* rounds to inf */, bits(0x00000001u),
                          bits(0x00018000u), bits(0x807fffffu), std::numeric_limits<float>::max()})
        x.push_back(special);
    for (std::size_t n : {x.size(), std::size_t(17), std::size_t(0)}) {
        std::span<const float> xs(x.data(), n);
        std::vector<bfloat16> y(n, bfloat16::from_bits(0xdead)), y_ref(n);
        lacuna::convert(xs, std::span<bfloat16>(y));
        lacuna::ref::convert(xs, y_ref);
        for (std::size_t i = 0; i < n; ++i) {
            INFO("x = " << x[i] << " (bits " << std::hex << std::bit_cast<std::uint32_t>(x[i]) << ")");
            REQUIRE(y[i].bits == y_ref[i].bits);
        }
        std::vector<float> back = poisoned(n), back_ref(n);
        lacuna::convert(std::span<const bfloat16>(y), std::span<float>(back));
        lacuna::ref::convert(y_ref, back_ref);
        for (std::size_t i = 0; i < n; ++i)
            REQUIRE(std::bit_cast<std::uint32_t>(back[i]) == std::bit_cast<std::uint32_t>(back_ref[i]));
    }
}

TEST_CASE("transpose copies every element to its place and writes nothing else", "[primitives][transpose]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // Whole 16 x 16 tiles, ragged edges on either side, single rows and columns, and nothing.
    for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{0, 0}, {0, 5}, {5, 0}, {1, 1}, {1, 37}, {37, 1},
                              {16, 16}, {17, 33}, {15, 16}, {40, 100}, {128, 48}}) {
        INFO(rows << " x " << cols);
        const std::size_t ld_src = cols + 3, ld_dst = rows + 5;
        const std::vector<float> src = random_vector(rng, rows * ld_src, -1.f, 1.f);
        std::vector<float> dst = poisoned(cols * ld_dst + 1);
        lacuna::detail::transpose(src.data(), ld_src, rows, cols, dst.data(), ld_dst);
        for (std::size_t j = 0; j < cols; ++j)
            for (std::size_t i = 0; i < ld_dst; ++i)
                if (i < rows) REQUIRE(dst[j * ld_dst + i] == src[i * ld_src + j]);
                else REQUIRE(std::isnan(dst[j * ld_dst + i]));
        REQUIRE(std::isnan(dst.back()));
    }
}

TEST_CASE("primitives reject mismatched and overlapping arguments", "[primitives][errors]") {
    std::vector<float> a(8), b(9);
    CHECK_THROWS_MATCHES(lacuna::dot(a, b), lacuna::shape_error,
                         Catch::Matchers::Message("lacuna::dot: y has 9 elements, expected 8 (the length of x)"));
    CHECK_THROWS_AS(lacuna::axpy(1.f, a, b), lacuna::shape_error);
    CHECK_THROWS_AS(lacuna::exp(a, b), lacuna::shape_error);
    CHECK_THROWS_AS(lacuna::softmax(a, b), lacuna::shape_error);
    std::vector<char> mask(7);
    CHECK_THROWS_WITH(lacuna::softmax(a, as_bools(mask), a),
                      "lacuna::softmax: mask has 7 elements, expected 8 (the length of x)");
    std::vector<bfloat16> h(7);
    CHECK_THROWS_AS(lacuna::convert(a, std::span<bfloat16>(h)), lacuna::shape_error);

    std::span<float> whole(b);
    CHECK_THROWS_MATCHES(lacuna::axpy(1.f, whole.first(8), whole.last(8)), lacuna::aliasing_error,
                         Catch::Matchers::Message("lacuna::axpy: x and y overlap in memory; pass the same range for "
                                                  "in-place use or disjoint ranges"));
    CHECK_THROWS_AS(lacuna::softmax(whole.first(8), whole.last(8)), lacuna::aliasing_error);
    CHECK_NOTHROW(lacuna::softmax(whole.first(4), whole.last(4)));
}
