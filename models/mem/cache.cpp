#include "models/mem/cache.hpp"

#include <algorithm>
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
    set_of_ = Remainder(sets_);
    ways_ = cfg.ways;
    slots_ = size_t(sets_) * ways_;
    clear();
}

void SharedCache::clear() {
    // A fresh zeroed array (every way empty): the host gets the old pages back and maps new
    // ones lazily.
    void* t = std::calloc(slots_, sizeof(uint64_t));
    if (!t) throw std::bad_alloc();
    tags_.reset(static_cast<uint64_t*>(t));
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
    if (cfg.mshrs > 1024) throw std::invalid_argument("at most 1024 MSHRs");
    inflight_.resize(cfg.mshrs);
    if (line_shift_ > kPageShift) throw std::invalid_argument("cache line larger than a page");
    page_lines_shift_ = kPageShift - line_shift_;
    // The L2 streamer needs an L2 to fill and MSHRs to track its fills.
    prefetch_on_ = cfg.prefetch.l2_stream && cfg.mshrs > 0 && levels_.size() >= 2 && cfg.prefetch.streams > 0 &&
                   cfg.prefetch.degree > 0 && cfg.prefetch.distance > 0;
    if (prefetch_on_) {
        streams_.resize(cfg.prefetch.streams);
        stream_ways_ = std::min<unsigned>(4, cfg.prefetch.streams);
        stream_set_of_ = Remainder(cfg.prefetch.streams / stream_ways_);
    }
}

void CacheHierarchy::retire(Cycles t) {
    for (unsigned i = 0; i < n_inflight_;) {
        if (inflight_[i].ready <= t) inflight_[i] = inflight_[--n_inflight_];
        else ++i;
    }
}

Cycles CacheHierarchy::free_mshr(Cycles t) {
    if (n_inflight_ < cfg_.mshrs) return 0;
    // Every MSHR busy: wait for the earliest fill to complete.
    Cycles first = inflight_[0].ready;
    for (unsigned i = 1; i < n_inflight_; ++i) first = std::min(first, inflight_[i].ready);
    retire(first);
    ++stats_.mshr_full;
    stats_.mshr_wait_cycles += first - t;
    return first - t;
}

bool CacheHierarchy::present(size_t j, uint64_t raw) const {
    const SharedCache& l = *levels_[j].arr;
    const uint64_t* const t = l.set_tags(raw);
    for (unsigned w = 0; w < l.ways_; ++w)
        if ((t[w] & ~kPrefetched) == raw + 1) return true;
    return false;
}

void CacheHierarchy::install(size_t j, uint64_t raw, uint64_t tag) {
    SharedCache& l = *levels_[j].arr;
    const uint64_t out = push_front(l.set_tags(raw), l.ways_, tag);
    const size_t filled = victim_llc_ ? levels_.size() - 1 : levels_.size();
    if (victim_llc_ && j + 1 == filled && out != kInvalid) cast_out(out & ~kPrefetched);
}

bool CacheHierarchy::prefetch(uint64_t raw, Cycles t) {
    for (unsigned i = 0; i < n_inflight_; ++i)
        if (inflight_[i].line == raw) return true;
    if (present(1, raw)) return true;
    const size_t filled = victim_llc_ ? levels_.size() - 1 : levels_.size();
    // Already in the LLC (a victim LLC can hold what the L2 lost): the streamer moves it
    // up without a DRAM fill (its LLC latency is hidden behind the stream).
    const size_t last = levels_.size() - 1;
    if (last >= 2 && present(last, raw)) {
        if (victim_llc_) {   // the line leaves a victim LLC
            SharedCache& l = *levels_[last].arr;
            uint64_t* const t = l.set_tags(raw);
            for (unsigned w = 0; w < l.ways_; ++w)
                if (t[w] == raw + 1) {
                    remove(t, l.ways_, w);
                    break;
                }
        }
        install(1, raw, raw + 1);   // not a DRAM prefetch: not counted as one
        return true;
    }
    if (n_inflight_ >= cfg_.mshrs) {
        ++stats_.prefetch_dropped;
        return false;
    }
    const Cycles f = fill_ ? fill_->fill(raw << line_shift_) : cfg_.dram_cycles;
    ++stats_.prefetches;
    inflight_[n_inflight_++] = Inflight{raw, t + f, true};
    install(1, raw, (raw + 1) | kPrefetched);
    for (size_t j = 2; j < filled; ++j) install(j, raw, raw + 1);
    return true;
}

