// libFuzzer targets for the checked layout constructors and the format importers: any input either
// builds a layout or is rejected with lacuna::invalid_layout; a built layout must survive to_dense,
// from_dense and convert_to unchanged. Anything else (another exception, a crash, a sanitizer
// report, a mismatch) is a finding. LACUNA_FUZZ_TARGET picks the layout: csr, bsr, nm or bitmap.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "lacuna/interop/pytorch_semi_structured.hpp"
#include "lacuna/interop/scipy_bsr.hpp"
#include "lacuna/interop/tile_bitmaps.hpp"
#include "lacuna/layouts.hpp"
#include "support/fuzz.hpp"

namespace {

using lacuna::block_size;
using lacuna::dynamic;

// Mostly small, sometimes just off the valid range.
std::size_t small(FuzzedDataProvider& in, std::size_t max) { return in.ConsumeIntegralInRange<std::size_t>(0, max); }

template <class Index> std::vector<Index> indices(FuzzedDataProvider& in, std::size_t n, std::int64_t lo, std::int64_t hi) {
    std::vector<Index> v(n);
    for (auto& x : v) x = Index(in.ConsumeIntegralInRange<std::int64_t>(lo, hi));
    return v;
}

// Row pointers that are valid unless the input says otherwise.
template <class Index> std::vector<Index> pointers(FuzzedDataProvider& in, std::size_t outer, std::size_t max_per) {
    std::vector<Index> p(outer + 1, 0);
    for (std::size_t i = 0; i < outer; ++i) p[i + 1] = Index(std::size_t(p[i]) + small(in, max_per));
    if (in.ConsumeBool() && !p.empty()) p[small(in, outer)] += Index(in.ConsumeIntegralInRange<int>(-2, 2));
    return p;
}

std::vector<float> floats(FuzzedDataProvider& in, std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) {
        x = lacuna::fuzz::any_float(in); // any pattern: NaN, inf, subnormal
    }
    return v;
}

// Equal bit for bit, except that -0 and +0 are one zero (sparse layouts store no zeros).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(a[i] == 0.f && b[i] == 0.f)) return false;
    return true;
}

// What every built layout must satisfy.
template <class Layout> void exercise(const Layout& m) {
    std::vector<float> dense = m.to_dense();
    lacuna::fuzz::check(dense.size() == m.rows() * m.cols());
    (void)m.density();
    (void)m.bytes();
    auto csr = lacuna::convert_to<lacuna::csr<float, std::int64_t>>(m);
    // convert_to drops stored zeros, which leaves the dense matrix as it was.
    lacuna::fuzz::check(same_values(csr.to_dense(), dense));
    auto again = lacuna::csr<float>::from_dense(lacuna::matrix_view<const float>(dense, m.rows(), m.cols()));
    lacuna::fuzz::check(same_values(again.to_dense(), dense));
}

