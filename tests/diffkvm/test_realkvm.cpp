// The real-KVM executor against the host's /dev/kvm: known answers of Linux 6.18
// (checked against a real 6.18 kernel, docs/ground-truth.md), skip semantics, and that a
// run leaves no descriptor or mapping behind. KVM tests skip with a warning without KVM.
#include <catch2/catch.hpp>

#include <cerrno>
#include <dirent.h>
#include <fstream>
#include <string>

#include "kernel/uapi.hpp"
#include "sim/kvm_linux_uapi.hpp"
#include "sim/realkvm.hpp"

using namespace hvsim;
namespace ua = hvsim::uapi;

namespace {

constexpr uint64_t kUaddr = 0x400000000000ull;   // far from anything the loader maps

#define REQUIRE_KVM()                                                                    \
    do {                                                                                 \
        if (!host_kvm_caps().available) {                                                \
            WARN("no usable /dev/kvm, skipped: " << host_kvm_caps().why_not);             \
            return;                                                                      \
        }                                                                                \
    } while (0)

template <class Op>
scn::Step step(Op op, scn::Expect e = {}) {
    static int n = 0;
    scn::Step s;
    s.pointer = "/steps/" + std::to_string(n++);
    s.op = std::move(op);
    s.expect = e;
    return s;
}

scn::GmemDecl gmem(std::string id, uint64_t size, uint64_t flags = 0) {
    scn::GmemDecl g;
    g.id = std::move(id);
    g.size = size;
    g.flags = flags;
    return g;
}

scn::FdRef ref(std::string id) {
    scn::FdRef r;
    r.id = std::move(id);
    return r;
}

scn::FdRef fdkind(scn::FdRef::Kind k) {
    scn::FdRef r;
    r.kind = k;
    return r;
}

scn::MemslotDecl slot(uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size,
                      std::optional<scn::FdRef> g = std::nullopt, uint64_t off = 0) {
    scn::MemslotDecl m;
    m.slot = id;
    m.flags = flags;
    m.gpa = gpa;
    m.size = size;
    m.userspace_addr = kUaddr;
    m.guest_memfd = std::move(g);
    m.guest_memfd_offset = off;
    return m;
}

scn::Step create(std::string id, uint64_t size, uint64_t flags = 0) {
    return step(scn::CreateGuestMemfd {gmem(std::move(id), size, flags)});
}
scn::Step region(scn::MemslotDecl m) { return step(scn::SetUserMemoryRegion2 {m}); }

scn::Step host(scn::HostAccess::Op op, std::optional<scn::FdRef> g, uint64_t off, uint64_t size,
               uint8_t value = 0, std::optional<uint64_t> uaddr = std::nullopt) {
    scn::HostAccess h;
    h.op = op;
    h.guest_memfd = std::move(g);
    h.offset = off;
    h.size = size;
    h.value = value;
    h.userspace_addr = uaddr;
    return step(h);
}

scn::Step fallocate(std::string id, int mode, uint64_t off, uint64_t len) {
    scn::Fallocate f;
    f.guest_memfd = ref(std::move(id));
    f.mode = mode;
    f.offset = off;
    f.len = len;
    return step(f);
}

scn::Step close_vm() {
    scn::Close c;
    c.vm = true;
    return step(c);
}

scn::Step check_ext(int64_t nr, bool vm_scope) {
    scn::CheckExtension c;
    c.cap_nr = nr;
    c.vm_scope = vm_scope;
    return step(c);
}

constexpr int KEEP = ua::falloc::KEEP_SIZE, PUNCH = ua::falloc::PUNCH_HOLE;
constexpr uint64_t MMAP = ua::GUEST_MEMFD_FLAG_MMAP, SHARED = ua::GUEST_MEMFD_FLAG_INIT_SHARED;
constexpr uint32_t GMEM = ua::KVM_MEM_GUEST_MEMFD;

RealRun run(std::vector<scn::Step> steps, std::string type = "default") {
    scn::Scenario s;
    s.name = "test";
    s.vm.type = std::move(type);
    s.steps = std::move(steps);
    return run_uapi_steps_real(s);
}

size_t count_dir(const char* path) {
    size_t n = 0;
    if (DIR* d = opendir(path)) {
        while (readdir(d)) ++n;
        closedir(d);
    }
    return n;
}

size_t count_lines(const char* path) {
    std::ifstream f(path);
    std::string line;
    size_t n = 0;
    while (std::getline(f, line)) ++n;
    return n;
}

}  // namespace

