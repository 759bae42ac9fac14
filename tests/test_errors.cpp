// The error contract: every row of docs/errors.md names an id, the exception type and the exact
// message. Here each id has a call that must raise exactly that, and every id here has its row, so the
// page and the library cannot drift apart.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lacuna/interop/pytorch_semi_structured.hpp"
#include "lacuna/interop/scipy_bsr.hpp"
#include "lacuna/interop/tile_bitmaps.hpp"
#include "lacuna/lacuna.hpp"
#include "support/catch.hpp"
#include "support/doc_table.hpp"
#if LACUNA_WITH_EIGEN
#include "lacuna/interop/eigen.hpp"
#endif

using lacuna::matrix_view;
using lacuna::tensor4_view;
namespace moe = lacuna::moe;

namespace {

using ints = std::vector<std::int32_t>;
template <class T> std::span<const T> cspan(const std::vector<T>& v) { return v; }

// Thrown by a call whose error cannot happen on this machine (an arch that every build has, say).
struct not_here {};

matrix_view<const float> cview(const std::vector<float>& v, std::size_t rows, std::size_t cols) { return {v, rows, cols}; }
matrix_view<float> mview(std::vector<float>& v, std::size_t rows, std::size_t cols) { return {v, rows, cols}; }
tensor4_view<const float> t4(const std::vector<float>& v, std::array<std::size_t, 4> e) { return {v.data(), e}; }
tensor4_view<float> out4(std::vector<float>& v, std::array<std::size_t, 4> e) { return {v.data(), e}; }

// The 2 x 3 matrix [1 0 2; 0 3 0] in CSR.
lacuna::csr<float> small_csr() {
    static const std::vector<float> dense{1, 0, 2, 0, 3, 0};
    return lacuna::csr<float>::from_dense(cview(dense, 2, 3));
}

// Attention operands: q [1, 4, 8, 16], k and v [1, 2, 8, 16].
struct attention_operands {
    std::vector<float> q = std::vector<float>(4 * 8 * 16, 0.1f), k = std::vector<float>(2 * 8 * 16, 0.1f),
                       v = std::vector<float>(2 * 8 * 16, 0.1f), out = std::vector<float>(4 * 8 * 16);
    tensor4_view<const float> qv() const { return t4(q, {1, 4, 8, 16}); }
    tensor4_view<const float> kv() const { return t4(k, {1, 2, 8, 16}); }
    tensor4_view<const float> vv() const { return t4(v, {1, 2, 8, 16}); }
    tensor4_view<float> ov() { return out4(out, {1, 4, 8, 16}); }
};

moe::routing three_tokens_two_choices() {
    const std::vector<float> logits{3, 2, 1, 1, 3, 2, 2, 1, 3};
    moe::router_config cfg;
    cfg.k = 2;
    return moe::route(cview(logits, 3, 3), cfg);
}

// A layer of 2 experts (H = 8, F = 6) over 3 tokens, top-1; the rows break one thing each.
struct small_layer {
    static constexpr std::size_t H = 8, F = 6, E = 2, T = 3;
    std::vector<float> wg = std::vector<float>(E * F * H, 0.1f), wd = std::vector<float>(E * H * F, 0.1f),
                       router = std::vector<float>(E * H), x = std::vector<float>(T * H), y = std::vector<float>(T * H);
    std::vector<matrix_view<const float>> gate = moe::dense_experts<float>(wg, E, F, H), down = moe::dense_experts<float>(wd, E, H, F);
    moe::layer_weights<matrix_view<const float>> w{cview(router, E, H), {gate, gate, down}};
    moe::layer_config cfg = [] {
        moe::layer_config c;
        c.router.k = 1;
        return c;
    }();
    void run(matrix_view<float> out) { moe::moe_layer(cview(x, T, H), w, out, cfg); }
    void run() { run(mview(y, T, H)); }
};

moe::routing route_8(std::vector<float> logits, const moe::router_config& cfg) {
    return moe::route(matrix_view<const float>(logits, logits.size() / 8, 8), cfg);
}

// Sets LACUNA_ARCH for one call of the start-up arch choice, then puts it back.
void initial_arch_with(const char* value) {
    const char* before = std::getenv("LACUNA_ARCH");
    const std::string saved = before ? before : "";
    ::setenv("LACUNA_ARCH", value, 1);
    struct restore {
        bool had;
        std::string value;
        ~restore() { had ? ::setenv("LACUNA_ARCH", value.c_str(), 1) : ::unsetenv("LACUNA_ARCH"); }
    } guard{before != nullptr, saved};
    lacuna::detail::initial_arch();
}

// The page quotes x86's message, where NEON is never compiled in.
lacuna::arch an_arch_not_compiled() {
    if (lacuna::detail::arch_compiled(lacuna::arch::neon64)) throw not_here{};
    return lacuna::arch::neon64;
}

// One call per row of docs/errors.md.
std::map<std::string, std::function<void()>> calls() {
    std::map<std::string, std::function<void()>> c;

    // Views, threads, dispatch.
    c["matrix_view.stride"] = [] { std::vector<float> d(12); matrix_view<float>(d.data(), 3, 4, 3); };
    c["matrix_view.span"] = [] { std::vector<float> d(20); matrix_view<float>(std::span<float>(d), 5, 5); };
    c["tensor4_view.span"] = [] { std::vector<float> d(100); tensor4_view<float>(std::span<float>(d), {2, 3, 4, 5}); };
    c["set_num_threads.negative"] = [] { lacuna::set_num_threads(-1); };
    c["force_arch.unusable"] = [] { lacuna::force_arch(an_arch_not_compiled()); };
    c["LACUNA_ARCH.unknown"] = [] { initial_arch_with("sse5"); };
    c["LACUNA_ARCH.unusable"] = [] {
        an_arch_not_compiled();
        initial_arch_with("neon64");
    };

    // Vector primitives.
    c["primitives.size"] = [] { std::vector<float> a(8), b(9); lacuna::dot(a, b); };
    c["primitives.mask_size"] = [] {
        std::vector<float> a(8);
        const bool mask[7]{};
        lacuna::softmax(a, std::span<const bool>(mask), a);
    };
    c["primitives.overlap"] = [] { std::vector<float> a(12); lacuna::axpy(1.f, std::span<const float>(a).first(8), std::span<float>(a).last(8)); };

    // Layouts from raw arrays.
    const std::vector<float> ones(12, 1.f);
    c["csr.ptr_size"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 2}), cspan(ints{0, 2, 1, 2}), cspan(ones).first(4)); };
    c["csr.values_size"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 2, 4}), cspan(ints{0, 2, 1, 2}), cspan(ones).first(3)); };
    c["csr.ptr_start"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{1, 2, 4}), cspan(ints{0, 2, 1, 2}), cspan(ones).first(4)); };
    c["csr.ptr_decreases"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 3, 2}), cspan(ints{0, 2, 1, 2}), cspan(ones).first(4)); };
    c["csr.ptr_end"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 2, 3}), cspan(ints{0, 2, 1, 2}), cspan(ones).first(4)); };
    c["csr.index_range"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 2, 4}), cspan(ints{0, 3, 1, 2}), cspan(ones).first(4)); };
    c["csr.index_order"] = [=] { lacuna::csr<float>(2, 3, cspan(ints{0, 2, 4}), cspan(ints{0, 2, 1, 1}), cspan(ones).first(4)); };
    c["layout.index_overflow"] = [] { lacuna::csr<float>(std::size_t(1) << 31, 3, cspan(ints{0}), cspan(ints{}), std::span<const float>()); };
    c["bsr.ptr_size"] = [=] { lacuna::bsr<float, 2, 2>(5, 4, cspan(ints{0, 1, 3}), cspan(ints{1, 0, 1}), cspan(ones)); };
    c["bsr.values_size"] = [=] { lacuna::bsr<float, 2, 2>(5, 4, cspan(ints{0, 1, 1, 3}), cspan(ints{1, 0, 1}), cspan(ones).first(11)); };
    c["bsr.index_range"] = [=] { lacuna::bsr<float, 2, 2>(5, 4, cspan(ints{0, 1, 1, 3}), cspan(ints{1, 0, 2}), cspan(ones)); };
    c["bsr.block_type"] = [=] {
        lacuna::bsr<float, 2, 2>(5, 4, {2, 3}, cspan(ints{0, 1, 1, 3}), cspan(ints{1, 0, 1}), cspan(ones));
    };
    c["bsr.block_empty"] = [=] {
        lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>(5, 4, {0, 2}, cspan(ints{0, 1, 1, 3}), cspan(ints{1, 0, 1}), cspan(ones));
    };
    using nm24 = lacuna::nm<float, 2, 4>;
    using meta = std::vector<std::uint64_t>;
    c["nm.values_size"] = [=] { nm24(1, 8, cspan(ones).first(3), cspan(meta{0xe4})); };
    c["nm.meta_size"] = [=] { nm24(1, 8, cspan(ones).first(4), cspan(meta{0xe4, 0})); };
    c["nm.meta_position"] = [=] { lacuna::nm<float, 1, 5>(1, 5, cspan(ones).first(1), cspan(meta{0x5})); };
    c["nm.meta_order"] = [=] { nm24(1, 8, cspan(ones).first(4), cspan(meta{0xe5})); };
    c["nm.meta_code_bits"] = [=] { lacuna::nm<float, 1, 8>(1, 8, cspan(ones).first(1), cspan(meta{0x8})); };
    c["nm.meta_tail_bits"] = [=] { nm24(1, 8, cspan(ones).first(4), cspan(meta{0x1e4})); };
    using words = std::vector<std::uint64_t>;
    c["bitmap.bits_size"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101}), cspan(ints{0, 2, 3}), cspan(ones).first(3)); };
    c["bitmap.offsets_size"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101, 1}), cspan(ints{0, 2}), cspan(ones).first(3)); };
    c["bitmap.offsets_start"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101, 1}), cspan(ints{1, 3, 4}), cspan(ones).first(4)); };
    c["bitmap.offsets_count"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101, 1}), cspan(ints{0, 1, 3}), cspan(ones).first(3)); };
    c["bitmap.tail_bits"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101, 1 << 10}), cspan(ints{0, 2, 3}), cspan(ones).first(3)); };
    c["bitmap.values_size"] = [=] { lacuna::bitmap<float>(2, 10, cspan(words{0b101, 1}), cspan(ints{0, 2, 3}), cspan(ones).first(4)); };

    // Building and converting.
    c["triplets.outside"] = [] { lacuna::triplets<float>(3, 4).add(3, 0, 1.f); };
    c["prune.fraction"] = [] { lacuna::prune::top_fraction(1.5); };
    c["prune.threshold"] = [] { lacuna::prune::threshold(-1); };
    c["prune.block_empty"] = [] { lacuna::prune::block_threshold({0, 4}, 1.0); };
    c["prune.n_m"] = [] { lacuna::prune::n_m(4, 4); };
    c["nm.from_dense_rule"] = [] {
        const std::vector<float> three{1, 2, 3, 0};
        nm24::from_dense(cview(three, 1, 4), lacuna::prune::nonzero{});
    };
    c["convert.nm_overfull"] = [] {
        const std::vector<double> dense{1, 2, 3, 0, 0, 0, 0, 4};
        lacuna::convert_to<lacuna::nm<double, 2, 4>>(lacuna::csr<double>::from_dense(matrix_view<const double>(dense, 1, 8)));
    };
    c["to_dense.shape"] = [] { std::vector<float> out(18); small_csr().to_dense(mview(out, 3, 6)); };

    // Interchange formats.
    c["scipy_bsr.blocks_divide"] = [] {
        const ints ptr{0, 1, 1}, idx{0};
        const std::vector<float> data(6);
        lacuna::bsr_view_of(lacuna::scipy_bsr_arrays<float>{5, 6, {2, 3}, ptr, idx, data});
    };
    c["pytorch_24.k"] = [] {
        const std::vector<float> values(4);
        const std::vector<std::int16_t> meta(1);
        lacuna::nm24_from_pytorch<float>(1, 8, cspan(values), cspan(meta));
    };
    c["pytorch_24.meta_size"] = [] {
        const std::vector<float> values(8);
        const std::vector<std::int16_t> meta(2);
        lacuna::nm24_from_pytorch<float>(1, 16, cspan(values), cspan(meta));
    };
    c["mustafar.cols"] = [] {
        const std::vector<float> values(1, 1.f);
        lacuna::bitmap_from_mustafar<float>(1, 100, cspan(words{1, 0}), cspan(ints{0, 1}), cspan(values));
    };
    c["mustafar.offsets"] = [] {
        const std::vector<float> values(3, 1.f);
        lacuna::bitmap_from_mustafar<float>(2, 64, cspan(words{3, 1}), cspan(ints{0, 1}), cspan(values));
    };
    c["sparamx.words_size"] = [] {
        const std::vector<float> values(1, 1.f);
        lacuna::bitmap_from_sparamx<float>(3, 11, cspan(std::vector<std::uint32_t>{1}), cspan(values));
    };
    c["sparamx.tail_bits"] = [] {
        const std::vector<float> values(3, 1.f);
        lacuna::bitmap_from_sparamx<float>(3, 11, cspan(std::vector<std::uint32_t>{1, 3}), cspan(values));
    };
