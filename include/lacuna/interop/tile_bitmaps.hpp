// lacuna: the bitmap formats of Mustafar (pruned KV caches) and SparAMX (pruned weights).
//
// Mustafar: a tile is 64 consecutive elements of a row; one 64-bit word per tile, most significant
//   bit first (bit 63 - i set <=> element i of the tile kept); values packed in bit order; each
//   tile's offset is the exclusive prefix sum of the tiles' counts. For a K cache, whose tiles run
//   along tokens, pass the [channels, tokens] matrix. cols must be a multiple of 64.
// SparAMX: one bit per element of the row-major matrix, least significant bit first, in 32-bit words
//   (a word may span two rows); values packed in the same order.
// lacuna's bitmap keeps rows in least-significant-first 64-bit words with per-word offsets, and its
// values in the same order as both formats, so the values convert without reordering.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/error.hpp"
#include "lacuna/layout/bitmap.hpp"

namespace lacuna {

namespace detail {
constexpr std::uint64_t reverse_bits(std::uint64_t x) noexcept {
    std::uint64_t r = 0;
    for (int i = 0; i < 64; ++i, x >>= 1) r = (r << 1) | (x & 1);
    return r;
}
inline void check_mustafar_cols(const char* where, std::size_t cols) {
    if (cols % 64 != 0) fail<invalid_layout>(where, ": cols = ", cols, " must be a multiple of the 64-element tile");
}
} // namespace detail

/// Mustafar arrays of a rows × cols matrix: rows · cols / 64 tiles.
template <class T, layout_index Index = std::int32_t> struct mustafar_arrays {
    std::vector<std::uint64_t> tiles;   // MSB-first bitmaps
    std::vector<Index> tile_offsets;    // exclusive prefix sum of popcount(tiles)
    std::span<const T> values;          // shared with the lacuna bitmap they came from
};

/// A bitmap from Mustafar's tiles, offsets and values, checking that the offsets are the prefix sum
/// of the tiles' counts. Throws invalid_layout.
template <layout_value T, layout_index Index = std::int32_t>
bitmap<T, Index> bitmap_from_mustafar(std::size_t rows, std::size_t cols, std::span<const std::uint64_t> tiles,
                                      std::span<const std::type_identity_t<Index>> tile_offsets,
                                      std::span<const T> values) {
    const char* where = "lacuna::bitmap_from_mustafar";
    detail::check_mustafar_cols(where, cols);
    if (tile_offsets.size() != tiles.size())
        detail::fail<invalid_layout>(where, ": tile_offsets has ", tile_offsets.size(), " elements, expected ",
                                     tiles.size(), " (one per tile)");
    std::vector<std::uint64_t> bits(tiles.size());
    std::vector<Index> offsets(tiles.size() + 1, 0);
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        if (tile_offsets[t] != offsets[t])
            detail::fail<invalid_layout>(where, ": tile_offsets[", t, "] = ", tile_offsets[t], ", expected ", offsets[t],
                                         " (the kept elements of the tiles before it)");
        bits[t] = detail::reverse_bits(tiles[t]);
        offsets[t + 1] = Index(std::size_t(offsets[t]) + std::size_t(std::popcount(bits[t])));
    }
    return bitmap<T, Index>(rows, cols, bits, offsets, values); // checks sizes and the value count
}

/// Mustafar's arrays for a bitmap matrix (values shared). Throws invalid_layout unless 64 divides cols.
template <class T, layout_index Index>
mustafar_arrays<std::remove_const_t<T>, Index> to_mustafar(const bitmap_view<T, Index>& b) {
    detail::check_mustafar_cols("lacuna::to_mustafar", b.cols());
    const std::size_t n = b.rows() * b.words_per_row();
    mustafar_arrays<std::remove_const_t<T>, Index> out{std::vector<std::uint64_t>(n), std::vector<Index>(b.offsets(), b.offsets() + n),
                                                       {b.values(), b.nnz()}};
    for (std::size_t t = 0; t < n; ++t) out.tiles[t] = detail::reverse_bits(b.bits()[t]);
    return out;
}

/// A bitmap from SparAMX's 32-bit words (ceil(rows · cols / 32) of them) and values. Throws
/// invalid_layout if a size is wrong or a bit past the last element is set.
template <layout_value T, layout_index Index = std::int32_t>
bitmap<T, Index> bitmap_from_sparamx(std::size_t rows, std::size_t cols, std::span<const std::uint32_t> words,
                                     std::span<const T> values) {
    const char* where = "lacuna::bitmap_from_sparamx";
    const std::size_t elements = rows * cols, row_words = detail::bitmap_words_per_row(cols);
    if (words.size() != (elements + 31) / 32)
        detail::fail<invalid_layout>(where, ": words has ", words.size(), " elements, expected ", (elements + 31) / 32,
                                     " (one bit per element)");
    if (elements % 32 != 0 && (words.back() >> (elements % 32)) != 0)
        detail::fail<invalid_layout>(where, ": the last word sets bits past element ", elements - 1);
    std::vector<std::uint64_t> bits(rows * row_words, 0);
    for (std::size_t e = 0; e < elements; ++e)
        if ((words[e / 32] >> (e % 32)) & 1u) bits[(e / cols) * row_words + (e % cols) / 64] |= std::uint64_t(1) << (e % cols % 64);
    std::vector<Index> offsets(bits.size() + 1, 0);
    for (std::size_t w = 0; w < bits.size(); ++w)
        offsets[w + 1] = Index(std::size_t(offsets[w]) + std::size_t(std::popcount(bits[w])));
    return bitmap<T, Index>(rows, cols, bits, offsets, values); // checks the value count
}

/// SparAMX's 32-bit words for a bitmap matrix; its values array is the bitmap's, unchanged.
template <class T, layout_index Index> std::vector<std::uint32_t> to_sparamx_words(const bitmap_view<T, Index>& b) {
    const std::size_t cols = b.cols(), row_words = b.words_per_row();
    std::vector<std::uint32_t> words((b.rows() * cols + 31) / 32, 0);
    for (std::size_t i = 0; i < b.rows(); ++i)
        for (std::size_t j = 0; j < cols; ++j)
            if ((b.bits()[i * row_words + j / 64] >> (j % 64)) & 1u) words[(i * cols + j) / 32] |= 1u << ((i * cols + j) % 32);
    return words;
}

} // namespace lacuna
