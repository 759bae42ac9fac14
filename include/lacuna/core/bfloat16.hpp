// lacuna: the bfloat16 value type (the upper 16 bits of an IEEE float).
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <ostream>

namespace lacuna {

/// bfloat16: 1 sign bit, 8 exponent bits, 7 mantissa bits. Conversion from float rounds to nearest,
/// ties to even; a NaN stays a NaN (made quiet, sign kept); overflow rounds to infinity; subnormals
/// are kept, not flushed. Conversion to float is exact. Arithmetic goes through float.
struct bfloat16 {
    std::uint16_t bits = 0;

    constexpr bfloat16() = default;
    constexpr bfloat16(float x) noexcept : bits(round_from_float(x)) {} // NOLINT: implicit like float
    static constexpr bfloat16 from_bits(std::uint16_t b) noexcept {
        bfloat16 r;
        r.bits = b;
        return r;
    }

    constexpr operator float() const noexcept { // NOLINT: implicit like a built-in float type
        return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
    }

    /// The round-to-nearest-even rule, shared with the vector conversion kernels.
    static constexpr std::uint16_t round_from_float(float x) noexcept {
        std::uint32_t u = std::bit_cast<std::uint32_t>(x);
        if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
        return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }

    friend constexpr bool operator==(bfloat16 a, bfloat16 b) noexcept { return float(a) == float(b); }
    friend std::ostream& operator<<(std::ostream& os, bfloat16 x) { return os << float(x); }
};

static_assert(sizeof(bfloat16) == 2, "bfloat16 must be two bytes so that arrays of it are packed");

} // namespace lacuna

template <>
class std::numeric_limits<lacuna::bfloat16> {
public:
    static constexpr bool is_specialized = true;
    static constexpr bool is_signed = true;
    static constexpr bool has_infinity = true;
    static constexpr bool has_quiet_NaN = true;
    static constexpr int digits = 8;
    static constexpr lacuna::bfloat16 min() noexcept { return lacuna::bfloat16::from_bits(0x0080); }
    static constexpr lacuna::bfloat16 lowest() noexcept { return lacuna::bfloat16::from_bits(0xff7f); }
    static constexpr lacuna::bfloat16 max() noexcept { return lacuna::bfloat16::from_bits(0x7f7f); }
    static constexpr lacuna::bfloat16 epsilon() noexcept { return lacuna::bfloat16::from_bits(0x3c00); }
    static constexpr lacuna::bfloat16 infinity() noexcept { return lacuna::bfloat16::from_bits(0x7f80); }
    static constexpr lacuna::bfloat16 quiet_NaN() noexcept { return lacuna::bfloat16::from_bits(0x7fc0); }
    static constexpr lacuna::bfloat16 denorm_min() noexcept { return lacuna::bfloat16::from_bits(0x0001); }
};
