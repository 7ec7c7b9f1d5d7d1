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
// A run reaches the hooks through the TDP MMU's mirror root (kernel/vmx/tdx_backend.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

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

// Cycle costs of the SEAMCALLs KVM makes (the platform preset's cost.tdx_* keys; each is the
// leaf's work in the module, charged on top of the SEAMCALL/SEAMRET round trip).
struct TdxCosts {
    Cycles seamcall = 0;      // cost.tdx_seamcall: SEAMCALL + SEAMRET round trip, minimal leaf
    Cycles sept_add = 0;      // cost.tdx_sept_add: TDH.MEM.SEPT.ADD
    Cycles page_aug = 0;      // cost.tdx_page_aug: TDH.MEM.PAGE.AUG (4K)
    Cycles range_block = 0;   // cost.tdx_range_block: TDH.MEM.RANGE.BLOCK
    Cycles track = 0;         // cost.tdx_track: TDH.MEM.TRACK
    Cycles page_remove = 0;   // cost.tdx_page_remove: TDH.MEM.PAGE.REMOVE
    Cycles wbinvd = 0;        // cost.tdx_wbinvd: TDH.PHYMEM.PAGE.WBINVD (4K)
    Cycles td_exit = 0;       // cost.tdx_td_exit: a TD exit through the module (replaces cost.vmexit)
    Cycles td_entry = 0;      // cost.tdx_td_entry: TDH.VP.ENTER's leaf, beyond cost.tdx_seamcall (replaces cost.vmentry)
    Cycles ve = 0;            // cost.tdx_ve: #VE delivery and the guest's handler, no exit
    Cycles accept_4k = 0;     // cost.tdx_accept_4k: TDG.MEM.PAGE.ACCEPT of 4K (TDCALL, zeroing)
    Cycles idle_tick = 0;     // cost.tdx_idle_tick: an idle vCPU's tick beyond its TD exit and entry
    Cycles page_add = 0;      // cost.tdx_page_add: TDH.MEM.PAGE.ADD (copy a 4K source page into the TD)
    Cycles mr_extend = 0;     // cost.tdx_mr_extend: TDH.MR.EXTEND of 256 bytes (16 per measured page)
    Cycles page_aug_2m = 0;   // cost.tdx_page_aug_2m: TDH.MEM.PAGE.AUG of 2M (512 PAMT entries checked)
    Cycles demote = 0;        // cost.tdx_demote: TDH.MEM.PAGE.DEMOTE 2M -> 512 x 4K (a new S-EPT page filled)
    // Teardown (tdx_mmu_release_hkid(), tdx_reclaim_page())
    Cycles vp_flush = 0;      // cost.tdx_vp_flush: TDH.VP.FLUSH (the vCPU's VMCS and caches flushed on its CPU)
    Cycles vpflushdone = 0;   // cost.tdx_vpflushdone: TDH.MNG.VPFLUSHDONE
    Cycles cache_wb = 0;      // cost.tdx_cache_wb: TDH.PHYMEM.CACHE.WB (write back the package's caches)
    Cycles key_freeid = 0;    // cost.tdx_key_freeid: TDH.MNG.KEY.FREEID
    Cycles reclaim = 0;       // cost.tdx_reclaim: TDH.PHYMEM.PAGE.RECLAIM of one page
};

// KVM_TDX_INIT_MEM_REGION's argument (struct kvm_tdx_init_mem_region, uapi asm/kvm.h); the
// source buffer is passed as its pages. Advanced by the pages done, as KVM copies it back.
struct KvmTdxInitMemRegion {
    uint64_t gpa = 0;
    uint64_t nr_pages = 0;
};
inline constexpr uint32_t KVM_TDX_MEASURE_MEMORY_REGION = 1u << 0;

