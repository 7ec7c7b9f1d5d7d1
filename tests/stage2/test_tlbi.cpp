// TLBs tagged by VMID and ASID; TLBI IPAS2E1IS / VMALLE1IS / VMALLS12E1IS as the Arm
// ARM scopes them, broadcast to every core of the domain (no IPI), with their costs.
#include <catch2/catch.hpp>

#include "models/stage2/stage2_mmu.hpp"
#include "models/stage2/tlbi.hpp"
#include "tests/stage2/s2_builder.hpp"

using namespace hvsim;
using namespace hvsim::stage2;
using namespace hvsim::stage2::test;
using mmu::AccessType;

namespace {
struct TwoCores {
    PhysMem mem;
    CountingMemory port{mem};
    S2Geometry geo = kvm_stage2_geometry(Granule::k4K, 40);
    DescBuilder vm1 = DescBuilder::stage2(mem, geo, 0x4000'0000);
    DescBuilder vm2 = DescBuilder::stage2(mem, geo, 0x5000'0000);
    Stage2Mmu c0{Stage2Config{}, port}, c1{Stage2Config{}, port};
    TlbiDomain dom{TlbiCosts::uniform(10, 200, 30, 20)};
    TwoCores() {
        for (Stage2Mmu* c : {&c0, &c1}) {
            c->set_vtcr(kvm_vtcr(geo));
            c->set_vttbr(1, Hpa(vm1.root()));
            dom.attach(*c);
        }
        vm1.map(0x10'0000, 0x70'0000, 3, kS2Rw);
        vm2.map(0x10'0000, 0x80'0000, 3, kS2Rw);
    }
};
}  // namespace

TEST_CASE("tlbi: TLB entries are tagged with the VMID: two VMs' same IPA coexist") {
    TwoCores t;
    CHECK(t.c0.translate(Gva(0x10'0000), AccessType::read, false).hpa.raw() == 0x70'0000);
    t.c0.set_vttbr(2, Hpa(t.vm2.root()));
    auto r = t.c0.translate(Gva(0x10'0000), AccessType::read, false);
    CHECK_FALSE(r.tlb_hit);
    CHECK(r.hpa.raw() == 0x80'0000);
    t.c0.set_vttbr(1, Hpa(t.vm1.root()));
    r = t.c0.translate(Gva(0x10'0000), AccessType::read, false);
    CHECK(r.tlb_hit);   // VMID 1's entry survived VMID 2's run
    CHECK(r.hpa.raw() == 0x70'0000);
}

TEST_CASE("tlbi: IPAS2E1IS alone leaves the combined entry, VMALLE1IS after it removes it on every core") {
    TwoCores t;
    for (Stage2Mmu* c : {&t.c0, &t.c1}) REQUIRE(c->translate(Gva(0x10'0000), AccessType::read, false).ok());
    // Remap the IPA (no BBM here: the TLB scope is under test).
    t.vm1.map(0x10'0000, 0x90'0000, 3, kS2Rw);
    Cycles c = t.dom.tlbi(TlbiOp::ipas2e1is, 1, 0x10'0000, 3);
    c += t.dom.barrier(Barrier::dsb_ish);
    CHECK(c == 210);
    // The combined stage-1+2 entry still translates to the old page.
    CHECK(t.c1.translate(Gva(0x10'0000), AccessType::read, false).hpa.raw() == 0x70'0000);
    t.dom.tlbi(TlbiOp::vmalle1is, 1);
    t.dom.barrier(Barrier::dsb_ish);
    t.dom.barrier(Barrier::isb);
    for (Stage2Mmu* c1 : {&t.c0, &t.c1}) {
        const auto r = c1->translate(Gva(0x10'0000), AccessType::read, false);
        CHECK_FALSE(r.tlb_hit);
        CHECK(r.hpa.raw() == 0x90'0000);
        CHECK(c1->s2_stats().tlbi == 2);
    }
    CHECK(t.dom.stats().tlbi_broadcast == 2);
    CHECK(t.dom.stats().dsb == 2);
}

TEST_CASE("tlbi: VMALLS12E1IS drops one VMID everywhere and leaves the others") {
    TwoCores t;
    t.c1.set_vttbr(2, Hpa(t.vm2.root()));
    REQUIRE(t.c0.translate(Gva(0x10'0000), AccessType::read, false).ok());
    REQUIRE(t.c1.translate(Gva(0x10'0000), AccessType::read, false).ok());
    t.dom.tlbi(TlbiOp::vmalls12e1is, 1);
    CHECK_FALSE(t.c0.translate(Gva(0x10'0000), AccessType::read, false).tlb_hit);
    CHECK(t.c1.translate(Gva(0x10'0000), AccessType::read, false).tlb_hit);
}

TEST_CASE("tlbi: a local TLBI (KVM's relax-permissions path) reaches only the issuing core") {
    TwoCores t;
    for (Stage2Mmu* c : {&t.c0, &t.c1}) REQUIRE(c->translate(Gva(0x10'0000), AccessType::read, false).ok());
    t.dom.tlbi(TlbiOp::vmalle1, 1, 0, 3, /*cpu=*/1);
    CHECK(t.c0.translate(Gva(0x10'0000), AccessType::read, false).tlb_hit);
    CHECK_FALSE(t.c1.translate(Gva(0x10'0000), AccessType::read, false).tlb_hit);
    CHECK(t.dom.stats().tlbi_broadcast == 0);
}

TEST_CASE("tlbi: TLB entries are tagged with the ASID") {
    PhysMem mem;
    CountingMemory port(mem);
    const auto geo = kvm_stage2_geometry(Granule::k4K, 40);
    DescBuilder s2 = DescBuilder::stage2(mem, geo, 0x4000'0000);
    auto to_pa = [](uint64_t a) { return a + 0x8000'0000; };
    const auto s1g = s1_geometry(Granule::k4K, 48);
    DescBuilder a = DescBuilder::stage1(mem, s1g, 0x1000'0000, to_pa);
    DescBuilder b = DescBuilder::stage1(mem, s1g, 0x1100'0000, to_pa);
    a.map(0x40'0000, 0x2000'0000, 3, kS1Rw);
    b.map(0x40'0000, 0x2000'1000, 3, kS1Rw);
    for (uint64_t p = 0x1000'0000; p < a.next_free(); p += 4096) s2.map(p, to_pa(p), 3, kS2Rw);
    for (uint64_t p = 0x1100'0000; p < b.next_free(); p += 4096) s2.map(p, to_pa(p), 3, kS2Rw);
    s2.map(0x2000'0000, 0x9000'0000, 3, kS2Rw);
    s2.map(0x2000'1000, 0x9100'0000, 3, kS2Rw);
    Stage2Mmu m(Stage2Config{}, port);
    m.set_vtcr(kvm_vtcr(geo));
    m.set_vttbr(1, Hpa(s2.root()));
    m.set_tcr(Granule::k4K, 48);
    m.set_ttbr0(1, Gpa(a.root()));
    CHECK(m.translate(Gva(0x40'0000), AccessType::read, false).hpa.raw() == 0x9000'0000);
    m.set_ttbr0(2, Gpa(b.root()));
    CHECK(m.translate(Gva(0x40'0000), AccessType::read, false).hpa.raw() == 0x9100'0000);
    m.set_ttbr0(1, Gpa(a.root()));
    const auto r = m.translate(Gva(0x40'0000), AccessType::read, false);
    CHECK(r.tlb_hit);
    CHECK(r.hpa.raw() == 0x9000'0000);
}
