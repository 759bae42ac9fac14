// Decode attention over contiguous and paged KV caches against the reference: queries few, keys
// many and across the 1024-key splits, GQA, several new tokens, bfloat16; paged = contiguous. D from 1
// to 256 puts bfloat16 scores (vdpbf16ps in steps of 32) through whole steps, a tail, and both.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/kv_cache.hpp"
#include "lacuna/layout/sparse_kv_cache.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/arch.hpp"
#include "support/attention.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

namespace {

struct decode_problem {
    std::size_t batch, q_heads, kv_heads, lq, length, d, dv;
};

std::ostream& operator<<(std::ostream& os, const decode_problem& p) {
    return os << "B " << p.batch << ", Hq " << p.q_heads << ", Hkv " << p.kv_heads << ", Lq " << p.lq << ", L " << p.length
              << ", D " << p.d << ", Dv " << p.dv;
}

template <class T> struct decode_operands {
    decode_problem p;
    std::vector<T> q, k, v;
    decode_operands(std::mt19937_64& rng, const decode_problem& pr)
        : p(pr), q(lacuna::test::random_vector<T>(rng, pr.batch * pr.q_heads * pr.lq * pr.d)),
          k(lacuna::test::random_vector<T>(rng, pr.batch * pr.kv_heads * pr.length * pr.d)),
          v(lacuna::test::random_vector<T>(rng, pr.batch * pr.kv_heads * pr.length * pr.dv)) {}
    lacuna::tensor4_view<const T> qv() const { return {q.data(), {p.batch, p.q_heads, p.lq, p.d}}; }
    lacuna::tensor4_view<const T> kv() const { return {k.data(), {p.batch, p.kv_heads, p.length, p.d}}; }
    lacuna::tensor4_view<const T> vv() const { return {v.data(), {p.batch, p.kv_heads, p.length, p.dv}}; }
    std::size_t out_size() const { return p.batch * p.q_heads * p.lq * p.dv; }
    lacuna::tensor4_view<float> out_view(std::vector<float>& o) const { return {o.data(), {p.batch, p.q_heads, p.lq, p.dv}}; }

    // A paged cache holding the same keys and values, appended in chunks of `chunk` tokens.
    lacuna::paged_kv_cache<T> paged(std::size_t page_size, std::size_t chunk) const {
        const std::size_t pages_each = (p.length + page_size - 1) / page_size;
        lacuna::paged_kv_cache<T> cache(p.kv_heads, p.d, p.dv, page_size, p.batch * pages_each + 1);
        for (std::size_t b = 0; b < p.batch; ++b) cache.add_sequence();
        // Interleave the sequences' appends, so their pages interleave too.
        for (std::size_t t0 = 0; t0 < p.length; t0 += chunk)
            for (std::size_t b = 0; b < p.batch; ++b) {
                const std::size_t n = std::min(chunk, p.length - t0);
                const lacuna::tensor4_view<const T> kb(k.data() + b * p.kv_heads * p.length * p.d + t0 * p.d, {1, p.kv_heads, n, p.d},
                                                       {0, p.length * p.d, p.d, 1});
                const lacuna::tensor4_view<const T> vb(v.data() + b * p.kv_heads * p.length * p.dv + t0 * p.dv,
                                                       {1, p.kv_heads, n, p.dv}, {0, p.length * p.dv, p.dv, 1});
                cache.append(b, kb, vb);
            }
        return cache;
    }
};

using result = lacuna::test::attention_result;
using lacuna::test::on_1_and_2_threads;

template <class T> result reference(const decode_operands<T>& x, bool causal) {
    result r{std::vector<float>(x.out_size()), std::vector<float>(x.p.batch * x.p.q_heads * x.p.lq)};
    const double scale = 1.0 / std::sqrt(double(x.p.d));
    lacuna::ref::attention(x.qv(), x.kv(), x.vv(), x.out_view(r.out),
                           [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
                               return causal && j > i + x.p.length - x.p.lq ? -std::numeric_limits<double>::infinity() : scale * dot;
                           },
                           r.lse);
    return r;
}

} // namespace

