// The TDX module's rules, one test per numbered case of the module's semantics table
// (TDX module 1.5.01 source, tdh_mem_*.c / tdg_mem_page_accept.c; case ids "C<n>").
#include <catch2/catch.hpp>

#include "models/tdx/sept_state_graph.hpp"
#include "models/tdx/tdx_module.hpp"

using namespace hvsim;
using namespace hvsim::tdx;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t G = 0x40000000;   // a 1 GiB-aligned private GPA

struct Rig {
    PhysMem mem;
    TdxModule m{mem};
    Hpa tdr{0x10000000};
    uint64_t next = 0x10100000;   // S-EPT and spare pages
    uint64_t next_big = 0x40000000;   // 2M-aligned guest pages

    explicit Rig(bool runnable = true, bool pending_ve_disable = true) {
        m.create_td(tdr, Hpa(0x10001000), 4, pending_ve_disable);
        m.vp_create(tdr);
        m.vp_create(tdr);
        if (runnable) REQUIRE(m.tdh_mr_finalize(tdr).rax == status::SUCCESS);
    }
    Hpa page() {
        const Hpa p(next);
        next += kPageSize;
        return p;
    }
    Hpa big() {
        const Hpa p(next_big);
        next_big += 2 * MiB;
        return p;
    }
    // SEPT.ADD the tables down to `level` (the entry at `level` stays FREE).
    void tables(uint64_t gpa, unsigned level) {
        // The GPA operand is aligned to the size the entry maps (verify_page_info_input()).
        for (unsigned l = 3; l > level; --l) {
            const uint64_t g = gpa & ~((1ull << (kPageShift + 9 * l)) - 1);
            if (m.sept_read(tdr, g, l).state == SeptState::nl_mapped) continue;
            REQUIRE(m.tdh_mem_sept_add(gpa_level(g, l), tdr, page()).rax == 0);
        }
    }
    SeptState st(uint64_t gpa, unsigned level) { return m.sept_read(tdr, gpa, level).state; }
    // A 4K MAPPED page at gpa in a RUNNABLE TD: AUG + ACCEPT.
    Hpa mapped(uint64_t gpa) {
        const Hpa p = page();
        REQUIRE(m.tdh_mem_page_aug(gpa_level(gpa, 0), tdr, p).rax == 0);
        REQUIRE(m.tdg_mem_page_accept(tdr, 0, gpa_level(gpa, 0)).rax == 0);
        return p;
    }
};

}  // namespace

TEST_CASE("C1: AUG of a FREE 4K entry makes it PENDING, the page PT_REG owned by the TD", "[tdx][aug]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.page();
    const uint64_t before = r.m.child_count(r.tdr);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0);
    const auto v = r.m.sept_read(r.tdr, G, 0);
    CHECK(v.state == SeptState::pending);
    CHECK(sept_public_state(v.state) == 2);
    CHECK_FALSE(septe::present(v.entry));   // RWX = 0: the CPU faults on it
    CHECK(r.m.pamt(p).pt == PageType::reg);
    CHECK(r.m.pamt(p).owner == r.tdr.raw());
    CHECK(r.m.child_count(r.tdr) == before + 1);
}

TEST_CASE("C2: AUG of a PENDING entry is EPT_ENTRY_STATE_INCORRECT|RCX, RDX = level 0, state 2", "[tdx][aug]") {
    Rig r;
    r.tables(G, 0);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
    const SeamRet s = r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page());
    CHECK(s.rax == 0xC0000B0D00000001ull);
    CHECK(s.rdx == (0 | (2u << 8)));
}

TEST_CASE("C3: AUG below a FREE PDE is EPT_WALK_FAILED|RCX, RDX = level 1, state 0", "[tdx][aug]") {
    Rig r;
    r.tables(G, 1);
    const SeamRet s = r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page());
    CHECK(s.rax == 0xC0000B0000000001ull);
    CHECK(s.rdx == 1);
    CHECK(s.rcx == septe::SVE);   // a FREE entry reads as SVE only
}

TEST_CASE("C4: SEPT.ADD links a table of 512 FREE entries, the page becomes PT_EPT", "[tdx][sept]") {
    Rig r;
    r.tables(G, 1);
    const Hpa t = r.page();
    CHECK(r.m.tdh_mem_sept_add(gpa_level(G, 1), r.tdr, t).rax == 0);
    CHECK(r.st(G, 1) == SeptState::nl_mapped);
    CHECK(sept_public_state(SeptState::nl_mapped) == 0x84);
    CHECK(r.m.pamt(t).pt == PageType::ept);
    for (unsigned i = 0; i < 512; ++i) CHECK(r.st(G + i * kPageSize, 0) == SeptState::free);
}

TEST_CASE("C5: SEPT.ADD over an NL_MAPPED entry (v0) is EPT_ENTRY_STATE_INCORRECT|RCX", "[tdx][sept]") {
    Rig r;
    r.tables(G, 0);
    CHECK(r.m.tdh_mem_sept_add(gpa_level(G, 1), r.tdr, r.page()).rax == 0xC0000B0D00000001ull);
    // allow_existing: success, the page is not consumed
    const Hpa spare = r.page();
    CHECK(r.m.tdh_mem_sept_add(gpa_level(G, 1), r.tdr, spare, true).rax == 0);
    CHECK(r.m.pamt(spare).pt == PageType::nda);
}

