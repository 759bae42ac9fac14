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
#include "lacuna/masks.hpp"
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

// Peak bytes allocated by call() beyond what was live when it started.
template <class Call> std::size_t peak_extra(Call&& call) {
    const std::size_t before = live.load();
    peak.store(before);
    call();
    return peak.load() - before;
}

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
// bfloat16), plus per task two size_t of work bookkeeping; slack for the few small vectors around them.
std::size_t attention_bound(std::size_t d, std::size_t dv, std::size_t threads, std::size_t tasks, bool bf16 = false) {
    return threads * (d + 2 * dv + 68 + (bf16 ? d : 0)) * 64 * sizeof(float) + 2 * (tasks + 2) * sizeof(std::size_t) + 4096;
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
