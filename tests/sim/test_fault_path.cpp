// The x86 TDP fault path and the VMM model, driven through Machine without SystemC:
// each test builds a VM from scenario text, attaches a real hardware MMU and hands the
// fault handler the nested faults that MMU raises.
#include <catch2/catch.hpp>

#include <cerrno>
#include <functional>
#include <optional>

#include "kernel/guest_memfd.hpp"
#include "sim/loader.hpp"
#include "sim/machine.hpp"

using namespace hvsim;

namespace {

struct Rig {
    scn::Scenario s;
    std::unique_ptr<ParamSet> p;
    std::unique_ptr<Machine> m;
    CacheHierarchy cache;
    std::unique_ptr<mmu::Mmu> hw;
    kvm::CycleCounter ctx;

    explicit Rig(const std::string& text, std::vector<std::pair<std::string, std::string>> sets = {})
        : s(load_scenario_text(text, "test.json")),
          p(std::make_unique<ParamSet>(resolve_params(s, sets))),
          cache(machine_config(*p, s).mem) {
        m = std::make_unique<Machine>(s, machine_config(*p, s));
        REQUIRE(m->create_vm_err() == 0);
        REQUIRE(m->setup(ctx).empty());
        hw = std::make_unique<mmu::Mmu>(m->config().mmu, m->mem(), cache);
        m->attach_vcpu(0, *hw);
    }

    // Run the access the way the vCPU does: translate, hand nested faults to KVM.
    cpu::NpfAction touch(uint64_t gpa, bool write, bool enc = false, int max = 8) {
        for (int i = 0; i < max; ++i) {
            auto t = hw->translate(Gva(gpa), write ? mmu::AccessType::write : mmu::AccessType::read, enc);
            if (t.ok()) return cpu::NpfAction::retry;
            REQUIRE(t.status == mmu::TranslateResult::Status::npf);
            auto a = m->handle_npf(0, t.fault_gpa, t.error_code, ctx);
            // A TD's #VE on a PENDING page is handled in the guest (ACCEPT): touch again.
            if (a == cpu::NpfAction::guest) continue;
            if (a != cpu::NpfAction::retry) return a;
        }
        FAIL("fault not resolved");
        return cpu::NpfAction::stop;
    }
};

const char* kDefaultVm = R"({"vm": {"vcpus": 1, "guest_paging": "none",
    "memslots": [{"slot": 0, "gpa": 0, "size": "64MiB", "userspace_addr": "0x7f0000000000"}]}, "steps": []})";

const char* kSwProtected = R"({"params": {"kvm.config.vm_memory_attributes": true},
  "vm": {"type": "sw_protected", "vcpus": 1, "guest_paging": "none",
    "guest_memfd": [{"id": "g0", "size": "64MiB"}],
    "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "64MiB",
                  "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}]}, "steps": []})";

}  // namespace

TEST_CASE("a shared fault on a default VM maps the VMM's page and the walker then hits it", "[fault]") {
    Rig r(kDefaultVm, {{"host.thp", "false"}});
    CHECK(r.touch(0x5000, true) == cpu::NpfAction::retry);
    const auto& st = r.m->x86()->stats();
    CHECK(st.fixed == 1);
    CHECK(st.shared_faults == 1);
    CHECK(r.m->exits().npf == 1);
    // The SPTE points at the page backing userspace_addr + 0x5000.
    auto pfn = r.m->process().anon_page(Hva(0x7f0000005000));
    REQUIRE(pfn);
    auto leaf = r.m->x86()->tdp().lookup(Gfn(5));
    REQUIRE(leaf);
    CHECK(leaf->pfn == *pfn);
    // Recorded as a fault path with its steps.
    auto fp = r.m->fault_paths();
    REQUIRE(fp.count("npf.shared.4K"));
    CHECK(fp.at("npf.shared.4K").count == 1);
    bool has_exit = false;
    for (auto& [name, c] : fp.at("npf.shared.4K").steps) has_exit |= name == "vmexit" && c == 680;
    CHECK(has_exit);
}

TEST_CASE("THP-backed guest RAM is mapped with 2M SPTEs where gfn and hva are congruent", "[fault][thp]") {
    Rig r(kDefaultVm);
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::retry);
    auto leaf = r.m->x86()->tdp().lookup(Gfn(0x205));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k2M);
    CHECK(leaf->pfn == *r.m->process().anon_page(Hva(0x7f0000205000)));
    CHECK(r.m->process().stats().thp_allocated == 1);
    // The whole 2M frame is mapped: a neighbouring page needs no second fault.
    CHECK(r.touch(0x3ff000, false) == cpu::NpfAction::retry);
    CHECK(r.m->exits().npf == 1);
    auto fp = r.m->fault_paths();
    REQUIRE(fp.count("npf.shared.2M"));
    bool zeroed = false;
    for (auto& [name, c] : fp.at("npf.shared.2M").steps) zeroed |= name == "zero_2m";
    CHECK(zeroed);

    // A slot whose userspace_addr is not congruent with its gpa modulo 2M can only be
    // mapped at 4K, huge page or not (lpage_info disallow).
    Rig m(R"({"vm": {"vcpus": 1, "guest_paging": "none",
        "memslots": [{"slot": 0, "gpa": 0, "size": "64MiB", "userspace_addr": "0x7f0000001000"}]}, "steps": []})");
    CHECK(m.touch(0x205000, true) == cpu::NpfAction::retry);
    REQUIRE(m.m->x86()->tdp().lookup(Gfn(0x205)));
    CHECK(m.m->x86()->tdp().lookup(Gfn(0x205))->level == PgLevel::k4K);
}

