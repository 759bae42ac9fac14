// libFuzzer target for the products: spmm (row- and column-major B, dense × sparse), spmv, linear
// (bias, activations, dense weights too) and sddmm, in every layout and value type the dispatch
// table holds, on the instruction set and thread count the input picks. Shapes, sparsity, α/β and
// values (NaN and inf included) come from the input; the kernel must match the double reference
// within the float summation bound of each element, agree with it on NaN and inf, and raise
// lacuna::error for the shapes and aliasing the documentation rejects. Anything else is a finding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/core/parallel.hpp"
#include "lacuna/layouts.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/reference/spmm.hpp"
#include "lacuna/sddmm.hpp"
#include "lacuna/spmm.hpp"
#include "support/fuzz.hpp"

namespace {

using lacuna::bfloat16;
using lacuna::matrix_view;
using lacuna::fuzz::check;

// Values: small dyadic numbers (exact sums, ties), or any bit pattern with the finite ones kept
// within ±1e3 (so that no float sum of this size overflows where the double one does not).
float value(FuzzedDataProvider& in) {
    if (in.ConsumeBool()) return float(in.ConsumeIntegralInRange<int>(-16, 16)) / 4.f;
    const float x = lacuna::fuzz::any_float(in);
    return std::isfinite(x) ? std::clamp(x, -1e3f, 1e3f) : x;
}

std::vector<float> values(FuzzedDataProvider& in, std::size_t n, double density) {
    std::vector<float> out(n, 0.f);
    // A short pool of drawn values spread over the whole array: large shapes from short inputs.
    std::vector<float> pool(in.ConsumeIntegralInRange<std::size_t>(1, 16));
    for (float& x : pool) x = value(in);
    const std::uint64_t seed = in.ConsumeIntegral<std::uint64_t>();
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t h = lacuna::fuzz::mix(seed + i);
        if (double(h >> 11) * 0x1p-53 < density) out[i] = pool[(h & 0xffff) % pool.size()];
    }
    return out;
}

// got agrees with want within `bound` (the error a float sum may make), NaN with NaN, inf with inf.
void check_close(float got, double want, double bound) {
    if (std::isnan(want)) return check(std::isnan(got));
    if (std::isinf(want)) return check(double(got) == want);
    check(std::abs(double(got) - want) <= bound);
}

// The bound on a float dot product of `terms` terms whose magnitudes sum to `magnitude`, with the
// result rounded once more and up to three more operations (α, β, bias).
double sum_bound(std::size_t terms, double magnitude) { return double(terms + 4) * 0x1p-23 * magnitude + 1e-30; }

// Throws check failure unless call raises a lacuna::error of type E.
template <class E, class Call> void expect_error(Call&& call) {
    try {
        call();
    } catch (const E&) {
        return;
    }
    check(false);
}

struct dense_case {
    std::size_t m, k, n;
};

