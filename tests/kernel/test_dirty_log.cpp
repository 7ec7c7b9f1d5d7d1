// Dirty logging in generic KVM: the bitmap a KVM_MEM_LOG_DIRTY_PAGES slot carries,
// KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG (virt/kvm/kvm_main.c kvm_get_dirty_log_protect,
// kvm_clear_dirty_log_protect), and what they ask of the arch MMU.
#include <catch2/catch.hpp>

#include "tests/kernel/kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;

namespace {

struct DirtyMmu final : KvmMmuOps {
    std::vector<std::pair<uint64_t, uint64_t>> wrprot;   // (gfn_offset, mask)
    std::vector<uint32_t> apply;                          // old flags seen by slot_apply_flags
    unsigned flushes = 0;
    bool kvm_unmap_gfn_range(const kvm_gfn_range&, ExecContext&) override { return false; }
    void kvm_flush_remote_tlbs(ExecContext&) override { ++flushes; }
    void kvm_arch_flush_shadow_memslot(const kvm_memory_slot&, ExecContext&) override {}
    void kvm_arch_post_set_memory_attributes(const kvm_memory_slot&, Gfn, Gfn) override {}
    void kvm_arch_create_memslot(const kvm_memory_slot&) override {}
    void kvm_arch_free_memslot(const kvm_memory_slot&) override {}
    uint64_t sptes_zapped_total() const override { return 0; }
    void kvm_mmu_slot_apply_flags(const kvm_memory_slot&, uint32_t old_flags, ExecContext&) override {
        apply.push_back(old_flags);
    }
    void kvm_arch_mmu_enable_log_dirty_pt_masked(const kvm_memory_slot&, uint64_t off, uint64_t mask,
                                                 ExecContext&) override {
        wrprot.emplace_back(off, mask);
    }
};

int get_log(Env& e, uint32_t slot, std::vector<uint64_t>& bm) {
    uapi::kvm_dirty_log l{slot};
    return e.proc->ioctl_get_dirty_log(e.vmfd, l, bm, e.ctx);
}

int clear_log(Env& e, uint32_t slot, uint64_t first, uint32_t num, const std::vector<uint64_t>& bm) {
    uapi::kvm_clear_dirty_log l{};
    l.slot = slot;
    l.first_page = first;
    l.num_pages = num;
    return e.proc->ioctl_clear_dirty_log(e.vmfd, l, bm, e.ctx);
}

}  // namespace

TEST_CASE("dirty log: the bitmap comes and goes with KVM_MEM_LOG_DIRTY_PAGES", "[dirty]") {
    Env e;
    DirtyMmu mmu;
    e.kvm->set_mmu_ops(&mmu);
    REQUIRE(e.slot(0, 0, 1 * MiB) == 0);
    std::vector<uint64_t> bm;
    CHECK(get_log(e, 0, bm) == -ENOENT);            // no bitmap without logging
    CHECK(get_log(e, 5, bm) == -ENOENT);            // no such slot
    CHECK(get_log(e, 2u << 16, bm) == -EINVAL);     // as_id out of range
    CHECK(get_log(e, uapi::KVM_USER_MEM_SLOTS, bm) == -EINVAL);
    // Turning logging on is a flags-only change the arch sees (write-protect the slot).
    REQUIRE(e.slot(0, 0, 1 * MiB, uapi::KVM_MEM_LOG_DIRTY_PAGES) == 0);
    REQUIRE(mmu.apply == std::vector<uint32_t>{0});
    REQUIRE(e.memslot(0)->dirty_bitmap.size() == 4);   // 256 pages
    Kvm::mark_page_dirty_in_slot(*e.memslot(0), Gfn(3));
    Kvm::mark_page_dirty_in_slot(*e.memslot(0), Gfn(200));
    REQUIRE(get_log(e, 0, bm) == 0);
    REQUIRE(bm.size() == 4);
    CHECK(bm[0] == 1ull << 3);
    CHECK(bm[3] == 1ull << (200 - 192));
    // Taken pages are clean again and write-protected, with one flush.
    CHECK(mmu.wrprot == std::vector<std::pair<uint64_t, uint64_t>>{{0, 1ull << 3}, {192, 1ull << 8}});
    CHECK(mmu.flushes == 1);
    REQUIRE(get_log(e, 0, bm) == 0);
    CHECK(bm == std::vector<uint64_t>(4, 0));
    CHECK(mmu.flushes == 1);                          // nothing dirty: no flush
    // Off again: the bitmap goes.
    REQUIRE(e.slot(0, 0, 1 * MiB) == 0);
    CHECK(e.memslot(0)->dirty_bitmap.empty());
    CHECK(get_log(e, 0, bm) == -ENOENT);
    e.kvm->set_mmu_ops(nullptr);
}

TEST_CASE("dirty log: KVM_CLEAR_DIRTY_LOG checks the range and clears only bits that were set", "[dirty]") {
    Env e;
    DirtyMmu mmu;
    e.kvm->set_mmu_ops(&mmu);
    REQUIRE(e.slot(0, 0, 1 * MiB, uapi::KVM_MEM_LOG_DIRTY_PAGES) == 0);   // 256 pages
    const auto& slot = *e.memslot(0);
    for (uint64_t g : {1, 2, 70, 255}) Kvm::mark_page_dirty_in_slot(slot, Gfn(g));
    const std::vector<uint64_t> all(4, ~0ull);
    CHECK(clear_log(e, 0, 1, 64, all) == -EINVAL);      // first_page not a multiple of 64
    CHECK(clear_log(e, 0, 320, 0, all) == -EINVAL);     // beyond the slot
    CHECK(clear_log(e, 0, 0, 257, all) == -EINVAL);     // more pages than the slot has
    CHECK(clear_log(e, 0, 0, 65, all) == -EINVAL);      // short and not a multiple of 64
    CHECK(clear_log(e, 3, 0, 64, all) == -ENOENT);
    // Clear page 2 and page 70 only.
    REQUIRE(clear_log(e, 0, 0, 128, {1ull << 2, 1ull << 6}) == 0);
    CHECK(mmu.wrprot == std::vector<std::pair<uint64_t, uint64_t>>{{0, 1ull << 2}, {64, 1ull << 6}});
    CHECK(slot.dirty_bitmap[0] == 1ull << 1);
    CHECK(slot.dirty_bitmap[1] == 0);
    // A tail that reaches the slot's end may be unaligned: pages 192..255.
    REQUIRE(clear_log(e, 0, 192, 64, all) == 0);
    CHECK(slot.dirty_bitmap[3] == 0);
    e.kvm->set_mmu_ops(nullptr);
}
