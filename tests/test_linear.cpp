// The sparse linear layer against the reference: every layout, token counts on both sides of the
// SpMV/SpMM switch, bias and each activation, 1 and 2 threads, every arch.
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/reference/spmm.hpp"
#include "support/arch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;
using lacuna::test::poisoned;
using lacuna::test::random_vector;
using lacuna::test::rel_error;

namespace {
struct act_case {
    lacuna::activation act;
    const char* name;
};
const act_case activations[]{{lacuna::activation::none, "none"},
                             {lacuna::activation::relu, "relu"},
                             {lacuna::activation::gelu, "gelu"},
                             {lacuna::activation::silu, "silu"}};
} // namespace

TEMPLATE_TEST_CASE("linear matches the reference", "[linear]", lacuna::csr<float>, (lacuna::nm<float, 2, 4>),
                   (lacuna::nm<bfloat16, 2, 4>), (lacuna::nm<float, 1, 4>), (lacuna::bsr<float, 16, 16>),
                   (lacuna::bsr<float, 4, 4>), lacuna::bitmap<float>, lacuna::bitmap<bfloat16>) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    struct shape {
        std::size_t tokens, in, out;
    };
    for (auto s : {shape{0, 8, 8}, shape{3, 0, 5}, shape{1, 1, 1}, shape{1, 70, 33}, shape{4, 64, 17}, shape{5, 64, 17},
                   shape{17, 100, 40}, shape{64, 130, 35}}) {
        INFO(s.tokens << " tokens, " << s.in << " -> " << s.out);
        const auto w = lacuna::test::random_layout<TestType>(rng, s.out, s.in, 0.5);
        const auto x = random_vector(rng, s.tokens * s.in);
        const auto bias = random_vector(rng, s.out);
        const lacuna::matrix_view<const float> xv(x, s.tokens, s.in);
        for (bool with_bias : {false, true})
            for (const act_case& a : activations) {
                INFO("activation " << a.name << (with_bias ? ", bias" : ""));
                const std::span<const float> b = with_bias ? std::span<const float>(bias) : std::span<const float>();
                auto y_ref = poisoned(s.tokens * s.out);
                lacuna::ref::linear(xv, w, lacuna::matrix_view<float>(y_ref, s.tokens, s.out), b, a.name);
                // An activation's float error scales with its input, not its output: gelu(z) for
                // z < 0 goes through 1 + erf(z/√2), which cancels, so its error is small against z
                // but can pass 2e-6 of gelu(z) (a lone output, one token and one feature, did).
                // The error is measured against the products before the activation.
                auto z_ref = poisoned(s.tokens * s.out);
                lacuna::ref::linear(xv, w, lacuna::matrix_view<float>(z_ref, s.tokens, s.out), b, "none");
                const double floor = lacuna::test::norm(z_ref);
                std::vector<float> first;
                for (int threads : {1, 2}) {
                    lacuna::set_num_threads(threads);
                    auto y = poisoned(s.tokens * s.out);
                    lacuna::linear(xv, w, lacuna::matrix_view<float>(y, s.tokens, s.out), {b, a.act});
                    CHECK(rel_error(y, y_ref, floor) <= 2e-6);
                    if (first.empty()) first = y;
                    CHECK(lacuna::test::same_bits(y, first));
                }
                lacuna::set_num_threads(0);
            }
    }
}

