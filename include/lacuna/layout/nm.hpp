// lacuna: N:M semi-structured sparsity (2:4 and the rest).
//
// Along each row, every group of M consecutive columns keeps N slots. A row of `cols` columns has
// groups = ceil(cols / M) groups; a last group that runs past the matrix is padded logically.
//
//   values[rows][groups · N]   the N kept values of each group, in increasing column order
//   meta[rows][words_per_row]  uint64 words holding each slot's position in its group
//
// Metadata encoding. A position takes b = ceil(log2 M) bits. A group's N positions form one code of
// N·b bits, position of slot s at bits [s·b, (s+1)·b), padded to a power-of-two width
// group_bits = bit_ceil(N·b) (2:4: 4 bits, 1:4: 2, 2:8: 8, 4:8: 16, 8:16: 32), so no code straddles a
// word. Group g of a row is in word g / (64 / group_bits) of that row, at bit
// (g % (64 / group_bits)) · group_bits, lowest group first; each row starts on a new word. For 2:4 a
// group's nibble is idx0 | idx1 << 2, the code PyTorch and CUTLASS use.
//
// Every group stores exactly N slots: positions strictly increase (so they are distinct) and are
// below M; a group with fewer than N kept elements fills its other slots with the lowest unused
// positions and the value 0. Slots whose position falls past the last column hold 0 when lacuna
// builds them and are never read as part of the matrix. Unused metadata bits are zero.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bits.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/prune.hpp"

namespace lacuna {

/// The N:M metadata geometry of a row of `cols` columns (see the header comment).
template <std::size_t N, std::size_t M> struct nm_format {
    static_assert(0 < N && N < M && M <= 16, "N:M needs 0 < N < M <= 16");
    static constexpr std::size_t position_bits = std::bit_width(M - 1);
    static constexpr std::size_t group_bits = std::bit_ceil(N * position_bits);
    static constexpr std::size_t groups_per_word = 64 / group_bits;
    static constexpr std::uint64_t position_mask = detail::low_mask(position_bits);
    static constexpr std::uint64_t code_mask = detail::low_mask(N * position_bits);

    static constexpr std::size_t groups(std::size_t cols) noexcept { return (cols + M - 1) / M; }
    static constexpr std::size_t words_per_row(std::size_t cols) noexcept {
        return (groups(cols) + groups_per_word - 1) / groups_per_word;
    }
    /// The code of group g in a row's words.
    static constexpr std::uint64_t code(const std::uint64_t* row_meta, std::size_t g) noexcept {
        return (row_meta[g / groups_per_word] >> ((g % groups_per_word) * group_bits)) & code_mask;
    }
    /// The position of slot s in a group's code.
    static constexpr std::size_t position(std::uint64_t code, std::size_t s) noexcept {
        return std::size_t((code >> (s * position_bits)) & position_mask);
    }
    static constexpr void set_code(std::uint64_t* row_meta, std::size_t g, std::uint64_t code) noexcept {
        row_meta[g / groups_per_word] |= code << ((g % groups_per_word) * group_bits);
    }
};

namespace detail {

template <std::size_t N, std::size_t M, layout_index Index>
void validate_nm(const char* where, std::size_t rows, std::size_t cols, std::size_t values_size,
                 std::span<const std::uint64_t> meta) {
    using F = nm_format<N, M>;
    check_fits_index<Index>(where, "row count", rows);
    check_fits_index<Index>(where, "column count", cols);
    const std::size_t groups = F::groups(cols), words = F::words_per_row(cols);
    if (values_size != rows * groups * N)
        fail<invalid_layout>(where, ": values has ", values_size, " elements, expected ", rows * groups * N, " (",
                             rows, " rows of ", groups, " groups of ", N, ")");
    if (meta.size() != rows * words)
        fail<invalid_layout>(where, ": meta has ", meta.size(), " words, expected ", rows * words, " (", rows,
                             " rows of ", words, ")");
    for (std::size_t i = 0; i < rows; ++i) {
        const std::uint64_t* row = meta.data() + i * words;
        for (std::size_t g = 0; g < groups; ++g) {
            const std::uint64_t code = F::code(row, g);
            for (std::size_t s = 0; s < N; ++s) {
                const std::size_t p = F::position(code, s);
                if (p >= M)
                    fail<invalid_layout>(where, ": meta of row ", i, ", group ", g, ", slot ", s, " is position ", p,
                                         ", outside [0, ", M, ")");
                if (s > 0 && p <= F::position(code, s - 1))
                    fail<invalid_layout>(where, ": meta of row ", i, ", group ", g, ", slot ", s, " is position ", p,
                                         ", not above slot ", s - 1, "'s ", F::position(code, s - 1),
                                         " (positions must increase within a group)");
            }
            const std::uint64_t field = (row[g / F::groups_per_word] >> ((g % F::groups_per_word) * F::group_bits));
            if ((field & low_mask(F::group_bits) & ~F::code_mask) != 0)
                fail<invalid_layout>(where, ": meta of row ", i, ", group ", g, " sets bits above its ", N * F::position_bits,
                                     "-bit code");
        }
        // Bits past the last group of the row's last word.
        const std::size_t used = groups - (words - 1) * F::groups_per_word;
        if (words > 0 && used < F::groups_per_word && (row[words - 1] >> (used * F::group_bits)) != 0)
            fail<invalid_layout>(where, ": meta of row ", i, " sets bits past its last group");
    }
}

/// Encodes one group: `count` (<= N) kept positions, ascending, with their values. The other slots
/// take the lowest unused positions and the value 0. Writes the N slot values; returns the code.
template <std::size_t N, std::size_t M, class T>
std::uint64_t encode_nm_group(const std::size_t* kept, const T* kept_values, std::size_t count, T* slot_values) {
    std::size_t pos[N];
    bool used[M] = {};
    for (std::size_t s = 0; s < count; ++s) {
        pos[s] = kept[s];
        used[kept[s]] = true;
    }
    for (std::size_t p = 0, s = count; s < N; ++p)
        if (!used[p]) pos[s++] = p;
    std::sort(pos, pos + N);
    std::uint64_t code = 0;
    for (std::size_t s = 0, k = 0; s < N; ++s) {
        code |= std::uint64_t(pos[s]) << (s * nm_format<N, M>::position_bits);
        const bool is_kept = k < count && kept[k] == pos[s];
        slot_values[s] = is_kept ? kept_values[k++] : T(0.f);
    }
    return code;
}

} // namespace detail

/// An N:M matrix over arrays owned elsewhere. `T` may be const; the metadata is read-only.
template <class T, std::size_t N, std::size_t M, layout_index Index = std::int32_t>
class nm_view : public detail::dense_conversion<nm_view<T, N, M, Index>> {
public:
    static constexpr const char* name = "nm";
    using value_type = std::remove_const_t<T>;
    using index_type = Index;
    using const_view = nm_view<const T, N, M, Index>;
    using format = nm_format<N, M>;
    static_assert(layout_value<value_type>, "nm holds float, double or bfloat16");
    static constexpr std::size_t n = N, m = M;

