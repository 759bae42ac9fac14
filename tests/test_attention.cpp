// Fused attention against the double reference: head dims, lengths off the tiles, GQA, causal,
// dense masks, bfloat16, strided views, numerics at the edges, bad input; every arch, 1 and 2 threads.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/convert.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/arch.hpp"
#include "support/attention.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::test::lse_error;
using lacuna::test::rel_error;

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

struct problem {
    std::size_t batch, q_heads, kv_heads, lq, lkv, d, dv;
};

std::ostream& operator<<(std::ostream& os, const problem& p) {
    return os << "B " << p.batch << ", Hq " << p.q_heads << ", Hkv " << p.kv_heads << ", Lq " << p.lq << ", Lkv " << p.lkv
              << ", D " << p.d << ", Dv " << p.dv;
}

// Random q, k, v of a problem, contiguous [B, H, L, D].
template <class T> struct operands {
    problem p;
    std::vector<T> q, k, v;
    operands(std::mt19937_64& rng, const problem& pr, float lo = -1.f, float hi = 1.f)
        : p(pr), q(lacuna::test::random_vector<T>(rng, pr.batch * pr.q_heads * pr.lq * pr.d, lo, hi)),
          k(lacuna::test::random_vector<T>(rng, pr.batch * pr.kv_heads * pr.lkv * pr.d, lo, hi)),
          v(lacuna::test::random_vector<T>(rng, pr.batch * pr.kv_heads * pr.lkv * pr.dv, lo, hi)) {}
    lacuna::tensor4_view<const T> qv() const { return {q.data(), {p.batch, p.q_heads, p.lq, p.d}}; }
    lacuna::tensor4_view<const T> kv() const { return {k.data(), {p.batch, p.kv_heads, p.lkv, p.d}}; }
    lacuna::tensor4_view<const T> vv() const { return {v.data(), {p.batch, p.kv_heads, p.lkv, p.dv}}; }
    std::size_t out_size() const { return p.batch * p.q_heads * p.lq * p.dv; }
    lacuna::tensor4_view<float> out_view(std::vector<float>& out) const {
        return {out.data(), {p.batch, p.q_heads, p.lq, p.dv}};
    }
};

// The reference's score function for the options: scale, causal bound, dense masks.
auto reference_score(const problem& p, const lacuna::attention_options& o) {
    const double scale = std::isnan(o.scale) ? 1.0 / std::sqrt(double(p.d)) : double(o.scale);
    return [=](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
        auto at = [&](const auto& m) { return m(m.extent(0) == 1 ? 0 : b, m.extent(1) == 1 ? 0 : h, i, j); };
        if (o.causal && double(j) > double(i) + double(p.lkv) - double(p.lq)) return -std::numeric_limits<double>::infinity();
        if (o.boolean_mask.size() && !at(o.boolean_mask)) return -std::numeric_limits<double>::infinity();
        double s = scale * dot;
        if (o.additive_mask.size()) s += double(at(o.additive_mask));
        return s;
    };
}

using result = lacuna::test::attention_result;

template <class T> result run_attention(const operands<T>& x, lacuna::attention_options o) {
    return lacuna::test::on_1_and_2_threads(x.out_size(), x.p.batch * x.p.q_heads * x.p.lq, [&](auto& out, auto& lse) {
        o.logsumexp = lse;
        lacuna::attention(x.qv(), x.kv(), x.vv(), x.out_view(out), o);
    });
}

template <class T> result run_reference(const operands<T>& x, const lacuna::attention_options& o) {
    result r{std::vector<float>(x.out_size()), std::vector<float>(x.p.batch * x.p.q_heads * x.p.lq)};
    lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(r.out), reference_score(x.p, o), r.lse);
    return r;
}

template <class T> void check_against_reference(const operands<T>& x, const lacuna::attention_options& o, double tol = 5e-6) {
    const result got = run_attention(x, o), want = run_reference(x, o);
    CHECK(rel_error(got.out, want.out) <= tol);
    CHECK(lse_error(got.lse, want.lse) <= 1e-5);
}

} // namespace

