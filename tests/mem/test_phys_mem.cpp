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
    // The middle page became all 0x5a and shares the uniform copy.
    CHECK(m.pages_resident() == 3);
    CHECK(m.pages_uniform() == 1);
    CHECK(m.is_uniform(Pfn(0x11)));
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

TEST_CASE("uniform pages share one copy and are copied on write", "[mem]") {
    PhysMem m;
    for (uint64_t p = 0; p < 1000; ++p) m.fill(Hpa(p << 12), 0x5a, 4096);
    CHECK(m.pages_resident() == 0);
    CHECK(m.pages_uniform() == 1000);
    CHECK(m.read64(Hpa(0x3f8)) == 0x5a5a5a5a5a5a5a5aull);
    // A store that breaks the pattern gives that page its own copy, others unchanged.
    m.write64(Hpa(0x5000), 1);
    CHECK(m.pages_resident() == 1);
    CHECK(m.pages_uniform() == 999);
    CHECK(m.read64(Hpa(0x5000)) == 1);
    CHECK(m.read64(Hpa(0x5008)) == 0x5a5a5a5a5a5a5a5aull);
    CHECK(m.read64(Hpa(0x6000)) == 0x5a5a5a5a5a5a5a5aull);
    // Line-by-line stores that complete a uniform page share it again at the end.
    for (uint64_t off = 0; off < 4096; off += 64) m.fill(Hpa(0x5000 + off), 0x77, 64);
    CHECK(m.is_uniform(Pfn(5)));
    CHECK(m.pages_resident() == 0);
    // Writing the same value into a shared page changes nothing.
    m.fill(Hpa(0x7040), 0x5a, 64);
    CHECK(m.is_uniform(Pfn(7)));
    m.discard(Pfn(7));
    CHECK(m.pages_uniform() == 999);
    CHECK(m.read64(Hpa(0x7000)) == 0);
    // page() for writing never hands out the shared copy.
    uint8_t* p = m.page(Pfn(8));
    p[0] = 9;
    CHECK(m.read64(Hpa(0x9000)) == 0x5a5a5a5a5a5a5a5aull);
    CHECK(m.read64(Hpa(0x8000)) == 0x5a5a5a5a5a5a5a09ull);
}
