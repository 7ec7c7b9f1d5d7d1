// Test bench for the vCPU's data socket bound to a memory model of the user's: loads use
// the DMI pointer it grants, stores go through b_transport (marked as fills), and an
// invalidation makes the vCPU ask again.
#include <catch2/catch.hpp>

#include "models/cpu/vcpu.hpp"
#include "models/cpu/vcpu_loop.hpp"
#include "models/cpu/x86_translator.hpp"
#include "tests/mmu/pt_builder.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;
using hvsim::mmu::test::TableBuilder;
using hvsim::mmu::NestedFormat;
using hvsim::mmu::NestedPte;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kPeriod = 500;   // ps
constexpr uint64_t kGpa = 0x4000'0000ull, kHpa = 0x1'4000'0000ull, kPool = 0x1000'0000ull;

struct NoExits : cpu::VcpuHost {
    cpu::NpfAction handle_npf(unsigned, Gpa, uint64_t, ExecContext&) override { return cpu::NpfAction::stop; }
    bool handle_hypercall(unsigned, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t*, ExecContext&) override {
        return false;
    }
};

// The user's memory: bytes in a PhysMem, DMI for reads a page at a time.
struct UserMemory : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> socket;
    PhysMem& mem;
    uint64_t reads = 0, writes = 0, fills = 0, grants = 0;
    UserMemory(sc_core::sc_module_name n, PhysMem& m) : sc_module(n), socket("socket"), mem(m) { socket.bind(*this); }
    void b_transport(tlm::tlm_generic_payload& t, sc_time&) override {
        if (t.is_read()) {
            ++reads;
            mem.read(Hpa(t.get_address()), t.get_data_ptr(), t.get_data_length());
        } else {
            ++writes;
            if (t.get_extension<FillExtension>()) ++fills;
            mem.write(Hpa(t.get_address()), t.get_data_ptr(), t.get_data_length());
            // The page's bytes may have moved: drop any pointer handed out.
            const uint64_t base = t.get_address() & ~kPageMask;
            for (int i = 0; i < socket.size(); ++i) socket[i]->invalidate_direct_mem_ptr(base, base + kPageSize - 1);
        }
        t.set_dmi_allowed(true);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& t, tlm::tlm_dmi& d) override {
        const uint64_t base = t.get_address() & ~kPageMask;
        d.set_start_address(base);
        d.set_end_address(base + kPageSize - 1);
        const uint8_t* p = mem.page_if_present(hpa_to_pfn(Hpa(base)));
        d.set_dmi_ptr(const_cast<uint8_t*>(p ? p : PhysMem::zero_page()));
        d.set_granted_access(tlm::tlm_dmi::DMI_ACCESS_READ);
        ++grants;
        return true;
    }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }
};

struct Driver : sc_core::sc_module {
    SC_HAS_PROCESS(Driver);
    cpu::Vcpu& v;
    std::vector<cpu::WorkResult> results;
    std::vector<uint64_t> transactions, dmi_reads;   // the vCPU's counters after each piece of work
    Driver(sc_core::sc_module_name n, cpu::Vcpu& vc) : sc_module(n), v(vc) { SC_THREAD(run); }
    void run() {
        cpu::AccessSpec rd;
        rd.gpa = Gpa(kGpa);
        rd.size = 2 * kPageSize;
        rd.width = 64;
        cpu::AccessSpec wr = rd;
        wr.write = true;
        wr.size = 64;
        wr.value = 0x11;
        for (const cpu::AccessSpec* a : {&rd, &wr, &rd}) {
            v.post_access(*a);
            sc_core::wait(v.done());
            results.push_back(v.result());
            transactions.push_back(v.data_transactions());
            dmi_reads.push_back(v.dmi_reads());
        }
    }
};

}  // namespace

TEST_CASE("vcpu: loads through a granted DMI pointer, stores through b_transport, invalidation honoured") {
    PhysMem mem;
    TableBuilder nested(mem, NestedPte{NestedFormat::npt}, 4, kPool);
    nested.map_range(kGpa, kHpa, 2 * kPageSize, PgLevel::k4K);
    mem.fill(Hpa(kHpa), 0x5a, 2 * kPageSize);

    cpu::VcpuConfig vc;
    vc.mmu.guest_levels = 0;
    vc.mem.levels = {{"l1d", 32 * 1024, 8, 4}};
    vc.period_ps = kPeriod;
    NoExits host;
    cpu::Vcpu v("vcpu0", vc, nullptr, host);
    UserMemory user("user", mem);
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(30, SC_NS));
    v.data.bind(user.socket);
    v.caches().phys.bind(phys.socket);
    v.caches().dram.bind(dram.socket);
    Driver drv("drv", v);
    dynamic_cast<cpu::X86Translator&>(v.translator()).hw().set_nested_root(Hpa(nested.root()));
    sc_core::sc_start();

    REQUIRE(v.error().empty());
    REQUIRE(drv.results.size() == 3);
    // 2 pages x 64 lines read: the first line of each page by b_transport, then DMI.
    CHECK(drv.results[0].accesses == 128);
    CHECK(drv.results[0].byte0 == 0x5a);
    CHECK_FALSE(drv.results[0].bytes_mixed);
    CHECK(drv.transactions[0] == 2);
    CHECK(drv.dmi_reads[0] == 126);
    // The store: one transaction marked as a fill; the target invalidates the page.
    CHECK(drv.transactions[1] == 3);
    CHECK(user.writes == 1);
    CHECK(user.fills == 1);
    CHECK(mem.read64(Hpa(kHpa)) == 0x1111111111111111ull);
    // Reading again: the first page's grant is gone, so it is read by b_transport and
    // granted again (the new bytes are seen); the vCPU holds one grant at a time, so the
    // second page is asked for again too.
    CHECK(drv.results[2].byte0 == 0x11);
    CHECK(drv.results[2].bytes_mixed);
    CHECK(user.grants == 4);
    CHECK(user.reads == 4);
    CHECK(v.dmi_reads() == 126 + 126);
    // The walker's references went to the caches and DRAM, not to the data socket.
    CHECK(dram.reads > 0);
}

TEST_CASE("vcpu: a random pattern's slot is the generator's value modulo the slot count, for any count") {
    uint64_t rng = 42;
    for (const uint64_t n : {1ull, 2ull, 3ull, 6144ull, 8192ull, 114688ull, (1ull << 40) + 3, ~0ull}) {
        const hvsim::Remainder rem(n);
        for (int i = 0; i < 20000; ++i) {
            const uint64_t r = hvsim::cpu::detail::splitmix64(rng) >> (i % 64);
            REQUIRE(rem(r) == r % n);
        }
        REQUIRE(rem(n - 1) == (n - 1) % n);
        REQUIRE(rem(~0ull) == ~0ull % n);
    }
}
