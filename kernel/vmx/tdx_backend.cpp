#include "kernel/vmx/tdx_backend.hpp"

#include "models/common/counting_context.hpp"

#include <cerrno>
#include <stdexcept>

#include <fmt/format.h>

namespace hvsim::kvm {

namespace {
Pfn alloc_page(HostPageAllocator& a, const char* what) {
    auto p = a.alloc(0);
    if (!p) throw std::runtime_error(fmt::format("host memory exhausted allocating {} (raise host.mem_size)", what));
    return *p;
}
}  // namespace

TdxBackend::TdxBackend(Kvm& kvm, tdx::TdxModule& module, HostPageAllocator& alloc, unsigned levels)
    : kvm_(kvm), alloc_(alloc), module_(module) {
    tdr_ = pfn_to_hpa(alloc_page(alloc_, "the TDR"));
    root_ = pfn_to_hpa(alloc_page(alloc_, "the S-EPT root"));
    module_.create_td(tdr_, root_, levels, /*pending_ve_disable=*/false);
    tdx_ = std::make_unique<KvmTdx>(kvm_, module_, tdr_, *this);
    ops_ = std::make_unique<TdxArchOps>(*tdx_, this);
    kvm_.set_arch_ops(*ops_);
}

TdxBackend::~TdxBackend() { kvm_.set_arch_ops(kvm_default_arch_ops(VmType::tdx)); }

void TdxBackend::attach_vcpu(mmu::Mmu& hw) {
    // tdx_vcpu_init() / TDH.VP.INIT: the module programs the secure EPTP of the TD's vCPUs.
    hw.set_secure_nested_root(module_.sept_root(tdr_));
    vcpus_.push_back(VcpuRef{&hw, nullptr});
}

int TdxBackend::finalize(unsigned nr_vcpus, ExecContext& ctx) {
    // TDH.VP.CREATE: each vCPU's TDVPR page comes from host memory (tdx_td_vcpu_init()).
    for (unsigned i = vp_.size(); i < nr_vcpus; ++i) {
        tdvpr_.push_back(pfn_to_hpa(alloc_page(alloc_, "a TDVPR page")));
        vp_.push_back(module_.vp_create(tdr_, tdvpr_.back()));
        loaded_.push_back(false);
    }
    return tdx_->tdx_td_finalize(ctx);
}

int TdxBackend::link_external_spt(Gfn gfn, PgLevel level, Pfn, ExecContext& ctx) {
    // tdx_sept_link_private_spt(): the page handed to TDH.MEM.SEPT.ADD is the mirror sp's
    // external_spt (kvm_mmu_alloc_external_spt()), a page of its own.
    const Pfn page = alloc_page(alloc_, "a secure EPT page");
    const int r = tdx_->link_external_spt(gfn, level, page, ctx);
    if (r) alloc_.free(page, 0);
    else sept_pages_.push_back(pfn_to_hpa(page));
    return r;
}

int TdxBackend::set_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) {
    return tdx_->set_external_spte(gfn, level, pfn, ctx);
}

int TdxBackend::remove_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) {
    // The zap's TRACK and REMOVE see the vCPUs that are in the TD now.
    sync_td_vcpus();
    return tdx_->remove_external_spte(gfn, level, pfn, ctx);
}

int TdxBackend::split_external_spt(Gfn gfn, PgLevel level, Pfn, ExecContext& ctx) {
    // The new S-EPT page comes from the vCPU's external-SPT cache (a page of its own); the
    // zap's TRACK sees the vCPUs that are in the TD now.
    const Pfn page = alloc_page(alloc_, "a secure EPT page");
    sync_td_vcpus();
    const int r = tdx_->split_external_spt(gfn, level, page, ctx);
    if (r) alloc_.free(page, 0);
    else sept_pages_.push_back(pfn_to_hpa(page));
    return r;
}

void TdxBackend::kick_all_outside_guest_mode(ExecContext& ctx) {
    // kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE): only the vCPUs inside the TD
    // (IN_GUEST_MODE) get the IPI; each takes a TD exit, which drops the module's REFCOUNT
    // of its entry epoch, and pays the exit and its next TDH.VP.ENTER. KVM waits for the
    // slowest, one IPI round trip. Every vCPU's TLB is flushed: the kicked ones and the
    // ones outside both enter again through TDH.VP.ENTER, which flushes when TD_EPOCH moved.
    const KvmCosts& c = kvm_.costs();
    unsigned ipis = 0;
    module_.interrupt_guest_leaves(tdr_);
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        VcpuRef& v = vcpus_[i];
        v.hw->flush_all();
        if (i >= vp_.size() || !module_.vcpu_inside(tdr_, vp_[i])) continue;
        module_.td_exit(tdr_, vp_[i]);
        ++ipis;
        if (v.requests) v.requests->charge_before_guest(td_exit_cycles() + td_entry_cycles());
    }
    kicked_ += ipis;
    if (ipis) ctx.charge("tdx_kick_ipi", c.tlb_flush_remote_ipi);
}

