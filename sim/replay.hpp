// Memory traces of real programs as vCPU access streams (models/cpu/address_source.hpp):
//   lackey    Valgrind's `--tool=lackey --trace-mem=yes` text: "I  addr,size" (an instruction
//             fetch: counted, not replayed), " L addr,size" (load), " S" (store), " M" (modify:
//             a load then a store); other lines ("==pid== ...") are skipped.
//   champsim  ChampSim's binary trace: 64-byte records (ip, branch flags, 2 destination and 4
//             source registers, 2 destination and 4 source memory addresses); each record is
//             one instruction, each non-zero source address a load and each destination a
//             store of 8 bytes.
// Files are streamed, never loaded whole; .gz, .xz and .zst files through gzip -dc, xz -dc
// and zstd -dc. Addresses are folded onto the step's guest range page by page: page
// (addr / 4 KiB) mod (size / 4 KiB), offset within the page kept, so a program's locality
// within and across nearby pages survives.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "models/cpu/address_source.hpp"

namespace hvsim {

enum class TraceFormat { lackey, champsim };

// Opens `path` for streaming (decompressing by extension). Throws std::runtime_error
// "PATH: cannot open: ..." when it cannot.
std::unique_ptr<cpu::AddressSource> open_trace(const std::string& path, TraceFormat fmt, uint64_t range_size);

}  // namespace hvsim
