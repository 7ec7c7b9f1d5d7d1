#include "kernel/mmu/x86_mmu.hpp"

#include <cerrno>

#include "kernel/guest_memfd.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm {

namespace {

TdpMmuCosts tdp_costs(const KvmCosts& c) {
    return TdpMmuCosts{c.spte_write, c.sp_alloc, c.zap_spte, c.split_huge_page};
}

// Frames of `level` are this many gfns.
constexpr uint64_t frame_pages(PgLevel l) { return level_pages(l); }

// A fault keeps retrying while an invalidation covers it; the simulated threads make
// progress between retries (sync points), so this only trips on a model bug.
constexpr unsigned kMaxPrefaultRetries = 100000;

}  // namespace

X86Mmu::X86Mmu(Kvm& kvm, PhysMem& mem, HostPageAllocator& alloc, unsigned levels, mmu::NestedFormat fmt)
    : kvm_(kvm), tdp_(mem, alloc, levels, fmt, tdp_costs(kvm.costs())) {
    // kvm_mmu_alloc_direct_roots(): a VM with mirrored TDP gets a mirror root for private
    // mappings next to the direct (shared) root; hardware never walks the mirror.
    if (kvm_.arch().has_mirrored_tdp())
        mirror_ = std::make_unique<TdpMmu>(mem, alloc, levels, fmt, tdp_costs(kvm.costs()));
    kvm_.set_mmu_ops(this);
    // tdx_td_init(): the shared bit follows the level of the EPT the TD is built with.
    kvm_.kvm_set_shared_gpa_bit_for(levels);
}

// The gfn a fault's mapping lives at in the TDP root: private faults at the gfn, shared
// ones with the direct bits added back (the TDP iterator adds the root's gfn_direct_bits,
// tdp_iter.c), so a TD's shared mappings sit in the upper half of the root.
Gfn X86Mmu::root_gfn(const kvm_page_fault& fault) const {
    return fault.is_private ? fault.gfn : Gfn(fault.gfn.raw() | kvm_.gfn_direct_bits);
}

X86Mmu::~X86Mmu() { kvm_.set_mmu_ops(nullptr); }

void X86Mmu::attach_vcpu(mmu::Mmu& hw, VcpuRequestTarget* requests) {
    hw.set_nested_root(tdp_.root_hpa());
    vcpus_.push_back(VcpuRef{&hw, requests});
}

// ---------------------------------------------------------------------------------------
// Fault path

PageFaultOutcome X86Mmu::kvm_mmu_page_fault(Gpa gpa, uint64_t error_code, ExecContext& ctx, PgLevel max_level) {
    ++stats_.faults;
    ctx.charge("kvm_mmu_page_fault", kvm_.costs().kvm_mmu_page_fault);
    kvm_page_fault fault;
    fault.addr = gpa;
    // kvm_mmu_do_page_fault(): the shared bit is stripped from the gfn; fault.addr keeps it.
    fault.gfn = kvm_.kvm_gfn_strip_direct_bits(gpa_to_gfn(gpa));
    fault.error_code = error_code;
    fault.write = error_code & mmu::PFERR_WRITE;
    fault.exec = error_code & mmu::PFERR_FETCH;
    // Who says a fault is private differs per VM type (SW_PROTECTED: the attributes;
    // SNP: the C-bit in the NPF error code; TDX: the shared GPA bit); the arch ops answer.
    // Emulated MMIO (PFERR_RSVD) is always shared.
    if (!(error_code & mmu::PFERR_RSVD) && kvm_.arch().fault_is_private(kvm_, gpa_to_gfn(gpa), error_code))
        fault.error_code |= PFERR_PRIVATE_ACCESS;
    fault.is_private = fault.error_code & PFERR_PRIVATE_ACCESS;
    fault.max_level = max_level;
    // vcpu_run() holds kvm->srcu while it handles the exit: a memslot the fault looked up
    // is not zapped or freed under it (kvm_set_memslot() waits for the reader).
    const int idx = kvm_.srcu_read_lock();
    PageFaultOutcome out = kvm_tdp_page_fault(fault, ctx);
    kvm_.srcu_read_unlock(idx);
    return out;
}