// A·B (B row- or column-major), X·A, and A·x against the reference, each element within its bound.
template <class Layout>
void products(FuzzedDataProvider& in, const Layout& a, const std::vector<float>& b_values, dense_case s, float alpha, float beta) {
    const auto stored = [&](std::size_t i) {
        std::size_t n = 0;
        a.for_each_in_row(i, [&](std::size_t, const auto&) { ++n; });
        return n;
    };
    // |A| at the stored positions, for the bounds (an element not stored adds nothing, even against inf).
    std::vector<float> a_abs(s.m * s.k, 0.f);
    std::vector<char> a_stored(s.m * s.k, 0);
    for (std::size_t i = 0; i < s.m; ++i)
        a.for_each_in_row(i, [&](std::size_t j, const auto& v) { a_abs[i * s.k + j] = std::abs(float(v)), a_stored[i * s.k + j] = 1; });
    const auto abs_of = [](std::vector<float> x) {
        for (float& v : x) v = std::abs(v);
        return x;
    };
    const std::vector<float> c0 = values(in, std::max(s.m, s.k) * std::max(s.n, s.m), 1.0);
    const auto c_start = [&](std::size_t rows, std::size_t cols) { return std::vector<float>(c0.begin(), c0.begin() + std::ptrdiff_t(rows * cols)); };
    const lacuna::product_options o{alpha, beta};
    const auto bound = [&](std::size_t terms, double magnitude, float c) {
        return sum_bound(terms, std::abs(double(alpha)) * magnitude + (beta == 0.f ? 0.0 : std::abs(double(beta) * c)));
    };

    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
    case 1: { // C = α·A·B + β·C, B k × n row-major (case 0) or column-major (case 1)
        const matrix_view<const float> b(b_values.data(), s.k, s.n);
        std::vector<float> want = c_start(s.m, s.n), got = want, mag(s.m * s.n);
        lacuna::ref::spmm(a, b, matrix_view<float>(want, s.m, s.n), alpha, beta);
        const std::vector<float> b_abs = abs_of(std::vector<float>(b_values.begin(), b_values.begin() + std::ptrdiff_t(s.k * s.n)));
        for (std::size_t i = 0; i < s.m; ++i)
            for (std::size_t j = 0; j < s.n; ++j) {
                double sum = 0;
                for (std::size_t x = 0; x < s.k; ++x)
                    if (a_stored[i * s.k + x]) sum += double(a_abs[i * s.k + x]) * b_abs[x * s.n + j];
                mag[i * s.n + j] = float(sum);
            }
        std::vector<float> b_col(s.k * s.n);
        for (std::size_t x = 0; x < s.k; ++x)
            for (std::size_t j = 0; j < s.n; ++j) b_col[j * s.k + x] = b_values[x * s.n + j];
        const std::vector<float> c_in = got;
        if (in.ConsumeBool())
            lacuna::spmm(a, b, matrix_view<float>(got, s.m, s.n), o);
        else
            lacuna::spmm(a, matrix_view<const float, lacuna::order::col_major>(b_col.data(), s.k, s.n), matrix_view<float>(got, s.m, s.n), o);
        for (std::size_t i = 0; i < s.m; ++i)
            for (std::size_t j = 0; j < s.n; ++j)
                check_close(got[i * s.n + j], want[i * s.n + j], bound(stored(i), mag[i * s.n + j], c_in[i * s.n + j]));
        // C over B is rejected.
        if (s.m * s.n > 0 && s.m == s.k) {
            std::vector<float> shared(b_values.begin(), b_values.begin() + std::ptrdiff_t(s.k * s.n));
            expect_error<lacuna::aliasing_error>([&] {
                lacuna::spmm(a, matrix_view<const float>(shared.data(), s.k, s.n), matrix_view<float>(shared.data(), s.m, s.n), o);
            });
        }
        expect_error<lacuna::shape_error>([&] { lacuna::spmm(a, matrix_view<const float>(b_values.data(), s.k + 1, s.n), matrix_view<float>(got, s.m, s.n), o); });
        break;
    }
    case 2: { // C = α·X·A + β·C, X n × m
        const matrix_view<const float> x(b_values.data(), s.n, s.m);
        std::vector<float> want = c_start(s.n, s.k), got = want;
        lacuna::ref::spmm(x, a, matrix_view<float>(want, s.n, s.k), alpha, beta);
        std::vector<std::size_t> column_terms(s.k, 0);
        for (std::size_t i = 0; i < s.m; ++i) a.for_each_in_row(i, [&](std::size_t j, const auto&) { ++column_terms[j]; });
        const std::vector<float> c_in = got;
        lacuna::spmm(x, a, matrix_view<float>(got, s.n, s.k), o);
        for (std::size_t t = 0; t < s.n; ++t)
            for (std::size_t j = 0; j < s.k; ++j) {
                double sum = 0;
                for (std::size_t i = 0; i < s.m; ++i)
                    if (a_stored[i * s.k + j]) sum += std::abs(double(x(t, i))) * a_abs[i * s.k + j];
                check_close(got[t * s.k + j], want[t * s.k + j], bound(column_terms[j], sum, c_in[t * s.k + j]));
            }
        break;
    }
    default: { // y = α·A·x + β·y
        const std::span<const float> x(b_values.data(), s.k);
        std::vector<float> want = c_start(s.m, 1), got = want;
        lacuna::ref::spmm(a, matrix_view<const float>(x.data(), s.k, 1), matrix_view<float>(want, s.m, 1), alpha, beta);
        const std::vector<float> c_in = got;
        lacuna::spmv(a, x, got, o);
        for (std::size_t i = 0; i < s.m; ++i) {
            double sum = 0;
            for (std::size_t j = 0; j < s.k; ++j)
                if (a_stored[i * s.k + j]) sum += double(a_abs[i * s.k + j]) * std::abs(x[j]);
            check_close(got[i], want[i], bound(stored(i), sum, c_in[i]));
        }
        expect_error<lacuna::shape_error>([&] { lacuna::spmv(a, std::span<const float>(b_values.data(), s.k + 1), std::span<float>(got), o); });
        break;
    }
    }
}

