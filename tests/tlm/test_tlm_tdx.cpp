// Test bench for tdx::SeamModule: the TDX module's own memory references leave through its
// `mem` socket (b_transport with the target's annotated delay, DMI when the target grants
// it, transport_dbg for the inspection views), at the S-EPT entries' addresses; bound to
// hvsim's physical memory the module reads and writes it in place.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "models/mem/tlm_mem.hpp"
#include "models/tdx/seam_module.hpp"

using namespace hvsim;
using namespace hvsim::tdx;
using sc_core::sc_time;
using sc_core::SC_NS;

namespace {

// A window of host memory the test target holds: the TDR, the S-EPT root, the S-EPT pages.
constexpr uint64_t kWin = 0x1000'0000ull, kWinBytes = 1ull << 20;
constexpr uint64_t kTdr = kWin, kRoot = kWin + 0x1000;
constexpr uint64_t kG = 0x4000'0000ull;   // a private GPA: S-EPT indices 0 / 1 / 0 / 0

// A target that holds the window's bytes and records every transaction; optionally it sets
// the DMI hint and grants read-write access to the whole window.
struct RecordingTarget : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    struct Tr {
        bool write = false, debug = false, fill = false;
        uint64_t addr = 0;
        unsigned len = 0;
    };
    tlm::tlm_target_socket<> socket;
    std::vector<uint8_t> bytes = std::vector<uint8_t>(kWinBytes);
    std::vector<Tr> log;
    bool grant_dmi = false;
    unsigned dmi_requests = 0;
    explicit RecordingTarget(sc_core::sc_module_name n) : sc_module(n), socket("socket") { socket.bind(*this); }
    void access(tlm::tlm_generic_payload& t, bool debug) {
        const bool w = t.is_write();
        log.push_back(Tr{w, debug, t.get_extension<FillExtension>() != nullptr, t.get_address(), t.get_data_length()});
        REQUIRE(t.get_address() >= kWin);
        REQUIRE(t.get_address() + t.get_data_length() <= kWin + kWinBytes);
        uint8_t* p = bytes.data() + (t.get_address() - kWin);
        if (w) std::memcpy(p, t.get_data_ptr(), t.get_data_length());
        else std::memcpy(t.get_data_ptr(), p, t.get_data_length());
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& d) override {
        access(t, false);
        d += sc_time(10, SC_NS);
        if (grant_dmi) t.set_dmi_allowed(true);
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi& d) override {
        ++dmi_requests;
        if (!grant_dmi) return false;
        d.set_start_address(kWin);
        d.set_end_address(kWin + kWinBytes - 1);
        d.set_dmi_ptr(bytes.data());
        d.set_granted_access(tlm::tlm_dmi::DMI_ACCESS_READ_WRITE);
        d.set_read_latency(sc_time(2, SC_NS));
        d.set_write_latency(sc_time(3, SC_NS));
        return true;
    }
    unsigned transport_dbg(tlm::tlm_generic_payload& t) override {
        access(t, true);
        return t.get_data_length();
    }
    uint64_t entry(uint64_t hpa) const {
        uint64_t v = 0;
        std::memcpy(&v, bytes.data() + (hpa - kWin), 8);
        return v;
    }
};

// The S-EPT pages SEPT.ADD hands the module: one per level below the root.
constexpr uint64_t kL3 = kWin + 0x10000, kL2 = kWin + 0x11000, kL1 = kWin + 0x12000;
// Where the walk of kG reads: the root's entry 0, then entry 1 of the level-2 table (1 GiB),
// entry 0 below.
constexpr uint64_t kE3 = kRoot, kE2 = kL3 + 8, kE1 = kL2, kE0 = kL1;

struct Bench {
    PhysMem phys;   // unused while the module is bound to the recording target
    SeamModule tdx{"tdx", phys};
    RecordingTarget target{"target"};
    explicit Bench(bool dmi = false) {
        target.grant_dmi = dmi;
        tdx.mem.bind(target.socket);
        sc_core::sc_start(sc_core::SC_ZERO_TIME);
        REQUIRE(!tdx.direct());
        TdxModule& m = tdx.module();
        m.create_td(Hpa(kTdr), Hpa(kRoot), 4, false);
        m.vp_create(Hpa(kTdr));
        REQUIRE(m.tdh_mr_finalize(Hpa(kTdr)).rax == status::SUCCESS);
    }
    std::vector<RecordingTarget::Tr> take() {
        auto v = std::move(target.log);
        target.log.clear();
        return v;
    }
};

}  // namespace

