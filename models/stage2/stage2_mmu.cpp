#include "models/stage2/stage2_mmu.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace hvsim::stage2 {

using mmu::AccessType;
using mmu::TranslateResult;

namespace {
// The distinct leaf sizes of the three granules (4K..4T), one TLB size code each.
constexpr unsigned kShifts[] = {12, 14, 16, 21, 25, 29, 30, 36, 39, 42};
constexpr unsigned kNumCodes = sizeof(kShifts) / sizeof(kShifts[0]);

constexpr uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}
}  // namespace

Stage2Mmu::Stage2Mmu(const Stage2Config& cfg, mmu::WalkMemory& port) : cfg_(cfg), port_(&port) {
    l1_.configure(cfg.l1.entries, cfg.l1.ways, "stage2.l1_tlb");
    l2_.configure(cfg.l2.entries, cfg.l2.ways, "stage2.l2_tlb");
    s2tlb_.configure(cfg.s2tlb.entries, cfg.s2tlb.ways, "stage2.s2tlb");
    wc_.configure(cfg.walk_cache.entries, cfg.walk_cache.ways, "stage2.walk_cache");
    s2_ = kvm_stage2_geometry(Granule::k4K, 40);
}

unsigned Stage2Mmu::size_code(unsigned shift) {
    for (unsigned i = 0; i < kNumCodes; ++i)
        if (kShifts[i] == shift) return i;
    throw std::logic_error("stage2: no TLB size code for this leaf size");
}

uint64_t Stage2Mmu::tlb_key(uint16_t vmid, uint16_t asid, uint64_t vpage, unsigned code) {
    return (mix(vpage ^ (uint64_t(vmid) << 48) ^ (uint64_t(asid) << 32) ^ (uint64_t(code) << 60)) << 4) | code;
}

void Stage2Mmu::set_vtcr(uint64_t v) {
    s2_ = decode_vtcr(v);
    ha_ = v & vtcr::HA;
    drop_mru();
}

void Stage2Mmu::set_vttbr(uint16_t vmid, Hpa root) {
    vmid_ = vmid;
    vttbr_ = root.raw();
    drop_mru();
}

void Stage2Mmu::set_stage1_off() {
    s1_on_ = false;
    drop_mru();
}

void Stage2Mmu::set_tcr(Granule g, unsigned va_bits) {
    s1_ = s1_geometry(g, va_bits);
    s1_on_ = true;
    drop_mru();
}

void Stage2Mmu::set_ttbr0(uint16_t asid, Gpa root) {
    asid_ = asid;
    ttbr0_ = root.raw();
    drop_mru();
}

uint8_t Stage2Mmu::s2_perm(uint64_t d) const {
    // S2AP[0] read, S2AP[1] write; XN[1] (bit 54) forbids execution at EL1 and EL0.
    return uint8_t(((d & desc::S2AP_R) ? kR : 0) | ((d & desc::S2AP_W) ? kW : 0) | ((d >> 54) & 1 ? 0 : kX));
}

// ---- TLB maintenance (Arm ARM D8.16.6) ----

// IPAS2E1IS: stage-2-only entries for the IPA (the IPA cache and stage-2 table entries
// covering it). Combined stage-1+2 entries survive it, which is why KVM follows it with
// VMALLE1IS (__kvm_tlb_flush_vmid_ipa()).
void Stage2Mmu::tlbi_ipas2e1(uint16_t vmid, uint64_t ipa, int) {
    ++s2stats_.tlbi;
    s2tlb_.erase_if([&](uint64_t, const S2Entry& e) { return e.vmid == vmid && (ipa >> e.shift) == e.ipage; });
    // Stage-2 table entries are tagged asid 0xffff and keep the IPA range in `tag`.
    wc_.erase_if([&](uint64_t, const WcEntry& e) { return e.vmid == vmid && e.asid == 0xffff; });
}

void Stage2Mmu::tlbi_vmalle1(uint16_t vmid) {
    ++s2stats_.tlbi;
    l1_.erase_if([&](uint64_t, const TlbEntry& e) { return e.vmid == vmid; });
    l2_.erase_if([&](uint64_t, const TlbEntry& e) { return e.vmid == vmid; });
    wc_.erase_if([&](uint64_t, const WcEntry& e) { return e.vmid == vmid && e.asid != 0xffff; });
    drop_mru();
}

