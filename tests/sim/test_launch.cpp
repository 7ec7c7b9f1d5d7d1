// Confidential-VM launch through Machine without SystemC: SNP_LAUNCH_START / UPDATE / FINISH
// (kvm_gmem_populate -> sev_gmem_post_populate -> the SEV firmware's launch digest) and
// KVM_TDX_INIT_MEM_REGION / KVM_TDX_FINALIZE_VM (TDH.MEM.PAGE.ADD, TDH.MR.EXTEND, MRTD).
// Expected digests are recomputed here from the firmware ABI layouts, independently of the
// models, so a wrong field, order or length fails.
#include <catch2/catch.hpp>

#include <cstring>

#include "kernel/guest_memfd.hpp"
#include "models/common/sha384.hpp"
#include "sim/loader.hpp"
#include "sim/machine.hpp"

using namespace hvsim;

namespace {

std::string snp_scenario(const std::string& steps, unsigned vcpus = 1) {
    return R"({"platform": "zen4-genoa",
  "vm": {"type": "snp", "vcpus": )" + std::to_string(vcpus) + R"(, "guest_paging": "none",
    "guest_memfd": [{"id": "g0", "size": "16MiB"}],
    "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "16MiB",
                  "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
    "private": [{"gpa": 0, "size": "8MiB"}]}, "steps": [)" + steps + "]}";
}

std::string tdx_scenario(const std::string& steps) {
    return R"({"platform": "sapphire-rapids",
  "vm": {"type": "tdx", "vcpus": 1, "guest_paging": "none",
    "guest_memfd": [{"id": "g0", "size": "16MiB"}],
    "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "16MiB",
                  "userspace_addr": "0x7f0000000000", "guest_memfd": "g0"}],
    "private": [{"gpa": 0, "size": "8MiB"}]}, "steps": [)" + steps + "]}";
}

struct Rig {
    scn::Scenario s;
    std::unique_ptr<ParamSet> p;
    std::unique_ptr<Machine> m;
    CacheHierarchy cache;
    std::vector<std::unique_ptr<mmu::Mmu>> hw;
    kvm::CycleCounter ctx;

    explicit Rig(const std::string& text)
        : s(load_scenario_text(text, "launch.json")), p(std::make_unique<ParamSet>(resolve_params(s, {}))),
          cache(machine_config(*p, s).mem) {
        m = std::make_unique<Machine>(s, machine_config(*p, s));
        REQUIRE(m->create_vm_err() == 0);
        REQUIRE(m->setup(ctx).empty());
        for (unsigned i = 0; i < s.vm.vcpus; ++i) {
            hw.push_back(std::make_unique<mmu::Mmu>(m->config().mmu, m->mem(), cache));
            m->attach_vcpu(i, *hw.back());
        }
    }
    StepOutcome run(size_t i) { return m->exec_uapi_step(s.steps.at(i), ctx); }
    // Every step in order; the outcomes.
    std::vector<StepOutcome> run_all() {
        std::vector<StepOutcome> v;
        for (size_t i = 0; i < s.steps.size(); ++i) v.push_back(run(i));
        return v;
    }
    // The host page backing private gfn (its guest_memfd page).
    Pfn gmem_pfn(uint64_t gfn) {
        const kvm::kvm_memory_slot* slot = m->kvm()->gfn_to_memslot(0, Gfn(gfn));
        REQUIRE(slot);
        auto pfn = slot->gmem.file->filemap_lookup(slot->gmem.pgoff + gfn - slot->base_gfn.raw());
        REQUIRE(pfn);
        return *pfn;
    }
};

// The SNP firmware ABI's PAGE_INFO step, written out independently of the model.
Sha384::Digest snp_step(const Sha384::Digest& ld, const Sha384::Digest& contents, uint8_t type, uint64_t gpa) {
    std::vector<uint8_t> pi;
    pi.insert(pi.end(), ld.begin(), ld.end());
    pi.insert(pi.end(), contents.begin(), contents.end());
    pi.push_back(0x70);
    pi.push_back(0);
    pi.push_back(type);
    pi.push_back(0);                      // IMI_PAGE
    pi.insert(pi.end(), {0, 0, 0, 0});    // VMPL3, VMPL2, VMPL1 permissions, reserved
    for (int i = 0; i < 8; ++i) pi.push_back(uint8_t(gpa >> (8 * i)));
    REQUIRE(pi.size() == 0x70);
    return Sha384::of(pi.data(), pi.size());
}