TEST_CASE("C6: SEPT.ADD at level 1 below a FREE PDPTE is EPT_WALK_FAILED, RDX level 2", "[tdx][sept]") {
    Rig r;
    r.tables(G, 2);
    const SeamRet s = r.m.tdh_mem_sept_add(gpa_level(G, 1), r.tdr, r.page());
    CHECK(s.rax == 0xC0000B0000000001ull);
    CHECK((s.rdx & 7) == 2);
}

TEST_CASE("C7: SEPT.ADD of a page that is already PT_REG is PAGE_METADATA_INCORRECT|R8", "[tdx][sept]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.page();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0);
    r.tables(G + 2 * MiB, 1);
    CHECK(r.m.tdh_mem_sept_add(gpa_level(G + 2 * MiB, 1), r.tdr, p).rax == 0xC000030000000008ull);
}

TEST_CASE("C8: a 2M AUG whose range holds a PT_REG 4K page is PAGE_METADATA_INCORRECT|R8", "[tdx][aug]") {
    Rig r;
    r.tables(G, 0);
    const Hpa big = r.big();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, Hpa(big.raw() + 5 * kPageSize)).rax == 0);
    r.tables(G + 2 * MiB, 1);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G + 2 * MiB, 1), r.tdr, big).rax == 0xC000030000000008ull);
    // A clean 2M range works and counts 512 children.
    const uint64_t before = r.m.child_count(r.tdr);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G + 2 * MiB, 1), r.tdr, r.big()).rax == 0);
    CHECK(r.m.child_count(r.tdr) == before + 512);
}

TEST_CASE("C9: a 2M AUG on an NL_MAPPED PDE is EPT_ENTRY_STATE_INCORRECT|RCX", "[tdx][aug]") {
    Rig r;
    r.tables(G, 0);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G, 1), r.tdr, r.big()).rax == 0xC0000B0D00000001ull);
}

TEST_CASE("C10: PAGE.ADD in RUNNABLE is OP_STATE_INCORRECT", "[tdx][build]") {
    Rig r;
    r.tables(G, 0);
    CHECK(r.m.tdh_mem_page_add(gpa_level(G, 0), r.tdr, r.page(), r.page()).rax == 0xC000060800000000ull);
}

TEST_CASE("C11: PAGE.ADD copies the source, maps the page MAPPED at once and changes the MRTD", "[tdx][build]") {
    Rig r(false);
    r.tables(G, 0);
    const Hpa src = r.page(), dst = r.page();
    r.mem.fill(src, 0x77, kPageSize);
    const auto mr = r.m.mrtd(r.tdr);
    CHECK(r.m.tdh_mem_page_add(gpa_level(G, 0), r.tdr, dst, src).rax == 0);
    CHECK(r.st(G, 0) == SeptState::mapped);
    CHECK(septe::present(r.m.sept_read(r.tdr, G, 0).entry));
    CHECK(r.mem.read64(Hpa(dst.raw() + 8)) == 0x7777777777777777ull);
    CHECK(r.m.mrtd(r.tdr) != mr);
    CHECK(r.m.pamt(dst).pt == PageType::reg);
}

TEST_CASE("C12: MR.EXTEND of a FREE entry is EPT_ENTRY_NOT_PRESENT|RCX, misaligned is OPERAND_INVALID|RCX",
          "[tdx][build]") {
    Rig r(false);
    r.tables(G, 0);
    CHECK(r.m.tdh_mr_extend(G, r.tdr).rax == 0xC0000B0300000001ull);
    CHECK(r.m.tdh_mr_extend(G + 0x80, r.tdr).rax == 0xC000010000000001ull);
    REQUIRE(r.m.tdh_mem_page_add(gpa_level(G, 0), r.tdr, r.page(), r.page()).rax == 0);
    const auto mr = r.m.mrtd(r.tdr);
    for (unsigned i = 0; i < 16; ++i) CHECK(r.m.tdh_mr_extend(G + 256 * i, r.tdr).rax == 0);
    CHECK(r.m.mrtd(r.tdr) != mr);
}

TEST_CASE("C13: MR.FINALIZE needs a vCPU (NO_VCPUS), then the TD is RUNNABLE", "[tdx][build]") {
    PhysMem mem;
    TdxModule m(mem);
    const Hpa tdr(0x10000000);
    m.create_td(tdr, Hpa(0x10001000), 4);
    CHECK(m.tdh_mr_finalize(tdr).rax == 0xC000060900000000ull);
    m.vp_create(tdr);
    CHECK(m.tdh_mr_finalize(tdr).rax == 0);
    CHECK(m.op_state(tdr) == OpState::runnable);
}

TEST_CASE("C14/C15: BLOCK makes MAPPED BLOCKED with BEPOCH = TD_EPOCH, again is ALREADY_BLOCKED (no error)",
          "[tdx][block]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.mapped(G);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.st(G, 0) == SeptState::blocked);
    CHECK(r.m.pamt(p).bepoch == r.m.td_epoch(r.tdr));
    const SeamRet s = r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr);
    CHECK(s.rax == 0x00000B0700000001ull);
    CHECK_FALSE(is_error(s.rax));
    CHECK(r.st(G, 0) == SeptState::blocked);
}