TEST_CASE("an access outside every memslot is emulated MMIO", "[fault]") {
    Rig r(kDefaultVm);
    CHECK(r.touch(0x10000000, false) == cpu::NpfAction::emulated);
    CHECK(r.m->exits().mmio == 1);
    CHECK(r.m->x86()->stats().emulated == 1);
}

TEST_CASE("sw_protected: the fault follows the attributes and maps the guest_memfd page", "[fault]") {
    Rig r(kSwProtected);
    kvm::CycleCounter c;
    uapi::kvm_memory_attributes a{0, 0x200000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, c) == 0);
    CHECK(r.touch(0x3000, true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->stats().private_faults == 1);
    auto leaf = r.m->x86()->tdp().lookup(Gfn(3));
    REQUIRE(leaf);
    auto gm = r.m->process().gmem(*r.m->gmem_fd("g0"));
    CHECK(gm->filemap_lookup(3) == leaf->pfn);
    CHECK_FALSE(r.m->check_invariants());
    // Outside the private range the same VM faults shared, from the VMM's memory; the
    // mixed 2M frame and the gmem-backed slot keep the mapping at 4K.
    CHECK(r.touch(0x400000, false) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->stats().shared_faults == 1);
}

TEST_CASE("converting to shared zaps the private SPTE and the next fault maps shared", "[fault]") {
    Rig r(kSwProtected);
    kvm::CycleCounter c;
    uapi::kvm_memory_attributes a{0, 0x200000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, c) == 0);
    r.touch(0x3000, true);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(3)));
    REQUIRE(r.m->kvm_convert_memory(0x3000, 0x1000, false, "test", c) == 0);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(3)));
    CHECK(r.m->kvm()->stats().invalidations.size() >= 1);
    CHECK(r.m->x86()->stats().remote_flushes >= 1);
    // A shared read of VMM memory never written maps the zero page read-only ...
    r.touch(0x3000, false);
    auto leaf = r.m->x86()->tdp().lookup(Gfn(3));
    REQUIRE(leaf);
    CHECK_FALSE(leaf->writable);
    CHECK_FALSE(r.m->process().anon_page(Hva(0x7f0000003000)));
    // ... and a write maps the VMM's own page.
    r.touch(0x3000, true);
    leaf = r.m->x86()->tdp().lookup(Gfn(3));
    REQUIRE(leaf);
    REQUIRE(r.m->process().anon_page(Hva(0x7f0000003000)));
    CHECK(leaf->pfn == *r.m->process().anon_page(Hva(0x7f0000003000)));
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("an SNP-style mismatch exits to userspace, armed, the vCPU stops with the exit", "[fault]") {
    Rig r(R"({"params": {"kvm.config.vm_memory_attributes": true},
      "vm": {"type": "snp", "vcpus": 1, "guest_paging": "none",
        "guest_memfd": [{"id": "g0", "size": "64MiB"}],
        "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "64MiB",
                      "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}]}, "steps": []})");
    r.m->arm_vcpu(0, true);
    // A private (C-bit) access to a gfn whose attributes say shared.
    CHECK(r.touch(0x7000, false, true) == cpu::NpfAction::stop);
    auto e = r.m->take_exit(0);
    REQUIRE(e);
    CHECK(e->reason == "memory_fault");
    CHECK(e->gpa == 0x7000);
    CHECK(e->size == 0x1000);
    CHECK(e->flags == uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE);
    CHECK(e->err == EFAULT);
    // Unarmed, the VMM converts the page and re-enters; the retry maps it private. The
    // page is then the guest's in the RMP but not validated: the access raises #VC until the
    // guest PVALIDATEs it (APM vol. 2 §15.36.10; the guest's side is models/cpu/snp_guest).
    r.m->arm_vcpu(0, false);
    mmu::TranslateResult t;
    for (int i = 0; i < 8; ++i) {
        t = r.hw->translate(Gva(0x7000), mmu::AccessType::read, true);
        if (t.status != mmu::TranslateResult::Status::npf) break;
        REQUIRE(r.m->handle_npf(0, t.fault_gpa, t.error_code, r.ctx) == cpu::NpfAction::retry);
    }
    CHECK(t.status == mmu::TranslateResult::Status::vc);
    CHECK(r.m->kvm()->kvm_mem_is_private(Gfn(7)));
    CHECK(r.m->conversions().back().to_private);
    CHECK(r.m->conversions().back().trigger == "memory_fault");
}

TEST_CASE("the VMM cannot convert memory without a guest_memfd: the vCPU stops instead of re-faulting", "[fault]") {
    // Found by the uapi fuzzer: a private access to a gfn marked private but outside every
    // memslot exits with KVM_EXIT_MEMORY_FAULT; the VMM used to set the (unchanged)
    // attribute and re-enter into the same fault forever. QEMU's kvm_convert_memory()
    // refuses memory that no guest_memfd backs, and ignores shared conversions of
    // unbacked ranges.
    Rig r(kSwProtected);
    kvm::CycleCounter c;
    uapi::kvm_memory_attributes a{0x8000000, 0x1000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, c) == 0);
    CHECK(r.touch(0x8000000, true, true) == cpu::NpfAction::stop);
    auto e = r.m->take_exit(0);
    REQUIRE(e);
    CHECK(e->reason == "error");
    CHECK(e->err == EINVAL);
    CHECK(r.m->kvm_convert_memory(0x8000000, 0x1000, true, "test", c) == -EINVAL);
    CHECK(r.m->kvm_convert_memory(0x8000000, 0x1000, false, "test", c) == 0);
    CHECK(r.m->kvm()->kvm_mem_is_private(Gfn(0x8000)));   // ignored: nothing changed
    // Half inside the slot: refused as a whole.
    CHECK(r.m->kvm_convert_memory(0x4000000 - 0x1000, 0x2000, true, "test", c) == -EINVAL);
}

