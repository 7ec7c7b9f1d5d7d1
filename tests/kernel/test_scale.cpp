// Scale: work follows touched ranges, not the guest size (structure sizes, not time).
#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

TEST_CASE("scale: 1 TiB guest_memfd, 64 GiB conversion touches few nodes and pages", "[scale]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(1 * TiB, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    REQUIRE(g >= 0);
    REQUIRE(e.slot(0, 4 * GiB, 1 * TiB, KVM_MEM_GUEST_MEMFD, 0x100000000000ull, uint32_t(g), 0) == 0);
    // A few pages, scattered.
    for (uint64_t off : {uint64_t(0), 8 * GiB, 8 * GiB + 4096, 40 * GiB, 700 * GiB})
        REQUIRE(e.proc->host_write_gmem(g, off, 4096, 0x5a, e.ctx).err == 0);
    REQUIRE(e.file(g).nr_pages_allocated() == 5);
    const uint64_t used = e.alloc.used_pages();
    // Convert 64 GiB to private, preserving contents.
    REQUIRE(e.set_attrs2(g, 4 * GiB, 64 * GiB, PRIV, KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE) == 0);
    REQUIRE(e.file(g).attributes().nodes() == 3);
    REQUIRE(e.file(g).page_cache().nodes() == 4);        // 8 GiB and 8 GiB + 4 KiB share a run
    REQUIRE(e.kvm->stats().policy_pages_preserved == 3); // 8 GiB, +4 KiB, 40 GiB
    REQUIRE(e.kvm->stats().pages_to_private == (64 * GiB) >> 12);
    REQUIRE(e.kvm->stats().host_pages_unmapped == 3);
    REQUIRE(e.alloc.used_pages() == used);                // nothing allocated by the conversion
    REQUIRE(e.mmu.unmaps.size() == 1);                     // one binding, one clipped range
    REQUIRE(e.mmu.unmaps[0].start == (4 * GiB + 4 * GiB) >> 12);
    REQUIRE(e.mmu.unmaps[0].end == (4 * GiB + 68 * GiB) >> 12);
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn((4 * GiB + 40 * GiB) >> 12)));
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn((4 * GiB + 68 * GiB) >> 12)));
    // And back, zeroing: only the allocated pages are touched.
    REQUIRE(e.set_attrs2(g, 4 * GiB, 64 * GiB, 0) == 0);
    REQUIRE(e.kvm->stats().policy_pages_zeroed == 3);
    REQUIRE(e.file(g).attributes().nodes() == 1);
    // Punching the whole file frees exactly the allocated pages.
    REQUIRE(e.punch(g, 0, 1 * TiB) == 0);
    REQUIRE(e.file(g).nr_pages_allocated() == 0);
    REQUIRE(e.kvm->stats().gmem_pages_freed == 5);
}

TEST_CASE("scale: per-VM attributes over 64 GiB stay one node", "[scale]") {
    Env e(VmType::sw_protected, legacy_attrs());
    REQUIRE(e.slot(0, 0, 1 * TiB, 0, 0x100000000000ull) == 0);
    REQUIRE(e.set_attrs(4 * GiB, 64 * GiB, PRIV) == 0);
    REQUIRE(e.kvm->mem_attr_array().nodes() == 1);
    REQUIRE(e.set_attrs(8 * GiB, 4096, 0) == 0);
    REQUIRE(e.kvm->mem_attr_array().nodes() == 2);
    // Charged as Linux's per-gfn xarray stores, without per-gfn host work.
    REQUIRE(e.kvm->stats().pages_to_private == (64 * GiB) >> 12);
}

TEST_CASE("scale: 32764 memslots, then one more is EINVAL", "[scale][memslot]") {
    Env e;
    for (uint32_t i = 0; i < 32764; ++i) {
        const int r = e.slot(i, uint64_t(i) * 2 * 4096, 4096, 0, 0x7f0000000000ull + uint64_t(i) * 4096);
        if (r != 0) FAIL("slot " << i << ": " << r);
    }
    REQUIRE(e.kvm->memslots(0).size() == 32764);
    REQUIRE(e.slot(32764, 1 * GiB, 4096) == -EINVAL);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn(2 * 20000))->id == 20000);
    REQUIRE(e.kvm->gfn_to_memslot(0, Gfn(2 * 20000 + 1)) == nullptr);
    REQUIRE(e.slot(30000, uint64_t(30000) * 2 * 4096 + 4096, 4096, 0, 0x7f0000000000ull + 30000ull * 4096) == 0);   // move into the gap
    REQUIRE(e.slot(30001, uint64_t(30000) * 2 * 4096, 4096, 0, 0x7f0000000000ull + 30001ull * 4096) == 0);
    REQUIRE(e.slot(30002, uint64_t(30000) * 2 * 4096 + 4096, 4096, 0, 0x7f0000000000ull + 30002ull * 4096) == -EEXIST);
}
