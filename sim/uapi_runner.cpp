#include "sim/uapi_runner.hpp"

#include "sim/machine.hpp"
#include "sim/params.hpp"

namespace hvsim {

// No SystemC here: uAPI steps need no simulated time to give their answers, so the
// machine runs them on a plain cycle counter.
UapiRun run_uapi_steps_simulated(const scn::Scenario& s, const ParamSet& params) {
    UapiRun run;
    const MachineConfig mc = machine_config(params, s);
    Machine m(s, mc);
    run.create_vm_err = m.create_vm_err();
    kvm::CycleCounter ctx;
    auto emit = [&](const scn::Step& st) {
        UapiStepResult r;
        r.step = &st;
        if (run.create_vm_err || !run.setup_error.empty()) {
            r.outcome.skipped = true;
            r.outcome.skip_reason = run.create_vm_err ? "VM creation failed" : "VM setup failed";
        } else {
            r.outcome = m.exec_uapi_step(st, ctx);
        }
        run.steps.push_back(std::move(r));
    };
    if (!run.create_vm_err) run.setup_error = m.setup(ctx);
    for (const auto& st : s.steps) {
        if (auto* group = std::get_if<std::vector<scn::Step>>(&st.op))
            for (const auto& member : *group) emit(member);
        else
            emit(st);
    }
    return run;
}

}  // namespace hvsim