TEMPLATE_TEST_CASE("attention matches the reference", "[attention]", float, lacuna::bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const problem problems[] = {
        {1, 1, 1, 1, 1, 1, 1},        {1, 2, 2, 5, 9, 17, 17},      {2, 4, 1, 70, 70, 64, 64},
        {1, 8, 2, 65, 130, 80, 80},   {1, 8, 1, 33, 200, 128, 128}, {1, 2, 2, 130, 40, 256, 256},
        {1, 3, 3, 64, 64, 16, 40},    {2, 1, 1, 100, 1, 8, 3},      {1, 4, 4, 1, 300, 64, 64},
    };
    for (const problem& p : problems)
        for (bool causal : {false, true}) {
            INFO(p << (causal ? ", causal" : ""));
            const operands<TestType> x(rng, p);
            lacuna::attention_options o;
            o.causal = causal;
            check_against_reference(x, o);
        }
}

TEST_CASE("attention applies additive and boolean masks, broadcast over batch and heads", "[attention]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const problem p{2, 4, 2, 70, 90, 32, 24};
    const operands<float> x(rng, p);
    // Additive: per batch, broadcast over heads, with some -inf; boolean: one for all, 70% kept.
    auto add = lacuna::test::random_vector(rng, p.batch * p.lq * p.lkv, -2.f, 2.f);
    for (std::size_t i = 0; i < add.size(); i += 7) add[i] = neg_inf;
    const auto keep = lacuna::test::random_mask(rng, p.lq * p.lkv, 0.7);
    lacuna::attention_options o;
    o.additive_mask = lacuna::tensor4_view<const float>(add.data(), {p.batch, 1, p.lq, p.lkv});
    SECTION("additive") { check_against_reference(x, o); }
    o.boolean_mask = lacuna::tensor4_view<const bool>(lacuna::test::as_bools(keep).data(), {1, 1, p.lq, p.lkv});
    SECTION("both") { check_against_reference(x, o); }
    SECTION("both and causal") {
        o.causal = true;
        check_against_reference(x, o);
    }
}

TEST_CASE("attention: a query that attends nothing gets zeros and logsumexp -inf", "[attention]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const problem p{1, 2, 1, 80, 70, 16, 16};
    const operands<float> x(rng, p);
    std::vector<char> keep(p.lq * p.lkv, 1);
    for (std::size_t i : {0, 3, 64, 79})
        for (std::size_t j = 0; j < p.lkv; ++j) keep[i * p.lkv + j] = 0;
    lacuna::attention_options o;
    o.boolean_mask = lacuna::tensor4_view<const bool>(lacuna::test::as_bools(keep).data(), {1, 1, p.lq, p.lkv});
    const result r = run_attention(x, o);
    for (std::size_t h = 0; h < p.q_heads; ++h)
        for (std::size_t i : {0, 3, 64, 79}) {
            CHECK(r.lse[h * p.lq + i] == neg_inf);
            for (std::size_t c = 0; c < p.dv; ++c) CHECK(r.out[(h * p.lq + i) * p.dv + c] == 0.f);
        }
    check_against_reference(x, o);

    SECTION("causal with more queries than keys: the first Lq - Lkv queries see nothing") {
        const problem q{1, 1, 1, 100, 30, 8, 8};
        const operands<float> y(rng, q);
        lacuna::attention_options c;
        c.causal = true;
        const result s = run_attention(y, c);
        for (std::size_t i = 0; i < 70; ++i) CHECK(s.lse[i] == neg_inf);
        CHECK(std::isfinite(s.lse[70]));
        check_against_reference(y, c);
    }
    SECTION("no keys at all") {
        const problem q{1, 2, 2, 5, 0, 8, 4};
        const operands<float> y(rng, q);
        const result s = run_attention(y, {});
        for (float v : s.out) CHECK(v == 0.f);
        for (float v : s.lse) CHECK(v == neg_inf);
    }
    SECTION("no keys, [B, L, H, D] strides: empty k and v have no data but nonzero head strides") {
        // Found by fuzz_attention: the kernel offset the null data of k by a head stride (UB).
        const std::vector<float> q(2 * 4 * 3, 1.f);
        std::vector<float> out(q.size(), -1.f), lse(q.size(), 0.f);
        const lacuna::tensor4_view<const float> none(static_cast<const float*>(nullptr), {2, 2, 0, 1}, {0, 1, 2, 1});
        lacuna::attention_options o;
        o.logsumexp = lse;
        lacuna::attention(lacuna::tensor4_view<const float>(q.data(), {2, 4, 3, 1}), none, none,
                          lacuna::tensor4_view<float>(out.data(), {2, 4, 3, 1}), o);
        for (float v : out) CHECK(v == 0.f);
        for (float v : lse) CHECK(v == neg_inf);
    }
}

