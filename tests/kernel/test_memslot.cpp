#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

TEST_CASE("memslot: flag validation (v1 and v2)", "[memslot]") {
    Env e;
    const int g = e.gmem(16 * MiB);
    for (unsigned bit = 3; bit < 32; ++bit) {
        INFO(bit);
        REQUIRE(e.slot(0, 0, 2 * MiB, 1u << bit) == -EINVAL);
    }
    // GUEST_MEMFD through v1 is EINVAL (v1 flags only).
    kvm_userspace_memory_region v1{0, KVM_MEM_GUEST_MEMFD, 0, 2 * MiB, 0x7f0000000000ull};
    REQUIRE(e.proc->ioctl_set_user_memory_region(e.vmfd, v1, e.ctx) == -EINVAL);
    v1.flags = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
    REQUIRE(e.proc->ioctl_set_user_memory_region(e.vmfd, v1, e.ctx) == 0);
    // No dirty logging and no READONLY for gmem slots.
    REQUIRE(e.slot(1, 4 * MiB, 2 * MiB, KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES, 0, g) == -EINVAL);
    REQUIRE(e.slot(1, 4 * MiB, 2 * MiB, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, 0, g) == -EINVAL);
    REQUIRE(e.slot(1, 4 * MiB, 2 * MiB, KVM_MEM_GUEST_MEMFD, 0, g) == 0);
    // Flags are checked even for deletes.
    REQUIRE(e.slot(0, 0, 0, 1u << 5) == -EINVAL);
    // Internal flag bits are not user-settable.
    REQUIRE(e.slot(2, 8 * MiB, 2 * MiB, KVM_MEMSLOT_GMEM_ONLY) == -EINVAL);
}

TEST_CASE("memslot: READONLY refused for protected-state VMs, GUEST_MEMFD without the Kconfig", "[memslot]") {
    Env snp(VmType::snp);
    REQUIRE(snp.slot(0, 0, 2 * MiB, KVM_MEM_READONLY) == -EINVAL);
    REQUIRE(snp.slot(0, 0, 2 * MiB, 0) == 0);
    KvmConfig c;
    c.guest_memfd = false;
    Env e(VmType::default_vm, c);
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_GUEST_MEMFD) == -EINVAL);
    REQUIRE(e.gmem(2 * MiB) == -ENOTTY);
}

TEST_CASE("memslot: alignment, address and id checks in order", "[memslot]") {
    Env e;
    REQUIRE(e.slot(0, 0, 4096 + 1) == -EINVAL);                       // size unaligned
    REQUIRE(e.slot(0, 0x800, 4096) == -EINVAL);                       // gpa unaligned
    REQUIRE(e.slot(0, 0, 4096, 0, 0x7f0000000010ull) == -EINVAL);     // uaddr unaligned
    REQUIRE(e.slot(0, 0, 4096, 0, kTaskSizeMax) == -EINVAL);          // access_ok
    REQUIRE(e.slot(0, 0, 2 * 4096, 0, kTaskSizeMax - 4096) == -EINVAL);
    REQUIRE(e.slot(0, 0, 4096, 0, kTaskSizeMax - 2 * 4096) == 0);
    REQUIRE(e.slot(9, 1 * GiB, 4096, 0, 0) == 0);                     // uaddr 0 is legal
    const int g = e.gmem(16 * MiB);
    REQUIRE(e.slot(1, 4 * MiB, 4096, KVM_MEM_GUEST_MEMFD, 0, g, 0x800) == -EINVAL);   // gmem offset unaligned
    REQUIRE(e.slot(1, 4 * MiB, 8192, KVM_MEM_GUEST_MEMFD, 0, g, ~0ull & ~kPageMask) == -EINVAL);   // wraps
    // guest_memfd fields are ignored without the flag.
    REQUIRE(e.slot(2, 8 * MiB, 4096, 0, 0x7f0000100000ull, 12345, 0x801) == 0);
    // User ioctls cannot touch internal slots; as_id 2 does not exist.
    REQUIRE(e.slot(32764, 16 * MiB, 4096) == -EINVAL);
    REQUIRE(e.slot(32763, 16 * MiB, 4096) == 0);
    REQUIRE(e.slot((2u << 16) | 3, 20 * MiB, 4096) == -EINVAL);
    REQUIRE(e.slot((1u << 16) | 3, 20 * MiB, 4096) == 0);             // SMM address space
    REQUIRE(e.kvm->gfn_to_memslot(1, Gfn(20 * MiB >> 12))->id == 3);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn(20 * MiB >> 12)) == nullptr);
    REQUIRE(e.slot(4, ~0ull & ~kPageMask, 8192) == -EINVAL);          // gpa wraps
    REQUIRE(e.slot(5, 0x100000000000ull, (KVM_MEM_MAX_NR_PAGES + 1) << 12, 0, 0x100000000ull) == -EINVAL);
    REQUIRE(e.slot(6, 0, 0) == -EINVAL);                              // delete of an absent slot
}

