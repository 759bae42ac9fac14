// Arch names, CPU detection, forcing an arch, and proof that the forced arch's code ran.
#include <cstdlib>
#include <sstream>
#include <vector>

#include "lacuna/primitives.hpp"
#include "support/arch.hpp"
#include "support/catch.hpp"

TEST_CASE("arch names round-trip and print", "[dispatch]") {
    for (lacuna::arch a : {lacuna::arch::scalar, lacuna::arch::sse4_2, lacuna::arch::avx2, lacuna::arch::avx512,
                           lacuna::arch::neon64}) {
        CHECK(lacuna::parse_arch(lacuna::arch_name(a)) == a);
        std::ostringstream os;
        os << a;
        CHECK(os.str() == lacuna::arch_name(a));
    }
    CHECK_FALSE(lacuna::parse_arch("avx3").has_value());
}

TEST_CASE("available archs are supported by the CPU, best first, scalar last", "[dispatch]") {
    auto archs = lacuna::available_archs();
    REQUIRE_FALSE(archs.empty());
    CHECK(archs.back() == lacuna::arch::scalar);
    for (auto a : archs) CHECK(lacuna::cpu_supports(a));
    const auto& f = lacuna::cpu();
    if (f.avx512bw) CHECK(f.avx512f); // the OS check is shared by every AVX-512 subset
    if (f.avx2) CHECK(lacuna::cpu_supports(lacuna::arch::sse4_2));
}

TEST_CASE("LACUNA_ARCH selects the arch at start-up", "[dispatch]") {
    const char* env = std::getenv("LACUNA_ARCH");
    if (env && *env) {
        CHECK(lacuna::detail::initial_arch() == lacuna::parse_arch(env));
    } else {
        CHECK(lacuna::detail::initial_arch() == lacuna::available_archs().front());
    }
}

TEST_CASE("force_arch rejects archs this program or CPU cannot run", "[dispatch]") {
    for (lacuna::arch a : {lacuna::arch::scalar, lacuna::arch::sse4_2, lacuna::arch::avx2, lacuna::arch::avx512,
                           lacuna::arch::neon64}) {
        bool usable = lacuna::detail::arch_usable(a);
        if (!usable) CHECK_THROWS_AS(lacuna::force_arch(a), lacuna::arch_error);
    }
}

TEST_CASE("a forced arch's kernels are the ones that run", "[dispatch]") {
    LACUNA_FOR_EACH_ARCH();
    CHECK(lacuna::active_arch() == lacuna_test_arch);
#if LACUNA_DISPATCH
    CHECK(lacuna::detail::table_for(lacuna_test_arch).id == lacuna_test_arch);
#endif
#ifdef LACUNA_COUNT_KERNEL_CALLS
    std::vector<unsigned long long> before;
    for (int a = 0; a < 5; ++a) before.push_back(lacuna::detail::kernel_calls(lacuna::arch(a)).load());
    std::vector<float> x(100, 1.f);
    CHECK(lacuna::dot(x, x) == 100.f);
    for (int a = 0; a < 5; ++a) {
        auto calls = lacuna::detail::kernel_calls(lacuna::arch(a)).load() - before[std::size_t(a)];
        CHECK(calls == (lacuna::arch(a) == lacuna_test_arch ? 1u : 0u));
    }
#endif
}
