// One vCPU as a SystemC module. It runs access loops (sequential, strided, seeded
// random), translating each access through its MMU and touching real bytes, and it
// takes exits into the hypervisor (VcpuHost) on nested faults and hypercalls.
// Loosely timed: cycles accumulate in a tlm_quantumkeeper and the thread only
// yields to the kernel when the quantum is used up or at a lock boundary.
//
// Its hardware are child modules: `mmu` (the platform's Translator: TLBs and walker) whose socket
// is bound to `caches` (MemHierarchy, this core's L1D/L2/LLC). The platform binds
// `caches.dram` to a DRAM target, and `caches.phys` and the vCPU's own `data` socket
// (its loads and stores) to physical memory. The bytes of a data access move on `data`;
// its latency is the caches' (MemHierarchy::data_cycles(), so data and page-table lines
// compete for the same sets), or a flat data_access_cycles with cache.data off.
#pragma once

#include <systemc>
#include <tlm_utils/tlm_quantumkeeper.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "models/common/exec_context.hpp"
#include "models/common/vcpu_requests.hpp"
#include "models/cpu/address_source.hpp"
#include "models/cpu/guest_os.hpp"
#include "models/cpu/translator.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mem/tlm_mem.hpp"
#include "models/mmu/mmu.hpp"

namespace hvsim::cpu {

// The hypervisor side of a vCPU (KVM and the VMM above it).
enum class NpfAction : uint8_t {
    retry,      // re-enter the guest; the access translates again
    emulated,   // the access was emulated (MMIO): it completes without touching memory
    stop,       // the run stops here (an exit the step expects, or an unresolvable error)
    guest,      // no exit: the fault became an exception the guest handled (a TD's #VE); retry
};

class VcpuHost {
public:
    virtual ~VcpuHost() = default;
    // #NPF / EPT violation.
    virtual NpfAction handle_npf(unsigned vcpu, Gpa gpa, uint64_t error_code, ExecContext& ctx) = 0;
    // VMMCALL/VMCALL. *ret receives the guest's RAX. Same return convention.
    virtual bool handle_hypercall(unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret,
                                  ExecContext& ctx) = 0;
    // KVM_RUN before the guest runs a step: the requests the vCPU handles and the VM
    // entry's own checks. false: the vCPU did not enter (its exit is the host's to report).
    virtual bool enter_guest(unsigned /*vcpu*/, ExecContext&) { return true; }
};

// The guest kernel's #VC handler (SEV-ES/SNP, vector 29) for what the MMU's
// physical-access checker raises: SNP's PAGE_NOT_VALIDATED (0x404). Returns false when
// the vCPU stopped (an exit that ends the step, or the guest terminated).
class Vcpu;
class VcHandler {
public:
    virtual ~VcHandler() = default;
    virtual bool handle_vc(Vcpu& v, Gva gva, Gpa gpa, uint64_t code) = 0;
    // A VMMCALL of guest code: in an SEV-ES/SNP guest it raises #VC (SVM_EXIT_VMMCALL) and
    // the handler turns it into a VMGEXIT through the GHCB (charges, before the exit).
    virtual void before_hypercall(Vcpu&) {}
    // The guest kernel is about to ask for a page-state change of [gpa, gpa + npages * 4K)
    // (KVM_HC_MAP_GPA_RANGE): what it does first (SNP: rescind validation before a change
    // to shared, __set_pages_state()). false: the guest terminated.
    virtual bool before_map_gpa_range(Vcpu&, Gpa, uint64_t /*npages*/, bool /*to_private*/) { return true; }
    // Work of guest kernel code that a step names by a number no hypervisor knows (SNP: an
    // AP's creation, which executes RMPADJUST and issues its own VMGEXIT). nullopt: not
    // such a call (it goes to the host as a hypercall); else whether the vCPU kept running,
    // with the guest-visible result in *ret.
    virtual std::optional<bool> guest_call(Vcpu&, uint64_t /*nr*/, uint64_t /*a0*/, uint64_t /*a1*/,
                                           uint64_t /*a2*/, uint64_t* /*ret*/) {
        return std::nullopt;
    }
};

// Sees every page walk of a vCPU (a translation that missed every TLB, faulting or not),
// with the cycle it started: the trace's sampled walk slices. Not called on TLB hits.
class WalkObserver {
public:
    virtual ~WalkObserver() = default;
    // gpa_only: a guest-physical translation (the guest kernel's table accesses, guest
    // instructions on a gPA); otherwise va is the guest-virtual address of a data access.
    virtual void walk(Cycles start, Gva va, bool gpa_only, const mmu::TranslateResult& r) = 0;
};

struct AccessSpec {
    enum class Pattern : uint8_t { seq, stride, random } pattern = Pattern::seq;
    bool write = false;
    Gpa gpa;
    uint64_t size = 0;
    uint64_t stride = 4096;
    uint64_t count = 0;
    unsigned width = 0;
    uint8_t value = 0;
    bool enc = false;          // the guest addresses it as private (C-bit / shared bit clear)
    uint64_t seed = 1;
    // Replay: the accesses come from a trace (pattern, stride, width and write are the
    // trace's); instructions between accesses cost cycles_per_instruction each.
    AddressSource* source = nullptr;
    double cycles_per_instruction = 0;
};

struct HypercallSpec {
    uint64_t nr = 0, a0 = 0, a1 = 0, a2 = 0;
};

struct WorkResult {
    uint64_t accesses = 0;
    bool stopped = false;              // an exit ended the work early
    bool interrupted = false;          // request_stop() ended it early
    std::optional<uint8_t> byte0;      // reads: first byte value seen
    bool bytes_mixed = false;          // reads: not every byte equal to byte0
    uint64_t hypercall_ret = 0;
};

struct VcpuStats {
    uint64_t accesses = 0, reads = 0, writes = 0;
    uint64_t npf_exits = 0, hypercall_exits = 0, mmio_accesses = 0;
    uint64_t guest_page_faults = 0;
    uint64_t vc_exceptions = 0;   // #VC raised by the physical-access checker
    Cycles data_cycles = 0;
    uint64_t quantum_syncs = 0;   // yields to the SystemC kernel because the quantum was used up
};

struct VcpuConfig {
    unsigned id = 0;
    mmu::MmuConfig mmu;
    MemHierarchyConfig mem;
    uint64_t period_ps = 333;           // one core cycle
    Cycles data_access_cycles = 4;      // a load or store when !cache_data
    // Loads and stores go through the caches (cache.data); false: each costs
    // data_access_cycles and leaves the caches alone (the model before cache.data).
    bool cache_data = true;
    SharedCache* llc = nullptr;         // the LLC this core shares (nullptr: a private one)
    Cycles wide_store_line_cycles = 4;   // each further line of a store wider than a line (cost.wide_store_line)
    Cycles clear_page_cycles = 256;      // the guest kernel's clear_page() of a page-table page (cost.guest_clear_page)
    bool guest_tables_enc = false;      // the guest kernel reaches its page tables encrypted (SEV/SNP)
    // The platform's translation hardware; empty: the x86 MMU configured by `mmu`.
    TranslatorFactory make_translator;
};

class Vcpu : public sc_core::sc_module,
             public VcpuRequestTarget,
             public tlm::tlm_bw_transport_if<>,
             private GuestPhysAccess,
             private ExecContext,
             private CoreClock {
public:
    SC_HAS_PROCESS(Vcpu);
    Vcpu(sc_core::sc_module_name name, const VcpuConfig& cfg, GuestOs* guest, VcpuHost& host);

    // Loads and stores (guest data and the guest kernel's page-table writes).
    tlm::tlm_initiator_socket<> data;
    // The translation hardware (child module "mmu"), whatever the architecture.
    Translator& translator() { return *xlat_; }
    const Translator& translator() const { return *xlat_; }
    MemHierarchy& caches() { return caches_; }

    // Hand the vCPU its next piece of work; `done` fires when it has finished.
    void post_access(const AccessSpec& a);
    void post_hypercall(const HypercallSpec& h);
    sc_core::sc_event& done() { return done_; }
    bool busy() const { return busy_; }
    const WorkResult& result() const { return result_; }
    // A model error raised while running the work (the run cannot continue meaningfully).
    const std::string& error() const { return error_; }

    // The context KVM charges while handling this vCPU's exits.
    ExecContext& ctx() { return *this; }

    // The guest's #VC handler (SNP runs); without one a #VC is a model error.
    void set_vc_handler(VcHandler* h) { vc_ = h; }
    // The trace's walk recorder (nullptr: none).
    void set_walk_observer(WalkObserver* o) { walk_obs_ = o; }
    // For a guest instruction acting on a guest-physical page (SNP PVALIDATE): its nested
    // translation, taking NPFs like an access but without the physical-access check (the
    // instruction makes its own). nullopt: the vCPU stopped.
    std::optional<mmu::TranslateResult> translate_for_insn(Gpa gpa);
    // An NPF the instruction itself raised, and a hypercall from guest kernel code (the
    // GHCB page-state change): exits to the host. false: the vCPU stopped.
    bool insn_npf(Gpa gpa, uint64_t error_code);
    bool guest_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t* ret);
    const MemHierarchy& caches() const { return caches_; }
    // Transactions the data socket sent, DMI grants it used (0 on the direct path).
    uint64_t data_transactions() const { return data_tr_count_; }
    uint64_t dmi_reads() const { return dmi_reads_; }