struct KvmTdxStats {
    uint64_t busy_retries = 0;   // BUSY answers KVM retried (fault path: -EBUSY; zap: no-vCPU retry)
    uint64_t kicks = 0;          // kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)
    uint64_t tracks = 0;         // tdx_track() calls that issued TDH.MEM.TRACK
    uint64_t aug_2m = 0;         // TDH.MEM.PAGE.AUG at 2M that succeeded
    uint64_t remove_2m = 0;      // TDH.MEM.PAGE.REMOVE at 2M that succeeded
    uint64_t demotes = 0;        // TDH.MEM.PAGE.DEMOTE that succeeded (huge leaf split)
    uint64_t reclaims = 0;       // TDH.PHYMEM.PAGE.RECLAIM that succeeded (teardown)
    uint64_t vp_enter_busy = 0;  // TDH.VP.ENTER answered OPERAND_BUSY (the run loop re-enters)
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
    // The huge-page series' split_external_spt (tdx_sept_split_private_spt()): BLOCK the
    // 2M leaf, tdx_track() (TRACK + kick), TDH.MEM.PAGE.DEMOTE with `table` (a page from
    // the external-SPT cache) as the new S-EPT page. A BUSY BLOCK or DEMOTE is retried once
    // with every vCPU held out, as a zap's; anything else bugs the VM (-EIO).
    int split_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx);

    // kvm.config.tdx_huge_private: private memory is mapped at 2M where the guest_memfd
    // folio is 2M and the range's attributes are uniform (the huge-page series'
    // tdx_gmem_private_max_mapping_level()); off, 4K only as released Linux.
    void set_huge_private(bool b) { huge_private_ = b; }
    bool huge_private() const { return huge_private_; }

    // KVM_TDX_INIT_MEM_REGION's per-page source (kvm_tdx->page_add_src) and its state check:
    // -EINVAL once the TD is RUNNABLE.
    int tdx_vcpu_init_mem_region_check() const { return state_ == TdState::runnable ? -EINVAL : 0; }
    void set_page_add_src(std::optional<Hpa> src) { page_add_src_ = src; }
    // Which KVM_TDX_INIT_MEM_REGION flow (kvm.config.tdx_page_add_in_map): true is 6.19 and
    // later (TDH.MEM.PAGE.ADD inside the mirror update); false is 6.18 and earlier, where the
    // leaf hook of a TD being built only counts the page in nr_premapped
    // (tdx_mem_page_record_premap_cnt()), tdx_gmem_post_populate() then issues
    // TDH.MEM.PAGE.ADD and uncounts it, a zap of a counted page that was never added uncounts
    // it too, and KVM_TDX_FINALIZE_VM is -EINVAL while any page is counted.
    void set_page_add_in_map(bool b) { page_add_in_map_ = b; }
    bool page_add_in_map() const { return page_add_in_map_; }
    uint64_t nr_premapped() const { return nr_premapped_; }
    // KVM_TDX_FINALIZE_VM: -EINVAL unless the TD is still being built (INITIALIZED).
    int tdx_td_finalize(ExecContext& ctx);

    // ---- initial memory (kernel/vmx/tdx_launch.cpp) ----
    // kvm_tdp_mmu_map_private_pfn(): the platform's way into the TDP MMU's mirror root.
    using MapPrivatePfn = std::function<int(Gfn, Pfn, ExecContext&)>;
    void set_map_private_pfn(MapPrivatePfn f) { map_private_pfn_ = std::move(f); }
    // KVM_TDX_INIT_MEM_REGION (tdx_vcpu_init_mem_region()): one kvm_gmem_populate() per
    // page, whose tdx_gmem_post_populate() maps the page through the mirror root
    // (SEPT.ADD for missing tables, TDH.MEM.PAGE.ADD of the source) and, with
    // KVM_TDX_MEASURE_MEMORY_REGION, extends the MRTD with 16 TDH.MR.EXTEND. -EINVAL once
    // the TD is RUNNABLE or for bad arguments; the region advances by the pages done.
    int tdx_vcpu_init_mem_region(KvmTdxInitMemRegion& r, const std::vector<Pfn>& src, uint32_t flags,
                                 ExecContext& ctx);
    // tdx_gmem_post_populate() for one page.
    int tdx_gmem_post_populate(Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext& ctx);
    // KVM_TDX_MEASURE_MEMORY_REGION: 16 TDH.MR.EXTEND of 256 bytes over the page at gfn.
    int tdx_mr_extend_page(Gfn gfn, ExecContext& ctx);
    uint64_t init_mem_pages() const { return init_mem_pages_; }

    // Timed runs: `clock` answers the simulated cycle of the thread that has just synced
    // (the global time). With it, every SEAMCALL and TDCALL of a run first brings the
    // caller's local time in line (ctx.sync()) and then holds the module's locks for its
    // leaf's cycles (TdxModule::at()), so calls of other vCPUs and of the VMM thread that
    // overlap it answer OPERAND_BUSY. Without a clock (unit tests) calls are untimed.
    void set_clock(std::function<Cycles()> clock) { clock_ = std::move(clock); }
    // Before a leaf of `hold` cycles: sync and tell the module when it runs.
    void timed_call(ExecContext& ctx, Cycles hold) {
        if (!clock_) return;
        ctx.sync();
        module_.at(clock_(), hold);
    }

    // ---- teardown (kvm_destroy_vm() of a TD) ----
    // is_hkid_assigned(): until TDH.MNG.KEY.FREEID succeeded.
    bool hkid_assigned() const { return hkid_assigned_; }
    // tdx_mmu_release_hkid() (vt_vm_pre_destroy()): TDH.VP.FLUSH of every vCPU that was
    // loaded (`tdvprs`; tdx_flush_vp_on_cpu() skips the others, and VCPU_NOT_ASSOCIATED is
    // no error), TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB on one CPU per package (retried
    // while INTERRUPTED_RESUMABLE; NO_HKID_READY_TO_WBCACHE means another CPU did it), then
    // TDH.MNG.KEY.FREEID. FLUSHVP_NOT_DONE gives up (the HKID stays assigned, the pages
    // leak); any other error is KVM_BUG_ON. 0 or -EIO.
    int tdx_mmu_release_hkid(const std::vector<Hpa>& tdvprs, ExecContext& ctx);
    // tdx_reclaim_page(): TDH.PHYMEM.PAGE.RECLAIM once the HKID is free (no BUSY is
    // possible then, so none is retried); an error leaks the page (-EIO, WARN).
    int tdx_reclaim_page(Hpa page, ExecContext& ctx);
    // tdx_reclaim_td_control_pages() (tdx_vm_destroy()): the TDCS pages, then the TDR:
    // RECLAIM, TDH.PHYMEM.PAGE.WBINVD of the TDR under the global KeyID
    // (tdh_phymem_page_wbinvd_tdr()), as the module may have touched it while reclaiming TDCS.
    int tdx_reclaim_td_control_pages(const std::vector<Hpa>& tdcs, ExecContext& ctx);

    // tdx_vcpu_run() -> tdh_vp_enter(): the SEAMCALL of one TD entry of module vCPU `vp`,
    // made at the caller's time in a timed run. OPERAND_BUSY (the TD epoch lock of a
    // TRACK, or the TDR of a build-time leaf) is EXIT_FASTPATH_EXIT_HANDLED in KVM: the run
    // loop re-enters, counted in vp_enter_busy. Returns the module's status.
    uint64_t tdh_vp_enter(unsigned vp, ExecContext& ctx);

    // tdx_vcpu_run(): no TD entry while a zap holds every vCPU out (wait_for_sept_zap).
    bool vcpu_may_enter() const { return !wait_for_sept_zap_; }
    void set_costs(const TdxCosts& c) { costs_ = c; }
    const TdxCosts& costs() const { return costs_; }
    bool bugged() const { return bugged_; }
    TdState state() const { return state_; }
    const KvmTdxStats& stats() const { return stats_; }
    // The TD's private memory, encrypted with its private HKID (MKTME): the pages the PAMT
    // gives this TDR as guest pages (PT_REG), secure-EPT pages (PT_EPT) or TD control
    // structures (PT_TDCX, PT_TDVPR; the S-EPT root is a TDCX page).
    const EncryptedPages& private_pages() const { return private_pages_; }

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
    struct TdPrivatePages final : EncryptedPages {
        TdPrivatePages(const tdx::TdxModule& m, Hpa t) : module(m), tdr(t) {}
        bool encrypted(Pfn p) const override {
            const tdx::PamtEntry e = module.pamt(Hpa(p.raw() << kPageShift));
            return e.owner == tdr.raw() && (e.pt == tdx::PageType::reg || e.pt == tdx::PageType::ept ||
                                            e.pt == tdx::PageType::tdcx || e.pt == tdx::PageType::tdvpr);
        }
        const tdx::TdxModule& module;
        Hpa tdr;
    };
    TdPrivatePages private_pages_{module_, tdr_};
    TdxVcpuKicker& vcpus_;
    TdState state_ = TdState::initialized;
    std::optional<Hpa> page_add_src_;
    MapPrivatePfn map_private_pfn_;
    std::function<Cycles()> clock_;
    bool page_add_in_map_ = true;
    bool huge_private_ = false;
    uint64_t nr_premapped_ = 0;      // kvm_tdx->nr_premapped (6.18 flow)
    bool measure_ = false;           // tdx_gmem_post_populate_arg.flags & KVM_TDX_MEASURE_MEMORY_REGION
    uint64_t init_mem_pages_ = 0;
    bool wait_for_sept_zap_ = false;
    bool bugged_ = false;
    bool hkid_assigned_ = true;
    KvmTdxStats stats_;
    TdxCosts costs_;
};

