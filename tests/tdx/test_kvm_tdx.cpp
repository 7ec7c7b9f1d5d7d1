// KVM's TDX backend (kernel/vmx/tdx.cpp) against the TDX module model: the SEAMCALL
// sequences of arch/x86/kvm/vmx/tdx.c and KVM's answers to BUSY (cases C42-C44).
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "kernel/vmx/tdx.hpp"
#include "tests/kernel/kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using hvsim::kvm::test::Env;

namespace {

constexpr uint64_t G = 0x40000000;

struct Kicker final : TdxVcpuKicker {
    std::function<void()> on_kick;
    unsigned kicks = 0;
    void kick_all_outside_guest_mode(ExecContext&) override {
        ++kicks;
        if (on_kick) on_kick();
    }
};

struct TdRig {
    Env env{VmType::tdx};
    tdx::TdxModule m{env.mem};
    Hpa tdr{0x210000000};
    Kicker kick;
    KvmTdx tdx{*env.kvm, m, tdr, kick};
    uint64_t next = 0x210100000;
    CycleCounter ctx;

    TdRig() {
        m.create_td(tdr, Hpa(0x210001000), 4);
        m.vp_create(tdr);
        m.vp_create(tdr);
    }
    Pfn page() {
        const Pfn p(next >> kPageShift);
        next += kPageSize;
        return p;
    }
    // The mirror's missing levels above the 4K leaf of G, as the TDP MMU links them.
    void link_tables() {
        for (PgLevel l : {PgLevel(4), PgLevel::k1G, PgLevel::k2M}) {
            const uint64_t span = 1ull << (kPageShift + 9 * (unsigned(l) - 1));   // what the entry maps
            REQUIRE(tdx.link_external_spt(Gfn((G & ~(span - 1)) >> kPageShift), l, page(), ctx) == 0);
        }
    }
    void all_exit() {
        for (unsigned v = 0; v < 2; ++v) m.td_exit(tdr, v);
    }
};

}  // namespace

TEST_CASE("C44: finalize makes the TD RUNNABLE and allows pre-fault, INIT_MEM_REGION is then EINVAL",
          "[tdx][kvm]") {
    TdRig r;
    CHECK_FALSE(r.env.kvm->pre_fault_allowed);   // KVM_PRE_FAULT_MEMORY -> EOPNOTSUPP until finalize
    CHECK(r.tdx.tdx_vcpu_init_mem_region_check() == 0);
    CHECK(r.tdx.tdx_td_finalize(r.ctx) == 0);
    CHECK(r.tdx.state() == TdState::runnable);
    CHECK(r.env.kvm->pre_fault_allowed);
    CHECK(r.tdx.tdx_vcpu_init_mem_region_check() == -EINVAL);
}

TEST_CASE("tdx kvm: before finalize the leaf hook is TDH.MEM.PAGE.ADD from the INIT_MEM_REGION source",
          "[tdx][kvm]") {
    TdRig r;
    r.link_tables();
    const Pfn dst = r.page();
    // Without a source the hook has nothing to add: KVM_BUG_ON, VM dead.
    const Hpa src = pfn_to_hpa(r.page());
    r.env.mem.fill(src, 0x42, kPageSize);
    r.tdx.set_page_add_src(src);
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, dst, r.ctx) == 0);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::mapped);
    CHECK(r.env.mem.read64(Hpa(pfn_to_hpa(dst).raw() + 16)) == 0x4242424242424242ull);
    CHECK(r.m.stats().page_add == 1);
    CHECK(r.m.stats().sept_add == 3);
    r.tdx.set_page_add_src(std::nullopt);
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G + kPageSize)), PgLevel::k4K, r.page(), r.ctx) == -EIO);
    CHECK(r.tdx.bugged());
}