template <class Build> void expect_valid_or_rejected(Build&& build) {
    try {
        exercise(build());
    } catch (const lacuna::invalid_layout&) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const std::size_t rows = small(in, 12), cols = small(in, 140);
#if LACUNA_FUZZ_TARGET_csr
    auto row_ptr = pointers<std::int32_t>(in, in.ConsumeBool() ? rows : small(in, 14), 4);
    auto col_idx = indices<std::int32_t>(in, row_ptr.empty() ? 0 : std::size_t(std::max(0, row_ptr.back())) + small(in, 1), -1,
                                         std::int64_t(cols));
    auto values = floats(in, col_idx.size());
    expect_valid_or_rejected([&] { return lacuna::csr<float>(rows, cols, row_ptr, col_idx, values); });
#elif LACUNA_FUZZ_TARGET_bsr
    const block_size b{small(in, 5), small(in, 5)};
    const std::size_t nbr = b.rows ? (rows + b.rows - 1) / b.rows : small(in, 3);
    const std::size_t nbc = b.cols ? (cols + b.cols - 1) / b.cols : small(in, 3);
    auto ptr = pointers<std::int32_t>(in, nbr, 3);
    auto idx = indices<std::int32_t>(in, ptr.empty() ? 0 : std::size_t(std::max(0, ptr.back())), -1, std::int64_t(nbc));
    auto values = floats(in, idx.size() * b.rows * b.cols + small(in, 1));
    if (in.ConsumeBool())
        expect_valid_or_rejected([&] { return lacuna::bsr<float, dynamic, dynamic>(rows, cols, b, ptr, idx, values); });
    else
        expect_valid_or_rejected(
            [&] { return lacuna::bsr_view_of(lacuna::scipy_bsr_arrays<float>{rows, cols, b, ptr, idx, values}); });
#elif LACUNA_FUZZ_TARGET_nm
    using format = lacuna::nm_format<2, 4>;
    if (in.ConsumeBool()) {
        std::vector<std::uint64_t> meta(rows * format::words_per_row(cols) + small(in, 1));
        for (auto& w : meta) w = in.ConsumeIntegral<std::uint64_t>() & (in.ConsumeBool() ? 0xe4e4e4e4e4e4e4e4u : ~0ull);
        auto values = floats(in, rows * format::groups(cols) * 2);
        expect_valid_or_rejected([&] { return lacuna::nm<float, 2, 4>(rows, cols, values, meta); });
    } else {
        const std::size_t k = 16 * small(in, 4);
        std::vector<std::int16_t> meta(rows * (k / 16));
        for (auto& w : meta) w = in.ConsumeIntegral<std::int16_t>();
        auto values = floats(in, rows * k / 2);
        expect_valid_or_rejected([&] { return lacuna::nm24_from_pytorch<float>(rows, k, values, meta); });
    }
#elif LACUNA_FUZZ_TARGET_bitmap
    const int format = in.ConsumeIntegralInRange<int>(0, 2);
    if (format == 0) {
        const std::size_t words = rows * ((cols + 63) / 64);
        std::vector<std::uint64_t> bits(words);
        for (auto& w : bits) w = in.ConsumeIntegral<std::uint64_t>() >> small(in, 63);
        std::vector<std::int32_t> offsets(words + 1, 0);
        for (std::size_t w = 0; w < words; ++w) offsets[w + 1] = offsets[w] + std::popcount(bits[w]);
        if (in.ConsumeBool()) offsets[small(in, words)] += in.ConsumeIntegralInRange<int>(-1, 1);
        auto values = floats(in, std::size_t(std::max(0, offsets.back())) + small(in, 1));
        expect_valid_or_rejected([&] { return lacuna::bitmap<float>(rows, cols, bits, offsets, values); });
    } else if (format == 1) {
        const std::size_t tcols = 64 * small(in, 2), tiles = rows * tcols / 64;
        std::vector<std::uint64_t> t(tiles);
        std::vector<std::int32_t> offsets(tiles, 0);
        for (std::size_t i = 0; i < tiles; ++i) {
            t[i] = in.ConsumeIntegral<std::uint64_t>();
            if (i + 1 < tiles) offsets[i + 1] = offsets[i] + std::popcount(t[i]) + (in.ConsumeProbability<float>() < 0.05f);
        }
        std::size_t total = 0;
        for (auto w : t) total += std::size_t(std::popcount(w));
        auto values = floats(in, total);
        expect_valid_or_rejected([&] { return lacuna::bitmap_from_mustafar<float>(rows, tcols, t, offsets, values); });
    } else {
        std::vector<std::uint32_t> words((rows * cols + 31) / 32);
        std::size_t total = 0;
        for (auto& w : words) {
            w = in.ConsumeIntegral<std::uint32_t>();
            total += std::size_t(std::popcount(w));
        }
        auto values = floats(in, total);
        expect_valid_or_rejected([&] { return lacuna::bitmap_from_sparamx<float>(rows, cols, words, values); });
    }
#else
#error "define LACUNA_FUZZ_TARGET_<csr|bsr|nm|bitmap>"
#endif
    return 0;
}
