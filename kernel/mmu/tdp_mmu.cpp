#include "kernel/mmu/tdp_mmu.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace hvsim::kvm {

namespace {
constexpr uint64_t pages_at(unsigned level) { return 1ull << (9u * (level - 1u)); }
}

TdpMmu::TdpMmu(PhysMem& mem, HostPageAllocator& alloc, unsigned levels, mmu::NestedFormat fmt, TdpMmuCosts costs)
    : mem_(mem), alloc_(alloc), levels_(levels), fmt_{fmt}, costs_(costs) {
    if (levels != 4 && levels != 5) throw std::invalid_argument("TDP MMU supports 4 or 5 levels");
    CycleCounter setup;
    root_ = alloc_table(setup);
}

TdpMmu::~TdpMmu() {
    CycleCounter teardown;
    free_subtree(root_, levels_, teardown);
    free_retired();
}

void TdpMmu::free_table(Pfn table) {
    // A walker inside an external hook may still point into the table (Linux frees page
    // tables after an RCU grace period, tdp_mmu_free_sp_rcu_callback()): retire it until
    // the last walker leaves.
    if (walkers_) {
        retired_.push_back(table);
        return;
    }
    mem_.discard(table);
    alloc_.free(table, 0);
}

void TdpMmu::free_retired() {
    for (Pfn p : retired_) {
        mem_.discard(p);
        alloc_.free(p, 0);
    }
    retired_.clear();
}

bool TdpMmu::is_retired(Pfn table) const {
    return std::find(retired_.begin(), retired_.end(), table) != retired_.end();
}

Pfn TdpMmu::alloc_table(ExecContext& ctx) {
    auto p = alloc_.alloc(0);
    if (!p) throw std::runtime_error("host memory exhausted allocating a TDP MMU page table (raise host.mem_size)");
    // The allocator hands out pages that may have held data; tables start empty.
    mem_.fill(pfn_to_hpa(*p), 0, kPageSize);
    ++stats_.sp_allocated;
    ctx.charge("tdp_mmu_alloc_sp", costs_.sp_alloc);
    return *p;
}

void TdpMmu::count_leaf(unsigned level, int delta) {
    uint64_t& c = level == 1 ? stats_.leaves_4k : level == 2 ? stats_.leaves_2m : stats_.leaves_1g;
    c += uint64_t(int64_t(delta));
}

void TdpMmu::free_subtree(Pfn table, unsigned level, ExecContext& ctx) {
    if (level > 1) {
        const uint64_t* t = reinterpret_cast<const uint64_t*>(mem_.page_if_present(table));
        for (unsigned i = 0; t && i < 512; ++i) {
            const uint64_t e = t[i];
            if (!fmt_.present(e)) continue;
            if (fmt_.is_leaf(e, level)) {
                count_leaf(level, -1);
                ++stats_.sptes_zapped;
                ctx.charge("tdp_mmu_zap_spte", costs_.zap_spte);
            } else {
                free_subtree(hpa_to_pfn(Hpa(fmt_.addr(e, level))), level - 1, ctx);
            }
        }
    } else {
        const uint64_t* t = reinterpret_cast<const uint64_t*>(mem_.page_if_present(table));
        for (unsigned i = 0; t && i < 512; ++i) {
            if (fmt_.present(t[i])) {
                count_leaf(1, -1);
                ++stats_.sptes_zapped;
                ctx.charge("tdp_mmu_zap_spte", costs_.zap_spte);
            }
        }
    }
    free_table(table);
    ++stats_.sp_freed;
}

