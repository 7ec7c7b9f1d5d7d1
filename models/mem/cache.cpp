#include "models/mem/cache.hpp"

#include <bit>
#include <new>
#include <stdexcept>

namespace hvsim {

SharedCache::SharedCache(const CacheLevelConfig& cfg, unsigned line_bytes) : cfg_(cfg) {
    if (!std::has_single_bit(line_bytes)) throw std::invalid_argument("cache line size must be a power of two");
    if (cfg.ways == 0) throw std::invalid_argument("cache " + cfg.name + ": ways must be > 0");
    const uint64_t lines = cfg.size_bytes / line_bytes;
    if (lines < cfg.ways || lines % cfg.ways || cfg.size_bytes % line_bytes)
        throw std::invalid_argument("cache " + cfg.name + ": size must be a multiple of ways x line");
    sets_ = unsigned(lines / cfg.ways);
    set_mask_ = std::has_single_bit(sets_) ? sets_ - 1 : 0;
    ways_ = cfg.ways;
    slots_ = size_t(sets_) * ways_;
    clear();
}

void SharedCache::clear() {
    // Fresh zeroed arrays: the host gets the old pages back and maps new ones lazily.
    void* t = std::calloc(slots_, sizeof(uint64_t));
    void* a = std::calloc(slots_, sizeof(uint32_t));
    if (!t || !a) {
        std::free(t);
        std::free(a);
        throw std::bad_alloc();
    }
    tags_.reset(static_cast<uint64_t*>(t));
    age_.reset(static_cast<uint32_t*>(a));
    clock_ = 0;
}

CacheHierarchy::CacheHierarchy(const MemHierarchyConfig& cfg, SharedCache* llc) : cfg_(cfg) {
    if (!std::has_single_bit(cfg.line_bytes)) throw std::invalid_argument("cache line size must be a power of two");
    line_shift_ = unsigned(std::countr_zero(cfg.line_bytes));
    if (cfg.levels.size() > 8) throw std::invalid_argument("at most 8 cache levels");
    for (size_t i = 0; i < cfg.levels.size(); ++i) {
        const auto& lc = cfg.levels[i];
        Level l;
        l.hit = lc.hit_cycles;
        if (llc && i + 1 == cfg.levels.size()) {
            const auto& sc = llc->config();
            if (sc.size_bytes != lc.size_bytes || sc.ways != lc.ways)
                throw std::invalid_argument("cache " + lc.name + ": the shared array has another geometry");
            l.arr = llc;
        } else {
            own_.push_back(std::make_unique<SharedCache>(lc, cfg.line_bytes));
            l.arr = own_.back().get();
        }
        levels_.push_back(l);
    }
    if (!levels_.empty()) l1_hit_ = levels_.front().hit;
    // A victim cache needs a level above it to evict into it.
    victim_llc_ = cfg.llc_policy == LlcPolicy::victim && levels_.size() >= 2;
    stats_.levels.resize(levels_.size());
}

void CacheHierarchy::cast_out(uint64_t tag) {
    SharedCache& l = *levels_.back().arr;
    const uint64_t raw = tag - 1;
    const size_t base = l.set_of(raw) * l.ways_;
    size_t victim = base;
    bool empty = false;
    for (unsigned w = 0; w < l.ways_; ++w) {
        const uint64_t t = l.tags_[base + w];
        if (t == tag) {   // another core cast the same line out already
            victim = base + w;
            break;
        }
        if (empty) continue;
        if (t == kInvalid) {
            victim = base + w;
            empty = true;
        } else if (uint32_t(l.clock_ - l.age_[base + w]) > uint32_t(l.clock_ - l.age_[victim])) {
            victim = base + w;
        }
    }
    l.tags_[victim] = tag;
    l.age_[victim] = ++l.clock_;
    ++stats_.castouts;
}

Cycles CacheHierarchy::access_line(uint64_t raw) {
    const uint64_t line = raw + 1;   // stored tag: line + 1 (0 is empty)
    // The filter stands for an L1 hit: only with an L1 (a DRAM-only hierarchy has none).
    if (!levels_.empty()) last_line_ = raw;
    // One pass over each level's set finds the hit or, on a miss, the victim the fill
    // will replace (an empty way first, else the least recently used).
    size_t victims[8];
    const size_t n = std::min<size_t>(levels_.size(), 8);
    // Levels [0, filled) are filled on a miss: all of them, or all but a victim LLC.
    const size_t filled = victim_llc_ ? n - 1 : n;
    auto fill_above = [&](size_t upto) {
        for (size_t j = 0; j < upto; ++j) {
            SharedCache& u = *levels_[j].arr;
            // The L2's evicted line goes to a victim LLC.
            if (victim_llc_ && j + 1 == filled && u.tags_[victims[j]] != kInvalid) cast_out(u.tags_[victims[j]]);
            u.tags_[victims[j]] = line;
            u.age_[victims[j]] = ++u.clock_;
        }
    };
    for (size_t i = 0; i < n; ++i) {
        SharedCache& l = *levels_[i].arr;
        const size_t base = l.set_of(raw) * l.ways_;
        size_t victim = base;
        bool empty = false;
        for (unsigned w = 0; w < l.ways_; ++w) {
            const uint64_t t = l.tags_[base + w];
            if (t == line) {
                ++stats_.levels[i].hits;
                if (i >= filled) {
                    // A victim LLC hit: the line moves up to the L2 (exclusive).
                    l.tags_[base + w] = kInvalid;
                } else {
                    l.age_[base + w] = ++l.clock_;
                }
                fill_above(std::min(i, filled));
                return levels_[i].hit;
            }
            if (empty) continue;
            if (t == kInvalid) {
                victim = base + w;
                empty = true;
            } else if (uint32_t(l.clock_ - l.age_[base + w]) > uint32_t(l.clock_ - l.age_[victim])) {
                victim = base + w;
            }
        }
        victims[i] = victim;
        ++stats_.levels[i].misses;
    }
    ++stats_.dram;
    fill_above(filled);
    return fill_ ? fill_->fill(raw << line_shift_) : cfg_.dram_cycles;
}

void CacheHierarchy::flush_line(Hpa a) {
    const uint64_t raw = a.raw() >> line_shift_;
    const uint64_t line = raw + 1;
    if (raw == last_line_) last_line_ = kNoLine;
    for (auto& lv : levels_) {
        SharedCache& l = *lv.arr;
        const size_t base = l.set_of(raw) * l.ways_;
        for (unsigned w = 0; w < l.ways_; ++w)
            if (l.tags_[base + w] == line) l.tags_[base + w] = kInvalid;
    }
}

void CacheHierarchy::invalidate_all() {
    last_line_ = kNoLine;
    for (auto& o : own_) o->clear();
}

}  // namespace hvsim
