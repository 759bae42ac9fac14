// libFuzzer target for prefill attention: attention (causal, additive and boolean masks broadcast
// over batch and heads), flex_attention (block masks built by create_block_mask from a random mask_mod
// or from a pattern of lacuna::masks, vertical-slash's in closed form, or imported as random
// FlexAttention arrays; score_mods), and masked_attention (CSR or bitmap element masks). Shapes
// (GQA, head sizes off the register width, lengths across tiles and blocks, [B, L, H, D] strides),
// float or bfloat16, instruction set, threads and values (NaN and inf included) come from the input.
// Outputs and logsumexp must match the double reference within the error the float scores can make,
// NaN exactly where it has NaN. Anything else is a finding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/attention.hpp"
#include "lacuna/layouts.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/fuzz.hpp"

namespace {

using lacuna::bfloat16;
using lacuna::tensor4_view;
using lacuna::fuzz::check;
using lacuna::fuzz::mix;
constexpr double neg_inf = -std::numeric_limits<double>::infinity();
constexpr double ulp = 0x1p-23;

float value(FuzzedDataProvider& in) {
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0) return float(in.ConsumeIntegralInRange<int>(-32, 32)) / 16.f;
    // Finite values within ±4 (scores of FLT_MAX's size are exact only to their own rounding), NaN
    // and inf as they are.
    const float x = lacuna::fuzz::any_float(in);
    return std::isfinite(x) ? std::clamp(x, -4.f, 4.f) : x;
}

struct shape {
    std::size_t batch, q_heads, kv_heads, lq, lkv, d, dv;
};

// q, k and v of one shape, [B, H, L, D] or [B, L, H, D] in memory, values from a short drawn pool.
template <class T> struct operands {
    shape s;
    std::vector<T> q, k, v;
    bool blhd;

    operands(FuzzedDataProvider& in, shape sh) : s(sh), blhd(in.ConsumeBool()) {
        std::vector<float> pool(std::size_t(in.ConsumeIntegralInRange<int>(1, 48)));
        for (float& x : pool) x = value(in);
        const std::uint64_t seed = in.ConsumeIntegral<std::uint64_t>();
        std::size_t next = 0;
        for (auto* a : {&q, &k, &v}) {
            const std::size_t n = a == &q ? s.batch * s.q_heads * s.lq * s.d
                                  : a == &k ? s.batch * s.kv_heads * s.lkv * s.d
                                            : s.batch * s.kv_heads * s.lkv * s.dv;
            a->resize(n);
            for (T& x : *a) x = T(pool[mix(seed + next++) % pool.size()]);
        }
    }
    static tensor4_view<const T> view(const std::vector<T>& data, std::size_t b, std::size_t h, std::size_t l, std::size_t d, bool blhd) {
        if (!blhd) return {data.data(), {b, h, l, d}};
        return {data.data(), {b, h, l, d}, {l * h * d, d, h * d, 1}};
    }
    tensor4_view<const T> qv() const { return view(q, s.batch, s.q_heads, s.lq, s.d, blhd); }
    tensor4_view<const T> kv() const { return view(k, s.batch, s.kv_heads, s.lkv, s.d, blhd); }
    tensor4_view<const T> vv() const { return view(v, s.batch, s.kv_heads, s.lkv, s.dv, blhd); }
    std::size_t rows() const { return s.batch * s.q_heads * s.lq; }
};