TEST_CASE("ioctl numbers match the 6.18 uAPI", "[uapi]") {
    namespace lu = hvsim::linux_uapi;
    CHECK(sizeof(ua::kvm_userspace_memory_region2) == 160);
    CHECK(lu::KVM_SET_USER_MEMORY_REGION2 == 0x40a0ae49ul);
    CHECK(lu::KVM_SET_USER_MEMORY_REGION == 0x4020ae46ul);
    CHECK(lu::KVM_CREATE_GUEST_MEMFD == 0xc040aed4ul);
    CHECK(lu::KVM_SET_MEMORY_ATTRIBUTES == 0x4020aed2ul);
    CHECK(lu::KVM_PRE_FAULT_MEMORY == 0xc040aed5ul);
    CHECK(lu::KVM_MEMORY_ENCRYPT_REG_REGION == 0x8010aebbul);
    CHECK(lu::ioc(lu::IOC_READ | lu::IOC_WRITE, 0xAE, 0xd4, 64) == 0xc040aed4ul);
}

TEST_CASE("names: VM types and capabilities", "[names]") {
    CHECK(x86_vm_type_number("default") == 0);
    CHECK(x86_vm_type_number("snp") == 4);
    CHECK(x86_vm_type_number("tdx") == 5);
    CHECK(x86_vm_type_number("pkvm") == -1);
    CHECK(cap_number("guest_memfd") == 234);
    CHECK(cap_number("KVM_CAP_GUEST_MEMFD_FLAGS") == 244);
    CHECK(cap_number("pre_fault_memory") == 236);
    CHECK(cap_number("no_such_cap") == -1);
}

TEST_CASE("sim_config_for_host maps a hand-made host to kvm.config overrides", "[config]") {
    HostKvmCaps c;
    c.available = true;
    c.vm_types_mask = 0x1;               // default VM only
    c.guest_memfd = 1;
    c.guest_memfd_flags = 3;              // MMAP | INIT_SHARED
    c.pre_fault_memory = 0;               // no TDP
    c.multi_address_space = 0;            // no SMM
    c.nr_memslots = 32764;
    c.readonly_mem = 1;
    c.exit_hypercall = 0x1000;
    c.set_memory_attributes_ioctl = false;
    c.set_memory_attributes2_ioctl = false;
    c.host_phys_bits = 46;
    c.memlock_limit = 8 << 20;
    using KV = std::vector<std::pair<std::string, std::string>>;
    const KV want = {
        {"kvm.config.smm", "false"},
        {"kvm.config.sw_protected_vm", "false"},
        {"kvm.config.sev", "false"},
        {"kvm.config.sev_es", "false"},
        {"kvm.config.snp", "false"},
        {"kvm.config.tdx", "false"},
        {"kvm.config.generic_memory_attributes", "false"},
        {"kvm.config.memory_attributes2", "false"},
        {"kvm.config.vm_memory_attributes", "true"},
        {"kvm.config.gmem_bind_eexist", "false"},
        {"kvm.config.tdp", "false"},
        {"kvm.config.guest_memfd", "true"},
        {"kvm.config.guest_memfd_mmap", "true"},
        {"kvm.config.guest_memfd_init_shared", "true"},
        {"kvm.config.readonly_mem", "true"},
        {"kvm.config.exit_hypercall", "true"},
        {"kvm.config.nr_memslots", "32764"},
        {"kvm.config.maxphyaddr", "52"},       // shadow paging: 52 whatever the host has
        {"kvm.config.memlock_limit", "8388608"},
    };
    CHECK(sim_config_for_host(c) == want);

    // A TDP host with SMM, SNP and generic attributes: MAXPHYADDR from CPUID.
    c.vm_types_mask = 0x1 | 0x2 | 0x10;
    c.pre_fault_memory = 1;
    c.multi_address_space = 2;
    c.set_memory_attributes_ioctl = true;
    c.guest_memfd_flags = 1;
    c.memlock_limit = 0;
    KV got = sim_config_for_host(c);
    auto get = [&](const std::string& k) {
        for (auto& [key, v] : got)
            if (key == k) return v;
        return std::string("<missing>");
    };
    CHECK(get("kvm.config.smm") == "true");
    CHECK(get("kvm.config.sw_protected_vm") == "true");
    CHECK(get("kvm.config.snp") == "true");
    CHECK(get("kvm.config.sev") == "false");
    CHECK(get("kvm.config.tdp") == "true");
    CHECK(get("kvm.config.maxphyaddr") == "46");
    CHECK(get("kvm.config.generic_memory_attributes") == "true");
    CHECK(get("kvm.config.guest_memfd_init_shared") == "false");
    CHECK(get("kvm.config.memlock_limit") == "0");

    HostKvmCaps none;
    none.why_not = "cannot open /dev/kvm: No such file or directory";
    CHECK(sim_config_for_host(none).empty());
}

