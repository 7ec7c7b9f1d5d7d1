// KVM's SNP backend over the RMP: sev_gmem_prepare, sev_gmem_invalidate and
// sev_handle_rmp_fault, driven through the simulated KVM core (guest_memfd, attributes).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "kernel/svm/sev_snp.hpp"
#include "tests/kernel/kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;

namespace {

constexpr uint16_t kAsid = 1;

struct SnpEnv {
    Env env{VmType::snp, legacy_attrs()};
    rmp::Rmp rmp{rmp::RmpConfig{Hpa(8 * GiB), (8 * GiB) >> kPageShift, 0, 0}, env.mem};
    SevSnpOps ops{rmp, kAsid, SnpCosts{1500, 6000, 600, 1140}};
    int gfd = -1;

    SnpEnv() {
        REQUIRE(env.kvm);
        env.kvm->set_arch_ops(ops);
        gfd = env.gmem(8 * MiB);
        REQUIRE(gfd >= 0);
        REQUIRE(env.gslot(0, 0, 8 * MiB, gfd) == 0);
        uapi::kvm_memory_attributes a{0, 8 * MiB, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
        REQUIRE(env.proc->ioctl_set_memory_attributes(env.vmfd, a, env.ctx) == 0);
    }
    // The process closes its guest_memfd (which makes its pages shared again through the
    // SNP ops and the RMP) while both still exist, as Machine's teardown does; env is
    // declared first, so its own destructor would run after them.
    ~SnpEnv() { env.close(); }
    const kvm_memory_slot& slot() const { return *env.kvm->gfn_to_memslot(0, Gfn(0)); }
    Pfn get_pfn(uint64_t gfn, CycleCounter& c) {
        Pfn pfn;
        int order = 0;
        REQUIRE(kvm_gmem_get_pfn(*env.kvm, slot(), Gfn(gfn), pfn, order, c) == 0);
        return pfn;
    }
};

}  // namespace

TEST_CASE("T38 a private fault-in makes the gmem page Guest-Invalid once, a second fault does no RMPUPDATE") {
    SnpEnv s;
    CycleCounter c;
    const Pfn p = s.get_pfn(5, c);
    const rmp::RmpEntry e = s.rmp.read_entry(p);
    CHECK(e.assigned);
    CHECK(!e.validated);
    CHECK(!e.immutable);
    CHECK(!e.size_2m);
    CHECK(e.asid == kAsid);
    CHECK(e.gpa == Gpa(5 * kPageSize));
    CHECK(s.rmp.stats().updates == 1);
    CHECK(s.ops.stats().prepare_rmpupdates == 1);
    CycleCounter c2;
    CHECK(s.get_pfn(5, c2) == p);
    CHECK(s.rmp.stats().updates == 1);
    CHECK(c2.total < c.total);
}

TEST_CASE("punching the page out of guest_memfd makes it hypervisor-owned again, with a CLFLUSH") {
    SnpEnv s;
    CycleCounter c;
    const Pfn p = s.get_pfn(7, c);
    REQUIRE(s.rmp.read_entry(p).assigned);
    CycleCounter pc;
    REQUIRE(s.env.proc->fallocate(s.gfd, uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE, 7 * kPageSize, kPageSize,
                                  pc) == 0);
    CHECK(!s.rmp.read_entry(p).assigned);
    CHECK(s.ops.stats().invalidate_rmpupdates == 1);
    CHECK(s.rmp.asid_pages(kAsid) == 0);
    CHECK(pc.total >= 1500 + 600);   // RMPUPDATE + CLFLUSH among the charges
}

TEST_CASE("a failed RMPUPDATE in sev_gmem_invalidate is skipped without a CLFLUSH and the page is still freed") {
    // sev_gmem_invalidate(): rmp_make_shared() failing is a WARN and `goto next_pfn` (no
    // flush); kvm_gmem_free_folio() has no say, so the page cache frees the folio anyway.
    SnpEnv s;
    CycleCounter c;
    const Pfn p = s.get_pfn(9, c);
    // Firmware-owned pages are immutable: RMPUPDATE of them fails with FAIL_PERMISSION.
    REQUIRE(s.rmp.rmpupdate(pfn_to_hpa(p), rmp::RmpState{Gpa(9 * kPageSize), true, PgLevel::k4K, true, kAsid}) == 0);
    const uint64_t freed = s.env.kvm->stats().gmem_pages_freed;
    struct Steps final : ExecContext {
        std::map<std::string, Cycles> by_step;
        void charge(StepName st, Cycles c) override { by_step[std::string(st)] += c; }
    } pc;
    REQUIRE(s.env.proc->fallocate(s.gfd, uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE, 9 * kPageSize, kPageSize,
                                  pc) == 0);
    CHECK(s.ops.stats().rmpupdate_failures == 1);
    CHECK(s.ops.stats().invalidate_rmpupdates == 0);
    CHECK(s.rmp.read_entry(p).assigned);
    CHECK(s.env.kvm->stats().gmem_pages_freed == freed + 1);
    CHECK(pc.by_step.count("clflush") == 0);
    CHECK(pc.by_step.count("page_free") == 1);
}

TEST_CASE("an order-9 folio over 512 unassigned PFNs gets a 2M RMP entry, freeing one page PSMASHes it") {
    SnpEnv s;
    CycleCounter c;
    const Pfn pfn(4096), last(4096 + 511);
    REQUIRE(s.ops.gmem_prepare(*s.env.kvm, Pfn(4096 + 3), Gfn(512 + 3), 9, c) == 0);
    rmp::RmpEntry e = s.rmp.read_entry(pfn);
    CHECK(e.size_2m);
    CHECK(e.gpa == Gpa(512 * kPageSize));
    CHECK(s.ops.stats().prepare_2m == 1);
    // Misaligned pfn vs gfn: 4K.
    REQUIRE(s.ops.gmem_prepare(*s.env.kvm, Pfn(8192 + 1), Gfn(2), 9, c) == 0);
    CHECK(!s.rmp.read_entry(Pfn(8192 + 1)).size_2m);
    // sev_gmem_invalidate of one page inside the 2M entry.
    s.ops.gmem_invalidate(*s.env.kvm, Pfn(4096 + 10), Pfn(4096 + 11), c);
    CHECK(s.rmp.stats().psmash == 1);
    CHECK(!s.rmp.read_entry(Pfn(4096 + 10)).assigned);
    CHECK(s.rmp.read_entry(Pfn(4096 + 11)).assigned);
    CHECK(!s.rmp.read_entry(last).size_2m);
    // The whole 2 MB freed at once after a fresh 2M prepare: one RMPUPDATE.
    REQUIRE(s.ops.gmem_prepare(*s.env.kvm, Pfn(12288), Gfn(1024), 9, c) == 0);
    const uint64_t before = s.rmp.stats().updates;
    s.ops.gmem_invalidate(*s.env.kvm, Pfn(12288), Pfn(12288 + 512), c);
    CHECK(s.rmp.stats().updates == before + 1);
    CHECK(!s.rmp.read_entry(Pfn(12288)).assigned);
}

TEST_CASE("an NPF with the RMP bit over a 2M RMP entry is PSMASHed and the 2 MB zapped, over 4K it is spurious") {
    SnpEnv s;
    CycleCounter c;
    const Pfn p = s.get_pfn(0, c);
    REQUIRE(is_aligned(p.raw(), 512));
    // The RMP entry is 4K: spurious, nothing happens.
    s.env.mmu.clear();
    s.ops.handle_rmp_fault(*s.env.kvm, Gpa(0), rmp::NPF_RMP, c);
    CHECK(s.rmp.stats().psmash == 0);
    CHECK(s.env.mmu.log.empty());
    // Make it a 2M entry (as a 2M folio would have): the fault splits it.
    REQUIRE(s.rmp.rmpupdate(pfn_to_hpa(p), rmp::RmpState{Gpa(0), false, PgLevel::k4K, false, 0}) == 0);
    REQUIRE(s.rmp.rmpupdate(pfn_to_hpa(p), rmp::RmpState{Gpa(0), true, PgLevel::k2M, false, kAsid}) == 0);
    s.ops.handle_rmp_fault(*s.env.kvm, Gpa(0), rmp::NPF_RMP | rmp::NPF_SIZEM, c);
    CHECK(s.rmp.stats().psmash == 1);
    CHECK(s.ops.stats().rmp_fault_psmash == 1);
    CHECK(!s.rmp.read_entry(p).size_2m);
    REQUIRE(!s.env.mmu.unmaps.empty());
    CHECK(s.env.mmu.unmaps.back().start == 0);
    CHECK(s.env.mmu.unmaps.back().end == 512);
}

TEST_CASE("an RMP fault on a shared gfn is left alone (Unexpected RMP fault for non-private GPA)") {
    SnpEnv s;
    uapi::kvm_memory_attributes a{0, 2 * MiB, 0, 0};
    REQUIRE(s.env.proc->ioctl_set_memory_attributes(s.env.vmfd, a, s.env.ctx) == 0);
    CycleCounter c;
    s.ops.handle_rmp_fault(*s.env.kvm, Gpa(0x1000), rmp::NPF_RMP, c);
    CHECK(s.rmp.stats().updates == 0);
    CHECK(s.rmp.stats().psmash == 0);
    CHECK(c.total == 0);
}

TEST_CASE("the SNP backend's warnings no longer say the RMP is not modelled") {
    SnpEnv s;
    for (const auto& w : s.ops.unmodelled(HostPaging::amd_npt)) CHECK(w.find("RMP not modelled") == std::string::npos);
    CHECK(s.ops.exit_extra_cycles() == 1140);
    CHECK(s.ops.type() == VmType::snp);
    CHECK(!s.ops.pre_fault_allowed_initially());
}

namespace {
// What the platform installs in the VMM process of an SNP run (sim/machine.cpp).
struct RmpStoreCheck final : HostWriteCheck {
    rmp::Rmp& rmp;
    explicit RmpStoreCheck(rmp::Rmp& r) : rmp(r) {}
    bool host_write_allowed(Pfn pfn, PgLevel mapping, ExecContext&) override {
        Cycles c = 0;
        return rmp.host_write_allowed(pfn_to_hpa(pfn), mapping, nullptr, c);
    }
};
}  // namespace

TEST_CASE("T01 T02 T03 in the VMM: a store to a guest-owned page it still maps is an RMP #PF (SIGBUS), nothing "
          "written, reads allowed, the VMM goes on") {
    SnpEnv s;
    RmpStoreCheck check(s.rmp);
    s.env.proc->set_host_write_check(&check);
    const Hva a(0x7e0000000000ull), b = a + kPageSize;
    CycleCounter c;
    REQUIRE(s.env.proc->host_write(a, kPageSize, 0x33, c).err == 0);   // T01: a hypervisor page
    const std::optional<Pfn> pfn = s.env.proc->anon_page(a);
    REQUIRE(pfn);
    // The page becomes guest-owned while the VMM still maps it: what Linux never lets
    // happen (guest_memfd pages are not mappable while private; a page KVM cannot make
    // shared again is leaked, snp_leak_pages()); here the stale mapping is made by hand.
    REQUIRE(s.rmp.rmpupdate(pfn_to_hpa(*pfn), rmp::RmpState{Gpa(0x5000), true, PgLevel::k4K, false, kAsid}) == 0);
    const HostAccessResult w = s.env.proc->host_write(a, 64, 0x44, c);   // T02
    CHECK(w.err == -EFAULT);
    CHECK(w.sigbus);
    CHECK(w.rmp_fault);
    CHECK(w.fault_hva == a);
    CHECK(s.env.proc->stats().host_rmp_faults == 1);
    CHECK(s.env.proc->stats().host_sigbus == 1);
    uint8_t byte = 0;
    s.env.mem.read(pfn_to_hpa(*pfn), &byte, 1);
    CHECK(byte == 0x33);   // nothing was written
    // T03: reads are not checked (on hardware they see ciphertext).
    const HostAccessResult r = s.env.proc->host_read(a, 64, c);
    CHECK(r.err == 0);
    CHECK(r.first_byte == uint8_t(0x33));
    // The VMM survives: its other pages take stores as before.
    CHECK(s.env.proc->host_write(b, kPageSize, 0x55, c).err == 0);
    // Back to hypervisor-owned: the store goes through.
    REQUIRE(s.rmp.rmpupdate(pfn_to_hpa(*pfn), rmp::RmpState{Gpa(0), false, PgLevel::k4K, false, 0}) == 0);
    CHECK(s.env.proc->host_write(a, 64, 0x66, c).err == 0);
    s.env.proc->set_host_write_check(nullptr);
}

// ---- SNP AP creation: sev_snp_ap_creation(), sev_snp_init_protected_guest_state() and
//      VMRUN's check of the VMSA page ----

namespace {

using Entry = KvmArchOps::EntryResult;

uint64_t ap_info1(uint64_t apic_id, uint32_t request) { return apic_id << 32 | request; }

// A guest page turned into a VMSA as snp_set_vmsa() does: faulted in (Guest-Invalid),
// PVALIDATEd, then RMPADJUST to VMPL1 with the VMSA bit (set or cleared).
Pfn snp_make_vmsa(SnpEnv& s, uint64_t gfn, CycleCounter& c) {
    const Pfn p = s.get_pfn(gfn, c);
    const rmp::GuestCtx g{kAsid, 0, true};
    REQUIRE(s.rmp.pvalidate(g, gfn_to_gpa(Gfn(gfn)), pfn_to_hpa(p), PgLevel::k4K, PgLevel::k4K, true).eax == 0);
    REQUIRE(s.rmp.rmpadjust(g, gfn_to_gpa(Gfn(gfn)), pfn_to_hpa(p), PgLevel::k4K, PgLevel::k4K, 1, 0, true).ok());
    return p;
}

std::optional<KvmArchOps::VmgexitResult> ap_vmgexit(SnpEnv& s, uint64_t apic_id, uint32_t request, uint64_t gpa,
                                                     CycleCounter& c, uint64_t rax = SVM_SEV_FEAT_SNP_ACTIVE) {
    return s.ops.handle_vmgexit(*s.env.kvm, 0, SVM_VMGEXIT_AP_CREATION, ap_info1(apic_id, request), gpa, rax, c);
}

}  // namespace

TEST_CASE("AP creation: KVM records the VMSA and the AP loads it at its next entry, VMRUN needs the VMSA bit") {
    SnpEnv s;
    s.ops.set_nr_vcpus(2);
    CycleCounter c;
    const Pfn p = snp_make_vmsa(s, 0x201, c);
    const auto r = ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x201000, c);
    REQUIRE(r);
    CHECK(r->sw_exit_info_1 == 0);
    CHECK(!s.ops.guest_vmsa(1));   // KVM_REQ_UPDATE_PROTECTED_GUEST_STATE: loaded at the AP's entry
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::run);
    CHECK(s.ops.guest_vmsa(1) == p);
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 0, c) == Entry::run);   // the BSP keeps its launch VMSA
    CHECK(!s.ops.guest_vmsa(0));
    CHECK(s.ops.stats().vmsa_loads == 1);
    // snp_cleanup_vmsa() while the AP still uses the page: the next VMRUN fails (T37).
    const rmp::GuestCtx g{kAsid, 0, true};
    REQUIRE(s.rmp.rmpadjust(g, Gpa(0x201000), pfn_to_hpa(p), PgLevel::k4K, PgLevel::k4K, 1, 0, false).ok());
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::fail_entry);
    CHECK(s.ops.stats().fail_entry == 1);
}

