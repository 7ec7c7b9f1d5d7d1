// Confidential-VM launch steps: the VMM's KVM_MEMORY_ENCRYPT_OP calls that build an SEV-SNP
// guest (KVM_SEV_SNP_LAUNCH_START / _UPDATE / _FINISH) or a TD (KVM_TDX_INIT_MEM_REGION,
// KVM_TDX_FINALIZE_VM), as QEMU issues them before the first KVM_RUN.
#include <cerrno>

#include <fmt/format.h>

#include "kernel/error_rule.hpp"
#include "sim/machine.hpp"

namespace hvsim {

namespace {
bool scenario_has_launch(const scn::Scenario& s) {
    using Op = scn::Launch::Op;
    for (Op op : {Op::snp_launch_start, Op::snp_launch_update, Op::snp_launch_finish, Op::tdx_init_mem_region,
                  Op::tdx_finalize_vm})
        if (scn::has_launch_op(s.steps, op)) return true;
    return false;
}
}  // namespace

std::vector<Pfn> Machine::launch_source(uint64_t pages, uint8_t value) {
    std::vector<Pfn> v;
    v.reserve(pages);
    for (uint64_t i = 0; i < pages; ++i) {
        auto p = alloc_.alloc(0);
        if (!p) {
            free_launch_source(v);
            throw std::runtime_error("host memory exhausted for a launch source buffer (raise host.mem_size)");
        }
        mem_.fill(pfn_to_hpa(*p), value, kPageSize);
        v.push_back(*p);
    }
    return v;
}

void Machine::free_launch_source(const std::vector<Pfn>& pages) {
    for (Pfn p : pages) {
        mem_.discard(p);
        alloc_.free(p, 0);
    }
}

StepOutcome Machine::exec_launch(const scn::Launch& op, ExecContext& ctx) {
    using Op = scn::Launch::Op;
    StepOutcome o;
    auto* P = proc_.get();
    if (!P || !P->vm(vm_fd_)) {
        o.err = EBADF;
        return o;
    }
    ctx.charge("ioctl", cfg_.costs.ioctl);
    auto fw_rule = [](int fw) {
        if (fw) kvm::error_rule(-EIO, fw == psp::SEV_RET_INVALID_GUEST_STATE   ? "SEV firmware: INVALID_GUEST_STATE"
                                      : fw == psp::SEV_RET_INVALID_PAGE_STATE ? "SEV firmware: INVALID_PAGE_STATE"
                                      : fw == psp::SEV_RET_INVALID_PAGE_SIZE  ? "SEV firmware: INVALID_PAGE_SIZE"
                                      : fw == psp::SEV_RET_INVALID_PAGE_OWNER ? "SEV firmware: INVALID_PAGE_OWNER"
                                                                               : "SEV firmware error");
    };
    int fw = 0;
    switch (op.op) {
    case Op::snp_launch_start:
    case Op::snp_launch_update:
    case Op::snp_launch_finish: {
        // KVM_MEMORY_ENCRYPT_OP on a VM that is not an SEV guest: -ENOTTY.
        if (!snp_ops_) {
            o.err = ENOTTY;
            return o;
        }
        int r = 0;
        if (op.op == Op::snp_launch_start) {
            r = snp_ops_->snp_launch_start(*kvm_, op.policy, uint32_t(op.flags), fw, ctx);
        } else if (op.op == Op::snp_launch_update) {
            kvm::KvmSevSnpLaunchUpdate u;
            u.gfn_start = gpa_to_gfn(Gpa(op.gpa));
            u.len = op.size;
            u.type = op.page_type;
            u.flags = uint32_t(op.flags);
            const std::vector<Pfn> src = launch_source((op.size + kPageMask) >> kPageShift, op.value);
            r = snp_ops_->snp_launch_update(*kvm_, u, src, fw, ctx);
            free_launch_source(src);
            if (r == 0) o.remaining = u.len;
        } else {
            // One VMSA page per vCPU, allocated with the vCPU (sev_es_init_vmsa()); its
            // register state is not modelled (a zero page).
            std::vector<Pfn> vmsa;
            if (snp_fw_ && snp_fw_->state() == psp::SnpGuestState::launch)
                for (size_t i = 0; i < vcpus_.size(); ++i) {
                    auto p = alloc_.alloc(0);
                    if (!p) throw std::runtime_error("host memory exhausted allocating a VMSA page (raise host.mem_size)");
                    mem_.discard(*p);
                    vmsa.push_back(*p);
                }
            r = snp_ops_->snp_launch_finish(*kvm_, vmsa, uint32_t(op.flags), fw, ctx);
            o.launch_digest = to_hex(snp_fw_->launch_digest());
        }
        if (r == -EIO) fw_rule(fw);
        o.err = r < 0 ? -r : 0;
        return o;
    }
    case Op::tdx_init_mem_region:
    case Op::tdx_finalize_vm: {
        if (!tdx_) {
            o.err = ENOTTY;
            return o;
        }
        int r;
        if (op.op == Op::tdx_init_mem_region) {
            // A vCPU ioctl: the vCPU must exist.
            if (op.vcpu >= vcpus_.size()) {
                o.err = EBADF;
                return o;
            }
            kvm::KvmTdxInitMemRegion reg;
            reg.gpa = op.gpa;
            reg.nr_pages = op.size >> kPageShift;
            const std::vector<Pfn> src = launch_source(reg.nr_pages, op.value);
            r = tdx_->kvm_tdx().tdx_vcpu_init_mem_region(
                reg, src, uint32_t(op.flags) | (op.measure ? kvm::KVM_TDX_MEASURE_MEMORY_REGION : 0u), ctx);
            free_launch_source(src);
            o.remaining = reg.nr_pages << kPageShift;
        } else {
            r = op.flags ? -EINVAL : tdx_->finalize(unsigned(vcpus_.size()), ctx);
            o.launch_digest = to_hex(tdx_->module().mrtd(tdx_->tdr()));
        }
        o.err = r < 0 ? -r : 0;
        return o;
    }
    }
    return o;
}

std::optional<Machine::LaunchMeasurement> Machine::launch_measurement() const {
    // Known from the scenario (expect.metrics is checked against the names before the run).
    if (!scenario_has_launch(scn_)) return std::nullopt;
    LaunchMeasurement m;
    if (snp_fw_) {
        m.kind = "snp_launch_digest";
        m.digest = to_hex(snp_fw_->launch_digest());
        m.final = snp_fw_->state() == psp::SnpGuestState::running;
        m.pages = snp_fw_->stats().launch_updates;
        m.measured_pages = snp_fw_->stats().measured_pages;
        return m;
    }
    if (tdx_) {
        m.kind = "tdx_mrtd";
        m.digest = to_hex(tdx_->module().mrtd(tdx_->tdr()));
        m.final = tdx_->module().op_state(tdx_->tdr()) == tdx::OpState::runnable;
        m.pages = tdx_->module().stats().page_add;
        m.measured_pages = tdx_->module().stats().mr_extend / 16;
        return m;
    }
    return std::nullopt;
}

}  // namespace hvsim
