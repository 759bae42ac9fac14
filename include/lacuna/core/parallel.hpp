// lacuna: the one place threads are started.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#include "lacuna/core/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace lacuna {

namespace detail {
inline std::atomic<int>& requested_threads() noexcept {
    static std::atomic<int> n{0};
    return n;
}
} // namespace detail

/// Threads lacuna uses for the next calls: the count set with set_num_threads(), else OpenMP's
/// default; always 1 when built without OpenMP.
inline int num_threads() noexcept {
#ifdef _OPENMP
    int n = detail::requested_threads().load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the thread count for lacuna's kernels; 0 restores OpenMP's default. Throws lacuna::error
/// for a negative count. Results that the documentation calls deterministic do not depend on it.
inline void set_num_threads(int n) {
    if (n < 0) detail::fail("lacuna::set_num_threads: thread count must be 0 (default) or positive, got ", n);
    detail::requested_threads().store(n, std::memory_order_relaxed);
}

/// Calls body(i) once for every i in [0, count), spread over num_threads() threads in contiguous
/// chunks (thread t gets the t-th chunk). The body must not throw: kernels run here, and kernels
/// never throw. Callers that need balance by work rather than by count pass pre-balanced parts.
template <class Body>
void parallel_for(std::size_t count, Body&& body) {
#ifdef _OPENMP
    int threads = static_cast<int>(std::min<std::size_t>(std::size_t(num_threads()), count));
    if (threads > 1) {
        const auto n = static_cast<long long>(count);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long long i = 0; i < n; ++i) body(static_cast<std::size_t>(i));
        return;
    }
#endif
    for (std::size_t i = 0; i < count; ++i) body(i);
}

namespace detail {

/// Row boundaries of `parts` parts with about equal work, work counted as stored elements plus one
/// per row (so that empty rows and skewed rows both balance); start(i) is the count stored before
/// row i (a CSR row pointer). parts + 1 boundaries, first 0, last rows.
template <class Start> std::vector<std::size_t> balanced_row_parts(std::size_t rows, std::size_t parts, Start&& start) {
    std::vector<std::size_t> bounds(parts + 1, rows);
    bounds[0] = 0;
    const double total = double(start(rows)) + double(rows);
    std::size_t i = 0;
    for (std::size_t p = 1; p < parts; ++p) {
        const double target = total * double(p) / double(parts);
        while (i < rows && double(start(i)) + double(i) < target) ++i;
        bounds[p] = i;
    }
    return bounds;
}

// Calls run_part(begin, end) on balanced parts of the (block) rows, one part per thread.
template <class Start, class RunPart> void run_on_rows(std::size_t rows, Start&& start, RunPart&& run_part) {
    const std::size_t parts = std::min<std::size_t>(std::size_t(num_threads()), std::max<std::size_t>(rows, 1));
    const std::vector<std::size_t> bounds = balanced_row_parts(rows, parts, start);
    parallel_for(parts, [&](std::size_t p) { run_part(bounds[p], bounds[p + 1]); });
}

} // namespace detail

} // namespace lacuna