void TdxBackend::sync_td_vcpus() {
    for (size_t i = 0; i < vcpus_.size() && i < vp_.size(); ++i) {
        const bool guest_mode = vcpus_[i].requests && vcpus_[i].requests->in_guest_mode();
        const bool inside = module_.vcpu_inside(tdr_, vp_[i]);
        if (guest_mode && !inside) {
            // tdx_vcpu_run(): an entry the module refuses with BUSY is retried by KVM's run
            // loop; the run never holds the epoch or TDR lock across a vCPU's entry.
            const uint64_t err = module_.tdh_vp_enter(tdr_, vp_[i]).rax;
            if (err) throw std::logic_error(fmt::format("TDH.VP.ENTER of vCPU {} failed ({:#x})", i, err));
            loaded_[i] = true;
        } else if (!guest_mode && inside) {
            module_.td_exit(tdr_, vp_[i]);
        }
    }
}

void TdxBackend::charge_td_entry_of_current(ExecContext& ctx) {
    const std::optional<unsigned> v = current_vcpu_ ? current_vcpu_() : std::nullopt;
    if (v && *v < vp_.size() && tdx_->vcpu_may_enter()) td_enter(*v, ctx);
    else ctx.charge("tdh_vp_enter", td_entry_cycles());
}

void TdxBackend::charge_td_exit_of_current(ExecContext& ctx) {
    ctx.charge("tdx_td_exit", td_exit_cycles());
    if (const std::optional<unsigned> v = current_vcpu_ ? current_vcpu_() : std::nullopt; v && *v < vp_.size())
        td_exit(*v);
}

void TdxBackend::td_enter(unsigned vcpu, ExecContext& ctx) {
    if (module_.vcpu_inside(tdr_, vp_[vcpu])) {
        ctx.charge("tdh_vp_enter", td_entry_cycles());
        return;
    }
    for (unsigned tries = 0;; ++tries) {
        if (tries == kMaxBusyAccepts)
            throw std::runtime_error(fmt::format("TDH.VP.ENTER of vCPU {} stays busy", vcpu));
        ctx.charge("tdh_vp_enter", td_entry_cycles());
        const uint64_t err = tdx_->tdh_vp_enter(vp_[vcpu], ctx);
        if (!err) break;
        if (!tdx::is_operand_busy(err))
            throw std::runtime_error(fmt::format("TDH.VP.ENTER of vCPU {} failed ({:#x})", vcpu, err));
    }
    loaded_[vcpu] = true;
}

void TdxBackend::td_exit(unsigned vcpu) {
    if (vcpu < vp_.size()) module_.td_exit(tdr_, vp_[vcpu]);
}

void TdxBackend::teardown(TdpMmu& mirror, ExecContext& outer) {
    if (run_stats_) return;
    run_stats_ = RunStats{module_.stats(), tdx_->stats(), mirror.stats()};
    CountingContext ctx(outer);
    tdx_->set_clock({});   // the run has ended: no lock is held in simulated time any more
    const uint64_t calls0 = module_.stats().seamcalls, removed0 = module_.stats().remove;
    const uint64_t removed_2m0 = tdx_->stats().remove_2m;
    // kvm_gmem_release(): no vCPU runs any more; every private leaf goes with the HKID.
    // The vCPUs have left the TD and never enter again: the zaps' kicks reach none of them
    // and their TLBs go with them (nothing is flushed).
    sync_td_vcpus();
    vcpus_.clear();
    mirror.zap_leafs(Gfn(0), Gfn(~0ull), ctx);
    teardown_.pages_removed = (module_.stats().remove - removed0) + 511 * (tdx_->stats().remove_2m - removed_2m0);
    // vt_vm_pre_destroy() -> tdx_mmu_release_hkid(): the vCPUs that were loaded.
    std::vector<Hpa> loaded;
    for (size_t i = 0; i < tdvpr_.size(); ++i)
        if (loaded_[i]) loaded.push_back(tdvpr_[i]);
    const uint64_t reclaims0 = tdx_->stats().reclaims;
    if (tdx_->tdx_mmu_release_hkid(loaded, ctx) == 0) {
        teardown_.hkid_released = true;
        // kvm_destroy_vcpus() -> tdx_vcpu_free(): each vCPU's TDVPR.
        for (const Hpa p : tdvpr_) tdx_->tdx_reclaim_page(p, ctx);
        // The mirror root freed: tdx_sept_free_private_spt() per S-EPT page, lowest first.
        for (auto it = sept_pages_.rbegin(); it != sept_pages_.rend(); ++it) tdx_->tdx_reclaim_page(*it, ctx);
        // tdx_vm_destroy() -> tdx_reclaim_td_control_pages(): the TDCS (its S-EPT root), the TDR.
        tdx_->tdx_reclaim_td_control_pages({root_}, ctx);
    }
    teardown_.reclaimed = tdx_->stats().reclaims - reclaims0;
    teardown_.seamcalls = module_.stats().seamcalls - calls0;
    teardown_.cycles = ctx.total;
}

