// The VMM's anonymous pages by host virtual page: the stand-in for the process page
// tables' PTEs of anonymous memory. Pages are kept in 16-page leaves (a bitmap of present
// pages and the pages themselves) in an ordered map, and the last leaf used is remembered:
// a first touch next to the previous one is an array store, not a tree insert and a heap
// allocation per page, and a 2 MiB THP region is 32 leaves, not 512 nodes. Ordered, so
// range operations (munmap, "is this 2M region empty") visit only what is there.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>

#include "models/common/types.hpp"

namespace hvsim::kvm {

struct AnonPage {
    Pfn pfn;
    uint32_t pins = 0;   // long-term pins (pin_user_pages(FOLL_LONGTERM)) on this page
};

class AnonPageTable {
public:
    static constexpr unsigned kLeafPages = 16;

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

    // The page mapped at hva_page (page-aligned), or null.
    AnonPage* find(uint64_t hva_page) {
        Leaf* l = leaf(key_of(hva_page));
        const unsigned b = bit_of(hva_page);
        return l && (l->present >> b & 1) ? &l->pages[b] : nullptr;
    }
    const AnonPage* find(uint64_t hva_page) const { return const_cast<AnonPageTable*>(this)->find(hva_page); }
    bool contains(uint64_t hva_page) const { return find(hva_page) != nullptr; }

    // Map p at hva_page, which must not be mapped; the stored page (stable until erased).
    AnonPage* insert(uint64_t hva_page, AnonPage p) {
        const uint64_t key = key_of(hva_page);
        Leaf* l = leaf(key);
        if (!l) {
            l = &leaves_.try_emplace(key).first->second;
            last_key_ = key;
            last_ = l;
        }
        const unsigned b = bit_of(hva_page);
        l->present |= uint16_t(1u << b);
        l->pages[b] = p;
        ++size_;
        return &l->pages[b];
    }

    // Map n pages from hva_page to the consecutive pages from pfn, each with `pins` pins;
    // none of them may be mapped. A leaf at a time: a bulk fault-in (legacy SEV pinning
    // 64 GiB) fills arrays instead of looking up every page.
    void insert_run(uint64_t hva_page, uint64_t n, Pfn pfn, uint32_t pins) {
        uint64_t pg = hva_page >> kPageShift;
        const uint64_t end = pg + n;
        auto hint = leaves_.end();
        while (pg < end) {
            const uint64_t key = pg & ~uint64_t(kLeafPages - 1);
            Leaf* l = leaf(key);
            if (!l) {
                hint = leaves_.try_emplace(hint, key);   // keys ascend: the hint is the next node
                l = &hint->second;
                ++hint;
                last_key_ = key;
                last_ = l;
            }
            const uint64_t stop = end < key + kLeafPages ? end : key + kLeafPages;
            for (; pg < stop; ++pg, ++pfn) {
                const unsigned b = unsigned(pg - key);
                l->present |= uint16_t(1u << b);
                l->pages[b] = AnonPage{pfn, pins};
                ++size_;
            }
        }
    }

    // Unmap hva_page; false if it was not mapped.
    bool erase(uint64_t hva_page) {
        const uint64_t key = key_of(hva_page);
        Leaf* l = leaf(key);
        const unsigned b = bit_of(hva_page);
        if (!l || !(l->present >> b & 1)) return false;
        l->present &= uint16_t(~(1u << b));
        l->pages[b] = AnonPage{};
        --size_;
        if (!l->present) {
            leaves_.erase(key);
            last_ = nullptr;
        }
        return true;
    }

