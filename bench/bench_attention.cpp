// Fused attention against the kernel a user composes with OpenBLAS (per tile of 128 queries: sgemm
// for q·kᵀ, a vectorised softmax per row, sgemm for ·v) and the lacuna reference, in one binary.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lacuna/attention.hpp"
#include "lacuna/block_selection.hpp"
#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/layout/block_mask.hpp"
#include "lacuna/layout/coo.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/kv_cache.hpp"
#include "lacuna/layout/sparse_kv_cache.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/primitives.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/bench_main.hpp"

namespace {

using lacuna::bench::add_timed;
using lacuna::bench::timed_case;
using buffer = lacuna::aligned_buffer<float>;

// One batch, `heads` heads of q, k, v, each [heads, l, d], in float and rounded to bfloat16.
struct prefill {
    std::size_t heads, l, d;
    buffer q, k, v, out;
    lacuna::aligned_buffer<lacuna::bfloat16> qb, kb, vb;
    lacuna::tensor4_view<const float> view(const buffer& x) const { return {x.data(), {1, heads, l, d}}; }
    lacuna::tensor4_view<const lacuna::bfloat16> view(const lacuna::aligned_buffer<lacuna::bfloat16>& x) const {
        return {x.data(), {1, heads, l, d}};
    }
    lacuna::tensor4_view<float> out_view() { return {out.data(), {1, heads, l, d}}; }
};

prefill& prefill_for(std::size_t heads, std::size_t l, std::size_t d) {
    static std::map<std::string, std::unique_ptr<prefill>> cache;
    auto& p = cache[std::to_string(heads) + "x" + std::to_string(l) + "x" + std::to_string(d)];
    if (!p) {
        p = std::make_unique<prefill>();
        p->heads = heads, p->l = l, p->d = d;
        std::mt19937_64 rng(7);
        std::normal_distribution<float> value(0.f, 1.f);
        const std::size_t n = heads * l * d;
        for (auto* x : {&p->q, &p->k, &p->v}) {
            *x = buffer(n);
            for (float& e : *x) e = value(rng);
        }
        p->out = buffer(n);
        for (auto [from, to] : {std::pair{&p->q, &p->qb}, std::pair{&p->k, &p->kb}, std::pair{&p->v, &p->vb}}) {
            *to = lacuna::aligned_buffer<lacuna::bfloat16>(n);
            lacuna::convert(std::span<const float>(from->data(), n), std::span<lacuna::bfloat16>(to->data(), n));
        }
    }
    return *p;
}

// Query-key pairs a causal (or full) square attention keeps per head.
double kept_pairs(std::size_t l, bool causal) { return causal ? double(l) * double(l + 1) / 2 : double(l) * double(l); }

#if LACUNA_BENCH_OPENBLAS
// What a user writes with a BLAS: per head and tile of 128 queries, the scores with sgemm (only the
// keys the causal bound allows), a softmax per row, the output with sgemm.
void composed_attention(prefill& p, bool causal) {
    constexpr std::size_t tile = 128;
    static buffer scores;
    if (scores.size() < tile * p.l) scores = buffer(tile * p.l);
    const float scale = float(1.0 / std::sqrt(double(p.d)));
    const int d = int(p.d);
    for (std::size_t h = 0; h < p.heads; ++h) {
        const float* q = p.q.data() + h * p.l * p.d;
        const float* k = p.k.data() + h * p.l * p.d;
        const float* v = p.v.data() + h * p.l * p.d;
        float* out = p.out.data() + h * p.l * p.d;
        for (std::size_t i0 = 0; i0 < p.l; i0 += tile) {
            const std::size_t rows = std::min(tile, p.l - i0), keys = causal ? i0 + rows : p.l;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(keys), d, scale, q + i0 * p.d, d, k, d, 0.f,
                        scores.data(), int(keys));
            for (std::size_t r = 0; r < rows; ++r) {
                float* row = scores.data() + r * keys;
                const std::size_t kept = causal ? i0 + r + 1 : keys;
                lacuna::softmax(std::span<const float>(row, kept), std::span<float>(row, kept));
                std::fill(row + kept, row + keys, 0.f);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), d, int(keys), 1.f, scores.data(), int(keys), v, d,
                        0.f, out + i0 * p.d, d);
        }
    }
}
#endif