    nm_view() = default;

    /// Views the arrays after checking every invariant (O(rows · groups · N)); throws invalid_layout.
    nm_view(std::size_t rows, std::size_t cols, std::span<T> values, std::span<const std::uint64_t> meta)
        : nm_view(unchecked, rows, cols, values.data(), meta.data()) {
        detail::validate_nm<N, M, Index>("lacuna::nm", rows, cols, values.size(), meta);
    }

    /// Views trusted arrays without checking them.
    nm_view(unchecked_t, std::size_t rows, std::size_t cols, T* values, const std::uint64_t* meta) noexcept
        : rows_(rows), cols_(cols), values_(values), meta_(meta) {}

    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<U, value_type>)
    nm_view(const nm_view<U, N, M, Index>& o) noexcept // NOLINT: implicit, like T* to const T*
        : nm_view(unchecked, o.rows(), o.cols(), o.values(), o.meta()) {}

    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    std::size_t groups() const noexcept { return format::groups(cols_); }
    std::size_t words_per_row() const noexcept { return format::words_per_row(cols_); }
    /// Stored slots, zeros and padding included: rows · groups · N.
    std::size_t nnz() const noexcept { return rows_ * groups() * N; }
    /// Stored slots inside the matrix per element: N / M when M divides cols.
    double density() const noexcept {
        if (!rows_ || !cols_) return 0;
        std::size_t inside = 0;
        for (std::size_t i = 0; i < rows_; ++i) for_each_in_row(i, [&](std::size_t, const T&) { ++inside; });
        return double(inside) / (double(rows_) * double(cols_));
    }
    std::size_t bytes() const noexcept { return nnz() * sizeof(value_type) + rows_ * words_per_row() * 8; }

    T* values() const noexcept { return values_; }
    const std::uint64_t* meta() const noexcept { return meta_; }
    T* row_values(std::size_t i) const noexcept { return values_ + i * groups() * N; }
    const std::uint64_t* row_meta(std::size_t i) const noexcept { return meta_ + i * words_per_row(); }

