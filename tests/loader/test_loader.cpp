#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "kernel/uapi.hpp"
#include "sim/loader.hpp"

using namespace hvsim;

namespace {

const std::string kData = HVSIM_LOADER_DATA;

std::string error_of(const std::string& text, const std::string& file = "t.json") {
    try {
        load_scenario_text(text, file);
    } catch (const LoadError& e) {
        return e.what();
    }
    return "<no error>";
}

// A scenario with one vm (2 vCPUs, one guest_memfd g0, one gmem slot) and the given steps.
std::string with_steps(const std::string& steps) {
    return R"({"vm": {"vcpus": 2, "guest_memfd": [{"id": "g0", "size": "2MiB"}],
               "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "2MiB", "guest_memfd": "g0"}]},
               "steps": [)" +
           steps + "]}";
}

template <class T>
const T& op(const scn::Step& s) {
    REQUIRE(std::holds_alternative<T>(s.op));
    return std::get<T>(s.op);
}

const std::string kSizeWhat = "a size (non-negative integer, \"0x...\" hex string, or \"<n>KiB|MiB|GiB|TiB\")";
constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20, GiB = 1ull << 30;

}  // namespace

// ---- positive ----------------------------------------------------------------

TEST_CASE("the DESIGN example loads into the expected struct", "[loader]") {
    const std::string path = kData + "/good/design_example.json";
    const scn::Scenario s = load_scenario_file(path);
    CHECK(s.file == path);
    CHECK(s.name == "snp-convert-2m");
    CHECK(s.platform == "zen4-genoa");
    CHECK(s.params == std::map<std::string, std::string>{{"mmu.l2_tlb.entries", "3072"}});
    CHECK(s.seed == 1);
    CHECK(s.vm.type == "snp");
    CHECK(s.vm.vcpus == 2);
    CHECK(s.vm.guest_paging_levels == 4);
    CHECK(s.vm.guest_page_size == PgLevel::k4K);
    CHECK_FALSE(s.vm.guest_pt_region.has_value());
    REQUIRE(s.vm.guest_memfd.size() == 1);
    CHECK(s.vm.guest_memfd[0].id == "g0");
    CHECK(s.vm.guest_memfd[0].size == GiB);
    CHECK(s.vm.guest_memfd[0].flags == 0);
    REQUIRE(s.vm.memslots.size() == 1);
    const auto& m = s.vm.memslots[0];
    CHECK(m.slot == 0);
    CHECK(m.as_id == 0);
    CHECK(m.flags == uapi::KVM_MEM_GUEST_MEMFD);
    CHECK(m.gpa == 0);
    CHECK(m.size == GiB);
    CHECK(m.userspace_addr == 0x7f0000000000ull);
    REQUIRE(m.guest_memfd.has_value());
    CHECK(m.guest_memfd->kind == scn::FdRef::Kind::gmem);
    CHECK(m.guest_memfd->id == "g0");
    CHECK(m.guest_memfd_offset == 0);
    REQUIRE(s.vm.private_ranges.size() == 1);
    CHECK(s.vm.private_ranges[0].gpa == 0);
    CHECK(s.vm.private_ranges[0].size == GiB);

    REQUIRE(s.steps.size() == 4);
    CHECK(s.steps[0].pointer == "/steps/0");
    CHECK(s.steps[0].vcpus == std::vector<unsigned>{0, 1});
    const auto& a0 = op<scn::Access>(s.steps[0]);
    CHECK(a0.gpa == 0);
    CHECK(a0.size == 64 * MiB);
    CHECK(a0.pattern == scn::Access::Pattern::seq);
    CHECK(a0.op == scn::Access::Op::write);
    CHECK(a0.value == 0x5a);
    CHECK(a0.width == 0);   // absent: the runner's default
    CHECK(a0.stride == 4096);
    CHECK(a0.count == 0);
    CHECK_FALSE(a0.is_private.has_value());

    CHECK(s.steps[1].vcpus == std::vector<unsigned>{0});
    const auto& h = op<scn::MapGpaRange>(s.steps[1]);
    CHECK(h.gpa == 0);
    CHECK(h.size == 2 * MiB);
    CHECK_FALSE(h.to_private);

    CHECK(s.steps[2].vcpus.empty());
    const auto& a2 = op<scn::SetMemoryAttributes2>(s.steps[2]);
    CHECK(a2.guest_memfd.kind == scn::FdRef::Kind::gmem);
    CHECK(a2.guest_memfd.id == "g0");
    CHECK(a2.offset == 1);
    CHECK(a2.size == 4096);
    CHECK(a2.attributes == uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
    CHECK(a2.flags == uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_ZERO);
    CHECK(s.steps[2].expect.err == std::optional<std::string>("EINVAL"));

    const auto& a3 = op<scn::Access>(s.steps[3]);
    CHECK(a3.op == scn::Access::Op::read);
    CHECK(a3.size == 4096);
    CHECK(s.steps[3].expect.bytes == std::optional<uint8_t>(0));
    CHECK_FALSE(s.steps[3].expect.err.has_value());

    REQUIRE(s.expect_metrics.size() == 1);
    const auto& b = s.expect_metrics.at("faults.private");
    CHECK(b.min == std::optional<double>(1.0));
    CHECK_FALSE(b.max.has_value());
    CHECK_FALSE(b.eq.has_value());
}

TEST_CASE("every step kind, flags as names and raw integers, fd references", "[loader]") {
    const scn::Scenario s = load_scenario_file(kData + "/good/all_steps.json");
    CHECK(s.name == "all_steps");   // the file stem
    CHECK(s.platform == "sapphire-rapids");
    CHECK(s.params == std::map<std::string, std::string>{{"cost.ioctl", "1200"},
                                                          {"kvm.config.smm", "false"},
                                                          {"mem.l2.size", "4MiB"},
                                                          {"mmu.nested_format", "ept"}});
    CHECK(s.seed == 16);
    CHECK(s.vm.type == "sw_protected");
    CHECK(s.vm.vcpus == 4);
    CHECK(s.vm.guest_paging_levels == 5);
    CHECK(s.vm.guest_page_size == PgLevel::k2M);
    REQUIRE(s.vm.guest_pt_region.has_value());
    CHECK(s.vm.guest_pt_region->gpa == 0x3fe00000);
    CHECK(s.vm.guest_pt_region->size == 2 * MiB);
    REQUIRE(s.vm.guest_memfd.size() == 2);
    CHECK(s.vm.guest_memfd[0].flags == (uapi::GUEST_MEMFD_FLAG_MMAP | uapi::GUEST_MEMFD_FLAG_INIT_SHARED));
    CHECK(s.vm.guest_memfd[1].flags == 3);
    CHECK(s.vm.guest_memfd[1].size == 2 * MiB);
    REQUIRE(s.vm.memslots.size() == 3);
    CHECK(s.vm.memslots[1].flags == uapi::KVM_MEM_GUEST_MEMFD);
    CHECK(s.vm.memslots[1].gpa == 4 * GiB);
    CHECK(s.vm.memslots[1].guest_memfd_offset == MiB);
    CHECK(s.vm.memslots[2].as_id == 1);
    CHECK(s.vm.memslots[2].flags == (uapi::KVM_MEM_READONLY | uapi::KVM_MEM_LOG_DIRTY_PAGES));
    CHECK_FALSE(s.vm.memslots[2].guest_memfd.has_value());

    const auto& st = s.steps;
    REQUIRE(st.size() == 26);
    CHECK(st[0].name == "make g2");
    CHECK(op<scn::CreateGuestMemfd>(st[0]).gmem.id == "g2");
    CHECK(op<scn::CreateGuestMemfd>(st[0]).gmem.size == 8192);
    CHECK(op<scn::CreateGuestMemfd>(st[0]).gmem.flags == uapi::GUEST_MEMFD_FLAG_MMAP);
    CHECK(st[0].expect.err == std::optional<std::string>("ok"));
    CHECK(op<scn::CreateGuestMemfd>(st[1]).gmem.id.empty());
    CHECK(op<scn::CreateGuestMemfd>(st[1]).gmem.size == 4095);
    CHECK(op<scn::CreateGuestMemfd>(st[1]).gmem.flags == 0x8000000000000000ull);

    // slot 65538 without as_id: bits 31:16 are the address space.
    const auto& r2 = op<scn::SetUserMemoryRegion2>(st[2]).region;
    CHECK(r2.slot == 2);
    CHECK(r2.as_id == 1);
    CHECK(r2.flags == 4);
    CHECK(r2.gpa == 0x1001);
    CHECK(r2.size == 0);
    CHECK(r2.userspace_addr == 0);
    CHECK(r2.guest_memfd->id == "g2");
    CHECK(r2.guest_memfd_offset == 4096);
    const auto& r3 = op<scn::SetUserMemoryRegion2>(st[3]).region;
    CHECK(r3.slot == 3);
    CHECK(r3.as_id == 0);
    CHECK(r3.gpa == 0);
    CHECK(r3.guest_memfd->kind == scn::FdRef::Kind::kvm);

    const auto& sa = op<scn::SetMemoryAttributes>(st[4]);
    CHECK(sa.gpa == 2 * MiB);
    CHECK(sa.attributes == uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const auto& sa2 = op<scn::SetMemoryAttributes2>(st[5]);
    CHECK(sa2.attributes == 0);
    CHECK(sa2.flags == uapi::KVM_SET_MEMORY_ATTRIBUTES2_CONTENT_POLICY_PRESERVE);
    CHECK(st[5].expect.err == std::optional<std::string>("EAGAIN"));
    CHECK(st[5].expect.error_offset == std::optional<uint64_t>(0x1000));
    const auto& sa2b = op<scn::SetMemoryAttributes2>(st[6]);
    CHECK(sa2b.guest_memfd.kind == scn::FdRef::Kind::raw);
    CHECK(sa2b.guest_memfd.raw == 1234);
    CHECK(sa2b.flags == 3);

    const auto& fa = op<scn::Fallocate>(st[7]);
    CHECK(fa.mode == (uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE));
    CHECK(fa.len == 2 * MiB);
    const auto& fb = op<scn::Fallocate>(st[8]);
    CHECK(fb.guest_memfd.kind == scn::FdRef::Kind::memfd);
    CHECK(fb.mode == 96);
    CHECK(fb.offset == 0);

    const auto& pf = op<scn::PreFaultMemory>(st[9]);
    CHECK(pf.vcpu == 3);
    CHECK(pf.size == 4 * MiB);
    CHECK(st[9].expect.remaining == std::optional<uint64_t>(0));
    CHECK(op<scn::EncryptRegion>(st[10]).reg);
    CHECK(op<scn::EncryptRegion>(st[10]).addr == 0x7f0000000000ull);
    CHECK_FALSE(op<scn::EncryptRegion>(st[11]).reg);

    const auto& ce = op<scn::CheckExtension>(st[12]);
    CHECK(ce.cap == "guest_memfd_flags");
    CHECK(ce.cap_nr == uapi::KVM_CAP_GUEST_MEMFD_FLAGS);
    CHECK_FALSE(ce.vm_scope);
    CHECK(st[12].expect.value == std::optional<int64_t>(3));
    CHECK(op<scn::CheckExtension>(st[13]).cap.empty());
    CHECK(op<scn::CheckExtension>(st[13]).cap_nr == 9999);
    CHECK(op<scn::CheckExtension>(st[13]).vm_scope);

    const auto& mm = op<scn::HostAccess>(st[14]);
    CHECK(mm.op == scn::HostAccess::Op::mmap);
    CHECK(mm.guest_memfd->id == "g2");
    CHECK(mm.size == 8192);
    CHECK_FALSE(mm.map_shared);
    const auto& hw = op<scn::HostAccess>(st[15]);
    CHECK(hw.op == scn::HostAccess::Op::write);
    CHECK(hw.offset == 4096);
    CHECK(hw.value == 171);
    CHECK_FALSE(hw.userspace_addr.has_value());
    const auto& hr = op<scn::HostAccess>(st[16]);
    CHECK(hr.op == scn::HostAccess::Op::read);
    CHECK(hr.userspace_addr == std::optional<uint64_t>(0x7f0000001000ull));
    CHECK_FALSE(hr.guest_memfd.has_value());
    CHECK(st[16].expect.bytes == std::optional<uint8_t>(0xab));
    CHECK(st[16].expect.signal == std::optional<std::string>("SIGBUS"));
    CHECK(op<scn::HostAccess>(st[17]).op == scn::HostAccess::Op::pin);
    CHECK(op<scn::HostAccess>(st[17]).offset == 4096);
    CHECK(op<scn::HostAccess>(st[18]).op == scn::HostAccess::Op::unpin);

    const auto& ac = op<scn::Access>(st[19]);
    CHECK(st[19].vcpus == std::vector<unsigned>{1});
    CHECK(ac.pattern == scn::Access::Pattern::stride);
    CHECK(ac.stride == 8 * KiB);
    CHECK(ac.count == 100);
    CHECK(ac.width == 4);
    CHECK(ac.value == 7);
    CHECK(ac.is_private == std::optional<bool>(true));
    CHECK(op<scn::Access>(st[20]).pattern == scn::Access::Pattern::random);
    REQUIRE(st[20].expect.exit.has_value());
    CHECK(st[20].expect.exit->reason == "memory_fault");
    CHECK(st[20].expect.exit->gpa == std::optional<uint64_t>(0));
    CHECK(st[20].expect.exit->size == std::optional<uint64_t>(4096));
    CHECK(st[20].expect.exit->flags == std::optional<uint64_t>(uapi::KVM_MEMORY_EXIT_FLAG_PRIVATE));
    CHECK(st[20].expect.err == std::optional<std::string>("EFAULT"));
    CHECK(st[21].vcpus == std::vector<unsigned>{0, 1, 2, 3});
    CHECK(op<scn::MapGpaRange>(st[21]).to_private);
    CHECK(st[21].expect.exit->reason == "hypercall");
    CHECK_FALSE(st[21].expect.exit->gpa.has_value());

    const auto& par = op<std::vector<scn::Step>>(st[22]);
    REQUIRE(par.size() == 2);
    CHECK(par[0].pointer == "/steps/22/parallel/0");
    CHECK(par[1].pointer == "/steps/22/parallel/1");
    CHECK(par[0].expect.bytes == std::optional<uint8_t>(0));
    CHECK(op<scn::Fallocate>(par[1]).guest_memfd.id == "g2");

    CHECK_FALSE(op<scn::Close>(st[23]).vm);
    CHECK(op<scn::Close>(st[23]).guest_memfd.id == "g2");
    CHECK(op<scn::Close>(st[24]).vm);
    CHECK(st[25].expect.err == std::optional<std::string>("EBADF"));

    CHECK(s.expect_metrics.at("faults.private").eq == std::optional<double>(3));
    CHECK(s.expect_metrics.at("walk.mem_refs").min == std::optional<double>(1));
    CHECK(s.expect_metrics.at("walk.mem_refs").max == std::optional<double>(24.5));
    CHECK(s.expect_metrics.at("tlb.l1.hits").eq == std::optional<double>(0));
}

TEST_CASE("expect.arch: per-architecture bounds replace, add or drop the common ones", "[loader]") {
    const scn::Scenario s = load_scenario_text(R"({"expect": {
        "metrics": {"mmu.huge_splits": {"min": 32}, "faults.fast": 24, "mmu.map.2m": {"min": 64}},
        "arch": {"arm64": {"metrics": {"mmu.huge_splits": {"max": 4}, "mmu.map.2m": null, "s2.bbm": {"min": 1}}}}}})",
                                               "t.json");
    auto find = [](const std::vector<scn::EffectiveBound>& v, const std::string& n) -> const scn::EffectiveBound* {
        for (const auto& b : v)
            if (b.name == n) return &b;
        return nullptr;
    };
    const auto x86 = scn::effective_metric_bounds(s, "x86");
    REQUIRE(x86.size() == 3);
    REQUIRE(find(x86, "mmu.huge_splits"));
    CHECK(find(x86, "mmu.huge_splits")->bound.min == std::optional<double>(32));
    CHECK(find(x86, "mmu.huge_splits")->ptr == "/expect/metrics/mmu.huge_splits");
    CHECK_FALSE(find(x86, "s2.bbm"));
    const auto arm = scn::effective_metric_bounds(s, "arm64");
    REQUIRE(arm.size() == 3);   // faults.fast, mmu.huge_splits (replaced), s2.bbm (added); mmu.map.2m dropped
    REQUIRE(find(arm, "mmu.huge_splits"));
    CHECK(find(arm, "mmu.huge_splits")->bound.max == std::optional<double>(4));
    CHECK_FALSE(find(arm, "mmu.huge_splits")->bound.min);
    CHECK(find(arm, "mmu.huge_splits")->ptr == "/expect/arch/arm64/metrics/mmu.huge_splits");
    CHECK_FALSE(find(arm, "mmu.map.2m"));
    REQUIRE(find(arm, "faults.fast"));
    CHECK(find(arm, "faults.fast")->bound.eq == std::optional<double>(24));
    CHECK(scn::expect_arch_of_nested_format("stage2") == "arm64");
    CHECK(scn::expect_arch_of_nested_format("ept") == "x86");

    CHECK(error_of(R"({"expect": {"arch": {"aarch64": {}}}})") ==
          "t.json: /expect/arch/aarch64: expected one of [x86, arm64], got 'aarch64'");
    CHECK(error_of(R"({"expect": {"arch": {"arm64": {"metrics": {"a.b": {"min": 2, "max": 1}}}}}})") ==
          "t.json: /expect/arch/arm64/metrics/a.b: expected min <= max, got min 2 > max 1");
    CHECK(error_of(R"({"expect": {"metrics": {"a.b": null}}})").find("/expect/metrics/a.b") != std::string::npos);
}

