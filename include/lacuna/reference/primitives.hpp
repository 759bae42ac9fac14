// lacuna: dense references for the vector primitives. Plain loops, double accumulation, no SIMD.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

#include "lacuna/core/bfloat16.hpp"

namespace lacuna::ref {

template <class X, class Y>
double dot(std::span<const X> x, std::span<const Y> y) {
    double s = 0;
    for (std::size_t i = 0; i < x.size(); ++i) s += double(float(x[i])) * double(float(y[i]));
    return s;
}

inline void axpy(float a, std::span<const float> x, std::span<float> y) {
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = float(double(a) * x[i] + y[i]);
}

inline void scale(float a, std::span<float> x) {
    for (float& v : x) v = float(double(a) * v);
}

inline double reduce_sum(std::span<const float> x) {
    double s = 0;
    for (float v : x) s += v;
    return s;
}

/// NaN if any element is NaN; -inf for an empty range.
inline float reduce_max(std::span<const float> x) {
    float m = -std::numeric_limits<float>::infinity();
    for (float v : x) {
        if (std::isnan(v)) return v;
        if (v > m) m = v;
    }
    return m;
}

inline void exp(std::span<const float> x, std::span<float> y) {
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = float(std::exp(double(x[i])));
}

/// Softmax over the kept positions (all when mask is empty); masked positions get 0; nothing kept,
/// or only -inf kept, gives zeros; a NaN or +inf kept makes every kept output NaN.
inline void softmax(std::span<const float> x, std::span<const bool> mask, std::span<float> y) {
    auto kept = [&](std::size_t i) { return mask.empty() || mask[i]; };
    double m = -std::numeric_limits<double>::infinity();
    bool nan = false;
    for (std::size_t i = 0; i < x.size(); ++i)
        if (kept(i)) {
            nan = nan || std::isnan(x[i]);
            m = std::max(m, double(x[i]));
        }
    if (nan) {
        m = std::numeric_limits<double>::quiet_NaN();
    } else if (m == -std::numeric_limits<double>::infinity()) {
        for (float& v : y) v = 0.f;
        return;
    }
    double sum = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
        if (kept(i)) sum += std::exp(double(x[i]) - m);
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = kept(i) ? float(std::exp(double(x[i]) - m) / sum) : 0.f;
}

inline void convert(std::span<const float> x, std::span<bfloat16> y) {
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = bfloat16(x[i]);
}

inline void convert(std::span<const bfloat16> x, std::span<float> y) {
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = float(x[i]);
}

} // namespace lacuna::ref
