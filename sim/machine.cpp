#include "sim/machine.hpp"

#include "models/common/counting_context.hpp"

#include "models/cpu/x86_translator.hpp"
#include "models/stage2/stage2_translator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "kernel/error_rule.hpp"
#include "kernel/guest_memfd.hpp"
#include "sim/errno_names.hpp"
#include "sim/trace.hpp"

namespace hvsim {

using kvm::ExecContext;

MachineConfig machine_config(const ParamSet& p, const scn::Scenario& s) {
    MachineConfig c;
    c.freq_mhz = p.get_u64("cpu.freq_mhz");
    // The clock is quantised to whole picoseconds per cycle (SystemC's resolution here).
    c.period_ps = (1000000 + c.freq_mhz / 2) / c.freq_mhz;
    c.quantum_ns = p.get_u64("sim.quantum_ns");
    c.data_access_cycles = p.get_u64("cpu.data_access_cycles");
    c.wide_store_line = p.get_u64("cost.wide_store_line");
    c.guest_clear_page = p.get_u64("cost.guest_clear_page");

    c.mem.line_bytes = unsigned(p.get_u64("mem.line_bytes"));
    c.mem.dram_cycles = p.get_u64("mem.dram_cycles");
    for (const char* lvl : {"l1d", "l2", "llc"}) {
        const std::string k = std::string("mem.") + lvl;
        c.mem.levels.push_back(CacheLevelConfig{lvl, p.get_u64(k + ".size"), unsigned(p.get_u64(k + ".ways")),
                                                p.get_u64(k + ".hit_cycles")});
    }
    c.mem.llc_policy = p.get_string("mem.llc.policy") == "victim" ? LlcPolicy::victim : LlcPolicy::inclusive;
    c.mem.llc_shared_by = unsigned(p.get_u64("mem.llc.shared_by"));
    c.mem.mshrs = unsigned(p.get_u64("mem.mshrs"));
    c.mem.prefetch.l2_stream = p.get_bool("mem.prefetch.l2_stream");
    c.mem.prefetch.streams = unsigned(p.get_u64("mem.prefetch.streams"));
    c.mem.prefetch.distance = unsigned(p.get_u64("mem.prefetch.distance"));
    c.mem.prefetch.degree = unsigned(p.get_u64("mem.prefetch.degree"));
    c.cache_data = p.get_bool("cache.data");
    c.dram.model = p.get_string("mem.dram.model") == "ddr5" ? DramConfig::Model::ddr5 : DramConfig::Model::fixed;
    c.dram.fixed_cycles = c.mem.dram_cycles;
    // DDR5 timings are given in picoseconds; a fill costs whole core cycles.
    auto ps_to_cycles = [&](const char* k) { return (p.get_u64(k) + c.period_ps - 1) / c.period_ps; };
    c.dram.t_cl = ps_to_cycles("mem.dram.t_cl_ps");
    c.dram.t_rcd = ps_to_cycles("mem.dram.t_rcd_ps");
    c.dram.t_rp = ps_to_cycles("mem.dram.t_rp_ps");
    c.dram.banks = unsigned(p.get_u64("mem.dram.banks"));
    c.dram.page_bytes = p.get_u64("mem.dram.page_bytes");

    c.mmu.guest_levels = s.vm.guest_paging_levels;
    c.mmu.nested_levels = unsigned(p.get_u64("mmu.nested_levels"));
    const std::string fmt = p.get_string("mmu.nested_format");
    c.stage2 = fmt == "stage2";
    if (c.stage2) {
        // KVM/arm64's stage 2 under a guest whose stage 1 (if any) is VMSAv8-64 with the 4K
        // granule and a 48-bit VA (4 levels), running the VM types that exist on arm64.
        if (s.vm.guest_paging_levels == 5)
            throw std::invalid_argument("mmu.nested_format \"stage2\" (platform " + p.platform() +
                                        "): \"guest_paging\": \"5-level\" has no arm64 stage-1 equivalent here "
                                        "(52-bit VAs with the 4K granule need FEAT_LPA2's level -1, not modelled); "
                                        "use \"4-level\" (48-bit VA)");
        if (s.vm.type != "default" && s.vm.type != "pkvm")
            throw std::invalid_argument("mmu.nested_format \"stage2\" (platform " + p.platform() + "): VM type \"" +
                                        s.vm.type + "\" is x86-only; arm64 runs \"default\" and \"pkvm\"");
        const unsigned lv = c.mmu.nested_levels;
        c.ipa_bits = lv == 2 ? 32 : lv == 3 ? 40 : 48;
        // VTCR_EL2.TG0: KVM uses the host's PAGE_SIZE as the stage-2 granule.
        const std::string g = p.get_string("s2.granule");
        c.s2_granule = g == "64K" ? stage2::Granule::k64K : g == "16K" ? stage2::Granule::k16K : stage2::Granule::k4K;
        if (c.s2_granule != stage2::Granule::k4K) {
            // pKVM works in the host's PAGE_SIZE too (ownership, donations, the guest's leaves;
            // the guest learns it from HYP_MEMINFO). The copy-based conversion is kept to 4 KiB.
            if (s.vm.type == "pkvm" && p.get_string("pkvm.conversion") == "copy")
                throw std::invalid_argument("s2.granule " + g + ": pkvm.conversion \"copy\" is modelled with 4 KiB "
                                            "pages only; a " + g + " protected VM converts in place");
            if (!p.get_bool("host.thp"))
                throw std::invalid_argument("s2.granule " + g + ": the simulated host's base pages are 4 KiB, so a " + g +
                                            " stage-2 page must come from a transparent huge page; set host.thp");
        }
    }
    c.mmu.nested_format = fmt == "ept" ? mmu::NestedFormat::ept : mmu::NestedFormat::npt;
    auto tlb = [&](const std::string& k) {
        return mmu::TlbConfig{unsigned(p.get_u64(k + ".entries")), unsigned(p.get_u64(k + ".ways")),
                              p.get_u64(k + ".hit_cycles")};
    };
    c.mmu.l1 = tlb("mmu.l1_tlb");
    c.mmu.l2 = tlb("mmu.l2_tlb");
    c.mmu.pwc = tlb("mmu.pwc");
    c.mmu.pwc_org = p.get_string("mmu.pwc.organisation") == "pte" ? mmu::MmuConfig::PwcOrg::pte : mmu::MmuConfig::PwcOrg::psc;
    c.mmu.pwc_nested = p.get_bool("mmu.pwc.nested");
    c.mmu.ntlb = tlb("mmu.ntlb");
    // On arm64 the same parameters size the combined TLBs, the walk cache and the IPA cache.
    c.s2.l1 = c.mmu.l1;
    c.s2.l2 = c.mmu.l2;
    c.s2.walk_cache = c.mmu.pwc;
    c.s2.s2tlb = c.mmu.ntlb;

    auto& k = c.kvm;
    k.smm = p.get_bool("kvm.config.smm");
    k.sw_protected_vm = p.get_bool("kvm.config.sw_protected_vm");
    k.generic_memory_attributes = p.get_bool("kvm.config.generic_memory_attributes");
    k.tdp = p.get_bool("kvm.config.tdp");
    k.sev = p.get_bool("kvm.config.sev");
    k.sev_es = p.get_bool("kvm.config.sev_es");
    k.snp = p.get_bool("kvm.config.snp");
    k.tdx = p.get_bool("kvm.config.tdx");
    k.pkvm = p.get_bool("kvm.config.pkvm");
    k.guest_memfd = p.get_bool("kvm.config.guest_memfd");
    k.guest_memfd_mmap = p.get_bool("kvm.config.guest_memfd_mmap");
    k.guest_memfd_init_shared = p.get_bool("kvm.config.guest_memfd_init_shared");
    k.readonly_mem = p.get_bool("kvm.config.readonly_mem");
    k.exit_hypercall = p.get_bool("kvm.config.exit_hypercall");
    k.memory_attributes2 = p.get_bool("kvm.config.memory_attributes2");
    k.vm_memory_attributes = p.get_bool("kvm.config.vm_memory_attributes");
    k.quirk_slot_zap_all = p.get_bool("kvm.config.quirk_slot_zap_all");
    k.gmem_bind_eexist = p.get_bool("kvm.config.gmem_bind_eexist");
    k.maxphyaddr = unsigned(p.get_u64("kvm.config.maxphyaddr"));
    k.nr_memslots = uint32_t(p.get_u64("kvm.config.nr_memslots"));
    k.memlock_limit = p.get_u64("kvm.config.memlock_limit");
    k.gmem_max_order = unsigned(p.get_u64("gmem.max_order"));

    auto& cost = c.costs;
    // One line per KvmCosts field: the preset key it comes from.
    const std::pair<Cycles*, const char*> costs[] = {
        {&cost.ioctl, "cost.ioctl"},
        {&cost.memslot_update, "cost.memslot_update"},
        {&cost.gmem_create, "cost.gmem_create"},
        {&cost.page_alloc, "cost.page_alloc"},
        {&cost.page_free, "cost.page_free"},
        {&cost.zero_4k, "cost.zero_4k"},
        {&cost.fill_4k, "cost.fill_4k"},
        {&cost.copy_4k, "cost.copy_4k"},
        {&cost.gmem_get_pfn, "cost.gmem_get_pfn"},
        {&cost.attr_update, "cost.attr_update"},
        {&cost.mmu_lock, "cost.mmu_lock"},
        {&cost.pin_page, "cost.pin_page"},
        {&cost.clflush_4k, "cost.clflush_4k"},
        {&cost.tlb_flush_local, "cost.tlb_flush_local"},
        {&cost.tlb_flush_remote_ipi, "cost.tlb_flush_remote_ipi"},
        {&cost.host_fault, "cost.host_fault"},
        {&cost.gup_page, "cost.gup_fast"},
        {&cost.mmap, "cost.mmap"},
        {&cost.host_unmap_page, "cost.host_unmap_page"},
        {&cost.wbinvd, "cost.wbinvd"},
        {&cost.kvm_mmu_page_fault, "cost.kvm_mmu_page_fault"},
        {&cost.spte_write, "cost.spte_write"},
        {&cost.sp_alloc, "cost.sp_alloc"},
        {&cost.zap_spte, "cost.zap_spte"},
        {&cost.vmexit, "cost.vmexit"},
        {&cost.vmentry, "cost.vmentry"},
        {&cost.userspace_exit, "cost.userspace_exit"},
        {&cost.hypercall, "cost.hypercall"},
        {&cost.guest_pf, "cost.guest_pf"},
        {&cost.zero_2m, "cost.zero_2m"},
        {&cost.split_huge_page, "cost.split_huge_page"},
        {&cost.srcu_poll, "cost.srcu_poll"},
    };
    for (auto& [field, key] : costs) *field = p.get_u64(key);
    kvm::TdxCosts& t = c.tdx_costs;
    const std::pair<Cycles*, const char*> tdx_costs[] = {
        {&t.seamcall, "cost.tdx_seamcall"},     {&t.sept_add, "cost.tdx_sept_add"},
        {&t.page_aug, "cost.tdx_page_aug"},     {&t.range_block, "cost.tdx_range_block"},
        {&t.track, "cost.tdx_track"},           {&t.page_remove, "cost.tdx_page_remove"},
        {&t.wbinvd, "cost.tdx_wbinvd"},         {&t.td_exit, "cost.tdx_td_exit"},
        {&t.td_entry, "cost.tdx_td_entry"},     {&t.ve, "cost.tdx_ve"},
        {&t.accept_4k, "cost.tdx_accept_4k"},   {&t.idle_tick, "cost.tdx_idle_tick"},
        {&t.page_add, "cost.tdx_page_add"},     {&t.mr_extend, "cost.tdx_mr_extend"},
        {&t.page_aug_2m, "cost.tdx_page_aug_2m"}, {&t.demote, "cost.tdx_demote"},
        {&t.vp_flush, "cost.tdx_vp_flush"},     {&t.vpflushdone, "cost.tdx_vpflushdone"},
        {&t.cache_wb, "cost.tdx_cache_wb"},     {&t.key_freeid, "cost.tdx_key_freeid"},
        {&t.reclaim, "cost.tdx_reclaim"},
    };
    for (auto& [field, key] : tdx_costs) *field = p.get_u64(key);
    c.tdx_idle_tick_hz = p.get_u64("tdx.idle_tick_hz");
    c.tdx_page_add_in_map = p.get_bool("kvm.config.tdx_page_add_in_map");
    c.tdx_huge_private = p.get_bool("kvm.config.tdx_huge_private");

    c.host_mem_base = p.get_u64("host.mem_base");
    c.host_mem_size = p.get_u64("host.mem_size");
    c.host_thp = p.get_bool("host.thp");
    c.conversion_policy = p.get_string("vmm.conversion_policy");

    c.rmp_enabled = p.get_bool("rmp.enabled");
    c.rmp_cache_entries = unsigned(p.get_u64("rmp.cache.entries"));
    c.rmp_cache_hit_cycles = p.get_u64("rmp.cache.hit_cycles");
    c.mem_encrypt_fill = p.get_u64("mem.encrypt_fill_cycles");
    c.snp.rmpupdate = p.get_u64("cost.rmpupdate");
    c.snp.psmash = p.get_u64("cost.psmash");
    c.snp.clflush_4k = cost.clflush_4k;
    c.snp.ae_exit = p.get_u64("cost.snp_ae_exit");
    c.snp.launch_update = p.get_u64("cost.snp_launch_update");
    c.snp_guest.accept = p.get_string("snp.accept") == "eager" ? cpu::SnpGuestConfig::Accept::eager
                                                               : cpu::SnpGuestConfig::Accept::lazy;
    c.snp_guest.validate_2m = p.get_bool("snp.validate_2m");
    c.snp_guest.psc_msr = p.get_string("snp.psc_protocol") == "msr";
    c.snp_guest.vc_cycles = p.get_u64("cost.snp_vc");
    c.snp_guest.vmgexit_cycles = p.get_u64("cost.snp_vmgexit");
    c.snp_guest.pvalidate_4k = p.get_u64("cost.pvalidate_4k");
    c.snp_guest.pvalidate_2m = p.get_u64("cost.pvalidate_2m");
    c.arm64_guest_exit = p.get_u64("cost.arm64_guest_exit");
    c.arm64_guest_entry = p.get_u64("cost.arm64_guest_entry");
    c.pkvm_hyp_vcpu_sync = p.get_u64("cost.pkvm_hyp_vcpu_sync");
    c.s2_pte_write = p.get_u64("cost.arm64_s2_pte_write");
    c.tlbi = stage2::TlbiCosts{p.get_u64("cost.arm64_tlbi_ipas2e1is"), p.get_u64("cost.arm64_tlbi_vmalle1is"),
                               p.get_u64("cost.arm64_tlbi_vmalls12e1is"), p.get_u64("cost.arm64_tlbi_local"),
                               p.get_u64("cost.arm64_dsb_ish"), p.get_u64("cost.arm64_dsb_ishst"),
                               p.get_u64("cost.arm64_dsb_nsh"), p.get_u64("cost.arm64_isb")};
    c.snp_guest.rmpadjust_4k = p.get_u64("cost.rmpadjust");
    c.pkvm.host_hvc = p.get_u64("cost.pkvm_hvc");
    c.pkvm.guest_hvc = p.get_u64("cost.pkvm_guest_hvc");
    c.pkvm.cmo_2m = p.get_u64("cost.pkvm_cmo_2m");
    c.pkvm.zero_4k = cost.zero_4k;
    c.pkvm.copy_4k = cost.copy_4k;
    c.pkvm.pin_page = cost.pin_page;
    c.pkvm_conversion = p.get_string("pkvm.conversion") == "copy" ? kvm::arm64::PkvmConversion::copy
                                                                  : kvm::arm64::PkvmConversion::in_place;
    c.pkvm_relinquish_el2 = p.get_string("pkvm.relinquish") == "el2";
    c.kvm_profile = p.get_string("kvm.profile");
    return c;
}

namespace {

// The RMP's Hypervisor-Owned check as the host CPU applies it to the VMM's stores (the
// entry reads are untimed here: the store's own cost is charged by the VMM model).
class RmpHostWriteCheck final : public kvm::HostWriteCheck {
public:
    explicit RmpHostWriteCheck(rmp::Rmp& rmp) : rmp_(rmp) {}
    bool host_write_allowed(Pfn pfn, PgLevel mapping, ExecContext&) override {
        Cycles c = 0;
        return rmp_.host_write_allowed(pfn_to_hpa(pfn), mapping, nullptr, c);
    }

private:
    rmp::Rmp& rmp_;
};

}  // namespace

// A context that records into a fault-path log as it forwards.
class LoggingContext final : public ExecContext {
public:
    LoggingContext(ExecContext& inner, kvm::FaultPathLog& log) : inner_(inner), log_(log) {}
    void charge(StepName step, Cycles c) override {
        inner_.charge(step, c);
        log_.on_charge(step, c);
    }
    void sync() override { inner_.sync(); }
    std::optional<Cycles> local_cycles() const override { return inner_.local_cycles(); }

private:
    ExecContext& inner_;
    kvm::FaultPathLog& log_;
};

Machine::Machine(const scn::Scenario& s, const MachineConfig& cfg)
    : scn_(s), cfg_(cfg), alloc_(Hpa(cfg.host_mem_base), cfg.host_mem_size) {
    proc_ = std::make_unique<kvm::VmmProcess>(mem_, alloc_, cfg_.kvm, cfg_.costs);
    proc_->set_thp(cfg_.host_thp);
    vcpus_.resize(s.vm.vcpus);
    kvm::CycleCounter boot;
    const auto type = kvm::vm_type_from_name(s.vm.type);
    if (!type) throw std::invalid_argument("unknown VM type " + s.vm.type);
    kvm::clear_error_rule();
    const int fd = proc_->ioctl_create_vm(kvm::vm_type_uapi(*type), boot);
    if (fd < 0) {
        create_vm_err_ = -fd;
        create_vm_why_ = kvm::take_error_rule();
        return;
    }
    vm_fd_ = fd;
    kvm_ = proc_->vm(fd);
    // SEV-family guests keep their page tables in encrypted memory (the C-bit is forced
    // on for guest page-table walks, APM vol. 2 §15.34.5): the arch ops say which VMs.
    cfg_.mmu.guest_tables_encrypted = kvm_->arch().guest_tables_private();
    if (cfg_.stage2) {
        // Broadcast TLB maintenance (no IPIs on arm64): each TLBI, DSB and ISB at its own cost.
        const auto& k = cfg_.costs;
        tlbi_domain_ = stage2::TlbiDomain(cfg_.tlbi);
        tlbi_domain_.add_sink(&bbm_);
        if (cfg_.stage2_sink) tlbi_domain_.add_sink(cfg_.stage2_sink);
        // The world switch is EL2's (__kvm_vcpu_run()), not VMRUN / VM entry: every exit and
        // entry of an arm64 guest is charged the arm64 costs. A protected VM runs on EL2's copy
        // of the vCPU, synced with the host's around each run (flush_hyp_vcpu() /
        // sync_hyp_vcpu(), nvhe/hyp-main.c): charged with the exit.
        cfg_.costs.vmexit = cfg_.arm64_guest_exit;
        cfg_.costs.vmentry = cfg_.arm64_guest_entry;
        kvm::arm64::Arm64MmuCosts ac;
        ac.handle_guest_abort = k.kvm_mmu_page_fault;
        ac.mmu_lock = k.mmu_lock;
        ac.pgtable.pte_write = cfg_.s2_pte_write;
        // FEAT_S2FWB (mandatory from Armv8.4; Neoverse N2 is Armv9.0): no CMO before a map,
        // so cmo_per_page is never charged. CTR_EL0.DIC: no I-cache maintenance for exec.
        arm64_ = std::make_unique<kvm::arm64::Arm64Mmu>(*kvm_, mem_, alloc_,
                                                        stage2::kvm_stage2_geometry(cfg_.s2_granule, cfg_.ipa_bits),
                                                        1, tlbi_domain_, ac, true, true);
        // A protected VM: pKVM at EL2 owns its memory and the host's stage 2.
        if (kvm_->type() == kvm::VmType::pkvm) {
            pkvm_ = std::make_unique<kvm::arm64::PkvmHyp>(
                *kvm_, mem_, alloc_, *proc_, *arm64_, tlbi_domain_,
                kvm::arm64::PkvmMemProtect::Memblock{cfg_.host_mem_base, cfg_.host_mem_size, false}, cfg_.pkvm,
                ac.pgtable, cfg_.pkvm_conversion);
            pkvm_->set_kernel_profile(cfg_.kvm_profile);
            cfg_.costs.vmexit += cfg_.pkvm_hyp_vcpu_sync;   // EL2's copy of the vCPU, synced per exit
            kvm_->set_arch_ops(*pkvm_);
        }
        return;
    }
    x86_ = std::make_unique<kvm::X86Mmu>(*kvm_, mem_, alloc_, cfg_.mmu.nested_levels, cfg_.mmu.nested_format);
    // The TDX shared bit the TDP MMU settled on is the one the guest puts in its PTEs.
    cfg_.mmu.shared_gpa_bit = kvm_->arch().shared_gpa_bit(cfg_.mmu.nested_levels);
    // SEV-SNP needs AMD hardware: an snp VM on an AMD preset gets the RMP (covering host
    // memory, the table placed above it 1 MiB aligned, as firmware places it past the
    // memory it describes) and KVM's SNP backend; each vCPU gets the RMP check and the
    // guest its SNP side (attach_vcpu*).
    if (kvm_->type() == kvm::VmType::snp && cfg_.mmu.nested_format == mmu::NestedFormat::npt && cfg_.rmp_enabled) {
        const uint64_t top = cfg_.host_mem_base + cfg_.host_mem_size;
        constexpr uint64_t kMiB = 1ull << 20;
        const rmp::RmpConfig rc{Hpa((top + kMiB - 1) & ~(kMiB - 1)), top >> kPageShift, cfg_.rmp_cache_entries,
                                cfg_.rmp_cache_hit_cycles};
        // A SystemC module when the platform is being elaborated around the machine
        // (docs/systemc.md); the plain model otherwise.
        if (cfg_.hw_modules) {
            rmp_module_ = std::make_unique<rmp::RmpModule>("rmp", rc, mem_);
            rmp_ = &rmp_module_->rmp();
        } else {
            rmp_plain_ = std::make_unique<rmp::Rmp>(rc, mem_);
            rmp_ = rmp_plain_.get();
        }
        snp_ops_ = std::make_unique<kvm::SevSnpOps>(*rmp_, kSnpAsid, cfg_.snp);
        snp_fw_ = std::make_unique<psp::SnpFirmware>(*rmp_, mem_);
        snp_ops_->set_firmware(*snp_fw_, mem_);
        snp_ops_->set_nr_vcpus(s.vm.vcpus);
        kvm_->set_arch_ops(*snp_ops_);
        // The VMM's stores are checked by the same RMP (Hypervisor-Owned, Table 15-39).
        host_write_check_ = std::make_unique<RmpHostWriteCheck>(*rmp_);
        proc_->set_host_write_check(host_write_check_.get());
    }
    // A VM whose private memory a firmware maps (TDX): the module, and KVM's backend behind
    // the mirror root.
    if (x86_->mirror()) {
        tdx::TdxModule* fw = nullptr;
        if (cfg_.hw_modules) {
            tdx_module_ = std::make_unique<tdx::SeamModule>("tdx", mem_);
            fw = &tdx_module_->module();
        } else {
            tdx_plain_ = std::make_unique<tdx::TdxModule>(mem_);
            fw = tdx_plain_.get();
        }
        tdx_ = std::make_unique<kvm::TdxBackend>(*kvm_, *fw, alloc_, cfg_.mmu.nested_levels);
        tdx_->kvm_tdx().set_costs(cfg_.tdx_costs);
        // A TD vCPU exits through the module and enters with TDH.VP.ENTER: every exit and
        // entry KVM charges for it (faults, hypercalls, remote-flush and TRACK kicks) is the
        // module's, as the arm64 world switch replaces the VMX costs above.
        cfg_.costs.vmexit = tdx_->td_exit_cycles();
        cfg_.costs.vmentry = tdx_->td_entry_cycles();
        tdx_->kvm_tdx().set_page_add_in_map(cfg_.tdx_page_add_in_map);
        tdx_->kvm_tdx().set_huge_private(cfg_.tdx_huge_private);
        tdx_->set_idle_ticks(cfg_.tdx_idle_tick_hz, cfg_.freq_mhz);
        x86_->set_external_ops(tdx_.get());
        kvm::X86Mmu* mmu = x86_.get();
        tdx_->kvm_tdx().set_map_private_pfn(
            [mmu](Gfn g, Pfn p, ExecContext& c) { return mmu->kvm_tdp_mmu_map_private_pfn(g, p, c); });
    }
}

cpu::TranslatorFactory Machine::translator_factory() const {
    if (cfg_.stage2) return stage2::Stage2Translator::factory(cfg_.s2);
    return {};
}

std::vector<std::string> Machine::warnings() const {
    const auto type = kvm::vm_type_from_name(scn_.vm.type);
    const kvm::KvmArchOps& ops = kvm_ ? kvm_->arch() : kvm::kvm_default_arch_ops(*type);
    const auto host = cfg_.stage2                                            ? kvm::HostPaging::arm64_stage2
                      : cfg_.mmu.nested_format == mmu::NestedFormat::ept ? kvm::HostPaging::intel_ept
                                                                       : kvm::HostPaging::amd_npt;
    std::vector<std::string> w = ops.unmodelled(host);
    return w;
}

Machine::~Machine() {
    // The vCPUs' hardware MMUs may already be gone: forget them before the teardown
    // flushes TLBs. Then in kernel order: the process closes its files, the MMU goes.
    if (x86_) x86_->detach_vcpus();
    if (tdx_) tdx_->detach_vcpus();
    if (arm64_) arm64_->detach_vcpus();
    if (proc_) proc_->set_host_write_check(nullptr);   // the check goes before the process
    kvm::CycleCounter teardown;
    if (pkvm_) {
        pkvm_->teardown(teardown);
        if (kvm_) kvm_->set_arch_ops(kvm::kvm_default_arch_ops(kvm::VmType::pkvm));
    }
    if (proc_) proc_->exit_mm(teardown);
    pkvm_.reset();
    x86_.reset();
    tdx_.reset();
    arm64_.reset();
    kvm_.reset();
    proc_.reset();
}

// The platform's wiring: KVM's x86 MMU keeps the core's hardware MMU (for its TLB
// flushes), which the x86 translator holds.
void Machine::attach_vcpu(unsigned id, cpu::Translator& t) {
    auto& v = vcpus_.at(id);
    v.hw = &t;
    if (auto* x = dynamic_cast<cpu::X86Translator*>(&t)) attach_vcpu(id, x->hw());
    if (auto* a = dynamic_cast<stage2::Stage2Translator*>(&t); a && arm64_) arm64_->attach_vcpu(a->hw());
}

void Machine::attach_vcpu(unsigned id, mmu::Mmu& hw) {
    (void)vcpus_.at(id);
    if (x86_) x86_->attach_vcpu(hw);
    if (rmp_) {
        rmp_checkers_.push_back(std::make_unique<rmp::RmpChecker>(*rmp_, rmp::GuestCtx{kSnpAsid, 0, true}));
        hw.set_phys_checker(rmp_checkers_.back().get());
    }
    if (tdx_) {
        tdx_->attach_vcpu(hw);
        // KVM_TDX_FINALIZE_VM once every vCPU exists (the VMM finalizes before the first
        // KVM_RUN); from here private faults AUG and pre-fault is allowed. A scenario with a
        // tdx_finalize_vm step builds the TD itself and finalizes it there.
        if (id + 1 == vcpus_.size() && !scn::scenario_has_launch_op(scn_, scn::Launch::Op::tdx_finalize_vm)) {
            kvm::CycleCounter build;
            if (const int r = tdx_->finalize(unsigned(vcpus_.size()), build))
                throw std::runtime_error(fmt::format("KVM_TDX_FINALIZE_VM failed: {}", errno_name(-r)));
        }
    }
}

void Machine::attach_vcpu_module(unsigned id, cpu::Vcpu& module) {
    vcpus_.at(id).module = &module;
    if (x86_) x86_->set_vcpu_requests(id, &module);
    if (rmp_) {
        if (!snp_guest_) {
            // The guest's RAM as its memory map gives it: the scenario's memslots.
            cpu::SnpGuestConfig g = cfg_.snp_guest;
            for (const auto& m : scn_.vm.memslots)
                if (m.as_id == 0 && m.size) g.ram.emplace_back(Gpa(m.gpa), m.size);
            snp_guest_ = std::make_unique<cpu::SnpGuest>(g, *rmp_, rmp::GuestCtx{kSnpAsid, 0, true});
        }
        module.set_vc_handler(snp_guest_.get());
    }
    // The pages the VM type encrypts (SEV/SEV-ES registered memory, SNP guest-owned pages,
    // TD private pages): their DRAM fills pay the memory encryption engine.
    if (kvm_)
        if (const EncryptedPages* enc = kvm_->arch().encrypted_pages(*kvm_))
            module.caches().set_encryption(enc, cfg_.mem_encrypt_fill);
    if (tdx_) tdx_->set_vcpu_requests(id, &module);
}

std::optional<int> Machine::gmem_fd(const std::string& id) const {
    auto it = gmem_fds_.find(id);
    if (it == gmem_fds_.end()) return std::nullopt;
    return it->second;
}

int Machine::resolve_fd(const scn::FdRef& f) const {
    using K = scn::FdRef::Kind;
    switch (f.kind) {
    case K::gmem: {
        auto fd = gmem_fd(f.id);
        return fd ? *fd : proc_->invalid_fd();
    }
    case K::kvm: return proc_->dev_kvm_fd();
    case K::vm: return vm_fd_;
    case K::memfd:
        if (memfd_ < 0) memfd_ = proc_->memfd_create();
        return memfd_;
    case K::invalid: return proc_->invalid_fd();
    case K::raw: return f.raw;
    }
    return -1;
}

int Machine::gmem_fd_of(const kvm::GuestMemfd* g) const {
    for (auto& [id, fd] : gmem_fds_)
        if (proc_->gmem(fd).get() == g) return fd;
    return -1;
}

uapi::kvm_userspace_memory_region2 Machine::region2_of(const scn::MemslotDecl& m) const {
    uapi::kvm_userspace_memory_region2 r{};
    r.slot = (m.as_id << 16) | m.slot;
    r.flags = m.flags;
    r.guest_phys_addr = m.gpa;
    r.memory_size = m.size;
    r.userspace_addr = m.userspace_addr;
    r.guest_memfd_offset = m.guest_memfd_offset;
    if (m.guest_memfd) r.guest_memfd = uint32_t(resolve_fd(*m.guest_memfd));
    return r;
}

std::string Machine::setup(ExecContext& ctx) {
    // Each failure names the rule the simulated KVM applied.
    auto why = [] {
        const std::string r = kvm::take_error_rule();
        return r.empty() ? std::string() : " (" + r + ")";
    };
    if (!kvm_) return fmt::format("/vm/type: KVM_CREATE_VM({}) failed: {}{}", scn_.vm.type, errno_name(create_vm_err_),
                                  create_vm_why_.empty() ? "" : " (" + create_vm_why_ + ")");
    kvm::clear_error_rule();
    for (const auto& g : scn_.vm.guest_memfd) {
        uapi::kvm_create_guest_memfd a{};
        a.size = g.size;
        a.flags = g.flags;
        const int r = proc_->ioctl_create_guest_memfd(vm_fd_, a, ctx);
        if (r < 0) return fmt::format("/vm/guest_memfd: creating '{}' failed: {}{}", g.id, errno_name(-r), why());
        gmem_fds_[g.id] = r;
    }
    for (size_t i = 0; i < scn_.vm.memslots.size(); ++i) {
        const int e = proc_->ioctl_set_user_memory_region2(vm_fd_, region2_of(scn_.vm.memslots[i]), ctx);
        if (e < 0) return fmt::format("/vm/memslots/{}: KVM_SET_USER_MEMORY_REGION2 failed: {}{}", i, errno_name(-e), why());
    }
    for (size_t i = 0; i < scn_.vm.private_ranges.size(); ++i) {
        const auto& pr = scn_.vm.private_ranges[i];
        const int e = kvm_convert_memory(pr.gpa, pr.size, true, "vm.private", ctx);
        if (e < 0)
            return fmt::format("/vm/private/{}: making the range private failed: {}{}", i, errno_name(-e), why());
    }
    return {};
}

// ---------------------------------------------------------------------------------------
// uAPI steps

namespace {

void set_err(StepOutcome& o, int64_t r) { o.err = r < 0 ? int(-r) : 0; }


}  // namespace

StepOutcome Machine::exec_uapi_step(const scn::Step& step, ExecContext& ctx) {
    StepOutcome o = exec_uapi_step_inner(step, ctx);
    if (o.err) o.why = kvm::take_error_rule();
    return o;
}

StepOutcome Machine::exec_uapi_step_inner(const scn::Step& step, ExecContext& ctx) {
    kvm::clear_error_rule();
    StepOutcome o;
    if (!proc_) {
        o.skipped = true;
        o.skip_reason = "no VMM process";
        return o;
    }
    auto& P = *proc_;
    std::visit(
        [&](const auto& op) {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, scn::CreateGuestMemfd>) {
                uapi::kvm_create_guest_memfd a{};
                a.size = op.gmem.size;
                a.flags = op.gmem.flags;
                const int r = P.ioctl_create_guest_memfd(vm_fd_, a, ctx);
                set_err(o, r);
                if (r >= 0) gmem_fds_[op.gmem.id] = r;
            } else if constexpr (std::is_same_v<T, scn::SetUserMemoryRegion2>) {
                if (op.v1) {
                    const scn::MemslotDecl& m = op.region;
                    const uapi::kvm_userspace_memory_region r{(m.as_id << 16) | (m.slot & 0xffff), m.flags, m.gpa, m.size,
                                                              m.userspace_addr};
                    set_err(o, P.ioctl_set_user_memory_region(vm_fd_, r, ctx));
                } else {
                    set_err(o, P.ioctl_set_user_memory_region2(vm_fd_, region2_of(op.region), ctx));
                }
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes>) {
                uapi::kvm_memory_attributes a{op.gpa, op.size, op.attributes, op.flags};
                set_err(o, P.ioctl_set_memory_attributes(vm_fd_, a, ctx));
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes2>) {
                uapi::kvm_memory_attributes2 a{};
                a.offset = op.offset;
                a.size = op.size;
                a.attributes = op.attributes;
                a.flags = op.flags;
                const int r = P.ioctl_set_memory_attributes2(resolve_fd(op.guest_memfd), a, ctx);
                set_err(o, r);
                if (r == -EAGAIN) o.error_offset = a.error_offset;
            } else if constexpr (std::is_same_v<T, scn::Fallocate>) {
                set_err(o, P.fallocate(resolve_fd(op.guest_memfd), op.mode, op.offset, op.len, ctx));
            } else if constexpr (std::is_same_v<T, scn::PreFaultMemory>) {
                // A vCPU ioctl: the VM must be alive and the vCPU must exist.
                if (!x86_ || op.vcpu >= vcpus_.size() || !P.vm(vm_fd_)) {
                    o.err = EBADF;
                    return;
                }
                ctx.charge("ioctl", cfg_.costs.ioctl);
                uapi::kvm_pre_fault_memory r{};
                r.gpa = op.gpa;
                r.size = op.size;
                r.flags = op.flags;
                host_log_.begin();
                LoggingContext lctx(ctx, host_log_);
                const int e = x86_->kvm_vcpu_pre_fault_memory(r, lctx);
                host_log_.end("pre_fault_memory");
                set_err(o, e);
                o.remaining = r.size;
            } else if constexpr (std::is_same_v<T, scn::DirtyLog>) {
                if (!op.clear) {
                    std::vector<uint64_t> bm;
                    const int r = P.ioctl_get_dirty_log(vm_fd_, uapi::kvm_dirty_log{op.slot}, bm, ctx);
                    set_err(o, r);
                    if (r == 0) {
                        std::vector<uint64_t> pages;
                        for (size_t i = 0; i < bm.size(); ++i)
                            for (uint64_t w = bm[i]; w; w &= w - 1) pages.push_back(i * 64 + uint64_t(std::countr_zero(w)));
                        o.dirty = std::move(pages);
                    }
                } else {
                    uapi::kvm_clear_dirty_log l{};
                    l.slot = op.slot;
                    l.first_page = op.first_page;
                    l.num_pages = op.num_pages;
                    // The caller's bitmap, at most 2^28 pages (a 1 TiB slot); KVM rejects a
                    // longer range of a smaller slot before reading it.
                    const uint64_t words = std::min<uint64_t>((uint64_t(op.num_pages) + 63) / 64, 1ull << 22);
                    std::vector<uint64_t> bm(words, 0);
                    if (op.dirty_bitmap) {
                        for (uint64_t p : *op.dirty_bitmap)
                            if (p / 64 < words) bm[p / 64] |= 1ull << (p % 64);
                    } else {
                        for (uint64_t i = 0; i < words; ++i) {
                            const uint64_t left = uint64_t(op.num_pages) - i * 64;
                            bm[i] = left >= 64 ? ~0ull : (1ull << left) - 1;
                        }
                    }
                    set_err(o, P.ioctl_clear_dirty_log(vm_fd_, l, bm, ctx));
                }
            } else if constexpr (std::is_same_v<T, scn::EncryptRegion>) {
                uapi::kvm_enc_region r{op.addr, op.size};
                set_err(o, op.reg ? P.ioctl_memory_encrypt_reg_region(vm_fd_, r, ctx)
                                  : P.ioctl_memory_encrypt_unreg_region(vm_fd_, r, ctx));
            } else if constexpr (std::is_same_v<T, scn::Launch>) {
                o = exec_launch(op, ctx);
            } else if constexpr (std::is_same_v<T, scn::CheckExtension>) {
                const int fd = op.vm_scope ? vm_fd_ : P.dev_kvm_fd();
                const int64_t v = P.ioctl_check_extension(fd, op.cap_nr, ctx);
                if (v < 0) set_err(o, v);
                else o.value = v;
            } else if constexpr (std::is_same_v<T, scn::Close>) {
                const int fd = op.vm ? vm_fd_ : resolve_fd(op.guest_memfd);
                set_err(o, P.close(fd, ctx));
            } else if constexpr (std::is_same_v<T, scn::HostAccess>) {
                using Op = scn::HostAccess::Op;
                kvm::HostAccessResult h;
                if (!op.mapping.empty() && op.op != Op::mmap) {
                    // Through the pointer a named mmap step returned: only explicit
                    // mappings count (munmap()ed or never mapped: SIGSEGV).
                    auto it = host_maps_.find(op.mapping);
                    const std::optional<Hva> base = it == host_maps_.end() ? std::nullopt : it->second;
                    const Hva at = base ? *base + op.offset : Hva(kvm::kTaskSizeMax);
                    switch (op.op) {
                    case Op::read: h = P.host_read_mapped(at, op.size, ctx); break;
                    case Op::write: h = P.host_write_mapped(at, op.size, op.value, ctx); break;
                    case Op::munmap: set_err(o, P.munmap(at, op.size, ctx)); return;
                    case Op::pin:
                    case Op::unpin: {
                        const bool pin = op.op == Op::pin;
                        // GUP on an address without a VMA: EFAULT.
                        if (!P.mapped(at, op.size)) {
                            set_err(o, -EFAULT);
                            return;
                        }
                        set_err(o, pin ? P.pin_user_pages(at, op.size, ctx) : P.unpin_user_pages(at, op.size, ctx));
                        return;
                    }
                    case Op::mmap: break;
                    }
                    if (h.sigbus) o.signal = "SIGBUS";
                    else if (h.sigsegv) o.signal = "SIGSEGV";
                    else set_err(o, h.err);
                    if (h.first_byte) {
                        o.bytes = h.first_byte;
                        o.bytes_mixed = h.bytes_mixed;
                    }
                    return;
                }
                if (op.kernel && pkvm_ && (op.op == Op::read || op.op == Op::write)) {
                    // The host kernel's access (EL1) through the VMM's address space: a page
                    // the host gave away is taken back by force before the access retries
                    // (a VMM access would get SIGSEGV instead). Other VMs have no host stage 2.
                    const uint64_t first = *op.userspace_addr & ~(kPageSize - 1);
                    for (uint64_t a = first; a < *op.userspace_addr + op.size; a += kPageSize) {
                        const auto pfn = P.anon_page(Hva(a));
                        if (!pfn) continue;
                        if (const int r = pkvm_->host_kernel_access(*pfn, ctx); r < 0) {
                            set_err(o, r);
                            return;
                        }
                    }
                }
                switch (op.op) {
                case Op::munmap: return;   // always names a mapping (loader)
                case Op::read:
                    h = op.guest_memfd ? P.host_read_gmem(resolve_fd(*op.guest_memfd), op.offset, op.size, ctx)
                                       : P.host_read(Hva(*op.userspace_addr), op.size, ctx);
                    break;
                case Op::write:
                    h = op.guest_memfd
                            ? P.host_write_gmem(resolve_fd(*op.guest_memfd), op.offset, op.size, op.value, ctx)
                            : P.host_write(Hva(*op.userspace_addr), op.size, op.value, ctx);
                    break;
                case Op::mmap: {
                    const int fd = op.guest_memfd ? resolve_fd(*op.guest_memfd) : -1;
                    const kvm::VmmProcess::MmapResult m = P.mmap(fd, op.offset, op.size, op.map_shared, ctx);
                    set_err(o, m.err);
                    if (!op.mapping.empty()) host_maps_[op.mapping] = m.err ? std::nullopt : std::optional<Hva>(m.addr);
                    return;
                }
                case Op::pin:
                case Op::unpin: {
                    const bool pin = op.op == Op::pin;
                    int64_t r;
                    if (op.guest_memfd) {
                        const int fd = resolve_fd(*op.guest_memfd);
                        r = pin ? P.pin_gmem(fd, op.offset, op.size, ctx) : P.unpin_gmem(fd, op.offset, op.size, ctx);
                    } else {
                        r = pin ? P.pin_user_pages(Hva(*op.userspace_addr), op.size, ctx)
                                : P.unpin_user_pages(Hva(*op.userspace_addr), op.size, ctx);
                    }
                    set_err(o, r);
                    return;
                }
                }
                if (h.sigbus) o.signal = "SIGBUS";
                else if (h.sigsegv) o.signal = "SIGSEGV";
                else set_err(o, h.err);
                if (h.first_byte) {
                    o.bytes = h.first_byte;
                    o.bytes_mixed = h.bytes_mixed;
                }
            } else {
                o.skipped = true;
                o.skip_reason = "guest execution is not a uAPI step";
            }
        },
        step.op);
    return o;
}

