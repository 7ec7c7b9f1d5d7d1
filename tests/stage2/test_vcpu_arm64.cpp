// The same vCPU model driving the arm64 MMU through its translation port: stage-2
// aborts reach the hypervisor with ESR_EL2 and the IPA; after the hypervisor maps the
// page the access retries and reads the bytes; TLB hits take the inlined path.
#include <catch2/catch.hpp>

#include "models/cpu/vcpu.hpp"
#include "models/stage2/stage2_translator.hpp"
#include "tests/stage2/s2_builder.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::stage2;
using namespace hvsim::stage2::test;

namespace {

constexpr uint64_t kIpa = 0x4000'0000ull, kPa = 0x1'4000'0000ull, kPool = 0x1000'0000ull;

// A hypervisor that maps the faulting page (4K) at stage 2 and records the abort.
struct MapOnAbort : cpu::VcpuHost {
    DescBuilder& s2;
    std::vector<std::pair<uint64_t, uint64_t>> aborts;   // (IPA, ESR_EL2)
    explicit MapOnAbort(DescBuilder& b) : s2(b) {}
    cpu::NpfAction handle_npf(unsigned, Gpa ipa, uint64_t esr_el2, ExecContext&) override {
        aborts.emplace_back(ipa.raw(), esr_el2);
        if (!esr::is_translation(esr_el2)) return cpu::NpfAction::stop;
        const uint64_t page = ipa.raw() & ~kPageMask;
        s2.map(page, kPa + (page - kIpa), 3, kS2Rw);
        return cpu::NpfAction::retry;
    }
    bool handle_hypercall(unsigned, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t*, ExecContext&) override {
        return false;
    }
};

struct Driver : sc_core::sc_module {
    SC_HAS_PROCESS(Driver);
    cpu::Vcpu& v;
    std::vector<cpu::WorkResult> results;
    Driver(sc_core::sc_module_name n, cpu::Vcpu& vc) : sc_module(n), v(vc) { SC_THREAD(run); }
    void run() {
        cpu::AccessSpec rd;
        rd.gpa = Gpa(kIpa);
        rd.size = 2 * kPageSize;
        rd.width = 64;
        for (int i = 0; i < 2; ++i) {
            v.post_access(rd);
            sc_core::wait(v.done());
            results.push_back(v.result());
        }
    }
};

}  // namespace

TEST_CASE("vcpu: the arm64 MMU behind the translation port: stage-2 aborts, retry, TLB hits") {
    PhysMem mem;
    const S2Geometry geo = kvm_stage2_geometry(Granule::k4K, 40);
    DescBuilder s2 = DescBuilder::stage2(mem, geo, kPool);
    mem.fill(Hpa(kPa), 0x5a, 2 * kPageSize);

    cpu::VcpuConfig vc;
    vc.mmu.guest_levels = 0;
    vc.mem.levels = {{"l1d", 32 * 1024, 8, 4}};
    vc.period_ps = 500;
    vc.make_translator = Stage2Translator::factory(Stage2Config{});
    MapOnAbort host(s2);
    cpu::Vcpu v("vcpu0", vc, nullptr, host);
    PhysMemTarget phys("phys", mem);
    hvsim::test::CountingDram dram("dram", sc_core::sc_time(30, sc_core::SC_NS));
    v.data.bind(phys.socket);
    v.caches().phys.bind(phys.socket);
    v.caches().dram.bind(dram.socket);
    auto& xl = dynamic_cast<Stage2Translator&>(v.translator());
    CHECK(xl.kind() == "arm64 mmu");
    xl.hw().set_vtcr(kvm_vtcr(geo));
    xl.hw().set_vttbr(1, Hpa(s2.root()));
    Driver drv("drv", v);
    sc_core::sc_start();

    REQUIRE(v.error().empty());
    REQUIRE(drv.results.size() == 2);
    CHECK(drv.results[0].accesses == 128);
    CHECK(drv.results[0].byte0 == 0x5a);
    CHECK_FALSE(drv.results[0].bytes_mixed);
    // One level-3 translation fault per page (the L2 table exists after the first).
    REQUIRE(host.aborts.size() == 2);
    CHECK(host.aborts[0].first == kIpa);
    CHECK(esr::fsc(host.aborts[0].second) == esr::fsc_fault(1));   // empty tables: the root's entry
    CHECK(host.aborts[1].first == kIpa + kPageSize);
    CHECK(esr::fsc(host.aborts[1].second) == esr::fsc_fault(3));
    CHECK(v.stats().npf_exits == 2);
    // The second pass: every access hits the TLB.
    const auto& st = v.translator().stats();
    CHECK(st.misses == 4);   // two faulting walks, two that succeeded
    CHECK(st.l1_hits == st.accesses - st.misses);
    CHECK(xl.hw().s2_stats().s2_faults == 2);
}
