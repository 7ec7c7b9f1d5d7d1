#include "models/mmu/mmu.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace hvsim::mmu {

namespace {
constexpr PgLevel to_pglevel(unsigned level) { return PgLevel(uint8_t(level)); }
}  // namespace

Mmu::Mmu(const MmuConfig& cfg, PhysMem& mem, CacheHierarchy& cache) : cfg_(cfg), port_(&direct_), npte_{cfg.nested_format} {
    direct_.mem = &mem;
    direct_.cache = &cache;
    init();
}

Mmu::Mmu(const MmuConfig& cfg, WalkMemory& port) : cfg_(cfg), port_(&port), npte_{cfg.nested_format} { init(); }

void Mmu::init() {
    const MmuConfig& cfg = cfg_;
    if (cfg.guest_levels != 0 && cfg.guest_levels != 4 && cfg.guest_levels != 5)
        throw std::invalid_argument("mmu: guest_levels must be 0, 4 or 5");
    if (cfg.nested_levels != 4 && cfg.nested_levels != 5)
        throw std::invalid_argument("mmu: nested_levels must be 4 or 5");
    l1_.configure(cfg.l1.entries, cfg.l1.ways, "mmu.l1_tlb");
    l2_.configure(cfg.l2.entries, cfg.l2.ways, "mmu.l2_tlb");
    pwc_.configure(cfg.pwc.entries, cfg.pwc.ways, "mmu.pwc");
    ntlb_.configure(cfg.ntlb.entries, cfg.ntlb.ways, "mmu.ntlb");
    const bool ept = cfg.nested_format == NestedFormat::ept;
    nested_ad_ = !ept || cfg.ept_ad;
    // The nested access of a guest paging-structure reference: a user write on AMD NPT
    // (the walker may set A/D in any guest entry) and on EPT with A/D; a read on EPT
    // without A/D. KVM's emulated walker does the same: FNAME(walk_addr_generic) uses
    // nested_access = WRITE|USER whenever the guest tables have A/D bits.
    table_acc_ = (ept && !cfg.ept_ad) ? kR : uint8_t(kR | kW);
    guest_va_bits_ = cfg.guest_levels ? table_shift(cfg.guest_levels) + 9 : 64;
    nested_pa_bits_ = table_shift(cfg.nested_levels) + 9;
}

void Mmu::set_guest_root(Gpa cr3) {
    const uint64_t root = cr3.raw() & pte::ADDR_MASK;
    if (root == cr3_) return;
    cr3_ = root;
    l1_.clear();
    l2_.clear();
    splinters_ = 0;
    pwc_.erase_if([](uint64_t key, const PwcEntry&) { return ((key >> 3) & 1) == kGuest; });
    drop_mru();
}

void Mmu::set_secure_nested_root(Hpa root) {
    const uint64_t r = root.raw() & pte::ADDR_MASK;
    if (r == sept_root_) return;
    sept_root_ = r;
    l1_.clear();
    l2_.clear();
    splinters_ = 0;
    pwc_.clear();
    ntlb_.clear();
    drop_mru();
}

void Mmu::set_nested_root(Hpa ncr3) {
    const uint64_t root = ncr3.raw() & pte::ADDR_MASK;
    if (root == ncr3_) return;
    ncr3_ = root;
    l1_.clear();
    l2_.clear();
    splinters_ = 0;
    pwc_.clear();
    ntlb_.clear();
    drop_mru();
}

void Mmu::set_phys_checker(PhysAccessChecker* c) {
    checker_ = c;
    l1_.clear();
    l2_.clear();
    splinters_ = 0;
    pwc_.clear();
    ntlb_.clear();
    drop_mru();
}

void Mmu::flush_all() {
    ++stats_.flushes;
    l1_.clear();
    l2_.clear();
    splinters_ = 0;
    pwc_.clear();
    ntlb_.clear();
    drop_mru();
}

