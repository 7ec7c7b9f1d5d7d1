#include "models/mem/page_alloc.hpp"

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

}  // namespace hvsim