MapResult TdpMmu::map(Gfn gfn, Pfn pfn, PgLevel level, bool writable, bool* flush, ExecContext& ctx) {
    const unsigned goal = unsigned(level);
    const uint64_t g = gfn.raw();
    if ((g & (pages_at(goal) - 1)) || (pfn.raw() & (pages_at(goal) - 1)))
        throw std::logic_error("TdpMmu::map: gfn/pfn not aligned to the mapping level");
    if (g >= (1ull << (9 * levels_ + 3)))
        throw std::out_of_range("TdpMmu::map: gfn beyond the nested table's reach");
    // The walk holds no pointer into a table across an external hook: the hook syncs, and
    // another thread may meanwhile remove the table (it is retired, not freed, while this
    // walker is inside, see free_table()) or its page may move. After a hook the entry is
    // found again by table and index, and a retired table makes the fault retry.
    Walker walker(*this);
    Pfn table = root_;
    for (unsigned lvl = levels_; lvl > goal; --lvl) {
        const unsigned idx = mmu::table_index(g << kPageShift, lvl);
        uint64_t& e = table_ptr(table)[idx];
        // Another thread is inside the external hook for this SPTE (is_frozen_spte()): retry.
        if (external_ && e == kFrozenSpte) return MapResult::busy;
        if (!fmt_.present(e)) {
            const Pfn child = alloc_table(ctx);
            if (external_) {
                // tdp_mmu_link_sp() on a mirror root: the external table is linked first,
                // with the mirror SPTE frozen meanwhile (set_external_spte_present()), since
                // the hook syncs and other threads may fault on the same range; a failure
                // restores the empty entry (the fault retries or the VM is bugged).
                const Gfn base(g & ~(pages_at(lvl) - 1));
                const uint64_t old = e;
                e = kFrozenSpte;
                const int r = external_->link_external_spt(base, PgLevel(lvl), child, ctx);
                const bool gone = is_retired(table);
                if (!gone) table_ptr(table)[idx] = old;
                if (r || gone) {
                    mem_.discard(child);
                    alloc_.free(child, 0);
                    ++stats_.sp_freed;
                    // A table removed during the hook: the fault retries from the root (the
                    // external table linked meanwhile stays, as an empty S-EPT page would).
                    return r == -EBUSY || (gone && !r) ? MapResult::busy : MapResult::error;
                }
            }
            table_ptr(table)[idx] = fmt_.make_table(pfn_to_hpa(child).raw()) | table_ad();
            ctx.charge("tdp_mmu_link_sp", costs_.spte_write);
            table = child;
            continue;
        }
        if (fmt_.is_leaf(e, lvl)) {
            if (external_) {
                // A fault below a huge private leaf (the guest accepts at 4K inside a 2M
                // mapping): the external leaf is demoted first, then the mirror's.
                const MapResult r = split_mirror_huge(table, idx, lvl, Gfn(g & ~(pages_at(lvl) - 1)), &table, ctx);
                if (r != MapResult::fixed) return r;
                *flush = true;
                continue;
            }
            // tdp_mmu_split_huge_page(): the huge leaf becomes a table of leaves one level
            // down mapping the same frames, then the walk continues into it.
            table = split_huge(e, lvl, ctx);
            *flush = true;
            continue;
        }
        table = hpa_to_pfn(Hpa(fmt_.addr(e, lvl)));
    }
    const unsigned idx = mmu::table_index(g << kPageShift, goal);
    uint64_t& e = table_ptr(table)[idx];
    if (external_ && e == kFrozenSpte) return MapResult::busy;
    uint64_t want = fmt_.make_leaf(pfn_to_hpa(pfn).raw(), level, writable, true);
    // make_spte(): a leaf installed by a fault is born accessed, and dirty when writable
    // (spte_shadow_accessed_mask(), spte_shadow_dirty_mask()), so the CPU's first access
    // has no A/D update to make. A mirror SPTE is KVM's bookkeeping: no A/D.
    if (!external_) want |= fmt_.accessed_bit() | (writable ? fmt_.dirty_bit() : 0);
    if (fmt_.present(e)) {
        if (fmt_.is_leaf(e, goal)) {
            const uint64_t ad = fmt_.accessed_bit() | fmt_.dirty_bit();
            if ((e & ~ad) == (want & ~ad)) return MapResult::spurious;
            // A mirror leaf is never changed in place: KVM zaps it first (conversion, punch hole).
            if (external_) throw std::logic_error("TdpMmu::map: changing a present mirror leaf");
            count_leaf(goal, -1);
            *flush = true;
        } else {
            // A table below a now-huge mapping: handle_removed_pt() frees it and its leaves.
            free_subtree(hpa_to_pfn(Hpa(fmt_.addr(e, goal))), goal - 1, ctx);
            ++stats_.huge_collapses;
            *flush = true;
        }
    }
    if (external_) {
        // set_external_spte_present(): the mirror SPTE is frozen while the external leaf is
        // set; on failure the old (non-present) value is restored (RET_PF_RETRY on -EBUSY).
        const uint64_t old = e;
        e = kFrozenSpte;
        const int r = external_->set_external_spte(gfn, level, pfn, ctx);
        if (!r && is_retired(table)) {
            // The table was removed while the hook ran (handle_removed_pt() on another
            // thread): the external leaf just set has no mirror entry any more, so it goes
            // again, as the remover would have removed it after the hook, and the fault
            // retries from the root.
            external_->remove_external_spte(gfn, level, pfn, ctx);
            ++stats_.hook_races;
            return MapResult::busy;
        }
        table_ptr(table)[idx] = old;
        if (r) return r == -EBUSY ? MapResult::busy : MapResult::error;
    }
    table_ptr(table)[idx] = want;
    count_leaf(goal, +1);
    ++stats_.sptes_installed;
    ctx.charge("tdp_mmu_set_spte", costs_.spte_write);
    return MapResult::fixed;
}