TEST_CASE("defaults: name from the file stem, zen4-genoa, seed 1, a one-vCPU default VM", "[loader]") {
    const scn::Scenario s = load_scenario_text("{}", "some/dir/quick-start.json");
    CHECK(s.file == "some/dir/quick-start.json");
    CHECK(s.name == "quick-start");
    CHECK(s.platform == "zen4-genoa");
    CHECK(s.seed == 1);
    CHECK(s.params.empty());
    CHECK(s.vm.type == "default");
    CHECK(s.vm.vcpus == 1);
    CHECK(s.vm.guest_paging_levels == 4);
    CHECK(s.vm.memslots.empty());
    CHECK(s.steps.empty());
    CHECK(s.expect_metrics.empty());
}

TEST_CASE("sizes, guest page sizes and comments", "[loader]") {
    const scn::Scenario s = load_scenario_text(R"({
        // JSONC comments are accepted
        "vm": { "guest_page_size": "1G", "guest_paging": "none", /* block comment */
                "guest_memfd": [ { "id": "a", "size": "1TiB" }, { "id": "b", "size": 8192 },
                                 { "id": "c", "size": "0x3000" }, { "id": "d", "size": "12288" } ] }
    })",
                                               "t.json");
    CHECK(s.vm.guest_page_size == PgLevel::k1G);
    CHECK(s.vm.guest_paging_levels == 0);
    CHECK(s.vm.guest_memfd[0].size == 1ull << 40);
    CHECK(s.vm.guest_memfd[1].size == 8192);
    CHECK(s.vm.guest_memfd[2].size == 0x3000);
    CHECK(s.vm.guest_memfd[3].size == 12288);
    CHECK(load_scenario_text(R"({"vm": {"guest_page_size": "2MiB"}})", "t.json").vm.guest_page_size == PgLevel::k2M);
    CHECK(load_scenario_text(R"({"vm": {"guest_page_size": 4096}})", "t.json").vm.guest_page_size == PgLevel::k4K);
    CHECK(error_of(R"({"vm": {"guest_page_size": "3M"}})") ==
          "t.json: /vm/guest_page_size: expected 4K, 2M or 1G, got \"3M\"");
}

