// Test bench for tdx::SeamModule: the TDX module's own memory references leave through its
// `mem` socket (b_transport with the target's annotated delay, DMI when the target grants
// it, transport_dbg for the inspection views), at the S-EPT entries' addresses and at the
// PAMT entries' addresses (tdx::pamt); bound to hvsim's physical memory the module reads and
// writes it in place.
#include <catch2/catch.hpp>

#include <cstring>
#include <array>
#include <map>
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

constexpr bool in_pamt(uint64_t a) { return a >= pamt::kBase && a < pamt::kEnd; }

// A target that holds the window's bytes (and, sparsely, the PAMT's) and records every
// transaction; optionally it sets the DMI hint and grants read-write access to the whole
// window (not to the PAMT).
struct RecordingTarget : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    struct Tr {
        bool write = false, debug = false, fill = false;
        uint64_t addr = 0;
        unsigned len = 0;
    };
    tlm::tlm_target_socket<> socket;
    std::vector<uint8_t> bytes = std::vector<uint8_t>(kWinBytes);
    std::map<uint64_t, uint8_t> pamt_bytes;   // PAMT bytes written so far (others read as 0)
    std::vector<Tr> log;
    bool grant_dmi = false;
    unsigned dmi_requests = 0;
    explicit RecordingTarget(sc_core::sc_module_name n) : sc_module(n), socket("socket") { socket.bind(*this); }
    void access(tlm::tlm_generic_payload& t, bool debug) {
        const bool w = t.is_write();
        log.push_back(Tr{w, debug, t.get_extension<FillExtension>() != nullptr, t.get_address(), t.get_data_length()});
        if (in_pamt(t.get_address())) {
            REQUIRE(in_pamt(t.get_address() + t.get_data_length() - 1));
            for (unsigned i = 0; i < t.get_data_length(); ++i) {
                if (w) pamt_bytes[t.get_address() + i] = t.get_data_ptr()[i];
                else t.get_data_ptr()[i] = pamt_byte(t.get_address() + i);
            }
            t.set_response_status(tlm::TLM_OK_RESPONSE);
            return;
        }
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
        if (grant_dmi && !in_pamt(t.get_address())) t.set_dmi_allowed(true);
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
    uint8_t pamt_byte(uint64_t a) const {
        auto it = pamt_bytes.find(a);
        return it == pamt_bytes.end() ? 0 : it->second;
    }
    PamtEntry pamt_entry(uint64_t pa, unsigned level) const {
        uint8_t b[pamt::kEntryBytes];
        for (unsigned i = 0; i < pamt::kEntryBytes; ++i) b[i] = pamt_byte(pamt::entry_hpa(pa, level) + i);
        return pamt::decode(b);
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
    // A SEAMCALL's references after its prologue: every host leaf starts with the PAMT walk
    // of its TDR operand (1G, 2M, 4K entries; check_lock_and_map_explicit_tdr()).
    std::vector<RecordingTarget::Tr> take_leaf() {
        auto v = take();
        REQUIRE(v.size() >= 3);
        for (unsigned i = 0; i < 3; ++i) {
            CHECK_FALSE(v[i].write);
            CHECK(v[i].addr == pamt::entry_hpa(kTdr, 2 - i));
            CHECK(v[i].len == 16);
        }
        v.erase(v.begin(), v.begin() + 3);
        return v;
    }
};

}  // namespace