TEST_CASE("C16: BLOCK of a FREE entry is EPT_ENTRY_STATE_INCORRECT|RCX", "[tdx][block]") {
    Rig r;
    r.tables(G, 0);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0xC0000B0D00000001ull);
}

TEST_CASE("C17: REMOVE of an unblocked MAPPED page in RUNNABLE is GPA_RANGE_NOT_BLOCKED|RCX", "[tdx][remove]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    CHECK(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr).rax == 0xC0000B0600000001ull);
}

TEST_CASE("C18: in INITIALIZED a MAPPED page is removed without BLOCK/TRACK, RCX = the page", "[tdx][remove]") {
    Rig r(false);
    r.tables(G, 0);
    const Hpa p = r.page();
    REQUIRE(r.m.tdh_mem_page_add(gpa_level(G, 0), r.tdr, p, r.page()).rax == 0);
    const SeamRet s = r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr);
    CHECK(s.rax == 0);
    CHECK(s.rcx == p.raw());
    CHECK(r.st(G, 0) == SeptState::free);
    CHECK(r.m.pamt(p).pt == PageType::nda);
}

TEST_CASE("C19: REMOVE after BLOCK without TRACK is TLB_TRACKING_NOT_DONE|RCX", "[tdx][remove][track]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr).rax == 0xC0000B0800000001ull);
}

TEST_CASE("C20/C21: a vCPU inside since the blocking epoch holds REMOVE and a second TRACK until it exits",
          "[tdx][remove][track]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.mapped(G);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    const uint64_t e = r.m.td_epoch(r.tdr);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.td_epoch(r.tdr) == e + 1);
    CHECK(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr).rax == 0xC0000B0800000001ull);
    // C21: TRACK again before v0 exits
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0x8000020100000000ull);
    CHECK(r.m.td_epoch(r.tdr) == e + 1);
    r.m.td_exit(r.tdr, 0);   // the kick
    const SeamRet s = r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr);
    CHECK(s.rax == 0);
    CHECK(s.rcx == p.raw());
}

TEST_CASE("C22/C23: with no vCPU inside TRACK + REMOVE succeed, two TRACKs track any older block",
          "[tdx][remove][track]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    r.mapped(G + kPageSize);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G + kPageSize, 0), r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_remove(gpa_level(G + kPageSize, 0), r.tdr).rax == 0);
}

TEST_CASE("C24: WBINVD of a page still assigned is PAGE_METADATA_INCORRECT|RCX, after REMOVE it succeeds",
          "[tdx][wbinvd]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.mapped(G);
    CHECK(r.m.tdh_phymem_page_wbinvd(p).rax == 0xC000030000000001ull);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.m.tdh_phymem_page_wbinvd(p).rax == 0);
}

TEST_CASE("C25: UNBLOCK before tracking is TLB_TRACKING_NOT_DONE|SEPT_TREE, after TRACK + exits MAPPED again",
          "[tdx][block][track]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 1).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_range_unblock(gpa_level(G, 0), r.tdr).rax == 0xC0000B0800000092ull);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    r.m.td_exit(r.tdr, 1);
    CHECK(r.m.tdh_mem_range_unblock(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.st(G, 0) == SeptState::mapped);
    CHECK(septe::present(r.m.sept_read(r.tdr, G, 0).entry));
}

TEST_CASE("C26: SEPT.REMOVE of a blocked, tracked table with a MAPPED child is EPT_PAGE_NOT_FREE|RCX",
          "[tdx][sept]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    CHECK(r.st(G, 1) == SeptState::nl_blocked);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_sept_remove(gpa_level(G, 1), r.tdr).rax == 0xC0000B0E00000001ull);
}

TEST_CASE("C27: DEMOTE needs BLOCK + TRACK in RUNNABLE, then 512 4K MAPPED children, the new table PT_EPT",
          "[tdx][demote]") {
    Rig r;
    r.tables(G, 1);
    const Hpa big = r.big();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 1), r.tdr, big).rax == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 1)).rax == 0);
    REQUIRE(r.st(G, 1) == SeptState::mapped);
    const Hpa t = r.page();
    CHECK(r.m.tdh_mem_page_demote(gpa_level(G, 1), r.tdr, t).rax == 0xC0000B0600000001ull);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_demote(gpa_level(G, 1), r.tdr, t).rax == 0);
    CHECK(r.st(G, 1) == SeptState::nl_mapped);
    for (unsigned i = 0; i < 512; ++i) {
        const auto v = r.m.sept_read(r.tdr, G + i * kPageSize, 0);
        CHECK(v.state == SeptState::mapped);
        CHECK((v.entry & septe::ADDR) == big.raw() + i * kPageSize);
    }
    CHECK(r.m.pamt(t).pt == PageType::ept);
}

TEST_CASE("C28: DEMOTE of a blocked, tracked 2M PENDING leaf gives 512 PENDING, a 4K ACCEPT then maps one",
          "[tdx][demote][accept]") {
    Rig r;
    r.tables(G, 1);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 1), r.tdr, r.big()).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_demote(gpa_level(G, 1), r.tdr, r.page()).rax == 0);
    CHECK(r.st(G + 7 * kPageSize, 0) == SeptState::pending);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + kPageSize, 0)).rax == 0);
    CHECK(r.st(G + kPageSize, 0) == SeptState::mapped);
    CHECK(r.st(G, 0) == SeptState::pending);
}

