// A TD as a run sees it: the TDX module, KVM's TDX backend (KvmTdx) behind the TDP MMU's
// mirror root, the TD vCPUs' secure EPTP, and the guest's answer to a #VE on a PENDING
// page (TDG.MEM.PAGE.ACCEPT). Linux: arch/x86/kvm/vmx/tdx.c (tdx_td_init(),
// tdx_td_vcpu_init(), tdx_td_finalize(), the external-SPTE hooks), tdp_mmu.c (mirror root).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/mmu/tdp_mmu.hpp"
#include "kernel/vmx/tdx.hpp"
#include "models/common/vcpu_requests.hpp"
#include "models/mem/page_alloc.hpp"
#include "models/mmu/mmu.hpp"
#include "models/tdx/tdx_module.hpp"

namespace hvsim::kvm {

class TdxBackend final : public ExternalSpteOps, public TdxVcpuKicker, public TdxFaultWait {
public:
    // tdx_td_init(): TDR and the S-EPT root page come from host memory; the TD is built
    // with `levels`-level S-EPT (GPAW 48 or 52). PENDING_VE_DISABLE is clear, so an access
    // to a PENDING page is a #VE the guest answers with ACCEPT. `module` is the platform's
    // TDX module (the firmware KVM calls into; it outlives the backend).
    TdxBackend(Kvm& kvm, tdx::TdxModule& module, HostPageAllocator& alloc, unsigned levels);
    // Gives the VM back its built-in arch ops (the TdxArchOps installed here die with it).
    ~TdxBackend();
    TdxBackend(const TdxBackend&) = delete;
    TdxBackend& operator=(const TdxBackend&) = delete;

    // A TD vCPU: its hardware MMU gets the secure EPTP; `requests` tells whether it is in
    // guest mode and takes what a kick costs it (may be set later).
    void attach_vcpu(mmu::Mmu& hw);
    void set_vcpu_requests(size_t index, VcpuRequestTarget* r) { vcpus_.at(index).requests = r; }
    void detach_vcpus() { vcpus_.clear(); }
    // TDH.VP.CREATE for every vCPU, then KVM_TDX_FINALIZE_VM (TDH.MR.FINALIZE): the TD is
    // RUNNABLE, private faults AUG and pre-fault is allowed. 0 or -errno.
    int finalize(unsigned nr_vcpus, ExecContext& ctx);

