// KVM's TDX backend: the SEAMCALL sequences of arch/x86/kvm/vmx/tdx.c that turn changes of
// KVM's mirror page table into changes of the secure EPT, with KVM's handling of the
// module's answers (tdx_operand_busy(), TDX_BUG_ON -> VM bugged).
//
//   link_external_spt()    tdx_sept_link_private_spt()   TDH.MEM.SEPT.ADD
//   set_external_spte()    tdx_sept_set_private_spte()   TDH.MEM.PAGE.AUG (RUNNABLE) or
//                                                        TDH.MEM.PAGE.ADD (building, 6.19+)
//   remove_external_spte() tdx_sept_remove_private_spte() BLOCK -> TRACK -> kick -> REMOVE
//                                                        -> TDH.PHYMEM.PAGE.WBINVD
//   tdx_td_finalize()      KVM_TDX_FINALIZE_VM           TDH.MR.FINALIZE, pre-fault allowed
//
// Not yet wired to the TDP MMU's fault and zap paths (see docs/tdx.md): the hooks are
// exercised by unit tests against the TDX module model.
#pragma once

#include <cstdint>
#include <optional>

#include "kernel/kvm.hpp"
#include "models/tdx/tdx_module.hpp"

namespace hvsim::kvm {

// kvm_make_all_cpus_request(kvm, KVM_REQ_OUTSIDE_GUEST_MODE): every vCPU in guest mode is
// sent an IPI and KVM waits until each has left the TD (a TD exit each).
class TdxVcpuKicker {
public:
    virtual ~TdxVcpuKicker() = default;
    virtual void kick_all_outside_guest_mode(ExecContext& ctx) = 0;
};

struct KvmTdxStats {
    uint64_t busy_retries = 0;   // BUSY answers KVM retried (fault path: -EBUSY; zap: no-vCPU retry)
    uint64_t kicks = 0;          // kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)
    uint64_t tracks = 0;         // tdx_track() calls that issued TDH.MEM.TRACK
};

// enum kvm_tdx_state (vmx/tdx.h).
enum class TdState : uint8_t { uninitialized, initialized, runnable };

class KvmTdx {
public:
    KvmTdx(Kvm& kvm, tdx::TdxModule& module, Hpa tdr, TdxVcpuKicker& vcpus);

    // Hooks (kvm_x86_ops); 0 or -errno as KVM's return. -EBUSY: the caller restores the
    // mirror SPTE and retries (RET_PF_RETRY); -EIO: the VM is bugged.
    int link_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx);
    int set_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx);
    int remove_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx);

    // KVM_TDX_INIT_MEM_REGION's per-page source (kvm_tdx->page_add_src) and its state check:
    // -EINVAL once the TD is RUNNABLE.
    int tdx_vcpu_init_mem_region_check() const { return state_ == TdState::runnable ? -EINVAL : 0; }
    void set_page_add_src(std::optional<Hpa> src) { page_add_src_ = src; }
    // KVM_TDX_FINALIZE_VM.
    int tdx_td_finalize(ExecContext& ctx);

    // tdx_vcpu_run(): no TD entry while a zap holds every vCPU out (wait_for_sept_zap).
    bool vcpu_may_enter() const { return !wait_for_sept_zap_; }
    bool bugged() const { return bugged_; }
    TdState state() const { return state_; }
    const KvmTdxStats& stats() const { return stats_; }

private:
    // tdx_track(): TDH.MEM.TRACK (retried while busy) then the kick; no-op before RUNNABLE.
    void tdx_track(ExecContext& ctx);
    // tdh_do_no_vcpus(): hold every vCPU out, kick them, retry once.
    template <class F>
    uint64_t tdh_do_no_vcpus(F&& seamcall, ExecContext& ctx);
    int bug(uint64_t err);

    Kvm& kvm_;
    tdx::TdxModule& module_;
    Hpa tdr_;
    TdxVcpuKicker& vcpus_;
    TdState state_ = TdState::initialized;
    std::optional<Hpa> page_add_src_;
    bool wait_for_sept_zap_ = false;
    bool bugged_ = false;
    KvmTdxStats stats_;
};

}  // namespace hvsim::kvm