// INVLPG drops the TLB entries of every size that cover va and, on Intel, all
// paging-structure-cache entries of the current PCID (SDM vol. 3A §4.10.4.1); AMD's
// PWC is flushed the same way here. Nested (gPA->hPA) state is untouched: the guest
// cannot change it.
void Mmu::flush_gva(Gva va) {
    ++stats_.invlpgs;
    const uint64_t v = va.raw();
    if (splinters_) {
        // "If the paging structures map the linear address using a page larger than 4
        // KBytes and there are multiple TLB entries for that page, the instruction
        // invalidates all of them" (SDM vol. 3A §4.10.4.1): every piece of the guest page
        // that holds va, wherever the piece lies.
        auto of_page = [v](uint64_t key, const TlbEntry& e) {
            const unsigned sh = level_shift(PgLevel(uint8_t(key & 15u))), gsh = level_shift(e.guest_size);
            // key >> 4 is (va >> sh) without its top four bits.
            return ((key >> 4) >> (gsh - sh)) == ((v >> gsh) & ((~0ull >> 4) >> (gsh - sh)));
        };
        l1_.erase_if(of_page);
        l2_.erase_if(of_page);
    } else {
        for (PgLevel s : {PgLevel::k4K, PgLevel::k2M, PgLevel::k1G}) l1_.erase(tlb_key(v, s));
        for (PgLevel s : {PgLevel::k4K, PgLevel::k2M}) l2_.erase(tlb_key(v, s));
    }
    pwc_.erase_if([](uint64_t key, const PwcEntry&) { return ((key >> 3) & 1) == kGuest; });
    drop_mru();
}

// An L1 hit that allows the access, without building a TranslateResult (the vCPU's
// hot loop); anything else is left to translate_slow(), which looks again.
bool Mmu::try_l1_hit(uint64_t v, AccessType at, Hpa* hpa, Cycles* cycles) {
    const unsigned abit = 1u << unsigned(at);
    for (PgLevel s : {PgLevel::k4K, PgLevel::k2M, PgLevel::k1G}) {
        if (!l1_.count_code(unsigned(s))) continue;
        const uint64_t key = tlb_key(v, s);
        if (const int w = l1_.find_way(key); w >= 0) {
            const TlbEntry* e = &l1_.value(uint32_t(w));
            if (s == PgLevel::k4K) l0_.record(v, key, uint32_t(w));
            if (!(e->allow & abit)) return false;
            ++stats_.accesses;
            ++stats_.l1_hits;
            set_mru(v, s, *e);
            *hpa = Hpa(e->hbase | (v & (level_size(s) - 1)));
            *cycles = cfg_.l1.hit_cycles;
            return true;
        }
    }
    l1_missed_.note(v);
    return false;
}

TranslateResult Mmu::translate_slow(Gva va, AccessType at, bool enc) {
    ++stats_.accesses;
    const uint64_t v = va.raw();
    const unsigned abit = 1u << unsigned(at);
    Cycles c = cfg_.l1.hit_cycles;
    bool denied = false;   // a TLB entry exists but does not allow this access
    // The vCPU's hit check (try_l1_hit()) may have just looked this address up in the L1.
    const bool l1_looked = l1_missed_.take(v);

    for (PgLevel s : {PgLevel::k4K, PgLevel::k2M, PgLevel::k1G}) {
        if (l1_looked) break;
        if (!l1_.count_code(unsigned(s))) continue;
        if (TlbEntry* e = l1_.find(tlb_key(v, s))) {
            if (e->allow & abit) {
                ++stats_.l1_hits;
                set_mru(v, s, *e);
                return hit_result(e->hbase | (v & (level_size(s) - 1)), s, e->writable, c);
            }
            denied = true;
            break;
        }
    }
    if (!denied) {
        c += cfg_.l2.hit_cycles;
        for (PgLevel s : {PgLevel::k4K, PgLevel::k2M}) {
            if (!l2_.count_code(unsigned(s))) continue;
            if (TlbEntry* e = l2_.find(tlb_key(v, s))) {
                if (e->allow & abit) {
                    ++stats_.l2_hits;
                    TlbEntry copy = *e;
                    PgLevel ls = s;
                    if (copy.full_size == PgLevel::k1G && l1_.enabled()) {
                        // The L2's 2M piece of a 1G page reloads the L1, which holds 1G
                        // pages, with the whole page.
                        ls = PgLevel::k1G;
                        copy.hbase -= (v & (level_size(PgLevel::k1G) - 1)) & ~(level_size(PgLevel::k2M) - 1);
                    }
                    if (l1_.enabled()) {
                        l1_.insert(tlb_key(v, ls), copy);
                        set_mru(v, ls, copy);
                    }
                    return hit_result(copy.hbase | (v & (level_size(ls) - 1)), ls, copy.writable, c);
                }
                denied = true;
                break;
            }
        }
    }

    // A TLB entry that denies the access is not trusted: hardware re-walks. That is
    // also how the first write through a read-filled entry sets D in memory (SDM
    // vol. 3A §4.8), and why KVM needs no flush after upgrading an SPTE's permissions.
    if (denied) {
        ++stats_.perm_rewalks;
        // Drop the denying entries first (a fault invalidates the faulting address's
        // entries, SDM vol. 3A §4.10.4.1), so a result of another page size is not
        // shadowed by a stale smaller entry found first on the next lookup.
        for (PgLevel s : {PgLevel::k4K, PgLevel::k2M, PgLevel::k1G}) l1_.erase(tlb_key(v, s));
        for (PgLevel s : {PgLevel::k4K, PgLevel::k2M}) l2_.erase(tlb_key(v, s));
        drop_mru();
    }
    ++stats_.misses;
    TranslateResult r = walk(v, at, enc);
    r.cycles += c;
    return r;
}

