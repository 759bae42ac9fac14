// lacuna: what every sparse layout shares: the `unchecked` tag and the index-type checks.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/dense.hpp"
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

/// to_dense() for every layout view, from the view's rows(), cols(), `name` and
/// for_each_in_row(i, f(j, value)).
template <class Derived> class dense_conversion {
public:
    /// Writes the matrix into `out` (zeros where nothing is stored; block and group padding is never
    /// written). Throws shape_error if `out` is not rows × cols.
    template <class U, order O> void to_dense(matrix_view<U, O> out) const {
        const Derived& m = static_cast<const Derived&>(*this);
        if (out.rows() != m.rows() || out.cols() != m.cols())
            fail<shape_error>("lacuna::", Derived::name, "::to_dense: out is ", out.rows(), " x ", out.cols(),
                              ", expected ", m.rows(), " x ", m.cols());
        for (std::size_t i = 0; i < m.rows(); ++i) {
            for (std::size_t j = 0; j < m.cols(); ++j) out(i, j) = U(0.f);
            m.for_each_in_row(i, [&](std::size_t j, const auto& v) { out(i, j) = v; });
        }
    }

    /// The matrix as a row-major rows × cols array.
    auto to_dense() const {
        const Derived& m = static_cast<const Derived&>(*this);
        std::vector<typename Derived::value_type> out(m.rows() * m.cols());
        to_dense(matrix_view<typename Derived::value_type>(out, m.rows(), m.cols()));
        return out;
    }
};

/// The owning form of a layout: its buffers (Storage) and a view of them (View), which it is, so
/// that every function taking the view takes the owner. Copies are deep; a moved-from owner is an
/// empty view. Derived provides `static View rebind(const View& shape, Storage& s)`: a view with
/// the shape of `shape` over the buffers of `s`.
template <class Derived, class Storage, class View>
class owning_layout : private Storage, public View {
public:
    owning_layout(const owning_layout& o) : Storage(o), View(Derived::rebind(o, *this)) {}
    owning_layout(owning_layout&& o) noexcept : Storage(std::move(o)), View(o) { o.View::operator=(View()); }
    owning_layout& operator=(const owning_layout& o) {
        if (this != &o) *this = owning_layout(o);
        return *this;
    }
    owning_layout& operator=(owning_layout&& o) noexcept {
        Storage::operator=(std::move(o)); // the buffers keep their heap arrays, so the view moves as is
        View::operator=(o);
        o.View::operator=(View());
        return *this;
    }
    ~owning_layout() = default;

    /// A view of this matrix, read-only or with mutable values.
    typename View::const_view view() const noexcept { return *this; }
    View view() noexcept { return *this; }

protected:
    owning_layout() = default;
    /// Takes the buffers and views them with the shape of `shape`.
    owning_layout(Storage s, const View& shape) : Storage(std::move(s)), View(Derived::rebind(shape, *this)) {}
    const Storage& buffers() const noexcept { return *this; }
};

} // namespace detail
} // namespace lacuna
