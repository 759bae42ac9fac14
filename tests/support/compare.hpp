// Comparing a kernel's output with its reference, and outputs that fail if left unwritten.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <ranges>
#include <vector>

#include "lacuna/core/bfloat16.hpp"

namespace lacuna::test {

/// ‖out − ref‖ / ‖ref‖ for two contiguous ranges of float, double or bfloat16 (2-norms, in double); the absolute norm when ref is all zero. A NaN or inf
/// in one but not at the same place (with the same value) in the other gives +inf.
template <std::ranges::contiguous_range A, std::ranges::contiguous_range B>
double rel_error(const A& out, const B& ref) {
    if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        double o = double(float(out[i])), r = double(float(ref[i]));
        if (!std::isfinite(o) || !std::isfinite(r)) {
            bool same = (std::isnan(o) && std::isnan(r)) || o == r;
            if (!same) return std::numeric_limits<double>::infinity();
            continue;
        }
        diff += (o - r) * (o - r);
        norm += r * r;
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

/// The 2-norm of a range, in double.
template <std::ranges::contiguous_range A> double norm(const A& v) {
    double s = 0;
    for (const auto& x : v) s += double(float(x)) * double(float(x));
    return std::sqrt(s);
}

/// ‖out − ref‖ / max(‖ref‖, floor), NaN and inf as in rel_error: for results that can cancel to
/// nearly nothing, such as α·A·x + β·y, `floor` is the size of what was added (‖β·y‖).
template <std::ranges::contiguous_range A, std::ranges::contiguous_range B>
double rel_error(const A& out, const B& ref, double floor) {
    const double r = rel_error(out, ref), nr = norm(ref);
    if (!std::isfinite(r) || nr >= floor) return r;
    return nr > 0 ? r * nr / floor : r / floor;
}

/// The error of logsumexp values, which sit near log(keys) and may be near 0 for a single key:
/// relative to each element's size or 1, whichever is larger (a floor of √n on the 2-norm). A
/// score's float rounding alone reaches a few 1e-6 of it, so tests allow 1e-5.
template <std::ranges::contiguous_range A, std::ranges::contiguous_range B> double lse_error(const A& out, const B& ref) {
    return rel_error(out, ref, std::sqrt(double(std::ranges::size(ref))));
}

/// n values of NaN: an element the kernel forgets to write fails every comparison.
template <class T = float> std::vector<T> poisoned(std::size_t n) {
    return std::vector<T>(n, T(std::numeric_limits<float>::quiet_NaN()));
}

} // namespace lacuna::test
