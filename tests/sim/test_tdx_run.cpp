// A TD driven through Machine without SystemC: KVM's mirror root and the TDX module's
// secure EPT as a run uses them (tdp_mmu.c mirror roots, vmx/tdx.c external-SPTE hooks).
#include <catch2/catch.hpp>

#include "sim/loader.hpp"
#include "sim/machine.hpp"

using namespace hvsim;

namespace {

const char* kTd = R"({"platform": "sapphire-rapids",
  "vm": {"type": "tdx", "vcpus": 1, "guest_paging": "none",
    "guest_memfd": [{"id": "g0", "size": "64MiB"}],
    "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "64MiB",
                  "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
    "private": [{"gpa": 0, "size": "64MiB"}]}, "steps": []})";

struct TdRig {
    scn::Scenario s;
    std::unique_ptr<ParamSet> p;
    std::unique_ptr<Machine> m;
    CacheHierarchy cache;
    std::unique_ptr<mmu::Mmu> hw;
    kvm::CycleCounter ctx;

    explicit TdRig(const std::string& text = kTd)
        : s(load_scenario_text(text, "td.json")), p(std::make_unique<ParamSet>(resolve_params(s, {}))),
          cache(machine_config(*p, s).mem) {
        m = std::make_unique<Machine>(s, machine_config(*p, s));
        REQUIRE(m->create_vm_err() == 0);
        REQUIRE(m->setup(ctx).empty());
        hw = std::make_unique<mmu::Mmu>(m->config().mmu, m->mem(), cache);
        m->attach_vcpu(0, *hw);
    }
    kvm::TdxBackend& td() { return *m->tdx(); }
    const tdx::TdxStats& mod() { return m->tdx()->module().stats(); }

    // The access as the vCPU makes it: S-EPT walk faults go to the module, then KVM.
    bool touch(uint64_t gpa, bool write, bool priv, int max = 8) {
        for (int i = 0; i < max; ++i) {
            auto t = hw->translate(Gva(gpa), write ? mmu::AccessType::write : mmu::AccessType::read, priv);
            if (t.ok()) return true;
            REQUIRE(t.status == mmu::TranslateResult::Status::npf);
            auto a = m->handle_npf(0, t.fault_gpa, t.error_code, ctx);
            if (a != cpu::NpfAction::retry && a != cpu::NpfAction::guest) return false;
        }
        return false;
    }
};

}  // namespace

TEST_CASE("tdx run: the TD is finalized when its vCPUs exist, pre-fault is then allowed", "[tdx][run]") {
    TdRig r;
    CHECK(r.td().kvm_tdx().state() == kvm::TdState::runnable);
    CHECK(r.m->kvm()->pre_fault_allowed);
    CHECK(r.hw->secure_nested_root() == r.td().module().sept_root(r.td().tdr()));
    REQUIRE(r.m->x86()->mirror());
    CHECK(r.m->x86()->mirror()->root_hpa() != r.m->x86()->tdp().root_hpa());
}

TEST_CASE("tdx run: a private fault maps into the mirror and AUGs, the #VE on the PENDING page is accepted",
          "[tdx][run]") {
    TdRig r;
    REQUIRE(r.touch(0x5000, true, true));
    // KVM's mirror has the leaf, its direct root does not (hardware never walks the mirror).
    auto leaf = r.m->x86()->mirror()->lookup(Gfn(5));
    REQUIRE(leaf);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(5)));
    // TDH.MEM.SEPT.ADD for the three tables below the root, one AUG, one #VE, one ACCEPT.
    CHECK(r.mod().sept_add == 3);
    CHECK(r.mod().sept_pages == 3);
    CHECK(r.mod().aug == 1);
    CHECK(r.mod().ve == 1);
    CHECK(r.mod().accept == 1);
    const auto v = r.td().module().sept_read(r.td().tdr(), 0x5000, 0);
    CHECK(v.state == tdx::SeptState::mapped);
    CHECK(r.td().module().pamt(pfn_to_hpa(leaf->pfn)).pt == tdx::PageType::reg);
    // The PAMT entry is bytes in the machine's physical memory: PT_REG (byte 2), owner the
    // TDR (bytes 3-7, PA >> 12), BEPOCH 0.
    uint8_t e[tdx::pamt::kEntryBytes];
    r.m->mem().read(Hpa(tdx::pamt::entry_hpa(pfn_to_hpa(leaf->pfn).raw(), 0)), e, sizeof e);
    CHECK(e[2] == uint8_t(tdx::PageType::reg));
    CHECK(tdx::pamt::decode(e).owner == r.td().tdr().raw());
    CHECK(tdx::pamt::decode(e).bepoch == 0);
    // One EPT-violation exit to KVM; the #VE is not an exit.
    CHECK(r.m->exits().npf == 1);
    CHECK(r.m->x86()->stats().private_faults == 1);
    CHECK_FALSE(r.m->check_invariants());
    // The next access hits: no fault, no SEAMCALL.
    const uint64_t calls = r.mod().seamcalls;
    REQUIRE(r.touch(0x5008, false, true));
    CHECK(r.mod().seamcalls == calls);
}