TEST_CASE("tdx module: the TD's S-EPT root is initialised through the socket, 512 FREE entries") {
    Bench b;
    const auto log = b.take();
    REQUIRE(log.size() == 512 + 2 + 3);
    for (unsigned i = 0; i < 512; ++i) {
        CHECK(log[i].write);
        CHECK_FALSE(log[i].debug);
        CHECK(log[i].addr == kRoot + 8 * i);
        CHECK(log[i].len == 8);
    }
    CHECK(b.target.entry(kRoot) == septe::make(SeptState::free, 0));
    // Then the PAMT: the TDR page becomes PT_TDR, the root (a TDCS page) PT_TDCX of the TD.
    CHECK(log[512].write);
    CHECK(log[512].addr == pamt::entry_hpa(kTdr, 0));
    CHECK(log[512].len == 16);
    CHECK(log[513].write);
    CHECK(log[513].addr == pamt::entry_hpa(kRoot, 0));
    CHECK(b.target.pamt_entry(kTdr, 0).pt == PageType::tdr);
    CHECK(b.target.pamt_entry(kRoot, 0).pt == PageType::tdcx);
    CHECK(b.target.pamt_entry(kRoot, 0).owner == kTdr);
    // TDH.MR.FINALIZE: the PAMT walk of its TDR operand, which ends at the PT_TDR 4K entry.
    for (unsigned i = 0; i < 3; ++i) {
        CHECK_FALSE(log[514 + i].write);
        CHECK(log[514 + i].addr == pamt::entry_hpa(kTdr, 2 - i));
    }
    CHECK(b.tdx.writes() == 514);
    CHECK(b.tdx.reads() == 3);
    CHECK(b.tdx.delay() == sc_time(5170, SC_NS));
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
    const auto log = b.take_leaf();
    REQUIRE(log.size() == 3 + 3 + 512 + 1 + 1);
    const uint64_t walk[3] = {kE3, kE2, kE1};
    for (unsigned i = 0; i < 3; ++i) {
        CHECK_FALSE(log[i].write);
        CHECK(log[i].addr == walk[i]);
        CHECK(log[i].len == 8);
    }
    // The new table's PAMT walk (1G, 2M, 4K entries: must be PT_NDA).
    for (unsigned i = 0; i < 3; ++i) {
        CHECK_FALSE(log[3 + i].write);
        CHECK(log[3 + i].addr == pamt::entry_hpa(kL1, 2 - i));
        CHECK(log[3 + i].len == 16);
    }
    for (unsigned i = 0; i < 512; ++i) {
        CHECK(log[6 + i].write);
        CHECK(log[6 + i].addr == kL1 + 8 * i);
    }
    CHECK(log[518].write);
    CHECK(log[518].addr == pamt::entry_hpa(kL1, 0));
    CHECK(b.target.pamt_entry(kL1, 0).pt == PageType::ept);
    CHECK(log.back().write);
    CHECK(log.back().addr == kE1);
    CHECK(log.back().len == 8);
    CHECK(septe::state(b.target.entry(kE1)) == SeptState::nl_mapped);
    CHECK((b.target.entry(kE1) & septe::ADDR) == kL1);
    CHECK(b.tdx.reads() - reads == 3 + 6);
    CHECK(b.tdx.writes() - writes == 514);
    CHECK(b.tdx.delay() - before == sc_time(10.0 * 523, SC_NS));
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

TEST_CASE("tdx module: a TDH.MEM.PAGE.AUG reads its S-EPT walk and the page's PAMT walk, writes PAMT and leaf") {
    Bench b;
    TdxModule& m = b.tdx.module();
    add_tables(m);
    b.take();
    const sc_time before = b.tdx.delay();
    const uint64_t page = 0x8000'0000ull;   // outside the window: AUG does not touch the page
    REQUIRE(m.tdh_mem_page_aug(gpa_level(kG, 0), Hpa(kTdr), Hpa(page)).rax == 0);
    const auto log = b.take_leaf();
    REQUIRE(log.size() == 4 + 3 + 1 + 1);
    for (unsigned i = 0; i < 4; ++i) {
        CHECK_FALSE(log[i].write);
        CHECK_FALSE(log[i].debug);
        CHECK(log[i].addr == kWalk[i]);
        CHECK(log[i].len == 8);
    }
    // pamt_walk of the page: its 1G, 2M and 4K entries, all PT_NDA.
    const uint64_t pamt_walk[3] = {pamt::entry_hpa(page, 2), pamt::entry_hpa(page, 1), pamt::entry_hpa(page, 0)};
    CHECK(pamt_walk[2] == pamt::kBase4k + (page >> 12) * 16);
    for (unsigned i = 0; i < 3; ++i) {
        CHECK_FALSE(log[4 + i].write);
        CHECK_FALSE(log[4 + i].debug);
        CHECK(log[4 + i].addr == pamt_walk[i]);
        CHECK(log[4 + i].len == 16);
    }
    // The page's 4K entry becomes PT_REG owned by the TDR, BEPOCH 0.
    CHECK(log[7].write);
    CHECK(log[7].addr == pamt_walk[2]);
    CHECK(log[7].len == 16);
    const PamtEntry e = b.target.pamt_entry(page, 0);
    CHECK(e.pt == PageType::reg);
    CHECK(e.owner == kTdr);
    CHECK(e.bepoch == 0);
    CHECK(log[8].write);
    CHECK(log[8].addr == kE0);
    CHECK(log[8].len == 8);
    CHECK(b.target.entry(kE0) == septe::make(SeptState::pending, page));
    CHECK(b.tdx.delay() - before == sc_time(120, SC_NS));
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
    // The PAMT view (KVM's checks, the encrypted-pages hook): the page's PAMT walk, debug.
    CHECK(m.pamt(Hpa(0x8000'0000ull)).pt == PageType::reg);
    const auto pv = b.take();
    REQUIRE(pv.size() == 3);
    for (unsigned i = 0; i < 3; ++i) {
        CHECK(pv[i].debug);
        CHECK(pv[i].addr == pamt::entry_hpa(0x8000'0000ull, 2 - i));
    }
    CHECK(b.tdx.reads() == r);
    CHECK(b.tdx.delay() == d);
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
    // The two PAMT writes after it and FINALIZE's PAMT walk of the TDR are transactions:
    // the grant covers the window only.
    CHECK(b.target.dmi_requests == 1);
    CHECK(b.tdx.dmi_grants() == 1);
    CHECK(b.take().size() == 1 + 2 + 3);
    CHECK(b.tdx.dmi_accesses() == 511);
    CHECK(b.tdx.delay() == sc_time(10 + 511 * 3 + 5 * 10, SC_NS));
    TdxModule& m = b.tdx.module();
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(kTdr), Hpa(kL3)).rax == 0);
    // S-EPT references all through the pointer; the page's PAMT walk (3 reads) and its
    // PAMT write remain.
    const auto pl = b.take_leaf();
    REQUIRE(pl.size() == 4);
    for (const auto& t : pl) CHECK(in_pamt(t.addr));
    CHECK(septe::state(b.target.entry(kE3)) == SeptState::nl_mapped);
    // The target withdraws the grant: the next reference is a transaction again.
    b.target.socket->invalidate_direct_mem_ptr(kWin, kWin + kWinBytes - 1);
    CHECK(b.tdx.dmi_invalidations() == 1);
    const sc_time d = b.tdx.delay();
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 2), Hpa(kTdr), Hpa(kL2)).rax == 0);
    const auto log = b.take_leaf();
    REQUIRE(log.size() == 1 + 4);
    CHECK_FALSE(log[0].write);
    CHECK(log[0].addr == kE3);
    CHECK(b.tdx.dmi_grants() == 2);
    // 1 transaction, then 1 read (level 2) + 512 + 1 writes through the pointer, and the
    // 3 + 4 PAMT transactions.
    CHECK(b.tdx.delay() - d == sc_time(10 + 2 + 513 * 3 + 7 * 10, SC_NS));
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
    uint8_t b[pamt::kEntryBytes];
    phys.read(Hpa(pamt::entry_hpa(kL3, 0)), b, sizeof b);
    CHECK(pamt::decode(b).pt == PageType::ept);
    CHECK(tdx.reads() == 0);
    CHECK(tdx.writes() == 0);
    CHECK(tdx.delay() == sc_core::SC_ZERO_TIME);
}

namespace {

// The 16 bytes of a PAMT entry as physical memory holds them.
std::array<uint8_t, 16> pamt_bytes(const PhysMem& phys, uint64_t pa, unsigned level) {
    std::array<uint8_t, 16> b{};
    phys.read(Hpa(pamt::entry_hpa(pa, level)), b.data(), b.size());
    return b;
}

// Lock 0, page type at byte 2, owner (TDR PA >> 12) in bytes 3-7, BEPOCH in bytes 8-15.
std::array<uint8_t, 16> expect(PageType pt, uint64_t owner, uint64_t bepoch) {
    std::array<uint8_t, 16> b{};
    b[2] = uint8_t(pt);
    for (unsigned i = 0; i < 5; ++i) b[3 + i] = uint8_t((owner >> 12) >> (8 * i));
    for (unsigned i = 0; i < 8; ++i) b[8 + i] = uint8_t(bepoch >> (8 * i));
    return b;
}

}  // namespace

TEST_CASE("tdx module: the PAMT entries in physical memory after PAGE.ADD, AUG, BLOCK and REMOVE") {
    PhysMem phys;
    TdxModule m(phys);
    const uint64_t tdr = 0x12'3450'0000ull;   // owner bits above bit 32 too
    m.create_td(Hpa(tdr), Hpa(tdr + 0x1000), 4, false);
    CHECK(pamt_bytes(phys, tdr, 0) == expect(PageType::tdr, 0, 0));
    CHECK(pamt_bytes(phys, tdr + 0x1000, 0) == expect(PageType::tdcx, tdr, 0));
    REQUIRE(m.tdh_mem_sept_add(gpa_level(0, 3), Hpa(tdr), Hpa(tdr + 0x10000)).rax == 0);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 2), Hpa(tdr), Hpa(tdr + 0x11000)).rax == 0);
    REQUIRE(m.tdh_mem_sept_add(gpa_level(kG, 1), Hpa(tdr), Hpa(tdr + 0x12000)).rax == 0);
    CHECK(pamt_bytes(phys, tdr + 0x12000, 0) == expect(PageType::ept, tdr, 0));
    // PAGE.ADD (INITIALIZED): the target page becomes PT_REG of the TD.
    const uint64_t added = tdr + 0x20000, src = tdr + 0x30000;
    REQUIRE(m.tdh_mem_page_add(gpa_level(kG, 0), Hpa(tdr), Hpa(added), Hpa(src)).rax == 0);
    CHECK(pamt_bytes(phys, added, 0) == expect(PageType::reg, tdr, 0));
    CHECK(pamt_bytes(phys, src, 0) == expect(PageType::nda, 0, 0));
    m.vp_create(Hpa(tdr));
    REQUIRE(m.tdh_mr_finalize(Hpa(tdr)).rax == status::SUCCESS);
    // AUG (RUNNABLE) of the next 4K page.
    const uint64_t auged = tdr + 0x21000;
    REQUIRE(m.tdh_mem_page_aug(gpa_level(kG + kPageSize, 0), Hpa(tdr), Hpa(auged)).rax == 0);
    CHECK(pamt_bytes(phys, auged, 0) == expect(PageType::reg, tdr, 0));
    CHECK(pamt_bytes(phys, auged, 1) == expect(PageType::nda, 0, 0));
    // BLOCK writes TD_EPOCH into BEPOCH, TRACK advances the epoch, REMOVE frees the entry.
    REQUIRE(m.tdh_mem_range_block(gpa_level(kG + kPageSize, 0), Hpa(tdr)).rax == 0);
    CHECK(pamt_bytes(phys, auged, 0) == expect(PageType::reg, tdr, m.td_epoch(Hpa(tdr))));
    REQUIRE(m.tdh_mem_track(Hpa(tdr)).rax == 0);
    REQUIRE(m.tdh_mem_page_remove(gpa_level(kG + kPageSize, 0), Hpa(tdr)).rax == 0);
    CHECK(pamt_bytes(phys, auged, 0) == expect(PageType::nda, 0, 0));
    CHECK(m.pamt(Hpa(auged)).pt == PageType::nda);
    CHECK(m.pamt(Hpa(added)).owner == tdr);
    // The encoding round-trips, and an all-zero entry is PT_NDA with no owner.
    uint8_t raw[pamt::kEntryBytes];
    pamt::encode(PamtEntry{PageType::tdvpr, 0xf'ffff'f000ull << 12 >> 12, 0x8000'0000'0000'0007ull}, raw);
    const PamtEntry back = pamt::decode(raw);
    CHECK(back.pt == PageType::tdvpr);
    CHECK(back.owner == 0xf'ffff'f000ull);
    CHECK(back.bepoch == 0x8000'0000'0000'0007ull);
    const uint8_t zero[pamt::kEntryBytes] = {};
    CHECK(pamt::decode(zero).pt == PageType::nda);
    CHECK(pamt::decode(zero).owner == 0);
    // The arrays lie above every host page, in the order 4K, 2M, 1G, disjoint.
    CHECK(pamt::entry_hpa(pamt::kCovered - 1, 0) + 16 == pamt::kBase2m);
    CHECK(pamt::entry_hpa(pamt::kCovered - 1, 1) + 16 == pamt::kBase1g);
    CHECK(pamt::entry_hpa(pamt::kCovered - 1, 2) + 16 == pamt::kEnd);
    CHECK(pamt::kBase >= pamt::kCovered);
    CHECK(pamt::kEnd <= (1ull << 52));
}