TEMPLATE_TEST_CASE("decode_attention over contiguous and paged caches matches the reference", "[attention][decode]", float,
                   lacuna::bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    const decode_problem problems[] = {
        {1, 1, 1, 1, 1, 8, 8},        {2, 8, 2, 1, 100, 64, 64},  {1, 4, 4, 3, 1500, 80, 80},
        {2, 32, 8, 1, 2100, 32, 32},  {1, 8, 1, 5, 700, 17, 24},  {1, 2, 1, 20, 1030, 16, 16},
        {1, 4, 2, 2, 300, 1, 3},      {1, 8, 2, 1, 1100, 256, 128}, {1, 4, 1, 1, 200, 130, 40},
        // 2, 6, 8 and 12 queries a KV head: scores packed two and eight to a key, and sixteen wide.
        {1, 2, 1, 1, 333, 64, 64},    {1, 6, 1, 1, 500, 128, 64}, {1, 12, 1, 1, 260, 48, 48},
        {1, 16, 2, 1, 900, 128, 128},
    };
    for (const decode_problem& p : problems)
        for (bool causal : {true, false}) {
            INFO(p << (causal ? ", causal" : ""));
            const decode_operands<TestType> x(rng, p);
            const std::size_t lse_size = p.batch * p.q_heads * p.lq;
            lacuna::decode_options o;
            o.causal = causal;
            const result want = reference(x, causal);
            const result contiguous = on_1_and_2_threads(x.out_size(), lse_size, [&](std::vector<float>& out, std::vector<float>& lse) {
                o.logsumexp = lse;
                lacuna::decode_attention(x.qv(), x.kv(), x.vv(), x.out_view(out), o);
            });
            CHECK(lacuna::test::rel_error(contiguous.out, want.out) <= 5e-6);
            CHECK(lacuna::test::lse_error(contiguous.lse, want.lse) <= 1e-5);
            for (auto [page, chunk] : {std::pair{16, 7}, std::pair{48, 100}, std::pair{64, 1}}) {
                INFO("pages of " << page << ", appended " << chunk << " at a time");
                const auto cache = x.paged(page, chunk);
                std::vector<std::size_t> seqs(p.batch);
                for (std::size_t b = 0; b < p.batch; ++b) seqs[b] = b;
                const result paged = on_1_and_2_threads(x.out_size(), lse_size, [&](std::vector<float>& out, std::vector<float>& lse) {
                    o.logsumexp = lse;
                    lacuna::decode_attention(x.qv(), cache, seqs, x.out_view(out), o);
                });
                CHECK(lacuna::test::rel_error(paged.out, want.out) <= 5e-6);
                CHECK(lacuna::test::lse_error(paged.lse, want.lse) <= 1e-5);
            }
        }
}

TEST_CASE("decode_attention and the paged cache reject bad input", "[attention][decode][errors]") {
    auto rng = lacuna::test::make_rng();
    const decode_operands<float> x(rng, {1, 4, 2, 3, 10, 8, 8});
    std::vector<float> out(x.out_size());
    lacuna::paged_kv_cache<float> cache(2, 8, 8, 4, 2);
    const std::size_t s = cache.add_sequence();
    std::vector<float> kv(2 * 5 * 8);
    const lacuna::tensor4_view<const float> five(kv.data(), {1, 2, 5, 8});
    cache.append(s, five, five); // 5 tokens: both pages
    CHECK(cache.pages_used() == 2);
    CHECK_THROWS_WITH(cache.append(s, five, five), "lacuna::paged_kv_cache::append: 5 more tokens need 1 more page(s), 0 of 2 are free");
    CHECK(cache.length(s) == 5);
    CHECK_THROWS_AS(cache.append(7, five, five), lacuna::shape_error);
    CHECK_THROWS_AS(cache.append(s, lacuna::tensor4_view<const float>(kv.data(), {1, 1, 5, 8}), five), lacuna::shape_error);
    const std::vector<std::size_t> seqs{s}, unknown{3};
    CHECK_NOTHROW(lacuna::decode_attention(x.qv(), cache, seqs, x.out_view(out)));
    CHECK_THROWS_WITH(lacuna::decode_attention(x.qv(), cache, unknown, x.out_view(out)),
                      "lacuna::decode_attention: sequences[0] is 3, the cache has 1");
    const decode_operands<float> long_q(rng, {1, 4, 2, 6, 10, 8, 8});
    std::vector<float> out6(long_q.out_size());
    CHECK_THROWS_WITH(lacuna::decode_attention(long_q.qv(), cache, seqs, long_q.out_view(out6)),
                      "lacuna::decode_attention: sequence 0 holds 5 tokens, fewer than the 6 queries");
    const decode_operands<float> many(rng, {1, 4, 2, 12, 10, 8, 8});
    std::vector<float> out12(many.out_size());
    CHECK_THROWS_WITH(lacuna::decode_attention(many.qv(), many.kv(), many.vv(), many.out_view(out12)),
                      "lacuna::decode_attention: 12 queries are more than the 10 positions of the cache");
}

