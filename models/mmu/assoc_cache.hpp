// A set-associative, true-LRU translation cache used for every structure of the MMU
// model (L1/L2 TLB, page-walk cache, nested TLB). Lookup goes through an open-
// addressing hash index keyed by the full tag, so a probe costs the same for a 72-way
// fully associative L1 as for a 12-way L2: no per-way tag scan on the hit path.
// Associativity is still exact: the set only matters when choosing a victim.
//
// Keys carry a 4-bit "code" in bits 3:0 (page size, or dimension/level for the PWC);
// the set index comes from the bits above, like hardware indexing by low VPN bits.
#pragma once

#include <bit>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace hvsim::mmu {

template <class V>
class AssocCache {
public:
    static constexpr unsigned kCodeBits = 4;
    static constexpr uint64_t kEmpty = ~0ull;

    AssocCache() = default;
    // entries == 0 disables the cache (find() misses, insert() drops).
    AssocCache(unsigned entries, unsigned ways, const char* what = "cache") { configure(entries, ways, what); }

    void configure(unsigned entries, unsigned ways, const char* what = "cache") {
        if (entries != 0 && (ways == 0 || entries % ways != 0))
            throw std::invalid_argument(std::string(what) + ": entries must be a non-zero multiple of ways");
        entries_ = entries;
        ways_ = entries ? ways : 0;
        sets_ = entries ? entries / ways : 0;
        set_mask_ = sets_ > 1 && std::has_single_bit(sets_) ? sets_ - 1 : 0;
        slots_.assign(entries, Slot{});
        head_.assign(sets_, 0);
        tail_.assign(sets_, 0);
        for (unsigned s = 0; s < sets_; ++s) {   // each set's ways in one list, all empty
            const uint32_t b = s * ways_;
            for (uint32_t w = 0; w < ways_; ++w) {
                slots_[b + w].prev = w ? b + w - 1 : kNil;
                slots_[b + w].next = w + 1 < ways_ ? b + w + 1 : kNil;
                slots_[b + w].set = s;
            }
            head_[s] = b;
            tail_[s] = b + ways_ - 1;
        }
        touched_.clear();
        touched_.reserve(entries);
        unsigned cap = 16;
        while (cap < 2u * entries) cap <<= 1;
        index_.assign(cap, 0);
        mask_ = cap - 1;
        shift_ = 64u - unsigned(std::countr_zero(cap));
        live_ = 0;
        evictions_ = 0;
        for (auto& c : code_count_) c = 0;
    }

    bool enabled() const { return entries_ != 0; }
    unsigned capacity() const { return entries_; }
    unsigned ways() const { return ways_; }
    unsigned sets() const { return sets_; }
    unsigned size() const { return live_; }
    // Live entries whose key carries this code (e.g. how many 2M entries a TLB holds).
    unsigned count_code(unsigned code) const { return code_count_[code & 15u]; }
    uint64_t evictions() const { return evictions_; }

    // Hit: marks the entry most recently used and returns it.
    V* find(uint64_t key) {
        const int s = lookup(key);
        if (s < 0) return nullptr;
        to_head(uint32_t(s));
        return &slots_[size_t(s)].val;
    }
    // Hit without changing LRU order (for tests and inspection).
    const V* peek(uint64_t key) const {
        const int s = lookup(key);
        return s < 0 ? nullptr : &slots_[size_t(s)].val;
    }

    // Inserts or replaces key as the most recently used entry of its set; evicts the
    // set's least recently used entry when the set is full. Each set is a list in
    // recency order with its empty ways at the tail, so the victim is the tail: O(1)
    // even for a 72-way fully associative L1.
    void insert(uint64_t key, const V& v) {
        if (!entries_) return;
        int s = lookup(key);
        if (s < 0) {
            const uint32_t victim = tail_[set_of(key)];
            Slot& sl = slots_[victim];
            if (sl.key != kEmpty) {
                ++evictions_;
                unindex(sl.key);
                --code_count_[sl.key & 15u];
                --live_;
            }
            sl.key = key;
            index(key, victim);
            if (touched_.size() < entries_) touched_.push_back(victim);   // else clear() sweeps
            ++code_count_[key & 15u];
            ++live_;
            s = int(victim);
        }
        slots_[size_t(s)].val = v;
        to_head(uint32_t(s));
    }

    bool erase(uint64_t key) {
        const int s = lookup(key);
        if (s < 0) return false;
        unindex(key);
        --code_count_[key & 15u];
        --live_;
        slots_[size_t(s)].key = kEmpty;
        to_tail(uint32_t(s));
        return true;
    }