TEST_CASE("memslot: as_id 1 needs SMM and a VM without private memory", "[memslot]") {
    Env swp(VmType::sw_protected);
    REQUIRE(swp.slot((1u << 16) | 0, 0, 4096) == -EINVAL);
    KvmConfig c;
    c.smm = false;
    Env nosmm(VmType::default_vm, c);
    REQUIRE(nosmm.slot((1u << 16) | 0, 0, 4096) == -EINVAL);
    REQUIRE(nosmm.slot(0, 0, 4096) == 0);
}

TEST_CASE("memslot: last gfn beyond the MMU's maximum gfn is EINVAL", "[memslot]") {
    KvmConfig c;
    c.maxphyaddr = 40;
    Env e(VmType::default_vm, c);
    REQUIRE(e.slot(0, (1ull << 40) - 4096, 4096) == 0);
    REQUIRE(e.slot(1, (1ull << 40), 4096) == -EINVAL);
    REQUIRE(e.slot(0, 0, 0) == 0);
    REQUIRE(e.slot(2, (1ull << 40) - 4096, 8192) == -EINVAL);
    c.tdp = false;   // shadow paging: 52 bits
    Env s(VmType::default_vm, c);
    REQUIRE(s.slot(1, (1ull << 40), 4096) == 0);
    REQUIRE(s.slot(2, (1ull << 52), 4096) == -EINVAL);
    // TDX: a slot reaching the shared bit (GPA bit 51 with MAXPHYADDR 52) aliases.
    Env t(VmType::tdx);
    REQUIRE(t.slot(0, (1ull << 51) - 4096, 4096) == 0);
    REQUIRE(t.slot(1, (1ull << 51), 4096) == -EINVAL);
    // A failed create leaves no binding behind.
    Env g(VmType::default_vm, KvmConfig{});
    KvmConfig small;
    small.maxphyaddr = 40;
    Env h(VmType::default_vm, small);
    const int gfd = h.gmem(2 * MiB);
    REQUIRE(h.gslot(0, 1ull << 40, 2 * MiB, gfd) == -EINVAL);
    REQUIRE(h.file(gfd).bindings().empty());
    REQUIRE(h.gslot(0, 0, 2 * MiB, gfd) == 0);
}

