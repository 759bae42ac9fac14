// bfloat16, aligned buffers, dense views, errors and parallel_for.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/bits.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/parallel.hpp"
#include "support/catch.hpp"
#include "support/random.hpp"

#if LACUNA_WITH_EIGEN
#include <Eigen/Core>
#endif

using lacuna::bfloat16;

TEST_CASE("bfloat16 rounds to nearest even and keeps NaN", "[core][bfloat16]") {
    auto from = [](std::uint32_t u) { return bfloat16(std::bit_cast<float>(u)).bits; };
    CHECK(from(0x3f800000u) == 0x3f80);   // 1.0 exactly
    CHECK(from(0x3f808000u) == 0x3f80);   // tie, even below: down
    CHECK(from(0x3f818000u) == 0x3f82);   // tie, odd below: up
    CHECK(from(0x3f808001u) == 0x3f81);   // above the tie: up
    CHECK(from(0x7f7fffffu) == 0x7f80);   // float max overflows to inf
    CHECK(from(0xff800000u) == 0xff80);   // -inf stays
    CHECK(from(0x00018000u) == 0x0002);   // subnormal tie rounds to even, not flushed
    CHECK(from(0x7f800001u) == 0x7fc0);   // signalling NaN whose payload is in the low bits: quiet NaN
    CHECK(from(0xffc00000u) == 0xffc0);   // negative quiet NaN keeps its sign
    CHECK(std::isnan(float(bfloat16(std::numeric_limits<float>::quiet_NaN()))));
    for (std::uint32_t b = 0; b < 0x10000u; ++b) { // widening is exact and round-trips every pattern but NaN
        bfloat16 h = bfloat16::from_bits(std::uint16_t(b));
        float f = h;
        if (std::isnan(f)) continue;
        REQUIRE(bfloat16(f).bits == h.bits);
    }
    CHECK(float(std::numeric_limits<bfloat16>::max()) == 0x1.fep127f);
    CHECK(float(std::numeric_limits<bfloat16>::epsilon()) == 0x1p-7f);
}

TEST_CASE("transpose_bits swaps bit c of row r with bit r of row c", "[core][bits]") {
    auto rng = lacuna::test::make_rng();
    for (int trial = 0; trial < 20; ++trial) {
        std::uint64_t rows[64], before[64];
        for (auto& r : rows) r = trial == 0 ? 0x8000000000000001ull : rng(); // trial 0: the corners
        std::copy(std::begin(rows), std::end(rows), before);
        lacuna::detail::transpose_bits(rows);
        for (std::size_t r = 0; r < 64; ++r)
            for (std::size_t c = 0; c < 64; ++c) REQUIRE((rows[r] >> c & 1) == (before[c] >> r & 1));
        lacuna::detail::transpose_bits(rows);
        REQUIRE(std::equal(std::begin(rows), std::end(rows), before));
    }
}

TEST_CASE("aligned_buffer is aligned, zeroed, copyable and movable", "[core][buffer]") {
    lacuna::aligned_buffer<float> a(1000);
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
    CHECK(a.size() == 1000);
    for (float v : a) CHECK(v == 0.f);
    a[3] = 2.f;
    lacuna::aligned_buffer<float> copy = a;
    CHECK(copy.data() != a.data());
    CHECK(copy[3] == 2.f);
    CHECK(reinterpret_cast<std::uintptr_t>(copy.data()) % 64 == 0);
    const float* p = a.data();
    lacuna::aligned_buffer<float> b(std::move(a));
    CHECK(b.data() == p);
    CHECK(b[3] == 2.f);
    CHECK(a.empty()); // NOLINT: moved-from state is specified
    lacuna::aligned_buffer<bfloat16, 128> c(5, lacuna::aligned_buffer<bfloat16, 128>::uninitialized);
    CHECK(reinterpret_cast<std::uintptr_t>(c.data()) % 128 == 0);
    lacuna::aligned_buffer<double> empty(0);
    CHECK(empty.data() == nullptr);
    std::span<const float> s = b;
    CHECK(s.size() == 1000);
}

