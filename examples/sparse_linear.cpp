// Prunes a linear layer to 2:4 and to 90% CSR, runs lacuna::linear for one token (decode) and for
// 128 tokens (prefill), and reports each against the dense layer: the error against a double
// reference over the pruned weights, and the time against the dense weights run as well as lacuna
// can (one token: a vector dot product per output, bound by reading W; 128 tokens: W with every
// 16 x 16 block stored, through the register-blocked BSR kernel).
//
//   sparse_linear [out [in]]      (W is out x in; default 4096 x 11008, a LLaMA-7B down projection;
//                                   with only `out`, in = out * 11008 / 4096)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <lacuna/lacuna.hpp>
#include <lacuna/reference/spmm.hpp>

namespace {

template <class F> double best_ms(F&& f) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

// The largest |y - ref| / max|ref| over the first `rows` tokens, against the double reference.
template <class Layout>
double error(const Layout& w, const std::vector<float>& x, const std::vector<float>& y, std::span<const float> bias,
             std::size_t rows, std::size_t in, std::size_t out) {
    std::vector<float> ref(rows * out);
    lacuna::ref::linear(lacuna::matrix_view<const float>(x.data(), rows, in), w, lacuna::matrix_view<float>(ref, rows, out),
                        bias, "silu");
    double worst = 0, scale = 0;
    for (std::size_t k = 0; k < ref.size(); ++k) {
        worst = std::max(worst, double(std::abs(y[k] - ref[k])));
        scale = std::max(scale, double(std::abs(ref[k])));
    }
    return scale > 0 ? worst / scale : worst;
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t out = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4096;
    const std::size_t in = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : out * 11008 / 4096;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 0.02f);
    std::vector<float> w(out * in), bias(out);
    for (float& v : w) v = normal(rng);
    for (float& v : bias) v = normal(rng);
    const lacuna::matrix_view<const float> dense(w, out, in);
    const auto w24 = lacuna::nm<float, 2, 4>::from_dense(dense);
    const auto w90 = lacuna::csr<float>::from_dense(dense, lacuna::prune::top_fraction(0.1));
    const auto w_dense_blocks = lacuna::bsr<float, 16, 16>::from_dense(dense);
    std::printf("W %zu x %zu: dense %.1f MB, 2:4 %.1f MB, 90%% CSR %.1f MB; arch %s, %d threads\n", out, in,
                double(w.size() * 4) * 1e-6, double(w24.bytes()) * 1e-6, double(w90.bytes()) * 1e-6,
                std::string(lacuna::arch_name(lacuna::active_arch())).c_str(), lacuna::num_threads());

    double worst = 0;
    for (std::size_t tokens : {std::size_t(1), std::size_t(128)}) {
        std::vector<float> x(tokens * in), y(tokens * out);
        for (float& v : x) v = normal(rng) * 50.f;
        const lacuna::matrix_view<const float> xv(x, tokens, in);
        const lacuna::matrix_view<float> yv(y, tokens, out);
        const lacuna::linear_options opts{bias, lacuna::activation::silu};
        const double dense_ms = best_ms([&] {
            if (tokens > 1) return lacuna::linear(xv, w_dense_blocks, yv, opts);
            lacuna::parallel_for(out, [&](std::size_t o) {
                y[o] = lacuna::dot(std::span<const float>(x), std::span<const float>(w).subspan(o * in, in));
            });
        });
        const std::size_t checked = std::min<std::size_t>(tokens, 4);
        const double ms24 = best_ms([&] { lacuna::linear(xv, w24, yv, opts); });
        const double e24 = error(w24, x, y, bias, checked, in, out);
        const double ms90 = best_ms([&] { lacuna::linear(xv, w90, yv, opts); });
        const double e90 = error(w90, x, y, bias, checked, in, out);
        std::printf("T = %3zu: dense %8.2f ms | 2:4 %8.2f ms (%4.2fx), error %.1e | 90%% CSR %8.2f ms (%4.2fx), error %.1e\n",
                    tokens, dense_ms, ms24, dense_ms / ms24, e24, ms90, dense_ms / ms90, e90);
        worst = std::max({worst, e24, e90});
    }
    std::printf("%s\n", worst < 1e-5 ? "both layers match the reference" : "MISMATCH against the reference");
    return worst < 1e-5 ? 0 : 1;
}
