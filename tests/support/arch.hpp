// Running a test body once per instruction set.
#pragma once

#include <cstdlib>
#include <vector>

#include "lacuna/simd/dispatch.hpp"
#include "support/catch.hpp"
#include "support/random.hpp"

namespace lacuna::test {

/// The archs a test runs under: the active one when LACUNA_ARCH names it (ctest runs the suite once
/// per arch that way) or LACUNA_TEST_ACTIVE_ARCH_ONLY is set (the ThreadSanitizer lane), else every
/// arch this program and CPU can run.
inline std::vector<arch> archs_under_test() {
    const char* only = std::getenv("LACUNA_ARCH");
    if ((only && *only) || std::getenv("LACUNA_TEST_ACTIVE_ARCH_ONLY")) return {active_arch()};
    return available_archs();
}

/// Makes `a` the active arch for a scope.
class scoped_arch {
public:
    explicit scoped_arch(arch a) : previous_(force_arch(a)) {}
    ~scoped_arch() { force_arch(previous_); }
    scoped_arch(const scoped_arch&) = delete;
    scoped_arch& operator=(const scoped_arch&) = delete;

private:
    arch previous_;
};

} // namespace lacuna::test

/// Runs the rest of the test body once per arch under test (a Catch2 generator), with that arch
/// active; failures print the arch and the seed.
#define LACUNA_FOR_EACH_ARCH()                                                                            \
    const ::lacuna::arch lacuna_test_arch = GENERATE(from_range(::lacuna::test::archs_under_test()));  \
    ::lacuna::test::scoped_arch lacuna_test_scoped_arch(lacuna_test_arch);                              \
    INFO("arch " << lacuna_test_arch << ", LACUNA_SEED=" << ::lacuna::test::seed())
