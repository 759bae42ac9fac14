// lacuna: sparse tensors and sparse kernels for machine learning on CPUs. The umbrella header.
#pragma once

#include "lacuna/attention.hpp"
#include "lacuna/masks.hpp"
#include "lacuna/core/aligned_buffer.hpp"
#include "lacuna/core/bfloat16.hpp"
#include "lacuna/core/config.hpp"
#include "lacuna/core/dense.hpp"
#include "lacuna/core/error.hpp"
#include "lacuna/core/parallel.hpp"
#include "lacuna/layouts.hpp"
#include "lacuna/linear.hpp"
#include "lacuna/sddmm.hpp"
#include "lacuna/primitives.hpp"
#include "lacuna/spmm.hpp"
#include "lacuna/simd/arch.hpp"
#include "lacuna/simd/cpu.hpp"
#include "lacuna/simd/dispatch.hpp"