// Runs `call(out, lse)` and checks it against the reference for `score` (scaled score, or -inf where
// masked): each output within what errors of δ in the kept scores move a softmax-weighted mean of
// the value rows (2·δ·max|v|) plus the float sums of the weighted rows; logsumexp within δ.
template <class T, class Score, class Call>
void check_attention(const operands<T>& x, double scale, Score&& score, Call&& call) {
    const shape& s = x.s;
    std::vector<float> want(x.rows() * s.dv), want_lse(x.rows()), got(want.size(), -1.f), got_lse(x.rows(), -1.f);
    const tensor4_view<float> want_view(want.data(), {s.batch, s.q_heads, s.lq, s.dv});
    lacuna::ref::attention(x.qv(), x.kv(), x.vv(), want_view, score, want_lse);
    call(tensor4_view<float>(got.data(), {s.batch, s.q_heads, s.lq, s.dv}), std::span<float>(got_lse));
    const auto q = x.qv(), k = x.kv(), v = x.vv();
    const std::size_t group = s.q_heads / s.kv_heads;
    for (std::size_t b = 0; b < s.batch; ++b)
        for (std::size_t h = 0; h < s.q_heads; ++h)
            for (std::size_t i = 0; i < s.lq; ++i) {
                const std::size_t row = (b * s.q_heads + h) * s.lq + i, hk = h / group;
                double delta = 0, v_max = 0;
                std::size_t kept = 0;
                for (std::size_t j = 0; j < s.lkv; ++j) {
                    double dot = 0, magnitude = 0;
                    for (std::size_t c = 0; c < s.d; ++c) {
                        const double p = double(float(q(b, h, i, c))) * double(float(k(b, hk, j, c)));
                        dot += p, magnitude += std::abs(p);
                    }
                    const double sj = score(b, h, i, j, dot);
                    if (sj == neg_inf) continue;
                    ++kept;
                    delta = std::max(delta, double(s.d + 4) * ulp * std::abs(scale) * magnitude + 8 * ulp * std::abs(sj));
                    for (std::size_t c = 0; c < s.dv; ++c) v_max = std::max(v_max, std::abs(double(float(v(b, hk, j, c)))));
                }
                const double bound = (2 * delta + double(kept + 16) * ulp) * v_max + 1e-30;
                for (std::size_t c = 0; c < s.dv; ++c) {
                    const float g = got[row * s.dv + c], w = want[row * s.dv + c];
                    if (std::isnan(w) || std::isnan(g)) check(std::isnan(w) && std::isnan(g));
                    else check(std::abs(double(g) - double(w)) <= bound);
                }
                const float gl = got_lse[row], wl = want_lse[row];
                if (std::isnan(wl) || std::isnan(gl) || std::isinf(wl)) check(std::isnan(wl) ? std::isnan(gl) : gl == wl);
                else check(std::abs(double(gl) - double(wl)) <= delta + 4 * ulp * std::abs(double(wl)) + 1e-6);
            }
}

// A mask_mod from a hash: keeps about `density` of the positions, in runs along kv of random length
// (so that blocks come out full, partial and empty).
struct hashed_mask {
    std::uint64_t seed;
    double density;
    std::size_t run;
    bool operator()(std::size_t b, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        const std::uint64_t hsh = mix(seed ^ (std::uint64_t(b) << 56) ^ (std::uint64_t(h) << 48) ^ (std::uint64_t(q) << 24) ^ (kv / run));
        return double(hsh >> 11) * 0x1p-53 < density;
    }
};

// score_mods FlexAttention users write: tanh soft-capping (Gemma 2) and an ALiBi bias.
struct soft_cap {
    float cap;
    float operator()(float score, std::size_t, std::size_t, std::size_t, std::size_t) const noexcept { return cap * std::tanh(score / cap); }
};
struct alibi {
    float slope;
    float operator()(float score, std::size_t, std::size_t h, std::size_t q, std::size_t kv) const noexcept {
        return score - slope * float(h + 1) * (float(q) - float(kv));
    }
};