TEST_CASE("a fault inside an invalidation retries, and maps once it ends", "[fault]") {
    Rig r(kDefaultVm);
    auto* k = r.m->kvm();
    k->kvm_mmu_invalidate_begin();
    k->kvm_mmu_invalidate_range_add(Gfn(0), Gfn(16));
    auto t = r.hw->translate(Gva(0x2000), mmu::AccessType::read, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK(r.m->handle_npf(0, t.fault_gpa, t.error_code, r.ctx) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->stats().retries == 1);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(2)));
    // A gfn outside the range is not held up.
    CHECK(r.touch(0x20000, false) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x20)));
    k->kvm_mmu_invalidate_end();
    CHECK(r.touch(0x2000, false) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->tdp().lookup(Gfn(2)));
}

TEST_CASE("pre_fault_memory: argument checks, progress and the slot end", "[fault][prefault]") {
    Rig r(kDefaultVm);
    auto pf = [&](uint64_t gpa, uint64_t size, uint64_t flags, uint64_t* remaining) {
        uapi::kvm_pre_fault_memory a{};
        a.gpa = gpa;
        a.size = size;
        a.flags = flags;
        const int e = r.m->x86()->kvm_vcpu_pre_fault_memory(a, r.ctx);
        if (remaining) *remaining = a.size;
        return e;
    };
    uint64_t rem = 0;
    CHECK(pf(0, 0x1000, 1, nullptr) == -EINVAL);
    CHECK(pf(0x800, 0x1000, 0, nullptr) == -EINVAL);
    CHECK(pf(0x1000, 0, 0, nullptr) == -EINVAL);
    CHECK(pf(0, 0x200000, 0, &rem) == 0);
    CHECK(rem == 0);
    // Crossing the end of the 64 MiB slot: progress up to it, then ENOENT swallowed by progress.
    CHECK(pf(0x3ffe000, 0x4000, 0, &rem) == 0);
    CHECK(rem == 0x2000);
    // Wholly outside: no progress, the error.
    CHECK(pf(0x8000000, 0x1000, 0, &rem) == -ENOENT);
    CHECK(rem == 0x1000);
}

TEST_CASE("pre_fault_memory without TDP validates arguments, then EOPNOTSUPP", "[fault][prefault]") {
    Rig r(kDefaultVm, {{"kvm.config.tdp", "false"}});
    uapi::kvm_pre_fault_memory a{};
    a.gpa = 0;
    a.size = 0x1000;
    a.flags = 2;
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(a, r.ctx) == -EINVAL);
    a.flags = 0;
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(a, r.ctx) == -EOPNOTSUPP);
    CHECK(a.size == 0x1000);
}

TEST_CASE("hypercall MAP_GPA_RANGE: guest-visible errors, and conversion through the VMM", "[fault][hypercall]") {
    Rig r(kSwProtected);
    uint64_t ret = 1;
    CHECK(r.m->handle_hypercall(0, 99, 0, 1, 0, &ret, r.ctx));
    CHECK(int64_t(ret) == -1000);
    CHECK(r.m->handle_hypercall(0, uapi::KVM_HC_MAP_GPA_RANGE, 0x800, 1, 0, &ret, r.ctx));
    CHECK(int64_t(ret) == -22);
    CHECK(r.m->handle_hypercall(0, uapi::KVM_HC_MAP_GPA_RANGE, 0x1000, 0, 0, &ret, r.ctx));
    CHECK(int64_t(ret) == -22);
    CHECK(r.m->handle_hypercall(0, uapi::KVM_HC_MAP_GPA_RANGE, 0x1000, 4, uapi::KVM_MAP_GPA_RANGE_ENCRYPTED, &ret,
                                r.ctx));
    CHECK(ret == 0);
    CHECK(r.m->kvm()->kvm_mem_is_private(Gfn(1)));
    CHECK(r.m->kvm()->kvm_mem_is_private(Gfn(4)));
    CHECK_FALSE(r.m->kvm()->kvm_mem_is_private(Gfn(5)));
    CHECK(r.m->exits().hypercall_user == 1);
    // Armed, the vCPU stops at the KVM_EXIT_HYPERCALL and nothing changes.
    r.m->arm_vcpu(0, true);
    CHECK_FALSE(r.m->handle_hypercall(0, uapi::KVM_HC_MAP_GPA_RANGE, 0x1000, 1, 0, &ret, r.ctx));
    auto e = r.m->take_exit(0);
    REQUIRE(e);
    CHECK(e->reason == "hypercall");
    CHECK(r.m->kvm()->kvm_mem_is_private(Gfn(1)));
}