void add_prefill(std::size_t heads, std::size_t l, std::size_t d, bool causal, bool with_reference) {
    const std::string op = std::string(causal ? "causal" : "dense") + "_h" + std::to_string(heads) + "_d" + std::to_string(d);
    const std::string size = std::to_string(l);
    const double flops = 4.0 * kept_pairs(l, causal) * double(d) * double(heads);
    auto add = [&](const std::string& impl, int threads, std::function<void(prefill&)> run) {
        add_timed(op + "/" + impl + "/" + size, threads, [=] {
            prefill& p = prefill_for(heads, l, d);
            return timed_case{[&p, run] { run(p); }, flops, 3.0 * double(heads * l * d) * sizeof(float)};
        });
    };
    lacuna::attention_options o;
    o.causal = causal;
    for (int threads : {1, 2}) {
        const std::string suffix = threads == 1 ? "" : ".2t";
        add("lacuna" + suffix, threads, [o](prefill& p) { lacuna::attention(p.view(p.q), p.view(p.k), p.view(p.v), p.out_view(), o); });
        add("lacuna_bf16" + suffix, threads,
            [o](prefill& p) { lacuna::attention(p.view(p.qb), p.view(p.kb), p.view(p.vb), p.out_view(), o); });
        lacuna::attention_options rounded = o;
        rounded.bf16_probabilities = true;
        add("lacuna_bf16p" + suffix, threads,
            [rounded](prefill& p) { lacuna::attention(p.view(p.qb), p.view(p.kb), p.view(p.vb), p.out_view(), rounded); });
#if LACUNA_BENCH_OPENBLAS
        add("openblas" + suffix, threads, [causal](prefill& p) { composed_attention(p, causal); });
#endif
    }
    if (with_reference)
        add("ref", 1, [causal](prefill& p) {
            const double scale = 1.0 / std::sqrt(double(p.d));
            lacuna::ref::attention(p.view(p.q), p.view(p.k), p.view(p.v), p.out_view(),
                                   [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
                                       return causal && j > i ? -std::numeric_limits<double>::infinity() : scale * dot;
                                   });
        });
}

