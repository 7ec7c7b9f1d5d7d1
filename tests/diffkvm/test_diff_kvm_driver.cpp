// The diff-kvm driver: step comparison, formatting, file collection, and whole runs
// against the real loader and /dev/kvm. The simulated side here is a stand-in that
// answers every step with its `expect` (so a scenario whose expectations are the host's
// answers agrees, and a wrong one differs); the real simulated KVM is the lead's
// run_uapi_steps_simulated(), linked into the hvsim binary instead of this file.
#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "sim/diff_kvm.hpp"
#include "sim/params.hpp"
#include "sim/realkvm.hpp"
#include "sim/uapi_runner.hpp"

using namespace hvsim;
namespace fs = std::filesystem;

namespace {

int errno_from_name(const std::string& n) {
    static const std::map<std::string, int> m = {
        {"ok", 0},        {"EINVAL", EINVAL}, {"EEXIST", EEXIST}, {"EFAULT", EFAULT},         {"EAGAIN", EAGAIN},
        {"ENOMEM", ENOMEM}, {"ENOTTY", ENOTTY}, {"ENODEV", ENODEV}, {"EOPNOTSUPP", EOPNOTSUPP}, {"EBADF", EBADF},
        {"ENOENT", ENOENT}, {"ENOSPC", ENOSPC}, {"EIO", EIO},       {"EPERM", EPERM},
    };
    return m.at(n);
}

// What the stand-in saw, so tests can check the host configuration reached it.
std::optional<bool> g_seen_smm, g_seen_tdp;

}  // namespace

namespace hvsim {

// Stand-in simulated KVM: each step answers its `expect`; VM types follow kvm.config.
UapiRun run_uapi_steps_simulated(const scn::Scenario& s, const ParamSet& p) {
    g_seen_smm = p.get_bool("kvm.config.smm");
    g_seen_tdp = p.get_bool("kvm.config.tdp");
    UapiRun r;
    const std::string key = s.vm.type == "sw_protected" ? "kvm.config.sw_protected_vm" : "kvm.config." + s.vm.type;
    if (s.vm.type != "default" && s.vm.type != "pkvm" && !p.get_bool(key)) r.create_vm_err = EINVAL;
    for (const FlatStep& f : flatten_steps(s.steps)) {
        UapiStepResult res;
        res.step = f.step;
        const scn::Expect& e = f.step->expect;
        StepOutcome& o = res.outcome;
        if (r.create_vm_err) {
            o.skipped = true;
            o.skip_reason = "VM not created";
        }
        if (std::holds_alternative<scn::Access>(f.step->op)) {
            o.skipped = true;
            o.skip_reason = "not a uAPI step";
        }
        if (e.err) o.err = errno_from_name(*e.err);
        o.value = e.value;
        o.remaining = e.remaining;
        o.signal = e.signal;
        o.bytes = e.bytes;
        r.steps.push_back(res);
    }
    return r;
}

}  // namespace hvsim

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/hvsim-diffkvm-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string write(const std::string& name, const std::string& text) const {
        fs::path p = path / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p.string();
    }
};

StepOutcome ok() { return {}; }
StepOutcome fail(int e) {
    StepOutcome o;
    o.err = e;
    return o;
}

const char* kAgree = R"({
  "name": "agree",
  "vm": {"type": "default"},
  "steps": [
    {"ioctl": {"create_guest_memfd": {"id": "a", "size": 4095}}, "expect": {"errno": "EINVAL"}},
    {"ioctl": {"create_guest_memfd": {"id": "b", "size": "4KiB"}}, "expect": {"errno": "ok"}},
    {"vcpu": 0, "access": {"gpa": 0, "size": 64, "op": "read"}}
  ]
})";

const char* kDiffer = R"({
  "name": "differ",
  "steps": [
    {"ioctl": {"create_guest_memfd": {"id": "a", "size": 4096}}, "expect": {"errno": "EINVAL"}}
  ]
})";

}  // namespace

