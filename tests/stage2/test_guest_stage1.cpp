// The guest kernel's VMSAv8-64 stage 1 (cpu::GuestOs, format vmsa) over KVM/arm64's stage 2:
// the guest's data aborts build 4K-granule, 48-bit-VA tables in guest memory, the hardware
// walks them nested in stage 2 (arm64 case 6: (4+1)(3+1)-1 = 19 references cold), and the
// entries are VMSAv8-64 descriptors (Arm ARM D8.3), not x86 entries.
#include <catch2/catch.hpp>

#include <algorithm>

#include "kernel/arm64/kvm_mmu.hpp"
#include "models/cpu/guest_os.hpp"
#include "models/stage2/bbm_checker.hpp"
#include "tests/kernel/kernel_fixture.hpp"
#include "tests/stage2/s2_builder.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::stage2;
using arm64::Arm64Mmu;
using mmu::AccessType;

namespace {

constexpr uint64_t kUaddr = 0x7f00'0000'0000ull;
constexpr uint64_t kPtBase = 60 * MiB;   // the guest's page-table region (top of a 64 MiB slot)

// A vCPU of the test: the arm64 MMU, stage-2 aborts handed to KVM, the guest kernel's
// table writes through stage 2 (as the real guest's stores are).
struct Rig : cpu::GuestPhysAccess {
    Env env;
    TlbiDomain dom{TlbiCosts::uniform(10, 100, 20, 5)};
    BbmChecker chk;
    std::unique_ptr<Arm64Mmu> mmu;
    stage2::test::CountingMemory port{env.mem};
    Stage2Mmu cpu;
    cpu::GuestOs guest;
    unsigned guest_faults = 0, s2_aborts = 0;

    static cpu::GuestOsConfig guest_config(PgLevel page) {
        cpu::GuestOsConfig c;
        c.levels = 4;
        c.format = cpu::GuestPtFormat::vmsa;
        c.page_size = page;
        c.pt_base = Gpa(kPtBase);
        c.pt_size = 4 * MiB;
        c.pf_cycles = 100;
        return c;
    }
    // walk_caches false: no stage-2 TLB and no walk cache, so every walk is cold.
    static Stage2Config hw(bool walk_caches) {
        Stage2Config c;
        if (!walk_caches) {
            c.s2tlb = mmu::TlbConfig{0, 0, 0};
            c.walk_cache = mmu::TlbConfig{0, 0, 0};
        }
        return c;
    }
    explicit Rig(PgLevel page = PgLevel::k4K, bool walk_caches = true)
        : env(VmType::default_vm, legacy_attrs()), cpu(hw(walk_caches), port), guest(guest_config(page)) {
        env.kvm->set_mmu_ops(nullptr);
        dom.add_sink(&chk);
        mmu = std::make_unique<Arm64Mmu>(*env.kvm, env.mem, env.alloc, kvm_stage2_geometry(Granule::k4K, 40), 1, dom,
                                         arm64::Arm64MmuCosts{}, false, true);
        mmu->attach_vcpu(cpu);
        REQUIRE(env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
        // What Stage2Translator::set_guest_root() does when the guest turns its MMU on.
        cpu.set_tcr(Granule::k4K, 48);
        cpu.set_ttbr0(1, guest.cr3());
    }
    ~Rig() override { mmu.reset(); }

    // Stage 2 of a guest-physical address, aborts resolved by KVM.
    uint64_t pa_of(Gpa a, AccessType at) {
        for (int i = 0; i < 4; ++i) {
            auto t = cpu.translate_gpa(a, at, false);
            if (t.ok()) return t.hpa.raw();
            ++s2_aborts;
            REQUIRE(mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, env.ctx).r == RET_PF_FIXED);
        }
        FAIL("stage-2 abort not resolved");
        return 0;
    }
    std::optional<uint64_t> read_gpa64(Gpa a, ExecContext&) override { return env.mem.read64(Hpa(pa_of(a, AccessType::read))); }
    std::optional<uint64_t> read_gpa64_for_update(Gpa a, ExecContext&) override {
        return env.mem.read64(Hpa(pa_of(a, AccessType::write)));
    }
    bool write_gpa64(Gpa a, uint64_t v, ExecContext&) override {
        env.mem.write64(Hpa(pa_of(a, AccessType::write)), v);
        return true;
    }
    bool zero_gpa_page(Gpa page, ExecContext&) override {
        env.mem.fill(Hpa(pa_of(page, AccessType::write)), 0, kPageSize);
        return true;
    }
    // The vCPU's access: stage-1 faults to the guest kernel, stage-2 aborts to KVM.
    mmu::TranslateResult access(uint64_t va, AccessType at) {
        for (int i = 0; i < 8; ++i) {
            auto t = cpu.translate(Gva(va), at, false);
            if (t.ok()) return t;
            if (t.status == mmu::TranslateResult::Status::guest_page_fault) {
                ++guest_faults;
                REQUIRE(guest.handle_page_fault(t.fault_gva, t.fault_level, *this, env.ctx));
            } else {
                ++s2_aborts;
                REQUIRE(mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, env.ctx).r == RET_PF_FIXED);
            }
        }
        FAIL("access still faulting");
        return {};
    }
    // The guest's descriptor for va at lookup level `level`, read through its own tables.
    uint64_t s1_desc(uint64_t va, int level) {
        uint64_t table = guest.cr3().raw();
        for (int l = 0;; ++l) {
            const uint64_t d = env.mem.read64(Hpa(pa_of(Gpa(table + 8 * ((va >> level_shift(Granule::k4K, l)) & 511)),
                                                        AccessType::read)));
            if (l == level) return d;
            table = desc::oa(d, Granule::k4K, false);
        }
    }
};

}  // namespace

