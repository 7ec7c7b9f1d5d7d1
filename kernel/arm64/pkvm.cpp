#include "kernel/arm64/pkvm.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <string>

#include "kernel/error_rule.hpp"
#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"

namespace hvsim::kvm::arm64 {

namespace d = stage2::desc;
using stage2::level_size;

uint64_t pkvm_host_donation_annotation(PkvmOwner owner, unsigned handle, uint64_t gfn) {
    uint64_t meta = 0;
    if (owner == PkvmOwner::guest) meta = (uint64_t(handle) & 0xffff) | ((gfn & ((1ull << 40) - 1)) << 16);
    return (KVM_HOST_INVALID_PTE_TYPE_DONATION << KVM_INVALID_PTE_TYPE_SHIFT) | (meta << 4) | (uint64_t(owner) << 1);
}

uint64_t pkvm_mkstate(PkvmPageState s) {
    switch (s) {
    case PkvmPageState::shared_owned: return 1ull << 55;
    case PkvmPageState::shared_borrowed: return 1ull << 56;
    default: return 0;
    }
}

PkvmPageState pkvm_getstate(uint64_t pte) {
    switch ((pte >> 55) & 3) {
    case 1: return PkvmPageState::shared_owned;
    case 2: return PkvmPageState::shared_borrowed;
    default: return PkvmPageState::owned;
    }
}

namespace {
bool pte_valid(uint64_t pte) { return pte & d::VALID; }
// SMCCC: what a failed MEM_SHARE / MEM_UNSHARE returns in x0 (pkvm.c: anything but 0 is
// INVALID_PARAMETER for the guest).
int64_t smccc_ret(int r) { return r ? SMCCC_RET_INVALID_PARAMETER : 0; }
}  // namespace

std::optional<Hpa> PkvmHyp::HostMemcache::alloc_table_page() {
    auto p = alloc->alloc(order);
    if (!p) return std::nullopt;
    const Hpa a = pfn_to_hpa(*p);
    mem->fill(a, 0, kPageSize << order);
    return a;
}

void PkvmHyp::HostMemcache::free_table_page(Hpa page) { alloc->free(hpa_to_pfn(page), order); }

PkvmHyp::PkvmHyp(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, VmmProcess& proc, Arm64Mmu& guest,
                 stage2::TlbiDomain& dom, PkvmMemProtect::Memblock host_mem, const PkvmCosts& costs,
                 const PgtableCosts& pgt_costs, PkvmConversion conv)
    : kvm_(kvm), mem_(mem), alloc_(alloc), proc_(proc), guest_(guest), host_mem_(host_mem), costs_(costs),
      conv_(conv), page_shift_(stage2::granule_shift(guest.pgt().geometry().granule)),
      mp_(mem, {host_mem}, page_shift_), handle_(guest.pgt().vmid()) {
    host_mc_.alloc = &alloc;
    host_mc_.mem = &mem;
    host_mc_.order = page_shift_ - kPageShift;
    // The host stage 2 (host_mmu.pgt): VMID 0, the host's PAGE_SIZE as its granule (the
    // guest's too), an identity map over the PA range (48 bits), built lazily as the host
    // touches memory. Its root may be concatenated (16K with 48 bits: two tables), naturally
    // aligned as a buddy block is.
    const auto geo = stage2::kvm_stage2_geometry(guest.pgt().geometry().granule, 48);
    const uint64_t pgd_frames = std::max<uint64_t>(geo.root_bytes() >> kPageShift, 1);
    host_pgd_order_ = unsigned(std::countr_zero(std::bit_ceil(pgd_frames)));
    auto p = alloc.alloc(host_pgd_order_);
    if (!p) throw std::runtime_error("pKVM: no memory for the host stage-2 pgd");
    host_pgd_ = *p;
    mem.fill(pfn_to_hpa(host_pgd_), 0, pgd_frames << kPageShift);
    host_pgt_ = std::make_unique<KvmPgtable>(mem, host_mc_, dom, geo, 0, pfn_to_hpa(host_pgd_), pgt_costs, true);
    guest_.set_protected(this);
    proc_.set_host_stage2(this);
}

PkvmHyp::~PkvmHyp() {
    proc_.set_host_stage2(nullptr);
    guest_.set_protected(nullptr);
    CycleCounter c;
    host_pgt_->kvm_pgtable_stage2_destroy(c);
    alloc_.free(host_pgd_, host_pgd_order_);
}

std::vector<std::string> PkvmHyp::unmodelled(HostPaging) const {
    std::vector<std::string> w;
    // pKVM's protected-VM memory arrived in Linux 7.1; the in-place conversion proposal
    // would back it with guest_memfd.
    if (profile_ == "linux-6.18")
        w.push_back("kvm.profile linux-6.18: upstream Linux 6.18 cannot run protected VMs (pKVM's protected-VM memory, "
                    "KVM_VM_TYPE_ARM_PROTECTED, arrived in Linux 7.1); this run follows Linux 7.1's pKVM (kvm.profile "
                    "linux-7.2 selects it without this warning)");
    if (profile_ == "inplace")
        w.push_back("kvm.profile inplace: a guest_memfd page's shareability follows MEM_SHARE / MEM_UNSHARE in KVM's "
                    "host glue right after EL2 answers (the proposal's exit to the VMM and its conversion ioctl are "
                    "not modelled; cost.attr_update is charged instead)");
    return w;
}

// kvm_arch_prepare_memory_region() for a protected VM (arm64 mmu.c, Linux 7.1): once the
// hypervisor's VM exists (first KVM_RUN), memslots can no longer be deleted or moved, and
// no slot may be read-only or dirty-logged (the host cannot write-protect or log what it
// does not map).
int PkvmHyp::prepare_memory_region(const Kvm&, const kvm_memory_slot* new_slot, kvm_mr_change change) const {
    // Linux 7.1's protected-VM fault path (pkvm_mem_abort()) pins the slot's userspace memory
    // and never consults guest_memfd; a guest_memfd slot is refused up front here (EINVAL,
    // estimate: the errno of arm64's other guest_memfd slot checks). kvm.profile inplace
    // follows the in-place conversion proposal, where guest_memfd backs the private memory.
    if (new_slot && new_slot->has_gmem() && !gmem_backed() &&
        (change == kvm_mr_change::create || change == kvm_mr_change::move))
        return error_rule(-EINVAL, "kvm_arch_prepare_memory_region: a protected VM's memory is the memslot's "
                                   "userspace memory in Linux 7.1 (guest_memfd backing is the in-place conversion "
                                   "proposal: kvm.profile inplace)");
    if (hyp_vm_created_ && (change == kvm_mr_change::delete_ || change == kvm_mr_change::move))
        return error_rule(-EPERM, "kvm_arch_prepare_memory_region: a protected VM's memslots cannot be deleted or "
                                  "moved once it has run (pkvm_hyp_vm_is_created)");
    if (new_slot && (new_slot->flags & (uapi::KVM_MEM_LOG_DIRTY_PAGES | uapi::KVM_MEM_READONLY)))
        return error_rule(-EPERM, "kvm_arch_prepare_memory_region: a protected VM cannot have read-only or "
                                  "dirty-logged memslots");
    return 0;
}

// ---------------------------------------------------------------------------------------
// The host stage 2

int PkvmHyp::host_stage2_idmap(uint64_t pa, ExecContext& ctx) {
    const auto [pte, level] = host_pgt_->get_entry(pa);
    if (pte) return -EEXIST;   // raced, or annotated
    // The largest block whose aligned range lies inside the memory region (at or below
    // the level the walk stopped at, KVM_PGTABLE_MIN_BLOCK_LEVEL and down).
    const auto g = host_pgt_->geometry().granule;
    for (int lv = std::max(level, stage2::min_block_level(g)); lv <= 3; ++lv) {
        const uint64_t sz = level_size(g, lv), base = pa & ~(sz - 1);
        if (base >= host_mem_.base && base + sz <= host_mem_.base + host_mem_.size)
            return host_pgt_->kvm_pgtable_stage2_map(base, sz, base, KVM_PGTABLE_PROT_RWX, ctx);
    }
    return -EINVAL;
}

int PkvmHyp::host_stage2_access(Pfn pfn, bool el0, ExecContext& ctx) {
    const uint64_t pa = pfn.raw() << kPageShift;
    if (pa < host_mem_.base || pa >= host_mem_.base + host_mem_.size) return 0;
    const auto [pte, level] = host_pgt_->get_entry(pa);
    (void)level;
    if (pte_valid(pte)) return 0;
    if (pte) {
        // handle_host_mem_abort(): an annotated entry is -EPERM, and EL2 injects the abort
        // back into the host (SIGSEGV for the VMM at EL0; an EL1 access would go on to
        // pkvm_force_reclaim_guest_page(), not modelled here).
        ++stats_.host_refused;
        ctx.charge("pkvm: host stage-2 abort, injected", costs_.host_hvc);
        (void)el0;
        return -EPERM;
    }
    ++stats_.host_aborts;
    ctx.charge("pkvm: handle_host_mem_abort", costs_.host_hvc);
    const int r = host_stage2_idmap(pa, ctx);
    return r == -EEXIST ? 0 : r;
}

int PkvmHyp::host_kernel_access(Pfn pfn, ExecContext& ctx) {
    const uint64_t pa = pfn.raw() << kPageShift;
    if (pa < host_mem_.base || pa >= host_mem_.base + host_mem_.size) return 0;
    const uint64_t pte = host_pgt_->get_entry(pa).first;
    if (pte_valid(pte)) return 0;
    if (!pte) {   // not faulted in yet: the lazy identity map, as for any host access
        ++stats_.host_aborts;
        ctx.charge("pkvm: handle_host_mem_abort", costs_.host_hvc);
        const int r = host_stage2_idmap(pa, ctx);
        return r == -EEXIST ? 0 : r;
    }
    // handle_host_mem_abort(): -EPERM on the annotation; EL2 injects the abort into the host
    // at EL1 (ESR.S1PTW as the marker). The kernel's data-abort handler (arch/arm64/mm/fault.c)
    // finds no exception fixup, resolves the PA and calls pkvm_force_reclaim_guest_page().
    ctx.charge("pkvm: host stage-2 abort, injected at EL1", costs_.host_hvc);
    host_hvc("pkvm: hvc __pkvm_host_force_reclaim_page_guest", ctx);
    const int r = mp_.__pkvm_host_force_reclaim_page_guest(pa);
    if (r == -EAGAIN) return 0;   // no longer faults (raced with a share or a reclaim): retry
    if (r) return r;
    const uint64_t page = pg(pfn.raw());
    // EL2 (mem_protect.c): the guest loses the page and its IPA is poisoned (break-before-make
    // of the guest leaf, TLBI of the guest's VMID); the page was zeroed by the reclaim, cleaned
    // to PoC, and the host's stage 2 maps it again.
    auto it = std::find_if(donated_.begin(), donated_.end(), [&](const auto& e) { return pg(e.second.pfn.raw()) == page; });
    if (it == donated_.end()) throw std::runtime_error("pKVM: forced reclaim of a page the host never donated");
    const uint64_t gfn = it->first;
    guest_.pgt().kvm_pgtable_stage2_annotate(gfn << kPageShift,
                                             KVM_GUEST_INVALID_PTE_TYPE_POISONED << KVM_INVALID_PTE_TYPE_SHIFT, ctx);
    ctx.charge("pkvm: zero page", zero_cost());
    ctx.charge("pkvm: clean to PoC", cmo_cost());
    ++stats_.pages_zeroed;
    host_stage2_set_owned(it->second.pfn, ctx);
    poisoned_.insert(gfn);
    ++stats_.forced_reclaims;
    return 0;
}

void PkvmHyp::host_stage2_set_owned(Pfn pfn, ExecContext& ctx) {
    const uint64_t pa = pfn.raw() << kPageShift;
    // The annotation is invalid: the identity mapping goes in without break-before-make.
    host_pgt_->kvm_pgtable_stage2_map(pa, page_size(), pa, KVM_PGTABLE_PROT_RWX, ctx);
}

void PkvmHyp::zero_and_clean(Pfn pfn, ExecContext& ctx) {
    mem_.fill(pfn_to_hpa(pfn), 0, page_size());
    ctx.charge("pkvm: zero page", zero_cost());
    ctx.charge("pkvm: clean to PoC", cmo_cost());
    ++stats_.pages_zeroed;
}

// ---------------------------------------------------------------------------------------
// Donation on fault

int PkvmHyp::donate(Gfn gfn, Pfn pfn, Hva hva, ExecContext& ctx, GuestMemfd* gmem, uint64_t index) {
    host_hvc("pkvm: hvc __pkvm_host_donate_guest", ctx);
    const int r = mp_.__pkvm_host_donate_guest(pg(pfn.raw()), pg(gfn.raw()), handle_);
    if (r) return r;
    const uint64_t pa = pfn.raw() << kPageShift;
    // host_stage2_set_owner_metadata_locked(): the host loses the page (break-before-make
    // and a TLBI of VMID 0 if it had it mapped); the annotation's gfn counts PAGE_SIZE pages ...
    if (const int a = host_pgt_->kvm_pgtable_stage2_annotate(
            pa, pkvm_host_donation_annotation(PkvmOwner::guest, handle_, pg(gfn.raw())), ctx))
        throw std::runtime_error("pKVM: host stage-2 annotation failed (EL2 would panic)");
    // ... and the guest gets it, PAGE_SIZE RWX whatever the access was (pkvm_mem_abort()).
    const int m = guest_.pgt().kvm_pgtable_stage2_map(gfn_to_gpa(gfn).raw(), page_size(), pa, KVM_PGTABLE_PROT_RWX, ctx);
    if (m && m != -EAGAIN) throw std::runtime_error("pKVM: guest stage-2 map failed after the donation");
    donated_[gfn.raw()] = Donated{hva, pfn, gmem, index};
    if (gmem) {
        ++stats_.gmem_donated;
        ++stats_.gmem_held;
    } else {
        ++stats_.pinned;
    }
    return 0;
}

void PkvmHyp::release_backing(const Donated& d, ExecContext& ctx) {
    if (d.gmem) {
        // The folio reference goes; the page stays in the file's page cache (freed there
        // by a punch hole or the file's release, as any guest_memfd page).
        d.gmem->unpin(d.index, d.pfn, ctx);
        --stats_.gmem_held;
        return;
    }
    proc_.unpin_user_pages(d.hva, page_size(), ctx);
    --stats_.pinned;
}

void PkvmHyp::gmem_shareability(Gfn gfn, bool shared, ExecContext& ctx) {
    auto it = donated_.find(gfn.raw());
    if (it == donated_.end() || !it->second.gmem) return;
    ctx.charge("attr_update", kvm_.costs().attr_update);
    it->second.gmem->kvm_gmem_set_shareability(it->second.index, shared);
}

// The in-place conversion proposal for pKVM: a fault on a guest_memfd slot takes the page
// from the file (kvm_gmem_get_pfn(): allocated and cleared on first use) and donates it.
// Nothing of the VMM's memory is pinned and nothing counts against RLIMIT_MEMLOCK: the
// folio reference the donation holds keeps the page (GuestMemfd::pin()).
PageFaultOutcome PkvmHyp::pkvm_gmem_abort(Gfn gfn, const kvm_memory_slot& slot, ExecContext& ctx) {
    PageFaultOutcome out;
    Pfn pfn(0);
    int max_order = 0;
    const int g = kvm_gmem_get_pfn(kvm_, slot, gfn, pfn, max_order, ctx);
    if (g) {
        // As gmem_abort(): KVM_EXIT_MEMORY_FAULT for the VMM.
        out.exit = MemoryFaultExit{gfn_to_gpa(gfn).raw(), kPageSize, uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE};
        out.r = -EFAULT;
        out.why = "pkvm_mem_abort: kvm_gmem_get_pfn failed";
        return out;
    }
    GuestMemfd* file = slot.gmem.file;
    const uint64_t index = gfn - slot.base_gfn + slot.gmem.pgoff;
    file->pin(index);
    ctx.sync();
    ctx.charge("mmu_lock", kvm_.costs().mmu_lock);
    const int r = donate(gfn, pfn, Hva(0), ctx, file, index);
    if (r) {
        file->unpin(index, pfn, ctx);
        out.r = r == -EAGAIN || r == -EPERM ? RET_PF_RETRY : -EFAULT;
        out.why = "__pkvm_host_donate_guest refused the page";
        return out;
    }
    // The page is private now: the VMM's mmap of the file cannot fault it in.
    file->kvm_gmem_set_shareability(index, false);
    out.r = RET_PF_FIXED;
    out.level = PgLevel::k4K;
    return out;
}

// pkvm_mem_abort() (mmu.c, Linux 7.1): pin exactly one page of the slot's userspace memory
// (FOLL_LONGTERM | FOLL_WRITE), donate it under the write mmu_lock; -EAGAIN (another vCPU
// won) unpins and resumes; a poisoned IPA is -EFAULT from KVM_RUN.
PageFaultOutcome PkvmHyp::pkvm_mem_abort(Gpa ipa, uint64_t, const kvm_memory_slot& slot, ExecContext& ctx) {
    PageFaultOutcome out;
    // The faulting IPA's PAGE_SIZE page (its first 4 KiB frame).
    const Gfn gfn(gpa_to_gfn(ipa).raw() & ~(frames() - 1));
    if (torn_down_) {
        out.r = -EFAULT;
        out.why = "the protected VM was torn down";
        return out;
    }
    const PkvmPageState gs = mp_.guest_state(handle_, pg(gfn.raw()));
    if (gs == PkvmPageState::poison) {
        out.r = -EFAULT;
        out.why = "pkvm_pgtable_stage2_map: the IPA was poisoned by a forced reclaim";
        return out;
    }
    if (gs != PkvmPageState::nopage) {   // mapped already: another vCPU's fault won
        out.r = RET_PF_RETRY;
        out.why = "the page is already the guest's";
        return out;
    }
    // account_locked_vm(): the page counts against the VMM's RLIMIT_MEMLOCK while the guest
    // holds it (kvm.config.memlock_limit; 0 = unlimited, as with CAP_IPC_LOCK).
    if (const uint64_t limit = kvm_.config().memlock_limit; limit && stats_.pinned + 1 > (limit >> page_shift_)) {
        out.r = -ENOMEM;
        out.why = "pkvm_mem_abort: account_locked_vm() over RLIMIT_MEMLOCK (kvm.config.memlock_limit)";
        return out;
    }
    if (slot.has_gmem() && gmem_backed()) {
        if (page_shift_ != kPageShift) {
            out.r = -EFAULT;
            out.why = "pkvm_mem_abort: guest_memfd with a 16K/64K PAGE_SIZE is not modelled (its folios are 4 KiB)";
            return out;
        }
        return pkvm_gmem_abort(gfn, slot, ctx);
    }
    const Hva hva = slot.gfn_to_hva(gfn);
    const int64_t n = proc_.pin_user_pages(hva, page_size(), ctx);
    if (n < 0) {
        out.r = int(n);
        out.why = "pkvm_mem_abort: pin_user_pages(FOLL_LONGTERM) failed";
        return out;
    }
    auto pfn = proc_.anon_page(hva);
    // A 16K/64K page: the simulated host's base pages are 4 KiB, so the page is a naturally
    // aligned run of frames inside one transparent huge page (host.thp), checked frame by frame.
    for (uint64_t i = 1; pfn && i < frames(); ++i) {
        const auto f = proc_.anon_page(hva + (i << kPageShift));
        if ((pfn->raw() & (frames() - 1)) || !f || f->raw() != pfn->raw() + i) {
            proc_.unpin_user_pages(hva, page_size(), ctx);
            out.r = -EFAULT;
            out.why = "pkvm_mem_abort: a 16K/64K page needs a transparent huge page behind the slot (host.thp; the "
                      "simulated host's base pages are 4 KiB)";
            return out;
        }
    }
    if (!pfn) {
        proc_.unpin_user_pages(hva, page_size(), ctx);
        out.r = -EIO;
        out.why = "pkvm_mem_abort: only anonymous memory backs a protected VM here (a guest_memfd or file mapping is "
                  "not modelled)";
        return out;
    }
    ctx.sync();
    MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::write, ctx, kvm_.costs().mmu_lock);
    const int r = donate(gfn, *pfn, hva, ctx);
    lock.unlock();
    if (r) {
        proc_.unpin_user_pages(hva, page_size(), ctx);
        out.r = r == -EAGAIN || r == -EPERM ? RET_PF_RETRY : -EFAULT;
        out.why = "__pkvm_host_donate_guest refused the page";
        return out;
    }
    out.r = RET_PF_FIXED;
    out.level = PgLevel::k4K;
    return out;
}

