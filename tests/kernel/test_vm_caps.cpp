#include <catch2/catch.hpp>

#include "kernel_fixture.hpp"

using namespace hvsim;
using namespace hvsim::kvm;
using namespace hvsim::kvm::test;

TEST_CASE("vm types: every type is created with the default configuration", "[vm]") {
    for (VmType t : kAllVmTypes) {
        Env e(t);
        INFO(vm_type_name(t));
        REQUIRE(e.vmfd == 4);   // /dev/kvm is 3
        REQUIRE(e.kvm->type() == t);
    }
    REQUIRE(Kvm::supported_vm_types(KvmConfig{}) == 0x3f);
}

TEST_CASE("vm types: unsupported types are EINVAL (config bits and dependencies)", "[vm]") {
    auto create = [](KvmConfig c, uint64_t type) {
        PhysMem mem;
        HostPageAllocator alloc(Hpa(0), 1 * GiB);
        KvmCosts costs;
        VmmProcess p(mem, alloc, c, costs);
        CycleCounter ctx;
        return p.ioctl_create_vm(type, ctx);
    };
    KvmConfig c;
    REQUIRE(create(c, 6) == -EINVAL);
    REQUIRE(create(c, 1ull << 8) == -EINVAL);
    c.tdp = false;   // SW_PROTECTED needs the TDP MMU, SEV needs NPT, TDX needs EPT
    REQUIRE(create(c, uapi::KVM_X86_SW_PROTECTED_VM) == -EINVAL);
    REQUIRE(create(c, uapi::KVM_X86_SEV_VM) == -EINVAL);
    REQUIRE(create(c, uapi::KVM_X86_TDX_VM) == -EINVAL);
    REQUIRE(create(c, uapi::KVM_X86_DEFAULT_VM) == 4);
    REQUIRE(Kvm::supported_vm_types(c) == 0x1);
    KvmConfig d;
    d.sev_es = false;   // SNP needs SEV-ES
    REQUIRE(create(d, uapi::KVM_X86_SNP_VM) == -EINVAL);
    REQUIRE(create(d, uapi::KVM_X86_SEV_VM) == 4);
    REQUIRE(Kvm::supported_vm_types(d) == 0b100111);
    KvmConfig p;
    p.pkvm = false;
    REQUIRE(create(p, KVM_VM_TYPE_ARM_PROTECTED) == -EINVAL);
    REQUIRE(create(KvmConfig{}, KVM_VM_TYPE_ARM_PROTECTED) == 4);
}

TEST_CASE("vm types: arch properties per type", "[vm]") {
    struct Row { VmType t; bool priv, prot, prefault; unsigned as_ids; bool ro; };
    const Row rows[] = {
        {VmType::default_vm, false, false, true, 2, true}, {VmType::sw_protected, true, false, true, 1, true},
        {VmType::sev, false, false, true, 2, true},        {VmType::sev_es, false, true, true, 2, false},
        {VmType::snp, true, true, false, 1, false},        {VmType::tdx, true, true, false, 1, false},
        {VmType::pkvm, true, true, false, 1, true},
    };
    for (const Row& r : rows) {
        Env e(r.t);
        INFO(vm_type_name(r.t));
        REQUIRE(e.kvm->has_private_mem() == r.priv);
        REQUIRE(e.kvm->arch().has_protected_state() == r.prot);
        REQUIRE(e.kvm->pre_fault_allowed == r.prefault);
        REQUIRE(e.kvm->kvm_arch_nr_memslot_as_ids() == r.as_ids);
        REQUIRE(e.kvm->kvm_arch_has_readonly_mem() == r.ro);
    }
    KvmConfig nosmm;
    nosmm.smm = false;
    Env e(VmType::default_vm, nosmm);
    REQUIRE(e.kvm->kvm_arch_nr_memslot_as_ids() == 1);
}

TEST_CASE("vm types: names and uapi numbers round-trip", "[vm]") {
    for (VmType t : kAllVmTypes) {
        REQUIRE(vm_type_from_name(vm_type_name(t)) == t);
        REQUIRE(vm_type_from_uapi(vm_type_uapi(t)) == t);
    }
    REQUIRE(vm_type_uapi(VmType::tdx) == 5);
    REQUIRE_FALSE(vm_type_from_name("snp2").has_value());
}

