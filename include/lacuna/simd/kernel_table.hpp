// lacuna: the table of dispatched kernels, one function pointer per kernel and type combination.
//
// This is the one list of dispatched kernels. Each slot names its kernel functor and signature; the
// dispatch sources fill a table per arch (simd/dispatch_source.hpp) and the public entry points call
// through the slot (simd/dispatch.hpp). A kernel or type combination that is not in the table still
// works: header-only builds and dispatch builds alike can call any kernel directly with an arch tag.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/simd/arch.hpp"

namespace lacuna {

namespace kernels {
struct dot;
struct axpy;
struct scale;
struct reduce_sum;
struct reduce_max;
struct exp;
struct softmax;
struct convert;
struct spmm_csr;
struct spmv_csr;
struct spmm_bsr;
struct spmv_bitmap;
template <class Index> struct csr_product_args;
template <class Index> struct bitmap_spmv_args;
template <std::size_t R, std::size_t C, class Index> struct bsr_product_args;
} // namespace kernels

namespace detail {

#ifdef LACUNA_COUNT_KERNEL_CALLS
/// Calls through the kernel tables per arch: lets tests show which arch's code really ran.
inline std::atomic<unsigned long long>& kernel_calls(arch a) noexcept {
    static std::atomic<unsigned long long> calls[5];
    return calls[static_cast<int>(a)];
}
#endif

/// A table entry: the function that runs Kernel with signature Fn on the table's arch.
template <class Kernel, class Fn> struct slot {
    Fn* fn = nullptr;
};

struct kernel_table {
    arch id = arch::scalar;

    slot<kernels::dot, float(const float*, const float*, std::size_t)> dot_f32;
    slot<kernels::dot, float(const bfloat16*, const bfloat16*, std::size_t)> dot_bf16;
    slot<kernels::dot, float(const bfloat16*, const float*, std::size_t)> dot_bf16_f32;
    slot<kernels::axpy, void(float, const float*, float*, std::size_t)> axpy_f32;
    slot<kernels::scale, void(float, float*, std::size_t)> scale_f32;
    slot<kernels::reduce_sum, float(const float*, std::size_t)> reduce_sum_f32;
    slot<kernels::reduce_max, float(const float*, std::size_t)> reduce_max_f32;
    slot<kernels::exp, void(const float*, float*, std::size_t)> exp_f32;
    slot<kernels::softmax, void(const float*, const bool*, float*, std::size_t)> softmax_f32;
    slot<kernels::convert, void(const float*, bfloat16*, std::size_t)> convert_f32_bf16;
    slot<kernels::convert, void(const bfloat16*, float*, std::size_t)> convert_bf16_f32;
    slot<kernels::spmm_csr, void(const kernels::csr_product_args<std::int32_t>*, std::size_t, std::size_t)> spmm_csr_i32;
    slot<kernels::spmm_csr, void(const kernels::csr_product_args<std::int64_t>*, std::size_t, std::size_t)> spmm_csr_i64;
    slot<kernels::spmv_csr, void(const kernels::csr_product_args<std::int32_t>*, std::size_t, std::size_t)> spmv_csr_i32;
    slot<kernels::spmv_csr, void(const kernels::csr_product_args<std::int64_t>*, std::size_t, std::size_t)> spmv_csr_i64;
    slot<kernels::spmm_bsr, void(const kernels::bsr_product_args<4, 4, std::int32_t>*, std::size_t, std::size_t)> spmm_bsr_4x4;
    slot<kernels::spmm_bsr, void(const kernels::bsr_product_args<8, 8, std::int32_t>*, std::size_t, std::size_t)> spmm_bsr_8x8;
    slot<kernels::spmm_bsr, void(const kernels::bsr_product_args<16, 16, std::int32_t>*, std::size_t, std::size_t)>
        spmm_bsr_16x16;
    slot<kernels::spmm_bsr, void(const kernels::bsr_product_args<32, 32, std::int32_t>*, std::size_t, std::size_t)>
        spmm_bsr_32x32;
    slot<kernels::spmm_bsr, void(const kernels::bsr_product_args<std::size_t(-1), std::size_t(-1), std::int32_t>*,
                                 std::size_t, std::size_t)>
        spmm_bsr_dynamic;
    slot<kernels::spmv_bitmap, void(const kernels::bitmap_spmv_args<std::int32_t>*, std::size_t, std::size_t)> spmv_bitmap_i32;
    slot<kernels::spmv_bitmap, void(const kernels::bitmap_spmv_args<std::int64_t>*, std::size_t, std::size_t)> spmv_bitmap_i64;

    /// Calls f(slot) for every slot, so that filling a table lists nothing twice.
    template <class F> constexpr void for_each_slot(F&& f) {
        f(dot_f32), f(dot_bf16), f(dot_bf16_f32), f(axpy_f32), f(scale_f32), f(reduce_sum_f32),
            f(reduce_max_f32), f(exp_f32), f(softmax_f32), f(convert_f32_bf16), f(convert_bf16_f32), f(spmm_csr_i32),
            f(spmm_csr_i64), f(spmv_csr_i32), f(spmv_csr_i64), f(spmm_bsr_4x4), f(spmm_bsr_8x8), f(spmm_bsr_16x16),
            f(spmm_bsr_32x32), f(spmm_bsr_dynamic), f(spmv_bitmap_i32), f(spmv_bitmap_i64);
    }
};

/// The static function a slot of the Arch table points to.
template <class Kernel, class Arch, class Fn> struct entry;
template <class Kernel, class Arch, class R, class... Args> struct entry<Kernel, Arch, R(Args...)> {
    static R call(Args... args) noexcept {
#ifdef LACUNA_COUNT_KERNEL_CALLS
        kernel_calls(simd::arch_of<Arch>).fetch_add(1, std::memory_order_relaxed);
#endif
        return Kernel{}(Arch{}, args...);
    }
};

} // namespace detail
} // namespace lacuna
