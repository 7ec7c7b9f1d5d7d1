// Host physical page allocator: a buddy allocator over [base, base + size), orders
// 0 (4 KiB) to 18 (1 GiB). Deterministic: it always hands out the lowest free block,
// so two runs of a scenario place every page at the same host address.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>

#include "models/common/types.hpp"

namespace hvsim {

class HostPageAllocator {
public:
    static constexpr unsigned kMaxOrder = 18;

    // base and size must be 1 GiB aligned.
    HostPageAllocator(Hpa base, uint64_t size_bytes);

    std::optional<Pfn> alloc(unsigned order);
    void free(Pfn pfn, unsigned order);

    uint64_t free_pages() const { return free_pages_; }
    uint64_t total_pages() const { return total_pages_; }
    uint64_t used_pages() const { return total_pages_ - free_pages_; }

private:
    std::array<std::set<uint64_t>, kMaxOrder + 1> free_;
    uint64_t free_pages_ = 0;
    uint64_t total_pages_ = 0;
};

}  // namespace hvsim
