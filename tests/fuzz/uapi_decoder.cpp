#include "tests/fuzz/uapi_decoder.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernel/uapi.hpp"
#include "models/mem/cache.hpp"
#include "models/mmu/mmu.hpp"
#include "sim/loader.hpp"
#include "sim/machine.hpp"

namespace hvsim::fuzz {
namespace {

using json = nlohmann::json;

// Reads bytes from the input; past its end, zeros (so every input decodes).
struct Cursor {
    const uint8_t* p;
    size_t n, i = 0;
    uint8_t byte() { return i < n ? p[i++] : 0; }
    bool done() const { return i >= n; }
    template <class T, size_t N>
    const T& pick(const T (&a)[N]) { return a[byte() % N]; }
};

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
// Aligned values and the misaligned/oversized ones KVM must refuse.
constexpr uint64_t kSizes[] = {0, 1, 4 * KiB, 8 * KiB, 2 * MiB - 4 * KiB, 2 * MiB, 4 * MiB, 16 * MiB, 4 * KiB + 1, 1024 * MiB};
constexpr uint64_t kOffsets[] = {0, 4 * KiB, 2 * MiB - 4 * KiB, 2 * MiB, 6 * MiB, 16 * MiB - 4 * KiB, 16 * MiB, 1, 32 * MiB};
constexpr uint64_t kGmemSizes[] = {2 * MiB, 16 * MiB, 4 * KiB, 32 * MiB};
constexpr uint64_t kUaddrs[] = {0x7f0000000000ull, 0x7f0001000000ull, 0x7f0000001000ull, 0x7f0002000000ull};
constexpr uint64_t kAccessSizes[] = {64, 4 * KiB, 8 * KiB, 64 * KiB};
constexpr uint64_t kHostSizes[] = {1, 64, 4 * KiB, 8 * KiB, 2 * MiB};
constexpr const char* kPolicies[] = {"zero", "preserve", "none"};
constexpr unsigned kMaxSteps = 48;

std::string gmem_id(unsigned i) { return "g" + std::to_string(i); }

}  // namespace

std::string decode_uapi_scenario(const uint8_t* data, size_t size) {
    Cursor c{data, size};
    json s;
    s["name"] = "fuzz-uapi";
    const uint8_t shape = c.byte();
    json params = json::object();
    params["host.thp"] = bool(shape & 0x10);
    // Small caches: the uAPI does not depend on them, and building a 32 MiB LLC model per
    // vCPU for every input would cost more than running it.
    params["mem.l2.size"] = 32 * KiB;
    params["mem.llc.size"] = 64 * KiB;
    json vm;
    vm["vcpus"] = 2;
    vm["guest_paging"] = "none";
    unsigned gmems = 0;
    json slot0 = {{"slot", 0}, {"gpa", 0}, {"size", 16 * MiB}, {"userspace_addr", kUaddrs[0]}};
    switch (shape % 4) {
    case 0:   // a default VM: anonymous memory, no private memory
        vm["type"] = "default";
        break;
    case 1:   // sw_protected with per-VM attributes (Linux today)
    case 2:   // sw_protected with attributes in guest_memfd (in-place conversion)
    case 3:   // SNP
        vm["type"] = shape % 4 == 3 ? "snp" : "sw_protected";
        params["kvm.config.vm_memory_attributes"] = shape % 4 != 2;
        vm["guest_memfd"] = json::array({{{"id", "g0"}, {"size", 16 * MiB},
                                          {"flags", shape % 4 == 2 ? json::array({"mmap"}) : json::array()}}});
        gmems = 1;
        slot0["flags"] = json::array({"guest_memfd"});
        slot0["guest_memfd"] = "g0";
        if (shape & 0x20) vm["private"] = json::array({{{"gpa", 0}, {"size", 2 * MiB}}});
        break;
    }
    vm["memslots"] = json::array({slot0});
    s["params"] = params;
    s["vm"] = vm;

    json steps = json::array();
    auto any_gmem = [&]() { return gmem_id(gmems ? c.byte() % gmems : 0); };
    while (!c.done() && steps.size() < kMaxSteps) {
        const uint8_t op = c.byte();
        json st;
        switch (op % 13) {
        case 0: {
            json flags = json::array();
            const uint8_t f = c.byte();
            if (f & 1) flags.push_back("mmap");
            if (f & 2) flags.push_back("init_shared");
            st["ioctl"]["create_guest_memfd"] = {{"id", gmem_id(gmems++)}, {"size", c.pick(kGmemSizes)}, {"flags", flags}};
            break;
        }
        case 1: {
            const uint8_t f = c.byte();
            json r = {{"slot", f % 3}, {"gpa", c.pick(kOffsets)}, {"size", c.pick(kSizes)},
                      {"userspace_addr", c.pick(kUaddrs)}};
            json flags = json::array();
            if ((f & 4) && gmems) {
                flags.push_back("guest_memfd");
                r["guest_memfd"] = any_gmem();
                r["guest_memfd_offset"] = c.pick(kOffsets);
            }
            if (f & 8) flags.push_back("log_dirty_pages");
            if (f & 16) flags.push_back("readonly");
            r["flags"] = flags;
            st["ioctl"]["set_user_memory_region2"] = r;
            break;
        }
        case 2:
            st["ioctl"]["set_memory_attributes"] = {
                {"gpa", c.pick(kOffsets)}, {"size", c.pick(kSizes)},
                {"attributes", c.byte() & 1 ? json::array({"private"}) : json::array()}};
            break;
        case 3:
            if (!gmems) continue;
            st["ioctl"]["set_memory_attributes2"] = {
                {"guest_memfd", any_gmem()}, {"offset", c.pick(kOffsets)}, {"size", c.pick(kSizes)},
                {"attributes", c.byte() & 1 ? json::array({"private"}) : json::array()},
                {"content_policy", c.pick(kPolicies)}};
            break;
        case 4: {
            if (!gmems) continue;
            const uint8_t m = c.byte() % 3;
            json mode = m == 0 ? json::array() : m == 1 ? json::array({"keep_size", "punch_hole"}) : json::array({"keep_size"});
            st["ioctl"]["fallocate"] = {{"guest_memfd", any_gmem()}, {"mode", mode},
                                        {"offset", c.pick(kOffsets)}, {"len", c.pick(kSizes)}};
            break;
        }
        case 5:
            st["ioctl"]["pre_fault_memory"] = {{"vcpu", 0}, {"gpa", c.pick(kOffsets)}, {"size", c.pick(kSizes)}};
            break;
        case 6:
        case 7: {
            json h = {{"size", c.pick(kHostSizes)}};
            if (gmems && (c.byte() & 1)) {
                h["guest_memfd"] = any_gmem();
                h["offset"] = c.pick(kOffsets);
            } else {
                h["userspace_addr"] = kUaddrs[0] + c.pick(kOffsets);
            }
            if (op % 13 == 6) h["value"] = c.byte();
            st["host"][op % 13 == 6 ? "write" : "read"] = h;
            break;
        }
        case 8:
            if (!gmems) continue;
            st["host"]["mmap"] = {{"guest_memfd", any_gmem()}, {"offset", c.pick(kOffsets)}, {"size", c.pick(kSizes)},
                                  {"shared", bool(c.byte() & 1)}};
            break;
        case 9: {
            json h = {{"userspace_addr", kUaddrs[0] + c.pick(kOffsets)}, {"size", c.pick(kHostSizes)}};
            st["host"][c.byte() & 1 ? "pin" : "unpin"] = h;
            break;
        }
        case 10: {
            const uint8_t f = c.byte();
            json a = {{"gpa", c.pick(kOffsets)}, {"size", c.pick(kAccessSizes)}, {"op", f & 1 ? "write" : "read"}};
            if (f & 1) a["value"] = c.byte();
            if (f & 2) a["private"] = bool(f & 4);
            st["vcpu"] = (f >> 3) & 1;
            st["access"] = a;
            if (f & 0x80) st["expect"] = {{"exit", {{"reason", "memory_fault"}}}};
            break;
        }
        case 11: {
            const uint8_t f = c.byte();
            st["vcpu"] = f & 1;
            st["hypercall"]["map_gpa_range"] = {{"gpa", c.pick(kOffsets)}, {"size", c.pick(kSizes)},
                                                {"to", f & 2 ? "private" : "shared"}};
            break;
        }
        case 12:
            if (!gmems || (c.byte() % 8)) continue;   // rare: most closes end all interest
            st["close"] = {{"guest_memfd", any_gmem()}};
            break;
        }
        steps.push_back(st);
    }
    s["steps"] = steps;
    return s.dump(1);
}

namespace {

[[noreturn]] void finding(const std::string& text, const std::string& what) {
    std::fprintf(stderr, "hvsim fuzz finding: %s\nscenario:\n%s\n", what.c_str(), text.c_str());
    std::abort();
}

// One vCPU's hardware, as the engine wires it (without the SystemC module around it).
struct Cpu {
    std::unique_ptr<CacheHierarchy> cache;
    std::unique_ptr<mmu::Mmu> hw;
};

// A guest access the way models/cpu/vcpu.cpp runs it: translate, hand nested faults to
// the hypervisor, touch the bytes. Bounded so that a hang is a finding, not a slow input.
void run_access(Machine& m, Cpu& cpu, unsigned v, const scn::Access& a, ExecContext& ctx) {
    const bool write = a.op == scn::Access::Op::write;
    const bool enc = a.is_private.value_or(m.kvm() && m.kvm()->has_private_mem() &&
                                           m.kvm()->kvm_mem_is_private(gpa_to_gfn(Gpa(a.gpa))));
    for (uint64_t off = 0; off < a.size; off += kPageSize) {
        const uint64_t gpa = a.gpa + off;
        for (unsigned tries = 0;; ++tries) {
            // A fault the VMM cannot resolve (e.g. its guest_memfd was closed under a bound
            // memslot: KVM keeps answering -EFAULT, the VMM keeps re-entering) livelocks a
            // real VMM too; the vCPU module ends such a run with an error naming the step.
            if (tries == 64) return;
            auto t = cpu.hw->translate(Gva(gpa), write ? mmu::AccessType::write : mmu::AccessType::read, enc);
            if (t.ok()) {
                if (write) m.mem().fill(t.hpa, a.value, std::min<uint64_t>(a.size - off, 64));
                else (void)m.mem().page_if_present(hpa_to_pfn(t.hpa));
                break;
            }
            if (t.status != mmu::TranslateResult::Status::npf) return;
            const auto act = m.handle_npf(v, t.fault_gpa, t.error_code, ctx);
            if (act == cpu::NpfAction::stop) return;
            if (act == cpu::NpfAction::emulated) break;
        }
    }
}

}  // namespace

size_t run_uapi_input(const uint8_t* data, size_t size, bool verbose) {
    const std::string text = decode_uapi_scenario(data, size);
    if (verbose) std::printf("%s\n", text.c_str());
    scn::Scenario s;
    std::unique_ptr<ParamSet> p;
    try {
        s = load_scenario_text(text, "fuzz.json");
        p = std::make_unique<ParamSet>(resolve_params(s, {}));
    } catch (const LoadError& e) {
        if (verbose) std::printf("refused by the loader: %s\n", e.what());
        return 0;
    }
    size_t ran = 0;
    const char* phase = "setup";
    try {
        const MachineConfig mc = machine_config(*p, s);
        Machine m(s, mc);
        if (m.create_vm_err()) return 0;
        CycleCounter ctx;
        if (auto why = m.setup(ctx); !why.empty()) {
            if (verbose) std::printf("setup refused: %s\n", why.c_str());
            return 0;
        }
        std::vector<Cpu> cpus(s.vm.vcpus);
        for (unsigned v = 0; v < s.vm.vcpus; ++v) {
            cpus[v].cache = std::make_unique<CacheHierarchy>(mc.mem);
            cpus[v].hw = std::make_unique<mmu::Mmu>(mc.mmu, m.mem(), *cpus[v].cache);
            m.attach_vcpu(v, *cpus[v].hw);
        }
        if (auto bad = m.check_invariants()) finding(text, "invariant violated after setup: " + *bad);
        for (const auto& st : s.steps) {
            phase = st.pointer.c_str();
            if (auto* a = std::get_if<scn::Access>(&st.op)) {
                for (unsigned v : st.vcpus) {
                    m.arm_vcpu(v, st.expect.exit.has_value());
                    run_access(m, cpus[v], v, *a, ctx);
                    (void)m.take_exit(v);
                }
            } else if (auto* h = std::get_if<scn::MapGpaRange>(&st.op)) {
                for (unsigned v : st.vcpus) {
                    m.arm_vcpu(v, st.expect.exit.has_value());
                    uint64_t ret = 0;
                    m.handle_hypercall(v, uapi::KVM_HC_MAP_GPA_RANGE, h->gpa, h->size >> kPageShift,
                                       h->to_private ? uapi::KVM_MAP_GPA_RANGE_ENCRYPTED
                                                     : uapi::KVM_MAP_GPA_RANGE_DECRYPTED,
                                       &ret, ctx);
                    (void)m.take_exit(v);
                }
            } else {
                (void)m.exec_uapi_step(st, ctx);
            }
            ++ran;
            if (auto bad = m.check_invariants())
                finding(text, fmt::format("invariant violated after step {}: {}", st.pointer, *bad));
        }
    } catch (const std::exception& e) {
        finding(text, fmt::format("model exception at {}: {}", phase, e.what()));
    }
    return ran;
}

}  // namespace hvsim::fuzz
