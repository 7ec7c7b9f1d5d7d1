#include <catch2/catch.hpp>

#include <set>

#include "sim/json_util.hpp"
#include "sim/params.hpp"

using namespace hvsim;
using nlohmann::json;

namespace {
std::string set_error(ParamSet& ps, const std::string& key, const json& v) {
    try {
        ps.set(key, v, "test");
    } catch (const ParamError& e) {
        return e.what();
    }
    return "<no error>";
}
std::string set_text_error(ParamSet& ps, const std::string& key, const std::string& v) {
    try {
        ps.set_from_string(key, v, "--set");
    } catch (const ParamError& e) {
        return e.what();
    }
    return "<no error>";
}
std::string validate_error(const ParamSet& ps) {
    try {
        ps.validate();
    } catch (const ParamError& e) {
        return e.what();
    }
    return "<no error>";
}
constexpr int64_t KiB = 1 << 10, MiB = 1 << 20, GiB = int64_t(1) << 30;
}  // namespace

TEST_CASE("platforms are the three presets", "[params]") {
    CHECK(ParamSet::platforms() == std::vector<std::string>{"zen4-genoa", "sapphire-rapids", "neoverse-n2"});
    CHECK(ParamSet::platform_description("zen4-genoa") ==
          "AMD EPYC 9004 \"Genoa\" (Zen 4), SEV-SNP host (docs/sources.md §2)");
}

TEST_CASE("zen4-genoa carries the values of docs/sources.md §2 and the brief", "[params]") {
    const ParamSet ps = ParamSet::preset("zen4-genoa");
    const std::vector<std::pair<std::string, int64_t>> ints = {
        {"cpu.freq_mhz", 3000}, {"cpu.data_access_cycles", 4}, {"sim.quantum_ns", 1000},
        {"mem.line_bytes", 64}, {"mem.l1d.size", 32 * KiB}, {"mem.l1d.ways", 8}, {"mem.l1d.hit_cycles", 4},
        {"mem.l2.size", 1 * MiB}, {"mem.l2.ways", 8}, {"mem.l2.hit_cycles", 14}, {"mem.llc.size", 32 * MiB},
        {"mem.llc.ways", 16}, {"mem.llc.hit_cycles", 50}, {"mem.dram_cycles", 360},
        {"host.mem_base", 4 * GiB}, {"host.mem_size", 512 * GiB}, {"mmu.nested_levels", 4},
        {"mmu.l1_tlb.entries", 72}, {"mmu.l1_tlb.ways", 72}, {"mmu.l1_tlb.hit_cycles", 0},
        {"mmu.l2_tlb.entries", 3072}, {"mmu.l2_tlb.ways", 12}, {"mmu.l2_tlb.hit_cycles", 7},
        {"mmu.pwc.entries", 64}, {"mmu.pwc.hit_cycles", 2}, {"mmu.ntlb.entries", 32}, {"mmu.ntlb.hit_cycles", 2},
        {"cost.vmexit", 680}, {"cost.vmentry", 680}, {"cost.userspace_exit", 15000}, {"cost.ioctl", 1000},
        {"cost.kvm_mmu_page_fault", 400}, {"cost.gup_fast", 300}, {"cost.page_alloc", 400}, {"cost.zero_4k", 600},
        {"cost.zero_2m", 300000}, {"cost.copy_4k", 700}, {"cost.gmem_get_pfn", 300}, {"cost.spte_write", 40},
        {"cost.sp_alloc", 500}, {"cost.zap_spte", 30}, {"cost.mmu_lock", 60}, {"cost.tlb_flush_local", 300},
        {"cost.tlb_flush_remote_ipi", 3000}, {"cost.attr_update", 400}, {"cost.memslot_update", 5000},
        {"cost.guest_pf", 1500}, {"cost.hypercall", 300}, {"cost.pin_page", 250}, {"cost.clflush_4k", 600},
        {"cost.split_huge_page", 20480}, {"cost.srcu_poll", 100}, {"cost.guest_clear_page", 256}, {"cost.wide_store_line", 4}, {"cost.gmem_create", 8000}, {"cost.page_free", 150}, {"cost.fill_4k", 600},
        {"cost.host_fault", 1500}, {"cost.mmap", 2000}, {"cost.host_unmap_page", 100}, {"cost.wbinvd", 100000},
        {"mmu.pwc.ways", 64}, {"mmu.ntlb.ways", 32}, {"kvm.config.maxphyaddr", 52}, {"kvm.config.nr_memslots", 32764},
        {"kvm.config.memlock_limit", 0},
    };
    for (const auto& [k, v] : ints) {
        INFO(k);
        CHECK(ps.get_int(k) == v);
        CHECK(ps.value(k).origin == "preset zen4-genoa");
    }
    for (const char* k : {"smm", "sw_protected_vm", "generic_memory_attributes", "tdp", "sev", "sev_es", "snp", "tdx",
                          "guest_memfd", "guest_memfd_mmap", "guest_memfd_init_shared", "readonly_mem",
                          "exit_hypercall", "vm_memory_attributes", "pkvm", "quirk_slot_zap_all"}) {
        INFO(k);
        CHECK(ps.get_bool(std::string("kvm.config.") + k));
    }
    // Linux 6.18 by default: per-VM attributes, no KVM_SET_MEMORY_ATTRIBUTES2, EINVAL on a
    // second guest_memfd binding.
    CHECK(ps.get_string("kvm.profile") == "linux-6.18");
    CHECK_FALSE(ps.get_bool("kvm.config.memory_attributes2"));
    CHECK_FALSE(ps.get_bool("kvm.config.gmem_bind_eexist"));
    CHECK_FALSE(ps.get_bool("kvm.config.tdx_page_add_in_map"));   // the 6.18 nr_premapped flow
    CHECK(ps.get_string("mmu.nested_format") == "npt");
    CHECK(ps.get_string("vmm.conversion_policy") == "auto");
    CHECK(param_decls().size() == 165);
    CHECK(ps.value("cost.vmexit").source.rfind("measured round trip, split estimate", 0) == 0);
    CHECK(ps.value("sim.quantum_ns").source == "simulator setting");
    CHECK(ps.value("mem.l2.hit_cycles").source == "estimate (docs/sources.md §2)");
    CHECK(ps.value("cost.ioctl").source == "estimate");
    CHECK(validate_error(ps) == "<no error>");
}

