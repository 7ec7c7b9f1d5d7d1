// One simulated host running one VM, without the SystemC layer: host memory, the VMM
// process, the simulated KVM, its x86 MMU, the vCPUs' hardware MMUs, and the userspace
// VMM model (what QEMU does on an exit). `hvsim run` wraps it in SystemC threads;
// `hvsim diff-kvm` drives its uAPI steps directly.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/costs.hpp"
#include "kernel/fault_path.hpp"
#include "kernel/kvm.hpp"
#include "kernel/kvm_config.hpp"
#include "kernel/arm64/kvm_mmu.hpp"
#include "kernel/arm64/pkvm.hpp"
#include "kernel/mmu/x86_mmu.hpp"
#include "kernel/vmx/tdx_backend.hpp"
#include "kernel/process.hpp"
#include "kernel/svm/sev_snp.hpp"
#include "models/psp/snp_firmware.hpp"
#include "models/cpu/guest_os.hpp"
#include "models/cpu/snp_guest.hpp"
#include "models/rmp/rmp_module.hpp"
#include "models/tdx/seam_module.hpp"
#include "models/cpu/vcpu.hpp"
#include "models/mem/cache.hpp"
#include "models/mem/debug_port.hpp"
#include "models/mem/dram.hpp"
#include "models/mem/page_alloc.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mmu/mmu.hpp"
#include "models/rmp/rmp_checker.hpp"
#include "models/stage2/bbm_checker.hpp"
#include "models/stage2/stage2_mmu.hpp"
#include "models/stage2/tlbi.hpp"
#include "sim/outcome.hpp"
#include "sim/params.hpp"
#include "sim/scenario.hpp"

namespace hvsim {

class Trace;

// Everything a run reads from the resolved parameters.
struct MachineConfig {
    uint64_t freq_mhz = 3000;
    uint64_t period_ps = 333;
    uint64_t quantum_ns = 1000;
    Cycles data_access_cycles = 4;
    bool cache_data = true;   // cache.data: loads and stores go through the caches
    Cycles wide_store_line = 4;     // cost.wide_store_line
    Cycles guest_clear_page = 256;  // cost.guest_clear_page
    MemHierarchyConfig mem;
    DramConfig dram;
    mmu::MmuConfig mmu;
    // arm64 platforms (mmu.nested_format "stage2"): stage-2 instead of NPT/EPT, with the
    // VM's IPA size from mmu.nested_levels (4K granule: 2 -> 32, 3 -> 40, 4 -> 48 bits).
    bool stage2 = false;
    unsigned ipa_bits = 40;
    stage2::Granule s2_granule = stage2::Granule::k4K;   // s2.granule
    stage2::Stage2Config s2;
    // arm64: the world switch (replacing cost.vmexit / cost.vmentry), pKVM's hyp-vCPU copy per
    // exit, the stage-2 descriptor store and the TLB maintenance (cost.arm64_*).
    Cycles arm64_guest_exit = 0, arm64_guest_entry = 0, pkvm_hyp_vcpu_sync = 0, s2_pte_write = 0;
    stage2::TlbiCosts tlbi;
    kvm::KvmConfig kvm;
    kvm::KvmCosts costs;
    kvm::TdxCosts tdx_costs;        // cost.tdx_* (TDX VMs)
    uint64_t tdx_idle_tick_hz = 0;  // tdx.idle_tick_hz
    bool tdx_page_add_in_map = true;   // kvm.config.tdx_page_add_in_map (6.19 INIT_MEM_REGION flow)
    bool tdx_huge_private = false;     // kvm.config.tdx_huge_private (2M private leaves, huge-page series)
    uint64_t host_mem_base = 4ull << 30, host_mem_size = 512ull << 30;
    bool host_thp = true;
    std::string conversion_policy = "auto";   // vmm.conversion_policy
    // SEV-SNP (an snp VM on an AMD preset, rmp.enabled): the RMP and both sides of it.
    bool rmp_enabled = true;
    unsigned rmp_cache_entries = 0;
    Cycles rmp_cache_hit_cycles = 2;
    Cycles mem_encrypt_fill = 0;     // mem.encrypt_fill_cycles
    kvm::SnpCosts snp;
    cpu::SnpGuestConfig snp_guest;   // ram: filled from the scenario's memslots
    // pKVM (a pkvm VM on an arm64 preset): the EL2 hypervisor's costs and choices.
    kvm::arm64::PkvmCosts pkvm;
    kvm::arm64::PkvmConversion pkvm_conversion = kvm::arm64::PkvmConversion::in_place;   // pkvm.conversion
    bool pkvm_relinquish_el2 = false;                                                   // pkvm.relinquish
    std::string kvm_profile;   // kvm.profile: which kernel a protected VM's rules come from
    // arm64: an observer of every stage-2 store, barrier and TLBI from the start (hvsim run
    // --casemate); not a parameter.
    stage2::TraceSink* stage2_sink = nullptr;
    // The VM's hardware (the RMP, the TDX module) as SystemC modules, children of the module
    // under construction: set by a caller that builds the machine while elaborating its
    // platform (sim/engine.cpp builds it inside `top`, so they are top.rmp, top.tdx). Off,
    // the plain models (unit tests, the fuzz harness: no platform, nothing elaborated). Not
    // a parameter.
    bool hw_modules = false;
};
MachineConfig machine_config(const ParamSet& p, const scn::Scenario& s);

// The exit a vCPU step stopped at (what KVM_RUN returned to the selftest).
struct VcpuExitRecord {
    std::string reason;          // "memory_fault", "hypercall", "mmio", "error"
    uint64_t gpa = 0, size = 0, flags = 0;
    int err = 0;                 // KVM_RUN's errno (EFAULT for memory_fault)
    std::string detail;
};

struct ConversionRecord {
    bool to_private = false;
    uint64_t gpa = 0, size = 0;
    std::string trigger;         // "memory_fault", "hypercall", "vm.private"
    std::string policy;          // content policy used (in-place conversion)
    int err = 0;
    Cycles cycles = 0;
};

class Machine : public cpu::VcpuHost {
public:
    // Builds host, VMM process and VM; vm.* of the scenario is set up by setup().
    Machine(const scn::Scenario& s, const MachineConfig& cfg);
    ~Machine() override;

