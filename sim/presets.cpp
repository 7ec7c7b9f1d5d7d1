// Platform presets: named value sets over the declarations in sim/params.cpp. The first
// preset, zen4-genoa, is the declared defaults (docs/sources.md §2); the others list only
// what differs, each value with its source. A hardware key a preset leaves out inherits
// the zen4-genoa value and is reported as an estimate for that platform.
#include "sim/params.hpp"

namespace hvsim::detail {

namespace {

constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20;

std::vector<PresetDef> build() {
    std::vector<PresetDef> v;
    v.push_back({"zen4-genoa", "AMD EPYC 9004 \"Genoa\" (Zen 4), SEV-SNP host (docs/sources.md §2)", {}});

    // Intel Xeon 4th gen (Golden Cove cores), TDX host.
    v.push_back({"sapphire-rapids",
                 "Intel Xeon 4th gen \"Sapphire Rapids\", TDX host (docs/sources.md §3)",
                 {
                     {"cpu.freq_mhz", 3000, "estimate (docs/sources.md §1 assumes 3.0 GHz for every preset)"},
                     {"mem.line_bytes", 64, "architecture (64-byte lines on Golden Cove)"},
                     {"cpu.data_access_cycles", 5, "measured-by-proxy: chipsandcheese Golden Cove L1D (docs/sources.md §3)"},
                     {"cost.wide_store_line", 5, "estimate (one L1D-hit store, as cpu.data_access_cycles)"},
                     {"cost.guest_clear_page", 320, "estimate (64 L1D-hit stores of cpu.data_access_cycles)"},
                     {"mem.l1d.size", 48 * KiB, "chipsandcheese Golden Cove baseline (docs/sources.md §5)"},
                     {"mem.l1d.ways", 12, "estimate (Golden Cove 48 KiB 12-way, recalled)"},
                     {"mem.l1d.hit_cycles", 5, "measured-by-proxy: chipsandcheese Golden Cove L1D (docs/sources.md §3)"},
                     {"mem.l2.size", 2 * MiB, "hardwaretimes / computerbase Geekbench-leak reports (docs/sources.md §5)"},
                     {"mem.l2.ways", 16, "estimate"},
                     {"mem.l2.hit_cycles", 16, "estimate (docs/sources.md §3)"},
                     {"mem.llc.size", 105 * MiB,
                      "estimate (recalled SKU data, docs/sources.md §5: 1.875 MB per core, 105 MB on 56 cores)"},
                     {"mem.llc.ways", 15, "estimate (1.875 MiB 15-way slices, recalled)"},
                     {"mem.llc.hit_cycles", 110, "estimate (docs/sources.md §3: about 35 ns over the mesh)"},
                     {"mem.dram_cycles", 390, "estimate (docs/sources.md §3: about 130 ns DDR5)"},
                     {"mmu.nested_format", "ept", "architecture (Intel EPT)"},
                     {"mmu.nested_levels", 4, "architecture (4-level EPT)"},
                     {"mmu.l1_tlb.entries", 96, "estimate (docs/sources.md §3)"},
                     {"mmu.l1_tlb.ways", 6, "estimate (Golden Cove L1 DTLB 6-way, recalled)"},
                     {"mmu.l2_tlb.entries", 2048, "estimate (docs/sources.md §3: STLB, 4K/2M)"},
                     {"mmu.l2_tlb.ways", 16, "estimate"},
                     {"mmu.l2_tlb.hit_cycles", 8, "estimate (docs/sources.md §3)"},
                     {"mmu.pwc.entries", 96,
                      "estimate (docs/sources.md §3: PML4E/PDPTE/PDE caches of 32 entries each, pooled here)"},
                     {"mmu.pwc.ways", 96, "estimate (fully associative)"},
                     {"mmu.pwc.organisation", "psc", "Intel SDM vol. 3A §4.10.3 (paging-structure caches)"},
                     {"mmu.pwc.hit_cycles", 2, "estimate (docs/sources.md §3)"},
                     {"mmu.ntlb.entries", 32, "estimate (docs/sources.md §3: EPT guest-physical-mapping cache)"},
                     {"mmu.ntlb.ways", 32, "estimate (fully associative)"},
                     {"mmu.ntlb.hit_cycles", 2, "estimate (docs/sources.md §3)"},
                     {"cost.vmexit", 600, "estimate (docs/sources.md §3: non-TD exit round trip 1,200, halved)"},
                     {"cost.vmentry", 600, "estimate (docs/sources.md §3: non-TD exit round trip 1,200, halved)"},
                     {"cost.tdx_seamcall", 2000, "estimate (docs/sources.md §3: SEAMCALL round trip, minimal leaf)"},
                     {"cost.tdx_sept_add", 3000, "estimate (docs/sources.md §3: TDH.MEM.SEPT.ADD)"},
                     {"cost.tdx_page_aug", 3000, "estimate (docs/sources.md §3: TDH.MEM.PAGE.AUG 4K)"},
                     {"cost.tdx_range_block", 2500, "estimate (docs/sources.md §3: TDH.MEM.RANGE.BLOCK)"},
                     {"cost.tdx_track", 2000, "estimate (docs/sources.md §3: TDH.MEM.TRACK)"},
                     {"cost.tdx_page_remove", 2500, "estimate (docs/sources.md §3: TDH.MEM.PAGE.REMOVE)"},
                     {"cost.tdx_wbinvd", 3000, "estimate (docs/sources.md §3: TDH.PHYMEM.PAGE.WBINVD 4K)"},
                     {"cost.tdx_td_exit", 4600,
                      "estimate (TD exit round trip 6,000 in docs/sources.md §3, raised to 9,200 so one accept fault "
                      "costs about 8 us: Dstack-TEE/dstack PR #1220; half of it is the exit, which replaces "
                      "cost.vmexit for a TD vCPU)"},
                     {"cost.tdx_td_entry", 2600,
                      "estimate (the other half of the 9,200-cycle round trip of cost.tdx_td_exit is TDH.VP.ENTER: "
                      "cost.tdx_seamcall plus this leaf; it replaces cost.vmentry for a TD vCPU)"},
                     {"cost.tdx_ve", 1500, "estimate (docs/sources.md §3: #VE handled in the TD without exit)"},
                     {"mem.llc.policy", "inclusive",
                      "estimate (the mesh LLC is non-inclusive since Skylake-SP but filled on demand misses; "
                      "modelled as an inclusive fill without back-invalidation)"},
                     {"mem.llc.shared_by", 56, "architecture (one LLC over the mesh, 1.875 MiB per core, 56 cores)"},
                     {"mem.encrypt_fill_cycles", 10,
                      "estimate (MKTME's AES-XTS in the memory controller; Intel publishes no latency, taken as "
                      "AMD's SME engine; TDX's logical integrity (the TD bit) adds none, cryptographic integrity is "
                      "not modelled)"},
                     {"mem.mshrs", 48, "estimate (Golden Cove's L2 tracks 48 outstanding misses, recalled; not retrieved)"},
                     {"mem.prefetch.l2_stream", true,
                      "Intel Optimization Reference Manual, Data Prefetch to the L2 and Last Level Cache (the streamer)"},
                     {"mem.prefetch.streams", 32, "Intel Optimization Reference Manual, L2 streamer: 32 streams"},
                     {"mem.prefetch.distance", 20, "Intel Optimization Reference Manual, L2 streamer: up to 20 lines ahead"},
                     {"mem.prefetch.degree", 2,
                      "Intel Optimization Reference Manual, L2 streamer: two prefetch requests per L2 look-up"},
                     {"cost.tdx_page_add", 5000, "estimate (docs/sources.md §3: TDH.MEM.PAGE.ADD 4K)"},
                     {"cost.tdx_mr_extend", 185500,
                      "KVM list, \"KVM: x86/mmu: TDX post-populate cleanups\" v3 15/25 changelog (S. Christopherson, "
                      "2025-10-16): about 1 ms to measure a 4 KiB page (16 calls); 62.5 us per call at 3 GHz less "
                      "cost.tdx_seamcall"},
                     {"cost.tdx_accept_4k", 6000,
                      "estimate (docs/sources.md §3: TDG.MEM.PAGE.ACCEPT 4K 3,000, plus a TDCALL round trip; "
                      "calibrated with cost.tdx_td_exit against Dstack-TEE/dstack PR #1220, 8 us per accept fault)"},
                     {"cost.tdx_idle_tick", 2270,
                      "estimate (calibrated: with the TD exit and entry costs a tick round trip is 11,470 cycles, so "
                      "248 idle vCPUs at HZ=1000 make one accept fault about 153 us: Dstack-TEE/dstack PR #1220)"},
                     {"cost.tdx_page_aug_2m", 7000,
                      "estimate (cost.tdx_page_aug 3,000 plus a scan of the 512 4K PAMT entries of the range, about "
                      "8 cycles each; no public per-leaf figure)"},
                     {"cost.tdx_demote", 10000,
                      "estimate (a leaf like TDH.MEM.RANGE.BLOCK, about 3,000, plus 512 S-EPT entries and 512 4K PAMT "
                      "entries written, about 14 cycles per 4K sub-page; no public per-leaf figure)"},
                     {"cost.tdx_vp_flush", 2000,
                      "estimate (a VMCLEAR of the TD VMCS and the vCPU's cached state, like TDH.MEM.TRACK; no public "
                      "per-leaf figure)"},
                     {"cost.tdx_vpflushdone", 500, "estimate (a check of the TD's vCPU association count and a "
                      "lifecycle write; no public per-leaf figure)"},
                     {"cost.tdx_cache_wb", 1000000,
                      "estimate (a WBINVD of one package, about 0.5 ms at 2 GHz for a 105 MiB LLC written back; no "
                      "public figure for the leaf)"},
                     {"cost.tdx_key_freeid", 1000, "estimate (the HKID's key state in the module's tables; no public "
                      "per-leaf figure)"},
                     {"cost.tdx_reclaim", 2500,
                      "estimate (one PAMT walk and entry write, as TDH.MEM.PAGE.REMOVE; the KVM_TDX_TERMINATE_VM "
                      "changelog gives 4.5 to 5.1 us per 4 KiB for RECLAIM, page clearing and freeing together)"},
                 }});

    // Arm Neoverse N2, pKVM host (nVHE, protected guests). Stage-2 replaces NPT/EPT.
    v.push_back({"neoverse-n2",
                 "Arm Neoverse N2, pKVM host (docs/sources.md §4)",
                 {
                     {"cpu.freq_mhz", 3000, "estimate (docs/sources.md §1 assumes 3.0 GHz for every preset)"},
                     {"mem.line_bytes", 64, "architecture (64-byte lines on Neoverse N2)"},
                     {"cpu.data_access_cycles", 4, "estimate (L1D hit, docs/sources.md §4)"},
                     {"mem.l1d.size", 64 * KiB, "estimate (docs/sources.md §4)"},
                     {"mem.l1d.ways", 4, "estimate (Neoverse N2 L1D 4-way, recalled)"},
                     {"mem.l1d.hit_cycles", 4, "estimate (docs/sources.md §4)"},
                     {"mem.l2.size", 1 * MiB, "estimate (docs/sources.md §4: 1 MB private)"},
                     {"mem.l2.ways", 8, "estimate"},
                     {"mem.l2.hit_cycles", 11, "estimate (docs/sources.md §4)"},
                     {"mem.llc.size", 32 * MiB, "estimate (system-level cache size depends on the SoC)"},
                     {"mem.llc.ways", 16, "estimate"},
                     {"mem.llc.hit_cycles", 150, "estimate (docs/sources.md §4: SLC over the CMN mesh, about 50 ns)"},
                     {"mem.dram_cycles", 360, "estimate (docs/sources.md §4: about 120 ns)"},
                     {"mmu.nested_format", "stage2", "architecture (arm64 stage-2 translation)"},
                     {"mmu.nested_levels", 4, "architecture (4-level stage-2, 4K granule, 48-bit IPA)"},
                     {"mmu.l1_tlb.entries", 48, "estimate (docs/sources.md §4; the N1/A76 TRM has 48)"},
                     {"mmu.l1_tlb.ways", 48, "estimate (fully associative as on Cortex-A76, docs/sources.md §5)"},
                     {"mmu.l1_tlb.hit_cycles", 0, "estimate (docs/sources.md §5: 1-cycle hit on Cortex-A76, in the access)"},
                     {"mmu.l2_tlb.entries", 2048, "estimate (docs/sources.md §4)"},
                     {"mmu.l2_tlb.ways", 8, "estimate"},
                     {"mmu.l2_tlb.hit_cycles", 6, "estimate (docs/sources.md §4)"},
                     {"mmu.pwc.entries", 64, "estimate (docs/sources.md §4: stage-1 walk cache; Cortex-A53 has 64)"},
                     {"mmu.pwc.ways", 64, "estimate (fully associative)"},
                     {"mmu.pwc.hit_cycles", 2, "estimate (docs/sources.md §4)"},
                     {"mmu.ntlb.entries", 64, "estimate (docs/sources.md §4: IPA (stage-2) cache; Cortex-A53 has 64)"},
                     {"mmu.ntlb.ways", 64, "estimate (fully associative)"},
                     {"mmu.ntlb.hit_cycles", 2, "estimate (docs/sources.md §4)"},
                     {"cost.arm64_guest_exit", 2500,
                      "estimate (an exit to the host kernel and back through the nVHE EL2 world switch taken at "
                      "5,000 cycles, halved: below the about 6,500 cycles of a KVM/ARM hypercall round trip on an "
                      "Armv8.0 server in Dall et al., \"ARM Virtualization: Performance and Architectural "
                      "Implications\", ISCA 2016 (recalled), for a core with more registers saved per cycle)"},
                     {"cost.arm64_guest_entry", 2500, "estimate (as cost.arm64_guest_exit)"},
                     {"cost.pkvm_hyp_vcpu_sync", 600,
                      "estimate (flush_hyp_vcpu() / sync_hyp_vcpu() copy the general registers and a few system "
                      "registers, about 1 KiB, between the host's and EL2's vCPU: a few hundred L1-hit loads and stores)"},
                     {"cost.arm64_s2_pte_write", 20,
                      "estimate (one L1-hit store-release of a descriptor, with the walk to it in cache)"},
                     {"mem.llc.policy", "inclusive", "estimate (the system-level cache in the CMN mesh, filled on misses)"},
                     {"mem.llc.shared_by", 64, "estimate (one system-level cache for the SoC's cores)"},
                     {"cost.arm64_tlbi_ipas2e1is", 50,
                      "estimate (issuing a broadcast TLBI: a DVM message posted to the CMN mesh; no public N2 figure)"},
                     {"cost.arm64_tlbi_vmalle1is", 50, "estimate (as cost.arm64_tlbi_ipas2e1is)"},
                     {"cost.arm64_tlbi_vmalls12e1is", 100,
                      "estimate (as cost.arm64_tlbi_ipas2e1is, twice: both stages of every entry of the VMID)"},
                     {"cost.arm64_tlbi_local", 30, "estimate (a core-local TLBI, no DVM message)"},
                     {"cost.arm64_dsb_ish", 600,
                      "estimate (docs/sources.md §4: KVM's broadcast leaf sequence about 2,000 cycles, almost all of "
                      "it the two DSB ISH that wait for every core to complete the DVM operations)"},
                     {"cost.arm64_dsb_ishst", 60, "estimate (drains the store buffer to the inner-shareable point)"},
                     {"cost.arm64_dsb_nsh", 60, "estimate (docs/sources.md §4: the local (NSH) sequence about 300 cycles, "
                      "three DSB NSH, two local TLBIs and an ISB)"},
                     {"cost.arm64_isb", 30, "estimate (a pipeline flush of a 10-stage core, about 3 times its width)"},
                     {"cost.pkvm_hvc", 800, "estimate (docs/sources.md §4: host HVC into EL2 and back)"},
                     {"cost.pkvm_guest_hvc", 1500,
                      "estimate (docs/sources.md §4: guest HVC handled at EL2, e.g. MEM_SHARE, round trip)"},
                     {"cost.pkvm_cmo_2m", 300000,
                      "measured (about 100 us for a 2 MiB CMO at EL2 with a PMD-sized fixmap, Pixel 6: \"stage-2 huge "
                      "mappings for non-protected guests in pKVM hyp\", commit c353fde1; at 3 GHz)"},
                 }});
    return v;
}

}  // namespace

const std::vector<PresetDef>& preset_defs() {
    static const std::vector<PresetDef> defs = build();
    return defs;
}

}  // namespace hvsim::detail