void CacheHierarchy::train(uint64_t raw) {
    const uint64_t pg = raw >> page_lines_shift_;
    const uint64_t page = pg + 1;
    const int off = int(raw & ((1u << page_lines_shift_) - 1));
    const int lines = 1 << page_lines_shift_;
    // The stream table is 4-way set-associative by page, LRU within a set (how the
    // hardware organises its 32 trackers is not published; a set look-up keeps the
    // simulator's cost per L2 reference constant).
    const unsigned ways = stream_ways_;
    Stream* const set = &streams_[size_t(stream_set_of_(pg)) * ways];
    Stream* s = nullptr;
    Stream* lru = set;
    for (unsigned w = 0; w < ways; ++w) {
        Stream& e = set[w];
        if (e.page == page) {
            s = &e;
            break;
        }
        if (lru->page != 0 && (e.page == 0 || uint32_t(stream_clock_ - e.stamp) > uint32_t(stream_clock_ - lru->stamp)))
            lru = &e;
    }
    if (!s) {
        *lru = Stream{page, ++stream_clock_, int16_t(off), uint8_t(off), 0, 0};
        return;
    }
    s->stamp = ++stream_clock_;
    const int d = off - int(s->last);
    if (d == 0) return;
    const int dir = d > 0 ? 1 : -1;
    // A step is a reference within two lines of the last one; a jump restarts training.
    if (d > 2 || d < -2) {
        s->dir = 0;
        s->steps = 0;
    } else if (s->dir == dir) {
        if (s->steps < 2) ++s->steps;
    } else {
        s->dir = int8_t(dir);
        s->steps = 1;
        s->next = int16_t(off + dir);
    }
    s->last = uint8_t(off);
    if (s->steps < 2) return;
    // A stream: fetch up to `degree` lines not yet requested, at most `distance` ahead,
    // within the page.
    int x = dir > 0 ? std::max<int>(s->next, off + 1) : std::min<int>(s->next, off - 1);
    const int limit = std::clamp(off + dir * int(cfg_.prefetch.distance), 0, lines - 1);
    const uint64_t base = raw - uint64_t(off);
    const Cycles t = now();
    retire(t);
    for (unsigned issued = 0; issued < cfg_.prefetch.degree && (dir > 0 ? x <= limit : x >= limit); x += dir) {
        if (!prefetch(base + uint64_t(x), t)) break;
        ++issued;
    }
    s->next = int16_t(x);
}

void CacheHierarchy::cast_out(uint64_t tag) {
    SharedCache& l = *levels_.back().arr;
    // In front, whether another core cast the same line out already or it is new here (the
    // victim LLC holds no prefetched lines: no mask).
    uint64_t out;
    (void)find_or_push(l.set_tags(tag - 1), l.ways_, tag, 0, out);
    ++stats_.castouts;
}

