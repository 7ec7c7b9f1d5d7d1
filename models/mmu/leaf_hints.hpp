// Host-speed hints for a table walker, with no modelled effect: per 2 MiB region of the
// address space it translates, the table its last walk there ended in (direct-mapped, so
// a region can lose its hint to another). The vCPU asks for the next access's leaf entry
// while it simulates the current one (Mmu::prefetch_walk()), so that the host's miss on
// that entry overlaps the work; a stale or wrong hint only fetches a line nobody reads.
#pragma once

#include <array>
#include <cstdint>

namespace hvsim::mmu {

class LeafHints {
public:
    // table: the leaf table's (at least 8-byte aligned) address; level: its level (0-7).
    void record(uint64_t va, uint64_t table, unsigned level) { h_[va >> kShift & (kSlots - 1)] = {va >> kShift, table | level}; }
    // The table and level recorded for va's region; false when none is.
    bool find(uint64_t va, uint64_t& table, unsigned& level) const {
        const Hint& h = h_[va >> kShift & (kSlots - 1)];
        if (h.region != va >> kShift) return false;
        table = h.table & ~7ull;
        level = unsigned(h.table & 7);
        return true;
    }

private:
    static constexpr unsigned kShift = 21;
    static constexpr size_t kSlots = 2048;   // 32 KiB a walker
    struct Hint {
        uint64_t region = ~0ull;
        uint64_t table = 0;   // table | level
    };
    std::array<Hint, kSlots> h_{};
};

}  // namespace hvsim::mmu