// ---------------------------------------------------------------------------------------
// Exits

void Machine::finish_run() {
    kvm::CycleCounter c;
    // A TD is torn down as Linux destroys it (TdxBackend::teardown(), timed apart).
    if (tdx_ && x86_->mirror()) tdx_->teardown(*x86_->mirror(), c);
    if (!pkvm_) return;
    pkvm_->teardown(c);
}

void Machine::arm_vcpu(unsigned vcpu, bool expect_exit) {
    // KVM_RUN: the first one creates the VM at EL2 (kvm_arch_vcpu_run_pid_change()).
    if (kvm_) kvm_->arch().vcpu_run(*kvm_);
    auto& v = vcpus_.at(vcpu);
    v.expect_exit = expect_exit;
    v.exit.reset();
}

// KVM_RUN's vcpu_enter_guest(): the backend's requests and VM-entry checks. A failed entry
// ends the step with its exit (KVM_EXIT_FAIL_ENTRY; a halted AP blocks in KVM_RUN).
bool Machine::enter_guest(unsigned vcpu, ExecContext& ctx) {
    if (!kvm_) return true;
    using R = kvm::KvmArchOps::EntryResult;
    const R r = kvm_->arch().vcpu_enter_guest(*kvm_, vcpu, ctx);
    if (r == R::run) return true;
    auto& v = vcpus_.at(vcpu);
    if (r == R::fail_entry) {
        // KVM_EXIT_FAIL_ENTRY: no VM exit happened (exits.userspace counts exits from the guest).
        v.exit = VcpuExitRecord{"fail_entry", 0, 0, 0, 0,
                                "VMRUN failed (VMEXIT_INVALID): the VMSA page fails the RMP checks"};
    } else {
        v.exit = VcpuExitRecord{"halted", 0, 0, 0, 0, "the vCPU has no VMSA to run (an AP after AP_DESTROY)"};
    }
    return false;
}