TEST_CASE("pre_fault_memory without TDP and before any memslot: ENOSPC (found on Linux 6.18)", "[fault][prefault]") {
    // kvm_mmu_reload() runs before the TDP check; shadow paging has no page budget
    // until the first memslot commit (diff-kvm, scenarios/diff-kvm/prefault-no-memslot.json).
    Rig r(R"({"vm": {"vcpus": 1, "guest_paging": "none"}, "steps": []})", {{"kvm.config.tdp", "false"}});
    uapi::kvm_pre_fault_memory a{};
    a.gpa = 0;
    a.size = 0x1000;
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(a, r.ctx) == -ENOSPC);
    kvm::CycleCounter c;
    uapi::kvm_userspace_memory_region2 m{};
    m.memory_size = 0x200000;
    m.userspace_addr = 0x7f0000000000;
    REQUIRE(r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), m, c) == 0);
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(a, r.ctx) == -EOPNOTSUPP);
}

TEST_CASE("a huge frame with mixed attributes is mapped at 4K, a uniform one at 2M", "[fault][thp]") {
    // sw_protected with per-VM attributes; the guest_memfd has no MMAP flag, so shared
    // faults come from the VMM's THP-backed memory and may be huge.
    Rig r(kSwProtected);
    kvm::CycleCounter c;
    uapi::kvm_memory_attributes a{0x200000, 0x1000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, c) == 0);
    CHECK(r.touch(0x300000, false) == cpu::NpfAction::retry);   // shared, in the mixed frame
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(0x300)));
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x300))->level == PgLevel::k4K);
    CHECK(r.touch(0x400000, false) == cpu::NpfAction::retry);   // shared, uniform frame
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(0x400)));
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x400))->level == PgLevel::k2M);
    // Making the private page shared again leaves the frame uniform: the next fault in it
    // (after the 4K SPTE is zapped by the conversion) maps 2M.
    REQUIRE(r.m->kvm_convert_memory(0x200000, 0x1000, false, "test", c) == 0);
    r.m->x86()->tdp().zap_leafs(Gfn(0x200), Gfn(0x400), c);
    r.m->x86()->kvm_flush_remote_tlbs(c);
    CHECK(r.touch(0x300000, false) == cpu::NpfAction::retry);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(0x300)));
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x300))->level == PgLevel::k2M);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("KVM_PRE_FAULT_MEMORY passes a guest_memfd errno through (kvm_tdp_map_page)", "[fault][prefault]") {
    Rig r(kSwProtected, {{"host.mem_size", "1GiB"}});
    kvm::CycleCounter c;
    uapi::kvm_memory_attributes a{0, 0x200000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
    REQUIRE(r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, c) == 0);
    // Nothing left for guest_memfd to allocate: kvm_gmem_get_pfn() fails with ENOMEM, and
    // the ioctl reports ENOMEM (not EFAULT) with nothing done.
    auto& alloc = r.m->allocator();
    while (alloc.alloc(9)) {}
    while (alloc.alloc(0)) {}
    uapi::kvm_pre_fault_memory range{};
    range.gpa = 0x1000;
    range.size = 0x1000;
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(range, c) == -ENOMEM);
    CHECK(range.size == 0x1000);
}

TEST_CASE("a guest write to a read-only memslot is emulated without faulting the backing in", "[fault][readonly]") {
    Rig r(R"({"vm": {"vcpus": 1, "guest_paging": "none",
        "memslots": [{"slot": 0, "flags": ["readonly"], "gpa": 0, "size": "64MiB",
                      "userspace_addr": "0x7f0000000000"}]}, "steps": []})");
    // kvm_follow_pfn() returns KVM_PFN_ERR_RO_FAULT before get_user_pages: no host fault,
    // no (huge) page allocated, the access goes to userspace as MMIO.
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::emulated);
    CHECK(r.m->exits().mmio == 1);
    CHECK(r.m->process().stats().host_faults == 0);
    CHECK(r.m->process().stats().gup_pages == 0);
    CHECK(r.m->process().nr_anon_pages() == 0);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x205)));
    auto fp = r.m->fault_paths();
    REQUIRE(fp.count("npf.mmio"));
    for (auto& [name, c] : fp.at("npf.mmio").steps) {
        CHECK(name != "zero_2m");
        CHECK(name != "host_fault");
    }
}

namespace {

// A context whose first sync() (a lock dropped: other threads run) runs `on_sync`, so a
// test can place a fault exactly inside another operation's window.
struct InterleaveContext final : ExecContext {
    std::function<void()> on_sync;
    void charge(StepName, Cycles) override {}
    void sync() override {
        if (!on_sync) return;
        auto f = std::move(on_sync);
        on_sync = nullptr;
        f();
    }
};

}  // namespace