// ---------------------------------------------------------------------------------------
// The guest's hypercalls

int64_t PkvmHyp::share_in_place(Gfn gfn, Pfn pfn, ExecContext& ctx) {
    const int r = mp_.__pkvm_guest_share_host(handle_, pg(gfn.raw()));
    if (r) return smccc_ret(r);
    // The host gets the page back in its stage 2 (the annotation was invalid: no TLBI);
    // the guest's leaf keeps its output address and permissions, only its state bits move.
    host_stage2_set_owned(pfn, ctx);
    guest_.pgt().kvm_pgtable_stage2_set_sw_bits(gfn_to_gpa(gfn).raw(), pkvm_mkstate(PkvmPageState::shared_owned), ctx);
    gmem_shareability(gfn, true, ctx);
    return 0;
}

int64_t PkvmHyp::unshare_in_place(Gfn gfn, Pfn pfn, ExecContext& ctx) {
    const int r = mp_.__pkvm_guest_unshare_host(handle_, pg(gfn.raw()));
    if (r) return smccc_ret(r);
    // The host loses the page again: annotation by break-before-make, TLBI of VMID 0.
    host_pgt_->kvm_pgtable_stage2_annotate(pfn.raw() << kPageShift,
                                           pkvm_host_donation_annotation(PkvmOwner::guest, handle_, pg(gfn.raw())), ctx);
    guest_.pgt().kvm_pgtable_stage2_set_sw_bits(gfn_to_gpa(gfn).raw(), pkvm_mkstate(PkvmPageState::owned), ctx);
    gmem_shareability(gfn, false, ctx);
    return 0;
}