    /// Calls f(j, value) for every stored slot of row i inside the matrix (fill included), in
    /// column order.
    template <class F> void for_each_in_row(std::size_t i, F&& f) const {
        T* v = row_values(i);
        const std::uint64_t* meta = row_meta(i);
        for (std::size_t g = 0; g < groups(); ++g) {
            const std::uint64_t code = format::code(meta, g);
            for (std::size_t s = 0; s < N; ++s) {
                const std::size_t j = g * M + format::position(code, s);
                if (j < cols_) f(j, v[g * N + s]);
            }
        }
    }

private:
    std::size_t rows_ = 0, cols_ = 0;
    T* values_ = nullptr;
    const std::uint64_t* meta_ = nullptr;
};

namespace detail {
template <class T> struct nm_storage {
    aligned_buffer<T> values_buf;
    aligned_buffer<std::uint64_t> meta_buf;
};
} // namespace detail

/// An N:M matrix that owns its arrays; it is an nm_view of them. Copies are deep; a moved-from
/// matrix is empty.
template <layout_value T, std::size_t N, std::size_t M, layout_index Index = std::int32_t>
class nm : public detail::owning_layout<nm<T, N, M, Index>, detail::nm_storage<T>, nm_view<T, N, M, Index>> {
    using storage = detail::nm_storage<T>;
    using view_type = nm_view<T, N, M, Index>;
    using base = detail::owning_layout<nm, storage, view_type>;
    using format = nm_format<N, M>;
    friend base;

public:
    /// An empty 0 × 0 matrix.
    nm() : nm(unchecked, 0, 0, {}, {}) {}

    /// Copies the arrays after checking every invariant; throws invalid_layout.
    nm(std::size_t rows, std::size_t cols, std::span<const T> values, std::span<const std::uint64_t> meta)
        : nm(unchecked, rows, cols, aligned_buffer<T>(values), aligned_buffer<std::uint64_t>(meta)) {
        detail::validate_nm<N, M, Index>("lacuna::nm", rows, cols, values.size(), meta);
    }

    /// Takes ownership of trusted arrays without checking them.
    nm(unchecked_t, std::size_t rows, std::size_t cols, aligned_buffer<T> values, aligned_buffer<std::uint64_t> meta)
        : base(storage{std::move(values), std::move(meta)}, view_type(unchecked, rows, cols, nullptr, nullptr)) {}

    /// Builds from a dense matrix, keeping what `rule` selects; by default prune::n_m(N, M), the N
    /// largest magnitudes of each group. Throws invalid_layout if the rule selects more than N
    /// elements in a group, or if a dimension does not fit Index.
    template <order O, selection_rule Rule = prune::n_m>
    static nm from_dense(matrix_view<const T, O> dense, const Rule& rule = prune::n_m(N, M)) {
        const char* where = "lacuna::nm::from_dense";
        const std::size_t rows = dense.rows(), cols = dense.cols();
        detail::check_fits_index<Index>(where, "row count", rows);
        detail::check_fits_index<Index>(where, "column count", cols);
        const std::vector<bool> keep = rule.select(dense);
        const std::size_t G = format::groups(cols), words = format::words_per_row(cols);
        aligned_buffer<T> values(rows * G * N);             // zeroed: unfilled slots hold 0
        aligned_buffer<std::uint64_t> meta(rows * words);    // zeroed: unused bits stay 0
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t g = 0; g < G; ++g) {
                std::size_t kept[N], count = 0;
                T kept_values[N];
                for (std::size_t p = 0; p < M && g * M + p < cols; ++p)
                    if (keep[i * cols + g * M + p]) {
                        if (count == N)
                            detail::fail<invalid_layout>(where, ": the rule keeps more than ", N, " elements in row ", i,
                                                         ", group ", g, " (columns ", g * M, " to ",
                                                         std::min(cols, g * M + M) - 1, ")");
                        kept[count] = p;
                        kept_values[count++] = dense(i, g * M + p);
                    }
                format::set_code(meta.data() + i * words, g,
                                 detail::encode_nm_group<N, M>(kept, kept_values, count, values.data() + (i * G + g) * N));
            }
        return nm(unchecked, rows, cols, std::move(values), std::move(meta));
    }

private:
    static view_type rebind(const view_type& shape, storage& s) noexcept {
        return view_type(unchecked, shape.rows(), shape.cols(), s.values_buf.data(), s.meta_buf.data());
    }
};

} // namespace lacuna
