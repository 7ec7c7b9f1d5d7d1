#include <catch2/catch.hpp>

#include "models/mmu/x86_pte.hpp"

using namespace hvsim;
using namespace hvsim::mmu;

TEST_CASE("x86 long-mode entries: leaves, tables, address masks", "[mmu][pte]") {
    CHECK(pte::make_table(0x1234'5000) == (pte::P | pte::RW | pte::US | 0x1234'5000));
    CHECK(pte::make_leaf(0x1234'5000, PgLevel::k4K, true, true) == (pte::P | pte::RW | pte::US | 0x1234'5000));
    CHECK(pte::make_leaf(0x1234'5000, PgLevel::k4K, false, false) == (pte::P | pte::US | pte::NX | 0x1234'5000));
    // 2M leaf: PS set, address below 2M dropped.
    CHECK(pte::make_leaf(0x4020'1000, PgLevel::k2M, true, true) == (pte::P | pte::RW | pte::US | pte::PS | 0x4020'0000));
    CHECK(pte::make_leaf(0x1'4000'0000, PgLevel::k1G, false, true) == (pte::P | pte::US | pte::PS | 0x1'4000'0000));

    CHECK(pte::is_leaf(0, 1));                       // a PTE is always a leaf
    CHECK(pte::is_leaf(pte::PS, 2));
    CHECK(pte::is_leaf(pte::PS, 3));
    CHECK_FALSE(pte::is_leaf(pte::PS, 4));           // reserved there, not a 512G page
    CHECK_FALSE(pte::is_leaf(pte::P, 2));

    // Bit 12 is PAT in a large leaf and must not leak into the frame address.
    const uint64_t big = pte::P | pte::PS | (1ull << 12) | 0x8'4000'0000ull;
    CHECK(pte::addr(big, 3) == 0x8'4000'0000ull);
    CHECK(pte::addr(pte::P | pte::PS | (1ull << 12) | 0x60'0000, 2) == 0x60'0000);
    CHECK(pte::addr(pte::P | pte::NX | 0x000f'ffff'ffff'f000ull | 0x7ff, 1) == 0x000f'ffff'ffff'f000ull);
    CHECK(pte::addr(pte::P | (1ull << 12) | 0x60'0000, 2) == 0x60'1000);   // table pointer: no masking
}

TEST_CASE("NestedPte gives NPT the x86 format and EPT its own", "[mmu][pte]") {
    constexpr NestedPte npt{NestedFormat::npt}, ept{NestedFormat::ept};
    static_assert(npt.accessed_bit() == 0x20 && npt.dirty_bit() == 0x40);
    static_assert(ept.accessed_bit() == 0x100 && ept.dirty_bit() == 0x200);

    CHECK(npt.make_table(0x9000) == pte::make_table(0x9000));
    CHECK(npt.make_leaf(0x20'0000, PgLevel::k2M, true, false) == pte::make_leaf(0x20'0000, PgLevel::k2M, true, false));

    CHECK(ept.make_table(0x9000) == 0x9007);
    // R | W | memtype WB (6 << 3) | IPAT | address, no X.
    CHECK(ept.make_leaf(0x5000, PgLevel::k4K, true, false) == 0x5073);
    CHECK(ept.make_leaf(0x4000'0000, PgLevel::k1G, false, true) == (0x4000'0000ull | 0x80 | 0x40 | 0x30 | 0x4 | 0x1));

    const uint64_t xo = ept::X | 0x7000;   // execute-only
    CHECK(ept.present(xo));
    CHECK_FALSE(ept.readable(xo));
    CHECK_FALSE(ept.writable(xo));
    CHECK(ept.executable(xo));
    CHECK_FALSE(ept.present(0x7000 | ept::A | ept::D));
    CHECK(ept.writable(ept.make_writable(xo)));
    CHECK(ept.write_protect(0x5073) == 0x5071);
    CHECK(ept.is_leaf(ept.make_leaf(0x20'0000, PgLevel::k2M, true, true), 2));
    CHECK(ept.addr(ept.make_leaf(0x20'0000, PgLevel::k2M, true, true), 2) == 0x20'0000);

    CHECK(npt.user(pte::P | pte::US));
    CHECK_FALSE(npt.user(pte::P));
    CHECK(ept.user(ept::R));
    CHECK_FALSE(npt.executable(pte::P | pte::NX));
    CHECK(npt.write_protect(pte::make_table(0x9000)) == (pte::P | pte::US | 0x9000));
}