TEST_CASE("probe_host_kvm reads a consistent picture of the host", "[kvm]") {
    REQUIRE_KVM();
    const HostKvmCaps& c = host_kvm_caps();
    CHECK(c.api_version == 12);
    CHECK((c.vm_types_mask & 1u) == 1u);           // the default VM always exists
    CHECK(c.nr_memslots == ua::KVM_USER_MEM_SLOTS);
    // kvm_vm_ioctl_check_extension_generic(): no generic attributes -> the cap is 0.
    if (!c.set_memory_attributes_ioctl) {
        CHECK(c.memory_attributes == 0);
        CHECK(c.vm_memory_attributes == 0);
    }
    // A default VM has no private memory: its VM-scope flags equal the system-scope ones.
    CHECK(c.vm_guest_memfd_flags == c.guest_memfd_flags);
    if (!c.guest_memfd) WARN("host KVM has no guest_memfd: most checks below are skipped");
}

TEST_CASE("guest_memfd sizes: 4095 and 0 are EINVAL, 4096 and 2^62 are accepted", "[kvm]") {
    REQUIRE_KVM();
    if (!host_kvm_caps().guest_memfd) return;
    RealRun r = run({create("a", 4095), create("b", 0), create("c", 4096), create("d", 4097),
                     create("e", 1ull << 62), create("f", 1ull << 63)});
    REQUIRE(r.create_vm_err == 0);
    REQUIRE(r.setup_error.empty());
    REQUIRE(r.steps.size() == 6);
    CHECK(r.steps[0].err == EINVAL);
    CHECK(r.steps[1].err == EINVAL);
    CHECK(r.steps[2].err == 0);
    CHECK(r.steps[3].err == EINVAL);
    CHECK(r.steps[4].err == 0);        // no memory is reserved up front
    CHECK(r.steps[5].err == EINVAL);   // negative as loff_t
    for (auto& o : r.steps) CHECK_FALSE(o.skipped);
}

TEST_CASE("guest_memfd flag bits outside KVM_CAP_GUEST_MEMFD_FLAGS are EINVAL", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if (!c.guest_memfd) return;
    std::vector<scn::Step> steps;
    for (int bit = 0; bit < 64; ++bit) steps.push_back(create("g" + std::to_string(bit), 4096, 1ull << bit));
    RealRun r = run(steps);
    REQUIRE(r.steps.size() == 64);
    for (int bit = 0; bit < 64; ++bit) {
        INFO("bit " << bit);
        CHECK(r.steps[bit].err == ((c.vm_guest_memfd_flags >> bit & 1) ? 0 : EINVAL));
    }
}

