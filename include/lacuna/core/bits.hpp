// lacuna: bit masks of 64-bit words, which the N:M metadata and the attention hooks share.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lacuna::detail {

/// The lowest `bits` bits set (all 64 for bits >= 64).
constexpr std::uint64_t low_mask(std::size_t bits) noexcept {
    return bits >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << bits) - 1;
}

} // namespace lacuna::detail