TEMPLATE_TEST_CASE("attention: NaN and inf at masked positions have no effect, kept ones propagate", "[attention]", float,
                   lacuna::bfloat16) {
    // Found by fuzz_attention: a masked key has weight 0, and 0 · NaN in its value row reached the
    // output. Causal, so the last keys are masked for the first queries and kept by the last ones.
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const problem p{2, 4, 2, 70, 90, 32, 24};
    operands<TestType> x(rng, p);
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    for (std::size_t hk = 0; hk < p.kv_heads; ++hk) {
        TestType* last_v = x.v.data() + (hk * p.lkv + p.lkv - 1) * p.dv; // batch 0, the last key
        last_v[0] = TestType(nan), last_v[3] = TestType(inf), last_v[20] = TestType(-inf);
        x.k[(hk * p.lkv + p.lkv - 2) * p.d + 5] = TestType(nan); // batch 0, the key before it
    }
    lacuna::attention_options o;
    o.causal = true;
    const result got = run_attention(x, o), want = run_reference(x, o);
    CHECK(rel_error(got.out, want.out) <= 5e-6);
    // The queries of batch 0 that see the poisoned keys are NaN, the others finite.
    std::size_t nan_rows = 0;
    for (std::size_t r = 0; r < p.batch * p.q_heads * p.lq; ++r) nan_rows += std::isnan(got.out[r * p.dv + 1]);
    CHECK(nan_rows == p.q_heads * 2);

    SECTION("flex_attention: a mask_mod that drops the poisoned keys") {
        const auto drop = [&](std::size_t, std::size_t, std::size_t, std::size_t kv) { return kv + 2 < p.lkv; };
        const auto mask = lacuna::create_block_mask(drop, 1, 1, p.lq, p.lkv, 64, 64);
        std::vector<float> out(x.out_size()), ref(x.out_size());
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), mask, x.out_view(out), drop);
        const double scale = 1.0 / std::sqrt(double(p.d));
        lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(ref), [&](std::size_t, std::size_t, std::size_t, std::size_t j, double dot) {
            return j + 2 < p.lkv ? scale * dot : -std::numeric_limits<double>::infinity();
        });
        CHECK(rel_error(out, ref) <= 5e-6);
        for (float e : out) CHECK(std::isfinite(e));
    }
}

