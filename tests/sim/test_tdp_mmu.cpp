// The TDP MMU writes real nested entries; the hardware walker must find exactly what
// KVM installed. Split, collapse and range zaps are checked entry by entry.
#include <catch2/catch.hpp>

#include "kernel/costs.hpp"
#include "kernel/mmu/tdp_mmu.hpp"
#include "models/mem/cache.hpp"
#include "models/mmu/mmu.hpp"

using namespace hvsim;
using namespace hvsim::kvm;

namespace {

struct Rig {
    PhysMem mem;
    HostPageAllocator alloc{Hpa(1ull << 30), 4ull << 30};
    CycleCounter ctx;
    TdpMmu tdp;
    // The preset's costs (KvmCosts defaults are the zen4-genoa values, tests/sim/test_costs.cpp).
    static TdpMmuCosts costs() {
        const KvmCosts c{};
        return TdpMmuCosts{c.spte_write, c.sp_alloc, c.zap_spte, c.split_huge_page};
    }
    explicit Rig(mmu::NestedFormat f = mmu::NestedFormat::npt) : tdp(mem, alloc, 4, f, costs()) {}
};

MemHierarchyConfig hier() {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 32768, 8, 4}};
    c.dram_cycles = 200;
    return c;
}

}  // namespace

TEST_CASE("a 4K mapping is found by lookup and by the hardware walker", "[tdp]") {
    for (auto fmt : {mmu::NestedFormat::npt, mmu::NestedFormat::ept}) {
        Rig r(fmt);
        bool flush = false;
        CHECK(r.tdp.map(Gfn(0x12345), Pfn(0x200000), PgLevel::k4K, true, &flush, r.ctx) == MapResult::fixed);
        CHECK_FALSE(flush);
        // Root + 3 tables below it.
        CHECK(r.tdp.stats().sp_allocated == 4);
        auto leaf = r.tdp.lookup(Gfn(0x12345));
        REQUIRE(leaf);
        CHECK(leaf->pfn == Pfn(0x200000));
        CHECK(leaf->level == PgLevel::k4K);
        CHECK(r.tdp.map(Gfn(0x12345), Pfn(0x200000), PgLevel::k4K, true, &flush, r.ctx) == MapResult::spurious);

        CacheHierarchy ch(hier());
        mmu::MmuConfig mc;
        mc.guest_levels = 0;
        mc.nested_format = fmt;
        mmu::Mmu hw(mc, r.mem, ch);
        hw.set_nested_root(r.tdp.root_hpa());
        auto t = hw.translate(Gva(0x12345678), mmu::AccessType::write, false);
        REQUIRE(t.ok());
        CHECK(t.hpa == Hpa((0x200000ull << 12) | 0x678));
        CHECK(t.mem_refs == 4);
        auto miss = hw.translate(Gva(0x22345678), mmu::AccessType::read, false);
        CHECK(miss.status == mmu::TranslateResult::Status::npf);
        CHECK(miss.fault_gpa == Gpa(0x22345678));
    }
}

TEST_CASE("mapping 4K under a 2M leaf splits it, keeping every other page mapped", "[tdp]") {
    Rig r;
    bool flush = false;
    r.tdp.map(Gfn(0x400), Pfn(0x40000), PgLevel::k2M, true, &flush, r.ctx);
    CHECK(r.tdp.stats().leaves_2m == 1);
    flush = false;
    r.tdp.map(Gfn(0x405), Pfn(0x90005), PgLevel::k4K, true, &flush, r.ctx);
    CHECK(flush);
    CHECK(r.tdp.stats().huge_splits == 1);
    CHECK(r.tdp.stats().leaves_2m == 0);
    CHECK(r.tdp.stats().leaves_4k == 512);
    CHECK(r.tdp.lookup(Gfn(0x405))->pfn == Pfn(0x90005));
    CHECK(r.tdp.lookup(Gfn(0x406))->pfn == Pfn(0x40006));
    CHECK(r.tdp.lookup(Gfn(0x5ff))->pfn == Pfn(0x401ff));
}

