// lacuna: the instruction sets lacuna compiles kernels for, their names and their xsimd tags.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string_view>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "lacuna/core/config.hpp"

namespace lacuna {

/// An instruction set a kernel can run on. `avx2` means AVX2 with FMA; `avx512` means the
/// F, CD, DQ, BW and VL subsets (AVX-512 BF16 is used inside it where the CPU has it).
enum class arch : std::uint8_t { scalar, sse4_2, avx2, avx512, neon64 };

/// "scalar", "sse4_2", "avx2", "avx512" or "neon64": the spelling LACUNA_ARCH accepts.
constexpr std::string_view arch_name(arch a) noexcept {
    switch (a) {
    case arch::scalar: return "scalar";
    case arch::sse4_2: return "sse4_2";
    case arch::avx2: return "avx2";
    case arch::avx512: return "avx512";
    case arch::neon64: return "neon64";
    }
    return "unknown";
}

inline std::ostream& operator<<(std::ostream& os, arch a) { return os << arch_name(a); }

/// The arch named `name` (as arch_name spells it), or nothing.
constexpr std::optional<arch> parse_arch(std::string_view name) noexcept {
    for (arch a : {arch::scalar, arch::sse4_2, arch::avx2, arch::avx512, arch::neon64})
        if (arch_name(a) == name) return a;
    return std::nullopt;
}

namespace simd {

/// The tag of the scalar kernels: plain C++ with one lane, runs on any CPU.
struct scalar {
    static constexpr const char* name() noexcept { return "scalar"; }
};

/// The xsimd arch tag each lacuna arch is compiled with.
template <arch A> struct tag_of;
template <> struct tag_of<arch::scalar> { using type = scalar; };
template <> struct tag_of<arch::sse4_2> { using type = xsimd::sse4_2; };
template <> struct tag_of<arch::avx2> { using type = xsimd::fma3<xsimd::avx2>; };
template <> struct tag_of<arch::avx512> { using type = xsimd::avx512bw; };
template <> struct tag_of<arch::neon64> { using type = xsimd::neon64; };
template <arch A> using tag = typename tag_of<A>::type;

/// The lacuna arch of a tag.
template <class Tag>
inline constexpr arch arch_of = std::is_same_v<Tag, xsimd::avx512bw>             ? arch::avx512
                                : std::is_same_v<Tag, xsimd::fma3<xsimd::avx2>> ? arch::avx2
                                : std::is_same_v<Tag, xsimd::sse4_2>            ? arch::sse4_2
                                : std::is_same_v<Tag, xsimd::neon64>            ? arch::neon64
                                                                                : arch::scalar;

/// Every arch the dispatch sources are built for on this platform, best first.
#if LACUNA_X86_64
inline constexpr std::array dispatch_archs{arch::avx512, arch::avx2, arch::sse4_2, arch::scalar};
#elif LACUNA_AARCH64
inline constexpr std::array dispatch_archs{arch::neon64, arch::scalar};
#else
inline constexpr std::array dispatch_archs{arch::scalar};
#endif

/// The best arch this translation unit's own compile flags enable: what a header-only build runs.
#if defined(__AVX512F__) && defined(__AVX512CD__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__)
inline constexpr arch native_arch = arch::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
inline constexpr arch native_arch = arch::avx2;
#elif defined(__SSE4_2__)
inline constexpr arch native_arch = arch::sse4_2;
#elif LACUNA_AARCH64 && defined(__ARM_NEON)
inline constexpr arch native_arch = arch::neon64;
#else
inline constexpr arch native_arch = arch::scalar;
#endif

} // namespace simd
} // namespace lacuna
