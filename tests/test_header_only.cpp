// Built without lacuna_enable_dispatch: kernels come from this translation unit, for scalar and for
// the arch its flags enable (the CMake file compiles it with SSE4.2).
#include <vector>

#include "lacuna/primitives.hpp"
#include "support/catch.hpp"

static_assert(!LACUNA_DISPATCH, "this test must be built header-only");

TEST_CASE("header-only builds run the arch of their compile flags, and scalar", "[dispatch][header-only]") {
    CHECK(lacuna::simd::native_arch == lacuna::arch::sse4_2);
    for (lacuna::arch a : {lacuna::arch::avx512, lacuna::arch::avx2, lacuna::arch::neon64})
        CHECK_FALSE(lacuna::detail::arch_compiled(a));
    CHECK(lacuna::detail::arch_compiled(lacuna::arch::scalar));
    CHECK(lacuna::detail::arch_compiled(lacuna::simd::native_arch));
    CHECK_THROWS_AS(lacuna::force_arch(lacuna::arch::avx2), lacuna::arch_error);
    if (lacuna::cpu_supports(lacuna::arch::sse4_2) && !std::getenv("LACUNA_ARCH"))
        CHECK(lacuna::active_arch() == lacuna::arch::sse4_2);
}
