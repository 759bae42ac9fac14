// Sparse × dense products against the dense kernel of the same shape (OpenBLAS sgemm/sgemv on the
// dense matrix), Eigen's SparseMatrix × dense, and the lacuna reference, in one binary.
#include <cmath>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/convert.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/layout/prune.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/reference/spmm.hpp"
#include "lacuna/sddmm.hpp"
#include "lacuna/spmm.hpp"
#include "support/bench_main.hpp"

#if LACUNA_BENCH_OPENBLAS
#include <cblas.h>
#endif
#if LACUNA_WITH_EIGEN
#include <Eigen/SparseCore>
#endif
#if LACUNA_BENCH_LIBXSMM
#include <libxsmm.h>
#endif

namespace {

using lacuna::bench::add_timed;
using lacuna::bench::timed_case;

// Dense operands are 64-byte aligned, as a tensor library allocates them: a vector load that
// straddles two cache lines costs two.
using buffer = lacuna::aligned_buffer<float>;

struct problem {
    std::size_t m, k, n;
    std::vector<float> dense_a;
    buffer b, c;
    lacuna::csr<float> a;
    lacuna::bitmap<float> bitmap_a;
#if LACUNA_WITH_EIGEN
    Eigen::SparseMatrix<float, Eigen::RowMajor> eigen_a;
#endif
#if LACUNA_BENCH_LIBXSMM
    // libxsmm's sparse × dense: A cut into its own 128 × 128 CSR slices once, outside the timing.
    struct xsmm {
        libxsmm_spmdm_handle handle{};
        libxsmm_CSR_sparseslice* slices = nullptr;
        ~xsmm() {
            if (slices) libxsmm_spmdm_destroy(&handle);
        }
    };
    std::unique_ptr<xsmm> xsmm_a;
    void make_xsmm() {
        if (xsmm_a) return;
        xsmm_a = std::make_unique<xsmm>();
        libxsmm_spmdm_init(int(m), int(n), int(k), 1, &xsmm_a->handle, &xsmm_a->slices);
        for (int blk = 0; blk < libxsmm_spmdm_get_num_createSparseSlice_blocks(&xsmm_a->handle); ++blk)
            libxsmm_spmdm_createSparseSlice_fp32_thread(&xsmm_a->handle, 'N', dense_a.data(), xsmm_a->slices, blk, 0, 1);
    }
#endif
};

// A random m × k matrix at `density`, B of k × n, C of m × n. Uniform, or with power-law row
// lengths (row i about ∝ 1 / (i mod 50 + 1)^0.8, every seventh row empty) at the same density.
problem& problem_for(std::size_t m, std::size_t k, std::size_t n, double density, bool power_law = false) {
    static std::map<std::string, std::unique_ptr<problem>> cache;
    auto& p = cache[std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n) + "@" + std::to_string(density) +
                    (power_law ? "pl" : "")];
    if (!p) {
        p = std::make_unique<problem>();
        p->m = m, p->k = k, p->n = n;
        std::mt19937_64 rng(5);
        std::uniform_real_distribution<float> value(-1.f, 1.f), u(0.f, 1.f);
        auto weight = [&](std::size_t i) { return i % 7 == 3 ? 0.0 : 1.0 / std::pow(double(i % 50) + 1.0, 0.8); };
        double mean_weight = 0;
        for (std::size_t i = 0; i < m; ++i) mean_weight += weight(i) / double(m);
        p->dense_a.assign(m * k, 0.f);
        for (std::size_t i = 0; i < m; ++i) {
            const double row_density = power_law ? std::min(1.0, density * weight(i) / mean_weight) : density;
            for (std::size_t j = 0; j < k; ++j)
                if (u(rng) < row_density) p->dense_a[i * k + j] = value(rng);
        }
        p->b = buffer(k * n);
        for (float& x : p->b) x = value(rng);
        p->c = buffer(m * n);
        p->a = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(p->dense_a, m, k));
        p->bitmap_a = lacuna::convert_to<lacuna::bitmap<float>>(p->a);
#if LACUNA_WITH_EIGEN
        using dense = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        p->eigen_a = Eigen::Map<const dense>(p->dense_a.data(), long(m), long(k)).sparseView();
#endif
    }
    return *p;
}