void Stage2Mmu::tlbi_vmalls12e1(uint16_t vmid) {
    ++s2stats_.tlbi;
    l1_.erase_if([&](uint64_t, const TlbEntry& e) { return e.vmid == vmid; });
    l2_.erase_if([&](uint64_t, const TlbEntry& e) { return e.vmid == vmid; });
    s2tlb_.erase_if([&](uint64_t, const S2Entry& e) { return e.vmid == vmid; });
    wc_.erase_if([&](uint64_t, const WcEntry& e) { return e.vmid == vmid; });
    drop_mru();
}

void Stage2Mmu::flush_all() {
    ++stats_.flushes;
    l1_.clear();
    l2_.clear();
    s2tlb_.clear();
    wc_.clear();
    codes_used_ = 0;
    drop_mru();
}

// ---- lookups ----

TranslateResult Stage2Mmu::translate(Gva va, AccessType at, bool) {
    const uint64_t v = va.raw();
    if ((v & mru_.vmask) == mru_.vbase && (mru_.allow >> unsigned(at)) & 1u) {
        ++stats_.accesses;
        ++stats_.l1_hits;
        TranslateResult r;
        r.hpa = Hpa(mru_.hbase | (v & ~mru_.vmask));
        r.cycles = cfg_.l1.hit_cycles;
        r.tlb_hit = true;
        r.writable = mru_.allow & kW;
        return r;
    }
    return translate_slow(v, at);
}

// Exactly translate_slow()'s L1 probe and its hit (statistics, LRU, MRU); anything else
// (a miss, or an entry that denies the access) goes the slow way.
bool Stage2Mmu::try_l1_hit(uint64_t v, AccessType at, Hpa* hpa, Cycles* cycles) {
    const unsigned abit = 1u << unsigned(at);
    for (unsigned m = codes_used_ & l1_.code_mask(); m; m &= m - 1) {
        const unsigned code = unsigned(std::countr_zero(m));
        const unsigned sh = kShifts[code];
        const uint64_t key = tlb_key(vmid_, asid_, v >> sh, code);
        const int w = l1_.find_way(key);
        if (w < 0) continue;
        const TlbEntry* e = &l1_.value(uint32_t(w));
        if (e->vmid != vmid_ || e->asid != asid_ || e->vpage != (v >> sh)) continue;
        if (sh == 12) l0_.record(v, key, uint32_t(w));
        if (!(e->allow & abit)) return false;
        ++stats_.accesses;
        ++stats_.l1_hits;
        mru_.vmask = ~((1ull << e->shift) - 1);
        mru_.vbase = v & mru_.vmask;
        mru_.hbase = e->hbase;
        mru_.allow = e->allow;
        *hpa = Hpa(e->hbase | (v & ((1ull << e->shift) - 1)));
        *cycles = cfg_.l1.hit_cycles;
        return true;
    }
    l1_missed_.note(v);
    return false;
}

TranslateResult Stage2Mmu::translate_slow(uint64_t v, AccessType at) {
    ++stats_.accesses;
    const unsigned abit = 1u << unsigned(at);
    Cycles c = cfg_.l1.hit_cycles;
    bool denied = false;
    // The vCPU's hit check (try_l1_hit()) may have just looked this address up in the L1.
    const bool l1_looked = l1_missed_.take(v);
    auto hit = [&](const TlbEntry& e, Cycles cyc) {
        mru_.vmask = ~((1ull << e.shift) - 1);
        mru_.vbase = v & mru_.vmask;
        mru_.hbase = e.hbase;
        mru_.allow = e.allow;
        TranslateResult r;
        r.hpa = Hpa(e.hbase | (v & ((1ull << e.shift) - 1)));
        r.cycles = cyc;
        r.tlb_hit = true;
        r.writable = e.allow & kW;
        return r;
    };
    for (int lvl = l1_looked ? 1 : 0; lvl < 2 && !denied; ++lvl) {
        auto& tlb = lvl == 0 ? l1_ : l2_;
        if (lvl == 1) c += cfg_.l2.hit_cycles;
        for (unsigned m = codes_used_ & tlb.code_mask(); m; m &= m - 1) {
            const unsigned code = unsigned(std::countr_zero(m));
            const unsigned sh = kShifts[code];
            TlbEntry* e = tlb.find(tlb_key(vmid_, asid_, v >> sh, code));
            if (!e || e->vmid != vmid_ || e->asid != asid_ || e->vpage != (v >> sh)) continue;
            if (!(e->allow & abit)) {
                denied = true;
                break;
            }
            if (lvl == 0) ++stats_.l1_hits;
            else {
                ++stats_.l2_hits;
                const TlbEntry copy = *e;
                l1_.insert(tlb_key(vmid_, asid_, v >> sh, code), copy);
                l1_missed_.forget();
                return hit(copy, c);
            }
            return hit(*e, c);
        }
    }
    if (denied) {
        // A permission fault invalidates nothing architecturally, but the entry that
        // denied the access cannot serve it: re-walk (the fault path reloads it).
        ++stats_.perm_rewalks;
        drop_mru();
    }
    ++stats_.misses;
    return walk(v, at, c);
}