// ---- errors: one line, file, pointer, expected, got, did-you-mean ---------------

TEST_CASE("malformed JSON reports file:line:col and the parser's message", "[loader][errors]") {
    CHECK(error_of("{\n  \"vm\": {\n    \"vcpus\": 2,\n  }\n}") ==
          "t.json:4:3: syntax error while parsing object key - unexpected '}'; expected string literal");
    CHECK(error_of("") ==
          "t.json:1:1: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal");
    CHECK(error_of("{\"seed\": tru}") ==
          "t.json:1:13: syntax error while parsing value - invalid literal; last read: '\"seed\": tru}'");
}

TEST_CASE("missing and unreadable files", "[loader][errors]") {
    CHECK_THROWS_WITH(load_scenario_file("/nonexistent/x.json"), "/nonexistent/x.json: cannot open: No such file or directory");
    CHECK_THROWS_WITH(load_scenario_file(kData), kData + ": cannot read: Is a directory");
}

TEST_CASE("duplicate keys are errors, not last-one-wins", "[loader][errors]") {
    CHECK(error_of(R"({"vm": {"vcpus": 1, "vcpus": 2}})") == "t.json: /vm/vcpus: expected each key once, got 'vcpus' twice");
    CHECK(error_of(R"({"steps": [{"close": "vm"}, {"ioctl": {}, "close": "vm", "close": "vm"}]})") ==
          "t.json: /steps/1/close: expected each key once, got 'close' twice");
}

TEST_CASE("wrong types", "[loader][errors]") {
    CHECK(error_of("[]") == "t.json: /: expected a scenario object, got an array");
    CHECK(error_of(R"({"seed": "one"})") == "t.json: /seed: expected a seed (non-negative integer), got \"one\"");
    CHECK(error_of(R"({"seed": -1})") == "t.json: /seed: expected a seed (non-negative integer), got -1");
    CHECK(error_of(R"({"name": 5})") == "t.json: /name: expected a string, got 5");
    CHECK(error_of(R"({"vm": {"vcpus": "2"}})") == "t.json: /vm/vcpus: expected an integer 1..1024, got \"2\"");
    CHECK(error_of(R"({"vm": {"vcpus": 0}})") == "t.json: /vm/vcpus: expected an integer 1..1024, got 0");
    CHECK(error_of(R"({"vm": {"vcpus": 1025}})") == "t.json: /vm/vcpus: expected an integer 1..1024, got 1025");
    CHECK(error_of(R"({"vm": {"type": "snpp"}})") ==
          "t.json: /vm/type: expected one of [default, sw_protected, sev, sev_es, snp, tdx, pkvm], got \"snpp\" "
          "(did you mean 'snp'?)");
    CHECK(error_of(R"({"vm": {"guest_paging": 4}})") ==
          "t.json: /vm/guest_paging: expected one of [none, 4-level, 5-level], got 4");
    CHECK(error_of(R"({"steps": {}})") == "t.json: /steps: expected an array of steps, got an object");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64, "private": "yes"}})")) ==
          "t.json: /steps/0/access/private: expected true or false, got \"yes\"");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64, "width": 3}})")) ==
          "t.json: /steps/0/access/width: expected bytes per access: a power of two from 1 to 4096, got 3");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64, "width": 8192}})")) ==
          "t.json: /steps/0/access/width: expected bytes per access: a power of two from 1 to 4096, got 8192");
    CHECK(error_of(with_steps(R"({"host": {"write": {"guest_memfd": "g0", "size": 1, "value": 256}}})")) ==
          "t.json: /steps/0/host/write/value: expected a byte value 0..255 (integer or \"0x..\" hex string), got 256");
    CHECK(error_of(with_steps(R"({"close": "kvm"})")) ==
          "t.json: /steps/0/close: expected \"vm\" or {\"guest_memfd\": ID}, got \"kvm\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": {"fd": "vmm"}, "len": 1}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/guest_memfd/fd: expected one of [kvm, vm, memfd, invalid], got \"vmm\" "
          "(did you mean 'vm'?)");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": 3, "len": 1}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/guest_memfd: expected a guest_memfd id or "
          "{\"fd\": \"kvm\"|\"vm\"|\"memfd\"|\"invalid\"|N}, got 3");
    CHECK(error_of(with_steps(R"({"ioctl": {"check_extension": {"cap": "guest_memfd", "scope": "global"}}})")) ==
          "t.json: /steps/0/ioctl/check_extension/scope: expected one of [vm, system], got \"global\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"check_extension": {"cap": "guestmemfd"}}})")) ==
          "t.json: /steps/0/ioctl/check_extension/cap: expected one of [nr_memslots, readonly_mem, "
          "multi_address_space, exit_hypercall, user_memory2, memory_attributes, guest_memfd, vm_types, "
          "pre_fault_memory, guest_memfd_flags], got \"guestmemfd\" (did you mean 'guest_memfd'?)");
}

TEST_CASE("negative sizes, floats and bad suffixes", "[loader][errors]") {
    CHECK(error_of(with_steps(R"({"ioctl": {"create_guest_memfd": {"size": -4096}}})")) ==
          "t.json: /steps/0/ioctl/create_guest_memfd/size: expected " + kSizeWhat + ", got -4096");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": "g0", "len": 4096.5}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/len: expected " + kSizeWhat + ", got 4096.5");
    // JSON has one number type: an integral 4096.0 is the integer 4096, as scenario.schema.json's
    // "integer" sees it.
    const scn::Scenario f = load_scenario_text(
        with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": "g0", "len": 4096.0}}}, {"vcpu": 1.0, "access": {"gpa": 0.0, "size": 4096}})"),
        "t.json");
    CHECK(op<scn::Fallocate>(f.steps[0]).len == 4096);
    CHECK(f.steps[1].vcpus == std::vector<unsigned>{1});
    CHECK(error_of(R"({"vm": {"vcpus": 2.5}})") == "t.json: /vm/vcpus: expected an integer 1..1024, got 2.5");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "1GB"}]}})") ==
          "t.json: /vm/guest_memfd/0/size: expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"1GB\" "
          "(did you mean 'GiB'?)");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2M"}]}})") ==
          "t.json: /vm/guest_memfd/0/size: expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"2M\"");
}

TEST_CASE("vm.memslots are validated strictly", "[loader][errors]") {
    auto slot = [](const std::string& fields) { return R"({"vm": {"memslots": [)" + fields + "]}}"; };
    CHECK(error_of(slot(R"({"slot": 0, "gpa": "0x1001", "size": "4KiB"})")) ==
          "t.json: /vm/memslots/0/gpa: expected a multiple of 4KiB (page aligned), got \"0x1001\"");
    CHECK(error_of(slot(R"({"slot": 0, "gpa": 0, "size": 6000})")) ==
          "t.json: /vm/memslots/0/size: expected a multiple of 4KiB (page aligned), got 6000");
    CHECK(error_of(slot(R"({"slot": 0, "gpa": 0, "size": 4096, "userspace_addr": "0x7f0000000800"})")) ==
          "t.json: /vm/memslots/0/userspace_addr: expected a multiple of 4KiB (page aligned), got \"0x7f0000000800\"");
    CHECK(error_of(slot(R"({"slot": 0, "gpa": 0, "size": 0})")) ==
          "t.json: /vm/memslots/0/size: expected a non-zero size (vm.memslots create slots; delete one in a step), got 0");
    CHECK(error_of(slot(R"({"slot": 32764, "gpa": 0, "size": 4096})")) ==
          "t.json: /vm/memslots/0/slot: expected a slot id 0..32763, got 32764");
    CHECK(error_of(slot(R"({"slot": 0, "as_id": 2, "gpa": 0, "size": 4096})")) ==
          "t.json: /vm/memslots/0/as_id: expected address space 0 or 1, got 2");
    CHECK(error_of(slot(R"({"slot": 0, "gpa": 0, "size": 4096, "flags": "0X8"})")) ==
          "t.json: /vm/memslots/0/flags: expected only the flag bits [log_dirty_pages, readonly, guest_memfd] (0x7) in "
          "vm, got \"0X8\"");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g", "size": 4096, "flags": 4}]}})") ==
          "t.json: /vm/guest_memfd/0/flags: expected only the flag bits [mmap, init_shared] (0x3) in vm, got 4");
    CHECK(error_of(slot(R"({"gpa": 0, "size": 4096})")) ==
          "t.json: /vm/memslots/0: expected key 'slot', got an object without it");
    CHECK(error_of(slot(R"({"slot": 0, "gpa": "0xfffffffffffff000", "size": "8KiB"})")) ==
          "t.json: /vm/memslots/0: expected a gpa range that does not wrap, got [0xfffffffffffff000, 0x1000)");
}