Sha384::Digest page_hash(uint8_t fill) {
    std::vector<uint8_t> page(kPageSize, fill);
    return Sha384::of(page.data(), page.size());
}

// The expected SNP launch digest of NORMAL pages at gpas (each filled with fill) and one
// zero VMSA per vCPU.
std::string snp_expected(const std::vector<std::pair<uint64_t, uint8_t>>& pages, unsigned vcpus) {
    Sha384::Digest ld{};
    for (auto& pg : pages) ld = snp_step(ld, page_hash(pg.second), 1, pg.first);
    for (unsigned i = 0; i < vcpus; ++i) ld = snp_step(ld, page_hash(0), 2, 0xFFFFFFFFF000ull);
    return to_hex(ld);
}

// The TDX module ABI's MRTD over PAGE.ADD and MR.EXTEND blocks, written out independently.
std::string mrtd_expected(const std::vector<std::tuple<uint64_t, uint8_t, bool>>& pages) {
    Sha384 h;
    for (auto& [gpa, fill, measured] : pages) {
        uint8_t b[128] = {};
        std::memcpy(b, "MEM.PAGE.ADD", 12);
        for (int i = 0; i < 8; ++i) b[16 + i] = uint8_t(gpa >> (8 * i));
        h.update(b, 128);
        if (!measured) continue;
        for (uint64_t off = 0; off < kPageSize; off += 256) {
            uint8_t e[128] = {};
            std::memcpy(e, "MR.EXTEND", 9);
            for (int i = 0; i < 8; ++i) e[16 + i] = uint8_t((gpa + off) >> (8 * i));
            h.update(e, 128);
            std::vector<uint8_t> chunk(256, fill);
            h.update(chunk.data(), chunk.size());
        }
    }
    return to_hex(h.peek());
}

}  // namespace

