// What the libFuzzer targets share: failing, drawing values, and the run settings a fuzz input picks.
#pragma once

#include <cstdint>
#include <cstring>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/core/parallel.hpp"
#include "lacuna/simd/dispatch.hpp"

namespace lacuna::fuzz {

/// A finding: stops the run so that libFuzzer writes the input out.
inline void check(bool ok) {
    if (!ok) __builtin_trap();
}

/// Any float bit pattern: NaN, ±inf, subnormals, signed zeros.
inline float any_float(FuzzedDataProvider& in) {
    const std::uint32_t bits = in.ConsumeIntegral<std::uint32_t>();
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

/// A 64-bit mix (splitmix64's finaliser): pseudo-random positions from one drawn seed.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/// Runs the rest of the input on an arch this program and CPU have, and on 1 or 2 threads, both
/// picked by the input (the fuzzers link the dispatch tables, so every arch is there).
inline void pick_arch_and_threads(FuzzedDataProvider& in) {
    static const std::vector<arch> archs = available_archs();
    force_arch(archs[in.ConsumeIntegralInRange<std::size_t>(0, archs.size() - 1)]);
    set_num_threads(in.ConsumeBool() ? 2 : 1);
}

} // namespace lacuna::fuzz
