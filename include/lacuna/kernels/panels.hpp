// lacuna: the walk over register panels of a row's columns, which products and attention share.
#pragma once

#include <cstddef>
#include <utility>

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

// Calls group.template operator()<R>(i) for i = 0, R, 2R, ... while R items remain of count, then
// group.template operator()<count % R>(i) once for the rest: the last rows (or keys) in one register
// tile too, so that each load of the other operand still serves all of them.
template <std::size_t R, class Group> LACUNA_ALWAYS_INLINE void for_each_group(std::size_t count, Group&& group) {
    std::size_t i = 0;
    for (; i + R <= count; i += R) group.template operator()<R>(i);
    [&]<std::size_t... G>(std::index_sequence<G...>) {
        ((count - i == G + 1 ? group.template operator()<G + 1>(i) : void()), ...);
    }(std::make_index_sequence<R - 1>{});
}

} // namespace lacuna::kernels::detail