TEST_CASE("sha384: the FIPS 180-4 example \"abc\"", "[launch]") {
    CHECK(to_hex(Sha384::of("abc", 3)) ==
          "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
    Sha384 h;
    h.update("ab", 2);
    const auto mid = h.peek();
    h.update("c", 1);
    CHECK(to_hex(h.peek()) == to_hex(Sha384::of("abc", 3)));
    CHECK(mid != h.peek());
}

TEST_CASE("T39 SNP_LAUNCH_UPDATE NORMAL: the page goes Pre-Guest -> Guest-Valid (I 0) with the image, a second "
          "update of the gfn is EIO",
          "[launch][snp]") {
    Rig r(snp_scenario(R"({"ioctl": {"snp_launch_start": {}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "4KiB", "value": "0x5a"}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "4KiB", "value": "0x5a"}}})"));
    CHECK(r.run(0).err == 0);
    const StepOutcome u = r.run(1);
    CHECK(u.err == 0);
    CHECK(u.remaining == 0u);
    const Pfn p = r.gmem_pfn(0x10);
    const rmp::RmpEntry e = r.m->rmp()->read_entry(p);
    CHECK(e.assigned);
    CHECK(e.validated);
    CHECK_FALSE(e.immutable);
    CHECK(e.asid == r.m->snp_ops()->asid());
    CHECK(e.gpa == Gpa(0x10000));
    CHECK(r.m->mem().read64(Hpa(pfn_to_hpa(p).raw() + 0x800)) == 0x5a5a5a5a5a5a5a5aull);
    CHECK(r.run(2).err == EIO);   // kvm_gmem_populate: already prepared (-EEXIST) -> EIO
    CHECK(r.m->snp_firmware()->stats().launch_updates == 1);
}

TEST_CASE("snp launch: the digest is the PAGE_INFO chain (pages, then one VMSA per vCPU), pre-fault only after "
          "finish",
          "[launch][snp]") {
    Rig r(snp_scenario(R"({"ioctl": {"snp_launch_start": {}}},
        {"ioctl": {"pre_fault_memory": {"gpa": "0x400000", "size": "4KiB"}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "8KiB", "value": "0x11"}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x20000", "size": "4KiB", "type": "zero"}}},
        {"ioctl": {"snp_launch_finish": {}}},
        {"ioctl": {"pre_fault_memory": {"gpa": "0x400000", "size": "4KiB"}}},
        {"ioctl": {"snp_launch_finish": {}}})",
                       2));
    const auto o = r.run_all();
    CHECK(o[0].err == 0);
    CHECK(o[1].err == EOPNOTSUPP);
    CHECK(o[2].err == 0);
    CHECK(o[3].err == 0);
    CHECK(o[4].err == 0);
    CHECK(o[5].err == 0);
    CHECK(o[6].err == EIO);   // the firmware's context is RUNNING: INVALID_GUEST_STATE
    // ZERO pages enter with zero contents and their own type.
    Sha384::Digest ld{};
    ld = snp_step(ld, page_hash(0x11), 1, 0x10000);
    ld = snp_step(ld, page_hash(0x11), 1, 0x11000);
    ld = snp_step(ld, Sha384::Digest{}, 3, 0x20000);
    for (int v = 0; v < 2; ++v) ld = snp_step(ld, page_hash(0), 2, 0xFFFFFFFFF000ull);
    REQUIRE(o[4].launch_digest);
    CHECK(*o[4].launch_digest == to_hex(ld));
    const auto lm = r.m->launch_measurement();
    REQUIRE(lm);
    CHECK(lm->kind == "snp_launch_digest");
    CHECK(lm->digest == to_hex(ld));
    CHECK(lm->final);
    CHECK(lm->pages == 5);
    CHECK(lm->measured_pages == 4);
}

TEST_CASE("snp launch: one byte of the image, or its GPA, changes the launch digest", "[launch][snp]") {
    auto digest = [](const std::string& gpa, const std::string& value) {
        Rig r(snp_scenario(R"({"ioctl": {"snp_launch_start": {}}},
            {"ioctl": {"snp_launch_update": {"gpa": ")" + gpa + R"(", "size": "4KiB", "value": ")" + value + R"("}}},
            {"ioctl": {"snp_launch_finish": {}}})"));
        const auto o = r.run_all();
        REQUIRE(o[2].err == 0);
        return *o[2].launch_digest;
    };
    const std::string base = digest("0x10000", "0x5a");
    CHECK(base == snp_expected({{0x10000, 0x5a}}, 1));
    CHECK(digest("0x10000", "0x5b") != base);
    CHECK(digest("0x11000", "0x5a") != base);
}

TEST_CASE("snp firmware: one byte changed inside a page changes the digest, UNMEASURED contents do not enter it",
          "[launch][snp]") {
    auto run = [](uint64_t byte_at, uint8_t v, psp::SnpPageType t) {
        PhysMem mem;
        rmp::Rmp r(rmp::RmpConfig{Hpa(1ull << 30), (1ull << 30) >> kPageShift, 0, 0}, mem);
        psp::SnpFirmware fw(r, mem);
        REQUIRE(fw.launch_start(1, 0x30000) == 0);
        const Hpa page(0x100000);
        mem.fill(page, 0x5a, kPageSize);
        mem.write(Hpa(page.raw() + byte_at), &v, 1);
        REQUIRE(r.rmpupdate(page, rmp::RmpState{Gpa(0x10000), true, PgLevel::k4K, true, 1}) == 0);
        REQUIRE(fw.launch_update(page, t) == 0);
        CHECK(r.read_entry(hpa_to_pfn(page)).validated);
        return to_hex(fw.launch_digest());
    };
    const std::string a = run(100, 0x5a, psp::SnpPageType::normal);
    CHECK(run(100, 0x5b, psp::SnpPageType::normal) != a);
    CHECK(run(4095, 0x00, psp::SnpPageType::normal) != a);
    CHECK(run(100, 0x5b, psp::SnpPageType::unmeasured) == run(100, 0x5a, psp::SnpPageType::unmeasured));
    CHECK(run(100, 0x5a, psp::SnpPageType::unmeasured) != a);
}

TEST_CASE("snp firmware: LAUNCH_UPDATE needs a Pre-Guest 4K page of this guest in LAUNCH state", "[launch][snp]") {
    PhysMem mem;
    rmp::Rmp r(rmp::RmpConfig{Hpa(1ull << 30), (1ull << 30) >> kPageShift, 0, 0}, mem);
    psp::SnpFirmware fw(r, mem);
    const Hpa page(0x200000);
    CHECK(fw.launch_update(page, psp::SnpPageType::normal) == psp::SEV_RET_INVALID_GUEST_STATE);
    REQUIRE(fw.launch_start(1, 0x30000) == 0);
    CHECK(fw.launch_start(1, 0x30000) == psp::SEV_RET_INVALID_GUEST_STATE);
    CHECK(fw.launch_update(page, psp::SnpPageType::normal) == psp::SEV_RET_INVALID_PAGE_STATE);   // hypervisor page
    REQUIRE(r.rmpupdate(page, rmp::RmpState{Gpa(0x10000), true, PgLevel::k4K, false, 1}) == 0);
    CHECK(fw.launch_update(page, psp::SnpPageType::normal) == psp::SEV_RET_INVALID_PAGE_STATE);   // mutable
    REQUIRE(r.rmpupdate(page, rmp::RmpState{Gpa(0), false, PgLevel::k4K, false, 0}) == 0);
    REQUIRE(r.rmpupdate(page, rmp::RmpState{Gpa(0x10000), true, PgLevel::k4K, true, 2}) == 0);
    CHECK(fw.launch_update(page, psp::SnpPageType::normal) == psp::SEV_RET_INVALID_PAGE_OWNER);   // other ASID
    const Hpa big(0x400000);
    REQUIRE(r.rmpupdate(big, rmp::RmpState{Gpa(0x200000), true, PgLevel::k2M, true, 1}) == 0);
    CHECK(fw.launch_update(big, psp::SnpPageType::normal) == psp::SEV_RET_INVALID_PAGE_SIZE);
    CHECK(fw.stats().launch_updates == 0);
    CHECK(fw.launch_finish() == 0);
    CHECK(fw.state() == psp::SnpGuestState::running);
}

TEST_CASE("snp launch: KVM's argument checks (EINVAL) and a shared gfn (EIO: not private)", "[launch][snp]") {
    Rig r(snp_scenario(R"({"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "4KiB"}}},
        {"ioctl": {"snp_launch_start": {"policy": "0x10000"}}},
        {"ioctl": {"snp_launch_start": {}}},
        {"ioctl": {"snp_launch_start": {}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "4KiB", "type": 2}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x10000", "size": "4KiB", "flags": 1}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x900000", "size": "4KiB"}}},
        {"ioctl": {"snp_launch_update": {"gpa": "0x7ff000", "size": "8KiB"}}})"));
    const auto o = r.run_all();
    CHECK(o[0].err == EINVAL);   // no guest context yet
    CHECK(o[1].err == EINVAL);   // RSVD_MBO (bit 17) clear
    CHECK(o[2].err == 0);
    CHECK(o[3].err == EINVAL);   // one context per VM
    CHECK(o[4].err == EINVAL);   // VMSA is KVM's own type
    CHECK(o[5].err == EINVAL);   // flags
    CHECK(o[6].err == EIO);      // gfn 0x900 is shared: kvm_gmem_populate EINVAL -> EIO
    CHECK(o[7].err == 0);        // partial progress: the private page is done ...
    CHECK(o[7].remaining == kPageSize);   // ... and len says what is left
    CHECK(r.m->rmp()->read_entry(r.gmem_pfn(0x7ff)).validated);
}

