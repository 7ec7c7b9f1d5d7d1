// KVM/arm64's abort handling over the generic memslot / guest_memfd code and the
// stage-2 hardware: kvm_handle_guest_abort() -> user_mem_abort() / gmem_abort() ->
// kvm_pgtable_stage2_map(), MMU-notifier invalidation (arm64 case ids 9, 11-15).
#include <catch2/catch.hpp>

#include "kernel/arm64/kvm_mmu.hpp"
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
constexpr uint64_t kDabtL3 = (esr::EC_DABT_LOW << esr::EC_SHIFT) | esr::IL | 0x07;

struct Rig {
    Env env;
    TlbiDomain dom{TlbiCosts::uniform(10, 100, 20, 5)};
    BbmChecker chk;
    std::unique_ptr<Arm64Mmu> mmu;
    stage2::test::CountingMemory port{env.mem};
    Stage2Mmu cpu{Stage2Config{}, port};
    explicit Rig(bool thp = false) : env(VmType::default_vm, legacy_attrs()) {
        env.kvm->set_mmu_ops(nullptr);
        env.proc->set_thp(thp);
        dom.add_sink(&chk);
        mmu = std::make_unique<Arm64Mmu>(*env.kvm, env.mem, env.alloc, kvm_stage2_geometry(Granule::k4K, 40), 1, dom,
                                         arm64::Arm64MmuCosts{}, false, true);
        mmu->attach_vcpu(cpu);
    }
    ~Rig() { mmu.reset(); }
    // The vCPU's access: translate, hand a stage-2 abort to KVM, retry.
    mmu::TranslateResult access(uint64_t ipa, AccessType at, int* faults = nullptr) {
        for (int i = 0; i < 4; ++i) {
            auto t = cpu.translate(Gva(ipa), at, false);
            if (t.ok() || t.status != mmu::TranslateResult::Status::npf) return t;
            if (faults) ++*faults;
            const auto out = mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, env.ctx);
            if (out.r != RET_PF_FIXED && out.r != RET_PF_RETRY) return t;
        }
        return cpu.translate(Gva(ipa), at, false);
    }
};

}  // namespace

TEST_CASE("arm64 mmu: a read abort maps the VMM's page, the guest reads the VMM's bytes") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    REQUIRE(r.env.proc->host_write(Hva(kUaddr + 0x3000), 4096, 0xab, r.env.ctx).err == 0);
    int faults = 0;
    const auto t = r.access(0x3010, AccessType::read, &faults);
    REQUIRE(t.ok());
    CHECK(faults == 1);
    CHECK(r.env.mem.read64(t.hpa) == 0xababababababababull);
    // The page was writable in the VMM: mapped RW, a write needs no second fault.
    CHECK(r.access(0x3018, AccessType::write, &faults).ok());
    CHECK(faults == 1);
    CHECK(r.mmu->stats().map_page == 1);
    CHECK(r.chk.ok());
}

TEST_CASE("arm64 mmu: arm64 case 12: THP-backed slot congruent mod 2 MiB -> 2 MiB leaf, not congruent -> 4K") {
    Rig r(true);
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    REQUIRE(r.env.slot(1, 0x1000'0000, 64 * MiB, 0, kUaddr + 0x1000'0000 + 0x1000) == 0);
    REQUIRE(r.access(0x20'0000, AccessType::write).ok());
    CHECK(r.mmu->pgt().get_leaf(0x20'0000).second == 2);
    REQUIRE(r.access(0x1020'0000, AccessType::write).ok());
    CHECK(r.mmu->pgt().get_leaf(0x1020'0000).second == 3);
    CHECK(r.mmu->stats().map_block == 1);
}

TEST_CASE("arm64 mmu: arm64 case 9: dirty-logged slot: read maps 4K read-only, the write relaxes in place, local TLBI") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, uapi::KVM_MEM_LOG_DIRTY_PAGES, kUaddr) == 0);
    REQUIRE(r.env.proc->host_write(Hva(kUaddr + 0x5000), 4096, 1, r.env.ctx).err == 0);
    REQUIRE(r.access(0x5000, AccessType::read).ok());
    auto leaf = r.mmu->pgt().get_leaf(0x5000);
    CHECK(leaf.second == 3);
    CHECK_FALSE(leaf.first & desc::S2AP_W);
    const auto broadcast_before = r.dom.stats().tlbi_broadcast;
    auto t = r.cpu.translate(Gva(0x5000), AccessType::write, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK(esr::fsc(t.error_code) == 0x0f);
    REQUIRE(r.mmu->kvm_handle_guest_abort(t.fault_gpa, t.error_code, r.env.ctx).r == RET_PF_FIXED);
    CHECK(r.mmu->stats().relaxed == 1);
    CHECK(r.dom.stats().tlbi_broadcast == broadcast_before);
    CHECK(r.cpu.translate(Gva(0x5000), AccessType::write, false).ok());
    CHECK(r.env.memslot(0)->dirty_bitmap.size() > 0);
    CHECK((r.env.memslot(0)->dirty_bitmap[0] >> 5) & 1);
}

TEST_CASE("arm64 mmu: arm64 case 13: an access-flag fault sets AF with no TLBI") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    REQUIRE(r.access(0x7000, AccessType::write).ok());
    const auto [loc_leaf, level] = r.mmu->pgt().get_leaf(0x7000);
    REQUIRE(level == 3);
    (void)loc_leaf;
    const uint64_t tlbi_before = r.dom.stats().tlbi;
    const uint64_t e = (esr::EC_DABT_LOW << esr::EC_SHIFT) | esr::IL | esr::fsc_access(3);
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x7000), e, r.env.ctx).r == RET_PF_FIXED);
    CHECK(r.mmu->stats().access_flag == 1);
    CHECK(r.dom.stats().tlbi == tlbi_before);
}

TEST_CASE("arm64 mmu: arm64 case 14: no memslot -> MMIO, the same from a stage-1 walk -> an external abort") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x8000'0000), kDabtL3, r.env.ctx).r == RET_PF_EMULATE);
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x8000'0000), kDabtL3 | esr::S1PTW, r.env.ctx).r == -EFAULT);
    CHECK(r.mmu->stats().mmio == 1);
}

TEST_CASE("arm64 mmu: arm64 case 15: TLB conflict abort or address-size fault -> KVM_RUN -EFAULT") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    const uint64_t base = (esr::EC_DABT_LOW << esr::EC_SHIFT) | esr::IL;
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x1000), base | esr::FSC_TLB_CONFLICT, r.env.ctx).r == -EFAULT);
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x1000), base | esr::fsc_addrsz(1), r.env.ctx).r == -EFAULT);
    // An IPA beyond the VM's 40 bits: the guest would take an external abort.
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(1ull << 40), kDabtL3, r.env.ctx).r == -EFAULT);
}