bool TdxBackend::td_ept_violation_handled_by_guest(unsigned vcpu, Gpa gpa, ExecContext& ctx,
                                                   PgLevel* accept_level) {
    if (vcpu >= vp_.size()) return false;
    const tdx::GuestRet v = module_.td_ept_violation(tdr_, vp_[vcpu], gpa.raw());
    if (v.kind != tdx::GuestRet::Kind::ve) return false;
    ctx.charge("tdx_ve", tdx_->costs().ve);
    // The guest's #VE handler accepts the 4K page and returns to the access
    // (TDG.MEM.PAGE.ACCEPT). A page accepted meanwhile by another vCPU is fine; an entry
    // another vCPU's ACCEPT or a host leaf holds (BUSY, or BUSY_HOST_PRIORITY) is retried.
    tdx::GuestRet a;
    for (unsigned tries = 0;; ++tries) {
        if (tries == kMaxBusyAccepts) break;
        tdx_->timed_call(ctx, tdx_->costs().accept_4k);
        ctx.charge("tdg_mem_page_accept", tdx_->costs().accept_4k);
        a = module_.tdg_mem_page_accept(tdr_, vp_[vcpu], tdx::gpa_level(gpa.raw() & ~kPageMask, 0));
        if (a.kind != tdx::GuestRet::Kind::status || !guest_busy(a.rax)) break;
        ++guest_busy_retries_;
    }
    if (a.kind == tdx::GuestRet::Kind::td_exit) {
        // The 4K ACCEPT found a 2M PENDING leaf (huge-page series): an EPT-violation TD exit
        // of type ACCEPT at the requested level; KVM splits the leaf and the guest retries.
        if (accept_level) *accept_level = PgLevel(a.req_level + 1);
        return false;
    }
    if (a.kind == tdx::GuestRet::Kind::status &&
        (a.rax == 0 || (a.rax & tdx::status::STATUS_MASK) == tdx::status::PAGE_ALREADY_ACCEPTED)) {
        if (a.rax == 0) ++accepts_;
        return true;
    }
    throw std::runtime_error(fmt::format("TD vCPU {}: TDG.MEM.PAGE.ACCEPT of {:#x} failed (status {:#x})", vcpu,
                                         gpa.raw(), a.rax));
}