TEST_CASE("overlapping vm memslots and duplicate slot ids", "[loader][errors]") {
    const std::string a = R"({"slot": 0, "gpa": 0, "size": "1GiB"})";
    CHECK(error_of(R"({"vm": {"memslots": [)" + a + R"(, {"slot": 1, "gpa": "512MiB", "size": "1GiB"}]}})") ==
          "t.json: /vm/memslots/1: expected a gpa range that does not overlap another memslot of address space 0, "
          "got [0x20000000, 0x60000000) overlapping /vm/memslots/0 [0x0, 0x40000000)");
    // Overlapping from below, with a slot in between that does not overlap.
    CHECK(error_of(R"({"vm": {"memslots": [{"slot": 0, "gpa": "2GiB", "size": "1GiB"},
                                           {"slot": 1, "gpa": "4GiB", "size": "1GiB"},
                                           {"slot": 2, "gpa": "1GiB", "size": "1GiB"},
                                           {"slot": 3, "gpa": "3GiB", "size": "1GiB"},
                                           {"slot": 4, "gpa": "3584MiB", "size": "1GiB"}]}})") ==
          "t.json: /vm/memslots/4: expected a gpa range that does not overlap another memslot of address space 0, "
          "got [0xe0000000, 0x120000000) overlapping /vm/memslots/1 [0x100000000, 0x140000000)");
    // The same range in the other address space is fine.
    CHECK(load_scenario_text(R"({"vm": {"memslots": [)" + a + R"(, {"slot": 0, "as_id": 1, "gpa": 0, "size": "1GiB"}]}})",
                             "t.json")
              .vm.memslots.size() == 2);
    CHECK(error_of(R"({"vm": {"memslots": [)" + a + R"(, {"slot": 0, "gpa": "1GiB", "size": "1GiB"}]}})") ==
          "t.json: /vm/memslots/1/slot: expected a slot id not already used in address space 0, got 0 "
          "(used by /vm/memslots/0)");
    // slot 65536 (no as_id) is slot 0 of address space 1.
    CHECK(error_of(R"({"vm": {"memslots": [{"slot": 65536, "gpa": 0, "size": 4096},
                                           {"slot": 0, "as_id": 1, "gpa": 8192, "size": 4096}]}})") ==
          "t.json: /vm/memslots/1/slot: expected a slot id not already used in address space 1, got 0 "
          "(used by /vm/memslots/0)");
}

TEST_CASE("vm guest_memfd bindings", "[loader][errors]") {
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2MiB"}],
                       "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "2MiB", "guest_memfd": "gO"}]}})") ==
          "t.json: /vm/memslots/0/guest_memfd: expected a guest_memfd id declared in vm.guest_memfd [g0], got \"gO\" "
          "(did you mean 'g0'?)");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2MiB"}],
                       "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "2MiB"}]}})") ==
          "t.json: /vm/memslots/0: expected key 'guest_memfd' (flags include guest_memfd), got an object without it");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2MiB"}],
                       "memslots": [{"slot": 0, "gpa": 0, "size": "2MiB", "guest_memfd": "g0"}]}})") ==
          "t.json: /vm/memslots/0/guest_memfd: expected no guest_memfd without the guest_memfd flag (KVM would ignore "
          "it), got \"g0\"");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2MiB"}],
                       "memslots": [{"slot": 0, "flags": 4, "gpa": 0, "size": "2MiB", "guest_memfd": "g0",
                                     "guest_memfd_offset": "4KiB"}]}})") ==
          "t.json: /vm/memslots/0: expected guest_memfd_offset + size within guest_memfd 'g0' (2097152 bytes), got "
          "[0x1000, 0x201000)");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": "2MiB"}, {"id": "g0", "size": "2MiB"}]}})") ==
          "t.json: /vm/guest_memfd/1/id: expected a guest_memfd id not used before, got \"g0\" (declared at "
          "/vm/guest_memfd/0/id)");
    CHECK(error_of(R"({"vm": {"guest_memfd": [{"id": "g0", "size": 0}]}})") ==
          "t.json: /vm/guest_memfd/0/size: expected a non-zero size, got 0");
    CHECK(error_of(R"({"vm": {"guest_pt_region": {"gpa": "1GiB", "size": "2MiB"},
                       "memslots": [{"slot": 0, "gpa": 0, "size": "1GiB"}]}})") ==
          "t.json: /vm/guest_pt_region: expected a range inside one memslot of address space 0, got "
          "[0x40000000, 0x40200000)");
}

TEST_CASE("unknown guest_memfd ids in steps name the near match", "[loader][errors]") {
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": "g1", "len": 4096}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/guest_memfd: expected a guest_memfd id declared in vm.guest_memfd or "
          "created by an earlier step [g0], got \"g1\" (did you mean 'g0'?)");
    // Used before the step that creates it.
    CHECK(error_of(with_steps(R"({"close": {"guest_memfd": "late"}},
                                 {"ioctl": {"create_guest_memfd": {"id": "late", "size": 4096}}})")) ==
          "t.json: /steps/0/close/guest_memfd: expected a guest_memfd id declared in vm.guest_memfd or created by an "
          "earlier step [g0], got \"late\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"create_guest_memfd": {"id": "g0", "size": 4096}}})")) ==
          "t.json: /steps/0/ioctl/create_guest_memfd/id: expected a guest_memfd id not used before, got \"g0\" "
          "(declared at /vm/guest_memfd/0/id)");
    CHECK(load_scenario_text(with_steps(R"({"ioctl": {"create_guest_memfd": {"id": "late", "size": 4096}}},
                                            {"close": {"guest_memfd": "late"}})"),
                             "t.json")
              .steps.size() == 2);
}

TEST_CASE("unknown keys name the allowed keys and the near match", "[loader][errors]") {
    CHECK(error_of(R"({"stpes": []})") ==
          "t.json: /stpes: expected one of [$schema, name, description, platform, params, seed, vm, steps, expect], "
          "got 'stpes' (did you mean 'steps'?)");
    CHECK(error_of(R"({"vm": {"vcpu": 2}})") ==
          "t.json: /vm/vcpu: expected one of [type, vcpus, guest_paging, guest_page_size, guest_pt_region, "
          "guest_memfd, memslots, private, accept], got 'vcpu' (did you mean 'vcpus'?)");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "acess": {}})")) ==
          "t.json: /steps/0/acess: expected one of [name, vcpu, ioctl, host, access, hypercall, close, parallel, "
          "expect], got 'acess' (did you mean 'access'?)");
    CHECK(error_of(with_steps(R"({"ioctl": {"set_memory_atributes": {}}})")) ==
          "t.json: /steps/0/ioctl/set_memory_atributes: expected one of [create_guest_memfd, set_user_memory_region2, "
          "set_memory_attributes, set_memory_attributes2, fallocate, pre_fault_memory, memory_encrypt_reg_region, "
          "memory_encrypt_unreg_region, check_extension, get_dirty_log, clear_dirty_log, set_user_memory_region, "
          "snp_launch_start, snp_launch_update, snp_launch_finish, tdx_init_mem_region, tdx_finalize_vm], got "
          "'set_memory_atributes' "
          "(did you mean "
          "'set_memory_attributes'?)");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": {"fd": "vm"}, "lenn": 1}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/lenn: expected one of [guest_memfd, mode, offset, len], got 'lenn' "
          "(did you mean 'len'?)");
    CHECK(error_of(with_steps(R"({"close": "vm", "expect": {"erno": "EBADF"}})")) ==
          "t.json: /steps/0/expect/erno: expected one of [errno, error_offset, remaining, exit, signal, bytes, value, "
          "dirty_pages, dirty_bitmap, launch_digest, status], got 'erno' (did you mean 'errno'?)");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64}, "expect": {"exit": {"reasn": "mmio"}}})")) ==
          "t.json: /steps/0/expect/exit/reasn: expected one of [reason, gpa, size, flags], got 'reasn' (did you mean "
          "'reason'?)");
    CHECK(error_of(R"({"expect": {"metric": {}}})") ==
          "t.json: /expect/metric: expected one of [metrics, arch], got 'metric' (did you mean 'metrics'?)");
    CHECK(error_of(R"({"expect": {"metrics": {"faults.private": {"minimum": 1}}}})") ==
          "t.json: /expect/metrics/faults.private/minimum: expected one of [min, max, eq], got 'minimum'");
    CHECK(error_of(R"({"zzz": 1})") ==
          "t.json: /zzz: expected one of [$schema, name, description, platform, params, seed, vm, steps, expect], "
          "got 'zzz'");
}

TEST_CASE("unknown flag names", "[loader][errors]") {
    CHECK(error_of(R"({"vm": {"memslots": [{"slot": 0, "gpa": 0, "size": 4096, "flags": ["readonly_mem"]}]}})") ==
          "t.json: /vm/memslots/0/flags/0: expected one of [log_dirty_pages, readonly, guest_memfd], got "
          "\"readonly_mem\" (did you mean 'readonly'?)");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": "g0", "mode": ["punch-hole"], "len": 1}}})")) ==
          "t.json: /steps/0/ioctl/fallocate/mode/0: expected one of [keep_size, punch_hole, collapse_range, "
          "zero_range, insert_range, unshare_range], got \"punch-hole\" (did you mean 'punch_hole'?)");
    CHECK(error_of(with_steps(R"({"ioctl": {"create_guest_memfd": {"size": 4096, "flags": "mmap"}}})")) ==
          "t.json: /steps/0/ioctl/create_guest_memfd/flags: expected a list of names from [mmap, init_shared] or an "
          "integer, got \"mmap\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"set_memory_attributes": {"gpa": 0, "size": 1, "flags": ["x"]}}})")) ==
          "t.json: /steps/0/ioctl/set_memory_attributes/flags/0: expected no names (none are defined), got \"x\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"set_memory_attributes2": {"guest_memfd": "g0", "size": 1,
                                 "content_policy": "keep"}}})")) ==
          "t.json: /steps/0/ioctl/set_memory_attributes2/content_policy: expected one of [zero, preserve, none], got "
          "\"keep\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"set_memory_attributes2": {"guest_memfd": "g0", "size": 1,
                                 "content_policy": "zero", "flags": 1}}})")) ==
          "t.json: /steps/0/ioctl/set_memory_attributes2/flags: expected either content_policy or flags, got both");
}

