#include <catch2/catch.hpp>

#include "models/mem/phys_mem.hpp"

using namespace hvsim;

TEST_CASE("untouched memory reads zero and allocates nothing", "[mem]") {
    PhysMem m;
    CHECK(m.read64(Hpa(0x123458)) == 0);
    uint8_t buf[16] = {1, 2, 3};
    m.read(Hpa(0xfff8), buf, sizeof buf);
    for (auto b : buf) CHECK(b == 0);
    CHECK(m.pages_resident() == 0);
}

TEST_CASE("writes allocate one page each and read back across page boundaries", "[mem]") {
    PhysMem m;
    m.write64(Hpa(0x1000), 0xdeadbeefcafef00dull);
    CHECK(m.read64(Hpa(0x1000)) == 0xdeadbeefcafef00dull);
    CHECK(m.pages_resident() == 1);
    std::vector<uint8_t> in(6000, 0x5a), out(6000);
    m.write(Hpa(0x10ff0), in.data(), in.size());   // spans three pages
    m.read(Hpa(0x10ff0), out.data(), out.size());
    CHECK(out == in);
    CHECK(m.pages_resident() == 4);
    // The highest representable frame (52-bit PA) works; beyond it throws.
    m.write64(Hpa((1ull << 52) - 8), 7);
    CHECK(m.read64(Hpa((1ull << 52) - 8)) == 7);
    CHECK_THROWS(m.write64(Hpa(1ull << 52), 1));
}

TEST_CASE("discard returns a page to zero and frees it", "[mem]") {
    PhysMem m;
    m.fill(Hpa(0x2000), 0xab, 4096);
    CHECK(m.read64(Hpa(0x2ff8)) == 0xababababababababull);
    m.discard(Pfn(2));
    CHECK(m.pages_resident() == 0);
    CHECK(m.read64(Hpa(0x2ff8)) == 0);
    // Zero-filling untouched memory does not allocate it.
    m.fill(Hpa(0x3000), 0, 4096);
    CHECK(m.pages_resident() == 0);
}