// Y = act(X·Wᵀ + bias) for W m × k (out × in), X n × k; the reference is given W as a layout that
// stores what the kernel multiplies (every element for dense weights).
template <class Weights, class Reference>
void linear(FuzzedDataProvider& in, const Weights& w, const Reference& w_ref, const std::vector<float>& x_values, dense_case s) {
    const matrix_view<const float> x(x_values.data(), s.n, s.k);
    const std::vector<float> bias = values(in, s.m, 1.0);
    const bool with_bias = in.ConsumeBool();
    static constexpr struct {
        lacuna::activation act;
        const char* name;
        double slope; // the largest |act'|, which scales the error of the sum
    } activations[]{{lacuna::activation::none, "none", 1.0},
                    {lacuna::activation::relu, "relu", 1.0},
                    {lacuna::activation::gelu, "gelu", 1.13},
                    {lacuna::activation::silu, "silu", 1.1}};
    const auto& act = activations[in.ConsumeIntegralInRange<int>(0, 3)];
    const std::span<const float> b = with_bias ? std::span<const float>(bias) : std::span<const float>();
    std::vector<float> want(s.n * s.m), got(s.n * s.m, std::numeric_limits<float>::quiet_NaN());
    lacuna::ref::linear(x, w_ref, matrix_view<float>(want, s.n, s.m), b, act.name);
    lacuna::linear(x, w, matrix_view<float>(got, s.n, s.m), {b, act.act});
    for (std::size_t o = 0; o < s.m; ++o) {
        std::size_t terms = 0;
        std::vector<double> w_abs(s.k, 0.0);
        std::vector<char> w_stored(s.k, 0);
        w_ref.for_each_in_row(o, [&](std::size_t i, const auto& v) { ++terms, w_abs[i] = std::abs(double(float(v))), w_stored[i] = 1; });
        for (std::size_t t = 0; t < s.n; ++t) {
            double sum = with_bias ? std::abs(double(bias[o])) : 0.0;
            for (std::size_t i = 0; i < s.k; ++i)
                if (w_stored[i]) sum += w_abs[i] * std::abs(double(x(t, i)));
            // The activations are computed in float: a few ulps of the result on top of the sum's error.
            const double want_to = want[t * s.m + o];
            const double bound = act.slope * sum_bound(terms, sum) + 4e-7 * std::abs(want_to) + 1e-37;
            check_close(got[t * s.m + o], want_to, bound);
        }
    }
}

// out(i, j) = scale · dot(A[i, :], B[j, :]) at the stored positions of the mask.
template <class Mask> void sddmm(const Mask& mask, const std::vector<float>& a_values, const std::vector<float>& b_values, std::size_t d, float scale) {
    const matrix_view<const float> a(a_values.data(), mask.rows(), d), b(b_values.data(), mask.cols(), d);
    const std::vector<float> want = lacuna::ref::sddmm(a, b, mask, scale);
    Mask out = mask;
    lacuna::sddmm(a, b, mask, out, {scale});
    std::size_t next = 0;
    for (std::size_t i = 0; i < mask.rows(); ++i)
        out.for_each_in_row(i, [&](std::size_t j, const float& got) {
            double sum = 0;
            for (std::size_t x = 0; x < d; ++x) sum += std::abs(double(a(i, x)) * double(b(j, x)));
            check_close(got, want[next++], sum_bound(d, std::abs(double(scale)) * sum));
        });
    check(next == want.size());
    if (mask.rows() != mask.cols()) expect_error<lacuna::shape_error>([&] { lacuna::sddmm(b, a, mask, out, {scale}); });
}

