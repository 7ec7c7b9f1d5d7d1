// gmem.max_order 9 (2 MiB guest_memfd folios, the proposed huge-folio series) under KVM's
// SNP backend: 2M folios aligned in the file and in host memory, 2M RMP entries where the
// folio, the gfn alignment and the attributes allow (is_large_rmp_possible()), the NPT
// level capped at the RMP level (sev_gmem_max_mapping_level()), PSMASH when part of a 2M
// page is freed.
#include <catch2/catch.hpp>

#include "kernel/svm/sev_snp.hpp"
#include "tests/kernel/kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;

namespace {

constexpr uint16_t kAsid = 1;

KvmConfig huge_cfg(unsigned order) {
    KvmConfig c = legacy_attrs();
    c.gmem_max_order = order;
    return c;
}

struct HugeEnv {
    Env env;
    rmp::Rmp rmp{rmp::RmpConfig{Hpa(8 * GiB), (8 * GiB) >> kPageShift, 0, 0}, env.mem};
    SevSnpOps ops{rmp, kAsid, SnpCosts{1500, 6000, 600, 1140}};
    int gfd = -1;

    explicit HugeEnv(unsigned order = 9, uint64_t file = 8 * MiB, uint64_t slot_off = 0, VmType t = VmType::snp)
        : env(t, huge_cfg(order)) {
        REQUIRE(env.kvm);
        if (t == VmType::snp) env.kvm->set_arch_ops(ops);
        gfd = env.gmem(file);
        REQUIRE(gfd >= 0);
        REQUIRE(env.gslot(0, 0, file - slot_off, gfd, slot_off) == 0);
        REQUIRE(env.set_attrs(0, file - slot_off, PRIV) == 0);
    }
    // The guest_memfd is released (its pages made shared through ops and the RMP) while
    // both still exist.
    ~HugeEnv() { env.close(); }
    const kvm_memory_slot& slot() const { return *env.kvm->gfn_to_memslot(0, Gfn(0)); }
    Pfn get_pfn(uint64_t gfn, int& order, CycleCounter& c) {
        Pfn pfn;
        REQUIRE(kvm_gmem_get_pfn(*env.kvm, slot(), Gfn(gfn), pfn, order, c) == 0);
        return pfn;
    }
};

}  // namespace

TEST_CASE("gmem.max_order 9: one fault allocates and clears a 2 MiB folio aligned in file and host memory") {
    HugeEnv s;
    CycleCounter c;
    int order = -1;
    const Pfn p = s.get_pfn(5, order, c);
    CHECK(order == 9);
    CHECK(is_aligned(p.raw() - 5, 512));
    GuestMemfd& f = s.env.file(s.gfd);
    CHECK(f.nr_pages_allocated() == 512);
    CHECK(f.nr_huge_folios() == 1);
    uint64_t head = 99;
    CHECK(f.folio_order(511, &head) == 9);
    CHECK(head == 0);
    CHECK(f.folio_order(512) == 0);   // not allocated yet
    CHECK(s.env.kvm->stats().gmem_pages_zeroed == 512);
    // Another gfn of the same folio: same physical block, nothing allocated or cleared.
    CycleCounter c2;
    CHECK(s.get_pfn(300, order, c2) == p + 295);
    CHECK(order == 9);
    CHECK(f.nr_pages_allocated() == 512);
    CHECK(s.env.kvm->stats().gmem_pages_zeroed == 512);
    CHECK(c2.total < c.total);
}

TEST_CASE("gmem.max_order 9 on SNP: the folio's 2 MB become one 2M RMP entry, and the NPT may map 2M over it") {
    HugeEnv s;
    CycleCounter c;
    int order = 0;
    const Pfn p = s.get_pfn(7, order, c);
    const Pfn h(p.raw() - 7);
    const rmp::RmpEntry e = s.rmp.read_entry(h);
    CHECK(e.assigned);
    CHECK(e.size_2m);
    CHECK(!e.validated);
    CHECK(e.gpa == Gpa(0));
    CHECK(e.asid == kAsid);
    CHECK(s.rmp.stats().updates == 1);
    CHECK(s.ops.stats().prepare_2m == 1);
    CHECK(s.rmp.asid_pages(kAsid) == 512);
    // sev_gmem_max_mapping_level(): the RMP level.
    CHECK(s.ops.gmem_max_mapping_level(*s.env.kvm, p) == PgLevel::k2M);
    // A second fault in the folio: assigned already, no RMPUPDATE.
    s.get_pfn(400, order, c);
    CHECK(s.rmp.stats().updates == 1);
}

TEST_CASE("gmem.max_order 0 (upstream): order-0 folios, 4K RMP entries, the NPT capped at 4K") {
    HugeEnv s(0);
    CycleCounter c;
    int order = -1;
    const Pfn p = s.get_pfn(7, order, c);
    CHECK(order == 0);
    CHECK(s.env.file(s.gfd).nr_pages_allocated() == 1);
    CHECK(!s.rmp.read_entry(p).size_2m);
    CHECK(s.ops.stats().prepare_2m == 0);
    CHECK(s.ops.gmem_max_mapping_level(*s.env.kvm, p) == PgLevel::k4K);
    // A page not assigned (never prepared) is mapped at 4K too.
    CHECK(s.ops.gmem_max_mapping_level(*s.env.kvm, p + 1) == PgLevel::k4K);
}