uint8_t Mmu::nested_perm(uint64_t e) const {
    if (npte_.is_ept()) return uint8_t(((e & ept::R) ? kR : 0) | ((e & ept::W) ? kW : 0) | ((e & ept::X) ? kX : 0));
    if (!(e & pte::US)) return 0;   // NPT walks are user accesses (APM vol. 2 §15.25.5)
    return uint8_t(kR | ((e & pte::RW) ? kW : 0) | ((e & pte::NX) ? 0 : kX));
}

uint64_t Mmu::npf_code(uint8_t acc, bool present) const {
    uint64_t code = 0;
    // svm.c npf_interception() hands EXITINFO1 through: U is always set for NPT.
    // vmx.c __vmx_handle_ept_violation(): a read sets USER, a write WRITE, a fetch FETCH.
    if (!npte_.is_ept() || (acc & kR)) code |= PFERR_USER;
    if (acc & kW) code |= PFERR_WRITE;
    if (acc & kX) code |= PFERR_FETCH;
    if (present) code |= PFERR_PRESENT;
    return code;
}

TranslateResult Mmu::npf(uint64_t gpa, uint64_t code) {
    ++stats_.npfs;
    TranslateResult r;
    r.status = TranslateResult::Status::npf;
    r.fault_gpa = Gpa(gpa);
    r.error_code = code;
    return r;
}

TranslateResult Mmu::vc(uint64_t va, uint64_t gpa, uint64_t code) {
    TranslateResult r;
    r.status = TranslateResult::Status::vc;
    r.fault_gva = Gva(va);
    r.fault_gpa = Gpa(gpa);
    r.error_code = code;
    return r;
}

bool Mmu::phys_check(uint64_t va, uint64_t gpa, uint64_t hpa, unsigned nested_level, AccessType at, bool enc,
                     bool table, uint64_t fault_gpa, uint64_t fault_code, WalkCtx& w, TranslateResult& out) {
    if (!checker_) return true;
    const PhysCheck c{Gpa(gpa & ~kPageMask), Hpa(hpa), to_pglevel(nested_level), at, enc, table};
    const PhysCheckResult r = checker_->check(c, *port_, w.cycles);
    if (r.kind == PhysCheckResult::Kind::ok) return true;
    ++stats_.phys_check_faults;
    out = r.kind == PhysCheckResult::Kind::npf ? npf(fault_gpa, fault_code | r.bits) : vc(va, gpa, r.bits);
    return false;
}

TranslateResult Mmu::guest_fault(uint64_t va, unsigned level, uint64_t pte_gpa, uint64_t code) {
    ++stats_.guest_faults;
    TranslateResult r;
    r.status = TranslateResult::Status::guest_page_fault;
    r.fault_gva = Gva(va);
    r.fault_level = level;
    r.fault_pte_gpa = Gpa(pte_gpa);
    r.error_code = code;
    return r;
}

// One walk of the nested table for gpa. The PWC supplies the deepest cached non-leaf
// entry, so the walk starts below it; each remaining level is one memory reference.
// The page-walk cache in front of a walk in one dimension: the deepest cached non-leaf
// entry (the smallest table that covers addr) lets the walk start below it.
void Mmu::pwc_skip(Dim dim, unsigned top, uint64_t addr, uint64_t& table, uint8_t& perm, unsigned& level,
                   WalkCtx& w) {
    if (cfg_.pwc_org != MmuConfig::PwcOrg::psc || !pwc_holds(dim)) return;
    for (unsigned l = 2; l <= top; ++l) {
        if (const PwcEntry* p = pwc_.find(pwc_key(dim, l, addr))) {
            table = p->next_table;
            perm = p->perm;
            level = l - 1;
            w.cycles += cfg_.pwc.hit_cycles;
            ++stats_.pwc_hits;
            return;
        }
    }
}