TEST_CASE("a guest_memfd memslot can only be deleted", "[kvm]") {
    REQUIRE_KVM();
    if (!host_kvm_caps().guest_memfd) return;
    const uint64_t M2 = 2 << 20;
    RealRun r = run({
        create("g", 2 * M2),
        region(slot(0, GMEM, 0, M2, ref("g"))),                    // create
        region(slot(0, 0, 0, M2, ref("g"))),                       // drop GUEST_MEMFD
        region(slot(0, GMEM | ua::KVM_MEM_LOG_DIRTY_PAGES, 0, M2, ref("g"))),
        region(slot(0, GMEM, M2, M2, ref("g"))),                   // move
        region(slot(0, GMEM, 0, M2, ref("g"))),                    // identical
        region(slot(1, GMEM, M2, M2, ref("g"), 0)),                // binding overlap
        region(slot(2, GMEM, 0, M2, ref("g"), M2)),                // gpa overlap
        region(slot(0, 0, 0, 0)),                                  // delete
        region(slot(0, 0, 0, 0)),                                  // delete again: absent
    });
    REQUIRE(r.steps.size() == 10);
    CHECK(r.steps[0].err == 0);
    CHECK(r.steps[1].err == 0);
    CHECK(r.steps[2].err == EINVAL);
    CHECK(r.steps[3].err == EINVAL);
    CHECK(r.steps[4].err == EINVAL);
    CHECK(r.steps[5].err == EINVAL);
    CHECK(r.steps[6].err == EINVAL);
    CHECK(r.steps[7].err == EEXIST);
    CHECK(r.steps[8].err == 0);
    CHECK(r.steps[9].err == EINVAL);
}

TEST_CASE("memslot guest_memfd must be a guest_memfd: kvm/vm/memfd EINVAL, closed fd EBADF", "[kvm]") {
    REQUIRE_KVM();
    if (!host_kvm_caps().guest_memfd) return;
    using K = scn::FdRef::Kind;
    RealRun r = run({
        region(slot(0, GMEM, 0, 4096, fdkind(K::kvm))),
        region(slot(0, GMEM, 0, 4096, fdkind(K::vm))),
        region(slot(0, GMEM, 0, 4096, fdkind(K::memfd))),
        region(slot(0, GMEM, 0, 4096, fdkind(K::invalid))),
        region(slot(0, GMEM, 0, 4096, ref("never-created"))),
    });
    REQUIRE(r.steps.size() == 5);
    CHECK(r.steps[0].err == EINVAL);
    CHECK(r.steps[1].err == EINVAL);
    CHECK(r.steps[2].err == EINVAL);
    CHECK(r.steps[3].err == EBADF);
    CHECK(r.steps[4].err == EBADF);
}

TEST_CASE("memory attributes and SEV regions on a default VM", "[kvm]") {
    REQUIRE_KVM();
    scn::SetMemoryAttributes a;
    a.gpa = 0;
    a.size = 4096;
    a.attributes = ua::KVM_MEMORY_ATTRIBUTE_PRIVATE;
    scn::EncryptRegion e;
    e.addr = kUaddr;
    e.size = 4096;
    RealRun r = run({step(a), step(e)});
    REQUIRE(r.steps.size() == 2);
    // Without CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES the ioctl does not exist; with it,
    // PRIVATE is not a supported attribute of a default VM.
    CHECK(r.steps[0].err == (host_kvm_caps().set_memory_attributes_ioctl ? EINVAL : ENOTTY));
    CHECK(r.steps[1].err == ENOTTY);   // not an SEV guest
}