TEST_CASE("an attribute change protects the huge-page frames around it from a racing fault", "[fault][thp][race]") {
    // A fault on gfn 0x201 (shared, THP-backed) runs while 0x205 turns private: it must
    // retry, not install a shared 2M SPTE that the new private page then sits under
    // (kvm_arch_pre_set_memory_attributes() adds the head/tail 2M/1G frames).
    const bool per_vm = GENERATE(true, false);
    Rig r(kSwProtected, {{"kvm.profile", per_vm ? "linux-6.18" : "inplace"},
                         {"kvm.config.vm_memory_attributes", per_vm ? "true" : "false"}});
    auto* k = r.m->kvm();
    if (!per_vm) {   // guest_memfd pages start private in-place; make all of it shared
        kvm::CycleCounter c;
        REQUIRE(r.m->kvm_convert_memory(0, 64ull << 20, false, "test", c) == 0);
    }
    int fault_r = -1;
    InterleaveContext ictx;
    ictx.on_sync = [&] {
        kvm::CycleCounter c;
        fault_r = r.m->x86()->kvm_mmu_page_fault(Gpa(0x201000), mmu::PFERR_USER, c).r;
    };
    int e;
    if (per_vm) {
        uapi::kvm_memory_attributes a{0x205000, 0x1000, uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE, 0};
        e = r.m->process().ioctl_set_memory_attributes(r.m->vm_fd(), a, ictx);
    } else {
        uapi::kvm_memory_attributes2 a{};
        a.offset = 0x205000;
        a.size = 0x1000;
        a.attributes = uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
        a.flags = uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_NONE;
        e = r.m->process().ioctl_set_memory_attributes2(*r.m->gmem_fd("g0"), a, ictx);
    }
    REQUIRE(e == 0);
    CHECK(fault_r == kvm::RET_PF_RETRY);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x201)));
    const auto& rec = k->stats().invalidations.back();
    // The 2M frame joined the invalidation; the 1G frame reaches past the 64 MiB slot.
    CHECK(rec.start_gfn == 0x200);
    CHECK(rec.end_gfn == 0x400);
    CHECK_FALSE(r.m->check_invariants());
    // Afterwards the frame is mixed: the fault maps 4K.
    CHECK(r.touch(0x201000, false) == cpu::NpfAction::retry);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(0x201)));
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x201))->level == PgLevel::k4K);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("deleting a memslot of a default VM zaps every SPTE (KVM_X86_QUIRK_SLOT_ZAP_ALL)", "[fault][memslot]") {
    const char* two_slots = R"({"vm": {"vcpus": 1, "guest_paging": "none",
        "memslots": [{"slot": 0, "gpa": 0, "size": "64MiB", "userspace_addr": "0x7f0000000000"},
                     {"slot": 1, "gpa": "1GiB", "size": "64MiB", "userspace_addr": "0x7f0040000000"}]},
        "steps": []})";
    const bool quirk = GENERATE(true, false);
    Rig r(two_slots, {{"kvm.config.quirk_slot_zap_all", quirk ? "true" : "false"}});
    CHECK(r.touch(0x5000, true) == cpu::NpfAction::retry);
    CHECK(r.touch(0x40005000, true) == cpu::NpfAction::retry);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(5)));
    uapi::kvm_userspace_memory_region2 del{};
    del.slot = 1;
    del.guest_phys_addr = 1ull << 30;
    del.userspace_addr = 0x7f0040000000ull;
    REQUIRE(r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), del, r.ctx) == 0);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x40005)));
    // With the quirk, slot 0's SPTE went too (kvm_mmu_zap_all_fast()); without, it stays.
    CHECK(bool(r.m->x86()->tdp().lookup(Gfn(5))) == !quirk);
    const auto& rec = r.m->kvm()->stats().invalidations.back();
    REQUIRE(rec.ranges.size() == 1);
    CHECK(rec.ranges[0].memslot == (quirk ? -1 : 1));
    CHECK(rec.ranges[0].pages_zapped == 2 - (quirk ? 0 : 1));
}

TEST_CASE("a sw_protected VM zaps only the deleted slot, whatever the quirk", "[fault][memslot]") {
    Rig r(R"({"vm": {"type": "sw_protected", "vcpus": 1, "guest_paging": "none",
        "memslots": [{"slot": 0, "gpa": 0, "size": "64MiB", "userspace_addr": "0x7f0000000000"},
                     {"slot": 1, "gpa": "1GiB", "size": "64MiB", "userspace_addr": "0x7f0040000000"}]},
        "steps": []})");
    CHECK(r.touch(0x5000, true) == cpu::NpfAction::retry);
    uapi::kvm_userspace_memory_region2 del{};
    del.slot = 1;
    del.guest_phys_addr = 1ull << 30;
    del.userspace_addr = 0x7f0040000000ull;
    REQUIRE(r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), del, r.ctx) == 0);
    CHECK(r.m->x86()->tdp().lookup(Gfn(5)));
}

namespace {

struct FakeVcpu final : VcpuRequestTarget {
    bool guest_mode = false;
    Cycles charged = 0;
    bool in_guest_mode() const override { return guest_mode; }
    void charge_before_guest(Cycles c) override { charged += c; }
};

}  // namespace

