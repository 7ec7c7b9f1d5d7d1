#include "models/tdx/tdx_module.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "models/tdx/sept_state_graph.hpp"

namespace hvsim::tdx {

const char* leaf_name(Leaf l) {
    switch (l) {
    case Leaf::vp_enter: return "TDH.VP.ENTER";
    case Leaf::mem_page_add: return "TDH.MEM.PAGE.ADD";
    case Leaf::mem_sept_add: return "TDH.MEM.SEPT.ADD";
    case Leaf::mem_page_aug: return "TDH.MEM.PAGE.AUG";
    case Leaf::mem_range_block: return "TDH.MEM.RANGE.BLOCK";
    case Leaf::mem_page_demote: return "TDH.MEM.PAGE.DEMOTE";
    case Leaf::mr_extend: return "TDH.MR.EXTEND";
    case Leaf::mr_finalize: return "TDH.MR.FINALIZE";
    case Leaf::vp_flush: return "TDH.VP.FLUSH";
    case Leaf::mng_vpflushdone: return "TDH.MNG.VPFLUSHDONE";
    case Leaf::mng_key_freeid: return "TDH.MNG.KEY.FREEID";
    case Leaf::phymem_cache_wb: return "TDH.PHYMEM.CACHE.WB";
    case Leaf::mem_page_promote: return "TDH.MEM.PAGE.PROMOTE";
    case Leaf::phymem_page_reclaim: return "TDH.PHYMEM.PAGE.RECLAIM";
    case Leaf::mem_page_remove: return "TDH.MEM.PAGE.REMOVE";
    case Leaf::mem_sept_remove: return "TDH.MEM.SEPT.REMOVE";
    case Leaf::mem_track: return "TDH.MEM.TRACK";
    case Leaf::mem_range_unblock: return "TDH.MEM.RANGE.UNBLOCK";
    case Leaf::phymem_page_wbinvd: return "TDH.PHYMEM.PAGE.WBINVD";
    }
    return "?";
}

const char* sept_state_name(SeptState s) {
    switch (s) {
    case SeptState::free: return "FREE";
    case SeptState::removed: return "REMOVED";
    case SeptState::nl_mapped: return "NL_MAPPED";
    case SeptState::nl_blocked: return "NL_BLOCKED";
    case SeptState::mapped: return "MAPPED";
    case SeptState::blocked: return "BLOCKED";
    case SeptState::pending: return "PENDING";
    case SeptState::pending_blocked: return "PENDING_BLOCKED";
    }
    return "?";
}

namespace {

// State encodings (sept_state_lookup.h) and where each encoding bit lives in the entry
// (SEPT_STATE_ENC_TO_MASK): bit 0 D, 1 TDEX, 2 TDBW, 3 TDB, 4 TDP, 5 IPAT, 6 PS.
constexpr uint8_t kEnc[] = {0x0e, 0x0c, 0x00, 0x08, 0x60, 0x68, 0x70, 0x78};
constexpr uint8_t kPublic[] = {0, 5, 0x84, 0x81, 4, 1, 2, 3};
constexpr uint64_t kEncBits[] = {septe::D, septe::TDEX, septe::TDBW, septe::TDB, septe::TDP, septe::IPAT, septe::PS};

constexpr uint64_t level_bytes(unsigned level) { return 1ull << (kPageShift + 9 * level); }

SeptState unblocked(SeptState s) {
    switch (s) {
    case SeptState::nl_blocked: return SeptState::nl_mapped;
    case SeptState::blocked: return SeptState::mapped;
    case SeptState::pending_blocked: return SeptState::pending;
    default: return s;
    }
}
bool is_blocked(SeptState s) {
    return s == SeptState::nl_blocked || s == SeptState::blocked || s == SeptState::pending_blocked;
}

SeamRet ret(uint64_t rax) { return SeamRet{rax, 0, 0, 0}; }

}  // namespace

uint8_t sept_public_state(SeptState s) { return kPublic[unsigned(s)]; }
bool sept_is_leaf(SeptState s) { return s >= SeptState::mapped; }

namespace septe {
uint64_t make(SeptState s, uint64_t hpa) {
    uint64_t e = SVE;
    const uint8_t enc = kEnc[unsigned(s)];
    for (unsigned b = 0; b < 7; ++b)
        if (enc & (1u << b)) e |= kEncBits[b];
    if (s != SeptState::free && s != SeptState::removed) e |= hpa & ADDR;
    if (s == SeptState::nl_mapped) e |= RWX;
    if (s == SeptState::mapped) e |= RWX | MT_WB;
    if (s == SeptState::pending || s == SeptState::blocked || s == SeptState::pending_blocked) e |= MT_WB;
    return e;
}
SeptState state(uint64_t e) {
    uint8_t enc = 0;
    for (unsigned b = 0; b < 7; ++b)
        if (e & kEncBits[b]) enc |= uint8_t(1u << b);
    for (unsigned i = 0; i < 8; ++i)
        if (kEnc[i] == enc) return SeptState(i);
    throw std::logic_error("tdx: S-EPT entry with a state this model does not know (migration state?)");
}
uint64_t arch_view(uint64_t e) {
    return state(e) == SeptState::free ? SVE : (e & ~(TDEL | TDHP));
}
}  // namespace septe

namespace pamt {
void encode(const PamtEntry& e, uint8_t out[kEntryBytes]) {
    const uint64_t w0 = uint64_t(e.pt) << 16 | ((e.owner >> 12) & ((1ull << 40) - 1)) << 24;
    for (unsigned i = 0; i < 8; ++i) {
        out[i] = uint8_t(w0 >> (8 * i));
        out[8 + i] = uint8_t(e.bepoch >> (8 * i));
    }
}
PamtEntry decode(const uint8_t in[kEntryBytes]) {
    uint64_t w0 = 0, w1 = 0;
    for (unsigned i = 0; i < 8; ++i) {
        w0 |= uint64_t(in[i]) << (8 * i);
        w1 |= uint64_t(in[8 + i]) << (8 * i);
    }
    return PamtEntry{PageType(uint8_t(w0 >> 16)), (w0 >> 24) << 12, w1};
}
}  // namespace pamt

TdxModule::TdxModule(PhysMem& mem) : mem_{mem} {}

void TdxModule::write_entry(const Walk& w, uint64_t v) {
    const SeptState from = septe::state(w.entry), to = septe::state(v);
    if (!sept_check_transition(from, to))
        throw std::logic_error(std::string("tdx: S-EPT transition ") + sept_state_name(from) + " -> " +
                               sept_state_name(to) + " is not an edge of the S-EPT page-state graph");
    mem_.write64(Hpa(w.entry_hpa), v);
}

TdxModule::Td* TdxModule::td(Hpa tdr) {
    auto it = tds_.find(tdr.raw());
    return it == tds_.end() ? nullptr : &it->second;
}
const TdxModule::Td* TdxModule::td(Hpa tdr) const {
    auto it = tds_.find(tdr.raw());
    return it == tds_.end() ? nullptr : &it->second;
}

void TdxModule::fill_free_table(uint64_t table_pa) {
    const uint64_t f = septe::make(SeptState::free, 0);
    for (unsigned i = 0; i < 512; ++i) mem_.write64(Hpa(table_pa + 8ull * i), f);
}

void TdxModule::create_td(Hpa tdr, Hpa sept_root, unsigned levels, bool pending_ve_disable) {
    if (levels != 4 && levels != 5) throw std::invalid_argument("tdx: S-EPT levels must be 4 or 5");
    if (const Td* old = td(tdr); old && !old->reclaimed) throw std::invalid_argument("tdx: TDR already in use");
    tds_.erase(tdr.raw());
    Td t;
    t.tdr = tdr.raw();
    t.root = sept_root.raw();
    t.levels = levels;
    t.pending_ve_disable = pending_ve_disable;
    fill_free_table(t.root);
    set_pamt(t.tdr, 0, PamtEntry{PageType::tdr, 0, 0});
    set_pamt(t.root, 0, PamtEntry{PageType::tdcx, t.tdr, 0});
    t.chldcnt = 1;   // TDH.MNG.ADDCX: the TDCS page holding the S-EPT root is a child of the TDR
    tds_.emplace(t.tdr, std::move(t));
}

unsigned TdxModule::vp_create(Hpa tdr, std::optional<Hpa> tdvpr) {
    Td* t = td(tdr);
    if (!t) throw std::invalid_argument("tdx: vp_create on an unknown TDR");
    t->vcpus.emplace_back();
    if (tdvpr) {
        // TDH.VP.CREATE: the TDVPR page becomes PT_TDVPR, a child of the TDR.
        if (!page_nda_4k(tdvpr->raw())) throw std::invalid_argument("tdx: TDVPR page already assigned");
        set_pamt(tdvpr->raw(), 0, PamtEntry{PageType::tdvpr, t->tdr, 0});
        t->vcpus.back().tdvpr = tdvpr->raw();
        ++t->chldcnt;
    }
    return unsigned(t->vcpus.size() - 1);
}

SeamRet TdxModule::done(SeamRet r) {
    if (is_operand_busy(r.rax)) ++stats_.busy;
    return r;
}

void TdxModule::mrtd_block(Td& t, const char* tag, uint64_t gpa) {
    uint8_t b[128] = {};
    for (unsigned i = 0; tag[i] && i < 16; ++i) b[i] = uint8_t(tag[i]);
    for (unsigned i = 0; i < 8; ++i) b[16 + i] = uint8_t(gpa >> (8 * i));
    t.mrtd.update(b, sizeof b);
}

// ---------------------------------------------------------------------------------------
// Common checks

bool TdxModule::timed_busy(Td::TimedLock& l, bool exclusive) {
    if (!cur_.on) return false;
    if (l.excl_until > cur_.now || (exclusive && l.shared_until > cur_.now)) return true;
    Cycles& until = exclusive ? l.excl_until : l.shared_until;
    until = std::max(until, cur_.now + cur_.hold);
    return false;
}

std::optional<SeamRet> TdxModule::prologue(Hpa tdr, Leaf leaf, bool tdr_exclusive, uint64_t busy_operand) {
    ++stats_.seamcalls;
    cur_ = take_timing();
    if (auto e = tdr_operand(tdr, tdr_exclusive, busy_operand)) return e;
    Td* t = td(tdr);
    if (t->fatal) return ret(status::TD_FATAL);
    if (t->life != Lifecycle::keys_configured) return ret(status::TD_KEYS_NOT_CONFIGURED);
    // seamcall_state_lookup (op_state_lookup.c): build-time leaves need INITIALIZED, the
    // memory-management leaves INITIALIZED or RUNNABLE.
    const bool build_only = leaf == Leaf::mem_page_add || leaf == Leaf::mr_extend || leaf == Leaf::mr_finalize;
    const bool ok = build_only ? t->op == OpState::initialized : t->op != OpState::uninitialized;
    if (!ok) return ret(status::OP_STATE_INCORRECT);
    return std::nullopt;
}

std::optional<SeamRet> TdxModule::tdr_operand(Hpa tdr, bool exclusive, uint64_t operand) {
    // check_lock_and_map_explicit_tdr(): the TDR operand's PAMT walk must end at a PT_TDR
    // entry (an unassigned page is an invalid operand, any other type wrong metadata).
    const PamtEntry tdr_pamt = pamt_walk(tdr.raw() & ~kPageMask);
    Td* t = td(tdr);
    if (!t || tdr_pamt.pt != PageType::tdr)
        return ret((tdr_pamt.pt == PageType::nda ? status::OPERAND_INVALID : status::PAGE_METADATA_INCORRECT) |
                   operand);
    if (t->tdr_excl || (exclusive && t->tdr_shared) || timed_busy(t->tdr_t, exclusive))
        return ret(status::OPERAND_BUSY | operand);
    return std::nullopt;
}

// verify_page_info_input() + check_gpa_validity(): level in range, reserved bits clear,
// GPA aligned to the level, shared bit clear, nothing at or above GPAW.
std::optional<SeamRet> TdxModule::check_gpa(const Td& t, uint64_t gpa_lvl, unsigned min_level,
                                            unsigned max_level) const {
    const unsigned level = unsigned(gpa_lvl & 7);
    const uint64_t gpa = gpa_lvl & ~0xfffull;
    const unsigned gpaw = t.levels == 5 ? 52 : 48;
    const bool bad = level < min_level || level > max_level || (gpa_lvl & 0xff8) || (gpa_lvl >> 52) ||
                     (gpa & (level_bytes(level) - 1)) || (gpa >> (gpaw - 1));
    if (bad) return ret(status::OPERAND_INVALID | operand::RCX);
    return std::nullopt;
}

std::optional<SeamRet> TdxModule::sept_lock(Td& t, bool exclusive) {
    if (t.sept_excl || (exclusive && t.sept_shared) || timed_busy(t.sept_t, exclusive))
        return ret(status::OPERAND_BUSY | operand::SEPT_TREE);
    return std::nullopt;
}

std::optional<SeamRet> TdxModule::host_entry_lock(Td& t, const Walk& w, uint64_t) {
    const bool guest_holds = t.guest_locked.count(w.entry_hpa) ||
                             (cur_.on && timed_busy_entry(t.guest_entry_until, w.entry_hpa, cur_.now));
    if (guest_holds) {
        // The host asks for priority: the guest's next attempt backs off (A6).
        mem_.write64(Hpa(w.entry_hpa), w.entry | septe::TDHP);
        return ret(status::OPERAND_BUSY | operand::RCX);
    }
    if (cur_.on) {
        // Another host leaf inside on the same entry (sept_lock_acquire_host()).
        if (timed_busy_entry(t.host_entry_until, w.entry_hpa, cur_.now)) return ret(status::OPERAND_BUSY | operand::RCX);
        t.host_entry_until[w.entry_hpa] = cur_.now + cur_.hold;
    }
    return std::nullopt;
}

TdxModule::Walk TdxModule::walk(const Td& t, uint64_t gpa, unsigned level, bool through_blocked) const {
    uint64_t table = t.root;
    for (unsigned l = t.levels - 1;; --l) {
        const uint64_t ea = table + 8 * ((gpa >> (kPageShift + 9 * l)) & 511);
        Walk w;
        w.level = l;
        w.entry_hpa = ea;
        w.entry = mem_.read64(Hpa(ea));
        if (l == level) {
            w.ok = true;
            return w;
        }
        const SeptState s = septe::state(w.entry);
        if (s == SeptState::nl_mapped || (through_blocked && s == SeptState::nl_blocked)) {
            table = w.entry & septe::ADDR;
            continue;
        }
        return w;
    }
}

SeamRet TdxModule::walk_error(const Walk& w) const {
    return SeamRet{status::EPT_WALK_FAILED | operand::RCX, septe::arch_view(w.entry),
                   w.level | (uint64_t(sept_public_state(septe::state(w.entry))) << 8), 0};
}
SeamRet TdxModule::state_error(const Walk& w) const {
    return SeamRet{status::EPT_ENTRY_STATE_INCORRECT | operand::RCX, septe::arch_view(w.entry),
                   w.level | (uint64_t(sept_public_state(septe::state(w.entry))) << 8), 0};
}

// is_tlb_tracked() (helpers.h): blocked before the previous epoch, or in it with no vCPU
// of that epoch still inside the TD.
bool TdxModule::is_tlb_tracked(const Td& t, uint64_t b) const {
    if (b + 1 < t.epoch) return true;
    if (b + 1 == t.epoch) return t.refcount[b & 1] == 0;
    return false;
}

std::optional<SeamRet> TdxModule::require_blocked_tracked(const Td& t, const Walk& w, uint64_t page_pa,
                                                          uint64_t tracking_operand) const {
    if (t.op != OpState::runnable) return std::nullopt;   // TLB tracking only in RUNNABLE
    if (!is_blocked(septe::state(w.entry))) return ret(status::GPA_RANGE_NOT_BLOCKED | operand::RCX);
    if (!is_tlb_tracked(t, pamt_walk(page_pa).bepoch)) return ret(status::TLB_TRACKING_NOT_DONE | tracking_operand);
    return std::nullopt;
}

bool TdxModule::page_nda_4k(uint64_t pa) const {
    const PamtEntry e = pamt_walk(pa);
    return e.pt == PageType::nda;
}

// A 2M range: the walk down to its 2M entry, then each of its 512 4K entries (the 2M
// AUG's scan, tdh_mem_page_aug.c).
bool TdxModule::range_nda(uint64_t pa, uint64_t pages) const {
    if (pages == 1) return page_nda_4k(pa);
    if (pamt_entry(pa, 2).pt != PageType::nda || pamt_entry(pa, 1).pt != PageType::nda) return false;
    for (uint64_t i = 0; i < pages; ++i)
        if (pamt_entry(pa + i * kPageSize, 0).pt != PageType::nda) return false;
    return true;
}

PamtEntry TdxModule::pamt_entry(uint64_t pa, unsigned level) const {
    if (pa >= pamt::kCovered) return PamtEntry{};   // outside the TDMR: never assigned
    uint8_t b[pamt::kEntryBytes];
    mem_.read(Hpa(pamt::entry_hpa(pa, level)), b, sizeof b);
    return pamt::decode(b);
}

PamtEntry TdxModule::pamt_walk(uint64_t pa) const {
    for (unsigned level = 2; level > 0; --level) {
        const PamtEntry e = pamt_entry(pa, level);
        if (e.pt == PageType::reg) return e;
    }
    return pamt_entry(pa, 0);
}

void TdxModule::set_pamt(uint64_t pa, unsigned level, PamtEntry e) {
    if (pa >= pamt::kCovered) throw std::invalid_argument("tdx: page outside the TDMR the PAMT covers");
    uint8_t b[pamt::kEntryBytes];
    pamt::encode(e, b);
    mem_.write(Hpa(pamt::entry_hpa(pa, level)), b, sizeof b);
}
void TdxModule::clear_pamt(uint64_t pa, unsigned level) { set_pamt(pa, level, PamtEntry{}); }
// RANGE.BLOCK writes the BEPOCH field only (bytes 8-15 of the entry).
void TdxModule::set_bepoch(uint64_t pa, unsigned level, uint64_t bepoch) {
    if (pa >= pamt::kCovered) throw std::invalid_argument("tdx: page outside the TDMR the PAMT covers");
    mem_.write64(Hpa(pamt::entry_hpa(pa, level) + 8), bepoch);
}

PamtEntry TdxModule::pamt(Hpa page) const {
    const DebugView dbg(mem_);
    return pamt_walk(page.raw() & ~kPageMask);
}

// ---------------------------------------------------------------------------------------
// Leaves (tdh_mem_*.c)

SeamRet TdxModule::tdh_mem_sept_add(uint64_t gpa_lvl, Hpa tdr, Hpa page, bool allow_existing) {
    if (auto e = prologue(tdr, Leaf::mem_sept_add, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 1, t.levels - 1)) return done(*e);
    if (auto e = sept_lock(t, false)) return done(*e);
    const unsigned level = unsigned(gpa_lvl & 7);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, level, false);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (s == SeptState::nl_mapped && allow_existing) return done(ret(status::SUCCESS));
    if (s != SeptState::free) return done(state_error(w));
    if (page.raw() & kPageMask) return done(ret(status::OPERAND_INVALID | operand::R8));
    if (!page_nda_4k(page.raw())) return done(ret(status::PAGE_METADATA_INCORRECT | operand::R8));
    fill_free_table(page.raw());
    set_pamt(page.raw(), 0, PamtEntry{PageType::ept, t.tdr, 0});
    write_entry(w, septe::make(SeptState::nl_mapped, page.raw()));
    ++t.chldcnt;
    ++stats_.sept_add;
    ++stats_.sept_pages;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_page_add(uint64_t gpa_lvl, Hpa tdr, Hpa target, Hpa source) {
    if (auto e = prologue(tdr, Leaf::mem_page_add, true, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 0, 0)) return done(*e);
    const uint64_t gpa = gpa_lvl & ~0xfffull;
    const Walk w = walk(t, gpa, 0, false);
    if (!w.ok) return done(walk_error(w));
    if (septe::state(w.entry) != SeptState::free) return done(state_error(w));
    if (source.raw() & kPageMask) return done(ret(status::OPERAND_INVALID | operand::R9));
    if ((target.raw() & kPageMask) || !page_nda_4k(target.raw()))
        return done(ret(status::PAGE_METADATA_INCORRECT | operand::R8));
    uint8_t buf[kPageSize];
    mem_.read(source, buf, kPageSize);
    mem_.write(target, buf, kPageSize);
    set_pamt(target.raw(), 0, PamtEntry{PageType::reg, t.tdr, 0});
    write_entry(w, septe::make(SeptState::mapped, target.raw()));
    ++t.chldcnt;
    // MRTD: the string "MEM.PAGE.ADD" and the GPA; contents are measured by MR.EXTEND.
    mrtd_block(t, "MEM.PAGE.ADD", gpa);
    ++stats_.page_add;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mr_extend(uint64_t gpa, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mr_extend, true, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if ((gpa & 0xff) || (gpa >> ((t.levels == 5 ? 52 : 48) - 1))) return done(ret(status::OPERAND_INVALID | operand::RCX));
    Walk w = walk(t, gpa, 0, false);
    const SeptState s = septe::state(w.entry);
    if (!septe::present(w.entry) || !sept_is_leaf(s)) return done(ret(status::EPT_ENTRY_NOT_PRESENT | operand::RCX));
    if (s != SeptState::mapped) return done(ret(status::EPT_ENTRY_NOT_PRESENT));
    const uint64_t hpa = (w.entry & septe::ADDR & ~(level_bytes(w.level) - 1)) | (gpa & (level_bytes(w.level) - 1));
    // One header block, then the 256 bytes as two more 128-byte blocks.
    mrtd_block(t, "MR.EXTEND", gpa);
    uint8_t data[256];
    mem_.read(Hpa(hpa), data, sizeof data);
    t.mrtd.update(data, sizeof data);
    ++stats_.mr_extend;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mr_finalize(Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mr_finalize, true, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (t.vcpus.empty()) return done(ret(status::NO_VCPUS));
    t.mrtd_final = t.mrtd.peek();
    t.op = OpState::runnable;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_page_aug(uint64_t gpa_lvl, Hpa tdr, Hpa page) {
    if (auto e = prologue(tdr, Leaf::mem_page_aug, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 0, 1)) return done(*e);
    if (auto e = sept_lock(t, false)) return done(*e);
    const unsigned level = unsigned(gpa_lvl & 7);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, level, false);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (s != SeptState::free && s != SeptState::removed) return done(state_error(w));
    const uint64_t pages = level ? 512 : 1;
    if (page.raw() & (level_bytes(level) - 1)) return done(ret(status::OPERAND_INVALID | operand::R8));
    if (!range_nda(page.raw(), pages)) return done(ret(status::PAGE_METADATA_INCORRECT | operand::R8));
    set_pamt(page.raw(), level, PamtEntry{PageType::reg, t.tdr, 0});
    // PENDING: RWX = 0 until the guest accepts; the page is not zeroed here (ACCEPT does).
    write_entry(w, septe::make(SeptState::pending, page.raw()));
    t.chldcnt += pages;
    ++stats_.aug;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_range_block(uint64_t gpa_lvl, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_range_block, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 0, t.levels - 1)) return done(*e);
    if (auto e = sept_lock(t, true)) return done(*e);
    const unsigned level = unsigned(gpa_lvl & 7);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, level, false);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (is_blocked(s)) return done(ret(status::GPA_RANGE_ALREADY_BLOCKED | operand::RCX));
    SeptState to;
    switch (s) {
    case SeptState::nl_mapped: to = SeptState::nl_blocked; break;
    case SeptState::mapped: to = SeptState::blocked; break;
    case SeptState::pending: to = SeptState::pending_blocked; break;
    default: return done(state_error(w));
    }
    const uint64_t pa = w.entry & septe::ADDR;
    // BEPOCH of the page at its mapping size, or of the child S-EPT page.
    set_bepoch(pa, s == SeptState::nl_mapped ? 0 : level, t.epoch);
    write_entry(w, septe::make(to, pa));
    ++stats_.block;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_range_unblock(uint64_t gpa_lvl, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_range_unblock, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 0, t.levels - 1)) return done(*e);
    if (auto e = sept_lock(t, true)) return done(*e);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, unsigned(gpa_lvl & 7), false);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (!is_blocked(s)) return done(state_error(w));
    const uint64_t pa = w.entry & septe::ADDR;
    if (auto e = require_blocked_tracked(t, w, pa, operand::SEPT_TREE)) return done(*e);
    write_entry(w, septe::make(unblocked(s), pa));
    ++stats_.unblock;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_track(Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_track, false, operand::RCX)) return done(*e);
    Td& t = *td(tdr);
    if (t.epoch_excl || timed_busy(t.epoch_t, true)) return done(ret(status::OPERAND_BUSY | operand::TD_EPOCH));
    // tdh_mem_track.c: a vCPU still inside from the previous epoch blocks the increment.
    if (t.refcount[(t.epoch - 1) & 1]) return done(ret(status::PREVIOUS_TLB_EPOCH_BUSY));
    ++t.epoch;
    ++stats_.track;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_page_remove(uint64_t gpa_lvl, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_page_remove, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 0, 1)) return done(*e);
    if (auto e = sept_lock(t, false)) return done(*e);
    const unsigned level = unsigned(gpa_lvl & 7);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, level, true);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (!sept_is_leaf(s)) return done(state_error(w));
    const uint64_t pa = w.entry & septe::ADDR;
    if (auto e = require_blocked_tracked(t, w, pa, operand::RCX)) return done(*e);
    write_entry(w, septe::make(SeptState::free, 0));
    clear_pamt(pa, level);
    t.chldcnt -= level ? 512 : 1;
    ++stats_.remove;
    // The removed page's HPA comes back in RCX; the module neither flushes nor clears it.
    return done(SeamRet{status::SUCCESS, pa, 0, 0});
}

