#include "models/tdx/sept_state_graph.hpp"

#include "models/common/state_graph.hpp"

#include <sstream>

namespace hvsim::tdx {

namespace {

using S = SeptState;
constexpr int kStates = 8;

const StateGraph& graph() {
    static const StateGraph g(kStates, [](int i) { return sept_state_name(SeptState(i)); }, sept_transitions());
    return g;
}
}  // namespace

const std::vector<SeptTransition>& sept_transitions() {
    static const std::vector<SeptTransition> t = {
        {S::free, S::nl_mapped, "TDH.MEM.SEPT.ADD"},
        {S::free, S::mapped, "TDH.MEM.PAGE.ADD"},
        {S::free, S::pending, "TDH.MEM.PAGE.AUG"},
        {S::removed, S::pending, "TDH.MEM.PAGE.AUG"},
        {S::nl_mapped, S::nl_blocked, "TDH.MEM.RANGE.BLOCK"},
        {S::mapped, S::blocked, "TDH.MEM.RANGE.BLOCK"},
        {S::pending, S::pending_blocked, "TDH.MEM.RANGE.BLOCK"},
        {S::nl_blocked, S::nl_mapped, "TDH.MEM.RANGE.UNBLOCK"},
        {S::blocked, S::mapped, "TDH.MEM.RANGE.UNBLOCK"},
        {S::pending_blocked, S::pending, "TDH.MEM.RANGE.UNBLOCK"},
        {S::mapped, S::free, "TDH.MEM.PAGE.REMOVE"},
        {S::blocked, S::free, "TDH.MEM.PAGE.REMOVE"},
        {S::pending, S::free, "TDH.MEM.PAGE.REMOVE"},
        {S::pending_blocked, S::free, "TDH.MEM.PAGE.REMOVE"},
        {S::nl_mapped, S::free, "TDH.MEM.SEPT.REMOVE"},
        {S::nl_blocked, S::free, "TDH.MEM.SEPT.REMOVE"},
        {S::mapped, S::nl_mapped, "TDH.MEM.PAGE.DEMOTE"},
        {S::blocked, S::nl_mapped, "TDH.MEM.PAGE.DEMOTE"},
        {S::pending, S::nl_mapped, "TDH.MEM.PAGE.DEMOTE"},
        {S::pending_blocked, S::nl_mapped, "TDH.MEM.PAGE.DEMOTE"},
        {S::nl_mapped, S::mapped, "TDH.MEM.PAGE.PROMOTE"},
        {S::nl_blocked, S::mapped, "TDH.MEM.PAGE.PROMOTE"},
        {S::nl_mapped, S::pending, "TDH.MEM.PAGE.PROMOTE"},
        {S::nl_blocked, S::pending, "TDH.MEM.PAGE.PROMOTE"},
        {S::pending, S::mapped, "TDG.MEM.PAGE.ACCEPT"},
    };
    return t;
}

bool sept_check_transition(SeptState from, SeptState to) { return graph().allows(int(from), int(to)); }

std::string sept_state_dot() {
    std::ostringstream os;
    graph().write_dot(os, "tdx_sept_entry");
    return os.str();
}

}  // namespace hvsim::tdx
