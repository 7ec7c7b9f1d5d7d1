// Stage-2 geometry KVM programs for each granule and IPA size, and the hardware's
// reading of VTCR_EL2 (arm64 case ids 1-5 name the cases of the reference table).
#include <catch2/catch.hpp>

#include "models/stage2/vmsa.hpp"

using namespace hvsim::stage2;

namespace {
struct Row {
    Granule g;
    unsigned ipa, levels;
    int start;
    unsigned sl0, t0sz;
    uint64_t root_entries;
    unsigned concat;
};
// Linux stage2_pgtable.h / kvm_get_vtcr() applied to every granule and IPA size.
const Row kRows[] = {
    {Granule::k4K, 40, 3, 1, 1, 24, 1024, 2},     {Granule::k4K, 44, 4, 0, 2, 20, 32, 1},
    {Granule::k4K, 48, 4, 0, 2, 16, 512, 1},      {Granule::k4K, 52, 4, 0, 2, 12, 8192, 16},
    {Granule::k16K, 40, 2, 2, 1, 24, 32768, 16},  {Granule::k16K, 44, 3, 1, 2, 20, 256, 1},
    {Granule::k16K, 48, 3, 1, 2, 16, 4096, 2},    {Granule::k16K, 52, 4, 0, 3, 12, 32, 1},
    {Granule::k64K, 40, 2, 2, 1, 24, 2048, 1},    {Granule::k64K, 44, 2, 2, 1, 20, 32768, 4},
    {Granule::k64K, 48, 3, 1, 2, 16, 64, 1},      {Granule::k64K, 52, 3, 1, 2, 12, 1024, 1},
};
}  // namespace

TEST_CASE("geometry: KVM's stage-2 levels, start level, SL0, T0SZ and root per granule and IPA size") {
    for (const Row& r : kRows) {
        INFO("granule shift " << granule_shift(r.g) << ", IPA " << r.ipa);
        const S2Geometry geo = kvm_stage2_geometry(r.g, r.ipa);
        CHECK(geo.levels == r.levels);
        CHECK(geo.start_level == r.start);
        CHECK(geo.root_entries() == r.root_entries);
        CHECK(geo.concat == r.concat);
        const uint64_t v = kvm_vtcr(geo);
        CHECK((v & vtcr::T0SZ_MASK) == r.t0sz);
        CHECK(((v & vtcr::SL0_MASK) >> vtcr::SL0_SHIFT) == r.sl0);
        CHECK(!(v & vtcr::HD));   // KVM leaves stage-2 hardware dirty state off
        CHECK(bool(v & vtcr::DS) == (r.ipa == 52 && r.g != Granule::k64K));
        // The hardware's reading of the register gives the same walk.
        const S2Geometry hw = decode_vtcr(v);
        CHECK(hw.granule == r.g);
        CHECK(hw.ipa_bits == r.ipa);
        CHECK(hw.start_level == r.start);
        CHECK(hw.levels == r.levels);
        CHECK(hw.concat == r.concat);
    }
}

TEST_CASE("geometry: arm64 case 1: 4K, IPA 40 -> T0SZ 24, SL0 1, 3 levels, two concatenated root pages") {
    const S2Geometry g = kvm_stage2_geometry(Granule::k4K, 40);
    CHECK(g.root_bytes() == 8192);
    // IPA 0xFF_FFFF_F000 takes the last root entry (index 1023, in the second page).
    CHECK(((0xFFFFFFF000ull >> level_shift(Granule::k4K, g.start_level)) & (g.root_entries() - 1)) == 1023);
}

TEST_CASE("geometry: arm64 case 3: 4K, IPA 52 (LPA2) starts at level 0 with 16 root pages, never level -1") {
    const S2Geometry g = kvm_stage2_geometry(Granule::k4K, 52);
    CHECK(g.start_level == 0);
    CHECK(g.concat == 16);
    CHECK(g.ds);
}

TEST_CASE("geometry: arm64 case 4: 16K, IPA 40 -> SL0 1, 2 levels, 16 tables (256 KiB), largest block 32 MiB") {
    const S2Geometry g = kvm_stage2_geometry(Granule::k16K, 40);
    CHECK(g.levels == 2);
    CHECK(g.root_bytes() == 256 * 1024);
    CHECK(level_size(Granule::k16K, min_block_level(Granule::k16K)) == 32ull << 20);
}

TEST_CASE("geometry: arm64 case 5: 64K, IPA 44 -> 2 levels from L2, 4 tables, L2 block = 512 MiB") {
    const S2Geometry g = kvm_stage2_geometry(Granule::k64K, 44);
    CHECK(g.start_level == 2);
    CHECK(g.concat == 4);
    CHECK(level_size(Granule::k64K, 2) == 512ull << 20);
}

TEST_CASE("geometry: VTCR_EL2 values the hardware refuses") {
    // SL0 = 3 with the 4K granule would start at level -1 (not without DS and SL2).
    uint64_t v = kvm_vtcr(kvm_stage2_geometry(Granule::k4K, 40));
    v = (v & ~vtcr::SL0_MASK) | (3ull << vtcr::SL0_SHIFT);
    CHECK_THROWS(decode_vtcr(v));
    // 4K starting at level 2 with a 48-bit IPA would need 512 concatenated tables.
    v = kvm_vtcr(kvm_stage2_geometry(Granule::k4K, 48));
    v = (v & ~vtcr::SL0_MASK) | (0ull << vtcr::SL0_SHIFT);
    CHECK_THROWS(decode_vtcr(v));
    CHECK_THROWS(granule_of_tg0(3));
}

TEST_CASE("geometry: stage-1 levels from TCR_EL1 T0SZ and TG0") {
    CHECK(s1_geometry(Granule::k4K, 48).levels == 4);
    CHECK(s1_geometry(Granule::k4K, 39).levels == 3);
    CHECK(s1_geometry(Granule::k16K, 47).levels == 3);
    CHECK(s1_geometry(Granule::k16K, 48).levels == 4);
    CHECK(s1_geometry(Granule::k64K, 42).levels == 2);
    CHECK(s1_geometry(Granule::k64K, 48).levels == 3);
}

TEST_CASE("geometry: descriptor output address round-trips for 64K (PA[51:48]) and LPA2 (PA[51:50])") {
    const uint64_t pa64 = 0xA'1234'5678'0000ull;   // bits 51:48 = 0xA
    CHECK(desc::oa(desc::make_oa(pa64, Granule::k64K, false), Granule::k64K, false) == pa64);
    const uint64_t pa4 = 0xC'1234'5678'9000ull;
    CHECK(desc::oa(desc::make_oa(pa4, Granule::k4K, true), Granule::k4K, true) == pa4);
    CHECK(desc::oa(desc::make_oa(pa4, Granule::k4K, false), Granule::k4K, false) == (pa4 & ((1ull << 48) - 1)));
}