TEST_CASE("a remote TLB flush kicks only vCPUs in guest mode, in parallel, each pays its own exit and flush",
          "[fault][flush]") {
    Rig r(kDefaultVm);
    // Three more vCPUs: two running guest code, one outside guest mode (halted, or in the VMM).
    CacheHierarchy cache(machine_config(*r.p, r.s).mem);
    std::vector<std::unique_ptr<mmu::Mmu>> hws;
    FakeVcpu self, run1, run2, idle;
    r.m->x86()->set_vcpu_requests(0, &self);
    run1.guest_mode = run2.guest_mode = true;
    for (FakeVcpu* v : {&run1, &run2, &idle}) {
        hws.push_back(std::make_unique<mmu::Mmu>(r.m->config().mmu, r.m->mem(), cache));
        r.m->x86()->attach_vcpu(*hws.back(), v);
    }
    const auto& c = machine_config(*r.p, r.s).costs;
    kvm::CycleCounter init;
    r.m->x86()->kvm_flush_remote_tlbs(init);
    // The requester waits for one IPI round trip, not one per vCPU (kvm_make_all_cpus_request()).
    CHECK(init.total == c.tlb_flush_remote_ipi);
    CHECK(r.m->x86()->stats().remote_flush_ipis == 2);
    CHECK(run1.charged == c.vmexit + c.tlb_flush_local + c.vmentry);
    CHECK(run2.charged == c.vmexit + c.tlb_flush_local + c.vmentry);
    CHECK(idle.charged == c.tlb_flush_local);   // flushes at its next entry, no IPI
    CHECK(self.charged == c.tlb_flush_local);
    for (auto& hw : hws) CHECK(hw->stats().flushes == 1);
    // Nobody in guest mode: no IPI at all.
    run1.guest_mode = run2.guest_mode = false;
    kvm::CycleCounter quiet;
    r.m->x86()->kvm_flush_remote_tlbs(quiet);
    CHECK(quiet.total == 0);
    CHECK(r.m->x86()->stats().remote_flush_ipis == 2);
    r.m->x86()->detach_vcpus();
}

TEST_CASE("a read of never-written guest RAM maps the huge zero page read-only, the first write copies",
          "[fault][thp][zero]") {
    Rig r(kDefaultVm);
    auto& proc = r.m->process();
    CHECK(r.touch(0x205000, false) == cpu::NpfAction::retry);
    auto leaf = r.m->x86()->tdp().lookup(Gfn(0x205));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k2M);
    CHECK_FALSE(leaf->writable);
    CHECK(proc.nr_anon_pages() == 0);          // nothing allocated for a read
    CHECK(proc.stats().thp_allocated == 0);
    CHECK(proc.nr_huge_zero_regions() == 1);
    // The whole frame reads as zeros without another fault.
    CHECK(r.touch(0x3ff000, false) == cpu::NpfAction::retry);
    CHECK(r.m->exits().npf == 1);

    // A write: the read-only SPTE faults, the host copies one 4K page (the huge zero PMD is
    // split), the MMU notifier zaps the 2M SPTE, and KVM maps the new page writable at 4K.
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::retry);
    leaf = r.m->x86()->tdp().lookup(Gfn(0x205));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k4K);
    CHECK(leaf->writable);
    CHECK(leaf->pfn == *proc.anon_page(Hva(0x7f0000205000)));
    CHECK(proc.nr_anon_pages() == 1);
    CHECK(proc.stats().thp_allocated == 0);
    CHECK(proc.nr_huge_zero_regions() == 0);
    bool notified = false;
    for (const auto& i : r.m->kvm()->stats().invalidations) notified |= i.cause == kvm::InvalidateCause::hva_notifier;
    CHECK(notified);
    // The rest of the frame still reads zeros, now through the 4K zero page.
    CHECK(r.touch(0x206000, false) == cpu::NpfAction::retry);
    leaf = r.m->x86()->tdp().lookup(Gfn(0x206));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k4K);
    CHECK_FALSE(leaf->writable);
    CHECK(proc.nr_zero_mapped_pages() == 1);
    CHECK(proc.nr_anon_pages() == 1);
    CHECK_FALSE(r.m->check_invariants());

    // A write to a region never read still gets a huge page.
    CHECK(r.touch(0x405000, true) == cpu::NpfAction::retry);
    CHECK(proc.stats().thp_allocated == 1);
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x405))->level == PgLevel::k2M);
}

TEST_CASE("without THP a read maps the 4K zero page read-only", "[fault][zero]") {
    Rig r(kDefaultVm, {{"host.thp", "false"}});
    CHECK(r.touch(0x5000, false) == cpu::NpfAction::retry);
    CHECK(r.touch(0x6000, false) == cpu::NpfAction::retry);
    auto a = r.m->x86()->tdp().lookup(Gfn(5)), b = r.m->x86()->tdp().lookup(Gfn(6));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->pfn == b->pfn);   // one shared zero page
    CHECK_FALSE(a->writable);
    CHECK(r.m->process().nr_anon_pages() == 0);
    CHECK(r.touch(0x5000, true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->tdp().lookup(Gfn(5))->writable);
    CHECK(r.m->x86()->tdp().lookup(Gfn(5))->pfn != b->pfn);
    CHECK(r.m->process().nr_anon_pages() == 1);
}

