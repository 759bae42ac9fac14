// What the attention tests share: an output with its logsumexp, computed on 1 and 2 threads.
#pragma once

#include <cstddef>
#include <vector>

#include "lacuna/core/parallel.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/layouts.hpp"

namespace lacuna::test {

struct attention_result {
    std::vector<float> out, lse;
};

/// Runs call(out, lse) on 1 and 2 threads with both poisoned, checks the two runs agree to the bit,
/// and returns the first.
template <class Call> attention_result on_1_and_2_threads(std::size_t out_size, std::size_t lse_size, Call&& call) {
    attention_result first;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        attention_result r{poisoned(out_size), poisoned(lse_size)};
        call(r.out, r.lse);
        if (threads == 1) {
            first = r;
        } else {
            CHECK(same_bits(first.out, r.out));
            CHECK(same_bits(first.lse, r.lse));
        }
    }
    set_num_threads(0);
    return first;
}

} // namespace lacuna::test