SeamRet TdxModule::tdh_mem_sept_remove(uint64_t gpa_lvl, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_sept_remove, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 1, t.levels - 1)) return done(*e);
    if (auto e = sept_lock(t, true)) return done(*e);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, unsigned(gpa_lvl & 7), true);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (s != SeptState::nl_mapped && s != SeptState::nl_blocked) return done(state_error(w));
    const uint64_t table = w.entry & septe::ADDR;
    if (auto e = require_blocked_tracked(t, w, table, operand::RCX)) return done(*e);
    for (unsigned i = 0; i < 512; ++i)
        if (septe::state(mem_.read64(Hpa(table + 8ull * i))) != SeptState::free)
            return done(ret(status::EPT_PAGE_NOT_FREE | operand::RCX));
    write_entry(w, septe::make(SeptState::free, 0));
    clear_pamt(table, 0);
    --t.chldcnt;
    ++stats_.sept_remove;
    --stats_.sept_pages;
    return done(SeamRet{status::SUCCESS, table, 0, 0});
}

SeamRet TdxModule::tdh_mem_page_demote(uint64_t gpa_lvl, Hpa tdr, Hpa new_table) {
    if (auto e = prologue(tdr, Leaf::mem_page_demote, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 1, 1)) return done(*e);   // 2M -> 4K (1G pages not modelled)
    if (auto e = sept_lock(t, false)) return done(*e);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, 1, true);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (!sept_is_leaf(s)) return done(state_error(w));
    const uint64_t pa = w.entry & septe::ADDR;
    if (auto e = require_blocked_tracked(t, w, pa, operand::RCX)) return done(*e);
    if ((new_table.raw() & kPageMask) || !page_nda_4k(new_table.raw()))
        return done(ret(status::PAGE_METADATA_INCORRECT | operand::R8));
    // 512 entries for consecutive 4K pages in the unblocked form of the old state.
    const SeptState child = unblocked(s);
    for (unsigned i = 0; i < 512; ++i)
        mem_.write64(Hpa(new_table.raw() + 8ull * i), septe::make(child, pa + uint64_t(i) * kPageSize));
    const PamtEntry big = pamt_entry(pa, 1);
    clear_pamt(pa, 1);
    for (unsigned i = 0; i < 512; ++i) set_pamt(pa + uint64_t(i) * kPageSize, 0, PamtEntry{PageType::reg, big.owner, 0});
    set_pamt(new_table.raw(), 0, PamtEntry{PageType::ept, t.tdr, 0});
    write_entry(w, septe::make(SeptState::nl_mapped, new_table.raw()));
    ++t.chldcnt;
    ++stats_.demote;
    ++stats_.sept_pages;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mem_page_promote(uint64_t gpa_lvl, Hpa tdr) {
    if (auto e = prologue(tdr, Leaf::mem_page_promote, false, operand::RDX)) return done(*e);
    Td& t = *td(tdr);
    if (auto e = check_gpa(t, gpa_lvl, 1, 1)) return done(*e);
    if (auto e = sept_lock(t, false)) return done(*e);
    const Walk w = walk(t, gpa_lvl & ~0xfffull, 1, true);
    if (!w.ok) return done(walk_error(w));
    if (auto e = host_entry_lock(t, w, gpa_lvl)) return done(*e);
    const SeptState s = septe::state(w.entry);
    if (s != SeptState::nl_mapped && s != SeptState::nl_blocked) return done(state_error(w));
    const uint64_t table = w.entry & septe::ADDR;
    if (auto e = require_blocked_tracked(t, w, table, operand::RCX)) return done(*e);
    // All 512 children MAPPED or all PENDING, physically contiguous from a 2M-aligned page.
    const uint64_t first = mem_.read64(Hpa(table));
    const SeptState cs = septe::state(first);
    const uint64_t base = first & septe::ADDR;
    bool ok = (cs == SeptState::mapped || cs == SeptState::pending) && !(base & (level_bytes(1) - 1));
    for (unsigned i = 0; ok && i < 512; ++i) {
        const uint64_t e = mem_.read64(Hpa(table + 8ull * i));
        ok = septe::state(e) == cs && (e & septe::ADDR) == base + uint64_t(i) * kPageSize;
    }
    if (!ok) return done(ret(status::EPT_INVALID_PROMOTE_CONDITIONS | operand::RCX));
    for (unsigned i = 0; i < 512; ++i) clear_pamt(base + uint64_t(i) * kPageSize, 0);
    set_pamt(base, 1, PamtEntry{PageType::reg, t.tdr, 0});
    clear_pamt(table, 0);
    write_entry(w, septe::make(cs, base));
    --t.chldcnt;
    ++stats_.promote;
    --stats_.sept_pages;
    return done(SeamRet{status::SUCCESS, table, 0, 0});
}