    // ExternalSpteOps (the mirror root's hooks): SEPT.ADD takes a page of its own (the
    // mirror sp's external_spt), not the mirror table.
    int link_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx) override;
    int set_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) override;
    int remove_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) override;
    // DEMOTE takes a page of its own for the new S-EPT table, as SEPT.ADD does.
    int split_external_spt(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) override;
    // TdxVcpuKicker: KVM_REQ_OUTSIDE_GUEST_MODE; every vCPU flushes on its next TD entry
    // (the module's epoch check in TDH.VP.ENTER).
    void kick_all_outside_guest_mode(ExecContext& ctx) override;

    // The module's classification of an S-EPT walk fault of vCPU `vcpu` at private `gpa`
    // (td_ept_violation()): true when it was a #VE on a PENDING page that the guest's
    // handler accepted (no exit to KVM); false when it is an EPT-violation TD exit for KVM.
    // When the guest's 4K ACCEPT itself exits (a 2M PENDING leaf covers the page: the
    // host must split it), false too, with *accept_level = 4K: the exit's requested level,
    // which KVM honours as the fault's maximum level (the huge-page series).
    bool td_ept_violation_handled_by_guest(unsigned vcpu, Gpa gpa, ExecContext& ctx,
                                           PgLevel* accept_level = nullptr);
    // The guest accepts [gpa, gpa + size) at `level` (Linux tdx_accept_memory() / TDVF):
    // an ACCEPT that finds no page exits to KVM (`exit_to_kvm(gpa)`, which AUGs it) and is
    // retried; a 2M ACCEPT the host mapped at 4K answers PAGE_SIZE_MISMATCH and the guest
    // falls back to the 512 4K pages; an already accepted page is skipped. 0, or the
    // module's status that ended it (or ~0 if an exit stopped the vCPU).
    // `exit_to_kvm(gpa, level)` gets the ACCEPT's requested level (the extended exit
    // qualification), which KVM honours as the fault's maximum mapping level.
    uint64_t guest_accept(unsigned vcpu, uint64_t gpa, uint64_t size, PgLevel level, ExecContext& ctx,
                          const std::function<bool(uint64_t, PgLevel)>& exit_to_kvm);
    // A TD vCPU leaves and enters through the TDX module, not through a VMX exit and
    // VMLAUNCH/VMRESUME of KVM's own: a TD exit is the module's state save and SEAMRET to KVM
    // (cost.tdx_td_exit, the whole exit), an entry the SEAMCALL TDH.VP.ENTER (cost.tdx_seamcall
    // round trip plus the leaf's state restore, cost.tdx_td_entry): tdx_vcpu_run() ->
    // tdh_vp_enter(). They replace cost.vmexit / cost.vmentry for TD vCPUs.
    void charge_td_exit(ExecContext& ctx) { charge_td_exit_of_current(ctx); }
    void charge_td_entry(ExecContext& ctx) { charge_td_entry_of_current(ctx); }
    // The simulated thread running now as a vCPU index (nullopt: not a vCPU thread).
    void set_current_vcpu(std::function<std::optional<unsigned>()> f) { current_vcpu_ = std::move(f); }
    // tdx_vcpu_run() -> tdh_vp_enter() for vCPU `vcpu` (already inside: nothing to do): the
    // module takes its TDR and TD epoch locks shared at the caller's time (tdh_vp_enter.c;
    // held until the TD exit and for the leaf respectively). OPERAND_BUSY (a TRACK
    // holding the epoch lock) is EXIT_FASTPATH_EXIT_HANDLED: the run loop enters again,
    // each attempt charged cost.tdx_seamcall + cost.tdx_td_entry. tdx_vcpu_run() enters
    // nothing while a zap holds every vCPU out (wait_for_sept_zap).
    void td_enter(unsigned vcpu, ExecContext& ctx);
    // The module's TD exit of vCPU `vcpu` (REFCOUNT of its entry epoch drops).
    void td_exit(unsigned vcpu);

    // ---- teardown: the VMM exits and the VM is destroyed (kvm_destroy_vm()) ----
    // In Linux's order without KVM_TDX_TERMINATE_VM: the guest_memfd goes first (it holds a
    // reference to the VM), and kvm_gmem_release() zaps every private leaf with the HKID
    // still assigned (BLOCK, TRACK, kick, REMOVE, WBINVD per page, `mirror` here); then
    // tdx_mmu_release_hkid() (VP.FLUSH per vCPU that ran, VPFLUSHDONE, CACHE.WB,
    // KEY.FREEID), tdx_vcpu_free() (TDVPR of each vCPU), the mirror root's S-EPT pages
    // (tdx_sept_free_private_spt()), tdx_reclaim_td_control_pages() (TDCS, then the TDR and
    // its WBINVD), each with TDH.PHYMEM.PAGE.RECLAIM. Untimed (the run has ended); the
    // metrics of the run are kept as they were before it (run_stats()).
    void teardown(TdpMmu& mirror, ExecContext& ctx);
    struct RunStats {
        tdx::TdxStats module;
        KvmTdxStats kvm;
        TdpMmuStats mirror;
    };
    // The run's figures as they were when the teardown began (nullopt: no teardown yet).
    const std::optional<RunStats>& run_stats() const { return run_stats_; }
    struct TeardownStats {
        Cycles cycles = 0;
        uint64_t pages_removed = 0;     // private 4K pages removed with the HKID assigned
        uint64_t reclaimed = 0;         // pages TDH.PHYMEM.PAGE.RECLAIM gave back
        uint64_t seamcalls = 0;
        bool hkid_released = false;
    };
    const TeardownStats& teardown_stats() const { return teardown_; }
    const std::vector<Hpa>& tdvprs() const { return tdvpr_; }
    // With a vCPU resolver (set_current_vcpu(), a timed run) the entry is also the module's
    // TDH.VP.ENTER of that vCPU at its time and the exit its TD exit (td_enter(), td_exit()).
    void charge_td_exit_of_current(ExecContext& ctx);
    void charge_td_entry_of_current(ExecContext& ctx);
    Cycles td_exit_cycles() const { return tdx_->costs().td_exit; }
    Cycles td_entry_cycles() const { return tdx_->costs().seamcall + tdx_->costs().td_entry; }

    // Checked builds: the S-EPT agrees with KVM's mirror (same gfns, same frames, every
    // S-EPT leaf MAPPED or PENDING), and the PAMT says each frame is a REG page of this TD.
    std::optional<std::string> check(const TdpMmu& mirror) const;

    tdx::TdxModule& module() { return module_; }
    const tdx::TdxModule& module() const { return module_; }
    KvmTdx& kvm_tdx() { return *tdx_; }
    const KvmTdx& kvm_tdx() const { return *tdx_; }
    Hpa tdr() const { return tdr_; }
    uint64_t accepts() const { return accepts_; }
    uint64_t accept_fallbacks() const { return accept_fallbacks_; }   // 2M ACCEPTs redone at 4K
    uint64_t vcpus_kicked() const { return kicked_; }   // vCPUs a kick found in guest mode
    // Guest ACCEPTs answered OPERAND_BUSY or OPERAND_BUSY_HOST_PRIORITY and retried.
    uint64_t guest_busy_retries() const { return guest_busy_retries_; }

    // The module's view of which vCPUs are inside the TD, brought up to date with the
    // vCPUs' guest mode: a vCPU in guest mode entered through TDH.VP.ENTER (and took the
    // TD_EPOCH of that moment), one outside took a TD exit. Called before every operation
    // whose outcome depends on it (the zap's TDH.MEM.TRACK and the REMOVE it gates).
    void sync_td_vcpus();

    // Idle vCPUs' ticks competing with an accept fault (tdx.idle_tick_hz). Every idle TD
    // vCPU takes the guest's periodic tick `hz` times a second: a wake from
    // TDVMCALL<HLT>, TDH.VP.ENTER, the tick handler, TDVMCALL<HLT> again and its TD exit.
    // Dstack-TEE/dstack PR #1220 measured one accept fault at 8 us normally and 153 us
    // with 248 idle vCPUs at HZ=1000, without naming the resource they compete for. The
    // model (an estimate): the ticks' TD exits and entries and the faulting vCPU's fault
    // path pass one serialization point of the TD one at a time, so a fault of `fault`
    // cycles waits for the tick round trips that arrive meanwhile:
    //   u = idle * hz * tick / cpu_hz,   wait = fault * u / (1 - u),
    // with u capped at 98% (ticks beyond the capacity are lost, as the guest's lost ticks
    // in the PR show).
    void set_idle_ticks(uint64_t hz, uint64_t freq_mhz) {
        idle_tick_hz_ = hz;
        freq_mhz_ = freq_mhz;
    }
    bool idle_ticks_enabled() const { return idle_tick_hz_ != 0; }
    // Charges the wait of a private fault of a busy vCPU that took `fault` cycles.
    void charge_idle_ticks(Cycles fault, ExecContext& ctx);
    // TdxFaultWait (the arch ops' fault-wait hooks): a private (unaliased) fault waits when
    // idle ticks are on.
    bool fault_waits(const Kvm& kvm, Gpa gpa) const override {
        return idle_tick_hz_ != 0 && !kvm.kvm_is_gfn_alias(gpa_to_gfn(gpa));
    }
    void charge_fault_wait(Cycles fault, ExecContext& ctx) override { charge_idle_ticks(fault, ctx); }
    // One idle tick round trip: the TD exit and entry around cost.tdx_idle_tick.
    Cycles idle_tick_cycles() const;
    // Tick round trips accept faults waited for, and the faults that found the
    // serialization point saturated (u at its cap).
    uint64_t idle_ticks_waited() const { return idle_tick_cycles() ? idle_wait_ / idle_tick_cycles() : 0; }
    uint64_t idle_saturated_faults() const { return idle_saturated_; }

