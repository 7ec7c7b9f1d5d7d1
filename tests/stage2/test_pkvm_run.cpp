// pKVM driving a protected VM's runs (kernel/arm64/pkvm.hpp): the fault path donates,
// the host's own stage 2 is real (annotations, lazy identity blocks), MEM_SHARE /
// MEM_UNSHARE convert in place or by copy, teardown reclaims; arm64 case ids 17 and 35-39.
#include <catch2/catch.hpp>

#include <cerrno>

#include "kernel/arm64/pkvm.hpp"
#include "models/stage2/bbm_checker.hpp"
#include "tests/kernel/kernel_fixture.hpp"
#include "tests/stage2/s2_builder.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::stage2;
using arm64::Arm64Mmu;
using arm64::PkvmHyp;
using arm64::PkvmPageState;
using mmu::AccessType;

namespace {

constexpr uint64_t kUaddr = 0x7f00'0000'0000ull;

struct Rig {
    Env env;
    TlbiDomain dom{TlbiCosts::uniform(10, 100, 20, 5)};
    BbmChecker chk;
    std::unique_ptr<Arm64Mmu> mmu;
    std::unique_ptr<PkvmHyp> hyp;
    stage2::test::CountingMemory port{env.mem};
    Stage2Mmu cpu{Stage2Config{}, port};
    static KvmConfig config(uint64_t memlock) {
        KvmConfig c = legacy_attrs();
        c.memlock_limit = memlock;
        return c;
    }
    explicit Rig(arm64::PkvmConversion conv = arm64::PkvmConversion::in_place, uint64_t memlock = 0,
                 Granule granule = Granule::k4K)
        : env(VmType::pkvm, config(memlock)) {
        env.kvm->set_mmu_ops(nullptr);
        env.proc->set_thp(true);
        dom.add_sink(&chk);
        mmu = std::make_unique<Arm64Mmu>(*env.kvm, env.mem, env.alloc, kvm_stage2_geometry(granule, 40), 1, dom,
                                         arm64::Arm64MmuCosts{}, true, true);
        arm64::PkvmCosts c;
        c.host_hvc = 800;
        c.guest_hvc = 1500;
        c.cmo_2m = 512 * 100;
        c.zero_4k = 600;
        c.copy_4k = 700;
        hyp = std::make_unique<PkvmHyp>(*env.kvm, env.mem, env.alloc, *env.proc, *mmu, dom,
                                        arm64::PkvmMemProtect::Memblock{0, 8 * GiB, false}, c, arm64::PgtableCosts{},
                                        conv);
        env.kvm->set_arch_ops(*hyp);
        mmu->attach_vcpu(cpu);
        REQUIRE(env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
        hyp->vcpu_run(*env.kvm);
    }
    ~Rig() {
        mmu->detach_vcpus();
        env.kvm->set_arch_ops(kvm_default_arch_ops(VmType::pkvm));
        hyp.reset();
        mmu.reset();
    }
    // The vCPU's access: translate, hand a stage-2 abort to KVM, retry.
    mmu::TranslateResult access(uint64_t ipa, AccessType at) {
        for (int i = 0; i < 4; ++i) {
            auto t = cpu.translate(Gva(ipa), at, false);
            if (t.ok() || t.status != mmu::TranslateResult::Status::npf) return t;
            const auto out = mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, env.ctx);
            if (out.r != RET_PF_FIXED && out.r != RET_PF_RETRY) return t;
        }
        return cpu.translate(Gva(ipa), at, false);
    }
    Pfn pfn_of(uint64_t ipa) { return *env.proc->anon_page(Hva(kUaddr + ipa)); }
    uint64_t host_entry(Pfn pfn) { return hyp->host_pgt().get_entry(pfn.raw() << kPageShift).first; }
    int64_t share(uint64_t ipa) {
        bool fault = false;
        int64_t r = hyp->mem_share(gpa_to_gfn(Gpa(ipa)), env.ctx, &fault);
        if (fault) {
            REQUIRE(access(ipa, AccessType::write).ok());
            r = hyp->mem_share(gpa_to_gfn(Gpa(ipa)), env.ctx, &fault);
            REQUIRE_FALSE(fault);
        }
        return r;
    }
};

}  // namespace