TEST_CASE("memslot: create, flags-only, move, delete and the MMU calls they make", "[memslot]") {
    Env e;
    REQUIRE(e.slot(0, 0, 2 * MiB) == 0);
    REQUIRE(e.mmu.log == std::vector<std::string>{"create:0"});
    REQUIRE(e.kvm->nr_memslot_pages() == 512);
    REQUIRE(e.kvm->stats().memslot_create == 1);
    // Charged: ioctl + memslot_update.
    REQUIRE(e.ctx.total == e.costs.ioctl * 1 + e.costs.memslot_update + e.costs.ioctl /*create_vm*/);
    const uint64_t gen = e.kvm->memslots(0).generation;
    // Identical request: nothing to change, no generation bump.
    REQUIRE(e.slot(0, 0, 2 * MiB) == 0);
    REQUIRE(e.kvm->memslots(0).generation == gen);
    // Flags only (dirty logging).
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_LOG_DIRTY_PAGES) == 0);
    REQUIRE(e.memslot(0)->flags == KVM_MEM_LOG_DIRTY_PAGES);
    REQUIRE(e.kvm->stats().memslot_flags_only == 1);
    // Changing userspace_addr, size or READONLY is EINVAL.
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_LOG_DIRTY_PAGES, 0x7f0000200000ull) == -EINVAL);
    REQUIRE(e.slot(0, 0, 4 * MiB, KVM_MEM_LOG_DIRTY_PAGES) == -EINVAL);
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_READONLY) == -EINVAL);
    // Move.
    e.mmu.clear();
    REQUIRE(e.slot(0, 1 * GiB, 2 * MiB, KVM_MEM_LOG_DIRTY_PAGES) == 0);
    REQUIRE(e.mmu.log == std::vector<std::string>{"flush_slot:0", "free:0", "create:0"});
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn(0)) == nullptr);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn((1 * GiB >> 12) + 5))->id == 0);
    REQUIRE(e.kvm->stats().invalidations.back().cause == InvalidateCause::memslot_move);
    REQUIRE(e.kvm->stats().invalidations.back().start_gfn == 0);
    REQUIRE(e.kvm->stats().invalidations.back().end_gfn == 512);
    REQUIRE(e.kvm->stats().invalidations.back().sptes_zapped == 7);
    // Delete.
    e.mmu.clear();
    REQUIRE(e.slot(0, 0, 0) == 0);
    REQUIRE(e.mmu.log == std::vector<std::string>{"flush_slot:0", "free:0"});
    REQUIRE(e.memslot(0) == nullptr);
    REQUIRE(e.kvm->nr_memslot_pages() == 0);
    REQUIRE(e.kvm->stats().memslot_delete == 1);
    REQUIRE(e.kvm->stats().invalidations.back().cause == InvalidateCause::memslot_delete);
}

TEST_CASE("memslot: overlap is EEXIST for create and move, in each address space", "[memslot]") {
    Env e;
    REQUIRE(e.slot(0, 2 * MiB, 2 * MiB) == 0);
    REQUIRE(e.slot(1, 3 * MiB, 2 * MiB, 0, 0x7f0000400000ull) == -EEXIST);
    REQUIRE(e.slot(1, 0, 2 * MiB + 4096, 0, 0x7f0000400000ull) == -EEXIST);
    REQUIRE(e.slot(1, 0, 2 * MiB, 0, 0x7f0000400000ull) == 0);         // adjacent below
    REQUIRE(e.slot(2, 4 * MiB, 2 * MiB, 0, 0x7f0000600000ull) == 0);   // adjacent above
    REQUIRE(e.slot(2, 3 * MiB, 2 * MiB, 0, 0x7f0000600000ull) == -EEXIST);   // move onto slot 0
    REQUIRE(e.slot(0, 2 * MiB - 4096 * 0, 2 * MiB) == 0);
    // A slot may move over its own old range.
    REQUIRE(e.slot(2, 5 * MiB, 2 * MiB, 0, 0x7f0000600000ull) == 0);
    REQUIRE(e.slot((1u << 16) | 5, 2 * MiB, 2 * MiB) == 0);            // other address space
    // EEXIST comes before guest_memfd binding errors.
    REQUIRE(e.slot(7, 2 * MiB, 2 * MiB, KVM_MEM_GUEST_MEMFD, 0, 999) == -EEXIST);
}

TEST_CASE("memslot: guest_memfd slots are immutable, normal slots never gain GUEST_MEMFD", "[memslot]") {
    Env e;
    const int g = e.gmem(8 * MiB, GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(e.gslot(0, 0, 2 * MiB, g) == 0);
    REQUIRE((e.memslot(0)->flags & KVM_MEMSLOT_GMEM_ONLY) != 0);
    const uint64_t uaddr = 0x7f0000000000ull;
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_GUEST_MEMFD, uaddr, g) == -EINVAL);          // identical
    REQUIRE(e.slot(0, 0, 2 * MiB, 0, uaddr) == -EINVAL);                               // drop the flag
    REQUIRE(e.slot(0, 0, 2 * MiB, KVM_MEM_LOG_DIRTY_PAGES, uaddr) == -EINVAL);
    REQUIRE(e.slot(0, 1 * GiB, 2 * MiB, 0, uaddr) == -EINVAL);                          // move, flags 0
    REQUIRE(e.slot(0, 1 * GiB, 2 * MiB, KVM_MEM_GUEST_MEMFD, uaddr, g) == -EINVAL);   // move
    REQUIRE(e.slot(1, 4 * MiB, 2 * MiB, 0, 0x7f0000400000ull) == 0);
    REQUIRE(e.slot(1, 4 * MiB, 2 * MiB, KVM_MEM_GUEST_MEMFD, 0x7f0000400000ull, g, 2 * MiB) == -EINVAL);
    REQUIRE(e.slot(0, 0, 0) == 0);   // only delete works
    REQUIRE(e.file(g).bindings().empty());
}

