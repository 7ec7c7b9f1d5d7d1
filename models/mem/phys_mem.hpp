// Sparse physical memory holding real bytes. A 4 KiB page exists once touched
// (written, or read through page()); untouched pages read as zero. Lookup is a
// four-level radix over the 40-bit PFN so a table walk's reads cost a few loads,
// not a hash probe.
//
// A page whose 4096 bytes are all one value (a guest's memset, a zeroed page, the
// 0xab of a content policy) shares one read-only copy per byte value, like the kernel's
// zero page: a guest with gigabytes touched by such stores costs pointers, not
// gigabytes. A few small stores into such a page (a guest writing one word per page, a
// page table with its first entries) are kept as patches over the uniform value: up to
// kPatchWords 8-byte words, about 64 bytes instead of 4 KiB. More stores, or a caller
// that needs the page's bytes at one address (page(), page_if_present()), give the page
// its own copy first; a read of a few bytes (read(), read_view()) does not.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim {

class PhysMem {
public:
    PhysMem();
    ~PhysMem();
    PhysMem(const PhysMem&) = delete;
    PhysMem& operator=(const PhysMem&) = delete;

    // The page's bytes for writing, allocated (zero-filled) on first use; a shared
    // uniform page gets its own copy first.
    uint8_t* page(Pfn pfn);
    // The page's bytes or nullptr when never touched (reads as zeros).
    const uint8_t* page_if_present(Pfn pfn) const;
    bool present(Pfn pfn) const { return page_if_present(pfn) != nullptr; }
    // For reading [off, off + n) of a page (within it) without giving a patched page its
    // own copy: p with p[off, off + n) the bytes, pointing into the page or into `scratch`
    // (kPageSize bytes) where a patch's bytes were assembled; nullptr when never touched.
    // The vCPU's data reads come here, so reading back one store per page keeps the page
    // a 64-byte patch instead of 4 KiB (and skips the 4 KiB copy).
    const uint8_t* read_view(Pfn pfn, size_t off, size_t n, uint8_t* scratch) const {
        const Page* pg = find_page(pfn);
        if (!pg) return nullptr;
        if (!is_patch(pg)) return pg->b.data();
        as_patch(pg)->read(off, scratch + off, n);
        return scratch;
    }
    // 4 KiB of zeros that live as long as the program (what an untouched page reads as).
    static const uint8_t* zero_page();
    // Drops the page's contents: it reads as zeros again and frees host memory.
    void discard(Pfn pfn);
    // discard() of every page of [first, first + n): a leaf of the radix that was never
    // created (1,024 untouched pages) is skipped whole.
    void discard_range(Pfn first, uint64_t n);

    uint64_t read64(Hpa a) const;
    // Asks the host to bring the line of the bytes at `a` into its caches, for a read
    // expected soon: a hint that changes no page (the page enters the lookaside, as a read
    // would enter it).
    void prefetch(Hpa a) const {
        const Page* pg = find_page(hpa_to_pfn(a));
        if (pg && !is_patch(pg)) __builtin_prefetch(pg->b.data() + (a.raw() & kPageMask));
    }
    void write64(Hpa a, uint64_t v);
    // Byte copies; may cross page boundaries.
    void read(Hpa a, void* dst, size_t n) const;
    void write(Hpa a, const void* src, size_t n);
    void fill(Hpa a, uint8_t byte, size_t n);

