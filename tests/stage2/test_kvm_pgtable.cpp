// KVM/arm64's stage-2 page-table code over real descriptors: leaf-size choice, break-
// before-make on every live change (checked by the BBM checker), broadcast TLB
// maintenance that every core's TLB obeys, table refcounts (arm64 case ids 8, 10, 26).
#include <catch2/catch.hpp>

#include <cerrno>
#include <vector>

#include "kernel/arm64/kvm_pgtable.hpp"
#include "models/stage2/bbm_checker.hpp"
#include "models/stage2/casemate_trace.hpp"

#include <sstream>
#include "models/stage2/stage2_mmu.hpp"
#include "tests/stage2/s2_builder.hpp"

using namespace hvsim;
using namespace hvsim::stage2;
using namespace hvsim::kvm::arm64;
using mmu::AccessType;

namespace {

struct BumpMemcache : PgtableMemcache {
    uint64_t next;
    uint64_t limit;
    std::vector<uint64_t> freed;
    BumpMemcache(uint64_t base, uint64_t pages) : next(base), limit(base + pages * kPageSize) {}
    std::optional<Hpa> alloc_table_page() override {
        if (!freed.empty()) {
            const uint64_t p = freed.back();
            freed.pop_back();
            return Hpa(p);
        }
        if (next >= limit) return std::nullopt;
        next += kPageSize;
        return Hpa(next - kPageSize);
    }
    void free_table_page(Hpa p) override { freed.push_back(p.raw()); }
};

struct Rig {
    PhysMem mem;
    test::CountingMemory port{mem};
    S2Geometry geo = kvm_stage2_geometry(Granule::k4K, 40);
    BumpMemcache mc{0x4100'0000, 64};
    TlbiDomain dom{TlbiCosts::uniform(10, 100, 20, 5)};
    BbmChecker chk;
    BbmChecker strict{BbmChecker::Mode::casemate_strict};
    KvmPgtable pgt{mem, mc, dom, geo, 3, Hpa(0x4000'0000), PgtableCosts{2, 50}, false};
    Stage2Mmu cpu0{Stage2Config{}, port}, cpu1{Stage2Config{}, port};
    CycleCounter ctx;
    Rig() {
        dom.add_sink(&chk);
        dom.add_sink(&strict);
        for (Stage2Mmu* c : {&cpu0, &cpu1}) {
            c->set_vtcr(kvm_vtcr(geo));
            c->set_vttbr(3, Hpa(0x4000'0000));
            dom.attach(*c);
        }
    }
    uint64_t pa(Stage2Mmu& c, uint64_t ipa, AccessType at = AccessType::read) {
        auto r = c.translate(Gva(ipa), at, false);
        return r.ok() ? r.hpa.raw() : ~0ull;
    }
};

constexpr uint32_t kRW = KVM_PGTABLE_PROT_R | KVM_PGTABLE_PROT_W;

}  // namespace

TEST_CASE("kvm_pgtable: arm64 case 8: map(ipa=0x201000, 2 MiB) installs 512 level-3 leaves, no block") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x201000, 2 << 20, 0x8020'1000, kRW, r.ctx) == 0);
    CHECK(r.pgt.stats().maps == 512);
    CHECK(r.pgt.stats().map_blocks == 0);
    CHECK(r.pa(r.cpu0, 0x201000) == 0x8020'1000);
    CHECK(r.pa(r.cpu0, 0x400fff) == 0x8040'0fff);
    CHECK(r.pa(r.cpu0, 0x401000) == ~0ull);
    CHECK(r.chk.ok());
}

TEST_CASE("kvm_pgtable: an aligned 2 MiB range becomes one level-2 block, 1 GiB one level-1 block") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x20'0000, 2 << 20, 0x8020'0000, kRW, r.ctx) == 0);
    CHECK(r.pgt.get_leaf(0x20'0000).second == 2);
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x4000'0000, 1 << 30, 0xC000'0000, kRW, r.ctx) == 0);
    CHECK(r.pgt.get_leaf(0x4000'0000).second == 1);
    CHECK(r.pgt.stats().map_blocks == 2);
    auto t = r.cpu0.translate(Gva(0x4123'4567), AccessType::write, false);
    REQUIRE(t.ok());
    CHECK(t.hpa.raw() == 0xC123'4567);
    CHECK(t.mem_refs == 1);
    // Mapping on invalid entries needs no TLBI: only the end-of-walk DSB ISHST.
    CHECK(r.dom.stats().tlbi == 0);
    // Cacheable and no FWB: the block was cleaned to PoC before it was made visible.
    CHECK(r.pgt.stats().cmo_bytes == (2u << 20) + (1ull << 30));
}

TEST_CASE("kvm_pgtable: remapping a live leaf to another page is break-before-make, seen by every core") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7000'0000, kRW, r.ctx) == 0);
    CHECK(r.pa(r.cpu0, 0x10'0000) == 0x7000'0000);
    CHECK(r.pa(r.cpu1, 0x10'0000) == 0x7000'0000);
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7100'0000, kRW, r.ctx) == 0);
    CHECK(r.pgt.stats().bbm == 1);
    CHECK(r.dom.stats().tlbi_broadcast == 2);   // IPAS2E1IS + VMALLE1IS
    CHECK(r.pa(r.cpu0, 0x10'0000) == 0x7100'0000);
    CHECK(r.pa(r.cpu1, 0x10'0000) == 0x7100'0000);
    CHECK(r.chk.ok());
    CHECK(r.strict.ok());
    CHECK(r.chk.bbm_sequences() == 1);
    // Identical again: another vCPU's fault raced and won (-EAGAIN, nothing written).
    CHECK(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7100'0000, kRW, r.ctx) == -EAGAIN);
    CHECK(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7100'0000, KVM_PGTABLE_PROT_R, r.ctx) == -EAGAIN);
}

TEST_CASE("kvm_pgtable: arm64 case 10: a 4K map inside a live 2 MiB block splits it with BBM, the rest re-faults") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x20'0000, 2 << 20, 0x8020'0000, KVM_PGTABLE_PROT_R, r.ctx) == 0);
    CHECK(r.pa(r.cpu1, 0x30'0000) == 0x8030'0000);
    const auto tables_before = r.pgt.stats().tables_allocated;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x21'0000, 4096, 0x8021'0000, kRW, r.ctx) == 0);
    CHECK(r.pgt.stats().tables_allocated == tables_before + 1);   // one memcache page
    CHECK(r.pgt.stats().bbm == 1);
    CHECK(r.pgt.get_leaf(0x21'0000).second == 3);
    CHECK(r.pa(r.cpu0, 0x21'0000, AccessType::write) == 0x8021'0000);
    // The block is gone on every core: the rest of the range faults back in lazily.
    CHECK(r.pa(r.cpu1, 0x30'0000) == ~0ull);
    CHECK(r.chk.ok());
}

TEST_CASE("kvm_pgtable: unmap clears leaves, invalidates every core, frees emptied tables") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 16 * 4096, 0x7000'0000, kRW, r.ctx) == 0);
    CHECK(r.pgt.table_pages() == 2);   // level 2 and level 3 (the level-1 root is the pgd)
    CHECK(r.pa(r.cpu0, 0x10'5000) == 0x7000'5000);
    REQUIRE(r.pgt.kvm_pgtable_stage2_unmap(0x10'0000, 16 * 4096, r.ctx) == 0);
    CHECK(r.pgt.stats().unmaps == 16);
    CHECK(r.pgt.table_pages() == 0);
    CHECK(r.mc.freed.size() == 2);
    CHECK(r.pa(r.cpu0, 0x10'5000) == ~0ull);
    CHECK(r.pa(r.cpu1, 0x10'0000) == ~0ull);
    CHECK(r.chk.ok());
}

TEST_CASE("kvm_pgtable: arm64 case 26: relax_perms is in place with local TLBI: accepted architecturally, flagged strictly") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7000'0000, KVM_PGTABLE_PROT_R, r.ctx) == 0);
    CHECK(r.cpu0.translate(Gva(0x10'0000), AccessType::write, false).status == mmu::TranslateResult::Status::npf);
    REQUIRE(r.pgt.kvm_pgtable_stage2_relax_perms(0x10'0000, KVM_PGTABLE_PROT_W, r.ctx) == 0);
    CHECK(r.pa(r.cpu0, 0x10'0000, AccessType::write) == 0x7000'0000);
    CHECK(r.dom.stats().tlbi_broadcast == 0);
    CHECK(r.chk.ok());
    CHECK_FALSE(r.strict.ok());
}

TEST_CASE("kvm_pgtable: wrprotect needs the caller's flush, mkyoung sets AF, an empty memcache is -ENOMEM") {
    Rig r;
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7000'0000, kRW, r.ctx) == 0);
    CHECK(r.pa(r.cpu0, 0x10'0000, AccessType::write) == 0x7000'0000);
    r.pgt.kvm_pgtable_stage2_wrprotect(0x10'0000, 4096, r.ctx);
    // Without a TLBI the core still writes through its old entry...
    CHECK(r.pa(r.cpu0, 0x10'0000, AccessType::write) == 0x7000'0000);
    r.pgt.kvm_tlb_flush_vmid(r.ctx);   // ...until the caller's kvm_flush_remote_tlbs()
    CHECK(r.pa(r.cpu0, 0x10'0000, AccessType::write) == ~0ull);
    CHECK(r.chk.ok());

    BumpMemcache empty(0x4200'0000, 0);
    KvmPgtable p2(r.mem, empty, r.dom, r.geo, 4, Hpa(0x4300'0000), PgtableCosts{}, true);
    CHECK(p2.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7000'0000, kRW, r.ctx) == -ENOMEM);
}

TEST_CASE("kvm_pgtable: the Casemate trace of a map, a remap with BBM and an unmap") {
    std::ostringstream os;
    CasemateTrace trace(os);
    Rig r;
    r.dom.add_sink(&trace);
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7000'0000, kRW, r.ctx) == 0);
    REQUIRE(r.pgt.kvm_pgtable_stage2_map(0x10'0000, 4096, 0x7100'0000, kRW, r.ctx) == 0);
    REQUIRE(r.pgt.kvm_pgtable_stage2_unmap(0x10'0000, 4096, r.ctx) == 0);
    const std::string t = os.str();
    // Tables join the tree, writes happen under the lock, the remap is KVM's sequence.
    CHECK(t.find("(lock (id 0) (tid 0) (address 0x8000000040000000))") == 0);
    CHECK(t.find("(tid 0) (address 0x41000000) (size 0x1000))") != std::string::npos);
    CHECK(t.find("(kind set_owner_root) (location 0x41000000) (value 0x40000000))") != std::string::npos);
    CHECK(t.find("(lock (id ") != std::string::npos);
    const size_t brk = t.find("(mem-write", t.find("(mem-write", t.find("(mem-write", t.find("(mem-write") + 1) + 1) + 1);
    REQUIRE(brk != std::string::npos);
    const std::string rest = t.substr(brk);
    const size_t a = rest.find("(value 0x1000000000000000))");   // the LOCKED marker
    const size_t b = rest.find("tlbi (id");
    const size_t c1 = rest.find("ipas2e1is (addr 0x100000) (level 3))");
    const size_t d = rest.find("vmalle1is)");
    const size_t e = rest.find("(mem-order release) (address");
    CHECK(a != std::string::npos);
    CHECK(c1 != std::string::npos);
    CHECK(a < c1);
    CHECK(c1 < d);
    CHECK(d < e);
    (void)b;
    CHECK(t.find("(msr (id") != std::string::npos);
    CHECK(t.find("(kind release) (location 0x41001000)") != std::string::npos);
    CHECK(trace.records() > 20);
    // A tree created while the trace runs announces its root and lock.
    BumpMemcache mc2(0x4400'0000, 4);
    KvmPgtable p2(r.mem, mc2, r.dom, r.geo, 9, Hpa(0x4500'0000), PgtableCosts{}, true);
    CHECK(os.str().find("(kind set_root_lock) (location 0x45000000) (value 0x8000000045000000))") != std::string::npos);
}