TEST_CASE("every preset has the same keys, a source for each value, and passes validate", "[params]") {
    std::set<std::string> names;
    for (const auto& d : param_decls()) names.insert(d.name);
    CHECK(names.size() == param_decls().size());   // declared once
    for (const auto& p : ParamSet::platforms()) {
        INFO(p);
        const ParamSet ps = ParamSet::preset(p);
        const json j = ps.to_json();
        CHECK(j.size() == names.size());
        for (const auto& n : names) {
            INFO(n);
            CHECK(j.contains(n));
            CHECK_FALSE(ps.value(n).source.empty());
            CHECK(ps.value(n).origin == "preset " + p);
        }
        CHECK(validate_error(ps) == "<no error>");
    }
}

TEST_CASE("sapphire-rapids and neoverse-n2 take their own values, inherit the rest as estimates", "[params]") {
    const ParamSet spr = ParamSet::preset("sapphire-rapids");
    CHECK(spr.get_string("mmu.nested_format") == "ept");
    CHECK(spr.get_int("mem.l1d.size") == 48 * KiB);
    CHECK(spr.get_int("mem.l1d.hit_cycles") == 5);
    CHECK(spr.get_int("mem.l2.size") == 2 * MiB);
    CHECK(spr.get_int("mem.llc.hit_cycles") == 110);
    CHECK(spr.get_int("mem.dram_cycles") == 390);
    CHECK(spr.get_int("mmu.l1_tlb.entries") == 96);
    CHECK(spr.get_int("mmu.l2_tlb.entries") == 2048);
    CHECK(spr.get_int("mmu.l2_tlb.hit_cycles") == 8);
    CHECK(spr.get_int("cost.vmexit") + spr.get_int("cost.vmentry") == 1200);
    CHECK(spr.value("mem.l1d.hit_cycles").source ==
          "measured-by-proxy: chipsandcheese Golden Cove L1D (docs/sources.md §3)");
    // Not given for SPR: the zen4 value, labelled as an estimate for this platform.
    CHECK(spr.get_int("cost.zero_2m") == 300000);
    CHECK(spr.value("cost.zero_2m").source == "estimate (zen4-genoa value; no figure for this platform)");
    // Not hardware: keeps its own source.
    CHECK(spr.value("sim.quantum_ns").source == "simulator setting");

    const ParamSet n2 = ParamSet::preset("neoverse-n2");
    CHECK(n2.get_string("mmu.nested_format") == "stage2");
    CHECK(n2.get_int("mem.l1d.size") == 64 * KiB);
    CHECK(n2.get_int("mem.l2.hit_cycles") == 11);
    CHECK(n2.get_int("mem.llc.hit_cycles") == 150);
    CHECK(n2.get_int("mmu.l1_tlb.entries") == 48);
    CHECK(n2.get_int("mmu.l2_tlb.hit_cycles") == 6);
    // arm64 has its own world switch and TLB maintenance costs; the x86 ones are inherited.
    CHECK(n2.get_int("cost.arm64_guest_exit") + n2.get_int("cost.arm64_guest_entry") == 5000);
    CHECK(n2.value("cost.arm64_dsb_ish").source.find("estimate") == 0);
    CHECK(n2.value("cost.vmexit").source.find("zen4-genoa value") != std::string::npos);
}

