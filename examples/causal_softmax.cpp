// Turns a matrix of attention logits into causal attention probabilities, row by row and in
// parallel, and stores them as bfloat16: the softmax step of a decoder's attention, end to end.
//
//   causal_softmax [rows]      (default 512; prints the arch, the time and a check of every row)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <lacuna/lacuna.hpp>

int main(int argc, char** argv) {
    const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 512;
    std::vector<float> logits(n * n);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.f, 3.f);
    for (float& v : logits) v = dist(rng);

    // Row i may attend to keys 0..i: a lower-triangular mask, one bool per element.
    std::vector<char> allowed(n * n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j <= i; ++j) allowed[i * n + j] = 1;

    lacuna::matrix_view<const float> scores(logits, n, n);
    std::vector<float> probs(n * n);
    std::vector<lacuna::bfloat16> stored(n * n);
    auto start = std::chrono::steady_clock::now();
    lacuna::parallel_for(n, [&](std::size_t i) {
        std::span<const bool> row_mask(reinterpret_cast<const bool*>(allowed.data()) + i * n, n);
        std::span<float> row(probs.data() + i * n, n);
        lacuna::softmax(scores.inner(i), row_mask, row);
        lacuna::convert(std::span<const float>(row), std::span<lacuna::bfloat16>(stored.data() + i * n, n));
    });
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    // Every row sums to 1 over its allowed keys, and nothing leaks into the future.
    std::size_t bad_rows = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double sum = 0, future = 0;
        for (std::size_t j = 0; j < n; ++j) (j <= i ? sum : future) += float(stored[i * n + j]);
        if (std::abs(sum - 1.0) > 1e-2 || future != 0) ++bad_rows;
    }
    std::printf("causal softmax of %zu x %zu logits on %s, %d thread(s): %.3f ms; rows wrong: %zu\n", n, n,
                std::string(lacuna::arch_name(lacuna::active_arch())).c_str(), lacuna::num_threads(), ms, bad_rows);
    return bad_rows == 0 ? 0 : 1;
}
