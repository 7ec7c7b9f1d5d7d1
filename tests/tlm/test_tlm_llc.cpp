// Test bench for LlcModule (top.mem.llc): the cores' hierarchies share its array and send it
// their line fills, which it passes on to DRAM through its own socket; another initiator's
// line reads are looked up in it (hits, misses filled from DRAM); it grants no DMI.
#include <catch2/catch.hpp>

#include "models/mem/dram.hpp"
#include "models/mem/llc_module.hpp"
#include "models/mem/tlm_mem.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kPeriodPs = 1000;   // 1 GHz: a nanosecond is a cycle

MemHierarchyConfig three_levels() {
    MemHierarchyConfig c;
    c.levels = {{"l1d", 32 << 10, 8, 4}, {"l2", 256 << 10, 8, 12}, {"llc", 4 << 20, 16, 40}};
    c.line_bytes = 64;
    return c;
}

}  // namespace

TEST_CASE("llc module: a core's fill passes through to DRAM once, with DRAM's delay and the miss mark") {
    const MemHierarchyConfig cfg = three_levels();
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(100, SC_NS));
    LlcModule llc("llc", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    MemHierarchy core("core", cfg, kPeriodPs, &llc.array());
    // The reference: the same hierarchy with a private LLC, bound to DRAM directly.
    CountingDram dram_ref("dram_ref", sc_time(100, SC_NS));
    MemHierarchy ref("ref", cfg, kPeriodPs);
    core.phys.bind(phys.socket);
    ref.phys.bind(phys.socket);
    core.dram.bind(llc.in);
    llc.dram.bind(dram.socket);
    ref.dram.bind(dram_ref.socket);
    TestInitiator walker("walker"), walker_ref("walker_ref");   // the MMUs' side, unused here
    walker.socket.bind(core.in);
    walker_ref.socket.bind(ref.in);
    elaborate();

    Cycles c = 0, r = 0;
    core.read64(0x12340, c);
    ref.read64(0x12340, r);
    CHECK(c == r);   // the module adds no latency of its own
    CHECK(c == 100);   // a miss in every level costs the fill (cache.hpp's latency model)
    CHECK(dram.reads == 1);
    CHECK(dram.addrs.at(0) == 0x12340);
    CHECK(llc.core_fills() == 1);
    CHECK(llc.foreign_hits() + llc.foreign_misses() == 0);   // no second look-up
    // The line is in the shared array now: a miss in the private levels hits there.
    core.caches().invalidate_all();
    c = 0;
    core.read64(0x12348, c);
    CHECK(c == 40);   // the LLC's hit latency
    CHECK(dram.reads == 1);
}

namespace {
// A pass-through target: hides the DRAM module behind it, so a hierarchy bound here fills
// through the sockets (the reference for the direct call hvsim's own modules allow).
struct Forwarder : sc_core::sc_module, tlm::tlm_fw_transport_if<>, tlm::tlm_bw_transport_if<> {
    tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 0> in;
    tlm::tlm_initiator_socket<> out;
    explicit Forwarder(sc_core::sc_module_name n) : sc_module(n), in("in"), out("out") {
        in.bind(*this);
        out.bind(*this);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time& d) override { out->b_transport(t, d); }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) override { return false; }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    void invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) override {}
};
}  // namespace

