// lacuna: float <-> bfloat16 arrays.
#pragma once

#include <cstddef>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/simd/bf16.hpp"
#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels {

/// y[i] = x[i] converted, for float to bfloat16 (round to nearest even, NaN kept) and bfloat16 to
/// float (exact). Bit-identical on every arch.
struct convert {
    template <class Arch, class From, class To>
    void operator()(Arch, const From* x, To* y, std::size_t n) const noexcept;
};

template <class Arch, class From, class To>
void convert::operator()(Arch, const From* x, To* y, std::size_t n) const noexcept {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t i = 0;
    for (; i + w <= n; i += w) simd::store(y + i, simd::load<V>(x + i));
    for (; i < n; ++i) simd::store(y + i, simd::load<float>(x + i));
}

} // namespace lacuna::kernels