TEST_CASE("tdx module: the TD's S-EPT root is initialised through the socket, 512 FREE entries") {
    Bench b;
    const auto log = b.take();
    REQUIRE(log.size() == 512);
    for (unsigned i = 0; i < 512; ++i) {
        CHECK(log[i].write);
        CHECK_FALSE(log[i].debug);
        CHECK(log[i].addr == kRoot + 8 * i);
        CHECK(log[i].len == 8);
    }
    CHECK(b.target.entry(kRoot) == septe::make(SeptState::free, 0));
    CHECK(b.tdx.writes() == 512);
    CHECK(b.tdx.delay() == sc_time(5120, SC_NS));
}

TEST_CASE("tdx module: a TDH.MEM.SEPT.ADD walks to its entry, initialises the new table and links it") {
    Bench b;
    TdxModule& m = b.tdx.module();
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(kTdr), Hpa(kL3)).rax == 0);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 2), Hpa(kTdr), Hpa(kL2)).rax == 0);
    b.take();
    const sc_time before = b.tdx.delay();
    const uint64_t reads = b.tdx.reads(), writes = b.tdx.writes();
    // The level-1 entry (a 2M slot of kG): read the entries of levels 3, 2 and 1 on the way.
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 1), Hpa(kTdr), Hpa(kL1)).rax == 0);
    const auto log = b.take();
    REQUIRE(log.size() == 3 + 512 + 1);
    const uint64_t walk[3] = {kE3, kE2, kE1};
    for (unsigned i = 0; i < 3; ++i) {
        CHECK_FALSE(log[i].write);
        CHECK(log[i].addr == walk[i]);
        CHECK(log[i].len == 8);
    }
    for (unsigned i = 0; i < 512; ++i) {
        CHECK(log[3 + i].write);
        CHECK(log[3 + i].addr == kL1 + 8 * i);
    }
    CHECK(log.back().write);
    CHECK(log.back().addr == kE1);
    CHECK(log.back().len == 8);
    CHECK(septe::state(b.target.entry(kE1)) == SeptState::nl_mapped);
    CHECK((b.target.entry(kE1) & septe::ADDR) == kL1);
    CHECK(b.tdx.reads() - reads == 3);
    CHECK(b.tdx.writes() - writes == 513);
    CHECK(b.tdx.delay() - before == sc_time(10.0 * 516, SC_NS));
}

namespace {

// The S-EPT tables down to kG's 4K leaf (SEPT.ADD at levels 3, 2 and 1).
void add_tables(TdxModule& m) {
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(kTdr), Hpa(kL3)).rax == 0);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 2), Hpa(kTdr), Hpa(kL2)).rax == 0);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 1), Hpa(kTdr), Hpa(kL1)).rax == 0);
}

constexpr uint64_t kWalk[4] = {kE3, kE2, kE1, kE0};

}  // namespace

TEST_CASE("tdx module: a TDH.MEM.PAGE.AUG reads the four entries of its walk and writes its leaf PENDING") {
    Bench b;
    TdxModule& m = b.tdx.module();
    add_tables(m);
    b.take();
    const sc_time before = b.tdx.delay();
    const uint64_t page = 0x8000'0000ull;   // outside the window: AUG does not touch the page
    REQUIRE(m.tdh_mem_page_aug(gpa_level(kG, 0), Hpa(kTdr), Hpa(page)).rax == 0);
    const auto log = b.take();
    REQUIRE(log.size() == 5);
    for (unsigned i = 0; i < 4; ++i) {
        CHECK_FALSE(log[i].write);
        CHECK_FALSE(log[i].debug);
        CHECK(log[i].addr == kWalk[i]);
        CHECK(log[i].len == 8);
    }
    CHECK(log[4].write);
    CHECK(log[4].addr == kE0);
    CHECK(log[4].len == 8);
    CHECK(b.target.entry(kE0) == septe::make(SeptState::pending, page));
    CHECK(b.tdx.delay() - before == sc_time(50, SC_NS));
}