TEST_CASE("host access through guest_memfd: readback, punch hole, SIGBUS", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if ((c.guest_memfd_flags & (MMAP | SHARED)) != (MMAP | SHARED)) {
        WARN("host guest_memfd lacks MMAP|INIT_SHARED, skipped");
        return;
    }
    using Op = scn::HostAccess::Op;
    RealRun r = run({
        create("g", 2 * 4096, MMAP | SHARED),
        host(Op::read, ref("g"), 0, 4096),             // fresh page reads zeros
        host(Op::write, ref("g"), 0, 2 * 4096, 0x5a),
        host(Op::read, ref("g"), 4096, 4096),
        fallocate("g", KEEP | PUNCH, 0, 4096),
        host(Op::read, ref("g"), 0, 4096),             // punched: zeros again
        host(Op::read, ref("g"), 0, 2 * 4096),         // zeros then 0x5a
        host(Op::read, ref("g"), 2 * 4096, 1),          // beyond EOF
        host(Op::write, ref("g"), 4096, 2 * 4096, 1),   // runs off the end
        create("p", 4096, MMAP),                         // no INIT_SHARED: private
        host(Op::read, ref("p"), 0, 8),
        create("n", 4096, 0),                            // no MMAP at all
        host(Op::read, ref("n"), 0, 8),
        host(Op::mmap, ref("g"), 0, 4096),
    });
    REQUIRE(r.steps.size() == 14);
    CHECK(r.steps[1].bytes == std::optional<uint8_t>(0x00));
    CHECK(r.steps[2].err == 0);
    CHECK_FALSE(r.steps[2].signal);
    CHECK(r.steps[3].bytes == std::optional<uint8_t>(0x5a));
    CHECK(r.steps[4].err == 0);
    CHECK(r.steps[5].bytes == std::optional<uint8_t>(0x00));
    CHECK(r.steps[6].bytes_mixed);
    CHECK_FALSE(r.steps[6].bytes);
    CHECK(r.steps[7].signal == std::optional<std::string>("SIGBUS"));
    CHECK_FALSE(r.steps[7].bytes);
    CHECK(r.steps[8].signal == std::optional<std::string>("SIGBUS"));
    CHECK(r.steps[10].signal == std::optional<std::string>("SIGBUS"));
    CHECK(r.steps[12].err == ENODEV);
    CHECK(r.steps[13].err == 0);
}

TEST_CASE("guest_memfd mmap and fallocate errors", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if (!(c.guest_memfd_flags & MMAP)) return;
    scn::HostAccess priv;
    priv.op = scn::HostAccess::Op::mmap;
    priv.guest_memfd = ref("g");
    priv.size = 4096;
    priv.map_shared = false;
    scn::HostAccess noshared = priv;
    noshared.guest_memfd = ref("s");
    noshared.map_shared = true;
    RealRun r = run({
        create("g", 4 * 4096, MMAP),
        step(priv),                                  // MAP_PRIVATE: EINVAL
        create("s", 4096, c.guest_memfd_flags & SHARED),
        step(noshared),                              // INIT_SHARED without MMAP: ENODEV
        fallocate("g", 0, 0, 4096),                  // mode 0: EOPNOTSUPP
        fallocate("g", 0, 1, 4096),                  // mode before alignment
        fallocate("g", KEEP, 1, 4096),               // unaligned: EINVAL
        fallocate("g", KEEP, 0, 0),                  // len 0: EINVAL
        fallocate("g", KEEP, 4 * 4096, 4096),        // allocate past EOF: EINVAL
        fallocate("g", KEEP | PUNCH, 4 * 4096, 4096),// punch past EOF: fine
        fallocate("g", KEEP, 0, 4 * 4096),
        fallocate("g", PUNCH, 0, 4096),              // punch without KEEP_SIZE
    });
    REQUIRE(r.steps.size() == 12);
    CHECK(r.steps[1].err == EINVAL);
    if (c.guest_memfd_flags & SHARED) CHECK(r.steps[3].err == ENODEV);
    CHECK(r.steps[4].err == EOPNOTSUPP);
    CHECK(r.steps[5].err == EOPNOTSUPP);
    CHECK(r.steps[6].err == EINVAL);
    CHECK(r.steps[7].err == EINVAL);
    CHECK(r.steps[8].err == EINVAL);
    CHECK(r.steps[9].err == 0);
    CHECK(r.steps[10].err == 0);
    CHECK(r.steps[11].err == EOPNOTSUPP);
}

