// lacuna: an owning, cache-line aligned array of trivially copyable values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lacuna {

/// A fixed-size heap array aligned to `alignment` bytes (64 by default: one cache line, one AVX-512
/// register). Copies are deep. Elements are zero-initialised unless constructed with `uninitialized`.
/// Buffers of 4 MiB and more (weights, KV caches, the products' scratch) start on a 2 MiB boundary
/// and, on Linux, ask for transparent huge pages: streaming gigabytes of weights through 4 KiB pages
/// costs a TLB miss every 4 KiB, and a page fault for each on first touch. Measured on the bench
/// machine (a VM, where a TLB miss walks two page tables): the MoE layer at T = 512 went from
/// 425-1160 ms, varying from run to run, to 316-349 ms.
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
        void* p = ::operator new(n * sizeof(T), std::align_val_t{alignment_for(n)});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        // Advice only: where the kernel has no huge page to give, the buffer keeps 4 KiB pages.
        if (n * sizeof(T) >= huge_buffer) madvise(p, n * sizeof(T) / huge_page * huge_page, MADV_HUGEPAGE);
#endif
        return static_cast<T*>(p);
    }
    static constexpr std::size_t huge_page = std::size_t(2) << 20, huge_buffer = 2 * huge_page;
    static constexpr std::size_t alignment_for(std::size_t n) noexcept {
        return n * sizeof(T) >= huge_buffer ? std::max(alignment, huge_page) : alignment;
    }
    void release() noexcept {
        if (data_) ::operator delete(data_, std::align_val_t{alignment_for(size_)});
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace lacuna
