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
#include <tuple>
#include <type_traits>

#include "lacuna/core/bfloat16.hpp"
#include "lacuna/simd/arch.hpp"

namespace lacuna {

enum class activation;

namespace kernels {
struct bias_activation;
struct swiglu;
struct dot;
struct axpy;
struct scale;
struct reduce_sum;
struct add_rows;
struct reduce_max;
struct exp;
struct softmax;
struct convert;
struct transpose;
struct spmm_csr;
struct spmv_csr;
struct spmm_bsr;
struct spmm_bitmap;
struct spmv_bitmap;
struct spmm_nm;
struct spmv_nm;
struct spmm_dense;
struct spmv_dense;
struct spmv_dense_rows;
template <class T> struct dense_product_args;
struct sddmm;
template <class Index> struct sddmm_csr_args;
template <class Index> struct sddmm_bsr_args;
template <class Index> struct sddmm_bitmap_args;
template <class T, class Index> struct csr_product_args;
template <class T, class Index> struct bitmap_product_args;
template <class T, std::size_t R, std::size_t C, class Index> struct bsr_product_args;
template <class T, std::size_t N, std::size_t M> struct nm_product_args;
struct flash_attention;
struct route_topk;
struct router_args;
struct flash_decode;
struct sparse_decode;
template <class T> struct attention_args;
template <class T> struct decode_args;
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

/// The slot of a product kernel, which runs on a range of (block) rows of its operands.
template <class Kernel, class Args> using product_slot = slot<Kernel, void(const Args*, std::size_t, std::size_t)>;

struct kernel_table {
    arch id = arch::scalar;

