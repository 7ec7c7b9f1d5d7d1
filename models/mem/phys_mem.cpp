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
        if (pg && !shared(pg)) delete pg;
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
    Page*& pg = *slot(pfn, true);
    if (!pg) {
        pg = new Page;
        pg->b.fill(0);
        ++resident_;
        forget(pfn.raw());
    } else if (shared(pg)) {
        // Copy on write from the shared uniform page.
        Page* own = new Page;
        std::memcpy(own->b.data(), pg->b.data(), kPageSize);
        pg = own;
        forget(pfn.raw());
        --uniform_;
        ++resident_;
    }
    return pg->b.data();
}

const uint8_t* PhysMem::page_if_present(Pfn pfn) const {
    auto& e = lookaside_[pfn.raw() & (kLookaside - 1)];
    if (e.pfn == pfn.raw()) return e.page->b.data();
    Page* const* s = slot_if_present(pfn);
    if (!s || !*s) return nullptr;
    e.pfn = pfn.raw();
    e.page = *s;
    return (*s)->b.data();
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
    if (shared(*s)) {
        --uniform_;
    } else {
        delete *s;
        --resident_;
    }
    *s = nullptr;
    forget(pfn.raw());
}

uint64_t PhysMem::read64(Hpa a) const {
    const uint8_t* p = page_if_present(hpa_to_pfn(a));
    if (!p) return 0;
    uint64_t v;
    std::memcpy(&v, p + (a.raw() & kPageMask & ~7ull), sizeof v);
    return v;
}

void PhysMem::write64(Hpa a, uint64_t v) {
    std::memcpy(page(hpa_to_pfn(a)) + (a.raw() & kPageMask & ~7ull), &v, sizeof v);
}

void PhysMem::read(Hpa a, void* dst, size_t n) const {
    auto* out = static_cast<uint8_t*>(dst);
    uint64_t addr = a.raw();
    while (n) {
        const size_t off = addr & kPageMask;
        const size_t chunk = std::min<size_t>(n, kPageSize - off);
        const uint8_t* p = page_if_present(Pfn(addr >> kPageShift));
        if (p) std::memcpy(out, p + off, chunk);
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
                if (pg && !shared(pg)) { delete pg; --resident_; }
                else if (pg) --uniform_;
                pg = reinterpret_cast<Page*>(const_cast<uint8_t*>(uniform_table().bytes[byte]));
                forget(pfn.raw());
                ++uniform_;
            }
        } else if (!pg && byte == 0) {
            // Zero-filling a page that was never touched changes nothing observable.
        } else if (pg && shared(pg) && pg->b[0] == byte) {
            // Already that value everywhere.
        } else {
            std::memset(page(pfn) + off, byte, chunk);
            if (off + chunk == kPageSize) maybe_share(*s, pfn.raw());
        }
        addr += chunk; n -= chunk;
    }
}

}  // namespace hvsim