TEST_CASE("attention with bf16_probabilities: within 2^-9 max|v| of the reference", "[attention]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // Whether this arch takes the vdpbf16ps product with v (else the option must change nothing).
    const bool paired = lacuna::active_arch() == lacuna::arch::avx512 && lacuna::cpu().avx512_bf16;
    // Dv 80 (panels of 64 and 16), an odd key count, Dv 40 (not a multiple of 16: float products), GQA.
    const problem problems[] = {
        {1, 8, 2, 65, 130, 80, 80}, {1, 2, 2, 70, 129, 64, 64}, {1, 3, 3, 64, 64, 16, 40},
        {2, 4, 1, 70, 70, 64, 64},  {1, 4, 4, 1, 300, 64, 64},  {1, 1, 1, 7, 3, 16, 16},
    };
    auto max_error = [](const std::vector<float>& a, const std::vector<float>& b) {
        double e = 0;
        for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(double(a[i]) - double(b[i])));
        return e;
    };
    for (const problem& p : problems)
        for (bool causal : {false, true}) {
            INFO(p << (causal ? ", causal" : ""));
            operands<lacuna::bfloat16> x(rng, p);
            // Masked keys whose values are NaN or inf: they must still contribute nothing.
            std::vector<char> keep(p.lq * p.lkv, 1);
            for (std::size_t i = 0; i < p.lq; ++i) keep[i * p.lkv + p.lkv / 2] = 0;
            for (std::size_t hk = 0; hk < p.kv_heads; ++hk) {
                lacuna::bfloat16* masked = x.v.data() + (hk * p.lkv + p.lkv / 2) * p.dv;
                masked[0] = lacuna::bfloat16(std::numeric_limits<float>::quiet_NaN());
                masked[p.dv - 1] = lacuna::bfloat16(std::numeric_limits<float>::infinity());
            }
            lacuna::attention_options o;
            o.causal = causal;
            o.boolean_mask = lacuna::tensor4_view<const bool>(lacuna::test::as_bools(keep).data(), {1, 1, p.lq, p.lkv});
            const result exact = run_attention(x, o);
            o.bf16_probabilities = true;
            const result got = run_attention(x, o), want = run_reference(x, o);
            // |v| <= 1: each probability rounds by at most 2^-9 of itself, and the sum stays float.
            CHECK(max_error(got.out, want.out) <= 0x1p-9 + 1e-6);
            CHECK(lse_error(got.lse, want.lse) <= 1e-5);
            for (float e : got.out) CHECK(std::isfinite(e));
            if (paired && p.dv % 16 == 0 && p.lkv > 1) CHECK(max_error(got.out, exact.out) > 0);
            else CHECK(max_error(got.out, exact.out) == 0);
        }

    SECTION("flex_attention takes the option too") {
        const problem p{1, 2, 2, 100, 100, 64, 64};
        const operands<lacuna::bfloat16> x(rng, p);
        const auto mask = lacuna::create_block_mask(lacuna::masks::causal(), 1, 1, p.lq, p.lkv, 64, 64);
        lacuna::flex_options o;
        o.bf16_probabilities = true;
        std::vector<float> out(x.out_size()), exact(x.out_size()), ref(x.out_size());
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), mask, x.out_view(out), lacuna::masks::causal(), {}, o);
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), mask, x.out_view(exact), lacuna::masks::causal());
        const double scale = 1.0 / std::sqrt(double(p.d));
        lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(ref), [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
            return j <= i ? scale * dot : -std::numeric_limits<double>::infinity();
        });
        CHECK(max_error(out, ref) <= 0x1p-9 + 1e-6);
        CHECK((max_error(out, exact) > 0) == paired);
    }
}

TEST_CASE("attention: logits near 1e4 stay exact, NaN propagates", "[attention]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // Integer q and k: every score is an exact float up to ±1.6e4, so only the softmax can lose bits.
    const problem p{1, 2, 2, 70, 90, 64, 32};
    operands<float> x(rng, p);
    for (auto* t : {&x.q, &x.k})
        for (float& e : *t) e = std::round(e * 15.f);
    lacuna::attention_options o;
    o.scale = 1.f;
    check_against_reference(x, o);
    o.causal = true;
    check_against_reference(x, o);

    x.q[(1 * p.lq + 5) * p.d + 3] = std::numeric_limits<float>::quiet_NaN(); // head 1, query 5
    const result r = run_attention(x, o);
    for (std::size_t c = 0; c < p.dv; ++c) CHECK(std::isnan(r.out[(1 * p.lq + 5) * p.dv + c]));
    CHECK(std::isnan(r.lse[1 * p.lq + 5]));
    CHECK(rel_error(r.out, run_reference(x, o).out) <= 5e-6);
}

