#include "models/mem/page_alloc.hpp"

#include <algorithm>
#include <bit>
#include <new>
#include <stdexcept>

namespace hvsim {

HostPageAllocator::HostPageAllocator(Hpa base, uint64_t size_bytes) {
    const uint64_t gib = 1ull << 30;
    if (!is_aligned(base.raw(), gib) || !is_aligned(size_bytes, gib) || size_bytes == 0)
        throw std::invalid_argument("host memory base and size must be non-zero multiples of 1 GiB");
    free_.reserve(kMaxOrder + 1);
    for (unsigned o = 0; o <= kMaxOrder; ++o) free_.emplace_back(FreeListNodeAlloc<uint64_t>(pool_.get()));
    for (uint64_t off = 0; off < size_bytes; off += gib)
        free_[kMaxOrder].insert((base.raw() + off) >> kPageShift);
    total_pages_ = free_pages_ = size_bytes >> kPageShift;
}

std::optional<Pfn> HostPageAllocator::alloc(unsigned order) {
    if (order > kMaxOrder) return std::nullopt;
    unsigned o = order;
    while (o <= kMaxOrder && free_[o].empty()) ++o;
    if (o > kMaxOrder) return std::nullopt;
    uint64_t pfn = *free_[o].begin();
    free_[o].erase(free_[o].begin());
    // Split down, keeping the lower half and freeing the upper buddies.
    while (o > order) {
        --o;
        free_[o].insert(pfn + (1ull << o));
    }
    free_pages_ -= 1ull << order;
    return Pfn(pfn);
}

std::vector<HostPageAllocator::PfnRun> HostPageAllocator::alloc_bulk(uint64_t n) {
    std::vector<PfnRun> runs;
    if (n == 0 || n > free_pages_) return runs;
    while (n) {
        // alloc(0) takes from the smallest non-empty order; every order below stays empty
        // until this block is used up, so one-page calls would take its pages in order.
        unsigned o = 0;
        while (free_[o].empty()) ++o;   // n <= free_pages_: some order has a block
        const uint64_t pfn = *free_[o].begin();
        free_[o].erase(free_[o].begin());
        const uint64_t size = 1ull << o;
        const uint64_t take = n < size ? n : size;
        // What one-page splits leave of a partly used block: the rest of it as the aligned
        // blocks of the binary decomposition (each split frees the upper buddy).
        for (uint64_t pos = take; pos < size;) {
            const unsigned j = unsigned(std::countr_zero(pos));
            free_[j].insert(pfn + pos);
            pos += 1ull << j;
        }
        if (!runs.empty() && runs.back().first + runs.back().count == Pfn(pfn))
            runs.back().count += take;
        else
            runs.push_back({Pfn(pfn), take});
        free_pages_ -= take;
        n -= take;
    }
    return runs;
}

void HostPageAllocator::free(Pfn p, unsigned order) {
    uint64_t pfn = p.raw();
    if (order > kMaxOrder || (pfn & ((1ull << order) - 1)))
        throw std::logic_error("HostPageAllocator::free: misaligned block");
    free_pages_ += 1ull << order;
    while (order < kMaxOrder) {
        const uint64_t buddy = pfn ^ (1ull << order);
        auto it = free_[order].find(buddy);
        if (it == free_[order].end()) break;
        free_[order].erase(it);
        pfn &= ~(1ull << order);
        ++order;
    }
    free_[order].insert(pfn);
}

void HostPageAllocator::free_range(Pfn first, uint64_t n) {
    uint64_t pfn = first.raw();
    const uint64_t end = pfn + n;
    while (pfn < end) {
        // The largest block aligned at pfn that fits in what is left.
        unsigned o = pfn ? std::min<unsigned>(kMaxOrder, unsigned(std::countr_zero(pfn))) : kMaxOrder;
        while ((1ull << o) > end - pfn) --o;
        free(Pfn(pfn), o);
        pfn += 1ull << o;
    }
}

std::vector<std::vector<uint64_t>> HostPageAllocator::free_lists() const {
    std::vector<std::vector<uint64_t>> r;
    for (const FreeList& l : free_) r.emplace_back(l.begin(), l.end());
    return r;
}

}  // namespace hvsim
