// The vCPU's access loop, as templates on the translation hardware's concrete type
// (anything with mmu::Mmu's try_hit()): a Translator implementation includes this and
// instantiates Vcpu::run_access_on() for its hardware, so the L1-TLB hit check of every
// access inlines into the loop (translator.hpp). Included by translator implementations
// and vcpu.cpp only.
#pragma once

#include <algorithm>
#include <cstring>

#include "models/common/remainder.hpp"
#include "models/cpu/vcpu.hpp"

namespace hvsim::cpu {

namespace detail {
// splitmix64: a tiny, fully specified generator, so random patterns are the same on
// every platform and standard library.
inline uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Whether the n bytes at p (nullptr: an untouched page, all zeros) all equal b: eight at a
// time, the common 8-byte read in one compare.
inline bool bytes_all(const uint8_t* p, unsigned n, uint8_t b) {
    if (!p) return b == 0;
    const uint64_t pat = 0x0101010101010101ull * b;
    uint64_t v;
    if (n == 8) {
        std::memcpy(&v, p, 8);
        return v == pat;
    }
    unsigned i = 0;
    for (; i + 8 <= n; i += 8) {
        std::memcpy(&v, p + i, 8);
        if (v != pat) return false;
    }
    for (; i < n; ++i)
        if (p[i] != b) return false;
    return true;
}
}  // namespace detail

inline const uint8_t* Vcpu::load_page(Hpa a, unsigned width) {
    if (mem_) return mem_->read_view(hpa_to_pfn(a), a.raw() & kPageMask, width, buf_);
    const uint64_t base = a.raw() & ~kPageMask;
    if (dmi_valid_ && base >= dmi_.get_start_address() && base + kPageSize - 1 <= dmi_.get_end_address()) {
        ++dmi_reads_;
        return dmi_.get_dmi_ptr() + (base - dmi_.get_start_address());
    }
    // buf_ stands for the page; only [off, off + width) is read.
    const uint64_t off = a.raw() & kPageMask;
    data_transport(tlm::TLM_READ_COMMAND, a.raw(), buf_ + off, width, false);
    return buf_;
}

inline void Vcpu::store_fill(Hpa a, uint8_t value, size_t n) {
    if (mem_) return mem_->fill(a, value, n);
    std::memset(buf_, value, n);
    data_transport(tlm::TLM_WRITE_COMMAND, a.raw(), buf_, unsigned(n), true);
}

template <class Hw>
bool Vcpu::one_access(Hw& hw, uint64_t addr, unsigned width, const AccessSpec& a, bool& walked) {
    const auto at = a.write ? mmu::AccessType::write : mmu::AccessType::read;
    bool emulated = false;
    Hpa hpa;
    Cycles tc = 0;
    // The L1-TLB hit path needs no fault loop and no result record.
    walked = false;
    if (hw.try_hit(Gva(addr), at, &hpa, &tc)) {
        add_cycles(tc);
    } else {
        walked = true;
        auto tr = translate(Gva(addr), at, a.enc, false, &emulated);
        if (!tr) return false;
        hpa = tr->hpa;
    }
    if (emulated) {
        // MMIO with no device model behind it: reads return all-ones, writes vanish.
        ++stats_.mmio_accesses;
        if (!a.write)
            for (unsigned i = 0; i < width; ++i) {
                if (!result_.byte0) result_.byte0 = 0xff;
                else if (*result_.byte0 != 0xff) result_.bytes_mixed = true;
            }
    } else if (a.write) {
        store_fill(hpa, a.value, width);
        ++stats_.writes;
    } else {
        // Reads only need to know whether every byte equals the first one seen.
        const uint8_t* p = load_page(hpa, width);
        const size_t off = hpa.raw() & kPageMask;
        if (!result_.byte0) result_.byte0 = p ? p[off] : 0;
        if (!result_.bytes_mixed) result_.bytes_mixed = !detail::bytes_all(p ? p + off : nullptr, width, *result_.byte0);
        ++stats_.reads;
    }
    ++stats_.accesses;
    ++result_.accesses;
    bool go_on = true;
    if ((stats_.accesses & 0xfff) == 0) {
        progress_.fetch_add(0x1000, std::memory_order_relaxed);
        if (stop_requested()) {
            result_.interrupted = true;
            go_on = false;
        }
    }
    // A store wider than a line (a string store): the first line as any access, each
    // further line at cost.wide_store_line (streamed: its fill overlaps the next).
    // Their lines still enter the caches. MMIO is not cacheable: a flat access.
    Cycles dc = emulated ? cfg_.data_access_cycles : data_cycles(hpa, a.write);
    if (width >= 128) {
        const uint64_t lines = width / 64;
        if (!emulated && cfg_.cache_data)
            for (uint64_t l = 1; l < lines; ++l) (void)caches_.data_cycles(Hpa(hpa.raw() + l * 64), a.write);
        dc += cfg_.wide_store_line_cycles * (lines - 1);
    }
    add_cycles(dc);
    stats_.data_cycles += dc;
    maybe_sync();
    return go_on;
}

template <class Hw>
void Vcpu::run_access_on(Hw& hw, const AccessSpec& a) {
    if (a.size == 0) return;
    // A TD guest that starts addressing its memory through the other alias (shared bit
    // set or clear) has rewritten its PTEs and flushed (set_memory_decrypted() /
    // set_memory_encrypted() -> flush_tlb_kernel_range()); TLB entries carry no shared bit.
    if (cfg_.mmu.shared_gpa_bit) {
        const int enc = a.enc ? 1 : 0;
        if (last_enc_ >= 0 && last_enc_ != enc) xlat_->flush_all();
        last_enc_ = enc;
    }
    if (a.source) return run_replay_on(hw, a);
    using P = AccessSpec::Pattern;
    const unsigned w = a.width ? a.width : (a.pattern == P::seq ? 64u : 8u);
    uint64_t step = a.pattern == P::stride ? a.stride : w;
    if (step == 0) step = w;
    const uint64_t n = planned_accesses(a);
    const uint64_t slots = std::max<uint64_t>(1, a.size / w);
    const Remainder slot_of(slots);   // the same slot as % slots, without a division
    uint64_t rng = a.seed;
    uint64_t off = 0;
    auto next_addr = [&] {
        if (a.pattern == P::random) {
            const uint64_t r = detail::splitmix64(rng);
            return a.gpa.raw() + slot_of(r) * w;
        }
        const uint64_t at = a.gpa.raw() + off;
        off += step;
        if (off >= a.size) off = 0;
        return at;
    };
    // Each address is made one access ahead: while this one is simulated, the host fetches
    // what the next one's walk will read first (Mmu::prefetch_walk(); only after an access
    // that walked, since a run of TLB hits would not use it).
    // (The address made after the last access is not used.)
    uint64_t ahead = next_addr();
    bool walked = false;
    for (uint64_t i = 0; i < n; ++i) {
        const uint64_t addr = ahead;
        ahead = next_addr();
        if (walked) hw.prefetch_walk(Gva(ahead));
        // An access never crosses a page: split it as the CPU splits a misaligned access.
        const uint64_t in_page = kPageSize - (addr & kPageMask);
        if (in_page < w) {
            if (!one_access(hw, addr, unsigned(in_page), a, walked) ||
                !one_access(hw, addr + in_page, unsigned(w - in_page), a, walked)) {
                result_.stopped = true;
                return;
            }
        } else if (!one_access(hw, addr, w, a, walked)) {
            result_.stopped = true;
            return;
        }
    }
}

// Replaying a memory trace: the accesses come from an AddressSource (sim/replay.hpp) instead
// of a synthetic pattern, each translated and performed like any other access.
template <class Hw>
void Vcpu::run_replay_on(Hw& hw, const AccessSpec& a) {
    AccessSpec one = a;   // the trace decides read/write per access
    double carry = 0;     // fractional cycles of instructions not yet charged
    uint64_t n = 0;
    // One record read ahead, as run_access_on() makes its addresses (never past `count`:
    // a record the step does not use is not parsed).
    TraceAccess t, ahead;
    uint64_t ahead_addr = 0;
    auto read_ahead = [&] {
        if ((a.count != 0 && n >= a.count) || !a.source->next(ahead)) return false;
        ++n;
        ahead_addr = a.gpa.raw() + (ahead.offset % a.size);
        return true;
    };
    bool walked = false;
    for (bool more = read_ahead(); more;) {
        t = ahead;
        const uint64_t addr = ahead_addr;
        more = read_ahead();
        if (more && walked) hw.prefetch_walk(Gva(ahead_addr));
        if (a.cycles_per_instruction > 0 && t.instructions) {
            carry += double(t.instructions) * a.cycles_per_instruction;
            const double whole = double(uint64_t(carry));
            add_cycles(Cycles(whole));
            carry -= whole;
        }
        one.write = t.write;
        const uint64_t in_page = kPageSize - (addr & kPageMask);
        const bool ok = in_page < t.width ? one_access(hw, addr, unsigned(in_page), one, walked) &&
                                                one_access(hw, addr + in_page, unsigned(t.width - in_page), one, walked)
                                          : one_access(hw, addr, t.width, one, walked);
        if (!ok) {
            result_.stopped = true;
            return;
        }
    }
}

}  // namespace hvsim::cpu
