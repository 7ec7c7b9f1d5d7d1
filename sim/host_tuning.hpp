// The host memory behind the model's own state. A fault-heavy run grows its structures (the
// patches of first-touched pages, the VMM's page tables, the TDP MMU's tables, the per-fault
// samples) a page at a time, and on a virtualised host much of its time is the kernel
// mapping each fresh 4 KiB page (docs/performance.md). glibc backs its heap with transparent
// huge pages when its glibc.malloc.hugetlb tunable is 1 (glibc 2.35 and later, with THP in
// "madvise" or "always" mode), but reads its tunables only when a program starts.
#pragma once

namespace hvsim {

// Runs the program again, once, with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES,
// unless HVSIM_HOST_THP=0 (a value other than 0 or 1 is an error: one line, exit 2), the tunable is already set, the process runs under valgrind or
// a sanitizer (their allocators ignore it, and valgrind would not follow the new image), or
// glibc predates the tunable. Returns when it does not re-execute (or exec fails). Call it
// first thing in main(): results do not depend on it, only host time.
void reexec_with_host_thp(char* argv[]);
// Whether this process's heap is THP-backed that way: the tunable is in effect (set by
// reexec_with_host_thp() or by the user) on a glibc that knows it, without a sanitizer.
bool host_heap_thp();

}  // namespace hvsim
