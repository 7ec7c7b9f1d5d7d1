// The page-state graph of one secure-EPT entry of a TD that is not migrating: vertices are
// the S-EPT states, edges the leaves that move an entry between them (TDX module 1.5
// seamcall_sept_state_lookup / tdcall_sept_state_lookup and the handlers' effects),
// built with Boost.Graph. TdxModule checks every entry write against it; `hvsim graph tdx`
// prints it as DOT.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "models/tdx/tdx_module.hpp"

namespace hvsim::tdx {

struct SeptTransition {
    SeptState from, to;
    const char* op;
};
const std::vector<SeptTransition>& sept_transitions();
// True iff from -> to is an edge (from == to always: the state did not change).
bool sept_check_transition(SeptState from, SeptState to);
std::string sept_state_dot();

}  // namespace hvsim::tdx