Pfn TdpMmu::split_huge(uint64_t& e, unsigned lvl, ExecContext& ctx) {
    const uint64_t old = e;
    const Pfn child = alloc_table(ctx);
    uint64_t* c = table_ptr(child);
    const uint64_t base_pa = fmt_.addr(old, lvl);
    const PgLevel sub = PgLevel(lvl - 1);
    // make_small_spte(): the children inherit the huge SPTE's bits, A/D included.
    const uint64_t ad = old & (fmt_.accessed_bit() | fmt_.dirty_bit());
    for (unsigned i = 0; i < 512; ++i)
        c[i] = fmt_.make_leaf(base_pa + uint64_t(i) * level_size(sub), sub, fmt_.writable(old), fmt_.executable(old)) | ad;
    ctx.charge("tdp_mmu_split_huge_page", costs_.split_huge_page);
    count_leaf(lvl, -1);
    for (int i = 0; i < 512; ++i) count_leaf(lvl - 1, +1);
    e = fmt_.make_table(pfn_to_hpa(child).raw()) | table_ad();
    ++stats_.huge_splits;
    return child;
}

MapResult TdpMmu::split_mirror_huge(Pfn table, unsigned idx, unsigned lvl, Gfn base, Pfn* child, ExecContext& ctx) {
    Walker walker(*this);
    uint64_t& e = table_ptr(table)[idx];
    const uint64_t old = e;
    const Pfn pfn = hpa_to_pfn(Hpa(fmt_.addr(old, lvl)));
    e = kFrozenSpte;
    const int r = external_->split_external_spt(base, PgLevel(lvl), pfn, ctx);
    if (is_retired(table)) return MapResult::busy;   // removed during the hook (see map())
    uint64_t& now = table_ptr(table)[idx];
    now = old;
    if (r) return r == -EBUSY ? MapResult::busy : MapResult::error;
    *child = split_huge(now, lvl, ctx);
    return MapResult::fixed;
}

uint64_t TdpMmu::wrprot_range(Pfn table, unsigned level, uint64_t base_gfn, uint64_t start, uint64_t end, bool split,
                              ExecContext& ctx) {
    uint64_t* t = table_ptr(table);
    const uint64_t span = pages_at(level);
    const uint64_t first = start > base_gfn ? (start - base_gfn) / span : 0;
    const uint64_t last_excl = std::min<uint64_t>(512, (end - base_gfn + span - 1) / span);
    uint64_t changed = 0;
    for (uint64_t i = first; i < last_excl; ++i) {
        uint64_t& e = t[i];
        if (!fmt_.present(e)) continue;
        const uint64_t child_base = base_gfn + i * span;
        if (fmt_.is_leaf(e, level)) {
            if (level > 1 && split) {
                split_huge(e, level, ctx);   // then write-protect the new leaves below
            } else {
                if (fmt_.writable(e)) {
                    e = fmt_.write_protect(e);
                    ++changed;
                    ctx.charge("tdp_mmu_wrprot_spte", costs_.spte_write);
                }
                continue;
            }
        }
        changed += wrprot_range(hpa_to_pfn(Hpa(fmt_.addr(e, level))), level - 1, child_base,
                                std::max(start, child_base), std::min(end, child_base + span), split, ctx);
    }
    return changed;
}

uint64_t TdpMmu::write_protect(Gfn start, Gfn end, bool split_huge, ExecContext& ctx) {
    const uint64_t reach = 1ull << (9 * levels_);
    const uint64_t s = start.raw(), e = std::min(end.raw(), reach);
    if (s >= e) return 0;
    return wrprot_range(root_, levels_, 0, s, e, split_huge, ctx);
}

bool TdpMmu::make_writable(Gfn gfn, ExecContext& ctx) {
    const uint64_t g = gfn.raw();
    Pfn table = root_;
    for (unsigned lvl = levels_; lvl >= 1; --lvl) {
        if (!mem_.present(table)) return false;
        uint64_t& e = table_ptr(table)[mmu::table_index(g << kPageShift, lvl)];
        if (!fmt_.present(e)) return false;
        if (fmt_.is_leaf(e, lvl)) {
            if (lvl != 1) return false;
            e = fmt_.make_writable(e);
            ctx.charge("tdp_mmu_set_spte", costs_.spte_write);
            return true;
        }
        table = hpa_to_pfn(Hpa(fmt_.addr(e, lvl)));
    }
    return false;
}

