// The machine's roofs, measured by the bench itself for the roofline plot: the FMA peak of one core
// (independent FMA chains in registers, at the widest vector the CPU has) and the bandwidth at which
// one core streams a buffer far larger than its caches.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/primitives.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LACUNA_BENCH_X86_FMA 1
#endif

namespace lacuna::bench {

// Twelve independent chains: enough to cover FMA latency times the FMA ports of current cores.
constexpr std::size_t fma_chains = 12;

#if LACUNA_BENCH_X86_FMA
__attribute__((target("avx512f"))) inline float fma_chains_avx512(std::size_t iterations) {
    __m512 acc[fma_chains];
    for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = _mm512_set1_ps(float(c));
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i)
        for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    for (std::size_t c = 1; c < fma_chains; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
    alignas(64) float lanes[16]; // not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized)
    _mm512_store_ps(lanes, acc[0]);
    return lanes[0] + lanes[15];
}

__attribute__((target("avx2,fma"))) inline float fma_chains_avx2(std::size_t iterations) {
    __m256 acc[fma_chains];
    for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = _mm256_set1_ps(float(c));
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i)
        for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    for (std::size_t c = 1; c < fma_chains; ++c) acc[0] = _mm256_add_ps(acc[0], acc[c]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[0]);
    return lanes[0] + lanes[7];
}
#endif

/// Runs `iterations` rounds of fma_chains vector FMAs at the widest width the CPU has; returns a value
/// to keep and sets `flops` to the floating-point operations done (2 per lane per FMA).
inline float fma_peak_run(std::size_t iterations, double& flops) {
#if LACUNA_BENCH_X86_FMA
    if (__builtin_cpu_supports("avx512f")) {
        flops = 2.0 * 16 * fma_chains * double(iterations);
        return fma_chains_avx512(iterations);
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        flops = 2.0 * 8 * fma_chains * double(iterations);
        return fma_chains_avx2(iterations);
    }
#endif
    // Elsewhere: scalar chains (a floor, not the vector peak).
    float acc[fma_chains];
    for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = float(c);
    for (std::size_t i = 0; i < iterations; ++i)
        for (std::size_t c = 0; c < fma_chains; ++c) acc[c] = acc[c] * 0.999999f + 1e-6f;
    flops = 2.0 * fma_chains * double(iterations);
    float sum = 0.f;
    for (float x : acc) sum += x;
    return sum;
}

/// A buffer of 256 MiB, far past the last-level cache, that stream_read sums. Aligned to a cache line
/// as every operand of the benches is: a std::vector of this size starts 16 bytes past a page, and
/// the loads that then straddle two lines read about 30% slower (28 against 39 GB/s here), which
/// understated the roof.
inline const aligned_buffer<float>& stream_buffer() {
    static const aligned_buffer<float> buffer = [] {
        aligned_buffer<float> b(std::size_t(64) << 20, aligned_buffer<float>::uninitialized);
        std::fill(b.begin(), b.end(), 1.f);
        return b;
    }();
    return buffer;
}

inline float stream_read() { return reduce_sum(stream_buffer()); }

} // namespace lacuna::bench
