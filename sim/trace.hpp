// A run's timeline for Perfetto (native TrackEvent protobuf, .pftrace) or the Chrome
// trace-event JSON (.json): a track per vCPU (each step's work, each exit with the KVM steps
// of its fault path nested under it, a flow from the exit to the resume), a track per VMM
// thread (each host step and its charges), the MMU invalidations, and counter tracks sampled
// at step ends (private pages, TLB hit rate and walks per vCPU), sampled page walks per vCPU,
// and the hardware/firmware units' work (hw_slice). Timestamps are simulated time. Bounded: a
// time window, 1-in-N sampling of exits and of walks, and a cap on the events kept.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "models/common/types.hpp"

namespace hvsim {

struct TraceOptions {
    std::string path;                                         // .pftrace / .perfetto-trace, or .json
    uint64_t window_start_ns = 0;                             // events outside the window are dropped
    uint64_t window_end_ns = std::numeric_limits<uint64_t>::max();
    unsigned sample = 1;                                      // record 1 exit in N
    uint64_t max_events = 2'000'000;                          // then exits and walks are dropped (and counted)
    unsigned walk_sample = 64;                                // record 1 page walk in N (0: no walk slices)
};

struct TraceArg {
    std::string key;
    enum class Kind : uint8_t { u64, str, boolean } kind = Kind::u64;
    uint64_t u = 0;
    std::string s;
    static TraceArg num(std::string k, uint64_t v) { return {std::move(k), Kind::u64, v, {}}; }
    static TraceArg text(std::string k, std::string v) { return {std::move(k), Kind::str, 0, std::move(v)}; }
    static TraceArg flag(std::string k, bool v) { return {std::move(k), Kind::boolean, v, {}}; }
};

class Trace {
public:
    Trace(TraceOptions opt, uint64_t period_ps, std::string title);

    // Tracks: threads of the simulated machine, and counters.
    uint32_t thread_track(const std::string& name);
    uint32_t counter_track(const std::string& name, const std::string& unit);

    // A slice [start, start + dur) in cycles; flow_out starts a flow there, flow_in ends one.
    void slice(uint32_t track, std::string_view name, Cycles start, Cycles dur, std::vector<TraceArg> args = {},
               uint64_t flow_out = 0, uint64_t flow_in = 0);
    void counter(uint32_t track, Cycles t, double value);
    uint64_t new_flow_id() { return ++flows_; }

    // Sampling and the size bound, asked before recording an exit's slices or a walk.
    bool want_exit();
    bool want_walk();
    uint64_t dropped_exits() const { return dropped_; }
    uint64_t dropped_walks() const { return dropped_walks_; }

    // Work a thread's step did in hardware or firmware rather than in KVM (a SEAMCALL leaf,
    // an RMP instruction, an EL2 hypercall, a broadcast TLBI): also drawn on a track of that
    // unit under the thread ("vCPU 0: TDX module"), so the hardware's share shows at a glance.
    // Steps are recognised by the names the backends charge them under (hw_unit()).
    void hw_slice(const std::string& thread, std::string_view step, Cycles start, Cycles dur);
    // The unit a step name belongs to ("" for KVM's own work).
    static std::string_view hw_unit(std::string_view step);
    size_t events() const { return evs_.size(); }

    // Writes the file by its extension (atomically); throws std::runtime_error.
    void write() const;
    static bool known_extension(const std::string& path);

private:
    struct Ev {
        enum class Type : uint8_t { slice, counter } type = Type::slice;
        uint32_t track = 0;
        uint32_t name = 0;        // index into names_
        uint64_t ts_ps = 0, dur_ps = 0;
        double value = 0;
        uint64_t flow_out = 0, flow_in = 0;
        std::vector<TraceArg> args;
    };
    struct Track {
        std::string name, unit;
        bool counter = false;
    };
    uint32_t intern(std::string_view s);
    bool in_window(uint64_t start_ps, uint64_t end_ps) const;
    std::string chrome_json() const;
    std::string perfetto_proto() const;

    TraceOptions opt_;
    uint64_t period_ps_;
    std::string title_;
    std::vector<Track> tracks_;
    std::vector<std::string> names_;
    std::map<std::string, uint32_t, std::less<>> name_ids_;
    std::vector<Ev> evs_;
    std::map<std::string, uint32_t, std::less<>> hw_tracks_;   // "thread: unit" -> track
    uint64_t exits_seen_ = 0, dropped_ = 0, flows_ = 0, walks_seen_ = 0, dropped_walks_ = 0;
};

}  // namespace hvsim