TEST_CASE("tdx run: conversion to shared zaps the mirror leaf with BLOCK, TRACK, REMOVE, the S-EPT follows",
          "[tdx][run]") {
    TdRig r;
    REQUIRE(r.touch(0x5000, true, true));
    REQUIRE(r.touch(0x6000, true, true));
    REQUIRE(r.m->kvm_convert_memory(0x5000, 4096, false, "test", r.ctx) == 0);
    CHECK(r.mod().block == 1);
    CHECK(r.mod().track == 1);
    CHECK(r.mod().remove == 1);
    CHECK(r.td().kvm_tdx().stats().kicks == 1);
    CHECK_FALSE(r.m->x86()->mirror()->lookup(Gfn(5)));
    CHECK(r.m->x86()->mirror()->lookup(Gfn(6)));
    const auto leaves = r.td().module().sept_leaves(r.td().tdr());
    REQUIRE(leaves.size() == 1);
    CHECK(leaves[0].gpa == 0x6000);
    CHECK_FALSE(r.m->check_invariants());
    // The shared alias now maps through KVM's direct root, not the secure EPT.
    REQUIRE(r.touch(0x5000, false, false));
    CHECK(r.m->x86()->tdp().lookup(Gfn(5 | r.m->kvm()->gfn_direct_bits)));
    CHECK(r.mod().aug == 2);
    // Converting back and touching privately AUGs and accepts again.
    REQUIRE(r.m->kvm_convert_memory(0x5000, 4096, true, "test", r.ctx) == 0);
    REQUIRE(r.touch(0x5000, true, true));
    CHECK(r.mod().aug == 3);
    CHECK(r.mod().accept == 3);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run: a busy S-EPT makes the private fault restore the mirror SPTE and retry", "[tdx][run]") {
    TdRig r;
    // Another logical processor holds the S-EPT tree exclusively: SEPT.ADD answers BUSY.
    r.td().module().hold(r.td().tdr(), tdx::TdxModule::Hold::sept_tree_exclusive);
    CHECK_FALSE(r.touch(0x5000, true, true, 3));
    CHECK(r.m->x86()->stats().external_busy >= 1);
    CHECK(r.td().kvm_tdx().stats().busy_retries >= 1);
    CHECK_FALSE(r.m->x86()->mirror()->lookup(Gfn(5)));
    CHECK_FALSE(r.td().kvm_tdx().bugged());
    CHECK_FALSE(r.m->check_invariants());
    r.td().module().release(r.td().tdr(), tdx::TdxModule::Hold::sept_tree_exclusive);
    REQUIRE(r.touch(0x5000, true, true));
    CHECK(r.mod().aug == 1);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run: deleting the memslot removes every private page from the secure EPT", "[tdx][run]") {
    TdRig r;
    for (uint64_t g = 0; g < 8; ++g) REQUIRE(r.touch(g << 12, true, true));
    CHECK(r.td().module().sept_leaves(r.td().tdr()).size() == 8);
    uapi::kvm_userspace_memory_region2 del{};
    del.slot = 0;
    del.memory_size = 0;
    REQUIRE(r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), del, r.ctx) == 0);
    CHECK(r.mod().remove == 8);
    CHECK(r.td().module().sept_leaves(r.td().tdr()).empty());
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run: a 2M ACCEPT over memory the host maps at 4K falls back to 512 4K accepts (512 AUGs)",
          "[tdx][run]") {
    TdRig r;
    auto exit_to_kvm = [&](uint64_t g, PgLevel) {
        return r.m->handle_npf(0, Gpa(g), mmu::PFERR_GUEST_FINAL | mmu::PFERR_USER, r.ctx) != cpu::NpfAction::stop;
    };
    CHECK(r.td().guest_accept(0, 0x200000, 0x200000, PgLevel::k2M, r.ctx, exit_to_kvm) == 0);
    CHECK(r.td().accept_fallbacks() == 1);
    CHECK(r.mod().aug == 512);
    CHECK(r.mod().accept == 512);
    CHECK(r.mod().ve == 0);
    CHECK(r.m->x86()->stats().map_4k == 512);
    const auto leaves = r.td().module().sept_leaves(r.td().tdr());
    REQUIRE(leaves.size() == 512);
    for (const auto& l : leaves) CHECK(l.state == tdx::SeptState::mapped);
    CHECK_FALSE(r.m->check_invariants());
    // Accepted memory is touched without a fault; accepting it again is a no-op.
    const uint64_t exits = r.m->exits().npf;
    REQUIRE(r.touch(0x3ff000, true, true));
    CHECK(r.m->exits().npf == exits);
    CHECK(r.td().guest_accept(0, 0x200000, 0x1000, PgLevel::k4K, r.ctx, exit_to_kvm) == 0);
    CHECK(r.mod().accept == 512);
}