TEST_CASE("C29: PROMOTE with one PENDING child among MAPPED ones is EPT_INVALID_PROMOTE_CONDITIONS|RCX",
          "[tdx][promote]") {
    Rig r;
    r.tables(G, 1);
    const Hpa big = r.big();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 1), r.tdr, big).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_page_demote(gpa_level(G, 1), r.tdr, r.page()).rax == 0);
    for (unsigned i = 0; i < 511; ++i)
        REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + i * kPageSize, 0)).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.m.tdh_mem_page_promote(gpa_level(G, 1), r.tdr).rax == 0xC0000B0900000001ull);
    CHECK(r.st(G, 1) == SeptState::nl_blocked);
    // The last child accepted (unblock first: ACCEPT walks only NL_MAPPED tables) -> PROMOTE succeeds.
    REQUIRE(r.m.tdh_mem_range_unblock(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + 511 * kPageSize, 0)).rax == 0);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    const SeamRet s = r.m.tdh_mem_page_promote(gpa_level(G, 1), r.tdr);
    CHECK(s.rax == 0);
    CHECK(r.st(G, 1) == SeptState::mapped);
    CHECK(r.m.pamt(Hpa(s.rcx)).pt == PageType::nda);
    CHECK(r.m.pamt(big).pt == PageType::reg);
}

TEST_CASE("C31: AUG while another LP is inside BLOCK (S-EPT tree exclusive) is OPERAND_BUSY|SEPT_TREE",
          "[tdx][busy]") {
    Rig r;
    r.tables(G, 0);
    r.m.hold(r.tdr, TdxModule::Hold::sept_tree_exclusive);
    const SeamRet s = r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page());
    CHECK(s.rax == 0x8000020000000092ull);
    CHECK(is_operand_busy(s.rax));
    r.m.release(r.tdr, TdxModule::Hold::sept_tree_exclusive);
    // symmetric: AUG in flight (tree shared) makes BLOCK busy
    r.m.hold(r.tdr, TdxModule::Hold::sept_tree_shared);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 1), r.tdr).rax == 0x8000020000000092ull);
    r.m.release(r.tdr, TdxModule::Hold::sept_tree_shared);
    CHECK(r.m.stats().busy == 2);
}

TEST_CASE("C32: TRACK and VP.ENTER while another LP is inside TRACK are OPERAND_BUSY|TD_EPOCH", "[tdx][busy]") {
    Rig r;
    r.m.hold(r.tdr, TdxModule::Hold::epoch_exclusive);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0x80000200000000A9ull);
    CHECK(r.m.tdh_vp_enter(r.tdr, 0).rax == 0x80000200000000A9ull);
    r.m.release(r.tdr, TdxModule::Hold::epoch_exclusive);
    CHECK(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
}

TEST_CASE("C33: SEPT.ADD while another LP is inside PAGE.ADD (TDR exclusive) is OPERAND_BUSY|RDX", "[tdx][busy]") {
    Rig r(false);
    r.m.hold(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_mem_sept_add(gpa_level(0, 3), r.tdr, r.page()).rax == 0x8000020000000002ull);
    r.m.release(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_mem_sept_add(gpa_level(0, 3), r.tdr, r.page()).rax == 0);
}

TEST_CASE("C34: host BLOCK on an entry a guest ACCEPT holds: BUSY|RCX and host priority, the guest backs off",
          "[tdx][busy][accept]") {
    Rig r;
    r.tables(G, 0);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
    r.m.guest_lock_entry(r.tdr, G);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0x8000020000000001ull);
    CHECK(r.m.sept_read(r.tdr, G, 0).entry & septe::TDHP);
    r.m.guest_unlock_entry(r.tdr, G);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0x8000020400000001ull);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.st(G, 0) == SeptState::pending_blocked);
    CHECK_FALSE(r.m.sept_read(r.tdr, G, 0).entry & septe::TDHP);
}

TEST_CASE("C31 timed: a BLOCK inside [t, t + hold) makes an AUG of another thread busy until it ends", "[tdx][busy][timed]") {
    Rig r;
    r.tables(G, 0);
    r.tables(G + 2 * MiB, 0);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G + 2 * MiB, 0), r.tdr, r.page()).rax == 0);
    // BLOCK at cycle 1000 for 500 cycles: the S-EPT tree lock is exclusive until 1500.
    r.m.at(1000, 500);
    REQUIRE(r.m.tdh_mem_range_block(gpa_level(G + 2 * MiB, 0), r.tdr).rax == 0);
    const Hpa p = r.page();
    r.m.at(1499, 100);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0x8000020000000092ull);
    CHECK(r.st(G, 0) == SeptState::free);
    r.m.at(1500, 100);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0);
    // The AUG (tree shared) until 1600 makes a BLOCK at 1550 busy, not one at 1600.
    r.m.at(1550, 10);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0x8000020000000092ull);
    r.m.at(1600, 10);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    // An untimed leaf afterwards sees no timed hold (at() is one-shot).
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G + 4096, 0), r.tdr, r.page()).rax == 0);
    CHECK(r.m.stats().busy == 2);
}