// Attention over the key blocks of a block mask, against dense attention of the same shape: block
// sparsity at `density` of the 128 × 128 blocks (random full blocks, the diagonal always kept), or a
// causal sliding window of `window` keys (create_block_mask; partial blocks on the window's edges).
void add_block_sparse(std::size_t heads, std::size_t l, std::size_t d, double density, std::size_t window) {
    const std::string op = (window ? "window" + std::to_string(window) : "blocks" + std::to_string(int(density * 100)) + "%") +
                           "_h" + std::to_string(heads) + "_d" + std::to_string(d);
    const std::string size = std::to_string(l);
    const lacuna::masks::sliding_window in_window{window ? window - 1 : 0};
    auto make_mask = [=] {
        if (window) return lacuna::create_block_mask(in_window, 1, 1, l, l);
        const std::size_t n = (l + 127) / 128;
        std::mt19937_64 rng(11);
        std::vector<std::int32_t> count(heads * n, 0), index(heads * n * n, 0);
        for (std::size_t row = 0; row < heads * n; ++row) {
            std::vector<std::int32_t> blocks(n);
            for (std::size_t j = 0; j < n; ++j) blocks[j] = std::int32_t(j);
            std::shuffle(blocks.begin(), blocks.end(), rng);
            const std::size_t diagonal = row % n;
            index[row * n] = std::int32_t(diagonal);
            std::size_t kept = 1;
            for (std::size_t j = 0; j < n && double(kept) < density * double(n); ++j)
                if (std::size_t(blocks[j]) != diagonal) index[row * n + kept++] = blocks[j];
            count[row] = std::int32_t(kept);
        }
        return lacuna::block_mask(1, heads, l, l, 128, 128, std::vector<std::int32_t>(heads * n, 0), std::vector<std::int32_t>(heads * n * n, 0),
                                  count, index);
    };
    const auto mask = std::make_shared<lacuna::block_mask>(make_mask());
    double kept = 0; // query-key pairs in the listed blocks
    {
        const std::size_t n = mask->q_blocks(), rows = mask->heads() * n;
        for (std::size_t row = 0; row < rows; ++row) {
            const std::size_t qb = row % n, queries = std::min<std::size_t>(128, l - qb * 128);
            for (auto list : {std::pair{mask->kv_num_blocks(), mask->kv_indices()}, std::pair{mask->full_kv_num_blocks(), mask->full_kv_indices()}})
                for (std::size_t e = 0; e < std::size_t(list.first[row]); ++e)
                    kept += double(queries) * double(std::min<std::size_t>(128, l - std::size_t(list.second[row * n + e]) * 128));
        }
        if (mask->heads() == 1) kept *= double(heads);
    }
    auto add = [&](const std::string& impl, int threads, double flops, std::function<void(prefill&)> run) {
        add_timed(op + "/" + impl + "/" + size, threads, [=] {
            prefill& p = prefill_for(heads, l, d);
            return timed_case{[&p, run] { run(p); }, flops, 3.0 * double(heads * l * d) * sizeof(float)};
        });
    };
    for (int threads : {1, 2}) {
        const std::string suffix = threads == 1 ? "" : ".2t";
        if (window)
            add("lacuna" + suffix, threads, 4.0 * kept * double(d), [mask, in_window](prefill& p) {
                lacuna::flex_attention(p.view(p.q), p.view(p.k), p.view(p.v), *mask, p.out_view(), in_window);
            });
        else
            add("lacuna" + suffix, threads, 4.0 * kept * double(d),
                [mask](prefill& p) { lacuna::flex_attention(p.view(p.q), p.view(p.k), p.view(p.v), *mask, p.out_view()); });
        add("dense" + suffix, threads, 4.0 * kept * double(d),
            [](prefill& p) { lacuna::attention(p.view(p.q), p.view(p.k), p.view(p.v), p.out_view()); });
    }
    if (window)
        add("create_block_mask", 1, 0, [=](prefill&) { benchmark::DoNotOptimize(lacuna::create_block_mask(in_window, 1, 1, l, l)); });
}

// Content-based block selection at its cost in a prefill: the block mask chosen from q and k
// (`select`: MoBA's gate; or MInference's vertical-slash estimate, then create_block_mask over it),
// the selection with the flex_attention it feeds (`lacuna`), and causal dense attention of the same
// shape. Times only: what the selection keeps depends on the data.
void add_content_selection(std::size_t heads, std::size_t l, std::size_t d) {
    const std::string shape = "_h" + std::to_string(heads) + "_d" + std::to_string(d), size = std::to_string(l);
    auto add = [&](const std::string& op, const std::string& impl, std::function<void(prefill&)> run) {
        add_timed(op + shape + "/" + impl + "/" + size, 1, [=] {
            prefill& p = prefill_for(heads, l, d);
            return timed_case{[&p, run] { run(p); }, 0, 3.0 * double(heads * l * d) * sizeof(float)};
        });
    };
    const lacuna::moba_options moba{128, 3};
    add("moba", "select", [moba](prefill& p) { benchmark::DoNotOptimize(lacuna::moba_block_mask(p.view(p.q), p.view(p.k), moba)); });
    add("moba", "lacuna", [moba](prefill& p) {
        const lacuna::block_mask mask = lacuna::moba_block_mask(p.view(p.q), p.view(p.k), moba);
        lacuna::flex_attention(p.view(p.q), p.view(p.k), p.view(p.v), mask, p.out_view(), lacuna::masks::causal{});
    });
    auto vertical_slash = [heads, l](prefill& p) {
        auto pattern = lacuna::estimate_vertical_slash(p.view(p.q), p.view(p.k));
        lacuna::block_mask mask = lacuna::create_block_mask(pattern, 1, heads, l, l);
        return std::pair{std::move(pattern), std::move(mask)};
    };
    add("vertical_slash", "select", [vertical_slash](prefill& p) { benchmark::DoNotOptimize(vertical_slash(p)); });
    add("vertical_slash", "lacuna", [vertical_slash](prefill& p) {
        const auto [pattern, mask] = vertical_slash(p);
        lacuna::flex_attention(p.view(p.q), p.view(p.k), p.view(p.v), mask, p.out_view(), pattern);
    });
    lacuna::attention_options causal;
    causal.causal = true;
    for (const char* op : {"moba", "vertical_slash"})
        add(op, "dense", [causal](prefill& p) { lacuna::attention(p.view(p.q), p.view(p.k), p.view(p.v), p.out_view(), causal); });
}

