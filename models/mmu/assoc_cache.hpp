// A set-associative, true-LRU translation cache used for every structure of the MMU
// model (L1/L2 TLB, page-walk cache, nested TLB). Keys and values live in separate arrays
// laid out set by set, so a set's keys are contiguous. Two organisations, both exact LRU:
// - a set of up to kScanWays ways (an L2 TLB) is searched by scanning its keys (one or two
//   host cache lines) and keeps a recency stamp per way (the cache's access clock at the
//   last find() or insert()); the victim of a full set is its smallest stamp;
// - a wider set (a fully associative L1 TLB, PWC or nested TLB) is searched through an
//   open-addressing hash index keyed by the full tag, so a probe costs the same for 72 ways
//   as for 12, and keeps its ways in a recency list whose tail is the victim (an O(1) choice
//   where a stamp scan would read every way on each fill).
// Only accesses touch recency; the host footprint of a set-associative structure is its
// touched sets, which matters when many vCPUs each have their own.
//
// Keys carry a 4-bit "code" in bits 3:0 (page size, or dimension/level for the PWC);
// the set index comes from the bits above, like hardware indexing by low VPN bits.
#pragma once

#include <bit>
#include <cassert>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/common/remainder.hpp"

namespace hvsim::mmu {

template <class V>
class AssocCache {
public:
    static constexpr unsigned kCodeBits = 4;
    static constexpr uint64_t kEmpty = ~0ull;
    // Sets up to this wide are searched by a scan of their keys; wider ones by the index.
    static constexpr unsigned kScanWays = 16;

    AssocCache() = default;
    // entries == 0 disables the cache (find() misses, insert() drops).
    AssocCache(unsigned entries, unsigned ways, const char* what = "cache") { configure(entries, ways, what); }

    void configure(unsigned entries, unsigned ways, const char* what = "cache") {
        if (entries != 0 && (ways == 0 || entries % ways != 0))
            throw std::invalid_argument(std::string(what) + ": entries must be a non-zero multiple of ways");
        entries_ = entries;
        ways_ = entries ? ways : 0;
        sets_ = entries ? entries / ways : 0;
        set_of_ = Remainder(sets_ ? sets_ : 1);
        keys_.assign(entries, kEmpty);
        vals_.assign(entries, V{});
        clock_ = 0;
        hashed_ = ways_ > kScanWays;
        touched_.clear();
        touched_.reserve(entries);
        stamp_.clear();
        index_.clear();
        links_.clear();
        head_.clear();
        tail_.clear();
        if (!hashed_) {
            stamp_.assign(entries, 0);
        } else {
            // At most 1/8 full: a probe, a fill's backward-shift delete and its re-index then
            // rarely pass a neighbour (4 bytes a slot; 4 KiB for a 72-entry L1 TLB).
            unsigned cap = 16;
            while (cap < 8u * entries) cap <<= 1;
            index_.assign(cap, 0);
            mask_ = cap - 1;
            shift_ = 64u - unsigned(std::countr_zero(cap));
            links_.assign(entries, Links{});
            head_.assign(sets_, 0);
            tail_.assign(sets_, 0);
            for (unsigned s = 0; s < sets_; ++s) {   // each set's ways in one list, all empty
                const uint32_t b = s * ways_;
                for (uint32_t w = 0; w < ways_; ++w) {
                    links_[b + w].prev = w ? b + w - 1 : kNil;
                    links_[b + w].next = w + 1 < ways_ ? b + w + 1 : kNil;
                    links_[b + w].set = s;
                }
                head_[s] = b;
                tail_[s] = b + ways_ - 1;
            }
        }
        live_ = 0;
        evictions_ = 0;
        for (auto& c : code_count_) c = 0;
        code_mask_ = 0;
    }

    bool enabled() const { return entries_ != 0; }
    unsigned capacity() const { return entries_; }
    unsigned ways() const { return ways_; }
    unsigned sets() const { return sets_; }
    unsigned size() const { return live_; }
    // Live entries whose key carries this code (e.g. how many 2M entries a TLB holds).
    unsigned count_code(unsigned code) const { return code_count_[code & 15u]; }
    // Bit c set when an entry with code c is live: a look-up over page sizes visits the
    // sizes present (in increasing code order, lowest set bit first) instead of all.
    uint16_t code_mask() const { return code_mask_; }
    uint64_t evictions() const { return evictions_; }

