#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

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
    CHECK(m.pages_resident() == 0);   // one word over zeros: a patch, not a page
    CHECK(m.pages_patched() == 1);
    std::vector<uint8_t> in(6000, 0x5a), out(6000);
    m.write(Hpa(0x10ff0), in.data(), in.size());   // spans three pages
    m.read(Hpa(0x10ff0), out.data(), out.size());
    CHECK(out == in);
    // The middle page became all 0x5a and shares the uniform copy; the first holds 16
    // bytes as two patched words; the last (1888 bytes) has its own copy.
    CHECK(m.pages_resident() == 1);
    CHECK(m.pages_uniform() == 1);
    CHECK(m.pages_patched() == 2);
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
    // A store that breaks the pattern patches that page, others unchanged.
    m.write64(Hpa(0x5000), 1);
    CHECK(m.pages_resident() == 0);
    CHECK(m.pages_patched() == 1);
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

TEST_CASE("sparse stores into untouched or uniform pages are patches, not copies", "[mem]") {
    PhysMem m;
    unsigned changes = 0;
    m.set_page_listener([](void* c, uint64_t) { ++*static_cast<unsigned*>(c); }, &changes);
    // One 8-byte store per page over 1000 pages: no 4 KiB copies.
    for (uint64_t p = 0; p < 1000; ++p) m.fill(Hpa((p << 12) + 0x100), 0x07, 8);
    CHECK(m.pages_resident() == 0);
    CHECK(m.pages_patched() == 1000);
    CHECK(m.read64(Hpa(0x3100)) == 0x0707070707070707ull);
    CHECK(m.read64(Hpa(0x3108)) == 0);
    uint8_t buf[24];
    m.read(Hpa(0x30fc), buf, sizeof buf);   // 4 zeros, 8 sevens, 12 zeros
    for (unsigned i = 0; i < sizeof buf; ++i) CHECK(buf[i] == (i >= 4 && i < 12 ? 7 : 0));

    // A store of what is already there changes nothing.
    m.write64(Hpa(0x500000), 0);
    CHECK_FALSE(m.present(Pfn(0x500)));
    // Unaligned bytes across a word boundary take two words.
    const uint8_t three[3] = {1, 2, 3};
    m.write(Hpa(0x600006), three, 3);
    CHECK(m.read64(Hpa(0x600000)) == 0x0201000000000000ull);
    CHECK(m.read64(Hpa(0x600008)) == 0x03);

    // Over a uniform page the patch keeps its byte value; the grant of the uniform copy
    // is announced stale.
    m.fill(Hpa(0x700000), 0x5a, 4096);
    const unsigned before = changes;
    m.write64(Hpa(0x700ff8), 1);
    CHECK(changes == before + 1);
    CHECK(m.read64(Hpa(0x700ff8)) == 1);
    CHECK(m.read64(Hpa(0x700000)) == 0x5a5a5a5a5a5a5a5aull);
    CHECK_FALSE(m.is_uniform(Pfn(0x700)));

    // More distinct words than a patch holds: the page gets its own copy, bytes kept.
    for (unsigned w = 0; w < PhysMem::kPatchWords; ++w) m.write64(Hpa(0x800000 + 64 * w), w + 1);
    CHECK(m.pages_resident() == 0);
    m.write64(Hpa(0x800000 + 64 * PhysMem::kPatchWords), 99);
    CHECK(m.pages_resident() == 1);
    for (unsigned w = 0; w < PhysMem::kPatchWords; ++w) CHECK(m.read64(Hpa(0x800000 + 64 * w)) == w + 1);
    CHECK(m.read64(Hpa(0x800000 + 64 * PhysMem::kPatchWords)) == 99);
    CHECK(m.read64(Hpa(0x800008)) == 0);

    // A caller that wants the page's bytes at one address gets a copy with the same bytes.
    const size_t patched = m.pages_patched();
    const uint8_t* p = m.page_if_present(Pfn(0x700));
    REQUIRE(p != nullptr);
    CHECK(p[0] == 0x5a);
    CHECK(p[0xff8] == 1);
    CHECK(p[0xff9] == 0);
    CHECK(m.pages_patched() == patched - 1);
    CHECK(m.pages_resident() == 2);

    // A whole-page fill replaces a patch; discard frees one.
    m.fill(Hpa(0x3000), 0x11, 4096);
    CHECK(m.is_uniform(Pfn(3)));
    m.discard(Pfn(4));
    CHECK(m.read64(Hpa(0x4100)) == 0);
    CHECK(m.pages_patched() == patched - 3);
    m.set_page_listener(nullptr, nullptr);
}

