#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

static constexpr int KEEP = uapi::falloc::KEEP_SIZE;

TEST_CASE("guest_memfd: create validates flags and size, fds are numbered in order", "[gmem]") {
    Env e;
    for (unsigned bit = 0; bit < 64; ++bit) {
        INFO(bit);
        const int r = e.gmem(4 * 4096, 1ull << bit);
        if (bit <= 1) {
            REQUIRE(r >= 0);
            REQUIRE(e.proc->close(r, e.ctx) == 0);
        } else {
            REQUIRE(r == -EINVAL);
        }
    }
    for (uint64_t size : {0ull, 1ull, 4095ull, 4097ull, 1ull << 63, ~0ull & ~kPageMask}) {
        INFO(size);
        REQUIRE(e.gmem(size) == -EINVAL);
    }
    REQUIRE(e.gmem(4096) == 5);
    REQUIRE(e.gmem(1ull << 62) == 6);   // no memory reserved
    REQUIRE(e.file(6).nr_pages_allocated() == 0);
    REQUIRE(e.file(5).ino() != e.file(6).ino());
    REQUIRE(e.kvm->stats().gmem_created == 4);
    // INIT_SHARED is refused for private-memory VMs with per-VM attributes (6.18) ...
    Env swp(VmType::sw_protected, legacy_attrs());
    REQUIRE(swp.gmem(4096, GUEST_MEMFD_FLAG_INIT_SHARED) == -EINVAL);
    REQUIRE(swp.gmem(4096, GUEST_MEMFD_FLAG_MMAP) == 5);
    // ... and allowed with in-place conversion.
    Env swp2(VmType::sw_protected);
    REQUIRE(swp2.gmem(4096, GUEST_MEMFD_FLAG_INIT_SHARED | GUEST_MEMFD_FLAG_MMAP) == 5);
}

TEST_CASE("guest_memfd: fallocate modes, alignment and bounds", "[gmem]") {
    Env e;
    const int g = e.gmem(4 * 4096);
    REQUIRE(e.fallocate(g, 0, 0, 4096) == -EOPNOTSUPP);                     // no KEEP_SIZE
    REQUIRE(e.fallocate(g, 0, 1, 4096) == -EOPNOTSUPP);                     // mode before alignment
    REQUIRE(e.fallocate(g, uapi::falloc::PUNCH_HOLE, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP | uapi::falloc::ZERO_RANGE, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP | uapi::falloc::COLLAPSE_RANGE, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP | uapi::falloc::INSERT_RANGE, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP | uapi::falloc::UNSHARE_RANGE, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP | 0x100, 0, 4096) == -EOPNOTSUPP);
    REQUIRE(e.fallocate(g, KEEP, 0, 0) == -EINVAL);                         // len 0
    REQUIRE(e.fallocate(g, 0, 0, 0) == -EINVAL);                            // len 0 wins over mode
    REQUIRE(e.fallocate(g, KEEP, 1, 4096) == -EINVAL);
    REQUIRE(e.fallocate(g, KEEP, 0, 4095) == -EINVAL);
    REQUIRE(e.fallocate(g, KEEP, 4 * 4096, 4096) == -EINVAL);               // offset == size
    REQUIRE(e.fallocate(g, KEEP, 2 * 4096, 3 * 4096) == -EINVAL);           // past EOF
    REQUIRE(e.fallocate(g, KEEP, 0, 4 * 4096) == 0);
    REQUIRE(e.file(g).nr_pages_allocated() == 4);
    REQUIRE(e.file(g).page_cache().nodes() == 1);                           // contiguous pfns
    REQUIRE(e.fallocate(g, KEEP, 0, 4 * 4096) == 0);                        // idempotent
    REQUIRE(e.file(g).nr_pages_allocated() == 4);
    REQUIRE(e.punch(g, 4 * 4096, 64 * 4096) == 0);                          // punch past EOF: fine
    REQUIRE(e.punch(g, 4096, 4096) == 0);
    REQUIRE(e.file(g).nr_pages_allocated() == 3);
    REQUIRE_FALSE(e.file(g).filemap_lookup(1).has_value());
    REQUIRE(e.fallocate(e.vmfd, KEEP, 0, 4096) == -ENODEV);
    REQUIRE(e.fallocate(e.proc->invalid_fd(), KEEP, 0, 4096) == -EBADF);
    REQUIRE(e.alloc.used_pages() == 3);
}

