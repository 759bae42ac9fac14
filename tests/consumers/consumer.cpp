// A user's program: softmax of a row and a dot product through lacuna, checked by hand.
#include <lacuna/lacuna.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    std::vector<float> x{1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f}, p(x.size());
    lacuna::softmax(x, p);
    float total = lacuna::reduce_sum(p);
    float dot = lacuna::dot(x, x); // 1 + 4 + ... + 81
    std::printf("lacuna %s on %s: sum of softmax %.6f, dot %.1f\n", lacuna::version,
                std::string(lacuna::arch_name(lacuna::active_arch())).c_str(), total, dot);
    bool ok = std::abs(total - 1.f) < 1e-5f && dot == 285.f && p[8] > p[7];
    std::puts(ok ? "consumer ok" : "consumer FAILED");
    return ok ? 0 : 1;
}