TEST_CASE("unknown platform and parameters fail at load", "[loader][errors]") {
    CHECK(error_of(R"({"platform": "zen4-genao"})") ==
          "t.json: /platform: expected one of [zen4-genoa, sapphire-rapids, neoverse-n2], got \"zen4-genao\" (did you "
          "mean 'zen4-genoa'?)");
    CHECK(error_of(R"({"params": {"mmu.l2_tlb.entrys": 1}})") ==
          "t.json: /params/mmu.l2_tlb.entrys: unknown parameter 'mmu.l2_tlb.entrys' (did you mean "
          "'mmu.l2_tlb.entries'?)");
    CHECK(error_of(R"({"params": {"kvm.config.smm": "no"}})") ==
          "t.json: /params/kvm.config.smm: expected true or false, got \"no\"");
    CHECK(error_of(R"({"params": {"mem.l1d.ways": -8}})") ==
          "t.json: /params/mem.l1d.ways: expected an integer 1..1024, got -8");
    CHECK(error_of(R"({"params": ["cost.ioctl"]})") ==
          "t.json: /params: expected an object of dotted parameter names, got an array");
    CHECK(error_of(R"({"params": {"mem.l1d.ways": 7}})") ==
          "t.json: /params: expected mem.l1d.size to be a non-zero multiple of mem.l1d.ways x mem.line_bytes "
          "(7 x 64 = 448 bytes), got 32768");
}

TEST_CASE("errno names, expectations per step kind, signals", "[loader][errors]") {
    std::string errnos = "[ok";
    for (const auto& e : known_errno_names()) errnos += ", " + e;
    errnos += "]";
    CHECK(known_errno_names().size() == 25);
    CHECK(error_of(with_steps(R"({"close": "vm", "expect": {"errno": "EINVL"}})")) ==
          "t.json: /steps/0/expect/errno: expected one of " + errnos + ", got \"EINVL\" (did you mean 'EINVAL'?)");
    CHECK(error_of(with_steps(R"({"close": "vm", "expect": {"errno": "einval"}})")) ==
          "t.json: /steps/0/expect/errno: expected one of " + errnos + ", got \"einval\" (did you mean 'EINVAL'?)");
    CHECK(error_of(with_steps(R"({"close": "vm", "expect": {"errno": 22}})")) ==
          "t.json: /steps/0/expect/errno: expected one of " + errnos + ", got 22");
    CHECK(error_of(with_steps(R"({"ioctl": {"fallocate": {"guest_memfd": "g0", "len": 1}}, "expect": {"value": 1}})")) ==
          "t.json: /steps/0/expect/value: expected an expectation an ioctl fallocate step reports [errno], got 'value'");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64, "op": "write", "value": 1},
                                 "expect": {"bytes": 0}})")) ==
          "t.json: /steps/0/expect/bytes: expected an expectation a write access step reports [errno, exit], got "
          "'bytes'");
    CHECK(error_of(with_steps(R"({"host": {"write": {"guest_memfd": "g0", "size": 1, "value": 1}},
                                 "expect": {"signal": "SIGILL"}})")) ==
          "t.json: /steps/0/expect/signal: expected one of [SIGBUS, SIGSEGV], got \"SIGILL\"");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64},
                                 "expect": {"exit": {"reason": "npf"}}})")) ==
          "t.json: /steps/0/expect/exit/reason: expected one of [memory_fault, hypercall, mmio, fail_entry, halted], got \"npf\"");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64},
                                 "expect": {"exit": {"reason": "memory_fault", "flags": ["shared"]}}})")) ==
          "t.json: /steps/0/expect/exit/flags/0: expected one of [private], got \"shared\"");
    // Dirty logging: the bitmap expectations belong to get_dirty_log; a cleared page must
    // lie in the range.
    CHECK(error_of(with_steps(R"({"ioctl": {"clear_dirty_log": {"slot": 0, "first_page": 0, "num_pages": 64}},
                                 "expect": {"dirty_pages": 1}})")) ==
          "t.json: /steps/0/expect/dirty_pages: expected an expectation an ioctl clear_dirty_log step reports [errno], "
          "got 'dirty_pages'");
    CHECK(error_of(with_steps(R"({"ioctl": {"clear_dirty_log": {"slot": 0, "first_page": 0, "num_pages": 64,
                                 "dirty_bitmap": [64]}}})")) ==
          "t.json: /steps/0/ioctl/clear_dirty_log/dirty_bitmap/0: expected a page number below 64, got 64");
    CHECK(error_of(with_steps(R"({"ioctl": {"get_dirty_log": {"slot": 0, "first_page": 0}}})")) ==
          "t.json: /steps/0/ioctl/get_dirty_log/first_page: expected one of [slot, as_id], got 'first_page'");
}

TEST_CASE("vCPU indices are checked against vm.vcpus", "[loader][errors]") {
    CHECK(error_of(with_steps(R"({"vcpu": 2, "access": {"gpa": 0, "size": 64}})")) ==
          "t.json: /steps/0/vcpu: expected a vCPU index 0..1 (vm.vcpus is 2) or \"all\", got 2");
    CHECK(error_of(with_steps(R"({"vcpu": -1, "access": {"gpa": 0, "size": 64}})")) ==
          "t.json: /steps/0/vcpu: expected a vCPU index 0..1 (vm.vcpus is 2) or \"all\", got -1");
    CHECK(error_of(with_steps(R"({"vcpu": "any", "access": {"gpa": 0, "size": 64}})")) ==
          "t.json: /steps/0/vcpu: expected a vCPU index 0..1 (vm.vcpus is 2) or \"all\", got \"any\"");
    CHECK(error_of(with_steps(R"({"ioctl": {"pre_fault_memory": {"vcpu": 5, "gpa": 0, "size": 4096}}})")) ==
          "t.json: /steps/0/ioctl/pre_fault_memory/vcpu: expected a vCPU index 0..1 (vm.vcpus is 2), got 5");
    CHECK(error_of(R"({"steps": [{"vcpu": 1, "hypercall": {"map_gpa_range": {"gpa": 0, "size": 4096, "to": "shared"}}}]})") ==
          "t.json: /steps/0/vcpu: expected vCPU index 0 (vm.vcpus is 1) or \"all\", got 1");
}

TEST_CASE("step shape: one operation, vcpu only where it runs on a vCPU, parallel groups", "[loader][errors]") {
    CHECK(error_of(with_steps(R"({"close": "vm", "ioctl": {}})")) ==
          "t.json: /steps/0/close: expected one operation per step, got both 'ioctl' and 'close'");
    CHECK(error_of(with_steps(R"({"name": "x"})")) ==
          "t.json: /steps/0: expected a step with one of [ioctl, host, access, hypercall, close, parallel], got none");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "close": "vm"})")) ==
          "t.json: /steps/0/vcpu: expected no 'vcpu' on a close step (only access and hypercall steps run on a vCPU), "
          "got 0");
    CHECK(error_of(with_steps(R"({"access": {"gpa": 0, "size": 64}})")) ==
          "t.json: /steps/0: expected key 'vcpu' (a vCPU index or \"all\"), got an access step without it");
    CHECK(error_of(with_steps(R"({"ioctl": {}})")) ==
          "t.json: /steps/0/ioctl: expected exactly one of [create_guest_memfd, set_user_memory_region2, "
          "set_memory_attributes, set_memory_attributes2, fallocate, pre_fault_memory, memory_encrypt_reg_region, "
          "memory_encrypt_unreg_region, check_extension, get_dirty_log, clear_dirty_log, set_user_memory_region, "
          "snp_launch_start, snp_launch_update, snp_launch_finish, tdx_init_mem_region, tdx_finalize_vm], got an "
          "empty object");
    CHECK(error_of(with_steps(R"({"parallel": [{"close": "vm"}, {"parallel": []}]})")) ==
          "t.json: /steps/0/parallel/1/parallel: expected a step that is not itself parallel inside a parallel group, "
          "got a nested parallel");
    CHECK(error_of(with_steps(R"({"parallel": [{"close": "vm"}]})")) ==
          "t.json: /steps/0/parallel: expected an array of at least two steps, got an array");
    CHECK(error_of(with_steps(R"({"parallel": [{"close": "vm"}, {"close": "vm"}], "expect": {"errno": "ok"}})")) ==
          "t.json: /steps/0/expect: expected expectations on the members of a parallel group, got an object");
    CHECK(error_of(with_steps(R"({"vcpu": 0, "access": {"gpa": 0, "size": 64, "value": 1}})")) ==
          "t.json: /steps/0/access/value: expected a value only on a write access (check reads with expect.bytes), "
          "got 1");
    CHECK(error_of(with_steps(R"({"host": {"read": {"size": 1}}})")) ==
          "t.json: /steps/0/host/read: expected key 'guest_memfd', 'mapping' or 'userspace_addr', got an object with "
          "none");
    CHECK(error_of(with_steps(R"({"host": {"read": {"userspace_addr": 0, "offset": 0, "size": 1}}})")) ==
          "t.json: /steps/0/host/read/offset: expected an offset only with guest_memfd or mapping (userspace_addr is "
          "the address), got 0");
    CHECK(error_of(with_steps(R"({"host": {"read": {"guest_memfd": "g0", "size": 1, "value": 1}}})")) ==
          "t.json: /steps/0/host/read/value: expected one of [guest_memfd, mapping, offset, userspace_addr, size, who], "
          "got 'value'");
    // who: the VMM (EL0) or the host kernel (EL1, through the VMM's address space only).
    CHECK(error_of(with_steps(R"({"host": {"read": {"userspace_addr": 0, "size": 1, "who": "kernel"}}})")) ==
          "<no error>");
    CHECK(error_of(with_steps(R"({"host": {"write": {"userspace_addr": 0, "size": 1, "value": 1, "who": "vmm"}}})")) ==
          "<no error>");
    CHECK(error_of(with_steps(R"({"host": {"read": {"guest_memfd": "g0", "size": 1, "who": "kernel"}}})")) ==
          "t.json: /steps/0/host/read/who: expected \"kernel\" only with userspace_addr, got \"kernel\"");
    CHECK(error_of(with_steps(R"({"host": {"read": {"userspace_addr": 0, "size": 1, "who": "guest"}}})")) ==
          "t.json: /steps/0/host/read/who: expected \"vmm\" or \"kernel\", got \"guest\"");
    CHECK(error_of(with_steps(R"({"host": {"pin": {"userspace_addr": 0, "size": 1, "who": "kernel"}}})")).find(
              "/steps/0/host/pin/who: expected one of") != std::string::npos);
    CHECK(error_of(with_steps(R"({"ioctl": {"set_user_memory_region2": {"slot": 70000, "as_id": 0, "size": 0}}})")) ==
          "t.json: /steps/0/ioctl/set_user_memory_region2/slot: expected a slot id 0..65535 when as_id is given, got "
          "70000");
    CHECK(error_of(R"({"expect": {"metrics": {"Faults Private": 1}}})") ==
          "t.json: /expect/metrics/Faults Private: expected a dotted snake_case metric name, got 'Faults Private'");
    CHECK(error_of(R"({"expect": {"metrics": {"a.b": {"min": 2, "max": 1}}}})") ==
          "t.json: /expect/metrics/a.b: expected min <= max, got min 2 > max 1");
}