void X86Mmu::kvm_mmu_prepare_memory_fault_exit(const kvm_page_fault& fault, PageFaultOutcome& out) {
    ++stats_.memory_fault_exits;
    out.exit = MemoryFaultExit{gfn_to_gpa(fault.gfn).raw(), kPageSize,
                               fault.is_private ? uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE : 0};
}

int X86Mmu::kvm_mmu_faultin_pfn_gmem(kvm_page_fault& fault, PageFaultOutcome& out, ExecContext& ctx) {
    if (!fault.slot->has_gmem()) {
        kvm_mmu_prepare_memory_fault_exit(fault, out);
        out.why = "private fault on a memslot without guest_memfd";
        return -EFAULT;
    }
    int max_order = 0;
    const int r = kvm_gmem_get_pfn(kvm_, *fault.slot, fault.gfn, fault.pfn, max_order, ctx);
    if (r) {
        kvm_mmu_prepare_memory_fault_exit(fault, out);
        out.why = "kvm_gmem_get_pfn failed";
        return r;
    }
    fault.map_writable = !(fault.slot->flags & uapi::KVM_MEM_READONLY);
    // kvm_max_level_for_order(): a gmem folio bounds the mapping.
    const PgLevel by_order = max_order >= 18 ? PgLevel::k1G : max_order >= 9 ? PgLevel::k2M : PgLevel::k4K;
    fault.max_level = std::min(fault.max_level, by_order);
    return RET_PF_CONTINUE;
}

int X86Mmu::kvm_mmu_faultin_pfn(kvm_page_fault& fault, PageFaultOutcome& out, ExecContext& ctx) {
    // Snapshot before anything that could race with an invalidation.
    fault.mmu_seq = kvm_.mmu_invalidate_seq;

    // Private/shared mismatch with the attributes: userspace must convert
    // (KVM_EXIT_MEMORY_FAULT), the implicit conversion of SNP/TDX guests.
    if (fault.is_private != kvm_.kvm_mem_is_private(fault.gfn)) {
        kvm_mmu_prepare_memory_fault_exit(fault, out);
        out.why = "private/shared mismatch with memory attributes";
        return -EFAULT;
    }
    fault.slot = kvm_.gfn_to_memslot(0, fault.gfn);
    if (!fault.slot) {
        if (fault.is_private) {
            kvm_mmu_prepare_memory_fault_exit(fault, out);
            out.why = "private fault outside every memslot";
            return -EFAULT;
        }
        // kvm_handle_noslot_fault(): emulated MMIO.
        out.why = "no memslot: emulated MMIO";
        return RET_PF_EMULATE;
    }
    if (fault.slot->flags & KVM_MEMSLOT_INVALID) {
        out.why = "memslot being deleted or moved";
        return RET_PF_RETRY;
    }
    if (kvm_.mmu_invalidate_retry_gfn_unsafe(fault.mmu_seq, fault.gfn)) {
        out.why = "invalidation in progress";
        return RET_PF_RETRY;
    }

    if (fault.is_private || fault.slot->gmem_only()) {
        const int r = kvm_mmu_faultin_pfn_gmem(fault, out, ctx);
        if (r != RET_PF_CONTINUE) return r;
    } else {
        fault.map_writable = !(fault.slot->flags & uapi::KVM_MEM_READONLY);
        if (fault.write && !fault.map_writable) {
            // __gfn_to_hva_many() gives KVM_HVA_ERR_RO_BAD for a write to a read-only slot,
            // so kvm_follow_pfn() returns KVM_PFN_ERR_RO_FAULT before touching host memory
            // and kvm_handle_error_pfn() emulates the access as MMIO (KVM_EXIT_MMIO).
            out.why = "write to a read-only memslot";
            return RET_PF_EMULATE;
        }
        // __kvm_faultin_pfn(): get_user_pages on the slot's userspace mapping.
        const Hva hva = fault.slot->gfn_to_hva(fault.gfn);
        const GupResult g = kvm_.process().get_user_pages(hva, fault.write, ctx);
        if (g.err) {
            // kvm_handle_error_pfn(): a bad hva fails KVM_RUN with -EFAULT.
            out.why = "get_user_pages failed on the memslot's userspace_addr";
            return g.err;
        }
        fault.pfn = g.pfn;
        // hva_to_pfn(): a read of memory never written gets the zero page, and KVM maps
        // it read-only; the first write faults again and copies (kvm_follow_pfn).
        if (!g.writable) fault.map_writable = false;
        fault.max_level = std::min(fault.max_level, g.level);
    }

    // Faulting in the pfn may have slept; an invalidation may have started meanwhile.
    ctx.sync();
    if (kvm_.mmu_invalidate_retry_gfn_unsafe(fault.mmu_seq, fault.gfn)) {
        out.why = "invalidation raced faultin";
        return RET_PF_RETRY;
    }
    return RET_PF_CONTINUE;
}

