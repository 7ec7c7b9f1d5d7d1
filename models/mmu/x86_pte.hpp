// x86 paging-structure entry formats. The long-mode format (Intel SDM vol. 3A §4.5,
// AMD APM vol. 2 §5.3) serves the guest's own tables and AMD NPT, which reuses it
// unchanged (APM vol. 2 §15.25.5). Intel EPT has its own layout (SDM vol. 3C §29.3.2).
// NestedPte hides the difference so the simulated KVM TDP MMU can build entries for
// whichever platform it runs on, as KVM does with its shadow_*_mask variables
// (arch/x86/kvm/mmu/spte.c, kvm_mmu_set_ept_masks()).
#pragma once

#include <cstdint>

#include "models/common/types.hpp"

namespace hvsim::mmu {

// Bit position of the lowest address bit a table at `level` (1 = PT .. 5 = PML5) indexes.
constexpr unsigned table_shift(unsigned level) { return kPageShift + 9u * (level - 1u); }
// Index of the entry for address `a` in a table at `level`.
constexpr unsigned table_index(uint64_t a, unsigned level) { return unsigned(a >> table_shift(level)) & 511u; }

namespace pte {

inline constexpr uint64_t P = 1ull << 0, RW = 1ull << 1, US = 1ull << 2, PWT = 1ull << 3, PCD = 1ull << 4,
                          A = 1ull << 5, D = 1ull << 6, PS = 1ull << 7, G = 1ull << 8, NX = 1ull << 63;
inline constexpr uint64_t ADDR_MASK = 0x000ffffffffff000ull;   // bits 51:12

constexpr bool present(uint64_t e) { return (e & P) != 0; }

// PS selects a 2M (PDE) or 1G (PDPTE) page; a PTE is always a leaf. PS in a PML4E or
// PML5E is reserved (SDM vol. 3A §4.5.4, table 4-14/4-15): callers treat it as RSVD.
constexpr bool is_leaf(uint64_t e, unsigned level) {
    return level == 1 || ((level == 2 || level == 3) && (e & PS) != 0);
}

// Frame address of the next table or of the page. In a 2M/1G leaf bit 12 is PAT and
// bits below the page size are reserved, so they are masked off.
constexpr uint64_t addr(uint64_t e, unsigned level) {
    if (level > 1 && is_leaf(e, level)) return e & ADDR_MASK & ~((1ull << table_shift(level)) - 1);
    return e & ADDR_MASK;
}

// Non-leaf entry: permissions of upper levels are ANDed with the leaf's, so tables
// grant everything and the leaf decides (what Linux and KVM both do).
constexpr uint64_t make_table(uint64_t next_table_pa) { return P | RW | US | (next_table_pa & ADDR_MASK); }

constexpr uint64_t make_leaf(uint64_t pa, PgLevel lvl, bool writable, bool exec) {
    uint64_t e = P | US | (pa & ADDR_MASK & ~(level_size(lvl) - 1));
    if (lvl != PgLevel::k4K) e |= PS;
    if (writable) e |= RW;
    if (!exec) e |= NX;
    return e;
}

}  // namespace pte

// EPT entry bits (SDM vol. 3C §29.3.2, tables 29-2..29-6; arch/x86/include/asm/vmx.h VMX_EPT_*).
namespace ept {
inline constexpr uint64_t R = 1ull << 0, W = 1ull << 1, X = 1ull << 2;
inline constexpr uint64_t RWX = R | W | X;
inline constexpr unsigned MT_SHIFT = 3;          // bits 5:3 memory type (leaves)
inline constexpr uint64_t MT_WB = 6ull << MT_SHIFT;
inline constexpr uint64_t IPAT = 1ull << 6;      // ignore guest PAT (leaves)
inline constexpr uint64_t LARGE = 1ull << 7;     // 2M/1G leaf, same position as PS
inline constexpr uint64_t A = 1ull << 8, D = 1ull << 9;   // only with EPTP bit 6 (A/D enable)
}  // namespace ept

enum class NestedFormat : uint8_t { npt, ept };

// One nested-dimension entry format. Every operation is a branch on fmt, cheap enough
// for the walker's inner loop and for KVM building SPTEs.
struct NestedPte {
    NestedFormat fmt = NestedFormat::npt;

    constexpr bool is_ept() const { return fmt == NestedFormat::ept; }

    constexpr uint64_t accessed_bit() const { return is_ept() ? ept::A : pte::A; }
    constexpr uint64_t dirty_bit() const { return is_ept() ? ept::D : pte::D; }
    constexpr uint64_t writable_bit() const { return is_ept() ? ept::W : pte::RW; }

    constexpr uint64_t make_table(uint64_t next_table_pa) const {
        return is_ept() ? (ept::RWX | (next_table_pa & pte::ADDR_MASK)) : pte::make_table(next_table_pa);
    }
    // EPT leaves get write-back memory type with IPAT, what vmx_get_mt_mask() returns
    // for ordinary RAM when no non-coherent DMA device is assigned.
    constexpr uint64_t make_leaf(uint64_t pa, PgLevel lvl, bool writable, bool exec) const {
        if (!is_ept()) return pte::make_leaf(pa, lvl, writable, exec);
        uint64_t e = ept::R | ept::MT_WB | ept::IPAT | (pa & pte::ADDR_MASK & ~(level_size(lvl) - 1));
        if (lvl != PgLevel::k4K) e |= ept::LARGE;
        if (writable) e |= ept::W;
        if (exec) e |= ept::X;
        return e;
    }

    // An EPT entry is present when any of R/W/X is set (SDM §29.3.2; is_shadow_present_pte()).
    constexpr bool present(uint64_t e) const { return is_ept() ? (e & ept::RWX) != 0 : pte::present(e); }
    constexpr bool readable(uint64_t e) const { return is_ept() ? (e & ept::R) != 0 : pte::present(e); }
    constexpr bool writable(uint64_t e) const { return (e & writable_bit()) != 0; }
    constexpr bool executable(uint64_t e) const { return is_ept() ? (e & ept::X) != 0 : (e & pte::NX) == 0; }
    // NPT walks are user accesses (APM vol. 2 §15.25.5), so U/S must be set at every level;
    // EPT has no U/S bit.
    constexpr bool user(uint64_t e) const { return is_ept() || (e & pte::US) != 0; }
    constexpr bool accessed(uint64_t e) const { return (e & accessed_bit()) != 0; }
    constexpr bool dirty(uint64_t e) const { return (e & dirty_bit()) != 0; }
    // EPT bit 7 and the x86 PS bit share a position.
    constexpr bool is_leaf(uint64_t e, unsigned level) const { return pte::is_leaf(e, level); }
    constexpr uint64_t addr(uint64_t e, unsigned level) const { return pte::addr(e, level); }

    constexpr uint64_t write_protect(uint64_t e) const { return e & ~writable_bit(); }
    constexpr uint64_t make_writable(uint64_t e) const { return e | writable_bit(); }
};

}  // namespace hvsim::mmu