    slot<kernels::dot, float(const float*, const float*, std::size_t)> dot_f32;
    slot<kernels::dot, float(const bfloat16*, const bfloat16*, std::size_t)> dot_bf16;
    slot<kernels::dot, float(const bfloat16*, const float*, std::size_t)> dot_bf16_f32;
    slot<kernels::axpy, void(float, const float*, float*, std::size_t)> axpy_f32;
    slot<kernels::scale, void(float, float*, std::size_t)> scale_f32;
    slot<kernels::reduce_sum, float(const float*, std::size_t)> reduce_sum_f32;
    slot<kernels::reduce_max, float(const float*, std::size_t)> reduce_max_f32;
    slot<kernels::add_rows, void(const float*, std::size_t, std::size_t, float*, std::size_t)> add_rows_f32;
    slot<kernels::add_rows, void(const bfloat16*, std::size_t, std::size_t, float*, std::size_t)> add_rows_bf16;
    slot<kernels::exp, void(const float*, float*, std::size_t)> exp_f32;
    slot<kernels::softmax, void(const float*, const bool*, float*, std::size_t)> softmax_f32;
    slot<kernels::convert, void(const float*, bfloat16*, std::size_t)> convert_f32_bf16;
    slot<kernels::convert, void(const bfloat16*, float*, std::size_t)> convert_bf16_f32;
    slot<kernels::transpose, void(const float*, std::size_t, std::size_t, std::size_t, float*, std::size_t)> transpose_f32;
    slot<kernels::bias_activation, void(activation, const float*, float*, std::size_t)> bias_activation_f32;
    slot<kernels::swiglu, void(const float*, float*, std::size_t)> swiglu_f32;
    // Products: the float and bfloat16 value types with int32_t indices, int64_t for float CSR, and
    // the N:M ratios of the benchmarks (2:4, 1:4, 2:8).
    product_slot<kernels::spmm_csr, kernels::csr_product_args<float, std::int32_t>> spmm_csr_f32_i32;
    product_slot<kernels::spmm_csr, kernels::csr_product_args<float, std::int64_t>> spmm_csr_f32_i64;
    product_slot<kernels::spmm_csr, kernels::csr_product_args<bfloat16, std::int32_t>> spmm_csr_bf16_i32;
    product_slot<kernels::spmv_csr, kernels::csr_product_args<float, std::int32_t>> spmv_csr_f32_i32;
    product_slot<kernels::spmv_csr, kernels::csr_product_args<float, std::int64_t>> spmv_csr_f32_i64;
    product_slot<kernels::spmv_csr, kernels::csr_product_args<bfloat16, std::int32_t>> spmv_csr_bf16_i32;
    product_slot<kernels::spmm_bsr, kernels::bsr_product_args<float, 4, 4, std::int32_t>> spmm_bsr_4x4;
    product_slot<kernels::spmm_bsr, kernels::bsr_product_args<float, 8, 8, std::int32_t>> spmm_bsr_8x8;
    product_slot<kernels::spmm_bsr, kernels::bsr_product_args<float, 16, 16, std::int32_t>> spmm_bsr_16x16;
    product_slot<kernels::spmm_bsr, kernels::bsr_product_args<float, 32, 32, std::int32_t>> spmm_bsr_32x32;
    product_slot<kernels::spmm_bsr, kernels::bsr_product_args<float, std::size_t(-1), std::size_t(-1), std::int32_t>> spmm_bsr_dynamic;
    product_slot<kernels::spmm_bitmap, kernels::bitmap_product_args<float, std::int32_t>> spmm_bitmap_f32_i32;
    product_slot<kernels::spmm_bitmap, kernels::bitmap_product_args<bfloat16, std::int32_t>> spmm_bitmap_bf16_i32;
    product_slot<kernels::spmv_bitmap, kernels::bitmap_product_args<float, std::int32_t>> spmv_bitmap_f32_i32;
    product_slot<kernels::spmv_bitmap, kernels::bitmap_product_args<float, std::int64_t>> spmv_bitmap_f32_i64;
    product_slot<kernels::spmv_bitmap, kernels::bitmap_product_args<bfloat16, std::int32_t>> spmv_bitmap_bf16_i32;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<float, 2, 4>> spmm_nm_f32_2_4;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<float, 1, 4>> spmm_nm_f32_1_4;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<float, 2, 8>> spmm_nm_f32_2_8;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<bfloat16, 2, 4>> spmm_nm_bf16_2_4;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<bfloat16, 1, 4>> spmm_nm_bf16_1_4;
    product_slot<kernels::spmm_nm, kernels::nm_product_args<bfloat16, 2, 8>> spmm_nm_bf16_2_8;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<float, 2, 4>> spmv_nm_f32_2_4;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<float, 1, 4>> spmv_nm_f32_1_4;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<float, 2, 8>> spmv_nm_f32_2_8;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<bfloat16, 2, 4>> spmv_nm_bf16_2_4;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<bfloat16, 1, 4>> spmv_nm_bf16_1_4;
    product_slot<kernels::spmv_nm, kernels::nm_product_args<bfloat16, 2, 8>> spmv_nm_bf16_2_8;
    product_slot<kernels::spmm_dense, kernels::dense_product_args<float>> spmm_dense_f32;
    product_slot<kernels::spmm_dense, kernels::dense_product_args<bfloat16>> spmm_dense_bf16;
    product_slot<kernels::spmv_dense, kernels::dense_product_args<float>> spmv_dense_f32;
    product_slot<kernels::spmv_dense, kernels::dense_product_args<bfloat16>> spmv_dense_bf16;
    product_slot<kernels::spmv_dense_rows, kernels::dense_product_args<float>> spmv_dense_rows_f32;
    product_slot<kernels::spmv_dense_rows, kernels::dense_product_args<bfloat16>> spmv_dense_rows_bf16;
    product_slot<kernels::sddmm, kernels::sddmm_csr_args<std::int32_t>> sddmm_csr_i32;
    product_slot<kernels::sddmm, kernels::sddmm_csr_args<std::int64_t>> sddmm_csr_i64;
    product_slot<kernels::sddmm, kernels::sddmm_bsr_args<std::int32_t>> sddmm_bsr_i32;
    product_slot<kernels::sddmm, kernels::sddmm_bitmap_args<std::int32_t>> sddmm_bitmap_i32;
    slot<kernels::flash_attention, void(const kernels::attention_args<float>*, float*, std::size_t, std::size_t)> attention_f32;
    slot<kernels::flash_attention, void(const kernels::attention_args<bfloat16>*, float*, std::size_t, std::size_t)> attention_bf16;
    slot<kernels::flash_decode, void(const kernels::decode_args<float>*, float*, std::size_t, std::size_t)> decode_f32;
    slot<kernels::flash_decode, void(const kernels::decode_args<bfloat16>*, float*, std::size_t, std::size_t)> decode_bf16;
    slot<kernels::sparse_decode, void(const kernels::decode_args<float>*, float*, std::size_t, std::size_t)> sparse_decode_f32;
    slot<kernels::sparse_decode, void(const kernels::decode_args<bfloat16>*, float*, std::size_t, std::size_t)> sparse_decode_bf16;
    slot<kernels::route_topk, void(const kernels::router_args*, float*, std::size_t, std::size_t)> route_topk;