TEST_CASE("tdx kvm 6.18: the leaf hook counts nr_premapped, PAGE.ADD follows, finalize waits for every "
          "counted page, a zap of a premapped page only uncounts it",
          "[tdx][kvm][premap]") {
    TdRig r;
    r.tdx.set_page_add_in_map(false);
    r.link_tables();
    const Pfn dst = r.page();
    // kvm_tdp_map_page() of the first page: the mirror leaf exists, the S-EPT entry stays FREE.
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, dst, r.ctx) == 0);
    CHECK(r.tdx.nr_premapped() == 1);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::free);
    CHECK(r.m.stats().page_add == 0);
    // Finalize with a page counted but not added: -EINVAL, the TD stays INITIALIZED.
    CHECK(r.tdx.tdx_td_finalize(r.ctx) == -EINVAL);
    CHECK(r.tdx.state() == TdState::initialized);
    // Zapping it (memslot deleted before finalize): BLOCK finds the entry FREE
    // (EPT_ENTRY_STATE_INCORRECT|RCX), which KVM takes as a premapped page and uncounts.
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, dst, r.ctx) == 0);
    CHECK(r.tdx.nr_premapped() == 0);
    CHECK_FALSE(r.tdx.bugged());
    // A FREE entry with nothing counted is a KVM bug.
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, dst, r.ctx) == -EIO);
    CHECK(r.tdx.bugged());
}

TEST_CASE("tdx kvm 6.18: tdx_gmem_post_populate() maps, then TDH.MEM.PAGE.ADD and uncounts",
          "[tdx][kvm][premap]") {
    TdRig r;
    r.tdx.set_page_add_in_map(false);
    r.link_tables();
    const Pfn dst = r.page(), src = r.page();
    r.env.mem.fill(pfn_to_hpa(src), 0x42, kPageSize);
    unsigned maps = 0;
    r.tdx.set_map_private_pfn([&](Gfn g, Pfn p, ExecContext& c) {
        ++maps;
        return r.tdx.set_external_spte(g, PgLevel::k4K, p, c);   // the mirror's leaf hook
    });
    CHECK(r.tdx.tdx_gmem_post_populate(gpa_to_gfn(Gpa(G)), dst, src, r.ctx) == 0);
    CHECK(maps == 1);
    CHECK(r.tdx.nr_premapped() == 0);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::mapped);
    CHECK(r.env.mem.read64(Hpa(pfn_to_hpa(dst).raw() + 8)) == 0x4242424242424242ull);
    CHECK(r.m.stats().page_add == 1);
    CHECK(r.tdx.tdx_td_finalize(r.ctx) == 0);
}

TEST_CASE("C43: an AUG answered OPERAND_BUSY is -EBUSY (the fault retries), a later try succeeds",
          "[tdx][kvm][busy]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    r.m.hold(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);   // another LP inside BLOCK
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == -EBUSY);
    CHECK_FALSE(r.tdx.bugged());
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::free);
    r.m.release(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::pending);
    CHECK(r.tdx.stats().busy_retries == 1);
    // A 2M private mapping is a KVM bug in the 4K-only backend.
    CHECK(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G + (2ull << 20))), PgLevel::k2M, r.page(), r.ctx) == -EIO);
}

TEST_CASE("tdx kvm: a zap with vCPUs running is BLOCK, TRACK, kick, REMOVE, WBINVD", "[tdx][kvm][zap]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G, 0)).rax == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 1).rax == 0);
    r.kick.on_kick = [&] { r.all_exit(); };
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::free);
    CHECK(r.m.pamt(pfn_to_hpa(p)).pt == tdx::PageType::nda);
    CHECK(r.m.stats().block == 1);
    CHECK(r.m.stats().track == 1);
    CHECK(r.m.stats().remove == 1);
    CHECK(r.m.stats().wbinvd == 1);
    CHECK(r.kick.kicks == 1);
    CHECK(r.tdx.stats().busy_retries == 0);
    // Without the kick the vCPUs would still be inside from the blocking epoch: the kick
    // is what lets REMOVE pass (C20).
    CHECK_FALSE(r.m.vcpu_inside(r.tdr, 0));
}

