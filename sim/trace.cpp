#include "sim/trace.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sim/paths.hpp"

namespace hvsim {

Trace::Trace(TraceOptions opt, uint64_t period_ps, std::string title)
    : opt_(std::move(opt)), period_ps_(period_ps), title_(std::move(title)) {
    if (opt_.sample == 0) opt_.sample = 1;
}

bool Trace::known_extension(const std::string& p) {
    auto ends = [&](std::string_view s) { return p.size() >= s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0; };
    return ends(".json") || ends(".pftrace") || ends(".perfetto-trace");
}

uint32_t Trace::thread_track(const std::string& name) {
    tracks_.push_back({name, "", false});
    return uint32_t(tracks_.size() - 1);
}

uint32_t Trace::counter_track(const std::string& name, const std::string& unit) {
    tracks_.push_back({name, unit, true});
    return uint32_t(tracks_.size() - 1);
}

uint32_t Trace::intern(std::string_view s) {
    if (auto it = name_ids_.find(s); it != name_ids_.end()) return it->second;
    names_.emplace_back(s);
    const auto id = uint32_t(names_.size() - 1);
    name_ids_.emplace(std::string(s), id);
    return id;
}

bool Trace::in_window(uint64_t start_ps, uint64_t end_ps) const {
    const uint64_t ws = opt_.window_start_ns, we = opt_.window_end_ns;
    const uint64_t s_ns = start_ps / 1000, e_ns = end_ps / 1000;
    return e_ns >= ws && s_ns <= we;
}

bool Trace::want_exit() {
    if (exits_seen_++ % opt_.sample != 0) return false;
    if (evs_.size() >= opt_.max_events) {
        ++dropped_;
        return false;
    }
    return true;
}

bool Trace::want_walk() {
    if (opt_.walk_sample == 0 || walks_seen_++ % opt_.walk_sample != 0) return false;
    if (evs_.size() >= opt_.max_events) {
        ++dropped_walks_;
        return false;
    }
    return true;
}

std::string_view Trace::hw_unit(std::string_view step) {
    auto starts = [&](std::string_view p) { return step.substr(0, p.size()) == p; };
    // TDX module leaves: host SEAMCALLs (TDH.*) and guest TDCALLs (TDG.*), kernel/vmx/.
    if (starts("tdh_") || starts("tdg_")) return "TDX module";
    // AMD's RMP instructions (kernel/svm/sev_snp.cpp, the guest's PVALIDATE/RMPADJUST).
    if (step == "rmpupdate" || step == "psmash" || step == "pvalidate" || step == "rmpadjust" || step == "rmpquery")
        return "RMP";
    // The AMD Secure Processor's firmware commands (SNP_LAUNCH_*).
    if (starts("snp_launch_")) return "AMD-SP firmware";
    // pKVM's hypervisor at EL2 (kernel/arm64/pkvm*.cpp names its work "pkvm: ...").
    if (starts("pkvm: ")) return "EL2 (pKVM)";
    // Broadcast TLB maintenance on arm64 (kernel/arm64/kvm_pgtable.cpp).
    if (starts("tlbi: ")) return "TLBI";
    return {};
}

void Trace::hw_slice(const std::string& thread, std::string_view step, Cycles start, Cycles dur) {
    const std::string_view unit = hw_unit(step);
    if (unit.empty()) return;
    const std::string key = thread + ": " + std::string(unit);
    auto it = hw_tracks_.find(key);
    if (it == hw_tracks_.end()) it = hw_tracks_.emplace(key, thread_track(key)).first;
    slice(it->second, step, start, dur);
}

void Trace::slice(uint32_t track, std::string_view name, Cycles start, Cycles dur, std::vector<TraceArg> args,
                  uint64_t flow_out, uint64_t flow_in) {
    const uint64_t s = start * period_ps_, d = dur * period_ps_;
    if (!in_window(s, s + d) || evs_.size() >= opt_.max_events + 4096) return;   // slack for an exit in progress
    Ev e;
    e.track = track;
    e.name = intern(name);
    e.ts_ps = s;
    e.dur_ps = d;
    e.flow_out = flow_out;
    e.flow_in = flow_in;
    e.args = std::move(args);
    evs_.push_back(std::move(e));
}

void Trace::counter(uint32_t track, Cycles t, double value) {
    const uint64_t s = t * period_ps_;
    if (!in_window(s, s) || evs_.size() >= opt_.max_events + 4096) return;
    Ev e;
    e.type = Ev::Type::counter;
    e.track = track;
    e.ts_ps = s;
    e.value = value;
    evs_.push_back(std::move(e));
}

namespace {

std::string jstr(const std::string& s) { return nlohmann::json(s).dump(); }

// Protocol-buffer wire format (proto2): varints, tags, length-delimited fields.
struct Pb {
    std::string b;
    void varint(uint64_t v) {
        while (v >= 0x80) {
            b.push_back(char(uint8_t(v) | 0x80));
            v >>= 7;
        }
        b.push_back(char(v));
    }
    void tag(unsigned field, unsigned wire) { varint((uint64_t(field) << 3) | wire); }
    void u64(unsigned field, uint64_t v) {
        tag(field, 0);
        varint(v);
    }
    void i64(unsigned field, int64_t v) { u64(field, uint64_t(v)); }
    void fixed64(unsigned field, uint64_t v) {
        tag(field, 1);
        for (int i = 0; i < 8; ++i) b.push_back(char(uint8_t(v >> (8 * i))));
    }
    void f64(unsigned field, double d) {
        uint64_t v;
        std::memcpy(&v, &d, 8);
        fixed64(field, v);
    }
    void bytes(unsigned field, const std::string& s) {
        tag(field, 2);
        varint(s.size());
        b += s;
    }
};

// perfetto.protos field numbers (protos/perfetto/trace/trace_packet.proto, track_event/*.proto).
namespace pf {
constexpr unsigned kTracePacket = 1;                                        // Trace.packet
constexpr unsigned kTimestamp = 8, kSeqId = 10, kTrackEvent = 11, kSeqFlags = 13, kTrackDescriptor = 60;
constexpr unsigned kTdUuid = 1, kTdName = 2, kTdProcess = 3, kTdThread = 4, kTdParent = 5, kTdCounter = 8;
constexpr unsigned kPdPid = 1, kPdName = 6;                                 // ProcessDescriptor
constexpr unsigned kThPid = 1, kThTid = 2, kThName = 5;                     // ThreadDescriptor
constexpr unsigned kCdUnitName = 6;                                         // CounterDescriptor.unit_name
constexpr unsigned kTeDebug = 4, kTeType = 9, kTeTrack = 11, kTeName = 23, kTeCounter = 30, kTeDoubleCounter = 44,
                   kTeFlow = 47, kTeTermFlow = 48;
constexpr unsigned kDaBool = 2, kDaUint = 3, kDaString = 6, kDaName = 10;   // DebugAnnotation
constexpr uint64_t kSliceBegin = 1, kSliceEnd = 2, kCounterType = 4;
constexpr uint64_t kIncrementalStateCleared = 1;
}  // namespace pf

}  // namespace

std::string Trace::chrome_json() const {
    // Complete events ("X", µs), counters ("C"), thread names, flows ("s"/"f" bound to slices).
    std::string o = "{\"displayTimeUnit\": \"ns\", \"otherData\": {\"title\": " + jstr(title_) +
                    fmt::format(", \"dropped_exits\": {}, \"dropped_walks\": {}", dropped_, dropped_walks_) + "},\n\"traceEvents\": [\n";
    o += fmt::format("{{\"ph\": \"M\", \"pid\": 1, \"name\": \"process_name\", \"args\": {{\"name\": {}}}}}",
                     jstr("hvsim: " + title_));
    for (size_t t = 0; t < tracks_.size(); ++t)
        if (!tracks_[t].counter)
            o += fmt::format(",\n{{\"ph\": \"M\", \"pid\": 1, \"tid\": {}, \"name\": \"thread_name\", \"args\": {{\"name\": {}}}}}",
                             t + 1, jstr(tracks_[t].name));
    std::set<uint64_t> outs, ins;   // flows with both ends kept
    for (const auto& e : evs_) {
        if (e.flow_out) outs.insert(e.flow_out);
        if (e.flow_in) ins.insert(e.flow_in);
    }
    for (const auto& e : evs_) {
        const double ts = double(e.ts_ps) / 1e6;
        if (e.type == Ev::Type::counter) {
            o += fmt::format(",\n{{\"ph\": \"C\", \"pid\": 1, \"ts\": {:.6f}, \"name\": {}, \"args\": {{\"value\": {}}}}}", ts,
                             jstr(tracks_[e.track].name), e.value);
            continue;
        }
        std::string args;
        for (const auto& a : e.args) {
            if (!args.empty()) args += ", ";
            args += jstr(a.key) + ": " +
                    (a.kind == TraceArg::Kind::str ? jstr(a.s)
                     : a.kind == TraceArg::Kind::boolean ? std::string(a.u ? "true" : "false")
                                                         : fmt::format("{}", a.u));
        }
        o += fmt::format(",\n{{\"ph\": \"X\", \"pid\": 1, \"tid\": {}, \"ts\": {:.6f}, \"dur\": {:.6f}, \"name\": {}, \"args\": {{{}}}}}",
                         e.track + 1, ts, double(e.dur_ps) / 1e6, jstr(names_[e.name]), args);
        if (e.flow_out && ins.count(e.flow_out))
            o += fmt::format(",\n{{\"ph\": \"s\", \"pid\": 1, \"tid\": {}, \"ts\": {:.6f}, \"id\": {}, \"name\": \"exit\", \"cat\": \"flow\"}}",
                             e.track + 1, ts, e.flow_out);
        if (e.flow_in && outs.count(e.flow_in))
            o += fmt::format(",\n{{\"ph\": \"f\", \"bp\": \"e\", \"pid\": 1, \"tid\": {}, \"ts\": {:.6f}, \"id\": {}, \"name\": \"exit\", \"cat\": \"flow\"}}",
                             e.track + 1, ts, e.flow_in);
    }
    return o + "\n]}\n";
}

std::string Trace::perfetto_proto() const {
    using namespace pf;
    Pb trace;
    bool first = true;
    auto packet = [&](const Pb& body, std::optional<uint64_t> ts) {
        Pb p;
        if (ts) p.u64(kTimestamp, *ts);
        p.u64(kSeqId, 1);
        if (first) p.u64(kSeqFlags, kIncrementalStateCleared);
        first = false;
        p.b += body.b;
        trace.bytes(kTracePacket, p.b);
    };
    constexpr uint64_t kProcessUuid = 1;
    auto uuid = [](uint32_t track) { return uint64_t(track) + 100; };
    {
        Pb pd, td, body;
        pd.u64(kPdPid, 1);
        pd.bytes(kPdName, "hvsim: " + title_);
        td.u64(kTdUuid, kProcessUuid);
        td.bytes(kTdProcess, pd.b);
        body.bytes(kTrackDescriptor, td.b);
        packet(body, std::nullopt);
    }
    for (uint32_t t = 0; t < tracks_.size(); ++t) {
        Pb td, body;
        td.u64(kTdUuid, uuid(t));
        td.bytes(kTdName, tracks_[t].name);
        if (tracks_[t].counter) {
            td.u64(kTdParent, kProcessUuid);
            Pb cd;
            if (!tracks_[t].unit.empty()) cd.bytes(kCdUnitName, tracks_[t].unit);
            td.bytes(kTdCounter, cd.b);
        } else {
            Pb th;
            th.u64(kThPid, 1);
            th.u64(kThTid, t + 1);
            th.bytes(kThName, tracks_[t].name);
            td.bytes(kTdThread, th.b);
        }
        body.bytes(kTrackDescriptor, td.b);
        packet(body, std::nullopt);
    }
    // Slices become BEGIN/END pairs, in time order: at equal times ENDs first (the inner
    // slice, which began later, before the outer), then BEGINs (the outer, longer one first).
    struct Item {
        uint64_t ts_ns;
        int kind;            // 0 end, 1 begin / counter
        uint64_t key;        // ends: -(begin time) ; begins: -(duration)
        size_t ev;
    };
    std::vector<Item> items;
    items.reserve(evs_.size() * 2);
    for (size_t i = 0; i < evs_.size(); ++i) {
        const auto& e = evs_[i];
        const uint64_t b = e.ts_ps / 1000;
        if (e.type == Ev::Type::counter) {
            items.push_back({b, 1, 0, i});
            continue;
        }
        const uint64_t en = (e.ts_ps + e.dur_ps) / 1000;
        if (en == b) {   // zero length: one item, written as BEGIN and END back to back
            items.push_back({b, 2, 0, i});
            continue;
        }
        items.push_back({b, 1, ~(en - b), i});
        items.push_back({en, 0, ~b, i});
    }
    // Flows whose two ends both survived the window and the cap.
    std::set<uint64_t> outs, ins;
    for (const auto& e : evs_) {
        if (e.flow_out) outs.insert(e.flow_out);
        if (e.flow_in) ins.insert(e.flow_in);
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) {
        if (x.ts_ns != y.ts_ns) return x.ts_ns < y.ts_ns;
        if (x.kind != y.kind) return x.kind < y.kind;
        return x.key < y.key;
    });
    for (const auto& it : items) {
        const auto& e = evs_[it.ev];
        Pb te, body;
        te.u64(kTeTrack, uuid(e.track));
        if (e.type == Ev::Type::counter) {
            te.u64(kTeType, kCounterType);
            te.f64(kTeDoubleCounter, e.value);
        } else if (it.kind >= 1) {
            te.u64(kTeType, kSliceBegin);
            te.bytes(kTeName, names_[e.name]);
            for (const auto& a : e.args) {
                Pb da;
                da.bytes(kDaName, a.key);
                if (a.kind == TraceArg::Kind::str) da.bytes(kDaString, a.s);
                else if (a.kind == TraceArg::Kind::boolean) da.u64(kDaBool, a.u ? 1 : 0);
                else da.u64(kDaUint, a.u);
                te.bytes(kTeDebug, da.b);
            }
            if (e.flow_out && ins.count(e.flow_out)) te.fixed64(kTeFlow, e.flow_out);
            if (e.flow_in && outs.count(e.flow_in)) te.fixed64(kTeTermFlow, e.flow_in);
        } else {
            te.u64(kTeType, kSliceEnd);
        }
        body.bytes(kTrackEvent, te.b);
        packet(body, it.ts_ns);
        if (it.kind == 2) {   // the END of a zero-length slice
            Pb end_te, end_body;
            end_te.u64(kTeTrack, uuid(e.track));
            end_te.u64(kTeType, kSliceEnd);
            end_body.bytes(kTrackEvent, end_te.b);
            packet(end_body, it.ts_ns);
        }
    }
    (void)kTeCounter;
    return trace.b;
}

void Trace::write() const {
    const bool json = opt_.path.size() >= 5 && opt_.path.compare(opt_.path.size() - 5, 5, ".json") == 0;
    write_file(opt_.path, json ? chrome_json() : perfetto_proto());
}

}  // namespace hvsim