TEST_CASE("C11/C44 KVM_TDX_INIT_MEM_REGION: PAGE.ADD (MAPPED, no accept) + 16 MR.EXTEND per measured page, "
          "after finalize INIT_MEM_REGION is EINVAL, pre-fault only after finalize",
          "[launch][tdx]") {
    Rig r(tdx_scenario(R"({"ioctl": {"pre_fault_memory": {"gpa": "0x400000", "size": "4KiB"}}},
        {"ioctl": {"tdx_init_mem_region": {"gpa": "0x10000", "size": "8KiB", "value": "0x77"}}},
        {"ioctl": {"tdx_init_mem_region": {"gpa": "0x20000", "size": "4KiB", "value": "0x66", "measure": false}}},
        {"ioctl": {"tdx_finalize_vm": {}}},
        {"ioctl": {"tdx_init_mem_region": {"gpa": "0x30000", "size": "4KiB"}}},
        {"ioctl": {"pre_fault_memory": {"gpa": "0x400000", "size": "4KiB"}}},
        {"ioctl": {"tdx_finalize_vm": {}}})"));
    // A scenario that finalizes itself leaves the TD being built until its step.
    CHECK(r.m->tdx()->kvm_tdx().state() == kvm::TdState::initialized);
    const auto o = r.run_all();
    CHECK(o[0].err == EOPNOTSUPP);
    CHECK(o[1].err == 0);
    CHECK(o[1].remaining == 0u);
    CHECK(o[2].err == 0);
    CHECK(o[3].err == 0);
    CHECK(o[4].err == EINVAL);
    CHECK(o[5].err == 0);
    CHECK(o[6].err == EINVAL);
    const auto& st = r.m->tdx()->module().stats();
    CHECK(st.page_add == 3);
    CHECK(st.mr_extend == 32);
    CHECK(r.m->tdx()->module().sept_read(r.m->tdx()->tdr(), 0x10000, 0).state == tdx::SeptState::mapped);
    CHECK(r.m->mem().read64(Hpa(pfn_to_hpa(r.gmem_pfn(0x11)).raw() + 0x100)) == 0x7777777777777777ull);
    REQUIRE(o[3].launch_digest);
    const std::string want = mrtd_expected({{0x10000, 0x77, true}, {0x11000, 0x77, true}, {0x20000, 0x66, false}});
    CHECK(*o[3].launch_digest == want);
    const auto lm = r.m->launch_measurement();
    REQUIRE(lm);
    CHECK(lm->kind == "tdx_mrtd");
    CHECK(lm->digest == want);
    CHECK(lm->final);
    CHECK(lm->pages == 3);
    CHECK(lm->measured_pages == 2);
    CHECK(r.m->check_invariants() == std::nullopt);
}

TEST_CASE("tdx launch: one byte of a measured image, or its GPA, changes the MRTD, an unmeasured page's bytes do "
          "not",
          "[launch][tdx]") {
    auto mrtd = [](const std::string& gpa, const std::string& value, bool measure) {
        Rig r(tdx_scenario(R"({"ioctl": {"tdx_init_mem_region": {"gpa": ")" + gpa + R"(", "size": "4KiB", "value": ")" +
                           value + R"(", "measure": )" + (measure ? "true" : "false") + R"(}}},
            {"ioctl": {"tdx_finalize_vm": {}}})"));
        const auto o = r.run_all();
        REQUIRE(o[1].err == 0);
        return *o[1].launch_digest;
    };
    const std::string base = mrtd("0x10000", "0x5a", true);
    CHECK(mrtd("0x10000", "0x5b", true) != base);
    CHECK(mrtd("0x11000", "0x5a", true) != base);
    CHECK(mrtd("0x10000", "0x5a", false) == mrtd("0x10000", "0x5b", false));
    CHECK(mrtd("0x10000", "0x5a", false) != mrtd("0x11000", "0x5a", false));
}