TEST_CASE("C42: a REMOVE answered BUSY|SEPT_TREE is retried once with every vCPU held out, a second BUSY bugs "
          "the VM",
          "[tdx][kvm][zap][busy]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G, 0)).rax == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    // The TRACK kick makes vCPU 0 exit; it re-enters at once and its zero-step check takes
    // the S-EPT tree exclusively (VP.ENTER), so REMOVE is busy. The no-vCPU kick ends that.
    bool may_enter_seen_false = false;
    r.kick.on_kick = [&] {
        r.all_exit();
        if (r.kick.kicks == 1) {
            r.m.hold(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
        } else {
            may_enter_seen_false = !r.tdx.vcpu_may_enter();
            r.m.release(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
        }
    };
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    CHECK(may_enter_seen_false);     // wait_for_sept_zap held every vCPU out during the retry
    CHECK(r.tdx.vcpu_may_enter());   // ... and is cleared afterwards
    CHECK(r.tdx.stats().busy_retries == 1);
    CHECK(r.kick.kicks == 2);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::free);
    CHECK_FALSE(r.tdx.bugged());

    // A second BUSY (the contention does not end) makes the VM bugged.
    const uint64_t g2 = G + kPageSize;
    const Pfn p2 = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(g2)), PgLevel::k4K, p2, r.ctx) == 0);
    r.kick.kicks = 0;
    r.kick.on_kick = [&] {
        if (r.kick.kicks == 1) r.m.hold(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
    };
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(g2)), PgLevel::k4K, p2, r.ctx) == -EIO);
    CHECK(r.tdx.bugged());
}

TEST_CASE("C20 (KVM): a kick that leaves a vCPU inside the TD holds REMOVE (TLB_TRACKING_NOT_DONE), the VM is "
          "bugged",
          "[tdx][kvm][zap][track]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 1).rax == 0);
    // The IPI never reaches vCPU 1: it stays inside from the blocking epoch, TRACK passes
    // (nobody is inside from the epoch before) but the block is not tracked.
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == -EIO);
    CHECK(r.tdx.bugged());
    CHECK(r.m.stats().track == 1);
    CHECK(r.m.stats().remove == 0);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::pending_blocked);
    // Once it exits, REMOVE goes through (what the kick is for).
    r.m.td_exit(r.tdr, 1);
    CHECK(r.m.tdh_mem_page_remove(tdx::gpa_level(G, 0), r.tdr).rax == 0);
}

TEST_CASE("C21 (KVM): a vCPU still inside from before the previous TRACK makes the next TRACK "
          "PREVIOUS_TLB_EPOCH_BUSY, which KVM does not retry (VM bugged)",
          "[tdx][kvm][zap][track]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    // vCPU 0 entered at epoch E; someone else's TRACK moved the TD to E+1 without a kick.
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == -EIO);
    CHECK(r.tdx.bugged());
    CHECK(r.m.stats().track == 1);             // KVM's TRACK was refused
    CHECK(r.tdx.stats().busy_retries == 0);    // PREVIOUS_TLB_EPOCH_BUSY is not "busy" to KVM
    CHECK(r.kick.kicks == 0);
}

TEST_CASE("C32 (KVM): a TRACK answered BUSY|TD_EPOCH (another LP inside TRACK) is retried and counted",
          "[tdx][kvm][zap][busy]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    // The epoch lock is held when KVM's TRACK comes; the holder leaves after the first try.
    r.m.hold(r.tdr, tdx::TdxModule::Hold::epoch_exclusive);
    struct Releaser final : ExecContext {
        tdx::TdxModule* m;
        Hpa tdr;
        unsigned tracks = 0;
        void charge(StepName step, Cycles) override {
            if (step == "tdh_mem_track" && ++tracks == 2) m->release(tdr, tdx::TdxModule::Hold::epoch_exclusive);
        }
    } ctx;
    ctx.m = &r.m;
    ctx.tdr = r.tdr;
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, ctx) == 0);
    CHECK(ctx.tracks == 2);
    CHECK(r.tdx.stats().busy_retries == 1);
    CHECK(r.m.stats().track == 1);
    CHECK(r.m.stats().remove == 1);
    CHECK_FALSE(r.tdx.bugged());
}

// ---- 2M private leaves (kvm.config.tdx_huge_private: the TDX huge-page series) ----

