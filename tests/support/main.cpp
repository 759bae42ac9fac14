// The test runner: prints what the results depend on, then runs Catch2.
#if !__has_include(<catch2/catch_all.hpp>)
#define CATCH_CONFIG_RUNNER
#endif
#include <cstdlib>
#include <iostream>

#include "lacuna/core/config.hpp"
#include "lacuna/simd/dispatch.hpp"
#include "support/catch.hpp"
#include "support/random.hpp"

// ctest treats this exit code as "skipped": LACUNA_ARCH names an arch this machine cannot run.
constexpr int skip_exit_code = 77;

int main(int argc, char** argv) {
    if (const char* env = std::getenv("LACUNA_ARCH"); env && *env) {
        auto a = lacuna::parse_arch(env);
        if (a && lacuna::detail::arch_compiled(*a) && !lacuna::cpu_supports(*a)) {
            std::cout << "skipped: this CPU cannot run LACUNA_ARCH=" << env << std::endl;
            return skip_exit_code;
        }
    }
    std::cout << "lacuna " << lacuna::version << ", active arch " << lacuna::active_arch()
              << ", LACUNA_SEED=" << lacuna::test::seed() << std::endl;
    return Catch::Session().run(argc, argv);
}