// The copy-based alternative: private and shared memory are distinct pages, so converting
// moves the bytes: a fresh host page receives a copy, the old page leaves the guest (unmapped
// with its TLBI, zeroed and cleaned, back to the host), the new one is donated at the same
// IPA (and shared, towards shared), and the VMM's mapping of the gfn follows the new page.
int64_t PkvmHyp::convert_by_copy(Gfn gfn, bool to_shared, ExecContext& ctx) {
    auto it = donated_.find(gfn.raw());
    const PkvmPageState gs = mp_.guest_state(handle_, gfn.raw());
    if (it == donated_.end() || gs != (to_shared ? PkvmPageState::owned : PkvmPageState::shared_owned))
        return SMCCC_RET_INVALID_PARAMETER;
    const Donated old = it->second;
    if (page_shift_ != kPageShift) return SMCCC_RET_NOT_SUPPORTED;   // refused up front by the machine
    auto fresh = alloc_.alloc(0);
    if (!fresh) return SMCCC_RET_INVALID_PARAMETER;
    uint8_t buf[kPageSize];
    mem_.read(pfn_to_hpa(old.pfn), buf, kPageSize);
    mem_.write(pfn_to_hpa(*fresh), buf, kPageSize);
    ctx.charge("pkvm: copy page", costs_.copy_4k);
    ++stats_.pages_copied;
    if (!to_shared && unshare_in_place(gfn, old.pfn, ctx)) return SMCCC_RET_INVALID_PARAMETER;
    // The old page leaves the guest.
    const uint64_t ipa = gfn_to_gpa(gfn).raw();
    guest_.pgt().kvm_pgtable_stage2_unmap(ipa, kPageSize, ctx);
    if (const int r = mp_.__pkvm_guest_relinquish_to_host(handle_, gfn.raw())) return smccc_ret(r);
    ctx.charge("pkvm: zero page", costs_.zero_4k);
    ctx.charge("pkvm: clean to PoC", costs_.cmo_4k());
    ++stats_.pages_zeroed;
    host_stage2_set_owned(old.pfn, ctx);
    donated_.erase(it);
    --stats_.pinned;
    // The VMM's memory at the gfn is now the fresh page (the pin moves with it); the old
    // page goes back to the allocator.
    if (!proc_.replace_anon_page(old.hva, *fresh)) throw std::runtime_error("pKVM: copy conversion without a page");
    mem_.discard(old.pfn);
    alloc_.free(old.pfn, 0);
    if (const int r = donate(gfn, *fresh, old.hva, ctx)) return smccc_ret(r);
    if (to_shared) return share_in_place(gfn, *fresh, ctx);
    return 0;
}