using body = std::function<void(problem&)>;

void add_case(const std::string& op, const std::string& impl, std::size_t m, std::size_t k, std::size_t n, double density,
              int threads, body run) {
    add_timed(op + "/" + impl + "/" + std::to_string(n), threads, [=] {
        problem& p = problem_for(m, k, n, density);
        const double bytes = impl.starts_with("bitmap") ? double(p.bitmap_a.bytes()) : double(p.a.bytes());
        return timed_case{[&p, run] { run(p); }, 2.0 * double(p.a.nnz()) * double(n), bytes};
    });
}

void add_problem(std::size_t m, std::size_t k, std::size_t n, double density) {
    const std::string op = "csr" + std::to_string(int(density * 100 + 0.5)) + "%_" + std::to_string(m);
    auto add = [&](const std::string& impl, int threads, body run) { add_case(op, impl, m, k, n, density, threads, run); };
    if (n == 1) {
        add("lacuna", 1, [](problem& p) { lacuna::spmv(p.a, p.b, p.c); });
        add("lacuna.2t", 2, [](problem& p) { lacuna::spmv(p.a, p.b, p.c); });
        add("bitmap", 1, [](problem& p) { lacuna::spmv(p.bitmap_a, p.b, p.c); });
        add("bitmap.2t", 2, [](problem& p) { lacuna::spmv(p.bitmap_a, p.b, p.c); });
    } else {
        add("lacuna", 1, [](problem& p) {
            lacuna::spmm(p.a, lacuna::matrix_view<const float>(p.b, p.k, p.n), lacuna::matrix_view<float>(p.c, p.m, p.n));
        });
        add("lacuna.2t", 2, [](problem& p) {
            lacuna::spmm(p.a, lacuna::matrix_view<const float>(p.b, p.k, p.n), lacuna::matrix_view<float>(p.c, p.m, p.n));
        });
        add("bitmap", 1, [](problem& p) {
            lacuna::spmm(p.bitmap_a, lacuna::matrix_view<const float>(p.b, p.k, p.n), lacuna::matrix_view<float>(p.c, p.m, p.n));
        });
    }
    if (n <= 64)
        add("ref", 1, [](problem& p) {
            lacuna::ref::spmm(p.a, lacuna::matrix_view<const float>(p.b, p.k, p.n), lacuna::matrix_view<float>(p.c, p.m, p.n),
                              1.f, 0.f);
        });
#if LACUNA_BENCH_OPENBLAS
    add("openblas", 1, [](problem& p) {
        if (p.n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, int(p.m), int(p.k), 1.f, p.dense_a.data(), int(p.k), p.b.data(), 1, 0.f,
                        p.c.data(), 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(p.m), int(p.n), int(p.k), 1.f, p.dense_a.data(),
                        int(p.k), p.b.data(), int(p.n), 0.f, p.c.data(), int(p.n));
    });
#endif
#if LACUNA_BENCH_LIBXSMM
    if (n > 1)
        add_timed(op + "/libxsmm/" + std::to_string(n), 1, [=] {
            problem& p = problem_for(m, k, n, density);
            p.make_xsmm();
            return timed_case{[&p] {
                                  const float alpha = 1.f, beta = 0.f;
                                  auto& x = *p.xsmm_a;
                                  for (int blk = 0; blk < libxsmm_spmdm_get_num_compute_blocks(&x.handle); ++blk)
                                      libxsmm_spmdm_compute_fp32_thread(&x.handle, 'N', 'N', &alpha, x.slices, p.b.data(), 'N',
                                                                        &beta, p.c.data(), blk, 0, 1);
                              },
                              2.0 * double(p.a.nnz()) * double(n), double(p.a.bytes())};
        });
#endif
#if LACUNA_WITH_EIGEN
    add("eigen", 1, [](problem& p) {
        using dense = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        Eigen::Map<const dense> b(p.b.data(), long(p.k), long(p.n));
        Eigen::Map<dense> c(p.c.data(), long(p.m), long(p.n));
        c.noalias() = p.eigen_a * b;
    });
#endif
}