TEST_CASE("compare_outcomes: equal outcomes agree, any field differing differs", "[driver]") {
    CHECK(compare_outcomes(ok(), ok()).verdict == Verdict::agree);
    CHECK(compare_outcomes(fail(EINVAL), fail(EINVAL)).verdict == Verdict::agree);
    StepVerdict d = compare_outcomes(fail(EINVAL), ok());
    CHECK(d.verdict == Verdict::differ);
    CHECK(d.why == "err EINVAL vs ok");

    StepOutcome v3 = ok(), v2 = ok();
    v3.value = 3;
    v2.value = 2;
    CHECK(compare_outcomes(v3, v3).verdict == Verdict::agree);
    CHECK(compare_outcomes(v3, v2).why == "value 3 vs 2");
    CHECK(compare_outcomes(v3, ok()).why == "value 3 vs none");   // success must report the same fields

    StepOutcome bus = ok(), zeros = ok(), fives = ok(), mixed = ok();
    bus.signal = "SIGBUS";
    zeros.bytes = 0;
    fives.bytes = 0x5a;
    mixed.bytes_mixed = true;
    CHECK(compare_outcomes(bus, bus).verdict == Verdict::agree);
    CHECK(compare_outcomes(zeros, bus).why == "signal none vs SIGBUS");
    CHECK(compare_outcomes(zeros, fives).why == "bytes 0x00 vs 0x5a");
    CHECK(compare_outcomes(mixed, fives).verdict == Verdict::differ);
    StepOutcome mixed_with_value = mixed;   // a value next to "mixed" means nothing
    mixed_with_value.bytes = 0x33;
    CHECK(compare_outcomes(mixed_with_value, mixed).verdict == Verdict::agree);

    // A failed call's out-fields only count when both sides report them.
    StepOutcome pf_sim = fail(EOPNOTSUPP), pf_real = fail(EOPNOTSUPP);
    pf_real.remaining = 0x1000;
    CHECK(compare_outcomes(pf_sim, pf_real).verdict == Verdict::agree);
    pf_sim.remaining = 0;
    CHECK(compare_outcomes(pf_sim, pf_real).why == "remaining 0x0 vs 0x1000");
}

TEST_CASE("compare_outcomes: a step the host or simulator skipped is SKIP, never AGREE", "[driver]") {
    StepOutcome real_skip = ok();
    real_skip.skipped = true;
    real_skip.skip_reason = "guest execution is not compared";
    StepVerdict v = compare_outcomes(ok(), real_skip);
    CHECK(v.verdict == Verdict::skip);
    CHECK(v.why == "guest execution is not compared");
    StepOutcome sim_skip = ok();
    sim_skip.skipped = true;
    sim_skip.skip_reason = "not modelled";
    v = compare_outcomes(sim_skip, ok());
    CHECK(v.verdict == Verdict::skip);
    CHECK(v.why == "simulator: not modelled");
}