TEST_CASE("C31 timed: two AUGs at the same time in different entries share the tree, the same entry is BUSY|RCX",
          "[tdx][busy][timed]") {
    Rig r;
    r.tables(G, 0);
    r.m.at(100, 1000);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
    r.m.at(100, 1000);
    CHECK(r.m.tdh_mem_page_aug(gpa_level(G + 4096, 0), r.tdr, r.page()).rax == 0);
    // A second host leaf on the first entry while the AUG holds its entry lock.
    r.m.at(500, 10);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0x8000020000000092ull);   // tree first
    r.m.at(1100, 10);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
}

TEST_CASE("C32 timed: a TRACK holds the epoch lock: VP.ENTER and a second TRACK inside it are BUSY|TD_EPOCH",
          "[tdx][busy][timed]") {
    Rig r;
    r.m.at(0, 300);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    r.m.at(299, 10);
    CHECK(r.m.tdh_vp_enter(r.tdr, 0).rax == 0x80000200000000A9ull);
    r.m.at(200, 10);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0x80000200000000A9ull);
    r.m.at(300, 10);
    CHECK(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    // VP.ENTER samples the epoch under the lock shared: a TRACK meanwhile is busy.
    r.m.at(305, 10);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == 0x80000200000000A9ull);
}

TEST_CASE("C34/A5 timed: an ACCEPT holds its entry while it zeroes: another ACCEPT is BUSY|RCX, a host BLOCK "
          "sets host priority, a kick interrupts the ACCEPT",
          "[tdx][busy][accept][timed]") {
    Rig r;
    r.tables(G, 0);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
    r.m.at(0, 2000);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0);
    r.m.at(10, 2000);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 1, gpa_level(G, 0)).rax == 0x8000020000000001ull);   // A5
    r.m.at(20, 50);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0x8000020000000001ull);
    CHECK(r.m.sept_read(r.tdr, G, 0).entry & septe::TDHP);
    // KVM's kick reaches the vCPU inside the TDCALL: the entry lock goes with it.
    r.m.interrupt_guest_leaves(r.tdr);
    r.m.at(100, 50);
    CHECK(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr).rax == 0);
    CHECK(r.st(G, 0) == SeptState::blocked);
}

TEST_CASE("C35: ACCEPT of a PENDING 4K page zeroes it and maps it", "[tdx][accept]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.page();
    r.mem.fill(p, 0xee, kPageSize);   // the module does not clear at AUG
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0);
    CHECK(r.st(G, 0) == SeptState::mapped);
    CHECK(r.mem.read64(Hpa(p.raw() + 64)) == 0);
    CHECK(r.m.stats().accept == 1);
}

TEST_CASE("C36: ACCEPT of a MAPPED page is PAGE_ALREADY_ACCEPTED with the level (not an error class)",
          "[tdx][accept]") {
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0)).rax == 0x00000B0A00000000ull);
    r.tables(G + 2 * MiB, 1);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G + 2 * MiB, 1), r.tdr, r.big()).rax == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + 2 * MiB, 1)).rax == 0);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + 2 * MiB + kPageSize, 0)).rax == 0x00000B0A00000001ull);
}

TEST_CASE("C37: a 2M ACCEPT where the host mapped 4K is PAGE_SIZE_MISMATCH|1", "[tdx][accept]") {
    Rig r;
    r.tables(G, 0);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 1)).rax == 0xC0000B0B00000001ull);
}

TEST_CASE("C38: ACCEPT with a FREE PDE exits to the host (type 1: requested level, reached 1, state 0)",
          "[tdx][accept]") {
    Rig r;
    r.tables(G, 1);
    GuestRet a = r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 1));
    CHECK(a.kind == GuestRet::Kind::td_exit);
    CHECK(a.eeq_type == 1);
    CHECK(a.req_level == 1);
    CHECK(a.reached_level == 1);
    CHECK(a.public_state == 0);
    a = r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 0));
    CHECK(a.kind == GuestRet::Kind::td_exit);
    CHECK(a.req_level == 0);
    CHECK(a.reached_level == 1);
}

TEST_CASE("C39: a 4K ACCEPT inside a 2M PENDING leaf exits (requested 0, reached 1, state 2, leaf)",
          "[tdx][accept]") {
    Rig r;
    r.tables(G, 1);
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 1), r.tdr, r.big()).rax == 0);
    const GuestRet a = r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G + kPageSize, 0));
    CHECK(a.kind == GuestRet::Kind::td_exit);
    CHECK(a.req_level == 0);
    CHECK(a.reached_level == 1);
    CHECK(a.public_state == 2);
    CHECK(a.leaf);
}

TEST_CASE("C40: a 1G ACCEPT is OPERAND_INVALID|RCX (the module accepts 4K and 2M only)", "[tdx][accept]") {
    Rig r;
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(G, 2)).rax == 0xC000010000000001ull);
    // and the shared bit makes any GPA invalid
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, gpa_level(1ull << 47, 0)).rax == 0xC000010000000001ull);
}

TEST_CASE("C41: a load from a PENDING page: TD exit type 6 with PENDING_VE_DISABLE, else #VE", "[tdx][ve]") {
    {
        Rig r(true, true);
        r.tables(G, 0);
        REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
        const GuestRet a = r.m.td_ept_violation(r.tdr, 0, G);
        CHECK(a.kind == GuestRet::Kind::td_exit);
        CHECK(a.eeq_type == 6);
    }
    {
        Rig r(true, false);
        r.tables(G, 0);
        REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, r.page()).rax == 0);
        CHECK(r.m.td_ept_violation(r.tdr, 0, G).kind == GuestRet::Kind::ve);
        CHECK(r.m.stats().ve == 1);
        // a FREE entry is a plain EPT violation (the host must AUG)
        const GuestRet f = r.m.td_ept_violation(r.tdr, 0, G + kPageSize);
        CHECK(f.kind == GuestRet::Kind::td_exit);
        CHECK(f.eeq_type == 0);
    }
}