    // Hit: marks the entry most recently used and returns it.
    V* find(uint64_t key) {
        const int s = find_way(key);
        return s < 0 ? nullptr : &vals_[size_t(s)];
    }
    // find() by way: the way holding key, marked most recently used; -1 on a miss.
    int find_way(uint64_t key) {
        const int s = lookup(key);
        if (s >= 0) touch(uint32_t(s));
        return s;
    }
    // For a caller that remembers where it found a key (mmu::Mmu's L0 hints): whether way
    // w still holds it, the way's value, and a hit on it (what find() does once it found it).
    bool holds(uint32_t w, uint64_t key) const { return w < entries_ && keys_[w] == key; }
    V& value(uint32_t w) { return vals_[w]; }
    void hit(uint32_t w) { touch(w); }
    // Hit without changing LRU order (for tests and inspection).
    const V* peek(uint64_t key) const {
        const int s = lookup(key);
        return s < 0 ? nullptr : &vals_[size_t(s)];
    }

    // Inserts or replaces key as the most recently used entry of its set; evicts the
    // set's least recently used entry when the set is full (an empty way first).
    void insert(uint64_t key, const V& v) {
        if (!entries_) return;
        const int s = lookup(key);
        if (s >= 0) {
            vals_[size_t(s)] = v;
            touch(uint32_t(s));
            return;
        }
        insert_new(key, v);
    }
    // insert() of a key the caller knows is absent (it just missed, or erased it): no
    // look-up first (asserted in debug builds).
    void insert_new(uint64_t key, const V& v) {
        if (!entries_) return;
        assert(lookup(key) < 0);
        const uint32_t victim = victim_of(set_of(key));
        const uint64_t old = keys_[victim];
        if (old != kEmpty) {
            ++evictions_;
            if (hashed_) unindex(victim);
            // An entry of the same code replaced: the counts and the mask stay as they are.
            if ((old ^ key) & 15u) {
                if (--code_count_[old & 15u] == 0) code_mask_ &= uint16_t(~(1u << (old & 15u)));
                ++code_count_[key & 15u];
                code_mask_ |= uint16_t(1u << (key & 15u));
            }
        } else {
            ++code_count_[key & 15u];
            code_mask_ |= uint16_t(1u << (key & 15u));
            ++live_;
        }
        keys_[victim] = key;
        if (hashed_) index(key, victim);
        if (touched_.size() < entries_) touched_.push_back(victim);   // else clear() sweeps
        vals_[victim] = v;
        touch(victim);
    }

    bool erase(uint64_t key) {
        const int s = lookup(key);
        if (s < 0) return false;
        if (hashed_) {
            unindex(uint32_t(s));   // before the key goes: the backward shift reads keys
            to_tail(uint32_t(s));
        } else {
            stamp_[size_t(s)] = 0;
        }
        if (--code_count_[key & 15u] == 0) code_mask_ &= uint16_t(~(1u << (key & 15u)));
        --live_;
        keys_[size_t(s)] = kEmpty;
        return true;
    }

    template <class Pred>   // Pred(uint64_t key, const V&) -> bool
    unsigned erase_if(Pred pred) {
        unsigned n = 0;
        for (size_t i = 0; i < keys_.size(); ++i)
            if (keys_[i] != kEmpty && pred(keys_[i], vals_[i])) { erase(keys_[i]); ++n; }
        return n;
    }

    // Cost follows what was filled since the last clear, not the capacity: a flush
    // of a 3072-entry L2 TLB holding a few entries is a few stores. List order needs no
    // repair: every way is empty afterwards.
    void clear() {
        if (touched_.size() < entries_) {
            for (uint32_t s : touched_) {
                if (keys_[s] == kEmpty) continue;
                if (hashed_) index_[links_[s].pos] = 0;
                else stamp_[s] = 0;
                keys_[s] = kEmpty;
            }
        } else {
            for (auto& k : keys_) k = kEmpty;
            for (auto& t : stamp_) t = 0;
            for (auto& i : index_) i = 0;
        }
        touched_.clear();
        for (auto& c : code_count_) c = 0;
        code_mask_ = 0;
        live_ = 0;
    }

private:
    static constexpr uint32_t kNil = ~0u;
    struct Links {                           // hashed_: a way's place in its set's recency list
        uint32_t prev = kNil, next = kNil;   // head = most recent
        uint32_t set = 0;
        uint32_t pos = 0;                    // where index_ points at this way
    };

