// JSON parsing for untrusted files: like nlohmann::json::parse, but duplicate keys are errors (nlohmann
// silently keeps the last one, and other readers keep the first), NUL bytes are errors (nlohmann stops
// reading at one), and nesting is limited so hostile input stays cheap.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mlxd::detail {

// Parses `text` as one JSON value whose containers nest at most `max_depth` deep (a bare top-level object is
// depth 1). On failure returns nullopt and sets `error` to a one-line reason.
std::optional<nlohmann::json> parse_strict_json(std::string_view text, int max_depth, std::string& error);

// `s` in single quotes for an error message, with bytes outside printable ASCII written as \xNN and anything
// past 120 bytes replaced by "...".
std::string quote(std::string_view s);

}  // namespace mlxd::detail
