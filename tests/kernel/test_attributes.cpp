// KVM_SET_MEMORY_ATTRIBUTES: the per-VM store (kvm.vm_memory_attributes = true).
#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

TEST_CASE("set_memory_attributes: ENOTTY without generic attributes or with in-place conversion", "[attrs]") {
    KvmConfig c = legacy_attrs();
    c.generic_memory_attributes = false;
    Env a(VmType::sw_protected, c);
    REQUIRE(a.set_attrs(0, 4096, PRIV) == -ENOTTY);
    REQUIRE(a.set_attrs(1, 0, ~0ull, 7) == -ENOTTY);   // every input
    Env b(VmType::sw_protected);                        // default: in-place conversion
    REQUIRE(b.set_attrs(0, 4096, PRIV) == -ENOTTY);
    REQUIRE(b.proc->ioctl_set_memory_attributes(b.proc->dev_kvm_fd(), {0, 4096, PRIV, 0}, b.ctx) == -EINVAL);
    const int g = b.gmem(4096);
    REQUIRE(b.proc->ioctl_set_memory_attributes(g, {0, 4096, PRIV, 0}, b.ctx) == -ENOTTY);
}

TEST_CASE("set_memory_attributes: validation order", "[attrs]") {
    Env e(VmType::sw_protected, legacy_attrs());
    REQUIRE(e.set_attrs(0, 4096, PRIV, 1) == -EINVAL);           // flags
    REQUIRE(e.set_attrs(0, 4096, 1ull << 0) == -EINVAL);         // unsupported attribute
    REQUIRE(e.set_attrs(0, 0, PRIV) == -EINVAL);                 // size 0
    REQUIRE(e.set_attrs(~0ull & ~kPageMask, 8192, PRIV) == -EINVAL);   // wraps
    REQUIRE(e.set_attrs(1, 4096, PRIV) == -EINVAL);              // unaligned
    REQUIRE(e.set_attrs(0, 4095, PRIV) == -EINVAL);
    REQUIRE(e.set_attrs(0, 4096, PRIV) == 0);                    // no memslot needed
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(0)));
    Env d(VmType::default_vm, legacy_attrs());
    REQUIRE(d.set_attrs(0, 4096, PRIV) == -EINVAL);              // DEFAULT: nothing supported
    REQUIRE(d.set_attrs(0, 4096, 0) == 0);
}

TEST_CASE("set_memory_attributes: invalidates per intersecting slot, clipped, zapping the old kind", "[attrs][invalidate]") {
    Env e(VmType::sw_protected, legacy_attrs());
    REQUIRE(e.slot(0, 0x100 * 4096, 0x100 * 4096) == 0);              // gfns [0x100, 0x200)
    REQUIRE(e.slot(1, 0x300 * 4096, 0x100 * 4096, 0, 0x7f0001000000ull) == 0);   // [0x300, 0x400)
    e.mmu.clear();
    const uint64_t seq = e.kvm->mmu_invalidate_seq;
    // [0x180, 0x380) -> private: slot 0 clipped to [0x180,0x200), slot 1 to [0x300,0x380).
    REQUIRE(e.set_attrs(0x180 * 4096, 0x200 * 4096, PRIV) == 0);
    REQUIRE(e.mmu.unmaps.size() == 2);
    REQUIRE(e.mmu.unmaps[0].slot_id == 0);
    REQUIRE(e.mmu.unmaps[0].start == 0x180);
    REQUIRE(e.mmu.unmaps[0].end == 0x200);
    REQUIRE(e.mmu.unmaps[0].filter == AttrFilter::shared);
    REQUIRE(e.mmu.unmaps[1].slot_id == 1);
    REQUIRE(e.mmu.unmaps[1].start == 0x300);
    REQUIRE(e.mmu.unmaps[1].end == 0x380);
    REQUIRE(e.mmu.unmaps[1].in_progress == 1);
    REQUIRE(e.mmu.log == std::vector<std::string>{"unmap", "unmap", "flush", "post", "post"});
    REQUIRE(e.mmu.post == std::vector<std::pair<uint64_t, uint64_t>>{{0x180, 0x200}, {0x300, 0x380}});
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    const InvalidationRecord& rec = e.kvm->stats().invalidations.back();
    REQUIRE(rec.cause == InvalidateCause::set_attributes);
    REQUIRE(rec.start_gfn == 0x180);
    REQUIRE(rec.end_gfn == 0x380);
    REQUIRE(rec.sptes_zapped == 2);
    REQUIRE(e.kvm->stats().pages_to_private == 0x200);
    // Stored for the whole range, slots or not (one node).
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(0x250)));
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn(0x17f)));
    REQUIRE(e.kvm->mem_attr_array().nodes() == 1);
    REQUIRE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x180), Gfn(0x380), ~0ull, PRIV));
    REQUIRE_FALSE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x17f), Gfn(0x380), ~0ull, PRIV));
    REQUIRE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x0), Gfn(0x180), ~0ull, 0));

    // The same request again: no-op, no invalidation, no seq bump.
    e.mmu.clear();
    REQUIRE(e.set_attrs(0x180 * 4096, 0x200 * 4096, PRIV) == 0);
    REQUIRE(e.mmu.log.empty());
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    REQUIRE(e.kvm->stats().attr_noop == 1);

    // Back to shared over a sub-range: zaps private mappings; entries erased.
    REQUIRE(e.set_attrs(0x1c0 * 4096, 0x40 * 4096, 0) == 0);
    REQUIRE(e.mmu.unmaps.back().filter == AttrFilter::private_);
    REQUIRE(e.mmu.unmaps.back().start == 0x1c0);
    REQUIRE(e.mmu.unmaps.back().end == 0x200);
    REQUIRE(e.kvm->mem_attr_array().nodes() == 2);
    REQUIRE(e.kvm->stats().pages_to_shared == 0x40);
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 2);

    // A range without memslots: stored, no invalidation.
    e.mmu.clear();
    REQUIRE(e.set_attrs(0x1000 * 4096, 4096, PRIV) == 0);
    REQUIRE(e.mmu.log.empty());
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 2);
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(0x1000)));
}

TEST_CASE("set_memory_attributes: attributes survive memslot delete and recreate", "[attrs]") {
    Env e(VmType::sw_protected, legacy_attrs());
    REQUIRE(e.slot(0, 0, 16 * 4096) == 0);
    REQUIRE(e.set_attrs(0, 16 * 4096, PRIV) == 0);
    REQUIRE(e.slot(0, 0, 0) == 0);
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(5)));
    REQUIRE(e.slot(0, 0, 16 * 4096) == 0);
    REQUIRE(e.kvm->kvm_get_memory_attributes(Gfn(5)) == PRIV);
}
