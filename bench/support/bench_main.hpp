// The main of every lacuna bench binary: Google Benchmark with medians by default, the machine and
// the BLAS kernel in the context, and a closing table of each case's speed against its baselines.
//
// A case is named "<op>/<impl>/<size>". After the run, every impl of an (op, size) is shown with its
// median time and its speedup over the reference ("ref") and over each baseline in the same run.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "lacuna/core/parallel.hpp"
#include "lacuna/simd/dispatch.hpp"

#if LACUNA_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace lacuna::bench {

/// True when the binary was started with --full (more sizes; longer runs are up to the caller).
inline bool& full_run() {
    static bool full = false;
    return full;
}

/// One timed case: what to run, with the useful flops and the bytes of the operands it streams.
struct timed_case {
    std::function<void()> run;
    double flops, bytes;
};

/// Registers `name` on `threads` threads (lacuna and OpenBLAS alike), with GFLOP/s and GB/s counters;
/// prepare() builds the operands outside the timing, once per run.
inline void add_timed(const std::string& name, int threads, std::function<timed_case()> prepare) {
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
        const timed_case c = prepare();
        set_num_threads(threads);
#if LACUNA_BENCH_OPENBLAS
        openblas_set_num_threads(threads);
#endif
        for (auto _ : state) {
            c.run();
            benchmark::ClobberMemory();
        }
        set_num_threads(0);
        state.counters["GFLOP/s"] = benchmark::Counter(c.flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
        state.counters["GB/s"] = benchmark::Counter(c.bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

/// Collects the median (or single) real time of every case, then prints them as a table.
class summary_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
            if (r.run_type == Run::RT_Iteration && r.repetitions > 1) continue;
            if (r.run_type == Run::RT_Aggregate && !median) continue;
            if (r.error_occurred) continue;
            std::string name = r.run_name.str();
            if (const std::string suffix = "/real_time"; name.ends_with(suffix)) name.resize(name.size() - suffix.size());
            auto first = name.find('/'), last = name.rfind('/');
            if (first == std::string::npos || first == last) continue;
            entry e{name.substr(first + 1, last - first - 1), r.GetAdjustedRealTime(), r.time_unit, {}};
            for (const auto& [counter, value] : r.counters) e.counters[counter] = value.value;
            std::string key = name.substr(0, first) + " " + name.substr(last + 1);
            if (std::find(order_.begin(), order_.end(), key) == order_.end()) order_.push_back(key);
            table_[key].push_back(e);
        }
        ConsoleReporter::ReportRuns(runs);
    }

    /// The same table as tab-separated values for the plots: op, size, impl, median time in
    /// microseconds, GFLOP/s, GB/s, then the speedup over each baseline ("-" where it is absent).
    void write_tsv(const std::string& path, const std::vector<std::string>& baselines) const {
        std::ofstream out(path);
        out << "op\tsize\timpl\ttime_us\tgflops\tgbs";
        for (const auto& b : baselines) out << "\tx_" << b;
        out << "\n";
        for (const auto& key : order_) {
            const auto& entries = table_.at(key);
            const std::string op = key.substr(0, key.find(' ')), size = key.substr(key.find(' ') + 1);
            for (const auto& e : entries) {
                out << op << '\t' << size << '\t' << e.impl << '\t' << in_microseconds(e.time, e.unit);
                for (const char* c : {"GFLOP/s", "GB/s"}) {
                    auto it = e.counters.find(c);
                    out << '\t';
                    if (it == e.counters.end()) out << '-';
                    else out << it->second;
                }
                for (const auto& b : baselines) {
                    auto base = std::find_if(entries.begin(), entries.end(), [&](const entry& x) { return x.impl == b; });
                    out << '\t';
                    if (base == entries.end()) out << '-';
                    else out << base->time / e.time;
                }
                out << '\n';
            }
        }
    }

    /// The table: time, the given counters, then the speedup over each baseline present.
    void print_summary(const std::vector<std::string>& baselines, const std::vector<std::string>& counters) const {
        std::printf("\nSummary (median time; speedup = baseline time / this time)\n");
        std::printf("%-28s %-18s %12s", "case", "impl", "time");
        for (const auto& c : counters) std::printf(" %10s", c.c_str());
        for (const auto& b : baselines) std::printf(" %10s", ("x " + b).c_str());
        std::printf("\n");
        for (const auto& key : order_) {
            const auto& entries = table_.at(key);
            for (const auto& e : entries) {
                std::printf("%-28s %-18s %12s", key.c_str(), e.impl.c_str(), format_time(e.time, e.unit).c_str());
                for (const auto& c : counters) {
                    auto it = e.counters.find(c);
                    if (it == e.counters.end()) std::printf(" %10s", "-");
                    else std::printf(" %10.3g", it->second);
                }
                for (const auto& b : baselines) {
                    auto base = std::find_if(entries.begin(), entries.end(), [&](const entry& x) { return x.impl == b; });
                    if (base == entries.end()) std::printf(" %10s", "-");
                    else std::printf(" %10.2f", base->time / e.time);
                }
                std::printf("\n");
            }
        }
    }

private:
    struct entry {
        std::string impl;
        double time; // in `unit`
        benchmark::TimeUnit unit;
        std::map<std::string, double> counters;
    };
    static double in_microseconds(double t, benchmark::TimeUnit unit) {
        switch (unit) {
        case benchmark::kNanosecond: return t * 1e-3;
        case benchmark::kMicrosecond: return t;
        case benchmark::kMillisecond: return t * 1e3;
        default: return t * 1e6;
        }
    }
    static std::string format_time(double t, benchmark::TimeUnit unit) {
        const char* names[] = {"ns", "us", "ms", "s"};
        int u = unit == benchmark::kNanosecond ? 0 : unit == benchmark::kMicrosecond ? 1 : unit == benchmark::kMillisecond ? 2 : 3;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f %s", t, names[u]);
        return buf;
    }
    std::vector<std::string> order_;
    std::map<std::string, std::vector<entry>> table_;
};

/// Parses lacuna's own flags (--full; --tsv=<file> for the summary as tab-separated values), adds
/// medians over 5 repetitions unless the caller chose otherwise, registers the cases
/// (register_cases() runs after --full is known), runs, prints the summary.
template <class Register>
int run(int argc, char** argv, Register&& register_cases, const std::vector<std::string>& baselines,
        const std::vector<std::string>& summary_counters) {
    std::vector<char*> args;
    std::string tsv;
    bool repetitions_given = false;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--full") {
            full_run() = true;
            continue;
        }
        if (a.rfind("--tsv=", 0) == 0) {
            tsv = a.substr(6);
            continue;
        }
        if (a.rfind("--benchmark_repetitions", 0) == 0) repetitions_given = true;
        args.push_back(argv[i]);
    }
    std::string reps = "--benchmark_repetitions=5", aggregates = "--benchmark_report_aggregates_only=true";
    if (!repetitions_given) {
        args.push_back(reps.data());
        args.push_back(aggregates.data());
    }
    int n = int(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

    benchmark::AddCustomContext("cpu_model", cpu_model());
    benchmark::AddCustomContext("lacuna_arch", std::string(arch_name(active_arch())));
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype ? coretype : "unset");
    register_cases();

    summary_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_summary(baselines, summary_counters);
    if (!tsv.empty()) reporter.write_tsv(tsv, baselines);
    benchmark::Shutdown();
    return 0;
}

} // namespace lacuna::bench
