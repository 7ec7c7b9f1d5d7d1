// The TDP MMU (arch/x86/kvm/mmu/tdp_mmu.c): KVM's software owner of the nested page
// table (NPT or EPT). Entries are written into simulated host memory, where the
// hardware walker (models/mmu) reads them; nothing is kept on the side, so what the
// walker sees is exactly what KVM wrote.
#pragma once

#include <cerrno>
#include <cstdint>
#include <optional>
#include <vector>

#include "kernel/kvm_host.hpp"
#include "models/mem/page_alloc.hpp"
#include "models/mem/phys_mem.hpp"
#include "models/mmu/x86_pte.hpp"

namespace hvsim::kvm {

struct TdpMmuCosts {
    Cycles spte_write = 0;   // make_spte + atomic store of one entry
    Cycles sp_alloc = 0;     // allocate and zero one page-table page
    Cycles zap_spte = 0;     // clear one leaf and do its bookkeeping
    Cycles split_huge_page = 0;   // fill a new table with the 512 entries of a split huge leaf
};

struct TdpMmuStats {
    uint64_t sptes_installed = 0;
    uint64_t sptes_zapped = 0;      // leaf SPTEs cleared
    uint64_t sp_allocated = 0;      // page-table pages allocated (root included)
    uint64_t sp_freed = 0;
    uint64_t huge_splits = 0;       // huge leaf replaced by a table of smaller leaves
    uint64_t huge_collapses = 0;    // table replaced by a huge leaf
    uint64_t hook_races = 0;        // external leaves undone: their table went during the hook
    uint64_t leaves_4k = 0, leaves_2m = 0, leaves_1g = 0;   // currently installed
};

enum class MapResult : uint8_t {
    fixed,      // RET_PF_FIXED: a new or changed leaf
    spurious,   // RET_PF_SPURIOUS: the same leaf was already there
    busy,       // a mirror root's external hook answered -EBUSY: the SPTE was restored, retry
    error,      // a mirror root's external hook failed otherwise (the VM is bugged)
};

// A mirror root's external page table (tdp_mmu.c is_mirror_sp(), kvm_x86_ops
// link_external_spt / set_external_spte / remove_external_spte): every change KVM makes to
// the mirror is propagated to the table a firmware owns (TDX: the secure EPT, through
// SEAMCALLs). 0 or -errno.
class ExternalSpteOps {
public:
    virtual ~ExternalSpteOps() = default;
    // A new page-table page linked at the entry of `level` covering gfn.
    virtual int link_external_spt(Gfn gfn, PgLevel level, Pfn table, ExecContext& ctx) = 0;
    // A present leaf installed (set_external_spte_present()).
    virtual int set_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) = 0;
    // A present leaf zapped (handle_removed_pt() / tdp_mmu_zap_leafs() on a mirror root).
    virtual int remove_external_spte(Gfn gfn, PgLevel level, Pfn pfn, ExecContext& ctx) = 0;
    // A present huge leaf of `level` mapping pfn at gfn split into a table of leaves one
    // level down, mapping the same frames (the split_external_spt hook of the TDX huge-page
    // series, "KVM: TDX huge page support for private memory"). -EOPNOTSUPP: the external
    // table has no huge leaves (a mirror maps at 4K only then).
    virtual int split_external_spt(Gfn, PgLevel, Pfn, ExecContext&) { return -EOPNOTSUPP; }
};

struct SpteLeaf {
    Pfn pfn;
    PgLevel level = PgLevel::k4K;
    bool writable = false;
};

class TdpMmu {
public:
    TdpMmu(PhysMem& mem, HostPageAllocator& alloc, unsigned levels, mmu::NestedFormat fmt, TdpMmuCosts costs);
    ~TdpMmu();
    TdpMmu(const TdpMmu&) = delete;
    TdpMmu& operator=(const TdpMmu&) = delete;

    Hpa root_hpa() const { return pfn_to_hpa(root_); }
    // Make this a mirror root: its changes go to `ext` too (nullptr = a direct root).
    void set_external_ops(ExternalSpteOps* ext) { external_ = ext; }
    bool is_mirror() const { return external_ != nullptr; }
    unsigned levels() const { return levels_; }
    const mmu::NestedPte& format() const { return fmt_; }

    // kvm_tdp_mmu_map(): installs gfn -> pfn at `level` (gfn and pfn aligned to it),
    // splitting a huge leaf above it or replacing a table below it. *flush is set when
    // a present translation changed and TLBs must be flushed.
    MapResult map(Gfn gfn, Pfn pfn, PgLevel level, bool writable, bool* flush, ExecContext& ctx);

    // tdp_mmu_zap_leafs(): clears every leaf overlapping [start, end) (a huge leaf that
    // overlaps partially is zapped whole, as KVM does). Page tables stay allocated.
    uint64_t zap_leafs(Gfn start, Gfn end, ExecContext& ctx);

    // kvm_tdp_mmu_wrprot_slot() / kvm_mmu_slot_try_split_huge_pages(): clear the writable
    // bit of every leaf overlapping [start, end); with split_huge, huge leaves are first
    // split into 4K leaves (eager page splitting). Returns the leaves changed.
    uint64_t write_protect(Gfn start, Gfn end, bool split_huge, ExecContext& ctx);
    // fast_pf_fix_direct_spte(): make the 4K leaf of gfn writable again; false if there is
    // no such leaf.
    bool make_writable(Gfn gfn, ExecContext& ctx);

