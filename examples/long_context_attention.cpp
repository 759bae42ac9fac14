// Long-context prefill three ways: dense causal attention, a sliding window with attention sinks
// (StreamingLLM's pattern, a block mask built from the pattern's runs), and MoBA (a block mask chosen
// from q and k by a gate over mean-pooled key blocks). For each sparse way: the time against dense,
// the fraction of query-key blocks computed, how far its output moves from dense attention (the
// approximation), and its exactness against a double reference of the same pattern on sample rows.
// The data are random, so attention spreads over every key and the approximation is poor; on real
// text most of the weight sits on the sinks, the nearby keys and a few blocks, which is where these
// patterns look.
//
//   long_context_attention [tokens]      (default 16384; 8 heads of 128)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include <lacuna/lacuna.hpp>

namespace {

constexpr std::size_t heads = 8, d = 128;

template <class F> double ms(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// ‖a − b‖ / ‖b‖.
double relative(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        norm += double(b[i]) * b[i];
    }
    return std::sqrt(diff / norm);
}

// The largest relative error, over a few query rows of head 0, of `out` against attention in double
// over the keys keep(i, j) allows.
template <class Keep>
double sampled_error(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                     const std::vector<float>& out, std::size_t l, Keep&& keep) {
    double worst = 0;
    for (std::size_t i : {std::size_t(0), l / 3, l / 2 + 7, l - 1}) {
        std::vector<double> s(l, -std::numeric_limits<double>::infinity()), acc(d, 0.0);
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        for (std::size_t j = 0; j < l; ++j) {
            if (!keep(i, j)) continue;
            double dot = 0;
            for (std::size_t c = 0; c < d; ++c) dot += double(q[i * d + c]) * k[j * d + c];
            s[j] = dot / std::sqrt(double(d));
            m = std::max(m, s[j]);
        }
        for (std::size_t j = 0; j < l; ++j) {
            if (s[j] == -std::numeric_limits<double>::infinity()) continue;
            const double p = std::exp(s[j] - m);
            sum += p;
            for (std::size_t c = 0; c < d; ++c) acc[c] += p * v[j * d + c];
        }
        double diff = 0, norm = 0;
        for (std::size_t c = 0; c < d; ++c) {
            const double ref = acc[c] / sum;
            diff += (out[i * d + c] - ref) * (out[i * d + c] - ref);
            norm += ref * ref;
        }
        worst = std::max(worst, std::sqrt(diff / norm));
    }
    return worst;
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t l = argc > 1 ? std::size_t(std::strtoul(argv[1], nullptr, 10)) : 16384;
    std::mt19937_64 rng(1);
    std::normal_distribution<float> value(0.f, 1.f);
    std::vector<float> q(heads * l * d), k(q.size()), v(q.size());
    for (auto* t : {&q, &k, &v})
        for (float& x : *t) x = value(rng);
    // Keys drift slowly along the sequence, so nearby and early blocks matter more, as in real text.
    for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t j = 0; j < l; ++j) k[(h * l + j) * d + h] += 3.f * std::cos(double(j) / 600.0);
    const lacuna::tensor4_view<const float> qv(q.data(), {1, heads, l, d}), kv(k.data(), {1, heads, l, d}),
        vv(v.data(), {1, heads, l, d});
    std::vector<float> dense(q.size()), window(q.size()), moba(q.size());
    auto out = [&](std::vector<float>& o) { return lacuna::tensor4_view<float>(o.data(), {1, heads, l, d}); };

    std::printf("%zu tokens, %zu heads of %zu, arch %s, %d threads\n", l, heads, d,
                std::string(lacuna::arch_name(lacuna::active_arch())).c_str(), lacuna::num_threads());
    lacuna::attention_options causal;
    causal.causal = true;
    const double dense_ms = ms([&] { lacuna::attention(qv, kv, vv, out(dense), causal); });
    std::printf("%-26s %9.1f ms\n", "dense causal", dense_ms);

    const lacuna::masks::sinks_and_window pattern{4, 1024};
    lacuna::block_mask window_mask;
    const double window_ms = ms([&] {
        window_mask = lacuna::create_block_mask(pattern, 1, 1, l, l);
        lacuna::flex_attention(qv, kv, vv, window_mask, out(window), pattern);
    });
    const double window_exact = sampled_error(q, k, v, window, l, [&](std::size_t i, std::size_t j) { return pattern(0, 0, i, j); });

    lacuna::block_mask moba_mask;
    const double moba_ms = ms([&] {
        moba_mask = lacuna::moba_block_mask(qv, kv, {128, 8});
        lacuna::flex_attention(qv, kv, vv, moba_mask, out(moba), lacuna::masks::causal{});
    });
    const std::size_t n = moba_mask.kv_blocks();
    const double moba_exact = sampled_error(q, k, v, moba, l, [&](std::size_t i, std::size_t j) {
        const std::size_t row = i / 128;
        if (j / 128 == row) return j <= i;
        const auto full = moba_mask.full_kv_indices().subspan(row * n, std::size_t(moba_mask.full_kv_num_blocks()[row]));
        return std::find(full.begin(), full.end(), std::int32_t(j / 128)) != full.end();
    });

    std::printf("%-26s %9s %9s %10s %12s %14s\n", "", "time", "x dense", "blocks", "vs dense", "vs reference");
    std::printf("%-26s %6.1f ms %8.2fx %9.1f%% %12.3g %14.2g\n", "sinks 4 + window 1024", window_ms, dense_ms / window_ms,
                100 * window_mask.density(), relative(window, dense), window_exact);
    std::printf("%-26s %6.1f ms %8.2fx %9.1f%% %12.3g %14.2g\n", "MoBA, 8 blocks of 128", moba_ms, dense_ms / moba_ms,
                100 * moba_mask.density(), relative(moba, dense), moba_exact);
    const bool exact = window_exact < 1e-5 && moba_exact < 1e-5;
    std::printf("%s\n", exact ? "both exact against the reference of their pattern" : "ERROR: a kernel disagrees with its reference");
    return exact ? 0 : 1;
}