TEST_CASE("a 2 MiB folio over mixed attributes gets a 4K RMP entry (is_large_rmp_possible needs all 512 private)") {
    HugeEnv s;
    REQUIRE(s.env.set_attrs(512 * kPageSize + 9 * kPageSize, kPageSize, 0) == 0);
    CycleCounter c;
    int order = 0;
    const Pfn p = s.get_pfn(512, order, c);
    CHECK(order == 9);   // the folio is huge ...
    CHECK(s.rmp.read_entry(p).assigned);
    CHECK(!s.rmp.read_entry(p).size_2m);   // ... but its RMP entry is not
    CHECK(s.ops.stats().prepare_2m == 0);
    CHECK(s.ops.gmem_max_mapping_level(*s.env.kvm, p) == PgLevel::k4K);
}

TEST_CASE("a slot bound at a file offset not congruent with its gfns modulo 2 MiB maps the huge folio at 4K") {
    // The slot starts at gfn 0 but file page 1: gfn ^ index is odd, so max_order drops to 0.
    HugeEnv s(9, 8 * MiB, kPageSize);
    CycleCounter c;
    int order = -1;
    const Pfn p = s.get_pfn(600, order, c);
    CHECK(order == 0);
    CHECK(s.env.file(s.gfd).nr_huge_folios() == 1);   // the file still allocated a 2 MiB folio
    CHECK(!s.rmp.read_entry(p).size_2m);
}

TEST_CASE("the tail of a file that is not a multiple of 2 MiB gets order-0 folios") {
    HugeEnv s(9, 2 * MiB + 16 * kPageSize);
    CycleCounter c;
    int order = -1;
    s.get_pfn(512 + 3, order, c);
    CHECK(order == 0);
    CHECK(s.env.file(s.gfd).nr_pages_allocated() == 1);
    s.get_pfn(3, order, c);
    CHECK(order == 9);
    CHECK(s.env.file(s.gfd).nr_pages_allocated() == 513);
}

TEST_CASE("punching 4K out of a 2M private page: PSMASH, that page hypervisor-owned, the rest 4K, the folio split") {
    HugeEnv s;
    CycleCounter c;
    int order = 0;
    const Pfn p = s.get_pfn(0, order, c);
    REQUIRE(s.rmp.read_entry(p).size_2m);
    CycleCounter pc;
    REQUIRE(s.env.punch(s.gfd, 10 * kPageSize, kPageSize) == 0);
    CHECK(s.rmp.stats().psmash == 1);
    CHECK(!s.rmp.read_entry(p + 10).assigned);
    CHECK(s.rmp.read_entry(p + 11).assigned);
    CHECK(!s.rmp.lookup(p + 11).size_2m);
    CHECK(s.rmp.lookup(p + 11).gpa == Gpa(11 * kPageSize));   // PSMASH: GPA + i * 4K
    CHECK(s.rmp.asid_pages(kAsid) == 511);
    GuestMemfd& f = s.env.file(s.gfd);
    CHECK(f.nr_huge_folios() == 0);
    CHECK(f.nr_pages_allocated() == 511);
    // The rest of the split folio is order-0 now: 4K mappings, RMP level 4K.
    CHECK(s.get_pfn(11, order, c) == p + 11);
    CHECK(order == 0);
    CHECK(s.ops.gmem_max_mapping_level(*s.env.kvm, p + 11) == PgLevel::k4K);
    // Punching the rest frees every page and the buddy allocator gets its 2 MiB block back.
    const uint64_t used = s.env.alloc.used_pages();
    REQUIRE(s.env.punch(s.gfd, 0, 2 * MiB) == 0);
    CHECK(s.env.alloc.used_pages() == used - 511);
    CHECK(s.rmp.asid_pages(kAsid) == 0);
}

TEST_CASE("punching a whole 2 MiB folio frees its 2M RMP entry with one RMPUPDATE and no PSMASH") {
    HugeEnv s;
    CycleCounter c;
    int order = 0;
    const Pfn p = s.get_pfn(512 + 1, order, c);
    const uint64_t updates = s.rmp.stats().updates;
    REQUIRE(s.env.punch(s.gfd, 2 * MiB, 2 * MiB) == 0);
    CHECK(s.rmp.stats().psmash == 0);
    CHECK(s.rmp.stats().updates == updates + 1);
    CHECK(!s.rmp.lookup(p).assigned);
    CHECK(s.env.file(s.gfd).nr_pages_allocated() == 0);
}

TEST_CASE("gmem.max_order 9 on sw_protected: 2 MiB folios, no RMP, max level from the folio") {
    HugeEnv s(9, 8 * MiB, 0, VmType::sw_protected);
    CycleCounter c;
    int order = -1;
    const Pfn p = s.get_pfn(513, order, c);
    CHECK(order == 9);
    CHECK(s.rmp.stats().updates == 0);
    CHECK(s.env.kvm->arch().gmem_max_mapping_level(*s.env.kvm, p) == PgLevel::k1G);
}