TEST_CASE("check_extension: system scope, default configuration", "[caps]") {
    const KvmConfig c;
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_NR_MEMSLOTS) == 32764);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_USER_MEMORY2) == 1);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_GUEST_MEMFD) == 1);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_GUEST_MEMFD_FLAGS) == 3);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_VM_TYPES) == 0x3f);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_MULTI_ADDRESS_SPACE) == 2);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_EXIT_HYPERCALL) == 0x1000);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_PRE_FAULT_MEMORY) == 1);
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_READONLY_MEM) == 1);
    // Linux 6.18 (the default): per-VM attributes, none on guest_memfd.
    REQUIRE(Kvm::kvm_dev_check_extension(c, uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 8);
    REQUIRE(Kvm::kvm_dev_check_extension(c, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) == 0);
    REQUIRE(Kvm::kvm_dev_check_extension(c, 9999) == 0);
    // In-place conversion: no per-VM attributes, attributes on guest_memfd.
    const KvmConfig ip = inplace_attrs();
    REQUIRE(Kvm::kvm_dev_check_extension(ip, uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 0);
    REQUIRE(Kvm::kvm_dev_check_extension(ip, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) == 8);
}

TEST_CASE("check_extension: the host configuration of docs/ground-truth.md", "[caps]") {
    // kvm_pvm host: no SMM, no SW_PROTECTED/SEV/TDX, no generic attributes, no TDP.
    KvmConfig h = legacy_attrs();
    h.smm = false;
    h.sw_protected_vm = h.sev = h.sev_es = h.snp = h.tdx = h.pkvm = false;
    h.generic_memory_attributes = false;
    h.tdp = false;
    REQUIRE(Kvm::kvm_dev_check_extension(h, uapi::KVM_CAP_MULTI_ADDRESS_SPACE) == 0);
    REQUIRE(Kvm::kvm_dev_check_extension(h, uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 0);
    REQUIRE(Kvm::kvm_dev_check_extension(h, uapi::KVM_CAP_PRE_FAULT_MEMORY) == 0);
    REQUIRE(Kvm::kvm_dev_check_extension(h, uapi::KVM_CAP_VM_TYPES) == 1);
    REQUIRE(Kvm::kvm_dev_check_extension(h, uapi::KVM_CAP_GUEST_MEMFD_FLAGS) == 3);
    Env e(VmType::default_vm, h);
    REQUIRE(e.proc->ioctl_check_extension(e.vmfd, uapi::KVM_CAP_MULTI_ADDRESS_SPACE, e.ctx) == 0);
    REQUIRE(e.proc->ioctl_check_extension(e.vmfd, uapi::KVM_CAP_GUEST_MEMFD_FLAGS, e.ctx) == 3);
    REQUIRE(e.set_attrs(0, 4096, 0) == -ENOTTY);
}

TEST_CASE("check_extension: VM scope depends on the VM type", "[caps]") {
    {
        Env e(VmType::default_vm, legacy_attrs());
        auto ce = [&](int64_t cap) { return e.proc->ioctl_check_extension(e.vmfd, cap, e.ctx); };
        REQUIRE(ce(uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 0);
        REQUIRE(ce(uapi::KVM_CAP_MULTI_ADDRESS_SPACE) == 2);
        REQUIRE(ce(uapi::KVM_CAP_GUEST_MEMFD_FLAGS) == 3);
    }
    {
        Env e(VmType::sw_protected, legacy_attrs());
        auto ce = [&](int64_t cap) { return e.proc->ioctl_check_extension(e.vmfd, cap, e.ctx); };
        REQUIRE(ce(uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 8);
        REQUIRE(ce(uapi::KVM_CAP_MULTI_ADDRESS_SPACE) == 1);
        REQUIRE(ce(uapi::KVM_CAP_GUEST_MEMFD_FLAGS) == 1);   // MMAP only (6.18)
    }
    {
        Env e(VmType::snp);   // in-place conversion: INIT_SHARED allowed for CoCo VMs
        auto ce = [&](int64_t cap) { return e.proc->ioctl_check_extension(e.vmfd, cap, e.ctx); };
        REQUIRE(ce(uapi::KVM_CAP_GUEST_MEMFD_FLAGS) == 3);
        REQUIRE(ce(uapi::KVM_CAP_READONLY_MEM) == 0);
        REQUIRE(ce(uapi::KVM_CAP_MEMORY_ATTRIBUTES) == 0);
        REQUIRE(ce(KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) == 8);
        REQUIRE(ce(uapi::KVM_CAP_PRE_FAULT_MEMORY) == 1);
    }
    {
        Env e(VmType::default_vm);
        REQUIRE(e.proc->ioctl_check_extension(e.vmfd, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, e.ctx) == 0);
        REQUIRE(e.proc->ioctl_check_extension(99, uapi::KVM_CAP_NR_MEMSLOTS, e.ctx) == -EBADF);
        REQUIRE(e.proc->ioctl_check_extension(e.proc->dev_kvm_fd(), uapi::KVM_CAP_NR_MEMSLOTS, e.ctx) == 32764);
    }
}

TEST_CASE("vm types: who says a fault is private", "[vm]") {
    {
        Env e(VmType::snp);
        REQUIRE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(1), PFERR_GUEST_ENC_MASK));
        REQUIRE_FALSE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(1), 0));
    }
    {
        Env e(VmType::tdx);   // MAXPHYADDR 52: GPA bit 51 is the shared bit
        REQUIRE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(1), 0));
        REQUIRE_FALSE(e.kvm->arch().fault_is_private(*e.kvm, Gfn((1ull << 51) >> 12 | 1), 0));
    }
    {
        Env e(VmType::sw_protected, legacy_attrs());
        REQUIRE(e.set_attrs(4096, 4096, PRIV) == 0);
        REQUIRE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(1), 0));
        REQUIRE_FALSE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(2), PFERR_GUEST_ENC_MASK));
    }
    {
        Env e(VmType::default_vm);
        REQUIRE_FALSE(e.kvm->arch().fault_is_private(*e.kvm, Gfn(1), PFERR_GUEST_ENC_MASK));
    }
}