TEST_CASE("after closing the VM fd: VM ioctls EBADF, the guest_memfd keeps working", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if ((c.guest_memfd_flags & (MMAP | SHARED)) != (MMAP | SHARED)) return;
    using Op = scn::HostAccess::Op;
    scn::Close cg;
    cg.guest_memfd = ref("g");
    RealRun r = run({
        create("g", 4096, MMAP | SHARED),
        close_vm(),
        create("h", 4096),
        check_ext(ua::KVM_CAP_GUEST_MEMFD, true),
        check_ext(ua::KVM_CAP_GUEST_MEMFD, false),   // /dev/kvm is still open
        fallocate("g", KEEP, 0, 4096),
        host(Op::write, ref("g"), 0, 4096, 0x11),
        host(Op::read, ref("g"), 0, 4096),
        close_vm(),
        step(cg),
        fallocate("g", KEEP, 0, 4096),
        step(cg),
    });
    REQUIRE(r.steps.size() == 12);
    CHECK(r.steps[1].err == 0);
    CHECK(r.steps[2].err == EBADF);
    CHECK(r.steps[3].err == EBADF);
    CHECK(r.steps[4].err == 0);
    CHECK(r.steps[4].value == std::optional<int64_t>(c.guest_memfd));
    CHECK(r.steps[5].err == 0);
    CHECK(r.steps[7].bytes == std::optional<uint8_t>(0x11));
    CHECK(r.steps[8].err == EBADF);      // closing twice
    CHECK(r.steps[9].err == 0);
    CHECK(r.steps[10].err == EBADF);     // the number stays closed for the rest of the run
    CHECK(r.steps[11].err == EBADF);
}

TEST_CASE("check_extension at VM and system scope", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    scn::CheckExtension by_name;
    by_name.cap = "guest_memfd_flags";
    scn::CheckExtension unknown_name;
    unknown_name.cap = "memory_attributes2";
    RealRun r = run({check_ext(ua::KVM_CAP_NR_MEMSLOTS, true), check_ext(ua::KVM_CAP_MULTI_ADDRESS_SPACE, false),
                     check_ext(9999, true), step(by_name), step(unknown_name)});
    REQUIRE(r.steps.size() == 5);
    CHECK(r.steps[0].value == std::optional<int64_t>(c.nr_memslots));
    CHECK(r.steps[1].value == std::optional<int64_t>(c.multi_address_space));
    CHECK(r.steps[2].value == std::optional<int64_t>(0));   // unknown caps answer 0
    CHECK(r.steps[3].value == std::optional<int64_t>(c.vm_guest_memfd_flags));
    CHECK(r.steps[4].skipped);
    CHECK_THAT(r.steps[4].skip_reason, Catch::Contains("no number"));
}

TEST_CASE("pre-fault validates its arguments before anything else", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if (!c.vcpu_create) {
        WARN("host cannot create a vCPU, skipped");
        return;
    }
    auto pf = [](uint64_t gpa, uint64_t size, uint64_t flags) {
        scn::PreFaultMemory p;
        p.gpa = gpa;
        p.size = size;
        p.flags = flags;
        return step(p);
    };
    RealRun r = run({pf(0, 4096, 1), pf(1, 4096, 0), pf(0, 0, 0), pf(~0ull & ~4095ull, 8192, 0), pf(0, 4096, 0),
                     region(slot(0, 0, 0, 2 << 20)), pf(0, 4096, 0), pf(4 << 20, 4096, 0)});
    REQUIRE(r.steps.size() == 8);
    for (int i = 0; i < 4; ++i) {
        INFO("step " << i);
        CHECK(r.steps[i].err == EINVAL);
    }
    CHECK(r.steps[0].remaining == std::optional<uint64_t>(4096));
    CHECK(r.steps[2].remaining == std::optional<uint64_t>(0));
    CHECK(r.steps[5].err == 0);
    if (!c.pre_fault_memory) {
        // Shadow paging: kvm_arch_vcpu_pre_fault_memory() reloads the MMU before it checks
        // for TDP, and make_mmu_pages_available() has no page budget (n_max_mmu_pages) until
        // the first memslot is committed: ENOSPC. After that: EOPNOTSUPP, no progress.
        CHECK(r.steps[4].err == ENOSPC);
        CHECK(r.steps[4].remaining == std::optional<uint64_t>(4096));
        CHECK(r.steps[6].err == EOPNOTSUPP);
        CHECK(r.steps[6].remaining == std::optional<uint64_t>(4096));
        CHECK(r.steps[7].err == EOPNOTSUPP);
    } else {
        CHECK(r.steps[4].err == ENOENT);   // no memslot at gpa 0
        CHECK(r.steps[6].err == 0);
        CHECK(r.steps[6].remaining == std::optional<uint64_t>(0));
        CHECK(r.steps[7].err == ENOENT);
    }
}

