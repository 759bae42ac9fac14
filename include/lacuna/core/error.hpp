// lacuna: the exceptions the public entry points throw, and helpers that build their messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lacuna {

/// Base of every exception lacuna throws for bad input. The message names the entry point, the
/// argument, and the expected and actual values.
class error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Operands whose shapes, sizes or strides do not fit the operation.
class shape_error : public error {
public:
    using error::error;
};

/// Operands that overlap in memory where the operation needs them distinct (or exactly equal).
class aliasing_error : public error {
public:
    using error::error;
};

/// Raw arrays that break a layout's invariants (unsorted indices, pointers that decrease, sizes that
/// do not fit the index type, ...). The message names the array, the position and the rule.
class invalid_layout : public error {
public:
    using error::error;
};

/// An instruction set that is not compiled in or that the CPU does not support.
class arch_error : public error {
public:
    using error::error;
};

namespace detail {

template <class... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    return out.str();
}

template <class Error = error, class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
    throw Error(concat(std::forward<Parts>(parts)...));
}

/// Throws shape_error "<where>: <what> has <actual> elements, expected <expected> (<why>)".
inline void check_size(const char* where, const char* what, std::size_t actual, std::size_t expected,
                       const char* why) {
    if (actual != expected)
        fail<shape_error>(where, ": ", what, " has ", actual, " elements, expected ", expected, " (", why,
                          ")");
}

/// Two ranges may be the same range or disjoint; a partial overlap would read values already written.
inline void check_no_partial_overlap(const char* where, const char* a_name, const void* a, std::size_t a_bytes,
                                     const char* b_name, const void* b, std::size_t b_bytes) {
    auto a0 = reinterpret_cast<std::uintptr_t>(a), b0 = reinterpret_cast<std::uintptr_t>(b);
    bool disjoint = a0 + a_bytes <= b0 || b0 + b_bytes <= a0;
    bool same = a0 == b0 && a_bytes == b_bytes;
    if (!disjoint && !same && a_bytes != 0 && b_bytes != 0)
        fail<aliasing_error>(where, ": ", a_name, " and ", b_name,
                             " overlap in memory; pass the same range for in-place use or disjoint ranges");
}

/// An output that shares any byte with an input: the kernels read inputs after writing outputs.
inline void check_disjoint_memory(const char* where, const char* out_name, const void* out, std::size_t out_bytes,
                                  const char* in_name, const void* in, std::size_t in_bytes) {
    auto o = reinterpret_cast<std::uintptr_t>(out), i = reinterpret_cast<std::uintptr_t>(in);
    if (out_bytes != 0 && in_bytes != 0 && o < i + in_bytes && i < o + out_bytes)
        fail<aliasing_error>(where, ": ", out_name, " and ", in_name,
                             " overlap in memory; the output cannot share memory with an input");
}

} // namespace detail
} // namespace lacuna
