// The break-before-make checker on Casemate-style traces (arm64 case ids 18-27), driven
// through the TLBI domain as the hypervisor drives it.
#include <catch2/catch.hpp>

#include "models/stage2/bbm_checker.hpp"
#include "models/stage2/tlbi.hpp"

using namespace hvsim;
using namespace hvsim::stage2;

namespace {

constexpr uint64_t kLoc = 0x4000'1000;   // a level-3 descriptor
constexpr uint64_t kIpa = 0x20'0000;
constexpr uint64_t kLeafA = 0x70'0000 | desc::VALID | desc::TABLE | desc::AF | desc::S2AP_R | (0xfull << 2);
constexpr uint64_t kLeafB = 0x71'0000 | desc::VALID | desc::TABLE | desc::AF | desc::S2AP_R | (0xfull << 2);

struct Trace {
    BbmChecker chk;
    TlbiDomain dom;
    uint64_t cur = 0;
    explicit Trace(BbmChecker::Mode m = BbmChecker::Mode::architectural) : chk(m) {
        dom.add_sink(&chk);
        dom.vttbr(1, 0x4000'0000);
    }
    void write(uint64_t v, uint64_t loc = kLoc, int level = 3, uint64_t ia = kIpa, uint16_t vmid = 1) {
        TraceEvent e;
        e.kind = TraceEvent::Kind::write;
        e.loc = loc;
        e.old = cur;
        e.value = v;
        e.ia = ia;
        e.level = level;
        e.vmid = vmid;
        e.release = true;
        dom.wrote(e);
        if (loc == kLoc) cur = v;
    }
    void dsb(Barrier b = Barrier::dsb_ish) { dom.barrier(b); }
    void tlbi(TlbiOp op, uint64_t ipa = kIpa, int level = 3) { dom.tlbi(op, 1, ipa, level); }
    bool flagged(const std::string& what) const {
        for (const auto& v : chk.violations())
            if (v.what == what) return true;
        return false;
    }
};

// KVM's sequence for a valid leaf (__kvm_tlb_flush_vmid_ipa): break, DSB, IPAS2E1IS,
// DSB, VMALLE1IS, DSB, make.
void kvm_leaf_bbm(Trace& t, uint64_t nw, Barrier dsb = Barrier::dsb_ish) {
    t.write(0);
    t.dsb(dsb);
    t.tlbi(TlbiOp::ipas2e1is);
    t.dsb(dsb);
    t.tlbi(TlbiOp::vmalle1is);
    t.dsb(dsb);
    t.write(nw);
}

}  // namespace

TEST_CASE("bbm: arm64 case 18: a valid leaf given another output address in place -> BBM valid->valid") {
    Trace t;
    t.write(kLeafA);
    t.write(kLeafB);
    CHECK(t.flagged("BBM valid->valid"));
}

TEST_CASE("bbm: arm64 case 19: break and DSBs without a TLBI -> BBM invalid unclean->valid") {
    Trace t;
    t.write(kLeafA);
    t.write(0);
    t.dsb();
    t.dsb();
    t.write(kLeafB);
    CHECK(t.flagged("BBM invalid unclean->valid"));
}

TEST_CASE("bbm: arm64 case 20: KVM's leaf sequence (IPAS2E1IS, DSB, VMALLE1IS, DSB) is accepted") {
    Trace t;
    t.write(kLeafA);
    kvm_leaf_bbm(t, kLeafB);
    CHECK(t.chk.ok());
    CHECK(t.chk.bbm_sequences() == 1);
}

TEST_CASE("bbm: arm64 case 21: a stage-1-only TLBI first is ineffective -> flagged") {
    Trace t;
    t.write(kLeafA);
    t.write(0);
    t.dsb();
    t.tlbi(TlbiOp::vmalle1is);
    t.dsb();
    t.write(kLeafB);
    CHECK(t.flagged("BBM invalid unclean->valid"));
}

TEST_CASE("bbm: arm64 case 22: VMALLS12E1IS covers both stages -> accepted") {
    Trace t;
    t.write(kLeafA);
    t.write(0);
    t.dsb();
    t.tlbi(TlbiOp::vmalls12e1is);
    t.dsb();
    t.write(kLeafB);
    CHECK(t.chk.ok());
}

TEST_CASE("bbm: arm64 case 23: the TLBIs run with another VMID in VTTBR_EL2 -> flagged") {
    Trace t;
    t.write(kLeafA);
    t.write(0);
    t.dsb();
    t.dom.vttbr(2, 0x5000'0000);
    t.tlbi(TlbiOp::ipas2e1is);
    t.dsb();
    t.tlbi(TlbiOp::vmalle1is);
    t.dsb();
    t.dom.vttbr(1, 0x4000'0000);
    t.write(kLeafB);
    CHECK(t.flagged("BBM invalid unclean->valid"));
}

TEST_CASE("bbm: arm64 case 24: DSB NSH: unsupported in Casemate-strict mode, promoted in architectural mode") {
    Trace strict(BbmChecker::Mode::casemate_strict);
    strict.write(kLeafA);
    kvm_leaf_bbm(strict, kLeafB, Barrier::dsb_nsh);
    CHECK(strict.flagged("Unsupported DSB NSH"));
    Trace arch;
    arch.write(kLeafA);
    kvm_leaf_bbm(arch, kLeafB, Barrier::dsb_nsh);
    CHECK(arch.chk.ok());
}

TEST_CASE("bbm: arm64 case 25: a change of software bits 58:55 only needs no BBM (both modes)") {
    for (auto m : {BbmChecker::Mode::architectural, BbmChecker::Mode::casemate_strict}) {
        Trace t(m);
        t.write(kLeafA);
        t.write(kLeafA | (1ull << 55));   // pKVM page state in SW0
        CHECK(t.chk.ok());
    }
}

TEST_CASE("bbm: arm64 case 26: KVM's in-place S2AP write-enable: accepted architecturally, flagged by Casemate-strict") {
    Trace arch;
    arch.write(kLeafA);
    arch.write(kLeafA | desc::S2AP_W);
    CHECK(arch.chk.ok());
    Trace strict(BbmChecker::Mode::casemate_strict);
    strict.write(kLeafA);
    strict.write(kLeafA | desc::S2AP_W);
    CHECK(strict.flagged("BBM valid->valid"));
}

TEST_CASE("bbm: arm64 case 27: block -> table split: built unlinked, block broken and cleaned, then linked") {
    constexpr uint64_t kBlockLoc = 0x4000'0008;   // level-2 descriptor for IPA 2 MiB..4 MiB
    constexpr uint64_t kBlock = 0x60'0000 | desc::VALID | desc::AF | desc::S2AP_R | (0xfull << 2);
    constexpr uint64_t kNewTable = 0x4000'5000;
    const uint64_t table_desc = kNewTable | desc::VALID | desc::TABLE;
    SECTION("KVM's order is accepted") {
        Trace t;
        t.write(kBlock, kBlockLoc, 2);
        for (uint64_t i = 0; i < 512; ++i)
            t.write((0x60'0000 + i * 4096) | desc::VALID | desc::TABLE | desc::AF, kNewTable + i * 8, 3,
                    kIpa + i * 4096);
        t.write(0, kBlockLoc, 2);
        t.dsb();
        t.tlbi(TlbiOp::ipas2e1is, kIpa, 2);
        t.dsb();
        t.tlbi(TlbiOp::vmalle1is);
        t.dsb();
        t.write(table_desc, kBlockLoc, 2);
        CHECK(t.chk.ok());
    }
    SECTION("installing the table over the still-valid block -> BBM valid->valid") {
        Trace t;
        t.write(kBlock, kBlockLoc, 2);
        t.write(table_desc, kBlockLoc, 2);
        CHECK(t.flagged("BBM valid->valid"));
    }
}

TEST_CASE("bbm: a table descriptor's children may not change while it is unclean") {
    constexpr uint64_t kTableLoc = 0x4000'0010;
    constexpr uint64_t kChildPage = 0x4000'7000;
    Trace t;
    t.write(kChildPage | desc::VALID | desc::TABLE, kTableLoc, 2);
    t.write(kLeafA, kChildPage + 8, 3);
    t.write(0, kTableLoc, 2);
    t.write(kLeafB, kChildPage + 8, 3);
    CHECK(t.flagged("Wrote on a page with an unclean parent"));
}

TEST_CASE("bbm: requires_bbm distinguishes address, attribute and type changes from permission changes") {
    using M = BbmChecker::Mode;
    CHECK(BbmChecker::requires_bbm(kLeafA, kLeafB, 3, M::architectural));
    CHECK(BbmChecker::requires_bbm(kLeafA, kLeafA ^ (0xaull << 2), 3, M::architectural));   // MemAttr
    CHECK_FALSE(BbmChecker::requires_bbm(kLeafA, kLeafA | desc::S2AP_W, 3, M::architectural));
    CHECK_FALSE(BbmChecker::requires_bbm(kLeafA, kLeafA & ~desc::AF, 3, M::architectural));
    CHECK(BbmChecker::requires_bbm(kLeafA, kLeafA & ~desc::AF, 3, M::casemate_strict));
}