TEST_CASE("page() found again through the lookaside never hands out a shared or dropped page", "[mem]") {
    PhysMem m;
    m.fill(Hpa(0x1000), 0x33, 4096);   // pages 1 and 2 share the uniform 0x33 copy
    m.fill(Hpa(0x2000), 0x33, 4096);
    CHECK(m.read64(Hpa(0x1000)) == 0x3333333333333333ull);   // page 1 now in the lookaside
    uint8_t* p = m.page(Pfn(1));   // copy on write, not the shared copy
    p[0] = 1;
    CHECK(m.read64(Hpa(0x2000)) == 0x3333333333333333ull);   // the other sharer is untouched
    CHECK(m.page(Pfn(1)) == p);                               // found again: the same copy
    CHECK(m.read64(Hpa(0x1000)) == 0x3333333333333301ull);
    m.discard(Pfn(1));
    const uint8_t* q = m.page(Pfn(1));   // a fresh page of zeros, not the freed copy's bytes
    CHECK(q[0] == 0);
    CHECK(m.read64(Hpa(0x1000)) == 0);
}

TEST_CASE("read_view reads a patched page without giving it its own copy", "[mem]") {
    PhysMem m;
    alignas(8) uint8_t scratch[kPageSize];
    CHECK(m.read_view(Pfn(9), 0, 8, scratch) == nullptr);   // untouched: zeros, nothing made

    m.fill(Hpa(0x5000), 0x5a, 4096);   // uniform 0x5a ...
    m.write64(Hpa(0x5ff8), 0x0102030405060708ull);   // ... with one word stored over it
    REQUIRE(m.pages_patched() == 1);
    const uint8_t* p = m.read_view(Pfn(5), 0xff4, 12, scratch);
    REQUIRE(p == scratch);
    for (unsigned i = 0; i < 4; ++i) CHECK(p[0xff4 + i] == 0x5a);
    for (unsigned i = 0; i < 8; ++i) CHECK(p[0xff8 + i] == 8 - i);   // little-endian word
    CHECK(m.pages_patched() == 1);
    CHECK(m.pages_resident() == 0);

    // A page with its own copy, and a uniform one, are read in place.
    m.fill(Hpa(0x6000), 0x11, 16);
    for (unsigned w = 0; w <= PhysMem::kPatchWords; ++w) m.write64(Hpa(0x6100 + 64 * w), w);
    REQUIRE(m.pages_resident() == 1);
    p = m.read_view(Pfn(6), 0, 16, scratch);
    REQUIRE(p != nullptr);
    CHECK(p != scratch);
    CHECK(p[15] == 0x11);
    m.fill(Hpa(0x7000), 0x22, 4096);
    p = m.read_view(Pfn(7), 100, 1, scratch);
    REQUIRE(p != nullptr);
    CHECK(p != scratch);
    CHECK(p[100] == 0x22);
}

TEST_CASE("discard_range drops every page of the range, across untouched radix leaves", "[mem]") {
    PhysMem m;
    // Pages in three different 1,024-page leaves, with untouched leaves between them.
    for (const uint64_t pfn : {uint64_t(5), uint64_t(1023), uint64_t(1024), uint64_t(5000), uint64_t(9000)})
        m.fill(pfn_to_hpa(Pfn(pfn)), 0x5a, 100);   // a patch or own copy each
    const size_t before = m.pages_resident() + m.pages_patched() + m.pages_uniform();
    REQUIRE(before == 5);
    m.discard_range(Pfn(6), 5000 - 6 + 1);   // 6 .. 5000: drops 1023, 1024 and 5000
    CHECK(m.pages_resident() + m.pages_patched() + m.pages_uniform() == 2);
    CHECK(m.read64(pfn_to_hpa(Pfn(5))) == 0x5a5a5a5a5a5a5a5aull);
    CHECK(m.read64(pfn_to_hpa(Pfn(1023))) == 0);
    CHECK(m.read64(pfn_to_hpa(Pfn(5000))) == 0);
    CHECK(m.read64(pfn_to_hpa(Pfn(9000))) == 0x5a5a5a5a5a5a5a5aull);
    m.discard_range(Pfn(0), 1ull << 20);
    CHECK(m.pages_resident() + m.pages_patched() + m.pages_uniform() == 0);
}

TEST_CASE("prefetch is a hint: untouched, patched, uniform and own pages stay as they were", "[mem]") {
    PhysMem m;
    m.write64(Hpa(0x1008), 7);                                     // a patch
    m.fill(Hpa(0x2000), 0xab, kPageSize);                          // uniform
    std::vector<uint8_t> own(kPageSize);
    for (size_t i = 0; i < own.size(); ++i) own[i] = uint8_t(i * 7);
    m.write(Hpa(0x3000), own.data(), own.size());                  // its own copy
    const size_t res = m.pages_resident(), pat = m.pages_patched(), uni = m.pages_uniform();
    for (uint64_t a : {0x0ull, 0x1008ull, 0x2040ull, 0x3ff8ull, 0x7fff'f000ull, ~0ull & ~7ull}) m.prefetch(Hpa(a));
    CHECK(m.pages_resident() == res);
    CHECK(m.pages_patched() == pat);
    CHECK(m.pages_uniform() == uni);
    CHECK_FALSE(m.present(Pfn(0)));
    CHECK(m.read64(Hpa(0x1008)) == 7);
    CHECK(m.read64(Hpa(0x2040)) == 0xababababababababull);
    uint64_t w;
    std::memcpy(&w, own.data() + 0xff8, 8);
    CHECK(m.read64(Hpa(0x3ff8)) == w);
}