namespace {
bool mentions(const std::vector<std::string>& ws, const std::string& what) {
    for (const auto& w : ws)
        if (w.find(what) != std::string::npos) return true;
    return false;
}
}  // namespace

TEST_CASE("vm types: each backend names the hardware it runs without", "[vm][warnings]") {
    const auto amd = HostPaging::amd_npt, intel = HostPaging::intel_ept;
    // Plain and software-protected VMs need nothing beyond nested paging.
    CHECK(kvm_default_arch_ops(VmType::default_vm).unmodelled(amd).empty());
    CHECK(kvm_default_arch_ops(VmType::default_vm).unmodelled(intel).empty());
    CHECK(kvm_default_arch_ops(VmType::sw_protected).unmodelled(amd).empty());

    const auto snp = kvm_default_arch_ops(VmType::snp).unmodelled(amd);
    REQUIRE(snp.size() == 1);
    CHECK(mentions(snp, "RMP not modelled"));
    CHECK(mentions(snp, "plain-VM exit costs"));
    // SNP on an Intel preset: the vendor mismatch is a warning of its own.
    CHECK(kvm_default_arch_ops(VmType::snp).unmodelled(intel).size() == 2);

    const auto tdx_intel = kvm_default_arch_ops(VmType::tdx).unmodelled(intel);
    REQUIRE(tdx_intel.size() == 1);
    // The secure EPT, the module, its costs, the initial image (KVM_TDX_INIT_MEM_REGION),
    // the TD epochs and the lock contention of SEAMCALLs and ACCEPTs are modelled; what is
    // left is the TD entry's locks, 2M private leaves and the estimated idle-tick
    // serialization (mmu_lock is a lock in simulated time).
    CHECK_FALSE(mentions(tdx_intel, "secure EPT"));
    CHECK_FALSE(mentions(tdx_intel, "KVM_TDX_INIT_MEM_REGION"));
    CHECK_FALSE(mentions(tdx_intel, "epochs"));
    CHECK_FALSE(mentions(tdx_intel, "never contend"));
    CHECK(mentions(tdx_intel, "TDH.VP.ENTER"));
    CHECK_FALSE(mentions(tdx_intel, "mmu_lock"));
    CHECK(mentions(tdx_intel, "DEMOTE"));
    CHECK(mentions(tdx_intel, "tdx.idle_tick_hz"));
    // TDX does not run on an AMD preset at all: refused (requires_host), not warned about.
    CHECK(kvm_default_arch_ops(VmType::tdx).requires_host() == HostPaging::intel_ept);
    CHECK_FALSE(kvm_default_arch_ops(VmType::snp).requires_host());
    CHECK_FALSE(kvm_default_arch_ops(VmType::default_vm).requires_host());

    CHECK(mentions(kvm_default_arch_ops(VmType::pkvm).unmodelled(amd), "stage-2"));
    CHECK(mentions(kvm_default_arch_ops(VmType::sev).unmodelled(amd), "exits cost") == false);
    // SEV memory encryption is modelled (the registered pages pay mem.encrypt_fill_cycles).
    CHECK_FALSE(mentions(kvm_default_arch_ops(VmType::sev).unmodelled(amd), "encryption not modelled"));
    CHECK(mentions(kvm_default_arch_ops(VmType::sev_es).unmodelled(amd), "no #VC / VMGEXIT"));
    // A plain VM on an arm64 preset runs on KVM/arm64's stage 2: nothing missing; a pKVM
    // VM there gets the EL2 model, whose own backend (kernel/arm64/pkvm.hpp, tested in
    // tests/stage2) says what it leaves out, so the built-in one adds nothing.
    CHECK(kvm_default_arch_ops(VmType::default_vm).unmodelled(HostPaging::arm64_stage2).empty());
    CHECK(kvm_default_arch_ops(VmType::pkvm).unmodelled(HostPaging::arm64_stage2).empty());
}