TEST_CASE("attention reads strided views: q, k, v and out as [B, L, H, D]", "[attention]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const problem p{2, 4, 2, 67, 67, 24, 24};
    const operands<float> x(rng, p); // contiguous [B, H, L, D], the reference's operands
    auto to_bshd = [](const std::vector<float>& t, std::size_t b, std::size_t h, std::size_t l, std::size_t d) {
        std::vector<float> out(t.size());
        for (std::size_t bi = 0; bi < b; ++bi)
            for (std::size_t hi = 0; hi < h; ++hi)
                for (std::size_t li = 0; li < l; ++li)
                    for (std::size_t di = 0; di < d; ++di)
                        out[((bi * l + li) * h + hi) * d + di] = t[((bi * h + hi) * l + li) * d + di];
        return out;
    };
    const auto q = to_bshd(x.q, p.batch, p.q_heads, p.lq, p.d), k = to_bshd(x.k, p.batch, p.kv_heads, p.lkv, p.d),
               v = to_bshd(x.v, p.batch, p.kv_heads, p.lkv, p.dv);
    auto bshd = [](auto* data, std::size_t b, std::size_t h, std::size_t l, std::size_t d) {
        return lacuna::tensor4_view<std::remove_pointer_t<decltype(data)>>(data, {b, h, l, d}, {l * h * d, d, h * d, 1});
    };
    std::vector<float> out = lacuna::test::poisoned(x.out_size());
    lacuna::attention_options o;
    o.causal = true;
    lacuna::attention<float>(bshd(q.data(), p.batch, p.q_heads, p.lq, p.d), bshd(k.data(), p.batch, p.kv_heads, p.lkv, p.d),
                             bshd(v.data(), p.batch, p.kv_heads, p.lkv, p.dv), bshd(out.data(), p.batch, p.q_heads, p.lq, p.dv), o);
    CHECK(rel_error(out, to_bshd(run_reference(x, o).out, p.batch, p.q_heads, p.lq, p.dv)) <= 5e-6);
}

TEST_CASE("attention rejects bad operands with a message naming them", "[attention][errors]") {
    auto rng = lacuna::test::make_rng();
    const problem p{1, 4, 2, 8, 8, 16, 16};
    const operands<float> x(rng, p);
    std::vector<float> out(x.out_size());
    using lacuna::tensor4_view;
    auto call = [&](tensor4_view<const float> q, tensor4_view<const float> k, tensor4_view<const float> v,
                    tensor4_view<float> o, const lacuna::attention_options& opts = {}) { lacuna::attention(q, k, v, o, opts); };
    CHECK_THROWS_WITH(call(x.qv(), tensor4_view<const float>(x.k.data(), {1, 2, 8, 8}), x.vv(), x.out_view(out)),
                      "lacuna::attention: k is [1, 2, 8, 8], expected [1, 2, 8, 16] (q's batch and D)");
    CHECK_THROWS_WITH(call(x.qv(), tensor4_view<const float>(x.k.data(), {1, 3, 8, 16}),
                           tensor4_view<const float>(x.v.data(), {1, 3, 8, 16}), x.out_view(out)),
                      "lacuna::attention: q has 4 heads and k 3; the query heads must be a multiple of the key heads");
    CHECK_THROWS_WITH(call(x.qv(), x.kv(), x.vv(), tensor4_view<float>(out.data(), {1, 4, 8, 8})),
                      "lacuna::attention: out is [1, 4, 8, 8], expected [1, 4, 8, 16] (q's batch, heads and length, v's Dv)");
    const std::vector<float> every_other(2 * x.q.size());
    CHECK_THROWS_WITH(call(tensor4_view<const float>(every_other, {1, 4, 8, 16}, {1024, 256, 32, 2}), x.kv(), x.vv(), x.out_view(out)),
                      "lacuna::attention: the last dimension of q must be contiguous (stride 1), its stride is 2");
    std::vector<float> shared = x.q; // out over q's memory
    CHECK_THROWS_AS(call(tensor4_view<const float>(shared.data(), {1, 4, 8, 16}), x.kv(), x.vv(),
                         tensor4_view<float>(shared.data(), {1, 4, 8, 16})),
                    lacuna::aliasing_error);
    lacuna::attention_options o;
    std::vector<float> lse(5);
    o.logsumexp = lse;
    CHECK_THROWS_WITH(call(x.qv(), x.kv(), x.vv(), x.out_view(out), o),
                      "lacuna::attention: logsumexp has 5 elements, expected 32 (B · Hq · Lq)");
    std::vector<float> mask(2 * 8 * 8);
    lacuna::attention_options m;
    m.additive_mask = tensor4_view<const float>(mask.data(), {1, 2, 8, 8});
    CHECK_THROWS_WITH(call(x.qv(), x.kv(), x.vv(), x.out_view(out), m),
                      "lacuna::attention: additive_mask is [1, 2, 8, 8], expected [1, 4, 8, 8] (B, Hq, Lq, Lkv; an extent of "
                      "1 broadcasts over B or Hq)");
}