// AMD's page-table-entry cache: a non-leaf entry found by its host-physical address
// costs a PWC lookup instead of a memory reference; the walk goes on from it.
inline bool Mmu::pte_cache_read(Dim dim, uint64_t pte_hpa, uint64_t& e, WalkCtx& w) {
    if (cfg_.pwc_org != MmuConfig::PwcOrg::pte || !pwc_holds(dim)) return false;
    const PwcEntry* p = pwc_.find(pte_key(dim, pte_hpa));
    if (!p) return false;
    e = p->next_table;   // PwcOrg::pte keeps the entry itself
    w.cycles += cfg_.pwc.hit_cycles;
    ++stats_.pwc_hits;
    return true;
}

void Mmu::pwc_fill(Dim dim, unsigned level, uint64_t addr, uint64_t pte_hpa, uint64_t e, uint64_t table,
                   uint8_t perm, bool cached, uint64_t read) {
    if (!pwc_holds(dim)) return;
    if (cfg_.pwc_org != MmuConfig::PwcOrg::pte) pwc_.insert(pwc_key(dim, level, addr), PwcEntry{table, perm});
    else if (!cached) pwc_.insert_new(pte_key(dim, pte_hpa), PwcEntry{e, 0});   // pte_cache_read() just missed it
    else if (e != read) pwc_.insert(pte_key(dim, pte_hpa), PwcEntry{e, 0});     // the walk set A in it
    // An unchanged entry from the PWC: nothing touched the PWC since the look-up made it the
    // most recently used (an A/D write, whose nested walk could, changes the entry), so
    // inserting the same value again would change nothing.
}

// SDM vol. 3C §29.3.3.1: what makes an EPT entry a misconfiguration rather than a
// violation: write without read, bit 7 of an EPT PML4E or PML5E, a leaf's memory type
// 2, 3 or 7 (other reserved bits are not checked).
static bool ept_misconfigured(uint64_t e, unsigned level, bool leaf) {
    if ((e & (ept::R | ept::W)) == ept::W) return true;
    if (level >= 4 && (e & ept::LARGE)) return true;
    if (!leaf) return false;
    const uint64_t mt = (e >> ept::MT_SHIFT) & 7;
    return mt == 2 || mt == 3 || mt == 7;
}

TranslateResult Mmu::nested_fault(uint64_t gpa, const Nested& o, uint64_t bits) {
    if (!o.misconfig) return npf(gpa, o.err | bits);
    TranslateResult r = npf(gpa, PFERR_RSVD);
    r.misconfig = true;
    return r;
}

