// The in-memory form of a scenario file (the contract in docs/scenario.md and
// scenarios/scenario.schema.json). The loader fills it; the elaborated top runs it;
// `diff-kvm` replays its uAPI steps on the host's /dev/kvm.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim::scn {

// A file descriptor named in a step. Scenarios name guest_memfds by id; to exercise
// KVM's fd checks they may also name other kinds of descriptor.
struct FdRef {
    enum class Kind { gmem, kvm, vm, memfd, invalid, raw } kind = Kind::gmem;
    std::string id;   // Kind::gmem: the guest_memfd's id
    int raw = -1;     // Kind::raw: the descriptor number itself
};

struct GmemDecl {
    std::string id;
    uint64_t size = 0;
    uint64_t flags = 0;          // GUEST_MEMFD_FLAG_* bits
};

struct MemslotDecl {
    uint32_t slot = 0;           // slot id (bits 15:0)
    uint32_t as_id = 0;          // address space (bits 31:16 of kvm_userspace_memory_region2.slot)
    uint32_t flags = 0;          // KVM_MEM_* bits
    uint64_t gpa = 0;
    uint64_t size = 0;
    uint64_t userspace_addr = 0;
    std::optional<FdRef> guest_memfd;
    uint64_t guest_memfd_offset = 0;
};

struct Range {
    uint64_t gpa = 0;
    uint64_t size = 0;
};

struct VmDecl {
    std::string type = "default";   // default | sw_protected | sev | sev_es | snp | tdx | pkvm
    unsigned vcpus = 1;
    unsigned guest_paging_levels = 4;  // 0 = none, 4, 5
    PgLevel guest_page_size = PgLevel::k4K;
    std::optional<Range> guest_pt_region;
    std::vector<GmemDecl> guest_memfd;
    std::vector<MemslotDecl> memslots;
    std::vector<Range> private_ranges;
    // TDX: "lazy" (the guest accepts a page on the #VE of its first touch) or "eager" (it
    // accepts every vm.private range at boot, before the first step).
    std::string accept = "lazy";
};

// ---- steps ----------------------------------------------------------------

struct CreateGuestMemfd { GmemDecl gmem; };
// v1 = KVM_SET_USER_MEMORY_REGION (struct kvm_userspace_memory_region: no guest_memfd fields).
struct SetUserMemoryRegion2 { MemslotDecl region; bool v1 = false; };
struct SetMemoryAttributes { uint64_t gpa = 0, size = 0, attributes = 0, flags = 0; };
struct SetMemoryAttributes2 {
    FdRef guest_memfd;
    uint64_t offset = 0, size = 0, attributes = 0;
    uint64_t flags = 0;          // content policy bits (see kernel/uapi.hpp)
};
struct Fallocate { FdRef guest_memfd; int mode = 0; uint64_t offset = 0, len = 0; };
struct PreFaultMemory { unsigned vcpu = 0; uint64_t gpa = 0, size = 0, flags = 0; };
struct EncryptRegion { bool reg = true; uint64_t addr = 0, size = 0; };
struct CheckExtension { std::string cap; int64_t cap_nr = -1; bool vm_scope = true; };
struct Close { bool vm = false; FdRef guest_memfd; };
// KVM_GET_DIRTY_LOG (struct kvm_dirty_log) / KVM_CLEAR_DIRTY_LOG (struct kvm_clear_dirty_log).
struct DirtyLog {
    bool clear = false;
    uint32_t slot = 0;                       // as_id << 16 | slot id
    uint64_t first_page = 0;                 // clear
    uint32_t num_pages = 0;                  // clear
    // clear: the dirty_bitmap as page numbers relative to first_page; absent = all num_pages.
    std::optional<std::vector<uint64_t>> dirty_bitmap;
};

struct HostAccess {
    // pin/unpin: a long-term reference on the pages (an IOMMU/VFIO or io_uring pin) that
    // makes a later shared->private conversion fail with EAGAIN.
    // munmap: unmap [offset, offset+size) of a named mapping (kvm_munmap()).
    enum class Op { read, write, mmap, pin, unpin, munmap } op = Op::read;
    std::optional<FdRef> guest_memfd;   // through the implicit whole-file mapping of the guest_memfd at offset ...
    uint64_t offset = 0;
    std::optional<uint64_t> userspace_addr;  // ... or through the VMM's mapping ...
    // ... or through the mapping a host mmap step named (offset from its start). On an mmap
    // step: the name it gives its mapping ("" = unnamed).
    std::string mapping;
    uint64_t size = 0;
    uint8_t value = 0;                 // write: the byte written
    bool map_shared = true;            // mmap: MAP_SHARED (false: MAP_PRIVATE)
    // read/write "who": "kernel": the host kernel's own access (EL1) to the VMM's memory, as
    // vhost's copy_from_user()/copy_to_user() make it, instead of the VMM's (EL0). Under pKVM
    // a kernel access to a page the host gave away is not a SIGSEGV: the kernel's fault
    // handler takes the page back by force (pkvm_force_reclaim_guest_page()).
    bool kernel = false;
};