TEST_CASE("AP creation refused with GHCB_ERR_INVALID_INPUT: APIC ID, VMSA address, SEV features, request") {
    SnpEnv s;
    s.ops.set_nr_vcpus(2);
    CycleCounter c;
    snp_make_vmsa(s, 0x201, c);
    const std::vector<std::pair<const char*, std::optional<KvmArchOps::VmgexitResult>>> refused = {
        {"APIC ID of no vCPU", ap_vmgexit(s, 2, SVM_VMGEXIT_AP_CREATE, 0x201000, c)},
        {"VMSA not page aligned", ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x201800, c)},
        {"VMSA 2M aligned (erratum)", ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x400000, c)},
        {"VMSA above MAXPHYADDR", ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 1ull << 52 | 0x1000, c)},
        {"SEV features differ from the VM's", ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x201000, c, 0)},
        {"unknown request", ap_vmgexit(s, 1, 3, 0x201000, c)},
    };
    for (const auto& [what, r] : refused) {
        INFO(what);
        REQUIRE(r);
        CHECK(r->sw_exit_info_1 == GHCB_HV_RESP_ISSUE);
        CHECK(r->sw_exit_info_2 == GHCB_ERR_INVALID_INPUT);
    }
    CHECK(s.ops.stats().ap_creation == 6);
    CHECK(s.ops.stats().ap_creation_refused == 6);
    // Nothing was requested of the AP.
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::run);
    CHECK(!s.ops.guest_vmsa(1));
    // Other VMGEXITs are not the AP-creation handler's.
    CHECK(!s.ops.handle_vmgexit(*s.env.kvm, 0, 0x80000010, 0, 0, 0, c));
}