std::optional<VcpuExitRecord> Machine::take_exit(unsigned vcpu) {
    auto& v = vcpus_.at(vcpu);
    auto e = std::move(v.exit);
    v.exit.reset();
    return e;
}

// VM entry; a TD enters through the module (TDH.VP.ENTER).
void Machine::vmentry(ExecContext& ctx) const {
    if (tdx_) tdx_->charge_td_entry(ctx);
    else ctx.charge("vmentry", cfg_.costs.vmentry);
}

// VM exit; a TD exits through the module (its exit replaces the VMX one).
void Machine::vmexit(ExecContext& ctx) const {
    if (tdx_) tdx_->charge_td_exit(ctx);
    else ctx.charge("vmexit", cfg_.costs.vmexit);
}

namespace {
// "npf.<private|shared>.<level>": a table, not a format, because every fault ends with one.
std::string_view npf_path_name(bool is_private, PgLevel level) {
    static const std::array<std::array<std::string, 3>, 2> names = [] {
        std::array<std::array<std::string, 3>, 2> n;
        for (int p = 0; p < 2; ++p)
            for (int l = 0; l < 3; ++l)
                n[p][l] = fmt::format("npf.{}.{}", p ? "private" : "shared", level_name(PgLevel(l + 1)));
        return n;
    }();
    return names[is_private][unsigned(level) - 1];
}
}  // namespace

