// KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd: in-place conversion (the default).
#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;
using namespace hvsim::uapi;

static constexpr uint64_t PRESERVE = KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE;
static constexpr uint64_t NONE = KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE;
static constexpr uint64_t SHAREABLE = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;

TEST_CASE("attributes2: ENOTTY with per-VM attributes or without the ioctl", "[attrs2]") {
    Env a(VmType::sw_protected, legacy_attrs());
    const int g = a.gmem(16 * 4096);
    REQUIRE(a.set_attrs2(g, 0, 4096, PRIV) == -ENOTTY);
    KvmConfig c = inplace_attrs();
    c.memory_attributes2 = false;
    Env b(VmType::sw_protected, c);
    const int h = b.gmem(16 * 4096);
    REQUIRE(b.set_attrs2(h, 0, 4096, PRIV) == -ENOTTY);
    Env d(VmType::sw_protected);
    REQUIRE(d.set_attrs2(d.vmfd, 0, 4096, PRIV) == -ENOTTY);   // not a guest_memfd
    REQUIRE(d.set_attrs2(99, 0, 4096, PRIV) == -EBADF);
}

TEST_CASE("attributes2: EINVAL cases", "[attrs2]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(16 * 4096, SHAREABLE);
    REQUIRE(e.set_attrs2(g, 0, 4096, PRIV, 1ull << 2) == -EINVAL);          // unknown flag
    REQUIRE(e.set_attrs2(g, 0, 4096, PRIV, PRESERVE | NONE) == -EINVAL);    // both policies
    uapi::kvm_memory_attributes2 a{};
    a.offset = 0;
    a.size = 4096;
    a.attributes = PRIV;
    a.error_offset = 4096;
    REQUIRE(e.proc->ioctl_set_memory_attributes2(g, a, e.ctx) == -EINVAL);  // error_offset in
    a.error_offset = 0;
    a.reserved[10] = 1;
    REQUIRE(e.proc->ioctl_set_memory_attributes2(g, a, e.ctx) == -EINVAL);  // reserved
    REQUIRE(e.set_attrs2(g, 0, 4096, 1ull << 0) == -EINVAL);                // unsupported attr
    REQUIRE(e.set_attrs2(g, 0, 0, PRIV) == -EINVAL);                        // size 0
    REQUIRE(e.set_attrs2(g, 4096, ~0ull & ~kPageMask, PRIV) == -EINVAL);    // wraps
    REQUIRE(e.set_attrs2(g, 1, 4096, PRIV) == -EINVAL);                     // unaligned
    REQUIRE(e.set_attrs2(g, 0, 4095, PRIV) == -EINVAL);
    REQUIRE(e.set_attrs2(g, 16 * 4096, 4096, PRIV) == -EINVAL);             // offset >= i_size
    REQUIRE(e.set_attrs2(g, 15 * 4096, 2 * 4096, PRIV) == -EINVAL);         // end > i_size
    REQUIRE(e.set_attrs2(g, 15 * 4096, 4096, PRIV) == 0);
    Env d(VmType::default_vm);
    const int dg = d.gmem(16 * 4096, SHAREABLE);
    REQUIRE(d.set_attrs2(dg, 0, 4096, PRIV) == -EINVAL);                    // DEFAULT: no PRIVATE
}

TEST_CASE("attributes2: content policy support per VM type and direction", "[attrs2]") {
    struct Row { VmType t; int zero_to_shared, zero_to_priv, preserve_to_shared, preserve_to_priv, none_to_shared, none_to_priv; };
    const int OK = 0, NO = -EOPNOTSUPP;
    const Row rows[] = {
        {VmType::sw_protected, OK, OK, OK, OK, OK, OK},
        {VmType::snp, OK, NO, NO, NO, OK, OK},
        {VmType::tdx, OK, NO, NO, NO, OK, OK},
        {VmType::pkvm, OK, NO, OK, OK, OK, OK},
    };
    for (const Row& r : rows) {
        INFO(vm_type_name(r.t));
        Env e(r.t);
        // Fresh files per request so each one is a real conversion in that direction.
        auto to_shared = [&](uint64_t flags) { return e.set_attrs2(e.gmem(4096), 0, 4096, 0, flags); };
        auto to_priv = [&](uint64_t flags) { return e.set_attrs2(e.gmem(4096, SHAREABLE), 0, 4096, PRIV, flags); };
        REQUIRE(to_shared(0) == r.zero_to_shared);
        REQUIRE(to_priv(0) == r.zero_to_priv);
        REQUIRE(to_shared(PRESERVE) == r.preserve_to_shared);
        REQUIRE(to_priv(PRESERVE) == r.preserve_to_priv);
        REQUIRE(to_shared(NONE) == r.none_to_shared);
        REQUIRE(to_priv(NONE) == r.none_to_priv);
    }
}