TEST_CASE("format_outcome and describe_step", "[driver]") {
    CHECK(format_outcome(ok()) == "ok");
    CHECK(format_outcome(fail(EINVAL)) == "EINVAL");
    StepOutcome o = ok();
    o.value = 3;
    CHECK(format_outcome(o) == "value=3");
    o = ok();
    o.bytes = 0x5a;
    CHECK(format_outcome(o) == "bytes=0x5a");
    o = ok();
    o.signal = "SIGBUS";
    CHECK(format_outcome(o) == "SIGBUS");
    o = fail(EOPNOTSUPP);
    o.remaining = 0x1000;
    CHECK(format_outcome(o) == "EOPNOTSUPP remaining=0x1000");
    o.skipped = true;
    CHECK(format_outcome(o) == "skipped");

    scn::Step st;
    scn::MemslotDecl m;
    m.slot = 0;
    m.flags = 4;
    m.size = 0x200000;
    scn::FdRef g;
    g.id = "g0";
    m.guest_memfd = g;
    st.op = scn::SetUserMemoryRegion2 {m};
    CHECK(describe_step(st) == "set_user_memory_region2 slot=0 flags=0x4 gpa=0x0 size=0x200000 gmem=g0+0x0");
    m.flags = 0;
    m.as_id = 1;
    st.op = scn::SetUserMemoryRegion2 {m};
    CHECK(describe_step(st) == "set_user_memory_region2 slot=1:0 flags=0x0 gpa=0x0 size=0x200000");
    scn::Fallocate f;
    f.guest_memfd = g;
    f.mode = 3;
    f.len = 4096;
    st.op = f;
    CHECK(describe_step(st) == "fallocate gmem=g0 mode=0x3 offset=0x0 len=0x1000");
    scn::CheckExtension c;
    c.cap = "guest_memfd";
    c.cap_nr = 234;
    c.vm_scope = false;
    st.op = c;
    CHECK(describe_step(st) == "check_extension guest_memfd (234) scope=system");
}

TEST_CASE("collect_scenario_files: recursive, sorted, schema files skipped, missing paths reported", "[driver]") {
    TempDir d;
    d.write("b.json", "{}");
    d.write("sub/a.json", "{}");
    d.write("scenario.schema.json", "{}");
    d.write("notes.txt", "");
    std::vector<std::string> missing;
    auto files = collect_scenario_files({d.path.string(), (d.path / "nope").string()}, missing);
    REQUIRE(files.size() == 2);
    CHECK(files[0] == (d.path / "b.json").string());
    CHECK(files[1] == (d.path / "sub/a.json").string());
    REQUIRE(missing.size() == 1);
    CHECK(missing[0] == (d.path / "nope").string());
}

TEST_CASE("diff-kvm without a usable /dev/kvm: every scenario SKIP, exit 0", "[driver]") {
    TempDir d;
    d.write("agree.json", kAgree);
    d.write("differ.json", kDiffer);
    HostKvmCaps none;
    none.why_not = "cannot open /dev/kvm: No such file or directory";
    std::ostringstream out, err;
    CHECK(diff_kvm_run({d.path.string()}, false, none, out, err) == 0);
    CHECK(out.str() ==
          "diff-kvm: no usable /dev/kvm (cannot open /dev/kvm: No such file or directory): every scenario is SKIP\n"
          "diff-kvm: 2 scenarios, 0 agree, 0 differ, 2 skipped\n");
    CHECK(err.str().empty());
}

TEST_CASE("diff-kvm: agreeing and differing scenarios, exit code 1 on DIFFER", "[driver][kvm]") {
    if (!host_kvm_caps().available || !host_kvm_caps().guest_memfd) {
        WARN("no usable /dev/kvm with guest_memfd, skipped: " << host_kvm_caps().why_not);
        return;
    }
    TempDir d;
    const std::string agree = d.write("agree.json", kAgree);
    const std::string differ = d.write("differ.json", kDiffer);
    std::ostringstream out, err;
    CHECK(diff_kvm_main({agree}, true, out, err) == 0);
    const std::string text = out.str();
    CHECK_THAT(text, Catch::Contains("agree (" + agree + "): AGREE (3 agree, 0 differ, 1 skipped)"));
    CHECK_THAT(text, Catch::Contains("create_guest_memfd id=a size=0xfff flags=0x0"));
    CHECK_THAT(text, Catch::Contains("SKIP (guest execution is not compared)"));
    CHECK_THAT(text, Catch::Contains("simulated kvm.config for this host: kvm.config.smm="));
    CHECK_THAT(text, Catch::EndsWith("diff-kvm: 1 scenarios, 1 agree, 0 differ, 0 skipped\n"));
    // The host's configuration reached the simulated side.
    CHECK(g_seen_smm == std::optional<bool>(host_kvm_caps().multi_address_space > 1));
    CHECK(g_seen_tdp == std::optional<bool>(host_kvm_caps().pre_fault_memory != 0));

    // Without -v only the differing steps are listed.
    std::ostringstream out2, err2;
    CHECK(diff_kvm_main({d.path.string()}, false, out2, err2) == 1);
    const std::string quiet = out2.str();
    CHECK_THAT(quiet, Catch::Contains("differ (" + differ + "): DIFFER (1 agree, 1 differ, 0 skipped)"));
    CHECK_THAT(quiet, Catch::Contains("create_guest_memfd id=a size=0x1000 flags=0x0  EINVAL     ok    DIFFER (err EINVAL vs ok)"));
    CHECK_THAT(quiet, !Catch::Contains("size=0xfff"));
    CHECK_THAT(quiet, !Catch::Contains("kvm.config.smm="));
    CHECK_THAT(quiet, Catch::EndsWith("diff-kvm: steps: 4 agree, 1 differ, 1 skipped\n"
                                      "diff-kvm: 2 scenarios, 1 agree, 1 differ, 0 skipped\n"));
    CHECK(err2.str().empty());
}