int64_t PkvmHyp::mem_share(Gfn gfn, ExecContext& ctx, bool* needs_fault) {
    ++stats_.guest_hvcs;
    *needs_fault = false;
    // pkvm_memshare_call(): the IPA must be PAGE_ALIGNED (the guest's PAGE_SIZE, learnt from
    // HYP_MEMINFO), or the guest gets INVALID_PARAMETER without a transition.
    if (!page_aligned(gfn)) return SMCCC_RET_INVALID_PARAMETER;
    // MEM_SHARE of a page the host has not donated yet: EL2 fakes a level-3 write
    // translation fault at the IPA and rewinds the HVC; the host donates, the HVC re-runs.
    if (mp_.guest_state(handle_, pg(gfn.raw())) == PkvmPageState::nopage) {
        ++stats_.share_enoent;
        share_donated_.insert(gfn.raw());
        *needs_fault = true;
        return 0;
    }
    const bool fresh = share_donated_.erase(gfn.raw()) > 0;
    auto it = donated_.find(gfn.raw());
    // A guest_memfd page converts in place whatever pkvm.conversion says: the file is the
    // page (the copy-based design has distinct private and shared pages).
    const bool gmem = it != donated_.end() && it->second.gmem;
    if (conv_ == PkvmConversion::copy && !fresh && !gmem) return convert_by_copy(gfn, true, ctx);
    return share_in_place(gfn, it == donated_.end() ? Pfn(0) : it->second.pfn, ctx);
}

