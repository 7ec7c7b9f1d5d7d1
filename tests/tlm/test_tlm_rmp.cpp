// Test bench for RmpModule: the RMP's own references to its table leave through the
// `table` socket (b_transport for the instructions and untimed checks, transport_dbg for the
// debug views), at the entries' addresses in the RMP table; bound to hvsim's physical
// memory the module reads and writes it directly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

#include "models/mem/tlm_mem.hpp"
#include "models/rmp/rmp_module.hpp"

using namespace hvsim;
using namespace hvsim::rmp;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

constexpr uint64_t kCovered = 1ull << 20;      // 4 GiB of covered memory
constexpr uint64_t kBase = 0x1'0000'0000ull;   // RMP_BASE, above it
constexpr uint16_t kAsid = 5;

// A target that keeps the bytes in a PhysMem and records every transaction.
struct RecordingTarget : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    struct Tr {
        bool write = false, debug = false;
        uint64_t addr = 0;
        unsigned len = 0;
    };
    tlm::tlm_target_socket<> socket;
    PhysMem& mem;
    std::vector<Tr> log;
    RecordingTarget(sc_core::sc_module_name n, PhysMem& m) : sc_module(n), socket("socket"), mem(m) {
        socket.bind(*this);
    }
    void access(tlm::tlm_generic_payload& t, bool debug) {
        const bool w = t.is_write();
        log.push_back(Tr{w, debug, t.get_address(), t.get_data_length()});
        if (w) mem.write(Hpa(t.get_address()), t.get_data_ptr(), t.get_data_length());
        else mem.read(Hpa(t.get_address()), t.get_data_ptr(), t.get_data_length());
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& d) override {
        access(t, false);
        d += sc_time(10, SC_NS);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) override { return false; }
    unsigned transport_dbg(tlm::tlm_generic_payload& t) override {
        access(t, true);
        return t.get_data_length();
    }
    std::vector<Tr> timed(bool write) const {
        std::vector<Tr> v;
        for (const Tr& t : log)
            if (!t.debug && t.write == write) v.push_back(t);
        return v;
    }
};

bool has(const std::vector<RecordingTarget::Tr>& v, uint64_t addr, unsigned len) {
    return std::any_of(v.begin(), v.end(), [&](const auto& t) { return t.addr == addr && t.len == len; });
}

}  // namespace

TEST_CASE("rmp module: an RMPUPDATE reads and writes its entries at their HPA in the RMP table") {
    PhysMem mem;
    RmpModule m("rmp", RmpConfig{Hpa(kBase), kCovered, 0, 0}, mem);
    RecordingTarget t("target", mem);
    m.table.bind(t.socket);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    REQUIRE(!m.direct());
    Rmp& r = m.rmp();
    const Pfn p(0x1234), head(0x1200);
    REQUIRE(r.rmpupdate(pfn_to_hpa(p), RmpState{Gpa(0x5000), true, PgLevel::k4K, false, kAsid}) == RMP_SUCCESS);
    const auto reads = t.timed(false), writes = t.timed(true);
    // Reads: the 2 MB region's head entry, the page's entry, the ASID's counter.
    CHECK(reads.size() == 3);
    CHECK(has(reads, r.entry_addr(head).raw(), 16));
    CHECK(has(reads, r.entry_addr(p).raw(), 16));
    CHECK(has(reads, kBase + 8 * kAsid, 8));
    // Writes: the counter, the entry, and the head's count of assigned 4K sub-pages.
    CHECK(writes.size() == 3);
    CHECK(has(writes, kBase + 8 * kAsid, 8));
    CHECK(has(writes, r.entry_addr(p).raw(), 16));
    CHECK(has(writes, r.entry_addr(head).raw(), 16));
    CHECK(m.transactions() == 6);
    CHECK(m.delay() == sc_time(60, SC_NS));
    // The bytes went through the target: the entry reads back from memory as assigned.
    const RmpEntry e = RmpEntry::decode(mem.read64(r.entry_addr(p)), mem.read64(r.entry_addr(p) + 8));
    CHECK(e.assigned);
    CHECK(e.asid == kAsid);
    CHECK(e.gpa == Gpa(0x5000));
    CHECK(mem.read64(Hpa(kBase + 8 * kAsid)) == 1);
    // Debug views are transport_dbg, not hardware references.
    const uint64_t before = m.transactions(), dbg = m.debug_transactions();
    CHECK(r.read_entry(p) == e);
    CHECK(m.transactions() == before);
    CHECK(m.debug_transactions() == dbg + 1);
    CHECK(t.log.back().debug);
    CHECK(t.log.back().addr == r.entry_addr(p).raw());
}

TEST_CASE("rmp module: an RMP check reads the head entry and the page's own entry") {
    PhysMem mem;
    RmpModule m("rmp", RmpConfig{Hpa(kBase), kCovered, 0, 0}, mem);
    RecordingTarget t("target", mem);
    m.table.bind(t.socket);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    Rmp& r = m.rmp();
    const Pfn p(0x2345), head(0x2200);
    const Gpa gpa(0x7000);
    const GuestCtx g{kAsid, 0, true};
    REQUIRE(r.rmpupdate(pfn_to_hpa(p), RmpState{gpa, true, PgLevel::k4K, false, kAsid}) == RMP_SUCCESS);
    REQUIRE(r.pvalidate(g, gpa, pfn_to_hpa(p), PgLevel::k4K, PgLevel::k4K, true).eax == RMP_SUCCESS);
    t.log.clear();
    Cycles c = 0;
    // Without the walker's memory path (nullptr) the check's references leave the socket.
    CHECK(r.check_guest(g, gpa, pfn_to_hpa(p), PgLevel::k4K, Access::read, true, false, nullptr, c).ok());
    const auto reads = t.timed(false);
    REQUIRE(reads.size() == 2);
    CHECK(reads[0].addr == r.entry_addr(head).raw());
    CHECK(reads[1].addr == r.entry_addr(p).raw());
    CHECK(reads[0].len == 16);
    CHECK(reads[1].len == 16);
    CHECK(t.timed(true).empty());
    CHECK(r.stats().checks == 1);
    CHECK(r.stats().entry_reads == 2);
}

TEST_CASE("rmp module: bound to hvsim's physical memory it reads and writes it directly") {
    PhysMem mem;
    RmpModule m("rmp", RmpConfig{Hpa(kBase), kCovered, 0, 0}, mem);
    PhysMemTarget phys("phys", mem);
    m.table.bind(phys.socket);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    CHECK(m.direct());
    Rmp& r = m.rmp();
    REQUIRE(r.rmpupdate(pfn_to_hpa(Pfn(0x10)), RmpState{Gpa(0x1000), true, PgLevel::k4K, false, kAsid}) ==
            RMP_SUCCESS);
    CHECK(m.transactions() == 0);
    CHECK(phys.transactions() == 0);
    CHECK(r.read_entry(Pfn(0x10)).assigned);
    CHECK(RmpEntry::decode(mem.read64(r.entry_addr(Pfn(0x10))), 0).assigned);
}