uint64_t TdxBackend::guest_accept(unsigned vcpu, uint64_t gpa, uint64_t size, PgLevel level, ExecContext& ctx,
                                  const std::function<bool(uint64_t, PgLevel)>& exit_to_kvm) {
    if (vcpu >= vp_.size()) throw std::runtime_error("accept from a vCPU the TD does not have");
    const uint64_t step = level_size(level);
    for (uint64_t a = gpa; a < gpa + size; a += step) {
        for (unsigned tries = 0;; ++tries) {
            if (tries == kMaxBusyAccepts)
                throw std::runtime_error(fmt::format("TDG.MEM.PAGE.ACCEPT of {:#x} does not complete", a));
            // Each attempt is a TDCALL; a 2M one that succeeds zeroes 512 pages (and holds
            // its entry for all of them).
            tdx_->timed_call(ctx, (level == PgLevel::k2M ? 512 : 1) * tdx_->costs().accept_4k);
            ctx.charge("tdg_mem_page_accept", tdx_->costs().accept_4k);
            const tdx::GuestRet r = module_.tdg_mem_page_accept(tdr_, vp_[vcpu], tdx::gpa_level(a, unsigned(level) - 1));
            if (r.kind == tdx::GuestRet::Kind::td_exit) {
                // The ACCEPT's EPT violation: KVM maps (AUGs) the page, the guest retries.
                if (!exit_to_kvm(a, PgLevel(r.req_level + 1))) return ~0ull;
                continue;
            }
            const uint64_t st = r.rax & tdx::status::STATUS_MASK;
            if (r.rax == 0) {
                ++accepts_;
                if (level == PgLevel::k2M) ctx.charge("tdg_mem_page_accept", 511 * tdx_->costs().accept_4k);
                break;
            }
            if (st == tdx::status::PAGE_ALREADY_ACCEPTED) break;
            if (guest_busy(r.rax)) {
                // The guest retries an ACCEPT whose entry is locked (A5) or that a host leaf
                // asked priority on (A6).
                ++guest_busy_retries_;
                continue;
            }
            if (st == tdx::status::PAGE_SIZE_MISMATCH && level == PgLevel::k2M) {
                // The host mapped 4K: accept the 2M range page by page.
                ++accept_fallbacks_;
                const uint64_t e = guest_accept(vcpu, a, step, PgLevel::k4K, ctx, exit_to_kvm);
                if (e) return e;
                break;
            }
            return r.rax;
        }
    }
    return 0;
}

Cycles TdxBackend::idle_tick_cycles() const {
    return td_exit_cycles() + tdx_->costs().idle_tick + td_entry_cycles();
}

void TdxBackend::charge_idle_ticks(Cycles fault, ExecContext& ctx) {
    if (!idle_tick_hz_ || !fault) return;
    uint64_t idle = 0;
    for (const VcpuRef& v : vcpus_)
        if (v.requests && v.requests->idle()) ++idle;
    if (!idle) return;
    // Share of the serialization point the ticks demand, as num / den.
    using u128 = unsigned __int128;
    const u128 den = u128(freq_mhz_) * 1000000u;
    u128 num = u128(idle) * idle_tick_hz_ * idle_tick_cycles();
    if (num * 100 > den * 98) {
        num = den * 98 / 100;
        ++idle_saturated_;
    }
    const Cycles wait = Cycles(u128(fault) * num / (den - num));
    idle_wait_ += wait;
    ctx.charge("tdx_idle_tick_wait", wait);
}

std::optional<std::string> TdxBackend::check(const TdpMmu& mirror) const {
    const auto leaves = module_.sept_leaves(tdr_);
    size_t i = 0;
    std::optional<std::string> bad;
    mirror.for_each_leaf([&](Gfn gfn, const SpteLeaf& leaf) {
        if (bad) return;
        if (i >= leaves.size()) {
            bad = fmt::format("mirror maps gfn {:#x} but the secure EPT has no leaf there", gfn.raw());
            return;
        }
        const auto& s = leaves[i++];
        if (s.gpa != gfn_to_gpa(gfn).raw() || s.level != unsigned(leaf.level) - 1 || s.hpa != pfn_to_hpa(leaf.pfn)) {
            bad = fmt::format("secure EPT leaf {:#x} (level {}, hpa {:#x}) disagrees with the mirror at gfn {:#x}",
                              s.gpa, s.level, s.hpa.raw(), gfn.raw());
            return;
        }
        if (s.state != tdx::SeptState::mapped && s.state != tdx::SeptState::pending) {
            bad = fmt::format("secure EPT leaf {:#x} is {} while the mirror maps it", s.gpa, tdx::sept_state_name(s.state));
            return;
        }
        const tdx::PamtEntry p = module_.pamt(s.hpa);
        if (p.pt != tdx::PageType::reg || p.owner != tdr_.raw())
            bad = fmt::format("PAMT of {:#x} (mapped at gpa {:#x}) is not a REG page of the TD", s.hpa.raw(), s.gpa);
        // A 2M leaf needs all 512 gfns private (the huge-page series maps 2M only over
        // uniform attributes and splits before a partial conversion).
        const uint64_t n = level_pages(leaf.level);
        if (!bad && !kvm_.kvm_range_has_memory_attributes(gfn, gfn + n, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE,
                                                          uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE))
            bad = fmt::format("gfn {:#x} (level {}) is mapped private in the secure EPT but its attributes say shared",
                              gfn.raw(), level_name(leaf.level));
    });
    if (!bad && i != leaves.size())
        bad = fmt::format("secure EPT has {} leaves the mirror does not map (first at {:#x})", leaves.size() - i,
                          leaves[i].gpa);
    return bad;
}

}  // namespace hvsim::kvm