TEST_CASE("steps are not checked for alignment or overlap: they test KVM's own answers", "[loader]") {
    const scn::Scenario s = load_scenario_text(with_steps(R"(
        {"ioctl": {"set_user_memory_region2": {"slot": 1, "gpa": "0x1001", "size": 1, "userspace_addr": 3}}},
        {"ioctl": {"set_user_memory_region2": {"slot": 1, "gpa": 0, "size": "2MiB"}}},
        {"ioctl": {"create_guest_memfd": {"size": 0, "flags": "0xffffffffffffffff"}}})"),
                                               "t.json");
    const auto& r = op<scn::SetUserMemoryRegion2>(s.steps[0]).region;
    CHECK(r.gpa == 0x1001);
    CHECK(r.size == 1);
    CHECK(r.userspace_addr == 3);
    CHECK(op<scn::CreateGuestMemfd>(s.steps[2]).gmem.flags == ~0ull);
}

// ---- params resolution ------------------------------------------------------------

TEST_CASE("resolve_params: preset < scenario params < --set, with origins", "[loader][params]") {
    const scn::Scenario s = load_scenario_file(kData + "/good/all_steps.json");
    const ParamSet ps = resolve_params(s, {{"cost.ioctl", "1500"}, {"kvm.config.tdp", "false"}, {"cost.ioctl", "1600"}});
    CHECK(ps.platform() == "sapphire-rapids");
    CHECK(ps.get_int("cost.ioctl") == 1600);
    CHECK(ps.value("cost.ioctl").origin == "--set");
    CHECK(ps.value("cost.ioctl").source == "override");
    CHECK(ps.get_int("mem.l2.size") == 4 << 20);
    CHECK(ps.value("mem.l2.size").origin == "scenario params");
    CHECK_FALSE(ps.get_bool("kvm.config.smm"));
    CHECK(ps.value("kvm.config.smm").origin == "scenario params");
    CHECK_FALSE(ps.get_bool("kvm.config.tdp"));
    CHECK(ps.value("kvm.config.tdp").origin == "--set");
    CHECK(ps.get_int("mem.l1d.size") == 48 << 10);
    CHECK(ps.value("mem.l1d.size").origin == "preset sapphire-rapids");
    CHECK(ps.to_json()["cost.ioctl"] == 1600);

    const ParamSet plain = resolve_params(s, {});
    CHECK(plain.get_int("cost.ioctl") == 1200);
    CHECK(plain.value("cost.ioctl").origin == "scenario params");
}

TEST_CASE("resolve_params: the kernel profile first, explicit kvm.config keys override it", "[loader][params][profile]") {
    // kvm.config.* sorts before kvm.profile: the order of application must not follow the keys.
    const scn::Scenario s = load_scenario_text(
        R"({"params": {"kvm.profile": "inplace", "kvm.config.memory_attributes2": false}})", "t.json");
    const ParamSet ps = resolve_params(s, {});
    CHECK(ps.get_string("kvm.profile") == "inplace");
    CHECK_FALSE(ps.get_bool("kvm.config.vm_memory_attributes"));   // from the profile
    CHECK_FALSE(ps.get_bool("kvm.config.memory_attributes2"));     // explicit, wins
    CHECK(ps.value("kvm.config.memory_attributes2").origin == "scenario params");
    CHECK(ps.kernel_profile_json()["overrides"] == nlohmann::json::array({"kvm.config.memory_attributes2"}));

    // --set kvm.profile replaces the scenario's profile; the scenario's explicit key still wins.
    const ParamSet cli = resolve_params(s, {{"kvm.profile", "linux-7.2"}});
    CHECK(cli.get_string("kvm.profile") == "linux-7.2");
    CHECK(cli.value("kvm.profile").origin == "--set");
    CHECK(cli.get_bool("kvm.config.vm_memory_attributes"));
    CHECK(cli.get_bool("kvm.config.gmem_bind_eexist"));

    const scn::Scenario bad = load_scenario_text(R"({"params": {"cost.ioctl": 5}})", "t.json");
    CHECK_THROWS_WITH(resolve_params(bad, {{"kvm.profile", "inplace2"}}),
                      Catch::StartsWith("--set kvm.profile=inplace2: expected one of [linux-6.18, linux-7.2, inplace]"));
}

TEST_CASE("resolve_params and --set errors", "[loader][params][errors]") {
    const scn::Scenario s = load_scenario_text(R"({"params": {"cost.ioctl": 5}})", "t.json");
    CHECK_THROWS_WITH(resolve_params(s, {{"mmu.l2_tlb.entries", "lots"}}),
                      "--set mmu.l2_tlb.entries=lots: expected an integer 1..1048576, got \"lots\"");
    CHECK_THROWS_WITH(resolve_params(s, {{"mmu.l2_tlb.entrys", "1"}}),
                      "--set mmu.l2_tlb.entrys=1: unknown parameter 'mmu.l2_tlb.entrys' (did you mean "
                      "'mmu.l2_tlb.entries'?)");
    CHECK_THROWS_WITH(resolve_params(s, {{"mem.l1d.size", "1000"}}),
                      "t.json with --set overrides: expected mem.l1d.size to be a non-zero multiple of mem.l1d.ways x "
                      "mem.line_bytes (8 x 64 = 512 bytes), got 1000");
    // A scenario built in code goes through the same checks.
    scn::Scenario bad;
    bad.file = "x.json";
    bad.params["cost.ioctl"] = "-1";
    CHECK_THROWS_WITH(resolve_params(bad, {}), "x.json: /params/cost.ioctl: expected an integer 0..4294967295, got \"-1\"");
    bad.params.clear();
    bad.platform = "m1";
    CHECK_THROWS_WITH(resolve_params(bad, {}), Catch::StartsWith("x.json: /platform: unknown platform 'm1', expected one of ["));

    CHECK(parse_set_option("a.b=c=d") == std::make_pair(std::string("a.b"), std::string("c=d")));
    CHECK(parse_set_option("a.b=") == std::make_pair(std::string("a.b"), std::string("")));
    CHECK_THROWS_WITH(parse_set_option("mmu.l2_tlb.entries"), "--set mmu.l2_tlb.entries: expected KEY=VALUE, got no '='");
    CHECK_THROWS_WITH(parse_set_option("=5"), "--set =5: expected KEY=VALUE, got an empty key");
}

TEST_CASE("errors never span lines", "[loader][errors]") {
    const std::string e = error_of(R"({"name": "ab", "vm": {"type": "x\ny"}})", "dir\nname.json");
    CHECK(e.find('\n') == std::string::npos);
    CHECK(e == "dir name.json: /vm/type: expected one of [default, sw_protected, sev, sev_es, snp, tdx, pkvm], got "
               "\"x\\ny\"");
}

// ---- the shipped scenarios and the schema ----------------------------------------