TEST_CASE("unknown platform and unknown parameter name a near match", "[params]") {
    CHECK_THROWS_WITH(ParamSet::preset("zen4-genao"),
                      Catch::StartsWith("unknown platform 'zen4-genao' (did you mean 'zen4-genoa'?), expected one of [zen4-genoa"));
    // `hvsim params NAME` prints this message: it lists every preset.
    const std::string all = jsonu::join_list(ParamSet::platforms());
    CHECK_THROWS_WITH(ParamSet::preset("m1"), "unknown platform 'm1', expected one of " + all);
    ParamSet ps = ParamSet::preset("zen4-genoa");
    CHECK(set_error(ps, "mmu.l2_tlb.entrys", 1) ==
          "unknown parameter 'mmu.l2_tlb.entrys' (did you mean 'mmu.l2_tlb.entries'?)");
    CHECK(set_error(ps, "nothing.like.this", 1) == "unknown parameter 'nothing.like.this'");
    CHECK_THROWS_WITH(ps.get_int("cost.vmexits"), "unknown parameter 'cost.vmexits' (did you mean 'cost.vmexit'?)");
}

TEST_CASE("set checks types and ranges", "[params]") {
    ParamSet ps = ParamSet::preset("zen4-genoa");
    CHECK(set_error(ps, "mmu.l2_tlb.entries", "3072") == "expected an integer 1..1048576, got \"3072\"");
    CHECK(set_error(ps, "mmu.l2_tlb.entries", 1.0) == "expected an integer 1..1048576, got 1.0");
    CHECK(set_error(ps, "mem.l1d.ways", 0) == "expected an integer 1..1024, got 0");
    CHECK(set_error(ps, "mem.line_bytes", 48) == "expected a power-of-two integer 16..4096, got 48");
    CHECK(set_error(ps, "cost.ioctl", -5) == "expected an integer 0..4294967295, got -5");
    CHECK(set_error(ps, "cost.ioctl", true) == "expected an integer 0..4294967295, got true");
    CHECK(set_error(ps, "mem.l1d.size", -1) ==
          "expected a size (non-negative integer, \"0x...\" hex string, or \"<n>KiB|MiB|GiB|TiB\"), got -1");
    CHECK(set_error(ps, "mem.l1d.size", 0) == "expected a size >= 1, got 0");
    CHECK(set_error(ps, "host.mem_size", "1536MiB") == "expected a multiple of 1GiB, got \"1536MiB\"");
    CHECK(set_error(ps, "host.mem_size", "0") == "expected a size >= 1GiB, got \"0\"");
    CHECK(set_error(ps, "kvm.config.smm", 1) == "expected true or false, got 1");
    CHECK(set_error(ps, "mmu.nested_format", "EPT") == "expected one of [npt, ept, stage2], got \"EPT\" (did you mean 'ept'?)");
    CHECK(set_error(ps, "mmu.nested_format", 3) == "expected one of [npt, ept, stage2], got 3");
    CHECK(set_error(ps, "kvm.config.nr_memslots", 32765) == "expected an integer 1..32764, got 32765");
    CHECK(set_error(ps, "kvm.config.memlock_limit", "lots") ==
          "expected a size (non-negative integer, \"0x...\" hex string, or \"<n>KiB|MiB|GiB|TiB\"), got \"lots\"");
    // A failed set leaves the old value.
    CHECK(ps.get_int("mem.l1d.ways") == 8);

    ps.set("kvm.config.memlock_limit", "64GiB", "test");
    CHECK(ps.get_u64("kvm.config.memlock_limit") == uint64_t(64) << 30);
    ps.set("kvm.config.memlock_limit", "unlimited", "test");
    CHECK(ps.get_u64("kvm.config.memlock_limit") == 0);
    ps.set("mem.l2.size", "0x400000", "test");
    CHECK(ps.get_int("mem.l2.size") == 4 * MiB);
    ps.set("mmu.nested_format", "ept", "scenario params");
    CHECK(ps.get_string("mmu.nested_format") == "ept");
    CHECK(ps.value("mmu.nested_format").origin == "scenario params");
    CHECK(ps.value("mmu.nested_format").source == "override");
}

