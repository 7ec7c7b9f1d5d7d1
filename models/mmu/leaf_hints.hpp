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


// Where an L1 TLB keeps the 4K entries of recently hit pages, direct-mapped by page number:
// a walker's hit path reaches such an entry without the L1's hash look-up. A hint only: the
// caller counts it while the L1's way still holds the key it was found by
// (AssocCache::holds()), so fills, evictions and flushes need not know about it.
class L1WayHints {
public:
    struct Hint {
        uint64_t page = ~0ull;   // va >> 12
        uint64_t key = 0;        // the L1 key the entry was found by
        uint32_t way = 0;
    };
    // The hint for va's page, or nullptr.
    const Hint* find(uint64_t va) const {
        const Hint& h = h_[(va >> 12) & (kSlots - 1)];
        return h.page == va >> 12 ? &h : nullptr;
    }
    void record(uint64_t va, uint64_t key, uint32_t way) { h_[(va >> 12) & (kSlots - 1)] = {va >> 12, key, way}; }

private:
    static constexpr size_t kSlots = 64;
    std::array<Hint, kSlots> h_{};
};

// A failed L1 probe of the hit path, for the full look-up that follows it: that look-up
// need not probe the L1 again for the same address. Forgotten on every L1 fill and
// context change.
class L1Miss {
public:
    void note(uint64_t va) { va_ = va, valid_ = true; }
    void forget() { valid_ = false; }
    // Whether va is the noted miss; forgets it either way (it serves one look-up).
    bool take(uint64_t va) {
        const bool hit = valid_ && va_ == va;
        valid_ = false;
        return hit;
    }

private:
    uint64_t va_ = 0;
    bool valid_ = false;
};

}  // namespace hvsim::mmu
