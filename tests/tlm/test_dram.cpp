// The built-in DRAM: the open-page DDR5 bank model and its TLM-2.0 target.
#include <catch2/catch.hpp>

#include "models/mem/dram.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;

namespace {
DramConfig ddr5() {
    DramConfig c;
    c.model = DramConfig::Model::ddr5;
    c.t_cl = 50;
    c.t_rcd = 49;
    c.t_rp = 48;
    c.banks = 4;
    c.page_bytes = 4096;
    return c;
}
}  // namespace

TEST_CASE("dram: fixed model, every access the same latency") {
    DramConfig c;
    c.fixed_cycles = 390;
    DramTiming t(c);
    CHECK(t.access(0, false) == 390);
    CHECK(t.access(0, false) == 390);
    CHECK(t.access(1 << 20, true) == 390);
    CHECK(t.stats().reads == 2);
    CHECK(t.stats().writes == 1);
    CHECK(t.stats().row_hits == 0);
}

TEST_CASE("dram: ddr5 row empty, row hit and row conflict latencies") {
    DramTiming t(ddr5());
    CHECK(t.access(0x0040, false) == 49 + 50);          // bank 0 closed: activate + CAS
    CHECK(t.access(0x0080, false) == 50);               // same row open: CAS only
    CHECK(t.access(0x1000, false) == 49 + 50);          // next page: bank 1, closed
    CHECK(t.access(0x4000, false) == 48 + 49 + 50);     // bank 0 again, another row: precharge first
    CHECK(t.access(0x0000, false) == 48 + 49 + 50);     // and back
    CHECK(t.access(0x1fc0, true) == 50);                // bank 1's row still open
    CHECK(t.stats().row_empty == 2);
    CHECK(t.stats().row_hits == 2);
    CHECK(t.stats().row_conflicts == 2);
    CHECK(t.stats().writes == 1);
}

TEST_CASE("dram: ddr5 geometry must be powers of two") {
    DramConfig c = ddr5();
    c.banks = 3;
    CHECK_THROWS_AS(DramTiming(c), std::invalid_argument);
    c = ddr5();
    c.page_bytes = 1000;
    CHECK_THROWS_AS(DramTiming(c), std::invalid_argument);
}

TEST_CASE("dram: the target annotates the model's latency and grants no DMI") {
    DramTarget dram("dram", ddr5(), 400);
    TestInitiator a("a"), b("b");
    a.socket.bind(dram.socket);
    b.socket.bind(dram.socket);   // one socket, several cores
    elaborate();
    uint8_t line[64];
    CHECK(a.transport(tlm::TLM_READ_COMMAND, 0x40, line, 64) == sc_core::sc_time(99 * 400, sc_core::SC_PS));
    CHECK(a.tr.is_response_ok());
    CHECK(b.transport(tlm::TLM_READ_COMMAND, 0x80, line, 64) == sc_core::sc_time(50 * 400, sc_core::SC_PS));
    tlm::tlm_dmi d;
    CHECK_FALSE(a.dmi(tlm::TLM_READ_COMMAND, 0, d));
    CHECK(dram.timing().stats().reads == 2);
}