TEST_CASE("attention runs through the active arch's table", "[attention][dispatch]") {
#if defined(LACUNA_COUNT_KERNEL_CALLS) && LACUNA_DISPATCH
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const operands<float> x(rng, {1, 2, 2, 10, 10, 8, 8});
    const operands<lacuna::bfloat16> y(rng, {1, 2, 2, 10, 10, 8, 8});
    std::vector<float> out(x.out_size());
    const auto before = lacuna::detail::kernel_calls(lacuna_test_arch).load();
    lacuna::attention(x.qv(), x.kv(), x.vv(), x.out_view(out));
    lacuna::attention(y.qv(), y.kv(), y.vv(), y.out_view(out));
    CHECK(lacuna::detail::kernel_calls(lacuna_test_arch).load() > before + 1);
#endif
}

namespace {

// The reference's score for flex attention: scale, score_mod, then masked unless the position's block
// is listed (and, in a partial block, mask_mod keeps it).
template <class MaskMod, class ScoreMod>
auto flex_reference_score(const lacuna::block_mask& m, double scale, MaskMod mask_mod, ScoreMod score_mod) {
    const std::size_t nkv = m.kv_blocks();
    return [=, &m](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
        const std::size_t row = ((m.batch() == 1 ? 0 : b) * m.heads() + (m.heads() == 1 ? 0 : h)) * m.q_blocks() + i / m.q_block();
        const auto kb = std::int32_t(j / m.kv_block());
        auto listed = [&](std::span<const std::int32_t> count, std::span<const std::int32_t> index) {
            for (std::size_t e = 0; !count.empty() && e < std::size_t(count[row]); ++e)
                if (index[row * nkv + e] == kb) return true;
            return false;
        };
        const bool full = listed(m.full_kv_num_blocks(), m.full_kv_indices());
        if (!full && !(listed(m.kv_num_blocks(), m.kv_indices()) && mask_mod(b, h, i, j)))
            return -std::numeric_limits<double>::infinity();
        return double(score_mod(float(scale * dot), b, h, i, j));
    };
}

template <class T, class MaskMod, class ScoreMod>
void check_flex(const operands<T>& x, const lacuna::block_mask& m, MaskMod mask_mod, ScoreMod score_mod, double tol = 5e-6) {
    const result first = lacuna::test::on_1_and_2_threads(x.out_size(), x.p.batch * x.p.q_heads * x.p.lq, [&](auto& out, auto& lse) {
        lacuna::flex_options o;
        o.logsumexp = lse;
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), m, x.out_view(out), mask_mod, score_mod, o);
    });
    result want{std::vector<float>(x.out_size()), std::vector<float>(x.p.batch * x.p.q_heads * x.p.lq)};
    lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(want.out),
                           flex_reference_score(m, 1.0 / std::sqrt(double(x.p.d)), mask_mod, score_mod), want.lse);
    CHECK(rel_error(first.out, want.out) <= tol);
    CHECK(lse_error(first.lse, want.lse) <= 1e-5);
}

} // namespace

TEST_CASE("create_block_mask classifies blocks as FlexAttention does", "[attention][flex]") {
    // causal, 10 × 10 in blocks of 4: row 0 sees block 0 in part; row 1 block 0 whole, 1 in part;
    // row 2 (queries 8, 9) blocks 0 and 1 whole, 2 in part.
    const auto m = lacuna::create_block_mask([](std::size_t, std::size_t, std::size_t q, std::size_t kv) { return kv <= q; },
                                             1, 1, 10, 10, 4, 4);
    CHECK(m.q_blocks() == 3);
    CHECK(m.kv_blocks() == 3);
    CHECK(std::vector<std::int32_t>(m.kv_num_blocks().begin(), m.kv_num_blocks().end()) == std::vector<std::int32_t>{1, 1, 1});
    CHECK(std::vector<std::int32_t>(m.full_kv_num_blocks().begin(), m.full_kv_num_blocks().end()) ==
          std::vector<std::int32_t>{0, 1, 2});
    CHECK(m.kv_indices()[0] == 0);
    CHECK(m.kv_indices()[3] == 1);
    CHECK(m.kv_indices()[6] == 2);
    CHECK(m.full_kv_indices()[3] == 0);
    CHECK(m.full_kv_indices()[6] == 0);
    CHECK(m.full_kv_indices()[7] == 1);
    CHECK(m.listed_blocks() == 6);
}

