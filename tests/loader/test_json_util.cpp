#include <catch2/catch.hpp>

#include "sim/json_util.hpp"

using namespace hvsim::jsonu;
using nlohmann::json;

namespace {
std::string size_error(const json& j, bool short_suffix = false) {
    try {
        parse_size(j, short_suffix);
    } catch (const ValueError& e) {
        return e.what();
    }
    return "<no error>";
}
}  // namespace

TEST_CASE("parse_size accepts integers, hex and binary suffixes", "[json_util]") {
    CHECK(parse_size(json(0)) == 0);
    CHECK(parse_size(json(4096)) == 4096);
    CHECK(parse_size(json(18446744073709551615ull)) == 18446744073709551615ull);
    CHECK(parse_size(json("0x7f0000000000")) == 0x7f0000000000ull);
    CHECK(parse_size(json("0XFFFFFFFFFFFFFFFF")) == ~0ull);
    CHECK(parse_size(json("4096")) == 4096);
    CHECK(parse_size(json("4KiB")) == 4096);
    CHECK(parse_size(json("2MiB")) == 2ull << 20);
    CHECK(parse_size(json("1GiB")) == 1ull << 30);
    CHECK(parse_size(json("64GiB")) == 64ull << 30);
    CHECK(parse_size(json("1TiB")) == 1ull << 40);
    CHECK(parse_size(json("3 KiB")) == 3072);
    CHECK(parse_size(json("4K"), true) == 4096);
    CHECK(parse_size(json("2M"), true) == 2ull << 20);
    CHECK(parse_size(json("1G"), true) == 1ull << 30);
}

TEST_CASE("parse_size rejects negatives, floats, bad suffixes and overflow", "[json_util]") {
    const std::string what = "a size (non-negative integer, \"0x...\" hex string, or \"<n>KiB|MiB|GiB|TiB\")";
    CHECK(size_error(json(-1)) == "expected " + what + ", got -1");
    CHECK(size_error(json(1.5)) == "expected " + what + ", got 1.5");
    CHECK(size_error(json(true)) == "expected " + what + ", got true");
    CHECK(size_error(json::array()) == "expected " + what + ", got an array");
    CHECK(size_error(json("-4KiB")) == "expected " + what + ", got \"-4KiB\"");
    CHECK(size_error(json("0x")) == "expected " + what + ", got \"0x\"");
    CHECK(size_error(json("0x12g")) == "expected " + what + ", got \"0x12g\"");
    CHECK(size_error(json("0x10000000000000000")) == "expected " + what + ", got \"0x10000000000000000\"");
    CHECK(size_error(json("KiB")) == "expected " + what + ", got \"KiB\"");
    CHECK(size_error(json("1.5GiB")) == "expected a whole number of bytes, got \"1.5GiB\"");
    CHECK(size_error(json("4KB")) ==
          "expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"4KB\" (did you mean 'KiB'?)");
    // The short forms are only for vm.guest_page_size.
    CHECK(size_error(json("4K")) == "expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"4K\"");
    CHECK(size_error(json("4kib")) ==
          "expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"4kib\" (did you mean 'KiB'?)");
    CHECK(size_error(json("16384PiB")) == "expected a size below 2^64 bytes, got \"16384PiB\"");
    CHECK(size_error(json("18446744073709551616")) == "expected a size below 2^64 bytes, got \"18446744073709551616\"");
    CHECK(size_error(json("4X"), true) ==
          "expected a size suffix KiB, MiB, GiB, TiB, PiB, K, M, G or T, got \"4X\"");
}

TEST_CASE("parse_uint, parse_byte and parse_int_text", "[json_util]") {
    CHECK(parse_uint(json(7), 10) == 7);
    CHECK(parse_uint(json("0x8000000000000000")) == 0x8000000000000000ull);
    CHECK_THROWS_WITH(parse_uint(json(11), 10), "expected an integer 0..10, got 11");
    CHECK_THROWS_WITH(parse_uint(json(-3)), "expected a non-negative integer, got -3");
    CHECK_THROWS_WITH(parse_uint(json("12")), "expected a non-negative integer, got \"12\"");
    CHECK(parse_byte(json("0x5a")) == 0x5a);
    CHECK(parse_byte(json(255)) == 255);
    CHECK_THROWS_WITH(parse_byte(json(256)), "expected a byte value 0..255 (integer or \"0x..\" hex string), got 256");
    CHECK(parse_int_text("-12", -100, 100, "x") == -12);
    CHECK(parse_int_text("0x10", 0, 100, "x") == 16);
    CHECK(parse_int_text("-9223372036854775808", INT64_MIN, INT64_MAX, "x") == INT64_MIN);
    CHECK_THROWS_WITH(parse_int_text("9223372036854775808", INT64_MIN, INT64_MAX, "an int"),
                      "expected an int, got \"9223372036854775808\"");
    CHECK_THROWS_WITH(parse_int_text("12a", 0, 100, "an int"), "expected an int, got \"12a\"");
    CHECK_THROWS_WITH(parse_int_text("", 0, 100, "an int"), "expected an int, got \"\"");
    CHECK_THROWS_WITH(parse_int_text("101", 0, 100, "an int"), "expected an int, got \"101\"");
}

TEST_CASE("describe and quote keep messages on one line", "[json_util]") {
    CHECK(describe(json(nullptr)) == "null");
    CHECK(describe(json::object()) == "an object");
    CHECK(describe(json("a\nb")) == "\"a\\nb\"");
    CHECK(describe(json(std::string(50, 'x'))) == "\"" + std::string(40, 'x') + "...\"");
    CHECK(pointer_token("a/b~c") == "a~1b~0c");
    CHECK(format_size(0) == "0");
    CHECK(format_size(4096) == "4KiB");
    CHECK(format_size(3ull << 30) == "3GiB");
    CHECK(format_size(4097) == "4097");
    CHECK(hex(0x7f0000000000ull) == "0x7f0000000000");
}

TEST_CASE("edit distance and did-you-mean", "[json_util]") {
    CHECK(edit_distance("", "abc") == 3);
    CHECK(edit_distance("stpes", "steps") == 1);            // one transposition
    CHECK(edit_distance("entrys", "entries") == 2);
    CHECK(edit_distance("kitten", "sitting") == 3);
    const std::vector<std::string> keys = {"name", "platform", "params", "seed", "vm", "steps", "expect"};
    CHECK(did_you_mean("stpes", keys) == std::optional<std::string>("steps"));
    CHECK(did_you_mean("paltform", keys) == std::optional<std::string>("platform"));
    CHECK(did_you_mean("VM", keys) == std::optional<std::string>("vm"));      // case-insensitive first
    CHECK_FALSE(did_you_mean("zzz", keys).has_value());
    CHECK_FALSE(did_you_mean("x", keys).has_value());
    CHECK(did_you_mean("sapphire", {"zen4-genoa", "sapphire-rapids"}) == std::optional<std::string>("sapphire-rapids"));
    CHECK(suggestion_suffix("g1", {"g0"}) == " (did you mean 'g0'?)");
    CHECK(suggestion_suffix("qqqq", {"g0"}).empty());
    CHECK(join_list({"a", "b"}) == "[a, b]");
}
