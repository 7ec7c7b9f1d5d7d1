// kvm_gmem_populate() (virt/kvm/guest_memfd.c): the generic launch-time copy-in both
// SNP_LAUNCH_UPDATE and KVM_TDX_INIT_MEM_REGION go through, with a recording arch backend.
#include <catch2/catch.hpp>

#include "tests/kernel/kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;

namespace {

// The sw_protected answers plus a post_populate hook that records its calls.
struct PopulateArch final : KvmArchOps {
    KvmArchOps& base = kvm_default_arch_ops(VmType::sw_protected);
    struct Call {
        uint64_t gfn;
        Pfn pfn;
        std::optional<Pfn> src;
    };
    std::vector<Call> calls;
    int fail_at_gfn = -1;   // answer -EIO for this gfn
    VmType type() const override { return base.type(); }
    bool has_private_mem() const override { return true; }
    bool has_protected_state() const override { return false; }
    bool pre_fault_allowed_initially() const override { return true; }
    bool supported_by(const KvmConfig& c) const override { return base.supported_by(c); }
    bool fault_is_private(const Kvm& k, Gfn g, uint64_t ec) const override { return base.fault_is_private(k, g, ec); }
    int gmem_post_populate(Kvm&, Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext&) override {
        if (int64_t(gfn.raw()) == fail_at_gfn) return -EIO;
        calls.push_back({gfn.raw(), pfn, src});
        return 0;
    }
};

struct PopEnv {
    Env env{VmType::sw_protected, legacy_attrs()};
    PopulateArch arch;
    int gfd = -1;
    PopEnv() {
        REQUIRE(env.kvm);
        env.kvm->set_arch_ops(arch);
        gfd = env.gmem(1 * MiB);
        REQUIRE(gfd >= 0);
        REQUIRE(env.gslot(0, 0, 1 * MiB, gfd) == 0);
        // The first 512 KiB private, the rest shared.
        uapi::kvm_memory_attributes a{0, 512 * KiB, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
        REQUIRE(env.proc->ioctl_set_memory_attributes(env.vmfd, a, env.ctx) == 0);
    }
    ~PopEnv() { env.kvm->set_arch_ops(kvm_default_arch_ops(VmType::sw_protected)); }
    std::vector<Pfn> src(size_t n) {
        std::vector<Pfn> v;
        for (size_t i = 0; i < n; ++i) v.push_back(Pfn(0x80000 + i));
        return v;
    }
};

}  // namespace

TEST_CASE("kvm_gmem_populate calls post_populate per page with its source page and marks it prepared",
          "[kernel][gmem][populate]") {
    PopEnv e;
    CycleCounter c;
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(4), e.src(3), 3, c) == 3);
    REQUIRE(e.arch.calls.size() == 3);
    CHECK(e.arch.calls[0].gfn == 4);
    CHECK(e.arch.calls[2].gfn == 6);
    CHECK(e.arch.calls[1].src == Pfn(0x80001));
    // The pages post_populate got are the guest_memfd's pages (no clearing: they hold the image).
    CycleCounter c2;
    Pfn pfn;
    int order = 0;
    const kvm_memory_slot& slot = *e.env.kvm->gfn_to_memslot(0, Gfn(5));
    REQUIRE(kvm_gmem_get_pfn(*e.env.kvm, slot, Gfn(5), pfn, order, c2) == 0);
    CHECK(pfn == e.arch.calls[1].pfn);
    CHECK(e.env.kvm->stats().gmem_pages_zeroed == 0);
    // A second populate of a prepared page is EEXIST (__kvm_gmem_get_pfn's is_prepared).
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(5), e.src(1), 1, c) == -EEXIST);
    // No source (SNP ZERO pages): nullopt.
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(10), {}, 1, c) == 1);
    CHECK_FALSE(e.arch.calls.back().src);
}

TEST_CASE("kvm_gmem_populate refuses shared gfns (EINVAL), stops with partial progress, and clamps to the slot",
          "[kernel][gmem][populate]") {
    PopEnv e;
    CycleCounter c;
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(200), e.src(1), 1, c) == -EINVAL);   // gfn 200 is shared
    // Two private pages, then the first shared one: 2 done.
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(126), e.src(4), 4, c) == 2);
    CHECK(e.arch.calls.size() == 2);
    // A page faulted in before is prepared: EEXIST.
    Pfn pfn;
    int order = 0;
    REQUIRE(kvm_gmem_get_pfn(*e.env.kvm, *e.env.kvm->gfn_to_memslot(0, Gfn(50)), Gfn(50), pfn, order, c) == 0);
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(50), e.src(1), 1, c) == -EEXIST);
    // The arch's error on the first page is the result; on a later page, the pages done.
    e.arch.fail_at_gfn = 60;
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(60), e.src(1), 1, c) == -EIO);
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(58), e.src(3), 3, c) == 2);
    // A failed page is not prepared: populating it again is tried again.
    e.arch.fail_at_gfn = -1;
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(60), e.src(1), 1, c) == 1);
    // Arguments: no pages, no memslot, a short source.
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(0), e.src(1), 0, c) == -EINVAL);
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(1 << 20), e.src(1), 1, c) == -EINVAL);
    CHECK(kvm_gmem_populate(*e.env.kvm, Gfn(70), e.src(1), 2, c) == -EINVAL);
}

TEST_CASE("kvm_gmem_populate on a slot without guest_memfd is EINVAL, an arch without a launch flow refuses",
          "[kernel][gmem][populate]") {
    Env env{VmType::sw_protected, legacy_attrs()};
    REQUIRE(env.kvm);
    const int gfd = env.gmem(1 * MiB);
    REQUIRE(env.gslot(0, 0, 1 * MiB, gfd) == 0);
    uapi::kvm_memory_attributes a{0, 1 * MiB, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(env.proc->ioctl_set_memory_attributes(env.vmfd, a, env.ctx) == 0);
    CycleCounter c;
    // The built-in sw_protected backend has no post_populate: EOPNOTSUPP.
    CHECK(kvm_gmem_populate(*env.kvm, Gfn(3), {Pfn(0x80000)}, 1, c) == -EOPNOTSUPP);
    CHECK(kvm_gmem_populate(*env.kvm, Gfn(0x10000), {Pfn(0x80000)}, 1, c) == -EINVAL);   // no memslot
}