TEST_CASE("tdx: S-EPT entries encode their state in ignored bits, only NL_MAPPED and MAPPED are present",
          "[tdx][sept]") {
    for (SeptState s : {SeptState::free, SeptState::removed, SeptState::nl_mapped, SeptState::nl_blocked,
                        SeptState::mapped, SeptState::blocked, SeptState::pending, SeptState::pending_blocked}) {
        const uint64_t e = septe::make(s, 0x123456000);
        CHECK(septe::state(e) == s);
        CHECK(septe::present(e) == (s == SeptState::nl_mapped || s == SeptState::mapped));
        CHECK((e & septe::SVE) != 0);
    }
    CHECK(septe::arch_view(septe::make(SeptState::free, 0)) == septe::SVE);
}

TEST_CASE("tdx: a re-entering vCPU flushes its TLB when TD_EPOCH moved (TDH.VP.ENTER)", "[tdx][track]") {
    Rig r;
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    r.m.td_exit(r.tdr, 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    r.m.td_exit(r.tdr, 0);
    CHECK(r.m.stats().epoch_flushes == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    CHECK(r.m.stats().epoch_flushes == 1);
}

TEST_CASE("tdx: the S-EPT page-state graph has the leaves' edges and refuses the others", "[tdx][graph]") {
    CHECK(sept_check_transition(SeptState::free, SeptState::pending));
    CHECK(sept_check_transition(SeptState::pending, SeptState::mapped));
    CHECK(sept_check_transition(SeptState::blocked, SeptState::free));
    CHECK(sept_check_transition(SeptState::mapped, SeptState::mapped));
    CHECK_FALSE(sept_check_transition(SeptState::mapped, SeptState::pending));
    CHECK_FALSE(sept_check_transition(SeptState::free, SeptState::blocked));
    CHECK_FALSE(sept_check_transition(SeptState::pending_blocked, SeptState::mapped));
    CHECK_FALSE(sept_check_transition(SeptState::nl_mapped, SeptState::blocked));
    const std::string dot = sept_state_dot();
    CHECK(dot.find("TDH.MEM.PAGE.AUG") != std::string::npos);
    // Every transition a sequence of leaves makes is an edge (the module throws otherwise).
    Rig r;
    r.tables(G, 0);
    r.mapped(G);
    CHECK_NOTHROW(r.m.tdh_mem_range_block(gpa_level(G, 0), r.tdr));
    CHECK_NOTHROW(r.m.tdh_mem_track(r.tdr));
    CHECK_NOTHROW(r.m.tdh_mem_page_remove(gpa_level(G, 0), r.tdr));
}

TEST_CASE("tdx module: a TDR operand whose PAMT entry is not PT_TDR is refused before the leaf runs", "[tdx][pamt]") {
    Rig r;
    r.tables(G, 0);
    const Hpa p = r.page();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G, 0), r.tdr, p).rax == 0);
    const uint64_t calls = r.m.stats().seamcalls, tracks = r.m.stats().track;
    // A PT_REG page of the TD as the TDR: wrong metadata; a page never assigned: invalid.
    CHECK(r.m.tdh_mem_track(p).rax == (status::PAGE_METADATA_INCORRECT | operand::RCX));
    CHECK(r.m.tdh_mem_track(r.page()).rax == (status::OPERAND_INVALID | operand::RCX));
    // The S-EPT page and the root (PT_EPT, PT_TDCX) are no TDR either.
    CHECK(r.m.tdh_mem_track(Hpa(0x10001000)).rax == (status::PAGE_METADATA_INCORRECT | operand::RCX));
    CHECK(r.m.stats().seamcalls == calls + 3);
    CHECK(r.m.stats().track == tracks);
    CHECK(r.m.tdh_mem_track(r.tdr).rax == status::SUCCESS);
}

// ---------------------------------------------------------------------------------------
// Teardown: TDH.VP.FLUSH, TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB, TDH.MNG.KEY.FREEID,
// TDH.PHYMEM.PAGE.RECLAIM (tdh_phymem_page_reclaim.c and the lifecycle rules of tdh_mng_*.c; case C30)

