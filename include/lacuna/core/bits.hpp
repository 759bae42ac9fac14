// lacuna: bit masks of 64-bit words, which the N:M metadata and the attention hooks share.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lacuna::detail {

/// The lowest `bits` bits set (all 64 for bits >= 64).
constexpr std::uint64_t low_mask(std::size_t bits) noexcept {
    return bits >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << bits) - 1;
}

/// Transposes a 64 × 64 matrix of bits in place: afterwards bit c of rows[r] is what bit r of
/// rows[c] was. Blocks of 32, 16, ... 1 bits swap across the diagonal, six passes of 32 row pairs.
constexpr void transpose_bits(std::uint64_t (&rows)[64]) noexcept {
    constexpr std::uint64_t low_halves[6] = {0x00000000ffffffffull, 0x0000ffff0000ffffull, 0x00ff00ff00ff00ffull,
                                             0x0f0f0f0f0f0f0f0full, 0x3333333333333333ull, 0x5555555555555555ull};
    for (std::size_t pass = 0, s = 32; s > 0; ++pass, s /= 2)
        for (std::size_t base = 0; base < 64; base += 2 * s)
            for (std::size_t k = base; k < base + s; ++k) { // rows k and k + s
                const std::uint64_t t = ((rows[k] >> s) ^ rows[k + s]) & low_halves[pass];
                rows[k] ^= t << s;
                rows[k + s] ^= t;
            }
}

} // namespace lacuna::detail