Mmu::Nested Mmu::nested_walk(uint64_t gpa, uint8_t acc, WalkCtx& w) {
    if (gpa >> nested_pa_bits_)
        throw std::out_of_range(fmt::format("mmu: gPA {:#x} beyond the {}-level nested tables' reach", gpa,
                                            cfg_.nested_levels));
    Nested o;
    unsigned level = cfg_.nested_levels;
    // A TD's private GPAs (shared bit clear) translate through the secure EPT.
    const bool secure = sept_root_ && cfg_.shared_gpa_bit && !((gpa >> cfg_.shared_gpa_bit) & 1);
    const bool nested_ad = nested_ad_ && !secure;
    uint64_t table = secure ? sept_root_ : ncr3_;
    uint8_t perm = kR | kW | kX;
    pwc_skip(kNested, cfg_.nested_levels, gpa, table, perm, level, w);
    for (;; --level) {
        const uint64_t pte_hpa = table + table_index(gpa, level) * 8u;
        uint64_t e;
        const bool cached = pte_cache_read(kNested, pte_hpa, e, w);
        if (!cached) {
            e = port_->read64(pte_hpa, w.cycles);
            ++w.refs;
        }
        const uint64_t read = e;
        if (!npte_.present(e)) {
            o.err = npf_code(acc, false);
            return o;
        }
        if (npte_.is_ept() && !secure) {   // the secure EPT's own bits are the TDX module's
            if (ept_misconfigured(e, level, level < 4 && npte_.is_leaf(e, level))) {
                ++stats_.ept_misconfigs;
                o.misconfig = true;
                return o;
            }
        } else if (level >= 4 && (e & pte::PS)) {   // PS is reserved above the PDPT
            o.err = npf_code(acc, true) | PFERR_RSVD;
            return o;
        }
        perm &= nested_perm(e);
        const bool leaf = npte_.is_leaf(e, level);
        if (!leaf) {
            if (nested_ad && !npte_.accessed(e)) {
                e |= npte_.accessed_bit();
                port_->write64(pte_hpa, e);
                ++stats_.ad_writes;
            }
            table = npte_.addr(e, level);
            pwc_fill(kNested, level, gpa, pte_hpa, e, table, perm, cached, read);
            continue;
        }
        if (acc & ~perm) {
            o.err = npf_code(acc, true);
            return o;
        }
        if (nested_ad) {
            uint64_t want = e | npte_.accessed_bit();
            if (acc & kW) want |= npte_.dirty_bit();
            if (want != e) {
                port_->write64(pte_hpa, want);
                ++stats_.ad_writes;
                e = want;
            }
        }
        o.ok = true;
        o.level = level;
        o.perm = perm;
        o.dirty = !nested_ad || npte_.dirty(e);
        o.leaf_pte_hpa = pte_hpa;
        o.hpa = npte_.addr(e, level) | (gpa & ((1ull << table_shift(level)) - 1));
        return o;
    }
}

// Host frame of a guest page-table page, for reading an entry in it: nested TLB
// first, else a nested walk whose result fills the nested TLB.
inline bool Mmu::table_read(uint64_t page_gpa, WalkCtx& w, TableXlate& tx, Nested& fault) {
    if (const NtlbEntry* t = ntlb_.find(ntlb_key(page_gpa))) {
        const bool usable = (table_acc_ & ~t->perm) == 0 && (!(table_acc_ & kW) || t->dirty);
        if (usable) {
            w.cycles += cfg_.ntlb.hit_cycles;
            ++stats_.ntlb_hits;
            tx = TableXlate{t->hpa, t->perm, t->dirty, false, 0};
            return true;
        }
    }
    Nested o = nested_walk(page_gpa, table_acc_, w);
    return adopt_walk(page_gpa, o, tx, fault);
}

// A nested walk of a guest page-table page: on success it becomes the page's
// translation for this walk and the nested TLB's; on failure it is the fault.
bool Mmu::adopt_walk(uint64_t page_gpa, const Nested& o, TableXlate& tx, Nested& fault) {
    if (!o.ok) {
        fault = o;
        return false;
    }
    tx = TableXlate{o.hpa & ~kPageMask, o.perm, o.dirty, true, o.leaf_pte_hpa, o.level};
    ntlb_.insert(ntlb_key(page_gpa), NtlbEntry{tx.hpa, tx.perm, tx.dirty});
    return true;
}

// Setting A/D in a guest entry writes the guest page-table page, so its nested
// translation must allow writes and gets D set.
bool Mmu::table_write(uint64_t page_gpa, WalkCtx& w, TableXlate& tx, Nested& fault) {
    if ((tx.perm & kW) && tx.dirty) return true;
    if (tx.from_walk) {
        // Translated by this walk: the walker still holds the nested leaf.
        if (!(tx.perm & kW)) {
            fault.err = npf_code(kR | kW, true);
            return false;
        }
        port_->write64(tx.leaf_pte_hpa, port_->load64(tx.leaf_pte_hpa) | npte_.dirty_bit());
        ++stats_.ad_writes;
        tx.dirty = true;
        ntlb_.insert(ntlb_key(page_gpa), NtlbEntry{tx.hpa, tx.perm, true});
        return true;
    }
    // Nested TLB entry that does not allow the write: re-walk as a write.
    Nested o = nested_walk(page_gpa, kR | kW, w);
    return adopt_walk(page_gpa, o, tx, fault);
}

