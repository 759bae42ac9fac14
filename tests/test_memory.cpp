// Memory bounds: every allocation of this program goes through a counting operator new, and each
// case checks that an entry point's peak extra memory stays within what its documentation states,
// for shapes where a quadratic workspace would show (attention over 65536 keys).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/prune.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/moe.hpp"
#include "lacuna/sddmm.hpp"
#include "lacuna/spmm.hpp"
#include "support/catch.hpp"
#include "support/random.hpp"

namespace {

std::atomic<std::size_t> live{0}, peak{0};

// A header before each block records its size, so that deletes without one can count too.
constexpr std::size_t header = 64;

void* counted(std::size_t n, std::size_t alignment) {
    alignment = std::max(alignment, header);
    void* base = std::aligned_alloc(alignment, (alignment + n + alignment - 1) / alignment * alignment);
    if (!base) throw std::bad_alloc();
    auto* p = static_cast<unsigned char*>(base) + alignment;
    reinterpret_cast<std::size_t*>(p - header)[0] = n;
    reinterpret_cast<std::size_t*>(p - header)[1] = alignment;
    const std::size_t now = live.fetch_add(n) + n;
    for (std::size_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
    }
    return p;
}

void release(void* p) noexcept {
    if (!p) return;
    auto* q = static_cast<unsigned char*>(p);
    const std::size_t n = reinterpret_cast<std::size_t*>(q - header)[0], alignment = reinterpret_cast<std::size_t*>(q - header)[1];
    live.fetch_sub(n);
    std::free(q - alignment);
}

// Peak bytes allocated by call() beyond what was live when it started, the largest over 1 and 2 threads.
template <class Call> std::size_t peak_extra(Call&& call) {
    const std::size_t before = live.load();
    peak.store(before);
    call();
    return peak.load() - before;
}

template <class Call> std::size_t peak_extra_any_threads(Call&& call) {
    std::size_t most = 0;
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        most = std::max(most, peak_extra(call));
    }
    lacuna::set_num_threads(0);
    return most;
}

// What an entry point that "allocates nothing" may still take: its split of rows over the threads.
constexpr std::size_t bookkeeping = 1024;

} // namespace

void* operator new(std::size_t n) { return counted(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, std::align_val_t a) { return counted(n, std::size_t(a)); }
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }

namespace {

constexpr std::size_t long_context = 65536;

// The documented scratch of attention(): (D + 2·Dv + 68)·64 floats per thread (plus 64·D for
// bfloat16, and 32·(64 + Dv) with bf16_probabilities), plus per task two size_t of work bookkeeping;
// slack for the few small vectors around them.
std::size_t attention_bound(std::size_t d, std::size_t dv, std::size_t threads, std::size_t tasks, bool bf16 = false,
                            bool rounded = false) {
    const std::size_t floats = (d + 2 * dv + 68 + (bf16 ? d : 0)) * 64 + (rounded ? 32 * (64 + dv) : 0);
    return threads * floats * sizeof(float) + 2 * (tasks + 2) * sizeof(std::size_t) + 4096;
}

} // namespace

TEST_CASE("attention over 65536 keys allocates its tile scratch, nothing proportional to Lq x Lkv", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t heads = 2, lq = 256, d = 64;
    const auto q = lacuna::test::random_vector(rng, heads * lq * d);
    const auto k = lacuna::test::random_vector(rng, heads * long_context * d);
    const auto& v = k;
    std::vector<float> out(heads * lq * d), lse(heads * lq);
    const lacuna::tensor4_view<const float> qv(q.data(), {1, heads, lq, d}), kv(k.data(), {1, heads, long_context, d}),
        vv(v.data(), {1, heads, long_context, d});
    const lacuna::tensor4_view<float> ov(out.data(), {1, heads, lq, d});
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        INFO(threads << " threads");
        lacuna::attention_options o;
        o.causal = true;
        o.logsumexp = lse;
        const std::size_t used = peak_extra([&] { lacuna::attention(qv, kv, vv, ov, o); });
        CHECK(used <= attention_bound(d, d, std::size_t(threads), heads * lq / 64));
        CHECK(std::isfinite(out[0]));
    }
    lacuna::set_num_threads(0);
}