// A fault the VM type makes wait in proportion to its own cycles (the arch ops'
// fault_wait_applies(); a TD's private fault and the idle vCPUs' ticks,
// TdxBackend::charge_idle_ticks()): its cycles are counted here.
cpu::NpfAction Machine::handle_npf(unsigned vcpu, Gpa gpa, uint64_t error_code, ExecContext& vctx) {
    if (!kvm_ || !kvm_->arch().fault_wait_applies(*kvm_, gpa)) return handle_npf_exit(vcpu, gpa, error_code, vctx);
    CountingContext counted(vctx);
    const cpu::NpfAction a = handle_npf_exit(vcpu, gpa, error_code, counted);
    kvm_->arch().charge_fault_wait(counted.total, vctx);
    return a;
}

cpu::NpfAction Machine::handle_npf_exit(unsigned vcpu, Gpa gpa, uint64_t error_code, ExecContext& vctx) {
    auto& v = vcpus_.at(vcpu);
    LoggingContext ctx(vctx, v.log);
    const auto& c = cfg_.costs;
    // A TD's access the secure EPT walk faulted on goes to the TDX module first: a PENDING
    // page is a #VE the guest answers with ACCEPT, without an exit to KVM.
    // A #VE whose 4K ACCEPT itself exits (a 2M PENDING leaf covers the page) comes to KVM
    // as that ACCEPT's exit, at its level.
    PgLevel max_level = v.fault_max_level;
    if (tdx_ && !kvm_->kvm_is_gfn_alias(gpa_to_gfn(gpa)) &&
        tdx_->td_ept_violation_handled_by_guest(vcpu, gpa, ctx, &max_level)) {
        return cpu::NpfAction::guest;
    }
    ++exits_.total;
    ++exits_.npf;
    note_exit(vcpu, gpa.raw(), error_code, false);
    v.log.begin();
    vmexit(ctx);
    // SEV-ES/SNP: an NPF is an automatic exit, which saves and restores the encrypted VMSA.
    if (const Cycles x = kvm_->arch().exit_extra_cycles()) ctx.charge("ae_exit", x);
    // arm64: a stage-2 abort (ESR_EL2 in error_code); x86: #NPF / EPT violation.
    const kvm::PageFaultOutcome out = arm64_ ? arm64_->kvm_handle_guest_abort(gpa, error_code, ctx)
                                             : x86_->kvm_mmu_page_fault(gpa, error_code, ctx, max_level);
    // npf_interception(): when the guest is to re-enter and the NPF carries the RMP bit,
    // the backend repairs the RMP (sev_handle_rmp_fault()).
    if ((out.r == kvm::RET_PF_FIXED || out.r == kvm::RET_PF_SPURIOUS || out.r == kvm::RET_PF_RETRY) &&
        (error_code & mmu::PFERR_GUEST_RMP))
        kvm_->arch().handle_rmp_fault(*kvm_, gpa, error_code, ctx);
    switch (out.r) {
    case kvm::RET_PF_FIXED:
        vmentry(ctx);
        v.log.end(out.fast ? std::string_view("npf.fast") : npf_path_name(out.is_private, out.level));
        return cpu::NpfAction::retry;
    case kvm::RET_PF_SPURIOUS:
        vmentry(ctx);
        v.log.end("npf.spurious");
        return cpu::NpfAction::retry;
    case kvm::RET_PF_RETRY:
        vmentry(ctx);
        v.log.end("npf.retry");
        return cpu::NpfAction::retry;
    case kvm::RET_PF_EMULATE:
        // KVM_EXIT_MMIO to userspace; with no device there the VMM completes it.
        ++exits_.userspace;
        ++exits_.mmio;
        ctx.charge("userspace_exit", c.userspace_exit);
        if (v.expect_exit) {
            v.exit = VcpuExitRecord{"mmio", gpa.raw(), 0, 0, 0, out.why};
            v.log.end("npf.mmio");
            return cpu::NpfAction::stop;
        }
        vmentry(ctx);
        v.log.end("npf.mmio");
        return cpu::NpfAction::emulated;
    default:
        break;
    }
    if (out.exit) {
        ++exits_.userspace;
        ++exits_.memory_fault;
        ctx.charge("userspace_exit", c.userspace_exit);
        if (v.expect_exit) {
            v.exit = VcpuExitRecord{"memory_fault", out.exit->gpa, out.exit->size, out.exit->flags, -out.r, out.why};
            v.log.end("npf.memory_fault");
            return cpu::NpfAction::stop;
        }
        // The VMM converts and re-enters (QEMU kvm_convert_memory()).
        const bool to_private = out.exit->flags & uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE;
        const int e = kvm_convert_memory(out.exit->gpa, out.exit->size, to_private, "memory_fault", ctx);
        if (e < 0) {
            v.exit = VcpuExitRecord{"error", out.exit->gpa, out.exit->size, out.exit->flags, -e,
                                    fmt::format("the VMM could not convert the page: {}", errno_name(-e))};
            v.log.end("npf.memory_fault.convert_failed");
            return cpu::NpfAction::stop;
        }
        vmentry(ctx);
        v.log.end(to_private ? "npf.memory_fault.to_private" : "npf.memory_fault.to_shared");
        return cpu::NpfAction::retry;
    }
    v.exit = VcpuExitRecord{"error", gpa.raw(), 0, 0, -out.r, fmt::format("KVM_RUN failed: {}", out.why)};
    v.log.end("npf.error");
    return cpu::NpfAction::stop;
}