bool X86Mmu::fast_page_fault(const kvm_page_fault& fault, ExecContext& ctx) {
    const std::optional<SpteLeaf> leaf = tdp_.lookup(root_gfn(fault));
    if (!leaf || leaf->writable || leaf->level != PgLevel::k4K) return false;
    // is_mmu_writable_spte(): KVM could have made it writable at fault time. hvsim asks
    // the sources instead of keeping a software bit: a writable slot backed by a page the
    // VMM has written (not the zero page, not guest_memfd).
    const kvm_memory_slot* slot = kvm_.gfn_to_memslot(0, fault.gfn);
    if (!slot || (slot->flags & (uapi::KVM_MEM_READONLY | KVM_MEMSLOT_INVALID)) || slot->has_gmem()) return false;
    const std::optional<Pfn> host = kvm_.process().anon_page(slot->gfn_to_hva(fault.gfn));
    if (!host || *host != leaf->pfn) return false;
    if (!tdp_.make_writable(root_gfn(fault), ctx)) return false;
    Kvm::mark_page_dirty_in_slot(*slot, fault.gfn);
    return true;
}

bool X86Mmu::is_page_fault_stale(const kvm_page_fault& fault) const {
    return kvm_.mmu_invalidate_retry_gfn(fault.mmu_seq, fault.gfn);
}

PgLevel X86Mmu::max_mapping_level(const kvm_page_fault& fault, PgLevel backing) const {
    const kvm_memory_slot& slot = *fault.slot;
    // kvm_mmu_hugepage_adjust(): a dirty-logged slot (kvm_slot_dirty_track_enabled())
    // is mapped at 4K only, so every write can be logged per page.
    if (slot.flags & uapi::KVM_MEM_LOG_DIRTY_PAGES) return PgLevel::k4K;
    PgLevel level = std::min(fault.max_level, backing);
    for (; level > PgLevel::k4K; level = PgLevel(unsigned(level) - 1)) {
        const uint64_t n = frame_pages(level);
        const Gfn start(fault.gfn.raw() & ~(n - 1));
        // The frame must lie inside the slot ...
        if (start < slot.base_gfn || start + n > slot.end_gfn()) continue;
        // ... with gfn and hva congruent modulo the frame (lpage_info disallow for a
        // misaligned userspace_addr, kvm_alloc_memslot_metadata()).
        if (!fault.slot->has_gmem() || !fault.slot->gmem_only()) {
            if (((slot.base_gfn.raw() ^ (slot.userspace_addr.raw() >> kPageShift)) & (n - 1)) != 0) continue;
        }
        // ... and, with private memory, not straddle different attributes
        // (KVM_LPAGE_MIXED_FLAG; asked of the attribute store directly, see
        // kvm_arch_post_set_memory_attributes()).
        if (kvm_.has_private_mem()) {
            const uint64_t want = fault.is_private ? uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
            if (!kvm_.kvm_range_has_memory_attributes(start, start + n, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, want))
                continue;
        }
        break;
    }
    return level;
}

