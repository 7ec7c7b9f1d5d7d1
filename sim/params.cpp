#include "sim/params.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "kernel/uapi.hpp"
#include "sim/json_util.hpp"

namespace hvsim {

namespace {

constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20, GiB = 1ull << 30;

// Sources used by several declarations.
const char* const kSim = "simulator setting";
const char* const kKernelDefault =
    "simulator default: a distribution kernel on a host with hardware virtualisation, everything on (docs/design.md)";
const char* const kExitSplit =
    "measured round trip, split estimate: 1,344-1,376-cycle trivial VMRUN/#VMEXIT round trip on an AMD CPU, "
    "LKML Dec 2020 (docs/sources.md §6, §2), halved";

const char* const kLinux618 = "kvm.profile linux-6.18 (upstream Linux 6.18, the project's host kernel)";

ParamDecl make(std::string name, ParamType type, std::string unit, int64_t min, int64_t max,
               nlohmann::json def, std::string desc, std::string source) {
    ParamDecl d;
    d.name = std::move(name);
    d.type = type;
    d.unit = std::move(unit);
    d.min = min;
    d.max = max;
    d.default_value = std::move(def);
    d.description = std::move(desc);
    d.default_source = std::move(source);
    // Hardware and cost values belong to a platform; the kernel configuration, the host
    // memory layout and simulator settings do not.
    for (const char* p : {"cpu.", "mem.", "mmu.", "cost."})
        if (d.name.rfind(p, 0) == 0) d.platform_dependent = true;
    return d;
}

// A cost is at most 2^32 - 1 cycles (1.4 s at 3 GHz for one event): simulated time is a
// 64-bit count of picoseconds, and a run must not be able to overflow it.
constexpr int64_t kMaxCostCycles = (int64_t(1) << 32) - 1;

ParamDecl cycles(std::string name, int64_t def, std::string desc, std::string source) {
    return make(std::move(name), ParamType::integer, "cycles", 0, kMaxCostCycles, def, std::move(desc),
                std::move(source));
}

ParamDecl count(std::string name, std::string unit, int64_t min, int64_t max, int64_t def, std::string desc,
                std::string source) {
    return make(std::move(name), ParamType::integer, std::move(unit), min, max, def, std::move(desc), std::move(source));
}

ParamDecl bytes(std::string name, uint64_t min, uint64_t def, std::string desc, std::string source,
                int64_t max = INT64_MAX) {
    return make(std::move(name), ParamType::size, "bytes", int64_t(min), max, def, std::move(desc), std::move(source));
}

// The largest cache level the model holds: 4 Mi lines of 64 bytes, 48 MiB of tags and LRU
// state per vCPU (mapped as sets are touched).
constexpr int64_t kMaxCacheBytes = int64_t(256) << 20;

ParamDecl flag(std::string name, bool def, std::string desc, std::string source = kKernelDefault) {
    return make(std::move(name), ParamType::boolean, "", 0, 0, def, std::move(desc), std::move(source));
}

std::vector<ParamDecl> build_decls() {
    std::vector<ParamDecl> v;
    // ---- CPU and simulation ----
    v.push_back(count("cpu.freq_mhz", "MHz", 1, 100000, 3000, "core clock; converts cycles to time in reports",
                      "estimate (docs/sources.md §1 assumes 3.0 GHz)"));
    v.push_back(cycles("cpu.data_access_cycles", 4,
                       "cost of a guest data access whose translation hits the L1 TLB (an L1D hit)",
                       "estimate (L1D hit, docs/sources.md §2)"));
    v.push_back(count("sim.quantum_ns", "ns", 1, 1000000000, 1000,
                      "temporal-decoupling quantum of the SystemC quantum keeper (not a hardware value)", kSim));
    v.push_back(count("sim.max_accesses", "accesses", 1, INT64_MAX, int64_t(1) << 34,
                      "a scenario whose access steps make more guest accesses than this in all is refused before "
                      "it runs, with an estimate of its host time (2^34: a few minutes at 20-50 M accesses per "
                      "host second); raise it to run longer",
                      kSim));
    v.push_back(count("sim.max_host_pages", "pages", 1, INT64_MAX, int64_t(1) << 22,
                      "a host write or pin (host step or SEV region registration) that backs more 4 KiB pages than "
                      "this one by one is refused before the run, with an estimate of its host memory (about 200 "
                      "bytes of bookkeeping per page; 2^22 pages = 16 GiB simulated, under 1 GB of host memory)",
                      kSim));

    // ---- memory hierarchy (models/mem CacheHierarchy) ----
    {
        auto d = count("mem.line_bytes", "bytes", 16, 4096, 64, "cache line size",
                       "architecture (64-byte lines on Zen 4, Golden Cove and Neoverse N2)");
        d.power_of_two = true;
        v.push_back(d);
    }
    v.push_back(bytes("mem.l1d.size", 1, 32 * KiB, "L1 data cache capacity",
                      "estimate (Zen 4 32 KiB L1D, recalled)", kMaxCacheBytes));
    v.push_back(count("mem.l1d.ways", "ways", 1, 1024, 8, "L1D associativity", "estimate"));
    v.push_back(cycles("mem.l1d.hit_cycles", 4, "load-to-use latency of an L1D hit",
                       "estimate (docs/sources.md §2: AMD SOG value, not retrieved)"));
    v.push_back(bytes("mem.l2.size", 1, 1 * MiB, "L2 cache capacity (per core)",
                      "Geekbench-leak article (docs/sources.md §5: Zen 4 1 MB L2 per core)", kMaxCacheBytes));
    v.push_back(count("mem.l2.ways", "ways", 1, 1024, 8, "L2 associativity", "estimate"));
    v.push_back(cycles("mem.l2.hit_cycles", 14, "latency of an L2 hit", "estimate (docs/sources.md §2)"));
    v.push_back(bytes("mem.llc.size", 1, 32 * MiB, "last-level cache capacity",
                      "Geekbench-leak article (docs/sources.md §5: Zen 4 32 MB L3 per CCD)", kMaxCacheBytes));
    v.push_back(count("mem.llc.ways", "ways", 1, 1024, 16, "LLC associativity", "estimate"));
    v.push_back(cycles("mem.llc.hit_cycles", 50, "latency of an LLC hit", "estimate (docs/sources.md §2)"));
    v.push_back(cycles("mem.encrypt_fill_cycles", 10,
                       "extra latency of a DRAM fill (demand or prefetch) of a line encrypted with a guest's key, "
                       "in the memory controller's AES engine: SEV/SEV-ES memory registered with "
                       "KVM_MEMORY_ENCRYPT_REG_REGION, SNP pages the RMP assigns to the guest, TD private pages "
                       "(MKTME with the TD's private KeyID); none for plain VMs, sw_protected and pKVM",
                       "estimate"));
    v.push_back(cycles("mem.dram_cycles", 360, "latency of a DRAM access (local, no contention)",
                       "estimate (docs/sources.md §2: about 120 ns DDR5)"));
    {
        auto d = make("mem.dram.model", ParamType::string, "", 0, 0, "fixed",
                      "DRAM behind the LLC: fixed (every line fill costs mem.dram_cycles) or ddr5 (open-page "
                      "bank/row-buffer model from mem.dram.t_rcd_ps, t_rp_ps, t_cl_ps, banks, page_bytes)",
                      kSim);
        d.choices = {"fixed", "ddr5"};
        v.push_back(d);
    }
    // DDR5-4800B, speed bin 40-39-39 (JEDEC JESD79-5), tCK = 416.67 ps.
    v.push_back(make("mem.dram.t_cl_ps", ParamType::integer, "ps", 1, 1000000, 16667,
                     "ddr5: CAS latency (read to data), row already open",
                     "estimate (JESD79-5 DDR5-4800B CL 40 x 416.67 ps, recalled)"));
    v.push_back(make("mem.dram.t_rcd_ps", ParamType::integer, "ps", 1, 1000000, 16250,
                     "ddr5: activate to read (opening a row)",
                     "estimate (JESD79-5 DDR5-4800B tRCD 39 x 416.67 ps, recalled)"));
    v.push_back(make("mem.dram.t_rp_ps", ParamType::integer, "ps", 1, 1000000, 16250,
                     "ddr5: precharge (closing the open row of a bank)",
                     "estimate (JESD79-5 DDR5-4800B tRP 39 x 416.67 ps, recalled)"));
    {
        auto d = count("mem.dram.banks", "banks", 1, 4096, 32, "ddr5: banks the rows are interleaved over",
                       "estimate (JESD79-5: 32 banks in 8 bank groups per DDR5 device, one rank)");
        d.power_of_two = true;
        v.push_back(d);
        auto pg = count("mem.dram.page_bytes", "bytes", 64, 1 << 20, 4096, "ddr5: row (page) size of one bank",
                        "estimate (JESD79-5: 1 KiB page per x8 device, 4 devices on a 32-bit subchannel)");
        pg.power_of_two = true;
        v.push_back(pg);
    }

    // ---- host physical memory (models/mem HostPageAllocator) ----
    {
        auto d = bytes("host.mem_base", 0, 4 * GiB, "lowest host physical address the page allocator hands out", kSim);
        d.multiple_of = GiB;
        v.push_back(d);
        auto s = bytes("host.mem_size", GiB, 512 * GiB, "host physical memory the page allocator hands out", kSim);
        s.multiple_of = GiB;
        v.push_back(s);
        v.push_back(flag("host.thp", true,
                         "transparent huge pages back the VMM's anonymous guest RAM (2 MiB folios on first touch, "
                         "as QEMU's MADV_HUGEPAGE gets on a distribution kernel)",
                         kSim));
    }

    // ---- translation hardware (models/mmu) ----
    {
        auto d = make("mmu.nested_format", ParamType::string, "", 0, 0, "npt",
                      "nested table format: npt (AMD, x86 PTE format), ept (Intel), stage2 (arm64)",
                      "architecture (AMD NPT on Zen 4)");
        d.choices = {"npt", "ept", "stage2"};
        v.push_back(d);
    }
    v.push_back(count("mmu.nested_levels", "levels", 2, 5, 4,
                      "levels of the nested table (npt/ept: 4 or 5; stage2: 2..4)", "architecture (4-level NPT)"));
    v.push_back(count("mmu.l1_tlb.entries", "entries", 1, 1 << 20, 72, "L1 DTLB entries (4K/2M/1G)",
                      "estimate (docs/sources.md §2: Zen 4 L1 DTLB, AMD SOG recalled)"));
    v.push_back(count("mmu.l1_tlb.ways", "ways", 1, 1 << 20, 72,
                      "L1 DTLB associativity (ways == entries: fully associative)",
                      "estimate (docs/sources.md §2: fully associative)"));
    v.push_back(cycles("mmu.l1_tlb.hit_cycles", 0, "extra cycles of an L1 DTLB hit", "estimate (docs/sources.md §2)"));
    v.push_back(count("mmu.l2_tlb.entries", "entries", 1, 1 << 20, 3072, "L2 DTLB entries (4K/2M; 1G kept as 2M)",
                      "estimate (docs/sources.md §2: Zen 4 L2 DTLB, AMD SOG recalled)"));
    v.push_back(count("mmu.l2_tlb.ways", "ways", 1, 1 << 20, 12, "L2 DTLB associativity",
                      "estimate (Zen 2 L2 DTLB is 12-way, WikiChip; docs/sources.md §5)"));
    v.push_back(cycles("mmu.l2_tlb.hit_cycles", 7, "extra cycles of an L1 DTLB miss that hits the L2 DTLB",
                       "estimate (docs/sources.md §2)"));
    v.push_back(count("mmu.pwc.entries", "entries", 0, 1 << 20, 64,
                      "page-walk cache entries (upper-level entries of both dimensions; 0: no page-walk cache)",
                      "estimate (docs/sources.md §2; concept: Bhargava et al. 2008)"));
    v.push_back(count("mmu.pwc.ways", "ways", 1, 1 << 20, 64, "page-walk cache associativity",
                      "estimate (fully associative)"));
    v.push_back(cycles("mmu.pwc.hit_cycles", 2, "latency of a page-walk cache hit", "estimate (docs/sources.md §2)"));
    v.push_back(count("mmu.ntlb.entries", "entries", 0, 1 << 20, 32,
                      "nested TLB entries (gPA->hPA of guest page-table pages; 0: no nested TLB)",
                      "estimate (docs/sources.md §2)"));
    v.push_back(count("mmu.ntlb.ways", "ways", 1, 1 << 20, 32, "nested TLB associativity",
                      "estimate (fully associative)"));
    v.push_back(cycles("mmu.ntlb.hit_cycles", 2, "latency of a nested TLB hit", "estimate (docs/sources.md §2)"));

    // ---- software and transition costs (kernel/costs.hpp) ----
    v.push_back(cycles("cost.vmexit", 680, "guest -> host world switch (#VMEXIT / VM exit), half a trivial round trip",
                       kExitSplit));
    v.push_back(cycles("cost.vmentry", 680, "host -> guest world switch (VMRUN / VM entry), half a trivial round trip",
                       kExitSplit));
    v.push_back(cycles("cost.userspace_exit", 15000, "KVM_RUN returns to the VMM and is called again",
                       "estimate (docs/sources.md §2)"));
    v.push_back(cycles("cost.ioctl", 1000, "syscall entry and ioctl dispatch", "estimate"));
    v.push_back(cycles("cost.kvm_mmu_page_fault", 400, "TDP fault handler entry (kvm_mmu_page_fault) before faultin",
                       "estimate"));
    v.push_back(cycles("cost.gup_fast", 300, "hva -> pfn lookup for a non-guest_memfd slot (get_user_pages_fast)",
                       "estimate"));
    v.push_back(cycles("cost.page_alloc", 400, "allocate a 4 KiB page", "estimate"));
    v.push_back(cycles("cost.zero_4k", 600, "zero a 4 KiB page (about 200 ns at 20 GB/s)", "estimate"));
    v.push_back(cycles("cost.zero_2m", 300000, "zero a 2 MiB folio",
                       "estimate (docs/sources.md §2: about 100 us at 20 GB/s)"));
    v.push_back(cycles("cost.copy_4k", 700, "copy a 4 KiB page", "estimate"));
    v.push_back(cycles("cost.gmem_get_pfn", 300,
                       "kvm_gmem_get_pfn: find the folio in the guest_memfd page cache (allocation and zeroing extra)",
                       "estimate"));
    v.push_back(cycles("cost.spte_write", 40, "write one SPTE (TDP MMU atomic update)", "estimate"));
    v.push_back(cycles("cost.sp_alloc", 500, "allocate and zero a page-table page for the TDP MMU", "estimate"));
    v.push_back(cycles("cost.zap_spte", 30, "clear one SPTE in a zap", "estimate"));
    v.push_back(cycles("cost.mmu_lock", 60, "take and release mmu_lock", "estimate"));
    v.push_back(cycles("cost.tlb_flush_local", 300, "flush the VM's translations on this CPU", "estimate"));
    v.push_back(cycles("cost.tlb_flush_remote_ipi", 3000,
                       "kvm_flush_remote_tlbs(): IPI round trip the requester waits for, paid once (the IPIs to "
                       "every vCPU in guest mode go out in parallel); kicked vCPUs pay cost.vmexit + "
                       "cost.tlb_flush_local + cost.vmentry themselves",
                       "estimate"));
    v.push_back(cycles("cost.attr_update", 400, "per range stored in a memory-attribute range map", "estimate"));
    v.push_back(cycles("cost.memslot_update", 5000, "install a new memslot array and synchronize_srcu", "estimate"));
    v.push_back(cycles("cost.guest_pf", 1500, "guest #PF handler installing a guest PTE (arm64: the guest kernel's stage-1 translation fault, a data abort taken to its own EL1)", "estimate"));
    v.push_back(cycles("cost.hypercall", 300, "kernel-side handling of a VMMCALL/VMCALL (exit not included)",
                       "estimate"));
    v.push_back(cycles("cost.pin_page", 250, "FOLL_LONGTERM pin of one 4 KiB page", "estimate"));
    v.push_back(cycles("cost.clflush_4k", 600, "CLFLUSH of a 4 KiB page (SEV/SNP reclaim)",
                       "estimate (docs/sources.md §2)"));
    // Intel TDX (kernel/vmx/tdx.hpp TdxCosts): charged only by TDX VMs.
    v.push_back(cycles("cost.tdx_seamcall", 2000, "TDX: SEAMCALL + SEAMRET round trip of a minimal leaf, added to "
                       "each leaf's own cost", "estimate"));
    v.push_back(cycles("cost.tdx_sept_add", 3000, "TDX: TDH.MEM.SEPT.ADD (link a secure EPT page)", "estimate"));
    v.push_back(cycles("cost.tdx_page_aug", 3000, "TDX: TDH.MEM.PAGE.AUG of a 4 KiB page (PENDING)", "estimate"));
    v.push_back(cycles("cost.tdx_range_block", 2500, "TDX: TDH.MEM.RANGE.BLOCK", "estimate"));
    v.push_back(cycles("cost.tdx_track", 2000, "TDX: TDH.MEM.TRACK (advance the TD epoch)", "estimate"));
    v.push_back(cycles("cost.tdx_page_remove", 2500, "TDX: TDH.MEM.PAGE.REMOVE", "estimate"));
    v.push_back(cycles("cost.tdx_wbinvd", 3000, "TDX: TDH.PHYMEM.PAGE.WBINVD of a 4 KiB page", "estimate"));
    v.push_back(cycles("cost.tdx_td_exit", 4600, "TDX: a TD exit through the TDX module (state save, SEAMRET to "
                       "KVM); replaces cost.vmexit for a TD vCPU", "estimate"));
    v.push_back(cycles("cost.tdx_td_entry", 2600, "TDX: the TDH.VP.ENTER leaf (state restore, entry), on top of "
                       "cost.tdx_seamcall; the two replace cost.vmentry for a TD vCPU", "estimate"));
    v.push_back(cycles("cost.tdx_ve", 1500, "TDX: #VE delivered by the module and the guest's handler (no exit)",
                       "estimate"));
    v.push_back(cycles("cost.tdx_page_add", 5000, "TDX: TDH.MEM.PAGE.ADD of a 4 KiB page at TD build time (copy "
                       "the source into the TD under its key)", "estimate"));
    v.push_back(cycles("cost.tdx_mr_extend", 185500, "TDX: TDH.MR.EXTEND of 256 bytes (16 per measured 4 KiB page), "
                       "on top of cost.tdx_seamcall",
                       "KVM list, \"KVM: x86/mmu: TDX post-populate cleanups\" v3 15/25 changelog: about 1 ms to "
                       "measure a 4 KiB page"));
    v.push_back(cycles("cost.tdx_accept_4k", 6000, "TDX: the guest's TDG.MEM.PAGE.ACCEPT of 4 KiB (TDCALL round "
                       "trip, the module zeroes the page with the TD's key)", "estimate"));
    v.push_back(cycles("cost.tdx_idle_tick", 2270,
                       "TDX: an idle vCPU's tick beyond its TD exit and TDH.VP.ENTER (KVM's HLT emulation and "
                       "wake-up, the guest's tick handler); charged to private faults that wait for idle vCPUs' "
                       "ticks (tdx.idle_tick_hz)",
                       "estimate"));
    v.push_back(cycles("cost.tdx_page_aug_2m", 7000, "TDX: TDH.MEM.PAGE.AUG of a 2 MiB page (PENDING; the module "
                       "checks the 512 4K PAMT entries of the range), kvm.config.tdx_huge_private",
                       "estimate"));
    v.push_back(cycles("cost.tdx_demote", 10000, "TDX: TDH.MEM.PAGE.DEMOTE of a blocked 2 MiB leaf into a new "
                       "secure EPT page of 512 4K entries (and 512 4K PAMT entries), kvm.config.tdx_huge_private",
                       "estimate"));
    v.push_back(cycles("cost.tdx_vp_flush", 2000, "TDX: TDH.VP.FLUSH at teardown (the vCPU's TD VMCS and cached "
                       "state flushed on its CPU, the vCPU dissociated)", "estimate"));
    v.push_back(cycles("cost.tdx_vpflushdone", 500, "TDX: TDH.MNG.VPFLUSHDONE at teardown (no vCPU associated; the "
                       "TD's key is blocked)", "estimate"));
    v.push_back(cycles("cost.tdx_cache_wb", 1000000, "TDX: TDH.PHYMEM.CACHE.WB at teardown (write back and "
                       "invalidate the package's caches, a WBINVD, so the TD's HKID can be freed)", "estimate"));
    v.push_back(cycles("cost.tdx_key_freeid", 1000, "TDX: TDH.MNG.KEY.FREEID at teardown (the TD's HKID freed)",
                       "estimate"));
    v.push_back(cycles("cost.tdx_reclaim", 2500, "TDX: TDH.PHYMEM.PAGE.RECLAIM of one page after the HKID is free "
                       "(its PAMT entry back to NDA)", "estimate"));
    v.push_back(count("tdx.idle_tick_hz", "Hz", 0, 100000, 0,
                      "TDX: ticks per second each idle TD vCPU takes (the guest's periodic tick, Linux HZ, when "
                      "the tick is not stopped in idle); 0: idle vCPUs take no ticks. A private fault of a busy "
                      "vCPU waits for the ticks' TD exits and entries (serialized with it, an estimate)",
                      "Dstack-TEE/dstack PR #1220 (HZ=1000; 1.66 M HLT exits per 10 s with 248 idle vCPUs)"));
    // Host-side costs the simulated VMM process and guest_memfd charge (kernel/costs.hpp).
    v.push_back(cycles("cost.gmem_create", 8000, "create a guest_memfd: anonymous inode, file and fd", "estimate"));
    v.push_back(cycles("cost.page_free", 150, "return a 4 KiB page to the buddy allocator", "estimate"));
    v.push_back(cycles("cost.fill_4k", 600, "fill a 4 KiB page with a pattern (content policy NONE on sw_protected)",
                       "estimate (as cost.zero_4k)"));
    v.push_back(cycles("cost.host_fault", 1500, "host page fault on a VMM mapping, zeroing not included", "estimate"));
    v.push_back(cycles("cost.mmap", 2000, "mmap/munmap system call", "estimate"));
    v.push_back(cycles("cost.host_unmap_page", 100, "zap one host PTE (unmap_mapping_range)", "estimate"));
    v.push_back(cycles("cost.wbinvd", 100000, "WBINVD on all CPUs (SEV region unregister)", "estimate"));
    v.push_back(cycles("cost.split_huge_page", 20480,
                       "tdp_mmu_split_huge_page(): fill a new table with the 512 SPTEs of a split huge leaf "
                       "(the table page itself is cost.sp_alloc)",
                       "estimate (512 SPTE stores at cost.spte_write)"));
    v.push_back(cycles("cost.srcu_poll", 100,
                       "simulated time a waiting synchronize_srcu() lets pass between looks at the readers "
                       "(the grace period's own cost is cost.memslot_update)",
                       "estimate"));
    v.push_back(cycles("cost.guest_clear_page", 256,
                       "the guest kernel's clear_page() of a new guest page-table page (64 line stores)",
                       "estimate (64 L1D-hit stores of cpu.data_access_cycles)"));
    v.push_back(cycles("cost.wide_store_line", 4,
                       "each 64-byte line after the first of a guest store wider than a line (a string store)",
                       "estimate (one L1D-hit store, as cpu.data_access_cycles)"));

    // ---- the simulated kernel's configuration (kernel/kvm_config.hpp) ----
    v.push_back(flag("kvm.config.smm", true, "CONFIG_KVM_SMM: address space 1 exists for VMs without private memory"));
    v.push_back(flag("kvm.config.sw_protected_vm", true, "CONFIG_KVM_SW_PROTECTED_VM: KVM_X86_SW_PROTECTED_VM can be created"));
    v.push_back(flag("kvm.config.generic_memory_attributes", true,
                     "CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES: KVM_SET_MEMORY_ATTRIBUTES exists (else ENOTTY)"));
    v.push_back(flag("kvm.config.tdp", true,
                     "two-dimensional paging (npt/ept); false: shadow paging, KVM_PRE_FAULT_MEMORY unsupported"));
    v.push_back(flag("kvm.config.sev", true, "KVM_X86_SEV_VM supported"));
    v.push_back(flag("kvm.config.sev_es", true, "KVM_X86_SEV_ES_VM supported"));
    v.push_back(flag("kvm.config.snp", true, "KVM_X86_SNP_VM supported"));
    v.push_back(flag("kvm.config.tdx", true, "KVM_X86_TDX_VM supported"));
    v.push_back(flag("kvm.config.pkvm", true, "arm64 pKVM protected VMs (KVM_VM_TYPE_ARM_PROTECTED) supported"));
    v.push_back(flag("kvm.config.guest_memfd", true, "CONFIG_KVM_GUEST_MEMFD: KVM_CREATE_GUEST_MEMFD"));
    v.push_back(flag("kvm.config.guest_memfd_mmap", true, "GUEST_MEMFD_FLAG_MMAP supported"));
    v.push_back(flag("kvm.config.guest_memfd_init_shared", true, "GUEST_MEMFD_FLAG_INIT_SHARED supported"));
    v.push_back(flag("kvm.config.readonly_mem", true, "KVM_MEM_READONLY supported"));
    v.push_back(flag("kvm.config.exit_hypercall", true, "KVM_CAP_EXIT_HYPERCALL: KVM_HC_MAP_GPA_RANGE exits to userspace"));
    // The keys a kernel profile sets (kvm.profile) default to the linux-6.18 profile.
    v.push_back(flag("kvm.config.memory_attributes2", false,
                     "KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd (in-place conversion proposal, the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series; "
                     "kvm.profile inplace)",
                     kLinux618));
    v.push_back(flag("kvm.config.vm_memory_attributes", true,
                     "kvm.vm_memory_attributes module parameter: true keeps attributes per VM (Linux today), "
                     "false per guest_memfd (in-place conversion; kvm.profile inplace)",
                     kLinux618));
    v.push_back(flag("kvm.config.gmem_bind_eexist", false,
                     "a second binding of a guest_memfd range fails with EEXIST (Linux 7.2) instead of EINVAL "
                     "(kvm_gmem_bind)",
                     kLinux618));
    v.push_back(flag("kvm.config.tdx_page_add_in_map", false,
                     "KVM_TDX_INIT_MEM_REGION issues TDH.MEM.PAGE.ADD inside the mirror update (Linux 6.19, "
                     "\"KVM TDX changes for 6.19\") instead of mapping first and counting nr_premapped (6.18)",
                     kLinux618));
    v.push_back(flag("kvm.config.tdx_huge_private", false,
                     "TDX: map TD private memory at 2 MiB where the guest_memfd folio is 2 MiB and the attributes "
                     "are uniform (TDH.MEM.PAGE.AUG at 2M, TDH.MEM.PAGE.DEMOTE before a 4K-granular zap); needs "
                     "gmem.max_order = 9; false: 4K only, as released Linux [PROPOSED]",
                     "the TDX huge page series (\"TDX: Dynamic PAMT + S-EPT Hugepage\", LKML RFC v5, 2026-01-28), "
                     "not merged as of 7.2"));
    {
        std::vector<std::string> names;
        for (const auto& p : kernel_profiles()) names.push_back(p.name);
        auto d = make("kvm.profile", ParamType::string, "", 0, 0, names.front(),
                      "kernel profile: a named set of kvm.config.* values (hvsim params lists them); explicit "
                      "kvm.config.* parameters override it",
                      "the host kernel of the project's machines (Linux 6.18.44; docs/ground-truth.md)");
        d.choices = names;
        v.push_back(d);
    }
    v.push_back(flag("kvm.config.quirk_slot_zap_all", true,
                     "KVM_X86_QUIRK_SLOT_ZAP_ALL: deleting or moving a memslot of a default VM zaps every SPTE "
                     "of the VM; false = the VMM disabled it (KVM_CAP_DISABLE_QUIRKS2), only the slot is zapped",
                     "arch/x86/kvm/mmu/mmu.c kvm_memslot_flush_zap_all(): the quirk is on unless disabled"));
    v.push_back(count("kvm.config.maxphyaddr", "bits", 32, 52, 52,
                      "guest physical address width the MMU accepts (a memslot ending above 2^bits: EINVAL)",
                      "architecture (x86 MAXPHYADDR <= 52; checked against a real 6.18 kernel, docs/ground-truth.md)"));
    v.push_back(count("kvm.config.nr_memslots", "slots", 1, int64_t(uapi::KVM_USER_MEM_SLOTS),
                      int64_t(uapi::KVM_USER_MEM_SLOTS), "KVM_CAP_NR_MEMSLOTS (KVM_USER_MEM_SLOTS on x86)",
                      "include/linux/kvm_host.h KVM_USER_MEM_SLOTS, 32764 on x86 (checked on Linux 6.18)"));
    {
        auto d = bytes("kvm.config.memlock_limit", 0, 0,
                       "RLIMIT_MEMLOCK of the VMM: SEV region pinning and the pages pKVM's protected VMs hold "
                       "(account_locked_vm()); 0 or \"unlimited\": no limit", kSim);
        d.unlimited = true;
        v.push_back(d);
    }
    v.push_back(count("gmem.max_order", "order", 0, 9, 0,
                      "largest guest_memfd folio order: 0 = order-0 (4 KiB) folios as upstream; 9 = 2 MiB folios, "
                      "naturally aligned in the file and in host memory, so private memory can be mapped (and on "
                      "SNP RMP-assigned) at 2 MiB [PROPOSED]",
                      "upstream virt/kvm/guest_memfd.c allocates order-0 folios; 2 MiB folios follow the "
                      "guest_memfd HugeTLB support series (\"KVM: guest_memfd: Support HugeTLB\", LKML)"));
    // ---- SEV-SNP: the RMP (models/rmp), KVM's SNP backend (kernel/svm), the guest's side ----
    v.push_back(flag("rmp.enabled", true,
                     "an snp VM on an AMD preset runs with the Reverse Map Table: RMP checks on TLB fills, "
                     "RMPUPDATE/PSMASH from KVM, PVALIDATE from the guest; false: plain nested paging (no RMP)",
                     "architecture (AMD APM vol. 2 §15.36: SEV-SNP is enforced by the RMP)"));
    v.push_back(count("rmp.cache.entries", "entries", 0, 1 << 20, 0,
                      "what-if RMP entry cache in front of the table, fully associative (0: none, as on Zen 4, "
                      "where an RMP check reads the table through the data caches)",
                      "estimate (no RMP-specific cache is documented for Zen 3/Zen 4)"));
    v.push_back(cycles("rmp.cache.hit_cycles", 2, "latency of an RMP cache hit (rmp.cache.entries > 0)",
                       "estimate (as a page-walk cache hit)"));
    {
        auto d = make("snp.accept", ParamType::string, "", 0, 0, "lazy",
                      "how the SNP guest accepts private memory: lazy (on first touch, per 2 MiB unit: #VC, "
                      "page-state change, PVALIDATE) or eager (all RAM at the first touch, as accepting "
                      "everything at boot)",
                      "Linux unaccepted-memory support (mm/page_alloc.c accept_memory, EFI 2 MiB units)");
        d.choices = {"lazy", "eager"};
        v.push_back(d);
    }
    v.push_back(flag("snp.validate_2m", true,
                     "the SNP guest validates 2 MiB-aligned ranges with PVALIDATE 2M first and redoes them as "
                     "512 x 4K on FAIL_SIZEMISMATCH; false: 4K PVALIDATEs only",
                     "arch/x86/coco/sev/core.c pval_pages() / set_pages_state()"));
    {
        auto d = make("snp.psc_protocol", ParamType::string, "", 0, 0, "ghcb",
                      "how the SNP guest asks for page-state changes: ghcb (one VMGEXIT per range of up to 2 MiB, "
                      "the GHCB page-state-change request) or msr (one VMGEXIT per 4K page over the GHCB MSR, as "
                      "early boot code does; each page then validated with PVALIDATE 4K)",
                      "arch/x86/coco/sev/core.c set_pages_state() / early_set_pages_state(); GHCB spec MSR protocol");
        d.choices = {"ghcb", "msr"};
        v.push_back(d);
    }
    v.push_back(cycles("cost.rmpupdate", 1500, "RMPUPDATE of one 4K or 2M RMP entry (host)",
                       "estimate (no published latency)"));
    v.push_back(cycles("cost.snp_launch_update", 90000, "SNP: the SEV firmware's SNP_LAUNCH_UPDATE of one 4 KiB page "
                       "(mailbox round trip to the Secure Processor, SHA-384 and encryption of the page)",
                       "estimate (no published per-page latency)"));
    v.push_back(cycles("cost.psmash", 6000, "PSMASH: split a 2M RMP entry into 512 4K entries (host)",
                       "estimate (no published latency)"));
    v.push_back(cycles("cost.pvalidate_4k", 1200, "PVALIDATE of a 4K page in the guest (translation not included)",
                       "estimate (no published latency)"));
    v.push_back(cycles("cost.pvalidate_2m", 2500, "PVALIDATE of a 2M page in the guest (translation not included)",
                       "estimate (no published latency)"));
    v.push_back(cycles("cost.rmpadjust", 1200,
                       "RMPADJUST of a 4K page in the guest (the VMSA bit of an AP's new VMSA; translation not "
                       "included)",
                       "estimate (no published latency; taken equal to PVALIDATE 4K, which reads and writes the same "
                       "entry)"));
    v.push_back(cycles("cost.snp_vc", 1750, "#VC exception handled inside an SNP guest without a VM exit",
                       "measured: TUM-DSE CVM_eval vmexit benchmark, CPUID from the SNP CPUID table, "
                       "1,745-1,815 cycles"));
    v.push_back(cycles("cost.snp_vmgexit", 7300,
                       "GHCB protocol of a VMGEXIT (non-automatic exit) on top of a plain exit round trip "
                       "(cost.vmexit + cost.vmentry) and the #VC that issues it",
                       "derived: CVM_eval #VC + VMGEXIT + KVM 10,400 cycles - #VC 1,750 - plain round trip 1,360"));
    v.push_back(cycles("cost.snp_ae_exit", 1140,
                       "extra of an SEV-ES/SNP automatic exit (NPF) over a plain one: encrypted VMSA save/restore",
                       "estimate (2,500-cycle AE round trip - 1,360 plain round trip)"));

    {
        auto d = make("s2.granule", ParamType::string, "", 0, 0, "4K",
                      "arm64 presets: the stage-2 translation granule (VTCR_EL2.TG0), which KVM takes from the host's "
                      "PAGE_SIZE: 4K, 16K or 64K; levels and start level follow from it and the IPA size "
                      "(mmu.nested_levels)",
                      "architecture (Arm ARM VMSAv8-64: VTCR_EL2.TG0; arch/arm64/kvm/hyp/pgtable.c kvm_get_vtcr())");
        d.choices = {"4K", "16K", "64K"};
        v.push_back(d);
    }
    // ---- arm64 (mmu.nested_format stage2): the world switch and stage-2 maintenance ----
    v.push_back(cycles("cost.arm64_guest_exit", 2500,
                       "arm64: a guest exit to the host kernel through the EL2 world switch (nVHE: the guest's "
                       "context saved and the host's restored by __kvm_vcpu_run() at EL2, ESR_EL2 decoded by "
                       "handle_exit()); replaces cost.vmexit on arm64 platforms",
                       "estimate"));
    v.push_back(cycles("cost.arm64_guest_entry", 2500,
                       "arm64: the host kernel's HVC into EL2 that enters the guest (__kvm_vcpu_run(): host context "
                       "saved, stage 2 and the guest's context loaded, ERET); replaces cost.vmentry on arm64 platforms",
                       "estimate"));
    v.push_back(cycles("cost.pkvm_hyp_vcpu_sync", 600,
                       "pKVM: per exit of a protected VM to the host, on top of cost.arm64_guest_exit + "
                       "cost.arm64_guest_entry: EL2 runs its own copy of the vCPU and copies state between it and the "
                       "host's (flush_hyp_vcpu() / sync_hyp_vcpu() in arch/arm64/kvm/hyp/nvhe/hyp-main.c)",
                       "estimate"));
    v.push_back(cycles("cost.arm64_s2_pte_write", 20,
                       "arm64: one stage-2 descriptor store by KVM's page-table code (a WRITE_ONCE or store-release "
                       "of the entry; the barriers and TLBIs around it are charged separately)",
                       "estimate"));
    v.push_back(cycles("cost.arm64_tlbi_ipas2e1is", 50,
                       "arm64: issuing TLBI IPAS2E1IS (stage-2 entries of one IPA, broadcast); the wait for the "
                       "other cores is the DSB ISH after it", "estimate"));
    v.push_back(cycles("cost.arm64_tlbi_vmalle1is", 50,
                       "arm64: issuing TLBI VMALLE1IS (every stage-1 and combined entry of the VMID, broadcast)",
                       "estimate"));
    v.push_back(cycles("cost.arm64_tlbi_vmalls12e1is", 100,
                       "arm64: issuing TLBI VMALLS12E1IS (every entry of both stages of the VMID, broadcast: "
                       "__kvm_tlb_flush_vmid(), a table entry's break, a VM's teardown)", "estimate"));
    v.push_back(cycles("cost.arm64_tlbi_local", 30,
                       "arm64: a TLBI of this core only (IPAS2E1 / VMALLE1: __kvm_tlb_flush_vmid_ipa_nsh() after a "
                       "permission relaxation)", "estimate"));
    v.push_back(cycles("cost.arm64_dsb_ish", 600,
                       "arm64: DSB ISH after broadcast TLB maintenance: waits until every core of the Inner "
                       "Shareable domain has completed it", "estimate"));
    v.push_back(cycles("cost.arm64_dsb_ishst", 60,
                       "arm64: DSB ISHST: waits until prior stores (a descriptor write) are visible in the Inner "
                       "Shareable domain, before a TLBI or at the end of a map walk", "estimate"));
    v.push_back(cycles("cost.arm64_dsb_nsh", 60, "arm64: DSB NSH: waits for this core's own maintenance",
                       "estimate"));
    v.push_back(cycles("cost.arm64_isb", 30, "arm64: ISB: resynchronises this core's context after maintenance",
                       "estimate"));
    // ---- pKVM at EL2 (kernel/arm64/pkvm.cpp): protected VMs on arm64 presets ----
    v.push_back(cycles("cost.pkvm_hvc", 800,
                       "pKVM: the host kernel's HVC into the EL2 hypervisor and back (donate, reclaim, teardown "
                       "calls; a host stage-2 abort EL2 resolves or injects), on top of the work it does",
                       "estimate"));
    v.push_back(cycles("cost.pkvm_guest_hvc", 1500,
                       "pKVM: a protected guest's HVC that EL2 handles without the host (MEM_SHARE, MEM_UNSHARE, "
                       "MEM_RELINQUISH), per page, on top of the stage-2 work it does",
                       "estimate"));
    v.push_back(cycles("cost.pkvm_cmo_2m", 300000,
                       "pKVM: clean and invalidate 2 MiB to the point of coherency at EL2 (a page's share, 1/512, is "
                       "charged when a reclaimed page is zeroed and cleaned)",
                       "measured: about 100 us for 2 MiB with a PMD-sized fixmap on a Pixel 6 (\"stage-2 huge "
                       "mappings for non-protected guests in pKVM hyp\", commit c353fde1), at 3 GHz"));
    {
        auto d = make("pkvm.conversion", ParamType::string, "", 0, 0, "in_place",
                      "how a protected guest's conversion moves memory between private and shared: in_place (MEM_SHARE "
                      "/ MEM_UNSHARE change ownership and permissions, contents preserved, no copy) or copy (the "
                      "bytes move to a fresh page that is donated at the same IPA; the old page is zeroed and goes "
                      "back to the host)",
                      "arch/arm64/kvm/hyp/nvhe/mem_protect.c __pkvm_guest_share_host(); the pKVM in-place conversion "
                      "discussion (\"KVM: mm: fd-based approach for supporting KVM guest private memory\", v5)");
        d.choices = {"in_place", "copy"};
        v.push_back(d);
    }
    {
        auto d = make("pkvm.relinquish", ParamType::string, "", 0, 0, "host",
                      "where a protected guest's MEM_RELINQUISH goes: host (upstream 7.1: not handled at EL2; the host "
                      "does not implement it and answers NOT_SUPPORTED) or el2 (Android: the page is unmapped, zeroed "
                      "and given back to the host)",
                      "arch/arm64/kvm/hyp/nvhe/pkvm.c (upstream); Android common kernel "
                      "__pkvm_guest_relinquish_to_host()");
        d.choices = {"host", "el2"};
        v.push_back(d);
    }

    // ---- the VMM model (sim/machine.cpp) ----
    {
        auto d = make("vmm.conversion_policy", ParamType::string, "", 0, 0, "auto",
                      "content policy the VMM asks for when it converts memory for the guest (memory-fault exit, "
                      "map_gpa_range): auto = preserve where the VM type supports it, else zero to shared, none to private",
                      kSim);
        d.choices = {"auto", "zero", "preserve", "none"};
        v.push_back(d);
    }
    // ---- data through the caches, the shared LLC (models/mem CacheHierarchy) ----
    v.push_back(make("cache.data", ParamType::boolean, "", 0, 0, true,
                     "guest loads and stores go through the L1D/L2/LLC and DRAM like the walker's table reads "
                     "(false: each costs cpu.data_access_cycles and leaves the caches alone, as in hvsim before this parameter existed)",
                     kSim));
    {
        auto d = make("mem.llc.policy", ParamType::string, "", 0, 0, "victim",
                      "how the LLC is filled: inclusive (every miss fills it, hits leave the line there) or victim "
                      "(filled only with the lines the L2 evicts; a hit moves the line back to the L2)",
                      "AMD Software Optimization Guide for Family 19h Processors (pub. 56665), L3 cache: a victim "
                      "cache filled from the L2");
        d.choices = {"inclusive", "victim"};
        v.push_back(d);
    }
    v.push_back(count("mem.llc.shared_by", "vCPUs", 1, 4096, 8,
                      "vCPUs sharing one LLC (vCPU i uses LLC i / mem.llc.shared_by; one vCPU per core)",
                      "AMD Software Optimization Guide for Family 19h Processors: a Zen 4 CCX is 8 cores sharing "
                      "its 32 MB L3"));
    // ---- overlapped misses and the L2 stream prefetcher (models/mem CacheHierarchy) ----
    v.push_back(count("mem.mshrs", "fills", 0, 1024, 64,
                      "line fills from DRAM one core can have outstanding (miss-status holding registers): a store "
                      "miss is posted while one is free, prefetches need one; 0 tracks none (every miss waits, no "
                      "prefetch: the blocking model)",
                      "estimate (the order of Zen 4's and Golden Cove's L2 miss queues, 48-64; not retrieved)"));
    v.push_back(flag("mem.prefetch.l2_stream", true,
                     "L2 stream prefetcher: after two steps in one direction within a 4 KiB page (references that "
                     "miss the L1D) it fetches the following lines into the L2, never beyond the page",
                     "AMD Software Optimization Guide for Family 19h Processors (pub. 56665), Data Prefetch: L2 "
                     "stream prefetcher"));
    v.push_back(count("mem.prefetch.streams", "pages", 1, 256, 32, "streams (4 KiB pages) the L2 prefetcher tracks at once",
                      "estimate (Intel Optimization Reference Manual, L2 streamer: 32 streams; Zen 4's count is not "
                      "published)"));
    v.push_back(count("mem.prefetch.distance", "lines", 1, 63, 20, "how far ahead of the demand stream it runs",
                      "estimate (Intel Optimization Reference Manual, L2 streamer: up to 20 lines ahead)"));
    v.push_back(count("mem.prefetch.degree", "lines", 1, 64, 2, "prefetches issued per reference that trains a stream",
                      "estimate (Intel Optimization Reference Manual, L2 streamer: two prefetch requests per L2 look-up)"));
    // ---- page-walk cache organisation (models/mmu Mmu; x86 only) ----
    {
        auto d = make("mmu.pwc.organisation", ParamType::string, "", 0, 0, "pte",
                      "x86 page-walk cache: pte (AMD: non-leaf entries cached by their host-physical address; a walk "
                      "visits every level and a hit replaces that level's memory reference) or psc (Intel's "
                      "paging-structure caches: the deepest cached upper-level entry lets the walk skip the levels "
                      "above it)",
                      "Bhargava et al., ASPLOS'08 §2.3 (AMD's page walk cache); Intel SDM vol. 3A §4.10.3");
        d.choices = {"pte", "psc"};
        v.push_back(d);
    }
    v.push_back(make("mmu.pwc.nested", ParamType::boolean, "", 0, 0, true,
                     "the x86 page-walk cache also holds nested-dimension entries (false: guest entries only, the "
                     "baseline Bhargava et al. extend)",
                     "Bhargava et al., ASPLOS'08 §4 (a PWC extended to nested entries)"));
    std::sort(v.begin(), v.end(), [](const ParamDecl& a, const ParamDecl& b) { return a.name < b.name; });
    return v;
}

std::string int_what(const ParamDecl& d) {
    std::string w = d.power_of_two ? "a power-of-two integer" : "an integer";
    if (d.min != INT64_MIN && d.max != INT64_MAX) w += fmt::format(" {}..{}", d.min, d.max);
    else if (d.min != INT64_MIN) w += fmt::format(" >= {}", d.min);
    else if (d.max != INT64_MAX) w += fmt::format(" <= {}", d.max);
    return w;
}

[[noreturn]] void value_error(const std::string& expected, const std::string& got) {
    throw ParamError("expected " + expected + ", got " + got);
}

int64_t check_int(const ParamDecl& d, int64_t x, const std::string& got) {
    if (x < d.min || x > d.max) value_error(int_what(d), got);
    if (d.power_of_two && !std::has_single_bit(uint64_t(x))) value_error(int_what(d), got);
    return x;
}

int64_t check_size(const ParamDecl& d, uint64_t x, const std::string& got) {
    if (x > uint64_t(INT64_MAX)) value_error("a size below 2^63 bytes", got);
    if (int64_t(x) < d.min) value_error("a size >= " + jsonu::format_size(uint64_t(d.min)), got);
    if (int64_t(x) > d.max)
        value_error("a size <= " + jsonu::format_size(uint64_t(d.max)) + " (the largest the model holds)", got);
    if (d.multiple_of && x % d.multiple_of) value_error("a multiple of " + jsonu::format_size(d.multiple_of), got);
    return int64_t(x);
}

std::string check_choice(const ParamDecl& d, const std::string& s) {
    if (!d.choices.empty() && std::find(d.choices.begin(), d.choices.end(), s) == d.choices.end())
        throw ParamError("expected one of " + jsonu::join_list(d.choices) + ", got " + jsonu::quote(s) +
                         jsonu::suggestion_suffix(s, d.choices));
    return s;
}

const ParamDecl& decl_or_throw(const std::string& key) {
    if (const ParamDecl* d = find_param(key)) return *d;
    throw ParamError("unknown parameter '" + key + "'" + jsonu::suggestion_suffix(key, param_names()));
}

using Variant = decltype(ParamValue::v);

// A typed value from JSON (scenario "params", preset tables). Throws ParamError.
Variant from_json(const ParamDecl& d, const nlohmann::json& j) {
    const std::string got = jsonu::describe(j);
    switch (d.type) {
    case ParamType::integer:
        // Booleans and floats are not integers here, even 1.0: a typo should not pass silently.
        if (j.is_number_unsigned()) {
            if (j.get<uint64_t>() > uint64_t(INT64_MAX)) value_error(int_what(d), got);
            return check_int(d, int64_t(j.get<uint64_t>()), got);
        }
        if (j.is_number_integer()) return check_int(d, j.get<int64_t>(), got);
        value_error(int_what(d), got);
    case ParamType::real:
        if (j.is_number()) return j.get<double>();
        value_error("a number", got);
    case ParamType::boolean:
        if (j.is_boolean()) return j.get<bool>();
        value_error("true or false", got);
    case ParamType::string:
        if (j.is_string()) return check_choice(d, j.get<std::string>());
        value_error(d.choices.empty() ? std::string("a string") : "one of " + jsonu::join_list(d.choices), got);
    case ParamType::size:
        if (d.unlimited && j.is_string() && j.get_ref<const std::string&>() == "unlimited") return int64_t(0);
        try {
            return check_size(d, jsonu::parse_size(j), got);
        } catch (const jsonu::ValueError& e) {
            throw ParamError(e.what());
        }
    }
    value_error("a value", got);
}

Variant from_text(const ParamDecl& d, const std::string& text) {
    const std::string got = jsonu::quote(text);
    try {
        switch (d.type) {
        case ParamType::integer:
            return check_int(d, jsonu::parse_int_text(text, INT64_MIN, INT64_MAX, int_what(d)), got);
        case ParamType::real: {
            char* end = nullptr;
            const double x = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0' || !std::isfinite(x)) value_error("a number", got);
            return x;
        }
        case ParamType::boolean: {
            std::string t = text;
            for (auto& c : t) c = char(std::tolower(static_cast<unsigned char>(c)));
            if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
            if (t == "false" || t == "0" || t == "no" || t == "off") return false;
            value_error("true or false", got);
        }
        case ParamType::string:
            return check_choice(d, text);
        case ParamType::size:
            if (d.unlimited && text == "unlimited") return int64_t(0);
            return check_size(d, jsonu::parse_size_text(text), got);
        }
    } catch (const jsonu::ValueError& e) {
        throw ParamError(e.what());
    }
    value_error("a value", got);
}

nlohmann::json variant_json(const Variant& v) {
    return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

}  // namespace

const char* param_type_name(ParamType t) {
    switch (t) {
    case ParamType::integer: return "int";
    case ParamType::real: return "double";
    case ParamType::boolean: return "bool";
    case ParamType::string: return "string";
    case ParamType::size: return "size";
    }
    return "?";
}

const std::vector<ParamDecl>& param_decls() {
    static const std::vector<ParamDecl> decls = build_decls();
    return decls;
}

const ParamDecl* find_param(const std::string& name) {
    const auto& v = param_decls();
    auto it = std::lower_bound(v.begin(), v.end(), name, [](const ParamDecl& d, const std::string& n) { return d.name < n; });
    return it != v.end() && it->name == name ? &*it : nullptr;
}

std::vector<std::string> param_names() {
    std::vector<std::string> r;
    for (const auto& d : param_decls()) r.push_back(d.name);
    return r;
}

std::vector<std::string> ParamSet::platforms() {
    std::vector<std::string> r;
    for (const auto& p : detail::preset_defs()) r.push_back(p.name);
    return r;
}

std::string ParamSet::platform_description(const std::string& platform) {
    for (const auto& p : detail::preset_defs())
        if (p.name == platform) return p.description;
    throw ParamError("unknown platform '" + platform + "'" + jsonu::suggestion_suffix(platform, platforms()) +
                     ", expected one of " + jsonu::join_list(platforms()));
}

ParamSet ParamSet::preset(const std::string& platform) {
    const detail::PresetDef* def = nullptr;
    for (const auto& p : detail::preset_defs())
        if (p.name == platform) def = &p;
    if (!def) throw ParamError("unknown platform '" + platform + "'" + jsonu::suggestion_suffix(platform, platforms()) +
                     ", expected one of " + jsonu::join_list(platforms()));
    ParamSet ps;
    ps.platform_ = platform;
    const std::string origin = "preset " + platform;
    const std::string& base = detail::preset_defs().front().name;   // the platform the defaults describe
    for (const auto& d : param_decls()) {
        ParamValue pv;
        pv.v = from_json(d, d.default_value);
        pv.origin = origin;
        // A hardware value taken over from another platform is only a guess for this one.
        pv.source = (d.platform_dependent && platform != base)
                        ? "estimate (" + base + " value; no figure for this platform)"
                        : d.default_source;
        ps.values_.emplace(d.name, std::move(pv));
    }
    for (const auto& e : def->values) {
        const ParamDecl& d = decl_or_throw(e.key);
        auto& pv = ps.values_.at(d.name);
        pv.v = from_json(d, e.value);
        pv.source = e.source;
    }
    return ps;
}

const KernelProfile* find_kernel_profile(const std::string& name) {
    for (const auto& p : kernel_profiles())
        if (p.name == name) return &p;
    return nullptr;
}

void ParamSet::apply_kernel_profile(const std::string& name, const std::string& origin) {
    const KernelProfile* prof = find_kernel_profile(name);
    if (!prof) throw ParamError("unknown kernel profile '" + name + "'");   // kvm.profile's choices prevent this
    for (const auto& e : prof->values) {
        const ParamDecl& d = decl_or_throw(e.key);
        auto& pv = values_.at(d.name);
        pv.v = from_json(d, e.value);
        pv.source = "kvm.profile " + name;
        pv.origin = origin;
    }
}

void ParamSet::set(const std::string& key, const nlohmann::json& value, const std::string& origin) {
    const ParamDecl& d = decl_or_throw(key);
    auto& pv = values_.at(key);
    pv.v = from_json(d, value);
    pv.source = "override";
    pv.origin = origin;
    if (key == "kvm.profile") apply_kernel_profile(std::get<std::string>(pv.v), origin);
}

void ParamSet::set_from_string(const std::string& key, const std::string& text, const std::string& origin) {
    const ParamDecl& d = decl_or_throw(key);
    auto& pv = values_.at(key);
    pv.v = from_text(d, text);
    pv.source = "override";
    pv.origin = origin;
    if (key == "kvm.profile") apply_kernel_profile(std::get<std::string>(pv.v), origin);
}

nlohmann::json ParamSet::kernel_profile_json() const {
    const std::string& name = get_string("kvm.profile");
    nlohmann::json config = nlohmann::json::object();
    for (const auto& [k, pv] : values_)
        if (k.rfind("kvm.config.", 0) == 0) config[k] = variant_json(pv.v);
    nlohmann::json overrides = nlohmann::json::array();
    if (const KernelProfile* prof = find_kernel_profile(name))
        for (const auto& e : prof->values) {
            const ParamDecl& d = decl_or_throw(e.key);
            if (variant_json(from_json(d, e.value)) != config.at(e.key)) overrides.push_back(e.key);
        }
    return {{"name", name}, {"config", config}, {"overrides", overrides}};
}

void ParamSet::validate() const {
    const int64_t line = get_int("mem.line_bytes");
    for (const char* lvl : {"l1d", "l2", "llc"}) {
        const std::string p = std::string("mem.") + lvl;
        const int64_t size = get_int(p + ".size"), ways = get_int(p + ".ways");
        // CacheHierarchy needs whole sets: size = sets x ways x line, sets >= 1.
        if (size % (ways * line) != 0 || size < ways * line)
            throw ParamError(fmt::format("expected {0}.size to be a non-zero multiple of {0}.ways x mem.line_bytes "
                                         "({1} x {2} = {3} bytes), got {4}",
                                         p, ways, line, ways * line, size));
    }
    for (const char* t : {"l1_tlb", "l2_tlb", "pwc", "ntlb"}) {
        const std::string p = std::string("mmu.") + t;
        const int64_t entries = get_int(p + ".entries"), ways = get_int(p + ".ways");
        // The walk caches may be switched off (0 entries); the TLBs may not.
        if (entries == 0 && (std::string(t) == "pwc" || std::string(t) == "ntlb")) continue;
        if (ways > entries || entries % ways != 0)
            throw ParamError(fmt::format("expected {0}.entries to be a multiple of {0}.ways ({1}), got {2}", p, ways,
                                         entries));
    }
    const std::string& fmt_name = get_string("mmu.nested_format");
    const int64_t levels = get_int("mmu.nested_levels");
    if (fmt_name == "stage2" ? (levels < 2 || levels > 4) : (levels != 4 && levels != 5))
        throw ParamError(fmt::format("expected mmu.nested_levels {} for mmu.nested_format {}, got {}",
                                     fmt_name == "stage2" ? "2..4" : "4 or 5", fmt_name, levels));
    const uint64_t base = get_u64("host.mem_base"), size = get_u64("host.mem_size");
    if (base + size > (1ull << 52))
        throw ParamError(fmt::format("expected host.mem_base + host.mem_size <= 2^52 (x86 MAXPHYADDR), got {}",
                                     jsonu::hex(base + size)));
}

const ParamValue& ParamSet::value(const std::string& key) const {
    decl_or_throw(key);
    return values_.at(key);
}

const ParamValue& ParamSet::lookup(const std::string& key, ParamType want, bool allow_int) const {
    const ParamDecl& d = decl_or_throw(key);
    const bool ok = d.type == want || (want == ParamType::integer && d.type == ParamType::size) ||
                    (allow_int && d.type == ParamType::integer);
    if (!ok)
        throw ParamError(fmt::format("parameter '{}' has type {}, read as {}", key, param_type_name(d.type),
                                     param_type_name(want)));
    return values_.at(key);
}

int64_t ParamSet::get_int(const std::string& key) const {
    return std::get<int64_t>(lookup(key, ParamType::integer, false).v);
}

uint64_t ParamSet::get_u64(const std::string& key) const {
    const int64_t x = get_int(key);
    if (x < 0) throw ParamError(fmt::format("parameter '{}' is negative ({}), read as unsigned", key, x));
    return uint64_t(x);
}

double ParamSet::get_double(const std::string& key) const {
    const auto& v = lookup(key, ParamType::real, true).v;
    if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
    return std::get<double>(v);
}

bool ParamSet::get_bool(const std::string& key) const {
    return std::get<bool>(lookup(key, ParamType::boolean, false).v);
}

const std::string& ParamSet::get_string(const std::string& key) const {
    return std::get<std::string>(lookup(key, ParamType::string, false).v);
}

nlohmann::json ParamSet::to_json() const {
    nlohmann::json j = nlohmann::json::object();   // std::map-backed: keys come out sorted
    for (const auto& [k, pv] : values_) j[k] = variant_json(pv.v);
    return j;
}

nlohmann::json ParamSet::describe() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& d : param_decls()) {
        const auto& pv = values_.at(d.name);
        j[d.name] = {{"value", variant_json(pv.v)}, {"type", param_type_name(d.type)}, {"unit", d.unit},
                     {"description", d.description}, {"source", pv.source}, {"origin", pv.origin}};
    }
    return j;
}

}  // namespace hvsim
