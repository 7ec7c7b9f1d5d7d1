#include "models/mem/phys_mem.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace hvsim {

namespace {
constexpr uint64_t kMaxPfn = 1ull << 40;  // 52-bit physical addresses

// One read-only page per byte value, shared by every uniform page.
struct UniformTable {
    alignas(64) uint8_t bytes[256][kPageSize];
    UniformTable() {
        for (int v = 0; v < 256; ++v) std::memset(bytes[v], v, kPageSize);
    }
};
const UniformTable& uniform_table() {
    static const UniformTable t;
    return t;
}
}  // namespace

const uint8_t* PhysMem::zero_page() { return uniform_table().bytes[0]; }

PhysMem::PhysMem() = default;
PhysMem::~PhysMem() = default;

PhysMem::Leaf::~Leaf() {
    for (Page* pg : p)
        if (pg && !is_patch(pg) && !shared(pg)) delete pg;   // patches belong to the pool
}

PhysMem::Patch* PhysMem::PatchPool::get(const Patch& init) {
    if (free_.empty()) {
        blocks_.push_back(std::make_unique<Patch[]>(kBlock));
        Patch* b = blocks_.back().get();
        for (size_t i = kBlock; i-- > 0;) free_.push_back(b + i);   // lowest first out
    }
    Patch* p = free_.back();
    free_.pop_back();
    *p = init;
    return p;
}

namespace {
uint64_t repeat_byte(uint8_t b) { return 0x0101010101010101ull * b; }
}  // namespace

uint64_t PhysMem::Patch::word(unsigned w) const {
    for (unsigned i = 0; i < n; ++i)
        if (idx[i] == w) return val[i];
    return repeat_byte(base);
}

void PhysMem::Patch::read(size_t off, uint8_t* dst, size_t len) const {
    std::memset(dst, base, len);
    for (unsigned i = 0; i < n; ++i) {
        const size_t w0 = size_t(idx[i]) * 8, a = std::max(w0, off), b = std::min(w0 + 8, off + len);
        if (a < b) std::memcpy(dst + (a - off), reinterpret_cast<const uint8_t*>(&val[i]) + (a - w0), b - a);
    }
}

bool PhysMem::try_patch(Page*& pg, uint64_t pfn, size_t off, const uint8_t* src, size_t len) {
    if (pg && !is_patch(pg) && !shared(pg)) return false;   // has its own copy
    Patch fresh;
    if (pg && shared(pg)) fresh.base = pg->b[0];
    Patch& p = pg && is_patch(pg) ? *as_patch(pg) : fresh;
    const unsigned w_first = unsigned(off / 8), w_last = unsigned((off + len - 1) / 8);
    // First pass: do the new words fit?
    unsigned adding = 0;
    for (unsigned w = w_first; w <= w_last; ++w) {
        bool have = false;
        for (unsigned i = 0; i < p.n; ++i) have = have || p.idx[i] == w;
        adding += !have;
    }
    if (p.n + adding > kPatchWords) return false;
    for (unsigned w = w_first; w <= w_last; ++w) {
        uint64_t v = p.word(w);
        const size_t a = std::max<size_t>(size_t(w) * 8, off), b = std::min<size_t>(size_t(w) * 8 + 8, off + len);
        std::memcpy(reinterpret_cast<uint8_t*>(&v) + (a - size_t(w) * 8), src + (a - off), b - a);
        unsigned i = 0;
        while (i < p.n && p.idx[i] != w) ++i;
        if (i == p.n) {
            if (v == repeat_byte(p.base)) continue;   // storing what is already there
            p.idx[p.n++] = uint16_t(w);
        }
        p.val[i] = v;
    }
    if (&p == &fresh) {
        if (p.n == 0) return true;   // nothing changed: untouched or uniform stays so
        if (pg) --uniform_;
        pg = reinterpret_cast<Page*>(reinterpret_cast<uintptr_t>(patches_.get(fresh)) | 1);
        ++patched_;
        forget(pfn);   // a read-only grant of the zero or uniform page is stale now
    }
    return true;
}

PhysMem::Page* PhysMem::materialize(Page*& pg, uint64_t pfn) {
    const Patch* p = as_patch(pg);
    Page* own = new Page;
    p->read(0, own->b.data(), kPageSize);
    patches_.put(const_cast<Patch*>(p));
    pg = own;
    --patched_;
    ++resident_;
    forget(pfn);
    return own;
}

bool PhysMem::shared(const Page* pg) {
    const auto* b = reinterpret_cast<const uint8_t*>(pg);
    const auto* lo = &uniform_table().bytes[0][0];
    return b >= lo && b < lo + sizeof(UniformTable::bytes);
}

