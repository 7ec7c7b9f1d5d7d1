// A page-state machine as a Boost.Graph: vertices are the states a page can be in, edges the
// operations that move it (each labelled with the operation's name). The guest_memfd, SEV-SNP
// RMP, TDX secure-EPT and pKVM ownership graphs are built with it: each model checks the
// transitions it makes against its graph, and `hvsim graph` prints the graph as DOT.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace hvsim {

class StateGraph {
public:
    // name(i) names state i of n; each transition t has t.from, t.to (enums) and t.op.
    template <class NameFn, class Transitions>
    StateGraph(int n, NameFn name, const Transitions& transitions) : g_(n) {
        for (int i = 0; i < n; ++i) g_[i].name = name(i);
        for (const auto& t : transitions) boost::add_edge(int(t.from), int(t.to), EdgeProp{t.op}, g_);
    }

    // Staying in a state is always allowed; otherwise the move must be an edge.
    bool allows(int from, int to) const { return from == to || boost::edge(from, to, g_).second; }

    // Written from the graph's own vertices and out-edges (boost::write_graphviz's edge
    // iterator trips a GCC 12 -Wmaybe-uninitialized false positive).
    void write_dot(std::ostream& os, std::string_view graph_name) const {
        os << "digraph " << graph_name << " {\n";
        for (auto [v, vend] = boost::vertices(g_); v != vend; ++v) os << "  " << *v << " [label=\"" << g_[*v].name << "\"];\n";
        for (auto [v, vend] = boost::vertices(g_); v != vend; ++v)
            for (auto [e, eend] = boost::out_edges(*v, g_); e != eend; ++e)
                os << "  " << boost::source(*e, g_) << " -> " << boost::target(*e, g_) << " [label=\"" << g_[*e].op
                   << "\"];\n";
        os << "}\n";
    }

private:
    struct VertexProp {
        std::string name;
    };
    struct EdgeProp {
        std::string op;
    };
    boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, VertexProp, EdgeProp> g_;
};

}  // namespace hvsim
