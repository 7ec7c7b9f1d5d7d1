// Sparse physical memory holding real bytes. A 4 KiB page exists once touched
// (written, or read through page()); untouched pages read as zero. Lookup is a
// four-level radix over the 40-bit PFN so a table walk's reads cost a few loads,
// not a hash probe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "models/common/types.hpp"

namespace hvsim {

class PhysMem {
public:
    PhysMem();
    ~PhysMem();
    PhysMem(const PhysMem&) = delete;
    PhysMem& operator=(const PhysMem&) = delete;

    // The page's bytes, allocated (zero-filled) on first use.
    uint8_t* page(Pfn pfn);
    // The page's bytes or nullptr when never touched (reads as zeros).
    const uint8_t* page_if_present(Pfn pfn) const;
    bool present(Pfn pfn) const { return page_if_present(pfn) != nullptr; }
    // Drops the page's contents: it reads as zeros again and frees host memory.
    void discard(Pfn pfn);

    uint64_t read64(Hpa a) const;
    void write64(Hpa a, uint64_t v);
    // Byte copies; may cross page boundaries.
    void read(Hpa a, void* dst, size_t n) const;
    void write(Hpa a, const void* src, size_t n);
    void fill(Hpa a, uint8_t byte, size_t n);

    size_t pages_resident() const { return resident_; }

private:
    static constexpr unsigned kBits = 10;
    static constexpr size_t kFan = size_t(1) << kBits;
    struct Page { alignas(64) std::array<uint8_t, kPageSize> b; };
    struct Leaf { std::array<std::unique_ptr<Page>, kFan> p; };
    struct Mid2 { std::array<std::unique_ptr<Leaf>, kFan> p; };
    struct Mid1 { std::array<std::unique_ptr<Mid2>, kFan> p; };
    std::array<std::unique_ptr<Mid1>, kFan> root_;
    size_t resident_ = 0;
};

}  // namespace hvsim
