// Fault paths as results.json reports them: every exit KVM handles (a nested page
// fault, a hypercall, a pre-fault) is recorded step by step — the named charges made
// while handling it — and aggregated per path name ("npf.private.4K", "npf.memory_fault",
// "hypercall.map_gpa_range", ...), with exact percentiles over the per-fault totals.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/common/step_name.hpp"
#include "models/common/types.hpp"

namespace hvsim::kvm {

struct FaultPathAgg {
    uint64_t count = 0;
    Cycles total = 0;
    std::vector<Cycles> samples;                         // one total per fault (exact percentiles)
    std::vector<std::pair<std::string, Cycles>> steps;   // summed cycles per step, first-seen order
};

// Sees each fault as it is recorded (the run's trace); optional.
class FaultPathObserver {
public:
    virtual ~FaultPathObserver() = default;
    virtual void fault_begin() = 0;
    virtual void fault_charge(std::string_view step, Cycles c) = 0;
    virtual void fault_end(std::string_view path) = 0;
};

// Every charge of every exit passes through here, so the recorder allocates nothing per
// fault once a run's step and path names have been seen: step names are interned to small
// ids, paths are found by string_view.
class FaultPathLog {
public:
    void set_observer(FaultPathObserver* o) { obs_ = o; }
    // One fault in flight per recorder; begin() discards a fault that was never ended.
    void begin() {
        cur_steps_.clear();
        cur_total_ = 0;
        active_ = true;
        if (obs_) obs_->fault_begin();
    }
    void on_charge(StepName step, Cycles c) {
        if (!active_) return;
        if (obs_) obs_->fault_charge(step.view(), c);
        cur_total_ += c;
        // In charge order, a step charged twice appearing twice: end() adds them up.
        cur_steps_.emplace_back(intern(step), c);
    }
    void end(std::string_view path) {
        if (!active_) return;
        active_ = false;
        if (obs_) obs_->fault_end(path);
        Path* ap = path.data() == last_path_.p && path.size() == last_path_.n && last_path_.name &&
                           *last_path_.name == path
                       ? last_path_.path
                       : nullptr;
        if (!ap) {
            auto it = paths_.find(path);
            if (it == paths_.end()) it = paths_.emplace(std::string(path), Path{}).first;
            ap = &it->second;
            last_path_ = {path.data(), path.size(), &it->first, ap};
        }
        Path& a = *ap;
        ++a.count;
        a.total += cur_total_;
        a.samples.push_back(cur_total_);
        if (a.slot.size() < names_.size()) a.slot.resize(names_.size(), kNoSlot);
        for (const auto& step : cur_steps_) {
            uint32_t& slot = a.slot[step.first];
            if (slot == kNoSlot) {
                slot = uint32_t(a.steps.size());
                a.steps.emplace_back(step);
            } else {
                a.steps[slot].second += step.second;
            }
        }
    }
    bool active() const { return active_; }
    void merge_into(std::map<std::string, FaultPathAgg>& out) const {
        for (const auto& [name, a] : paths_) {
            auto& o = out[name];
            o.count += a.count;
            o.total += a.total;
            o.samples.insert(o.samples.end(), a.samples.begin(), a.samples.end());
            for (const auto& step : a.steps) {
                const std::string& n = names_[step.first];
                auto it = std::find_if(o.steps.begin(), o.steps.end(), [&](auto& x) { return x.first == n; });
                if (it == o.steps.end()) o.steps.emplace_back(n, step.second);
                else it->second += step.second;
            }
        }
    }

private:
    using Steps = std::vector<std::pair<uint32_t, Cycles>>;   // interned name, cycles
    static constexpr uint32_t kNoSlot = ~uint32_t(0);
    struct Path {
        uint64_t count = 0;
        Cycles total = 0;
        std::vector<Cycles> samples;
        Steps steps;
        std::vector<uint32_t> slot;   // interned name -> index in steps (kNoSlot: not yet seen)
    };
    // A step name is a compile-time constant (StepName), so the characters at its address
    // never change and the address alone finds its id: an open-addressing table by address
    // that only grows (a run has as many addresses as charge sites it reaches). The text is
    // hashed only the first time an address is seen (two copies of one literal share the id).
    uint32_t intern(StepName s) {
        for (size_t h = memo_home(s.data());; h = (h + 1) & (memo_.size() - 1)) {
            if (memo_[h].p == s.data()) return memo_[h].id;
            if (!memo_[h].p) return intern_new(s);
        }
    }
    // An address seen for the first time (out of line: the look-up above stays small).
    [[gnu::noinline]] uint32_t intern_new(StepName s) {
        uint32_t id;
        if (auto it = ids_.find(s.view()); it != ids_.end()) {
            id = it->second;
        } else {
            names_.emplace_back(s.view());   // a deque: the views in ids_ stay valid
            id = uint32_t(names_.size() - 1);
            ids_.emplace(std::string_view(names_.back()), id);
        }
        if (2 * (memo_used_ + 1) > memo_.size()) {   // keep it at most half full
            std::vector<Memo> old(2 * memo_.size());
            old.swap(memo_);
            for (const Memo& m : old)
                if (m.p) memo_put(m);
        }
        memo_put({s.data(), id});
        ++memo_used_;
        return id;
    }
    struct Memo {
        const char* p = nullptr;
        uint32_t id = 0;
    };
    size_t memo_home(const char* p) const {
        return size_t((reinterpret_cast<uintptr_t>(p) * 0x9e3779b97f4a7c15ull) >> 32) & (memo_.size() - 1);
    }
    void memo_put(const Memo& m) {
        size_t h = memo_home(m.p);
        while (memo_[h].p) h = (h + 1) & (memo_.size() - 1);
        memo_[h] = m;
    }
    struct LastPath {
        const char* p = nullptr;
        size_t n = 0;
        const std::string* name = nullptr;
        Path* path = nullptr;
    };

    FaultPathObserver* obs_ = nullptr;
    bool active_ = false;
    Cycles cur_total_ = 0;
    Steps cur_steps_;
    std::deque<std::string> names_;
    std::unordered_map<std::string_view, uint32_t> ids_;
    std::vector<Memo> memo_ = std::vector<Memo>(64);   // by address; a power of two
    size_t memo_used_ = 0;
    LastPath last_path_;
    std::map<std::string, Path, std::less<>> paths_;
};

// Nearest-rank percentile of a sample set (p in [0, 100]) of a copy: a selection, not a
// sort, so reporting a million faults costs linear time.
inline Cycles percentile(std::vector<Cycles> v, double p) {
    if (v.empty()) return 0;
    size_t rank = size_t(p / 100.0 * double(v.size()) + 0.999999);
    if (rank == 0) rank = 1;
    if (rank > v.size()) rank = v.size();
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(rank - 1), v.end());
    return v[rank - 1];
}

}  // namespace hvsim::kvm