TEST_CASE("AP creation over a page that is not a VMSA of this guest: VMRUN fails (Table 15-41)") {
    SnpEnv s;
    s.ops.set_nr_vcpus(2);
    CycleCounter c;
    // The guest skipped RMPADJUST: KVM accepts the address (it does not read the RMP), the
    // entry check of VMRUN refuses the Guest-Invalid page without the VMSA bit.
    REQUIRE(ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x301000, c)->sw_exit_info_1 == 0);
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::fail_entry);
    const Pfn p = *s.ops.guest_vmsa(1);
    const rmp::RmpEntry e = s.rmp.read_entry(p);
    CHECK(e.assigned);   // kvm_gmem_get_pfn() prepared it
    CHECK(!e.vmsa);
}

TEST_CASE("AP_DESTROY leaves the AP without a VMSA: it halts until the next AP_CREATE") {
    SnpEnv s;
    s.ops.set_nr_vcpus(2);
    CycleCounter c;
    snp_make_vmsa(s, 0x201, c);
    REQUIRE(ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x201000, c)->sw_exit_info_1 == 0);
    REQUIRE(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::run);
    REQUIRE(ap_vmgexit(s, 1, SVM_VMGEXIT_AP_DESTROY, 0x201000, c)->sw_exit_info_1 == 0);
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::halted);
    CHECK(!s.ops.guest_vmsa(1));
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::halted);   // stays halted
    const Pfn p2 = snp_make_vmsa(s, 0x203, c);
    REQUIRE(ap_vmgexit(s, 1, SVM_VMGEXIT_AP_CREATE, 0x203000, c)->sw_exit_info_1 == 0);
    CHECK(s.ops.vcpu_enter_guest(*s.env.kvm, 1, c) == Entry::run);
    CHECK(s.ops.guest_vmsa(1) == p2);
    CHECK(s.ops.stats().vmsa_loads == 2);
}
