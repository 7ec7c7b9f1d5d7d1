#include "models/mem/cache.hpp"

#include <bit>
#include <stdexcept>

namespace hvsim {

CacheHierarchy::CacheHierarchy(const MemHierarchyConfig& cfg) : cfg_(cfg) {
    if (!std::has_single_bit(cfg.line_bytes)) throw std::invalid_argument("cache line size must be a power of two");
    line_shift_ = unsigned(std::countr_zero(cfg.line_bytes));
    for (const auto& lc : cfg.levels) {
        Level l;
        if (lc.ways == 0) throw std::invalid_argument("cache " + lc.name + ": ways must be > 0");
        const uint64_t lines = lc.size_bytes >> line_shift_;
        if (lines < lc.ways || lines % lc.ways) throw std::invalid_argument("cache " + lc.name + ": size must be a multiple of ways x line");
        l.sets = unsigned(lines / lc.ways);
        l.ways = lc.ways;
        l.hit = lc.hit_cycles;
        l.tags.assign(size_t(l.sets) * l.ways, kInvalid);
        l.age.assign(size_t(l.sets) * l.ways, 0);
        levels_.push_back(std::move(l));
    }
    stats_.levels.resize(levels_.size());
}

bool CacheHierarchy::lookup(Level& l, uint64_t line) {
    const size_t base = size_t(line % l.sets) * l.ways;
    for (unsigned w = 0; w < l.ways; ++w) {
        if (l.tags[base + w] == line) {
            l.age[base + w] = ++l.clock;
            return true;
        }
    }
    return false;
}

void CacheHierarchy::fill(Level& l, uint64_t line) {
    const size_t base = size_t(line % l.sets) * l.ways;
    size_t victim = base;
    for (unsigned w = 0; w < l.ways; ++w) {
        if (l.tags[base + w] == kInvalid) { victim = base + w; break; }
        // Unsigned distance from the clock survives wrap-around.
        if (uint32_t(l.clock - l.age[base + w]) > uint32_t(l.clock - l.age[victim])) victim = base + w;
    }
    l.tags[victim] = line;
    l.age[victim] = ++l.clock;
}

Cycles CacheHierarchy::access(Hpa a) {
    const uint64_t line = a.raw() >> line_shift_;
    for (size_t i = 0; i < levels_.size(); ++i) {
        if (lookup(levels_[i], line)) {
            ++stats_.levels[i].hits;
            for (size_t j = 0; j < i; ++j) fill(levels_[j], line);
            return levels_[i].hit;
        }
        ++stats_.levels[i].misses;
    }
    ++stats_.dram;
    for (auto& l : levels_) fill(l, line);
    return cfg_.dram_cycles;
}

void CacheHierarchy::flush_line(Hpa a) {
    const uint64_t line = a.raw() >> line_shift_;
    for (auto& l : levels_) {
        const size_t base = size_t(line % l.sets) * l.ways;
        for (unsigned w = 0; w < l.ways; ++w)
            if (l.tags[base + w] == line) l.tags[base + w] = kInvalid;
    }
}

void CacheHierarchy::invalidate_all() {
    for (auto& l : levels_) std::fill(l.tags.begin(), l.tags.end(), kInvalid);
}

}  // namespace hvsim