TEST_CASE("diff-kvm: a VM type the host cannot create", "[driver][kvm]") {
    const auto& c = host_kvm_caps();
    if (!c.available || (c.vm_types_mask & (1u << 4))) {
        WARN("needs a /dev/kvm without SNP, skipped");
        return;
    }
    TempDir d;
    const std::string f = d.write("snp.json", R"({"vm": {"type": "snp"},
        "steps": [{"ioctl": {"create_guest_memfd": {"id": "a", "size": 4096}}}]})");
    std::ostringstream out, err;
    CHECK(diff_kvm_main({f}, true, out, err) == 0);
    // Both sides fail KVM_CREATE_VM (the simulated side because kvm.config.snp=false).
    CHECK_THAT(out.str(), Catch::Contains("snp (" + f + "): AGREE (1 agree, 0 differ, 1 skipped)"));
    CHECK_THAT(out.str(), Catch::Contains("SKIP (host cannot create VM type snp: EINVAL)"));
}

TEST_CASE("diff-kvm: bad input exits 2 with the loader's one-line error", "[driver]") {
    TempDir d;
    const std::string bad = d.write("bad.json", R"({"nmae": "x"})");
    std::ostringstream out, err;
    const HostKvmCaps& host = host_kvm_caps();
    int rc = diff_kvm_run({bad, (d.path / "missing.json").string()}, false, host, out, err);
    if (!host.available) {
        CHECK(rc == 2);   // the missing path is bad input even without KVM
        return;
    }
    CHECK(rc == 2);
    CHECK_THAT(err.str(), Catch::Contains(bad + ": /nmae: "));
    CHECK_THAT(err.str(), Catch::Contains("(did you mean 'name'?)"));
    CHECK_THAT(err.str(), Catch::Contains("missing.json: no such file or directory"));
    CHECK_THAT(out.str(), Catch::Contains("diff-kvm: 1 files did not load"));
    CHECK_THAT(out.str(), Catch::EndsWith("diff-kvm: 0 scenarios, 0 agree, 0 differ, 0 skipped\n"));
}

TEST_CASE("the committed corpus loads and runs on the host", "[driver][kvm][corpus]") {
    std::vector<std::string> missing;
    auto files = collect_scenario_files({std::string(HVSIM_SOURCE_DIR) + "/scenarios/diff-kvm"}, missing);
    CHECK(missing.empty());
    CHECK(files.size() >= 200);
    if (!host_kvm_caps().available) {
        WARN("no usable /dev/kvm, corpus run skipped");
        return;
    }
    std::ostringstream out, err;
    int rc = diff_kvm_main({std::string(HVSIM_SOURCE_DIR) + "/scenarios/diff-kvm"}, false, out, err);
    CHECK(err.str().empty());
    CHECK(rc != 2);   // the stand-in answers the default configuration: DIFFERs are expected here
}
