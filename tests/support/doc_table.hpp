// Tests that hold a page of docs/ to the library: the page's table rows, read with a pattern, and the
// check that every call a test keeps for the page has exactly one row there (and no row lacks a call).
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "support/catch.hpp"

namespace lacuna::test {

/// The captures of every line of docs/<page> that `pattern` matches whole, in page order.
inline std::vector<std::vector<std::string>> doc_rows(const std::string& page, const std::string& pattern) {
    std::ifstream in(std::string(LACUNA_DOCS_DIR) + "/" + page);
    REQUIRE(in);
    const std::regex line_pattern(pattern);
    std::vector<std::vector<std::string>> rows;
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, line_pattern)) rows.emplace_back(m.begin() + 1, m.end());
    }
    return rows;
}

/// Every key of `calls` is the id (first capture) of exactly one row, and every row has its call.
template <class Call>
void check_one_row_per_call(const std::map<std::string, Call>& calls, const std::vector<std::vector<std::string>>& rows) {
    for (const auto& entry : calls) {
        INFO(entry.first);
        CHECK(std::count_if(rows.begin(), rows.end(), [&](const auto& r) { return r[0] == entry.first; }) == 1);
    }
    CHECK(rows.size() == calls.size());
}

} // namespace lacuna::test
