// Prunes a random weight matrix into each sparse layout and reports what each costs and keeps:
// density, bytes against dense storage, and the largest difference between to_dense() and the
// original with the pruned elements zeroed (0 means nothing was lost or corrupted).
//
//   prune_weights [n]      (an n x n float matrix; default 4096)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <lacuna/lacuna.hpp>

namespace {

template <class Layout, class Rule>
void report(const char* name, const std::vector<float>& w, std::size_t n, const Rule& rule, double& worst) {
    lacuna::matrix_view<const float> dense(w, n, n);
    auto start = std::chrono::steady_clock::now();
    Layout sparse = Layout::from_dense(dense, rule);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    std::vector<bool> keep = rule.select(dense);
    std::vector<float> back = sparse.to_dense();
    double max_error = 0;
    for (std::size_t k = 0; k < w.size(); ++k)
        max_error = std::max(max_error, double(std::abs(back[k] - (keep[k] ? w[k] : 0.f))));
    worst = std::max(worst, max_error);
    const double dense_bytes = double(w.size() * sizeof(float));
    std::printf("%-34s density %6.3f   %10zu bytes (%5.1f%% of dense)   built in %7.1f ms   max error %g\n", name,
                sparse.density(), sparse.bytes(), 100.0 * double(sparse.bytes()) / dense_bytes, ms, max_error);
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4096;
    std::vector<float> w(n * n);
    std::mt19937 rng(2024);
    std::normal_distribution<float> dist(0.f, 0.02f);
    for (float& x : w) x = dist(rng);
    std::printf("pruning a %zu x %zu float weight matrix (%zu bytes dense)\n", n, n, w.size() * sizeof(float));

    namespace prune = lacuna::prune;
    double worst = 0;
    report<lacuna::csr<float>>("csr, top 10% by magnitude", w, n, prune::top_fraction(0.1), worst);
    report<lacuna::csr<float>>("csr, |w| > 0.04", w, n, prune::threshold(0.04), worst);
    report<lacuna::bsr<float, 16, 16>>("bsr 16x16, top 25% of blocks", w, n,
                                       prune::block_top_fraction({16, 16}, 0.25), worst);
    report<lacuna::bsr<float, 4, 4>>("bsr 4x4, blocks with norm > 0.1", w, n, prune::block_threshold({4, 4}, 0.1),
                                     worst);
    report<lacuna::nm<float, 2, 4>>("2:4, largest 2 of every 4", w, n, prune::n_m(2, 4), worst);
    report<lacuna::nm<float, 1, 4>>("1:4, largest of every 4", w, n, prune::n_m(1, 4), worst);
    report<lacuna::bitmap<float>>("bitmap, top 50% of each row", w, n, prune::top_fraction(0.5, prune::scope::row),
                                  worst);
    std::printf("%s\n", worst == 0 ? "every layout holds exactly the elements its rule kept"
                                   : "MISMATCH: a layout changed a kept element");
    return worst == 0 ? 0 : 1;
}
