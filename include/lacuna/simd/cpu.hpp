// lacuna: what the CPU and the operating system let us run.
#pragma once

#include <cstdint>

#include "lacuna/core/config.hpp"
#include "lacuna/simd/arch.hpp"

#if LACUNA_X86_64 && defined(_MSC_VER) && !defined(__clang__)
#include <immintrin.h>
#include <intrin.h>
#elif LACUNA_X86_64
#include <cpuid.h>
#endif

namespace lacuna {

/// The CPU features lacuna's kernels use. An x86 feature counts only when the OS also saves the
/// registers it needs (checked with xgetbv), since a CPU flag alone does not make AVX usable.
struct cpu_features {
    bool sse4_2 = false, popcnt = false;
    bool avx2 = false, fma = false;
    bool avx512f = false, avx512cd = false, avx512dq = false, avx512bw = false, avx512vl = false;
    bool avx512_bf16 = false;
    bool neon = false;
};

namespace detail {

#if LACUNA_X86_64
struct cpuid_regs {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

inline cpuid_regs cpuid(std::uint32_t leaf, std::uint32_t subleaf) noexcept {
    cpuid_regs r;
#if defined(_MSC_VER) && !defined(__clang__)
    int out[4];
    __cpuidex(out, int(leaf), int(subleaf));
    r = {std::uint32_t(out[0]), std::uint32_t(out[1]), std::uint32_t(out[2]), std::uint32_t(out[3])};
#else
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
    return r;
}

inline std::uint64_t xgetbv0() noexcept {
#if defined(_MSC_VER) && !defined(__clang__)
    return _xgetbv(0);
#else
    std::uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (std::uint64_t(hi) << 32) | lo;
#endif
}
#endif

inline cpu_features detect_cpu() noexcept {
    cpu_features f;
#if LACUNA_X86_64
    auto bit = [](std::uint32_t reg, int b) { return ((reg >> b) & 1u) != 0; };
    const std::uint32_t max_leaf = cpuid(0, 0).eax;
    const cpuid_regs l1 = cpuid(1, 0);
    f.sse4_2 = bit(l1.ecx, 20);
    f.popcnt = bit(l1.ecx, 23);
    const bool osxsave = bit(l1.ecx, 27);
    const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool os_avx = (xcr0 & 0x6) == 0x6;       // XMM and YMM state
    const bool os_avx512 = (xcr0 & 0xe6) == 0xe6; // plus opmask, ZMM_Hi256, Hi16_ZMM
    const bool avx = bit(l1.ecx, 28) && os_avx;
    f.fma = bit(l1.ecx, 12) && avx;
    if (max_leaf >= 7) {
        const cpuid_regs l7 = cpuid(7, 0);
        f.avx2 = bit(l7.ebx, 5) && avx;
        f.avx512f = bit(l7.ebx, 16) && os_avx512;
        f.avx512dq = bit(l7.ebx, 17) && f.avx512f;
        f.avx512cd = bit(l7.ebx, 28) && f.avx512f;
        f.avx512bw = bit(l7.ebx, 30) && f.avx512f;
        f.avx512vl = bit(l7.ebx, 31) && f.avx512f;
        if (l7.eax >= 1) f.avx512_bf16 = bit(cpuid(7, 1).eax, 5) && f.avx512f;
    }
#elif LACUNA_AARCH64
    f.neon = true; // Advanced SIMD is part of the AArch64 base architecture.
#endif
    return f;
}

} // namespace detail

/// The features of the CPU this process runs on, detected once.
inline const cpu_features& cpu() noexcept {
    static const cpu_features features = detail::detect_cpu();
    return features;
}

/// Whether the CPU (and OS) can run kernels compiled for `a`.
inline bool cpu_supports(arch a) noexcept {
    const cpu_features& f = cpu();
    switch (a) {
    case arch::scalar: return true;
    case arch::sse4_2: return f.sse4_2 && f.popcnt;
    case arch::avx2: return f.avx2 && f.fma;
    case arch::avx512: return f.avx512f && f.avx512cd && f.avx512dq && f.avx512bw && f.avx512vl;
    case arch::neon64: return f.neon;
    }
    return false;
}

} // namespace lacuna
