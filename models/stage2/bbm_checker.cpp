#include "models/stage2/bbm_checker.hpp"

#include <fmt/format.h>

#include <iterator>

namespace hvsim::stage2 {

namespace {
bool is_table(uint64_t d, int level) { return level < 3 && (d & desc::VALID) && (d & desc::TABLE); }
}  // namespace

bool BbmChecker::requires_bbm(uint64_t old, uint64_t nw, int level, Mode m) {
    if (old == nw) return false;
    if (m == Mode::casemate_strict) return ((old ^ nw) & ~desc::SW_MASK) != 0;
    // A table descriptor in either role: always (the walk caches may hold it).
    if (is_table(old, level) || is_table(nw, level)) return true;
    constexpr uint64_t kOaMask = ((1ull << 48) - 1) & ~0xfffull;
    constexpr uint64_t kAttr = 0xfull << 2, kSh = 3ull << 8;
    return ((old ^ nw) & (kOaMask | kAttr | kSh | desc::TABLE)) != 0;
}

void BbmChecker::flag(uint64_t loc, std::string what) { violations_.push_back({step_, loc, std::move(what)}); }

void BbmChecker::event(const TraceEvent& e) {
    switch (e.kind) {
    case TraceEvent::Kind::write: on_write(e); break;
    case TraceEvent::Kind::barrier: on_barrier(e); break;
    case TraceEvent::Kind::tlbi: on_tlbi(e); break;
    case TraceEvent::Kind::vttbr: cur_vmid_ = e.vmid; break;
    case TraceEvent::Kind::table_init:
    case TraceEvent::Kind::table_release:
    case TraceEvent::Kind::lock:
    case TraceEvent::Kind::unlock: break;
    }
    ++step_;
}

void BbmChecker::on_write(const TraceEvent& e) {
    Loc& l = locs_[e.loc];
    const bool nv = e.value & desc::VALID;
    // A table page below an unclean (invalidated, not yet TLB-cleaned) table descriptor:
    // the walkers may still reach it through their caches.
    const uint64_t page = e.loc & ~(granule_size(e.granule) - 1);
    if (auto it = unclean_children_.find(page); it != unclean_children_.end()) {
        if (nv || (l.value & desc::VALID)) flag(e.loc, "Wrote on a page with an unclean parent");
    }
    l.ia = e.ia;
    l.level = e.level;
    l.granule = e.granule;
    l.vmid = e.vmid;
    switch (l.st) {
    case State::valid:
        if (nv) {
            if (requires_bbm(l.value, e.value, e.level, mode_)) flag(e.loc, "BBM valid->valid");
        } else {
            l.st = State::invalid_unclean;
            unclean_.insert(e.loc);
            l.cl = Clean::unguarded;
            l.broken = true;
            l.was_table = is_table(l.value, e.level);
            if (l.was_table) {
                l.child_table = desc::oa(l.value, e.granule, false);
                unclean_children_[l.child_table] = e.loc;
            }
        }
        break;
    case State::invalid_unclean:
        if (nv) {
            flag(e.loc, "BBM invalid unclean->valid");
            l.st = State::valid;
            unclean_.erase(e.loc);
            l.broken = false;
        }
        break;
    case State::invalid:
        if (nv) {
            if (l.broken) ++bbm_done_;
            l.broken = false;
            l.st = State::valid;
        }
        break;
    }
    l.value = e.value;
}

void BbmChecker::on_barrier(const TraceEvent& e) {
    if (e.barrier == Barrier::isb) return;
    if (e.barrier == Barrier::dsb_nsh && mode_ == Mode::casemate_strict) {
        if (!unclean_.empty()) flag(0, "Unsupported DSB NSH");
        return;
    }
    // DSB ISHST orders the invalidating store; only DSB ISH (or NSH promoted) waits
    // for TLB maintenance to complete.
    const bool completes = e.barrier != Barrier::dsb_ishst;
    for (auto it = unclean_.begin(); it != unclean_.end();) {
        Loc& l = locs_[*it];
        bool cleaned = false;
        switch (l.cl) {
        case Clean::unguarded: l.cl = Clean::dsbed; break;
        case Clean::dsb_tlbi_ipa:
            if (completes) l.cl = Clean::dsb_tlbi_ipa_dsb;
            break;
        case Clean::dsb_tlbied:
            if (completes) {
                l.st = State::invalid;
                cleaned = true;
                if (l.child_table) {
                    unclean_children_.erase(l.child_table);
                    l.child_table = 0;
                }
            }
            break;
        default: break;
        }
        it = cleaned ? unclean_.erase(it) : std::next(it);
    }
}

bool BbmChecker::covers(const Loc& l, const TraceEvent& t) const {
    if (t.tlbi != TlbiOp::ipas2e1is && t.tlbi != TlbiOp::ipas2e1) return true;
    return t.ia >= l.ia && t.ia - l.ia < level_size(l.granule, l.level);
}

void BbmChecker::on_tlbi(const TraceEvent& e) {
    if (!is_broadcast(e.tlbi) && mode_ == Mode::casemate_strict) {
        flag(0, "Unsupported TLBI (expected broadcast)");
        return;
    }
    for (const uint64_t loc : unclean_) {
        Loc& l = locs_[loc];
        // Stage-2 maintenance acts on the VMID loaded in VTTBR_EL2 when it runs.
        if (l.vmid != cur_vmid_) continue;
        if (!covers(l, e)) continue;
        const bool s2_only = e.tlbi == TlbiOp::ipas2e1is || e.tlbi == TlbiOp::ipas2e1;
        const bool s1_only = e.tlbi == TlbiOp::vmalle1is || e.tlbi == TlbiOp::vmalle1;
        switch (l.cl) {
        case Clean::dsbed:
            // A stage-1 invalidation before the stage-2 one is ineffective: a walk could
            // refill a combined entry from the old stage-2 descriptor.
            if (s2_only) l.cl = Clean::dsb_tlbi_ipa;
            else if (!s1_only) l.cl = Clean::dsb_tlbied;
            break;
        case Clean::dsb_tlbi_ipa_dsb:
            if (!s2_only) l.cl = Clean::dsb_tlbied;
            break;
        default: break;
        }
    }
}

}  // namespace hvsim::stage2