// Attention at the positions of an element-level mask (`density` of the query-key pairs, uniform,
// as CSR), against dense attention of the same shape.
void add_masked(std::size_t heads, std::size_t l, std::size_t d, double density) {
    const std::string op = "masked" + std::to_string(int(density * 100)) + "%_h" + std::to_string(heads) + "_d" + std::to_string(d);
    auto mask = std::make_shared<lacuna::csr<float>>([&] {
        std::mt19937_64 rng(13);
        std::bernoulli_distribution keep(density);
        lacuna::triplets<float> pairs(l, l);
        for (std::size_t i = 0; i < l; ++i)
            for (std::size_t j = 0; j < l; ++j)
                if (keep(rng)) pairs.add(i, j, 1.f);
        return pairs.to_csr();
    }());
    const double flops = 4.0 * double(mask->nnz()) * double(d) * double(heads);
    for (int threads : {1, 2}) {
        const std::string suffix = threads == 1 ? "" : ".2t";
        add_timed(op + "/lacuna" + suffix + "/" + std::to_string(l), threads, [=] {
            prefill& p = prefill_for(heads, l, d);
            return timed_case{[&p, mask] { lacuna::masked_attention(p.view(p.q), p.view(p.k), p.view(p.v), *mask, p.out_view()); },
                              flops, 3.0 * double(heads * l * d) * sizeof(float)};
        });
        add_timed(op + "/dense" + suffix + "/" + std::to_string(l), threads, [=] {
            prefill& p = prefill_for(heads, l, d);
            return timed_case{[&p] { lacuna::attention(p.view(p.q), p.view(p.k), p.view(p.v), p.out_view()); }, flops,
                              3.0 * double(heads * l * d) * sizeof(float)};
        });
    }
}

// One new token of 32 query heads over a cache of `length` tokens and 8 KV heads, D = 128: the cache
// contiguous, paged (pages of 64 tokens), in float and bfloat16, against what a user composes with
// OpenBLAS (per KV head: sgemm of its 4 query heads against K, softmax, sgemm with V).
struct decode_case {
    std::size_t length;
    buffer q, k, v, out;
    lacuna::aligned_buffer<lacuna::bfloat16> kb, vb;
    std::unique_ptr<lacuna::paged_kv_cache<float>> paged;
    std::unique_ptr<lacuna::paged_kv_cache<lacuna::bfloat16>> paged_bf16;
    std::unique_ptr<lacuna::sparse_kv_cache<float>> sparse;
    std::unique_ptr<lacuna::sparse_kv_cache<lacuna::bfloat16>> sparse_bf16;
};

constexpr std::size_t decode_q_heads = 32, decode_kv_heads = 8, decode_d = 128, decode_kept = 38;

