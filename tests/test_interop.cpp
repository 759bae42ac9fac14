// Interchange formats against arrays written by hand from their public definitions, then round trips.
#include <cstdint>
#include <vector>

#include "lacuna/interop/pytorch_semi_structured.hpp"
#include "lacuna/interop/scipy_bsr.hpp"
#include "lacuna/interop/tile_bitmaps.hpp"
#include "lacuna/layout/convert.hpp"
#include "support/catch.hpp"
#include "support/layouts.hpp"
#include "support/random.hpp"

using lacuna::bfloat16;

TEST_CASE("SciPy/PyTorch BSR arrays in and out", "[interop][bsr]") {
    // A 4 x 6 matrix of 2 x 3 blocks: block (0, 1) and block (1, 0).
    std::vector<std::int32_t> indptr{0, 1, 2}, indices{1, 0};
    std::vector<float> data{1, 2, 3, 4, 5, 6, /* second block */ 7, 8, 9, 10, 11, 12};
    std::vector<float> dense{0, 0, 0, 1, 2, 3,  //
                             0, 0, 0, 4, 5, 6,  //
                             7, 8, 9, 0, 0, 0,  //
                             10, 11, 12, 0, 0, 0};
    lacuna::scipy_bsr_arrays<float> arrays{4, 6, {2, 3}, indptr, indices, data};
    auto view = lacuna::bsr_view_of<float, 2, 3>(arrays);
    CHECK(view.values() == data.data()); // shared
    CHECK(view.to_dense() == dense);
    auto dyn = lacuna::bsr_view_of(arrays);
    CHECK(dyn.block() == lacuna::block_size{2, 3});

    auto built = lacuna::bsr<float, 2, 3>::from_dense(lacuna::matrix_view<const float>(dense, 4, 6));
    auto out = lacuna::to_scipy_bsr(built.view());
    CHECK(std::vector<std::int32_t>(out.indptr.begin(), out.indptr.end()) == indptr);
    CHECK(std::vector<std::int32_t>(out.indices.begin(), out.indices.end()) == indices);
    CHECK(std::vector<float>(out.data.begin(), out.data.end()) == data);

    lacuna::scipy_bsr_arrays<float> padded{5, 6, {2, 3}, indptr, indices, data};
    CHECK_THROWS_WITH(lacuna::bsr_view_of(padded),
                      "lacuna::bsr_view_of: blocksize 2 x 3 must divide the shape 5 x 6 (SciPy and PyTorch do not pad)");
    std::vector<std::int32_t> unsorted{1, 1};
    lacuna::scipy_bsr_arrays<float> bad{4, 6, {2, 3}, indptr, std::span<const std::int32_t>(unsorted), data};
    CHECK_NOTHROW(lacuna::bsr_view_of(bad)); // one block per block row: still sorted
    std::vector<std::int32_t> out_of_range{2, 0};
    lacuna::scipy_bsr_arrays<float> bad2{4, 6, {2, 3}, indptr, std::span<const std::int32_t>(out_of_range), data};
    CHECK_THROWS_AS(lacuna::bsr_view_of(bad2), lacuna::invalid_layout);
}

TEST_CASE("PyTorch 2:4 values and metadata in and out", "[interop][nm]") {
    // One row of 16: kept [1,1,0,0] -> 0b0100, [1,0,1,0] -> 0b1000, [0,0,1,1] -> 0b1110, [0,1,0,1] -> 0b1101.
    std::vector<bfloat16> dense{1, 2, 0, 0, 3, 0, 4, 0, 0, 0, 5, 6, 0, 7, 0, 8};
    std::vector<bfloat16> values{1, 2, 3, 4, 5, 6, 7, 8};
    const auto meta = std::int16_t(std::uint16_t(0b0100 | 0b1000 << 4 | 0b1110 << 8 | 0b1101 << 12));
    std::vector<std::int16_t> metas{meta};

    auto m = lacuna::nm24_from_pytorch<bfloat16>(1, 16, values, metas);
    CHECK(lacuna::test::same_bits(m.to_dense(), dense));
    auto built = lacuna::nm<bfloat16, 2, 4>::from_dense(lacuna::matrix_view<const bfloat16>(dense, 1, 16));
    auto out = lacuna::to_pytorch_24(built.view());
    CHECK(out.meta == metas);
    CHECK(lacuna::test::same_bits(out.values, values));

    // Round trip on random data, several rows, k a multiple of 16 but not of 64.
    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    auto r = lacuna::test::sparse_dense<float>(rng, 5, 48, 0.9);
    auto rm = lacuna::nm<float, 2, 4>::from_dense(lacuna::matrix_view<const float>(r, 5, 48));
    auto arrays = lacuna::to_pytorch_24(rm.view());
    CHECK(arrays.meta.size() == 5 * 3);
    auto back = lacuna::nm24_from_pytorch<float>(5, 48, arrays.values, arrays.meta);
    CHECK(back.to_dense() == rm.to_dense());

    std::vector<std::int16_t> illegal{std::int16_t(0b0101)}; // idx0 = idx1 = 1
    CHECK_THROWS_AS(lacuna::nm24_from_pytorch<bfloat16>(1, 16, values, illegal), lacuna::invalid_layout);
    CHECK_THROWS_WITH(lacuna::nm24_from_pytorch<bfloat16>(1, 8, std::span<const bfloat16>(values).first(4), metas),
                      "lacuna::nm24_from_pytorch: k = 8 must be a multiple of 16 (four 4-bit codes per int16)");
}