int64_t PkvmHyp::mem_unshare(Gfn gfn, ExecContext& ctx) {
    ++stats_.guest_hvcs;
    if (!page_aligned(gfn)) return SMCCC_RET_INVALID_PARAMETER;   // pkvm_memunshare_call()
    auto it = donated_.find(gfn.raw());
    if (conv_ == PkvmConversion::copy && !(it != donated_.end() && it->second.gmem))
        return convert_by_copy(gfn, false, ctx);
    if (it == donated_.end()) return smccc_ret(mp_.__pkvm_guest_unshare_host(handle_, pg(gfn.raw())));
    return unshare_in_place(gfn, it->second.pfn, ctx);
}

int64_t PkvmHyp::mem_relinquish(Gfn gfn, ExecContext& ctx) {
    ++stats_.guest_hvcs;
    if (!page_aligned(gfn)) return SMCCC_RET_INVALID_PARAMETER;
    auto it = donated_.find(gfn.raw());
    const uint64_t ipa = gfn_to_gpa(gfn).raw();
    const int r = mp_.__pkvm_guest_relinquish_to_host(handle_, pg(gfn.raw()));
    if (r) return smccc_ret(r);
    if (it == donated_.end()) throw std::runtime_error("pKVM: relinquished a page the host never pinned");
    guest_.pgt().kvm_pgtable_stage2_unmap(ipa, page_size(), ctx);
    ctx.charge("pkvm: zero page", zero_cost());
    ctx.charge("pkvm: clean to PoC", cmo_cost());
    ++stats_.pages_zeroed;
    host_stage2_set_owned(it->second.pfn, ctx);
    release_backing(it->second, ctx);
    donated_.erase(it);
    return 0;
}

