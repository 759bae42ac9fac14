// lacuna: every sparse layout, its builders and its pruning rules.
#pragma once

#include "lacuna/layout/bitmap.hpp"
#include "lacuna/layout/bsr.hpp"
#include "lacuna/layout/common.hpp"
#include "lacuna/layout/concepts.hpp"
#include "lacuna/layout/convert.hpp"
#include "lacuna/layout/coo.hpp"
#include "lacuna/layout/csr.hpp"
#include "lacuna/layout/nm.hpp"
#include "lacuna/layout/prune.hpp"