decode_case& decode_case_for(std::size_t length) {
    static std::map<std::size_t, std::unique_ptr<decode_case>> cache;
    auto& c = cache[length];
    if (!c) {
        c = std::make_unique<decode_case>();
        c->length = length;
        std::mt19937_64 rng(3);
        std::normal_distribution<float> value(0.f, 1.f);
        const std::size_t kv = decode_kv_heads * length * decode_d;
        c->q = buffer(decode_q_heads * decode_d);
        c->out = buffer(decode_q_heads * decode_d);
        for (auto* x : {&c->q, &(c->k = buffer(kv)), &(c->v = buffer(kv))})
            for (float& e : *x) e = value(rng);
        c->kb = lacuna::aligned_buffer<lacuna::bfloat16>(kv);
        c->vb = lacuna::aligned_buffer<lacuna::bfloat16>(kv);
        lacuna::convert(std::span<const float>(c->k.data(), kv), std::span<lacuna::bfloat16>(c->kb.data(), kv));
        lacuna::convert(std::span<const float>(c->v.data(), kv), std::span<lacuna::bfloat16>(c->vb.data(), kv));
        constexpr std::size_t page = 64;
        c->paged = std::make_unique<lacuna::paged_kv_cache<float>>(decode_kv_heads, decode_d, decode_d, page, length / page + 1);
        c->paged_bf16 = std::make_unique<lacuna::paged_kv_cache<lacuna::bfloat16>>(decode_kv_heads, decode_d, decode_d, page, length / page + 1);
        c->paged->add_sequence();
        c->paged_bf16->add_sequence();
        const lacuna::tensor4_view<const float> k4(c->k.data(), {1, decode_kv_heads, length, decode_d}), v4(c->v.data(), {1, decode_kv_heads, length, decode_d});
        const lacuna::tensor4_view<const lacuna::bfloat16> kb4(c->kb.data(), {1, decode_kv_heads, length, decode_d}),
            vb4(c->vb.data(), {1, decode_kv_heads, length, decode_d});
        c->paged->append(0, k4, v4);
        c->paged_bf16->append(0, kb4, vb4);
        // 70% sparsity: 38 of each token's 128 key and value channels kept.
        c->sparse = std::make_unique<lacuna::sparse_kv_cache<float>>(decode_kv_heads, decode_d, decode_d, decode_kept, decode_kept);
        c->sparse_bf16 =
            std::make_unique<lacuna::sparse_kv_cache<lacuna::bfloat16>>(decode_kv_heads, decode_d, decode_d, decode_kept, decode_kept);
        c->sparse->append(k4, v4);
        c->sparse_bf16->append(kb4, vb4);
    }
    return *c;
}

#if LACUNA_BENCH_OPENBLAS
void composed_decode(decode_case& c) {
    static buffer scores;
    constexpr std::size_t group = decode_q_heads / decode_kv_heads;
    if (scores.size() < group * c.length) scores = buffer(group * c.length);
    const float scale = float(1.0 / std::sqrt(double(decode_d)));
    const int d = int(decode_d), l = int(c.length);
    for (std::size_t h = 0; h < decode_kv_heads; ++h) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(group), l, d, scale, c.q.data() + h * group * decode_d, d,
                    c.k.data() + h * c.length * decode_d, d, 0.f, scores.data(), l);
        for (std::size_t r = 0; r < group; ++r)
            lacuna::softmax(std::span<const float>(scores.data() + r * c.length, c.length), std::span<float>(scores.data() + r * c.length, c.length));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(group), d, l, 1.f, scores.data(), l, c.v.data() + h * c.length * decode_d, d,
                    0.f, c.out.data() + h * group * decode_d, d);
    }
}
#endif