// BSR with R × R blocks, `block_density` of them stored, against dense sgemm on the same matrix.
template <std::size_t R> void add_bsr_problem(std::size_t size, std::size_t n, double block_density) {
    struct bsr_problem {
        std::vector<float> dense_a;
        buffer b, c;
        lacuna::bsr<float, R, R> a;
    };
    auto get = [=]() -> bsr_problem& {
        static std::map<std::string, std::unique_ptr<bsr_problem>> cache;
        auto& p = cache[std::to_string(size) + "x" + std::to_string(n) + "@" + std::to_string(block_density)];
        if (!p) {
            p = std::make_unique<bsr_problem>();
            std::mt19937_64 rng(9);
            std::uniform_real_distribution<float> value(-1.f, 1.f);
            std::vector<float> full(size * size);
            for (float& x : full) x = value(rng);
            p->a = lacuna::bsr<float, R, R>::from_dense(lacuna::matrix_view<const float>(full, size, size),
                                                        lacuna::prune::block_top_fraction({R, R}, block_density));
            p->dense_a = p->a.to_dense();
            p->b = buffer(size * n);
            for (float& x : p->b) x = value(rng);
            p->c = buffer(size * n);
        }
        return *p;
    };
    const std::string op = "bsr" + std::to_string(R) + "_" + std::to_string(int(block_density * 100 + 0.5)) + "%";
    auto add = [&](const std::string& impl, int threads, std::function<void(bsr_problem&)> run) {
        add_timed(op + "/" + impl + "/" + std::to_string(n), threads, [=] {
            bsr_problem& p = get();
            return timed_case{[&p, run] { run(p); }, 2.0 * double(p.a.nnz()) * double(n), double(p.a.bytes())};
        });
    };
    auto spmm = [=](bsr_problem& p) {
        lacuna::spmm(p.a, lacuna::matrix_view<const float>(p.b, size, n), lacuna::matrix_view<float>(p.c, size, n));
    };
    add("lacuna", 1, spmm);
    add("lacuna.2t", 2, spmm);
#if LACUNA_BENCH_OPENBLAS
    add("openblas", 1, [=](bsr_problem& p) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(size), int(n), int(size), 1.f, p.dense_a.data(),
                    int(size), p.b.data(), int(n), 0.f, p.c.data(), int(n));
    });
#endif
}