    // KVM_CREATE_VM for vm.type: 0 or the errno (the VM is then absent).
    int create_vm_err() const { return create_vm_err_; }
    // vm.guest_memfd, vm.memslots and vm.private through the uAPI. Empty string on success,
    // else a one-line reason.
    std::string setup(ExecContext& ctx);

    // The hardware MMU of each vCPU (created by the caller, then attached here), and its
    // SystemC module when there is one.
    void attach_vcpu(unsigned id, cpu::Translator& hw);
    // An x86 MMU used without SystemC (tests, the fuzz harness).
    void attach_vcpu(unsigned id, mmu::Mmu& hw);
    void attach_vcpu_module(unsigned id, cpu::Vcpu& module);
    // The invariant checks read the simulated tables through this debug port (untimed,
    // uncounted: transport_dbg) when the platform provides one; without SystemC (tests,
    // the fuzz harness) they read the kernel's own mapping of them.
    void attach_debug_port(DebugMemPort* port) { debug_ = port; }

    // A host-side uAPI step (ioctl, host access, close, pre-fault). Steps that are not
    // uAPI calls come back skipped.
    // Runs one uAPI step; a failure carries the rule that failed (StepOutcome::why).
    StepOutcome exec_uapi_step(const scn::Step& step, ExecContext& ctx);

    // Before a vCPU step: whether it expects an exit (then the vCPU stops there).
    void arm_vcpu(unsigned vcpu, bool expect_exit);
    std::optional<VcpuExitRecord> take_exit(unsigned vcpu);

    // cpu::VcpuHost
    cpu::NpfAction handle_npf(unsigned vcpu, Gpa gpa, uint64_t error_code, ExecContext& ctx) override;
    // The fault itself (the #VE of a TD, or the exit to KVM and back).
    cpu::NpfAction handle_npf_exit(unsigned vcpu, Gpa gpa, uint64_t error_code, ExecContext& ctx);
    bool handle_hypercall(unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret,
                          ExecContext& ctx) override;
    bool enter_guest(unsigned vcpu, ExecContext& ctx) override;

    // The vCPU work of an "accept" step: the TDX guest's TDG.MEM.PAGE.ACCEPT over a range
    // (a TDCALL to the module, given to handle_hypercall() under this number, which is no
    // KVM hypercall: a0 = gpa, a1 = 4K pages, a2 = the accept level).
    static constexpr uint64_t kTdcallAccept = 0x7464780000000006ull;
    // The VMM's reaction to a conversion request (QEMU kvm_convert_memory()).
    int kvm_convert_memory(uint64_t gpa, uint64_t size, bool to_private, const char* trigger, ExecContext& ctx);

