// An interval map over 64-bit keys (gfns, file page indices): the stand-in for the
// xarrays and maple trees KVM keeps per gfn or per file index (mem_attr_array,
// guest_memfd bindings, the page cache). Each node is a maximal run [start, end) of
// keys sharing one value, so storing or scanning a range costs O(log n + runs touched),
// never O(keys): converting 64 GiB touches a handful of nodes, not 16 M entries.
//
// Values may be "linear": a run of Pfn values maps key start+i to pfn+i, so a page
// cache of physically contiguous pages is a single node (RangeValueTraits<Pfn>).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim::kvm {

// How values behave inside a run: the value `delta` keys after the run start, and
// whether run b (value vb) continues run a (value va, length len_a) so they merge.
template <class V>
struct RangeValueTraits {
    static V at(const V& v, uint64_t) { return v; }
    static bool continues(const V& va, uint64_t, const V& vb) { return va == vb; }
};

template <>
struct RangeValueTraits<Pfn> {
    static Pfn at(Pfn v, uint64_t delta) { return v + delta; }
    static bool continues(Pfn va, uint64_t len_a, Pfn vb) { return va + len_a == vb; }
};

template <class V, class Traits = RangeValueTraits<V>>
class RangeMap {
public:
    struct Run {
        uint64_t end;   // exclusive
        V value;        // value at the run's first key
    };

    // Number of nodes (maximal runs); what the scale tests assert on.
    size_t nodes() const { return runs_.size(); }
    bool empty() const { return runs_.empty(); }
    void clear() { runs_.clear(); }

    // The value stored at key k.
    std::optional<V> find(uint64_t k) const {
        auto it = containing(k);
        if (it == runs_.end()) return std::nullopt;
        return Traits::at(it->second.value, k - it->first);
    }
    bool contains(uint64_t k) const { return containing(k) != runs_.end(); }

    // Store v for every key in [start, end) (linear values: v at start, advancing).
    void assign(uint64_t start, uint64_t end, const V& v) {
        if (start >= end) return;
        erase(start, end);
        auto it = runs_.emplace(start, Run{end, v}).first;
        // Merge with the next run, then the previous one.
        auto next = std::next(it);
        if (next != runs_.end() && next->first == end &&
            Traits::continues(it->second.value, end - start, next->second.value)) {
            it->second.end = next->second.end;
            runs_.erase(next);
        }
        if (it != runs_.begin()) {
            auto prev = std::prev(it);
            if (prev->second.end == start &&
                Traits::continues(prev->second.value, start - prev->first, it->second.value)) {
                prev->second.end = it->second.end;
                runs_.erase(it);
            }
        }
    }

    // Counting values (not linear ones): add delta to the value of every key in
    // [start, end); an absent key counts as 0 and a key whose value reaches 0 is removed
    // (a negative delta leaves absent keys absent).
    void add(uint64_t start, uint64_t end, int64_t delta) {
        if (start >= end || delta == 0) return;
        struct Piece {
            uint64_t s, e;
            V v;
        };
        std::vector<Piece> pieces;
        for_each(start, end, [&](uint64_t s, uint64_t e, const V& v) { pieces.push_back({s, e, v}); });
        uint64_t pos = start;
        for (const Piece& p : pieces) {
            if (pos < p.s && delta > 0) assign(pos, p.s, V(delta));
            const V nv = V(int64_t(p.v) + delta);
            if (nv == V(0))
                erase(p.s, p.e);
            else
                assign(p.s, p.e, nv);
            pos = p.e;
        }
        if (pos < end && delta > 0) assign(pos, end, V(delta));
    }

    // Remove every key in [start, end).
    void erase(uint64_t start, uint64_t end) {
        if (start >= end) return;
        split(start);
        split(end);
        auto it = runs_.lower_bound(start);
        while (it != runs_.end() && it->first < end) it = runs_.erase(it);
    }

    // Visit the stored runs intersecting [start, end), clipped to it, in key order:
    // fn(run_start, run_end, value_at_run_start). fn must not modify the map.
    template <class F>
    void for_each(uint64_t start, uint64_t end, F&& fn) const {
        if (start >= end) return;
        auto it = runs_.upper_bound(start);
        if (it != runs_.begin()) {
            auto prev = std::prev(it);
            if (prev->second.end > start) it = prev;
        }
        for (; it != runs_.end() && it->first < end; ++it) {
            const uint64_t s = it->first < start ? start : it->first;
            const uint64_t e = it->second.end > end ? end : it->second.end;
            fn(s, e, Traits::at(it->second.value, s - it->first));
        }
    }

    // First stored key in [start, end), if any (xa_find()).
    // One tree search, not a visit of every run in the range.
    std::optional<uint64_t> first_in(uint64_t start, uint64_t end) const {
        if (start >= end) return std::nullopt;
        auto it = runs_.upper_bound(start);
        if (it != runs_.begin() && std::prev(it)->second.end > start) return start;
        if (it != runs_.end() && it->first < end) return it->first;
        return std::nullopt;
    }
    bool any_in(uint64_t start, uint64_t end) const { return first_in(start, end).has_value(); }

    // Number of stored keys in [start, end).
    uint64_t count(uint64_t start, uint64_t end) const {
        uint64_t n = 0;
        for_each(start, end, [&](uint64_t s, uint64_t e, const V&) { n += e - s; });
        return n;
    }

    const std::map<uint64_t, Run>& runs() const { return runs_; }

private:
    typename std::map<uint64_t, Run>::const_iterator containing(uint64_t k) const {
        auto it = runs_.upper_bound(k);
        if (it == runs_.begin()) return runs_.end();
        --it;
        return it->second.end > k ? it : runs_.end();
    }

    // Make k a run boundary if it falls strictly inside a run.
    void split(uint64_t k) {
        auto it = runs_.upper_bound(k);
        if (it == runs_.begin()) return;
        --it;
        if (it->first < k && it->second.end > k) {
            Run tail{it->second.end, Traits::at(it->second.value, k - it->first)};
            it->second.end = k;
            runs_.emplace_hint(std::next(it), k, std::move(tail));
        }
    }

    std::map<uint64_t, Run> runs_;
};

}  // namespace hvsim::kvm