PhysMem::Page** PhysMem::slot(Pfn pfn, bool create) {
    const uint64_t f = pfn.raw();
    if (f >= kMaxPfn) throw std::out_of_range("physical address beyond 52 bits");
    auto& m1 = root_[(f >> 30) & (kFan - 1)];
    if (!m1) {
        if (!create) return nullptr;
        m1 = std::make_unique<Mid1>();
    }
    auto& m2 = m1->p[(f >> 20) & (kFan - 1)];
    if (!m2) {
        if (!create) return nullptr;
        m2 = std::make_unique<Mid2>();
    }
    auto& lf = m2->p[(f >> 10) & (kFan - 1)];
    if (!lf) {
        if (!create) return nullptr;
        lf = std::make_unique<Leaf>();
    }
    return &lf->p[f & (kFan - 1)];
}

PhysMem::Page* const* PhysMem::slot_if_present(Pfn pfn) const {
    const uint64_t f = pfn.raw();
    if (f >= kMaxPfn) return nullptr;
    const auto& m1 = root_[(f >> 30) & (kFan - 1)];
    if (!m1) return nullptr;
    const auto& m2 = m1->p[(f >> 20) & (kFan - 1)];
    if (!m2) return nullptr;
    const auto& lf = m2->p[(f >> 10) & (kFan - 1)];
    if (!lf) return nullptr;
    return &lf->p[f & (kFan - 1)];
}

uint8_t* PhysMem::page(Pfn pfn) {
    // A page with its own copy found by an earlier look-up (the TDP MMU's table pages, one
    // per level of every map): no radix walk. A shared uniform page in the lookaside is
    // read-only and takes the path below.
    auto& e = lookaside_[pfn.raw() & (kLookaside - 1)];
    if (e.pfn == pfn.raw() && !shared(e.page)) return e.page->b.data();
    Page*& pg = *slot(pfn, true);
    if (!pg) {
        pg = new Page;
        pg->b.fill(0);
        ++resident_;
        forget(pfn.raw());
    } else if (is_patch(pg)) {
        materialize(pg, pfn.raw());
    } else if (shared(pg)) {
        // Copy on write from the shared uniform page.
        Page* own = new Page;
        std::memcpy(own->b.data(), pg->b.data(), kPageSize);
        pg = own;
        forget(pfn.raw());
        --uniform_;
        ++resident_;
    }
    e.pfn = pfn.raw();
    e.page = pg;
    return pg->b.data();
}

const uint8_t* PhysMem::page_if_present(Pfn pfn) const {
    const Page* pg = find_page(pfn);
    if (!pg) return nullptr;
    // A caller that wants the bytes at one address gets the page's own copy: logically
    // const (the contents do not change), so the slot is updated in place.
    if (is_patch(pg)) {
        auto* self = const_cast<PhysMem*>(this);
        pg = self->materialize(*self->slot(pfn, false), pfn.raw());
        lookaside_[pfn.raw() & (kLookaside - 1)] = {pfn.raw(), const_cast<Page*>(pg)};
    }
    return pg->b.data();
}

bool PhysMem::is_uniform(Pfn pfn) const {
    Page* const* s = slot_if_present(pfn);
    return s && *s && shared(*s);
}

void PhysMem::maybe_share(Page*& pg, uint64_t pfn) {
    const uint8_t v = pg->b[0];
    const uint8_t* b = pg->b.data();
    // Compare the page with itself shifted by one byte: equal iff every byte is v.
    if (b[kPageSize - 1] != v || std::memcmp(b, b + 1, kPageSize - 1) != 0) return;
    delete pg;
    pg = reinterpret_cast<Page*>(const_cast<uint8_t*>(uniform_table().bytes[v]));
    forget(pfn);
    --resident_;
    ++uniform_;
}

void PhysMem::discard(Pfn pfn) {
    Page** s = pfn.raw() < kMaxPfn ? slot(pfn, false) : nullptr;
    if (!s || !*s) return;
    if (is_patch(*s)) {
        free_patch(*s);
        --patched_;
    } else if (shared(*s)) {
        --uniform_;
    } else {
        delete *s;
        --resident_;
    }
    *s = nullptr;
    forget(pfn.raw());
}

void PhysMem::discard_range(Pfn first, uint64_t n) {
    uint64_t f = first.raw();
    const uint64_t end = f + n;
    while (f < end) {
        const uint64_t leaf_end = std::min(end, (f | (kFan - 1)) + 1);
        if (f >= kMaxPfn || !slot(Pfn(f), false)) {   // no leaf here: nothing to drop
            f = leaf_end;
            continue;
        }
        for (; f < leaf_end; ++f) discard(Pfn(f));
    }
}