TEST_CASE("set_from_string parses the text of --set", "[params]") {
    ParamSet ps = ParamSet::preset("zen4-genoa");
    ps.set_from_string("mmu.l2_tlb.entries", "0x800", "--set");
    CHECK(ps.get_int("mmu.l2_tlb.entries") == 2048);
    ps.set_from_string("kvm.config.tdp", "false", "--set");
    CHECK_FALSE(ps.get_bool("kvm.config.tdp"));
    ps.set_from_string("kvm.config.tdp", "ON", "--set");
    CHECK(ps.get_bool("kvm.config.tdp"));
    ps.set_from_string("mem.llc.size", "64MiB", "--set");
    CHECK(ps.get_int("mem.llc.size") == 64 * MiB);
    ps.set_from_string("kvm.config.memlock_limit", "unlimited", "--set");
    CHECK(ps.get_int("kvm.config.memlock_limit") == 0);
    CHECK(ps.value("mem.llc.size").origin == "--set");
    CHECK(set_text_error(ps, "cost.ioctl", "12x") == "expected an integer 0..4294967295, got \"12x\"");
    CHECK(set_text_error(ps, "cost.ioctl", "-1") == "expected an integer 0..4294967295, got \"-1\"");
    CHECK(set_text_error(ps, "kvm.config.tdp", "maybe") == "expected true or false, got \"maybe\"");
    CHECK(set_text_error(ps, "mem.llc.size", "64MB") ==
          "expected a size suffix KiB, MiB, GiB, TiB or PiB, got \"64MB\" (did you mean 'MiB'?)");
    CHECK(set_text_error(ps, "mmu.nested_format", "nptt") ==
          "expected one of [npt, ept, stage2], got \"nptt\" (did you mean 'npt'?)");
    CHECK(set_text_error(ps, "mmu.l2_tlb.entrys", "1") ==
          "unknown parameter 'mmu.l2_tlb.entrys' (did you mean 'mmu.l2_tlb.entries'?)");
}

TEST_CASE("getters check the declared type", "[params]") {
    const ParamSet ps = ParamSet::preset("zen4-genoa");
    CHECK(ps.get_u64("host.mem_size") == uint64_t(512) << 30);
    CHECK(ps.get_double("cpu.freq_mhz") == 3000.0);
    CHECK_THROWS_WITH(ps.get_bool("cost.ioctl"), "parameter 'cost.ioctl' has type int, read as bool");
    CHECK_THROWS_WITH(ps.get_string("kvm.config.smm"), "parameter 'kvm.config.smm' has type bool, read as string");
    CHECK_THROWS_WITH(ps.get_int("mmu.nested_format"), "parameter 'mmu.nested_format' has type string, read as int");
}

TEST_CASE("validate checks cache geometry, TLB sets and nested levels", "[params]") {
    ParamSet ps = ParamSet::preset("zen4-genoa");
    ps.set("mem.l1d.size", 1000, "test");
    CHECK(validate_error(ps) ==
          "expected mem.l1d.size to be a non-zero multiple of mem.l1d.ways x mem.line_bytes (8 x 64 = 512 bytes), got 1000");
    ps.set("mem.l1d.size", "48KiB", "test");
    CHECK(validate_error(ps) == "<no error>");
    ps.set("mmu.l1_tlb.ways", 7, "test");
    CHECK(validate_error(ps) == "expected mmu.l1_tlb.entries to be a multiple of mmu.l1_tlb.ways (7), got 72");
    ps.set("mmu.l1_tlb.ways", 8, "test");
    ps.set("mmu.nested_levels", 3, "test");
    CHECK(validate_error(ps) == "expected mmu.nested_levels 4 or 5 for mmu.nested_format npt, got 3");
    ps.set("mmu.nested_format", "stage2", "test");
    CHECK(validate_error(ps) == "<no error>");
    ps.set("mmu.nested_levels", 5, "test");
    CHECK(validate_error(ps) == "expected mmu.nested_levels 2..4 for mmu.nested_format stage2, got 5");
}

