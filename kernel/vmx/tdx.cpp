#include "kernel/vmx/tdx.hpp"

#include <cerrno>

namespace hvsim::kvm {

namespace {
// pg_level_to_tdx_sept_level(): KVM's pg_level is the module's level + 1.
unsigned tdx_sept_level(PgLevel l) { return unsigned(l) - 1; }
uint64_t gpa_of(Gfn gfn) { return gfn_to_gpa(gfn).raw(); }
}  // namespace

KvmTdx::KvmTdx(Kvm& kvm, tdx::TdxModule& module, Hpa tdr, TdxVcpuKicker& vcpus)
    : kvm_(kvm), module_(module), tdr_(tdr), vcpus_(vcpus) {}

// TDX_BUG_ON(): any status KVM does not expect makes the VM dead (kvm_vm_bugged()).
int KvmTdx::bug(uint64_t) {
    bugged_ = true;
    return -EIO;
}

int KvmTdx::link_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx) {
    timed_call(ctx, costs_.sept_add);
    ctx.charge("tdh_mem_sept_add", costs_.seamcall + costs_.sept_add);
    const uint64_t err =
        module_.tdh_mem_sept_add(tdx::gpa_level(gpa_of(gfn), tdx_sept_level(level)), tdr_, pfn_to_hpa(table)).rax;
    if (tdx::is_operand_busy(err)) {
        ++stats_.busy_retries;
        return -EBUSY;
    }
    return err ? bug(err) : 0;
}

int KvmTdx::set_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) {
    // Released KVM maps private memory at 4K only (tdx_gmem_private_max_mapping_level());
    // the huge-page series also at 2M, AUGed whole once the TD runs (PAGE.ADD has no level).
    const bool huge = level == PgLevel::k2M && huge_private_ && state_ == TdState::runnable;
    if (level != PgLevel::k4K && !huge) return bug(0);
    uint64_t err;
    if (state_ == TdState::runnable) {
        const Cycles leaf = huge ? costs_.page_aug_2m : costs_.page_aug;
        timed_call(ctx, leaf);
        ctx.charge(huge ? StepName("tdh_mem_page_aug_2m") : StepName("tdh_mem_page_aug"), costs_.seamcall + leaf);
        err = module_.tdh_mem_page_aug(tdx::gpa_level(gpa_of(gfn), tdx_sept_level(level)), tdr_, pfn_to_hpa(pfn)).rax;
        if (!err && huge) ++stats_.aug_2m;
    } else if (!page_add_in_map_) {
        // 6.18: tdx_mem_page_record_premap_cnt(); tdx_gmem_post_populate() adds the page.
        ++nr_premapped_;
        return 0;
    } else {
        // Building the TD: only KVM_TDX_INIT_MEM_REGION maps private memory, with its source.
        if (!page_add_src_) return bug(0);
        ctx.charge("tdh_mem_page_add", costs_.seamcall + costs_.page_add);
        err = module_.tdh_mem_page_add(tdx::gpa_level(gpa_of(gfn), 0), tdr_, pfn_to_hpa(pfn), *page_add_src_).rax;
    }
    if (tdx::is_operand_busy(err)) {
        ++stats_.busy_retries;
        return -EBUSY;
    }
    return err ? bug(err) : 0;
}

template <class F>
uint64_t KvmTdx::tdh_do_no_vcpus(F&& seamcall, ExecContext& ctx) {
    ++stats_.busy_retries;
    wait_for_sept_zap_ = true;
    ++stats_.kicks;
    vcpus_.kick_all_outside_guest_mode(ctx);
    const uint64_t err = seamcall();
    wait_for_sept_zap_ = false;
    return err;
}

void KvmTdx::tdx_track(ExecContext& ctx) {
    if (state_ != TdState::runnable) return;
    ++stats_.tracks;
    // Serialized by the write mmu_lock; a busy epoch lock (a vCPU entering) is retried.
    uint64_t err;
    unsigned spins = 0;
    do {
        timed_call(ctx, costs_.track);
        ctx.charge("tdh_mem_track", costs_.seamcall + costs_.track);
        err = module_.tdh_mem_track(tdr_).rax;
        if (tdx::is_operand_busy(err)) ++stats_.busy_retries;
    } while (tdx::is_operand_busy(err) && ++spins < 1000);
    if (err) {
        bug(err);
        return;
    }
    ++stats_.kicks;
    vcpus_.kick_all_outside_guest_mode(ctx);
}

