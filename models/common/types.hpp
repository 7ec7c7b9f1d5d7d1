// Distinct address and frame-number types. Mixing a guest-physical address with a
// host-physical one is the classic bug of nested paging, so each space gets its own
// type and conversions are spelled out (gpa_to_gfn, pfn_to_hpa, ...).
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace hvsim {

inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kPageSize = 1ull << kPageShift;
inline constexpr uint64_t kPageMask = kPageSize - 1;

template <class Tag>
struct Strong {
    uint64_t v = 0;
    constexpr Strong() = default;
    constexpr explicit Strong(uint64_t x) : v(x) {}
    constexpr uint64_t raw() const { return v; }
    constexpr auto operator<=>(const Strong&) const = default;
    constexpr Strong operator+(uint64_t d) const { return Strong(v + d); }
    constexpr Strong operator-(uint64_t d) const { return Strong(v - d); }
    constexpr uint64_t operator-(Strong o) const { return v - o.v; }
    constexpr Strong& operator+=(uint64_t d) { v += d; return *this; }
    constexpr Strong& operator++() { ++v; return *this; }
};

struct GvaTag {};
struct GpaTag {};
struct HpaTag {};
struct HvaTag {};
struct GfnTag {};
struct PfnTag {};

using Gva = Strong<GvaTag>;   // guest virtual address
using Gpa = Strong<GpaTag>;   // guest physical address
using Hpa = Strong<HpaTag>;   // host (system) physical address
using Hva = Strong<HvaTag>;   // host (VMM process) virtual address
using Gfn = Strong<GfnTag>;   // guest frame number (4 KiB)
using Pfn = Strong<PfnTag>;   // host frame number (4 KiB)

constexpr Gfn gpa_to_gfn(Gpa a) { return Gfn(a.v >> kPageShift); }
constexpr Gpa gfn_to_gpa(Gfn f) { return Gpa(f.v << kPageShift); }
constexpr Pfn hpa_to_pfn(Hpa a) { return Pfn(a.v >> kPageShift); }
constexpr Hpa pfn_to_hpa(Pfn f) { return Hpa(f.v << kPageShift); }

// Simulated time is counted in core cycles of the platform clock.
using Cycles = uint64_t;

// x86 page-table levels (PG_LEVEL_* in arch/x86/include/asm/pgtable_types.h).
enum class PgLevel : uint8_t { k4K = 1, k2M = 2, k1G = 3 };
constexpr unsigned level_shift(PgLevel l) { return kPageShift + 9u * (unsigned(l) - 1u); }
constexpr uint64_t level_size(PgLevel l) { return 1ull << level_shift(l); }
constexpr uint64_t level_pages(PgLevel l) { return 1ull << (9u * (unsigned(l) - 1u)); }
const char* level_name(PgLevel l);

inline constexpr bool is_aligned(uint64_t x, uint64_t a) { return (x & (a - 1)) == 0; }

}  // namespace hvsim

template <class Tag>
struct std::hash<hvsim::Strong<Tag>> {
    size_t operator()(hvsim::Strong<Tag> s) const noexcept { return std::hash<uint64_t>()(s.v); }
};
