#include "models/mem/cache.hpp"

#include <bit>
#include <new>
#include <stdexcept>

namespace hvsim {

template <class T>
CacheHierarchy::LazyArray<T> CacheHierarchy::lazy_zeroed(size_t n) {
    void* p = std::calloc(n, sizeof(T));
    if (!p) throw std::bad_alloc();
    return LazyArray<T>(static_cast<T*>(p));
}

CacheHierarchy::CacheHierarchy(const MemHierarchyConfig& cfg) : cfg_(cfg) {
    if (!std::has_single_bit(cfg.line_bytes)) throw std::invalid_argument("cache line size must be a power of two");
    line_shift_ = unsigned(std::countr_zero(cfg.line_bytes));
    if (cfg.levels.size() > 8) throw std::invalid_argument("at most 8 cache levels");
    for (const auto& lc : cfg.levels) {
        Level l;
        if (lc.ways == 0) throw std::invalid_argument("cache " + lc.name + ": ways must be > 0");
        const uint64_t lines = lc.size_bytes >> line_shift_;
        if (lines < lc.ways || lines % lc.ways) throw std::invalid_argument("cache " + lc.name + ": size must be a multiple of ways x line");
        l.sets = unsigned(lines / lc.ways);
        l.set_mask = std::has_single_bit(l.sets) ? l.sets - 1 : 0;
        l.ways = lc.ways;
        l.hit = lc.hit_cycles;
        l.slots = size_t(l.sets) * l.ways;
        l.tags = lazy_zeroed<uint64_t>(l.slots);
        l.age = lazy_zeroed<uint32_t>(l.slots);
        levels_.push_back(std::move(l));
    }
    stats_.levels.resize(levels_.size());
}

Cycles CacheHierarchy::access(Hpa a) {
    const uint64_t raw = a.raw() >> line_shift_;
    const uint64_t line = raw + 1;   // stored tag: line + 1 (0 is empty)
    // One pass over each level's set finds the hit or, on a miss, the victim the fill
    // will replace (an empty way first, else the least recently used).
    size_t victims[8];
    const size_t n = std::min<size_t>(levels_.size(), 8);
    for (size_t i = 0; i < n; ++i) {
        Level& l = levels_[i];
        const size_t base = l.set_of(raw) * l.ways;
        size_t victim = base;
        bool empty = false;
        for (unsigned w = 0; w < l.ways; ++w) {
            const uint64_t t = l.tags[base + w];
            if (t == line) {
                l.age[base + w] = ++l.clock;
                ++stats_.levels[i].hits;
                for (size_t j = 0; j < i; ++j) {
                    Level& u = levels_[j];
                    u.tags[victims[j]] = line;
                    u.age[victims[j]] = ++u.clock;
                }
                return l.hit;
            }
            if (empty) continue;
            if (t == kInvalid) {
                victim = base + w;
                empty = true;
            } else if (uint32_t(l.clock - l.age[base + w]) > uint32_t(l.clock - l.age[victim])) {
                victim = base + w;
            }
        }
        victims[i] = victim;
        ++stats_.levels[i].misses;
    }
    ++stats_.dram;
    for (size_t j = 0; j < n; ++j) {
        Level& u = levels_[j];
        u.tags[victims[j]] = line;
        u.age[victims[j]] = ++u.clock;
    }
    return fill_ ? fill_->fill(raw << line_shift_) : cfg_.dram_cycles;
}

void CacheHierarchy::flush_line(Hpa a) {
    const uint64_t raw = a.raw() >> line_shift_;
    const uint64_t line = raw + 1;
    for (auto& l : levels_) {
        const size_t base = l.set_of(raw) * l.ways;
        for (unsigned w = 0; w < l.ways; ++w)
            if (l.tags[base + w] == line) l.tags[base + w] = kInvalid;
    }
}

void CacheHierarchy::invalidate_all() {
    // Fresh zeroed arrays: the host gets the old pages back and maps new ones lazily.
    for (auto& l : levels_) {
        l.tags = lazy_zeroed<uint64_t>(l.slots);
        l.age = lazy_zeroed<uint32_t>(l.slots);
        l.clock = 0;
    }
}

}  // namespace hvsim