// ---------------------------------------------------------------------------------------
// Teardown (pkvm.c: __pkvm_start_teardown_vm, __pkvm_reclaim_dying_guest_page per page,
// __pkvm_finalize_teardown_vm)

void PkvmHyp::teardown(ExecContext& ctx) {
    if (torn_down_) return;
    CountingContext cc(ctx);
    host_hvc("pkvm: hvc __pkvm_start_teardown_vm", cc);
    if (mp_.__pkvm_start_teardown_vm(handle_)) throw std::runtime_error("pKVM: the VM was already dying");
    for (const auto& [gfn, pg] : donated_) {
        host_hvc("pkvm: hvc __pkvm_reclaim_dying_guest_page", cc);
        const bool owned = mp_.guest_state(handle_, this->pg(gfn)) == PkvmPageState::owned;
        if (const int r = mp_.__pkvm_host_reclaim_page_guest(this->pg(gfn), handle_))
            throw std::runtime_error("pKVM: reclaiming a dying guest's page failed: " + std::to_string(r));
        guest_.pgt().kvm_pgtable_stage2_unmap(gfn << kPageShift, page_size(), cc);
        if (owned) {   // zeroed by the reclaim, cleaned to PoC
            // A guest_memfd page stays in the file: its bytes must not outlive the guest.
            if (pg.gmem) mem_.fill(pfn_to_hpa(pg.pfn), 0, kPageSize);
            cc.charge("pkvm: zero page", zero_cost());
            cc.charge("pkvm: clean to PoC", cmo_cost());
            ++stats_.pages_zeroed;
        }
        host_stage2_set_owned(pg.pfn, cc);
        release_backing(pg, cc);
    }
    donated_.clear();
    poisoned_.clear();
    stats_.pinned = 0;
    stats_.gmem_held = 0;
    host_hvc("pkvm: hvc __pkvm_finalize_teardown_vm", cc);
    guest_.pgt().kvm_tlb_flush_vmid(cc);
    torn_down_ = true;
    stats_.teardown_cycles += cc.total;
}