namespace {

// A RUNNABLE TD with the S-EPT tables down to the PD of G (a 2M leaf needs no PT) and a
// 2M-aligned frame for it.
struct HugeRig : TdRig {
    const Pfn big{0x220000000ull >> kPageShift};
    const Gfn gfn = gpa_to_gfn(Gpa(G));
    HugeRig() {
        tdx.set_huge_private(true);
        REQUIRE(tdx.tdx_td_finalize(ctx) == 0);
        for (PgLevel l : {PgLevel(4), PgLevel::k1G}) {
            const uint64_t span = 1ull << (kPageShift + 9 * (unsigned(l) - 1));
            REQUIRE(tdx.link_external_spt(Gfn((G & ~(span - 1)) >> kPageShift), l, page(), ctx) == 0);
        }
    }
};

// Records the SEAMCALL steps KVM charges, in order.
struct StepLog final : ExecContext {
    std::vector<std::string> steps;
    std::function<void(std::string_view, unsigned)> on_step;
    void charge(StepName name, Cycles) override {
        const std::string_view step = name;
        if (step.rfind("tdh_", 0) != 0) return;
        steps.emplace_back(step);
        unsigned n = 0;
        for (const auto& s : steps) n += s == step;
        if (on_step) on_step(step, n);
    }
};

}  // namespace

TEST_CASE("tdx kvm huge: a 2M private leaf is one TDH.MEM.PAGE.AUG at 2M, the guest's 2M ACCEPT then succeeds",
          "[tdx][kvm][huge]") {
    HugeRig r;
    StepLog log;
    REQUIRE(r.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, log) == 0);
    CHECK(log.steps == std::vector<std::string>{"tdh_mem_page_aug_2m"});
    CHECK(r.tdx.stats().aug_2m == 1);
    CHECK(r.m.stats().aug == 1);
    const auto v = r.m.sept_read(r.tdr, G, 1);
    CHECK(v.level == 1);
    CHECK(v.state == tdx::SeptState::pending);
    CHECK(r.m.pamt(pfn_to_hpa(r.big) + 0x1ff000).pt == tdx::PageType::reg);
    CHECK(r.m.child_count(r.tdr) == 512 + 2 + 1);   // 512 pages, the two S-EPT pages and the root's TDCS page
    // No PAGE_SIZE_MISMATCH: the 2M ACCEPT finds a 2M PENDING leaf.
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G, 1)).rax == 0);
    CHECK(r.m.sept_read(r.tdr, G, 1).state == tdx::SeptState::mapped);
    // Released KVM (switch off) still refuses a 2M leaf: KVM_BUG_ON.
    TdRig off;
    REQUIRE(off.tdx.tdx_td_finalize(off.ctx) == 0);
    CHECK(off.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, off.ctx) == -EIO);
}

TEST_CASE("tdx kvm huge: a split is BLOCK 2M, TRACK, kick, DEMOTE, the 512 children unblocked", "[tdx][kvm][huge]") {
    HugeRig r;
    REQUIRE(r.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, r.ctx) == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G, 1)).rax == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    r.kick.on_kick = [&] { r.all_exit(); };
    StepLog log;
    const Pfn table = r.page();
    CHECK(r.tdx.split_external_spt(r.gfn, PgLevel::k2M, table, log) == 0);
    CHECK(log.steps ==
          std::vector<std::string>{"tdh_mem_range_block", "tdh_mem_track", "tdh_mem_page_demote"});
    CHECK(r.kick.kicks == 1);
    CHECK(r.tdx.stats().demotes == 1);
    CHECK(r.m.stats().demote == 1);
    CHECK(r.m.sept_read(r.tdr, G, 1).state == tdx::SeptState::nl_mapped);
    for (uint64_t off : {uint64_t(0), uint64_t(0x1000), uint64_t(0x1ff000)}) {
        const auto v = r.m.sept_read(r.tdr, G + off, 0);
        CHECK(v.level == 0);
        CHECK(v.state == tdx::SeptState::mapped);   // BLOCKED -> children MAPPED, not blocked
        CHECK((v.entry & tdx::septe::ADDR) == pfn_to_hpa(r.big).raw() + off);
    }
    CHECK(r.m.pamt(pfn_to_hpa(table)).pt == tdx::PageType::ept);
    // A 4K zap of one child then is the 4K sequence.
    CHECK(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G + 0x1000)), PgLevel::k4K, Pfn(r.big.raw() + 1), r.ctx) == 0);
    CHECK(r.m.sept_read(r.tdr, G + 0x1000, 0).state == tdx::SeptState::free);
    CHECK(r.m.sept_read(r.tdr, G + 0x2000, 0).state == tdx::SeptState::mapped);
    CHECK(r.m.stats().remove == 1);
}