    // Visit the mapped pages of [start, end) (page-aligned hvas) in order, leaf by leaf:
    // one tree step per 16 pages, no look-up per page. fn(hva_page, AnonPage&) may change
    // the page's pins but must not insert or erase.
    template <class F>
    void for_each_in(uint64_t start, uint64_t end, F&& fn) {
        if (start >= end) return;
        const uint64_t first = start >> kPageShift, last = (end - 1) >> kPageShift;
        for (auto it = leaves_.lower_bound(first & ~uint64_t(kLeafPages - 1));
             it != leaves_.end() && it->first <= last; ++it) {
            uint32_t bits = it->second.present;
            while (bits) {
                const unsigned b = unsigned(std::countr_zero(bits));
                bits &= bits - 1;
                const uint64_t pg = it->first + b;
                if (pg < first) continue;
                if (pg > last) break;
                fn(pg << kPageShift, it->second.pages[b]);
            }
        }
    }
    template <class F>
    void for_each_in(uint64_t start, uint64_t end, F&& fn) const {
        const_cast<AnonPageTable*>(this)->for_each_in(start, end,
                                                      [&](uint64_t hva, const AnonPage& a) { fn(hva, a); });
    }

    // Unmap every page of [start, end) (page-aligned hvas): leaves emptied go whole.
    void erase_range(uint64_t start, uint64_t end) {
        if (start >= end) return;
        const uint64_t first = start >> kPageShift, last = (end - 1) >> kPageShift;
        last_ = nullptr;
        for (auto it = leaves_.lower_bound(first & ~uint64_t(kLeafPages - 1));
             it != leaves_.end() && it->first <= last;) {
            Leaf& l = it->second;
            const uint64_t lo = first > it->first ? first - it->first : 0;
            const uint64_t hi = last - it->first + 1 < kLeafPages ? last - it->first + 1 : kLeafPages;
            const uint32_t mask = uint32_t((1u << hi) - 1) & ~uint32_t((1u << lo) - 1);
            const uint32_t gone = l.present & mask;
            for (uint32_t bits = gone; bits; bits &= bits - 1) l.pages[std::countr_zero(bits)] = AnonPage{};
            l.present = uint16_t(l.present & ~gone);
            size_ -= size_t(std::popcount(gone));
            it = l.present ? std::next(it) : leaves_.erase(it);
        }
    }

    // The lowest mapped hva page >= hva_page (page-aligned), if any.
    std::optional<uint64_t> next(uint64_t hva_page) const {
        const uint64_t key = key_of(hva_page);
        auto it = leaves_.lower_bound(key);
        if (it != leaves_.end() && it->first == key) {
            const uint32_t above = uint32_t(it->second.present) >> bit_of(hva_page) << bit_of(hva_page);
            if (above) return page_at(key, unsigned(std::countr_zero(above)));
            ++it;
        }
        if (it == leaves_.end()) return std::nullopt;
        return page_at(it->first, unsigned(std::countr_zero(uint32_t(it->second.present))));
    }
    // Whether any page of [start, end) is mapped.
    bool any_in(uint64_t start, uint64_t end) const {
        const auto n = next(start);
        return n && *n < end;
    }

private:
    struct Leaf {
        uint16_t present = 0;   // bit i: page key + i is mapped
        std::array<AnonPage, kLeafPages> pages{};
    };
    static_assert(kLeafPages == 16, "the present bitmap is 16 bits");

    static uint64_t key_of(uint64_t hva_page) { return (hva_page >> kPageShift) & ~uint64_t(kLeafPages - 1); }
    static unsigned bit_of(uint64_t hva_page) { return unsigned(hva_page >> kPageShift) & (kLeafPages - 1); }
    static uint64_t page_at(uint64_t key, unsigned b) { return (key + b) << kPageShift; }

    Leaf* leaf(uint64_t key) {
        if (last_ && last_key_ == key) return last_;
        auto it = leaves_.find(key);
        if (it == leaves_.end()) return nullptr;
        last_key_ = key;
        last_ = &it->second;
        return last_;
    }

    std::map<uint64_t, Leaf> leaves_;   // first page index of the leaf -> leaf
    size_t size_ = 0;
    uint64_t last_key_ = 0;
    Leaf* last_ = nullptr;              // the leaf of last_key_ (map nodes do not move)
};

}  // namespace hvsim::kvm
