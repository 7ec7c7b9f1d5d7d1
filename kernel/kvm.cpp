// VM creation, capabilities, memslot updates and the MMU invalidation state
// (virt/kvm/kvm_main.c, arch/x86/kvm/x86.c).
#include "kernel/error_rule.hpp"
#include "kernel/kvm.hpp"

#include <algorithm>
#include <cerrno>

#include "kernel/guest_memfd.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm {

const char* invalidate_cause_name(InvalidateCause c) {
    switch (c) {
    case InvalidateCause::punch_hole: return "punch_hole";
    case InvalidateCause::gmem_release: return "gmem_release";
    case InvalidateCause::set_attributes: return "set_attributes";
    case InvalidateCause::memslot_delete: return "memslot_delete";
    case InvalidateCause::memslot_move: return "memslot_move";
    case InvalidateCause::hva_notifier: return "hva_notifier";
    case InvalidateCause::other: return "other";
    }
    return "?";
}

const char* attr_filter_name(AttrFilter f) {
    switch (f) {
    case AttrFilter::shared: return "shared";
    case AttrFilter::private_: return "private";
    case AttrFilter::both: return "both";
    }
    return "?";
}

// ---------------------------------------------------------------------------------
// VM lifetime

Kvm::Kvm(Private, VmType type, VmmProcess& proc)
    : type_(type), arch_(&kvm_default_arch_ops(type)), mmu_(&null_mmu_), proc_(proc) {
    pre_fault_allowed = arch_->pre_fault_allowed_initially();
    // Until a TDP MMU says its root level: 5-level when the host's MAXPHYADDR exceeds 48.
    kvm_set_shared_gpa_bit_for(config().maxphyaddr > 48 ? 5 : 4);
}

Kvm::~Kvm() {
    // kvm_destroy_vm(): sev_vm_destroy() unpins what REG_REGION pinned. Every guest_memfd
    // held a reference, so by now all bindings were released; the MMU goes with the VM.
    sev_unpin_all();
}

int Kvm::create(uint64_t type, VmmProcess& proc, ExecContext& ctx, std::shared_ptr<Kvm>& out) {
    ctx.charge("ioctl", proc.costs().ioctl);
    // kvm_arch_init_vm(): !kvm_is_vm_type_supported(type) -> EINVAL.
    const std::optional<VmType> t = vm_type_from_uapi(type);
    if (!t) return error_rule(-EINVAL, "kvm_arch_init_vm: unknown VM type");
    if (!kvm_default_arch_ops(*t).supported_by(proc.config()))
        return error_rule(-EINVAL, "kvm_is_vm_type_supported: this VM type is off in the kernel configuration "
                                   "(kvm.config.sev, sev_es, snp, tdx, pkvm or sw_protected_vm)");
    out = std::make_shared<Kvm>(Private{}, *t, proc);
    proc.vms_.push_back(out);
    return 0;
}

const KvmConfig& Kvm::config() const { return proc_.config(); }
const KvmCosts& Kvm::costs() const { return proc_.costs(); }

// ---------------------------------------------------------------------------------
// Capabilities

uint32_t Kvm::supported_vm_types(const KvmConfig& cfg) {
    uint32_t mask = 0;
    for (VmType t : kAllVmTypes) {
        const uint64_t nr = vm_type_uapi(t);
        if (nr < 32 && kvm_default_arch_ops(t).supported_by(cfg)) mask |= 1u << nr;
    }
    return mask;
}

namespace {

// What both scopes answer alike, or nullopt when the answer depends on the VM.
int64_t check_extension_common(const KvmConfig& cfg, int64_t cap) {
    switch (cap) {
    case uapi::KVM_CAP_NR_MEMSLOTS: return cfg.nr_memslots;
    case uapi::KVM_CAP_USER_MEMORY2: return 1;
    case uapi::KVM_CAP_GUEST_MEMFD: return cfg.guest_memfd ? 1 : 0;
    case uapi::KVM_CAP_VM_TYPES: return Kvm::supported_vm_types(cfg);
    case uapi::KVM_CAP_EXIT_HYPERCALL:
        return cfg.exit_hypercall ? int64_t(KVM_EXIT_HYPERCALL_VALID_MASK) : 0;
    default: return 0;
    }
}

}  // namespace