namespace {

// A RUNNABLE TD whose two vCPUs have TDVPR pages, one private page MAPPED at G.
struct TeardownRig : Rig {
    Hpa tdvpr[2] = {Hpa(0x10002000), Hpa(0x10003000)};
    Hpa priv;
    TeardownRig() : Rig(false) {
        // Rig created two vCPUs without TDVPR pages: these two come with theirs.
        m.vp_create(tdr, tdvpr[0]);
        m.vp_create(tdr, tdvpr[1]);
        REQUIRE(m.tdh_mr_finalize(tdr).rax == 0);
        tables(G, 0);
        priv = mapped(G);
    }
    // Both TDVPR vCPUs (module indexes 2 and 3) run once and leave.
    void run_vcpus() {
        for (unsigned v : {2u, 3u}) {
            REQUIRE(m.tdh_vp_enter(tdr, v).rax == 0);
            m.td_exit(tdr, v);
        }
    }
    // The private page removed as KVM does it with the HKID assigned.
    void remove_private() {
        REQUIRE(m.tdh_mem_range_block(gpa_level(G, 0), tdr).rax == 0);
        REQUIRE(m.tdh_mem_track(tdr).rax == 0);
        REQUIRE(m.tdh_mem_page_remove(gpa_level(G, 0), tdr).rax == 0);
    }
    // tdx_mmu_release_hkid() in order.
    void release_hkid() {
        for (Hpa p : tdvpr) REQUIRE(m.tdh_vp_flush(p).rax == 0);
        REQUIRE(m.tdh_mng_vpflushdone(tdr).rax == 0);
        REQUIRE(m.tdh_phymem_cache_wb().rax == 0);
        REQUIRE(m.tdh_mng_key_freeid(tdr).rax == 0);
    }
};

}  // namespace

TEST_CASE("C30: RECLAIM needs lifecycle TEARDOWN, gives back the page type, owner and level, the TDR last",
          "[tdx][teardown]") {
    TeardownRig r;
    r.run_vcpus();
    // KEYS_CONFIGURED: a PT_REG page cannot be reclaimed.
    CHECK(r.m.tdh_phymem_page_reclaim(r.priv).rax == status::LIFECYCLE_STATE_INCORRECT);
    r.release_hkid();
    CHECK(r.m.lifecycle(r.tdr) == Lifecycle::teardown);
    const uint64_t children = r.m.child_count(r.tdr);
    // The private page still mapped (no REMOVE before the HKID went): RECLAIM takes it.
    const SeamRet reg = r.m.tdh_phymem_page_reclaim(r.priv);
    CHECK(reg.rax == 0);
    CHECK(reg.rcx == uint64_t(PageType::reg));
    CHECK(reg.rdx == r.tdr.raw());
    CHECK(reg.r8 == 0);
    CHECK(r.m.pamt(r.priv).pt == PageType::nda);
    CHECK(r.m.child_count(r.tdr) == children - 1);
    // An unassigned page: PAGE_METADATA_INCORRECT|RCX.
    CHECK(r.m.tdh_phymem_page_reclaim(r.priv).rax == (status::PAGE_METADATA_INCORRECT | operand::RCX));
    // The TDR while children remain: TD_ASSOCIATED_PAGES_EXIST.
    CHECK(r.m.tdh_phymem_page_reclaim(r.tdr).rax == status::TD_ASSOCIATED_PAGES_EXIST);
    // Every other child: the TDVPRs, the three S-EPT pages, the TDCS root page.
    for (Hpa p : r.tdvpr) CHECK(r.m.tdh_phymem_page_reclaim(p).rcx == uint64_t(PageType::tdvpr));
    for (uint64_t a = 0x10100000; a < r.next; a += kPageSize) {
        const PamtEntry e = r.m.pamt(Hpa(a));
        if (e.pt == PageType::ept) CHECK(r.m.tdh_phymem_page_reclaim(Hpa(a)).rcx == uint64_t(PageType::ept));
    }
    CHECK(r.m.stats().sept_pages == 0);
    CHECK(r.m.tdh_phymem_page_reclaim(Hpa(0x10001000)).rcx == uint64_t(PageType::tdcx));
    CHECK(r.m.child_count(r.tdr) == 0);
    const SeamRet tdr = r.m.tdh_phymem_page_reclaim(r.tdr);
    CHECK(tdr.rax == 0);
    CHECK(tdr.rcx == uint64_t(PageType::tdr));
    CHECK(r.m.pamt(r.tdr).pt == PageType::nda);
    CHECK_FALSE(r.m.has_td(r.tdr));
    // The TD is gone: a leaf naming its TDR is refused, and the page may be written back.
    CHECK(r.m.tdh_mem_track(r.tdr).rax == (status::OPERAND_INVALID | operand::RCX));
    CHECK(r.m.tdh_phymem_page_wbinvd(r.tdr).rax == 0);
}

TEST_CASE("tdx teardown: a 2M private page is reclaimed whole at its PAMT level (R8 = 1)", "[tdx][teardown]") {
    TeardownRig r;
    r.tables(G + 2 * MiB, 1);
    const Hpa big = r.big();
    REQUIRE(r.m.tdh_mem_page_aug(gpa_level(G + 2 * MiB, 1), r.tdr, big).rax == 0);
    r.run_vcpus();
    r.release_hkid();
    const uint64_t children = r.m.child_count(r.tdr);
    // A 4K page inside it is not aligned to the page's level.
    CHECK(r.m.tdh_phymem_page_reclaim(big + kPageSize).rax == (status::OPERAND_INVALID | operand::RCX));
    const SeamRet s = r.m.tdh_phymem_page_reclaim(big);
    CHECK(s.rax == 0);
    CHECK(s.r8 == 1);
    CHECK(r.m.child_count(r.tdr) == children - 512);
    CHECK(r.m.pamt(big + 0x100000).pt == PageType::nda);
}

