// Fault paths as results.json reports them: every exit KVM handles (a nested page
// fault, a hypercall, a pre-fault) is recorded step by step — the named charges made
// while handling it — and aggregated per path name ("npf.private.4K", "npf.memory_fault",
// "hypercall.map_gpa_range", ...), with exact percentiles over the per-fault totals.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

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
    virtual void fault_end(const std::string& path) = 0;
};

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
    void on_charge(std::string_view step, Cycles c) {
        if (!active_) return;
        if (obs_) obs_->fault_charge(step, c);
        cur_total_ += c;
        for (auto& s : cur_steps_)
            if (s.first == step) {
                s.second += c;
                return;
            }
        cur_steps_.emplace_back(std::string(step), c);
    }
    void end(const std::string& path) {
        if (!active_) return;
        active_ = false;
        if (obs_) obs_->fault_end(path);
        auto& a = paths_[path];
        ++a.count;
        a.total += cur_total_;
        a.samples.push_back(cur_total_);
        for (auto& step : cur_steps_) {
            auto it = std::find_if(a.steps.begin(), a.steps.end(), [&](auto& s) { return s.first == step.first; });
            if (it == a.steps.end()) a.steps.emplace_back(step);
            else it->second += step.second;
        }
    }
    bool active() const { return active_; }
    const std::map<std::string, FaultPathAgg>& paths() const { return paths_; }
    void merge_into(std::map<std::string, FaultPathAgg>& out) const {
        for (auto& [name, a] : paths_) {
            auto& o = out[name];
            o.count += a.count;
            o.total += a.total;
            o.samples.insert(o.samples.end(), a.samples.begin(), a.samples.end());
            for (auto& step : a.steps) {
                auto it = std::find_if(o.steps.begin(), o.steps.end(), [&](auto& x) { return x.first == step.first; });
                if (it == o.steps.end()) o.steps.emplace_back(step);
                else it->second += step.second;
            }
        }
    }

private:
    FaultPathObserver* obs_ = nullptr;
    bool active_ = false;
    Cycles cur_total_ = 0;
    std::vector<std::pair<std::string, Cycles>> cur_steps_;
    std::map<std::string, FaultPathAgg> paths_;
};

// Nearest-rank percentile of a sample set (p in [0, 100]); sorts a copy.
inline Cycles percentile(std::vector<Cycles> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t rank = size_t(p / 100.0 * double(v.size()) + 0.999999);
    if (rank == 0) rank = 1;
    if (rank > v.size()) rank = v.size();
    return v[rank - 1];
}

}  // namespace hvsim::kvm
