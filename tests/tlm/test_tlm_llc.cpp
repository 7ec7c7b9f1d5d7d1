// Test bench for LlcModule (top.mem.llc): the cores' hierarchies share its array and send it
// their line fills, which it passes on to DRAM through its own socket; another initiator's
// line reads are looked up in it (hits, misses filled from DRAM); it grants no DMI.
#include <catch2/catch.hpp>

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