Cycles CacheHierarchy::access_line(uint64_t raw, Ref r) {
    const uint64_t line = raw + 1;   // stored tag: line + 1 (0 is empty)
    // The filter stands for an L1 hit: only with an L1 (a DRAM-only hierarchy has none).
    if (!levels_.empty()) last_line_ = raw;
    // A fill of this line still in flight: a load waits for the rest of it, a store is
    // posted (the line is already allocated in the levels the fill goes to).
    Cycles wait = 0, t = 0;
    bool have_t = false;
    if (n_inflight_) {
        t = now();
        have_t = true;
        retire(t);
        for (unsigned i = 0; i < n_inflight_; ++i) {
            if (inflight_[i].line != raw) continue;
            if (r != Ref::store) wait = inflight_[i].ready - t;
            if (inflight_[i].prefetch) ++stats_.prefetch_late;
            inflight_[i].prefetch = false;
            break;
        }
    }
    // Each level's set is searched for the line in one pass that also fills it (the level
    // above the one that has it, and every level on a miss, get the line in front: their
    // set's last way goes). Levels [0, filled) are filled on a miss: all of them, or all but
    // a victim LLC, which instead takes the line the level above it evicted (after its own
    // search: the cast-out must not push out the line being looked for).
    const size_t n = levels_.size();
    const size_t filled = victim_llc_ ? n - 1 : n;
    uint64_t evicted = kInvalid;
    // The L1 first, on its own: a hit there needs none of the bookkeeping below (the L1
    // holds no prefetched lines, so its tags need no mask).
    if (n) {
        SharedCache& l1 = *levels_.front().arr;
        uint64_t out = kInvalid;
        if (find_or_push(l1.set_tags(raw), l1.ways_, line, 0, out) != kInvalid) {
            ++stats_.levels[0].hits;
            return std::max(l1_hit_, wait);
        }
        ++stats_.levels[0].misses;
        if (victim_llc_ && filled == 1) evicted = out;
    }
    for (size_t i = 1; i < n; ++i) {
        SharedCache& l = *levels_[i].arr;
        uint64_t* const tags = l.set_tags(raw);
        uint64_t found;
        if (i < filled) {
            uint64_t out = kInvalid;
            found = find_or_push(tags, l.ways_, line, kPrefetched, out);
            if (found == kInvalid) {
                ++stats_.levels[i].misses;
                if (victim_llc_ && i + 1 == filled) evicted = out & ~kPrefetched;
                continue;
            }
        } else {   // a victim LLC hit: the line moves up to the L2
            unsigned w = 0;
            while (w < l.ways_ && (tags[w] & ~kPrefetched) != line) ++w;
            if (w == l.ways_) {
                ++stats_.levels[i].misses;
                continue;
            }
            found = tags[w];
            remove(tags, l.ways_, w);
        }
        ++stats_.levels[i].hits;
        if (found & kPrefetched) ++stats_.prefetch_hits;
        if (evicted != kInvalid) cast_out(evicted);
        if (prefetch_on_ && r != Ref::walk) train(raw);
        // A store that found its line below the L1 retires into the store buffer; its
        // RFO is served from there.
        if (r == Ref::store && cfg_.mshrs) return l1_hit_;
        return std::max(levels_[i].hit, wait);
    }
    ++stats_.dram;
    if (evicted != kInvalid) cast_out(evicted);
    Cycles stall = 0;
    if (cfg_.mshrs) {
        if (!have_t) t = now();
        retire(t);
        stall = free_mshr(t);
    }
    const Cycles f = fill_ ? fill_->fill(raw << line_shift_) : cfg_.dram_cycles;
    Cycles c = stall + f;
    if (r == Ref::store && cfg_.mshrs && !levels_.empty()) {
        // Posted: the fill holds an MSHR until its data arrives; the core goes on.
        inflight_[n_inflight_++] = Inflight{raw, t + stall + f, false};
        ++stats_.posted_stores;
        c = stall + l1_hit_;
    }
    if (prefetch_on_ && r != Ref::walk) train(raw);
    return c;
}

void CacheHierarchy::flush_line(Hpa a) {
    const uint64_t raw = a.raw() >> line_shift_;
    const uint64_t line = raw + 1;
    if (raw == last_line_) last_line_ = kNoLine;
    for (auto& lv : levels_) {
        SharedCache& l = *lv.arr;
        uint64_t* const t = l.set_tags(raw);
        for (unsigned w = 0; w < l.ways_; ++w)
            if ((t[w] & ~kPrefetched) == line) {
                remove(t, l.ways_, w);
                break;
            }
    }
}

void CacheHierarchy::invalidate_all() {
    last_line_ = kNoLine;
    for (auto& o : own_) o->clear();
    n_inflight_ = 0;
    for (auto& st : streams_) st = Stream{};
}

}  // namespace hvsim