TEST_CASE("tdx teardown: VP.FLUSH needs an associated vCPU outside the TD and configured keys", "[tdx][teardown]") {
    TeardownRig r;
    // Never entered: not associated (KVM takes this as done).
    CHECK(r.m.tdh_vp_flush(r.tdvpr[0]).rax == status::VCPU_NOT_ASSOCIATED);
    // Inside the TD: its TDVPS is held.
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 2).rax == 0);
    CHECK(r.m.tdh_vp_flush(r.tdvpr[0]).rax == (status::OPERAND_BUSY | operand::RCX));
    r.m.td_exit(r.tdr, 2);
    CHECK(r.m.tdh_vp_flush(r.tdvpr[0]).rax == 0);
    CHECK(r.m.tdh_vp_flush(r.tdvpr[0]).rax == status::VCPU_NOT_ASSOCIATED);
    // Not a TDVPR: a private page is wrong metadata, a page never assigned an invalid operand.
    CHECK(r.m.tdh_vp_flush(r.priv).rax == (status::PAGE_METADATA_INCORRECT | operand::RCX));
    CHECK(r.m.tdh_vp_flush(r.page()).rax == (status::OPERAND_INVALID | operand::RCX));
    CHECK(r.m.stats().vp_flush == 1);
}

TEST_CASE("tdx teardown: VPFLUSHDONE answers FLUSHVP_NOT_DONE while a vCPU is associated, then BLOCKs the TD",
          "[tdx][teardown]") {
    TeardownRig r;
    r.run_vcpus();
    REQUIRE(r.m.tdh_vp_flush(r.tdvpr[0]).rax == 0);
    CHECK(r.m.tdh_mng_vpflushdone(r.tdr).rax == status::FLUSHVP_NOT_DONE);
    CHECK(r.m.lifecycle(r.tdr) == Lifecycle::keys_configured);
    REQUIRE(r.m.tdh_vp_flush(r.tdvpr[1]).rax == 0);
    // Another logical processor holding the TDR: BUSY|RCX (VPFLUSHDONE takes it exclusively).
    r.m.hold(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_mng_vpflushdone(r.tdr).rax == (status::OPERAND_BUSY | operand::RCX));
    r.m.release(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_mng_vpflushdone(r.tdr).rax == 0);
    CHECK(r.m.lifecycle(r.tdr) == Lifecycle::blocked);
    CHECK(r.m.tdh_mng_vpflushdone(r.tdr).rax == status::LIFECYCLE_STATE_INCORRECT);
    // BLOCKED: memory leaves and entries are refused (keys no longer configured).
    CHECK(r.m.tdh_mem_track(r.tdr).rax == status::TD_KEYS_NOT_CONFIGURED);
    CHECK(r.m.tdh_vp_enter(r.tdr, 2).rax == status::TD_KEYS_NOT_CONFIGURED);
    CHECK(r.m.tdh_vp_flush(r.tdvpr[0]).rax == status::TD_KEYS_NOT_CONFIGURED);
}

TEST_CASE("tdx teardown: KEY.FREEID needs BLOCKED and a CACHE.WB since, CACHE.WB with nothing to do is no error",
          "[tdx][teardown]") {
    TeardownRig r;
    r.remove_private();
    // Nothing waits for a write-back yet.
    CHECK(r.m.tdh_phymem_cache_wb().rax == status::NO_HKID_READY_TO_WBCACHE);
    CHECK_FALSE(is_error(status::NO_HKID_READY_TO_WBCACHE));
    CHECK(r.m.tdh_mng_key_freeid(r.tdr).rax == status::LIFECYCLE_STATE_INCORRECT);
    REQUIRE(r.m.tdh_mng_vpflushdone(r.tdr).rax == 0);   // no vCPU ever ran
    CHECK(r.m.tdh_mng_key_freeid(r.tdr).rax == status::WBCACHE_NOT_COMPLETE);
    CHECK(r.m.tdh_phymem_cache_wb().rax == 0);
    CHECK(r.m.tdh_phymem_cache_wb().rax == status::NO_HKID_READY_TO_WBCACHE);   // another CPU did it
    CHECK(r.m.tdh_mng_key_freeid(r.tdr).rax == 0);
    CHECK(r.m.lifecycle(r.tdr) == Lifecycle::teardown);
    CHECK(r.m.tdh_mng_key_freeid(r.tdr).rax == status::LIFECYCLE_STATE_INCORRECT);
    // The removed page is NDA already: RECLAIM refuses it; the S-EPT pages are reclaimed.
    CHECK(r.m.tdh_phymem_page_reclaim(r.priv).rax == (status::PAGE_METADATA_INCORRECT | operand::RCX));
    CHECK(r.m.stats().key_freeid == 1);
    CHECK(r.m.stats().cache_wb == 1);
}

TEST_CASE("tdx teardown: RECLAIM of a TDR another logical processor holds is BUSY on the TDR operand",
          "[tdx][teardown]") {
    TeardownRig r;
    r.remove_private();
    REQUIRE(r.m.tdh_mng_vpflushdone(r.tdr).rax == 0);
    REQUIRE(r.m.tdh_phymem_cache_wb().rax == 0);
    REQUIRE(r.m.tdh_mng_key_freeid(r.tdr).rax == 0);
    r.m.hold(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_phymem_page_reclaim(r.tdvpr[0]).rax == (status::OPERAND_BUSY | operand::TDR));
    r.m.release(r.tdr, TdxModule::Hold::tdr_exclusive);
    CHECK(r.m.tdh_phymem_page_reclaim(r.tdvpr[0]).rax == 0);
}
