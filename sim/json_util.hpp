// Small helpers shared by the scenario loader and the parameter registry: size and
// integer parsing with "expected X, got Y" errors, a short description of a JSON value
// for messages, JSON-pointer escaping and did-you-mean suggestions.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hvsim::jsonu {

// A value did not have the expected form. what() is "expected <what>, got <what>",
// without file or pointer: the caller knows where the value sits.
struct ValueError : std::runtime_error {
    using runtime_error::runtime_error;
};

// How a value is shown after "got": 12, -1, 1.5, "4KB", true, null, an object, an array.
// Long strings are cut so an error stays one readable line.
std::string describe(const nlohmann::json& v);

// Quoted text as describe() shows a string.
std::string quote(std::string_view s);

// Byte sizes and addresses: a non-negative JSON integer, a hex string "0x1000", a decimal
// string "4096", or a binary-suffixed string "4KiB", "2MiB", "1GiB", "1TiB", "1PiB"
// (optionally "4K"/"2M"/"1G"/"1T" when short_suffix is set). Throws ValueError.
uint64_t parse_size(const nlohmann::json& v, bool short_suffix = false);
uint64_t parse_size_text(std::string_view s, bool short_suffix = false);

// A non-negative integer no larger than max: a JSON integer or a hex string. Throws ValueError
// naming `what` (e.g. "an integer 1..1024").
uint64_t parse_uint(const nlohmann::json& v, uint64_t max = UINT64_MAX, const std::string& what = "");

// A signed integer in [min, max] from text: decimal or 0x-hex, optional leading '-'.
// Throws ValueError naming `what`.
int64_t parse_int_text(std::string_view s, int64_t min, int64_t max, const std::string& what);

// One byte 0..255: a JSON integer or a hex string "0x5a".
uint8_t parse_byte(const nlohmann::json& v);

// Renders a byte count the way a scenario would write it: "4KiB", "2MiB", else decimal.
std::string format_size(uint64_t bytes);
std::string hex(uint64_t v);

// RFC 6901 escaping of one reference token ('~' -> "~0", '/' -> "~1").
std::string pointer_token(std::string_view key);

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to word when it is close enough to be a plausible typo
// (distance scaled with the word's length; exact case-insensitive matches first).
std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string suggestion_suffix(std::string_view word, const std::vector<std::string>& candidates);

// "[a, b, c]" for messages.
std::string join_list(const std::vector<std::string>& items);

}  // namespace hvsim::jsonu
