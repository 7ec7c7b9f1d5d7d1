// One cost table: the defaults of kernel/costs.hpp (which the kernel unit tests use) are
// the zen4-genoa preset's values, field by field.
#include <catch2/catch.hpp>

#include "sim/loader.hpp"
#include "sim/machine.hpp"
#include "sim/params.hpp"

using namespace hvsim;

TEST_CASE("costs: KvmCosts defaults are the zen4-genoa preset's cost.* values", "[costs]") {
    const scn::Scenario s = load_scenario_text("{}", "t.json");
    const ParamSet p = ParamSet::preset("zen4-genoa");
    const MachineConfig mc = machine_config(p, s);
    const kvm::KvmCosts d{};
#define SAME(f) \
    do { INFO(#f); CHECK(mc.costs.f == d.f); } while (0)
    SAME(ioctl); SAME(memslot_update); SAME(gmem_create); SAME(page_alloc); SAME(page_free); SAME(zero_4k);
    SAME(fill_4k); SAME(copy_4k); SAME(gmem_get_pfn); SAME(attr_update); SAME(mmu_lock); SAME(pin_page);
    SAME(clflush_4k); SAME(tlb_flush_local); SAME(tlb_flush_remote_ipi); SAME(host_fault); SAME(gup_page);
    SAME(mmap); SAME(host_unmap_page); SAME(wbinvd); SAME(kvm_mmu_page_fault); SAME(spte_write); SAME(sp_alloc);
    SAME(zap_spte); SAME(vmexit); SAME(vmentry); SAME(userspace_exit); SAME(hypercall); SAME(guest_pf);
    SAME(zero_2m); SAME(split_huge_page); SAME(srcu_poll);
#undef SAME
    // Every KvmCosts field is one of the fields above: the struct is only Cycles.
    STATIC_REQUIRE(sizeof(kvm::KvmCosts) == 32 * sizeof(Cycles));
    // The vCPU's own costs default to the preset too.
    const cpu::VcpuConfig vc{};
    CHECK(mc.wide_store_line == vc.wide_store_line_cycles);
    CHECK(mc.guest_clear_page == vc.clear_page_cycles);
    CHECK(mc.data_access_cycles == vc.data_access_cycles);
}

namespace {
// A Machine for `type` on neoverse-n2 under kernel profile `profile` (no vCPU run).
struct Arm64Machine {
    scn::Scenario s;
    ParamSet p;
    Machine m;
    Arm64Machine(const std::string& type, const std::string& profile)
        : s(load_scenario_text(R"({"platform": "neoverse-n2", "params": {"kvm.profile": ")" + profile +
                                   R"("}, "vm": {"type": ")" + type + R"(", "guest_paging": "none"}})",
                               "t.json")),
          p(resolve_params(s, {})),
          m(s, machine_config(p, s)) {
        REQUIRE(m.create_vm_err() == 0);
    }
    bool warns(const std::string& what) const {
        for (const auto& w : m.warnings())
            if (w.find(what) != std::string::npos) return true;
        return false;
    }
};
}  // namespace

TEST_CASE("costs: an arm64 machine charges the EL2 world switch and its own TLB maintenance, not x86's", "[costs]") {
    const Arm64Machine np("default", "linux-7.2");
    const auto& c = np.m.config();
    CHECK(c.costs.vmexit == np.p.get_u64("cost.arm64_guest_exit"));
    CHECK(c.costs.vmentry == np.p.get_u64("cost.arm64_guest_entry"));
    CHECK(c.costs.vmexit != np.p.get_u64("cost.vmexit"));
    CHECK(c.tlbi.ipas2e1is == np.p.get_u64("cost.arm64_tlbi_ipas2e1is"));
    CHECK(c.tlbi.vmalls12e1is == np.p.get_u64("cost.arm64_tlbi_vmalls12e1is"));
    CHECK(c.tlbi.dsb_ish == np.p.get_u64("cost.arm64_dsb_ish"));
    CHECK(c.tlbi.dsb_ishst == np.p.get_u64("cost.arm64_dsb_ishst"));
    CHECK(c.tlbi.isb == np.p.get_u64("cost.arm64_isb"));
    CHECK(c.s2_pte_write == np.p.get_u64("cost.arm64_s2_pte_write"));
    // A protected VM's exit also syncs pKVM's copy of the vCPU.
    const Arm64Machine pv("pkvm", "linux-7.2");
    CHECK(pv.m.config().costs.vmexit ==
          pv.p.get_u64("cost.arm64_guest_exit") + pv.p.get_u64("cost.pkvm_hyp_vcpu_sync"));
}

TEST_CASE("costs: kvm.profile says which kernel a protected VM's run follows", "[costs][pkvm]") {
    CHECK_FALSE(Arm64Machine("pkvm", "linux-7.2").warns("kvm.profile"));
    CHECK(Arm64Machine("pkvm", "linux-6.18").warns("kvm.profile linux-6.18: upstream Linux 6.18 cannot run protected"));
    CHECK(Arm64Machine("pkvm", "inplace").warns("kvm.profile inplace: a guest_memfd page's shareability"));
    // A non-protected VM has no pKVM rules to follow.
    CHECK_FALSE(Arm64Machine("default", "linux-6.18").warns("kvm.profile"));
}
