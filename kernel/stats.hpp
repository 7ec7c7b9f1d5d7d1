// Plain counters of the simulated KVM and the VMM process; sim/ formats them into
// results.json (metrics and the "invalidations" list). Models never format output.
#pragma once

#include <cstdint>
#include <vector>

#include "kernel/kvm_host.hpp"

namespace hvsim::kvm {

const char* attr_filter_name(AttrFilter f);   // "shared" / "private" / "both"

// One gfn range an invalidation asked the MMU to zap, and what it zapped there.
struct ZapRange {
    int32_t memslot = -1;            // slot id; -1: every slot (a whole-VM zap)
    uint16_t as_id = 0;
    uint64_t start_gfn = 0, end_gfn = 0;   // [start, end)
    uint64_t pages_zapped = 0;       // leaf SPTEs cleared by this range
};

// One MMU invalidation (kvm_mmu_invalidate_begin .. end) as results.json lists it.
struct InvalidationRecord {
    // The union the invalidation protected from faults (kvm->mmu_invalidate_range_start
    // .. end when it finished: every range added, huge-page frames widened in included).
    uint64_t start_gfn = 0;
    uint64_t end_gfn = 0;            // (exclusive)
    std::vector<ZapRange> ranges;    // one entry per range zapped, in order
    InvalidateCause cause = InvalidateCause::other;
    AttrFilter attr_filter = AttrFilter::both;
    uint64_t sptes_zapped = 0;       // KvmMmuOps::sptes_zapped_total() after - before
    bool flush_remote = false;       // kvm_flush_remote_tlbs() was called
    Cycles cycles = 0;               // cycles charged from begin to end
};

struct KvmStats {
    // memslots (kvm_set_memslot by change type)
    uint64_t memslot_create = 0, memslot_delete = 0, memslot_move = 0, memslot_flags_only = 0;
    // guest_memfd
    uint64_t gmem_created = 0, gmem_released = 0;
    uint64_t gmem_pages_allocated = 0, gmem_pages_freed = 0, gmem_pages_zeroed = 0;
    uint64_t gmem_huge_folios = 0;   // folios of order > 0 allocated (gmem.max_order)
    uint64_t gmem_get_pfn = 0, gmem_punch_hole = 0, gmem_fallocate = 0;
    // attributes / conversions
    uint64_t attr_set_calls = 0;         // accepted set_memory_attributes(2) calls
    uint64_t attr_noop = 0;              // ... that changed nothing (no invalidation)
    uint64_t pages_to_private = 0, pages_to_shared = 0;
    uint64_t conversion_eagain = 0;
    uint64_t policy_pages_zeroed = 0, policy_pages_preserved = 0, policy_pages_filled = 0;
    uint64_t host_pages_unmapped = 0;    // host mmap PTEs dropped before to-private
    // dirty logging
    uint64_t dirty_log_gets = 0, dirty_log_clears = 0;
    // legacy SEV pinning
    uint64_t sev_regions = 0;
    uint64_t sev_pages_pinned = 0, sev_pages_pinned_peak = 0;
    // MMU invalidations, in order
    std::vector<InvalidationRecord> invalidations;
};

struct ProcessStats {
    uint64_t anon_pages_allocated = 0, anon_pages_freed = 0;
    uint64_t thp_allocated = 0;          // 2 MiB anonymous folios
    uint64_t host_faults = 0, host_sigbus = 0;
    uint64_t host_rmp_faults = 0;   // stores refused by the host CPU's RMP check (#PF, X86_PF_RMP)
    uint64_t gup_pages = 0, pins = 0, unpins = 0;
    uint64_t mmaps = 0, munmaps = 0;
};

}  // namespace hvsim::kvm