TEST_CASE("flex_attention matches the reference", "[attention][flex]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    auto causal = [](std::size_t, std::size_t, std::size_t q, std::size_t kv) { return kv <= q; };
    auto window = [](std::size_t, std::size_t h, std::size_t q, std::size_t kv) { return kv <= q && q - kv < 20 + 10 * h; };
    auto alibi = [](float s, std::size_t, std::size_t h, std::size_t q, std::size_t kv) {
        return s - 0.05f * float(h + 1) * (float(q) - float(kv));
    };
    auto softcap = [](float s, std::size_t, std::size_t, std::size_t, std::size_t) { return 5.f * std::tanh(s / 5.f); };
    SECTION("causal, blocks of 128 over lengths off the blocks") {
        const operands<float> x(rng, {1, 4, 2, 300, 300, 64, 64});
        check_flex(x, lacuna::create_block_mask(causal, 1, 1, 300, 300), causal, lacuna::no_score_mod{});
    }
    SECTION("per-head sliding window with ALiBi, small blocks, bfloat16") {
        const operands<lacuna::bfloat16> x(rng, {2, 3, 3, 97, 97, 32, 16});
        check_flex(x, lacuna::create_block_mask(window, 1, 3, 97, 97, 16, 24), window, alibi);
    }
    SECTION("score_mod alone over a dense mask, Lq != Lkv") {
        const operands<float> x(rng, {1, 2, 1, 40, 170, 17, 17});
        check_flex(x, lacuna::create_block_mask(lacuna::no_mask_mod{}, 1, 1, 40, 170, 32, 64), lacuna::no_mask_mod{}, softcap);
    }
}

TEST_CASE("flex_attention takes FlexAttention's arrays as they are", "[attention][flex]") {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    // Lq 5, Lkv 7 in blocks of 2 × 3: 3 query blocks, 3 key blocks, written by hand. Query block 1 has
    // only full blocks (listed out of order), query block 2 only a partial one.
    const std::vector<std::int32_t> num{1, 0, 1}, indices{1, 0, 0, 0, 0, 0, 2, 0, 0};
    const std::vector<std::int32_t> full_num{1, 2, 0}, full_indices{0, 0, 0, 2, 0, 0, 0, 0, 0};
    const lacuna::block_mask m(1, 1, 5, 7, 2, 3, num, indices, full_num, full_indices);
    auto mask_mod = [](std::size_t, std::size_t, std::size_t q, std::size_t kv) { return (q + kv) % 3 != 0; };
    const operands<float> x(rng, {1, 2, 2, 5, 7, 8, 8});
    check_flex(x, m, mask_mod, lacuna::no_score_mod{});

    SECTION("a query block with nothing listed attends nothing") {
        const std::vector<std::int32_t> none{1, 0, 0}, none_indices{2, 0, 0, 0, 0, 0, 0, 0, 0};
        const lacuna::block_mask empty(1, 1, 5, 7, 2, 3, none, none_indices);
        std::vector<float> out = lacuna::test::poisoned(x.out_size()), lse(2 * 5);
        lacuna::flex_options o;
        o.logsumexp = lse;
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), empty, x.out_view(out), lacuna::no_mask_mod{}, lacuna::no_score_mod{}, o);
        for (std::size_t h = 0; h < 2; ++h)
            for (std::size_t i = 2; i < 5; ++i) {
                CHECK(lse[h * 5 + i] == neg_inf);
                for (std::size_t c = 0; c < 8; ++c) CHECK(out[(h * 5 + i) * 8 + c] == 0.f);
            }
        check_flex(x, empty, lacuna::no_mask_mod{}, lacuna::no_score_mod{});
    }
}