#if LACUNA_WITH_EIGEN
    c["eigen.uncompressed"] = [] {
        Eigen::SparseMatrix<float, Eigen::RowMajor, std::int32_t> m(3, 3);
        m.insert(1, 1) = 2.f;
        lacuna::csr_view_of(m);
    };
#else
    c["eigen.uncompressed"] = [] { throw not_here{}; };
#endif

    // Products.
    c["spmm.inner"] = [] { std::vector<float> b(12), o(6); lacuna::spmm(small_csr(), cview(b, 4, 3), mview(o, 2, 3)); };
    c["spmm.out_shape"] = [] { std::vector<float> b(12), o(6); lacuna::spmm(small_csr(), cview(b, 3, 4), mview(o, 2, 3)); };
    c["spmm.overlap"] = [] {
        std::vector<float> b(12);
        lacuna::spmm(small_csr(), matrix_view<const float>(b.data() + 2, 3, 2), matrix_view<float>(b.data(), 2, 2));
    };
    c["spmm.dense_sparse_inner"] = [] { std::vector<float> x(8), o(6); lacuna::spmm(cview(x, 2, 4), small_csr(), mview(o, 2, 3)); };
    c["spmv.x_size"] = [] { std::vector<float> x(2), y(2); lacuna::spmv(small_csr(), cspan(x), std::span<float>(y)); };
    c["linear.inner"] = [] { std::vector<float> x(8), y(8); lacuna::linear(cview(x, 4, 2), small_csr(), mview(y, 4, 2)); };
    c["linear.bias"] = [] {
        std::vector<float> x(12), y(8), bias(3);
        lacuna::linear(cview(x, 4, 3), small_csr(), mview(y, 4, 2), {bias});
    };
    c["sddmm.shapes"] = [] {
        std::vector<float> a(8), b(8);
        auto out = small_csr();
        lacuna::sddmm(cview(a, 2, 4), cview(b, 2, 4), small_csr(), out);
    };
    c["sddmm.overlap"] = [] {
        std::vector<float> b(12);
        auto out = small_csr();
        lacuna::sddmm(matrix_view<const float>(out.values() + 1, 2, 1), cview(b, 3, 1), small_csr(), out);
    };
    c["linear.overlap"] = [] {
        std::vector<float> x(12), y(8);
        lacuna::linear(cview(x, 4, 3), small_csr(), mview(y, 4, 2), {std::span<const float>(y).first(2)});
    };
    c["sddmm.structure"] = [] {
        std::vector<float> a(8), b(12);
        const std::vector<float> other_dense{1, 2, 0, 0, 3, 0};
        auto other = lacuna::csr<float>::from_dense(cview(other_dense, 2, 3));
        lacuna::sddmm(cview(a, 2, 4), cview(b, 3, 4), small_csr(), other);
    };

    // Attention.
    c["attention.shape"] = [] {
        attention_operands x;
        lacuna::attention(x.qv(), t4(x.k, {1, 2, 8, 8}), x.vv(), x.ov());
    };
    c["attention.heads"] = [] {
        attention_operands x;
        x.k.resize(3 * 8 * 16), x.v.resize(3 * 8 * 16);
        lacuna::attention(x.qv(), t4(x.k, {1, 3, 8, 16}), t4(x.v, {1, 3, 8, 16}), x.ov());
    };
    c["attention.stride"] = [] {
        attention_operands x;
        const std::vector<float> every_other(2 * x.q.size());
        lacuna::attention(tensor4_view<const float>(every_other.data(), {1, 4, 8, 16}, {1024, 256, 32, 2}), x.kv(), x.vv(), x.ov());
    };
    c["attention.overlap"] = [] {
        attention_operands x;
        lacuna::attention(x.qv(), x.kv(), x.vv(), tensor4_view<float>(x.q.data(), {1, 4, 8, 16}));
    };
    c["attention.mask_shape"] = [] {
        attention_operands x;
        const std::vector<float> mask(2 * 8 * 8);
        lacuna::attention_options o;
        o.additive_mask = t4(mask, {1, 2, 8, 8});
        lacuna::attention(x.qv(), x.kv(), x.vv(), x.ov(), o);
    };
    c["attention.logsumexp_size"] = [] {
        attention_operands x;
        std::vector<float> lse(5);
        lacuna::attention_options o;
        o.logsumexp = lse;
        lacuna::attention(x.qv(), x.kv(), x.vv(), x.ov(), o);
    };
    c["flex_attention.mask_shape"] = [] {
        attention_operands x;
        lacuna::flex_attention(x.qv(), x.kv(), x.vv(), lacuna::create_block_mask(lacuna::no_mask_mod{}, 1, 1, 5, 8, 4, 4), x.ov());
    };
    c["masked_attention.mask_shape"] = [] {
        attention_operands x;
        const std::vector<float> dense(8 * 9, 1.f);
        lacuna::masked_attention(x.qv(), x.kv(), x.vv(), lacuna::csr<float>::from_dense(cview(dense, 8, 9)), x.ov());
    };
    c["block_mask.block_size"] = [] { lacuna::create_block_mask(lacuna::no_mask_mod{}, 1, 1, 4, 4, 0, 2); };
    const ints num{1, 1, 1}, ok{1, 0, 0, 0, 0, 0, 2, 0, 0};
    c["block_mask.array_size"] = [=] { lacuna::block_mask(1, 1, 5, 7, 2, 3, num, ints(8)); };
    c["block_mask.count"] = [=] { lacuna::block_mask(1, 1, 5, 7, 2, 3, ints{1, 4, 1}, ok); };
    c["block_mask.index"] = [=] { lacuna::block_mask(1, 1, 5, 7, 2, 3, num, ints{3, 0, 0, 0, 0, 0, 2, 0, 0}); };
    c["block_mask.twice"] = [=] { lacuna::block_mask(1, 1, 5, 7, 2, 3, num, ok, ints{1, 0, 0}, ok); };
    c["masks.bigbird"] = [] { lacuna::masks::bigbird(0, 1, 1, 1, 10); };
    c["masks.document"] = [] { lacuna::masks::document({1, 4}); };
    c["moba.block"] = [] {
        attention_operands x;
        lacuna::moba_block_mask(x.qv(), x.kv(), {0, 1});
    };
    c["vertical_slash.lengths"] = [] {
        attention_operands x;
        const std::vector<float> q(4 * 6 * 16);
        lacuna::estimate_vertical_slash(t4(q, {1, 4, 6, 16}), x.kv());
    };

    // KV caches and decode.
    c["paged_kv_cache.sizes"] = [] { lacuna::paged_kv_cache<float>(2, 8, 8, 0, 2); };
    c["kv_cache.append_shape"] = [] {
        lacuna::paged_kv_cache<float> cache(2, 8, 8, 4, 2);
        const std::vector<float> kv(2 * 5 * 8);
        cache.append(cache.add_sequence(), t4(kv, {1, 1, 5, 8}), t4(kv, {1, 2, 5, 8}));
    };
    c["paged_kv_cache.sequence"] = [] {
        lacuna::paged_kv_cache<float> cache(2, 8, 8, 4, 2);
        const std::vector<float> kv(2 * 5 * 8);
        cache.append(7, t4(kv, {1, 2, 5, 8}), t4(kv, {1, 2, 5, 8}));
    };
    c["paged_kv_cache.full"] = [] {
        lacuna::paged_kv_cache<float> cache(2, 8, 8, 4, 2);
        const std::vector<float> kv(2 * 5 * 8);
        const auto s = cache.add_sequence();
        cache.append(s, t4(kv, {1, 2, 5, 8}), t4(kv, {1, 2, 5, 8}));
        cache.append(s, t4(kv, {1, 2, 5, 8}), t4(kv, {1, 2, 5, 8}));
    };
    c["sparse_kv_cache.heads"] = [] { lacuna::sparse_kv_cache<float>(0, 8, 8, 2, 2); };
    c["sparse_kv_cache.keep"] = [] { lacuna::sparse_kv_cache<float>(2, 8, 8, 9, 2); };
    c["sparse_kv_cache.capacity"] = [] {
        // 2^31 tokens of one repeated row (zero strides): the check comes before any is read.
        lacuna::sparse_kv_cache<float> cache(1, 8, 8, 8, 8);
        const std::vector<float> row(8);
        const tensor4_view<const float> many(row.data(), {1, 1, std::size_t(1) << 31, 8}, {0, 0, 0, 1});
        cache.append(many, many);
    };
    c["decode.queries"] = [] {
        attention_operands x;
        const std::vector<float> k(2 * 6 * 16);
        lacuna::decode_attention(x.qv(), t4(k, {1, 2, 6, 16}), t4(k, {1, 2, 6, 16}), x.ov());
    };
    c["decode.sequence"] = [] {
        attention_operands x;
        lacuna::paged_kv_cache<float> cache(2, 16, 16, 4, 2);
        cache.add_sequence();
        lacuna::decode_attention(x.qv(), cache, std::vector<std::size_t>{3}, x.ov());
    };
    c["decode.sequence_length"] = [] {
        attention_operands x;
        lacuna::paged_kv_cache<float> cache(2, 16, 16, 4, 2);
        const auto s = cache.add_sequence();
        const std::vector<float> kv(2 * 5 * 16);
        cache.append(s, t4(kv, {1, 2, 5, 16}), t4(kv, {1, 2, 5, 16}));
        lacuna::decode_attention(x.qv(), cache, std::vector<std::size_t>{s}, x.ov());
    };
    c["decode.sparse_batch"] = [] {
        lacuna::sparse_kv_cache<float> cache(2, 16, 16, 4, 4);
        std::vector<float> q(2 * 4 * 16), out(2 * 4 * 16);
        lacuna::decode_attention(t4(q, {2, 4, 1, 16}), cache, out4(out, {2, 4, 1, 16}));
    };

    // Mixture of experts.
    c["route.k"] = [] {
        moe::router_config cfg;
        cfg.k = 9;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.n_group"] = [] {
        moe::router_config cfg;
        cfg.n_group = 3;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.group_size"] = [] {
        moe::router_config cfg;
        cfg.n_group = 8;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.topk_group"] = [] {
        moe::router_config cfg;
        cfg.n_group = 4, cfg.topk_group = 5;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.k_in_groups"] = [] {
        moe::router_config cfg;
        cfg.n_group = 4, cfg.topk_group = 1, cfg.k = 3;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.bias_size"] = [] {
        const std::vector<float> bias(7);
        moe::router_config cfg;
        cfg.correction_bias = bias;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.bias_finite"] = [] {
        std::vector<float> bias(8);
        bias[2] = std::numeric_limits<float>::infinity();
        moe::router_config cfg;
        cfg.correction_bias = bias;
        route_8(std::vector<float>(24), cfg);
    };
    c["route.scaling"] = [] {
        moe::router_config cfg;
        cfg.routed_scaling_factor = std::numeric_limits<float>::quiet_NaN();
        route_8(std::vector<float>(24), cfg);
    };
    c["route.no_experts"] = [] { moe::route(matrix_view<const float>(nullptr, 3, 0)); };
    c["route.nan_logit"] = [] {
        std::vector<float> logits(24);
        logits[2 * 8 + 5] = std::numeric_limits<float>::quiet_NaN();
        route_8(logits, {});
    };
    c["route.all_minus_inf"] = [] {
        std::vector<float> logits(24);
        std::fill(logits.begin() + 8, logits.begin() + 16, -std::numeric_limits<float>::infinity());
        route_8(logits, {});
    };
    c["expert_choice.capacity"] = [] { const std::vector<float> logits(6); moe::expert_choice(cview(logits, 3, 2), 4); };
    c["plan.sizes"] = [] {
        auto r = three_tokens_two_choices();
        r.topk_ids.pop_back();
        moe::plan(r);
    };
    c["plan.expert_id"] = [] {
        auto r = three_tokens_two_choices();
        r.topk_ids[3] = 3;
        moe::plan(r);
    };
    c["plan.weight"] = [] {
        auto r = three_tokens_two_choices();
        r.topk_weights[1] = std::numeric_limits<float>::infinity();
        moe::plan(r);
    };
    c["plan.capacity_factor"] = [] { moe::plan(three_tokens_two_choices(), {-1, 1}); };
    c["plan.row_multiple"] = [] { moe::plan(three_tokens_two_choices(), {0, 0}); };
    c["plan.expert_choice_token"] = [] {
        const std::vector<float> logits(6);
        auto r = moe::expert_choice(cview(logits, 3, 2), 2);
        r.token_ids[1] = 5;
        moe::plan(r);
    };
    c["gather.rows"] = [] {
        const auto d = moe::plan(three_tokens_two_choices());
        std::vector<float> x(3 * 4), xs(5 * 4);
        moe::gather(cview(x, 3, 4), d, mview(xs, 5, 4));
    };
    c["combine.columns"] = [] {
        const auto d = moe::plan(three_tokens_two_choices());
        std::vector<float> ys(6 * 4), y(3 * 5);
        moe::combine(cview(ys, 6, 4), d, mview(y, 3, 5));
    };
    c["dispatch.arrays"] = [] {
        auto d = moe::plan(three_tokens_two_choices());
        d.row_weight.pop_back();
        std::vector<float> x(3 * 4), xs(6 * 4);
        moe::gather(cview(x, 3, 4), d, mview(xs, 6, 4));
    };
    c["dispatch.offsets"] = [] {
        auto d = moe::plan(three_tokens_two_choices());
        std::swap(d.token_offsets[1], d.token_offsets[2]);
        std::vector<float> ys(6 * 4), y(3 * 4);
        moe::combine(cview(ys, 6, 4), d, mview(y, 3, 4));
    };
    c["dispatch.ids"] = [] {
        auto d = moe::plan(three_tokens_two_choices());
        d.row_token[4] = 3;
        std::vector<float> x(3 * 4), xs(6 * 4);
        moe::gather(cview(x, 3, 4), d, mview(xs, 6, 4));
    };
    c["dense_experts.size"] = [] { const std::vector<float> w(2 * 6 * 8); moe::dense_experts<float>(w, 3, 6, 8); };
    c["experts.shapes"] = [] {
        small_layer l;
        l.w.routed.down = l.gate; // F x H where H x F is needed
        l.run();
    };
    c["experts.gate"] = [] {
        small_layer l;
        l.cfg.act = moe::expert_activation::gelu;
        l.run();
    };
    c["moe_layer.out"] = [] {
        small_layer l;
        l.run(mview(l.y, 2, small_layer::H));
    };
    c["moe_layer.in_place"] = [] {
        small_layer l;
        l.run(mview(l.x, small_layer::T, small_layer::H));
    };
    return c;
}

