// The guest kernel, as far as the memory path sees it: it maps GVA = GPA (identity)
// with pages of vm.guest_page_size and keeps its page-table pages in guest memory
// (a region at the top of the first memslot unless the scenario names one). Tables
// are built on demand by its #PF handler, so their first touches are ordinary guest
// writes that take nested faults like any other page.
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

struct GuestOsConfig {
    unsigned levels = 4;                 // 4 or 5 (0: no guest paging, the model is unused)
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

    // The root table's gPA (CR3). Allocated at construction; zero-filled memory is a
    // valid empty table, so nothing is written until the first fault.
    Gpa cr3() const { return cr3_; }

    // The guest #PF handler: install the missing entries from `level` (the level the
    // walk found not present) down to the leaf for gva. Returns false when the vCPU
    // stopped while writing (an exit that ends the step).
    bool handle_page_fault(Gva gva, unsigned level, GuestPhysAccess& phys, ExecContext& ctx);

    const GuestOsStats& stats() const { return stats_; }
    const GuestOsConfig& config() const { return cfg_; }

private:
    std::optional<Gpa> alloc_table();

    GuestOsConfig cfg_;
    Gpa cr3_;
    uint64_t next_ = 0;                  // bump allocator offset into the PT region
    std::vector<Gpa> spare_;             // zeroed tables that lost an install race
    GuestOsStats stats_;
};

}  // namespace hvsim::cpu
