#include "sim/json_util.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include <fmt/format.h>

namespace hvsim::jsonu {

namespace {

constexpr size_t kMaxQuoted = 40;

const char* size_what(bool short_suffix) {
    return short_suffix ? "a size (non-negative integer, \"0x...\" hex string, \"<n>K|M|G\" or \"<n>KiB|MiB|GiB\")"
                        : "a size (non-negative integer, \"0x...\" hex string, or \"<n>KiB|MiB|GiB|TiB\")";
}

[[noreturn]] void fail(const std::string& expected, const std::string& got) {
    throw ValueError("expected " + expected + ", got " + got);
}

bool is_hex_prefix(std::string_view s) { return s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'); }

// Hex digits after "0x"; nullopt on a bad digit, an empty body or overflow.
std::optional<uint64_t> parse_hex_body(std::string_view body) {
    if (body.empty()) return std::nullopt;
    uint64_t v = 0;
    for (char c : body) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return std::nullopt;
        if (v > (UINT64_MAX >> 4)) return std::nullopt;
        v = (v << 4) | uint64_t(d);
    }
    return v;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

}  // namespace

std::string quote(std::string_view s) {
    std::string body(s);
    bool cut = false;
    if (body.size() > kMaxQuoted) {
        body.resize(kMaxQuoted);
        cut = true;
    }
    // json::dump escapes quotes and control characters, so a message stays on one line.
    std::string q = nlohmann::json(body).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (cut) q.insert(q.size() - 1, "...");
    return q;
}

std::string describe(const nlohmann::json& v) {
    switch (v.type()) {
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return quote(v.get_ref<const std::string&>());
    case nlohmann::json::value_t::discarded: return "nothing";
    default: return v.dump();
    }
}

uint64_t parse_size_text(std::string_view s, bool short_suffix) {
    const std::string got = quote(s);
    if (s.empty()) fail(size_what(short_suffix), got);
    if (is_hex_prefix(s)) {
        auto v = parse_hex_body(s.substr(2));
        if (!v) fail(size_what(short_suffix), got);
        return *v;
    }
    if (s[0] == '-') fail(size_what(short_suffix), got);
    size_t i = 0;
    uint64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        const uint64_t d = uint64_t(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10) fail("a size below 2^64 bytes", got);
        n = n * 10 + d;
        ++i;
    }
    if (i == 0) fail(size_what(short_suffix), got);
    if (i < s.size() && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) fail("a whole number of bytes", got);
    while (i < s.size() && s[i] == ' ') ++i;   // "4 KiB" reads as "4KiB"
    const std::string_view suffix = s.substr(i);
    if (suffix.empty()) return n;
    struct Suffix { const char* name; unsigned shift; bool short_form; };
    static constexpr Suffix kSuffixes[] = {
        {"KiB", 10, false}, {"MiB", 20, false}, {"GiB", 30, false}, {"TiB", 40, false}, {"PiB", 50, false},
        {"K", 10, true},    {"M", 20, true},    {"G", 30, true},    {"T", 40, true},
    };
    std::vector<std::string> allowed;
    for (const auto& x : kSuffixes) {
        if (x.short_form && !short_suffix) continue;
        allowed.emplace_back(x.name);
        if (suffix == x.name) {
            if (n > (UINT64_MAX >> x.shift)) fail("a size below 2^64 bytes", got);
            return n << x.shift;
        }
    }
    std::string expected = "a size suffix ";
    for (size_t k = 0; k < allowed.size(); ++k) {
        if (k) expected += k + 1 == allowed.size() ? " or " : ", ";
        expected += allowed[k];
    }
    throw ValueError("expected " + expected + ", got " + got + suggestion_suffix(suffix, allowed));
}

uint64_t parse_size(const nlohmann::json& v, bool short_suffix) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) {
        const int64_t x = v.get<int64_t>();
        if (x < 0) fail(size_what(short_suffix), describe(v));
        return uint64_t(x);
    }
    if (v.is_string()) return parse_size_text(v.get_ref<const std::string&>(), short_suffix);
    fail(size_what(short_suffix), describe(v));
}