TEST_CASE("memslot limits: slot ids, as_id 2, alignment, wrap", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    auto as = [](uint32_t as_id, scn::MemslotDecl m) {
        m.as_id = as_id;
        return m;
    };
    RealRun r = run({
        region(slot(ua::KVM_USER_MEM_SLOTS - 1, 0, 0, 4096)),
        region(slot(ua::KVM_USER_MEM_SLOTS, 0, 1 << 20, 4096)),
        region(as(2, slot(1, 0, 2 << 20, 4096))),
        region(as(1, slot(1, 0, 2 << 20, 4096))),
        region(slot(2, 0, 4096 + 1, 4096)),
        region(slot(2, 0, ~0ull & ~4095ull, 8192)),
        region(slot(2, 1u << 3, 3 << 20, 4096)),
    });
    REQUIRE(r.steps.size() == 7);
    CHECK(r.steps[0].err == 0);
    CHECK(r.steps[1].err == EINVAL);
    CHECK(r.steps[2].err == EINVAL);
    CHECK(r.steps[3].err == (c.vm_multi_address_space > 1 ? 0 : EINVAL));
    CHECK(r.steps[4].err == EINVAL);
    CHECK(r.steps[5].err == EINVAL);
    CHECK(r.steps[6].err == EINVAL);
}

TEST_CASE("host access through userspace_addr maps anonymous memory on first touch", "[kvm]") {
    REQUIRE_KVM();
    using Op = scn::HostAccess::Op;
    RealRun r = run({
        host(Op::write, std::nullopt, 0, 3 * 4096, 0x77, kUaddr + 4096),
        host(Op::read, std::nullopt, 0, 2 * 4096, 0, kUaddr),           // page 0 fresh, page 1 written
        host(Op::read, std::nullopt, 0, 4096, 0, kUaddr + 3 * 4096),
        host(Op::mmap, std::nullopt, 0, 4096, 0, kUaddr),                // already mapped by the VMM
    });
    REQUIRE(r.steps.size() == 4);
    CHECK(r.steps[0].err == 0);
    CHECK(r.steps[1].bytes_mixed);
    CHECK(r.steps[2].bytes == std::optional<uint8_t>(0x77));
    CHECK(r.steps[3].err == EEXIST);
    // The run unmapped it: a second run sees fresh memory at the same address.
    RealRun again = run({host(Op::read, std::nullopt, 0, 4096, 0, kUaddr + 4096)});
    CHECK(again.steps[0].bytes == std::optional<uint8_t>(0x00));
}