TEST_CASE("dirty logging: 4K mappings only, write protection, the fast path marks pages dirty", "[fault][dirty]") {
    Rig r(kDefaultVm);
    auto set_flags = [&](uint32_t flags) {
        uapi::kvm_userspace_memory_region2 m{};
        m.slot = 0;
        m.flags = flags;
        m.memory_size = 64ull << 20;
        m.userspace_addr = 0x7f0000000000ull;
        return r.m->process().ioctl_set_user_memory_region2(r.m->vm_fd(), m, r.ctx);
    };
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::retry);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(0x205))->level == PgLevel::k2M);
    REQUIRE(set_flags(uapi::KVM_MEM_LOG_DIRTY_PAGES) == 0);
    // kvm_mmu_slot_apply_flags(): the 2M SPTE is split and every 4K SPTE write-protected.
    auto leaf = r.m->x86()->tdp().lookup(Gfn(0x205));
    REQUIRE(leaf);
    CHECK(leaf->level == PgLevel::k4K);
    CHECK_FALSE(leaf->writable);
    const uint64_t npf = r.m->exits().npf;
    // A write: fast_page_fault() makes it writable and marks it dirty.
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::retry);
    CHECK(r.m->exits().npf == npf + 1);
    CHECK(r.m->x86()->stats().fast_fixes == 1);
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x205))->writable);
    // A new fault in the slot maps 4K although the backing is a huge page.
    CHECK(r.touch(0x405000, true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x405))->level == PgLevel::k4K);
    std::vector<uint64_t> bm;
    REQUIRE(r.m->process().ioctl_get_dirty_log(r.m->vm_fd(), uapi::kvm_dirty_log{0}, bm, r.ctx) == 0);
    CHECK(bm[0x205 / 64] == 1ull << (0x205 % 64));
    CHECK(bm[0x405 / 64] == 1ull << (0x405 % 64));
    // Taken: write-protected again.
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x205))->writable);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x405))->writable);
    // Logging off: the slot's SPTEs go and the next fault maps 2M again.
    REQUIRE(set_flags(0) == 0);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(0x205)));
    CHECK(r.touch(0x205000, true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->tdp().lookup(Gfn(0x205))->level == PgLevel::k2M);
}

TEST_CASE("mem.dram.model selects the DRAM model, DDR5 timings become whole core cycles", "[sim][dram]") {
    const scn::Scenario s = load_scenario_text(kDefaultVm, "test.json");
    const MachineConfig fixed = machine_config(resolve_params(s, {}), s);
    CHECK(fixed.dram.model == DramConfig::Model::fixed);
    CHECK(fixed.dram.fixed_cycles == fixed.mem.dram_cycles);
    const MachineConfig d = machine_config(resolve_params(s, {{"mem.dram.model", "ddr5"}}), s);
    CHECK(d.dram.model == DramConfig::Model::ddr5);
    // 3000 MHz = 333 ps per cycle: 16667 ps -> 51 cycles, 16250 ps -> 49 cycles (rounded up).
    CHECK(d.period_ps == 333);
    CHECK(d.dram.t_cl == 51);
    CHECK(d.dram.t_rcd == 49);
    CHECK(d.dram.t_rp == 49);
    CHECK(d.dram.banks == 32);
    CHECK(d.dram.page_bytes == 4096);
    CHECK_THROWS(resolve_params(s, {{"mem.dram.model", "hbm"}}));
}

namespace {
const char* kTdx = R"({"platform": "sapphire-rapids",
  "vm": {"type": "tdx", "vcpus": 1, "guest_paging": "none",
    "guest_memfd": [{"id": "g0", "size": "64MiB"}],
    "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "64MiB",
                  "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
    "private": [{"gpa": 0, "size": "2MiB"}]}, "steps": []})";
}  // namespace

TEST_CASE("tdx: the shared GPA bit is 47 with 4-level EPT and 51 with 5-level (kvm_gfn_direct_bits)", "[fault][tdx]") {
    {
        Rig r(kTdx);
        CHECK(r.m->config().mmu.shared_gpa_bit == 47);
        CHECK(r.m->kvm()->gfn_direct_bits == (1ull << (47 - kPageShift)));
    }
    {
        Rig r(kTdx, {{"mmu.nested_levels", "5"}});
        CHECK(r.m->config().mmu.shared_gpa_bit == 51);
        CHECK(r.m->kvm()->gfn_direct_bits == (1ull << (51 - kPageShift)));
    }
}

TEST_CASE("tdx: a shared access walks the alias, the fault path strips the bit, and no conversion follows",
          "[fault][tdx]") {
    Rig r(kTdx);
    const uint64_t alias = 1ull << (47 - kPageShift);
    kvm::CycleCounter c;
    // Private write: mapped at the gfn in the mirror root (and AUGed into the secure EPT);
    // the direct root has neither the gfn nor its alias.
    CHECK(r.touch(0x3000, true, /*enc=*/true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->stats().private_faults == 1);
    REQUIRE(r.m->x86()->mirror()->lookup(Gfn(3)));
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(3)));
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(3 | alias)));
    // MapGPA to shared zaps the private mapping only.
    REQUIRE(r.m->kvm_convert_memory(0x3000, 0x1000, false, "test", c) == 0);
    CHECK_FALSE(r.m->x86()->mirror()->lookup(Gfn(3)));
    // A shared access (shared bit set by the guest) faults at gpa | BIT(47): KVM strips the
    // bit for the memslot and attribute lookups, sees a shared fault on a shared gfn, and
    // maps the alias. No KVM_EXIT_MEMORY_FAULT, no conversion back to private.
    const auto exits_before = r.m->exits().total;
    auto t = r.hw->translate(Gva(0x3000), mmu::AccessType::read, false);
    REQUIRE(t.status == mmu::TranslateResult::Status::npf);
    CHECK(t.fault_gpa.raw() == (0x3000 | (1ull << 47)));
    auto out = r.m->x86()->kvm_mmu_page_fault(t.fault_gpa, t.error_code, c);
    CHECK(out.r == kvm::RET_PF_FIXED);
    CHECK_FALSE(out.is_private);
    CHECK_FALSE(out.exit);
    CHECK(r.m->x86()->stats().memory_fault_exits == 0);
    CHECK(r.m->exits().total == exits_before);
    REQUIRE(r.m->x86()->tdp().lookup(Gfn(3 | alias)));
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(3)));
    CHECK_FALSE(r.m->kvm()->kvm_mem_is_private(Gfn(3)));
    CHECK(r.hw->translate(Gva(0x3000), mmu::AccessType::read, false).ok());
    CHECK_FALSE(r.m->check_invariants());
    // Converting back to private zaps the shared alias (KVM_FILTER_SHARED: the direct root).
    REQUIRE(r.m->kvm_convert_memory(0x3000, 0x1000, true, "test", c) == 0);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(3 | alias)));
    // A private access to a page the attributes call private needs no conversion either.
    CHECK(r.touch(0x4000, false, /*enc=*/true) == cpu::NpfAction::retry);
    CHECK(r.m->x86()->stats().memory_fault_exits == 0);
    CHECK_FALSE(r.m->check_invariants());
}