uint64_t PhysMem::read64(Hpa a) const {
    const uint64_t f = a.raw() >> kPageShift;
    const size_t off = a.raw() & kPageMask & ~7ull;
    auto& e = lookaside_[f & (kLookaside - 1)];
    const Page* pg = e.page;
    if (e.pfn != f) {
        Page* const* s = slot_if_present(Pfn(f));
        if (!s || !*s) return 0;
        if (is_patch(*s)) return as_patch(*s)->word(unsigned(off / 8));
        e.pfn = f;
        e.page = *s;
        pg = *s;
    }
    uint64_t v;
    std::memcpy(&v, pg->b.data() + off, sizeof v);
    return v;
}

void PhysMem::write64(Hpa a, uint64_t v) {
    const Pfn pfn = hpa_to_pfn(a);
    const size_t off = a.raw() & kPageMask & ~7ull;
    Page*& pg = *slot(pfn, true);
    if (pg && !shared(pg) && !is_patch(pg)) {
        std::memcpy(pg->b.data() + off, &v, sizeof v);
        return;
    }
    if (try_patch(pg, pfn.raw(), off, reinterpret_cast<const uint8_t*>(&v), sizeof v)) return;
    std::memcpy(page(pfn) + off, &v, sizeof v);
}

void PhysMem::read(Hpa a, void* dst, size_t n) const {
    auto* out = static_cast<uint8_t*>(dst);
    uint64_t addr = a.raw();
    while (n) {
        const size_t off = addr & kPageMask;
        const size_t chunk = std::min<size_t>(n, kPageSize - off);
        Page* const* s = slot_if_present(Pfn(addr >> kPageShift));
        if (s && *s && is_patch(*s)) as_patch(*s)->read(off, out, chunk);
        else if (const uint8_t* p = page_if_present(Pfn(addr >> kPageShift))) std::memcpy(out, p + off, chunk);
        else std::memset(out, 0, chunk);
        out += chunk; addr += chunk; n -= chunk;
    }
}

void PhysMem::write(Hpa a, const void* src, size_t n) {
    auto* in = static_cast<const uint8_t*>(src);
    uint64_t addr = a.raw();
    while (n) {
        const size_t off = addr & kPageMask;
        const size_t chunk = std::min<size_t>(n, kPageSize - off);
        if (chunk < kPageSize && try_patch(*slot(Pfn(addr >> kPageShift), true), addr >> kPageShift, off, in, chunk)) {
            in += chunk; addr += chunk; n -= chunk;
            continue;
        }
        std::memcpy(page(Pfn(addr >> kPageShift)) + off, in, chunk);
        if (off + chunk == kPageSize) maybe_share(*slot(Pfn(addr >> kPageShift), false), addr >> kPageShift);
        in += chunk; addr += chunk; n -= chunk;
    }
}

void PhysMem::fill(Hpa a, uint8_t byte, size_t n) {
    uint64_t addr = a.raw();
    while (n) {
        const size_t off = addr & kPageMask;
        const size_t chunk = std::min<size_t>(n, kPageSize - off);
        const Pfn pfn(addr >> kPageShift);
        Page** s = slot(pfn, true);
        Page*& pg = *s;
        if (chunk == kPageSize) {
            // A whole page of one value: share the uniform copy.
            if (!pg || !shared(pg) || pg->b[0] != byte) {
                if (pg && is_patch(pg)) { free_patch(pg); --patched_; }
                else if (pg && !shared(pg)) { delete pg; --resident_; }
                else if (pg) --uniform_;
                pg = reinterpret_cast<Page*>(const_cast<uint8_t*>(uniform_table().bytes[byte]));
                forget(pfn.raw());
                ++uniform_;
            }
        } else if (!pg && byte == 0) {
            // Zero-filling a page that was never touched changes nothing observable.
        } else if (pg && shared(pg) && pg->b[0] == byte) {
            // Already that value everywhere.
        } else if (uint8_t bytes[8 * kPatchWords]; chunk <= sizeof bytes && (!pg || shared(pg) || is_patch(pg)) &&
                   (std::memset(bytes, byte, chunk), try_patch(pg, pfn.raw(), off, bytes, chunk))) {
            // A small store into an untouched, uniform or patched page.
        } else {
            std::memset(page(pfn) + off, byte, chunk);
            if (off + chunk == kPageSize) maybe_share(*s, pfn.raw());
        }
        addr += chunk; n -= chunk;
    }
}

}  // namespace hvsim
