// Why the last failing call failed. Linux returns only an errno; the simulated KVM also
// records the rule that produced it (and the Linux function it comes from), so a user's
// message can say which check failed and, where the kernel configuration decides, which
// kvm.config.* parameter changes it. A failing check returns error_rule(-EINVAL, "...");
// sim/ reads the rule right after the call that failed (take_error_rule()).
#pragma once

#include <string>

namespace hvsim::kvm {

// The simulation runs its SystemC threads as coroutines on one host thread: one slot for
// the whole process is enough, and a call's rule is read before the next call.
inline std::string& last_error_rule() {
    static std::string rule;
    return rule;
}

// Records `rule` and returns `err` (a negative errno), for `return error_rule(-EINVAL, ...)`.
inline int error_rule(int err, const char* rule) {
    last_error_rule() = rule;
    return err;
}

// The rule of the last failure, cleared: "" when the failing path recorded none.
inline std::string take_error_rule() {
    std::string r;
    r.swap(last_error_rule());
    return r;
}

inline void clear_error_rule() { last_error_rule().clear(); }

}  // namespace hvsim::kvm