template <class Layout, class Build> void run_layout(FuzzedDataProvider& in, dense_case s, double density, Build&& build) {
    using T = typename Layout::value_type;
    const std::vector<float> a_float = values(in, s.m * s.k, density);
    const std::vector<T> a_dense(a_float.begin(), a_float.end());
    const Layout a = build(matrix_view<const T>(a_dense.data(), s.m, s.k));
    // Room for B (k × n), X (n × m), x (k) and the one-row-too-many B of the shape check.
    const std::vector<float> b = values(in, std::max(s.k + 1, s.m) * s.n + s.k + 1, in.ConsumeProbability<double>());
    const float alpha = in.ConsumeBool() ? 1.f : value(in), beta = in.ConsumeBool() ? 0.f : value(in);
    if (in.ConsumeBool()) return linear(in, a, a, b, s);
    products(in, a, b, s, std::isfinite(alpha) ? alpha : 1.f, std::isfinite(beta) ? beta : 0.f);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    lacuna::fuzz::pick_arch_and_threads(in);
    const dense_case s{in.ConsumeIntegralInRange<std::size_t>(0, 70), in.ConsumeIntegralInRange<std::size_t>(0, 70),
                       in.ConsumeIntegralInRange<std::size_t>(0, 40)};
    const double density = in.ConsumeProbability<double>();
    switch (in.ConsumeIntegralInRange<int>(0, 13)) {
    case 0: return run_layout<lacuna::csr<float>>(in, s, density, [](auto d) { return lacuna::csr<float>::from_dense(d); }), 0;
    case 1: return run_layout<lacuna::csr<bfloat16>>(in, s, density, [](auto d) { return lacuna::csr<bfloat16>::from_dense(d); }), 0;
    case 2: return run_layout<lacuna::csr<float, std::int64_t>>(in, s, density, [](auto d) { return lacuna::csr<float, std::int64_t>::from_dense(d); }), 0;
    case 3: {
        const lacuna::block_size block{in.ConsumeIntegralInRange<std::size_t>(1, 6), in.ConsumeIntegralInRange<std::size_t>(1, 9)};
        return run_layout<lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>>(
                   in, s, density, [&](auto d) { return lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>::from_dense(d, block); }),
               0;
    }
    case 4: return run_layout<lacuna::bsr<float, 4, 4>>(in, s, density, [](auto d) { return lacuna::bsr<float, 4, 4>::from_dense(d); }), 0;
    case 5: return run_layout<lacuna::bsr<float, 16, 16>>(in, s, density, [](auto d) { return lacuna::bsr<float, 16, 16>::from_dense(d); }), 0;
    case 6: return run_layout<lacuna::nm<float, 2, 4>>(in, s, density, [](auto d) { return lacuna::nm<float, 2, 4>::from_dense(d); }), 0;
    case 7: return run_layout<lacuna::nm<bfloat16, 2, 4>>(in, s, density, [](auto d) { return lacuna::nm<bfloat16, 2, 4>::from_dense(d); }), 0;
    case 8: return run_layout<lacuna::nm<float, 1, 4>>(in, s, density, [](auto d) { return lacuna::nm<float, 1, 4>::from_dense(d); }), 0;
    case 9: return run_layout<lacuna::nm<float, 2, 8>>(in, s, density, [](auto d) { return lacuna::nm<float, 2, 8>::from_dense(d); }), 0;
    case 10: return run_layout<lacuna::bitmap<float>>(in, s, density, [](auto d) { return lacuna::bitmap<float>::from_dense(d); }), 0;
    case 11: return run_layout<lacuna::bitmap<bfloat16>>(in, s, density, [](auto d) { return lacuna::bitmap<bfloat16>::from_dense(d); }), 0;
    case 12: { // dense weights in linear: the reference stores every element
        const bool bf16 = in.ConsumeBool();
        const std::vector<float> w = values(in, s.m * s.k, density), x = values(in, s.n * s.k, 1.0);
        if (bf16) {
            const std::vector<bfloat16> wb(w.begin(), w.end());
            const matrix_view<const bfloat16> wv(wb.data(), s.m, s.k);
            linear(in, wv, lacuna::csr<bfloat16>::from_dense(wv, lacuna::prune::top_fraction(1.0)), x, s);
        } else {
            const matrix_view<const float> wv(w.data(), s.m, s.k);
            linear(in, wv, lacuna::csr<float>::from_dense(wv, lacuna::prune::top_fraction(1.0)), x, s);
        }
        return 0;
    }
    default: { // sddmm: mask m × k, A m × d, B k × d
        const std::size_t d = in.ConsumeIntegralInRange<std::size_t>(0, 150);
        const std::vector<float> pattern = values(in, s.m * s.k, density);
        const matrix_view<const float> pv(pattern.data(), s.m, s.k);
        const std::vector<float> a = values(in, s.m * d, 1.0), b = values(in, s.k * d, 1.0);
        const float scale = value(in);
        switch (in.ConsumeIntegralInRange<int>(0, 2)) {
        case 0: sddmm(lacuna::csr<float>::from_dense(pv), a, b, d, scale); break;
        case 1: sddmm(lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>::from_dense(pv, {3, 5}), a, b, d, scale); break;
        default: sddmm(lacuna::bitmap<float>::from_dense(pv), a, b, d, scale); break;
        }
        return 0;
    }
    }
}