// The wait a TD's private fault adds for the idle vCPUs' ticks it competes with
// (implemented by the run's TD, kernel/vmx/tdx_backend.hpp).
class TdxFaultWait {
public:
    virtual ~TdxFaultWait() = default;
    virtual bool fault_waits(const Kvm& kvm, Gpa gpa) const = 0;
    virtual void charge_fault_wait(Cycles fault, ExecContext& ctx) = 0;
};

// The TD's KvmArchOps once KVM's TDX backend exists: the built-in tdx answers, plus
// tdx_gmem_post_populate() as kvm_gmem_populate()'s arch callback and the idle-tick wait of
// a private fault.
class TdxArchOps final : public KvmArchOps {
public:
    TdxArchOps(KvmTdx& tdx, TdxFaultWait* wait = nullptr)
        : base_(kvm_default_arch_ops(VmType::tdx)), tdx_(tdx), wait_(wait) {}
    VmType type() const override { return base_.type(); }
    bool has_private_mem() const override { return base_.has_private_mem(); }
    bool has_protected_state() const override { return base_.has_protected_state(); }
    bool pre_fault_allowed_initially() const override { return base_.pre_fault_allowed_initially(); }
    bool supported_by(const KvmConfig& c) const override { return base_.supported_by(c); }
    bool sev_guest() const override { return base_.sev_guest(); }
    bool supports_gmem_init_shared() const override { return base_.supports_gmem_init_shared(); }
    bool has_readonly_mem(const KvmConfig& c) const override { return base_.has_readonly_mem(c); }
    uint64_t max_gfn(const KvmConfig& c) const override { return base_.max_gfn(c); }
    unsigned shared_gpa_bit(unsigned l) const override { return base_.shared_gpa_bit(l); }
    bool guest_tables_private() const override { return base_.guest_tables_private(); }
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t ec) const override { return base_.fault_is_private(k, g, ec); }
    bool supports_content_policy(ContentPolicy p, bool to_private) const override {
        return base_.supports_content_policy(p, to_private);
    }
    std::optional<uint8_t> none_policy_fill() const override { return base_.none_policy_fill(); }
    // With 2M private leaves the run says what of the huge-page series it does not model.
    std::vector<std::string> unmodelled(HostPaging host) const override {
        std::vector<std::string> w = base_.unmodelled(host);
        if (!tdx_.huge_private()) return w;
        static constexpr std::string_view k4K = "private memory is mapped at 4K only (no 2M AUG, DEMOTE or PROMOTE in runs)";
        const std::string huge =
            "private memory is mapped at 2M as the unmerged TDX huge-page series does (kvm.config.tdx_huge_private): "
            "DEMOTE is never interrupted (no TDX_INTERRUPTED_RESTARTABLE), PROMOTE is not issued, 1G private pages "
            "and Dynamic PAMT are not modelled";
        for (std::string& s : w)
            if (const size_t at = s.find(k4K); at != std::string::npos) s.replace(at, k4K.size(), huge);
        return w;
    }
    std::optional<HostPaging> requires_host() const override { return base_.requires_host(); }
    bool has_mirrored_tdp() const override { return base_.has_mirrored_tdp(); }
    // 4K as released Linux; 2M with kvm.config.tdx_huge_private (the huge-page series).
    PgLevel private_max_mapping_level() const override {
        return tdx_.huge_private() ? PgLevel::k2M : base_.private_max_mapping_level();
    }
    PgLevel gmem_max_mapping_level(const Kvm& k, Pfn p) const override {
        return tdx_.huge_private() ? PgLevel::k2M : base_.gmem_max_mapping_level(k, p);
    }
    // Every other hook forwards too, so a hook the built-in TDX ops gain later is not lost.
    int gmem_prepare(Kvm& k, Pfn p, Gfn g, int order, ExecContext& ctx) override {
        return base_.gmem_prepare(k, p, g, order, ctx);
    }
    void gmem_invalidate(Kvm& k, Pfn s, Pfn e, ExecContext& ctx) override { base_.gmem_invalidate(k, s, e, ctx); }
    void handle_rmp_fault(Kvm& k, Gpa g, uint64_t ec, ExecContext& ctx) override { base_.handle_rmp_fault(k, g, ec, ctx); }
    Cycles exit_extra_cycles() const override { return base_.exit_extra_cycles(); }
    // TD private pages are encrypted with the TD's private KeyID.
    const EncryptedPages* encrypted_pages(const Kvm&) const override { return &tdx_.private_pages(); }
    bool is_protected() const override { return base_.is_protected(); }
    int prepare_memory_region(const Kvm& k, const kvm_memory_slot* s, kvm_mr_change c) const override {
        return base_.prepare_memory_region(k, s, c);
    }
    void vcpu_run(Kvm& k) override { base_.vcpu_run(k); }
    int gmem_post_populate(Kvm&, Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext& ctx) override {
        return tdx_.tdx_gmem_post_populate(gfn, pfn, src, ctx);
    }
    bool fault_wait_applies(const Kvm& k, Gpa gpa) const override { return wait_ && wait_->fault_waits(k, gpa); }
    void charge_fault_wait(Cycles fault, ExecContext& ctx) override {
        if (wait_) wait_->charge_fault_wait(fault, ctx);
    }

private:
    KvmArchOps& base_;
    KvmTdx& tdx_;
    TdxFaultWait* wait_;
};

}  // namespace hvsim::kvm