bool Machine::handle_hypercall(unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret,
                               ExecContext& vctx) {
    if (nr == kTdcallAccept) {
        if (!tdx_) throw std::runtime_error("an accept step on a VM without the TDX module");
        auto& v = vcpus_.at(vcpu);
        // The vCPU counts the step as one hypercall exit; a TDCALL is a VM exit to the TDX
        // module (SEAM root), not to KVM: counted with the hypercalls, once per step.
        ++exits_.total;
        ++exits_.hypercall;
        // An ACCEPT that the module turns into an EPT-violation TD exit goes through KVM's
        // fault path like any exit (tdx_handle_ept_violation()), then the guest retries.
        // KVM maps no larger than the ACCEPT's requested level (the huge-page series honours
        // the level in the extended exit qualification; released KVM maps 4K anyway).
        auto exit_to_kvm = [&](uint64_t gpa, PgLevel level) {
            if (v.module) v.module->note_npf_exit();
            v.fault_max_level = level;
            const bool go =
                handle_npf(vcpu, Gpa(gpa), mmu::PFERR_GUEST_FINAL | mmu::PFERR_USER, vctx) != cpu::NpfAction::stop;
            v.fault_max_level = PgLevel::k1G;
            return go;
        };
        *ret = tdx_->guest_accept(vcpu, a0, a1 << kPageShift, PgLevel(a2), vctx, exit_to_kvm);
        return *ret == 0;
    }
    if (pkvm_) return pkvm_hypercall(vcpu, nr, a0, a1, a2, ret, vctx);
    auto& v = vcpus_.at(vcpu);
    LoggingContext ctx(vctx, v.log);
    const auto& c = cfg_.costs;
    ++exits_.total;
    ++exits_.hypercall;
    note_exit(vcpu, a0, nr, true);
    v.log.begin();
    vmexit(ctx);
    // A VMGEXIT the backend handles in the kernel (sev_handle_vmgexit(): SNP AP creation):
    // a0/a1 = SW_EXITINFO1/2, a2 = RAX; the GHCB's answer comes back as
    // SW_EXITINFO1[31:0] | SW_EXITINFO2 << 32.
    if (auto g = kvm_->arch().handle_vmgexit(*kvm_, vcpu, nr, a0, a1, a2, ctx)) {
        ctx.charge("sev_handle_vmgexit", c.hypercall);
        *ret = uint64_t(uint32_t(g->sw_exit_info_1)) | g->sw_exit_info_2 << 32;
        vmentry(ctx);
        v.log.end(g->sw_exit_info_1 ? "vmgexit.ap_creation.refused" : "vmgexit.ap_creation");
        return true;
    }
    ctx.charge("kvm_emulate_hypercall", c.hypercall);
    // __kvm_emulate_hypercall(): guest-visible errors come back in RAX as -KVM_E*.
    constexpr int64_t KVM_ENOSYS = 1000, KVM_EINVAL = 22;
    auto finish = [&](int64_t rax, const char* path) {
        *ret = uint64_t(rax);
        vmentry(ctx);
        v.log.end(path);
        return true;
    };
    if (nr != uapi::KVM_HC_MAP_GPA_RANGE || !cfg_.kvm.exit_hypercall) return finish(-KVM_ENOSYS, "hypercall.enosys");
    const uint64_t gfn = a0 >> kPageShift;
    if (!is_aligned(a0, kPageSize) || a1 == 0 || gfn + a1 < gfn) return finish(-KVM_EINVAL, "hypercall.einval");
    if (tdx_) {
        // A TD's MapGPA TDVMCALL (tdx_map_gpa()): KVM turns it into KVM_EXIT_HYPERCALL
        // (KVM_HC_MAP_GPA_RANGE) exits of at most 2 MiB each (TDX_MAP_GPA_MAX_LEN); the next
        // chunk follows from tdx_complete_vmcall_map_gpa() without re-entering the TD.
        constexpr uint64_t kChunk = 2ull << 20;
        const uint64_t end = a0 + (a1 << kPageShift);
        const bool to_private = a2 & uapi::KVM_MAP_GPA_RANGE_ENCRYPTED;
        for (uint64_t g = a0; g < end; g += kChunk) {
            const uint64_t n = std::min(kChunk, end - g);
            ++exits_.userspace;
            ++exits_.hypercall_user;
            ctx.charge("userspace_exit", c.userspace_exit);
            if (v.expect_exit) {
                v.exit = VcpuExitRecord{"hypercall", g, n, a2, 0, ""};
                v.log.end("tdvmcall.map_gpa");
                return false;
            }
            const int e = kvm_convert_memory(g, n, to_private, "hypercall", ctx);
            if (e) return finish(e, "tdvmcall.map_gpa.failed");
        }
        return finish(0, to_private ? "tdvmcall.map_gpa.to_private" : "tdvmcall.map_gpa.to_shared");
    }
    ++exits_.userspace;
    ++exits_.hypercall_user;
    ctx.charge("userspace_exit", c.userspace_exit);
    if (v.expect_exit) {
        v.exit = VcpuExitRecord{"hypercall", a0, a1 << kPageShift, a2, 0, ""};
        v.log.end("hypercall.map_gpa_range");
        return false;
    }
    const bool to_private = a2 & uapi::KVM_MAP_GPA_RANGE_ENCRYPTED;
    const int e = kvm_convert_memory(a0, a1 << kPageShift, to_private, "hypercall", ctx);
    return finish(e, to_private ? "hypercall.map_gpa_range.to_private" : "hypercall.map_gpa_range.to_shared");
}