PageFaultOutcome X86Mmu::kvm_tdp_page_fault(kvm_page_fault& fault, ExecContext& ctx) {
    PageFaultOutcome out;
    out.is_private = fault.is_private;
    if (fault.is_private) ++stats_.private_faults;
    else ++stats_.shared_faults;
    fault.max_level = std::min(fault.max_level, PgLevel::k1G);   // KVM_MAX_HUGEPAGE_LEVEL on the TDP MMU
    // KVM never creates a memslot the TDP root cannot reach (kvm_mmu_max_gfn() follows
    // the root level); a gfn beyond it can only come from a misconfigured scenario.
    if (root_gfn(fault).raw() >> (9 * tdp_.levels())) {
        out.r = -EFAULT;
        out.why = "gfn beyond the reach of the nested page table (raise mmu.nested_levels or lower kvm.config.maxphyaddr)";
        return out;
    }

    // fast_page_fault(): a write to a present 4K SPTE that is write-protected only for
    // dirty logging (the host page is writable) is fixed without mmu_lock: the SPTE is
    // made writable and the page marked dirty (fast_pf_fix_direct_spte()).
    if (fault.write && !fault.is_private && fast_page_fault(fault, ctx)) {
        ++stats_.fast_fixes;
        ++stats_.fixed;
        out.r = RET_PF_FIXED;
        out.fast = true;
        return out;
    }

    int r = kvm_mmu_faultin_pfn(fault, out, ctx);
    if (r != RET_PF_CONTINUE) {
        out.r = r;
        if (r == RET_PF_RETRY) ++stats_.retries;
        if (r == RET_PF_EMULATE) ++stats_.emulated;
        return out;
    }

    // kvm_tdp_mmu_page_fault(): read_lock(&kvm->mmu_lock) until the fault is done.
    MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::read, ctx, kvm_.costs().mmu_lock);
    if (is_page_fault_stale(fault)) {
        ++stats_.retries;
        out.r = RET_PF_RETRY;
        out.why = "stale: invalidation since the snapshot";
        return out;
    }
    PgLevel level = max_mapping_level(fault, fault.max_level);
    if (fault.is_private) level = std::min(level, kvm_.arch().gmem_max_mapping_level(kvm_, fault.pfn));
    // A mirror never merges a table back into a huge leaf: the secure EPT has no way to do
    // it but TDH.MEM.PAGE.PROMOTE, which KVM does not issue (the TDX huge-page series
    // disallows page merging on the mirror root), so the fault maps below the table.
    if (fault.is_private && mirror_ && level > PgLevel::k4K && mirror_->has_table_at(root_gfn(fault), level))
        level = PgLevel::k4K;
    fault.goal_level = level;
    const uint64_t n = frame_pages(level);
    const Gfn gfn(root_gfn(fault).raw() & ~(n - 1));
    const Pfn pfn(fault.pfn.raw() & ~(n - 1));
    bool flush = false;
    const MapResult m = root_for(fault).map(gfn, pfn, level, fault.map_writable, &flush, ctx);
    if (flush) kvm_flush_remote_tlbs(ctx);
    if (m == MapResult::busy) {
        // The external SPTE was busy (another SEAMCALL holds the S-EPT): the mirror SPTE
        // was restored, re-enter and fault again (RET_PF_RETRY).
        ++stats_.external_busy;
        ++stats_.retries;
        out.r = RET_PF_RETRY;
        out.why = "external SPTE busy";
        return out;
    }
    if (m == MapResult::error) {
        out.r = -EIO;
        out.why = "the external page table refused the mapping (VM bugged)";
        return out;
    }
    // make_spte(): a writable SPTE in a dirty-logged slot marks its page dirty (at 4K,
    // enforced by the hugepage adjust above), even when the fault was a read.
    if (fault.map_writable) Kvm::mark_page_dirty_in_slot(*fault.slot, fault.gfn);
    out.level = level;
    if (m == MapResult::spurious) {
        ++stats_.spurious;
        out.r = RET_PF_SPURIOUS;
    } else {
        ++stats_.fixed;
        (level == PgLevel::k4K ? stats_.map_4k : level == PgLevel::k2M ? stats_.map_2m : stats_.map_1g)++;
        out.r = RET_PF_FIXED;
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// KVM_PRE_FAULT_MEMORY

int X86Mmu::kvm_vcpu_pre_fault_memory(uapi::kvm_pre_fault_memory& range, ExecContext& ctx) {
    ++stats_.prefault_calls;
    // Generic checks (kvm_vcpu_pre_fault_memory()).
    if (range.flags) return -EINVAL;
    if (!is_aligned(range.gpa, kPageSize) || !is_aligned(range.size, kPageSize)) return -EINVAL;
    if (range.gpa + range.size <= range.gpa) return -EINVAL;

    const uint64_t full = range.size;
    int r = 0;
    // kvm_vcpu_pre_fault_memory() holds kvm->srcu across the loop.
    const int idx = kvm_.srcu_read_lock();
    while (range.size) {
        // kvm_arch_vcpu_pre_fault_memory(): one mapping per call.
        if (!kvm_.pre_fault_allowed) { r = -EOPNOTSUPP; break; }
        if (kvm_.kvm_is_gfn_alias(gpa_to_gfn(Gpa(range.gpa)))) { r = -EINVAL; break; }
        if (!kvm_.config().tdp) {
            // kvm_mmu_reload() comes first: shadow paging cannot allocate a root while
            // n_max_mmu_pages is 0, i.e. before the first memslot was committed (measured
            // on Linux 6.18); after that, only a direct (TDP) MMU can pre-fault.
            bool any_slot_ever = false;
            for (unsigned as = 0; as < 2; ++as) any_slot_ever |= kvm_.memslots(as).generation > 0;
            r = any_slot_ever ? -EOPNOTSUPP : -ENOSPC;
            break;
        }

        kvm_page_fault fault;
        fault.addr = Gpa(range.gpa);
        fault.gfn = gpa_to_gfn(fault.addr);
        fault.error_code = mmu::PFERR_GUEST_FINAL;
        fault.prefetch = true;
        if (kvm_.has_private_mem() && kvm_.kvm_mem_is_private(fault.gfn)) fault.error_code |= PFERR_PRIVATE_ACCESS;
        fault.is_private = fault.error_code & PFERR_PRIVATE_ACCESS;

        PageFaultOutcome out;
        for (unsigned tries = 0;; ++tries) {
            if (tries == kMaxPrefaultRetries) { out.r = -EIO; break; }
            kvm_page_fault f = fault;
            ++stats_.prefault_faults;
            out = kvm_tdp_page_fault(f, ctx);
            if (out.r == RET_PF_RETRY) {
                // A memslot being deleted is -EAGAIN for pre-fault rather than a retry.
                const kvm_memory_slot* s = kvm_.gfn_to_memslot(0, fault.gfn);
                if (s && (s->flags & KVM_MEMSLOT_INVALID)) { out.r = -EAGAIN; break; }
                ctx.sync();
                continue;
            }
            break;
        }
        if (out.r == RET_PF_FIXED || out.r == RET_PF_SPURIOUS) {
            const uint64_t end = (range.gpa & ~(level_size(out.level) - 1)) + level_size(out.level);
            const uint64_t done = std::min(range.size, end - range.gpa);
            stats_.prefault_pages += done >> kPageShift;
            range.gpa += done;
            range.size -= done;
            continue;
        }
        // kvm_tdp_map_page(): a negative return passes through as it is (a guest_memfd
        // error such as ENOMEM or EHWPOISON from kvm_mmu_faultin_pfn_gmem(), EFAULT for an
        // attribute mismatch); emulation is ENOENT; anything else is a KVM bug (EIO).
        if (out.r == RET_PF_EMULATE) r = -ENOENT;
        else if (out.r < 0) r = out.r;
        else r = -EIO;
        break;
    }
    kvm_.srcu_read_unlock(idx);
    return range.size < full ? 0 : r;
}

// ---------------------------------------------------------------------------------------
// KvmMmuOps

bool X86Mmu::kvm_unmap_gfn_range(const kvm_gfn_range& range, ExecContext& ctx) {
    // One direct root serves private and shared mappings on every VM type without direct
    // bits, so the attribute filter selects nothing there. With direct bits (TDX) private
    // mappings live at the gfn and shared ones at the aliased gfn, and the filter picks
    // which (kvm_gfn_range_filter_to_root_types(): PRIVATE -> mirror, SHARED -> direct).
    return zap_gfn_range(range.start, range.end, range.attr_filter, ctx);
}

bool X86Mmu::zap_gfn_range(Gfn start, Gfn end, AttrFilter filter, ExecContext& ctx) {
    const uint64_t bits = kvm_.gfn_direct_bits;
    if (!bits) return tdp_.zap_leafs(start, end, ctx) != 0;
    uint64_t n = 0;
    // Private mappings live in the mirror root when there is one (KVM_FILTER_PRIVATE ->
    // KVM_MIRROR_ROOTS): zapping them removes the external entries too.
    if (uint8_t(filter) & uint8_t(AttrFilter::private_)) n += (mirror_ ? *mirror_ : tdp_).zap_leafs(start, end, ctx);
    if (uint8_t(filter) & uint8_t(AttrFilter::shared))
        n += tdp_.zap_leafs(Gfn(start.raw() | bits), Gfn(end.raw() | bits), ctx);
    return n != 0;
}

void X86Mmu::kvm_flush_remote_tlbs(ExecContext& ctx) {
    ++stats_.remote_flushes;
    // kvm_make_all_cpus_request(KVM_REQ_TLB_FLUSH): every vCPU gets the request and
    // flushes before it next enters the guest (kvm_vcpu_flush_tlb_all()). Only vCPUs in
    // guest mode are sent an IPI (kvm_request_needs_ipi()); the IPIs go out together
    // (smp_call_function_many with wait) and the requester waits for the slowest, so it
    // pays one round trip however many vCPUs it kicks. A kicked vCPU pays its exit, the
    // flush and the entry; one outside guest mode (the requester itself among them) only
    // the flush.
    const auto& c = kvm_.costs();
    unsigned ipis = 0;
    for (VcpuRef& v : vcpus_) {
        v.hw->flush_all();
        if (!v.requests) continue;
        if (v.requests->in_guest_mode()) {
            ++ipis;
            v.requests->charge_before_guest(c.vmexit + c.tlb_flush_local + c.vmentry);
        } else {
            v.requests->charge_before_guest(c.tlb_flush_local);
        }
    }
    stats_.remote_flush_ipis += ipis;
    if (ipis) ctx.charge("tlb_flush_remote_ipi", c.tlb_flush_remote_ipi);
}

// kvm_memslot_flush_zap_all(): a default VM with KVM_X86_QUIRK_SLOT_ZAP_ALL (on unless
// userspace disables it with KVM_CAP_DISABLE_QUIRKS2) zaps the whole VM when a memslot is
// deleted or moved; every other VM type zaps only that slot.
bool X86Mmu::kvm_memslot_flush_zap_all() const {
    return kvm_.type() == VmType::default_vm && kvm_.config().quirk_slot_zap_all;
}

void X86Mmu::kvm_arch_flush_shadow_memslot(const kvm_memory_slot& slot, ExecContext& ctx) {
    if (kvm_memslot_flush_zap_all()) {
        // kvm_mmu_zap_all_fast(): every root is invalidated and its SPTEs zapped, so every
        // vCPU faults everything in again.
        if (tdp_.zap_leafs(Gfn(0), Gfn(~0ull), ctx)) kvm_flush_remote_tlbs(ctx);
        return;
    }
    // kvm_mmu_zap_memslot(): only the slot's gfns (and their shared aliases).
    if (zap_gfn_range(slot.base_gfn, slot.end_gfn(), AttrFilter::both, ctx)) kvm_flush_remote_tlbs(ctx);
}

bool X86Mmu::kvm_arch_pre_set_memory_attributes(const kvm_gfn_range& range, ExecContext& ctx) {
    if (!kvm_.has_private_mem() || range.end <= range.start) return false;
    const kvm_memory_slot& slot = *range.slot;
    // The head and tail huge-page frames of the range join the invalidation while they
    // could be mapped huge (inside the slot, attributes not mixed): a fault on a gfn of
    // such a frame outside the range would otherwise install a huge SPTE from the old
    // attributes while they change. Only the range itself is zapped (that removes any
    // huge SPTE over it).
    auto uniform = [&](Gfn s, uint64_t n) {
        const uint64_t a = kvm_.kvm_get_memory_attributes(s) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
        return kvm_.kvm_range_has_memory_attributes(s, s + n, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, a);
    };
    for (PgLevel level : {PgLevel::k2M, PgLevel::k1G}) {
        const uint64_t n = frame_pages(level);
        const Gfn start(range.start.raw() & ~(n - 1));
        const Gfn end((range.end.raw() - 1) & ~(n - 1));
        if ((start != range.start || start + n > range.end) && start >= slot.base_gfn &&
            start + n <= slot.end_gfn() && uniform(start, n))
            kvm_.kvm_mmu_invalidate_range_add(start, start + n);
        if (end == start) continue;
        if (end + n > range.end && end + n <= slot.end_gfn() && uniform(end, n))
            kvm_.kvm_mmu_invalidate_range_add(end, end + n);
    }
    return kvm_unmap_gfn_range(range, ctx);
}

void X86Mmu::kvm_mmu_slot_apply_flags(const kvm_memory_slot& slot, uint32_t old_flags, ExecContext& ctx) {
    // Nothing to do for a read-only slot (it is never written) or without a toggle.
    if (slot.flags & uapi::KVM_MEM_READONLY) return;
    const bool on = slot.flags & uapi::KVM_MEM_LOG_DIRTY_PAGES;
    if (on == bool(old_flags & uapi::KVM_MEM_LOG_DIRTY_PAGES)) return;
    if (!on) {
        // Dirty logging stopped: the slot may map huge again. Modelled as the zap of
        // kvm_mmu_zap_collapsible_sptes() (kernels since 6.13 rebuild the huge SPTEs in
        // place, kvm_mmu_recover_huge_pages()): the next faults map huge.
        if (zap_gfn_range(slot.base_gfn, slot.end_gfn(), AttrFilter::both, ctx)) kvm_flush_remote_tlbs(ctx);
        return;
    }
    // Dirty logging started: eager_page_split (on by default) splits huge SPTEs down to
    // 4K, and kvm_mmu_slot_remove_write_access(PG_LEVEL_4K) write-protects every SPTE so
    // each first write faults and is logged. (Intel with PML clears dirty bits instead of
    // write-protecting 4K SPTEs; not modelled.)
    // Only shared mappings are logged: with direct bits they sit at the aliased gfns.
    const uint64_t bits = kvm_.gfn_direct_bits;
    if (tdp_.write_protect(Gfn(slot.base_gfn.raw() | bits), Gfn(slot.end_gfn().raw() | bits), /*split_huge=*/true, ctx))
        kvm_flush_remote_tlbs(ctx);
}

void X86Mmu::kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot& slot, uint64_t gfn_offset,
                                                     uint64_t mask, ExecContext& ctx) {
    // kvm_mmu_write_protect_pt_masked() -> kvm_tdp_mmu_clear_dirty_pt_masked(wrprot).
    for (unsigned b = 0; b < 64; ++b)
        if (mask & (1ull << b)) {
            const Gfn g((slot.base_gfn + (gfn_offset + b)).raw() | kvm_.gfn_direct_bits);
            tdp_.write_protect(g, g + 1, /*split_huge=*/true, ctx);
        }
}

