// Test bench for the LT-to-AT bridge (models/mem/lt_at_bridge.hpp): b_transport in front of
// a small approximately-timed target that answers in each way the base protocol allows.
#include <catch2/catch.hpp>

#include <tlm_utils/peq_with_get.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "models/mem/lt_at_bridge.hpp"
#include "models/mem/tlm_mem.hpp"
#include "tests/tlm/tlm_bench.hpp"

using namespace hvsim;
using namespace hvsim::test;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

// A memory that speaks the AT base protocol. `mode` picks how it answers BEGIN_REQ:
//   completed:  TLM_COMPLETED with the latency annotated;
//   updated:    TLM_UPDATED with BEGIN_RESP and the latency annotated (expects END_RESP);
//   async:      TLM_ACCEPTED; END_REQ after `accept`, BEGIN_RESP `latency` after the request.
// Reads return the address's low byte in every byte. It holds the payload (acquire/release)
// while it works on it, as an AT target may.
struct AtMemory : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    enum class Mode { completed, updated, async };
    tlm::tlm_target_socket<> socket;
    Mode mode;
    sc_time accept{5, SC_NS}, latency{40, SC_NS};
    std::vector<std::string> log;   // phases seen, with the time
    unsigned in_request = 0, max_in_request = 0;

    SC_HAS_PROCESS(AtMemory);
    AtMemory(sc_core::sc_module_name n, Mode m) : sc_module(n), socket("socket"), mode(m), peq_("peq") {
        socket.bind(*this);
        SC_THREAD(worker);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase& ph, sc_time& t) override {
        log.push_back(std::string(ph == tlm::BEGIN_REQ ? "BEGIN_REQ" : ph == tlm::END_RESP ? "END_RESP" : "other"));
        if (ph == tlm::END_RESP) return tlm::TLM_COMPLETED;
        REQUIRE(ph == tlm::BEGIN_REQ);
        REQUIRE(tr.has_mm());
        serve(tr);
        switch (mode) {
        case Mode::completed:
            t += latency;
            return tlm::TLM_COMPLETED;
        case Mode::updated:
            t += latency;
            ph = tlm::BEGIN_RESP;
            return tlm::TLM_UPDATED;
        case Mode::async:
            max_in_request = std::max(max_in_request, ++in_request);
            tr.acquire();
            peq_.notify(tr, t);
            return tlm::TLM_ACCEPTED;
        }
        return tlm::TLM_COMPLETED;
    }
    void b_transport(tlm::tlm_generic_payload& tr, sc_time&) override {
        tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) override { return false; }
    unsigned transport_dbg(tlm::tlm_generic_payload&) override { return 0; }

private:
    static void serve(tlm::tlm_generic_payload& tr) {
        if (tr.is_read()) std::memset(tr.get_data_ptr(), int(tr.get_address() & 0xff), tr.get_data_length());
        tr.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    void worker() {
        for (;;) {
            sc_core::wait(peq_.get_event());
            while (tlm::tlm_generic_payload* tr = peq_.get_next_transaction()) {
                sc_core::wait(accept);
                tlm::tlm_phase ph = tlm::END_REQ;
                sc_time t = sc_core::SC_ZERO_TIME;
                --in_request;
                CHECK(socket->nb_transport_bw(*tr, ph, t) == tlm::TLM_ACCEPTED);
                sc_core::wait(latency - accept);
                ph = tlm::BEGIN_RESP;
                t = sc_core::SC_ZERO_TIME;
                CHECK(socket->nb_transport_bw(*tr, ph, t) == tlm::TLM_COMPLETED);
                tr->release();
            }
        }
    }
    tlm_utils::peq_with_get<tlm::tlm_generic_payload> peq_;
};

// An LT initiator thread: reads 8 bytes at each address in turn, `gap` apart, recording the
// delay each b_transport returned and the time it returned at.
struct LtReader : sc_core::sc_module {
    SC_HAS_PROCESS(LtReader);
    TestInitiator& ini;
    std::vector<uint64_t> addrs;
    std::vector<uint64_t> values;
    std::vector<sc_time> delays, returned_at;
    std::vector<tlm::tlm_response_status> status;
    LtReader(sc_core::sc_module_name n, TestInitiator& i, std::vector<uint64_t> a) : sc_module(n), ini(i), addrs(std::move(a)) {
        SC_THREAD(run);
    }
    void run() {
        for (uint64_t a : addrs) {
            sc_time d;
            values.push_back(ini.read64(a, &d));
            delays.push_back(d);
            returned_at.push_back(sc_core::sc_time_stamp());
            status.push_back(ini.tr.get_response_status());
        }
    }
};

}  // namespace