TEST_CASE("bfloat16 attention with bf16_probabilities over 65536 keys: its documented scratch", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t lq = 128, d = 64;
    const auto q = lacuna::test::random_vector<lacuna::bfloat16>(rng, lq * d);
    const auto k = lacuna::test::random_vector<lacuna::bfloat16>(rng, long_context * d);
    std::vector<float> out(lq * d);
    const lacuna::tensor4_view<const lacuna::bfloat16> qv(q.data(), {1, 1, lq, d}), kv(k.data(), {1, 1, long_context, d});
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        INFO(threads << " threads");
        lacuna::attention_options o;
        o.bf16_probabilities = true;
        const std::size_t used =
            peak_extra([&] { lacuna::attention(qv, kv, kv, lacuna::tensor4_view<float>(out.data(), {1, 1, lq, d}), o); });
        CHECK(used <= attention_bound(d, d, std::size_t(threads), lq / 64, true, true));
        CHECK(std::isfinite(out[0]));
    }
    lacuna::set_num_threads(0);
}

TEST_CASE("flex_attention with a window over 65536 queries and keys: scratch per thread, not per pair", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t d = 32;
    const auto x = lacuna::test::random_vector(rng, long_context * d);
    std::vector<float> out(long_context * d);
    const lacuna::tensor4_view<const float> t(x.data(), {1, 1, long_context, d});
    const lacuna::masks::sliding_window window{127};
    const auto mask = lacuna::create_block_mask(window, 1, 1, long_context, long_context, 64, 64);
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        INFO(threads << " threads");
        const std::size_t used = peak_extra(
            [&] { lacuna::flex_attention(t, t, t, mask, lacuna::tensor4_view<float>(out.data(), {1, 1, long_context, d}), window); });
        CHECK(used <= attention_bound(d, d, std::size_t(threads), long_context / 64));
        // A quadratic score matrix would be 16 GiB; the block mask itself is O(Lq·Lkv / 64²).
        CHECK(used < long_context * 64);
    }
    lacuna::set_num_threads(0);
}

TEST_CASE("decode over a 65536-token cache: attention's bfloat16 scratch plus (Dv + 2) floats per query per 1024 keys", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t q_heads = 8, kv_heads = 2, d = 64;
    const auto q = lacuna::test::random_vector(rng, q_heads * d);
    const auto k = lacuna::test::random_vector(rng, kv_heads * long_context * d);
    std::vector<float> out(q_heads * d);
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        INFO(threads << " threads");
        const std::size_t used = peak_extra([&] {
            lacuna::decode_attention(lacuna::tensor4_view<const float>(q.data(), {1, q_heads, 1, d}),
                                     lacuna::tensor4_view<const float>(k.data(), {1, kv_heads, long_context, d}),
                                     lacuna::tensor4_view<const float>(k.data(), {1, kv_heads, long_context, d}),
                                     lacuna::tensor4_view<float>(out.data(), {1, q_heads, 1, d}));
        });
        const std::size_t splits = long_context / 1024;
        CHECK(used <= attention_bound(d, d, std::size_t(threads), splits * kv_heads, true) + q_heads * splits * (d + 2) * sizeof(float));
    }
    lacuna::set_num_threads(0);
}

TEST_CASE("the products allocate nothing but what their documentation states", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t m = 1024, k = 768, n = 64;
    const auto dense = lacuna::test::random_vector(rng, m * k);
    const lacuna::matrix_view<const float> dense_view(dense, m, k);
    const auto a = lacuna::csr<float>::from_dense(dense_view, lacuna::prune::top_fraction(0.1));
    const auto bits = lacuna::bitmap<float>::from_dense(dense_view, lacuna::prune::top_fraction(0.3));
    const auto b = lacuna::test::random_vector(rng, k * n), x = lacuna::test::random_vector(rng, 96 * m);
    std::vector<float> c(m * n), y(m), dx(96 * k);
    const lacuna::matrix_view<const float> b_rows(b, k, n);
    // Row-major float B: no allocation; column-major B is first copied to row-major (k · n floats).
    CHECK(peak_extra_any_threads([&] { lacuna::spmm(a, b_rows, lacuna::matrix_view<float>(c, m, n)); }) <= bookkeeping);
    CHECK(peak_extra_any_threads([&] { lacuna::spmm(bits, b_rows, lacuna::matrix_view<float>(c, m, n)); }) <= bookkeeping);
    const lacuna::matrix_view<const float, lacuna::order::col_major> b_cols(b.data(), k, n);
    CHECK(peak_extra_any_threads([&] { lacuna::spmm(a, b_cols, lacuna::matrix_view<float>(c, m, n)); }) <=
          k * n * sizeof(float) + 64 + bookkeeping);
    CHECK(peak_extra_any_threads([&] { lacuna::spmv(a, std::span<const float>(b).first(k), std::span<float>(y)); }) <= bookkeeping);
    CHECK(peak_extra_any_threads([&] {
              lacuna::spmm(lacuna::matrix_view<const float>(x, 96, m), a, lacuna::matrix_view<float>(dx, 96, k));
          }) <= bookkeeping);
    // sddmm: none, into the mask's copy.
    auto sampled = a;
    CHECK(peak_extra_any_threads([&] {
              lacuna::sddmm(lacuna::matrix_view<const float>(x, m, 64), lacuna::matrix_view<const float>(b, k, 64), a, sampled);
          }) <= bookkeeping);
}