namespace {
// Write `v` through the host mmap at page `page`, convert to private with `to_priv_flags`
// and back to shared with `to_shared_flags`, then read the page back through the mmap.
std::vector<uint8_t> round_trip(VmType t, uint64_t to_priv_flags, uint64_t to_shared_flags, int* err = nullptr) {
    Env e(t);
    const int g = e.gmem(8 * 4096, SHAREABLE);
    REQUIRE(e.proc->host_write_gmem(g, 2 * 4096, 4096, 0x5a, e.ctx).err == 0);
    int r = e.set_attrs2(g, 0, 8 * 4096, PRIV, to_priv_flags);
    if (r == 0) r = e.set_attrs2(g, 0, 8 * 4096, 0, to_shared_flags);
    if (err) *err = r;
    return e.proc->host_read_gmem(g, 2 * 4096, 4096, e.ctx).bytes;
}
}  // namespace

TEST_CASE("attributes2: content policies on real bytes", "[attrs2]") {
    const std::vector<uint8_t> z(4096, 0x00), orig(4096, 0x5a), ab(4096, 0xab);
    REQUIRE(round_trip(VmType::sw_protected, PRESERVE, PRESERVE) == orig);
    REQUIRE(round_trip(VmType::sw_protected, PRESERVE, 0) == z);       // ZERO to shared
    REQUIRE(round_trip(VmType::sw_protected, 0, PRESERVE) == z);       // ZERO to private (sw_protected only)
    REQUIRE(round_trip(VmType::sw_protected, NONE, PRESERVE) == ab);   // NONE scribbles 0xab
    REQUIRE(round_trip(VmType::sw_protected, PRESERVE, NONE) == ab);
    REQUIRE(round_trip(VmType::pkvm, PRESERVE, PRESERVE) == orig);     // no encryption: preserved
    REQUIRE(round_trip(VmType::pkvm, NONE, NONE) == orig);             // NONE leaves bytes elsewhere
    REQUIRE(round_trip(VmType::snp, NONE, 0) == z);
    REQUIRE(round_trip(VmType::snp, NONE, NONE) == orig);
    int err = 0;
    round_trip(VmType::snp, PRESERVE, 0, &err);
    REQUIRE(err == -EOPNOTSUPP);
    round_trip(VmType::tdx, 0, 0, &err);
    REQUIRE(err == -EOPNOTSUPP);
}

TEST_CASE("attributes2: to private unmaps the host and fails with EAGAIN on a pin", "[attrs2]") {
    Env e(VmType::sw_protected);
    const int g = e.gmem(16 * 4096, SHAREABLE);
    REQUIRE(e.gslot(0, 0, 16 * 4096, g) == 0);
    REQUIRE(e.proc->host_write_gmem(g, 0, 16 * 4096, 0x33, e.ctx).err == 0);
    REQUIRE(e.proc->pin_gmem(g, 9 * 4096, 2 * 4096, e.ctx) == 2);   // pages 9 and 10
    const uint64_t seq = e.kvm->mmu_invalidate_seq;
    e.mmu.clear();
    uint64_t error_offset = 0;
    REQUIRE(e.set_attrs2(g, 4 * 4096, 12 * 4096, PRIV, PRESERVE, &error_offset) == -EAGAIN);
    REQUIRE(error_offset == 9 * 4096);
    REQUIRE(e.mmu.log.empty());                        // nothing invalidated
    REQUIRE(e.kvm->mmu_invalidate_seq == seq);
    REQUIRE(e.file(g).host_map_count(5) == 0);         // host PTEs of the range are gone
    REQUIRE(e.file(g).host_map_count(3) == 1);         // outside the range: kept
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn(5)));
    REQUIRE(e.kvm->stats().conversion_eagain == 1);
    // A range before the pin converts.
    REQUIRE(e.set_attrs2(g, 4 * 4096, 5 * 4096, PRIV, PRESERVE, &error_offset) == 0);
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(8)));
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn(9)));
    // Now private pages SIGBUS on the host.
    REQUIRE(e.proc->host_read_gmem(g, 5 * 4096, 1, e.ctx).sigbus);
    // Unpin, retry: succeeds.
    REQUIRE(e.proc->unpin_gmem(g, 9 * 4096, 2 * 4096, e.ctx) == 2);
    REQUIRE(e.set_attrs2(g, 4 * 4096, 12 * 4096, PRIV, PRESERVE) == 0);
    REQUIRE(e.kvm->kvm_range_has_memory_attributes(Gfn(4), Gfn(16), ~0ull, PRIV));
}