// The rows of docs/errors.md: | `id` | when | `type` | `message` |
std::vector<std::vector<std::string>> documented_rows() {
    return lacuna::test::doc_rows("errors.md", R"(^\| `([A-Za-z0-9_.]+)` \|.*\| `([a-z_]+)` \| `(.*)` \|$)");
}

// The most derived lacuna exception type that e is.
std::string type_of(const lacuna::error& e) {
    if (dynamic_cast<const lacuna::shape_error*>(&e)) return "shape_error";
    if (dynamic_cast<const lacuna::aliasing_error*>(&e)) return "aliasing_error";
    if (dynamic_cast<const lacuna::invalid_layout*>(&e)) return "invalid_layout";
    if (dynamic_cast<const lacuna::arch_error*>(&e)) return "arch_error";
    return "error";
}

} // namespace

TEST_CASE("every row of docs/errors.md is raised as written", "[errors]") {
    const auto all = calls();
    for (const auto& r : documented_rows()) {
        const std::string &id = r[0], &type = r[1], &message = r[2];
        DYNAMIC_SECTION(id) {
            const auto call = all.find(id);
            REQUIRE(call != all.end());
            try {
                call->second();
                FAIL("no exception");
            } catch (const lacuna::error& e) {
                CHECK(type_of(e) == type);
                CHECK(std::string(e.what()) == message);
            } catch (not_here) {
                WARN(id << " cannot happen on this machine");
            }
        }
    }
}

TEST_CASE("every check has its row in docs/errors.md", "[errors]") { lacuna::test::check_one_row_per_call(calls(), documented_rows()); }