    // State for results and invariants.
    const MachineConfig& config() const { return cfg_; }
    PhysMem& mem() { return mem_; }
    HostPageAllocator& allocator() { return alloc_; }
    kvm::VmmProcess& process() { return *proc_; }
    kvm::Kvm* kvm() { return kvm_.get(); }
    kvm::X86Mmu* x86() { return x86_.get(); }
    // The TD's module and KVM backend (VMs with mirrored TDP), else nullptr.
    // The TDX module's SystemC module (its socket is bound by the platform to physical
    // memory), when MachineConfig::hw_modules and the VM is a TD; nullptr otherwise.
    tdx::SeamModule* tdx_module() { return tdx_module_.get(); }
    const tdx::SeamModule* tdx_module() const { return tdx_module_.get(); }
    kvm::TdxBackend* tdx() { return tdx_.get(); }
    const kvm::TdxBackend* tdx() const { return tdx_.get(); }
    kvm::arm64::Arm64Mmu* arm64() { return arm64_.get(); }
    // pKVM at EL2 (a protected VM on an arm64 preset), else nullptr.
    kvm::arm64::PkvmHyp* pkvm() { return pkvm_.get(); }
    const kvm::arm64::PkvmHyp* pkvm() const { return pkvm_.get(); }
    // The end of the run: the VMM destroys the VM (pKVM: teardown reclaims every page; a
    // TD: private pages removed, the HKID released, every TD page reclaimed).
    void finish_run();
    // The vCPUs' translation hardware for this platform (empty: the x86 MMU).
    cpu::TranslatorFactory translator_factory() const;
    const std::vector<ConversionRecord>& conversions() const { return conversions_; }
    // What this run rests on that is not modelled, as the VM type's backend (its arch
    // ops) says for the platform's nested paging: results.json "warnings".
    std::vector<std::string> warnings() const;
    std::map<std::string, kvm::FaultPathAgg> fault_paths() const;
    struct ExitCounts {
        uint64_t total = 0, npf = 0, hypercall = 0, userspace = 0, memory_fault = 0, mmio = 0, hypercall_user = 0;
    };
    const ExitCounts& exits() const { return exits_; }
    int vm_fd() const { return vm_fd_; }
    std::optional<int> gmem_fd(const std::string& id) const;
    // Record each vCPU exit (its fault path step by step) and the MMU invalidations it made
    // into `t` on the vCPUs' tracks (sim/trace.hpp); call after the vCPUs are attached.
    void set_trace(Trace* t, const std::vector<uint32_t>& vcpu_tracks);
    // The MMU invalidations finished since the last call, for the thread that asks
    // (its trace track): records appended to kvm stats in between.
    std::vector<const kvm::InvalidationRecord*> take_new_invalidations();
    // Puts those on `thread`'s invalidation track (created on first use), each ending at
    // `end`, the time of the charge that finished it.
    void trace_new_invalidations(Trace& t, std::optional<uint32_t>& track, const std::string& thread, Cycles end);

    // Checks cross-model invariants (test builds): no private page mapped for the host,
    // SPTEs agree with attributes. Returns a description of the first violation.
    std::optional<std::string> check_invariants();
    // SEV-SNP runs: the RMP, KVM's SNP backend and the guest's SNP side (nullptr otherwise).
    const rmp::Rmp* rmp() const { return rmp_; }
    // The RMP's SystemC module (its table socket is bound by the platform to physical
    // memory), when MachineConfig::hw_modules; nullptr otherwise.
    rmp::RmpModule* rmp_module() { return rmp_module_.get(); }
    const rmp::RmpModule* rmp_module() const { return rmp_module_.get(); }
    const kvm::SevSnpOps* snp_ops() const { return snp_ops_.get(); }
    const cpu::SnpGuest* snp_guest() const { return snp_guest_.get(); }
    const psp::SnpFirmware* snp_firmware() const { return snp_fw_.get(); }
    // The launch measurement of a run that has launch steps (results.json "launch"): the
    // SEV-SNP launch digest or the TDX MRTD, as 96 hex digits.
    struct LaunchMeasurement {
        std::string kind;              // "snp_launch_digest" | "tdx_mrtd"
        std::string digest;
        bool final = false;            // SNP_LAUNCH_FINISH / TDH.MR.FINALIZE done
        uint64_t pages = 0;            // pages put in by the launch (SNP: VMSAs included)
        uint64_t measured_pages = 0;   // of those, pages whose contents were measured
    };
    std::optional<LaunchMeasurement> launch_measurement() const;
    // DRAM fills (demand and prefetch) of encrypted lines over all vCPUs.
    uint64_t encrypted_fills() const {
        uint64_t n = 0;
        for (const auto& v : vcpus_)
            if (v.module) n += v.module->caches().encrypted_fills();
        return n;
    }

private:
    struct VcpuSlot {
        cpu::Translator* hw = nullptr;
        cpu::Vcpu* module = nullptr;
        bool expect_exit = false;
        std::optional<VcpuExitRecord> exit;
        kvm::FaultPathLog log;
        std::unique_ptr<kvm::FaultPathObserver> tracer;   // set_trace
        std::unique_ptr<cpu::WalkObserver> walk_tracer;    // set_trace
        uint64_t exit_gpa = 0, exit_code = 0;             // the exit in flight, for its trace slice
        bool exit_is_hypercall = false;
        // The mapping level the exit in flight allows (a TD's ACCEPT exit: the accept's level).
        PgLevel fault_max_level = PgLevel::k1G;
    };
    int resolve_fd(const scn::FdRef& f) const;
    uapi::kvm_userspace_memory_region2 region2_of(const scn::MemslotDecl& m) const;
    int gmem_fd_of(const kvm::GuestMemfd* g) const;
    std::string policy_for(bool to_private) const;
    void vmentry(ExecContext& ctx) const;
    void vmexit(ExecContext& ctx) const;
    // A protected guest's hypercall, handled at EL2 (MEM_SHARE / MEM_UNSHARE / MEM_RELINQUISH).
    bool pkvm_hypercall(unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret,
                        ExecContext& vctx);