TEST_CASE("attributes2: invalidation uses the binding arithmetic, a no-op does not bump seq", "[attrs2][invalidate]") {
    Env e(VmType::snp);
    const int g = e.gmem(64 * 4096);   // private by default
    REQUIRE(e.gslot(0, 0x2000 * 4096, 16 * 4096, g, 24 * 4096) == 0);   // file [24, 40) at gfn 0x2000
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(0x2005)));
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn(0x1fff)));              // no slot: shared
    e.mmu.clear();
    const uint64_t seq = e.kvm->mmu_invalidate_seq;
    // File [20, 28) to shared: only [24, 28) is bound -> gfns [0x2000, 0x2004), private zapped.
    REQUIRE(e.set_attrs2(g, 20 * 4096, 8 * 4096, 0) == 0);
    REQUIRE(e.mmu.unmaps.size() == 1);
    REQUIRE(e.mmu.unmaps[0].start == 0x2000);
    REQUIRE(e.mmu.unmaps[0].end == 0x2004);
    REQUIRE(e.mmu.unmaps[0].filter == AttrFilter::private_);
    REQUIRE(e.mmu.log == std::vector<std::string>{"unmap", "flush", "post"});
    REQUIRE(e.mmu.post == std::vector<std::pair<uint64_t, uint64_t>>{{0x2000, 0x2004}});
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    REQUIRE_FALSE(e.kvm->kvm_mem_is_private(Gfn(0x2003)));
    REQUIRE(e.kvm->kvm_mem_is_private(Gfn(0x2004)));
    REQUIRE(e.file(g).attributes().nodes() == 3);
    REQUIRE(e.kvm->stats().pages_to_shared == 8);
    // Same again: no-op.
    e.mmu.clear();
    REQUIRE(e.set_attrs2(g, 20 * 4096, 8 * 4096, 0) == 0);
    REQUIRE(e.mmu.log.empty());
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    REQUIRE(e.kvm->stats().attr_noop == 1);
    // Unbound range: converted, but no MMU invalidation.
    REQUIRE(e.set_attrs2(g, 50 * 4096, 4 * 4096, 0) == 0);
    REQUIRE(e.mmu.log.empty());
    REQUIRE(e.kvm->mmu_invalidate_seq == seq + 1);
    REQUIRE(e.file(g).kvm_gmem_get_attributes(51) == 0);
    // The fault-path range query walks slots and files.
    REQUIRE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x2004), Gfn(0x2010), ~0ull, PRIV));
    REQUIRE_FALSE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x2003), Gfn(0x2010), ~0ull, PRIV));
    REQUIRE(e.kvm->kvm_range_has_memory_attributes(Gfn(0x10), Gfn(0x20), ~0ull, 0));
}

TEST_CASE("attributes2: to shared calls the arch invalidate hook for allocated private pages", "[attrs2]") {
    struct HookOps final : KvmArchOps {
        KvmArchOps& base = kvm_default_arch_ops(VmType::snp);
        std::vector<std::pair<uint64_t, uint64_t>> invalidated;
        std::vector<uint64_t> prepared;
        VmType type() const override { return VmType::snp; }
        bool has_private_mem() const override { return true; }
        bool has_protected_state() const override { return true; }
        bool pre_fault_allowed_initially() const override { return false; }
        bool supported_by(const KvmConfig& c) const override { return base.supported_by(c); }
        int gmem_prepare(Kvm&, Pfn p, Gfn, int, ExecContext&) override {
            prepared.push_back(p.raw());
            return 0;
        }
        void gmem_invalidate(Kvm&, Pfn s, Pfn e, ExecContext&) override { invalidated.emplace_back(s.raw(), e.raw()); }
    } hook;
    Env e(VmType::snp);
    e.kvm->set_arch_ops(hook);
    const int g = e.gmem(16 * 4096);
    REQUIRE(e.gslot(0, 0, 16 * 4096, g) == 0);
    Pfn p;
    int order;
    REQUIRE(kvm_gmem_get_pfn(*e.kvm, *e.memslot(0), Gfn(2), p, order, e.ctx) == 0);
    REQUIRE(hook.prepared == std::vector<uint64_t>{p.raw()});
    REQUIRE(e.set_attrs2(g, 0, 16 * 4096, 0, NONE) == 0);
    REQUIRE(hook.invalidated == std::vector<std::pair<uint64_t, uint64_t>>{{p.raw(), p.raw() + 1}});
    hook.invalidated.clear();
    REQUIRE(e.punch(g, 0, 16 * 4096) == 0);   // freed pages go through the hook too
    REQUIRE(hook.invalidated == std::vector<std::pair<uint64_t, uint64_t>>{{p.raw(), p.raw() + 1}});
}