    // tlm_bw_transport_if
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph,
                                       sc_core::sc_time& t) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;
    const VcpuStats& stats() const { return stats_; }
    // An EPT-violation exit the host took on this vCPU's behalf outside translate() (a TD
    // guest's ACCEPT that the TDX module turned into a TD exit).
    void note_npf_exit() { ++stats_.npf_exits; }
    unsigned id() const { return cfg_.id; }
    // Guest accesses done by every vCPU so far, published for a progress display that
    // samples it from another host thread.
    static uint64_t progress_accesses() { return progress_.load(std::memory_order_relaxed); }
    // Ends every vCPU's current work early (within 4096 accesses), for a run that was
    // interrupted; async-signal-safe. The flag stays set for the rest of the process.
    static void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
    static bool stop_requested() noexcept { return stop_.load(std::memory_order_relaxed); }
    // How many accesses run_access makes for `a` (a misaligned one that crosses a page
    // counts once here, twice in the stats): the progress line's total.
    static uint64_t planned_accesses(const AccessSpec& a);
    // Cycles this vCPU has consumed (its local time, quantum offset included); the caches'
    // clock for fills that complete while the vCPU goes on.
    Cycles cycles_now() const override;

    // VcpuRequestTarget: in guest mode while it runs an access step outside an exit.
    bool in_guest_mode() const override { return busy_ && kind_ == Kind::access && !in_host_; }
    // Paid on the next translation that misses the L1 TLB, which is the next access
    // after the flush that comes with such a request (no work on the TLB-hit path).
    void charge_before_guest(Cycles c) override { before_guest_ += c; }
    // Idle: no work posted (the guest's idle loop halts the vCPU between steps).
    bool idle() const override { return !busy_; }
    Cycles request_cycles() const { return request_cycles_; }

    // The access loop on the concrete translation hardware Hw (vcpu_loop.hpp); called
    // by the Translator from run_access(), once per access step.
    template <class Hw>
    void run_access_on(Hw& hw, const AccessSpec& a);