TEST_CASE("guest stage 1: the first access is a level-0 stage-1 translation fault taken by the guest kernel") {
    Rig r;
    auto t = r.cpu.translate(Gva(0x123000), AccessType::read, false);
    // The empty root is in guest memory not yet mapped at stage 2: an S1PTW abort first.
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK((t.error_code & esr::S1PTW) != 0);
    CHECK(t.fault_gpa.raw() == r.guest.cr3().raw());
    REQUIRE(r.mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, r.env.ctx).r == RET_PF_FIXED);
    t = r.cpu.translate(Gva(0x123000), AccessType::read, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::guest_page_fault);
    CHECK(t.fault_level == 0);
    CHECK(esr::fsc(t.error_code) == esr::fsc_fault(0));
}

TEST_CASE("guest stage 1: arm64 case 6: the guest's tables are VMSAv8-64 descriptors and a cold walk makes 19 references") {
    Rig r(PgLevel::k4K, false);
    const uint64_t va = 0x2345000;
    REQUIRE(r.access(va, AccessType::write).ok());
    CHECK(r.guest_faults == 1);
    CHECK(r.guest.stats().pt_pages == 4);   // root + L1 + L2 + L3
    // Table descriptors at levels 0-2: valid, table; the level-3 page descriptor: valid,
    // page type, AF, inner shareable, non-global, AP[2] = 0 (writable at EL1), output = the IPA.
    for (int l = 0; l < 3; ++l) {
        const uint64_t d = r.s1_desc(va, l);
        CHECK((d & (desc::VALID | desc::TABLE)) == (desc::VALID | desc::TABLE));
        CHECK(desc::oa(d, Granule::k4K, false) >= kPtBase);
    }
    const uint64_t leaf = r.s1_desc(va, 3);
    CHECK((leaf & (desc::VALID | desc::TABLE)) == (desc::VALID | desc::TABLE));
    CHECK((leaf & desc::AF) != 0);
    CHECK((leaf & desc::S1_AP2) == 0);
    CHECK((leaf & (1ull << 11)) != 0);   // nG: the entry is tagged with the ASID
    CHECK(desc::oa(leaf, Granule::k4K, false) == va);
    // x86 would have put RW/US in bits 1-2 of a table entry and no AF: not these bits.
    CHECK((leaf & 0x4) == 0);

    // Cold: S1 4 levels in S2 3 levels (IPA 40) = (4+1)(3+1)-1 references.
    r.cpu.flush_all();
    r.port.reads = 0;
    auto t = r.cpu.translate(Gva(va), AccessType::read, false);
    REQUIRE(t.ok());
    CHECK(t.mem_refs == 19);
    CHECK(r.port.reads == 19);
    // The data's page is the VMM's page at the identity IPA.
    CHECK(t.hpa.raw() == r.pa_of(Gpa(va), AccessType::read));
    // A second access hits the combined TLB.
    CHECK(r.cpu.translate(Gva(va + 8), AccessType::read, false).tlb_hit);
}

TEST_CASE("guest stage 1: the walk cache and the stage-2 TLB shorten a walk after a full flush's refill") {
    Rig r;
    const uint64_t va = 0x2345000;
    REQUIRE(r.access(va, AccessType::write).ok());
    r.cpu.flush_all();
    auto t = r.cpu.translate(Gva(va), AccessType::read, false);
    REQUIRE(t.ok());
    // The first stage-2 walk (3 references) fills the walk cache with the table
    // descriptors the later ones share: the stage-1 tables' IPAs lie in one 2 MiB region
    // (1 reference each), the data's IPA in the same 1 GiB (2): 4 + 3 + 3x1 + 2 = 12.
    CHECK(t.mem_refs == 12);
    CHECK(r.cpu.s2_stats().walk_cache_hits >= 4);
}

