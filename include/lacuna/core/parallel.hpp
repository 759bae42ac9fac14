// lacuna: the one place threads are started.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>

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

} // namespace lacuna
