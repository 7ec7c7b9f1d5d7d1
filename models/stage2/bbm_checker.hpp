// Break-before-make checker for stage-2 tables (Arm ARM D8.14.1, "Using
// break-before-make when updating translation table entries"), built as the per-location
// automaton of Casemate (rems-project/casemate, the checker used on pKVM): a descriptor
// that was valid must be made invalid, the invalidation completed (DSB), the TLBs
// cleaned of it (a TLBI covering both stages, or IPAS2E1IS then DSB then a stage-1
// TLBI), and that completed (DSB ISH) before any valid value is written again.
//
// States per location: valid, invalid_unclean (with how far the clean got), invalid
// (clean), and not-writable (a child of a table descriptor that is unclean).
//
// Two modes:
//  - architectural: a valid -> valid change needs BBM only when the Arm ARM requires it
//    (output address, block <-> table, any table descriptor, memory type or
//    shareability); permission, AF and software-bit changes are allowed in place;
//  - casemate_strict: as Casemate's requires_bbm, only software-bit (58:55) changes are
//    allowed in place, and DSB NSH is unsupported. KVM's own relax-permissions path is
//    flagged in this mode (as it is by Casemate).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/stage2/tlbi.hpp"

namespace hvsim::stage2 {

class BbmChecker final : public TraceSink {
public:
    enum class Mode : uint8_t { architectural, casemate_strict };
    explicit BbmChecker(Mode m = Mode::architectural) : mode_(m) {}

    void event(const TraceEvent& e) override;

    struct Violation {
        uint64_t step = 0;   // index of the event
        uint64_t loc = 0;
        std::string what;    // Casemate's message
    };
    const std::vector<Violation>& violations() const { return violations_; }
    bool ok() const { return violations_.empty(); }
    uint64_t bbm_sequences() const { return bbm_done_; }   // valid -> invalid -> clean -> valid completed

    // Whether changing a valid descriptor from `old` to `nw` needs break-before-make.
    static bool requires_bbm(uint64_t old, uint64_t nw, int level, Mode m);

private:
    enum class State : uint8_t { valid, invalid_unclean, invalid };
    enum class Clean : uint8_t { unguarded, dsbed, dsb_tlbi_ipa, dsb_tlbi_ipa_dsb, dsb_tlbied };
    struct Loc {
        State st = State::invalid;
        Clean cl = Clean::unguarded;
        uint64_t value = 0;
        uint64_t ia = 0;
        int level = 3;
        Granule granule = Granule::k4K;
        uint16_t vmid = 0;
        uint64_t child_table = 0;   // an unclean old table descriptor's next-level table
        bool was_table = false;
        bool broken = false;        // went valid -> invalid (a make completes a BBM)
    };
    void flag(uint64_t loc, std::string what);
    void on_write(const TraceEvent& e);
    void on_barrier(const TraceEvent& e);
    void on_tlbi(const TraceEvent& e);
    bool covers(const Loc& l, const TraceEvent& t) const;

    Mode mode_;
    uint64_t step_ = 0;
    uint64_t bbm_done_ = 0;
    uint16_t cur_vmid_ = 0;
    std::map<uint64_t, Loc> locs_;
    std::map<uint64_t, uint64_t> unclean_children_;   // child table page -> parent location
    // The locations in INVALID_UNCLEAN: barriers and TLBIs only act on these (a run
    // touches many descriptors; visiting each at every barrier would be quadratic).
    std::set<uint64_t> unclean_;
    std::vector<Violation> violations_;
};

}  // namespace hvsim::stage2
