// The TDP MMU writes real nested entries; the hardware walker must find exactly what
// KVM installed. Split, collapse and range zaps are checked entry by entry.
#include <catch2/catch.hpp>

#include <functional>
#include <utility>
#include <vector>

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

namespace {

// A mirror root's external table as a firmware keeps it: what was set and removed, and
// what "another thread" does while a hook syncs (on_set).
struct ExternalLog final : ExternalSpteOps {
    std::vector<std::pair<uint64_t, PgLevel>> set, removed, split;
    std::function<void()> on_set;
    int link_external_spt(Gfn, PgLevel, Pfn, ExecContext&) override { return 0; }
    int set_external_spte(Gfn gfn, PgLevel level, Pfn, ExecContext&) override {
        set.emplace_back(gfn.raw(), level);
        if (on_set) {
            auto f = std::move(on_set);   // once
            on_set = nullptr;
            f();
        }
        return 0;
    }
    int remove_external_spte(Gfn gfn, PgLevel level, Pfn, ExecContext&) override {
        removed.emplace_back(gfn.raw(), level);
        return 0;
    }
    int split_external_spt(Gfn gfn, PgLevel level, Pfn, ExecContext&) override {
        split.emplace_back(gfn.raw(), level);
        return 0;
    }
};

}  // namespace

TEST_CASE("mirror root: a table another thread removes while a leaf hook runs is not freed under the walker, the "
          "fault retries",
          "[tdp][mirror]") {
    // The hook syncs, so another thread runs meanwhile: here it maps 2M over the table the
    // first fault is installing into (handle_removed_pt() frees that table). Before the
    // table pages were retired until the last walker left, the first fault then wrote its
    // leaf into a freed page (heap-use-after-free under ASan) and reported it installed.
    Rig r(mmu::NestedFormat::ept);
    ExternalLog ext;
    r.tdp.set_external_ops(&ext);
    bool flush = false;
    REQUIRE(r.tdp.map(Gfn(0x200), Pfn(0x40200), PgLevel::k4K, true, &flush, r.ctx) == MapResult::fixed);
    MapResult inner = MapResult::error;
    ext.on_set = [&] {
        bool f2 = false;
        inner = r.tdp.map(Gfn(0x200), Pfn(0x40200), PgLevel::k2M, true, &f2, r.ctx);
    };
    const uint64_t freed = r.tdp.stats().sp_freed;
    CHECK(r.tdp.map(Gfn(0x201), Pfn(0x40201), PgLevel::k4K, true, &flush, r.ctx) == MapResult::busy);
    CHECK(inner == MapResult::fixed);
    CHECK(r.tdp.stats().sp_freed == freed + 1);   // the table went once the walker left
    CHECK(r.tdp.stats().hook_races == 1);
    // The external leaf set during the race is removed again; the 2M leaf stays.
    REQUIRE(ext.removed.size() == 1);
    CHECK(ext.removed[0] == std::make_pair(uint64_t(0x201), PgLevel::k4K));
    const auto leaf = r.tdp.lookup(Gfn(0x201));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k2M);
    CHECK(leaf->pfn == Pfn(0x40201));
    CHECK(r.tdp.stats().leaves_2m == 1);
    CHECK(r.tdp.stats().leaves_4k == 0);
}

TEST_CASE("mirror root: a zap that covers part of a huge leaf splits it in the external table first", "[tdp][mirror]") {
    Rig r(mmu::NestedFormat::ept);
    ExternalLog ext;
    r.tdp.set_external_ops(&ext);
    bool flush = false;
    REQUIRE(r.tdp.map(Gfn(0x200), Pfn(0x40200), PgLevel::k2M, true, &flush, r.ctx) == MapResult::fixed);
    CHECK(r.tdp.zap_leafs(Gfn(0x201), Gfn(0x202), r.ctx) == 1);
    REQUIRE(ext.split.size() == 1);
    CHECK(ext.split[0] == std::make_pair(uint64_t(0x200), PgLevel::k2M));
    REQUIRE(ext.removed.size() == 1);
    CHECK(ext.removed[0] == std::make_pair(uint64_t(0x201), PgLevel::k4K));
    CHECK_FALSE(r.tdp.lookup(Gfn(0x201)));
    CHECK(r.tdp.lookup(Gfn(0x202))->level == PgLevel::k4K);
    CHECK(r.tdp.stats().leaves_4k == 511);
    // A zap of the whole 2M goes without a split; a direct root still zaps a partly covered
    // huge leaf whole (see above).
    REQUIRE(r.tdp.map(Gfn(0x400), Pfn(0x40400), PgLevel::k2M, true, &flush, r.ctx) == MapResult::fixed);
    CHECK(r.tdp.zap_leafs(Gfn(0x400), Gfn(0x600), r.ctx) == 1);
    CHECK(ext.split.size() == 1);
    CHECK(ext.removed.back() == std::make_pair(uint64_t(0x400), PgLevel::k2M));
    // A 4K fault inside a huge leaf splits it too.
    REQUIRE(r.tdp.map(Gfn(0x600), Pfn(0x40600), PgLevel::k2M, true, &flush, r.ctx) == MapResult::fixed);
    CHECK(r.tdp.map(Gfn(0x601), Pfn(0x40601), PgLevel::k4K, true, &flush, r.ctx) == MapResult::spurious);
    CHECK(ext.split.size() == 2);
    CHECK(r.tdp.has_table_at(Gfn(0x600), PgLevel::k2M));
    CHECK_FALSE(r.tdp.has_table_at(Gfn(0x800), PgLevel::k2M));
}