int KvmTdx::remove_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) {
    // tdx_sept_remove_private_spte(): the HKID is released only after every private page
    // has been removed (and assigned before any is populated); a zap without it is a bug.
    if (!hkid_assigned_) return bug(0);
    // A 2M leaf (huge-page series) goes whole: BLOCK, TRACK, REMOVE at 2M, then WBINVD of
    // each of its 512 pages (TDH.PHYMEM.PAGE.WBINVD takes a 4K page).
    const bool huge = level == PgLevel::k2M && huge_private_;
    if (level != PgLevel::k4K && !huge) return bug(0);
    const uint64_t gl = tdx::gpa_level(gpa_of(gfn), tdx_sept_level(level));
    // tdx_sept_zap_private_spte(): BLOCK, retried once with every vCPU held out.
    timed_call(ctx, costs_.range_block);
    ctx.charge("tdh_mem_range_block", costs_.seamcall + costs_.range_block);
    uint64_t err = module_.tdh_mem_range_block(gl, tdr_).rax;
    // 6.18 tdx_is_sept_zap_err_due_to_premap(): before finalize, a page the mirror maps but
    // TDH.MEM.PAGE.ADD never added is FREE in the S-EPT; KVM only uncounts it.
    if (!page_add_in_map_ && state_ != TdState::runnable &&
        err == (tdx::status::EPT_ENTRY_STATE_INCORRECT | tdx::operand::RCX)) {
        if (!nr_premapped_) return bug(err);
        --nr_premapped_;
        return 0;
    }
    if (tdx::is_operand_busy(err))
        err = tdh_do_no_vcpus(
            [&] {
                timed_call(ctx, costs_.range_block);
                ctx.charge("tdh_mem_range_block", costs_.seamcall + costs_.range_block);
                return module_.tdh_mem_range_block(gl, tdr_).rax;
            },
            ctx);
    if (err) return bug(err);
    tdx_track(ctx);
    if (bugged_) return -EIO;
    timed_call(ctx, costs_.page_remove);
    ctx.charge("tdh_mem_page_remove", costs_.seamcall + costs_.page_remove);
    err = module_.tdh_mem_page_remove(gl, tdr_).rax;
    if (tdx::is_operand_busy(err))
        err = tdh_do_no_vcpus(
            [&] {
                timed_call(ctx, costs_.page_remove);
                ctx.charge("tdh_mem_page_remove", costs_.seamcall + costs_.page_remove);
                return module_.tdh_mem_page_remove(gl, tdr_).rax;
            },
            ctx);
    if (err) return bug(err);
    if (huge) ++stats_.remove_2m;
    // The page goes back to the host: write back and invalidate its lines under the TD key.
    const uint64_t pages = huge ? 512 : 1;
    for (uint64_t i = 0; i < pages; ++i) {
        ctx.charge("tdh_phymem_page_wbinvd", costs_.seamcall + costs_.wbinvd);
        err = module_.tdh_phymem_page_wbinvd(pfn_to_hpa(Pfn(pfn.raw() + i))).rax;
        if (err) return bug(err);
    }
    return 0;
}

int KvmTdx::split_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx) {
    // Only 2M private leaves exist (1G private pages are not modelled).
    if (level != PgLevel::k2M || !huge_private_) return bug(0);
    const uint64_t gl = tdx::gpa_level(gpa_of(gfn), tdx_sept_level(level));
    auto block = [&] {
        timed_call(ctx, costs_.range_block);
        ctx.charge("tdh_mem_range_block", costs_.seamcall + costs_.range_block);
        return module_.tdh_mem_range_block(gl, tdr_).rax;
    };
    uint64_t err = block();
    if (tdx::is_operand_busy(err)) err = tdh_do_no_vcpus(block, ctx);
    if (err) return bug(err);
    // In RUNNABLE the module demotes only a blocked leaf whose BEPOCH is tracked; before
    // finalize (no huge leaf exists then) tdx_track() is a no-op.
    tdx_track(ctx);
    if (bugged_) return -EIO;
    auto demote = [&] {
        timed_call(ctx, costs_.demote);
        ctx.charge("tdh_mem_page_demote", costs_.seamcall + costs_.demote);
        return module_.tdh_mem_page_demote(gl, tdr_, pfn_to_hpa(table)).rax;
    };
    err = demote();
    if (tdx::is_operand_busy(err)) err = tdh_do_no_vcpus(demote, ctx);
    if (err) return bug(err);
    ++stats_.demotes;
    return 0;
}

