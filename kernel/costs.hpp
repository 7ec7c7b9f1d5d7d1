// Cycle costs of the simulated KVM's steps. Field names are the platform preset's
// `cost.<field>` keys; sim/machine.cpp fills them from the preset (which names each value's
// source or says `estimate`). The defaults are the zen4-genoa preset's values, so unit tests
// use the same cost table as runs (tests/sim checks that the two agree).
#pragma once

#include "models/common/types.hpp"

namespace hvsim::kvm {

struct KvmCosts {
    Cycles ioctl = 1000;                // syscall entry/exit + ioctl dispatch (estimate)
    Cycles memslot_update = 5000;     // new memslot array, SRCU synchronize (estimate)
    Cycles gmem_create = 8000;         // anon inode + file + fd (estimate)
    Cycles page_alloc = 400;           // one 4 KiB page from the buddy allocator (estimate)
    Cycles page_free = 150;            // one 4 KiB page back to the buddy allocator (estimate)
    Cycles zero_4k = 600;              // clear_highpage(): 4 KiB of stores (estimate)
    Cycles fill_4k = 600;              // memset of a 4 KiB page (sw_protected 0xab policy; estimate)
    Cycles copy_4k = 700;              // copy of a 4 KiB page (estimate)
    Cycles gmem_get_pfn = 300;         // filemap lookup + folio lock in kvm_gmem_get_pfn (estimate)
    Cycles attr_update = 400;           // one xarray store (per gfn) / one maple-tree range store (estimate)
    Cycles mmu_lock = 60;              // uncontended mmu_lock / filemap_invalidate_lock (estimate)
    Cycles pin_page = 250;             // pin_user_pages per page (estimate)
    Cycles clflush_4k = 600;           // flushing one 4 KiB page from the caches (estimate)
    Cycles tlb_flush_local = 300;      // INVLPGA/INVEPT on this CPU (estimate; charged by the MMU)
    Cycles tlb_flush_remote_ipi = 3000;// remote TLB shootdown IPI round trip (estimate; charged by the MMU)
    Cycles host_fault = 1500;          // host page fault on a VMM mapping, excluding zeroing (estimate)
    Cycles gup_page = 300;             // get_user_pages fast path per page (estimate)
    Cycles mmap = 2000;                // mmap/munmap syscall (estimate)
    Cycles host_unmap_page = 100;      // zapping one host PTE in unmap_mapping_range (estimate)
    Cycles wbinvd = 100000;            // WBINVD on all CPUs at SEV region unregister (estimate)
    // The x86 TDP MMU (kernel/mmu/, charged there).
    Cycles kvm_mmu_page_fault = 400;  // NPF/EPT-violation exit handling up to the fault path (estimate)
    Cycles spte_write = 40;            // one SPTE store (estimate)
    Cycles sp_alloc = 500;             // a shadow page-table page: allocation + clear (estimate)
    Cycles zap_spte = 30;              // clearing one SPTE during a zap (estimate)
    // vCPU exits and entries (charged by the vCPU / VMM model).
    Cycles vmexit = 680;               // hardware exit to KVM (estimate)
    Cycles vmentry = 680;              // VMRUN/VMRESUME back into the guest (estimate)
    Cycles userspace_exit = 15000;      // KVM_RUN return to the VMM and re-entry (estimate)
    Cycles hypercall = 300;            // hypercall decode in KVM (estimate)
    Cycles guest_pf = 1500;             // guest #PF delivery and handling in the guest kernel (estimate)
    Cycles zero_2m = 300000;           // clearing a 2 MiB page (estimate)
    Cycles split_huge_page = 20480;    // tdp_mmu_split_huge_page(): 512 child SPTEs (estimate)
    Cycles srcu_poll = 100;            // time between a waiting synchronize_srcu()'s looks at readers
};

}  // namespace hvsim::kvm