template <class T, class MaskMod, class ScoreMod>
void flex(const operands<T>& x, const lacuna::block_mask& blocks, const MaskMod& mask_mod, const ScoreMod& score_mod, double scale,
          bool imported) {
    const std::size_t nkv = blocks.kv_blocks();
    // For imported arrays the listing decides: full blocks keep everything, partial ones ask mask_mod.
    const auto listed = [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j) {
        const std::size_t row = ((blocks.batch() == 1 ? 0 : b) * blocks.heads() + (blocks.heads() == 1 ? 0 : h)) * blocks.q_blocks() + i / blocks.q_block();
        const auto kb = std::int32_t(j / blocks.kv_block());
        for (std::size_t n = 0; n < std::size_t(blocks.kv_num_blocks()[row]); ++n)
            if (blocks.kv_indices()[row * nkv + n] == kb) return mask_mod(b, h, i, j) ? 1 : 0;
        if (!blocks.full_kv_num_blocks().empty())
            for (std::size_t n = 0; n < std::size_t(blocks.full_kv_num_blocks()[row]); ++n)
                if (blocks.full_kv_indices()[row * nkv + n] == kb) return 1;
        return 0;
    };
    check_attention(
        x, scale,
        [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
            if (imported ? !listed(b, h, i, j) : !mask_mod(b, h, i, j)) return neg_inf;
            return double(score_mod(float(scale * dot), b, h, i, j));
        },
        [&](tensor4_view<float> out, std::span<float> lse) {
            lacuna::flex_attention(x.qv(), x.kv(), x.vv(), blocks, out, mask_mod, score_mod, {float(scale), lse});
        });
}

// FlexAttention arrays with random listings: each key block of each row partial, full or absent.
lacuna::block_mask random_block_mask(FuzzedDataProvider& in, std::size_t batch, std::size_t heads, std::size_t lq, std::size_t lkv,
                                     std::size_t qb, std::size_t kb) {
    const std::size_t nq = (lq + qb - 1) / qb, nkv = (lkv + kb - 1) / kb, rows = batch * heads * nq;
    std::vector<std::int32_t> num_partial(rows, 0), partial(rows * nkv, 0), num_full(rows, 0), full(rows * nkv, 0);
    const std::uint64_t seed = in.ConsumeIntegral<std::uint64_t>();
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < nkv; ++c) {
            // Listed in a scrambled order: the kernel must not assume sorted lists.
            const std::size_t kv = (c + r) % nkv;
            switch (mix(seed + r * nkv + c) % 3) {
            case 0: partial[r * nkv + std::size_t(num_partial[r]++)] = std::int32_t(kv); break;
            case 1: full[r * nkv + std::size_t(num_full[r]++)] = std::int32_t(kv); break;
            default: break;
            }
        }
    return {batch, heads, lq, lkv, qb, kb, num_partial, partial, num_full, full};
}