    std::optional<SpteLeaf> lookup(Gfn gfn) const;
    // Whether the entry of `level` covering gfn points to a page table (a huge leaf there
    // would replace it).
    bool has_table_at(Gfn gfn, PgLevel level) const;
    // make_nonleaf_spte(): a table entry is born accessed (not in a mirror root).
    uint64_t table_ad() const { return external_ ? 0 : fmt_.accessed_bit(); }
    // Every installed leaf, in gfn order: fn(first gfn of the leaf, leaf). Cost follows
    // the tables present, not the address space (for invariant checks).
    template <class F>
    void for_each_leaf(F&& fn) const {
        auto mapped = [this](Pfn p, uint64_t (&)[512]) {
            return reinterpret_cast<const uint64_t*>(mem_.page_if_present(p));
        };
        walk_leaves(root_, levels_, 0, mapped, fn);
    }
    // The same, with every table page read by read(Pfn, uint64_t (&)[512]) (false: no
    // table there) instead of through the kernel's own mapping of it: a checker reads the
    // tables over the memory's debug transport (models/mem/debug_port.hpp) as the hardware
    // would find them. A frame never written reads as zeros, so as an empty table.
    template <class Read, class F>
    void for_each_leaf(Read&& read, F&& fn) const {
        auto copied = [&read](Pfn p, uint64_t (&buf)[512]) -> const uint64_t* { return read(p, buf) ? buf : nullptr; };
        walk_leaves(root_, levels_, 0, copied, fn);
    }
    const TdpMmuStats& stats() const { return stats_; }

private:
    // KVM's FROZEN_SPTE (mmu/spte.h): a non-present value (no R/W/X, no P) a mirror SPTE
    // holds while its external hook runs, so other threads faulting there retry.
    static constexpr uint64_t kFrozenSpte = 0x5a0;
    // get(Pfn, buf) gives a table page's 512 entries (the kernel's mapping of it, or a copy
    // read into buf), nullptr when there is none.
    template <class Get, class F>
    void walk_leaves(Pfn table, unsigned level, uint64_t base_gfn, Get& get, F& fn) const {
        uint64_t buf[512];
        const uint64_t* t = get(table, buf);
        if (!t) return;
        const uint64_t span = 1ull << (9u * (level - 1u));
        for (unsigned i = 0; i < 512; ++i) {
            const uint64_t e = t[i];
            if (!fmt_.present(e)) continue;
            const uint64_t g = base_gfn + i * span;
            if (fmt_.is_leaf(e, level))
                fn(Gfn(g), SpteLeaf{hpa_to_pfn(Hpa(fmt_.addr(e, level))), PgLevel(level), fmt_.writable(e)});
            else
                walk_leaves(hpa_to_pfn(Hpa(fmt_.addr(e, level))), level - 1, g, get, fn);
        }
    }
    Pfn alloc_table(ExecContext& ctx);
    void free_subtree(Pfn table, unsigned level, ExecContext& ctx);
    uint64_t zap_range(Pfn table, unsigned level, uint64_t base_gfn, uint64_t start, uint64_t end, ExecContext& ctx);
    uint64_t wrprot_range(Pfn table, unsigned level, uint64_t base_gfn, uint64_t start, uint64_t end, bool split,
                          ExecContext& ctx);
    // Replace the huge leaf `e` at `level` by a table of 512 leaves one level down.
    Pfn split_huge(uint64_t& e, unsigned level, ExecContext& ctx);
    // A mirror root's huge leaf `e` (level `lvl`, first gfn `base`) is split in the external
    // table first (split_external_spt(), the mirror SPTE frozen meanwhile), then here.
    // MapResult::fixed with the new table in *child, or busy / error (the leaf unchanged).
    MapResult split_mirror_huge(Pfn table, unsigned idx, unsigned lvl, Gfn base, Pfn* child, ExecContext& ctx);
    // Page-table pages are freed only when no walker is inside an external hook (Linux:
    // RCU-deferred freeing of TDP MMU pages); until then they are retired.
    struct Walker {
        explicit Walker(TdpMmu& m) : mmu(m) { ++mmu.walkers_; }
        ~Walker() {
            if (--mmu.walkers_ == 0) mmu.free_retired();
        }
        Walker(const Walker&) = delete;
        Walker& operator=(const Walker&) = delete;
        TdpMmu& mmu;
    };
    void free_table(Pfn table);
    void free_retired();
    bool is_retired(Pfn table) const;
    void count_leaf(unsigned level, int delta);
    uint64_t* table_ptr(Pfn table) { return reinterpret_cast<uint64_t*>(mem_.page(table)); }

    PhysMem& mem_;
    HostPageAllocator& alloc_;
    unsigned levels_;
    mmu::NestedPte fmt_;
    TdpMmuCosts costs_;
    Pfn root_;
    TdpMmuStats stats_;
    ExternalSpteOps* external_ = nullptr;
    unsigned walkers_ = 0;
    std::vector<Pfn> retired_;
};

}  // namespace hvsim::kvm
