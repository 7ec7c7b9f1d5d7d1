#include "models/rmp/rmp.hpp"

#include "models/rmp/rmp_state_graph.hpp"

#include <new>
#include <stdexcept>

namespace hvsim::rmp {

namespace {
constexpr uint64_t kPagesPer2M = 512;
constexpr uint64_t head_of(uint64_t pfn) { return pfn & ~(kPagesPer2M - 1); }
// 1G nested mappings are checked as 2M (APM §15.36.10: SNP installs 2 MB TLB entries).
constexpr bool is_large(PgLevel l) { return l != PgLevel::k4K; }
}  // namespace

RmpEntry RmpEntry::decode(uint64_t lo, uint64_t hi) {
    RmpEntry e;
    e.assigned = lo_assigned(lo);
    e.size_2m = lo_size_2m(lo);
    e.immutable = lo_immutable(lo);
    e.subpage_count = uint16_t((lo >> 3) & 0x1ff);
    e.gpa = lo_gpa(lo);
    e.asid = lo_asid(lo);
    e.vmsa = (lo >> 61) & 1;
    e.validated = lo_validated(lo);
    e.lock = (lo >> 63) & 1;
    for (unsigned i = 0; i < 4; ++i) e.perms[i] = hi_perms(hi, i);
    return e;
}

uint64_t RmpEntry::lo() const {
    return uint64_t(assigned) | uint64_t(size_2m) << 1 | uint64_t(immutable) << 2 |
           uint64_t(subpage_count & 0x1ff) << 3 | ((gpa.raw() >> kPageShift) & ((1ull << 39) - 1)) << 12 |
           uint64_t(asid & 0x3ff) << 51 | uint64_t(vmsa) << 61 | uint64_t(validated) << 62 | uint64_t(lock) << 63;
}

uint64_t RmpEntry::hi() const {
    uint64_t h = 0;
    for (unsigned i = 0; i < 4; ++i) h |= uint64_t(perms[i]) << (8 * i);
    return h;
}

Rmp::Rmp(const RmpConfig& cfg, PhysMem& mem) : cfg_(cfg), mem_(mem) {
    if (!is_aligned(cfg.base.raw(), 1ull << 20)) throw std::invalid_argument("rmp: RMP_BASE must be 1 MiB aligned");
    if (cfg.base.raw() < cfg.covered_pages * kPageSize)
        throw std::invalid_argument("rmp: the table must lie above the memory it covers");
    cache_.configure(cfg.cache_entries, cfg.cache_entries, "rmp.cache");
    // Every entry starts unassigned (the table's memory reads as zeros): no page encrypted.
    void* bits = std::calloc(size_t(cfg.covered_pages / 64 + 1), sizeof(uint64_t));
    if (!bits) throw std::bad_alloc();
    enc_bits_.reset(static_cast<uint64_t*>(bits));
}

Rmp::Words Rmp::load_words(Pfn p, bool debug) const {
    if (!covered(p)) return Words{};   // decodes to RmpEntry{}
    const Hpa a = entry_addr(p);
    if (!tm_) return Words{mem_.read64(a), mem_.read64(a + 8)};
    uint64_t q[2] = {0, 0};
    tm_->read(a.raw(), q, sizeof q, debug);
    return Words{q[0], q[1]};
}

RmpEntry Rmp::load(Pfn p, bool debug) const {
    const Words w = load_words(p, debug);
    return RmpEntry::decode(w.lo, w.hi);
}

RmpEntry Rmp::read_entry(Pfn p) const { return load(p, true); }

void Rmp::write_entry(Pfn p, const RmpEntry& e) {
    const Hpa a = entry_addr(p);
    // A head entry that is or was 2M decides for its whole region (load_auth()).
    const bool region = p.raw() == head_of(p.raw()) && (e.size_2m || RmpEntry::lo_size_2m(read_table64(a, true)));
    if (tm_) {
        const uint64_t q[2] = {e.lo(), e.hi()};
        tm_->write(a.raw(), q, sizeof q);
    } else {
        mem_.write64(a, e.lo());
        mem_.write64(a + 8, e.hi());
    }
    cache_.erase(p.raw());   // the cache is coherent with RMP writes
    if (!covered(p)) return;
    if (!region) {
        set_encrypted_bit(p.raw(), encrypted_in_table(p));
        return;
    }
    for (uint64_t q = p.raw(); q < p.raw() + kPagesPer2M && covered(Pfn(q)); ++q)
        set_encrypted_bit(q, e.size_2m ? e.assigned && e.asid != 0 : encrypted_in_table(Pfn(q)));
}

RmpEntry Rmp::load_auth(Pfn p, PgLevel* level, bool debug) const {
    const RmpEntry head = load(Pfn(head_of(p.raw())), debug);
    if (head.size_2m) {
        if (level) *level = PgLevel::k2M;
        return head;
    }
    if (level) *level = PgLevel::k4K;
    return head_of(p.raw()) == p.raw() ? head : load(p, debug);
}

RmpEntry Rmp::lookup(Pfn p, PgLevel* level) const { return load_auth(p, level, true); }

bool Rmp::encrypted_in_table(Pfn p) const {
    if (!covered(p)) return false;
    // load_auth() on the low words only: the 2M head's, then the page's own.
    uint64_t lo = read_table64(entry_addr(Pfn(head_of(p.raw()))), true);
    if (!RmpEntry::lo_size_2m(lo) && head_of(p.raw()) != p.raw()) lo = read_table64(entry_addr(p), true);
    return RmpEntry::lo_assigned(lo) && RmpEntry::lo_asid(lo) != 0;
}

uint64_t Rmp::read_table64(Hpa a, bool debug) const {
    if (!tm_) return mem_.read64(a);
    uint64_t v = 0;
    tm_->read(a.raw(), &v, sizeof v, debug);
    return v;
}

uint64_t Rmp::load_counter(uint16_t asid, bool debug) const { return read_table64(cfg_.base + 8ull * asid, debug); }

uint64_t Rmp::asid_pages(uint16_t asid) const { return load_counter(asid, true); }

void Rmp::add_asid(uint16_t asid, int64_t d) {
    if (!asid) return;
    const Hpa a = cfg_.base + 8ull * asid;
    const uint64_t v = load_counter(asid, false) + uint64_t(d);
    if (tm_) tm_->write(a.raw(), &v, sizeof v);
    else mem_.write64(a, v);
}

std::vector<uint8_t> Rmp::snapshot(uint64_t first, uint64_t n) const {
    std::vector<uint8_t> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = uint8_t(rmp_page_state(lookup(Pfn(first + i))));
    return v;
}

void Rmp::verify(uint64_t first, uint64_t n, const std::vector<uint8_t>& before, const char* op) const {
    for (uint64_t i = 0; i < n; ++i) {
        const Pfn p(first + i);
        rmp_assert_transition(RmpPageState(before[i]), rmp_page_state(lookup(p)), op);
        if (encrypted(p) != encrypted_in_table(p))
            throw std::logic_error(std::string("RMP: the encrypted-page bit of a page disagrees with its entry (") +
                                   op + ")");
    }
}

void Rmp::set_in_use(Pfn p, bool in_use) {
    if (in_use) in_use_.insert(p.raw());
    else in_use_.erase(p.raw());
}

// RMPUPDATE (APM vol. 3; rules assembled in docs/kvm-model.md "SNP"): the host writes
// one 4K or 2M entry. Order of checks: caller ASID, input, Immutable, in-use, overlap.
int Rmp::rmpupdate(Hpa spa, const RmpState& st, uint16_t cur_asid) {
    ++stats_.updates;
    if (cur_asid != 0) return RMP_FAIL_PERMISSION;
    const bool big = st.size == PgLevel::k2M;
    const uint64_t pfn = spa.raw() >> kPageShift;
    if (!is_aligned(spa.raw(), big ? level_size(PgLevel::k2M) : kPageSize)) return RMP_FAIL_INPUT;
    if (st.size != PgLevel::k4K && !big) return RMP_FAIL_INPUT;
    if (!covered(Pfn(pfn)) || (big && !covered(Pfn(pfn + kPagesPer2M - 1)))) return RMP_FAIL_INPUT;
    if (st.asid > kMaxAsid || !is_aligned(st.gpa.raw(), big ? level_size(PgLevel::k2M) : kPageSize))
        return RMP_FAIL_INPUT;
    // The host cannot create HV-Fixed or a hypervisor page tagged with an ASID.
    if (!st.assigned && (st.asid != 0 || st.immutable)) return RMP_FAIL_INPUT;

    const uint64_t h = head_of(pfn);
    RmpEntry head = load(Pfn(h), false);
    RmpEntry cur = h == pfn ? head : load(Pfn(pfn), false);
    const RmpEntry& authoritative = head.size_2m ? head : cur;
    if (authoritative.immutable) return RMP_FAIL_PERMISSION;
    if (in_use_.count(pfn)) return RMP_FAIL_INUSE;
    if (big) {
        // 2M over 4K-assigned sub-pages (the head's own 4K entry or any of the 511 others).
        if (!head.size_2m && (head.subpage_count != 0 || head.assigned)) return RMP_FAIL_OVERLAP;
    } else if (head.size_2m && head.assigned) {
        return RMP_FAIL_OVERLAP;   // a 4K change inside a 2M page: PSMASH first
    }

#ifdef HVSIM_CHECKED
    const uint64_t span = big ? kPagesPer2M : 1;
    const std::vector<uint8_t> before = snapshot(pfn, span);
#endif
    const RmpEntry old = big ? head : cur;
    RmpEntry e;
    e.assigned = st.assigned;
    e.size_2m = big && st.assigned;
    e.immutable = st.immutable;
    e.gpa = st.assigned ? st.gpa : Gpa(0);
    e.asid = st.asid;
    e.subpage_count = h == pfn ? head.subpage_count : 0;
    if (big) e.subpage_count = 0;
    const bool same = old.assigned && st.assigned && old.size_2m == e.size_2m && old.immutable == e.immutable &&
                      old.gpa == e.gpa && old.asid == e.asid;
    if (same) {
        // Rewriting identical values keeps Validated, VMSA and permissions (verismo; U).
        e.validated = old.validated;
        e.vmsa = old.vmsa;
        e.perms = old.perms;
    } else if (e.assigned) {
        e.perms = {VMPL_ALL, 0, 0, 0};   // assign: VMPL0 all, VMPL1-3 none (§15.36.7)
    }
    const uint64_t pages = big ? kPagesPer2M : 1;
    if (old.assigned) add_asid(old.asid, -int64_t(old.size_2m ? kPagesPer2M : 1));
    if (e.assigned) add_asid(e.asid, int64_t(pages));
    if (big && head.size_2m && !e.size_2m) {
        // A released 2M page becomes 512 hypervisor pages (the tails stayed unassigned).
        for (uint64_t i = 1; i < kPagesPer2M; ++i) cache_.erase(h + i);
    }
    write_entry(Pfn(pfn), e);
    if (!big && h != pfn && old.assigned != e.assigned) {
        // Microcode keeps the head's count of assigned 4K sub-pages (firmware comments; U9).
        head.subpage_count = uint16_t(head.subpage_count + (e.assigned ? 1 : -1));
        write_entry(Pfn(h), head);
    }
#ifdef HVSIM_CHECKED
    verify(pfn, span, before, "RMPUPDATE");
#endif
    return RMP_SUCCESS;
}

// PSMASH: one 2M entry becomes 512 4K entries with every field but the size copied and
// the GPA advanced (APM §15.36.11: "preserving the Validated bit").
int Rmp::psmash(Hpa spa, uint16_t cur_asid) {
    ++stats_.psmash;
    if (cur_asid != 0) return RMP_FAIL_PERMISSION;
    const uint64_t pfn = spa.raw() >> kPageShift;
    if (!is_aligned(spa.raw(), level_size(PgLevel::k2M)) || !covered(Pfn(pfn + kPagesPer2M - 1)))
        return RMP_FAIL_INPUT;
    if (in_use_.count(pfn)) return RMP_FAIL_INUSE;
    const RmpEntry head = load(Pfn(pfn), false);
    if (!head.assigned || !head.size_2m) return PSMASH_FAIL_BADPAGE;
#ifdef HVSIM_CHECKED
    const std::vector<uint8_t> before = snapshot(pfn, kPagesPer2M);
#endif
    for (uint64_t i = 0; i < kPagesPer2M; ++i) {
        RmpEntry e = head;
        e.size_2m = false;
        e.gpa = head.gpa + i * kPageSize;
        e.subpage_count = i == 0 ? uint16_t(kPagesPer2M - 1) : 0;
        write_entry(Pfn(pfn + i), e);
    }
#ifdef HVSIM_CHECKED
    verify(pfn, kPagesPer2M, before, "PSMASH");
#endif
    return RMP_SUCCESS;
}

Rmp::Words Rmp::fetch(Pfn p, RmpReader* rd, Cycles& cycles) {
    if (cache_.enabled()) {
        if (const Words* c = cache_.find(p.raw())) {
            ++stats_.cache_hits;
            cycles += cfg_.cache_hit_cycles;
            return *c;
        }
    }
    ++stats_.entry_reads;
    Words w;
    if (rd) w.lo = rd->read64_pair(entry_addr(p).raw(), cycles, w.hi);
    else w = load_words(p, false);
    cache_.insert(p.raw(), w);
    return w;
}

Rmp::Words Rmp::auth(Pfn p, PgLevel& level, RmpReader* rd, Cycles& cycles) {
    const uint64_t h = head_of(p.raw());
    Words w = fetch(Pfn(h), rd, cycles);
    const bool big = RmpEntry::lo_size_2m(w.lo);
    level = big ? PgLevel::k2M : PgLevel::k4K;
    if (!big && h != p.raw()) w = fetch(p, rd, cycles);
    return w;
}

bool Rmp::owned_by(const GuestCtx& g, uint64_t lo, Pfn p, Gpa page_gpa) const {
    using E = RmpEntry;
    if (!covered(p) || !E::lo_assigned(lo) || E::lo_asid(lo) != g.asid || E::lo_immutable(lo)) return false;
    // Reverse-Map: the entry's GPA (plus the page's offset inside a 2M entry) must be
    // the gPA the nested walk translated.
    const uint64_t off = E::lo_size_2m(lo) ? (p.raw() - head_of(p.raw())) * kPageSize : 0;
    return E::lo_gpa(lo).raw() + off == (page_gpa.raw() & ~kPageMask);
}

bool Rmp::host_write_allowed(Hpa spa, PgLevel mapping, RmpReader* rd, Cycles& cycles) {
    const Pfn p = hpa_to_pfn(spa);
    if (!covered(p)) return true;
    ++stats_.checks;
    bool ok;
    if (is_large(mapping)) {
        // Hypervisor-Owned through a 2M/1G mapping: all 512 entries unassigned.
        const Words w = fetch(Pfn(head_of(p.raw())), rd, cycles);
        const RmpEntry head = RmpEntry::decode(w.lo, w.hi);
        ok = !head.assigned && head.subpage_count == 0;
    } else {
        PgLevel l;
        ok = !RmpEntry::lo_assigned(auth(p, l, rd, cycles).lo);
    }
    if (!ok) ++stats_.faults;
    return ok;
}

// APM Table 15-39 and the priority of §15.36.10: ownership/size failures (NPF) outrank
// Validated (#VC), which outranks VMPL (NPF).
RmpResult Rmp::check_guest(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, Access a, bool enc, bool table,
                           RmpReader* rd, Cycles& cycles) {
    const Pfn p = hpa_to_pfn(spa);
    const bool write = a == Access::write || table;
    if (!g.snp_active || (!enc && !table && a != Access::fetch)) {
        // Hypervisor-Owned, checked on writes only (reads are not in Table 15-39).
        if (!write) return RmpResult{};
        if (!host_write_allowed(spa, nested_level, rd, cycles)) return npf(NPF_RMP);
        return RmpResult{};
    }
    ++stats_.checks;
    if (!covered(p)) return count_fault(npf(NPF_RMP));
    PgLevel rl;
    const Words e = auth(p, rl, rd, cycles);   // the fields the checks need, undecoded
    if (!owned_by(g, e.lo, p, gpa)) return count_fault(npf(NPF_RMP));
    // Page-Size: the nested leaf (1G counts as 2M) must equal the RMP page size.
    if (is_large(nested_level) != (rl == PgLevel::k2M)) return count_fault(npf(NPF_RMP));
    if (!RmpEntry::lo_validated(e.lo)) {
        RmpResult r;
        r.kind = RmpResult::Kind::vc;
        r.eax = int(SVM_VMGEXIT_PAGE_NOT_VALIDATED);
        return count_fault(r);
    }
    const uint8_t m = RmpEntry::hi_perms(e.hi, g.vmpl);
    uint8_t need = a == Access::fetch ? VMPL_XS : VMPL_R;   // the guest runs at CPL 0
    if (write) need |= VMPL_R | VMPL_W;                      // W without R is illegal
    if ((m & need) != need) return count_fault(npf(NPF_RMP | NPF_VMPL));
    return RmpResult{};
}

// PVALIDATE (APM vol. 3; Linux asm/sev.h): VMPL0 only; sets or clears Validated of the
// entry the gVA maps to, at the requested size.
RmpResult Rmp::pvalidate(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, PgLevel size, bool validate) {
    ++stats_.pvalidate;
    if (g.vmpl != 0) return status(RMP_FAIL_PERMISSION);
    const bool big = size == PgLevel::k2M;
    if (size != PgLevel::k4K && !big) return status(RMP_FAIL_INPUT);
    if (!is_aligned(gpa.raw(), level_size(size))) return status(RMP_FAIL_INPUT);
    const Pfn p = hpa_to_pfn(spa);
    PgLevel rl;
    const RmpEntry e = load_auth(p, &rl, false);
    if (!owned_by(g, e, p, gpa)) return count_fault(npf(NPF_RMP));
    const bool rmp2m = rl == PgLevel::k2M;
    if (!big && rmp2m) return count_fault(npf(NPF_RMP | NPF_SIZEM));   // hypervisor PSMASHes
    if (big && !rmp2m) return status(RMP_FAIL_SIZEMISMATCH);            // guest redoes 512 x 4K
    // The nested leaf must not be larger than the RMP entry (Page-Size check).
    if (is_large(nested_level) && !rmp2m) return count_fault(npf(NPF_RMP));
    if (e.validated == validate) {
        RmpResult r;
        r.cf = true;
        return r;
    }
    RmpEntry n = e;
    n.validated = validate;
    const uint64_t first = rmp2m ? head_of(p.raw()) : p.raw();
#ifdef HVSIM_CHECKED
    const std::vector<uint8_t> before = snapshot(first, rmp2m ? kPagesPer2M : 1);
#endif
    write_entry(Pfn(first), n);
#ifdef HVSIM_CHECKED
    verify(first, rmp2m ? kPagesPer2M : 1, before, "PVALIDATE");
#endif
    return RmpResult{};
}

// RMPADJUST: a VMPL grants a numerically higher VMPL a subset of its own permissions;
// VMPL0 may also set or clear the VMSA bit.
RmpResult Rmp::rmpadjust(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel nested_level, PgLevel size,
                         uint8_t target_vmpl, uint8_t mask, bool vmsa) {
    ++stats_.rmpadjust;
    // Malformed operands first (no VMPL 4, reserved mask bits 7:5, a size that is neither
    // 4K nor 2M, a misaligned address): FAIL_INPUT; then J1: only a higher VMPL.
    if (target_vmpl > 3 || (size != PgLevel::k4K && size != PgLevel::k2M) || (mask & ~VMPL_ALL) ||
        !is_aligned(gpa.raw(), level_size(size)))
        return status(RMP_FAIL_INPUT);
    if (target_vmpl <= g.vmpl) return status(RMP_FAIL_PERMISSION);
    const Pfn p = hpa_to_pfn(spa);
    PgLevel rl;
    const RmpEntry e = load_auth(p, &rl, false);
    if (!owned_by(g, e, p, gpa)) return count_fault(npf(NPF_RMP));
    if (!e.validated) {
        RmpResult r;
        r.kind = RmpResult::Kind::vc;
        r.eax = int(SVM_VMGEXIT_PAGE_NOT_VALIDATED);
        return count_fault(r);
    }
    const bool rmp2m = rl == PgLevel::k2M;
    if (size == PgLevel::k4K && rmp2m) return count_fault(npf(NPF_RMP | NPF_SIZEM));
    if (size == PgLevel::k2M && !rmp2m) return status(RMP_FAIL_SIZEMISMATCH);
    if (is_large(nested_level) && !rmp2m) return count_fault(npf(NPF_RMP));
    if (mask & ~e.perms[g.vmpl]) return status(RMP_FAIL_PERMISSION);
    RmpEntry n = e;
    n.perms[target_vmpl] = mask;
    if (g.vmpl == 0) n.vmsa = vmsa;   // ignored from other VMPLs
    write_entry(rmp2m ? Pfn(head_of(p.raw())) : p, n);
    return RmpResult{};
}

RmpResult Rmp::rmpquery(const GuestCtx& g, Gpa gpa, Hpa spa, PgLevel, uint8_t target_vmpl) {
    ++stats_.rmpquery;
    if (target_vmpl > 3) return status(RMP_FAIL_INPUT);
    const Pfn p = hpa_to_pfn(spa);
    PgLevel rl;
    const RmpEntry e = load_auth(p, &rl, false);
    if (!owned_by(g, e, p, gpa)) return count_fault(npf(NPF_RMP));
    RmpResult r;
    r.perms = e.perms[target_vmpl];
    r.vmsa = e.vmsa;
    r.size_2m = rl == PgLevel::k2M;
    return r;
}

}  // namespace hvsim::rmp

namespace hvsim::rmp {

void Rmp::firmware_write_entry(Pfn p, const RmpEntry& e, const char* op) {
    if (!covered(p)) throw std::invalid_argument("rmp: firmware write outside the RMP");
    const std::vector<uint8_t> before = snapshot(p.raw(), 1);
    write_entry(p, e);
    verify(p.raw(), 1, before, op);
}

}  // namespace hvsim::rmp
