// lacuna: the walk over register panels of a row's columns, which products and attention share.
#pragma once

#include <cstddef>

#include "lacuna/simd/compat.hpp"

namespace lacuna::kernels::detail {

// Calls panel.template operator()<V, tiles>(j), which handles C's columns [j, j + tiles·width<V>)
// and returns that width, over C's n columns: panels of four registers, then two, one, then
// registers of half the width and less (AVX-512: 64, 32, 16, 8, 4, then single columns), so that a
// narrow or ragged n still runs in vectors.
template <class Arch, class Panel> LACUNA_ALWAYS_INLINE void for_each_panel(std::size_t n, Panel&& panel) {
    using V = simd::vec<float, Arch>;
    constexpr std::size_t w = simd::width<V>;
    std::size_t j = 0;
    if constexpr (w > 1) {
        while (j + 4 * w <= n) j += panel.template operator()<V, 4>(j);
        while (j + 2 * w <= n) j += panel.template operator()<V, 2>(j);
        while (j + w <= n) j += panel.template operator()<V, 1>(j);
        auto narrower = [&]<class A>(auto& self) {
            using H = simd::vec<float, A>;
            if constexpr (simd::width<H> > 1) {
                while (j + simd::width<H> <= n) j += panel.template operator()<H, 1>(j);
                self.template operator()<simd::half_arch<A>>(self);
            }
        };
        narrower.template operator()<simd::half_arch<Arch>>(narrower);
    }
    while (j < n) j += panel.template operator()<float, 1>(j);
}

} // namespace lacuna::kernels::detail