namespace {

// A sparse cache of the (one) sequence's keys and values, appended `chunk` tokens at a time, and
// the same problem over the cache's pruned keys and values as dense arrays.
template <class T> struct sparse_case {
    lacuna::sparse_kv_cache<T> cache;
    decode_operands<T> pruned;
    sparse_case(const decode_operands<T>& x, std::size_t keep_k, std::size_t keep_v, std::size_t chunk)
        : cache(x.p.kv_heads, x.p.d, x.p.dv, keep_k, keep_v), pruned(x) {
        const decode_problem& p = x.p;
        for (std::size_t t0 = 0; t0 < p.length; t0 += chunk) {
            const std::size_t n = std::min(chunk, p.length - t0);
            cache.append(lacuna::tensor4_view<const T>(x.k.data() + t0 * p.d, {1, p.kv_heads, n, p.d}, {0, p.length * p.d, p.d, 1}),
                         lacuna::tensor4_view<const T>(x.v.data() + t0 * p.dv, {1, p.kv_heads, n, p.dv}, {0, p.length * p.dv, p.dv, 1}));
        }
        pruned.k = cache.keys();
        pruned.v = cache.values();
    }
};

// The keep largest magnitudes of each row of `rows` (n wide) survive, the rest are zero.
template <class T> bool pruned_per_row(const std::vector<T>& original, const std::vector<T>& pruned, std::size_t n, std::size_t keep) {
    for (std::size_t row = 0; row < original.size() / n; ++row) {
        std::vector<float> mags;
        std::size_t kept = 0;
        for (std::size_t c = 0; c < n; ++c) mags.push_back(std::abs(float(original[row * n + c])));
        std::vector<float> sorted = mags;
        std::sort(sorted.rbegin(), sorted.rend());
        const float cut = keep ? sorted[keep - 1] : std::numeric_limits<float>::infinity();
        for (std::size_t c = 0; c < n; ++c) {
            const float y = float(pruned[row * n + c]);
            if (y != 0.f) ++kept;
            if (y != 0.f && (y != float(original[row * n + c]) || mags[c] < cut)) return false;
            if (y == 0.f && mags[c] > cut) return false;
        }
        if (kept > keep) return false;
    }
    return true;
}

} // namespace