TEST_CASE("tdx launch: a shared-bit GPA or a non-private gfn is refused, without a finalize step the TD is "
          "finalized with its vCPUs",
          "[launch][tdx]") {
    Rig r(tdx_scenario(R"({"ioctl": {"tdx_init_mem_region": {"gpa": "0x800000000000", "size": "4KiB"}}},
        {"ioctl": {"tdx_init_mem_region": {"gpa": "0x900000", "size": "4KiB"}}},
        {"ioctl": {"tdx_finalize_vm": {}}})"));
    const auto o = r.run_all();
    CHECK(o[0].err == EINVAL);   // bit 47: the shared alias
    CHECK(o[1].err == EINVAL);   // kvm_gmem_populate: gfn not PRIVATE
    CHECK(o[2].err == 0);
    Rig auto_fin(tdx_scenario(""));
    CHECK(auto_fin.m->tdx()->kvm_tdx().state() == kvm::TdState::runnable);
    CHECK_FALSE(auto_fin.m->launch_measurement());
}

TEST_CASE("tdx launch: a TD finalized without an initial image has the MRTD of the empty message", "[launch][tdx]") {
    Rig r(tdx_scenario(R"({"ioctl": {"tdx_finalize_vm": {}}})"));
    const auto o = r.run_all();
    REQUIRE(o[0].err == 0);
    CHECK(*o[0].launch_digest ==
          "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b");
    CHECK(r.m->tdx()->module().stats().page_add == 0);
}
