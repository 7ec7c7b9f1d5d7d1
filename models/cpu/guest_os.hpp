// The guest kernel, as far as the memory path sees it: it maps GVA = GPA (identity)
// with pages of vm.guest_page_size and keeps its page-table pages in guest memory
// (a region at the top of the first memslot unless the scenario names one). Tables
// are built on demand by its #PF handler, so their first touches are ordinary guest
// writes that take nested faults like any other page.
//
// Two table formats: x86-64 4/5-level paging (CR3), and VMSAv8-64 stage 1 with the 4K
// granule (TTBR0_EL1, TCR_EL1.TG0 = 4K, T0SZ = 16: 48-bit VA, 4 levels, start level 0;
// Arm ARM D8.2). On arm64 the "#PF" is the guest's own data abort taken to EL1 (a
// stage-1 translation fault: ESR_EL1 EC 0x25, DFSC 0b0001LL), handled by the guest
// kernel's do_translation_fault() equivalent here, without an exit to the hypervisor.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "models/common/exec_context.hpp"
#include "models/common/types.hpp"

namespace hvsim::cpu {

// How the guest reaches its own physical memory (through the nested translation;
// the vCPU implements it and takes the nested faults on the way).
class GuestPhysAccess {
public:
    virtual ~GuestPhysAccess() = default;
    virtual std::optional<uint64_t> read_gpa64(Gpa a, ExecContext& ctx) = 0;
    // Read an entry the caller is about to write, translated for writing first: the guest
    // kernel holds the page-table lock from this read to the write, so no nested fault
    // (a copy-on-write of a page only ever read) may come between them.
    virtual std::optional<uint64_t> read_gpa64_for_update(Gpa a, ExecContext& ctx) = 0;
    virtual bool write_gpa64(Gpa a, uint64_t v, ExecContext& ctx) = 0;   // false: the vCPU stopped
    virtual bool zero_gpa_page(Gpa page, ExecContext& ctx) = 0;          // clear_page() of a new table
};

// The guest's page-table format (the platform's wiring chooses it, from the MMU it has).
enum class GuestPtFormat : uint8_t {
    x86,    // x86-64 paging entries (SDM Vol. 3 §4.5)
    vmsa,   // VMSAv8-64 stage-1 descriptors, 4K granule (Arm ARM D8.3)
};

struct GuestOsConfig {
    unsigned levels = 4;                 // 4 or 5 (0: no guest paging, the model is unused); vmsa: 4
    GuestPtFormat format = GuestPtFormat::x86;
    PgLevel page_size = PgLevel::k4K;
    Gpa pt_base;                         // region for page-table pages
    uint64_t pt_size = 0;
    Cycles pf_cycles = 0;                // guest #PF handler cost (cost.guest_pf)
};

struct GuestOsStats {
    uint64_t page_faults = 0;
    uint64_t pt_pages = 0;
    uint64_t install_races = 0;   // a table another vCPU installed first (kept as spare)
};

class GuestOs {
public:
    explicit GuestOs(const GuestOsConfig& cfg);

    // The root table's gPA (CR3, or TTBR0_EL1's BADDR). Allocated at construction;
    // zero-filled memory is a valid empty table, so nothing is written until the first fault.
    Gpa cr3() const { return cr3_; }

    // The guest #PF handler: install the missing entries from `level` (the level the
    // walk found not present) down to the leaf for gva. `level` is the hardware's
    // numbering: x86 4 (PML4) .. 1 (PTE); VMSA the lookup level 0 .. 3 of the DFSC.
    // Returns false when the vCPU stopped while writing (an exit that ends the step).
    bool handle_page_fault(Gva gva, unsigned level, GuestPhysAccess& phys, ExecContext& ctx);

    const GuestOsStats& stats() const { return stats_; }
    const GuestOsConfig& config() const { return cfg_; }

private:
    std::optional<Gpa> alloc_table();
    // Entry encodings of the configured format (levels numbered x86-style, leaf 1).
    bool present(uint64_t e) const;
    uint64_t next_table(uint64_t e, unsigned level) const;
    uint64_t make_table(Gpa t) const;
    uint64_t make_leaf(uint64_t page) const;

    GuestOsConfig cfg_;
    Gpa cr3_;
    uint64_t next_ = 0;                  // bump allocator offset into the PT region
    std::vector<Gpa> spare_;             // zeroed tables that lost an install race
    GuestOsStats stats_;
};

}  // namespace hvsim::cpu
