#include "models/mem/phys_mem.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace hvsim {

PhysMem::PhysMem() = default;
PhysMem::~PhysMem() = default;

namespace {
constexpr uint64_t kMaxPfn = 1ull << 40;  // 52-bit physical addresses
}

uint8_t* PhysMem::page(Pfn pfn) {
    const uint64_t f = pfn.raw();
    if (f >= kMaxPfn) throw std::out_of_range("physical address beyond 52 bits");
    auto& m1 = root_[(f >> 30) & (kFan - 1)];
    if (!m1) m1 = std::make_unique<Mid1>();
    auto& m2 = m1->p[(f >> 20) & (kFan - 1)];
    if (!m2) m2 = std::make_unique<Mid2>();
    auto& lf = m2->p[(f >> 10) & (kFan - 1)];
    if (!lf) lf = std::make_unique<Leaf>();
    auto& pg = lf->p[f & (kFan - 1)];
    if (!pg) {
        pg = std::make_unique<Page>();
        pg->b.fill(0);
        ++resident_;
    }
    return pg->b.data();
}

const uint8_t* PhysMem::page_if_present(Pfn pfn) const {
    const uint64_t f = pfn.raw();
    if (f >= kMaxPfn) return nullptr;
    const auto& m1 = root_[(f >> 30) & (kFan - 1)];
    if (!m1) return nullptr;
    const auto& m2 = m1->p[(f >> 20) & (kFan - 1)];
    if (!m2) return nullptr;
    const auto& lf = m2->p[(f >> 10) & (kFan - 1)];
    if (!lf) return nullptr;
    const auto& pg = lf->p[f & (kFan - 1)];
    return pg ? pg->b.data() : nullptr;
}

void PhysMem::discard(Pfn pfn) {
    const uint64_t f = pfn.raw();
    if (f >= kMaxPfn) return;
    auto& m1 = root_[(f >> 30) & (kFan - 1)];
    if (!m1) return;
    auto& m2 = m1->p[(f >> 20) & (kFan - 1)];
    if (!m2) return;
    auto& lf = m2->p[(f >> 10) & (kFan - 1)];
    if (!lf) return;
    auto& pg = lf->p[f & (kFan - 1)];
    if (pg) {
        pg.reset();
        --resident_;
    }
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
        in += chunk; addr += chunk; n -= chunk;
    }
}

void PhysMem::fill(Hpa a, uint8_t byte, size_t n) {
    uint64_t addr = a.raw();
    while (n) {
        const size_t off = addr & kPageMask;
        const size_t chunk = std::min<size_t>(n, kPageSize - off);
        // Zero-filling a page that was never touched changes nothing observable.
        if (byte != 0 || present(Pfn(addr >> kPageShift)))
            std::memset(page(Pfn(addr >> kPageShift)) + off, byte, chunk);
        addr += chunk; n -= chunk;
    }
}

}  // namespace hvsim