TEST_CASE("mapping 2M over a table frees the table and its leaves", "[tdp]") {
    Rig r;
    bool flush = false;
    for (uint64_t i = 0; i < 8; ++i) r.tdp.map(Gfn(0x600 + i), Pfn(0x70000 + i), PgLevel::k4K, true, &flush, r.ctx);
    const uint64_t before = r.tdp.stats().sp_allocated;
    const uint64_t used = r.alloc.used_pages();
    r.tdp.map(Gfn(0x600), Pfn(0x80000), PgLevel::k2M, true, &flush, r.ctx);
    CHECK(flush);
    CHECK(r.tdp.stats().sp_allocated == before);
    CHECK(r.tdp.stats().sp_freed == 1);
    CHECK(r.alloc.used_pages() == used - 1);
    CHECK(r.tdp.stats().leaves_4k == 0);
    CHECK(r.tdp.stats().leaves_2m == 1);
    CHECK(r.tdp.lookup(Gfn(0x7ff))->pfn == Pfn(0x801ff));
}

TEST_CASE("zap_leafs clears exactly the overlapping leaves, a partly covered huge leaf goes whole", "[tdp]") {
    Rig r;
    bool flush = false;
    for (uint64_t i = 0; i < 16; ++i) r.tdp.map(Gfn(i), Pfn(0x1000 + i), PgLevel::k4K, true, &flush, r.ctx);
    r.tdp.map(Gfn(0x200), Pfn(0x2000 * 0 + 0x40000), PgLevel::k2M, true, &flush, r.ctx);
    CHECK(r.tdp.zap_leafs(Gfn(4), Gfn(8), r.ctx) == 4);
    CHECK(r.tdp.lookup(Gfn(3)));
    CHECK_FALSE(r.tdp.lookup(Gfn(4)));
    CHECK_FALSE(r.tdp.lookup(Gfn(7)));
    CHECK(r.tdp.lookup(Gfn(8)));
    // One gfn inside the 2M leaf zaps the whole leaf (tdp_mmu_zap_leafs()).
    CHECK(r.tdp.zap_leafs(Gfn(0x300), Gfn(0x301), r.ctx) == 1);
    CHECK_FALSE(r.tdp.lookup(Gfn(0x200)));
    CHECK(r.tdp.stats().sptes_zapped == 5);
    // A huge empty range costs only what is present.
    CycleCounter c;
    CHECK(r.tdp.zap_leafs(Gfn(1ull << 20), Gfn(1ull << 35), c) == 0);
    CHECK(c.total == 0);
}

TEST_CASE("issue 15 item 14: SPTEs carry the A/D bits make_spte() presets, so the walker writes none", "[tdp]") {
    for (auto fmt : {mmu::NestedFormat::npt, mmu::NestedFormat::ept}) {
        CAPTURE(int(fmt));
        Rig r(fmt);
        bool flush = false;
        REQUIRE(r.tdp.map(Gfn(0x12345), Pfn(0x200000), PgLevel::k4K, true, &flush, r.ctx) == MapResult::fixed);
        REQUIRE(r.tdp.map(Gfn(0x12346), Pfn(0x200001), PgLevel::k4K, false, &flush, r.ctx) == MapResult::fixed);
        CacheHierarchy ch(hier());
        mmu::MmuConfig mc;
        mc.guest_levels = 0;
        mc.nested_format = fmt;
        mmu::Mmu hw(mc, r.mem, ch);
        hw.set_nested_root(r.tdp.root_hpa());
        // A write through the writable leaf: A in every entry and D in the leaf are preset.
        REQUIRE(hw.translate(Gva(0x12345678), mmu::AccessType::write, false).ok());
        CHECK(hw.stats().ad_writes == 0);
        // A read through the read-only leaf: A preset, D not (nothing to write either).
        REQUIRE(hw.translate(Gva(0x12346000), mmu::AccessType::read, false).ok());
        CHECK(hw.stats().ad_writes == 0);
        // The same mapping again is spurious whatever A/D the CPU added.
        CHECK(r.tdp.map(Gfn(0x12345), Pfn(0x200000), PgLevel::k4K, true, &flush, r.ctx) == MapResult::spurious);
        // A split keeps the huge leaf's A/D in the 4K children.
        REQUIRE(r.tdp.map(Gfn(0x400), Pfn(0x40000), PgLevel::k2M, true, &flush, r.ctx) == MapResult::fixed);
        REQUIRE(r.tdp.map(Gfn(0x405), Pfn(0x90005), PgLevel::k4K, true, &flush, r.ctx) == MapResult::fixed);
        hw.flush_all();
        REQUIRE(hw.translate(Gva(0x406000), mmu::AccessType::write, false).ok());
        CHECK(hw.stats().ad_writes == 0);
    }
}