TEST_CASE("lt-at bridge: a target that answers later is waited for from the caller's SC_THREAD") {
    TestInitiator ini("ini");
    LtAtBridge bridge("bridge");
    AtMemory mem("mem", AtMemory::Mode::async);
    ini.socket.bind(bridge.in);
    bridge.out.bind(mem.socket);
    LtReader rd("reader", ini, {0x1000, 0x2042});
    sc_core::sc_start();
    REQUIRE(rd.values.size() == 2);
    CHECK(rd.values[0] == 0);
    CHECK(rd.values[1] == 0x4242'4242'4242'4242ull);
    CHECK(rd.status[0] == tlm::TLM_OK_RESPONSE);
    // The latency passed as simulated time (END_REQ at 5 ns, BEGIN_RESP at 40 ns); the
    // caller gets no delay to add on top.
    CHECK(rd.returned_at[0] == sc_time(40, SC_NS));
    CHECK(rd.returned_at[1] == sc_time(80, SC_NS));
    CHECK(rd.delays[0] == sc_core::SC_ZERO_TIME);
    CHECK(bridge.waited() == 2);
    // BEGIN_RESP was answered with TLM_COMPLETED: no END_RESP on the forward path.
    CHECK(mem.log == std::vector<std::string>{"BEGIN_REQ", "BEGIN_REQ"});
}

TEST_CASE("lt-at bridge: two callers keep the request exclusion rule") {
    TestInitiator i1("i1"), i2("i2");
    LtAtBridge bridge("bridge");
    AtMemory mem("mem", AtMemory::Mode::async);
    i1.socket.bind(bridge.in);
    i2.socket.bind(bridge.in);
    bridge.out.bind(mem.socket);
    LtReader r1("r1", i1, {0x11, 0x12}), r2("r2", i2, {0x21, 0x22});
    sc_core::sc_start();
    REQUIRE(r1.values.size() == 2);
    REQUIRE(r2.values.size() == 2);
    CHECK(r1.values[1] == 0x1212'1212'1212'1212ull);
    CHECK(r2.values[1] == 0x2222'2222'2222'2222ull);
    CHECK(mem.max_in_request == 1);   // never two requests between BEGIN_REQ and END_REQ
    // Whichever caller went first was answered at 40 ns; the other's request was sent after
    // that one's END_REQ (5 ns) and served after it (the target works on one at a time).
    CHECK(std::min(r1.returned_at[0], r2.returned_at[0]) == sc_time(40, SC_NS));
    CHECK(std::max(r1.returned_at[0], r2.returned_at[0]) == sc_time(80, SC_NS));
}

namespace {

// Outside any process (from sc_main after elaboration): a target that answers within the
// call needs no wait, so the bridge serves any caller.
void answers_within_the_call(AtMemory::Mode mode) {
    TestInitiator ini("ini");
    LtAtBridge bridge("bridge");
    AtMemory mem("mem", mode);
    ini.socket.bind(bridge.in);
    bridge.out.bind(mem.socket);
    elaborate();
    sc_time d;
    CHECK(ini.read64(0x77, &d) == 0x7777'7777'7777'7777ull);
    CHECK(d == sc_time(40, SC_NS));   // the target's annotation, returned as the delay
    CHECK(ini.tr.get_response_status() == tlm::TLM_OK_RESPONSE);
    CHECK(bridge.waited() == 0);
    CHECK(sc_core::sc_time_stamp() == sc_core::SC_ZERO_TIME);
    if (mode == AtMemory::Mode::updated) CHECK(mem.log == std::vector<std::string>{"BEGIN_REQ", "END_RESP"});
    else CHECK(mem.log == std::vector<std::string>{"BEGIN_REQ"});
}

// A thread of hvsim's caches' kind: reads through a MemHierarchy whose DRAM is the bridge.
struct CacheUser : sc_core::sc_module {
    SC_HAS_PROCESS(CacheUser);
    MemHierarchy& caches;
    Cycles cycles = 0;
    uint64_t value = 0;
    sc_time done;
    CacheUser(sc_core::sc_module_name n, MemHierarchy& c) : sc_module(n), caches(c) { SC_THREAD(run); }
    void run() {
        value = caches.read64(0x1000, cycles);
        done = sc_core::sc_time_stamp();
    }
};

}  // namespace

TEST_CASE("lt-at bridge: TLM_COMPLETED from the target costs no wait and the latency is the delay") {
    answers_within_the_call(AtMemory::Mode::completed);
}

TEST_CASE("lt-at bridge: TLM_UPDATED with BEGIN_RESP is ended with END_RESP and costs no wait") {
    answers_within_the_call(AtMemory::Mode::updated);
}

TEST_CASE("lt-at bridge: a caller that is not an SC_THREAD gets an error response instead of a wait") {
    TestInitiator ini("ini");
    LtAtBridge bridge("bridge");
    AtMemory mem("mem", AtMemory::Mode::async);
    ini.socket.bind(bridge.in);
    bridge.out.bind(mem.socket);
    elaborate();
    sc_core::sc_report_handler::set_actions(sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
    ini.read64(0x10);
    CHECK(ini.tr.get_response_status() == tlm::TLM_GENERIC_ERROR_RESPONSE);
    CHECK(bridge.waited() == 0);
}

TEST_CASE("lt-at bridge: bound as the DRAM of hvsim's caches, an AT memory serves the line fills") {
    PhysMem store;
    store.write64(Hpa(0x1000), 0xabcd);
    MemHierarchyConfig h;
    h.levels = {{"l1d", 32 * 1024, 8, 4}};
    MemHierarchy caches("caches", h, 500);
    PhysMemTarget phys("phys", store);
    LtAtBridge bridge("bridge");
    AtMemory mem("mem", AtMemory::Mode::async);
    TestInitiator walker("walker");   // the walker's socket (the user thread calls directly)
    walker.socket.bind(caches.in);
    caches.phys.bind(phys.socket);
    caches.dram.bind(bridge.in);
    bridge.out.bind(mem.socket);
    CacheUser user("user", caches);
    sc_core::sc_start();
    CHECK(user.value == 0xabcd);   // the bytes come from physical memory, not the DRAM model
    CHECK(mem.log == std::vector<std::string>{"BEGIN_REQ"});   // one line fill
    // The fill's latency passed as simulated time in the caller's thread, not as cycles
    // the caches return (docs/systemc.md).
    CHECK(user.done == sc_time(40, SC_NS));
    CHECK(user.cycles == 0);
}