TEST_CASE("guest_memfd: mmap checks MMAP before MAP_SHARED", "[gmem]") {
    Env e;
    const int plain = e.gmem(4 * 4096);
    const int initsh = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_INIT_SHARED);   // accepted without MMAP
    const int mm = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(e.proc->mmap(plain, 0, 4096, true, e.ctx).err == -ENODEV);
    REQUIRE(e.proc->mmap(plain, 0, 4096, false, e.ctx).err == -ENODEV);
    REQUIRE(e.proc->mmap(initsh, 0, 4096, true, e.ctx).err == -ENODEV);
    REQUIRE(e.proc->mmap(mm, 0, 4096, false, e.ctx).err == -EINVAL);
    REQUIRE(e.proc->mmap(mm, 0, 4096, true, e.ctx).err == 0);
    REQUIRE(e.proc->mmap(e.vmfd, 0, 4096, true, e.ctx).err == -ENODEV);
    REQUIRE(e.proc->host_read_gmem(plain, 0, 8, e.ctx).err == -ENODEV);
}

TEST_CASE("guest_memfd: host access through the mmap: SIGBUS, readback, punch reads zeros", "[gmem]") {
    Env e;
    const int g = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE_FALSE(e.proc->host_write_gmem(g, 0, 3 * 4096, 0x5a, e.ctx).sigbus);
    HostAccessResult r = e.proc->host_read_gmem(g, 4096, 4096, e.ctx);
    REQUIRE(r.err == 0);
    REQUIRE(r.bytes == std::vector<uint8_t>(4096, 0x5a));
    REQUIRE(e.file(g).host_map_count(1) == 1);
    // Beyond EOF: SIGBUS.
    r = e.proc->host_read_gmem(g, 4 * 4096, 8, e.ctx);
    REQUIRE(r.sigbus);
    REQUIRE(r.err == -EFAULT);
    REQUIRE(e.proc->host_write_gmem(g, 3 * 4096 + 4000, 200, 1, e.ctx).sigbus);   // crosses EOF
    // Punch the first page: host PTE dropped, page freed, re-fault reads zeros.
    REQUIRE(e.punch(g, 0, 4096) == 0);
    REQUIRE(e.file(g).host_map_count(0) == 0);
    r = e.proc->host_read_gmem(g, 0, 4096, e.ctx);
    REQUIRE(r.bytes == std::vector<uint8_t>(4096, 0));
    REQUIRE(e.proc->host_read_gmem(g, 4096, 1, e.ctx).bytes[0] == 0x5a);

    // MMAP without INIT_SHARED: all memory is private to the guest: SIGBUS.
    const int p = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP);
    REQUIRE(e.proc->host_read_gmem(p, 0, 1, e.ctx).sigbus);
    REQUIRE(e.proc->stats().host_sigbus >= 3);
}

namespace {
// Invalidation calls as "unmap slot [start,end) filter", in order.
std::vector<std::tuple<uint16_t, uint64_t, uint64_t>> unmaps(const RecordingMmu& m) {
    std::vector<std::tuple<uint16_t, uint64_t, uint64_t>> v;
    for (auto& u : m.unmaps) v.emplace_back(u.slot_id, u.start, u.end);
    return v;
}
}  // namespace

TEST_CASE("guest_memfd: punch hole invalidates exactly the bound gfns (guest_memfd invalidation patch arithmetic)", "[gmem][invalidate]") {
    Env e(VmType::sw_protected, legacy_attrs());
    const int g = e.gmem(64 * 4096);
    // slot 0: file pages [0, 16) at gfn 0x100; slot 1: file pages [32, 48) at gfn 0x1000.
    REQUIRE(e.gslot(0, 0x100 * 4096, 16 * 4096, g, 0) == 0);
    REQUIRE(e.gslot(1, 0x1000 * 4096, 16 * 4096, g, 32 * 4096) == 0);
    e.mmu.clear();
    const uint64_t seq = e.kvm->mmu_invalidate_seq;

    // Punch file pages [40, 44): only slot 1, gfns 0x1000 + (40-32) .. + (44-32).
    REQUIRE(e.punch(g, 40 * 4096, 4 * 4096) == 0);
    REQUIRE(unmaps(e.mmu) == std::vector<std::tuple<uint16_t, uint64_t, uint64_t>>{{1, 0x1008, 0x100c}});
    REQUIRE(e.mmu.unmaps[0].filter == AttrFilter::private_);
    REQUIRE(e.mmu.unmaps[0].in_progress == 1);
    REQUIRE(e.mmu.unmaps[0].range_start == 0x1008);   // range_add before the unmap
    REQUIRE(e.mmu.unmaps[0].range_end == 0x100c);
    REQUIRE(e.mmu.log == std::vector<std::string>{"unmap", "flush"});
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    REQUIRE(e.kvm->mmu_invalidate_in_progress == 0);
    const InvalidationRecord& rec = e.kvm->stats().invalidations.back();
    REQUIRE(rec.cause == InvalidateCause::punch_hole);
    REQUIRE(rec.start_gfn == 0x1008);
    REQUIRE(rec.end_gfn == 0x100c);
    REQUIRE(rec.attr_filter == AttrFilter::private_);
    REQUIRE(rec.sptes_zapped == 1);
    REQUIRE(rec.flush_remote);
    REQUIRE(rec.cycles >= 3000);   // includes the flush charged by the MMU

    // Punch [8, 36): the tail of slot 0 and the head of slot 1; the union spans both.
    e.mmu.clear();
    REQUIRE(e.punch(g, 8 * 4096, 28 * 4096) == 0);
    REQUIRE(unmaps(e.mmu) ==
            std::vector<std::tuple<uint16_t, uint64_t, uint64_t>>{{0, 0x108, 0x110}, {1, 0x1000, 0x1004}});
    REQUIRE(e.mmu.unmaps[1].range_start == 0x108);
    REQUIRE(e.mmu.unmaps[1].range_end == 0x1004);
    REQUIRE(e.kvm->stats().invalidations.back().start_gfn == 0x108);
    REQUIRE(e.kvm->stats().invalidations.back().end_gfn == 0x1004);
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 2);

    // Punch only unbound file pages [16, 32): no begin/end, no seq bump, no record.
    e.mmu.clear();
    const size_t nrec = e.kvm->stats().invalidations.size();
    REQUIRE(e.punch(g, 16 * 4096, 16 * 4096) == 0);
    REQUIRE(e.mmu.log.empty());
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 2);
    REQUIRE(e.kvm->stats().invalidations.size() == nrec);

    // Nothing to flush: no flush call.
    e.mmu.flush_on_unmap = false;
    e.mmu.clear();
    REQUIRE(e.punch(g, 0, 4096) == 0);
    REQUIRE(e.mmu.log == std::vector<std::string>{"unmap"});
    REQUIRE_FALSE(e.kvm->stats().invalidations.back().flush_remote);
}

