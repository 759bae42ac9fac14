// The vector primitives on every arch, against the dense reference, OpenBLAS and Eigen.
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "lacuna/primitives.hpp"
#include "lacuna/reference/primitives.hpp"
#include "support/bench_main.hpp"
#include "support/machine.hpp"

#if LACUNA_BENCH_OPENBLAS
#include <cblas.h>
#endif
#if LACUNA_WITH_EIGEN
#include <Eigen/Core>
#endif

namespace {

using lacuna::bfloat16;

struct data {
    std::vector<float> x, y, out;
    std::vector<bfloat16> xb, yb;
    std::vector<char> mask;
};

const data& data_for(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<data>> cache;
    auto& d = cache[n];
    if (!d) {
        d = std::make_unique<data>();
        std::mt19937_64 rng(42);
        std::uniform_real_distribution<float> dist(-4.f, 4.f);
        std::bernoulli_distribution keep(0.5);
        for (std::size_t i = 0; i < n; ++i) {
            d->x.push_back(dist(rng));
            d->y.push_back(dist(rng));
            d->mask.push_back(keep(rng));
        }
        d->out.resize(n);
        d->xb.assign(d->x.begin(), d->x.end());
        d->yb.assign(d->y.begin(), d->y.end());
    }
    return *d;
}

// Bodies get mutable access to the cached data; outputs are scratch.
using body = std::function<void(data&, std::size_t)>;

struct op {
    std::string name;
    double flops_per_element, bytes_per_element;
    body kernel;                                  // the dispatched entry point, run under each arch
    std::vector<std::pair<std::string, body>> baselines; // the reference first, then libraries
};

void add_case(const op& o, const std::string& impl, std::size_t n, const body& run, std::optional<lacuna::arch> a) {
    std::string name = o.name + "/" + impl + "/" + std::to_string(n);
    benchmark::RegisterBenchmark(name.c_str(), [o, run, n, a](benchmark::State& state) {
        data& d = const_cast<data&>(data_for(n));
        std::optional<lacuna::arch> previous;
        if (a) previous = lacuna::force_arch(*a);
        for (auto _ : state) {
            run(d, n);
            benchmark::ClobberMemory();
        }
        if (previous) lacuna::force_arch(*previous);
        const double elements = double(n);
        state.counters["Gelem/s"] = benchmark::Counter(elements * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
        if (o.flops_per_element > 0)
            state.counters["GFLOP/s"] =
                benchmark::Counter(o.flops_per_element * elements * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
        state.counters["GB/s"] =
            benchmark::Counter(o.bytes_per_element * elements * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    });
}

std::vector<op> ops() {
    auto sink = [](auto v) { benchmark::DoNotOptimize(v); };
    std::vector<op> list;
    list.push_back({"dot_f32", 2, 8, [=](data& d, std::size_t) { sink(lacuna::dot(d.x, d.y)); },
                    {{"ref", [=](data& d, std::size_t) { sink(lacuna::ref::dot<float, float>(d.x, d.y)); }}}});
    list.push_back({"dot_bf16", 2, 4, [=](data& d, std::size_t) { sink(lacuna::dot(d.xb, d.yb)); },
                    {{"ref", [=](data& d, std::size_t) { sink(lacuna::ref::dot<bfloat16, bfloat16>(d.xb, d.yb)); }}}});
    list.push_back({"axpy_f32", 2, 12, [](data& d, std::size_t) { lacuna::axpy(1e-3f, d.x, d.out); },
                    {{"ref", [](data& d, std::size_t) { lacuna::ref::axpy(1e-3f, d.x, d.out); }}}});
    list.push_back({"reduce_max", 1, 4, [=](data& d, std::size_t) { sink(lacuna::reduce_max(d.x)); },
                    {{"ref", [=](data& d, std::size_t) { sink(lacuna::ref::reduce_max(d.x)); }}}});
    list.push_back({"exp", 0, 8, [](data& d, std::size_t) { lacuna::exp(d.x, d.out); },
                    {{"ref", [](data& d, std::size_t) { lacuna::ref::exp(d.x, d.out); }}}});
    list.push_back({"softmax", 0, 8, [](data& d, std::size_t) { lacuna::softmax(d.x, d.out); },
                    {{"ref", [](data& d, std::size_t) { lacuna::ref::softmax(d.x, {}, d.out); }}}});
    auto bools = [](const data& d) { return std::span<const bool>(reinterpret_cast<const bool*>(d.mask.data()), d.mask.size()); };
    list.push_back({"softmax_masked", 0, 9, [=](data& d, std::size_t) { lacuna::softmax(d.x, bools(d), d.out); },
                    {{"ref", [=](data& d, std::size_t) { lacuna::ref::softmax(d.x, bools(d), d.out); }}}});
    list.push_back({"to_bf16", 0, 6,
                    [](data& d, std::size_t) { lacuna::convert(d.x, std::span<bfloat16>(d.yb)); },
                    {{"ref", [](data& d, std::size_t) { lacuna::ref::convert(d.x, std::span<bfloat16>(d.yb)); }}}});

#if LACUNA_BENCH_OPENBLAS
    list[0].baselines.push_back({"openblas", [=](data& d, std::size_t n) { sink(cblas_sdot(int(n), d.x.data(), 1, d.y.data(), 1)); }});
    list[2].baselines.push_back({"openblas", [](data& d, std::size_t n) { cblas_saxpy(int(n), 1e-3f, d.x.data(), 1, d.out.data(), 1); }});
#endif
#if LACUNA_WITH_EIGEN
    using vec = Eigen::Map<Eigen::VectorXf>;
    list[0].baselines.push_back({"eigen", [=](data& d, std::size_t n) { sink(vec(d.x.data(), long(n)).dot(vec(d.y.data(), long(n)))); }});
    list[2].baselines.push_back({"eigen", [](data& d, std::size_t n) { vec(d.out.data(), long(n)) += 1e-3f * vec(d.x.data(), long(n)); }});
    list[3].baselines.push_back({"eigen", [=](data& d, std::size_t n) { sink(vec(d.x.data(), long(n)).maxCoeff()); }});
    list[4].baselines.push_back({"eigen", [](data& d, std::size_t n) { vec(d.out.data(), long(n)) = vec(d.x.data(), long(n)).array().exp().matrix(); }});
    list[5].baselines.push_back({"eigen", [](data& d, std::size_t n) {
        vec x(d.x.data(), long(n)), y(d.out.data(), long(n));
        y = (x.array() - x.maxCoeff()).exp().matrix();
        y /= y.sum();
    }});
#endif
    return list;
}

// The roofs of the roofline plot: the FMA peak and the streaming read bandwidth of one core.
void add_machine_roofs() {
    lacuna::bench::add_timed("machine/fma_peak/1t", 1, [] {
        constexpr std::size_t iterations = 1 << 20;
        double flops = 0;
        lacuna::bench::fma_peak_run(iterations, flops);
        return lacuna::bench::timed_case{[] {
                                             double unused = 0;
                                             benchmark::DoNotOptimize(lacuna::bench::fma_peak_run(iterations, unused));
                                         },
                                         flops, 0};
    });
    lacuna::bench::add_timed("machine/stream_read/1t", 1, [] {
        const auto& buffer = lacuna::bench::stream_buffer();
        return lacuna::bench::timed_case{[] { benchmark::DoNotOptimize(lacuna::bench::stream_read()); }, double(buffer.size()),
                                         double(buffer.size() * sizeof(float))};
    });
}

void register_cases() {
    add_machine_roofs();
    std::vector<std::size_t> sizes{4096};
    if (lacuna::bench::full_run()) sizes = {256, 4096, 65536, 1 << 20};
    for (const op& o : ops())
        for (std::size_t n : sizes) {
            for (const auto& [impl, run] : o.baselines) add_case(o, impl, n, run, std::nullopt);
            for (lacuna::arch a : lacuna::available_archs()) add_case(o, std::string(lacuna::arch_name(a)), n, o.kernel, a);
        }
}

} // namespace

int main(int argc, char** argv) {
#if LACUNA_BENCH_OPENBLAS
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
    return lacuna::bench::run(argc, argv, register_cases, {"ref", "scalar", "openblas", "eigen"}, {"Gelem/s", "GFLOP/s", "GB/s"});
}