namespace {
// An ExecContext whose sync() lets an invalidation begin and end (another thread's
// MMU notifier between the fault's mmu_seq snapshot and its mmu_lock).
struct RacingCtx final : ExecContext {
    Kvm* kvm = nullptr;
    void charge(StepName, Cycles) override {}
    void sync() override { ++kvm->mmu_invalidate_seq; }
};
}  // namespace

TEST_CASE("arm64 mmu: arm64 case 11: an invalidation between the mmu_seq snapshot and the lock -> retry, nothing mapped") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    RacingCtx ctx;
    ctx.kvm = r.env.kvm.get();
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x9000), kDabtL3, ctx).r == RET_PF_RETRY);
    CHECK(r.mmu->pgt().get_leaf(0x9000).second == -1);
    CHECK(r.mmu->kvm_handle_guest_abort(Gpa(0x9000), kDabtL3, r.env.ctx).r == RET_PF_FIXED);
}

TEST_CASE("arm64 mmu: MMU-notifier unmap and memslot deletion remove the stage-2 mappings with BBM-clean TLBIs") {
    Rig r;
    REQUIRE(r.env.slot(0, 0, 64 * MiB, 0, kUaddr) == 0);
    REQUIRE(r.access(0xa000, AccessType::write).ok());
    REQUIRE(r.access(0xb000, AccessType::write).ok());
    REQUIRE(r.env.proc->munmap(Hva(kUaddr + 0xa000), 4096, r.env.ctx) == 0);
    CHECK(r.mmu->pgt().get_leaf(0xa000).second == -1);
    CHECK(r.cpu.translate(Gva(0xa000), AccessType::read, false).status == mmu::TranslateResult::Status::npf);
    CHECK(r.cpu.translate(Gva(0xb000), AccessType::read, false).ok());
    REQUIRE(r.env.slot(0, 0, 0, 0, kUaddr) == 0);   // delete
    CHECK(r.mmu->pgt().get_leaf(0xb000).second == -1);
    CHECK(r.cpu.translate(Gva(0xb000), AccessType::read, false).status == mmu::TranslateResult::Status::npf);
    CHECK(r.chk.ok());
}

TEST_CASE("arm64 mmu: a guest_memfd slot fault maps the file's page at 4K (gmem_abort)") {
    Rig r;
    const int fd = r.env.gmem(64 * MiB, uapi::GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(fd >= 0);
    REQUIRE(r.env.gslot(0, 0, 64 * MiB, fd) == 0);
    REQUIRE(r.access(0x20'0000, AccessType::write).ok());
    CHECK(r.mmu->stats().gmem_faults == 1);
    CHECK(r.mmu->pgt().get_leaf(0x20'0000).second == 3);
}

TEST_CASE("arm64 mmu: detached vCPUs are out of the broadcast domain (teardown after the cores are gone)") {
    Rig r;
    REQUIRE(r.dom.cores().size() == 1);
    r.mmu->detach_vcpus();
    CHECK(r.dom.cores().empty());
    CycleCounter c;
    r.mmu->kvm_flush_remote_tlbs(c);   // reaches no core
    CHECK(r.cpu.s2_stats().tlbi == 0);
}
