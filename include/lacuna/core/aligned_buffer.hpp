// lacuna: an owning, cache-line aligned array of trivially copyable values.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

namespace lacuna {

/// A fixed-size heap array aligned to `alignment` bytes (64 by default: one cache line, one AVX-512
/// register). Copies are deep. Elements are zero-initialised unless constructed with `uninitialized`.
template <class T, std::size_t alignment = 64>
class aligned_buffer {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "aligned_buffer holds plain values only");
    static_assert(alignment >= alignof(T) && (alignment & (alignment - 1)) == 0,
                  "alignment must be a power of two no smaller than alignof(T)");

public:
    struct uninitialized_t {};
    static constexpr uninitialized_t uninitialized{};

    aligned_buffer() noexcept = default;
    explicit aligned_buffer(std::size_t n) : aligned_buffer(n, uninitialized) {
        if (n) std::memset(static_cast<void*>(data_), 0, n * sizeof(T));
    }
    aligned_buffer(std::size_t n, uninitialized_t) : data_(allocate(n)), size_(n) {}
    /// A copy of `from`.
    explicit aligned_buffer(std::span<const T> from) : aligned_buffer(from.size(), uninitialized) {
        if (!from.empty()) std::memcpy(static_cast<void*>(data_), from.data(), from.size_bytes());
    }

    aligned_buffer(aligned_buffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    aligned_buffer(const aligned_buffer& o) : aligned_buffer(std::span<const T>(o)) {}
    aligned_buffer& operator=(const aligned_buffer& o) {
        if (this != &o) *this = aligned_buffer(o);
        return *this;
    }
    ~aligned_buffer() { release(); }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T* begin() noexcept { return data_; }
    T* end() noexcept { return data_ + size_; }
    const T* begin() const noexcept { return data_; }
    const T* end() const noexcept { return data_ + size_; }
    operator std::span<T>() noexcept { return {data_, size_}; }
    operator std::span<const T>() const noexcept { return {data_, size_}; }

private:
    static T* allocate(std::size_t n) {
        if (n == 0) return nullptr;
        if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{alignment}));
    }
    void release() noexcept {
        if (data_) ::operator delete(data_, std::align_val_t{alignment});
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace lacuna