TEST_CASE("to_json is sorted and stable, describe has every field", "[params]") {
    ParamSet a = ParamSet::preset("zen4-genoa");
    ParamSet b = ParamSet::preset("zen4-genoa");
    a.set("cost.ioctl", 1, "x");
    a.set("cost.ioctl", 1000, "y");
    CHECK(a.to_json().dump() == b.to_json().dump());
    const json j = a.to_json();
    std::string prev;
    for (const auto& [k, v] : j.items()) {
        CHECK(prev < k);
        prev = k;
    }
    CHECK(j.begin().key() == "cache.data");
    CHECK(j["mem.l1d.size"] == 32768);
    CHECK(j["mmu.nested_format"] == "npt");
    CHECK(j["kvm.config.smm"] == true);
    CHECK(j.dump().find("\"cost.clflush_4k\":600,\"cost.copy_4k\":700,") != std::string::npos);

    const json d = a.describe();
    CHECK(d.size() == param_decls().size());
    const json& e = d["mmu.l2_tlb.entries"];
    CHECK(e["value"] == 3072);
    CHECK(e["type"] == "int");
    CHECK(e["unit"] == "entries");
    CHECK(e["description"] == "L2 DTLB entries (4K/2M; 1G kept as 2M)");
    CHECK(e["source"] == "estimate (docs/sources.md §2: Zen 4 L2 DTLB, AMD SOG recalled)");
    CHECK(e["origin"] == "preset zen4-genoa");
    CHECK(d["cost.ioctl"]["origin"] == "y");
    CHECK(d["mem.l1d.size"]["type"] == "size");
}

TEST_CASE("kernel profiles: kvm.profile sets its kvm.config values, later keys override them", "[params][profile]") {
    ParamSet ps = ParamSet::preset("zen4-genoa");
    REQUIRE(kernel_profiles().front().name == "linux-6.18");
    // The defaults are the linux-6.18 profile: setting it changes nothing.
    const json before = ps.to_json();
    ps.set("kvm.profile", "linux-6.18", "test");
    CHECK(ps.to_json() == before);
    CHECK(ps.kernel_profile_json()["overrides"].empty());

    ps.set("kvm.profile", "inplace", "test");
    CHECK_FALSE(ps.get_bool("kvm.config.vm_memory_attributes"));
    CHECK(ps.get_bool("kvm.config.memory_attributes2"));
    CHECK(ps.value("kvm.config.vm_memory_attributes").source == "kvm.profile inplace");
    ps.set_from_string("kvm.profile", "linux-7.2", "--set");
    CHECK(ps.get_bool("kvm.config.vm_memory_attributes"));
    CHECK_FALSE(ps.get_bool("kvm.config.memory_attributes2"));
    CHECK(ps.get_bool("kvm.config.gmem_bind_eexist"));

    // An explicit key after the profile wins and is listed as an override.
    ps.set("kvm.config.gmem_bind_eexist", false, "test");
    const json kp = ps.kernel_profile_json();
    CHECK(kp["name"] == "linux-7.2");
    CHECK(kp["config"]["kvm.config.gmem_bind_eexist"] == false);
    CHECK(kp["overrides"] == json::array({"kvm.config.gmem_bind_eexist"}));

    CHECK(set_error(ps, "kvm.profile", "linux-6.1") ==
          "expected one of [linux-6.18, linux-7.2, inplace], got \"linux-6.1\" (did you mean 'linux-6.18'?)");
    // Every profile names only kvm.config.* keys, and every profile names the same keys.
    for (const auto& p : kernel_profiles()) {
        INFO(p.name);
        REQUIRE(p.values.size() == kernel_profiles().front().values.size());
        for (size_t i = 0; i < p.values.size(); ++i) {
            CHECK(p.values[i].key.rfind("kvm.config.", 0) == 0);
            CHECK(p.values[i].key == kernel_profiles().front().values[i].key);
            CHECK(find_param(p.values[i].key) != nullptr);
        }
    }
}
