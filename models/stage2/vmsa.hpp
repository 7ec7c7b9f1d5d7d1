// VMSAv8-64 translation-table formats and geometry (Arm ARM D8, "The AArch64 Virtual
// Memory System Architecture"): descriptor bits of stage-1 and stage-2 tables, the
// level layout of the 4K, 16K and 64K granules, and what VTCR_EL2 / TCR_EL1 select.
//
// Geometry rule (Arm ARM D8.2; Linux arch/arm64/include/asm/stage2_pgtable.h and
// kvm_get_vtcr() in arch/arm64/kvm/hyp/pgtable.c): each level resolves PAGE_SHIFT - 3
// bits; a stage-2 root may concatenate up to 16 tables (4 extra bits) so that fewer
// levels are walked; the start level is encoded in VTCR_EL2.SL0 relative to a
// per-granule base (2 for 4K, 3 for 16K and 64K).
#pragma once

#include <cstdint>
#include <stdexcept>

namespace hvsim::stage2 {

enum class Granule : uint8_t { k4K, k16K, k64K };

constexpr unsigned granule_shift(Granule g) { return g == Granule::k4K ? 12 : g == Granule::k16K ? 14 : 16; }
constexpr uint64_t granule_size(Granule g) { return 1ull << granule_shift(g); }
// Bits one table level resolves.
constexpr unsigned level_bits(Granule g) { return granule_shift(g) - 3; }
// Address bits below the entries of `level` (ARM64_HW_PGTABLE_LEVEL_SHIFT): 4K L3 = 12, L2 = 21 ...
constexpr unsigned level_shift(Granule g, int level) { return level_bits(g) * unsigned(3 - level) + granule_shift(g); }
constexpr uint64_t level_size(Granule g, int level) { return 1ull << level_shift(g, level); }
// The index of va's descriptor in a (non-root) table at `level`.
constexpr uint64_t table_index(Granule g, int level, uint64_t va) { return (va >> level_shift(g, level)) & ((1ull << level_bits(g)) - 1); }

// TG0 encodings: VTCR_EL2.TG0 and TCR_EL1.TG0 share them (0 = 4K, 1 = 64K, 2 = 16K).
constexpr uint64_t tg0_of(Granule g) { return g == Granule::k4K ? 0 : g == Granule::k64K ? 1 : 2; }
inline Granule granule_of_tg0(uint64_t tg0) {
    switch (tg0 & 3) {
    case 0: return Granule::k4K;
    case 1: return Granule::k64K;
    case 2: return Granule::k16K;
    }
    throw std::invalid_argument("TG0 value 3 is reserved");
}

// The smallest level KVM places a block at (KVM_PGTABLE_MIN_BLOCK_LEVEL): 4K L1
// (1 GiB), 16K and 64K L2 (32 MiB, 512 MiB). Level-0/1 blocks of 52-bit formats are never used.
constexpr int min_block_level(Granule g) { return g == Granule::k4K ? 1 : 2; }

// Descriptor bits (Arm ARM D8.3).
namespace desc {
inline constexpr uint64_t VALID = 1ull << 0;
inline constexpr uint64_t TABLE = 1ull << 1;      // table (levels < 3) / page (level 3); 0: block
inline constexpr uint64_t ATTR_SHIFT = 2;         // S1 AttrIndx[2:0] / S2 MemAttr[3:0]
inline constexpr uint64_t S2_MEMATTR_NORMAL_WB = 0xfull << 2;
inline constexpr uint64_t S2AP_R = 1ull << 6;     // stage 2: S2AP[0] read
inline constexpr uint64_t S2AP_W = 1ull << 7;     // stage 2: S2AP[1] write
inline constexpr uint64_t S1_AP1 = 1ull << 6;     // stage 1: AP[1] EL0 access
inline constexpr uint64_t S1_AP2 = 1ull << 7;     // stage 1: AP[2] read-only
inline constexpr uint64_t SH_INNER = 3ull << 8;
inline constexpr uint64_t AF = 1ull << 10;
inline constexpr uint64_t DBM = 1ull << 51;
inline constexpr uint64_t CONT = 1ull << 52;
inline constexpr uint64_t S1_PXN = 1ull << 53;
inline constexpr uint64_t S1_UXN = 1ull << 54;
inline constexpr uint64_t S2_XN_SHIFT = 53;       // XN[1:0]: 0b10 = no execution at any EL
inline constexpr uint64_t SW_MASK = 0xfull << 55; // software bits (pKVM page state in SW0/SW1)
// Output address bits [47:PAGE_SHIFT]; 64K keeps PA[51:48] in bits 15:12 (FEAT_LPA),
// 4K/16K with LPA2 (VTCR.DS) keep PA[51:50] in bits 9:8 and PA[49:48] in [49:48].
inline uint64_t oa(uint64_t d, Granule g, bool ds) {
    const unsigned ps = granule_shift(g);
    uint64_t a = d & (((1ull << 48) - 1) & ~((1ull << ps) - 1));
    if (g == Granule::k64K) a |= ((d >> 12) & 0xf) << 48;
    else if (ds) a = (d & (((1ull << 50) - 1) & ~((1ull << ps) - 1))) | (((d >> 8) & 3) << 50);
    return a;
}
inline uint64_t make_oa(uint64_t pa, Granule g, bool ds) {
    const unsigned ps = granule_shift(g);
    if (g == Granule::k64K) return (pa & (((1ull << 48) - 1) & ~((1ull << ps) - 1))) | (((pa >> 48) & 0xf) << 12);
    if (ds) return (pa & (((1ull << 50) - 1) & ~((1ull << ps) - 1))) | (((pa >> 50) & 3) << 8);
    return pa & (((1ull << 48) - 1) & ~((1ull << ps) - 1));
}
}  // namespace desc

// ESR_EL2 for a data/instruction abort taken to EL2 (Arm ARM D17.2.37, ISS encoding for
// an exception from a Data Abort; Linux arch/arm64/include/asm/esr.h).
namespace esr {
inline constexpr uint64_t EC_SHIFT = 26;
inline constexpr uint64_t EC_IABT_LOW = 0x20, EC_DABT_LOW = 0x24;
inline constexpr uint64_t IL = 1ull << 25;
inline constexpr uint64_t S1PTW = 1ull << 7;
inline constexpr uint64_t WNR = 1ull << 6;
inline constexpr uint64_t FSC_MASK = 0x3f;
constexpr uint64_t fsc_addrsz(int level) { return uint64_t(level); }            // 0x00-0x03
constexpr uint64_t fsc_fault(int level) { return 0x04 + uint64_t(level); }      // translation 0x04-0x07
constexpr uint64_t fsc_access(int level) { return 0x08 + uint64_t(level); }     // access flag 0x08-0x0b
constexpr uint64_t fsc_perm(int level) { return 0x0c + uint64_t(level); }       // permission 0x0c-0x0f
inline constexpr uint64_t FSC_TLB_CONFLICT = 0x30;
constexpr uint64_t ec(uint64_t e) { return (e >> EC_SHIFT) & 0x3f; }
constexpr uint64_t fsc(uint64_t e) { return e & FSC_MASK; }
constexpr bool is_translation(uint64_t e) { return fsc(e) >= 0x04 && fsc(e) <= 0x07; }
constexpr bool is_permission(uint64_t e) { return fsc(e) >= 0x0c && fsc(e) <= 0x0f; }
constexpr bool is_access_flag(uint64_t e) { return fsc(e) >= 0x08 && fsc(e) <= 0x0b; }
constexpr int fault_level(uint64_t e) { return int(fsc(e) & 3); }
constexpr bool is_write(uint64_t e) { return e & WNR; }
}  // namespace esr

// HPFAR_EL2.FIPA: IPA[51:12] in bits [43:4] (Linux kvm_arm.h, PAR_TO_HPFAR).
constexpr uint64_t hpfar_of_ipa(uint64_t ipa) { return (ipa >> 12) << 4; }
constexpr uint64_t ipa_of_hpfar(uint64_t hpfar) { return ((hpfar >> 4) & ((1ull << 40) - 1)) << 12; }

// VTCR_EL2 fields (Arm ARM D17.2.193).
namespace vtcr {
inline constexpr uint64_t T0SZ_MASK = 0x3f;
inline constexpr uint64_t SL0_SHIFT = 6, SL0_MASK = 3ull << 6;
inline constexpr uint64_t IRGN0_WBWA = 1ull << 8, ORGN0_WBWA = 1ull << 10, SH0_INNER = 3ull << 12;
inline constexpr uint64_t TG0_SHIFT = 14;
inline constexpr uint64_t PS_SHIFT = 16;
inline constexpr uint64_t VS = 1ull << 19;        // 16-bit VMID
inline constexpr uint64_t HA = 1ull << 21;        // hardware Access flag update
inline constexpr uint64_t HD = 1ull << 22;        // hardware dirty state (KVM leaves it clear)
inline constexpr uint64_t DS = 1ull << 32;        // 52-bit addresses with 4K/16K (FEAT_LPA2)
}  // namespace vtcr

// A stage-2 configuration: what KVM computes for a granule and IPA size, and what the
// hardware decodes from VTCR_EL2.
struct S2Geometry {
    Granule granule = Granule::k4K;
    unsigned ipa_bits = 40;
    unsigned levels = 3;
    int start_level = 1;
    unsigned concat = 1;          // root tables concatenated (1..16)
    bool ds = false;              // LPA2 descriptor format
    // Entries of the (concatenated) root.
    uint64_t root_entries() const { return 1ull << (ipa_bits - level_shift(granule, start_level)); }
    uint64_t root_bytes() const { return uint64_t(concat) * granule_size(granule); }
};

// KVM's choice (stage2_pgtable.h, kvm_get_vtcr()): levels = ARM64_HW_PGTABLE_LEVELS(ipa - 4),
// at least 2; start level = 4 - levels; the root concatenates what the top level leaves over.
inline S2Geometry kvm_stage2_geometry(Granule g, unsigned ipa_bits) {
    if (ipa_bits < 32 || ipa_bits > 52) throw std::invalid_argument("stage-2 IPA size must be 32..52 bits");
    if (ipa_bits > 48 && g != Granule::k64K && ipa_bits != 52)
        throw std::invalid_argument("52-bit IPA with 4K/16K needs exactly 52 (LPA2)");
    const unsigned ps = granule_shift(g);
    // ARM64_HW_PGTABLE_LEVELS(va) = ((va) - 4) / (PAGE_SHIFT - 3), applied to ipa - 4.
    unsigned levels = ((ipa_bits - 4) - 4) / (ps - 3);
    if (levels < 2) levels = 2;
    if (levels > 4) levels = 4;   // LPA2: KVM concatenates at level 0, never starts at -1
    S2Geometry geo;
    geo.granule = g;
    geo.ipa_bits = ipa_bits;
    geo.levels = levels;
    geo.start_level = 4 - int(levels);
    geo.ds = ipa_bits > 48 && g != Granule::k64K;
    const unsigned top = ps + (ps - 3) * levels;   // bits one (unconcatenated) root table resolves
    const unsigned extra = ipa_bits > top ? ipa_bits - top : 0;
    if (extra > 4) throw std::invalid_argument("stage-2 root would concatenate more than 16 tables");
    geo.concat = 1u << extra;
    return geo;
}

inline uint64_t sl0_base(Granule g) { return g == Granule::k4K ? 2 : 3; }

// The VTCR_EL2 value KVM programs for a geometry (kvm_get_vtcr(); PS = 48-bit PA here).
inline uint64_t kvm_vtcr(const S2Geometry& geo) {
    uint64_t v = (64 - geo.ipa_bits) & vtcr::T0SZ_MASK;
    v |= ((sl0_base(geo.granule) - uint64_t(geo.start_level)) & 3) << vtcr::SL0_SHIFT;
    v |= vtcr::IRGN0_WBWA | vtcr::ORGN0_WBWA | vtcr::SH0_INNER;
    v |= tg0_of(geo.granule) << vtcr::TG0_SHIFT;
    v |= uint64_t(geo.ipa_bits > 48 ? 6 : 5) << vtcr::PS_SHIFT;   // 0b101 = 48 bits, 0b110 = 52
    v |= vtcr::VS | vtcr::HA;
    if (geo.ds) v |= vtcr::DS;
    return v;
}

// The hardware's reading of VTCR_EL2: input size from T0SZ, start level from SL0 and
// TG0, concatenation from what the start level leaves over. Throws for a combination
// the architecture treats as a level-0 translation fault on every access (an
// inconsistent SL0/T0SZ: more than 16 concatenated tables, or too few bits).
inline S2Geometry decode_vtcr(uint64_t v) {
    S2Geometry geo;
    geo.granule = granule_of_tg0(v >> vtcr::TG0_SHIFT);
    geo.ipa_bits = 64 - unsigned(v & vtcr::T0SZ_MASK);
    geo.ds = v & vtcr::DS;
    const uint64_t sl0 = (v & vtcr::SL0_MASK) >> vtcr::SL0_SHIFT;
    const int base = int(sl0_base(geo.granule));
    geo.start_level = base - int(sl0);
    if (geo.start_level < 0 || geo.start_level > 3) throw std::invalid_argument("VTCR_EL2.SL0 out of range");
    if (geo.granule == Granule::k64K && geo.start_level == 0)
        throw std::invalid_argument("VTCR_EL2: the 64K granule has no level 0");
    geo.levels = unsigned(4 - geo.start_level);
    const unsigned resolved = level_shift(geo.granule, geo.start_level) + level_bits(geo.granule);
    if (geo.ipa_bits <= level_shift(geo.granule, geo.start_level))
        throw std::invalid_argument("VTCR_EL2: T0SZ too large for SL0");
    const unsigned extra = geo.ipa_bits > resolved ? geo.ipa_bits - resolved : 0;
    if (extra > 4) throw std::invalid_argument("VTCR_EL2: SL0 would need more than 16 concatenated tables");
    geo.concat = 1u << extra;
    return geo;
}

// Stage-1 (TCR_EL1 T0SZ and TG0): levels cover va_bits - PAGE_SHIFT bits, no concatenation.
struct S1Geometry {
    Granule granule = Granule::k4K;
    unsigned va_bits = 48;
    unsigned levels = 4;
    int start_level = 0;
};
inline S1Geometry s1_geometry(Granule g, unsigned va_bits) {
    const unsigned ps = granule_shift(g), lb = ps - 3;
    S1Geometry s;
    s.granule = g;
    s.va_bits = va_bits;
    s.levels = (va_bits - ps + lb - 1) / lb;
    if (s.levels > 4 || s.levels < 1) throw std::invalid_argument("stage-1 VA size out of range");
    s.start_level = 4 - int(s.levels);
    return s;
}

}  // namespace hvsim::stage2