// Stage 2 of one IPA through the stage-2 TLB, else a walk.
Stage2Mmu::S2Out Stage2Mmu::s2_translate(uint64_t ipa, uint8_t acc, Cycles& cyc, unsigned& refs) {
    for (unsigned m = s2tlb_.code_mask(); m; m &= m - 1) {   // none when disabled
        const unsigned code = unsigned(std::countr_zero(m));
        const unsigned sh = kShifts[code];
        S2Entry* e = s2tlb_.find(tlb_key(vmid_, 0xffff, ipa >> sh, code));
        if (!e || e->vmid != vmid_ || e->ipage != (ipa >> sh)) continue;
        if ((e->perm & acc) != acc) break;   // re-walk: the walk reports the permission fault
        ++s2stats_.s2tlb_hits;
        cyc += cfg_.s2tlb.hit_cycles;
        S2Out o;
        o.ok = true;
        o.pa = e->pa | (ipa & ((1ull << sh) - 1));
        o.perm = e->perm;
        o.shift = sh;
        return o;
    }
    S2Out o = s2_walk(ipa, acc, cyc, refs);
    if (o.ok) {
        const unsigned code = size_code(o.shift);
        s2tlb_.insert(tlb_key(vmid_, 0xffff, ipa >> o.shift, code),
                      S2Entry{ipa >> o.shift, o.pa & ~((1ull << o.shift) - 1), vmid_, o.perm, uint8_t(o.shift)});
    }
    return o;
}

// One stage-2 walk from VTTBR_EL2 (Arm ARM D8.2, "Translation table walk"): the root
// index takes the concatenated tables' extra bits; a block is legal at the granule's
// block levels only; AF is set by hardware (VTCR_EL2.HA) else faults.
Stage2Mmu::S2Out Stage2Mmu::s2_walk(uint64_t ipa, uint8_t acc, Cycles& cyc, unsigned& refs) {
    ++s2stats_.s2_walks;
    S2Out o;
    const Granule g = s2_.granule;
    if (s2_.ipa_bits < 64 && (ipa >> s2_.ipa_bits)) {
        o.fsc = esr::fsc_fault(s2_.start_level);   // input beyond T0SZ: level of the start
        return o;
    }
    uint64_t table = vttbr_ & ~(s2_.root_bytes() - 1);
    int level = s2_.start_level;
    // Walk cache: the deepest cached table descriptor of this IPA.
    if (wc_.enabled()) {
        for (int l = 2; l >= s2_.start_level; --l) {
            const uint64_t tag = (ipa >> level_shift(g, l)) << 3 | unsigned(l);
            WcEntry* e = wc_.find(tlb_key(vmid_, 0xffff, tag, 15));
            if (e && e->vmid == vmid_ && e->asid == 0xffff && e->tag == tag) {
                ++s2stats_.walk_cache_hits;
                cyc += cfg_.walk_cache.hit_cycles;
                table = e->next;
                level = l + 1;
                break;
            }
        }
    }
    for (;; ++level) {
        const uint64_t entries =
            level == s2_.start_level ? s2_.root_entries() : (1ull << level_bits(g));
        const uint64_t idx = (ipa >> level_shift(g, level)) & (entries - 1);
        const uint64_t da = table + idx * 8;
        const uint64_t d = port_->read64(da, cyc);
        ++refs;
        ++s2stats_.s2_mem_refs;
        ++stats_.walk_mem_refs;
        if (!(d & desc::VALID)) {
            o.fsc = esr::fsc_fault(level);
            return o;
        }
        if (level < 3 && (d & desc::TABLE)) {
            table = desc::oa(d, g, s2_.ds);
            const uint64_t tag = (ipa >> level_shift(g, level)) << 3 | unsigned(level);
            wc_.insert(tlb_key(vmid_, 0xffff, tag, 15), WcEntry{tag, table, vmid_, 0xffff});
            continue;
        }
        // Level 3 needs the page type; a block must sit at a block level.
        if (level == 3 ? !(d & desc::TABLE) : level < min_block_level(g)) {
            o.fsc = esr::fsc_fault(level);
            return o;
        }
        if (!(d & desc::AF)) {
            if (!ha_) {
                o.fsc = esr::fsc_access(level);
                return o;
            }
            port_->write64(da, d | desc::AF);
            ++stats_.ad_writes;
        }
        o.perm = s2_perm(d);
        if ((o.perm & acc) != acc) {
            o.fsc = esr::fsc_perm(level);
            return o;
        }
        o.ok = true;
        o.shift = level_shift(g, level);
        o.pa = desc::oa(d, g, s2_.ds) | (ipa & ((1ull << o.shift) - 1));
        o.leaf_table = table;
        o.leaf_level = level;
        return o;
    }
}