// The linear layer Y = X·Wᵀ with W (out × in) pruned to N:M, or dense when M is 0, float or bfloat16,
// against OpenBLAS on the dense float W (sgemv for one token, sgemm beyond).
template <class T, std::size_t N, std::size_t M> void add_linear_problem(std::size_t out, std::size_t in, std::size_t tokens) {
    constexpr bool dense_weights = M == 0;
    struct linear_problem {
        std::vector<float> dense_w;
        buffer x, y;
        std::conditional_t<dense_weights, std::vector<T>, lacuna::nm<T, N, M>> w;
    };
    auto get = [=]() -> linear_problem& {
        static std::map<std::string, std::unique_ptr<linear_problem>> cache;
        auto& p = cache[std::to_string(out) + "x" + std::to_string(in) + "x" + std::to_string(tokens)];
        if (!p) {
            p = std::make_unique<linear_problem>();
            std::mt19937_64 rng(11);
            std::uniform_real_distribution<float> value(-1.f, 1.f);
            std::vector<T> full(out * in);
            for (T& v : full) v = T(value(rng));
            if constexpr (dense_weights) {
                p->w = full;
            } else {
                p->w = lacuna::nm<T, N, M>::from_dense(lacuna::matrix_view<const T>(full, out, in));
                full = p->w.to_dense();
            }
            p->dense_w.assign(full.begin(), full.end());
            p->x = buffer(tokens * in);
            for (float& v : p->x) v = value(rng);
            p->y = buffer(tokens * out);
        }
        return *p;
    };
    const std::string op = "linear" + (dense_weights ? std::string("_dense") : std::to_string(N) + ":" + std::to_string(M)) +
                           (std::is_same_v<T, float> ? "" : "bf16") + "_" + std::to_string(out) + "x" + std::to_string(in);
    const double stored = dense_weights ? double(out * in) : double(out * in / M * N);
    auto add = [&](const std::string& impl, int threads, std::function<void(linear_problem&)> run) {
        add_timed(op + "/" + impl + "/" + std::to_string(tokens), threads, [=] {
            linear_problem& p = get();
            double bytes = double(out * in * sizeof(T));
            if constexpr (!dense_weights) bytes = double(p.w.bytes());
            return timed_case{[&p, run] { run(p); }, 2.0 * stored * double(tokens), bytes};
        });
    };
    auto linear = [=](linear_problem& p) {
        const lacuna::matrix_view<const float> x(p.x, tokens, in);
        const lacuna::matrix_view<float> y(p.y, tokens, out);
        if constexpr (dense_weights) lacuna::linear(x, lacuna::matrix_view<const T>(p.w.data(), out, in), y);
        else lacuna::linear(x, p.w, y);
    };
    add("lacuna", 1, linear);
    add("lacuna.2t", 2, linear);
#if LACUNA_BENCH_OPENBLAS
    auto dense = [=](linear_problem& p) {
        if (tokens == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.f, p.dense_w.data(), int(in), p.x.data(), 1, 0.f,
                        p.y.data(), 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(tokens), int(out), int(in), 1.f, p.x.data(), int(in),
                        p.dense_w.data(), int(in), 0.f, p.y.data(), int(out));
    };
    add("openblas", 1, dense);
    add("openblas.2t", 2, dense);
#endif
}

// SDDMM of A (size × d) and B (size × d) at a mask's positions, against the dense A·Bᵀ (OpenBLAS).
template <class Mask> void add_sddmm_problem(const std::string& name, std::size_t size, std::size_t d, std::function<Mask()> make_mask) {
    struct sddmm_problem {
        buffer a, b, dense;
        Mask mask;
    };
    auto get = [=]() -> sddmm_problem& {
        static std::map<std::string, std::unique_ptr<sddmm_problem>> cache;
        auto& p = cache[name + std::to_string(d)];
        if (!p) {
            p = std::make_unique<sddmm_problem>();
            std::mt19937_64 rng(13);
            std::uniform_real_distribution<float> value(-1.f, 1.f);
            p->a = buffer(size * d);
            p->b = buffer(size * d);
            for (float& v : p->a) v = value(rng);
            for (float& v : p->b) v = value(rng);
            p->dense = buffer(size * size);
            p->mask = make_mask();
        }
        return *p;
    };
    auto add = [&](const std::string& impl, int threads, std::function<void(sddmm_problem&)> run) {
        add_timed("sddmm_" + name + "/" + impl + "/" + std::to_string(d), threads, [=] {
            sddmm_problem& p = get();
            return timed_case{[&p, run] { run(p); }, 2.0 * double(p.mask.nnz()) * double(d), double(p.mask.bytes())};
        });
    };
    auto sddmm = [=](sddmm_problem& p) {
        lacuna::sddmm(lacuna::matrix_view<const float>(p.a, size, d), lacuna::matrix_view<const float>(p.b, size, d), p.mask,
                      p.mask);
    };
    add("lacuna", 1, sddmm);
    add("lacuna.2t", 2, sddmm);
#if LACUNA_BENCH_OPENBLAS
    add("openblas", 1, [=](sddmm_problem& p) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(size), int(size), int(d), 1.f, p.a.data(), int(d),
                    p.b.data(), int(d), 0.f, p.dense.data(), int(size));
    });
#endif
}