TEST_CASE("tdx kvm huge: a split of a PENDING 2M leaf leaves 512 PENDING 4K pages the guest accepts one by one",
          "[tdx][kvm][huge]") {
    HugeRig r;
    REQUIRE(r.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, r.ctx) == 0);
    // C39: a 4K ACCEPT inside the 2M PENDING leaf exits (requested 4K, reached 2M).
    const tdx::GuestRet a = r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G + 0x3000, 0));
    REQUIRE(a.kind == tdx::GuestRet::Kind::td_exit);
    CHECK(a.req_level == 0);
    CHECK(a.reached_level == 1);
    REQUIRE(r.tdx.split_external_spt(r.gfn, PgLevel::k2M, r.page(), r.ctx) == 0);
    CHECK(r.m.sept_read(r.tdr, G + 0x3000, 0).state == tdx::SeptState::pending);
    CHECK(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G + 0x3000, 0)).rax == 0);
    CHECK(r.m.sept_read(r.tdr, G + 0x4000, 0).state == tdx::SeptState::pending);
}

TEST_CASE("tdx kvm huge: a 2M zap is BLOCK, TRACK, kick, REMOVE at 2M and 512 WBINVD, no DEMOTE",
          "[tdx][kvm][huge][zap]") {
    HugeRig r;
    REQUIRE(r.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, r.ctx) == 0);
    StepLog log;
    CHECK(r.tdx.remove_external_spte(r.gfn, PgLevel::k2M, r.big, log) == 0);
    REQUIRE(log.steps.size() == 3 + 512);
    CHECK(log.steps[0] == "tdh_mem_range_block");
    CHECK(log.steps[1] == "tdh_mem_track");
    CHECK(log.steps[2] == "tdh_mem_page_remove");
    CHECK(log.steps[514] == "tdh_phymem_page_wbinvd");
    CHECK(r.tdx.stats().remove_2m == 1);
    CHECK(r.m.stats().demote == 0);
    CHECK(r.m.stats().wbinvd == 512);
    CHECK(r.m.sept_read(r.tdr, G, 1).state == tdx::SeptState::free);
    CHECK(r.m.pamt(pfn_to_hpa(r.big) + 0x100000).pt == tdx::PageType::nda);
    CHECK(r.m.child_count(r.tdr) == 2 + 1);
}

