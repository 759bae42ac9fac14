// lacuna: the MoE router on a range of tokens: scores (softmax or sigmoid over the experts), the
// optional DeepSeek-V3 group pruning, top-k by arg-max passes, the weights, and per-block sums for
// the load-balancing and z losses.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "lacuna/simd/compat.hpp"

namespace lacuna::moe {
/// How a router turns logits into scores.
enum class scoring {
    softmax, ///< over the experts of a token (Mixtral, Qwen-MoE, Switch)
    sigmoid, ///< each expert on its own (DeepSeek-V3)
};
} // namespace lacuna::moe

namespace lacuna::kernels {

/// The operands of a routing call, checked by the entry point: logits [T, experts] with row stride
/// ld, finite bias (or null); with n_group > 1, experts in n_group groups of at least 2, of which
/// topk_group are kept and hold at least k experts. ids and weights are [T, k], contiguous. stats,
/// if not null, receives per block of router_block tokens (block b at b·(experts + 1)) the sum over
/// its tokens of each expert's normalised score, then the sum of logsumexp(logits)².
struct router_args {
    const float* logits;
    std::size_t ld, experts, k;
    moe::scoring scoring;
    const float* bias;
    std::size_t n_group, topk_group;
    bool renormalize;
    float scaling;
    std::int32_t* ids;
    float* weights;
    double* stats;
};

/// Tokens per block of the statistics: fixed, so that their sums do not depend on the thread count.
inline constexpr std::size_t router_block = 64;

/// Floats of scratch a thread needs: the scores and the selection keys of one token, each padded to
/// a whole number of the widest registers, and a score and a kept flag per group.
inline std::size_t router_workspace(const router_args& a) noexcept {
    const std::size_t padded = (a.experts + 15) / 16 * 16;
    return 2 * padded + 2 * a.n_group;
}

/// Routes tokens [token_begin, token_end) (a multiple of router_block apart from the last token)
/// with router_workspace floats of scratch. A token whose logits hold NaN or +inf, or (softmax) no
/// finite value, gets ids -1 and NaN weights: the entry point reports it.
struct route_topk {
    template <class Arch>
    void operator()(Arch, const router_args* args, float* workspace, std::size_t token_begin,
                    std::size_t token_end) const noexcept;
};

namespace detail {

// 0, 1, ..., width<V> - 1 as floats.
template <class V> LACUNA_ALWAYS_INLINE V lane_indices() noexcept {
    alignas(64) static constexpr float iota[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                                   32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                                                   48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    static_assert(simd::width<V> <= 64);
    return simd::load<V>(iota);
}

// The index of the largest of n keys (a multiple of the register width, at least `chains` registers;
// fewer than 2^24), ties to the lower index, in one pass without branches: each lane keeps its
// largest key and where it was, in `chains` chains over every chains-th register, so that each
// compare waits on a select that many registers back rather than on the one before (with 256 keys,
// the single chain was a third of the grouped router's time).
template <class V, std::size_t chains> LACUNA_ALWAYS_INLINE std::size_t arg_max(const float* keys, std::size_t n) noexcept {
    constexpr std::size_t w = simd::width<V>;
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    // Each chain's indices step by a constant vector: converting e to float for every register
    // made the one-chain search 5-7% slower.
    const V lanes = lane_indices<V>(), stride(float(chains * w));
    V best[chains], best_at[chains], at[chains];
    LACUNA_UNROLL for (std::size_t c = 0; c < chains; ++c) {
        at[c] = best_at[c] = lanes + V(float(c * w));
        best[c] = simd::load<V>(keys + c * w);
    }
    auto step = [&](std::size_t c, std::size_t e) LACUNA_LAMBDA_INLINE {
        at[c] = at[c] + stride;
        const V v = simd::load<V>(keys + e);
        const auto better = v > best[c];
        best[c] = simd::select(better, v, best[c]);
        best_at[c] = simd::select(better, at[c], best_at[c]);
    };
    std::size_t e = chains * w;
    for (; e + chains * w <= n; e += chains * w)
        LACUNA_UNROLL for (std::size_t c = 0; c < chains; ++c) step(c, e + c * w);
    for (std::size_t c = 0; e < n; e += w, ++c) step(c, e);
    V most = best[0];
    LACUNA_UNROLL for (std::size_t c = 1; c < chains; ++c) most = simd::max(most, best[c]);
    const V top(simd::reduce_max(most));
    V first(neg_inf);
    LACUNA_UNROLL for (std::size_t c = 0; c < chains; ++c)
        first = simd::max(first, simd::select(best[c] == top, -best_at[c], V(neg_inf)));
    return std::size_t(-simd::reduce_max(first));
}

// keys[e] = -inf through a whole register, so that the next pass's load of it is forwarded from
// the store rather than stalled on a narrower one.
template <class V> LACUNA_ALWAYS_INLINE void take(float* keys, std::size_t e) noexcept {
    constexpr std::size_t w = simd::width<V>;
    const std::size_t base = e / w * w;
    const V v = simd::load<V>(keys + base);
    simd::store(keys + base, simd::select(lane_indices<V>() == V(float(e - base)),
                                          V(-std::numeric_limits<float>::infinity()), v));
}

// The sum of the two largest of n keys (n a multiple of the register width).
template <class V> LACUNA_ALWAYS_INLINE float top2_sum(const float* keys, std::size_t n) noexcept {
    constexpr std::size_t w = simd::width<V>;
    V m = simd::load<V>(keys);
    for (std::size_t e = w; e < n; e += w) m = simd::max(m, simd::load<V>(keys + e));
    const float first = simd::reduce_max(m);
    V rest(-std::numeric_limits<float>::infinity()), ties(0.f);
    for (std::size_t e = 0; e < n; e += w) {
        const V v = simd::load<V>(keys + e);
        const auto is_first = v == V(first);
        rest = simd::max(rest, simd::select(is_first, V(-std::numeric_limits<float>::infinity()), v));
        ties = ties + simd::select(is_first, V(1.f), V(0.f));
    }
    return first + (simd::reduce_add(ties) >= 2.f ? first : simd::reduce_max(rest));
}


// Renormalised weights of the k chosen experts from their logits, for when a chosen score is below
// FLT_MIN and the float ratio has lost its precision (sigmoid(-104) is 0 in float, yet two such
// experts still split their weight as e^(l1 − l2)): w = exp(log score − the largest) / Σ, with
// log score = the logit for softmax (the common logsumexp cancels) and log sigmoid(l) =
// min(l, 0) − log1p(e^−|l|). All weights stay 0 when every chosen score is exactly 0 (-inf logits).
inline void renormalize_from_logits(moe::scoring scoring, const float* logit, const std::int32_t* ids, float* weights,
                                    std::size_t k) noexcept {
    float top = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < k; ++j) {
        const float l = logit[ids[j]];
        weights[j] = scoring == moe::scoring::softmax ? l : std::min(l, 0.f) - std::log1p(std::exp(-std::abs(l)));
        top = std::max(top, weights[j]);
    }
    if (top == -std::numeric_limits<float>::infinity()) {
        std::fill(weights, weights + k, 0.f);
        return;
    }
    float sum = 0.f;
    for (std::size_t j = 0; j < k; ++j) sum += weights[j] = std::exp(weights[j] - top);
    for (std::size_t j = 0; j < k; ++j) weights[j] /= sum;
}
} // namespace detail

template <class Arch>
void route_topk::operator()(Arch, const router_args* args, float* workspace, std::size_t token_begin,
                            std::size_t token_end) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    const router_args& a = *args;
    const std::size_t E = a.experts, padded = (E + 15) / 16 * 16, group_size = E / a.n_group;
    float* score = workspace;       // softmax probabilities or sigmoids; 0 past E
    float* key = score + padded;    // what selection compares: score + bias, -inf once taken or pruned
    float* group_score = key + padded;
    float* group_kept = group_score + a.n_group;
    for (std::size_t t = token_begin; t < token_end; ++t) {
        const float* logit = a.logits + t * a.ld;
        std::int32_t* ids = a.ids + t * a.k;
        float* weights = a.weights + t * a.k;
        std::copy_n(logit, E, score);  // a memmove at -O2 too, where GCC leaves the loop scalar
        std::fill(score + E, score + padded, neg_inf);
        V m(neg_inf);
        bool bad = false;
        for (std::size_t e = 0; e < padded; e += w) {
            const V x = simd::load<V>(score + e);
            bad = bad || simd::any(simd::is_nan(x)) || simd::any(x == V(std::numeric_limits<float>::infinity()));
            m = simd::max(m, x);
        }
        const float top = simd::reduce_max(m);
        if (bad || (a.scoring == moe::scoring::softmax && top == neg_inf)) {
            for (std::size_t j = 0; j < a.k; ++j) ids[j] = -1, weights[j] = std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        // logsumexp of the logits, for the z-loss: free with softmax, one more pass with sigmoid.
        float lse = 0.f;
        if (a.scoring == moe::scoring::softmax) {
            V sum(0.f);
            for (std::size_t e = 0; e < padded; e += w) {
                const V p = simd::exp(simd::load<V>(score + e) - V(top));
                simd::store(score + e, p);
                sum += p;
            }
            const float total = simd::reduce_add(sum);
            for (std::size_t e = 0; e < padded; e += w) simd::store(score + e, simd::load<V>(score + e) / V(total));
            lse = top + std::log(total);
        } else {
            if (a.stats && top != neg_inf) {
                V sum(0.f);
                for (std::size_t e = 0; e < padded; e += w) sum += simd::exp(simd::load<V>(score + e) - V(top));
                lse = top + std::log(simd::reduce_add(sum));
            } else {
                lse = top;
            }
            for (std::size_t e = 0; e < padded; e += w)
                simd::store(score + e, V(1.f) / (V(1.f) + simd::exp(-simd::load<V>(score + e))));
        }
        std::size_t e = 0;
        for (; e + w <= E; e += w) {
            const V sc = simd::load<V>(score + e);
            simd::store(key + e, a.bias ? sc + simd::load<V>(a.bias + e) : sc);
        }
        for (; e < E; ++e) key[e] = a.bias ? score[e] + a.bias[e] : score[e];
        for (; e < padded; ++e) key[e] = neg_inf;
        if (a.n_group > 1) {
            // A group's score is the sum of its two largest keys; the topk_group best groups (ties to
            // the lower group) keep their experts, the others leave the selection.
            for (std::size_t g = 0; g < a.n_group; ++g) {
                const float* k = key + g * group_size;
                if (group_size % w == 0) {
                    group_score[g] = detail::top2_sum<V>(k, group_size);
                    continue;
                }
                float first = neg_inf, second = neg_inf;
                for (std::size_t c = 0; c < group_size; ++c) {
                    if (k[c] > first) second = first, first = k[c];
                    else if (k[c] > second) second = k[c];
                }
                group_score[g] = first + second;
            }
            for (std::size_t g = 0; g < a.n_group; ++g) group_kept[g] = 0.f;
            for (std::size_t kept = 0; kept < a.topk_group; ++kept) {
                std::size_t best = a.n_group;
                for (std::size_t g = 0; g < a.n_group; ++g)
                    if (group_kept[g] == 0.f && (best == a.n_group || group_score[g] > group_score[best])) best = g;
                group_kept[best] = 1.f;
            }
            for (std::size_t g = 0; g < a.n_group; ++g)
                if (group_kept[g] == 0.f)
                    for (std::size_t e = g * group_size; e < (g + 1) * group_size; ++e) key[e] = neg_inf;
        }
        float sum = 0.f, smallest = std::numeric_limits<float>::infinity();
        for (std::size_t j = 0; j < a.k; ++j) {
            // Four chains from eight registers of keys on (256 experts: 1.3x faster); with fewer, each
            // chain would hold a register or two and the merge cost what the chains save.
            const std::size_t e = padded >= 8 * w ? detail::arg_max<V, 4>(key, padded) : detail::arg_max<V, 1>(key, padded);
            detail::take<V>(key, e);
            ids[j] = std::int32_t(e);
            weights[j] = score[e];
            sum += score[e];
            smallest = std::min(smallest, score[e]);
        }
        if (a.renormalize && smallest < std::numeric_limits<float>::min())
            detail::renormalize_from_logits(a.scoring, logit, ids, weights, a.k);
        else if (a.renormalize)
            for (std::size_t j = 0; j < a.k; ++j) weights[j] /= sum;
        for (std::size_t j = 0; j < a.k; ++j) weights[j] *= a.scaling;
        if (a.stats) {
            double* block = a.stats + t / router_block * (E + 1);
            double norm = 1.0;
            if (a.scoring == moe::scoring::sigmoid) {
                double total = 0;
                for (std::size_t e = 0; e < E; ++e) total += score[e];
                norm = total > 0 ? 1.0 / total : 0.0;
            }
            for (std::size_t e = 0; e < E; ++e) block[e] += double(score[e]) * norm;
            block[E] += double(lse) * double(lse);
        }
    }
}

} // namespace lacuna::kernels
