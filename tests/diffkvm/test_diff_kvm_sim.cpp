// The acceptance check of the ground truth: the simulated KVM (run_uapi_steps_simulated,
// configured like the host by sim_config_for_host) gives the host's answer on every step
// of the committed corpus that the host can run. A failure lists the differing steps.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "sim/diff_kvm.hpp"
#include "sim/realkvm.hpp"

// hvsim_sim links SystemC, whose library calls sc_main; these tests never elaborate.
extern "C" int sc_main(int, char*[]) { return 0; }

TEST_CASE("the simulated KVM agrees with the host's KVM on the corpus", "[kvm][corpus]") {
    using namespace hvsim;
    if (!host_kvm_caps().available) {
        WARN("no usable /dev/kvm, skipped: " << host_kvm_caps().why_not);
        return;
    }
    std::ostringstream out, err;
    const int rc = diff_kvm_main({std::string(HVSIM_SOURCE_DIR) + "/scenarios/diff-kvm"}, false, out, err);
    // Without -v the output lists only the differing steps (and one line per scenario).
    std::istringstream lines(out.str());
    std::string line, differing;
    while (std::getline(lines, line))
        if (line.find("DIFFER") != std::string::npos || line.rfind("diff-kvm:", 0) == 0) differing += line + "\n";
    INFO(differing);
    INFO(err.str());
    CHECK(err.str().empty());
    CHECK(rc == 0);
}