TEST_CASE("tdx module: the inspection view reads the S-EPT with transport_dbg, untimed") {
    Bench b;
    TdxModule& m = b.tdx.module();
    add_tables(m);
    REQUIRE(m.tdh_mem_page_aug(gpa_level(kG, 0), Hpa(kTdr), Hpa(0x8000'0000ull)).rax == 0);
    b.take();
    const sc_time d = b.tdx.delay();
    const uint64_t r = b.tdx.reads();
    CHECK(m.sept_read(Hpa(kTdr), kG, 0).state == SeptState::pending);
    const auto dbg = b.take();
    REQUIRE(dbg.size() == 4);
    for (unsigned i = 0; i < 4; ++i) {
        CHECK(dbg[i].debug);
        CHECK(dbg[i].addr == kWalk[i]);
    }
    CHECK(b.tdx.debug_transactions() == 4);
    CHECK(b.tdx.reads() == r);
    CHECK(b.tdx.delay() == d);
    // Every leaf of the S-EPT: a debug walk of each table page (512 entries each).
    b.tdx.module().sept_leaves(Hpa(kTdr));
    CHECK(b.take().size() == 4 * 512);
    CHECK(b.tdx.reads() == r);
}

TEST_CASE("tdx module: the guest's ACCEPT zeroes the page with one 4 KiB fill write, then maps the entry") {
    Bench b;
    TdxModule& m = b.tdx.module();
    add_tables(m);
    // A page the test target holds, not zero yet.
    const uint64_t p2 = kWin + 0x20000;
    std::memset(b.target.bytes.data() + (p2 - kWin), 0xaa, kPageSize);
    REQUIRE(m.tdh_mem_page_aug(gpa_level(kG + kPageSize, 0), Hpa(kTdr), Hpa(p2)).rax == 0);
    b.take();
    REQUIRE(m.tdg_mem_page_accept(Hpa(kTdr), 0, gpa_level(kG + kPageSize, 0)).rax == 0);
    const auto log = b.take();
    REQUIRE(log.size() == 4 + 1 + 1);
    for (unsigned i = 0; i < 3; ++i) CHECK(log[i].addr == kWalk[i]);
    CHECK(log[3].addr == kE0 + 8);
    CHECK(log[4].write);
    CHECK(log[4].fill);
    CHECK(log[4].addr == p2);
    CHECK(log[4].len == kPageSize);
    CHECK(b.target.bytes[p2 - kWin] == 0);
    CHECK(b.target.bytes[p2 - kWin + kPageSize - 1] == 0);
    CHECK(log[5].write);
    CHECK(log[5].addr == kE0 + 8);
    CHECK(septe::state(b.target.entry(kE0 + 8)) == SeptState::mapped);
}

TEST_CASE("tdx module: a target's DMI grant serves later references through the pointer until invalidated") {
    Bench b(true);
    // The root's initialisation: the first write asked for a grant, the other 511 used it.
    CHECK(b.target.dmi_requests == 1);
    CHECK(b.tdx.dmi_grants() == 1);
    CHECK(b.take().size() == 1);
    CHECK(b.tdx.dmi_accesses() == 511);
    CHECK(b.tdx.delay() == sc_time(10 + 511 * 3, SC_NS));
    TdxModule& m = b.tdx.module();
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(kTdr), Hpa(kL3)).rax == 0);
    CHECK(b.take().empty());   // all through the pointer
    CHECK(septe::state(b.target.entry(kE3)) == SeptState::nl_mapped);
    // The target withdraws the grant: the next reference is a transaction again.
    b.target.socket->invalidate_direct_mem_ptr(kWin, kWin + kWinBytes - 1);
    CHECK(b.tdx.dmi_invalidations() == 1);
    const sc_time d = b.tdx.delay();
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 2), Hpa(kTdr), Hpa(kL2)).rax == 0);
    const auto log = b.take();
    REQUIRE(log.size() == 1);
    CHECK_FALSE(log[0].write);
    CHECK(log[0].addr == kE3);
    CHECK(b.tdx.dmi_grants() == 2);
    // 1 transaction, then 1 read (level 2) + 512 + 1 writes through the pointer.
    CHECK(b.tdx.delay() - d == sc_time(10 + 2 + 513 * 3, SC_NS));
}

TEST_CASE("tdx module: bound to hvsim's physical memory the module reads and writes it in place") {
    PhysMem phys;
    PhysMemTarget target("phys", phys);
    SeamModule tdx("tdx", phys);
    tdx.mem.bind(target.socket);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    CHECK(tdx.direct());
    TdxModule& m = tdx.module();
    m.create_td(Hpa(kTdr), Hpa(kRoot), 4, false);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(kTdr), Hpa(kL3)).rax == 0);
    CHECK(septe::state(phys.read64(Hpa(kE3))) == SeptState::nl_mapped);
    CHECK(tdx.reads() == 0);
    CHECK(tdx.writes() == 0);
    CHECK(tdx.delay() == sc_core::SC_ZERO_TIME);
}