    /// Calls f(slot) for every slot, so that filling a table lists nothing twice.
    template <class F> constexpr void for_each_slot(F&& f);
};

/// Every slot of the table, once: drives filling, the completeness check and find_slot.
inline constexpr auto kernel_slots = std::tuple{
    &kernel_table::dot_f32, &kernel_table::dot_bf16, &kernel_table::dot_bf16_f32, &kernel_table::axpy_f32,
    &kernel_table::scale_f32, &kernel_table::reduce_sum_f32, &kernel_table::reduce_max_f32, &kernel_table::add_rows_f32,
    &kernel_table::add_rows_bf16, &kernel_table::exp_f32,
    &kernel_table::softmax_f32, &kernel_table::convert_f32_bf16, &kernel_table::convert_bf16_f32,
    &kernel_table::transpose_f32, &kernel_table::bias_activation_f32, &kernel_table::swiglu_f32, &kernel_table::spmm_csr_f32_i32, &kernel_table::spmm_csr_f32_i64, &kernel_table::spmm_csr_bf16_i32,
    &kernel_table::spmv_csr_f32_i32, &kernel_table::spmv_csr_f32_i64, &kernel_table::spmv_csr_bf16_i32,
    &kernel_table::spmm_bsr_4x4, &kernel_table::spmm_bsr_8x8, &kernel_table::spmm_bsr_16x16,
    &kernel_table::spmm_bsr_32x32, &kernel_table::spmm_bsr_dynamic, &kernel_table::spmm_bitmap_f32_i32,
    &kernel_table::spmm_bitmap_bf16_i32, &kernel_table::spmv_bitmap_f32_i32, &kernel_table::spmv_bitmap_f32_i64,
    &kernel_table::spmv_bitmap_bf16_i32, &kernel_table::spmm_nm_f32_2_4, &kernel_table::spmm_nm_f32_1_4,
    &kernel_table::spmm_nm_f32_2_8, &kernel_table::spmm_nm_bf16_2_4, &kernel_table::spmm_nm_bf16_1_4,
    &kernel_table::spmm_nm_bf16_2_8, &kernel_table::spmv_nm_f32_2_4,
    &kernel_table::spmv_nm_f32_1_4, &kernel_table::spmv_nm_f32_2_8, &kernel_table::spmv_nm_bf16_2_4,
    &kernel_table::spmv_nm_bf16_1_4, &kernel_table::spmv_nm_bf16_2_8, &kernel_table::spmm_dense_f32,
    &kernel_table::spmm_dense_bf16, &kernel_table::spmv_dense_f32, &kernel_table::spmv_dense_bf16,
    &kernel_table::spmv_dense_rows_f32, &kernel_table::spmv_dense_rows_bf16, &kernel_table::sddmm_csr_i32, &kernel_table::sddmm_csr_i64,
    &kernel_table::sddmm_bsr_i32, &kernel_table::sddmm_bitmap_i32, &kernel_table::attention_f32,
    &kernel_table::attention_bf16, &kernel_table::decode_f32, &kernel_table::decode_bf16, &kernel_table::sparse_decode_f32,
    &kernel_table::sparse_decode_bf16, &kernel_table::route_topk};

template <class F> constexpr void kernel_table::for_each_slot(F&& f) {
    std::apply([&](auto... member) { (f(this->*member), ...); }, kernel_slots);
}

/// The slot that holds Kernel with signature Fn, or nullptr when the table has none.
template <class Kernel, class Fn> constexpr auto find_slot() {
    using member = slot<Kernel, Fn> kernel_table::*;
    return std::apply(
        [](auto... m) {
            member found = nullptr;
            ((found = std::is_same_v<decltype(m), member> ? member(m) : found), ...);
            return found;
        },
        kernel_slots);
}

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
