// lacuna: choosing the arch kernels run on, and calling a kernel on it.
//
// Two builds, one API:
//  - header-only (LACUNA_DISPATCH = 0): kernels are compiled into the caller's translation unit for
//    simd::native_arch (the best arch its compile flags enable) and for scalar;
//  - dispatch (LACUNA_DISPATCH = 1, set by the CMake function lacuna_enable_dispatch): one generated
//    source per arch fills a kernel_table with its own compile flags, and calls go through the table
//    of the active arch.
// The active arch is chosen on first use: LACUNA_ARCH from the environment if set, else the best arch
// that is both compiled and supported by the CPU. force_arch() changes it at run time.
#pragma once

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "lacuna/core/config.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/simd/arch.hpp"
#include "lacuna/simd/cpu.hpp"
#include "lacuna/simd/kernel_table.hpp"

namespace lacuna {

namespace detail {

template <arch A> using arch_constant = std::integral_constant<arch, A>;

#if LACUNA_DISPATCH
// Defined in the sources that lacuna_enable_dispatch() generates, one per arch of simd::dispatch_archs.
const kernel_table& kernel_table_for(arch_constant<arch::scalar>) noexcept;
#if LACUNA_X86_64
const kernel_table& kernel_table_for(arch_constant<arch::sse4_2>) noexcept;
const kernel_table& kernel_table_for(arch_constant<arch::avx2>) noexcept;
const kernel_table& kernel_table_for(arch_constant<arch::avx512>) noexcept;
#elif LACUNA_AARCH64
const kernel_table& kernel_table_for(arch_constant<arch::neon64>) noexcept;
#endif

inline const kernel_table& table_for(arch a) noexcept {
    switch (a) {
#if LACUNA_X86_64
    case arch::sse4_2: return kernel_table_for(arch_constant<arch::sse4_2>{});
    case arch::avx2: return kernel_table_for(arch_constant<arch::avx2>{});
    case arch::avx512: return kernel_table_for(arch_constant<arch::avx512>{});
#elif LACUNA_AARCH64
    case arch::neon64: return kernel_table_for(arch_constant<arch::neon64>{});
#endif
    default: return kernel_table_for(arch_constant<arch::scalar>{});
    }
}
#endif

/// Whether kernels for `a` are compiled into this program.
constexpr bool arch_compiled(arch a) noexcept {
#if LACUNA_DISPATCH
    for (arch d : simd::dispatch_archs)
        if (d == a) return true;
    return false;
#else
    return a == arch::scalar || a == simd::native_arch;
#endif
}

inline bool arch_usable(arch a) noexcept { return arch_compiled(a) && cpu_supports(a); }

inline arch initial_arch() {
    if (const char* env = std::getenv("LACUNA_ARCH"); env && *env) {
        auto a = parse_arch(env);
        if (!a)
            fail<arch_error>("LACUNA_ARCH=", env, " is not an arch; use scalar, sse4_2, avx2, avx512 or neon64");
        if (!arch_usable(*a))
            fail<arch_error>("LACUNA_ARCH=", env, ": ",
                             arch_compiled(*a) ? "this CPU does not support it" : "it is not compiled into this program");
        return *a;
    }
    for (arch a : {arch::avx512, arch::avx2, arch::sse4_2, arch::neon64})
        if (arch_usable(a)) return a;
    return arch::scalar;
}

inline std::atomic<arch>& active_arch_state() {
    static std::atomic<arch> active{initial_arch()};
    return active;
}

} // namespace detail

/// The arch kernels run on now. Throws arch_error on first use if LACUNA_ARCH names an arch that is
/// unknown, not compiled in, or not supported by the CPU.
inline arch active_arch() { return detail::active_arch_state().load(std::memory_order_relaxed); }

/// The archs this program can run on this CPU, best first (scalar always last).
inline std::vector<arch> available_archs() {
    std::vector<arch> out;
    for (arch a : {arch::avx512, arch::avx2, arch::sse4_2, arch::neon64, arch::scalar})
        if (detail::arch_usable(a)) out.push_back(a);
    return out;
}

/// Runs every later kernel call on `a` and returns the arch that was active. Throws arch_error if `a`
/// is not compiled in or the CPU lacks it. Meant for tests and benchmarks: calls already running on
/// other threads finish on the arch they started with.
inline arch force_arch(arch a) {
    if (!detail::arch_usable(a))
        detail::fail<arch_error>("lacuna::force_arch(", a, "): ",
                                 detail::arch_compiled(a) ? "this CPU does not support it"
                                                          : "it is not compiled into this program");
    return detail::active_arch_state().exchange(a, std::memory_order_relaxed);
}

namespace detail {

/// Calls a kernel compiled into this translation unit: on scalar when that is active, else on the
/// arch its own flags enable (simd::native_arch). The header-only path for every kernel, and the
/// path of a dispatch build for type combinations its table does not hold (correct, but only as
/// fast as the translation unit's flags allow).
template <class Kernel, class... Args> LACUNA_ALWAYS_INLINE decltype(auto) run_compiled_in(Kernel kernel, Args... args) {
    if (active_arch() == arch::scalar) return kernel(simd::scalar{}, args...);
    return kernel(simd::tag<simd::native_arch>{}, args...);
}

template <class Kernel, class Fn> Kernel kernel_of(const slot<Kernel, Fn>&); // for decltype only

/// Calls the kernel of table slot `Slot` on the active arch.
template <auto Slot, class... Args> LACUNA_ALWAYS_INLINE decltype(auto) run(Args... args) {
#if LACUNA_DISPATCH
    return (table_for(active_arch()).*Slot).fn(args...);
#else
    return run_compiled_in(decltype(kernel_of(std::declval<kernel_table&>().*Slot)){}, args...);
#endif
}

/// Calls Kernel on the active arch: through the table when it holds Kernel for these argument
/// types, else the code compiled into this translation unit (run_compiled_in).
template <class Kernel, class... Args> LACUNA_ALWAYS_INLINE decltype(auto) dispatch(Args... args) {
    using result = decltype(Kernel{}(simd::scalar{}, args...));
    constexpr auto slot = find_slot<Kernel, result(Args...)>();
    if constexpr (slot == nullptr) return run_compiled_in(Kernel{}, args...);
    else return run<slot>(args...);
}

} // namespace detail
} // namespace lacuna