TEST_CASE("tdx run: a 4K ACCEPT of a page the host has not added exits to KVM, which AUGs it", "[tdx][run]") {
    TdRig r;
    unsigned exits = 0;
    auto exit_to_kvm = [&](uint64_t g, PgLevel) {
        ++exits;
        return r.m->handle_npf(0, Gpa(g), mmu::PFERR_GUEST_FINAL | mmu::PFERR_USER, r.ctx) != cpu::NpfAction::stop;
    };
    CHECK(r.td().guest_accept(0, 0x10000, 0x4000, PgLevel::k4K, r.ctx, exit_to_kvm) == 0);
    CHECK(exits == 4);
    CHECK(r.mod().aug == 4);
    CHECK(r.mod().accept == 4);
    CHECK_FALSE(r.m->check_invariants());
}

namespace {

// A vCPU as KVM's kick sees it: in guest mode or not, and what the kick costs it.
struct GuestModeStub final : VcpuRequestTarget {
    bool guest = false, halted = false;
    Cycles charged = 0;
    bool in_guest_mode() const override { return guest; }
    bool idle() const override { return halted; }
    void charge_before_guest(Cycles c) override { charged += c; }
};

}  // namespace

TEST_CASE("tdx run: a zap kicks only the vCPUs inside the TD, they re-enter at the new TD epoch and flush",
          "[tdx][run][track]") {
    std::string text = kTd;
    text.replace(text.find("\"vcpus\": 1"), 10, "\"vcpus\": 3");
    scn::Scenario s = load_scenario_text(text, "td3.json");
    const ParamSet p = resolve_params(s, {});
    const MachineConfig cfg = machine_config(p, s);
    Machine m(s, cfg);
    REQUIRE(m.create_vm_err() == 0);
    kvm::CycleCounter ctx;
    REQUIRE(m.setup(ctx).empty());
    CacheHierarchy cache(cfg.mem);
    std::vector<std::unique_ptr<mmu::Mmu>> hw;
    for (unsigned i = 0; i < 3; ++i) {
        hw.push_back(std::make_unique<mmu::Mmu>(m.config().mmu, m.mem(), cache));
        m.attach_vcpu(i, *hw.back());
    }
    GuestModeStub v[3];
    auto& td = *m.tdx();
    for (unsigned i = 0; i < 3; ++i) td.set_vcpu_requests(i, &v[i]);
    const auto& mod = td.module().stats();
    auto touch = [&](uint64_t gpa) {
        for (int i = 0; i < 8; ++i) {
            auto t = hw[0]->translate(Gva(gpa), mmu::AccessType::write, true);
            if (t.ok()) return true;
            if (m.handle_npf(0, t.fault_gpa, t.error_code, ctx) == cpu::NpfAction::stop) return false;
        }
        return false;
    };
    REQUIRE(touch(0x5000));
    REQUIRE(touch(0x6000));
    // vCPU 0 converts (it is in KVM), vCPU 1 runs guest code, vCPU 2 is outside the TD.
    v[1].guest = true;
    const uint64_t epoch0 = td.module().td_epoch(td.tdr());
    REQUIRE(m.kvm_convert_memory(0x5000, 4096, false, "test", ctx) == 0);
    CHECK(td.module().td_epoch(td.tdr()) == epoch0 + 1);
    CHECK(td.vcpus_kicked() == 1);
    CHECK(v[1].charged > 0);
    CHECK(v[2].charged == 0);
    CHECK(mod.vp_enters == 1);   // vCPU 1's entry, the only one the TRACK had to see
    CHECK(mod.td_exits == 1);    // ... and the kick's exit
    CHECK_FALSE(td.module().vcpu_inside(td.tdr(), 1));
    CHECK(mod.epoch_flushes == 0);
    // vCPU 1 is back in the guest (entered after the TRACK: it flushes on that entry) when
    // the next page goes; vCPU 2 stays out and is never kicked.
    REQUIRE(m.kvm_convert_memory(0x6000, 4096, false, "test", ctx) == 0);
    CHECK(mod.vp_enters == 2);
    CHECK(mod.epoch_flushes == 1);
    CHECK(td.vcpus_kicked() == 2);
    CHECK(v[2].charged == 0);
    CHECK(mod.remove == 2);
    CHECK_FALSE(td.kvm_tdx().bugged());
    CHECK_FALSE(m.check_invariants());
    m.x86()->detach_vcpus();
    td.detach_vcpus();
}