TEST_CASE("every scenario under scenarios/ loads and resolves its params", "[loader][scenarios]") {
    namespace fs = std::filesystem;
    // Globbed when the test runs, so new scenarios are checked without re-running CMake.
    const fs::path root = HVSIM_SCENARIOS_DIR;
    std::vector<fs::path> files;
    if (fs::exists(root)) {
        for (const auto& e : fs::recursive_directory_iterator(root)) {
            const std::string name = e.path().filename().string();
            if (e.is_regular_file() && e.path().extension() == ".json" &&
                !(name.size() > 12 && name.compare(name.size() - 12, 12, ".schema.json") == 0))
                files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    size_t failed = 0;
    for (const auto& f : files) {
        try {
            const scn::Scenario s = load_scenario_file(f.string());
            resolve_params(s, {});
        } catch (const LoadError& e) {
            ++failed;
            FAIL_CHECK(e.what());
        }
    }
    INFO(files.size() << " scenario files under " << root.string());
    CHECK(failed == 0);
}

TEST_CASE("scenario.schema.json declares the registry's parameters and the loader's names", "[loader][schema]") {
    const std::string path = std::string(HVSIM_SCENARIOS_DIR) + "/scenario.schema.json";
    std::ifstream in(path);
    REQUIRE(in.good());
    const nlohmann::json schema = nlohmann::json::parse(in);
    const auto& props = schema.at("properties").at("params").at("properties");
    CHECK(schema.at("properties").at("params").at("additionalProperties") == false);
    CHECK(props.size() == param_decls().size());
    for (const auto& d : param_decls()) {
        INFO(d.name);
        REQUIRE(props.contains(d.name));
        const auto& p = props.at(d.name);
        CHECK(p.at("description").get<std::string>().rfind(d.description, 0) == 0);
        switch (d.type) {
        case ParamType::integer:
            CHECK(p.at("type") == "integer");
            CHECK(p.value("minimum", INT64_MIN) == d.min);
            CHECK(p.value("maximum", INT64_MAX) == d.max);
            break;
        case ParamType::real: CHECK(p.at("type") == "number"); break;
        case ParamType::boolean: CHECK(p.at("type") == "boolean"); break;
        case ParamType::string: CHECK(p.at("enum") == nlohmann::json(d.choices)); break;
        case ParamType::size:
            CHECK((p.contains("$ref") || p.contains("anyOf")));
            CHECK(p.dump().find("#/$defs/size") != std::string::npos);
            break;
        }
    }
    CHECK(schema.at("properties").at("platform").at("enum") == nlohmann::json(ParamSet::platforms()));
    std::vector<std::string> errnos = {"ok"};
    errnos.insert(errnos.end(), known_errno_names().begin(), known_errno_names().end());
    CHECK(schema.at("$defs").at("expect").at("properties").at("errno").at("enum") == nlohmann::json(errnos));
    CHECK(schema.at("$defs").at("ioctl").at("properties").at("check_extension").at("properties").at("cap").at("anyOf")[0].at(
              "enum") == nlohmann::json(known_capability_names()));
}

TEST_CASE("docs/scenario.md documents every parameter", "[loader][docs]") {
    std::ifstream in(std::string(HVSIM_SCENARIOS_DIR) + "/../docs/scenario.md");
    REQUIRE(in.good());
    const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& d : param_decls()) {
        INFO(d.name);
        CHECK(doc.find("| `" + d.name + "` |") != std::string::npos);
    }
    for (const auto& e : known_errno_names()) CHECK(doc.find("`" + e + "`") != std::string::npos);
    for (const auto& c : known_capability_names()) CHECK(doc.find("`" + c + "`") != std::string::npos);
}

TEST_CASE("numbers beyond a double, control characters and parallel groups sharing a vCPU", "[loader][errors]") {
    CHECK(error_of(R"({"seed": 1e400})") ==
          "t.json: expected numbers within the range of a double (about 1.8e308), got '1e400'");
    // A NUL in the name is refused, and the message is not cut short at it.
    const std::string nul = error_of("{\"name\": \"a\\u0000b\"}");
    CHECK(nul == "t.json: /name: expected a name without control characters, got \"a\\u0000b\"");
    CHECK(nul.find('\0') == std::string::npos);
    // Control characters elsewhere (a key) are shown escaped, on one line.
    const std::string key = error_of("{\"na\\u0000me\": 1}");
    CHECK(key.find('\0') == std::string::npos);
    CHECK_THAT(key, Catch::Contains("'na\\x00me'"));
    CHECK(error_of(with_steps(R"({"parallel": [{"vcpu": 1, "access": {"gpa": 0, "size": 4096}},
                                              {"vcpu": "all", "access": {"gpa": 0, "size": 4096}}]})")) ==
          "t.json: /steps/0/parallel/1/vcpu: expected a vCPU no other member of the parallel group uses, got vCPU 1 "
          "(also used by /steps/0/parallel/0)");
    // Different vCPUs, and host steps beside them, are fine.
    CHECK(error_of(with_steps(R"({"parallel": [{"vcpu": 0, "access": {"gpa": 0, "size": 4096}},
                                              {"vcpu": 1, "access": {"gpa": 0, "size": 4096}},
                                              {"host": {"read": {"userspace_addr": 0, "size": 4096}}}]})")) ==
          "<no error>");
}

TEST_CASE("a scenario file is read up to a limit", "[loader][errors]") {
    CHECK_THROWS_WITH(load_scenario_file("/dev/zero"),
                      "/dev/zero: expected a scenario file of at most 64 MiB, got more (not a scenario?)");
}

TEST_CASE("integral floats read as integers, as scenario.schema.json reads them", "[loader]") {
    // tests/loader/check_schema.py checks the schema accepts this file too.
    const scn::Scenario s = load_scenario_file(kData + "/good/integral_floats.json");
    CHECK(s.seed == 7);
    CHECK(s.vm.vcpus == 2);
    CHECK(s.vm.memslots.at(0).size == 2 * MiB);
    CHECK(s.steps.at(0).vcpus == std::vector<unsigned>{1});
    CHECK(op<scn::Access>(s.steps.at(0)).count == 8);
}

TEST_CASE("loading is linear in the number of steps", "[loader][scale]") {
    // 100,000 steps: the callback parser this replaced rescanned the steps array at every
    // step's end (about 25 s here); linear loading takes well under a second. No timing
    // assertion (the machines are shared): a quadratic loader shows as this test's time.
    std::string steps;
    for (int i = 0; i < 100000; ++i) steps += std::string(i ? "," : "") + R"({"ioctl": {"check_extension": {"cap": 1}}})";
    const scn::Scenario s = load_scenario_text(with_steps(steps), "t.json");
    CHECK(s.steps.size() == 100000);
    // Duplicate keys are still found, with their pointer.
    CHECK(error_of(with_steps(steps + R"(, {"close": "vm", "close": "vm"})")) ==
          "t.json: /steps/100000/close: expected each key once, got 'close' twice");
}

TEST_CASE("named host mappings: mmap id, munmap, accesses through a mapping", "[loader]") {
    const scn::Scenario s = load_scenario_text(with_steps(R"(
        {"host": {"mmap": {"guest_memfd": "g0", "size": "8KiB", "id": "mem"}}},
        {"host": {"write": {"mapping": "mem", "offset": "4KiB", "size": 1, "value": 7}}},
        {"host": {"read": {"mapping": "mem", "size": 1}}, "expect": {"signal": "SIGSEGV"}},
        {"host": {"munmap": {"mapping": "mem", "offset": "4KiB", "size": "4KiB"}}, "expect": {"errno": "ok"}})"),
                                               "t.json");
    REQUIRE(s.steps.size() == 4);
    const auto& m = op<scn::HostAccess>(s.steps[0]);
    CHECK(m.op == scn::HostAccess::Op::mmap);
    CHECK(m.mapping == "mem");
    const auto& w = op<scn::HostAccess>(s.steps[1]);
    CHECK(w.op == scn::HostAccess::Op::write);
    CHECK(w.mapping == "mem");
    CHECK_FALSE(w.guest_memfd.has_value());
    CHECK(w.offset == 4 * KiB);
    CHECK(s.steps[2].expect.signal == "SIGSEGV");
    const auto& u = op<scn::HostAccess>(s.steps[3]);
    CHECK(u.op == scn::HostAccess::Op::munmap);
    CHECK(u.mapping == "mem");
    CHECK(u.offset == 4 * KiB);
    CHECK(u.size == 4 * KiB);
}

TEST_CASE("named host mappings: errors", "[loader][errors]") {
    // A mapping must come from an earlier mmap step (not a later one, not a guest_memfd id).
    CHECK(error_of(with_steps(R"({"host": {"read": {"mapping": "mem", "size": 1}}})")) ==
          "t.json: /steps/0/host/read/mapping: expected a mapping id declared by an earlier host mmap step (none so "
          "far), got \"mem\"");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}},
                                 {"host": {"munmap": {"mapping": "men", "size": 1}}})")) ==
          "t.json: /steps/1/host/munmap/mapping: expected a mapping id declared by an earlier host mmap step [mem], got "
          "\"men\" (did you mean 'mem'?)");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}},
                                 {"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}})")) ==
          "t.json: /steps/1/host/mmap/id: expected a mapping id not used before, got \"mem\" (declared at "
          "/steps/0/host/mmap/id)");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": ""}}})")) ==
          "t.json: /steps/0/host/mmap/id: expected a non-empty mapping id, got \"\"");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}},
                                 {"host": {"read": {"mapping": "mem", "guest_memfd": "g0", "size": 1}}})")) ==
          "t.json: /steps/1/host/read: expected one of guest_memfd (+ offset), mapping (+ offset) or userspace_addr, "
          "got more than one");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}},
                                 {"host": {"munmap": {"mapping": "mem"}}})")) ==
          "t.json: /steps/1/host/munmap: expected key 'size', got an object without it");
    CHECK(error_of(with_steps(R"({"host": {"mmap": {"guest_memfd": "g0", "size": 1, "id": "mem"}}},
                                 {"host": {"munmap": {"mapping": "mem", "size": 1}}, "expect": {"signal": "SIGBUS"}})")) ==
          "t.json: /steps/1/expect/signal: expected an expectation a host munmap step reports [errno], got 'signal'");
}