template <class T> void run(FuzzedDataProvider& in) {
    shape s{};
    s.batch = in.ConsumeIntegralInRange<std::size_t>(1, 2);
    s.kv_heads = in.ConsumeIntegralInRange<std::size_t>(1, 2);
    s.q_heads = s.kv_heads * in.ConsumeIntegralInRange<std::size_t>(1, 4);
    s.lq = in.ConsumeIntegralInRange<std::size_t>(0, 70);
    s.lkv = in.ConsumeIntegralInRange<std::size_t>(0, 140);
    s.d = in.ConsumeIntegralInRange<int>(0, 3) != 0 ? in.ConsumeIntegralInRange<std::size_t>(1, 40) : in.ConsumeIntegralInRange<std::size_t>(41, 260);
    s.dv = in.ConsumeIntegralInRange<std::size_t>(1, 90);
    const operands<T> x(in, s);
    // The scale as the kernels see it (a float).
    const double scale = double(in.ConsumeBool() ? float(1.0 / std::sqrt(double(s.d))) : std::clamp(value(in), -2.f, 2.f));
    if (!std::isfinite(scale)) return;

    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: { // attention with causal and dense masks
        lacuna::attention_options o;
        o.scale = float(scale);
        o.causal = in.ConsumeBool();
        const std::size_t mb = in.ConsumeBool() ? s.batch : 1, mh = in.ConsumeBool() ? s.q_heads : 1;
        std::vector<float> additive(mb * mh * s.lq * s.lkv);
        for (float& a : additive) a = in.ConsumeIntegralInRange<int>(0, 5) == 0 ? -INFINITY : float(in.ConsumeIntegralInRange<int>(-8, 8)) / 4.f;
        const hashed_mask keep{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeProbability<double>(), 1};
        std::unique_ptr<bool[]> kept(new bool[mb * mh * s.lq * s.lkv]);
        for (std::size_t n = 0; n < mb * mh * s.lq * s.lkv; ++n) kept[n] = keep(0, 0, n / s.lkv, n % s.lkv);
        const bool use_additive = in.ConsumeBool(), use_boolean = in.ConsumeBool();
        if (use_additive) o.additive_mask = tensor4_view<const float>(additive.data(), {mb, mh, s.lq, s.lkv});
        if (use_boolean) o.boolean_mask = tensor4_view<const bool>(kept.get(), {mb, mh, s.lq, s.lkv});
        const auto at = [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j) { return ((mb == 1 ? 0 : b) * mh + (mh == 1 ? 0 : h)) * s.lq * s.lkv + i * s.lkv + j; };
        check_attention(
            x, scale,
            [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j, double dot) {
                if (o.causal && double(j) > double(i) + double(s.lkv) - double(s.lq)) return neg_inf;
                if (use_boolean && !kept[at(b, h, i, j)]) return neg_inf;
                return scale * dot + (use_additive ? double(additive[at(b, h, i, j)]) : 0.0);
            },
            [&](tensor4_view<float> out, std::span<float> lse) {
                o.logsumexp = lse;
                lacuna::attention(x.qv(), x.kv(), x.vv(), out, o);
            });
        return;
    }
    case 1:
    case 2: { // flex_attention over create_block_mask of a hashed mask_mod (1) or a pattern (2)
        const std::size_t qb = in.ConsumeIntegralInRange<std::size_t>(1, 80), kb = in.ConsumeIntegralInRange<std::size_t>(1, 80);
        const std::size_t mb = in.ConsumeBool() ? s.batch : 1, mh = in.ConsumeBool() ? s.q_heads : 1;
        const int score_kind = in.ConsumeIntegralInRange<int>(0, 2);
        const auto with_score_mod = [&](const auto& mask_mod, const lacuna::block_mask& blocks) {
            if (score_kind == 0) flex(x, blocks, mask_mod, lacuna::no_score_mod{}, scale, false);
            else if (score_kind == 1) flex(x, blocks, mask_mod, soft_cap{float(in.ConsumeIntegralInRange<int>(1, 50))}, scale, false);
            else flex(x, blocks, mask_mod, alibi{float(in.ConsumeIntegralInRange<int>(0, 16)) / 64.f}, scale, false);
        };
        // heads: 1 only for a mask_mod that does not depend on the head (as FlexAttention asks).
        const auto with_mask = [&](const auto& mask_mod, std::size_t heads) {
            with_score_mod(mask_mod, lacuna::create_block_mask(mask_mod, mb, heads, s.lq, s.lkv, qb, kb));
        };
        if (in.ConsumeBool()) {
            // A per-batch or per-head hashed mask only where the block mask has that extent.
            const hashed_mask m{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeProbability<double>(), in.ConsumeIntegralInRange<std::size_t>(1, 40)};
            return with_mask([m, mb, mh](std::size_t b, std::size_t h, std::size_t q, std::size_t kv) { return m(mb == 1 ? 0 : b, mh == 1 ? 0 : h, q, kv); }, mh);
        }
        const std::size_t a = in.ConsumeIntegralInRange<std::size_t>(0, 70), c = in.ConsumeIntegralInRange<std::size_t>(0, 20);
        // Positions for global tokens, columns and diagonals: in any order, repeats allowed, some
        // past the sequence.
        const auto positions = [&](std::size_t below) {
            std::vector<std::size_t> p(in.ConsumeIntegralInRange<std::size_t>(0, 12));
            for (auto& x : p) x = in.ConsumeIntegralInRange<std::size_t>(0, below + 4);
            return p;
        };
        switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0: return with_mask(lacuna::masks::causal{std::ptrdiff_t(s.lkv) - std::ptrdiff_t(s.lq)}, mh);
        case 1: return with_mask(lacuna::masks::sliding_window{a, c}, mh);
        case 2: return with_mask(lacuna::masks::dilated_window{a, c, in.ConsumeIntegralInRange<std::size_t>(1, 4)}, mh);
        case 3: return with_mask(lacuna::masks::sinks_and_window{c, a + 1}, mh);
        case 4: {
            std::vector<std::size_t> cu{0};
            while (cu.back() < std::max(s.lq, s.lkv) && in.remaining_bytes() > 0) cu.push_back(cu.back() + in.ConsumeIntegralInRange<std::size_t>(0, 40));
            return with_mask(lacuna::masks::document(cu, in.ConsumeBool()), mh);
        }
        case 5: return with_mask(lacuna::masks::global_tokens(positions(std::max(s.lq, s.lkv)), a, c), mh);
        case 6: { // the block mask from classify_block, partial tiles from kept_bits
            auto columns = positions(s.lkv);
            return with_mask(lacuna::masks::vertical_slash(std::move(columns), positions(s.lq)), mh);
        }
        default:
            if (s.lkv == 0) return;
            return with_mask(lacuna::masks::bigbird(in.ConsumeIntegralInRange<std::size_t>(1, 32), c % 3, c % 2, a % 4, s.lkv,
                                                    in.ConsumeIntegral<std::uint64_t>()),
                             s.q_heads); // its random blocks differ by head
        }
    }
    case 3: { // flex_attention over imported arrays
        const std::size_t qb = in.ConsumeIntegralInRange<std::size_t>(1, 80), kb = in.ConsumeIntegralInRange<std::size_t>(1, 80);
        const std::size_t mb = in.ConsumeBool() ? s.batch : 1, mh = in.ConsumeBool() ? s.q_heads : 1;
        const lacuna::block_mask blocks = random_block_mask(in, mb, mh, s.lq, s.lkv, qb, kb);
        const hashed_mask m{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeProbability<double>(), in.ConsumeIntegralInRange<std::size_t>(1, 40)};
        flex(x, blocks, [m, mb, mh](std::size_t b, std::size_t h, std::size_t q, std::size_t kv) { return m(mb == 1 ? 0 : b, mh == 1 ? 0 : h, q, kv); },
             lacuna::no_score_mod{}, scale, true);
        return;
    }
    default: { // masked_attention with an element mask
        const hashed_mask m{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeProbability<double>(), in.ConsumeIntegralInRange<std::size_t>(1, 40)};
        std::vector<float> pattern(s.lq * s.lkv);
        for (std::size_t n = 0; n < pattern.size(); ++n) pattern[n] = m(0, 0, n / s.lkv, n % s.lkv) ? 1.f : 0.f;
        const lacuna::matrix_view<const float> pv(pattern.data(), s.lq, s.lkv);
        const auto score = [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
            return pattern[i * s.lkv + j] != 0.f ? scale * dot : neg_inf;
        };
        const auto with = [&](const auto& mask) {
            check_attention(x, scale, score, [&](tensor4_view<float> out, std::span<float> lse) {
                lacuna::masked_attention(x.qv(), x.kv(), x.vv(), mask, out, {float(scale), lse});
            });
        };
        if (in.ConsumeBool()) with(lacuna::csr<float>::from_dense(pv));
        else with(lacuna::bitmap<float>::from_dense(pv));
        return;
    }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    lacuna::fuzz::pick_arch_and_threads(in);
    if (in.ConsumeBool()) run<float>(in);
    else run<bfloat16>(in);
    return 0;
}