TEST_CASE("tdx kvm huge: a DEMOTE answered BUSY is retried once with every vCPU held out, a second BUSY bugs the VM",
          "[tdx][kvm][huge][busy]") {
    HugeRig r;
    REQUIRE(r.tdx.set_external_spte(r.gfn, PgLevel::k2M, r.big, r.ctx) == 0);
    // Another logical processor holds the S-EPT tree exclusively when DEMOTE comes (it
    // takes the tree shared); the no-vCPU kick ends that.
    StepLog log;
    bool held_out = false;
    log.on_step = [&](std::string_view s, unsigned n) {
        if (s == "tdh_mem_page_demote" && n == 1) r.m.hold(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
    };
    r.kick.on_kick = [&] {
        if (r.kick.kicks == 2) {
            held_out = !r.tdx.vcpu_may_enter();
            r.m.release(r.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
        }
    };
    CHECK(r.tdx.split_external_spt(r.gfn, PgLevel::k2M, r.page(), log) == 0);
    CHECK(held_out);
    CHECK(r.tdx.vcpu_may_enter());
    CHECK(r.tdx.stats().busy_retries == 1);
    CHECK(r.kick.kicks == 2);   // the TRACK's kick and the no-vCPU kick
    CHECK(r.m.stats().demote == 1);
    CHECK_FALSE(r.tdx.bugged());

    // The contention does not end: the second BUSY makes the VM bugged.
    HugeRig q;
    REQUIRE(q.tdx.set_external_spte(q.gfn, PgLevel::k2M, q.big, q.ctx) == 0);
    StepLog log2;
    log2.on_step = [&](std::string_view s, unsigned n) {
        if (s == "tdh_mem_page_demote" && n == 1) q.m.hold(q.tdr, tdx::TdxModule::Hold::sept_tree_exclusive);
    };
    CHECK(q.tdx.split_external_spt(q.gfn, PgLevel::k2M, q.page(), log2) == -EIO);
    CHECK(q.tdx.bugged());
    CHECK(q.m.stats().demote == 0);
    CHECK(q.m.sept_read(q.tdr, G, 1).state == tdx::SeptState::pending_blocked);
}

// ---------------------------------------------------------------------------------------
// Teardown (tdx_mmu_release_hkid(), tdx_reclaim_page(), tdx_reclaim_td_control_pages())

TEST_CASE("tdx kvm teardown: release_hkid flushes the loaded vCPUs, then VPFLUSHDONE, CACHE.WB, KEY.FREEID, "
          "then TDCS and TDR are reclaimed after it, the TDR written back",
          "[tdx][kvm][teardown]") {
    TdRig r;
    const Hpa tdvpr(0x210002000);
    const unsigned vp = r.m.vp_create(r.tdr, tdvpr);
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    REQUIRE(r.m.tdh_vp_enter(r.tdr, vp).rax == 0);
    r.m.td_exit(r.tdr, vp);
    // With the HKID assigned the private page goes the zap's way.
    StepLog log;
    REQUIRE(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, log) == 0);
    CHECK(log.steps == std::vector<std::string>{"tdh_mem_range_block", "tdh_mem_track", "tdh_mem_page_remove",
                                                "tdh_phymem_page_wbinvd"});
    // Nothing can be reclaimed before the HKID is free.
    CHECK(r.tdx.tdx_reclaim_td_control_pages({Hpa(0x210001000)}, r.ctx) == -EIO);
    log.steps.clear();
    CHECK(r.tdx.tdx_mmu_release_hkid({tdvpr}, log) == 0);
    CHECK(log.steps == std::vector<std::string>{"tdh_vp_flush", "tdh_mng_vpflushdone", "tdh_phymem_cache_wb",
                                                "tdh_mng_key_freeid"});
    CHECK_FALSE(r.tdx.hkid_assigned());
    CHECK(r.m.lifecycle(r.tdr) == tdx::Lifecycle::teardown);
    // tdx_vcpu_free(), the mirror root's three S-EPT pages, then the TDCS and the TDR.
    CHECK(r.tdx.tdx_reclaim_page(tdvpr, r.ctx) == 0);
    for (uint64_t a = 0x210100000; a < r.next; a += kPageSize)
        if (r.m.pamt(Hpa(a)).pt == tdx::PageType::ept) CHECK(r.tdx.tdx_reclaim_page(Hpa(a), r.ctx) == 0);
    log.steps.clear();
    CHECK(r.tdx.tdx_reclaim_td_control_pages({Hpa(0x210001000)}, log) == 0);
    CHECK(log.steps == std::vector<std::string>{"tdh_phymem_page_reclaim", "tdh_phymem_page_reclaim",
                                                "tdh_phymem_page_wbinvd"});
    CHECK(r.tdx.stats().reclaims == 1 + 3 + 2);
    CHECK_FALSE(r.m.has_td(r.tdr));
    CHECK_FALSE(r.tdx.bugged());
}

TEST_CASE("tdx kvm teardown: a zap after the HKID is released is KVM_BUG_ON, a vCPU never loaded is not flushed",
          "[tdx][kvm][teardown]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    // A vCPU still associated (it entered and left) makes VPFLUSHDONE FLUSHVP_NOT_DONE: the
    // HKID stays (KVM gives up, no bug), so the private page can still be zapped.
    REQUIRE(r.m.tdh_vp_enter(r.tdr, 0).rax == 0);
    r.m.td_exit(r.tdr, 0);
    CHECK(r.tdx.tdx_mmu_release_hkid({}, r.ctx) == -EIO);
    CHECK(r.tdx.hkid_assigned());
    CHECK_FALSE(r.tdx.bugged());
    // Without TDVPR pages in this rig VP.FLUSH cannot name vCPU 0; a fresh TD shows the rest.
    TdRig q;
    REQUIRE(q.tdx.tdx_td_finalize(q.ctx) == 0);
    q.link_tables();
    const Pfn p2 = q.page();
    REQUIRE(q.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p2, q.ctx) == 0);
    StepLog log;
    CHECK(q.tdx.tdx_mmu_release_hkid({}, log) == 0);   // no vCPU was ever loaded: no VP.FLUSH
    CHECK(log.steps.front() == "tdh_mng_vpflushdone");
    CHECK(q.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p2, q.ctx) == -EIO);
    CHECK(q.tdx.bugged());
}