// Mixed-attribute hugepage tracking needs no state of its own here: the fault path asks
// the attribute range map whether a frame is uniform, which is what the tracked
// KVM_LPAGE_MIXED_FLAG answers in Linux, at the same O(log n) cost.
void X86Mmu::kvm_arch_post_set_memory_attributes(const kvm_memory_slot&, Gfn, Gfn) {}
void X86Mmu::kvm_arch_create_memslot(const kvm_memory_slot&) {}
void X86Mmu::kvm_arch_free_memslot(const kvm_memory_slot&) {}

}  // namespace hvsim::kvm

namespace hvsim::kvm {

int X86Mmu::kvm_tdp_mmu_map_private_pfn(Gfn gfn, Pfn pfn, ExecContext& ctx) {
    if (!mirror_) return -EOPNOTSUPP;
    // The fault KVM builds carries the pfn already (no faultin); RET_PF_RETRY loops.
    for (unsigned tries = 0; tries < kMaxPrefaultRetries; ++tries) {
        // kvm_tdp_mmu_map_private_pfn(): the map under read_lock(&kvm->mmu_lock).
        MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::read, ctx, kvm_.costs().mmu_lock);
        bool flush = false;
        const MapResult m = mirror_->map(gfn, pfn, PgLevel::k4K, true, &flush, ctx);
        if (flush) kvm_flush_remote_tlbs(ctx);
        if (m == MapResult::busy) {
            lock.unlock();
            ++stats_.external_busy;
            ctx.sync();
            continue;
        }
        if (m == MapResult::error) return -EIO;
        return 0;
    }
    return -EIO;
}

}  // namespace hvsim::kvm