TEST_CASE("guest stage 1: a neighbouring page needs only its leaf, one 2 MiB away a new level-3 table") {
    Rig r;
    REQUIRE(r.access(0x400000, AccessType::read).ok());
    const auto pages = r.guest.stats().pt_pages;
    REQUIRE(r.access(0x401000, AccessType::read).ok());
    CHECK(r.guest_faults == 2);
    CHECK(r.guest.stats().pt_pages == pages);
    REQUIRE(r.access(0x600000, AccessType::read).ok());
    CHECK(r.guest_faults == 3);
    CHECK(r.guest.stats().pt_pages == pages + 1);
}

TEST_CASE("guest stage 1: 2 MiB guest pages are level-2 block descriptors") {
    Rig r(PgLevel::k2M);
    const uint64_t va = 4 * MiB + 0x1234;
    REQUIRE(r.access(va, AccessType::read).ok());
    CHECK(r.guest.stats().pt_pages == 3);   // root + L1 + L2
    const uint64_t d = r.s1_desc(va, 2);
    CHECK((d & desc::VALID) != 0);
    CHECK((d & desc::TABLE) == 0);   // block
    CHECK(desc::oa(d, Granule::k4K, false) == 4 * MiB);
}

TEST_CASE("guest stage 1: ASID-tagged entries: another ASID misses, the same ASID hits") {
    Rig r;
    REQUIRE(r.access(0x5000, AccessType::read).ok());
    CHECK(r.cpu.translate(Gva(0x5000), AccessType::read, false).tlb_hit);
    r.cpu.set_ttbr0(2, r.guest.cr3());
    CHECK_FALSE(r.cpu.translate(Gva(0x5000), AccessType::read, false).tlb_hit);
    r.cpu.set_ttbr0(1, r.guest.cr3());
    CHECK(r.cpu.translate(Gva(0x5000), AccessType::read, false).tlb_hit);
}

TEST_CASE("guest stage 1: GuestOs refuses 5 levels for arm64 (52-bit VA needs FEAT_LPA2)") {
    cpu::GuestOsConfig c = Rig::guest_config(PgLevel::k4K);
    c.levels = 5;
    CHECK_THROWS_WITH(cpu::GuestOs(c), Catch::Contains("4 levels"));
}

// Stage2Mmu::prefetch_walk(), the host-side hint as mmu::Mmu's: the stage-1 leaf descriptor
// the walk of an address will read, from the table the last walk in its 2 MiB region ended
// in, then the stage-2 leaf descriptor of its IPA (the region's last IPA - VA applied);
// nothing before such a walk, nothing for another region, no modelled effect.
TEST_CASE("guest stage 1: prefetch_walk names the stage-1 and stage-2 leaf descriptors the next walk reads") {
    Rig r;
    const uint64_t va = 0x2345000;
    r.cpu.prefetch_walk(Gva(va + 0x3000));
    CHECK(r.port.prefetches.empty());
    REQUIRE(r.access(va, AccessType::read).ok());
    REQUIRE(r.access(va + 0x3000, AccessType::read).ok());   // faults its page in first
    r.cpu.flush_all();
    REQUIRE(r.access(va, AccessType::read).ok());            // the last walk in the region
    const auto before = r.cpu.stats();
    r.cpu.prefetch_walk(Gva(va + 0x3000));
    REQUIRE(r.port.prefetches.size() == 2);
    CHECK(r.cpu.stats().accesses == before.accesses);
    CHECK(r.cpu.stats().misses == before.misses);
    r.port.log = true;
    const auto t = r.access(va + 0x3000, AccessType::read);
    REQUIRE(t.ok());
    REQUIRE_FALSE(t.tlb_hit);
    // The leaf descriptor of va + 0x3000 is among the walk's reads.
    const uint64_t l2 = r.s1_desc(va, 2);
    const uint64_t leaf_pa = r.pa_of(Gpa(desc::oa(l2, Granule::k4K, false) + 8 * (((va + 0x3000) >> 12) & 511)),
                                     AccessType::read);
    CHECK(r.port.prefetches[0] == leaf_pa);
    CHECK(std::find(r.port.read_log.begin(), r.port.read_log.end(), leaf_pa) != r.port.read_log.end());
    // The walk's last read is the stage-2 leaf of the data's IPA (4K at stage 2: its own
    // stage-2 TLB entry, so walked).
    REQUIRE_FALSE(r.port.read_log.empty());
    CHECK(r.port.prefetches[1] == r.port.read_log.back());
    CHECK(r.port.prefetches[1] != leaf_pa);
    r.port.prefetches.clear();
    r.cpu.prefetch_walk(Gva(va + (2ull << 20)));
    CHECK(r.port.prefetches.empty());
}
