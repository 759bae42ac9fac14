// lacuna: what a generated dispatch source compiles. Not for other use.
//
// lacuna_enable_dispatch() generates, for each arch of simd::dispatch_archs, a source that includes
// this header and says LACUNA_DEFINE_KERNEL_TABLE(<arch>), and compiles it with that arch's flags.
#pragma once

#include <cstddef>

#include "lacuna/lacuna.hpp"
#include "lacuna/simd/kernel_table.hpp"

namespace lacuna::detail {

template <class Arch, class Kernel, class Fn> constexpr void fill(slot<Kernel, Fn>& s) noexcept {
    s.fn = &entry<Kernel, Arch, Fn>::call;
}

template <class Arch> constexpr kernel_table make_kernel_table() noexcept {
    kernel_table t;
    t.id = simd::arch_of<Arch>;
    t.for_each_slot([](auto& s) { fill<Arch>(s); });
    return t;
}

constexpr std::size_t listed_slots() noexcept {
    kernel_table t;
    std::size_t n = 0;
    t.for_each_slot([&n](auto&) { ++n; });
    return n;
}
static_assert(sizeof(kernel_table) == offsetof(kernel_table, dot_f32) + listed_slots() * sizeof(void (*)()),
              "kernel_table::for_each_slot must list every slot");

} // namespace lacuna::detail

#define LACUNA_DEFINE_KERNEL_TABLE(ARCH)                                                                      \
    const lacuna::detail::kernel_table& lacuna::detail::kernel_table_for(                                     \
        lacuna::detail::arch_constant<lacuna::arch::ARCH>) noexcept {                                         \
        static constexpr kernel_table table = make_kernel_table<lacuna::simd::tag<lacuna::arch::ARCH>>();     \
        return table;                                                                                         \
    }