// pattern "replay": a real program's memory trace drives the accesses (sim/replay.hpp).
struct Replay {
    std::string file;                  // absolute path (the scenario gives it relative to itself)
    std::string format;                // "lackey" | "champsim"
    double cycles_per_instruction = 0; // instructions between accesses, charged as core cycles
};

struct Access {
    enum class Pattern { seq, stride, random, replay } pattern = Pattern::seq;
    enum class Op { read, write } op = Op::read;
    uint64_t gpa = 0;
    uint64_t size = 0;
    uint64_t stride = 4096;            // bytes between accesses (stride pattern)
    uint64_t count = 0;                // accesses; 0 = cover the range (seq, stride) or size/64 (random)
    unsigned width = 0;                // bytes per access, 1..64 and a power of two; 0 = 64 for seq
                                       // (cache-line stores cover every byte), 8 otherwise
    uint8_t value = 0;                 // write: the byte pattern stored
    std::optional<bool> is_private;    // how the guest addresses it (C-bit / shared bit / pKVM)
    std::optional<Replay> replay;      // pattern replay
};

struct MapGpaRange {
    uint64_t gpa = 0, size = 0;
    bool to_private = false;
    // TDX guest: TDG.MEM.PAGE.ACCEPT of [gpa, gpa + size) at accept_level (with the 4K
    // fallback) instead of a MapGPA hypercall ("hypercall": {"accept": ...}).
    bool accept = false;
    PgLevel accept_level = PgLevel::k4K;
    // pKVM guest: MEM_RELINQUISH of [gpa, gpa + size) ("hypercall": {"mem_relinquish": ...}).
    bool relinquish = false;
    // SEV-SNP guest: bring an AP up from a new VMSA page at gpa, or take it down
    // ("hypercall": {"snp_ap_create": ...}): RMPADJUST of the page and the AP Creation VMGEXIT.
    bool ap_create = false;
    uint32_t ap_request = 1;           // SVM_VMGEXIT_AP_CREATE 1, SVM_VMGEXIT_AP_DESTROY 2
    uint64_t apic_id = 0;
    uint8_t vmpl = 0;                  // the VMPL the guest code runs at
    bool gpa_given = true;             // destroy without vmsa_gpa: the AP's current VMSA
};

// Confidential-VM launch ioctls (KVM_MEMORY_ENCRYPT_OP): SEV-SNP's KVM_SEV_SNP_LAUNCH_START /
// _UPDATE / _FINISH on the VM, TDX's KVM_TDX_INIT_MEM_REGION (a vCPU ioctl) and
// KVM_TDX_FINALIZE_VM. The source image is `size` bytes of `value` in the VMM's memory.
struct Launch {
    enum class Op { snp_launch_start, snp_launch_update, snp_launch_finish, tdx_init_mem_region, tdx_finalize_vm };
    Op op = Op::snp_launch_start;
    uint64_t gpa = 0, size = 0;
    uint8_t value = 0;                 // every byte of the source image
    uint8_t page_type = 1;             // snp_launch_update: KVM_SEV_SNP_PAGE_TYPE_* (NORMAL 1)
    bool measure = true;               // tdx_init_mem_region: KVM_TDX_MEASURE_MEMORY_REGION
    uint64_t policy = 0x30000;         // snp_launch_start: SMT + RSVD_MBO, QEMU's default
    uint64_t flags = 0;                // the command's flags field (must be 0)
    unsigned vcpu = 0;                 // tdx_init_mem_region: the vCPU fd it is issued on
};
const char* launch_op_name(Launch::Op op);

struct Step;

struct ExitExpect {
    std::string reason;                // "memory_fault", "hypercall", ...
    std::optional<uint64_t> gpa, size, flags;
};

struct Expect {
    std::optional<std::string> err;          // "ok" or an errno name
    std::optional<uint64_t> error_offset;
    std::optional<uint64_t> remaining;       // pre_fault_memory: size left
    std::optional<ExitExpect> exit;
    std::optional<std::string> signal;       // "SIGBUS" or "SIGSEGV"
    std::optional<uint8_t> bytes;            // every byte read equals this
    std::optional<int64_t> value;            // check_extension result
    std::optional<uint64_t> dirty_pages;     // get_dirty_log: number of bits set
    std::optional<std::vector<uint64_t>> dirty_bitmap;   // get_dirty_log: exactly these pages (slot-relative)
    std::optional<std::string> launch_digest;   // snp_launch_finish / tdx_finalize_vm: 96 hex digits
    std::optional<std::string> status;          // snp_ap_create: "ok", an RMPADJUST status or a GHCB error
};