TEST_CASE("pkvm run: arm64 case 35: a fault donates one page: host stage-2 DONATION annotation, guest 4K RWX OWNED") {
    Rig r;
    // The VMM had loaded the page: the host stage 2 maps it (a block, lazily).
    REQUIRE(r.env.proc->host_write(Hva(kUaddr + 0x20'0000), 4096, 0x42, r.env.ctx).err == 0);
    const Pfn pfn = r.pfn_of(0x20'0000);
    CHECK((r.host_entry(pfn) & desc::VALID));
    CHECK(r.hyp->stats().host_aborts == 1);
    const auto t = r.access(0x20'0008, AccessType::read);
    REQUIRE(t.ok());
    CHECK(r.env.mem.read64(t.hpa) == 0x4242424242424242ull);   // donated as it was: the VMM's image
    // 4K RWX, whatever the access (pkvm_mem_abort()); THP backing gives no block.
    const auto [leaf, level] = r.mmu->pgt().get_leaf(0x20'0000);
    CHECK(level == 3);
    CHECK((leaf & desc::S2AP_W));
    CHECK(arm64::pkvm_getstate(leaf) == PkvmPageState::owned);
    CHECK(r.hyp->host_pgt().get_entry(pfn.raw() << kPageShift).first ==
          arm64::pkvm_host_donation_annotation(arm64::PkvmOwner::guest, 1, 0x200));
    CHECK(r.hyp->mem_protect().host_state(pfn.raw()) == PkvmPageState::nopage);
    CHECK(r.hyp->mem_protect().stats().donate == 1);
    // The host lost a page inside its block: the block went (break-before-make, VMID 0).
    CHECK(r.hyp->host_pgt().stats().bbm == 1);
    CHECK(r.env.proc->nr_pins() == 1);
    CHECK(r.hyp->check().empty());
    CHECK(r.chk.ok());
}

TEST_CASE("pkvm run: the VMM's access to a donated page faults (SIGSEGV), nothing read, nothing written") {
    Rig r;
    REQUIRE(r.env.proc->host_write(Hva(kUaddr + 0x1000), 4096, 0x11, r.env.ctx).err == 0);
    REQUIRE(r.access(0x1000, AccessType::write).ok());
    r.env.mem.fill(pfn_to_hpa(r.pfn_of(0x1000)), 0x5a, 4096);   // the guest's secret
    const auto rd = r.env.proc->host_read(Hva(kUaddr + 0x1000), 4096, r.env.ctx);
    CHECK(rd.sigsegv);
    CHECK(rd.err == -EFAULT);
    CHECK(rd.bytes_read == 0);
    const auto wr = r.env.proc->host_write(Hva(kUaddr + 0x1000), 4096, 0xee, r.env.ctx);
    CHECK(wr.sigsegv);
    uint8_t b = 0;
    r.env.mem.read(pfn_to_hpa(r.pfn_of(0x1000)), &b, 1);
    CHECK(b == 0x5a);
    CHECK(r.hyp->stats().host_refused == 2);
    // The neighbouring page is still the host's.
    CHECK(r.env.proc->host_write(Hva(kUaddr + 0x2000), 4096, 0x33, r.env.ctx).err == 0);
    CHECK(r.hyp->check().empty());
    // The run's warnings say what the EL2 model leaves out: nothing under Linux 7.1's
    // rules (the guest's stage 1, RLIMIT_MEMLOCK and the host kernel's accesses are run);
    // the profiles that differ from it say how.
    CHECK(r.hyp->unmodelled(HostPaging::arm64_stage2).empty());
    r.hyp->set_kernel_profile("linux-6.18");
    auto w = r.hyp->unmodelled(HostPaging::arm64_stage2);
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("Linux 7.1") != std::string::npos);
    r.hyp->set_kernel_profile("inplace");
    w = r.hyp->unmodelled(HostPaging::arm64_stage2);
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("shareability") != std::string::npos);
    r.hyp->set_kernel_profile("linux-7.2");
    CHECK(r.hyp->unmodelled(HostPaging::arm64_stage2).empty());
}

TEST_CASE("pkvm run: arm64 case 36: MEM_SHARE / MEM_UNSHARE in place: ownership and permissions move, bytes stay") {
    Rig r;
    REQUIRE(r.access(0x5000, AccessType::write).ok());
    const Pfn pfn = r.pfn_of(0x5000);
    r.env.mem.fill(pfn_to_hpa(pfn), 0x77, 4096);
    const uint64_t tlbi_before = r.dom.stats().tlbi;
    CHECK(r.share(0x5000) == 0);
    CHECK(r.hyp->mem_protect().host_state(pfn.raw()) == PkvmPageState::shared_borrowed);
    CHECK(arm64::pkvm_getstate(r.mmu->pgt().get_leaf(0x5000).first) == PkvmPageState::shared_owned);
    CHECK((r.host_entry(pfn) & desc::VALID));
    CHECK(r.dom.stats().tlbi == tlbi_before);   // invalid -> valid needs no TLBI
    const auto rd = r.env.proc->host_read(Hva(kUaddr + 0x5000), 4096, r.env.ctx);
    REQUIRE(rd.err == 0);
    CHECK(rd.first_byte == 0x77);
    CHECK_FALSE(rd.bytes_mixed);
    // Again: EL2 refuses (-EPERM), the guest sees INVALID_PARAMETER.
    CHECK(r.share(0x5000) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK(r.hyp->mem_unshare(gpa_to_gfn(Gpa(0x5000)), r.env.ctx) == 0);
    CHECK(r.host_entry(pfn) == arm64::pkvm_host_donation_annotation(arm64::PkvmOwner::guest, 1, 5));
    CHECK(r.dom.stats().tlbi > tlbi_before);   // the host's mapping went: TLBI of VMID 0
    CHECK(r.hyp->mem_unshare(gpa_to_gfn(Gpa(0x5000)), r.env.ctx) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK(r.env.proc->host_read(Hva(kUaddr + 0x5000), 4096, r.env.ctx).sigsegv);
    // Still the same page with the same bytes: nothing was copied.
    const auto t = r.access(0x5000, AccessType::read);
    REQUIRE(t.ok());
    CHECK(hpa_to_pfn(t.hpa) == pfn);
    CHECK(r.env.mem.read64(t.hpa) == 0x7777777777777777ull);
    CHECK(r.hyp->stats().pages_copied == 0);
    CHECK(r.hyp->check().empty());
    CHECK(r.chk.ok());
}

TEST_CASE("pkvm run: arm64 case 37: MEM_SHARE of an IPA not yet donated asks for a fault, then succeeds") {
    Rig r;
    bool fault = false;
    CHECK(r.hyp->mem_share(Gfn(9), r.env.ctx, &fault) == 0);
    CHECK(fault);
    CHECK(r.hyp->mem_protect().stats().share == 0);
    REQUIRE(r.access(0x9000, AccessType::write).ok());
    CHECK(r.hyp->mem_share(Gfn(9), r.env.ctx, &fault) == 0);
    CHECK_FALSE(fault);
    CHECK(r.hyp->mem_protect().guest_state(1, 9) == PkvmPageState::shared_owned);
    CHECK(r.hyp->stats().share_enoent == 1);
}

TEST_CASE("pkvm run: copy-based conversion: the bytes move to a fresh page, the old one is zeroed and the host's") {
    Rig r(arm64::PkvmConversion::copy);
    REQUIRE(r.access(0x7000, AccessType::write).ok());
    const Pfn old = r.pfn_of(0x7000);
    r.env.mem.fill(pfn_to_hpa(old), 0x31, 4096);
    CHECK(r.share(0x7000) == 0);
    const Pfn fresh = r.pfn_of(0x7000);
    CHECK(fresh != old);
    CHECK(r.hyp->stats().pages_copied == 1);
    CHECK(r.hyp->mem_protect().host_state(fresh.raw()) == PkvmPageState::shared_borrowed);
    CHECK(r.hyp->mem_protect().host_state(old.raw()) == PkvmPageState::owned);
    const auto rd = r.env.proc->host_read(Hva(kUaddr + 0x7000), 4096, r.env.ctx);
    REQUIRE(rd.err == 0);
    CHECK(rd.first_byte == 0x31);
    CHECK_FALSE(rd.bytes_mixed);
    // Back to private: another copy, the guest sees its bytes at the same IPA.
    CHECK(r.hyp->mem_unshare(Gfn(7), r.env.ctx) == 0);
    CHECK(r.hyp->stats().pages_copied == 2);
    const auto t = r.access(0x7000, AccessType::read);
    REQUIRE(t.ok());
    CHECK(r.env.mem.read64(t.hpa) == 0x3131313131313131ull);
    CHECK(r.env.proc->nr_pins() == 1);   // the pin followed the page
    CHECK(r.hyp->check().empty());
    CHECK(r.chk.ok());
}

TEST_CASE("pkvm run: arm64 case 17: a protected VM's memslots: no delete or move after the first run, no READONLY "
          "or LOG_DIRTY_PAGES") {
    Rig r;
    CHECK(r.env.slot(0, 0, 0, 0, kUaddr) == -EPERM);                       // delete
    CHECK(r.env.slot(0, 128 * MiB, 64 * MiB, 0, kUaddr) == -EPERM);        // move
    CHECK(r.env.slot(1, 256 * MiB, 2 * MiB, uapi::KVM_MEM_READONLY, kUaddr + 256 * MiB) == -EPERM);
    CHECK(r.env.slot(1, 256 * MiB, 2 * MiB, uapi::KVM_MEM_LOG_DIRTY_PAGES, kUaddr + 256 * MiB) == -EPERM);
    CHECK(r.env.slot(1, 256 * MiB, 2 * MiB, 0, kUaddr + 256 * MiB) == 0);
}

TEST_CASE("pkvm run: arm64 case 39: teardown reclaims every page: owned ones zeroed, shared ones not, unpinned") {
    Rig r;
    REQUIRE(r.access(0x1000, AccessType::write).ok());
    REQUIRE(r.access(0x2000, AccessType::write).ok());
    const Pfn a = r.pfn_of(0x1000), b = r.pfn_of(0x2000);
    r.env.mem.fill(pfn_to_hpa(a), 0x61, 4096);
    r.env.mem.fill(pfn_to_hpa(b), 0x62, 4096);
    CHECK(r.share(0x2000) == 0);
    r.hyp->teardown(r.env.ctx);
    CHECK(r.hyp->mem_protect().stats().reclaim == 2);
    CHECK(r.hyp->stats().pages_zeroed == 1);
    CHECK(r.env.mem.read64(pfn_to_hpa(a)) == 0);
    CHECK(r.env.mem.read64(pfn_to_hpa(b)) == 0x6262626262626262ull);
    CHECK(r.env.proc->nr_pins() == 0);
    CHECK(r.mmu->pgt().get_leaf(0x1000).second == -1);
    CHECK((r.host_entry(a) & desc::VALID));
    CHECK(r.hyp->stats().teardown_cycles > 0);
    CHECK(r.env.proc->host_read(Hva(kUaddr + 0x1000), 8, r.env.ctx).err == 0);
    CHECK(r.hyp->check().empty());
    CHECK(r.chk.ok());
}

TEST_CASE("pkvm run: arm64 case 38: a host kernel (EL1) access to a donated page takes it back by force, the IPA "
          "is poisoned") {
    Rig r;
    REQUIRE(r.access(0x7000, AccessType::write).ok());
    const Pfn p = r.pfn_of(0x7000);
    r.env.mem.fill(pfn_to_hpa(p), 0x5a, 4096);   // the guest's secret
    CHECK(r.hyp->host_kernel_access(p, r.env.ctx) == 0);
    CHECK(r.hyp->stats().forced_reclaims == 1);
    // Zeroed before the host could see it, the host's again and mapped in its stage 2.
    CHECK(r.env.mem.read64(pfn_to_hpa(p)) == 0);
    CHECK(r.hyp->mem_protect().host_state(p.raw()) == PkvmPageState::owned);
    CHECK((r.host_entry(p) & desc::VALID));
    CHECK(r.env.proc->host_read(Hva(kUaddr + 0x7000), 8, r.env.ctx).err == 0);
    // The guest's IPA: a POISONED annotation (break-before-make of its leaf).
    CHECK(r.mmu->pgt().get_entry(0x7000).first ==
          arm64::KVM_GUEST_INVALID_PTE_TYPE_POISONED << arm64::KVM_INVALID_PTE_TYPE_SHIFT);
    CHECK(r.hyp->mem_protect().guest_state(1, 7) == PkvmPageState::poison);
    // MEM_SHARE / MEM_UNSHARE of it: -EHWPOISON at EL2, INVALID_PARAMETER for the guest.
    bool fault = false;
    CHECK(r.hyp->mem_share(Gfn(7), r.env.ctx, &fault) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK_FALSE(fault);
    CHECK(r.hyp->mem_unshare(Gfn(7), r.env.ctx) == arm64::SMCCC_RET_INVALID_PARAMETER);
    // The guest's next access: KVM_RUN fails with EFAULT (pkvm_mem_abort on a poisoned IPA).
    const auto t = r.cpu.translate(Gva(0x7000), AccessType::read, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK(r.mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, r.env.ctx).r == -EFAULT);
    // A second kernel access finds the page the host's: no fault, nothing reclaimed.
    CHECK(r.hyp->host_kernel_access(p, r.env.ctx) == 0);
    CHECK(r.hyp->stats().forced_reclaims == 1);
    CHECK(r.hyp->check().empty());
    CHECK(r.chk.ok());
    // Teardown reclaims the poisoned gfn with 0 and unpins its page; nothing left pinned.
    r.hyp->teardown(r.env.ctx);
    CHECK(r.env.proc->nr_pins() == 0);
    CHECK(r.hyp->stats().pinned == 0);
}

TEST_CASE("pkvm run: donated pages count against RLIMIT_MEMLOCK: past the limit the fault is ENOMEM") {
    Rig r(arm64::PkvmConversion::in_place, 2 * kPageSize);
    REQUIRE(r.access(0x1000, AccessType::write).ok());
    REQUIRE(r.access(0x2000, AccessType::write).ok());
    const auto t = r.cpu.translate(Gva(0x3000), AccessType::write, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    const auto out = r.mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, r.env.ctx);
    CHECK(out.r == -ENOMEM);
    CHECK(r.env.proc->nr_pins() == 2);   // nothing pinned for the refused page
    CHECK(r.hyp->mem_protect().stats().donate == 2);
    // A page given back frees its share of the limit.
    REQUIRE(r.hyp->mem_relinquish(Gfn(1), r.env.ctx) == 0);
    CHECK(r.access(0x3000, AccessType::write).ok());
}

TEST_CASE("pkvm run: the ownership check fails when a poisoned IPA is mapped again behind EL2's back") {
    Rig r;
    REQUIRE(r.access(0x8000, AccessType::write).ok());
    const Pfn p = r.pfn_of(0x8000);
    REQUIRE(r.hyp->host_kernel_access(p, r.env.ctx) == 0);
    REQUIRE(r.hyp->check().empty());
    r.mmu->pgt().kvm_pgtable_stage2_map(0x8000, kPageSize, p.raw() << kPageShift, arm64::KVM_PGTABLE_PROT_RWX,
                                        r.env.ctx);
    CHECK(r.hyp->check().find("poisoned") != std::string::npos);
}

TEST_CASE("pkvm run: MEM_RELINQUISH at EL2 (Android): the page is unmapped, zeroed and the host's again") {
    Rig r;
    REQUIRE(r.access(0x3000, AccessType::write).ok());
    const Pfn p = r.pfn_of(0x3000);
    r.env.mem.fill(pfn_to_hpa(p), 0x99, 4096);
    CHECK(r.hyp->mem_relinquish(Gfn(3), r.env.ctx) == 0);
    CHECK(r.env.mem.read64(pfn_to_hpa(p)) == 0);
    CHECK(r.hyp->mem_protect().host_state(p.raw()) == PkvmPageState::owned);
    CHECK(r.mmu->pgt().get_leaf(0x3000).second == -1);
    CHECK(r.env.proc->nr_pins() == 0);
    CHECK(r.hyp->mem_relinquish(Gfn(3), r.env.ctx) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK(r.hyp->check().empty());
}

TEST_CASE("pkvm run: the ownership check fails when the host stage 2 still maps a page it gave away") {
    Rig r;
    REQUIRE(r.access(0x4000, AccessType::write).ok());
    REQUIRE(r.hyp->check().empty());
    // Corrupt the host stage 2: the donated page mapped again behind EL2's back.
    const Pfn p = r.pfn_of(0x4000);
    r.hyp->host_pgt().kvm_pgtable_stage2_map(p.raw() << kPageShift, kPageSize, p.raw() << kPageShift,
                                             arm64::KVM_PGTABLE_PROT_RWX, r.env.ctx);
    CHECK(r.hyp->check().find("DONATION") != std::string::npos);
}

TEST_CASE("pkvm run: the ownership check fails when the guest leaf's state bits disagree") {
    Rig r;
    REQUIRE(r.access(0x4000, AccessType::write).ok());
    r.mmu->pgt().kvm_pgtable_stage2_set_sw_bits(0x4000, arm64::pkvm_mkstate(PkvmPageState::shared_owned), r.env.ctx);
    CHECK(r.hyp->check().find("guest stage-2 leaf") != std::string::npos);
}

TEST_CASE("pkvm run: MMU notifiers leave a protected VM's stage 2 alone (the pages are pinned)") {
    Rig r;
    REQUIRE(r.access(0x6000, AccessType::write).ok());
    CHECK_FALSE(r.mmu->kvm_unmap_gfn_range(kvm_gfn_range{nullptr, Gfn(0), Gfn(16)}, r.env.ctx));
    CHECK(r.mmu->pgt().get_leaf(0x6000).second == 3);
}

// Item 6: which kernel backs a protected VM's private memory with guest_memfd.
TEST_CASE("pkvm run: upstream profiles refuse a guest_memfd memslot on a protected VM (EINVAL)") {
    Rig r;
    r.hyp->set_kernel_profile("linux-7.2");
    const int fd = r.env.gmem(4 * MiB, uapi::GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(fd >= 0);
    CHECK(r.env.slot(1, 64 * MiB, 4 * MiB, uapi::KVM_MEM_GUEST_MEMFD, kUaddr + 64 * MiB, uint32_t(fd), 0) == -EINVAL);
    r.hyp->set_kernel_profile("linux-6.18");
    CHECK(r.env.slot(1, 64 * MiB, 4 * MiB, uapi::KVM_MEM_GUEST_MEMFD, kUaddr + 64 * MiB, uint32_t(fd), 0) == -EINVAL);
}

TEST_CASE("pkvm run: kvm.profile inplace: a fault donates a guest_memfd page, nothing pinned, MEM_SHARE / MEM_UNSHARE "
          "move the file's shareability in place, teardown returns the page to the file") {
    Rig r;
    r.hyp->set_kernel_profile("inplace");
    const int fd = r.env.gmem(4 * MiB, uapi::GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(fd >= 0);
    REQUIRE(r.env.slot(1, 64 * MiB, 4 * MiB, uapi::KVM_MEM_GUEST_MEMFD, kUaddr + 64 * MiB, uint32_t(fd), 0) == 0);
    const kvm_memory_slot* slot = r.env.kvm->gfn_to_memslot(0, gpa_to_gfn(Gpa(64 * MiB)));
    REQUIRE(slot);
    GuestMemfd* file = slot->gmem.file;
    REQUIRE(file);
    const uint64_t ipa = 64 * MiB + 5 * kPageSize;
    auto t = r.access(ipa, AccessType::write);
    REQUIRE(t.ok());
    // The page is the file's page 5, donated: the guest owns it, the host stage 2 is annotated.
    const auto pfn = file->filemap_lookup(5);
    REQUIRE(pfn);
    CHECK(t.hpa.raw() >> kPageShift == pfn->raw());
    CHECK(r.hyp->mem_protect().guest_state(r.hyp->handle(), gpa_to_gfn(Gpa(ipa)).raw()) == PkvmPageState::owned);
    CHECK((r.host_entry(*pfn) & desc::VALID) == 0);
    CHECK(r.hyp->stats().gmem_donated == 1);
    CHECK(r.hyp->stats().pinned == 0);   // no pin of the VMM's memory, no RLIMIT_MEMLOCK
    CHECK(file->pin_count(5) == 1);      // the folio reference the donation holds
    CHECK(file->kvm_gmem_get_attributes(5) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
    r.env.mem.write64(pfn_to_hpa(*pfn), 0x1122334455667788ull);

    // MEM_SHARE in place: same page, the host may map it, the file says shared.
    CHECK(r.share(ipa) == 0);
    CHECK(r.hyp->mem_protect().guest_state(r.hyp->handle(), gpa_to_gfn(Gpa(ipa)).raw()) ==
          PkvmPageState::shared_owned);
    CHECK((r.host_entry(*pfn) & desc::VALID) != 0);
    CHECK((file->kvm_gmem_get_attributes(5) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0);
    CHECK(r.env.mem.read64(pfn_to_hpa(*pfn)) == 0x1122334455667788ull);
    CHECK(r.hyp->stats().pages_copied == 0);
    // MEM_UNSHARE: private again.
    CHECK(r.hyp->mem_unshare(gpa_to_gfn(Gpa(ipa)), r.env.ctx) == 0);
    CHECK(file->kvm_gmem_get_attributes(5) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
    CHECK(r.env.mem.read64(pfn_to_hpa(*pfn)) == 0x1122334455667788ull);
    CHECK(r.hyp->check().empty());

    // Teardown: the page is reclaimed, zeroed (guest-owned) and stays in the file.
    r.hyp->teardown(r.env.ctx);
    CHECK(r.hyp->stats().gmem_held == 0);
    CHECK(file->pin_count(5) == 0);
    REQUIRE(file->filemap_lookup(5));
    CHECK(*file->filemap_lookup(5) == *pfn);
    CHECK(r.env.mem.read64(pfn_to_hpa(*pfn)) == 0);
    CHECK((r.host_entry(*pfn) & desc::VALID) != 0);
}

// With a 16K or 64K host PAGE_SIZE, pKVM's unit is that page (the stage-2 granule): a fault
// donates one page of that size, the guest maps one leaf of it, the host stage 2 carries one
// annotation for it, and the reclaim zeroes all of it.
TEST_CASE("pkvm run: 64K pages: a fault donates one 64 KiB page, MEM_SHARE and MEM_UNSHARE move it, teardown reclaims it") {
    Rig r(arm64::PkvmConversion::in_place, 0, Granule::k64K);
    CHECK(r.hyp->page_size() == 65536);
    const auto t = r.access(0x21'0008, AccessType::write);   // inside the page at 0x210000
    REQUIRE(t.ok());
    r.env.mem.fill(Hpa(t.hpa.raw() & ~0xffffull), 0x5a, 65536);   // the guest's data in every frame
    const Pfn pfn = r.pfn_of(0x21'0000);
    CHECK((pfn.raw() & 15) == 0);                                  // 16 frames, naturally aligned
    CHECK(r.pfn_of(0x21'f000).raw() == pfn.raw() + 15);
    const auto [leaf, level] = r.mmu->pgt().get_leaf(0x21'f000);   // one 64K leaf covers the page
    CHECK(level == 3);
    CHECK(desc::oa(leaf, Granule::k64K, false) == pfn.raw() << kPageShift);
    const uint64_t page = pfn.raw() >> 4;
    CHECK(r.hyp->mem_protect().host_state(page) == PkvmPageState::nopage);
    CHECK(r.host_entry(pfn) == arm64::pkvm_host_donation_annotation(arm64::PkvmOwner::guest, 1, 0x21));
    CHECK(r.host_entry(pfn + 15) == r.host_entry(pfn));   // the same 64K entry
    CHECK(r.hyp->host_stage2_access(pfn + 9, true, r.env.ctx) == -EPERM);
    CHECK(r.hyp->mem_protect().stats().donate == 1);
    CHECK(r.hyp->stats().pinned == 1);
    CHECK(r.hyp->check().empty());
    // MEM_SHARE / MEM_UNSHARE: one call for the whole page, contents preserved.
    REQUIRE(r.share(0x21'0000) == 0);
    CHECK(r.hyp->mem_protect().host_state(page) == PkvmPageState::shared_borrowed);
    CHECK(r.hyp->host_stage2_access(pfn + 15, true, r.env.ctx) == 0);
    CHECK(r.env.mem.read64(Hpa((pfn.raw() + 15) << kPageShift)) == 0x5a5a5a5a5a5a5a5aull);
    CHECK(r.hyp->check().empty());
    REQUIRE(r.hyp->mem_unshare(gpa_to_gfn(Gpa(0x21'0000)), r.env.ctx) == 0);
    CHECK(r.hyp->mem_protect().host_state(page) == PkvmPageState::nopage);
    CHECK(r.hyp->host_stage2_access(pfn + 3, true, r.env.ctx) == -EPERM);
    CHECK(r.hyp->mem_protect().stats().share == 1);
    CHECK(r.hyp->mem_protect().stats().unshare == 1);
    CHECK(r.hyp->check().empty());
    // Teardown: one reclaim, the whole page zeroed, the host's again.
    r.hyp->teardown(r.env.ctx);
    CHECK(r.hyp->mem_protect().stats().reclaim == 1);
    CHECK(r.hyp->stats().pages_zeroed == 1);
    CHECK(r.hyp->stats().pinned == 0);
    CHECK(r.env.mem.read64(Hpa((pfn.raw() + 15) << kPageShift)) == 0);
    CHECK(r.hyp->mem_protect().host_state(page) == PkvmPageState::owned);
    CHECK(r.hyp->check().empty());
}

TEST_CASE("pkvm run: 64K pages: MEM_SHARE and MEM_UNSHARE of an IPA not 64 KiB aligned are INVALID_PARAMETER") {
    Rig r(arm64::PkvmConversion::in_place, 0, Granule::k64K);
    REQUIRE(r.access(0x21'0000, AccessType::write).ok());
    bool fault = false;
    // pkvm_memshare_call(): !PAGE_ALIGNED(ipa) -> SMCCC_RET_INVALID_PARAMETER, no transition.
    CHECK(r.hyp->mem_share(gpa_to_gfn(Gpa(0x21'1000)), r.env.ctx, &fault) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK_FALSE(fault);
    CHECK(r.hyp->mem_unshare(gpa_to_gfn(Gpa(0x21'8000)), r.env.ctx) == arm64::SMCCC_RET_INVALID_PARAMETER);
    CHECK(r.hyp->mem_protect().stats().share == 0);
    CHECK(r.hyp->mem_protect().guest_state(1, 0x21) == PkvmPageState::owned);
    CHECK(r.hyp->check().empty());
}

TEST_CASE("pkvm run: 16K pages: a protected fault maps one 16K leaf and donates one 16 KiB page") {
    Rig r(arm64::PkvmConversion::in_place, 0, Granule::k16K);
    CHECK(r.hyp->page_size() == 16384);
    REQUIRE(r.access(0x30'6004, AccessType::read).ok());   // inside the page at 0x304000
    const Pfn pfn = r.pfn_of(0x30'4000);
    CHECK((pfn.raw() & 3) == 0);
    const auto [leaf, level] = r.mmu->pgt().get_leaf(0x30'4000);
    CHECK(level == 3);
    CHECK((leaf & desc::S2AP_W));   // RWX whatever the access
    CHECK(desc::oa(leaf, Granule::k16K, false) == pfn.raw() << kPageShift);
    CHECK(r.hyp->mem_protect().guest_state(1, 0x30'4000 >> 14) == PkvmPageState::owned);
    CHECK(r.hyp->mem_protect().host_state(pfn.raw() >> 2) == PkvmPageState::nopage);
    CHECK(r.hyp->mem_protect().stats().donate == 1);
    // The next 16 KiB page is untouched.
    CHECK(r.hyp->mem_protect().guest_state(1, (0x30'4000 >> 14) + 1) == PkvmPageState::nopage);
    CHECK(r.hyp->check().empty());
}

TEST_CASE("pkvm run: 64K pages: a host kernel access to any frame of a donated page takes the whole page back") {
    Rig r(arm64::PkvmConversion::in_place, 0, Granule::k64K);
    REQUIRE(r.access(0x21'0000, AccessType::write).ok());
    const Pfn pfn = r.pfn_of(0x21'0000);
    r.env.mem.fill(pfn_to_hpa(pfn), 0x5a, 65536);
    // The 6th frame: EL1 aborts, pkvm_force_reclaim_guest_page() reclaims the 64 KiB page.
    CHECK(r.hyp->host_kernel_access(pfn + 5, r.env.ctx) == 0);
    CHECK(r.hyp->stats().forced_reclaims == 1);
    CHECK(r.hyp->stats().pages_zeroed == 1);
    CHECK(r.env.mem.read64(pfn_to_hpa(pfn)) == 0);
    CHECK(r.env.mem.read64(Hpa((pfn.raw() + 15) << kPageShift)) == 0);
    CHECK(r.hyp->mem_protect().host_state(pfn.raw() >> 4) == PkvmPageState::owned);
    CHECK(r.hyp->mem_protect().guest_state(1, 0x21) == PkvmPageState::poison);
    CHECK((r.host_entry(pfn + 15) & desc::VALID));
    CHECK(r.hyp->check().empty());
}
