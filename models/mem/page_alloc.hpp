// Host physical page allocator: a buddy allocator over [base, base + size), orders
// 0 (4 KiB) to 18 (1 GiB). Deterministic: it always hands out the lowest free block,
// so two runs of a scenario place every page at the same host address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim {

// Recycles the free lists' tree nodes: a page fault splits a block and a free merges
// buddies, each an erase and an insert, so without this every fault is a heap allocation
// and a heap free. Blocks of one size (the node size) are reused; others go to the heap.
class FreeListNodePool {
public:
    FreeListNodePool() = default;
    FreeListNodePool(const FreeListNodePool&) = delete;
    FreeListNodePool& operator=(const FreeListNodePool&) = delete;
    ~FreeListNodePool() {
        while (head_) {
            Free* n = head_->next;
            ::operator delete(head_);
            head_ = n;
        }
    }
    void* get(size_t bytes) {
        if (bytes == size_ && head_) {
            Free* f = head_;
            head_ = f->next;
            return f;
        }
        return ::operator new(bytes);
    }
    void put(void* p, size_t bytes) {
        if (size_ == 0 && bytes >= sizeof(Free)) size_ = bytes;
        if (bytes != size_) {
            ::operator delete(p);
            return;
        }
        head_ = new (p) Free{head_};
    }

private:
    struct Free {
        Free* next;
    };
    size_t size_ = 0;   // the one block size kept (the first freed, a tree node)
    Free* head_ = nullptr;
};

template <class T>
struct FreeListNodeAlloc {
    using value_type = T;
    FreeListNodePool* pool;
    explicit FreeListNodeAlloc(FreeListNodePool* p) : pool(p) {}
    template <class U>
    FreeListNodeAlloc(const FreeListNodeAlloc<U>& o) : pool(o.pool) {}
    T* allocate(size_t n) { return static_cast<T*>(pool->get(n * sizeof(T))); }
    void deallocate(T* p, size_t n) { pool->put(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const FreeListNodeAlloc<U>& o) const { return pool == o.pool; }
};

class HostPageAllocator {
public:
    static constexpr unsigned kMaxOrder = 18;

    // base and size must be 1 GiB aligned.
    HostPageAllocator(Hpa base, uint64_t size_bytes);
    HostPageAllocator(const HostPageAllocator&) = delete;
    HostPageAllocator& operator=(const HostPageAllocator&) = delete;

    std::optional<Pfn> alloc(unsigned order);
    void free(Pfn pfn, unsigned order);

    // n pages of order 0, exactly the pages n calls of alloc(0) would hand out, in the same
    // order, and leaving the free lists as those calls would: taken a block at a time (the
    // lowest block of the smallest non-empty order, whole, or split as alloc() splits it), so
    // pinning 64 GiB costs a few free-list operations per block, not per page. Returned as
    // runs of consecutive pfns; empty (nothing taken) if fewer than n pages are free.
    struct PfnRun {
        Pfn first;
        uint64_t count;
    };
    std::vector<PfnRun> alloc_bulk(uint64_t n);

    // free(pfn, 0) of each of the n pages from first, done as the aligned blocks that cover
    // them: with buddies merged on every free, the free lists depend only on which pages
    // are free, so they end as n one-page frees would leave them (the pages must be in use).
    void free_range(Pfn first, uint64_t n);
    // The free lists (per order, the first pfn of each free block, lowest first): for tests
    // that compare two ways of reaching a state.
    std::vector<std::vector<uint64_t>> free_lists() const;

    uint64_t free_pages() const { return free_pages_; }
    uint64_t total_pages() const { return total_pages_; }
    uint64_t used_pages() const { return total_pages_ - free_pages_; }

private:
    using FreeList = std::set<uint64_t, std::less<uint64_t>, FreeListNodeAlloc<uint64_t>>;
    // Declared before the lists: destroyed after them, so their nodes come back first.
    std::unique_ptr<FreeListNodePool> pool_ = std::make_unique<FreeListNodePool>();
    std::vector<FreeList> free_;   // per order: first pfn of each free block, lowest first
    uint64_t free_pages_ = 0;
    uint64_t total_pages_ = 0;
};

}  // namespace hvsim
