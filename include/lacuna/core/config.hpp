// lacuna: version and the configuration macros every header sees.
#pragma once

// The single source of the version: CMake reads these three lines.
#define LACUNA_VERSION_MAJOR 0
#define LACUNA_VERSION_MINOR 1
#define LACUNA_VERSION_PATCH 0

#define LACUNA_STRINGIFY_IMPL(x) #x
#define LACUNA_STRINGIFY(x) LACUNA_STRINGIFY_IMPL(x)
#define LACUNA_VERSION_STRING                                                         \
    LACUNA_STRINGIFY(LACUNA_VERSION_MAJOR)                                            \
    "." LACUNA_STRINGIFY(LACUNA_VERSION_MINOR) "." LACUNA_STRINGIFY(LACUNA_VERSION_PATCH)

// LACUNA_DISPATCH is defined to 1 by the CMake function lacuna_enable_dispatch() on targets that link
// the generated per-instruction-set kernel tables. Without it, kernels run on the best instruction set
// the translation unit's own compile flags enable.
#ifndef LACUNA_DISPATCH
#define LACUNA_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LACUNA_ALWAYS_INLINE inline __attribute__((always_inline))
#define LACUNA_LAMBDA_INLINE __attribute__((always_inline)) // after a lambda's parameter list
#else
#define LACUNA_ALWAYS_INLINE inline
#define LACUNA_LAMBDA_INLINE
#endif

// Before a loop whose trip count is a compile-time constant and whose body indexes an array of
// registers (a register tile's accumulators, a row of B's registers). Such a loop must be unrolled for
// the array to live in registers; GCC unrolls it at -O3 but not at -O2 or -O1, where the tile then
// goes through memory at every FMA (2-6x slower kernels). 32 covers every tile's extent. Not under
// the address and thread sanitizers, whose instrumentation of the unrolled tiles took clang 4m40s
// against 1m26s for the AVX-512 table at -O1 (their builds check, they are not timed).
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LACUNA_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LACUNA_SANITIZED 1
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(LACUNA_SANITIZED)
#define LACUNA_UNROLL _Pragma("GCC unroll 32")
#else
#define LACUNA_UNROLL
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define LACUNA_X86_64 1
#else
#define LACUNA_X86_64 0
#endif

// For the few functions that use AVX-512 BF16 (vdpbf16ps, vcvtneps2bf16): the avx512 dispatch flags
// do not enable it, so only these functions get it, and they run only where the CPU reports it.
#define LACUNA_TARGET_AVX512BF16 __attribute__((target("avx512bf16,avx512bw,avx512vl,avx512dq,avx512f")))

#if defined(__aarch64__) || defined(_M_ARM64)
#define LACUNA_AARCH64 1
#else
#define LACUNA_AARCH64 0
#endif

namespace lacuna {

/// The library version as "major.minor.patch".
inline constexpr const char* version = LACUNA_VERSION_STRING;

} // namespace lacuna
