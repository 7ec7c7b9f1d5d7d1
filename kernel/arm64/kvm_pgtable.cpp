#include "kernel/arm64/kvm_pgtable.hpp"

#include <cerrno>
#include <stdexcept>

namespace hvsim::kvm::arm64 {

namespace d = stage2::desc;
using stage2::Barrier;
using stage2::TlbiOp;
using stage2::TraceEvent;
using stage2::level_shift;
using stage2::level_size;
using stage2::granule_size;

namespace {
constexpr uint64_t kS2Perms = d::S2AP_R | d::S2AP_W | (3ull << d::S2_XN_SHIFT);
bool valid(uint64_t pte) { return pte & d::VALID; }
bool is_table(uint64_t pte, int level) { return level < 3 && valid(pte) && (pte & d::TABLE); }
}  // namespace

KvmPgtable::KvmPgtable(PhysMem& mem, PgtableMemcache& mc, stage2::TlbiDomain& dom, const S2Geometry& geo,
                       uint16_t vmid, Hpa pgd, const PgtableCosts& costs, bool fwb)
    : mem_(mem), mc_(mc), dom_(dom), geo_(geo), vmid_(vmid), pgd_(pgd.raw()), costs_(costs), fwb_(fwb) {
    if (pgd_ & (geo_.root_bytes() - 1)) throw std::invalid_argument("stage-2 pgd not aligned to its size");
    dom_.note(TraceEvent::Kind::table_init, pgd_, pgd_, geo_.root_bytes());
}

// The walks run under kvm->mmu_lock (the tree's lock for a trace checker).
struct KvmPgtable::LockGuard {
    KvmPgtable& p;
    explicit LockGuard(KvmPgtable& pg) : p(pg) { p.dom_.note(TraceEvent::Kind::lock, p.lock_addr()); }
    ~LockGuard() { p.dom_.note(TraceEvent::Kind::unlock, p.lock_addr()); }
};

uint64_t KvmPgtable::entries(int level) const {
    return level == geo_.start_level ? geo_.root_entries() : (1ull << stage2::level_bits(geo_.granule));
}

uint64_t KvmPgtable::index(uint64_t addr, int level) const {
    return (addr >> level_shift(geo_.granule, level)) & (entries(level) - 1);
}

// stage2_set_prot_attr() + kvm_init_valid_leaf_pte(): MemAttr (FWB: Normal 0b0110,
// else Normal-WB 0b1111; Device-nGnRE 0b0001), S2AP, SH Inner (not with LPA2), AF, XN.
uint64_t KvmPgtable::leaf_desc(uint64_t phys, uint32_t prot, int level) const {
    uint64_t attr = (prot & KVM_PGTABLE_PROT_DEVICE) ? (0x1ull << 2) : fwb_ ? (0x6ull << 2) : (0xfull << 2);
    if (prot & KVM_PGTABLE_PROT_R) attr |= d::S2AP_R;
    if (prot & KVM_PGTABLE_PROT_W) attr |= d::S2AP_W;
    if (!(prot & KVM_PGTABLE_PROT_X)) attr |= 2ull << d::S2_XN_SHIFT;
    if (!geo_.ds) attr |= d::SH_INNER;
    return d::make_oa(phys, geo_.granule, geo_.ds) | attr | d::AF | d::VALID | (level == 3 ? d::TABLE : 0);
}

void KvmPgtable::write_pte(uint64_t loc, uint64_t old, uint64_t v, uint64_t ia, int level, bool release,
                           ExecContext& ctx) {
    mem_.write64(Hpa(loc), v);
    TraceEvent e;
    e.kind = TraceEvent::Kind::write;
    e.loc = loc;
    e.old = old;
    e.value = v;
    e.release = release;
    e.ia = ia & ~(level_size(geo_.granule, level) - 1);
    e.level = level;
    e.granule = geo_.granule;
    e.vmid = vmid_;
    dom_.wrote(e);
    ctx.charge("kvm_pgtable: pte write", costs_.pte_write);
}

// __kvm_tlb_flush_vmid_ipa() (nvhe/tlb.c): switch to the guest's VMID; DSB ISHST;
// TLBI IPAS2E1IS (with the level as TTL); DSB ISH; TLBI VMALLE1IS (combined entries
// could otherwise be refilled from the old stage 2 by another CPU's walk); DSB ISH; ISB.
void KvmPgtable::tlb_flush_vmid_ipa(uint64_t ipa, int level, ExecContext& ctx) {
    dom_.vttbr(vmid_, pgd_);
    Cycles c = dom_.barrier(Barrier::dsb_ishst);
    c += dom_.tlbi(TlbiOp::ipas2e1is, vmid_, ipa, level);
    c += dom_.barrier(Barrier::dsb_ish);
    c += dom_.tlbi(TlbiOp::vmalle1is, vmid_);
    c += dom_.barrier(Barrier::dsb_ish);
    c += dom_.barrier(Barrier::isb);
    ctx.charge("tlbi: __kvm_tlb_flush_vmid_ipa", c);
}

// __kvm_tlb_flush_vmid_ipa_nsh(): the same on this CPU only (relax_perms: a stale, more
// restrictive entry elsewhere only causes a spurious fault).
void KvmPgtable::tlb_flush_vmid_ipa_nsh(uint64_t ipa, int level, ExecContext& ctx) {
    dom_.vttbr(vmid_, pgd_);
    Cycles c = dom_.barrier(Barrier::dsb_nsh);
    c += dom_.tlbi(TlbiOp::ipas2e1, vmid_, ipa, level);
    c += dom_.barrier(Barrier::dsb_nsh);
    c += dom_.tlbi(TlbiOp::vmalle1, vmid_);
    c += dom_.barrier(Barrier::dsb_nsh);
    c += dom_.barrier(Barrier::isb);
    ctx.charge("tlbi: __kvm_tlb_flush_vmid_ipa_nsh", c);
}

void KvmPgtable::kvm_tlb_flush_vmid(ExecContext& ctx) {
    dom_.vttbr(vmid_, pgd_);
    Cycles c = dom_.barrier(Barrier::dsb_ishst);
    c += dom_.tlbi(TlbiOp::vmalls12e1is, vmid_);
    c += dom_.barrier(Barrier::dsb_ish);
    c += dom_.barrier(Barrier::isb);
    ctx.charge("tlbi: __kvm_tlb_flush_vmid", c);
}

// stage2_try_break_pte(): the LOCKED marker replaces a valid descriptor, then the TLBs
// are cleaned of it (leaf: by IPA; table: the whole VMID, as kvm_tlb_flush_vmid_range()
// without FEAT_TLBIRANGE). The caller makes the new descriptor.
void KvmPgtable::break_pte(uint64_t loc, uint64_t old, uint64_t ia, int level, ExecContext& ctx) {
    write_pte(loc, old, KVM_INVALID_PTE_LOCKED, ia, level, false, ctx);
    if (is_table(old, level)) kvm_tlb_flush_vmid(ctx);
    else tlb_flush_vmid_ipa(ia, level, ctx);
    ++stats_.bbm;
}

uint64_t KvmPgtable::try_break_pte(uint64_t loc, uint64_t old, uint64_t ia, int level, ExecContext& ctx) {
    if (!valid(old)) return old;
    break_pte(loc, old, ia, level, ctx);
    return KVM_INVALID_PTE_LOCKED;
}

void KvmPgtable::cmo(uint64_t bytes, ExecContext& ctx) {
    if (fwb_) return;
    stats_.cmo_bytes += bytes;
    ctx.charge("cmo: dcache_clean_inval_poc", costs_.cmo_per_page * (bytes / kPageSize));
}

std::optional<uint64_t> KvmPgtable::alloc_table() {
    auto p = mc_.alloc_table_page();
    if (!p) return std::nullopt;
    refcount_[p->raw()] = 0;
    ++stats_.tables_allocated;
    dom_.note(TraceEvent::Kind::table_init, p->raw(), pgd_, granule_size(geo_.granule));
    return p->raw();
}

// kvm_block_mapping_supported(): a leaf at `level` when the level may hold a block (or
// is the last), addr and phys are aligned to it and it fits in [addr, end).
bool KvmPgtable::leaf_allowed(uint64_t addr, uint64_t end, uint64_t phys, int level) const {
    if (level != 3 && level < stage2::min_block_level(geo_.granule)) return false;
    const uint64_t sz = level_size(geo_.granule, level);
    return !(addr & (sz - 1)) && !(phys & (sz - 1)) && end - addr >= sz;
}

int KvmPgtable::kvm_pgtable_stage2_map(uint64_t addr, uint64_t size, uint64_t phys, uint32_t prot,
                                       ExecContext& ctx) {
    if ((addr | size | phys) & (granule_size(geo_.granule) - 1)) return -EINVAL;
    if (addr + size > (1ull << geo_.ipa_bits)) return -ERANGE;
    LockGuard lock(*this);
    uint64_t a = addr, p = phys;
    const int r = map_walk(pgd_, geo_.start_level, a, addr + size, p, prot, ctx);
    // The end of a map walk: DSB ISHST so the new descriptors are visible to the walkers.
    ctx.charge("kvm_pgtable: dsb ishst", dom_.barrier(Barrier::dsb_ishst));
    return r;
}

int KvmPgtable::map_walk(uint64_t table, int level, uint64_t& addr, uint64_t end, uint64_t& phys, uint32_t prot,
                         ExecContext& ctx) {
    const uint64_t sz = level_size(geo_.granule, level);
    while (addr < end) {
        const uint64_t loc = table + index(addr, level) * 8;
        const uint64_t old = mem_.read64(Hpa(loc));
        if (leaf_allowed(addr, end, phys, level)) {
            const uint64_t nw = leaf_desc(phys, prot, level);
            // stage2_pte_needs_update(): the same leaf with other permissions is left to
            // relax_perms(); an identical one is a race another vCPU won.
            if (valid(old) && !is_table(old, level) && ((old ^ nw) & ~kS2Perms) == 0) {
                ++stats_.eagain;
                return -EAGAIN;
            }
            const uint64_t cur = try_break_pte(loc, old, addr, level, ctx);
            if (is_table(old, level)) free_subtree(d::oa(old, geo_.granule, geo_.ds), level + 1, ctx);
            if (!valid(old) && table != pgd_ && old == 0)
                ++refcount_[table];   // an annotated invalid entry was counted already
            if (!(prot & KVM_PGTABLE_PROT_DEVICE)) cmo(sz, ctx);
            // stage2_make_pte(): smp_store_release().
            write_pte(loc, cur, nw, addr, level, true, ctx);
            ++stats_.maps;
            if (level < 3) ++stats_.map_blocks;
            addr += sz;
            phys += sz;
            continue;
        }
        uint64_t child;
        if (!valid(old)) {
            auto t = alloc_table();
            if (!t) return -ENOMEM;
            child = *t;
            if (table != pgd_) ++refcount_[table];
            write_pte(loc, old, d::make_oa(child, geo_.granule, geo_.ds) | d::VALID | d::TABLE, addr, level, false, ctx);
        } else if (!is_table(old, level)) {
            // A block in the way (stage2_map_walk_leaf): break it, install an empty table;
            // the rest of the block faults back in lazily at the smaller size.
            auto t = alloc_table();
            if (!t) return -ENOMEM;
            child = *t;
            ++stats_.splits;
            write_pte(loc, try_break_pte(loc, old, addr, level, ctx),
                      d::make_oa(child, geo_.granule, geo_.ds) | d::VALID | d::TABLE, addr, level, true, ctx);
        } else {
            child = d::oa(old, geo_.granule, geo_.ds);
        }
        const uint64_t entry_end = (addr & ~(sz - 1)) + sz;
        const int r = map_walk(child, level + 1, addr, std::min(end, entry_end), phys, prot, ctx);
        if (r < 0) return r;
    }
    return 0;
}

void KvmPgtable::free_subtree(uint64_t table, int level, ExecContext& ctx) {
    if (level < 3) {
        for (uint64_t i = 0; i < entries(level); ++i) {
            const uint64_t pte = mem_.read64(Hpa(table + i * 8));
            if (is_table(pte, level)) free_subtree(d::oa(pte, geo_.granule, geo_.ds), level + 1, ctx);
        }
    }
    refcount_.erase(table);
    ++stats_.tables_freed;
    dom_.note(TraceEvent::Kind::table_release, table, pgd_, granule_size(geo_.granule));
    mem_.fill(Hpa(table), 0, granule_size(geo_.granule));
    mc_.free_table_page(Hpa(table));
}

int KvmPgtable::kvm_pgtable_stage2_unmap(uint64_t addr, uint64_t size, ExecContext& ctx) {
    LockGuard lock(*this);
    unmap_walk(pgd_, geo_.start_level, addr, addr + size, ctx);
    return 0;
}

// stage2_unmap_walker(): every valid leaf the range touches is cleared (a block
// partly in range goes whole), its TLB entries invalidated, cacheable memory cleaned to
// PoC without FWB; a table whose last entry went is unlinked and freed. Returns whether
// `table` has no valid entry left.
bool KvmPgtable::unmap_walk(uint64_t table, int level, uint64_t addr, uint64_t end, ExecContext& ctx) {
    const uint64_t sz = level_size(geo_.granule, level);
    for (uint64_t a = addr & ~(sz - 1); a < end; a += sz) {
        const uint64_t loc = table + index(a, level) * 8;
        const uint64_t old = mem_.read64(Hpa(loc));
        if (!valid(old)) continue;
        if (is_table(old, level)) {
            const uint64_t child = d::oa(old, geo_.granule, geo_.ds);
            if (unmap_walk(child, level + 1, std::max(a, addr), std::min(end, a + sz), ctx)) {
                write_pte(loc, old, 0, a, level, false, ctx);
                kvm_tlb_flush_vmid(ctx);
                free_subtree(child, level + 1, ctx);
                if (table != pgd_) --refcount_[table];
            }
            continue;
        }
        write_pte(loc, old, 0, a, level, false, ctx);
        tlb_flush_vmid_ipa(a, level, ctx);
        const uint64_t memattr = (old >> 2) & 0xf;
        if (memattr != 0x1) cmo(sz, ctx);   // not Device
        ++stats_.unmaps;
        if (table != pgd_) --refcount_[table];
    }
    return table != pgd_ && refcount_[table] == 0;
}

std::pair<uint64_t, int> KvmPgtable::leaf_slot(uint64_t addr) const {
    uint64_t table = pgd_;
    for (int level = geo_.start_level; level <= 3; ++level) {
        const uint64_t loc = table + index(addr, level) * 8;
        const uint64_t pte = mem_.read64(Hpa(loc));
        if (!valid(pte)) return {loc, -1};
        if (!is_table(pte, level)) return {loc, level};
        table = d::oa(pte, geo_.granule, geo_.ds);
    }
    return {0, -1};
}

std::pair<uint64_t, int> KvmPgtable::get_leaf(uint64_t addr) const {
    auto [loc, level] = leaf_slot(addr);
    if (level < 0) return {0, -1};
    return {mem_.read64(Hpa(loc)), level};
}

int KvmPgtable::kvm_pgtable_stage2_relax_perms(uint64_t addr, uint32_t prot, ExecContext& ctx) {
    LockGuard lock(*this);
    auto [loc, level] = leaf_slot(addr);
    if (level < 0) return -EAGAIN;
    const uint64_t old = mem_.read64(Hpa(loc));
    uint64_t nw = old;
    if (prot & KVM_PGTABLE_PROT_R) nw |= d::S2AP_R;
    if (prot & KVM_PGTABLE_PROT_W) nw |= d::S2AP_W;
    if (prot & KVM_PGTABLE_PROT_X) nw &= ~(3ull << d::S2_XN_SHIFT);
    if (nw != old) write_pte(loc, old, nw, addr, level, false, ctx);
    ++stats_.relax;
    tlb_flush_vmid_ipa_nsh(addr, level, ctx);
    return 0;
}

int KvmPgtable::kvm_pgtable_stage2_wrprotect(uint64_t addr, uint64_t size, ExecContext& ctx) {
    LockGuard lock(*this);
    for (uint64_t a = addr; a < addr + size;) {
        auto [loc, level] = leaf_slot(a);
        const uint64_t step = level < 0 ? granule_size(geo_.granule) : level_size(geo_.granule, level);
        if (level >= 0) {
            const uint64_t old = mem_.read64(Hpa(loc));
            if (old & d::S2AP_W) {
                write_pte(loc, old, old & ~d::S2AP_W, a, level, false, ctx);
                ++stats_.wrprotect;
            }
        }
        a = (a & ~(step - 1)) + step;
    }
    return 0;
}

int KvmPgtable::kvm_pgtable_stage2_mkyoung(uint64_t addr, ExecContext& ctx) {
    LockGuard lock(*this);
    auto [loc, level] = leaf_slot(addr);
    if (level < 0) return -EAGAIN;
    const uint64_t old = mem_.read64(Hpa(loc));
    if (!(old & d::AF)) write_pte(loc, old, old | d::AF, addr, level, false, ctx);
    ++stats_.mkyoung;
    return 0;
}

std::pair<uint64_t, int> KvmPgtable::get_entry(uint64_t addr) const {
    uint64_t table = pgd_;
    for (int level = geo_.start_level; level <= 3; ++level) {
        const uint64_t pte = mem_.read64(Hpa(table + index(addr, level) * 8));
        if (!is_table(pte, level)) return {pte, level};
        table = d::oa(pte, geo_.granule, geo_.ds);
    }
    return {0, 3};
}

int KvmPgtable::kvm_pgtable_stage2_annotate(uint64_t addr, uint64_t annotation, ExecContext& ctx) {
    if (valid(annotation) || !annotation) return -EINVAL;
    if (addr & (granule_size(geo_.granule) - 1)) return -EINVAL;
    LockGuard lock(*this);
    uint64_t table = pgd_;
    for (int level = geo_.start_level; level < 3; ++level) {
        const uint64_t loc = table + index(addr, level) * 8;
        const uint64_t old = mem_.read64(Hpa(loc));
        if (is_table(old, level)) {
            table = d::oa(old, geo_.granule, geo_.ds);
            continue;
        }
        auto t = alloc_table();
        if (!t) return -ENOMEM;
        const uint64_t base = addr & ~(level_size(geo_.granule, level) - 1);
        // A block around the page is removed whole, then an empty table takes its place.
        if (valid(old)) ++stats_.unmaps;
        else if (table != pgd_) ++refcount_[table];
        write_pte(loc, try_break_pte(loc, old, base, level, ctx),
                  d::make_oa(*t, geo_.granule, geo_.ds) | d::VALID | d::TABLE, base, level, true, ctx);
        table = *t;
    }
    const uint64_t loc = table + index(addr, 3) * 8;
    const uint64_t old = mem_.read64(Hpa(loc));
    if (valid(old)) ++stats_.unmaps;
    else if (old == 0) ++refcount_[table];   // stage2_pte_is_counted(): annotations keep their table alive
    write_pte(loc, try_break_pte(loc, old, addr, 3, ctx), annotation, addr, 3, false, ctx);
    ctx.charge("kvm_pgtable: dsb ishst", dom_.barrier(Barrier::dsb_ishst));
    return 0;
}

int KvmPgtable::kvm_pgtable_stage2_set_sw_bits(uint64_t addr, uint64_t sw, ExecContext& ctx) {
    constexpr uint64_t kSw = 0xfull << 55;
    if (sw & ~kSw) return -EINVAL;
    LockGuard lock(*this);
    auto [loc, level] = leaf_slot(addr);
    if (level < 0) return -ENOENT;
    const uint64_t old = mem_.read64(Hpa(loc));
    const uint64_t nw = (old & ~kSw) | sw;
    if (nw != old) write_pte(loc, old, nw, addr, level, false, ctx);
    return 0;
}

void KvmPgtable::kvm_pgtable_stage2_destroy(ExecContext& ctx) {
    for (uint64_t i = 0; i < entries(geo_.start_level); ++i) {
        const uint64_t pte = mem_.read64(Hpa(pgd_ + i * 8));
        if (is_table(pte, geo_.start_level))
            free_subtree(d::oa(pte, geo_.granule, geo_.ds), geo_.start_level + 1, ctx);
        if (pte) mem_.write64(Hpa(pgd_ + i * 8), 0);
    }
    kvm_tlb_flush_vmid(ctx);
}

}  // namespace hvsim::kvm::arm64
