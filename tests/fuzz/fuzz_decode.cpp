// libFuzzer target for decode attention over the three caches: random shapes (GQA, several queries,
// head sizes off the register width, lengths across tiles and splits), keep counts, append chunks
// and values (any bit pattern). The sparse cache must hold exactly the per-token top magnitudes;
// decode over it, over a paged cache and over the contiguous arrays of the same (pruned) keys and
// values must match the double reference within the documented tolerance, NaN where the reference
// has NaN. Bad shapes must raise lacuna::error. Anything else is a finding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/attention.hpp"
#include "lacuna/reference/attention.hpp"
#include "support/fuzz.hpp"

namespace {

using lacuna::fuzz::check;

float value(FuzzedDataProvider& in) {
    if (!in.ConsumeBool()) return float(in.ConsumeIntegralInRange<int>(-32, 32)) / 16.f;
    const float x = lacuna::fuzz::any_float(in);
    // Scores of large finite values are exact only to float rounding of their size, which moves the
    // probabilities past any fixed tolerance: keep them within ±4, but let NaN and inf through.
    return std::isfinite(x) ? std::clamp(x, -4.f, 4.f) : x;
}

// ‖a − b‖ / ‖b‖ over the finite entries; the non-finite ones must agree in kind.
bool close(const std::vector<float>& a, const std::vector<float>& b, double tolerance) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) || std::isnan(b[i])) {
            if (std::isnan(a[i]) != std::isnan(b[i])) return false;
            continue;
        }
        diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        norm += double(b[i]) * b[i];
    }
    return std::sqrt(diff) <= tolerance * std::max(std::sqrt(norm), 1e-3);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    lacuna::fuzz::pick_arch_and_threads(in);
    const std::size_t hk = in.ConsumeIntegralInRange<std::size_t>(1, 3), group = in.ConsumeIntegralInRange<std::size_t>(1, 4);
    const std::size_t hq = hk * group, lq = in.ConsumeIntegralInRange<std::size_t>(1, 3);
    const std::size_t d = in.ConsumeIntegralInRange<std::size_t>(1, 40), dv = in.ConsumeIntegralInRange<std::size_t>(1, 70);
    const std::size_t length = in.ConsumeIntegralInRange<std::size_t>(0, 1100);
    const std::size_t keep_k = in.ConsumeIntegralInRange<std::size_t>(0, d + 1), keep_v = in.ConsumeIntegralInRange<std::size_t>(0, dv);
    const bool causal = in.ConsumeBool();
    const std::size_t chunk = in.ConsumeIntegralInRange<std::size_t>(1, 200);

    std::vector<float> q(hq * lq * d), k(hk * length * d), v(hk * length * dv);
    // A short pool of drawn values spread over the arrays: long caches from short inputs.
    std::vector<float> pool(in.ConsumeIntegralInRange<std::size_t>(1, 32));
    for (float& x : pool) x = value(in);
    const std::uint64_t seed = in.ConsumeIntegral<std::uint64_t>();
    std::size_t next = 0;
    for (auto* a : {&q, &k, &v})
        for (float& x : *a) x = pool[lacuna::fuzz::mix(seed + next++) % pool.size()];

    if (keep_k > d) {
        try {
            lacuna::sparse_kv_cache<float>(hk, d, dv, keep_k, keep_v);
        } catch (const lacuna::shape_error&) {
            return 0;
        }
        check(false);
    }
    lacuna::sparse_kv_cache<float> cache(hk, d, dv, keep_k, keep_v);
    for (std::size_t t0 = 0; t0 < length; t0 += chunk) {
        const std::size_t n = std::min(chunk, length - t0);
        cache.append(lacuna::tensor4_view<const float>(k.data() + t0 * d, {1, hk, n, d}, {0, length * d, d, 1}),
                     lacuna::tensor4_view<const float>(v.data() + t0 * dv, {1, hk, n, dv}, {0, length * dv, dv, 1}));
    }
    check(cache.length() == length);
    const std::vector<float> kp = cache.keys(), vp = cache.values();
    // Each row keeps at most `keep` entries, unchanged, and every dropped one is no larger.
    auto pruned_right = [](const std::vector<float>& original, const std::vector<float>& pruned, std::size_t n, std::size_t keep) {
        for (std::size_t row = 0; row < original.size() / n; ++row) {
            float smallest_kept = std::numeric_limits<float>::infinity(), largest_dropped = 0;
            std::size_t kept = 0;
            for (std::size_t c = 0; c < n; ++c) {
                const float x = original[row * n + c], y = pruned[row * n + c];
                const float mag = std::isnan(x) ? std::numeric_limits<float>::infinity() : std::abs(x);
                if (y != 0.f || std::isnan(y)) {
                    if (!(std::memcmp(&x, &y, sizeof x) == 0)) return false;
                    ++kept, smallest_kept = std::min(smallest_kept, mag);
                } else if (x != 0.f) {
                    largest_dropped = std::max(largest_dropped, mag);
                }
            }
            if (kept > keep || (kept == keep && largest_dropped > smallest_kept) || (kept < keep && largest_dropped > 0)) return false;
        }
        return true;
    };
    check(pruned_right(k, kp, d, keep_k));
    check(pruned_right(v, vp, dv, keep_v));

    const lacuna::tensor4_view<const float> qv(q.data(), {1, hq, lq, d});
    std::vector<float> want(hq * lq * dv), sparse(want.size()), contiguous(want.size()), paged(want.size());
    lacuna::decode_options o;
    o.causal = causal;
    if (causal && lq > length) {
        try {
            lacuna::decode_attention(qv, cache, lacuna::tensor4_view<float>(sparse.data(), {1, hq, lq, dv}), o);
        } catch (const lacuna::shape_error&) {
            return 0;
        }
        check(false);
    }
    const lacuna::tensor4_view<const float> kv(kp.data(), {1, hk, length, d}), vv(vp.data(), {1, hk, length, dv});
    const double scale = 1.0 / std::sqrt(double(d));
    lacuna::ref::attention(qv, kv, vv, lacuna::tensor4_view<float>(want.data(), {1, hq, lq, dv}),
                           [&](std::size_t, std::size_t, std::size_t i, std::size_t j, double dot) {
                               return causal && j > i + length - lq ? -std::numeric_limits<double>::infinity() : scale * dot;
                           });
    lacuna::decode_attention(qv, cache, lacuna::tensor4_view<float>(sparse.data(), {1, hq, lq, dv}), o);
    lacuna::decode_attention(qv, kv, vv, lacuna::tensor4_view<float>(contiguous.data(), {1, hq, lq, dv}), o);
    lacuna::paged_kv_cache<float> pages(hk, d, dv, 48, length / 48 + 1);
    const std::size_t s = pages.add_sequence();
    pages.append(s, kv, vv);
    const std::vector<std::size_t> seqs{s};
    lacuna::decode_attention(qv, pages, seqs, lacuna::tensor4_view<float>(paged.data(), {1, hq, lq, dv}), o);
    check(close(sparse, want, 1e-4));
    check(close(contiguous, want, 1e-4));
    check(close(paged, want, 1e-4));
    return 0;
}