TEST_CASE("memslot: guest_memfd binding errors", "[memslot]") {
    Env e;
    Env other;
    const int g = e.gmem(8 * MiB);
    const int og = other.gmem(8 * MiB);   // same fd number in another process: use its file below
    (void)og;
    const int memfd = e.proc->memfd_create();
    REQUIRE(e.gslot(0, 0, 2 * MiB, e.proc->invalid_fd()) == -EBADF);
    REQUIRE(e.gslot(0, 0, 2 * MiB, e.proc->dev_kvm_fd()) == -EINVAL);
    REQUIRE(e.gslot(0, 0, 2 * MiB, e.vmfd) == -EINVAL);
    REQUIRE(e.gslot(0, 0, 2 * MiB, memfd) == -EINVAL);
    REQUIRE(e.gslot(0, 0, 2 * MiB, g, 7 * MiB) == -EINVAL);    // beyond the file
    REQUIRE(e.gslot(0, 0, 8 * MiB, g, 0) == 0);
    REQUIRE(e.gslot(1, 1 * GiB, 4096, g, 8 * MiB - 4096) == -EINVAL);   // binding overlap: EINVAL
    REQUIRE(e.slot(0, 0, 0) == 0);
    // Two slots bind disjoint ranges of one file.
    REQUIRE(e.gslot(0, 0, 2 * MiB, g, 0) == 0);
    REQUIRE(e.gslot(1, 1 * GiB, 2 * MiB, g, 4 * MiB) == 0);
    REQUIRE(e.memslot(1)->gmem.pgoff == 1024);
    REQUIRE(e.file(g).binding(1024) == e.memslot(1));
    REQUIRE(e.file(g).binding(512) == nullptr);
    // Another VM's guest_memfd (a second VM in the same process).
    const int vm2 = e.proc->ioctl_create_vm(0, e.ctx);
    uapi::kvm_create_guest_memfd a{};
    a.size = 2 * MiB;
    const int g2 = e.proc->ioctl_create_guest_memfd(vm2, a, e.ctx);
    REQUIRE(e.gslot(2, 2 * GiB, 2 * MiB, g2) == -EINVAL);
}

TEST_CASE("memslot: gfn_to_memslot over many slots", "[memslot]") {
    Env e;
    for (uint32_t i = 0; i < 100; ++i) REQUIRE(e.slot(i, uint64_t(i) * 4 * MiB, 2 * MiB, 0, 0x7f0000000000ull + i * 2 * MiB) == 0);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn((37 * 4 * MiB + 4096) >> 12))->id == 37);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn((37 * 4 * MiB + 2 * MiB) >> 12)) == nullptr);
    std::vector<uint16_t> ids;
    e.kvm->memslots(0).for_each_in_gfn_range(Gfn((10 * 4 * MiB + 3 * MiB) >> 12), Gfn(((13 * 4 * MiB) >> 12) + 1),
                                             [&](kvm_memory_slot& s) { ids.push_back(s.id); });
    REQUIRE(ids == std::vector<uint16_t>{11, 12, 13});
}

TEST_CASE("memslot: a delete records the zapped slot range", "[memslot][invalidate]") {
    Env e;
    REQUIRE(e.slot(0, 2 * MiB, 2 * MiB) == 0);
    REQUIRE(e.slot(0, 0, 0) == 0);
    const InvalidationRecord& rec = e.kvm->stats().invalidations.back();
    REQUIRE(rec.ranges.size() == 1);
    CHECK(rec.ranges[0].memslot == 0);
    CHECK(rec.ranges[0].start_gfn == 512);
    CHECK(rec.ranges[0].end_gfn == 1024);
    CHECK(rec.ranges[0].pages_zapped == 7);
}