TEST_CASE("block_mask and flex_attention reject bad arrays and shapes", "[attention][flex][errors]") {
    const std::vector<std::int32_t> num{1, 0, 1}, ok{1, 0, 0, 0, 0, 0, 2, 0, 0};
    CHECK_NOTHROW(lacuna::block_mask(1, 1, 5, 7, 2, 3, num, ok));
    CHECK_THROWS_WITH(lacuna::block_mask(1, 1, 5, 7, 2, 3, num, std::vector<std::int32_t>{3, 0, 0, 0, 0, 0, 2, 0, 0}),
                      "lacuna::block_mask: kv_indices[0] is 3, outside the 3 key blocks");
    CHECK_THROWS_WITH(lacuna::block_mask(1, 1, 5, 7, 2, 3, std::vector<std::int32_t>{1, 4, 1}, ok),
                      "lacuna::block_mask: kv_num_blocks[1] is 4, outside [0, 3]");
    CHECK_THROWS_WITH(lacuna::block_mask(1, 1, 5, 7, 2, 3, num, ok, std::vector<std::int32_t>{1, 0, 0}, ok),
                      "lacuna::block_mask: key block 1 is listed twice for query block row 0 (full_kv_indices[0])");
    CHECK_THROWS_WITH(lacuna::block_mask(1, 1, 5, 7, 2, 3, num, std::vector<std::int32_t>(8)),
                      "lacuna::block_mask: kv_indices has 8 elements, expected 9 (B · H · n_q_blocks · n_kv_blocks)");
    CHECK_THROWS_AS(lacuna::create_block_mask(lacuna::no_mask_mod{}, 1, 1, 4, 4, 0, 2), lacuna::shape_error);

    auto rng = lacuna::test::make_rng();
    const operands<float> x(rng, {1, 2, 2, 6, 7, 8, 8});
    std::vector<float> out(x.out_size());
    const lacuna::block_mask m(1, 1, 5, 7, 2, 3, num, ok);
    CHECK_THROWS_WITH(lacuna::flex_attention(x.qv(), x.kv(), x.vv(), m, x.out_view(out)),
                      "lacuna::flex_attention: the block mask is for [1, 1] x 5 x 7, the operands are [1, 2] x 6 x 7 (B "
                      "and H of the mask may be 1)");
}

TEMPLATE_TEST_CASE("masked_attention with CSR and bitmap masks matches the reference", "[attention][masked]", float,
                   lacuna::bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    for (const problem& p : {problem{1, 4, 2, 70, 90, 32, 24}, problem{2, 2, 2, 5, 130, 17, 8}})
        for (double density : {0.0, 0.05, 0.5}) {
            INFO(p << ", mask density " << density);
            const operands<TestType> x(rng, p);
            const auto csr = lacuna::test::random_layout<lacuna::csr<float>>(rng, p.lq, p.lkv, density);
            const auto bitmap = lacuna::convert_to<lacuna::bitmap<float>>(csr);
            std::vector<char> keep(p.lq * p.lkv, 0);
            for (std::size_t i = 0; i < p.lq; ++i) csr.for_each_in_row(i, [&](std::size_t j, float) { keep[i * p.lkv + j] = 1; });
            const double scale = 1.0 / std::sqrt(double(p.d));
            result want{std::vector<float>(x.out_size()), std::vector<float>(p.batch * p.q_heads * p.lq)};
            lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(want.out),
                                   [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
                                       return keep[i * p.lkv + j] ? scale * dot : -std::numeric_limits<double>::infinity();
                                   },
                                   want.lse);
            auto check = [&](const auto& mask) {
                const result got = lacuna::test::on_1_and_2_threads(x.out_size(), want.lse.size(), [&](auto& out, auto& lse) {
                    lacuna::flex_options o;
                    o.logsumexp = lse;
                    lacuna::masked_attention(x.qv(), x.kv(), x.vv(), mask, x.out_view(out), o);
                });
                CHECK(rel_error(got.out, want.out) <= 5e-6);
                CHECK(lse_error(got.lse, want.lse) <= 1e-5);
            };
            check(csr);
            check(bitmap);
        }
    const operands<TestType> x(rng, {1, 1, 1, 4, 4, 8, 8});
    std::vector<float> out(x.out_size());
    CHECK_THROWS_WITH(lacuna::masked_attention(x.qv(), x.kv(), x.vv(), lacuna::test::random_layout<lacuna::csr<float>>(rng, 4, 5, 0.5),
                                               x.out_view(out)),
                      "lacuna::masked_attention: the mask is 4 x 5, the queries and keys need 4 x 4");
}