TranslateResult Mmu::walk(uint64_t va, AccessType at, bool enc) {
    WalkCtx w;
    const uint8_t acc = uint8_t(1u << unsigned(at));
    const uint64_t enc_final = enc ? PFERR_GUEST_ENC : 0;
    const uint64_t enc_page = (enc || cfg_.guest_tables_encrypted) ? PFERR_GUEST_ENC : 0;
    auto account = [&](TranslateResult r) {
        r.cycles = w.cycles;
        r.mem_refs = w.refs;
        stats_.walk_mem_refs += w.refs;
        stats_.walk_cycles += w.cycles;
        return r;
    };

    unsigned glevel = 0;        // guest leaf level; 0 = no guest paging
    uint64_t gpa = va;
    bool gwritable = true, gdirty = true;

    if (cfg_.guest_levels) {
        // Canonical check: bits above the top level's index must repeat its top bit.
        const unsigned sh = 64u - unsigned(guest_va_bits_);
        if (uint64_t(int64_t(va << sh) >> sh) != va)
            throw std::out_of_range(fmt::format("mmu: non-canonical gVA {:#x}", va));
        unsigned level = cfg_.guest_levels;
        uint64_t table = cr3_;
        uint8_t perm = kR | kW | kX;
        pwc_skip(kGuest, cfg_.guest_levels, va, table, perm, level, w);
        for (;; --level) {
            const uint64_t pte_gpa = table + table_index(va, level) * 8u;
            const uint64_t page_gpa = pte_gpa & ~kPageMask;
            TableXlate tx;
            Nested nf;
            if (!table_read(page_gpa, w, tx, nf))
                return account(nested_fault(pte_gpa, nf, PFERR_GUEST_PAGE | enc_page));
            if (checker_ && tx.from_walk) {
                // A guest page-table reference is checked when its nested translation is
                // filled (the result lives with the nested TLB entry); the walker may
                // set A/D, so it is checked as a write (APM Table 15-39).
                TranslateResult f;
                if (!phys_check(va, page_gpa, tx.hpa, tx.level, AccessType::write, true, true, pte_gpa,
                                npf_code(table_acc_, true) | PFERR_GUEST_PAGE | enc_page, w, f)) {
                    ntlb_.erase(ntlb_key(page_gpa));
                    return account(f);
                }
            }
            const uint64_t pte_hpa = tx.hpa | (pte_gpa & kPageMask);
            uint64_t e;
            const bool cached = pte_cache_read(kGuest, pte_hpa, e, w);
            if (!cached) {
                e = port_->read64(pte_hpa, w.cycles);
                ++w.refs;
            }
            const uint64_t read = e;
            // Guest #PF error code: ring 0, so U stays clear (see mmu.hpp).
            const uint64_t pf = ((acc & kW) ? PFERR_WRITE : 0) | ((acc & kX) ? PFERR_FETCH : 0);
            if (!pte::present(e)) return account(guest_fault(va, level, pte_gpa, pf));
            if (level >= 4 && (e & pte::PS))
                return account(guest_fault(va, level, pte_gpa, pf | PFERR_PRESENT | PFERR_RSVD));
            if (!(e & pte::RW)) perm &= uint8_t(~kW);
            const bool leaf = pte::is_leaf(e, level);
            if (leaf && (acc & kW) && !(perm & kW))
                return account(guest_fault(va, level, pte_gpa, pf | PFERR_PRESENT));
            uint64_t want = e | pte::A;
            if (leaf && (acc & kW)) want |= pte::D;
            if (want != e) {
                if (!table_write(page_gpa, w, tx, nf))
                    return account(nested_fault(pte_gpa, nf, PFERR_GUEST_PAGE | enc_page));
                port_->write64(tx.hpa | (pte_gpa & kPageMask), want);
                ++stats_.ad_writes;
                e = want;
            }
            if (!leaf) {
                table = pte::addr(e, level);
                pwc_fill(kGuest, level, va, pte_hpa, e, table, perm, cached, read);
                continue;
            }
            hints_.record(va, tx.hpa, level);
            glevel = level;
            gwritable = (perm & kW) != 0;
            gdirty = (e & pte::D) != 0;
            gpa = pte::addr(e, level) | (va & ((1ull << table_shift(level)) - 1));
            break;
        }
    }

    if (cfg_.shared_gpa_bit && !enc) gpa |= 1ull << cfg_.shared_gpa_bit;
    const Nested o = nested_walk(gpa, acc, w);
    if (!o.ok) return account(nested_fault(gpa, o, PFERR_GUEST_FINAL | enc_final));
    if (checker_) {
        TranslateResult f;
        if (!phys_check(va, gpa, o.hpa, o.level, at, enc, false, gpa, npf_code(acc, true) | PFERR_GUEST_FINAL | enc_final,
                        w, f))
            return account(f);
    }

    TranslateResult r;
    r.hpa = Hpa(o.hpa);
    r.page_size = to_pglevel(glevel ? std::min(glevel, o.level) : o.level);
    r.writable = gwritable && (o.perm & kW);
    // The entry serves later accesses without a walk only as far as the dimensions'
    // permissions and dirty state allow (a write needs D set in both leaves).
    uint8_t allow = kR;
    if (r.writable && gdirty && o.dirty) allow |= kW;
    if (o.perm & kX) allow |= kX;
    fill_tlbs(va, r, allow, glevel ? to_pglevel(glevel) : r.page_size);
    return account(r);
}

