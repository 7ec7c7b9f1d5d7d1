#include "models/tdx/sept_state_graph.hpp"

#include <boost/graph/adjacency_list.hpp>
#include <sstream>

namespace hvsim::tdx {

namespace {

struct VertexProp {
    std::string name;
};
struct EdgeProp {
    std::string op;
};
using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, VertexProp, EdgeProp>;
using S = SeptState;
constexpr int kStates = 8;

const Graph& graph() {
    static const Graph g = [] {
        Graph gr(kStates);
        for (int i = 0; i < kStates; ++i) gr[i].name = sept_state_name(SeptState(i));
        for (const SeptTransition& t : sept_transitions()) boost::add_edge(int(t.from), int(t.to), EdgeProp{t.op}, gr);
        return gr;
    }();
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

bool sept_check_transition(SeptState from, SeptState to) {
    return from == to || boost::edge(int(from), int(to), graph()).second;
}

std::string sept_state_dot() {
    const Graph& g = graph();
    std::ostringstream os;
    os << "digraph tdx_sept_entry {\n";
    for (auto [v, vend] = boost::vertices(g); v != vend; ++v) os << "  " << *v << " [label=\"" << g[*v].name << "\"];\n";
    for (auto [v, vend] = boost::vertices(g); v != vend; ++v)
        for (auto [e, eend] = boost::out_edges(*v, g); e != eend; ++e)
            os << "  " << boost::source(*e, g) << " -> " << boost::target(*e, g) << " [label=\"" << g[*e].op
               << "\"];\n";
    os << "}\n";
    return os.str();
}

}  // namespace hvsim::tdx