// A protected guest's memory hypercalls are SMCCC calls EL2 answers itself, page by page
// (handle___pkvm_guest_share_host / unshare in nvhe/pkvm.c): no exit to the host unless
// MEM_SHARE meets a page not yet donated, which EL2 turns into a stage-2 fault for the host.
// The scenario's map_gpa_range becomes MEM_SHARE (to shared) or MEM_UNSHARE (to private).
bool Machine::pkvm_hypercall(unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret,
                             ExecContext& vctx) {
    using namespace kvm::arm64;
    auto& v = vcpus_.at(vcpu);
    LoggingContext ctx(vctx, v.log);
    const auto& c = cfg_.costs;
    const bool relinquish = nr == ARM_SMCCC_KVM_FUNC_MEM_RELINQUISH;
    const bool to_private = !relinquish && (a2 & uapi::KVM_MAP_GPA_RANGE_ENCRYPTED);
    const char* name = relinquish ? "mem_relinquish" : to_private ? "mem_unshare" : "mem_share";
    // The vCPU counts the step as one hypercall exit: an exit to EL2 (the hypervisor), not
    // to KVM, counted with the hypercalls once per step, as a TD's TDCALL is.
    ++exits_.total;
    ++exits_.hypercall;
    note_exit(vcpu, a0, nr, true);
    v.log.begin();
    int64_t rc = 0;
    if (nr != uapi::KVM_HC_MAP_GPA_RANGE && !relinquish) rc = SMCCC_RET_NOT_SUPPORTED;
    // What the conversion cost, for conversions.* (EL2 converts, not the VMM, but the guest's
    // request is the same one SNP and TDX guests make).
    CountingContext cctx(ctx);
    // One call per PAGE_SIZE page (the guest learnt the granule from HYP_MEMINFO); an
    // unaligned IPA is refused by EL2.
    const uint64_t step = pkvm_->page_size() >> kPageShift;
    for (uint64_t i = 0; i < a1 && rc == 0; i += step) {
        const Gfn gfn = gpa_to_gfn(Gpa(a0)) + i;
        cctx.charge("pkvm: guest hvc at EL2", cfg_.pkvm.guest_hvc);
        if (relinquish) {
            if (!cfg_.pkvm_relinquish_el2) {
                // Upstream 7.1 does not handle MEM_RELINQUISH at EL2: the call goes to the
                // host (a world switch), which does not know it either.
                cctx.charge("vmexit", c.vmexit);
                cctx.charge("kvm_smccc_call_handler", c.hypercall);
                vmentry(cctx);
                rc = SMCCC_RET_NOT_SUPPORTED;
                break;
            }
            rc = pkvm_->mem_relinquish(gfn, cctx);
            continue;
        }
        if (to_private) {
            rc = pkvm_->mem_unshare(gfn, cctx);
            continue;
        }
        bool fault = false;
        rc = pkvm_->mem_share(gfn, cctx, &fault);
        if (fault) {
            // EL2 rewinds the HVC and reports a level-3 write translation fault at the IPA:
            // the host's abort handler donates the page, and the HVC runs again.
            ++exits_.total;
            ++exits_.npf;
            if (v.module) v.module->note_npf_exit();
            cctx.charge("vmexit", c.vmexit);
            namespace E = stage2::esr;
            const uint64_t esr = (E::EC_DABT_LOW << E::EC_SHIFT) | E::IL | E::WNR | E::fsc_fault(3);
            const kvm::PageFaultOutcome out = arm64_->kvm_handle_guest_abort(gfn_to_gpa(gfn), esr, cctx);
            if (out.r < 0) {
                v.exit = VcpuExitRecord{"error", gfn_to_gpa(gfn).raw(), 0, 0, -out.r,
                                        fmt::format("KVM_RUN failed: {}", out.why)};
                v.log.end("pkvm.mem_share.error");
                return false;
            }
            vmentry(cctx);
            cctx.charge("pkvm: guest hvc at EL2", cfg_.pkvm.guest_hvc);
            rc = pkvm_->mem_share(gfn, cctx, &fault);
        }
    }
    if (!relinquish && nr == uapi::KVM_HC_MAP_GPA_RANGE) {
        ConversionRecord rec;
        rec.to_private = to_private;
        rec.gpa = a0;
        rec.size = a1 << kPageShift;
        rec.trigger = "hypercall";
        // Both keep the bytes: in place by an ownership change, or by a copy into a fresh page.
        rec.policy = cfg_.pkvm_conversion == PkvmConversion::copy ? "copy" : "preserve";
        rec.err = rc == SMCCC_RET_INVALID_PARAMETER ? EINVAL : rc == SMCCC_RET_NOT_SUPPORTED ? EOPNOTSUPP : 0;
        rec.cycles = cctx.total;
        conversions_.push_back(rec);
    }
    // The step's errno for the guest's x0: INVALID_PARAMETER is EINVAL, NOT_SUPPORTED EOPNOTSUPP.
    *ret = uint64_t(rc == SMCCC_RET_INVALID_PARAMETER ? -EINVAL : rc == SMCCC_RET_NOT_SUPPORTED ? -EOPNOTSUPP : rc);
    v.log.end(fmt::format("pkvm.{}{}", name, rc ? ".failed" : ""));
    return true;
}

