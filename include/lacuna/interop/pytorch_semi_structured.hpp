// lacuna: 2:4 sparsity as PyTorch's semi-structured tensors (the CUTLASS path) hold it.
//
//   values[m, k/2]   the two kept elements of each group of 4, in index order
//   meta[m, k/16]    int16: a 4-bit code idx0 | idx1 << 2 (idx0 < idx1) per group, four groups per
//                    int16, the lowest group in the lowest nibble
// This is the plain packing; PyTorch's further reordering for CUTLASS is not applied. lacuna's
// nm<T, 2, 4> uses the same codes and value order, in 64-bit metadata words.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lacuna/core/error.hpp"
#include "lacuna/layout/nm.hpp"

namespace lacuna {

/// PyTorch 2:4 arrays of an m × k matrix.
template <class T> struct pytorch_24_arrays {
    std::size_t m = 0, k = 0;
    std::vector<T> values;          // [m, k/2]
    std::vector<std::int16_t> meta; // [m, k/16]
};

namespace detail {
inline void check_k_for_pytorch_24(const char* where, std::size_t k) {
    if (k % 16 != 0) fail<invalid_layout>(where, ": k = ", k, " must be a multiple of 16 (four 4-bit codes per int16)");
}
} // namespace detail

/// Builds an nm<T, 2, 4> from PyTorch's arrays, checking sizes and every code (idx0 < idx1).
/// Throws invalid_layout.
template <layout_value T, layout_index Index = std::int32_t>
nm<T, 2, 4, Index> nm24_from_pytorch(std::size_t m, std::size_t k, std::span<const T> values,
                                     std::span<const std::int16_t> meta) {
    using F = nm_format<2, 4>;
    const char* where = "lacuna::nm24_from_pytorch";
    detail::check_k_for_pytorch_24(where, k);
    if (meta.size() != m * (k / 16))
        detail::fail<invalid_layout>(where, ": meta has ", meta.size(), " elements, expected ", m * (k / 16),
                                     " (m x k/16)");
    const std::size_t words = F::words_per_row(k);
    std::vector<std::uint64_t> ours(m * words, 0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t g = 0; g < k / 4; ++g) {
            const auto packed = std::uint16_t(meta[i * (k / 16) + g / 4]);
            F::set_code(ours.data() + i * words, g, (packed >> (4 * (g % 4))) & 0xfu);
        }
    return nm<T, 2, 4, Index>(m, k, values, ours);
}

/// PyTorch's arrays for an nm<T, 2, 4> matrix. Throws invalid_layout unless 16 divides k.
template <class T, layout_index Index>
pytorch_24_arrays<std::remove_const_t<T>> to_pytorch_24(const nm_view<T, 2, 4, Index>& a) {
    using F = nm_format<2, 4>;
    detail::check_k_for_pytorch_24("lacuna::to_pytorch_24", a.cols());
    const std::size_t m = a.rows(), k = a.cols();
    pytorch_24_arrays<std::remove_const_t<T>> out{m, k, {a.values(), a.values() + a.nnz()}, std::vector<std::int16_t>(m * (k / 16), 0)};
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t g = 0; g < k / 4; ++g) {
            auto& packed = out.meta[i * (k / 16) + g / 4];
            packed = std::int16_t(std::uint16_t(packed) | (F::code(a.row_meta(i), g) << (4 * (g % 4))));
        }
    return out;
}

} // namespace lacuna