void add_decode(std::size_t length) {
    const std::string op = "decode_h32kv8_d128", size = std::to_string(length);
    const double flops = 4.0 * double(decode_q_heads * length * decode_d);
    // bytes: what the impl's cache occupies.
    auto add = [&](const std::string& impl, int threads, std::function<double(decode_case&)> bytes, std::function<void(decode_case&)> run) {
        add_timed(op + "/" + impl + "/" + size, threads, [=] {
            decode_case& c = decode_case_for(length);
            return timed_case{[&c, run] { run(c); }, flops, bytes(c)};
        });
    };
    auto dense = [](std::size_t value_bytes) {
        return [value_bytes](decode_case& c) { return 2.0 * double(decode_kv_heads * c.length * decode_d * value_bytes); };
    };
    auto q = [](decode_case& c) { return lacuna::tensor4_view<const float>(c.q.data(), {1, decode_q_heads, 1, decode_d}); };
    auto q_bf16 = [](decode_case& c) {
        static lacuna::aligned_buffer<lacuna::bfloat16> qb(decode_q_heads * decode_d);
        lacuna::convert(std::span<const float>(c.q.data(), qb.size()), std::span<lacuna::bfloat16>(qb.data(), qb.size()));
        return lacuna::tensor4_view<const lacuna::bfloat16>(qb.data(), {1, decode_q_heads, 1, decode_d});
    };
    auto out = [](decode_case& c) { return lacuna::tensor4_view<float>(c.out.data(), {1, decode_q_heads, 1, decode_d}); };
    static const std::vector<std::size_t> first{0};
    for (int threads : {1, 2}) {
        const std::string suffix = threads == 1 ? "" : ".2t";
        add("contiguous" + suffix, threads, dense(sizeof(float)), [=](decode_case& c) {
            lacuna::decode_attention(q(c), lacuna::tensor4_view<const float>(c.k.data(), {1, decode_kv_heads, c.length, decode_d}),
                                     lacuna::tensor4_view<const float>(c.v.data(), {1, decode_kv_heads, c.length, decode_d}), out(c));
        });
        add("paged" + suffix, threads, dense(sizeof(float)), [=](decode_case& c) { lacuna::decode_attention(q(c), *c.paged, first, out(c)); });
        add("contiguous_bf16" + suffix, threads, dense(2), [=](decode_case& c) {
            lacuna::decode_attention(q_bf16(c), lacuna::tensor4_view<const lacuna::bfloat16>(c.kb.data(), {1, decode_kv_heads, c.length, decode_d}),
                                     lacuna::tensor4_view<const lacuna::bfloat16>(c.vb.data(), {1, decode_kv_heads, c.length, decode_d}), out(c));
        });
        add("paged_bf16" + suffix, threads, dense(2), [=](decode_case& c) { lacuna::decode_attention(q_bf16(c), *c.paged_bf16, first, out(c)); });
        add("sparse70%" + suffix, threads, [](decode_case& c) { return double(c.sparse->bytes()); },
            [=](decode_case& c) { lacuna::decode_attention(q(c), *c.sparse, out(c)); });
        add("sparse70%_bf16" + suffix, threads, [](decode_case& c) { return double(c.sparse_bf16->bytes()); },
            [=](decode_case& c) { lacuna::decode_attention(q_bf16(c), *c.sparse_bf16, out(c)); });
#if LACUNA_BENCH_OPENBLAS
        add("openblas" + suffix, threads, dense(sizeof(float)), [](decode_case& c) { composed_decode(c); });
#endif
    }
}

void register_cases() {
    const bool full = lacuna::bench::full_run();
    std::vector<std::size_t> lengths{1024, 4096};
    if (full) lengths.push_back(8192);
    for (std::size_t d : {64, 128})
        for (std::size_t l : lengths)
            for (bool causal : {false, true}) add_prefill(8, l, d, causal, false);
    add_prefill(1, 512, 64, false, true); // the reference, at a size it finishes
    const std::size_t sparse_length = full ? 8192 : 4096;
    for (double density : {0.5, 0.2, 0.1, 0.05}) add_block_sparse(8, sparse_length, 128, density, 0);
    add_block_sparse(8, sparse_length, 128, 0, 512);
    add_content_selection(8, sparse_length, 128);
    add_masked(8, 4096, 128, 0.01);
    for (std::size_t length : {8192, 32768}) add_decode(length);
}

} // namespace

int main(int argc, char** argv) {
#if LACUNA_BENCH_OPENBLAS
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
    return lacuna::bench::run(argc, argv, register_cases, {"ref", "openblas", "dense"}, {"GFLOP/s", "GB/s"});
}