struct Step {
    std::string pointer;                     // JSON pointer of the step, for messages
    std::string name;                        // optional label
    // Which vCPUs run it: empty for host/ioctl steps; all vCPUs for "all".
    std::vector<unsigned> vcpus;
    std::variant<std::monostate, CreateGuestMemfd, SetUserMemoryRegion2, SetMemoryAttributes,
                 SetMemoryAttributes2, Fallocate, PreFaultMemory, EncryptRegion, CheckExtension,
                 Close, HostAccess, Access, MapGpaRange, DirtyLog, Launch, std::vector<Step>>
        op;
    Expect expect;
};

struct MetricBound {
    std::optional<double> min, max, eq;
};

struct Scenario {
    std::string file;                         // path it was loaded from
    std::string name;
    std::string platform = "zen4-genoa";
    bool platform_named = false;              // the file gives "platform" (else the VM type's default)
    std::map<std::string, std::string> params;   // dotted overrides as written (resolved by sim/params)
    uint64_t seed = 1;
    VmDecl vm;
    std::vector<Step> steps;
    std::map<std::string, MetricBound> expect_metrics;
    // expect.arch.<arch>.metrics: per-architecture bounds ("x86", "arm64"). On that
    // architecture a bound replaces expect.metrics' bound of the same name, or adds one; a
    // null (nullopt) drops the common bound there.
    std::map<std::string, std::map<std::string, std::optional<MetricBound>>> expect_metrics_arch;
};

// The architecture a run's platform has, as expect.arch names it: "arm64" for a stage-2
// MMU (mmu.nested_format "stage2"), else "x86".
inline std::string expect_arch_of_nested_format(const std::string& nested_format) {
    return nested_format == "stage2" ? "arm64" : "x86";
}

// The metric bounds a run on `arch` checks, each with the JSON pointer it came from.
struct EffectiveBound {
    std::string ptr;
    std::string name;
    MetricBound bound;
};
inline std::vector<EffectiveBound> effective_metric_bounds(const Scenario& s, const std::string& arch) {
    auto escape = [](const std::string& n) {
        std::string o;
        for (char c : n) o += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
        return o;
    };
    const auto a = s.expect_metrics_arch.find(arch);
    std::vector<EffectiveBound> out;
    for (const auto& entry : s.expect_metrics) {
        if (a != s.expect_metrics_arch.end() && a->second.count(entry.first)) continue;
        out.push_back(EffectiveBound{"/expect/metrics/" + escape(entry.first), entry.first, entry.second});
    }
    if (a != s.expect_metrics_arch.end())
        for (const auto& entry : a->second)
            if (entry.second)
                out.push_back(EffectiveBound{"/expect/arch/" + arch + "/metrics/" + escape(entry.first), entry.first,
                                             *entry.second});
    return out;
}

// The result of an snp_ap_create step as the guest sees it, by name (the step's "status"):
// RMPADJUST's return codes (APM vol. 3), or 0x100 | the GHCB error KVM answered with
// (cpu::kApStatusGhcb; GHCB_ERR_INVALID_INPUT = 5).
inline const std::vector<std::pair<std::string, uint64_t>>& ap_status_names() {
    static const std::vector<std::pair<std::string, uint64_t>> n = {
        {"ok", 0},          {"FAIL_INPUT", 1},        {"FAIL_PERMISSION", 2},           {"FAIL_INUSE", 3},
        {"FAIL_OVERLAP", 4}, {"FAIL_SIZEMISMATCH", 6}, {"GHCB_ERR_INVALID_INPUT", 0x105}};
    return n;
}
inline std::string ap_status_name(uint64_t v) {
    for (const auto& [name, code] : ap_status_names())
        if (code == v) return name;
    return "status " + std::to_string(v);
}

// Whether a launch step `op` is among `steps` (parallel groups included).
inline bool has_launch_op(const std::vector<Step>& steps, Launch::Op op) {
    for (const Step& st : steps) {
        if (auto* l = std::get_if<Launch>(&st.op); l && l->op == op) return true;
        if (auto* g = std::get_if<std::vector<Step>>(&st.op); g && has_launch_op(*g, op)) return true;
    }
    return false;
}
inline bool scenario_has_launch_op(const Scenario& s, Launch::Op op) { return has_launch_op(s.steps, op); }

inline const char* launch_op_name(Launch::Op op) {
    switch (op) {
    case Launch::Op::snp_launch_start: return "snp_launch_start";
    case Launch::Op::snp_launch_update: return "snp_launch_update";
    case Launch::Op::snp_launch_finish: return "snp_launch_finish";
    case Launch::Op::tdx_init_mem_region: return "tdx_init_mem_region";
    case Launch::Op::tdx_finalize_vm: return "tdx_finalize_vm";
    }
    return "?";
}

}  // namespace hvsim::scn