// The guest_memfd selftest ports go through the mappings their mmap steps return: without
// the mmap step a port does not load (before named mappings, deleting it still passed).
TEST_CASE("a guest_memfd selftest port fails without its mmap steps", "[loader][scenarios]") {
    const std::string dir = std::string(HVSIM_SCENARIOS_DIR) + "/kvm-selftests/";
    for (const char* f : {"guest_memfd-test_mmap-default.json", "guest_memfd-test_mmap-snp-in-place.json",
                          "guest_memfd-test_guest_memfd_guest.json"}) {
        INFO(f);
        std::ifstream in(dir + f);
        REQUIRE(in);
        nlohmann::json j = nlohmann::json::parse(in);
        REQUIRE_NOTHROW(load_scenario_text(j.dump(), f));
        unsigned removed = 0;
        auto& steps = j["steps"];
        for (size_t i = 0; i < steps.size(); ++i) {
            if (!steps[i].contains("host") || !steps[i]["host"].contains("mmap") ||
                !steps[i]["host"]["mmap"].contains("id"))
                continue;
            nlohmann::json cut = j;
            cut["steps"].erase(cut["steps"].begin() + long(i));
            const std::string err = error_of(cut.dump(), f);
            CHECK(err.find("expected a mapping id declared by an earlier host mmap step") != std::string::npos);
            ++removed;
        }
        CHECK(removed >= 1);
    }
}

TEST_CASE("repeat: one step per value, \"$var\" and {var} substituted", "[loader]") {
    const scn::Scenario s = load_scenario_text(with_steps(R"(
        {"name": "before", "close": "vm"},
        {"repeat": {"var": "size", "from": 4094, "to": 4096,
                    "step": {"name": "size {size}, again {size}", "ioctl": {"create_guest_memfd": {"size": "$size"}},
                             "expect": {"errno": "EINVAL"}}}},
        {"repeat": {"var": "off", "from": 7, "to": 7,
                    "step": {"parallel": [{"vcpu": 0, "access": {"gpa": "$off", "size": 1}},
                                          {"ioctl": {"fallocate": {"guest_memfd": "g0", "offset": "$off", "len": 1}}}]}}})"),
                                               "t.json");
    REQUIRE(s.steps.size() == 5);
    CHECK(s.steps[0].name == "before");
    for (uint64_t i = 0; i < 3; ++i) {
        const scn::Step& st = s.steps[1 + i];
        CHECK(st.pointer == "/steps/1/repeat/step");
        CHECK(st.name == fmt::format("size {}, again {}", 4094 + i, 4094 + i));
        CHECK(op<scn::CreateGuestMemfd>(st).gmem.size == 4094 + i);
        CHECK(st.expect.err == "EINVAL");
    }
    const auto& members = op<std::vector<scn::Step>>(s.steps[4]);
    REQUIRE(members.size() == 2);
    CHECK(op<scn::Access>(members[0]).gpa == 7);
    CHECK(op<scn::Fallocate>(members[1]).offset == 7);
    CHECK(members[1].pointer == "/steps/2/repeat/step/parallel/1");
}

TEST_CASE("repeat: errors", "[loader][errors]") {
    const std::string body = R"("step": {"ioctl": {"create_guest_memfd": {"size": "$n"}}})";
    CHECK(error_of(with_steps(R"({"repeat": {"var": "n", "from": 2, "to": 1, )" + body + "}}")) ==
          "t.json: /steps/0/repeat/to: expected a value >= from (2), got 1");
    CHECK(error_of(with_steps(R"({"repeat": {"var": "n", "from": 0, "to": 65536, )" + body + "}}")) ==
          "t.json: /steps/0/repeat/to: expected at most 65536 repetitions, got 65537");
    CHECK(error_of(with_steps(R"({"repeat": {"var": "N", "from": 0, "to": 1, )" + body + "}}")) ==
          "t.json: /steps/0/repeat/var: expected a lower-case identifier ([a-z_][a-z0-9_]*), got \"N\"");
    CHECK(error_of(with_steps(R"({"repeat": {"var": "n", "from": 0, "to": 1}})")) ==
          "t.json: /steps/0/repeat: expected key 'step', got an object without it");
    CHECK(error_of(with_steps(R"({"name": "x", "repeat": {"var": "n", "from": 0, "to": 1, )" + body + "}}")) ==
          "t.json: /steps/0/name: expected one of [repeat], got 'name'");
    CHECK(error_of(with_steps(R"({"repeat": {"var": "n", "from": 0, "to": 1,
                                  "step": {"repeat": {"var": "m", "from": 0, "to": 1, )" + body + "}}}}")) ==
          "t.json: /steps/0/repeat/step/repeat: expected a step that is not itself a repeat, got a nested repeat");
    // A placeholder that names another variable stays a string, and the body's own check fails.
    CHECK(error_of(with_steps(R"({"repeat": {"var": "m", "from": 0, "to": 1, )" + body + "}}")) ==
          "t.json: /steps/0/repeat/step/ioctl/create_guest_memfd/size: expected " + kSizeWhat + ", got \"$n\"");
    // Ids in the body would be declared once per value.
    CHECK(error_of(with_steps(R"({"repeat": {"var": "n", "from": 0, "to": 1,
                                  "step": {"ioctl": {"create_guest_memfd": {"id": "x", "size": "$n"}}}}})")) ==
          "t.json: /steps/0/repeat/step/ioctl/create_guest_memfd/id: expected a guest_memfd id not used before, got "
          "\"x\" (declared at /steps/0/repeat/step/ioctl/create_guest_memfd/id)");
}

TEST_CASE("launch steps: parsed with their defaults, only on their VM type, and no vCPU step before the launch is done",
          "[loader][launch]") {
    auto vm = [](const std::string& type, const std::string& steps, const std::string& extra = "") {
        return R"({"vm": {"type": ")" + type + R"(", "vcpus": 1, "guest_paging": "none")" + extra + R"(,
                   "guest_memfd": [{"id": "g0", "size": "2MiB"}],
                   "memslots": [{"slot": 0, "flags": ["guest_memfd"], "gpa": 0, "size": "2MiB", "guest_memfd": "g0"}]},
                   "steps": [)" + steps + "]}";
    };
    const scn::Scenario s = load_scenario_text(
        vm("snp", R"({"ioctl": {"snp_launch_start": {}}},
                     {"ioctl": {"snp_launch_update": {"gpa": "0x1000", "size": "8KiB", "type": "cpuid", "value": "0x7"}},
                      "expect": {"remaining": 0}},
                     {"ioctl": {"snp_launch_update": {"gpa": 0, "size": 4096, "type": 2}}},
                     {"ioctl": {"snp_launch_finish": {}}, "expect": {"launch_digest": ")" +
                         std::string(96, 'a') + R"("}},
                     {"vcpu": 0, "access": {"gpa": 0, "size": 4096}})"),
        "t.json");
    CHECK(op<scn::Launch>(s.steps[0]).policy == 0x30000);
    const auto& u = op<scn::Launch>(s.steps[1]);
    CHECK(u.op == scn::Launch::Op::snp_launch_update);
    CHECK(u.page_type == 6);
    CHECK(u.value == 7);
    CHECK(u.size == 8192);
    CHECK(op<scn::Launch>(s.steps[2]).page_type == 2);
    CHECK(s.steps[3].expect.launch_digest == std::string(96, 'a'));
    const scn::Scenario t = load_scenario_text(
        vm("tdx", R"({"ioctl": {"tdx_init_mem_region": {"gpa": 0, "size": "4KiB", "measure": false}}},
                     {"ioctl": {"tdx_finalize_vm": {}}})"),
        "t.json");
    CHECK_FALSE(op<scn::Launch>(t.steps[0]).measure);
    CHECK(scn::scenario_has_launch_op(t, scn::Launch::Op::tdx_finalize_vm));

    CHECK(error_of(vm("tdx", R"({"ioctl": {"snp_launch_start": {}}})")) ==
          "t.json: /steps/0/ioctl/snp_launch_start: expected snp_launch_start on an SNP VM (vm.type \"snp\"), got "
          "vm.type \"tdx\"");
    CHECK(error_of(vm("snp", R"({"ioctl": {"snp_launch_start": {}}}, {"vcpu": 0, "access": {"gpa": 0, "size": 4096}},
                               {"ioctl": {"snp_launch_finish": {}}})")) ==
          "t.json: /steps/1: expected no vCPU step before snp_launch_finish (the VMM runs the guest only once its "
          "launch is done), got a vCPU step");
    CHECK_THAT(error_of(vm("tdx", R"({"ioctl": {"tdx_finalize_vm": {}}})",
                           R"(, "accept": "eager", "private": [{"gpa": 0, "size": "2MiB"}])")),
               Catch::Contains("vm.accept \"eager\" accepts at boot"));
    CHECK(error_of(vm("snp", R"({"ioctl": {"snp_launch_finish": {}}, "expect": {"launch_digest": "abc"}})")) ==
          "t.json: /steps/0/expect/launch_digest: expected a SHA-384 digest as 96 lower-case hex digits, got \"abc\"");
    CHECK_THAT(error_of(vm("snp", R"({"ioctl": {"snp_launch_update": {"gpa": 0, "size": 4096, "type": "vmsa"}}})")),
               Catch::Contains("/steps/0/ioctl/snp_launch_update/type: expected one of"));
    CHECK_THAT(error_of(vm("tdx", R"({"ioctl": {"tdx_init_mem_region": {"gpa": 0, "size": 100}}})")),
               Catch::Contains("expected a whole number of 4 KiB pages"));
    CHECK_THAT(error_of(vm("tdx", R"({"ioctl": {"tdx_finalize_vm": {}}, "expect": {"remaining": 0}})")),
               Catch::Contains("reports [errno, launch_digest]"));
}