TranslateResult Stage2Mmu::s2_fault(uint64_t ipa, const S2Out& o, AccessType at, bool s1ptw) {
    ++stats_.npfs;
    ++s2stats_.s2_faults;
    TranslateResult r;
    r.status = TranslateResult::Status::npf;
    r.fault_gpa = Gpa(ipa);
    // ESR_EL2 as a lower-EL abort reports it: EC, IL, WnR (not for a walk's read),
    // S1PTW, the fault status code.
    uint64_t e = ((at == AccessType::fetch && !s1ptw ? esr::EC_IABT_LOW : esr::EC_DABT_LOW) << esr::EC_SHIFT) | esr::IL;
    if (s1ptw) e |= esr::S1PTW;
    else if (at == AccessType::write) e |= esr::WNR;
    r.error_code = e | o.fsc;
    r.fault_level = unsigned(esr::fault_level(o.fsc));
    return r;
}

TranslateResult Stage2Mmu::translate_gpa(Gpa ipa, AccessType at, bool) {
    ++stats_.gpa_lookups;
    Cycles cyc = 0;
    unsigned refs = 0;
    const uint8_t acc = uint8_t(1u << unsigned(at));
    const uint64_t hits_before = s2stats_.s2tlb_hits;
    S2Out o = s2_translate(ipa.raw(), acc, cyc, refs);
    if (s2stats_.s2tlb_hits != hits_before) ++stats_.gpa_ntlb_hits;
    else ++stats_.gpa_walks;
    stats_.walk_cycles += cyc;
    if (!o.ok) {
        TranslateResult r = s2_fault(ipa.raw(), o, at, false);
        r.cycles = cyc;
        r.mem_refs = refs;
        return r;
    }
    TranslateResult r;
    r.hpa = Hpa(o.pa);
    r.writable = o.perm & kW;
    r.cycles = cyc;
    r.mem_refs = refs;
    return r;
}