// ---------------------------------------------------------------------------------------
// TDH.VP.ENTER's locks in simulated time (tdh_vp_enter.c: TDR and epoch lock shared)

TEST_CASE("tdx kvm: a TRACK that meets an entering vCPU's epoch lock is BUSY|TD_EPOCH and retried",
          "[tdx][kvm][busy][vp_enter]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    Cycles now = 1000;
    r.tdx.set_clock([&] { return now; });
    r.link_tables();
    const Pfn p = r.page();
    REQUIRE(r.tdx.set_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, r.ctx) == 0);
    REQUIRE(r.m.tdg_mem_page_accept(r.tdr, 0, tdx::gpa_level(G, 0)).rax == 0);
    now = 2000;
    // vCPU 1 enters at 2000: its TDH.VP.ENTER holds the epoch lock shared for its leaf.
    r.tdx.set_costs([] {
        TdxCosts c;
        c.td_entry = 500;
        c.track = 100;
        return c;
    }());
    REQUIRE(r.tdx.tdh_vp_enter(1, r.ctx) == 0);
    // The zap's TRACK starts inside that leaf: BUSY|TD_EPOCH, retried once time moves on.
    unsigned tracks = 0;
    r.kick.on_kick = [&] { r.all_exit(); };
    struct Clocked final : ExecContext {
        Cycles& now;
        unsigned& tracks;
        Clocked(Cycles& n, unsigned& t) : now(n), tracks(t) {}
        void charge(StepName step, Cycles c) override {
            if (step == "tdh_mem_track") ++tracks;
            now += c ? c : 1;
        }
    } ctx(now, tracks);
    REQUIRE(r.tdx.remove_external_spte(gpa_to_gfn(Gpa(G)), PgLevel::k4K, p, ctx) == 0);
    CHECK(tracks >= 2);
    CHECK(r.m.stats().busy >= 1);
    CHECK(r.tdx.stats().busy_retries >= 1);
    CHECK(r.m.sept_read(r.tdr, G, 0).state == tdx::SeptState::free);
}

TEST_CASE("tdx kvm: TDH.VP.ENTER meets a TRACK's exclusive epoch lock and answers BUSY|TD_EPOCH",
          "[tdx][kvm][busy][vp_enter]") {
    TdRig r;
    REQUIRE(r.tdx.tdx_td_finalize(r.ctx) == 0);
    Cycles now = 1000;
    r.tdx.set_clock([&] { return now; });
    TdxCosts c;
    c.td_entry = 500;
    c.track = 2000;
    r.tdx.set_costs(c);
    // A TRACK of another thread starts at 1000 and holds the epoch lock until 3000.
    r.m.at(now, c.track);
    REQUIRE(r.m.tdh_mem_track(r.tdr).rax == 0);
    now = 1500;
    CHECK(r.tdx.tdh_vp_enter(0, r.ctx) == (tdx::status::OPERAND_BUSY | tdx::operand::TD_EPOCH));
    CHECK(r.tdx.stats().vp_enter_busy == 1);
    CHECK_FALSE(r.m.vcpu_inside(r.tdr, 0));
    now = 3000;   // the TRACK has left
    CHECK(r.tdx.tdh_vp_enter(0, r.ctx) == 0);
    CHECK(r.m.vcpu_inside(r.tdr, 0));
    // Untimed (no lock taken in time), the same entry would have passed at 1500.
}