// Walks fill both TLB levels. The L2 holds 4K and 2M only: a 1G translation goes in
// as the 2M piece that covers va (Zen's "smashing", docs/sources.md §5).
// Only after a walk from translate_slow(), which looked the address up at every size in
// both TLBs (or erased the entries that denied it) and inserts nothing before the walk: the
// keys are absent, so the fills skip their look-ups (AssocCache::insert_new()).
void Mmu::fill_tlbs(uint64_t va, const TranslateResult& r, uint8_t allow, PgLevel guest_size) {
    const PgLevel s = r.page_size;
    const TlbEntry e{r.hpa.raw() & ~(level_size(s) - 1), allow, r.writable, guest_size, s};
    l1_.insert_new(tlb_key(va, s), e);
    if (s < guest_size) ++splinters_;
    if (s == PgLevel::k1G) {
        l2_.insert_new(tlb_key(va, PgLevel::k2M),
                       TlbEntry{r.hpa.raw() & ~(level_size(PgLevel::k2M) - 1), allow, r.writable, guest_size, s});
        ++splinters_;   // a 2M piece of a 1G page
    } else {
        l2_.insert_new(tlb_key(va, s), e);
    }
    if (l1_.enabled()) set_mru(va, s, e);
}

TranslateResult Mmu::translate_gpa(Gpa gpa, AccessType at, bool enc, bool check) {
    ++stats_.gpa_lookups;
    const uint64_t g = gpa.raw() | (cfg_.shared_gpa_bit && !enc ? 1ull << cfg_.shared_gpa_bit : 0);
    const uint8_t acc = uint8_t(1u << unsigned(at));
    if (const NtlbEntry* t = ntlb_.find(ntlb_key(g))) {
        if ((acc & ~t->perm) == 0 && (!(acc & kW) || t->dirty)) {
            ++stats_.gpa_ntlb_hits;
            TranslateResult r;
            r.hpa = Hpa(t->hpa | (g & kPageMask));
            r.writable = (t->perm & kW) != 0;
            r.cycles = cfg_.ntlb.hit_cycles;
            r.tlb_hit = true;
            return r;
        }
        ++stats_.perm_rewalks;
    }
    ++stats_.gpa_walks;
    WalkCtx w;
    const Nested o = nested_walk(g, acc, w);
    stats_.walk_mem_refs += w.refs;
    stats_.walk_cycles += w.cycles;
    TranslateResult r = o.ok ? TranslateResult{} : nested_fault(g, o, PFERR_GUEST_FINAL | (enc ? PFERR_GUEST_ENC : 0));
    r.cycles = w.cycles;
    r.mem_refs = w.refs;
    if (!o.ok) return r;
    if (!check) {
        r.hpa = Hpa(o.hpa);
        r.page_size = to_pglevel(o.level);
        r.writable = (o.perm & kW) != 0;
        return r;
    }
    if (checker_) {
        WalkCtx cw;
        TranslateResult f;
        const bool pass = phys_check(g, g, o.hpa, o.level, at, enc, false, g,
                                     npf_code(acc, true) | PFERR_GUEST_FINAL | (enc ? PFERR_GUEST_ENC : 0), cw, f);
        stats_.walk_cycles += cw.cycles;
        r.cycles += cw.cycles;
        if (!pass) {
            f.cycles = r.cycles;
            f.mem_refs = r.mem_refs;
            return f;
        }
    }
    r.hpa = Hpa(o.hpa);
    r.writable = (o.perm & kW) != 0;
    ntlb_.insert(ntlb_key(g), NtlbEntry{o.hpa & ~kPageMask, o.perm, o.dirty});
    return r;
}

}  // namespace hvsim::mmu