TEST_CASE("linear: nothing for up to 4 tokens, (in + out) x T floats for more", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t out = 1024, in = 768;
    const auto dense = lacuna::test::random_vector(rng, out * in);
    const auto w = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, out, in), lacuna::prune::top_fraction(0.2));
    for (std::size_t tokens : {1, 4, 5, 200}) {
        INFO(tokens << " tokens");
        const auto x = lacuna::test::random_vector(rng, tokens * in);
        std::vector<float> y(tokens * out);
        const std::size_t used = peak_extra_any_threads(
            [&] { lacuna::linear(lacuna::matrix_view<const float>(x, tokens, in), w, lacuna::matrix_view<float>(y, tokens, out)); });
        // Xᵀ's rows are padded to 16 floats (and 16 more where they would be 512 bytes apart).
        const std::size_t padded = (tokens + 15) / 16 * 16 + 16;
        CHECK(used <= (tokens <= 4 ? 0 : (in * padded + out * tokens) * sizeof(float) + 128) + bookkeeping);
    }
}

TEST_CASE("masked_attention: (Lkv + 1) x (4 + 8) bytes per thread of scratch and Lq + 1 row offsets", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t heads = 2, lq = 512, lkv = 8192, d = 32;
    const auto q = lacuna::test::random_vector(rng, heads * lq * d), k = lacuna::test::random_vector(rng, heads * lkv * d);
    std::vector<float> out(heads * lq * d);
    const auto mask = lacuna::bitmap<float>::from_dense(lacuna::matrix_view<const float>(lacuna::test::random_vector(rng, lq * lkv), lq, lkv),
                                                        lacuna::prune::top_fraction(0.05));
    for (int threads : {1, 2}) {
        lacuna::set_num_threads(threads);
        const std::size_t used = peak_extra([&] {
            lacuna::masked_attention(lacuna::tensor4_view<const float>(q.data(), {1, heads, lq, d}),
                                     lacuna::tensor4_view<const float>(k.data(), {1, heads, lkv, d}),
                                     lacuna::tensor4_view<const float>(k.data(), {1, heads, lkv, d}), mask,
                                     lacuna::tensor4_view<float>(out.data(), {1, heads, lq, d}));
        });
        CHECK(used <= std::size_t(threads) * lkv * (sizeof(float) + sizeof(std::size_t)) + (lq + 1) * sizeof(std::size_t) + bookkeeping);
    }
    lacuna::set_num_threads(0);
}

TEST_CASE("moe_layer: logits, routing and dispatch, the sorted rows, and the experts' chunk scratch", "[memory]") {
    auto rng = lacuna::test::make_rng();
    const std::size_t T = 512, H = 256, F = 512, E = 8, k = 2;
    const auto x = lacuna::test::random_vector(rng, T * H), router = lacuna::test::random_vector(rng, E * H);
    const auto wg = lacuna::test::random_vector(rng, E * F * H), wu = lacuna::test::random_vector(rng, E * F * H),
               wd = lacuna::test::random_vector(rng, E * H * F);
    const auto gate = lacuna::moe::dense_experts<float>(wg, E, F, H), up = lacuna::moe::dense_experts<float>(wu, E, F, H),
               down = lacuna::moe::dense_experts<float>(wd, E, H, F);
    lacuna::moe::layer_weights<lacuna::matrix_view<const float>> w{lacuna::matrix_view<const float>(router, E, H), {gate, up, down}};
    lacuna::moe::layer_config cfg;
    cfg.router.k = k;
    std::vector<float> y(T * H);
    const std::size_t used = peak_extra_any_threads(
        [&] { lacuna::moe::moe_layer(lacuna::matrix_view<const float>(x, T, H), w, lacuna::matrix_view<float>(y, T, H), cfg); });
    const std::size_t rows = T * k, chunk = 256 + 16;
    const std::size_t bound = (T * E + 2 * rows * H + (2 * H + 2 * F) * chunk) * sizeof(float) // documented buffers
                              + rows * 4 * 8                                                    // routing and dispatch: a few ints a row
                              + bookkeeping;
    CHECK(used <= bound);
    CHECK(used >= 2 * rows * H * sizeof(float)); // the count sees the sorted rows: the hook works
}
