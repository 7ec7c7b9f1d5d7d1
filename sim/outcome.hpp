// What one uAPI step did, in a form both the simulated KVM and the host's real KVM
// produce, so `diff-kvm` can compare them field by field and expectations can check them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace hvsim {

struct StepOutcome {
    int err = 0;                              // 0 or the errno the call failed with
    std::optional<int64_t> value;             // check_extension
    std::optional<uint64_t> error_offset;     // set_memory_attributes2
    std::optional<uint64_t> remaining;        // pre_fault_memory: size left
    std::optional<std::string> signal;        // "SIGBUS" / "SIGSEGV" for a host access that faulted
    std::optional<uint8_t> bytes;             // host read: the byte value when all bytes are equal
    bool bytes_mixed = false;                 // host read: bytes differ from each other
    std::optional<std::vector<uint64_t>> dirty;   // get_dirty_log: slot-relative pages that were dirty
    std::optional<std::string> launch_digest; // snp_launch_finish / tdx_finalize_vm: SHA-384 in hex
    bool skipped = false;                     // the step could not run here
    std::string skip_reason;
    std::string why;                          // the rule that failed, when the simulated KVM names one
};

}  // namespace hvsim