TEST_CASE("llc module: a core's fills by direct call to hvsim's DRAM cost and count as through the sockets") {
    const MemHierarchyConfig cfg = three_levels();
    DramConfig dc;   // a DDR5 bank model (row hits and conflicts), clocked apart from the core
    dc.model = DramConfig::Model::ddr5;
    dc.t_rcd = 37;
    dc.t_rp = 37;
    dc.t_cl = 41;
    constexpr uint64_t kDramPs = 500;   // two DRAM cycles a core cycle: an odd count rounds up
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    // Direct: core -> llc -> DRAM module, and a core bound to a DRAM module alone.
    LlcModule llc("llc", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    MemHierarchy core("core", cfg, kPeriodPs, &llc.array());
    DramTarget dram("dram", dc, kDramPs), dram2("dram2", dc, kDramPs);
    MemHierarchy solo("solo", cfg, kPeriodPs);
    // And on the core's clock (the platforms' case: no rounding).
    DramTarget dram3("dram3", dc, kPeriodPs), dram3_ref("dram3_ref", dc, kPeriodPs);
    MemHierarchy solo3("solo3", cfg, kPeriodPs), solo3_ref("solo3_ref", cfg, kPeriodPs);
    Forwarder fw3("fw3");
    solo3.dram.bind(dram3.socket);
    solo3_ref.dram.bind(fw3.in);
    fw3.out.bind(dram3_ref.socket);
    // Through the sockets: the same with a pass-through target in front of each DRAM.
    LlcModule llc_ref("llc_ref", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    MemHierarchy core_ref("core_ref", cfg, kPeriodPs, &llc_ref.array());
    DramTarget dram_ref("dram_ref", dc, kDramPs), dram2_ref("dram2_ref", dc, kDramPs);
    MemHierarchy solo_ref("solo_ref", cfg, kPeriodPs);
    Forwarder fw("fw"), fw2("fw2");
    core.dram.bind(llc.in);
    llc.dram.bind(dram.socket);
    solo.dram.bind(dram2.socket);
    core_ref.dram.bind(llc_ref.in);
    llc_ref.dram.bind(fw.in);
    fw.out.bind(dram_ref.socket);
    solo_ref.dram.bind(fw2.in);
    fw2.out.bind(dram2_ref.socket);
    TestInitiator w[6] = {TestInitiator("w0"), TestInitiator("w1"), TestInitiator("w2"),
                          TestInitiator("w3"), TestInitiator("w4"), TestInitiator("w5")};
    MemHierarchy* all[6] = {&core, &core_ref, &solo, &solo_ref, &solo3, &solo3_ref};
    for (int i = 0; i < 6; ++i) {
        all[i]->phys.bind(phys.socket);
        w[i].socket.bind(all[i]->in);
    }
    elaborate();

    uint64_t x = 12345;
    uint64_t fills = 0;
    for (int i = 0; i < 4000; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const uint64_t a = (x >> 20) % (64ull << 20) & ~7ull;   // 64 MiB: most references miss
        Cycles c[6] = {0, 0, 0, 0, 0, 0};
        for (int k = 0; k < 6; ++k) all[k]->read64(a, c[k]);
        REQUIRE(c[0] == c[1]);
        REQUIRE(c[2] == c[3]);
        REQUIRE(c[4] == c[5]);
        fills += c[0] > 40;   // past the LLC's hit latency: a DRAM fill
    }
    CHECK(fills > 1000);
    CHECK(llc.core_fills() == llc_ref.core_fills());
    CHECK(llc.core_fills() == core.caches().stats().dram);
    CHECK(dram.timing().stats().reads == dram_ref.timing().stats().reads);
    CHECK(dram.timing().stats().row_hits == dram_ref.timing().stats().row_hits);
    CHECK(dram.timing().stats().row_conflicts == dram_ref.timing().stats().row_conflicts);
    CHECK(dram.timing().stats().row_hits > 0);
    CHECK(dram.timing().stats().row_conflicts > 0);
    CHECK(dram2.timing().stats().reads == dram2_ref.timing().stats().reads);
    CHECK(dram2.timing().stats().reads == solo.caches().stats().dram);
    CHECK(dram3.timing().stats().row_conflicts == dram3_ref.timing().stats().row_conflicts);
    CHECK(dram3.timing().stats().reads == solo3.caches().stats().dram);
}

TEST_CASE("llc module: two cores share its array, a line one core filled hits for the other") {
    const MemHierarchyConfig cfg = three_levels();
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(100, SC_NS));
    LlcModule llc("llc", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    MemHierarchy c0("c0", cfg, kPeriodPs, &llc.array()), c1("c1", cfg, kPeriodPs, &llc.array());
    for (MemHierarchy* h : {&c0, &c1}) {
        h->phys.bind(phys.socket);
        h->dram.bind(llc.in);
    }
    llc.dram.bind(dram.socket);
    TestInitiator w0("w0"), w1("w1");
    w0.socket.bind(c0.in);
    w1.socket.bind(c1.in);
    elaborate();

    Cycles a = 0, b = 0;
    c0.read64(0x40000, a);
    c1.read64(0x40000, b);
    CHECK(a == 100);
    CHECK(b == 40);
    CHECK(dram.reads == 1);
    CHECK(llc.core_fills() == 1);
    CHECK(c1.caches().stats().levels[2].hits == 1);
}

TEST_CASE("llc module: another initiator's line reads are looked up, misses filled from DRAM") {
    const MemHierarchyConfig cfg = three_levels();
    PhysMem mem;
    PhysMemTarget phys("phys", mem);
    CountingDram dram("dram", sc_time(100, SC_NS));
    LlcModule llc("llc", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    MemHierarchy core("core", cfg, kPeriodPs, &llc.array());
    TestInitiator ini("ini");
    core.phys.bind(phys.socket);
    core.dram.bind(llc.in);
    ini.socket.bind(llc.in);
    llc.dram.bind(dram.socket);
    TestInitiator walker("walker");
    walker.socket.bind(core.in);
    elaborate();

    uint8_t line[64];
    const sc_time miss = ini.transport(tlm::TLM_READ_COMMAND, 0x80000, line, 64);
    CHECK(ini.tr.is_response_ok());
    CHECK(dram.reads == 1);
    CHECK(llc.foreign_misses() == 1);
    CHECK(miss == sc_time(100, SC_NS));   // the fill: DRAM's 100 ns
    const sc_time hit = ini.transport(tlm::TLM_READ_COMMAND, 0x80000, line, 64);
    CHECK(hit == sc_time(40, SC_NS));
    CHECK(llc.foreign_hits() == 1);
    CHECK(dram.reads == 1);
    // A line the core filled is there for the other initiator too, and the other way round.
    Cycles c = 0;
    core.read64(0x90000, c);
    CHECK(ini.transport(tlm::TLM_READ_COMMAND, 0x90000, line, 64) == sc_time(40, SC_NS));
    c = 0;
    core.read64(0x80000, c);
    CHECK(c == 40);   // the LLC's hit latency
    CHECK(dram.reads == 2);
    // Two lines in one read: two look-ups.
    uint8_t two[128];
    CHECK(ini.transport(tlm::TLM_READ_COMMAND, 0x80000, two, 128) == sc_time(40 + 100, SC_NS));
    // A write is not a line fill: refused.
    ini.transport(tlm::TLM_WRITE_COMMAND, 0x80000, line, 64);
    CHECK(ini.tr.get_response_status() == tlm::TLM_COMMAND_ERROR_RESPONSE);
}

TEST_CASE("llc module: no DMI, no debug bytes (the LLC holds none)") {
    const MemHierarchyConfig cfg = three_levels();
    CountingDram dram("dram", sc_time(100, SC_NS));
    LlcModule llc("llc", cfg.levels.back(), cfg.line_bytes, kPeriodPs);
    TestInitiator ini("ini");
    ini.socket.bind(llc.in);
    llc.dram.bind(dram.socket);
    elaborate();
    tlm::tlm_dmi d;
    CHECK_FALSE(ini.dmi(tlm::TLM_READ_COMMAND, 0x1000, d));
    uint64_t v = 0;
    CHECK(ini.dbg(tlm::TLM_READ_COMMAND, 0x1000, &v, 8) == 0);
    CHECK(dram.reads == 0);
}