// ---------------------------------------------------------------------------------------

std::string PkvmHyp::check() const {
    std::string bad = mp_.check_host_stage2();
    if (!bad.empty()) return bad;
    std::ostringstream os;
    mp_.for_each_page([&](uint64_t pfn, PkvmPageState host, PkvmOwner annot, unsigned vm, uint64_t gfn) {
        if (!bad.empty()) return;
        const uint64_t pa = pfn << page_shift_;
        const uint64_t pte = host_pgt_->get_entry(pa).first;
        if (host == PkvmPageState::nopage) {
            const uint64_t want = pkvm_host_donation_annotation(annot, vm, gfn);
            if (pte != want) {
                os << "pKVM: pfn " << std::hex << pfn << " was given away but the host stage-2 entry is " << pte
                   << ", not the DONATION annotation " << want;
                bad = os.str();
            }
        } else if (pte && !pte_valid(pte)) {
            os << "pKVM: pfn " << std::hex << pfn << " is the host's (" << pkvm_page_state_name(host)
               << ") but annotated in the host stage-2";
            bad = os.str();
        }
    });
    if (!bad.empty()) return bad;
    for (const auto& [gfn, pg] : donated_) {
        if (poisoned_.count(gfn)) {
            // A forced reclaim left the POISONED annotation where the leaf was.
            const uint64_t want = KVM_GUEST_INVALID_PTE_TYPE_POISONED << KVM_INVALID_PTE_TYPE_SHIFT;
            if (guest_.pgt().get_entry(gfn << kPageShift).first != want ||
                mp_.guest_state(handle_, this->pg(gfn)) != PkvmPageState::poison) {
                os << "pKVM: gfn " << std::hex << gfn << " was poisoned but its guest stage-2 entry is not the "
                   << "POISONED annotation";
                return os.str();
            }
            continue;
        }
        const auto [pte, level] = guest_.pgt().get_leaf(gfn << kPageShift);
        const PkvmPageState gs = mp_.guest_state(handle_, this->pg(gfn));
        const auto owner_pfn = mp_.guest_pfn(handle_, this->pg(gfn));
        if (level != 3 || !owner_pfn || *owner_pfn != this->pg(pg.pfn.raw()) ||
            d::oa(pte, guest_.pgt().geometry().granule, false) != (pg.pfn.raw() << kPageShift) ||
            pkvm_getstate(pte) != gs) {
            os << "pKVM: the guest stage-2 leaf of gfn " << std::hex << gfn << " does not agree with the ownership ("
               << pkvm_page_state_name(gs) << ", pfn " << pg.pfn.raw() << ")";
            return os.str();
        }
    }
    return {};
}

}  // namespace hvsim::kvm::arm64