TEST_CASE("tdx run: a private fault waits for the idle vCPUs' ticks (tdx.idle_tick_hz), capped when saturated",
          "[tdx][run][idle]") {
    std::string text = kTd;
    text.replace(text.find("\"vcpus\": 1"), 10, "\"vcpus\": 3");
    scn::Scenario s = load_scenario_text(text, "td3.json");
    const ParamSet p = resolve_params(s, {});
    const MachineConfig cfg = machine_config(p, s);
    Machine m(s, cfg);
    REQUIRE(m.create_vm_err() == 0);
    kvm::CycleCounter ctx;
    REQUIRE(m.setup(ctx).empty());
    CacheHierarchy cache(cfg.mem);
    std::vector<std::unique_ptr<mmu::Mmu>> hw;
    for (unsigned i = 0; i < 3; ++i) {
        hw.push_back(std::make_unique<mmu::Mmu>(m.config().mmu, m.mem(), cache));
        m.attach_vcpu(i, *hw.back());
    }
    GuestModeStub v[3];
    auto& td = *m.tdx();
    for (unsigned i = 0; i < 3; ++i) td.set_vcpu_requests(i, &v[i]);
    v[1].halted = v[2].halted = true;
    auto touch = [&](uint64_t gpa) {
        const Cycles before = ctx.total;
        for (int i = 0; i < 8; ++i) {
            auto t = hw[0]->translate(Gva(gpa), mmu::AccessType::write, true);
            if (t.ok()) return ctx.total - before;
            REQUIRE(m.handle_npf(0, t.fault_gpa, t.error_code, ctx) != cpu::NpfAction::stop);
        }
        FAIL("the access does not complete");
        return Cycles(0);
    };
    REQUIRE(touch(0x5000) > 0);   // links the tables
    CHECK_FALSE(td.idle_ticks_enabled());
    const Cycles plain = touch(0x6000);   // exit, AUG, entry, #VE, ACCEPT: the same path as the next
    // 2 idle vCPUs at 1000 Hz, one tick round trip of tdx_td_exit + tdx_idle_tick +
    // TDH.VP.ENTER (tdx_seamcall + tdx_td_entry): they take u = num / den of the
    // serialization point, and the fault waits plain * u / (1 - u).
    td.set_idle_ticks(1000, 3000);
    const Cycles tick = td.idle_tick_cycles();
    CHECK(tick == cfg.tdx_costs.td_exit + cfg.tdx_costs.idle_tick + cfg.tdx_costs.seamcall + cfg.tdx_costs.td_entry);
    const uint64_t num = 2ull * 1000 * tick, den = 3000ull * 1000000;
    // The fault is two waits (its exit to KVM, then the #VE), each rounded down.
    const Cycles waited = touch(0x7000) - plain, want = plain * num / (den - num);
    CHECK(waited <= want);
    CHECK(waited + 1 >= want);
    CHECK(td.idle_ticks_waited() == waited / tick);
    CHECK(td.idle_saturated_faults() == 0);
    // A busy vCPU is not idle: only vCPU 2 ticks now.
    v[1].halted = false;
    const Cycles one = touch(0x8000) - plain, want_one = plain * (num / 2) / (den - num / 2);
    CHECK(one <= want_one);
    CHECK(one + 1 >= want_one);
    // Demand beyond 98% of the serialization point: the ticks that do not fit are lost.
    v[1].halted = true;
    td.set_idle_ticks(200000, 3000);
    const Cycles sat = touch(0x9000);
    CHECK(sat - plain == plain * 49);
    CHECK(td.idle_saturated_faults() == 2);   // the exit and the #VE
    // The wait is the TD's answer through the arch ops (the machine has no TDX test): a
    // private fault waits, its shared alias does not.
    kvm::Kvm& k = *m.kvm();
    CHECK(k.arch().fault_wait_applies(k, Gpa(0x9000)));
    CHECK_FALSE(k.arch().fault_wait_applies(k, Gpa(0x9000 | (1ull << 47))));
    td.set_idle_ticks(0, 3000);
    CHECK_FALSE(k.arch().fault_wait_applies(k, Gpa(0x9000)));
    m.x86()->detach_vcpus();
    td.detach_vcpus();
}