std::string Machine::policy_for(bool to_private) const {
    if (cfg_.conversion_policy != "auto") return cfg_.conversion_policy;
    // Keep the data where the platform can (pKVM and the software-protected VM share
    // pages in place, the pKVM in-place conversion discussion and the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series); otherwise ZERO towards the host, NONE towards the
    // guest (ZERO to private is refused, the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series).
    if (kvm_ && kvm_->arch().supports_content_policy(kvm::ContentPolicy::preserve, to_private)) return "preserve";
    return to_private ? "none" : "zero";
}

int Machine::kvm_convert_memory(uint64_t gpa, uint64_t size, bool to_private, const char* trigger, ExecContext& ctx) {
    CountingContext cctx(ctx);
    ConversionRecord rec;
    rec.to_private = to_private;
    rec.gpa = gpa;
    rec.size = size;
    rec.trigger = trigger;
    auto done = [&](int e) {
        rec.err = e < 0 ? -e : 0;
        rec.cycles = cctx.total;
        conversions_.push_back(rec);
        return e;
    };
    if (!kvm_) return done(-ENODEV);
    if (size == 0 || !is_aligned(gpa, kPageSize) || !is_aligned(size, kPageSize)) return done(-EINVAL);
    const Gfn start = gpa_to_gfn(Gpa(gpa)), end = start + (size >> kPageShift);
    // QEMU kvm_convert_memory(): a range no memslot backs is ignored when it goes to
    // shared (a guest may convert MMIO) and an error when it goes to private; memory
    // without a guest_memfd behind it cannot convert at all. Without this the VMM would
    // "convert" a private fault outside guest_memfd and re-enter into the same fault.
    // (A VM type without private memory is left to KVM, whose refusal names its rule.)
    if (kvm_->has_private_mem()) {
        uint64_t backed = 0;
        bool without_gmem = false;
        kvm_->memslots(0).for_each_in_gfn_range(start, end, [&](const kvm::kvm_memory_slot& s) {
            backed += std::min(end, s.end_gfn()) - std::max(start, s.base_gfn);
            without_gmem |= !s.has_gmem();
        });
        if (backed == 0 && !to_private) return done(0);
        if (without_gmem || backed != end - start)
            return done(kvm::error_rule(-EINVAL, "the VMM converts only memory a guest_memfd memslot backs (QEMU "
                                                 "kvm_convert_memory()): part of the range has no such memslot"));
    }
    if (cfg_.kvm.vm_memory_attributes) {
        // KVM_SET_MEMORY_ATTRIBUTES on the VM, then discard the copy no longer in use:
        // converting to shared frees the private pages (PUNCH_HOLE on the guest_memfd).
        uapi::kvm_memory_attributes a{gpa, size, to_private ? uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, 0};
        const int r = proc_->ioctl_set_memory_attributes(vm_fd_, a, cctx);
        if (r < 0) return done(r);
        if (!to_private) {
            kvm_->memslots(0).for_each_in_gfn_range(start, end, [&](const kvm::kvm_memory_slot& s) {
                if (!s.has_gmem() || !s.gmem.file) return;
                const int fd = gmem_fd_of(s.gmem.file);
                if (fd < 0) return;
                const Gfn cs = std::max(start, s.base_gfn), ce = std::min(end, s.end_gfn());
                const uint64_t off = (s.gmem.pgoff + (cs - s.base_gfn)) << kPageShift;
                proc_->fallocate(fd, uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE, off,
                                 (ce - cs) << kPageShift, cctx);
            });
        }
        return done(0);
    }
    // In-place conversion: KVM_SET_MEMORY_ATTRIBUTES2 on each guest_memfd range behind
    // the gfns, with the content policy the VMM asks for.
    const std::string pol = policy_for(to_private);
    rec.policy = pol;
    const uint64_t flags = pol == "preserve" ? uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE
                           : pol == "none"   ? uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE
                                             : uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_ZERO;
    int err = 0;
    uint64_t covered = 0;
    kvm_->memslots(0).for_each_in_gfn_range(start, end, [&](const kvm::kvm_memory_slot& s) {
        if (err || !s.has_gmem() || !s.gmem.file) return;
        const int fd = gmem_fd_of(s.gmem.file);
        if (fd < 0) return;
        const Gfn cs = std::max(start, s.base_gfn), ce = std::min(end, s.end_gfn());
        uapi::kvm_memory_attributes2 a{};
        a.offset = (s.gmem.pgoff + (cs - s.base_gfn)) << kPageShift;
        a.size = (ce - cs) << kPageShift;
        a.attributes = to_private ? uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
        a.flags = flags;
        const int r = proc_->ioctl_set_memory_attributes2(fd, a, cctx);
        if (r < 0) err = r;
        covered += ce - cs;
    });
    if (err) return done(err);
    // Part of the range has no guest_memfd behind it (one was closed, or the VM has no
    // private memory): nothing can hold its state.
    if (covered != end - start)
        return done(kvm::error_rule(
            -EINVAL, kvm_->has_private_mem()
                         ? "the VMM converts in place (kvm.config.vm_memory_attributes=false): part of the range has "
                           "no guest_memfd memslot to hold its private state"
                         : "this VM type has no private memory (kvm_supported_mem_attributes is 0 unless "
                           "kvm_arch_has_private_mem: sw_protected, snp, tdx and pkvm VMs; not default, sev, sev_es)"));
    return done(0);
}

std::map<std::string, kvm::FaultPathAgg> Machine::fault_paths() const {
    std::map<std::string, kvm::FaultPathAgg> all;
    for (const auto& v : vcpus_) v.log.merge_into(all);
    host_log_.merge_into(all);
    return all;
}

std::optional<std::string> Machine::check_invariants() {
    // arm64: no valid descriptor changed without break-before-make (Arm ARM D8.14, in the
    // architectural reading: permission and software-bit changes in place are allowed).
    if (cfg_.stage2 && !bbm_.ok()) {
        const auto& v = bbm_.violations().front();
        return fmt::format("stage 2: {} (descriptor at {:#x}, event {})", v.what, v.loc, v.step);
    }
    // pKVM: the host stage 2 maps no page the host gave away, and the guest's agrees.
    if (pkvm_)
        if (std::string bad = pkvm_->check(); !bad.empty()) return bad;
    if (!kvm_ || !x86_) return std::nullopt;
    // No private guest_memfd page is mapped into the VMM (in-place conversion unmaps the
    // host before a page turns private). Bounded: a run with millions of pages allocated
    // skips this part rather than spending a scan per step.
    for (const auto& gfd : gmem_fds_) {
        const std::string& id = gfd.first;
        auto g = proc_->gmem(gfd.second);
        if (!g || g->nr_pages_allocated() > (1u << 16)) continue;
        std::optional<std::string> bad;
        g->page_cache().for_each(0, g->npages(), [&](uint64_t s, uint64_t e, Pfn first) {
            for (uint64_t i = s; i < e && !bad; ++i) {
                if (g->host_map_count(i) && (g->kvm_gmem_get_attributes(i) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) &&
                    !cfg_.kvm.vm_memory_attributes)
                    bad = fmt::format("guest_memfd '{}' page {} is private and mapped by the VMM", id, i);
                // SEV-SNP: a page the VMM maps must be hypervisor-owned (a host write to a
                // guest-owned page is an RMP #PF).
                else if (rmp_ && g->host_map_count(i) && rmp_->lookup(first + (i - s)).assigned)
                    bad = fmt::format("guest_memfd '{}' page {} is guest-owned in the RMP and mapped by the VMM", id, i);
            }
        });
        if (bad) return bad;
    }
    // SPTEs agree with the attributes: a gfn KVM maps private must be private now, and
    // its frame must be the guest_memfd page bound at that gfn.
    std::optional<std::string> bad;
    // With a shared GPA bit (TDX) a leaf at an aliased gfn is a shared mapping and must map
    // a shared gfn; one below the bit is a private mapping and must map a private gfn.
    const bool direct_bits = kvm_->gfn_direct_bits != 0;
    // The NPT/EPT as the hardware finds it in memory: through the debug port when the
    // platform has one (no timing, no counters, no cache state), so checking a run after
    // every step changes none of its results.
    auto for_each_spte = [this](auto&& fn) {
        if (debug_) x86_->tdp().for_each_leaf([this](Pfn t, uint64_t (&e)[512]) { return debug_->read_page(t, e); }, fn);
        else x86_->tdp().for_each_leaf(fn);
    };
    for_each_spte([&](Gfn root_gfn, const kvm::SpteLeaf& leaf) {
        if (bad) return;
        const Gfn gfn = kvm_->kvm_gfn_strip_direct_bits(root_gfn);
        if (direct_bits) {
            const bool alias = kvm_->kvm_is_gfn_alias(root_gfn);
            const uint64_t want = alias ? 0 : uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
            if (!kvm_->kvm_range_has_memory_attributes(gfn, gfn + level_pages(leaf.level),
                                                       uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, want)) {
                bad = fmt::format("{} SPTE at gfn {:#x} ({} alias) maps {} gfns", level_name(leaf.level),
                                  root_gfn.raw(), alias ? "shared" : "private", alias ? "private" : "shared");
                return;
            }
        }
        const kvm::kvm_memory_slot* slot = kvm_->gfn_to_memslot(0, gfn);
        if (!slot) {
            bad = fmt::format("SPTE for gfn {:#x} outside every memslot", gfn.raw());
            return;
        }
        if (leaf.level != PgLevel::k4K) {
            // A huge leaf covers shared gfns only, unless guest_memfd has huge folios
            // (gmem.max_order): then it may map private gfns, all of them, from one folio
            // of at least its size that starts at the leaf's first gfn.
            if (!kvm_->has_private_mem()) return;
            const uint64_t n = level_pages(leaf.level);
            const bool priv = kvm_->kvm_mem_is_private(gfn) && slot->has_gmem() && slot->gmem.file &&
                              cfg_.kvm.gmem_max_order > 0;
            if (!kvm_->kvm_range_has_memory_attributes(gfn, gfn + n, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE,
                                                       priv ? uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE : 0)) {
                bad = fmt::format("{} SPTE at gfn {:#x} covers private gfns", level_name(leaf.level), gfn.raw());
                return;
            }
            if (priv) {
                const uint64_t index = slot->gmem.pgoff + (gfn - slot->base_gfn);
                uint64_t head = 0;
                const unsigned order = slot->gmem.file->folio_order(index, &head);
                const auto pfn = slot->gmem.file->filemap_lookup(index);
                if (!pfn || *pfn != leaf.pfn || (1ull << order) < n || head != index)
                    bad = fmt::format("private {} SPTE at gfn {:#x} does not map one guest_memfd folio of its size",
                                      level_name(leaf.level), gfn.raw());
            }
            return;
        }
        if (kvm_->kvm_mem_is_private(gfn)) {
            if (!slot->has_gmem() || !slot->gmem.file) {
                bad = fmt::format("private gfn {:#x} mapped from a slot without guest_memfd", gfn.raw());
                return;
            }
            const uint64_t index = slot->gmem.pgoff + (gfn - slot->base_gfn);
            auto pfn = slot->gmem.file->filemap_lookup(index);
            if (!pfn || *pfn != leaf.pfn)
                bad = fmt::format("private gfn {:#x} maps pfn {:#x}, not its guest_memfd page", gfn.raw(),
                                  leaf.pfn.raw());
            // No private page is mapped for the host.
            else if (slot->gmem.file->host_map_count(index))
                bad = fmt::format("private gfn {:#x} (guest_memfd page {}) is mapped by the host", gfn.raw(), index);
        }
    });
    if (!bad && rmp_) {
        // SEV-SNP: the RMP agrees with the NPT and the attributes. A private SPTE maps a page
        // this guest owns at that gfn (sev_gmem_prepare ran before the mapping), never a
        // hypervisor-owned one; a shared SPTE maps hypervisor-owned pages only.
        for_each_spte([&](Gfn gfn, const kvm::SpteLeaf& leaf) {
            if (bad) return;
            PgLevel rl;
            const rmp::RmpEntry e = rmp_->lookup(leaf.pfn, &rl);
            if (kvm_->kvm_mem_is_private(gfn) && leaf.level == PgLevel::k4K) {
                const uint64_t off = rl == PgLevel::k2M ? (leaf.pfn.raw() & 511) * kPageSize : 0;
                if (!e.assigned || e.asid != kSnpAsid || e.gpa.raw() + off != gfn_to_gpa(gfn).raw())
                    bad = fmt::format("private SPTE at gfn {:#x} maps pfn {:#x}, which the RMP does not give this guest "
                                      "at that gfn",
                                      gfn.raw(), leaf.pfn.raw());
            } else if (kvm_->kvm_mem_is_private(gfn)) {
                // A huge private leaf (gmem.max_order 9) needs an RMP entry of its size at its
                // frame (sev_gmem_max_mapping_level()), else every access fails Page-Size.
                if (!e.assigned || e.asid != kSnpAsid || rl != leaf.level || e.gpa != gfn_to_gpa(gfn))
                    bad = fmt::format("private {} SPTE at gfn {:#x} maps pfn {:#x} without a {} RMP entry for this "
                                      "guest at that gfn",
                                      level_name(leaf.level), gfn.raw(), leaf.pfn.raw(), level_name(leaf.level));
            } else if (!kvm_->kvm_mem_is_private(gfn)) {
                const bool big = leaf.level != PgLevel::k4K;
                if (e.assigned || (big && rmp_->read_entry(Pfn(leaf.pfn.raw() & ~511ull)).subpage_count))
                    bad = fmt::format("shared SPTE at gfn {:#x} maps guest-owned pfn {:#x}", gfn.raw(), leaf.pfn.raw());
            }
        });
    }
    // TDX: the secure EPT agrees with KVM's mirror, the attributes and the PAMT.
    if (!bad && tdx_ && x86_->mirror()) bad = tdx_->check(*x86_->mirror());
    return bad;
}

