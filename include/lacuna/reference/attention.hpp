// lacuna: the dense reference of attention. Plain loops in double, the whole score row at once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"

namespace lacuna::ref {

/// out[b, h, i, :] = softmax_j(s_ij) · v[b, h / (Hq / Hkv), j, :], with s_ij = score(b, h, i, j, q·k)
/// where q·k is the plain dot product of q[b, h, i, :] and k[b, h / (Hq / Hkv), j, :]; score applies
/// the scale, the masks and any score function, and returns -inf for a position that is masked out.
/// A row with nothing kept gives zeros and logsumexp -inf; a NaN or +inf score makes the row NaN.
/// logsumexp (when not empty) receives log Σ_j exp(s_ij) for every [b, h, i], in that order.
template <class T, class Score>
void attention(tensor4_view<const T> q, tensor4_view<const T> k, tensor4_view<const T> v, tensor4_view<float> out,
               Score&& score, std::span<float> logsumexp = {}) {
    constexpr double neg_inf = -std::numeric_limits<double>::infinity();
    const std::size_t batch = q.extent(0), q_heads = q.extent(1), lq = q.extent(2), d = q.extent(3);
    const std::size_t kv_heads = k.extent(1), lkv = k.extent(2), dv = v.extent(3);
    const std::size_t group = kv_heads ? q_heads / kv_heads : 1;
    std::vector<double> s(lkv), acc(dv);
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t h = 0; h < q_heads; ++h)
            for (std::size_t i = 0; i < lq; ++i) {
                const std::size_t hk = h / group;
                double m = neg_inf;
                bool nan = false;
                for (std::size_t j = 0; j < lkv; ++j) {
                    double dot = 0;
                    for (std::size_t c = 0; c < d; ++c) dot += double(float(q(b, h, i, c))) * double(float(k(b, hk, j, c)));
                    s[j] = score(b, h, i, j, dot);
                    nan = nan || std::isnan(s[j]);
                    m = std::max(m, s[j]);
                }
                if (nan) m = std::numeric_limits<double>::quiet_NaN();
                std::fill(acc.begin(), acc.end(), 0.0);
                double sum = 0;
                if (m != neg_inf) // nothing kept: zeros, not 0/0
                    for (std::size_t j = 0; j < lkv; ++j) {
                        if (s[j] == neg_inf) continue;
                        const double p = std::exp(s[j] - m);
                        sum += p;
                        for (std::size_t c = 0; c < dv; ++c) acc[c] += p * double(float(v(b, hk, j, c)));
                    }
                for (std::size_t c = 0; c < dv; ++c) out(b, h, i, c) = sum > 0 || std::isnan(sum) ? float(acc[c] / sum) : 0.f;
                if (!logsumexp.empty())
                    logsumexp[(b * q_heads + h) * lq + i] = float(sum > 0 || std::isnan(sum) ? m + std::log(sum) : neg_inf);
            }
}

} // namespace lacuna::ref