private:
    void end_of_elaboration() override;
    void thread();
    // The data path: PhysMem directly when `data` is bound to hvsim's PhysMemTarget,
    // else the socket (DMI for reads when granted, b_transport otherwise).
    const uint8_t* load_page(Hpa a, unsigned width);   // bytes at a (nullptr: zeros)
    void store_fill(Hpa a, uint8_t value, size_t n);
    uint64_t load64(Hpa a);
    void store64(Hpa a, uint64_t v);
    void data_transport(tlm::tlm_command cmd, uint64_t a, uint8_t* p, unsigned n, bool fill);
    template <class Hw>
    // walked: set when the access missed the hit path (it walked, or faulted).
    [[gnu::always_inline]] inline bool one_access(Hw& hw, uint64_t gpa, unsigned width, const AccessSpec& a,
                                                  bool& walked);
    // Replay: the accesses come from a.source (a memory trace), vcpu_loop.hpp.
    template <class Hw>
    void run_replay_on(Hw& hw, const AccessSpec& a);
    // Translate with the fault loop: guest #PF handled in the guest, nested faults
    // handed to the hypervisor. Returns nullopt when the vCPU stopped; *emulated is set
    // when the hypervisor emulated the access instead (MMIO).
    std::optional<mmu::TranslateResult> translate(Gva va, mmu::AccessType at, bool enc, bool gpa_only,
                                                  bool* emulated = nullptr);

    // ExecContext
    void charge(StepName step, Cycles c) override;
    std::optional<Cycles> local_cycles() const override { return cycles_now(); }
    void sync() override;
    // GuestPhysAccess
    std::optional<uint64_t> read_gpa64(Gpa a, ExecContext& ctx) override;
    std::optional<uint64_t> read_gpa64_for_update(Gpa a, ExecContext& ctx) override;
    bool write_gpa64(Gpa a, uint64_t v, ExecContext& ctx) override;
    bool zero_gpa_page(Gpa page, ExecContext& ctx) override;

    // Cycles are added to a plain counter and handed to the quantum keeper in batches:
    // the hot loop then costs an integer add, and time is exact at every sync point.
    void add_cycles(Cycles c) { pending_ += c; }
    // The latency of a data load or store of the line holding a.
    Cycles data_cycles(Hpa a, bool write = false) {
        return cfg_.cache_data ? caches_.data_cycles(a, write) : cfg_.data_access_cycles;
    }
    void flush_time() {
        if (pending_) {
            qk_.inc(sc_core::sc_time::from_value(pending_ * cfg_.period_ps));
            pending_ = 0;
        }
    }
    void sync_now() {
        flush_time();
        qk_.sync();
    }
    void maybe_sync() {
        if (pending_ < batch_cycles_) return;
        flush_time();
        if (qk_.need_sync()) {
            ++stats_.quantum_syncs;
            qk_.sync();
        }
    }
    // Cycles gathered before the quantum keeper is asked: at most kMaxBatchCycles, and never
    // more than the global quantum, so that a short sim.quantum_ns is honoured.
    static constexpr Cycles kMaxBatchCycles = 1024;
    Cycles batch_cycles_ = kMaxBatchCycles;

    VcpuConfig cfg_;
    std::unique_ptr<Translator> xlat_;
    MemHierarchy caches_;
    PhysMem* mem_ = nullptr;
    tlm::tlm_generic_payload data_tr_;
    FillExtension fill_ext_;
    tlm::tlm_dmi dmi_;
    bool dmi_valid_ = false;
    uint64_t data_tr_count_ = 0, dmi_reads_ = 0;
    alignas(8) uint8_t buf_[kPageSize];
    GuestOs* guest_;
    VcpuHost& host_;
    VcHandler* vc_ = nullptr;
    WalkObserver* walk_obs_ = nullptr;
    bool insn_xlate_ = false;           // translate_for_insn() in progress
    tlm_utils::tlm_quantumkeeper qk_;
    Cycles pending_ = 0;
    sc_core::sc_event work_ev_, done_;
    enum class Kind : uint8_t { none, access, hypercall } kind_ = Kind::none;
    AccessSpec access_;
    HypercallSpec hypercall_;
    bool busy_ = false;
    bool in_host_ = false;              // handling an exit (handle_npf / handle_hypercall)
    int last_enc_ = -1;                 // shared-bit VMs: alias of the last access step (-1: none yet)
    Cycles before_guest_ = 0;           // requests to pay before running guest code again
    Cycles request_cycles_ = 0;         // total paid for requests from other threads
    WorkResult result_;
    std::string error_;
    VcpuStats stats_;
    static std::atomic<uint64_t> progress_;
    static std::atomic<bool> stop_;
};

}  // namespace hvsim::cpu
