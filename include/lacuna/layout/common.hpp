// lacuna: what every sparse layout shares: the `unchecked` tag and the index-type checks.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/error.hpp"

namespace lacuna {

/// Passed to a layout's constructor from raw arrays to skip validation of data the caller already
/// trusts (it came from lacuna, or was validated once). Bad data then is undefined behaviour.
struct unchecked_t {
    explicit unchecked_t() = default;
};
inline constexpr unchecked_t unchecked{};

/// A block shape, rows × cols (BSR blocks, block pruning rules).
struct block_size {
    std::size_t rows, cols;
    friend constexpr bool operator==(block_size, block_size) = default;
};

/// The value types layouts hold.
template <class T>
concept layout_value = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bfloat16>;

/// The index types layouts use.
template <class I>
concept layout_index = std::same_as<I, std::int32_t> || std::same_as<I, std::int64_t>;

namespace detail {

template <layout_index Index> constexpr const char* index_name() noexcept {
    return sizeof(Index) == 4 ? "int32_t" : "int64_t";
}

/// Throws invalid_layout unless `count` (of `what`) is representable in Index: a count that wrapped
/// would silently address the wrong elements.
template <layout_index Index>
void check_fits_index(const char* where, const char* what, std::size_t count) {
    if (count > std::size_t(std::numeric_limits<Index>::max()))
        fail<invalid_layout>(where, ": ", what, " ", count, " does not fit ", index_name<Index>(),
                             " indices (max ", std::numeric_limits<Index>::max(), "); use int64_t");
}

} // namespace detail
} // namespace lacuna