private:
    struct VcpuRef {
        mmu::Mmu* hw = nullptr;
        VcpuRequestTarget* requests = nullptr;
    };
    Kvm& kvm_;
    HostPageAllocator& alloc_;
    tdx::TdxModule& module_;
    Hpa tdr_, root_;
    std::unique_ptr<KvmTdx> tdx_;
    std::unique_ptr<TdxArchOps> ops_;
    std::vector<VcpuRef> vcpus_;
    std::vector<unsigned> vp_;      // module vCPU index per vCPU
    std::vector<Hpa> tdvpr_;        // TDVPR page per vCPU (TDH.VP.CREATE)
    std::vector<bool> loaded_;      // the vCPU entered the TD at least once (vcpu->cpu != -1)
    std::vector<Hpa> sept_pages_;   // pages TDH.MEM.SEPT.ADD / DEMOTE made S-EPT tables
    std::function<std::optional<unsigned>()> current_vcpu_;
    std::optional<RunStats> run_stats_;
    TeardownStats teardown_;
    uint64_t accepts_ = 0;
    uint64_t accept_fallbacks_ = 0;
    uint64_t kicked_ = 0;
    uint64_t guest_busy_retries_ = 0;
    static constexpr unsigned kMaxBusyAccepts = 1000;
    static bool guest_busy(uint64_t rax) {
        const uint64_t st = rax & tdx::status::STATUS_MASK;
        return st == tdx::status::OPERAND_BUSY || st == tdx::status::OPERAND_BUSY_HOST_PRIORITY;
    }
    uint64_t idle_tick_hz_ = 0, freq_mhz_ = 3000;
    Cycles idle_wait_ = 0;
    uint64_t idle_saturated_ = 0;
};

}  // namespace hvsim::kvm