int64_t Kvm::kvm_dev_check_extension(const KvmConfig& cfg, int64_t cap) {
    switch (cap) {
    case uapi::KVM_CAP_READONLY_MEM: return cfg.readonly_mem ? 1 : 0;
    // Only compiled in with CONFIG_KVM_SMM (KVM_MAX_NR_ADDRESS_SPACES > 1); else the arch
    // default answers 0.
    case uapi::KVM_CAP_MULTI_ADDRESS_SPACE: return cfg.smm ? 2 : 0;
    case uapi::KVM_CAP_MEMORY_ATTRIBUTES:
        return cfg.generic_memory_attributes && cfg.vm_memory_attributes
                   ? int64_t(uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0;
    case KVM_CAP_MEMORY_ATTRIBUTES2:
    case KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES:
        return cfg.guest_memfd && cfg.memory_attributes2 && !cfg.vm_memory_attributes
                   ? int64_t(uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0;
    case uapi::KVM_CAP_PRE_FAULT_MEMORY: return cfg.tdp ? 1 : 0;
    case uapi::KVM_CAP_GUEST_MEMFD_FLAGS: {
        if (!cfg.guest_memfd) return 0;
        uint64_t f = 0;
        if (cfg.guest_memfd_mmap) f |= uapi::GUEST_MEMFD_FLAG_MMAP;
        if (cfg.guest_memfd_init_shared) f |= uapi::GUEST_MEMFD_FLAG_INIT_SHARED;
        return int64_t(f);
    }
    default: return check_extension_common(cfg, cap);
    }
}

int64_t Kvm::kvm_vm_ioctl_check_extension(int64_t cap) const {
    const KvmConfig& cfg = config();
    switch (cap) {
    case uapi::KVM_CAP_READONLY_MEM: return kvm_arch_has_readonly_mem() ? 1 : 0;
    case uapi::KVM_CAP_MULTI_ADDRESS_SPACE: return cfg.smm ? int64_t(kvm_arch_nr_memslot_as_ids()) : 0;
    case uapi::KVM_CAP_MEMORY_ATTRIBUTES:
        return cfg.generic_memory_attributes && cfg.vm_memory_attributes
                   ? int64_t(kvm_supported_mem_attributes()) : 0;
    case KVM_CAP_MEMORY_ATTRIBUTES2:
    case KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES:
        return cfg.guest_memfd && cfg.memory_attributes2 && !cfg.vm_memory_attributes
                   ? int64_t(kvm_supported_mem_attributes()) : 0;
    // x86: tdp_enabled; KVM_PRE_FAULT_MEMORY is x86-only, so a pKVM VM says 0.
    case uapi::KVM_CAP_PRE_FAULT_MEMORY: return cfg.tdp && type_ != VmType::pkvm ? 1 : 0;
    case uapi::KVM_CAP_GUEST_MEMFD_FLAGS: return int64_t(kvm_gmem_get_supported_flags());
    default: return check_extension_common(cfg, cap);
    }
}

// ---------------------------------------------------------------------------------
// Memslots

const kvm_memory_slot* Kvm::id_to_memslot(unsigned as_id, uint16_t id) const {
    return as_id < 2 ? memslots_[as_id].id_to_memslot(id) : nullptr;
}

const kvm_memory_slot* Kvm::gfn_to_memslot(unsigned as_id, Gfn gfn) const {
    return as_id < 2 ? memslots_[as_id].gfn_to_memslot(gfn) : nullptr;
}

int Kvm::kvm_vm_ioctl_set_memory_region(const uapi::kvm_userspace_memory_region& m, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    // kvm_vm_ioctl(KVM_SET_USER_MEMORY_REGION): v1 copies 32 bytes, zeroes the v2 fields
    // and accepts only the v1 flags (so GUEST_MEMFD through v1 is EINVAL).
    if (m.flags & ~(uapi::KVM_MEM_LOG_DIRTY_PAGES | uapi::KVM_MEM_READONLY)) return -EINVAL;
    uapi::kvm_userspace_memory_region2 m2{};
    m2.slot = m.slot;
    m2.flags = m.flags;
    m2.guest_phys_addr = m.guest_phys_addr;
    m2.memory_size = m.memory_size;
    m2.userspace_addr = m.userspace_addr;
    if (uint16_t(m2.slot) >= config().nr_memslots) return -EINVAL;
    return kvm_set_memory_region(m2, ctx);
}

int Kvm::kvm_vm_ioctl_set_memory_region2(const uapi::kvm_userspace_memory_region2& m, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    // kvm_vm_ioctl_set_memory_region(): user ioctls cannot touch internal slots.
    if (uint16_t(m.slot) >= config().nr_memslots)
        return error_rule(-EINVAL, "kvm_vm_ioctl_set_memory_region: slot id >= KVM_USER_MEM_SLOTS (kvm.config.nr_memslots)");
    return kvm_set_memory_region(m, ctx);
}

namespace {

// access_ok() on x86-64: [addr, addr+size) must not wrap and must end below TASK_SIZE_MAX.
bool access_ok(uint64_t addr, uint64_t size) {
    const uint64_t sum = addr + size;
    return sum >= addr && sum < kTaskSizeMax;
}

}  // namespace

// kvm_set_memory_region(): validation in Linux's order, first failure wins
// (docs/kvm-model.md; docs/ground-truth.md).
int Kvm::kvm_set_memory_region(const uapi::kvm_userspace_memory_region2& mem, ExecContext& ctx) {
    const KvmConfig& cfg = config();
    using namespace uapi;

    // check_memory_region_flags(): LOG_DIRTY always; GUEST_MEMFD with CONFIG_KVM_GUEST_MEMFD
    // (dropping LOG_DIRTY: no dirty logging of private memory); READONLY if the arch has
    // read-only memory for this VM and the slot is not gmem (no emulated MMIO for private
    // memory). Checked for deletes too.
    uint32_t valid = KVM_MEM_LOG_DIRTY_PAGES;
    if (cfg.guest_memfd) valid |= KVM_MEM_GUEST_MEMFD;
    if (mem.flags & KVM_MEM_GUEST_MEMFD) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
    if (kvm_arch_has_readonly_mem() && !(mem.flags & KVM_MEM_GUEST_MEMFD)) valid |= KVM_MEM_READONLY;
    if (mem.flags & ~valid)
        return error_rule(-EINVAL, "check_memory_region_flags: a flag this slot cannot have (guest_memfd needs "
                                   "kvm.config.guest_memfd, readonly needs kvm.config.readonly_mem and no guest_memfd)");

    const unsigned as_id = mem.slot >> 16;
    const uint16_t id = uint16_t(mem.slot);

    // General sanity checks.
    if (mem.memory_size & kPageMask) return error_rule(-EINVAL, "kvm_set_memory_region: memory_size not page aligned");
    if (mem.guest_phys_addr & kPageMask)
        return error_rule(-EINVAL, "kvm_set_memory_region: guest_phys_addr not page aligned");
    if (mem.userspace_addr & kPageMask)
        return error_rule(-EINVAL, "kvm_set_memory_region: userspace_addr not page aligned");
    if (!access_ok(mem.userspace_addr, mem.memory_size))
        return error_rule(-EINVAL, "kvm_set_memory_region: access_ok: userspace_addr + memory_size beyond the user "
                                   "address space (TASK_SIZE_MAX, 128 TiB - 4 KiB)");
    if ((mem.flags & KVM_MEM_GUEST_MEMFD) &&
        ((mem.guest_memfd_offset & kPageMask) ||
         mem.guest_memfd_offset + mem.memory_size < mem.guest_memfd_offset))
        return error_rule(-EINVAL, "kvm_set_memory_region: guest_memfd_offset not page aligned or offset + size wraps");
    if (as_id >= kvm_arch_nr_memslot_as_ids())
        return error_rule(-EINVAL, "kvm_set_memory_region: address space id >= KVM_ADDRESS_SPACE_NUM (1 without "
                                   "kvm.config.smm, 2 with it)");
    if (id >= KVM_MEM_SLOTS_NUM) return error_rule(-EINVAL, "kvm_set_memory_region: slot id >= KVM_MEM_SLOTS_NUM");
    if (mem.guest_phys_addr + mem.memory_size < mem.guest_phys_addr)
        return error_rule(-EINVAL, "kvm_set_memory_region: guest_phys_addr + memory_size wraps");
    if ((mem.memory_size >> kPageShift) > KVM_MEM_MAX_NR_PAGES)
        return error_rule(-EINVAL, "kvm_set_memory_region: more than KVM_MEM_MAX_NR_PAGES (2^31 - 1) pages");

    KvmMemslots& slots = memslots_[as_id];
    kvm_memory_slot* old = slots.id_to_memslot(id);

    if (mem.memory_size == 0) {
        if (!old) return error_rule(-EINVAL, "kvm_set_memory_region: deleting a slot that does not exist");
        return kvm_set_memslot(old, nullptr, kvm_mr_change::delete_, ctx);
    }

    const Gfn base_gfn(mem.guest_phys_addr >> kPageShift);
    const uint64_t npages = mem.memory_size >> kPageShift;
    kvm_mr_change change;
    if (!old) {
        change = kvm_mr_change::create;
        // The total number of pages across all memslots must fit in an unsigned long.
        if (nr_memslot_pages_ + npages < nr_memslot_pages_)
            return error_rule(-EINVAL, "kvm_set_memory_region: total memslot pages overflow");
    } else {
        // guest_memfd memslots are immutable, they can only be deleted; and a normal slot
        // can never gain GUEST_MEMFD (6.18 + the Dec 2025 stable fix: the modify check
        // covers (new ^ old) & (READONLY | GUEST_MEMFD)).
        const uint32_t old_user_flags = old->flags & 0xffffu;
        if (mem.flags & KVM_MEM_GUEST_MEMFD)
            return error_rule(-EINVAL, "kvm_set_memory_region: guest_memfd memslots cannot be modified, only deleted");
        if ((mem.flags ^ old_user_flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD))
            return error_rule(-EINVAL, "kvm_set_memory_region: readonly cannot change on an existing slot");
        if (mem.userspace_addr != old->userspace_addr.raw() || npages != old->npages)
            return error_rule(-EINVAL, "kvm_set_memory_region: an existing slot cannot change userspace_addr or size");
        if (base_gfn != old->base_gfn)
            change = kvm_mr_change::move;
        else if (mem.flags != old_user_flags)
            change = kvm_mr_change::flags_only;
        else
            return 0;   // nothing to change
    }

    if ((change == kvm_mr_change::create || change == kvm_mr_change::move) &&
        slots.check_overlap(id, base_gfn, base_gfn + npages))
        return error_rule(-EEXIST, "kvm_set_memory_region: the gpa range overlaps another memslot");

    auto new_slot = std::make_unique<kvm_memory_slot>();
    new_slot->as_id = uint16_t(as_id);
    new_slot->id = id;
    new_slot->base_gfn = base_gfn;
    new_slot->npages = npages;
    new_slot->flags = mem.flags;
    new_slot->userspace_addr = Hva(mem.userspace_addr);
    if (mem.flags & KVM_MEM_GUEST_MEMFD) {
        const int r = kvm_gmem_bind(*this, *new_slot, mem.guest_memfd, mem.guest_memfd_offset);
        if (r) return r;
    }
    // On failure kvm_set_memslot() undoes the binding (out_unbind) before freeing the slot.
    return kvm_set_memslot(old, std::move(new_slot), change, ctx);
}

// x86 kvm_arch_prepare_memory_region(): a created or moved slot must end at or below
// kvm_mmu_max_gfn() and must not reach an aliased (TDX shared) gfn.
int Kvm::kvm_arch_prepare_memory_region(const kvm_memory_slot* s, kvm_mr_change change) const {
    if (const int r = arch_->prepare_memory_region(*this, s, change)) return r;
    if (change == kvm_mr_change::create || change == kvm_mr_change::move) {
        const Gfn last = s->base_gfn + (s->npages - 1);
        if (last.raw() > arch_->max_gfn(config()))
            return error_rule(-EINVAL, "kvm_arch_prepare_memory_region: the slot ends above kvm_mmu_max_gfn() "
                                       "(kvm.config.maxphyaddr)");
        if (kvm_is_gfn_alias(last))
            return error_rule(-EINVAL, "kvm_arch_prepare_memory_region: the slot reaches the TDX shared-bit alias");
    }
    return 0;
}

// kvm_set_memslot(): invalidate (DELETE/MOVE), prepare, install, commit.
int Kvm::kvm_set_memslot(kvm_memory_slot* old, std::unique_ptr<kvm_memory_slot> new_slot,
                         kvm_mr_change change, ExecContext& ctx) {
    KvmMemslots& slots = memslots_[old ? old->as_id : new_slot->as_id];
    std::unique_ptr<kvm_memory_slot> keep_new = std::move(new_slot);   // freed on failure

    if (change == kvm_mr_change::delete_ || change == kvm_mr_change::move) {
        // kvm_invalidate_memslot(): publish the slot as INVALID (faults on it retry, §5.2),
        // let SRCU readers drain, then zap everything it maps.
        old->flags |= KVM_MEMSLOT_INVALID;
        ++slots.generation;
        ctx.sync();
        // kvm_swap_active_memslots() -> synchronize_srcu_expedited(): a fault that found
        // the slot valid may still be faulting a page in from it; zapping before it is done
        // would leave its SPTE behind, pointing at memory no memslot maps any more.
        synchronize_srcu(ctx);
        CountingContext cc(ctx);
        const uint64_t before = mmu_->sptes_zapped_total();
        const bool zap_all = mmu_->kvm_memslot_flush_zap_all();
        mmu_->kvm_arch_flush_shadow_memslot(*old, cc);
        InvalidationRecord rec;
        ZapRange z;
        if (zap_all) {   // every SPTE of the VM, whatever slot it came from
            z.start_gfn = 0;
            z.end_gfn = arch_->max_gfn(config()) + 1;
        } else {
            z.memslot = old->id;
            z.as_id = old->as_id;
            z.start_gfn = old->base_gfn.raw();
            z.end_gfn = old->end_gfn().raw();
        }
        z.pages_zapped = mmu_->sptes_zapped_total() - before;
        rec.ranges.push_back(z);
        rec.start_gfn = z.start_gfn;
        rec.end_gfn = z.end_gfn;
        rec.cause = change == kvm_mr_change::delete_ ? InvalidateCause::memslot_delete
                                                    : InvalidateCause::memslot_move;
        rec.attr_filter = AttrFilter::both;
        rec.sptes_zapped = mmu_->sptes_zapped_total() - before;
        rec.flush_remote = true;   // kvm_arch_flush_shadow_memslot() flushes remote TLBs
        rec.cycles = cc.total;
        stats_.invalidations.push_back(rec);
    }

    const int r = kvm_arch_prepare_memory_region(keep_new.get(), change);
    if (r) {
        if (keep_new && keep_new->has_gmem()) kvm_gmem_unbind(*keep_new);
        if (old) {   // kvm_activate_memslot(invalid_slot, old): restore the old slot
            old->flags &= ~KVM_MEMSLOT_INVALID;
            ++slots.generation;
        }
        return r;
    }

    ctx.charge("memslot_update", costs().memslot_update);
    switch (change) {
    case kvm_mr_change::create:
        // kvm_prepare_memory_region(): a dirty-logged slot starts with a clean bitmap.
        if (keep_new->flags & uapi::KVM_MEM_LOG_DIRTY_PAGES) keep_new->dirty_bitmap.assign((keep_new->npages + 63) / 64, 0);
        mmu_->kvm_arch_create_memslot(*keep_new);   // kvm_alloc_memslot_metadata()
        nr_memslot_pages_ += keep_new->npages;
        slots.insert(std::move(keep_new));
        ++stats_.memslot_create;
        break;
    case kvm_mr_change::delete_: {
        nr_memslot_pages_ -= old->npages;
        std::unique_ptr<kvm_memory_slot> gone = slots.remove(old->id);
        // kvm_activate_memslot() swaps the slot out and waits again: a reader that found
        // the INVALID slot is done with it before kvm_free_memslot() frees it.
        synchronize_srcu(ctx);
        // kvm_free_memslot(): unbind guest_memfd, free arch metadata.
        if (gone->has_gmem()) kvm_gmem_unbind(*gone);
        mmu_->kvm_arch_free_memslot(*gone);
        ++stats_.memslot_delete;
        break;
    }
    case kvm_mr_change::move: {
        // hvsim moves the slot object in place, so readers of the INVALID slot must be
        // done first (Linux swaps in a new object and waits before freeing the old).
        synchronize_srcu(ctx);
        // Old metadata goes before the new is allocated (Linux allocates into the new
        // slot object first; hvsim has one object per slot id, see docs/kvm-model.md).
        kvm_memory_slot old_copy = *old;
        old_copy.flags &= ~KVM_MEMSLOT_INVALID;
        mmu_->kvm_arch_free_memslot(old_copy);
        slots.move(old->id, keep_new->base_gfn);
        old->flags = keep_new->flags;
        mmu_->kvm_arch_create_memslot(*old);
        ++stats_.memslot_move;
        break;
    }
    case kvm_mr_change::flags_only: {
        // Only KVM_MEM_LOG_DIRTY_PAGES can change here. kvm_prepare_memory_region() gives the
        // slot a bitmap when logging starts (a kept one when it already had it) and
        // kvm_commit_memory_region() frees it when logging stops; then the arch write-protects
        // the slot or lets it map huge again (kvm_arch_commit_memory_region() ->
        // kvm_mmu_slot_apply_flags()).
        const uint32_t old_flags = old->flags;
        old->flags = keep_new->flags | (old->flags & ~0xffffu);
        const bool logging = old->flags & uapi::KVM_MEM_LOG_DIRTY_PAGES;
        if (logging && old->dirty_bitmap.empty()) old->dirty_bitmap.assign((old->npages + 63) / 64, 0);
        if (!logging) std::vector<uint64_t>().swap(old->dirty_bitmap);
        ++slots.generation;
        ++stats_.memslot_flags_only;
        mmu_->kvm_mmu_slot_apply_flags(*old, old_flags, ctx);
        break;
    }
    }
    return 0;
}

// ---------------------------------------------------------------------------------
// MMU invalidation state (kvm_main.c; kvm_host.h mmu_invalidate_retry_gfn*)

void Kvm::kvm_mmu_invalidate_begin() {
    ++mmu_invalidate_in_progress;
    if (mmu_invalidate_in_progress == 1) {
        mmu_invalidate_range_start = Gfn(kInvalidGfn);
        mmu_invalidate_range_end = Gfn(kInvalidGfn);
    }
}

void Kvm::kvm_mmu_invalidate_range_add(Gfn start, Gfn end) {
    if (mmu_invalidate_range_start.raw() == kInvalidGfn) {
        mmu_invalidate_range_start = start;
        mmu_invalidate_range_end = end;
    } else {
        if (start < mmu_invalidate_range_start) mmu_invalidate_range_start = start;
        if (end > mmu_invalidate_range_end) mmu_invalidate_range_end = end;
    }
}

void Kvm::kvm_mmu_invalidate_end() {
    // The seq bump comes before in_progress drops so a fault that sees in_progress == 0
    // also sees the new seq.
    ++mmu_invalidate_seq;
    --mmu_invalidate_in_progress;
}

bool Kvm::mmu_invalidate_retry_gfn(uint64_t seq, Gfn gfn) const {
    if (mmu_invalidate_in_progress > 0) {
        if (mmu_invalidate_range_start.raw() == kInvalidGfn) return true;   // KVM bug: retry
        if (gfn >= mmu_invalidate_range_start && gfn < mmu_invalidate_range_end) return true;
    }
    return mmu_invalidate_seq != seq;
}

bool Kvm::mmu_invalidate_retry_gfn_unsafe(uint64_t seq, Gfn gfn) const {
    if (mmu_invalidate_in_progress > 0 && gfn >= mmu_invalidate_range_start &&
        gfn < mmu_invalidate_range_end)
        return true;
    return mmu_invalidate_seq != seq;
}

// ---------------------------------------------------------------------------------
// Dirty logging (kvm_main.c kvm_get_dirty_log_protect / kvm_clear_dirty_log_protect)

void Kvm::mark_page_dirty_in_slot(const kvm_memory_slot& slot, Gfn gfn) {
    if (slot.dirty_bitmap.empty() || !slot.contains(gfn)) return;
    const uint64_t rel = gfn - slot.base_gfn;
    slot.dirty_bitmap[rel / 64] |= 1ull << (rel % 64);
}

int Kvm::kvm_vm_ioctl_get_dirty_log(const uapi::kvm_dirty_log& log, std::vector<uint64_t>& bitmap, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    const unsigned as_id = log.slot >> 16;
    const uint32_t id = log.slot & 0xffffu;
    if (as_id >= kvm_arch_nr_memslot_as_ids() || id >= uapi::KVM_USER_MEM_SLOTS) return -EINVAL;
    kvm_memory_slot* slot = memslots_[as_id].id_to_memslot(uint16_t(id));
    if (!slot || slot->dirty_bitmap.empty()) return -ENOENT;
    // Without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (not modelled): take each word and clear
    // it, and write-protect what was dirty so the next write is logged again; one TLB
    // flush for the slot at the end (kvm_flush_remote_tlbs_memslot()).
    bitmap.assign(slot->dirty_bitmap.size(), 0);
    MmuLockGuard lock(mmu_lock_, MmuLock::Mode::write, ctx, costs().mmu_lock);   // KVM_MMU_LOCK
    bool flush = false;
    for (size_t i = 0; i < slot->dirty_bitmap.size(); ++i) {
        const uint64_t mask = slot->dirty_bitmap[i];
        if (!mask) continue;
        slot->dirty_bitmap[i] = 0;
        bitmap[i] = mask;
        flush = true;
        mmu_->kvm_arch_mmu_enable_log_dirty_pt_masked(*slot, i * 64, mask, ctx);
    }
    if (flush) mmu_->kvm_flush_remote_tlbs(ctx);
    ++stats_.dirty_log_gets;
    return 0;
}

int Kvm::kvm_vm_ioctl_clear_dirty_log(const uapi::kvm_clear_dirty_log& log, const std::vector<uint64_t>& bitmap,
                                      ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    const unsigned as_id = log.slot >> 16;
    const uint32_t id = log.slot & 0xffffu;
    if (as_id >= kvm_arch_nr_memslot_as_ids() || id >= uapi::KVM_USER_MEM_SLOTS) return -EINVAL;
    if (log.first_page & 63) return -EINVAL;
    kvm_memory_slot* slot = memslots_[as_id].id_to_memslot(uint16_t(id));
    if (!slot || slot->dirty_bitmap.empty()) return -ENOENT;
    const uint64_t npages = slot->npages;
    if (log.first_page > npages || log.num_pages > npages - log.first_page ||
        (log.num_pages < npages - log.first_page && (log.num_pages & 63)))
        return -EINVAL;
    MmuLockGuard lock(mmu_lock_, MmuLock::Mode::write, ctx, costs().mmu_lock);   // KVM_MMU_LOCK
    bool flush = false;
    const uint64_t words = (uint64_t(log.num_pages) + 63) / 64;
    for (uint64_t k = 0; k < words && k < bitmap.size(); ++k) {
        const uint64_t i = log.first_page / 64 + k;
        // Only bits that were set are cleared and write-protected (bits past the slot's
        // end never are: the slot's bitmap has none).
        const uint64_t mask = bitmap[k] & slot->dirty_bitmap[i];
        if (!mask) continue;
        slot->dirty_bitmap[i] &= ~mask;
        flush = true;
        mmu_->kvm_arch_mmu_enable_log_dirty_pt_masked(*slot, i * 64, mask, ctx);
    }
    if (flush) mmu_->kvm_flush_remote_tlbs(ctx);
    ++stats_.dirty_log_clears;
    return 0;
}

// ---------------------------------------------------------------------------------
// MMU notifier (kvm_mmu_notifier_invalidate_range_start / _end)

void Kvm::kvm_mmu_notifier_invalidate_range(Hva start, Hva end, ExecContext& ctx) {
    // kvm_handle_hva_range(): on_lock = kvm_mmu_invalidate_begin, handler =
    // kvm_mmu_unmap_gfn_range over each overlapping slot (KVM_FILTER_SHARED: an hva
    // never backs a private mapping); _end() runs kvm_mmu_invalidate_end.
    MmuInvalidation inv(*this, InvalidateCause::hva_notifier, AttrFilter::shared, ctx);
    for (unsigned as = 0; as < 2; ++as)
        memslots_[as].for_each([&](kvm_memory_slot& slot) {
            const uint64_t s0 = slot.userspace_addr.raw(), e0 = s0 + (slot.npages << kPageShift);
            const uint64_t s = std::max(s0, start.raw()), e = std::min(e0, end.raw());
            if (s >= e) return;
            inv.begin();
            inv.unmap(slot, slot.base_gfn + ((s - s0) >> kPageShift),
                      slot.base_gfn + ((e - s0 + kPageMask) >> kPageShift));
        });
    if (!inv.begun()) return;
    inv.flush_and_unlock();
    inv.end();
}

// ---------------------------------------------------------------------------------
// kvm->srcu (srcu_read_lock / srcu_read_unlock / synchronize_srcu)

int Kvm::srcu_read_lock() {
    ++srcu_count_[srcu_idx_];
    return srcu_idx_;
}

void Kvm::srcu_read_unlock(int idx) { --srcu_count_[idx & 1]; }

void Kvm::synchronize_srcu(ExecContext& ctx) {
    // Flip the index new readers take, then wait for the old one to drain: readers that
    // start meanwhile are not waited for, so a stream of faults cannot starve the writer.
    const int old = srcu_idx_;
    srcu_idx_ ^= 1;
    while (srcu_count_[old]) {
        // Simulated time passing while readers on other threads finish (cost.srcu_poll);
        // the grace period's own cost is in memslot_update.
        ctx.charge("synchronize_srcu", costs().srcu_poll);
        ctx.sync();
    }
}

// ---------------------------------------------------------------------------------
// MmuInvalidation

MmuInvalidation::MmuInvalidation(Kvm& kvm, InvalidateCause cause, AttrFilter filter, ExecContext& outer)
    : kvm_(kvm), ctx_(outer) {
    rec_.cause = cause;
    rec_.attr_filter = filter;
}

MmuInvalidation::~MmuInvalidation() {
    if (locked_) kvm_.mmu_lock().unlock(MmuLock::Mode::write, ctx_, lock_timed_);
}

void MmuInvalidation::begin() {
    if (begun_) return;
    begun_ = true;
    zapped_before_ = kvm_.mmu().sptes_zapped_total();
    // KVM_MMU_LOCK for write: held across invalidate_begin and the unmaps until
    // flush_and_unlock() (kvm_handle_hva_range(), kvm_gmem_invalidate_begin()).
    lock_timed_ = kvm_.mmu_lock().lock(MmuLock::Mode::write, ctx_, kvm_.costs().mmu_lock);
    locked_ = true;
    kvm_.kvm_mmu_invalidate_begin();
}

void MmuInvalidation::range_add(Gfn start, Gfn end) {
    kvm_.kvm_mmu_invalidate_range_add(start, end);
    if (!any_range_) {
        rec_.start_gfn = start.raw();
        rec_.end_gfn = end.raw();
        any_range_ = true;
    } else {
        if (start.raw() < rec_.start_gfn) rec_.start_gfn = start.raw();
        if (end.raw() > rec_.end_gfn) rec_.end_gfn = end.raw();
    }
}

kvm_gfn_range MmuInvalidation::gfn_range(const kvm_memory_slot& slot, Gfn start, Gfn end) const {
    kvm_gfn_range r;
    r.slot = &slot;
    r.start = start;
    r.end = end;
    r.attr_filter = rec_.attr_filter;
    r.may_block = true;
    return r;
}

void MmuInvalidation::record_zap(const kvm_memory_slot& slot, Gfn start, Gfn end, uint64_t zapped_before) {
    ZapRange z;
    z.memslot = slot.id;
    z.as_id = slot.as_id;
    z.start_gfn = start.raw();
    z.end_gfn = end.raw();
    z.pages_zapped = kvm_.mmu().sptes_zapped_total() - zapped_before;
    rec_.ranges.push_back(z);
}

void MmuInvalidation::unmap(const kvm_memory_slot& slot, Gfn start, Gfn end) {
    range_add(start, end);
    const uint64_t before = kvm_.mmu().sptes_zapped_total();
    flush_ |= kvm_.mmu().kvm_unmap_gfn_range(gfn_range(slot, start, end), ctx_);
    record_zap(slot, start, end, before);
}

void MmuInvalidation::pre_set_attributes(const kvm_memory_slot& slot, Gfn start, Gfn end) {
    range_add(start, end);
    const uint64_t before = kvm_.mmu().sptes_zapped_total();
    flush_ |= kvm_.mmu().kvm_arch_pre_set_memory_attributes(gfn_range(slot, start, end), ctx_);
    record_zap(slot, start, end, before);
}

void MmuInvalidation::flush_and_unlock() {
    if (flush_) {
        kvm_.mmu().kvm_flush_remote_tlbs(ctx_);
        rec_.flush_remote = true;
        flush_ = false;
    }
    if (locked_) kvm_.mmu_lock().unlock(MmuLock::Mode::write, ctx_, lock_timed_);
    locked_ = false;
    ctx_.sync();   // mmu_lock dropped: a concurrent fault may now observe in_progress
}

void MmuInvalidation::end() {
    ctx_.sync();
    MmuLockGuard lock(kvm_.mmu_lock(), MmuLock::Mode::write, ctx_, kvm_.costs().mmu_lock);
    // What faults were kept off: kvm's union as this invalidation ends (it includes what
    // the arch added, e.g. huge-page frames around an attribute change).
    if (kvm_.mmu_invalidate_range_start.raw() != kInvalidGfn && any_range_) {
        rec_.start_gfn = std::min(rec_.start_gfn, kvm_.mmu_invalidate_range_start.raw());
        rec_.end_gfn = std::max(rec_.end_gfn, kvm_.mmu_invalidate_range_end.raw());
    }
    kvm_.kvm_mmu_invalidate_end();
    rec_.sptes_zapped = kvm_.mmu().sptes_zapped_total() - zapped_before_;
    rec_.cycles = ctx_.total;
    kvm_.stats_.invalidations.push_back(rec_);
}

}  // namespace hvsim::kvm
