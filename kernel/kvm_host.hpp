// Types shared across the simulated KVM (include/linux/kvm_host.h in Linux): the
// memslot, the gfn range handed to the MMU, the execution context that charges
// simulated time, and the interface generic KVM uses to reach the arch MMU.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "models/common/exec_context.hpp"
#include "models/common/types.hpp"

namespace hvsim::kvm {

class GuestMemfd;

using hvsim::CycleCounter;
using hvsim::ExecContext;

// Internal memslot flags (upper 16 bits, never user-visible).
inline constexpr uint32_t KVM_MEMSLOT_INVALID = 1u << 16;
inline constexpr uint32_t KVM_MEMSLOT_GMEM_ONLY = 1u << 17;

struct kvm_memory_slot {
    uint16_t id = 0;
    uint16_t as_id = 0;
    Gfn base_gfn;
    uint64_t npages = 0;
    uint32_t flags = 0;          // KVM_MEM_* | KVM_MEMSLOT_*
    Hva userspace_addr;
    struct {
        GuestMemfd* file = nullptr;   // nullptr once the guest_memfd is closed
        uint64_t pgoff = 0;           // first file page bound to base_gfn
    } gmem;
    // One bit per page while KVM_MEM_LOG_DIRTY_PAGES is set (kvm_alloc_dirty_bitmap()),
    // else empty. mark_page_dirty_in_slot() sets bits from the fault path, which holds
    // the slot const as Linux holds it under SRCU, hence mutable.
    mutable std::vector<uint64_t> dirty_bitmap;

    Gfn end_gfn() const { return base_gfn + npages; }
    bool contains(Gfn g) const { return g >= base_gfn && g < end_gfn(); }
    bool has_gmem() const { return (flags & (1u << 2)) != 0; }   // KVM_MEM_GUEST_MEMFD
    bool gmem_only() const { return (flags & KVM_MEMSLOT_GMEM_ONLY) != 0; }
    Hva gfn_to_hva(Gfn g) const { return userspace_addr + ((g - base_gfn) << kPageShift); }
};

// Which mappings an unmap may touch (KVM_FILTER_SHARED / KVM_FILTER_PRIVATE).
enum class AttrFilter : uint8_t { shared = 1, private_ = 2, both = 3 };

struct kvm_gfn_range {
    const kvm_memory_slot* slot = nullptr;
    Gfn start, end;              // [start, end)
    AttrFilter attr_filter = AttrFilter::both;
    bool may_block = true;
};

// Why an invalidation happened, for results.json.
enum class InvalidateCause : uint8_t { punch_hole, gmem_release, set_attributes, memslot_delete, memslot_move, hva_notifier, other };
const char* invalidate_cause_name(InvalidateCause c);

// What generic KVM needs from the arch MMU (arch/x86/kvm/mmu/mmu.c). Implemented by
// the TDP MMU; unit tests of generic code use a recording fake.
class KvmMmuOps {
public:
    virtual ~KvmMmuOps() = default;
    // kvm_unmap_gfn_range(): zap mappings in range; returns true when a TLB flush is needed.
    virtual bool kvm_unmap_gfn_range(const kvm_gfn_range& range, ExecContext& ctx) = 0;
    // kvm_flush_remote_tlbs(): flush every vCPU's guest translations.
    virtual void kvm_flush_remote_tlbs(ExecContext& ctx) = 0;
    // kvm_arch_flush_shadow_memslot(): zap what a deleted or moved memslot maps (x86: every
    // SPTE of the VM while KVM_X86_QUIRK_SLOT_ZAP_ALL applies, see
    // kvm_memslot_flush_zap_all()).
    virtual void kvm_arch_flush_shadow_memslot(const kvm_memory_slot& slot, ExecContext& ctx) = 0;
    // kvm_memslot_flush_zap_all(): the flush above zaps the whole VM, not only the slot.
    virtual bool kvm_memslot_flush_zap_all() const { return false; }
    // kvm_arch_pre_set_memory_attributes(): called with the range already added to the
    // invalidation; may widen it (x86: the head/tail huge-page frames) and zaps the old
    // mappings. Returns true when a TLB flush is needed. Generic fallback: unmap the range.
    virtual bool kvm_arch_pre_set_memory_attributes(const kvm_gfn_range& range, ExecContext& ctx) {
        return kvm_unmap_gfn_range(range, ctx);
    }
    // kvm_arch_post_set_memory_attributes(): recompute hugepage "mixed" state.
    virtual void kvm_arch_post_set_memory_attributes(const kvm_memory_slot& slot, Gfn start, Gfn end) = 0;
    // kvm_mmu_slot_apply_flags(): KVM_MEM_LOG_DIRTY_PAGES was just turned on (write-protect
    // the slot, split its huge pages) or off (let it map huge again).
    virtual void kvm_mmu_slot_apply_flags(const kvm_memory_slot&, uint32_t /*old_flags*/, ExecContext&) {}
    // kvm_arch_mmu_enable_log_dirty_pt_masked(): write-protect the pages of `mask` (bit i =
    // page gfn_offset + i of the slot) so their next write is logged again.
    virtual void kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot&, uint64_t /*gfn_offset*/,
                                                         uint64_t /*mask*/, ExecContext&) {}
    // Called after a memslot is created (lpage_info allocation).
    virtual void kvm_arch_create_memslot(const kvm_memory_slot& slot) = 0;
    virtual void kvm_arch_free_memslot(const kvm_memory_slot& slot) = 0;
    // Running count of SPTEs zapped, so callers can report what one invalidation did.
    virtual uint64_t sptes_zapped_total() const = 0;
};

}  // namespace hvsim::kvm