// ---------------------------------------------------------------------------------------
// Trace (sim/trace.hpp)

namespace {

// One vCPU's exits on its trace track: a slice per exit named by its fault path, the KVM
// steps nested in it as they are charged, a flow from the vmexit to the vmentry, and the
// MMU invalidations the exit finished on the vCPU's invalidation track.
class ExitTracer final : public kvm::FaultPathObserver {
public:
    ExitTracer(Trace& t, Machine& m, const cpu::Vcpu& module, uint32_t track, std::string name,
               const uint64_t& gpa, const uint64_t& code, const bool& hypercall)
        : t_(t), m_(m), module_(module), track_(track), name_(std::move(name)), gpa_(gpa), code_(code),
          hypercall_(hypercall) {}
    void fault_begin() override {
        on_ = t_.want_exit();
        t0_ = module_.cycles_now();
        acc_ = 0;
        started_ = false;
        flow_ = on_ ? t_.new_flow_id() : 0;
    }
    void fault_charge(std::string_view step, Cycles c) override {
        if (!on_) return;
        // The flow starts at the exit's first charge and ends at the resume (fault_end).
        t_.slice(track_, step, t0_ + acc_, c, {}, acc_ == 0 && !started_ ? flow_ : 0, 0);
        t_.hw_slice(name_, step, t0_ + acc_, c);
        started_ = true;
        acc_ += c;
        m_.trace_new_invalidations(t_, inv_track_, name_, t0_ + acc_);
    }
    void fault_end(std::string_view path) override {
        if (!on_) return;
        on_ = false;
        std::vector<TraceArg> args;
        if (hypercall_) {
            args = {TraceArg::num("nr", code_), TraceArg::num("gpa", gpa_)};
        } else {
            args = {TraceArg::num("gpa", gpa_), TraceArg::num("gfn", gpa_ >> kPageShift),
                    TraceArg::num("error_code", code_),
                    TraceArg::flag("private", path.find("private") != std::string_view::npos)};
            if (const auto lv = path.rfind('.'); lv != std::string_view::npos && path.size() - lv <= 3)
                args.push_back(TraceArg::text("level", std::string(path.substr(lv + 1))));
        }
        t_.slice(track_, path, t0_, acc_, std::move(args));
        if (started_) t_.slice(track_, "resume", t0_ + acc_, 0, {}, 0, flow_);
    }

private:
    Trace& t_;
    Machine& m_;
    const cpu::Vcpu& module_;
    uint32_t track_;
    std::string name_;
    const uint64_t& gpa_;
    const uint64_t& code_;
    const bool& hypercall_;
    std::optional<uint32_t> inv_track_;
    bool on_ = false, started_ = false;
    Cycles t0_ = 0, acc_ = 0;
    uint64_t flow_ = 0;
};

// One vCPU's page walks, 1 in TraceOptions::walk_sample, on a track of their own ("vCPU 0:
// page walks"): a slice per walk spanning its latency, named by how it ended, with the
// address, the memory references it made and the page size it found.
class WalkTracer final : public cpu::WalkObserver {
public:
    WalkTracer(Trace& t, std::string name) : t_(t), name_(std::move(name)) {}
    void walk(Cycles start, Gva va, bool gpa_only, const mmu::TranslateResult& r) override {
        if (!t_.want_walk()) return;
        if (!track_) track_ = t_.thread_track(name_ + ": page walks");
        using S = mmu::TranslateResult::Status;
        std::vector<TraceArg> args;
        args.push_back(TraceArg::num(gpa_only ? "gpa" : "gva", va.raw()));
        args.push_back(TraceArg::num("mem_refs", r.mem_refs));
        const char* name = "walk";
        switch (r.status) {
        case S::ok:
            args.push_back(TraceArg::num("hpa", r.hpa.raw()));
            args.push_back(TraceArg::text("page_size", level_name(r.page_size)));
            break;
        case S::npf:
            name = "walk: nested fault";
            args.push_back(TraceArg::num("fault_gpa", r.fault_gpa.raw()));
            args.push_back(TraceArg::num("error_code", r.error_code));
            break;
        case S::guest_page_fault:
            name = "walk: guest #PF";
            args.push_back(TraceArg::num("fault_level", r.fault_level));
            break;
        case S::vc:
            name = "walk: #VC";
            args.push_back(TraceArg::num("fault_gpa", r.fault_gpa.raw()));
            break;
        }
        t_.slice(*track_, name, start, r.cycles, std::move(args));
    }

private:
    Trace& t_;
    std::string name_;
    std::optional<uint32_t> track_;
};

}  // namespace

void Machine::set_trace(Trace* t, const std::vector<uint32_t>& vcpu_tracks) {
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        auto& v = vcpus_[i];
        if (!t || !v.module) {
            v.log.set_observer(nullptr);
            v.tracer.reset();
            if (v.module) v.module->set_walk_observer(nullptr);
            v.walk_tracer.reset();
            continue;
        }
        v.tracer = std::make_unique<ExitTracer>(*t, *this, *v.module, vcpu_tracks.at(i), fmt::format("vCPU {}", i),
                                                v.exit_gpa, v.exit_code, v.exit_is_hypercall);
        v.log.set_observer(v.tracer.get());
        v.walk_tracer = std::make_unique<WalkTracer>(*t, fmt::format("vCPU {}", i));
        v.module->set_walk_observer(v.walk_tracer.get());
    }
    invalidations_seen_ = kvm_ ? kvm_->stats().invalidations.size() : 0;
}

void Machine::trace_new_invalidations(Trace& t, std::optional<uint32_t>& track, const std::string& thread, Cycles end) {
    for (const auto* r : take_new_invalidations()) {
        if (!track) track = t.thread_track(thread + ": MMU invalidations");
        t.slice(*track, fmt::format("invalidate {}", kvm::invalidate_cause_name(r->cause)), end - std::min(end, r->cycles),
                r->cycles,
                {TraceArg::num("start_gfn", r->start_gfn), TraceArg::num("end_gfn", r->end_gfn),
                 TraceArg::num("sptes_zapped", r->sptes_zapped), TraceArg::flag("remote_flush", r->flush_remote)});
    }
}

void Machine::note_exit(unsigned vcpu, uint64_t gpa, uint64_t code, bool hypercall) {
    auto& v = vcpus_[vcpu];
    v.exit_gpa = gpa;
    v.exit_code = code;
    v.exit_is_hypercall = hypercall;
}

std::vector<const kvm::InvalidationRecord*> Machine::take_new_invalidations() {
    std::vector<const kvm::InvalidationRecord*> out;
    if (!kvm_) return out;
    const auto& all = kvm_->stats().invalidations;
    for (; invalidations_seen_ < all.size(); ++invalidations_seen_) out.push_back(&all[invalidations_seen_]);
    return out;
}

}  // namespace hvsim
