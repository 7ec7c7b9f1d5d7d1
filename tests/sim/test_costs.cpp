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
