// Each layout, owning and view, models its concept and no other layout's.
#include "lacuna/layouts.hpp"
#include "support/catch.hpp"

using lacuna::bfloat16;

static_assert(lacuna::compressed_rows<lacuna::csr<float>>);
static_assert(lacuna::compressed_rows<lacuna::csr_view<const bfloat16, std::int64_t>>);
static_assert(lacuna::block_sparse<lacuna::bsr<float, 4, 4>>);
static_assert(lacuna::block_sparse<lacuna::bsr_view<const double, lacuna::dynamic, lacuna::dynamic>>);
static_assert(lacuna::semi_structured<lacuna::nm<bfloat16, 2, 4>>);
static_assert(lacuna::semi_structured<lacuna::nm_view<const float, 1, 4>>);
static_assert(lacuna::bitmap_sparse<lacuna::bitmap<float>>);
static_assert(lacuna::bitmap_sparse<lacuna::bitmap_view<const float, std::int64_t>>);

static_assert(!lacuna::block_sparse<lacuna::csr<float>>);
static_assert(!lacuna::compressed_rows<lacuna::bsr<float, 2, 2>>);
static_assert(!lacuna::semi_structured<lacuna::bitmap<float>>);
static_assert(!lacuna::bitmap_sparse<lacuna::nm<float, 2, 4>>);
static_assert(!lacuna::sparse_matrix<lacuna::matrix_view<float>>);

TEST_CASE("empty layouts are 0 x 0 with nothing stored", "[layout]") {
    CHECK(lacuna::csr<float>().bytes() == sizeof(std::int32_t)); // row_ptr = {0}
    CHECK(lacuna::bsr<float, 2, 2>().nnz() == 0);
    CHECK(lacuna::nm<float, 2, 4>().bytes() == 0);
    CHECK(lacuna::bitmap<double>().to_dense().empty());
    CHECK(lacuna::bsr<float, lacuna::dynamic, lacuna::dynamic>().density() == 0);
}