TEST_CASE("aligned_buffer: buffers of 4 MiB and more start on a huge page and survive copies and moves", "[core][buffer]") {
    constexpr std::size_t huge = std::size_t(2) << 20;
    // Just under the threshold: cache-line alignment only is promised; at and past it, 2 MiB.
    for (std::size_t n : {std::size_t(1 << 20) - 1, std::size_t(1 << 20), std::size_t(1 << 20) + 3, std::size_t(3) << 20}) {
        INFO(n << " floats");
        lacuna::aligned_buffer<float> a(n);
        const std::size_t expected = n * sizeof(float) >= 2 * huge ? huge : 64;
        CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % expected == 0);
        CHECK(a[0] == 0.f);
        CHECK(a[n - 1] == 0.f);
        a[n - 1] = 7.f;
        const lacuna::aligned_buffer<float> copy = a;
        CHECK(reinterpret_cast<std::uintptr_t>(copy.data()) % expected == 0);
        CHECK(copy[n - 1] == 7.f);
        lacuna::aligned_buffer<float> moved;
        moved = std::move(a);
        CHECK(moved[n - 1] == 7.f);
    } // every buffer released with the alignment it was allocated with (ASan checks the pairing)
}

TEST_CASE("matrix_view indexes row- and column-major storage with strides", "[core][dense]") {
    std::vector<float> data(20);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = float(i);
    lacuna::matrix_view<float> rm(data, 3, 4, 5); // 3×4 with row stride 5
    CHECK(rm(2, 3) == 13.f);
    CHECK(rm.inner(1)[0] == 5.f);
    CHECK_FALSE(rm.contiguous());
    lacuna::matrix_view<const float, lacuna::order::col_major> cm(data.data(), 4, 3);
    CHECK(cm(1, 2) == 9.f);
    CHECK(cm.contiguous());
    lacuna::matrix_view<const float> as_const = rm;
    CHECK(as_const(1, 1) == 6.f);
    rm(0, 0) = -1.f;
    CHECK(data[0] == -1.f);

    CHECK_THROWS_WITH((lacuna::matrix_view<float>(data.data(), 3, 4, 3)),
                      "lacuna::matrix_view: stride 3 is smaller than the column count 4");
    CHECK_THROWS_WITH((lacuna::matrix_view<float>(data, 5, 5)),
                      "lacuna::matrix_view: the span holds 20 elements, a 5 x 5 matrix with stride 5 needs 25");
    CHECK_NOTHROW(lacuna::matrix_view<float>(data, 4, 5));
    CHECK(lacuna::matrix_view<float>(data.data(), 0, 7).empty());
}

#if LACUNA_WITH_EIGEN
TEST_CASE("matrix_view views Eigen matrices without copying", "[core][dense][eigen]") {
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> a(3, 4);
    a.setRandom();
    Eigen::Ref<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> ref = a;
    lacuna::matrix_view<float> v = ref;
    CHECK(v.data() == a.data());
    CHECK(v(2, 1) == a(2, 1));
    Eigen::MatrixXf col(5, 2);
    col.setRandom();
    lacuna::matrix_view view(col); // deduces a column-major view
    static_assert(std::is_same_v<decltype(view), lacuna::matrix_view<float, lacuna::order::col_major>>);
    CHECK(view(4, 1) == col(4, 1));
    auto block = col.block(1, 0, 3, 2);
    lacuna::matrix_view<float, lacuna::order::col_major> bv(block);
    CHECK(bv(0, 1) == col(1, 1));
    CHECK(bv.stride() == 5);
}
#endif

TEST_CASE("tensor4_view addresses [B, H, L, D] with any strides", "[core][dense]") {
    std::vector<float> data(2 * 3 * 4 * 5);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = float(i);
    lacuna::tensor4_view<float> t(data, {2, 3, 4, 5});
    CHECK(t(1, 2, 3, 4) == float(data.size() - 1));
    CHECK(t.row(1, 0, 0) == data.data() + 60);
    // [B, L, H, D] storage seen as [B, H, L, D]: swap the H and L strides.
    lacuna::tensor4_view<const float> bhld(data.data(), {2, 4, 3, 5}, {60, 5, 20, 1});
    CHECK(bhld(1, 3, 2, 1) == t(1, 2, 3, 1));
    CHECK_THROWS_AS(lacuna::tensor4_view<float>(std::span<float>(data).first(100), {2, 3, 4, 5}), lacuna::shape_error);
}

TEST_CASE("parallel_for runs every index once at any thread count", "[core][parallel]") {
    for (int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        lacuna::set_num_threads(threads);
        for (std::size_t n : {0u, 1u, 2u, 7u, 1000u}) {
            std::vector<std::atomic<int>> hits(n);
            lacuna::parallel_for(n, [&](std::size_t i) { hits[i].fetch_add(1); });
            for (auto& h : hits) REQUIRE(h.load() == 1);
        }
    }
    lacuna::set_num_threads(0);
    CHECK(lacuna::num_threads() >= 1);
    CHECK_THROWS_AS(lacuna::set_num_threads(-1), lacuna::error);
}