uint64_t TdpMmu::zap_range(Pfn table, unsigned level, uint64_t base_gfn, uint64_t start, uint64_t end,
                           ExecContext& ctx) {
    Walker walker(*this);
    const uint64_t span = pages_at(level);
    const uint64_t first = start > base_gfn ? (start - base_gfn) / span : 0;
    const uint64_t last_excl = std::min<uint64_t>(512, (end - base_gfn + span - 1) / span);
    uint64_t zapped = 0;
    for (uint64_t i = first; i < last_excl; ++i) {
        // Found again each time: an external hook below may have let other threads run.
        if (is_retired(table)) break;
        uint64_t& e = table_ptr(table)[i];
        if (!fmt_.present(e)) continue;
        const uint64_t leaf_base = base_gfn + i * span;
        if (external_ && level > 1 && fmt_.is_leaf(e, level) && (start > leaf_base || end < leaf_base + span)) {
            // A huge mirror leaf the range covers only in part is split first (the TDX
            // huge-page series splits private leaves across the zap's boundaries:
            // BLOCK, TRACK, kick, DEMOTE), then only the covered small leaves go. If the
            // split fails the VM is bugged and the leaf is zapped whole, as before.
            Pfn child;
            if (split_mirror_huge(table, unsigned(i), level, Gfn(leaf_base), &child, ctx) == MapResult::fixed) {
                zapped += zap_range(child, level - 1, leaf_base, std::max(start, leaf_base),
                                    std::min(end, leaf_base + span), ctx);
                continue;
            }
            if (is_retired(table)) break;
        }
        const uint64_t cur = table_ptr(table)[i];
        if (fmt_.is_leaf(cur, level)) {
            // A mirror leaf goes from the external table first (remove_external_spte());
            // its failure bugs the VM and the mirror SPTE is cleared anyway (KVM_BUG_ON).
            if (external_) {
                external_->remove_external_spte(Gfn(base_gfn + i * span), PgLevel(level),
                                                hpa_to_pfn(Hpa(fmt_.addr(cur, level))), ctx);
                if (is_retired(table)) break;
            }
            table_ptr(table)[i] = 0;
            count_leaf(level, -1);
            ++zapped;
            ctx.charge("tdp_mmu_zap_spte", costs_.zap_spte);
            continue;
        }
        const uint64_t child_base = base_gfn + i * span;
        zapped += zap_range(hpa_to_pfn(Hpa(fmt_.addr(cur, level))), level - 1, child_base, std::max(start, child_base),
                            std::min(end, child_base + span), ctx);
    }
    return zapped;
}

uint64_t TdpMmu::zap_leafs(Gfn start, Gfn end, ExecContext& ctx) {
    const uint64_t reach = 1ull << (9 * levels_);
    const uint64_t s = start.raw(), e = std::min(end.raw(), reach);
    if (s >= e) return 0;
    const uint64_t n = zap_range(root_, levels_, 0, s, e, ctx);
    stats_.sptes_zapped += n;
    return n;
}

bool TdpMmu::has_table_at(Gfn gfn, PgLevel level) const {
    const uint64_t g = gfn.raw();
    Pfn table = root_;
    for (unsigned lvl = levels_; lvl >= unsigned(level); --lvl) {
        const uint64_t* t = reinterpret_cast<const uint64_t*>(mem_.page_if_present(table));
        if (!t) return false;
        const uint64_t e = t[mmu::table_index(g << kPageShift, lvl)];
        if (!fmt_.present(e) || fmt_.is_leaf(e, lvl)) return false;
        if (lvl == unsigned(level)) return true;
        table = hpa_to_pfn(Hpa(fmt_.addr(e, lvl)));
    }
    return false;
}

std::optional<SpteLeaf> TdpMmu::lookup(Gfn gfn) const {
    const uint64_t g = gfn.raw();
    Pfn table = root_;
    for (unsigned lvl = levels_; lvl >= 1; --lvl) {
        const uint64_t* t = reinterpret_cast<const uint64_t*>(mem_.page_if_present(table));
        if (!t) return std::nullopt;
        const uint64_t e = t[mmu::table_index(g << kPageShift, lvl)];
        if (!fmt_.present(e)) return std::nullopt;
        if (fmt_.is_leaf(e, lvl)) {
            const uint64_t off = g & (pages_at(lvl) - 1);
            return SpteLeaf{Pfn((fmt_.addr(e, lvl) >> kPageShift) + off), PgLevel(lvl), fmt_.writable(e)};
        }
        table = hpa_to_pfn(Hpa(fmt_.addr(e, lvl)));
    }
    return std::nullopt;
}

}  // namespace hvsim::kvm