TEST_CASE("tdx run: TD private pages are encrypted with the TD's key (encrypted_pages), shared pages are not",
          "[tdx][run][encrypt]") {
    TdRig r;
    const EncryptedPages* enc = r.m->kvm()->arch().encrypted_pages(*r.m->kvm());
    REQUIRE(enc);
    REQUIRE(r.touch(0x5000, true, true));
    const auto priv = r.m->x86()->mirror()->lookup(Gfn(5));
    REQUIRE(priv);
    CHECK(enc->encrypted(priv->pfn));
    // The secure EPT's pages (its root is a TDCX page) are the TD's private memory too.
    CHECK(enc->encrypted(hpa_to_pfn(r.td().module().sept_root(r.td().tdr()))));
    // Converted to shared, the page leaves the TD (REMOVE) and its shared alias is plain.
    REQUIRE(r.m->kvm_convert_memory(0x6000, 4096, false, "test", r.ctx) == 0);
    REQUIRE(r.touch(0x6000, true, false));
    const auto shared = r.m->x86()->tdp().lookup(Gfn(6 | r.m->kvm()->gfn_direct_bits));
    REQUIRE(shared);
    CHECK_FALSE(enc->encrypted(shared->pfn));
    REQUIRE(r.m->kvm_convert_memory(0x5000, 4096, false, "test", r.ctx) == 0);
    CHECK_FALSE(enc->encrypted(priv->pfn));   // removed from the TD: no longer its private page
}

TEST_CASE("tdx run: a TD vCPU exits through the module and enters with TDH.VP.ENTER, not VMX exit and entry",
          "[tdx][run]") {
    TdRig r;
    REQUIRE(r.touch(0x5000, true, true));
    const auto fp = r.m->fault_paths();
    REQUIRE(fp.count("npf.private.4K"));
    const auto& t = r.m->config().tdx_costs;
    bool exit = false, entry = false;
    for (auto& [name, c] : fp.at("npf.private.4K").steps) {
        // The TD's exit and entry replace the VMX ones (tdx_vcpu_run() -> tdh_vp_enter()).
        CHECK(name != "vmexit");
        CHECK(name != "vmentry");
        if (name == "tdx_td_exit") exit = c == t.td_exit;
        if (name == "tdh_vp_enter") entry = c == t.seamcall + t.td_entry;
    }
    CHECK(exit);
    CHECK(entry);
    // Round trip as calibrated (9,200 cycles on sapphire-rapids).
    CHECK(t.td_exit + t.seamcall + t.td_entry == 9200);
}