// The two-dimensional walk: each stage-1 table address (an IPA) goes through stage 2
// first, then the final IPA (Arm ARM D8.2.7, "stage 2 translation of stage 1 walks").
TranslateResult Stage2Mmu::walk(uint64_t va, AccessType at, Cycles c) {
    Cycles cyc = 0;
    unsigned refs = 0;
    const uint8_t acc = uint8_t(1u << unsigned(at));
    uint64_t ipa = va;
    uint8_t s1perm = kR | kW | kX;
    unsigned s1shift = 64;
    auto finish = [&](TranslateResult r) {
        r.cycles += c + cyc;
        r.mem_refs = refs;
        stats_.walk_cycles += cyc;
        return r;
    };
    if (s1_on_) {
        const Granule g = s1_.granule;
        if (va >> s1_.va_bits) {
            ++stats_.guest_faults;
            TranslateResult r;
            r.status = TranslateResult::Status::guest_page_fault;
            r.fault_gva = Gva(va);
            r.fault_level = 0;
            r.error_code = esr::fsc_fault(s1_.start_level);
            return finish(r);
        }
        uint64_t table = ttbr0_ & ~(granule_size(g) - 1);
        int level = s1_.start_level;
        if (wc_.enabled()) {
            for (int l = 2; l >= s1_.start_level; --l) {
                const uint64_t tag = (va >> level_shift(g, l)) << 3 | unsigned(l);
                WcEntry* e = wc_.find(tlb_key(vmid_, asid_, tag, 14));
                if (e && e->vmid == vmid_ && e->asid == asid_ && e->tag == tag) {
                    ++s2stats_.walk_cache_hits;
                    ++stats_.pwc_hits;
                    cyc += cfg_.walk_cache.hit_cycles;
                    table = e->next;
                    level = l + 1;
                    break;
                }
            }
        }
        for (;; ++level) {
            const uint64_t idx = table_index(g, level, va);
            const uint64_t dipa = table + idx * 8;
            // S1PTW: the descriptor's IPA through stage 2 (a stage-2 TLB hit is the
            // nested-TLB hit of an x86 2D walk: walk.ntlb_hits).
            const uint64_t s2hits = s2stats_.s2tlb_hits;
            S2Out t = s2_translate(dipa, kR, cyc, refs);
            if (s2stats_.s2tlb_hits != s2hits) ++stats_.ntlb_hits;
            if (!t.ok) return finish(s2_fault(dipa, t, at, true));
            const uint64_t d = port_->read64(t.pa, cyc);
            ++refs;
            ++s2stats_.s1_mem_refs;
            ++stats_.walk_mem_refs;
            auto s1_fault = [&](uint64_t fsc) {
                ++stats_.guest_faults;
                TranslateResult r;
                r.status = TranslateResult::Status::guest_page_fault;
                r.fault_gva = Gva(va);
                r.fault_level = unsigned(level);
                r.fault_pte_gpa = Gpa(dipa);
                r.error_code = fsc | (at == AccessType::write ? esr::WNR : 0);
                return finish(r);
            };
            if (!(d & desc::VALID)) return s1_fault(esr::fsc_fault(level));
            if (level < 3 && (d & desc::TABLE)) {
                table = desc::oa(d, g, false);
                const uint64_t tag = (va >> level_shift(g, level)) << 3 | unsigned(level);
                wc_.insert(tlb_key(vmid_, asid_, tag, 14), WcEntry{tag, table, vmid_, asid_});
                continue;
            }
            if (level == 3 ? !(d & desc::TABLE) : level < min_block_level(g))
                return s1_fault(esr::fsc_fault(level));
            if (!(d & desc::AF)) {
                port_->write64(t.pa, d | desc::AF);   // TCR_EL1.HA
                ++stats_.ad_writes;
            }
            s1perm = uint8_t(kR | ((d & desc::S1_AP2) ? 0 : kW) | ((d & desc::S1_PXN) ? 0 : kX));
            if ((s1perm & acc) != acc) return s1_fault(esr::fsc_perm(level));
            s1shift = level_shift(g, level);
            hints_.record(va, t.pa - idx * 8, unsigned(level));
            ipa = desc::oa(d, g, false) | (va & ((1ull << s1shift) - 1));
            break;
        }
    }
    S2Out o = s2_translate(ipa, acc, cyc, refs);
    if (!o.ok) return finish(s2_fault(ipa, o, at, false));
    // Only page descriptors: a block's table covers 512 times as much and stays in the
    // host's caches without a hint.
    if (o.leaf_table && o.leaf_level == 3) s2hints_.record(ipa, o.leaf_table, 3);
    // The TLB holds the smaller of the two leaves, with the AND of both permissions.
    const unsigned shift = std::min(s1shift, o.shift);
    TlbEntry e;
    e.shift = uint8_t(shift);
    e.vpage = va >> shift;
    e.ipa_page = ipa >> shift;
    e.hbase = o.pa & ~((1ull << shift) - 1);
    e.vmid = vmid_;
    e.asid = asid_;
    e.allow = uint8_t(s1perm & o.perm);
    const unsigned code = size_code(shift);
    codes_used_ |= uint16_t(1u << code);
    l2_.insert(tlb_key(vmid_, asid_, e.vpage, code), e);
    l1_.insert(tlb_key(vmid_, asid_, e.vpage, code), e);
    l1_missed_.forget();
    if (l1_.enabled()) {
        mru_.vmask = ~((1ull << shift) - 1);
        mru_.vbase = va & mru_.vmask;
        mru_.hbase = e.hbase;
        mru_.allow = e.allow;
    }
    TranslateResult r;
    r.hpa = Hpa(o.pa);
    r.writable = e.allow & kW;
    r.page_size = shift >= 30 ? PgLevel::k1G : shift >= 21 ? PgLevel::k2M : PgLevel::k4K;
    return finish(r);
}

}  // namespace hvsim::stage2
