#include "models/rmp/rmp_state_graph.hpp"

#include "models/common/state_graph.hpp"

#include <sstream>
#include <stdexcept>

namespace hvsim::rmp {

namespace {
using S = RmpPageState;

const StateGraph& graph() {
    static const StateGraph g(kNumRmpPageStates, [](int i) { return rmp_page_state_name(RmpPageState(i)); },
                              rmp_page_transitions());
    return g;
}
}  // namespace

const char* rmp_page_state_name(RmpPageState s) {
    switch (s) {
    case S::hypervisor: return "hypervisor";
    case S::guest_invalid: return "guest_invalid";
    case S::guest_valid: return "guest_valid";
    case S::pre_guest: return "pre_guest";
    case S::firmware: return "firmware";
    case S::reclaim: return "reclaim";
    }
    return "?";
}

RmpPageState rmp_page_state(const RmpEntry& e) {
    if (!e.assigned) return S::hypervisor;
    if (e.asid == 0) return e.immutable ? S::firmware : S::reclaim;
    if (e.immutable) return S::pre_guest;
    return e.validated ? S::guest_valid : S::guest_invalid;
}

// The edges follow the SEV firmware's page-state table and APM vol. 2 §15.36: RMPUPDATE
// assigns and releases (clearing Validated), PVALIDATE flips Validated, firmware commands
// move launch and firmware pages. PSMASH and RMPADJUST change no page's state.
const std::vector<RmpTransition>& rmp_page_transitions() {
    static const std::vector<RmpTransition> t = {
        {S::hypervisor, S::guest_invalid, "rmpupdate_assign"},
        {S::hypervisor, S::pre_guest, "rmpupdate_assign_immutable"},
        {S::hypervisor, S::firmware, "rmpupdate_assign_immutable"},
        {S::hypervisor, S::reclaim, "rmpupdate_assign"},
        {S::guest_invalid, S::guest_valid, "pvalidate_1"},
        {S::guest_valid, S::guest_invalid, "pvalidate_0"},
        {S::guest_valid, S::guest_invalid, "rmpupdate_reassign"},
        {S::guest_invalid, S::hypervisor, "rmpupdate_shared"},
        {S::guest_valid, S::hypervisor, "rmpupdate_shared"},
        {S::reclaim, S::hypervisor, "rmpupdate_shared"},
        {S::guest_invalid, S::pre_guest, "rmpupdate_assign_immutable"},
        {S::pre_guest, S::guest_valid, "snp_launch_update"},
        {S::pre_guest, S::guest_invalid, "snp_page_reclaim"},
        {S::firmware, S::reclaim, "snp_page_reclaim"},
    };
    return t;
}

bool rmp_check_transition(RmpPageState from, RmpPageState to) { return graph().allows(int(from), int(to)); }

void rmp_assert_transition(RmpPageState from, RmpPageState to, const char* where) {
    if (!rmp_check_transition(from, to))
        throw std::logic_error(std::string("RMP page-state transition ") + rmp_page_state_name(from) + " -> " +
                               rmp_page_state_name(to) + " is not an edge (" + where + ")");
}

std::string rmp_page_state_dot() {
    std::ostringstream os;
    graph().write_dot(os, "snp_page");
    return os.str();
}

}  // namespace hvsim::rmp