TEST_CASE("tdx: pre-fault refuses a GPA with the shared bit (EINVAL) once allowed", "[fault][tdx][prefault]") {
    Rig r(kTdx);
    kvm::CycleCounter c;
    uapi::kvm_pre_fault_memory pf{1ull << 47, 0x1000, 0, {}};
    r.m->kvm()->pre_fault_allowed = true;
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(pf, c) == -EINVAL);
    uapi::kvm_pre_fault_memory ok{0x5000, 0x1000, 0, {}};
    CHECK(r.m->x86()->kvm_vcpu_pre_fault_memory(ok, c) == 0);
    CHECK(r.m->x86()->mirror()->lookup(Gfn(5)));
}

namespace {

// One simulated thread with a local time; sync() hands control to the test's other thread.
struct TimedThread final : ExecContext {
    Cycles t = 0, waited = 0;
    std::function<void()> at_sync;
    void charge(StepName step, Cycles c) override {
        t += c;
        if (step == "mmu_lock_wait") waited += c;
    }
    void sync() override {
        if (at_sync) at_sync();
    }
    std::optional<Cycles> local_cycles() const override { return t; }
};

}  // namespace

TEST_CASE("mmu_lock: a fault whose read_lock falls in an invalidation's write hold waits for it, then retries",
          "[fault][mmu_lock][race]") {
    // kvm_tdp_mmu_page_fault() takes mmu_lock for read after faultin; an MMU-notifier
    // invalidation of its gfn holds it for write from kvm_mmu_invalidate_begin() through the
    // zap. The fault gets the lock at the writer's release and is_page_fault_stale() sends it
    // back (mmu_invalidate_retry_gfn(): in progress over its gfn).
    Rig r(kDefaultVm, {{"host.thp", "false"}});
    kvm::Kvm& k = *r.m->kvm();
    Cycles global = 0;
    k.mmu_lock().set_clock([&] { return global; });
    const kvm::kvm_memory_slot* slot = k.gfn_to_memslot(0, Gfn(5));
    REQUIRE(slot);
    TimedThread fault, vmm;
    fault.t = 100000;
    vmm.t = 99900;   // the invalidation starts before the fault reaches mmu_lock
    std::optional<kvm::MmuInvalidation> inv;
    int step = 0;
    Cycles released_at = 0;
    fault.at_sync = [&] {
        ++step;
        if (step == 1) return;   // after faultin: the other thread is still behind
        if (step == 2) {   // read_lock() brings the fault in time order: the VMM runs first
            global = vmm.t;
            inv.emplace(k, kvm::InvalidateCause::hva_notifier, kvm::AttrFilter::shared, vmm);
            inv->begin();   // write_lock, kvm_mmu_invalidate_begin()
            inv->unmap(*slot, Gfn(5), Gfn(6));
            CHECK(k.mmu_lock().writer_inside());
        } else if (step == 3) {   // the fault's first poll: the VMM finishes its zap and drops the lock
            vmm.charge("zap", 5000);
            inv->flush_and_unlock();
            released_at = vmm.t;
        }
        global = fault.t;
    };
    const kvm::PageFaultOutcome out = r.m->x86()->kvm_mmu_page_fault(Gpa(0x5000), mmu::PFERR_USER, fault);
    CHECK(out.r == kvm::RET_PF_RETRY);
    CHECK(step == 3);
    REQUIRE(released_at > 100000);
    CHECK(fault.waited > 0);
    CHECK(fault.t >= released_at);   // it got the lock only when the writer released it
    CHECK(k.mmu_lock().stats().waits == 1);
    CHECK_FALSE(r.m->x86()->tdp().lookup(Gfn(5)));
    global = vmm.t;
    inv->end();
    // After kvm_mmu_invalidate_end() the retried fault maps the page without waiting.
    TimedThread again;
    again.t = std::max(vmm.t, fault.t) + 1000;
    global = again.t;
    CHECK(r.m->x86()->kvm_mmu_page_fault(Gpa(0x5000), mmu::PFERR_USER, again).r == kvm::RET_PF_FIXED);
    CHECK(again.waited == 0);
}