TEST_CASE("Mustafar tiles in and out", "[interop][bitmap]") {
    // Two rows of 64: row 0 keeps elements 0 and 5, row 1 keeps element 63.
    std::vector<float> dense(128, 0.f);
    dense[0] = 1;
    dense[5] = 2;
    dense[64 + 63] = 3;
    std::vector<std::uint64_t> tiles{(std::uint64_t(1) << 63) | (std::uint64_t(1) << 58), 1};
    std::vector<std::int32_t> offsets{0, 2};
    std::vector<float> values{1, 2, 3};
    auto b = lacuna::bitmap_from_mustafar<float>(2, 64, tiles, offsets, values);
    CHECK(b.to_dense() == dense);
    auto out = lacuna::to_mustafar(b.view());
    CHECK(out.tiles == tiles);
    CHECK(out.tile_offsets == offsets);
    CHECK(std::vector<float>(out.values.begin(), out.values.end()) == values);

    std::vector<std::int32_t> wrong{0, 1};
    CHECK_THROWS_WITH(lacuna::bitmap_from_mustafar<float>(2, 64, tiles, wrong, values),
                      "lacuna::bitmap_from_mustafar: tile_offsets[1] = 1, expected 2 (the kept elements of the tiles "
                      "before it)");
    CHECK_THROWS_WITH(lacuna::bitmap_from_mustafar<float>(1, 100, tiles, offsets, values),
                      "lacuna::bitmap_from_mustafar: cols = 100 must be a multiple of the 64-element tile");
}

TEST_CASE("SparAMX bitmaps in and out", "[interop][bitmap]") {
    // A 3 x 11 matrix: 33 elements, two 32-bit words; the bit of element 32 (row 2, col 10) is bit 0 of word 1.
    std::vector<float> dense(33, 0.f);
    dense[1] = 1;  // bit 1 of word 0
    dense[12] = 2; // row 1, col 1: bit 12
    dense[31] = 3;
    dense[32] = 4;
    std::vector<std::uint32_t> words{(1u << 1) | (1u << 12) | (1u << 31), 1u};
    std::vector<float> values{1, 2, 3, 4};
    auto b = lacuna::bitmap_from_sparamx<float>(3, 11, words, values);
    CHECK(b.to_dense() == dense);
    CHECK(lacuna::to_sparamx_words(b.view()) == words);

    std::vector<std::uint32_t> stray{words[0], 3u}; // bit of element 33 does not exist
    CHECK_THROWS_WITH(lacuna::bitmap_from_sparamx<float>(3, 11, stray, values),
                      "lacuna::bitmap_from_sparamx: the last word sets bits past element 32");
    CHECK_THROWS_AS(lacuna::bitmap_from_sparamx<float>(3, 11, words, std::span<const float>(values).first(3)),
                    lacuna::invalid_layout);

    auto rng = lacuna::test::make_rng();
    INFO("LACUNA_SEED=" << lacuna::test::seed());
    auto r = lacuna::test::sparse_dense<double>(rng, 7, 70, 0.5);
    auto rb = lacuna::bitmap<double>::from_dense(lacuna::matrix_view<const double>(r, 7, 70));
    auto back = lacuna::bitmap_from_sparamx<double>(7, 70, lacuna::to_sparamx_words(rb.view()),
                                                    std::span<const double>(rb.values(), rb.nnz()));
    CHECK(back.to_dense() == r);
}