// ---- 2M private leaves (kvm.config.tdx_huge_private, gmem.max_order 9) ----

namespace {

std::string huge_td() {
    std::string t = kTd;
    t.replace(t.find("\"vm\""), 4, R"("params": {"kvm.config.tdx_huge_private": true, "gmem.max_order": 9}, "vm")");
    return t;
}

// The guest's ACCEPT step as the vCPU makes it (the TDCALL, its exits to KVM at the
// ACCEPT's level).
uint64_t accept(TdRig& r, uint64_t gpa, uint64_t size, PgLevel level) {
    uint64_t ret = ~0ull;
    r.m->handle_hypercall(0, Machine::kTdcallAccept, gpa, size >> kPageShift, uint64_t(level), &ret, r.ctx);
    return ret;
}

}  // namespace

TEST_CASE("tdx run huge: a 2M ACCEPT exits once, KVM AUGs the 2M page and the retried ACCEPT succeeds",
          "[tdx][run][huge]") {
    TdRig r(huge_td());
    REQUIRE(r.td().kvm_tdx().huge_private());
    CHECK(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    CHECK(r.m->exits().npf == 1);
    CHECK(r.mod().aug == 1);
    CHECK(r.td().kvm_tdx().stats().aug_2m == 1);
    CHECK(r.mod().accept == 1);
    CHECK(r.mod().accept_4k_pages == 512);
    CHECK(r.td().accept_fallbacks() == 0);
    CHECK(r.m->x86()->stats().map_2m == 1);
    REQUIRE(r.m->x86()->mirror()->lookup(Gfn(0x3ff)));
    CHECK(r.m->x86()->mirror()->lookup(Gfn(0x3ff))->level == PgLevel::k2M);
    const auto leaves = r.td().module().sept_leaves(r.td().tdr());
    REQUIRE(leaves.size() == 1);
    CHECK(leaves[0].level == 1);
    CHECK(leaves[0].state == tdx::SeptState::mapped);
    CHECK_FALSE(r.m->check_invariants());
    // The guest touches it without a fault.
    const uint64_t npf = r.m->exits().npf;
    REQUIRE(r.touch(0x3ff000, true, true));
    CHECK(r.m->exits().npf == npf);
    // A 4K ACCEPT is honoured at 4K: KVM maps 4K, not 2M, for it.
    CHECK(accept(r, 0x400000, 0x1000, PgLevel::k4K) == 0);
    CHECK(r.m->x86()->mirror()->lookup(Gfn(0x400))->level == PgLevel::k4K);
    CHECK(r.td().kvm_tdx().stats().aug_2m == 1);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run huge: converting 4K inside a 2M private leaf DEMOTEs it, then removes the 4K page",
          "[tdx][run][huge][zap]") {
    TdRig r(huge_td());
    REQUIRE(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    REQUIRE(r.m->kvm_convert_memory(0x201000, 0x1000, false, "test", r.ctx) == 0);
    CHECK(r.mod().demote == 1);
    CHECK(r.td().kvm_tdx().stats().demotes == 1);
    CHECK(r.mod().block == 2);    // the 2M leaf, then the 4K child
    CHECK(r.mod().track == 2);
    CHECK(r.mod().remove == 1);
    CHECK(r.td().kvm_tdx().stats().remove_2m == 0);
    CHECK(r.mod().wbinvd == 1);
    const auto leaves = r.td().module().sept_leaves(r.td().tdr());
    CHECK(leaves.size() == 511);
    for (const auto& l : leaves) {
        CHECK(l.level == 0);
        CHECK(l.state == tdx::SeptState::mapped);
    }
    CHECK_FALSE(r.m->x86()->mirror()->lookup(Gfn(0x201)));
    REQUIRE(r.m->x86()->mirror()->lookup(Gfn(0x202)));
    CHECK(r.m->x86()->mirror()->lookup(Gfn(0x202))->level == PgLevel::k4K);
    CHECK(r.m->x86()->mirror()->stats().leaves_4k == 511);
    CHECK(r.m->x86()->mirror()->stats().leaves_2m == 0);
    CHECK_FALSE(r.td().kvm_tdx().bugged());
    CHECK_FALSE(r.m->check_invariants());
    // The guest's data in the rest of the 2M page stays where it was: no fault, no accept.
    const uint64_t npf = r.m->exits().npf, acc = r.mod().accept;
    REQUIRE(r.touch(0x202000, false, true));
    CHECK(r.m->exits().npf == npf);
    CHECK(r.mod().accept == acc);
}

TEST_CASE("tdx run huge: converting a whole aligned 2M is one BLOCK, TRACK, REMOVE at 2M, no DEMOTE",
          "[tdx][run][huge][zap]") {
    TdRig r(huge_td());
    REQUIRE(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    REQUIRE(r.m->kvm_convert_memory(0x200000, 0x200000, false, "test", r.ctx) == 0);
    CHECK(r.mod().demote == 0);
    CHECK(r.mod().block == 1);
    CHECK(r.mod().track == 1);
    CHECK(r.mod().remove == 1);
    CHECK(r.td().kvm_tdx().stats().remove_2m == 1);
    CHECK(r.mod().wbinvd == 512);
    CHECK(r.td().module().sept_leaves(r.td().tdr()).empty());
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run huge: a first touch maps 2M PENDING, the #VE's 4K ACCEPT exits and KVM DEMOTEs, the rest stays "
          "PENDING",
          "[tdx][run][huge]") {
    TdRig r(huge_td());
    REQUIRE(r.touch(0x205000, true, true));
    CHECK(r.td().kvm_tdx().stats().aug_2m == 1);
    CHECK(r.mod().ve >= 1);
    CHECK(r.mod().demote == 1);
    CHECK(r.mod().accept == 1);
    CHECK(r.td().module().sept_read(r.td().tdr(), 0x205000, 0).state == tdx::SeptState::mapped);
    CHECK(r.td().module().sept_read(r.td().tdr(), 0x206000, 0).state == tdx::SeptState::pending);
    CHECK_FALSE(r.m->check_invariants());
    // The next page's #VE is accepted in the guest, without an exit or another AUG.
    const uint64_t npf = r.m->exits().npf;
    REQUIRE(r.touch(0x206000, true, true));
    CHECK(r.m->exits().npf == npf);
    CHECK(r.mod().aug == 1);
    CHECK(r.mod().accept == 2);
}

TEST_CASE("tdx run huge: a 2M range with mixed attributes is mapped at 4K", "[tdx][run][huge]") {
    TdRig r(huge_td());
    REQUIRE(r.m->kvm_convert_memory(0x3ff000, 0x1000, false, "test", r.ctx) == 0);
    CHECK(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    // The 2M ACCEPT's exit maps only 4K (attributes not uniform): PAGE_SIZE_MISMATCH, then
    // 4K ACCEPTs (the shared page's exits as a memory fault and the VMM converts it back).
    CHECK(r.td().kvm_tdx().stats().aug_2m == 0);
    CHECK(r.td().accept_fallbacks() == 1);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run huge: deleting the memslot removes 2M private leaves whole (BLOCK, TRACK, REMOVE at 2M)",
          "[tdx][run][huge][zap]") {
    TdRig r(huge_td());
    REQUIRE(accept(r, 0x200000, 0x400000, PgLevel::k2M) == 0);
    REQUIRE(r.td().kvm_tdx().stats().aug_2m == 2);
    uapi::kvm_userspace_memory_region2 del{};
    del.slot = 0;
    del.memory_size = 0;
    REQUIRE(r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), del, r.ctx) == 0);
    CHECK(r.mod().remove == 2);
    CHECK(r.td().kvm_tdx().stats().remove_2m == 2);
    CHECK(r.mod().demote == 0);
    CHECK(r.td().module().sept_leaves(r.td().tdr()).empty());
    CHECK_FALSE(r.td().kvm_tdx().bugged());
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run huge: once split a 2M range stays 4K (no PROMOTE), a later 2M ACCEPT falls back to 4K",
          "[tdx][run][huge]") {
    TdRig r(huge_td());
    REQUIRE(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    // Convert the whole 2M to shared after a 4K conversion split it, then back to private.
    REQUIRE(r.m->kvm_convert_memory(0x201000, 0x1000, false, "test", r.ctx) == 0);
    REQUIRE(r.m->kvm_convert_memory(0x200000, 0x200000, false, "test", r.ctx) == 0);
    REQUIRE(r.m->kvm_convert_memory(0x200000, 0x200000, true, "test", r.ctx) == 0);
    CHECK(r.td().module().sept_leaves(r.td().tdr()).empty());
    REQUIRE(r.m->x86()->mirror()->has_table_at(Gfn(0x200), PgLevel::k2M));
    const uint64_t aug_2m = r.td().kvm_tdx().stats().aug_2m;
    CHECK(accept(r, 0x200000, 0x200000, PgLevel::k2M) == 0);
    CHECK(r.td().kvm_tdx().stats().aug_2m == aug_2m);   // the mirror's table stays: 4K leaves
    CHECK(r.td().accept_fallbacks() == 1);
    CHECK(r.mod().promote == 0);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx run: a machine built without a platform gets the plain TDX module, no SystemC module", "[tdx][run]") {
    scn::Scenario s = load_scenario_text(kTd, "td.json");
    const ParamSet p = resolve_params(s, {});
    const MachineConfig cfg = machine_config(p, s);
    REQUIRE_FALSE(cfg.hw_modules);   // only the platform (sim/engine.cpp) asks for modules
    Machine m(s, cfg);
    REQUIRE(m.create_vm_err() == 0);
    CHECK(m.tdx() != nullptr);
    CHECK(m.tdx_module() == nullptr);
    CHECK(m.rmp_module() == nullptr);
}

TEST_CASE("tdx run: teardown removes the private pages with the HKID, releases it and reclaims every TD page",
          "[tdx][run][teardown]") {
    TdRig r;
    for (uint64_t g : {0x5000ull, 0x6000ull, 0x400000ull}) REQUIRE(r.touch(g, true, true));
    const uint64_t sept = r.mod().sept_pages;
    REQUIRE(sept == 4);   // PDPT, PD, two page tables
    const Hpa tdr = r.td().tdr();
    const Hpa tdvpr = r.td().tdvprs().at(0);
    REQUIRE(r.td().module().pamt(tdvpr).pt == tdx::PageType::tdvpr);
    r.m->finish_run();
    const auto& t = r.td().teardown_stats();
    CHECK(t.pages_removed == 3);
    CHECK(t.hkid_released);
    CHECK(t.reclaimed == sept + 1 + 2);   // the S-EPT pages, the TDVPR, the TDCS and the TDR
    CHECK(t.seamcalls == 3 * 4 + 3 + t.reclaimed + 1);   // per page 4; VPFLUSHDONE, CACHE.WB, FREEID; TDR WBINVD
    CHECK(t.cycles > 0);
    // The run's figures are kept as they were before the teardown.
    REQUIRE(r.td().run_stats());
    CHECK(r.td().run_stats()->module.aug == 3);
    CHECK(r.td().run_stats()->module.remove == 0);
    CHECK(r.td().run_stats()->module.sept_pages == sept);
    CHECK(r.mod().remove == 3);
    CHECK(r.mod().sept_pages == 0);
    CHECK_FALSE(r.m->x86()->mirror()->lookup(Gfn(5)));
    CHECK_FALSE(r.td().module().has_td(tdr));
    CHECK(r.td().module().pamt(tdr).pt == tdx::PageType::nda);
    CHECK(r.td().module().pamt(tdvpr).pt == tdx::PageType::nda);
    CHECK_FALSE(r.td().kvm_tdx().bugged());
    // A second end of the run does nothing more.
    r.m->finish_run();
    CHECK(r.td().teardown_stats().reclaimed == t.reclaimed);
}
