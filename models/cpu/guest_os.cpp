#include "models/cpu/guest_os.hpp"

#include <stdexcept>

#include "models/mmu/x86_pte.hpp"

namespace hvsim::cpu {

GuestOs::GuestOs(const GuestOsConfig& cfg) : cfg_(cfg) {
    if (cfg.levels == 0) return;
    if (cfg.levels != 4 && cfg.levels != 5) throw std::invalid_argument("guest paging must be 4- or 5-level");
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

bool GuestOs::handle_page_fault(Gva gva, unsigned level, GuestPhysAccess& phys, ExecContext& ctx) {
    ++stats_.page_faults;
    ctx.charge("guest_pf", cfg_.pf_cycles);
    const unsigned leaf = unsigned(cfg_.page_size);
    const uint64_t va = gva.raw();
    // Find the table holding the missing entry by walking the guest's own tables
    // (the kernel reads them through its direct map, i.e. guest-physical reads).
    Gpa table = cr3_;
    for (unsigned l = cfg_.levels; l > level; --l) {
        auto e = phys.read_gpa64(table + 8ull * mmu::table_index(va, l), ctx);
        if (!e) return false;
        if (!mmu::pte::present(*e)) {   // missing higher up than the walk saw: start there
            level = l;
            break;
        }
        table = Gpa(mmu::pte::addr(*e, l));
    }
    for (unsigned l = level; l >= leaf; --l) {
        const Gpa slot = table + 8ull * mmu::table_index(va, l);
        if (l == leaf) {
            const uint64_t page = va & ~(level_size(cfg_.page_size) - 1);
            return phys.write_gpa64(slot, mmu::pte::make_leaf(page, cfg_.page_size, true, true), ctx);
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
        if (mmu::pte::present(*now)) {
            spare_.push_back(*child);
            --stats_.pt_pages;
            ++stats_.install_races;
            table = Gpa(mmu::pte::addr(*now, l));
            continue;
        }
        if (!phys.write_gpa64(slot, mmu::pte::make_table(child->raw()), ctx)) return false;
        table = *child;
    }
    return true;
}

}  // namespace hvsim::cpu