    template <class Pred>   // Pred(uint64_t key, const V&) -> bool
    unsigned erase_if(Pred pred) {
        unsigned n = 0;
        for (auto& sl : slots_)
            if (sl.key != kEmpty && pred(sl.key, sl.val)) { erase(sl.key); ++n; }
        return n;
    }

    // Cost follows what was filled since the last clear, not the capacity: a flush
    // of a 3072-entry L2 TLB holding a few entries is a few stores. List order needs
    // no repair: every way is empty afterwards.
    void clear() {
        if (touched_.size() < entries_) {
            for (uint32_t s : touched_) {
                Slot& sl = slots_[s];
                if (sl.key == kEmpty) continue;
                index_[sl.pos] = 0;
                sl.key = kEmpty;
            }
        } else {
            for (auto& sl : slots_) sl.key = kEmpty;
            for (auto& i : index_) i = 0;
        }
        touched_.clear();
        for (auto& c : code_count_) c = 0;
        live_ = 0;
    }

private:
    static constexpr uint32_t kNil = ~0u;
    struct Slot {
        uint64_t key = kEmpty;
        uint32_t prev = kNil, next = kNil;   // recency list of the set (head = most recent)
        uint32_t pos = 0;                    // where the hash index points at this slot
        uint32_t set = 0;                    // slot / ways, kept: a division on every hit costs more
        V val{};
    };

    size_t set_of_slot(uint32_t s) const { return slots_[s].set; }
    void unlink(uint32_t s) {
        Slot& sl = slots_[s];
        const size_t set = set_of_slot(s);
        if (sl.prev != kNil) slots_[sl.prev].next = sl.next; else head_[set] = sl.next;
        if (sl.next != kNil) slots_[sl.next].prev = sl.prev; else tail_[set] = sl.prev;
    }
    void to_head(uint32_t s) {
        const size_t set = set_of_slot(s);
        if (head_[set] == s) return;
        unlink(s);
        slots_[s].prev = kNil;
        slots_[s].next = head_[set];
        slots_[head_[set]].prev = s;
        head_[set] = s;
    }
    void to_tail(uint32_t s) {
        const size_t set = set_of_slot(s);
        if (tail_[set] == s) return;
        unlink(s);
        slots_[s].next = kNil;
        slots_[s].prev = tail_[set];
        slots_[tail_[set]].next = s;
        tail_[set] = s;
    }

    size_t home(uint64_t key) const { return size_t((key * 0x9e3779b97f4a7c15ull) >> shift_); }

    int lookup(uint64_t key) const {
        if (!entries_) return -1;
        for (size_t h = home(key);; h = (h + 1) & mask_) {
            const uint32_t i = index_[h];
            if (!i) return -1;
            if (slots_[i - 1].key == key) return int(i - 1);
        }
    }
    // The set a key maps to; a mask when the set count is a power of two (it always is for
    // the presets), since a 64-bit division here would cost more than the rest of a lookup.
    size_t set_of(uint64_t key) const {
        const uint64_t k = key >> kCodeBits;
        return set_mask_ ? size_t(k & set_mask_) : sets_ == 1 ? 0 : size_t(k % sets_);
    }
    void index(uint64_t key, uint32_t slot) {
        size_t h = home(key);
        while (index_[h]) h = (h + 1) & mask_;
        index_[h] = slot + 1;
        slots_[slot].pos = uint32_t(h);
    }
    // Linear-probing delete with backward shift, so no tombstones accumulate.
    void unindex(uint64_t key) {
        size_t i = home(key);
        while (slots_[index_[i] - 1].key != key) i = (i + 1) & mask_;
        for (size_t j = i;;) {
            j = (j + 1) & mask_;
            if (!index_[j]) break;
            const size_t k = home(slots_[index_[j] - 1].key);
            // Entry at j may move to i only if its home does not lie cyclically in (i, j].
            const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            index_[i] = index_[j];
            slots_[index_[i] - 1].pos = uint32_t(i);
            i = j;
        }
        index_[i] = 0;
    }

    unsigned entries_ = 0, ways_ = 0, sets_ = 0;
    uint64_t set_mask_ = 0;   // sets_ - 1 when sets_ is a power of two above 1, else 0
    std::vector<Slot> slots_;
    std::vector<uint32_t> index_;
    std::vector<uint32_t> head_, tail_;  // per set
    std::vector<uint32_t> touched_;   // slots filled since the last clear (may repeat)
    size_t mask_ = 0;
    unsigned shift_ = 60;
    uint64_t evictions_ = 0;
    unsigned live_ = 0;
    unsigned code_count_[16] = {};
};

}  // namespace hvsim::mmu