void add_sddmm_problems(std::size_t d) {
    add_sddmm_problem<lacuna::csr<float>>("csr90%", 4096, d, [] { return problem_for(4096, 4096, 1, 0.1).a; });
    add_sddmm_problem<lacuna::bsr<float, 64, 64>>("bsr64_10%", 4096, d, [] {
        std::mt19937_64 rng(17);
        std::uniform_real_distribution<float> value(-1.f, 1.f);
        std::vector<float> full(4096 * 4096);
        for (float& v : full) v = value(rng);
        return lacuna::bsr<float, 64, 64>::from_dense(lacuna::matrix_view<const float>(full, 4096, 4096),
                                                      lacuna::prune::block_top_fraction({64, 64}, 0.1));
    });
}

// SpMM on rows of power-law lengths against the same density spread uniformly, at two threads: the
// split by stored count should keep them close.
void add_power_law_problem(std::size_t n) {
    for (bool power_law : {false, true})
        add_timed(std::string("csr10%") + (power_law ? "_powerlaw" : "_uniform") + "/lacuna.2t/" + std::to_string(n), 2, [=] {
            problem& p = problem_for(4096, 4096, n, 0.1, power_law);
            return timed_case{[&p] {
                                  lacuna::spmm(p.a, lacuna::matrix_view<const float>(p.b, p.k, p.n),
                                               lacuna::matrix_view<float>(p.c, p.m, p.n));
                              },
                              2.0 * double(p.a.nnz()) * double(n), double(p.a.bytes())};
        });
}

void register_cases() {
    std::vector<double> densities{0.1};
    std::vector<std::size_t> widths{1, 64, 256};
    if (lacuna::bench::full_run()) {
        densities = {0.5, 0.3, 0.1, 0.05, 0.01};
        widths = {1, 16, 64, 256};
    }
    for (double d : densities)
        for (std::size_t n : widths) add_problem(4096, 4096, n, d);
    if (!lacuna::bench::full_run()) add_problem(4096, 4096, 1, 0.3); // 70% sparse: the bitmap's range
    std::vector<double> block_densities{0.1};
    if (lacuna::bench::full_run()) block_densities = {0.5, 0.2, 0.1, 0.05};
    for (double d : block_densities) {
        add_bsr_problem<16>(4096, 256, d);
        add_bsr_problem<32>(4096, 256, d);
    }
    std::vector<std::size_t> token_counts{1, 128};
    if (lacuna::bench::full_run()) token_counts = {1, 8, 32, 128, 512};
    for (std::size_t t : token_counts) {
        add_linear_problem<float, 2, 4>(4096, 4096, t);
        add_linear_problem<lacuna::bfloat16, 2, 4>(4096, 4096, t);
        if (!lacuna::bench::full_run()) continue;
        add_linear_problem<float, 0, 0>(4096, 4096, t);
        add_linear_problem<lacuna::bfloat16, 0, 0>(4096, 4096, t);
        add_linear_problem<float, 1, 4>(4096, 4096, t);
        add_linear_problem<float, 2, 8>(4096, 4096, t);
        add_linear_problem<float, 2, 4>(11008, 4096, t);
        add_linear_problem<lacuna::bfloat16, 2, 4>(11008, 4096, t);
    }
    // A MoE expert's gate (2048 × 1024) over a few registers of tokens, as the experts run it, and
    // over counts that end in a part of a register (12, 24, 40, 72, 100).
    if (lacuna::bench::full_run())
        for (std::size_t t : {12, 16, 24, 40, 48, 64, 72, 80, 96, 100, 112}) add_linear_problem<float, 0, 0>(2048, 1024, t);
    add_power_law_problem(64);
    add_sddmm_problems(64);
    if (lacuna::bench::full_run()) add_sddmm_problems(128);
}

} // namespace

int main(int argc, char** argv) {
#if LACUNA_BENCH_OPENBLAS
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
    return lacuna::bench::run(argc, argv, register_cases, {"ref", "openblas", "eigen", "libxsmm"}, {"GFLOP/s", "GB/s"});
}