uint64_t parse_uint(const nlohmann::json& v, uint64_t max, const std::string& what) {
    const std::string w = what.empty() ? (max == UINT64_MAX ? std::string("a non-negative integer")
                                                             : "an integer 0.." + std::to_string(max))
                                       : what;
    uint64_t x = 0;
    if (v.is_number_unsigned()) {
        x = v.get<uint64_t>();
    } else if (v.is_number_integer()) {
        if (v.get<int64_t>() < 0) fail(w, describe(v));
        x = uint64_t(v.get<int64_t>());
    } else if (v.is_string() && is_hex_prefix(v.get_ref<const std::string&>())) {
        auto h = parse_hex_body(std::string_view(v.get_ref<const std::string&>()).substr(2));
        if (!h) fail(w, describe(v));
        x = *h;
    } else {
        fail(w, describe(v));
    }
    if (x > max) fail(w, describe(v));
    return x;
}

int64_t parse_int_text(std::string_view s, int64_t min, int64_t max, const std::string& what) {
    const std::string got = quote(s);
    bool neg = false;
    std::string_view body = s;
    if (!body.empty() && body[0] == '-') {
        neg = true;
        body.remove_prefix(1);
    }
    std::optional<uint64_t> mag;
    if (is_hex_prefix(body)) {
        mag = parse_hex_body(body.substr(2));
    } else if (!body.empty() && std::all_of(body.begin(), body.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        uint64_t n = 0;
        bool ok = true;
        for (char c : body) {
            const uint64_t d = uint64_t(c - '0');
            if (n > (UINT64_MAX - d) / 10) { ok = false; break; }
            n = n * 10 + d;
        }
        if (ok) mag = n;
    }
    if (!mag) fail(what, got);
    const uint64_t lim = neg ? uint64_t(std::numeric_limits<int64_t>::max()) + 1 : uint64_t(std::numeric_limits<int64_t>::max());
    if (*mag > lim) fail(what, got);
    const int64_t val = neg ? int64_t(0 - *mag) : int64_t(*mag);
    if (val < min || val > max) fail(what, got);
    return val;
}

uint8_t parse_byte(const nlohmann::json& v) {
    return uint8_t(parse_uint(v, 255, "a byte value 0..255 (integer or \"0x..\" hex string)"));
}

std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

std::string format_size(uint64_t b) {
    if (b == 0) return "0";
    static constexpr struct { unsigned shift; const char* name; } kUnits[] = {
        {50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
    for (const auto& u : kUnits)
        if ((b & ((1ull << u.shift) - 1)) == 0) return std::to_string(b >> u.shift) + u.name;
    return std::to_string(b);
}

std::string pointer_token(std::string_view key) {
    std::string r;
    for (char c : key) {
        if (c == '~') r += "~0";
        else if (c == '/') r += "~1";
        else r += c;
    }
    return r;
}

size_t edit_distance(std::string_view a, std::string_view b) {
    const size_t n = a.size(), m = b.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i) {
        for (size_t j = 1; j <= m; ++j) {
            const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[n][m];
}

std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    if (word.empty() || candidates.empty()) return std::nullopt;
    const std::string lw = lower(word);
    for (const auto& c : candidates)
        if (lower(c) == lw) return c;
    // A typo in a short word is one edit; longer words (dotted parameter names) allow more.
    const size_t max_d = std::max<size_t>(1, word.size() / 3);
    size_t best = SIZE_MAX;
    const std::string* pick = nullptr;
    for (const auto& c : candidates) {
        const size_t d = edit_distance(lw, lower(c));
        if (d < best) {
            best = d;
            pick = &c;
        }
    }
    if (pick && best <= max_d && best < word.size()) return *pick;
    // An unambiguous abbreviation ("sapphire" for "sapphire-rapids").
    if (word.size() >= 3) {
        const std::string* only = nullptr;
        for (const auto& c : candidates) {
            if (lower(c).rfind(lw, 0) == 0) {
                if (only) return std::nullopt;
                only = &c;
            }
        }
        if (only) return *only;
    }
    return std::nullopt;
}

std::string suggestion_suffix(std::string_view word, const std::vector<std::string>& candidates) {
    auto s = did_you_mean(word, candidates);
    return s ? " (did you mean '" + *s + "'?)" : std::string();
}

std::string join_list(const std::vector<std::string>& items) {
    std::string r = "[";
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) r += ", ";
        r += items[i];
    }
    return r + "]";
}

}  // namespace hvsim::jsonu