SeamRet TdxModule::tdh_phymem_page_wbinvd(Hpa page) {
    ++stats_.seamcalls;
    if (page.raw() & kPageMask) return done(ret(status::OPERAND_INVALID | operand::RCX));
    // Only a page already given back (PT_NDA) is written back and invalidated.
    if (!page_nda_4k(page.raw())) return done(ret(status::PAGE_METADATA_INCORRECT | operand::RCX));
    ++stats_.wbinvd;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_vp_enter(Hpa tdr, unsigned vcpu) {
    ++stats_.seamcalls;
    ++stats_.vp_enter_calls;
    cur_ = take_timing();
    Td* t = td(tdr);
    if (!t || vcpu >= t->vcpus.size()) return done(ret(status::OPERAND_INVALID | operand::RCX));
    if (t->life != Lifecycle::keys_configured) return done(ret(status::TD_KEYS_NOT_CONFIGURED));
    if (t->op != OpState::runnable) return done(ret(status::OP_STATE_INCORRECT));
    if (t->tdr_excl || (cur_.on && t->tdr_t.excl_until > cur_.now)) return done(ret(status::OPERAND_BUSY | operand::RDX));
    // The epoch lock is taken shared only to sample TD_EPOCH.
    if (t->epoch_excl || timed_busy(t->epoch_t, false)) return done(ret(status::OPERAND_BUSY | operand::TD_EPOCH));
    Vcpu& v = t->vcpus[vcpu];
    if (v.inside) throw std::logic_error("tdx: TDH.VP.ENTER of a vCPU already inside the TD");
    const uint64_t e = t->epoch;
    ++t->refcount[e & 1];
    // A vCPU re-entering on an LP it was associated with flushes its TLB when the epoch moved.
    if (v.associated && v.epoch != e) ++stats_.epoch_flushes;
    v.associated = true;
    v.epoch = e;
    v.inside = true;
    ++t->tdr_shared;   // VP.ENTER holds the TDR shared while the vCPU runs in the TD
    ++stats_.vp_enters;
    return done(ret(status::SUCCESS));
}

// ---------------------------------------------------------------------------------------
// Teardown

SeamRet TdxModule::tdh_vp_flush(Hpa tdvpr) {
    ++stats_.seamcalls;
    cur_ = take_timing();
    if (tdvpr.raw() & kPageMask) return done(ret(status::OPERAND_INVALID | operand::RCX));
    const PamtEntry p = pamt_walk(tdvpr.raw());
    if (p.pt != PageType::tdvpr)
        return done(ret((p.pt == PageType::nda ? status::OPERAND_INVALID : status::PAGE_METADATA_INCORRECT) |
                        operand::RCX));
    // The owner's TDR is taken shared (implicit operand).
    if (auto e = tdr_operand(Hpa(p.owner), false, operand::TDR)) return done(*e);
    Td& t = *td(Hpa(p.owner));
    if (t.life != Lifecycle::keys_configured) return done(ret(status::TD_KEYS_NOT_CONFIGURED));
    auto it = std::find_if(t.vcpus.begin(), t.vcpus.end(), [&](const Vcpu& v) { return v.tdvpr == tdvpr.raw(); });
    if (it == t.vcpus.end()) return done(ret(status::OPERAND_INVALID | operand::RCX));
    // A vCPU inside the TD holds its TDVPS exclusively (TDH.VP.ENTER).
    if (it->inside) return done(ret(status::OPERAND_BUSY | operand::RCX));
    if (!it->associated) return done(ret(status::VCPU_NOT_ASSOCIATED));
    it->associated = false;
    ++stats_.vp_flush;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mng_vpflushdone(Hpa tdr) {
    ++stats_.seamcalls;
    cur_ = take_timing();
    if (auto e = tdr_operand(tdr, true, operand::RCX)) return done(*e);
    Td& t = *td(tdr);
    if (t.life != Lifecycle::keys_configured) return done(ret(status::LIFECYCLE_STATE_INCORRECT));
    for (const Vcpu& v : t.vcpus)
        if (v.associated || v.inside) return done(ret(status::FLUSHVP_NOT_DONE));
    t.life = Lifecycle::blocked;
    t.wbcache_done = false;
    ++stats_.vpflushdone;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_phymem_cache_wb() {
    ++stats_.seamcalls;
    cur_ = take_timing();
    bool any = false;
    for (auto& [pa, t] : tds_)
        if (t.life == Lifecycle::blocked && !t.wbcache_done) {
            t.wbcache_done = true;
            any = true;
        }
    if (!any) return done(ret(status::NO_HKID_READY_TO_WBCACHE));
    ++stats_.cache_wb;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_mng_key_freeid(Hpa tdr) {
    ++stats_.seamcalls;
    cur_ = take_timing();
    if (auto e = tdr_operand(tdr, true, operand::RCX)) return done(*e);
    Td& t = *td(tdr);
    if (t.life != Lifecycle::blocked) return done(ret(status::LIFECYCLE_STATE_INCORRECT));
    if (!t.wbcache_done) return done(ret(status::WBCACHE_NOT_COMPLETE));
    t.life = Lifecycle::teardown;
    ++stats_.key_freeid;
    return done(ret(status::SUCCESS));
}

SeamRet TdxModule::tdh_phymem_page_reclaim(Hpa page) {
    ++stats_.seamcalls;
    cur_ = take_timing();
    if ((page.raw() & kPageMask) || page.raw() >= pamt::kCovered)
        return done(ret(status::OPERAND_INVALID | operand::RCX));
    // pamt_walk(): the page's leaf entry (a 2M private page at its 2M entry).
    unsigned level = 0;
    PamtEntry p = pamt_entry(page.raw(), 0);
    for (unsigned l = 2; l > 0; --l)
        if (const PamtEntry e = pamt_entry(page.raw(), l); e.pt == PageType::reg) {
            p = e;
            level = l;
            break;
        }
    if (p.pt == PageType::nda || p.pt == PageType::rsvd)
        return done(ret(status::PAGE_METADATA_INCORRECT | operand::RCX));
    if (page.raw() & (level_bytes(level) - 1)) return done(ret(status::OPERAND_INVALID | operand::RCX));
    const bool is_tdr = p.pt == PageType::tdr;
    const uint64_t owner = is_tdr ? page.raw() : p.owner;
    Td* t = td(Hpa(owner));
    if (!t || t->reclaimed) return done(ret(status::PAGE_METADATA_INCORRECT | operand::RCX));
    // The owner's TDR is taken shared (exclusive when it is the page reclaimed).
    if (t->tdr_excl || (is_tdr && t->tdr_shared) || timed_busy(t->tdr_t, is_tdr))
        return done(ret(status::OPERAND_BUSY | operand::TDR));
    if (t->life != Lifecycle::teardown) return done(ret(status::LIFECYCLE_STATE_INCORRECT));
    if (is_tdr && t->chldcnt) return done(ret(status::TD_ASSOCIATED_PAGES_EXIST));
    clear_pamt(page.raw(), level);
    if (!is_tdr) t->chldcnt -= level ? 512 : 1;
    if (p.pt == PageType::ept) --stats_.sept_pages;
    ++stats_.reclaim;
    const SeamRet r{status::SUCCESS, uint64_t(p.pt), owner, level};
    // The TD is gone: its TDR page is PT_NDA, so every later leaf naming it is refused
    // (OPERAND_INVALID); the model keeps its record for the inspection views (MRTD).
    if (is_tdr) t->reclaimed = true;
    return done(r);
}

Lifecycle TdxModule::lifecycle(Hpa tdr) const { return td(tdr)->life; }

void TdxModule::td_exit(Hpa tdr, unsigned vcpu) {
    Td* t = td(tdr);
    if (!t || vcpu >= t->vcpus.size() || !t->vcpus[vcpu].inside) return;
    Vcpu& v = t->vcpus[vcpu];
    --t->refcount[v.epoch & 1];
    --t->tdr_shared;
    v.inside = false;
    ++stats_.td_exits;
}

// ---------------------------------------------------------------------------------------
// Guest side (tdg_mem_page_accept.c, td_ept_violation.c)

GuestRet TdxModule::tdg_mem_page_accept(Hpa tdr, unsigned vcpu, uint64_t gpa_lvl) {
    const Td* ct = td(tdr);
    if (!ct || vcpu >= ct->vcpus.size()) throw std::invalid_argument("tdx: ACCEPT from an unknown vCPU");
    Td& t = *td(tdr);
    cur_ = take_timing();
    GuestRet r;
    const unsigned level = unsigned(gpa_lvl & 7);
    const uint64_t gpa = gpa_lvl & ~0xfffull;
    r.gpa = gpa;
    // A1/A2: only 4K and 2M; aligned; shared bit clear.
    if (check_gpa(t, gpa_lvl, 0, 1)) {
        r.rax = status::OPERAND_INVALID | operand::RCX;
        return r;
    }
    auto td_exit_accept = [&](const Walk& w) {
        const SeptState s = septe::state(w.entry);
        r.kind = GuestRet::Kind::td_exit;
        r.eeq_type = 1;
        r.req_level = level;
        r.reached_level = w.level;
        r.public_state = sept_public_state(s);
        r.leaf = sept_is_leaf(s);
        ++stats_.accept_exits;
        return r;
    };
    const Walk w = walk(t, gpa, level, false);
    if (!w.ok) {
        // A3: stopped above at a guest-accessible leaf; A4: anything else exits to the host.
        if (septe::state(w.entry) == SeptState::mapped) {
            r.rax = status::PAGE_ALREADY_ACCEPTED | w.level;
            return r;
        }
        return td_exit_accept(w);
    }
    // A5/A6: the guest-side entry lock and the host's priority request.
    // Timed: another vCPU's ACCEPT or a host leaf holds the entry now.
    const bool entry_busy = t.guest_locked.count(w.entry_hpa) ||
                            (cur_.on && (timed_busy_entry(t.guest_entry_until, w.entry_hpa, cur_.now) ||
                                         timed_busy_entry(t.host_entry_until, w.entry_hpa, cur_.now)));
    if (entry_busy) {
        r.rax = status::OPERAND_BUSY | operand::RCX;
        return r;
    }
    if (w.entry & septe::TDHP) {
        r.rax = status::OPERAND_BUSY_HOST_PRIORITY | operand::RCX;
        return r;
    }
    switch (septe::state(w.entry)) {
    case SeptState::nl_mapped: r.rax = status::PAGE_SIZE_MISMATCH | level; return r;   // A7
    case SeptState::mapped: r.rax = status::PAGE_ALREADY_ACCEPTED | level; return r;   // A8
    case SeptState::pending: break;                                                    // A10
    default: return td_exit_accept(w);                                                 // A9
    }
    const uint64_t pa = w.entry & septe::ADDR;
    const uint64_t pages = level ? 512 : 1;
    // The entry stays locked while the page is zeroed (the ACCEPT's whole duration).
    if (cur_.on) t.guest_entry_until[w.entry_hpa] = cur_.now + cur_.hold;
    for (uint64_t i = 0; i < pages; ++i) mem_.fill(Hpa(pa + i * kPageSize), 0, kPageSize);
    write_entry(w, septe::make(SeptState::mapped, pa));
    ++stats_.accept;
    stats_.accept_4k_pages += pages;
    r.rax = status::SUCCESS;
    return r;
}

void TdxModule::interrupt_guest_leaves(Hpa tdr) {
    if (Td* t = td(tdr)) t->guest_entry_until.clear();
}

GuestRet TdxModule::td_ept_violation(Hpa tdr, unsigned, uint64_t gpa) {
    const Td* t = td(tdr);
    if (!t) throw std::invalid_argument("tdx: EPT violation of an unknown TD");
    GuestRet r;
    r.gpa = gpa;
    const Walk w = walk(*t, gpa & ~kPageMask, 0, false);
    const SeptState s = septe::state(w.entry);
    r.reached_level = w.level;
    r.public_state = sept_public_state(s);
    r.leaf = sept_is_leaf(s);
    if (s == SeptState::pending) {
        if (!t->pending_ve_disable) {
            r.kind = GuestRet::Kind::ve;
            ++stats_.ve;
            return r;
        }
        r.kind = GuestRet::Kind::td_exit;
        r.eeq_type = 6;   // PENDING_EPT_VIOLATION
        return r;
    }
    r.kind = GuestRet::Kind::td_exit;
    r.eeq_type = 0;
    return r;
}

// ---------------------------------------------------------------------------------------
// Contention and inspection

void TdxModule::hold(Hpa tdr, Hold h) {
    Td& t = *td(tdr);
    switch (h) {
    case Hold::sept_tree_exclusive: t.sept_excl = true; break;
    case Hold::sept_tree_shared: ++t.sept_shared; break;
    case Hold::tdr_exclusive: t.tdr_excl = true; break;
    case Hold::epoch_exclusive: t.epoch_excl = true; break;
    }
}
void TdxModule::release(Hpa tdr, Hold h) {
    Td& t = *td(tdr);
    switch (h) {
    case Hold::sept_tree_exclusive: t.sept_excl = false; break;
    case Hold::sept_tree_shared: --t.sept_shared; break;
    case Hold::tdr_exclusive: t.tdr_excl = false; break;
    case Hold::epoch_exclusive: t.epoch_excl = false; break;
    }
}
void TdxModule::guest_lock_entry(Hpa tdr, uint64_t gpa) {
    Td& t = *td(tdr);
    t.guest_locked.insert(walk(t, gpa, 0, false).entry_hpa);
}
void TdxModule::guest_unlock_entry(Hpa tdr, uint64_t gpa) {
    Td& t = *td(tdr);
    t.guest_locked.erase(walk(t, gpa, 0, false).entry_hpa);
}

TdxModule::SeptView TdxModule::sept_read(Hpa tdr, uint64_t gpa, unsigned level) const {
    const DebugView dbg(mem_);
    const Walk w = walk(*td(tdr), gpa, level, true);
    return SeptView{w.level, septe::state(w.entry), w.entry, Hpa(w.entry_hpa)};
}

std::vector<TdxModule::Leaf4> TdxModule::sept_leaves(Hpa tdr) const {
    const DebugView dbg(mem_);
    std::vector<Leaf4> out;
    const Td& t = *td(tdr);
    struct Rec {
        const TdxModule& m;
        std::vector<Leaf4>& out;
        void go(uint64_t table, unsigned level, uint64_t base) {
            for (unsigned i = 0; i < 512; ++i) {
                const uint64_t e = m.mem_.read64(Hpa(table + 8ull * i));
                const SeptState s = septe::state(e);
                const uint64_t g = base + uint64_t(i) * level_bytes(level);
                if (sept_is_leaf(s)) out.push_back(Leaf4{g, level, s, Hpa(e & septe::ADDR)});
                else if ((s == SeptState::nl_mapped || s == SeptState::nl_blocked) && level > 0)
                    go(e & septe::ADDR, level - 1, g);
            }
        }
    } rec{*this, out};
    rec.go(t.root, t.levels - 1, 0);
    return out;
}

OpState TdxModule::op_state(Hpa tdr) const { return td(tdr)->op; }
uint64_t TdxModule::td_epoch(Hpa tdr) const { return td(tdr)->epoch; }
uint64_t TdxModule::child_count(Hpa tdr) const { return td(tdr)->chldcnt; }
Sha384::Digest TdxModule::mrtd(Hpa tdr) const {
    const Td* t = td(tdr);
    return t->mrtd_final ? *t->mrtd_final : t->mrtd.peek();
}
Hpa TdxModule::sept_root(Hpa tdr) const { return Hpa(td(tdr)->root); }
unsigned TdxModule::sept_levels(Hpa tdr) const { return td(tdr)->levels; }
bool TdxModule::vcpu_inside(Hpa tdr, unsigned vcpu) const { return td(tdr)->vcpus.at(vcpu).inside; }

}  // namespace hvsim::tdx