namespace hvsim {

// Kernel profiles (kvm.profile). Each lists every key any profile sets, so switching the
// profile never leaves a value of another behind. Sources: the upstream pull requests and
// the in-place conversion series (upstream status as of Linux 7.2; docs/kvm-model.md).
const std::vector<KernelProfile>& kernel_profiles() {
    static const std::vector<KernelProfile> profiles = {
        {"linux-6.18",
         "upstream Linux 6.18 (the project's host kernel, 6.18.44): per-VM memory attributes "
         "(KVM_SET_MEMORY_ATTRIBUTES), no KVM_SET_MEMORY_ATTRIBUTES2, a second guest_memfd binding is EINVAL",
         {{"kvm.config.vm_memory_attributes", true},
          {"kvm.config.memory_attributes2", false},
          {"kvm.config.gmem_bind_eexist", false},
          {"kvm.config.tdx_page_add_in_map", false}}},
        {"linux-7.2",
         "upstream Linux 7.2: as linux-6.18, but a second binding of a guest_memfd range is EEXIST "
         "(the \"KVM guest_memfd changes for 7.2\" pull request)",
         {{"kvm.config.vm_memory_attributes", true},
          {"kvm.config.memory_attributes2", false},
          {"kvm.config.gmem_bind_eexist", true},
          {"kvm.config.tdx_page_add_in_map", true}}},
        {"inplace",
         "the guest_memfd in-place conversion proposal (v7, May 2026, not merged as of 7.2; the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series): "
         "kvm.vm_memory_attributes=0, attributes live in each guest_memfd, KVM_SET_MEMORY_ATTRIBUTES2 with "
         "content policies, INIT_SHARED on CoCo VMs; KVM_SET_MEMORY_ATTRIBUTES is ENOTTY",
         {{"kvm.config.vm_memory_attributes", false},
          {"kvm.config.memory_attributes2", true},
          {"kvm.config.gmem_bind_eexist", false},
          {"kvm.config.tdx_page_add_in_map", true}}},
    };
    return profiles;
}

}  // namespace hvsim