TEMPLATE_TEST_CASE("decode_attention over a sparse cache equals dense attention over the pruned cache", "[attention][decode][sparse]",
                   float, lacuna::bfloat16) {
    LACUNA_FOR_EACH_ARCH();
    auto rng = lacuna::test::make_rng();
    struct sparse_problem {
        decode_problem p;
        std::size_t keep_k, keep_v, chunk;
    };
    const sparse_problem problems[] = {
        {{1, 1, 1, 1, 1, 8, 8}, 3, 8, 1},          {{1, 8, 2, 1, 200, 64, 64}, 19, 19, 1},
        {{1, 4, 4, 3, 1500, 80, 80}, 24, 24, 100}, {{1, 8, 1, 5, 700, 17, 70}, 5, 30, 64},
        {{1, 2, 1, 20, 1030, 128, 128}, 38, 38, 7}, {{1, 4, 1, 1, 64, 16, 130}, 16, 0, 3},
        {{1, 32, 8, 1, 2100, 128, 128}, 38, 38, 2100},
    };
    for (const sparse_problem& sp : problems)
        for (bool causal : {true, false}) {
            const decode_problem& p = sp.p;
            INFO(p << ", keep " << sp.keep_k << " / " << sp.keep_v << ", appended " << sp.chunk << " at a time" << (causal ? ", causal" : ""));
            const decode_operands<TestType> x(rng, p);
            const sparse_case<TestType> s(x, sp.keep_k, sp.keep_v, sp.chunk);
            CHECK(s.cache.length() == p.length);
            CHECK(pruned_per_row(x.k, s.pruned.k, p.d, sp.keep_k));
            CHECK(pruned_per_row(x.v, s.pruned.v, p.dv, sp.keep_v));
            const std::size_t lse_size = p.q_heads * p.lq;
            lacuna::decode_options o;
            o.causal = causal;
            const result want = reference(s.pruned, causal);
            const result got = on_1_and_2_threads(x.out_size(), lse_size, [&](std::vector<float>& out, std::vector<float>& lse) {
                o.logsumexp = lse;
                lacuna::decode_attention(x.qv(), s.cache, x.out_view(out), o);
            });
            CHECK(lacuna::test::rel_error(got.out, want.out) <= 5e-6);
            CHECK(lacuna::test::lse_error(got.lse, want.lse) <= 1e-5);
        }
}

TEST_CASE("the sparse cache keeps NaN and rejects bad input", "[attention][decode][sparse][errors]") {
    CHECK_THROWS_WITH(lacuna::sparse_kv_cache<float>(2, 8, 8, 9, 2), "lacuna::sparse_kv_cache: keep_k = 9 exceeds the 8 key channels");
    CHECK_THROWS_AS(lacuna::sparse_kv_cache<float>(0, 8, 8, 2, 2), lacuna::shape_error);
    lacuna::sparse_kv_cache<float> cache(2, 8, 8, 2, 2);
    std::vector<float> kv(2 * 3 * 8, 0.5f);
    kv[8 + 3] = std::numeric_limits<float>::quiet_NaN(); // head 0, token 1, channel 3
    const lacuna::tensor4_view<const float> three(kv.data(), {1, 2, 3, 8});
    cache.append(three, three);
    CHECK_THROWS_AS(cache.append(lacuna::tensor4_view<const float>(kv.data(), {1, 1, 3, 8}), three), lacuna::shape_error);
    CHECK(cache.length() == 3);
    CHECK(std::isnan(cache.keys()[8 + 3]));
    CHECK(std::isnan(cache.values()[8 + 3]));
    std::vector<float> q(4 * 8, 1.f), out(4 * 8);
    lacuna::decode_attention(lacuna::tensor4_view<const float>(q.data(), {1, 4, 1, 8}), cache,
                             lacuna::tensor4_view<float>(out.data(), {1, 4, 1, 8}));
    CHECK(std::isnan(out[0])); // head 0 meets the NaN key
    CHECK(!std::isnan(out[2 * 8]));
    std::vector<float> q5(4 * 5 * 8), out5(4 * 5 * 8);
    CHECK_THROWS_WITH(lacuna::decode_attention(lacuna::tensor4_view<const float>(q5.data(), {1, 4, 5, 8}), cache,
                                               lacuna::tensor4_view<float>(out5.data(), {1, 4, 5, 8})),
                      "lacuna::decode_attention: the cache holds 3 tokens, fewer than the 5 queries");
    std::vector<float> q2(2 * 4 * 8), out2(2 * 4 * 8);
    CHECK_THROWS_AS(lacuna::decode_attention(lacuna::tensor4_view<const float>(q2.data(), {2, 4, 1, 8}), cache,
                                             lacuna::tensor4_view<float>(out2.data(), {2, 4, 1, 8})),
                    lacuna::shape_error);
}
