// lacuna: non-owning views of dense matrices and [B, H, L, D] tensors, with strides.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <type_traits>

#include "lacuna/core/error.hpp"

namespace lacuna {

/// Storage order of a dense matrix view.
enum class order { row_major, col_major };

/// Anything shaped like an Eigen dense expression with direct access (Eigen::Matrix, Map, Ref):
/// lacuna views it without including Eigen.
template <class E>
concept eigen_dense_like = requires(E& e) {
    e.data();
    e.rows();
    e.cols();
    e.outerStride();
    { E::IsRowMajor } -> std::convertible_to<bool>;
};

/// A view of a dense rows × cols matrix. Row-major: element (i, j) at data[i·stride + j];
/// column-major: at data[j·stride + i]. `T` may be const. The stride is in elements and must be at
/// least the inner extent (cols for row-major, rows for column-major). Copying a view is cheap and
/// never copies elements.
template <class T, order O = order::row_major>
class matrix_view {
public:
    using value_type = std::remove_const_t<T>;
    static constexpr order storage_order = O;

    constexpr matrix_view() noexcept = default;

    /// From a raw pointer. Throws shape_error if the stride is smaller than the inner extent.
    matrix_view(T* data, std::size_t rows, std::size_t cols, std::size_t stride)
        : data_(data), rows_(rows), cols_(cols), stride_(stride) {
        std::size_t inner = O == order::row_major ? cols : rows;
        if (stride < inner && rows != 0 && cols != 0)
            detail::fail<shape_error>("lacuna::matrix_view: stride ", stride, " is smaller than the ",
                                      O == order::row_major ? "column" : "row", " count ", inner);
    }
    matrix_view(T* data, std::size_t rows, std::size_t cols)
        : matrix_view(data, rows, cols, O == order::row_major ? cols : rows) {}

    /// From a span (or a std::vector, through its span), which must hold the whole matrix.
    /// Throws shape_error otherwise.
    matrix_view(std::span<T> s, std::size_t rows, std::size_t cols, std::size_t stride)
        : matrix_view(s.data(), rows, cols, stride) {
        if (rows != 0 && cols != 0 && s.size() < required_size())
            detail::fail<shape_error>("lacuna::matrix_view: the span holds ", s.size(), " elements, a ", rows,
                                      " x ", cols, " matrix with stride ", stride, " needs ", required_size());
    }
    matrix_view(std::span<T> s, std::size_t rows, std::size_t cols)
        : matrix_view(s, rows, cols, O == order::row_major ? cols : rows) {}

    /// From an Eigen dense object of the same storage order (Eigen::Ref, Map, Matrix).
    template <eigen_dense_like E>
        requires(bool(E::IsRowMajor) == (O == order::row_major)) &&
                std::is_convertible_v<decltype(std::declval<E&>().data()), T*>
    matrix_view(E& e) // NOLINT: implicit, as Eigen::Ref is
        : matrix_view(e.data(), std::size_t(e.rows()), std::size_t(e.cols()), std::size_t(e.outerStride())) {}

    /// A mutable view converts to a const one.
    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    matrix_view(const matrix_view<U, O>& o) noexcept // NOLINT: implicit, like T* to const T*
        : data_(o.data()), rows_(o.rows()), cols_(o.cols()), stride_(o.stride()) {}

    T* data() const noexcept { return data_; }
    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    std::size_t stride() const noexcept { return stride_; }
    bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
    /// True when the elements are one unbroken range.
    bool contiguous() const noexcept { return stride_ == (O == order::row_major ? cols_ : rows_) || empty(); }

    T& operator()(std::size_t i, std::size_t j) const noexcept {
        return O == order::row_major ? data_[i * stride_ + j] : data_[j * stride_ + i];
    }
    /// Row i of a row-major view (column j of a column-major one): the contiguous inner range.
    std::span<T> inner(std::size_t k) const noexcept {
        return {data_ + k * stride_, O == order::row_major ? cols_ : rows_};
    }

private:
    std::size_t required_size() const noexcept {
        std::size_t outer = O == order::row_major ? rows_ : cols_;
        std::size_t inner = O == order::row_major ? cols_ : rows_;
        return (outer - 1) * stride_ + inner;
    }

    T* data_ = nullptr;
    std::size_t rows_ = 0, cols_ = 0, stride_ = 0;
};

template <eigen_dense_like E>
matrix_view(E&) -> matrix_view<std::remove_pointer_t<decltype(std::declval<E&>().data())>,
                               E::IsRowMajor ? order::row_major : order::col_major>;

/// A view of a 4-D tensor [B, H, L, D] (batch, heads, sequence, feature) with a stride per dimension,
/// in elements. The default strides are the contiguous ones. Kernels that need the last dimension
/// contiguous (stride 1) say so.
template <class T>
class tensor4_view {
public:
    using value_type = std::remove_const_t<T>;
    using extents_type = std::array<std::size_t, 4>;

    constexpr tensor4_view() noexcept = default;

    tensor4_view(T* data, extents_type extents, extents_type strides) noexcept
        : data_(data), extents_(extents), strides_(strides) {}
    tensor4_view(T* data, extents_type extents) noexcept : tensor4_view(data, extents, contiguous_strides(extents)) {}

    /// From a span (or a std::vector), which must hold every element the extents and strides reach.
    tensor4_view(std::span<T> s, extents_type extents, extents_type strides) : tensor4_view(s.data(), extents, strides) {
        if (size() != 0 && s.size() < required_size())
            detail::fail<shape_error>("lacuna::tensor4_view: the span holds ", s.size(), " elements, the tensor [",
                                      extents[0], ", ", extents[1], ", ", extents[2], ", ", extents[3], "] needs ",
                                      required_size());
    }
    tensor4_view(std::span<T> s, extents_type extents) : tensor4_view(s, extents, contiguous_strides(extents)) {}

    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    tensor4_view(const tensor4_view<U>& o) noexcept // NOLINT: implicit, like T* to const T*
        : data_(o.data()), extents_(o.extents()), strides_(o.strides()) {}

    static constexpr extents_type contiguous_strides(extents_type e) noexcept {
        return {e[1] * e[2] * e[3], e[2] * e[3], e[3], 1};
    }

    T* data() const noexcept { return data_; }
    const extents_type& extents() const noexcept { return extents_; }
    const extents_type& strides() const noexcept { return strides_; }
    std::size_t extent(std::size_t d) const noexcept { return extents_[d]; }
    std::size_t stride(std::size_t d) const noexcept { return strides_[d]; }
    std::size_t size() const noexcept { return extents_[0] * extents_[1] * extents_[2] * extents_[3]; }

    T& operator()(std::size_t b, std::size_t h, std::size_t l, std::size_t d) const noexcept {
        return data_[b * strides_[0] + h * strides_[1] + l * strides_[2] + d * strides_[3]];
    }
    /// Pointer to the start of row (b, h, l).
    T* row(std::size_t b, std::size_t h, std::size_t l) const noexcept {
        return data_ + b * strides_[0] + h * strides_[1] + l * strides_[2];
    }

private:
    std::size_t required_size() const noexcept {
        std::size_t last = 0;
        for (std::size_t d = 0; d < 4; ++d) last += (extents_[d] - 1) * strides_[d];
        return last + 1;
    }

    T* data_ = nullptr;
    extents_type extents_{};
    extents_type strides_{};
};

} // namespace lacuna