    const scn::Scenario& scn_;
    MachineConfig cfg_;
    PhysMem mem_;
    HostPageAllocator alloc_;
    std::unique_ptr<kvm::VmmProcess> proc_;
    std::shared_ptr<kvm::Kvm> kvm_;
    std::unique_ptr<kvm::X86Mmu> x86_;
    // The TDX module (firmware on the platform, KVM's backend calls it): a SystemC module
    // "tdx" (top.tdx) when MachineConfig::hw_modules, else the plain model. Declared before
    // the backend, which holds it.
    std::unique_ptr<tdx::SeamModule> tdx_module_;
    std::unique_ptr<tdx::TdxModule> tdx_plain_;
    std::unique_ptr<kvm::TdxBackend> tdx_;
    stage2::TlbiDomain tlbi_domain_;
    stage2::BbmChecker bbm_;   // arm64: every live descriptor change of the run, checked
    std::unique_ptr<kvm::arm64::Arm64Mmu> arm64_;
    std::unique_ptr<kvm::arm64::PkvmHyp> pkvm_;
    int vm_fd_ = -1;
    mutable int memfd_ = -1;       // one memfd per run, so closing it is seen by later steps
    int create_vm_err_ = 0;
    std::string create_vm_why_;
    StepOutcome exec_uapi_step_inner(const scn::Step& step, ExecContext& ctx);
    std::map<std::string, int> gmem_fds_;
    // Named host mappings: the address a host mmap step returned (none when it failed, as
    // a C variable holding MAP_FAILED would point at nothing mapped).
    std::map<std::string, std::optional<Hva>> host_maps_;
    std::vector<VcpuSlot> vcpus_;
    std::vector<ConversionRecord> conversions_;
    kvm::FaultPathLog host_log_;   // pre-fault and other host-thread paths
    ExitCounts exits_;
    size_t invalidations_seen_ = 0;
    void note_exit(unsigned vcpu, uint64_t gpa, uint64_t code, bool hypercall);
    // SEV-SNP: the RMP lives in mem_; the backend is the VM's arch ops (set_arch_ops).
    static constexpr uint16_t kSnpAsid = 1;
    // The RMP: a SystemC module "rmp" (a child of the module being built: top.rmp) when
    // MachineConfig::hw_modules, else the plain model.
    std::unique_ptr<rmp::RmpModule> rmp_module_;
    std::unique_ptr<rmp::Rmp> rmp_plain_;
    rmp::Rmp* rmp_ = nullptr;
    DebugMemPort* debug_ = nullptr;
    std::unique_ptr<psp::SnpFirmware> snp_fw_;   // the SEV firmware on the Secure Processor
    std::unique_ptr<kvm::SevSnpOps> snp_ops_;
    std::unique_ptr<kvm::HostWriteCheck> host_write_check_;   // the RMP's check of VMM stores
    // Confidential-VM launch steps (sim/machine_launch.cpp).
    StepOutcome exec_launch(const scn::Launch& op, ExecContext& ctx);
    // The VMM's source buffer of a launch ioctl: `pages` host pages holding `value`.
    std::vector<Pfn> launch_source(uint64_t pages, uint8_t value);
    void free_launch_source(const std::vector<Pfn>& pages);
    std::vector<std::unique_ptr<rmp::RmpChecker>> rmp_checkers_;
    std::unique_ptr<cpu::SnpGuest> snp_guest_;
};

}  // namespace hvsim
