// Building each sparse layout from a dense weight matrix, with each selection rule: the time, and
// the memory the result occupies against dense storage. Baselines in the same binary: a plain copy
// of the dense matrix, and Eigen's sparseView() (the exact dense-to-CSR conversion).
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lacuna/layouts.hpp"
#include "support/bench_main.hpp"

#if LACUNA_WITH_EIGEN
#include <Eigen/SparseCore>
#endif

namespace {

namespace prune = lacuna::prune;

// A weight matrix: normal values, with 30% exact zeros so that "nonzero" has something to drop.
const std::vector<float>& weights(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<std::vector<float>>> cache;
    auto& w = cache[n];
    if (!w) {
        w = std::make_unique<std::vector<float>>(n * n);
        std::mt19937 rng(11);
        std::normal_distribution<float> value(0.f, 0.02f);
        std::bernoulli_distribution zero(0.3);
        for (float& x : *w) x = zero(rng) ? 0.f : value(rng);
    }
    return *w;
}

// Registers "build/<impl>/<n>": build() returns the bytes of what it built.
void add_case(const std::string& impl, std::size_t n, std::function<std::size_t(lacuna::matrix_view<const float>)> build) {
    std::string name = "build/" + impl + "/" + std::to_string(n);
    benchmark::RegisterBenchmark(name.c_str(), [n, build](benchmark::State& state) {
        lacuna::matrix_view<const float> dense(weights(n), n, n);
        std::size_t bytes = 0;
        for (auto _ : state) bytes = build(dense);
        state.counters["size/dense"] = double(bytes) / double(n * n * sizeof(float));
        state.counters["Melem/s"] =
            benchmark::Counter(double(n) * double(n) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
    })->Unit(benchmark::kMillisecond);
}

template <class Layout, class Rule> void add_layout(const std::string& impl, std::size_t n, Rule rule) {
    add_case(impl, n, [rule](lacuna::matrix_view<const float> dense) {
        Layout m = Layout::from_dense(dense, rule);
        benchmark::DoNotOptimize(m.values());
        return m.bytes();
    });
}

void register_cases() {
    std::vector<std::size_t> sizes{4096};
    if (lacuna::bench::full_run()) sizes = {1024, 4096, 8192};
    for (std::size_t n : sizes) {
        add_case("dense_copy", n, [](lacuna::matrix_view<const float> dense) {
            std::vector<float> copy(dense.data(), dense.data() + dense.rows() * dense.cols());
            benchmark::DoNotOptimize(copy.data());
            return copy.size() * sizeof(float);
        });
#if LACUNA_WITH_EIGEN
        add_case("eigen", n, [](lacuna::matrix_view<const float> dense) {
            using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
            Eigen::Map<const matrix> map(dense.data(), Eigen::Index(dense.rows()), Eigen::Index(dense.cols()));
            Eigen::SparseMatrix<float, Eigen::RowMajor> s = map.sparseView();
            benchmark::DoNotOptimize(s.valuePtr());
            return std::size_t(s.nonZeros()) * (sizeof(float) + sizeof(int)) + (dense.rows() + 1) * sizeof(int);
        });
#endif
        add_layout<lacuna::csr<float>>("csr.nonzero", n, prune::nonzero{});
        add_layout<lacuna::csr<float>>("csr.threshold", n, prune::threshold(0.03));
        add_layout<lacuna::csr<float>>("csr.top10%", n, prune::top_fraction(0.1));
        add_layout<lacuna::bsr<float, 16, 16>>("bsr16.top25%", n, prune::block_top_fraction({16, 16}, 0.25));
        add_layout<lacuna::bsr<float, 4, 4>>("bsr4.norm>0.1", n, prune::block_threshold({4, 4}, 0.1));
        add_layout<lacuna::nm<float, 2, 4>>("nm2:4", n, prune::n_m(2, 4));
        add_layout<lacuna::nm<float, 2, 8>>("nm2:8", n, prune::n_m(2, 8));
        add_layout<lacuna::bitmap<float>>("bitmap.nonzero", n, prune::nonzero{});
        add_layout<lacuna::bitmap<float>>("bitmap.row50%", n, prune::top_fraction(0.5, prune::scope::row));
    }
}

} // namespace

int main(int argc, char** argv) {
    return lacuna::bench::run(argc, argv, register_cases, {"dense_copy", "eigen"}, {"size/dense", "Melem/s"});
}