TEST_CASE("guest_memfd: invalidation filter per mode and file flags", "[gmem][invalidate]") {
    {
        Env e(VmType::default_vm, legacy_attrs());
        const int g = e.gmem(16 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
        REQUIRE(e.gslot(0, 0, 16 * 4096, g) == 0);
        REQUIRE(e.punch(g, 0, 4096) == 0);
        REQUIRE(e.mmu.unmaps.back().filter == AttrFilter::shared);
    }
    {
        Env e(VmType::sw_protected);   // in-place conversion: both kinds live in one file
        const int g = e.gmem(16 * 4096);
        REQUIRE(e.gslot(0, 0, 16 * 4096, g) == 0);
        REQUIRE(e.punch(g, 0, 4096) == 0);
        REQUIRE(e.mmu.unmaps.back().filter == AttrFilter::both);
    }
}

TEST_CASE("guest_memfd: kvm_gmem_get_pfn allocates zeroed pages and reports binding errors", "[gmem]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(64 * 4096);
    REQUIRE(e.gslot(0, 0x10000, 8 * 4096, g, 16 * 4096) == 0);
    const kvm_memory_slot* s = e.memslot(0);
    // Dirty a host page, free it, and let guest_memfd reuse it: it must read zeros.
    auto dirty = e.alloc.alloc(0);
    e.mem.fill(pfn_to_hpa(*dirty), 0xee, 4096);
    e.alloc.free(*dirty, 0);
    Pfn pfn;
    int order = -1;
    REQUIRE(kvm_gmem_get_pfn(*e.kvm, *s, Gfn(0x10 + 3), pfn, order, e.ctx) == 0);
    REQUIRE(order == 0);
    REQUIRE(pfn == *dirty);
    REQUIRE(e.mem.read64(pfn_to_hpa(pfn)) == 0);
    REQUIRE(e.file(g).filemap_lookup(16 + 3) == pfn);
    REQUIRE(e.file(g).uptodate(19));
    Pfn again;
    REQUIRE(kvm_gmem_get_pfn(*e.kvm, *s, Gfn(0x13), again, order, e.ctx) == 0);
    REQUIRE(again == pfn);
    REQUIRE(e.kvm->stats().gmem_pages_allocated == 1);
    // A slot object that is not the bound one: EIO.
    kvm_memory_slot copy = *s;
    REQUIRE(kvm_gmem_get_pfn(*e.kvm, copy, Gfn(0x13), again, order, e.ctx) == -EIO);
    // Close the file: the slot keeps its binding but file == nullptr -> EFAULT.
    e.mmu.clear();
    REQUIRE(e.proc->close(g, e.ctx) == 0);
    REQUIRE(s->gmem.file == nullptr);
    REQUIRE(kvm_gmem_get_pfn(*e.kvm, *s, Gfn(0x13), again, order, e.ctx) == -EFAULT);
    // Release zapped everything mapped from the file (over pgoff [0, ~0)): the whole slot.
    REQUIRE(unmaps(e.mmu) == std::vector<std::tuple<uint16_t, uint64_t, uint64_t>>{{0, 0x10, 0x18}});
    REQUIRE(e.kvm->stats().invalidations.back().cause == InvalidateCause::gmem_release);
    REQUIRE(e.alloc.used_pages() == 0);   // the inode went with its only file
    // Deleting the slot afterwards is fine (nothing left to unbind).
    REQUIRE(e.slot(0, 0, 0) == 0);
}

TEST_CASE("guest_memfd: the VM lives on after its fd is closed while a guest_memfd is open", "[gmem]") {
    Env e;
    const int g = e.gmem(16 * 4096);
    REQUIRE(e.gslot(0, 0, 16 * 4096, g) == 0);
    std::weak_ptr<Kvm> weak = e.kvm;
    e.kvm.reset();
    REQUIRE(e.proc->close(e.vmfd, e.ctx) == 0);
    REQUIRE_FALSE(weak.expired());
    REQUIRE(e.slot(1, 1 * GiB, 4096) == -EBADF);   // the VM fd is gone
    REQUIRE(e.fallocate(g, KEEP, 0, 4 * 4096) == 0);
    REQUIRE(e.punch(g, 0, 4096) == 0);
    REQUIRE(weak.lock()->mmu_invalidate_seq == 1);
    REQUIRE(e.proc->close(g, e.ctx) == 0);
    REQUIRE(weak.expired());   // the last reference was the guest_memfd
    REQUIRE(e.alloc.used_pages() == 0);
}

TEST_CASE("guest_memfd: an mmap keeps the file open after close", "[gmem]") {
    Env e;
    const int g = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    auto m = e.proc->mmap(g, 0, 4 * 4096, true, e.ctx);
    REQUIRE(m.err == 0);
    REQUIRE(e.proc->host_write(m.addr, 4096, 0x11, e.ctx).err == 0);
    std::weak_ptr<GuestMemfd> file = e.proc->gmem(g);
    REQUIRE(e.proc->close(g, e.ctx) == 0);
    REQUIRE_FALSE(file.lock()->released());
    REQUIRE(e.proc->host_read(m.addr, 1, e.ctx).bytes[0] == 0x11);
    REQUIRE(e.proc->munmap(m.addr, 4 * 4096, e.ctx) == 0);
    REQUIRE(file.expired());
    REQUIRE(e.alloc.used_pages() == 0);
}

TEST_CASE("guest_memfd: pinned pages survive a punch hole until unpinned", "[gmem]") {
    Env e;
    const int g = e.gmem(4 * 4096, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE(e.proc->pin_gmem(g, 4096, 4096, e.ctx) == 1);
    REQUIRE(e.file(g).pin_count(1) == 1);
    REQUIRE(e.punch(g, 0, 4 * 4096) == 0);
    REQUIRE(e.file(g).nr_pages_allocated() == 0);
    REQUIRE(e.file(g).nr_orphaned_pins() == 1);
    REQUIRE(e.alloc.used_pages() == 1);
    REQUIRE(e.proc->unpin_gmem(g, 4096, 4096, e.ctx) == 1);
    REQUIRE(e.alloc.used_pages() == 0);
}

TEST_CASE("guest_memfd: an invalidation records one entry per zapped gfn range and the protected union apart",
          "[gmem][invalidate]") {
    Env e(VmType::sw_protected, legacy_attrs());
    const int g = e.gmem(4 * MiB);
    // slot 0: file [0, 2M) at 4 GiB; slot 1: file [2M, 4M) at gpa 0. A punch over both is
    // two small ranges a million gfns apart.
    REQUIRE(e.gslot(0, 4 * GiB, 2 * MiB, g, 0) == 0);
    REQUIRE(e.gslot(1, 0, 2 * MiB, g, 2 * MiB) == 0);
    e.mmu.clear();
    e.mmu.zaps_per_unmap = 3;
    REQUIRE(e.punch(g, 1 * MiB, 2 * MiB) == 0);
    const InvalidationRecord& rec = e.kvm->stats().invalidations.back();
    REQUIRE(rec.ranges.size() == 2);
    CHECK(rec.ranges[0].memslot == 0);
    CHECK(rec.ranges[0].start_gfn == 0x100100);
    CHECK(rec.ranges[0].end_gfn == 0x100200);
    CHECK(rec.ranges[0].pages_zapped == 3);
    CHECK(rec.ranges[1].memslot == 1);
    CHECK(rec.ranges[1].start_gfn == 0);
    CHECK(rec.ranges[1].end_gfn == 0x100);
    CHECK(rec.ranges[1].pages_zapped == 3);
    CHECK(rec.sptes_zapped == 6);
    // The union faults were kept off, as before.
    CHECK(rec.start_gfn == 0);
    CHECK(rec.end_gfn == 0x100200);
}