    void touch(uint32_t s) {
        if (hashed_) to_head(s);
        else stamp_[s] = ++clock_;
    }
    void unlink(uint32_t s) {
        Links& l = links_[s];
        if (l.prev != kNil) links_[l.prev].next = l.next; else head_[l.set] = l.next;
        if (l.next != kNil) links_[l.next].prev = l.prev; else tail_[l.set] = l.prev;
    }
    void to_head(uint32_t s) {
        const uint32_t set = links_[s].set;
        if (head_[set] == s) return;
        unlink(s);
        links_[s].prev = kNil;
        links_[s].next = head_[set];
        links_[head_[set]].prev = s;
        head_[set] = s;
    }
    void to_tail(uint32_t s) {
        const uint32_t set = links_[s].set;
        if (tail_[set] == s) return;
        unlink(s);
        links_[s].next = kNil;
        links_[s].prev = tail_[set];
        links_[tail_[set]].next = s;
        tail_[set] = s;
    }

    // The way to fill in a set: an empty one, else the least recently used (the list's
    // tail holds the empty ways, then the oldest). An empty way's stamp is 0 and a live
    // one's at least 1, so the first smallest stamp is the first empty way if there is one:
    // the scan reads stamps only.
    uint32_t victim_of(size_t set) const {
        if (hashed_) return tail_[set];
        const size_t base = set * ways_;
        size_t best = base;
        for (size_t w = base + 1; w < base + ways_; ++w)
            if (stamp_[w] < stamp_[best]) best = w;
        return uint32_t(best);
    }

    size_t home(uint64_t key) const { return size_t((key * 0x9e3779b97f4a7c15ull) >> shift_); }

    int lookup(uint64_t key) const {
        if (!entries_) return -1;
        if (!hashed_) {
            const size_t base = set_of(key) * ways_;
            for (size_t w = base; w < base + ways_; ++w)
                if (keys_[w] == key) return int(w);
            return -1;
        }
        for (size_t h = home(key);; h = (h + 1) & mask_) {
            const uint32_t i = index_[h];
            if (!i) return -1;
            if (keys_[i - 1] == key) return int(i - 1);
        }
    }
    // The set a key maps to, without a division (one would cost more than the rest of a look-up).
    size_t set_of(uint64_t key) const { return size_t(set_of_(key >> kCodeBits)); }
    void index(uint64_t key, uint32_t slot) {
        size_t h = home(key);
        while (index_[h]) h = (h + 1) & mask_;
        index_[h] = slot + 1;
        links_[slot].pos = uint32_t(h);
    }
    // Linear-probing delete of the index slot that points at `slot` (links_[slot].pos, kept
    // by index() and every move below: no probe from the key's home), with backward shift,
    // so no tombstones accumulate.
    void unindex(uint32_t slot) {
        size_t i = links_[slot].pos;
        assert(index_[i] == slot + 1);
        for (size_t j = i;;) {
            j = (j + 1) & mask_;
            if (!index_[j]) break;
            const size_t k = home(keys_[index_[j] - 1]);
            // Entry at j may move to i only if its home does not lie cyclically in (i, j].
            const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            index_[i] = index_[j];
            links_[index_[i] - 1].pos = uint32_t(i);
            i = j;
        }
        index_[i] = 0;
    }

    unsigned entries_ = 0, ways_ = 0, sets_ = 0;
    Remainder set_of_;        // key >> kCodeBits -> its set
    bool hashed_ = false;     // ways_ > kScanWays: look-ups through index_, recency in links_
    std::vector<uint64_t> keys_;    // per way, set by set (kEmpty: empty way)
    std::vector<V> vals_;
    std::vector<uint64_t> stamp_;   // !hashed_: clock_ at the way's last use (0: empty)
    uint64_t clock_ = 0;
    std::vector<uint32_t> index_;   // hashed_: slot + 1 by key (0: free)
    std::vector<Links> links_;      // hashed_
    std::vector<uint32_t> head_, tail_;   // hashed_: per set
    std::vector<uint32_t> touched_;   // slots filled since the last clear (may repeat)
    size_t mask_ = 0;
    unsigned shift_ = 60;
    uint64_t evictions_ = 0;
    unsigned live_ = 0;
    unsigned code_count_[16] = {};
    uint16_t code_mask_ = 0;   // bit c: code_count_[c] != 0
};

}  // namespace hvsim::mmu