TEST_CASE("steps the host cannot run are skipped with the reason", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    scn::Access acc;
    acc.size = 64;
    scn::MapGpaRange map;
    map.size = 4096;
    scn::HostAccess pin;
    pin.op = scn::HostAccess::Op::pin;
    pin.guest_memfd = ref("g");
    pin.size = 4096;
    scn::SetMemoryAttributes2 a2;
    a2.guest_memfd = ref("g");
    a2.size = 4096;
    scn::Step par;
    par.pointer = "/steps/9";
    par.op = std::vector<scn::Step> {create("p1", 4095), create("p2", 4096)};
    RealRun r = run({step(acc), step(map), step(pin), step(a2), par});
    REQUIRE(r.steps.size() == 6);   // the parallel group contributes its two members
    CHECK(r.steps[0].skipped);
    CHECK(r.steps[0].skip_reason == "guest execution is not compared");
    CHECK(r.steps[1].skip_reason == "guest execution is not compared");
    CHECK_THAT(r.steps[2].skip_reason, Catch::Contains("VFIO"));
    CHECK(r.steps[3].skipped == !c.set_memory_attributes2_ioctl);
    CHECK(r.steps[4].skipped);
    CHECK(r.steps[4].err == EINVAL);   // ran, in order, but not compared
    CHECK(r.steps[5].skipped);
    CHECK(r.steps[5].err == 0);
}

TEST_CASE("a VM type the host cannot create skips every step", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if (c.vm_types_mask & (1u << ua::KVM_X86_SNP_VM)) {
        WARN("host can create SNP VMs, skipped");
        return;
    }
    RealRun r = run({create("g", 4096), check_ext(ua::KVM_CAP_GUEST_MEMFD, true)}, "snp");
    CHECK(r.create_vm_err == EINVAL);
    REQUIRE(r.steps.size() == 2);
    for (auto& o : r.steps) {
        CHECK(o.skipped);
        CHECK(o.skip_reason == "host cannot create VM type snp: EINVAL");
    }
    RealRun p = run({create("g", 4096)}, "pkvm");
    CHECK(p.create_vm_err == 0);
    CHECK_THAT(p.setup_error, Catch::Contains("not an x86 VM type"));
    CHECK(p.steps.at(0).skipped);
}

TEST_CASE("setup failures skip the steps and name the declaration", "[kvm]") {
    REQUIRE_KVM();
    if (!host_kvm_caps().guest_memfd) return;
    scn::Scenario s;
    s.vm.guest_memfd.push_back(gmem("g0", 4095));
    s.steps.push_back(create("x", 4096));
    RealRun r = run_uapi_steps_real(s);
    CHECK(r.setup_error == "vm.guest_memfd[0] 'g0': KVM_CREATE_GUEST_MEMFD: EINVAL");
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].skipped);

    scn::Scenario ok;
    ok.vm.guest_memfd.push_back(gmem("g0", 2 << 20));
    ok.vm.memslots.push_back(slot(0, GMEM, 0, 2 << 20, ref("g0")));
    ok.steps.push_back(region(slot(1, GMEM, 2 << 20, 2 << 20, ref("g0"))));   // binding overlap
    RealRun r2 = run_uapi_steps_real(ok);
    CHECK(r2.setup_error.empty());
    CHECK(r2.steps.at(0).err == EINVAL);
}

TEST_CASE("a run leaves no descriptor or mapping behind", "[kvm]") {
    REQUIRE_KVM();
    const auto& c = host_kvm_caps();
    if ((c.guest_memfd_flags & (MMAP | SHARED)) != (MMAP | SHARED)) return;
    using Op = scn::HostAccess::Op;
    auto steps = [] {
        return std::vector<scn::Step> {
            create("g", 8 * 4096, MMAP | SHARED),
            region(slot(0, GMEM, 0, 8 * 4096, ref("g"))),
            host(Op::mmap, ref("g"), 0, 8 * 4096),
            host(Op::write, ref("g"), 0, 4096, 1),
            host(Op::write, std::nullopt, 0, 4096, 2, kUaddr),
            check_ext(ua::KVM_CAP_GUEST_MEMFD, true),
        };
    };
    run(steps());   // warm up lazily created process state (the probe, Catch2's streams)
    const size_t fds = count_dir("/proc/self/fd");
    const size_t maps = count_lines("/proc/self/maps");
    for (int i = 0; i < 3; ++i) run(steps());
    CHECK(count_dir("/proc/self/fd") == fds);
    CHECK(count_lines("/proc/self/maps") == maps);
}
