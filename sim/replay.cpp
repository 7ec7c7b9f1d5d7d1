#include "sim/replay.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "models/common/types.hpp"
#include "sim/sweep.hpp"

namespace hvsim {

namespace {

bool ends_with(const std::string& s, const char* suf) {
    const size_t n = std::strlen(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// A byte stream from a file, or from a decompressor reading it.
class Stream {
public:
    explicit Stream(const std::string& path) : path_(path) {
        const char* tool = ends_with(path, ".gz") ? "gzip" : ends_with(path, ".xz") ? "xz" : ends_with(path, ".zst") ? "zstd" : nullptr;
        if (FILE* probe = std::fopen(path.c_str(), "rb")) {
            std::fclose(probe);
        } else {
            throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
        }
        if (tool) {
            f_ = popen(fmt::format("{} -dc -- {} 2>/dev/null", tool, shell_quote(path)).c_str(), "r");
            pipe_ = true;
        } else {
            f_ = std::fopen(path.c_str(), "rb");
        }
        if (!f_) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    }
    ~Stream() {
        if (!f_) return;
        if (pipe_) pclose(f_);
        else std::fclose(f_);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    FILE* file() { return f_; }
    // At the end of the data: a decompressor that failed (a corrupt or truncated file) is an
    // error, not a short trace.
    void finish() {
        if (!pipe_ || !f_) return;
        const int st = pclose(f_);
        f_ = nullptr;
        if (st != 0) throw std::runtime_error(fmt::format("{}: decompression failed (corrupt or truncated file)", path_));
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    FILE* f_ = nullptr;
    bool pipe_ = false;
};

uint64_t fold(uint64_t addr, uint64_t pages) {
    return (((addr >> kPageShift) % pages) << kPageShift) | (addr & kPageMask);
}

unsigned width_of(uint64_t size) {
    // A power of two 1..64 covering the access (lackey reports e.g. 10 or 16 for x87/SSE).
    unsigned w = 1;
    while (w < size && w < 64) w <<= 1;
    return w;
}

class LackeyReader final : public cpu::AddressSource {
public:
    LackeyReader(const std::string& path, uint64_t size) : s_(path), pages_(std::max<uint64_t>(1, size >> kPageShift)) {}
    bool next(cpu::TraceAccess& out) override {
        if (pending_store_) {   // the store half of an "M"
            pending_store_ = false;
            out = last_;
            out.write = true;
            out.instructions = 0;
            return true;
        }
        char line[256];
        while (s_.file() && std::fgets(line, sizeof line, s_.file())) {
            ++lineno_;
            const char* p = line;
            if (p[0] == 'I' && p[1] == ' ') {   // an instruction fetch
                ++instr_;
                continue;
            }
            if (p[0] != ' ' || (p[1] != 'L' && p[1] != 'S' && p[1] != 'M') || p[2] != ' ') continue;
            char* end = nullptr;
            const uint64_t addr = std::strtoull(p + 3, &end, 16);
            if (end == p + 3 || *end != ',')
                throw std::runtime_error(fmt::format("{}:{}: expected 'ADDR,SIZE' after '{}', got '{}'", s_.path(),
                                                     lineno_, p[1], std::string(p + 3, std::strcspn(p + 3, "\n"))));
            const uint64_t size = std::strtoull(end + 1, nullptr, 10);
            out.offset = fold(addr, pages_);
            out.width = width_of(size ? size : 1);
            out.write = p[1] == 'S';
            out.instructions = instr_;
            instr_ = 0;
            if (p[1] == 'M') {
                last_ = out;
                pending_store_ = true;
            }
            return true;
        }
        s_.finish();
        return false;
    }

private:
    Stream s_;
    uint64_t pages_;
    uint64_t lineno_ = 0, instr_ = 0;
    bool pending_store_ = false;
    cpu::TraceAccess last_;
};

class ChampSimReader final : public cpu::AddressSource {
public:
    ChampSimReader(const std::string& path, uint64_t size) : s_(path), pages_(std::max<uint64_t>(1, size >> kPageShift)) {}
    bool next(cpu::TraceAccess& out) override {
        for (;;) {
            while (idx_ < queue_.size()) {
                out = queue_[idx_++];
                return true;
            }
            // One record: ip(8) is_branch(1) branch_taken(1) dst_regs(2) src_regs(4)
            // dst_mem(2 x 8) src_mem(4 x 8): 64 bytes, little-endian.
            unsigned char rec[64];
            const size_t got = s_.file() ? std::fread(rec, 1, sizeof rec, s_.file()) : 0;
            if (got == 0) {
                s_.finish();
                return false;
            }
            if (got != sizeof rec)
                throw std::runtime_error(fmt::format("{}: record {}: expected 64 bytes, got {} (not a ChampSim trace?)",
                                                     s_.path(), records_, got));
            ++records_;
            ++instr_;
            queue_.clear();
            idx_ = 0;
            auto u64 = [&](size_t off) {
                uint64_t v;
                std::memcpy(&v, rec + off, 8);
                return v;
            };
            for (size_t i = 0; i < 4; ++i)
                if (const uint64_t a = u64(32 + 8 * i)) queue_.push_back({fold(a, pages_), 8, false, 0});
            for (size_t i = 0; i < 2; ++i)
                if (const uint64_t a = u64(16 + 8 * i)) queue_.push_back({fold(a, pages_), 8, true, 0});
            if (!queue_.empty()) {
                queue_.front().instructions = instr_;
                instr_ = 0;
            }
        }
    }

private:
    Stream s_;
    uint64_t pages_;
    uint64_t records_ = 0, instr_ = 0;
    std::vector<cpu::TraceAccess> queue_;
    size_t idx_ = 0;
};

}  // namespace

std::unique_ptr<cpu::AddressSource> open_trace(const std::string& path, TraceFormat f, uint64_t range_size) {
    if (f == TraceFormat::lackey) return std::make_unique<LackeyReader>(path, range_size);
    return std::make_unique<ChampSimReader>(path, range_size);
}

}  // namespace hvsim