    // Pages holding their own 4 KiB, pages sharing a uniform copy, and pages held as
    // patches over a uniform value.
    size_t pages_resident() const { return resident_; }
    size_t pages_uniform() const { return uniform_; }
    size_t pages_patched() const { return patched_; }
    static constexpr unsigned kPatchWords = 6;
    // Whether the page currently shares a uniform copy (tests, diagnostics).
    bool is_uniform(Pfn pfn) const;
    // Called whenever a page's backing pointer changes (first touch, copy on write,
    // sharing, discard): a pointer handed out for direct access to it is stale.
    using PageListener = void (*)(void* ctx, uint64_t pfn);
    void set_page_listener(PageListener f, void* ctx) {
        listener_ = f;
        listener_ctx_ = ctx;
    }

private:
    static constexpr unsigned kBits = 10;
    static constexpr size_t kFan = size_t(1) << kBits;
    struct Page { alignas(64) std::array<uint8_t, kPageSize> b; };
    // Owned pages, or pointers into the shared uniform table (never freed per page).
    struct Leaf {
        std::array<Page*, kFan> p{};
        ~Leaf();
    };
    Page** slot(Pfn pfn, bool create);
    // A small direct-mapped cache of recent lookups in front of the radix: a walk's
    // reads hit a handful of table pages over and over. An entry is dropped whenever
    // its page's pointer changes (discard, copy on write, sharing).
    struct Lookaside {
        uint64_t pfn = ~0ull;
        Page* page = nullptr;
    };
    static constexpr size_t kLookaside = 512;
    mutable std::array<Lookaside, kLookaside> lookaside_{};
    void forget(uint64_t pfn) {
        auto& e = lookaside_[pfn & (kLookaside - 1)];
        if (e.pfn == pfn) e.pfn = ~0ull;
        if (listener_) listener_(listener_ctx_, pfn);
    }
    PageListener listener_ = nullptr;
    void* listener_ctx_ = nullptr;
    Page* const* slot_if_present(Pfn pfn) const;
    // The page behind pfn through the lookaside (entered there on a miss unless a patch,
    // which comes back tagged); nullptr when never touched.
    const Page* find_page(Pfn pfn) const {
        auto& e = lookaside_[pfn.raw() & (kLookaside - 1)];
        if (e.pfn == pfn.raw()) return e.page;
        Page* const* s = slot_if_present(pfn);
        if (!s || !*s) return nullptr;
        if (!is_patch(*s)) e = {pfn.raw(), *s};
        return *s;
    }
    static bool shared(const Page* pg);
    // A patched page: a uniform byte value with up to kPatchWords words stored over it,
    // kept in the slot as a tagged pointer (low bit set; never dereferenced as a Page).
    struct Patch {
        uint8_t base = 0;
        uint8_t n = 0;
        std::array<uint16_t, kPatchWords> idx{};   // word index in the page
        std::array<uint64_t, kPatchWords> val{};
        uint64_t word(unsigned w) const;
        void read(size_t off, uint8_t* dst, size_t len) const;
    };
    // Patches come from a free list over blocks of them: the first small store into a fresh
    // page (every first-touch fault) is a pop, not a malloc. The blocks live as long as the
    // PhysMem (declared before the radix, so every leaf is gone before them).
    class PatchPool {
    public:
        Patch* get(const Patch& init);
        void put(Patch* p) { free_.push_back(p); }

    private:
        static constexpr size_t kBlock = 256;
        std::vector<std::unique_ptr<Patch[]>> blocks_;
        std::vector<Patch*> free_;
    };
    PatchPool patches_;
    void free_patch(Page* pg) { patches_.put(as_patch(pg)); }
    static bool is_patch(const Page* pg) { return reinterpret_cast<uintptr_t>(pg) & 1; }
    static Patch* as_patch(Page* pg) { return reinterpret_cast<Patch*>(reinterpret_cast<uintptr_t>(pg) & ~uintptr_t(1)); }
    static const Patch* as_patch(const Page* pg) {
        return reinterpret_cast<const Patch*>(reinterpret_cast<uintptr_t>(pg) & ~uintptr_t(1));
    }
    // Stores [off, off+len) (within one page) as patches if the page is untouched, uniform
    // or patched and the words fit; false leaves everything unchanged.
    bool try_patch(Page*& pg, uint64_t pfn, size_t off, const uint8_t* src, size_t len);
    // The page's own copy of a patched page (the slot then holds it).
    Page* materialize(Page*& pg, uint64_t pfn);
    // After a store that reached the end of a page: share it if it became uniform.
    void maybe_share(Page*& pg, uint64_t pfn);
    struct Mid2 { std::array<std::unique_ptr<Leaf>, kFan> p; };
    struct Mid1 { std::array<std::unique_ptr<Mid2>, kFan> p; };
    std::array<std::unique_ptr<Mid1>, kFan> root_;
    size_t resident_ = 0;
    size_t uniform_ = 0;
    size_t patched_ = 0;
};

}  // namespace hvsim