TEMPLATE_TEST_CASE("linear with dense weights matches the reference", "[linear][dense]", float, bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    struct shape {
        std::size_t tokens, in, out;
    };
    // in past one chunk of A's columns (128) and out past one block of rows (24), with tails of both;
    // W with a row stride wider than its columns; 90, 100 and 119 tokens fill 5, 6 and 7 AVX-512
    // registers, which the panels split as 3 + 2, 3 + 3 and 4 + 3. The ragged last tokens (n % 16)
    // run as dot products with X's rows, in groups of up to 8: 3, 6, 10, 4, 7, and with no panel at
    // all 12 and 15; 32 has none.
    for (auto s : {shape{1, 1, 1}, shape{1, 300, 37}, shape{3, 17, 5}, shape{5, 64, 17}, shape{12, 70, 30}, shape{15, 33, 49},
                   shape{19, 130, 30}, shape{32, 40, 27}, shape{70, 257, 50}, shape{90, 140, 30}, shape{100, 131, 26},
                   shape{119, 129, 25}, shape{0, 4, 4}}) {
        INFO(s.tokens << " tokens, " << s.in << " -> " << s.out);
        const std::size_t ld = s.in + 3, ldx = s.in + 5;
        const auto w = random_vector<TestType>(rng, s.out * ld);
        std::vector<TestType> packed(s.out * s.in);
        for (std::size_t o = 0; o < s.out; ++o)
            for (std::size_t i = 0; i < s.in; ++i) packed[o * s.in + i] = w[o * ld + i];
        const auto w_ref = lacuna::csr<TestType>::from_dense(lacuna::matrix_view<const TestType>(packed, s.out, s.in));
        const auto x = random_vector(rng, s.tokens * ldx);
        const lacuna::matrix_view<const float> xv(x.data(), s.tokens, s.in, ldx);
        auto y_ref = poisoned(s.tokens * s.out);
        lacuna::ref::linear(xv, w_ref, lacuna::matrix_view<float>(y_ref, s.tokens, s.out), {}, "silu");
        std::vector<float> first;
        for (int threads : {1, 2}) {
            lacuna::set_num_threads(threads);
            auto y = poisoned(s.tokens * s.out);
            lacuna::linear(xv, lacuna::matrix_view<const TestType>(w.data(), s.out, s.in, ld),
                           lacuna::matrix_view<float>(y, s.tokens, s.out), {{}, lacuna::activation::silu});
            CHECK(rel_error(y, y_ref) <= 2e-6);
            if (first.empty()) first = y;
            CHECK(lacuna::test::same_bits(y, first));
        }
        lacuna::set_num_threads(0);
    }
}

TEST_CASE("linear: strided X and Y, NaN passes through relu", "[linear]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const std::size_t tokens = 9, in = 40, out = 21;
    const auto w = lacuna::test::random_layout<lacuna::nm<float, 2, 4>>(rng, out, in, 0.5);
    auto x = random_vector(rng, tokens * 48); // row stride 48
    x[2 * 48 + 5] = std::numeric_limits<float>::quiet_NaN();
    const lacuna::matrix_view<const float> xv(x.data(), tokens, in, 48);
    auto y = poisoned(tokens * 32), y_ref = poisoned(tokens * out);
    lacuna::linear(xv, w, lacuna::matrix_view<float>(y.data(), tokens, out, 32), {{}, lacuna::activation::relu});
    lacuna::ref::linear(xv, w, lacuna::matrix_view<float>(y_ref, tokens, out), {}, "relu");
    std::vector<float> packed(tokens * out);
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t o = 0; o < out; ++o) packed[t * out + o] = y[t * 32 + o];
    CHECK(rel_error(packed, y_ref) <= 1e-6);
    CHECK(std::isnan(y[31])); // the stride padding is not written
    bool some_nan = false;
    for (std::size_t o = 0; o < out; ++o) some_nan = some_nan || std::isnan(packed[2 * out + o]);
    CHECK(some_nan); // token 2 meets its NaN wherever its column is stored
}

TEST_CASE("linear rejects bad shapes and aliasing", "[linear][errors]") {
    std::vector<float> dense{1, 0, 2, 0, 3, 0};
    const auto w = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, 2, 3));
    std::vector<float> x(12), y(8), bias(3);
    CHECK_THROWS_WITH(lacuna::linear(lacuna::matrix_view<const float>(x, 4, 2), w, lacuna::matrix_view<float>(y, 4, 2)),
                      "lacuna::linear: X is 4 x 2 and W is 2 x 3; the columns of X and W (the input features) must match");
    CHECK_THROWS_WITH(lacuna::linear(lacuna::matrix_view<const float>(x, 4, 3), w, lacuna::matrix_view<float>(y, 2, 4)),
                      "lacuna::linear: Y is 2 x 4, expected 4 x 2 (rows of X x rows of W)");
    CHECK_THROWS_WITH(lacuna::linear(lacuna::matrix_view<const float>(x, 4, 3), w, lacuna::matrix_view<float>(y, 4, 2),
                                     {bias}),
                      "lacuna::linear: bias has 3 elements, expected 2 (the rows of W)");
    CHECK_THROWS_AS(lacuna::linear(lacuna::matrix_view<const float>(x, 4, 3), w, lacuna::matrix_view<float>(x.data() + 1, 4, 2)),
                    lacuna::aliasing_error);
    CHECK_NOTHROW(lacuna::linear(lacuna::matrix_view<const float>(x, 4, 3), w, lacuna::matrix_view<float>(y, 4, 2),
                                 {std::span<const float>(bias).first(2), lacuna::activation::gelu}));
}
