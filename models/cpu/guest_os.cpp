#include "models/cpu/guest_os.hpp"

#include <stdexcept>

#include "models/mmu/x86_pte.hpp"
#include "models/stage2/vmsa.hpp"

namespace hvsim::cpu {

GuestOs::GuestOs(const GuestOsConfig& cfg) : cfg_(cfg) {
    if (cfg.levels == 0) return;
    if (cfg.levels != 4 && cfg.levels != 5) throw std::invalid_argument("guest paging must be 4- or 5-level");
    // 5 levels on arm64 would be the 52-bit VA of FEAT_LPA2 (a level -1 table): not modelled.
    if (cfg.format == GuestPtFormat::vmsa && cfg.levels != 4)
        throw std::invalid_argument("arm64 guest stage 1 is modelled with 4 levels (48-bit VA, 4K granule)");
    auto root = alloc_table();
    if (!root) throw std::invalid_argument("guest page-table region too small for a root table");
    cr3_ = *root;
}

std::optional<Gpa> GuestOs::alloc_table() {
    if (!spare_.empty()) {
        const Gpa a = spare_.back();
        spare_.pop_back();
        ++stats_.pt_pages;
        return a;
    }
    if (next_ + kPageSize > cfg_.pt_size) return std::nullopt;
    const Gpa a = cfg_.pt_base + next_;
    next_ += kPageSize;
    ++stats_.pt_pages;
    return a;
}

namespace {
namespace d = stage2::desc;
// Stage-1 attributes of a normal, inner-shareable, non-global mapping (what Linux's
// PAGE_KERNEL gives, with AttrIndx 0 naming MAIR_EL1's normal write-back memory). The
// access flag is set up front as Linux does (PTE_AF in PROT_DEFAULT); AP[2:1] = 00:
// read/write at EL1.
constexpr uint64_t kS1Attrs = d::AF | d::SH_INNER | (1ull << 11) /* nG */;
}  // namespace

bool GuestOs::present(uint64_t e) const {
    return cfg_.format == GuestPtFormat::vmsa ? (e & d::VALID) != 0 : mmu::pte::present(e);
}

uint64_t GuestOs::next_table(uint64_t e, unsigned level) const {
    return cfg_.format == GuestPtFormat::vmsa ? d::oa(e, stage2::Granule::k4K, false) : mmu::pte::addr(e, level);
}

uint64_t GuestOs::make_table(Gpa t) const {
    if (cfg_.format == GuestPtFormat::vmsa)
        return d::VALID | d::TABLE | d::make_oa(t.raw(), stage2::Granule::k4K, false);
    return mmu::pte::make_table(t.raw());
}

uint64_t GuestOs::make_leaf(uint64_t page) const {
    if (cfg_.format == GuestPtFormat::vmsa) {
        // A level-3 page descriptor has bit 1 set; a level-1/2 block has it clear.
        const uint64_t type = cfg_.page_size == PgLevel::k4K ? d::TABLE : 0;
        return d::VALID | type | kS1Attrs | d::make_oa(page, stage2::Granule::k4K, false);
    }
    return mmu::pte::make_leaf(page, cfg_.page_size, true, true);
}

bool GuestOs::handle_page_fault(Gva gva, unsigned level, GuestPhysAccess& phys, ExecContext& ctx) {
    ++stats_.page_faults;
    ctx.charge("guest_pf", cfg_.pf_cycles);
    const unsigned leaf = unsigned(cfg_.page_size);
    const uint64_t va = gva.raw();
    // The DFSC's lookup level 0..3 is the x86-style level 4..1 (both resolve 9 bits per
    // level above a 4K page: the same index bits).
    if (cfg_.format == GuestPtFormat::vmsa) {
        if (level > 3) throw std::logic_error("arm64 stage-1 fault level out of range");
        if (va >> 48) throw std::runtime_error("guest access above the 48-bit stage-1 VA range (TTBR0_EL1, T0SZ 16)");
        level = 4 - level;
    }
    // Find the table holding the missing entry by walking the guest's own tables
    // (the kernel reads them through its direct map, i.e. guest-physical reads).
    Gpa table = cr3_;
    for (unsigned l = cfg_.levels; l > level; --l) {
        auto e = phys.read_gpa64(table + 8ull * mmu::table_index(va, l), ctx);
        if (!e) return false;
        if (!present(*e)) {   // missing higher up than the walk saw: start there
            level = l;
            break;
        }
        table = Gpa(next_table(*e, l));
    }
    for (unsigned l = level; l >= leaf; --l) {
        const Gpa slot = table + 8ull * mmu::table_index(va, l);
        if (l == leaf) {
            const uint64_t page = va & ~(level_size(cfg_.page_size) - 1);
            return phys.write_gpa64(slot, make_leaf(page), ctx);
        }
        auto child = alloc_table();
        if (!child)
            throw std::runtime_error("guest page-table region exhausted (enlarge vm.guest_pt_region)");
        // A fresh table must read as empty whatever the page held before.
        if (!phys.zero_gpa_page(*child, ctx)) return false;
        // Zeroing may have taken a nested fault, during which another vCPU's #PF handler
        // can have installed this very entry (a guest kernel holds the page-table lock
        // here): look again, and keep the table for later if it lost the race. The look
        // is made for writing, so the write below cannot fault in between.
        auto now = phys.read_gpa64_for_update(slot, ctx);
        if (!now) return false;
        if (present(*now)) {
            spare_.push_back(*child);
            --stats_.pt_pages;
            ++stats_.install_races;
            table = Gpa(next_table(*now, l));
            continue;
        }
        if (!phys.write_gpa64(slot, make_table(*child), ctx)) return false;
        table = *child;
    }
    return true;
}

}  // namespace hvsim::cpu