// ---------------------------------------------------------------------------------------
// Teardown (tdx.c: tdx_mmu_release_hkid(), tdx_reclaim_page(), tdx_vcpu_free(),
// tdx_reclaim_td_control_pages())

int KvmTdx::tdx_mmu_release_hkid(const std::vector<Hpa>& tdvprs, ExecContext& ctx) {
    if (!hkid_assigned_) return 0;
    // tdx_flush_vp_on_cpu() per vCPU: TDH.VP.FLUSH where it was last loaded.
    for (const Hpa tdvpr : tdvprs) {
        ctx.charge("tdh_vp_flush", costs_.seamcall + costs_.vp_flush);
        const uint64_t err = module_.tdh_vp_flush(tdvpr).rax;
        if (err && err != tdx::status::VCPU_NOT_ASSOCIATED) return bug(err);
    }
    // Serialized across TDs by tdx_lock (module-global resources).
    ctx.charge("tdh_mng_vpflushdone", costs_.seamcall + costs_.vpflushdone);
    uint64_t err = module_.tdh_mng_vpflushdone(tdr_).rax;
    if (err == tdx::status::FLUSHVP_NOT_DONE) return -EIO;   // "HKID is leaked", no KVM_BUG_ON
    if (err) return bug(err);
    // smp_func_do_phymem_cache_wb() on one CPU of each package (one package modelled).
    for (unsigned tries = 0;; ++tries) {
        ctx.charge("tdh_phymem_cache_wb", costs_.seamcall + costs_.cache_wb);
        err = module_.tdh_phymem_cache_wb().rax;
        if (err != tdx::status::INTERRUPTED_RESUMABLE || tries == 1000) break;
    }
    if (err == tdx::status::NO_HKID_READY_TO_WBCACHE) err = 0;   // another CPU did it
    // An error here makes KEY.FREEID fail below (Linux does not check it).
    ctx.charge("tdh_mng_key_freeid", costs_.seamcall + costs_.key_freeid);
    err = module_.tdh_mng_key_freeid(tdr_).rax;
    if (err) return bug(err);
    hkid_assigned_ = false;   // tdx_hkid_free()
    return 0;
}

int KvmTdx::tdx_reclaim_page(Hpa page, ExecContext& ctx) {
    ctx.charge("tdh_phymem_page_reclaim", costs_.seamcall + costs_.reclaim);
    const uint64_t err = module_.tdh_phymem_page_reclaim(page).rax;
    if (err) return -EIO;   // WARN_ON_ONCE: the page is leaked, not handed back
    ++stats_.reclaims;
    return 0;
}

int KvmTdx::tdx_reclaim_td_control_pages(const std::vector<Hpa>& tdcs, ExecContext& ctx) {
    // Without a free HKID nothing can be reclaimed: the pages leak.
    if (hkid_assigned_) return -EIO;
    for (const Hpa p : tdcs)
        if (const int r = tdx_reclaim_page(p, ctx)) return r;
    if (const int r = tdx_reclaim_page(tdr_, ctx)) return r;
    // tdh_phymem_page_wbinvd_tdr(): the module may have cached TDR lines under the global
    // KeyID while it reclaimed the TDCS pages.
    ctx.charge("tdh_phymem_page_wbinvd", costs_.seamcall + costs_.wbinvd);
    const uint64_t err = module_.tdh_phymem_page_wbinvd(tdr_).rax;
    return err ? bug(err) : 0;
}

uint64_t KvmTdx::tdh_vp_enter(unsigned vp, ExecContext& ctx) {
    timed_call(ctx, costs_.td_entry);
    const uint64_t err = module_.tdh_vp_enter(tdr_, vp).rax;
    if (tdx::is_operand_busy(err)) ++stats_.vp_enter_busy;
    return err;
}

int KvmTdx::tdx_td_finalize(ExecContext& ctx) {
    if (state_ != TdState::initialized) return -EINVAL;
    // 6.18: a page mapped by the fault path but never added (nr_premapped) refuses finalize.
    if (!page_add_in_map_ && nr_premapped_) return -EINVAL;
    ctx.charge("tdh_mr_finalize", costs_.seamcall);
    const uint64_t err = module_.tdh_mr_finalize(tdr_).rax;
    if (tdx::is_operand_busy(err)) return -EBUSY;
    if (err == tdx::status::NO_VCPUS) return -EINVAL;
    if (err) return bug(err);
    state_ = TdState::runnable;
    kvm_.pre_fault_allowed = true;
    return 0;
}

}  // namespace hvsim::kvm
