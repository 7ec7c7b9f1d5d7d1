// The simulated VMM process: its file-descriptor table (/dev/kvm, VM, guest_memfd and
// memfd files, numbered like Linux: lowest free number, from 3) and its address space.
// Host virtual addresses not covered by an explicit mapping are the anonymous memory the
// VMM mapped for guest RAM: pages are allocated from HostPageAllocator on first write
// (reads of untouched memory see the zero page), cleared, and backed by real bytes in
// PhysMem. Explicit mappings come from mmap() of a guest_memfd (or a memfd).
//
// The syscall-shaped members (ioctl_*, fallocate, mmap, close) resolve the fd the way
// the kernel does and return -EBADF / -ENOTTY / -ENODEV for the wrong kind of file
// before handing over to the Kvm or GuestMemfd.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "kernel/anon_pages.hpp"
#include "kernel/costs.hpp"
#include "kernel/kvm_config.hpp"
#include "kernel/kvm_host.hpp"
#include "kernel/range_map.hpp"
#include "kernel/stats.hpp"
#include "kernel/uapi.hpp"
#include "models/mem/page_alloc.hpp"
#include "models/mem/phys_mem.hpp"

namespace hvsim::kvm {

class Kvm;
class GuestMemfd;

enum class FileKind : uint8_t { dev_kvm, vm, guest_memfd, memfd };

struct FileRef {
    FileKind kind = FileKind::dev_kvm;
    std::shared_ptr<Kvm> kvm;            // vm
    std::shared_ptr<GuestMemfd> gmem;    // guest_memfd
};

// The host CPU's check of a store to physical memory (SEV-SNP: the RMP's Hypervisor-Owned
// check, AMD APM vol. 2 Table 15-39), installed by the platform. false: the store faults
// (#PF with X86_PF_RMP) and nothing is written; `mapping` is the host mapping's size (a 2M
// mapping needs all 512 pages of its region hypervisor-owned).
class HostWriteCheck {
public:
    virtual ~HostWriteCheck() = default;
    virtual bool host_write_allowed(Pfn pfn, PgLevel mapping, ExecContext& ctx) = 0;
};

// Outcome of a host access through the VMM's mappings.
struct HostAccessResult {
    int err = 0;                         // -EFAULT when the access raised SIGBUS or SIGSEGV
    bool sigbus = false;
    bool rmp_fault = false;              // write: the SIGBUS is the host CPU's RMP #PF
    bool sigsegv = false;                // no VMA there (a named mapping that is not mapped), or pKVM: the page is not the host's (host stage-2 abort at EL0)
    Hva fault_hva;                       // first page that faulted (sigbus, sigsegv)
    // A read streams: it keeps the first kHostReadKeep bytes (tests look at them) and a
    // summary of all of them, so reading N bytes does not cost N bytes of host memory.
    static constexpr uint64_t kHostReadKeep = 64 * 1024;
    std::vector<uint8_t> bytes;          // read: the first bytes, up to kHostReadKeep (and the fault)
    uint64_t bytes_read = 0;             // read: bytes read before the end or the fault
    std::optional<uint8_t> first_byte;   // read: the first byte read
    bool bytes_mixed = false;            // read: not every byte read equals first_byte
};

// The host's own stage 2 under pKVM (kernel/arm64/pkvm.hpp): every host access to a page
// goes through it; a page the host gave away faults (EL2 injects an abort: SIGSEGV for
// the VMM at EL0). 0 or -EPERM.
class HostStage2 {
public:
    virtual ~HostStage2() = default;
    virtual int host_stage2_access(Pfn pfn, bool el0, ExecContext& ctx) = 0;
};

struct GupResult {
    int err = 0;                         // -EFAULT: no page can back hva
    bool sigbus = false;                 // ... because the access would raise SIGBUS
    Pfn pfn;
    PgLevel level = PgLevel::k4K;        // host mapping size: 2M for a transparent huge page, else 4K
    bool writable = true;                // false: the (huge) zero page of a read fault
};

class VmmProcess {
public:
    VmmProcess(PhysMem& mem, HostPageAllocator& alloc, const KvmConfig& cfg, const KvmCosts& costs);
    ~VmmProcess();
    VmmProcess(const VmmProcess&) = delete;
    VmmProcess& operator=(const VmmProcess&) = delete;

    PhysMem& mem() const { return mem_; }
    HostPageAllocator& allocator() const { return alloc_; }
    const KvmConfig& config() const { return cfg_; }
    const KvmCosts& costs() const { return costs_; }
    ProcessStats& stats() { return stats_; }
    const ProcessStats& stats() const { return stats_; }
    // Transparent huge pages for anonymous memory (THP "always", or a VMM that madvises
    // guest RAM MADV_HUGEPAGE as QEMU does): the first touch of a 2M-aligned region
    // allocates and clears a 2 MiB folio, which KVM may then map with one 2M SPTE.
    void set_thp(bool on) { thp_ = on; }
    bool thp() const { return thp_; }

    // ---- file descriptors ----
    int dev_kvm_fd() const { return dev_kvm_fd_; }   // opened at start: 3
    // get_unused_fd_flags() + fd_install(): the lowest free number.
    int install_fd(FileRef f);
    const FileRef* fget(int64_t fd) const;
    // memfd_create(): an ordinary shmem file (a wrong fd for KVM's checks).
    int memfd_create();
    // A descriptor number that is not open (the lowest free one).
    int invalid_fd() const;
    // close(2): drops the fd's file reference (VM: kvm_put_kvm; guest_memfd: release
    // once no mmap holds it either).
    int close(int fd, ExecContext& ctx);
    // Closes every fd and unmaps everything (process exit).
    void exit_mm(ExecContext& ctx);
    // The VM behind a VM fd, if it is one.
    std::shared_ptr<Kvm> vm(int fd) const;
    std::shared_ptr<GuestMemfd> gmem(int fd) const;

    // ---- ioctls and syscalls by fd (-errno on failure) ----
    int ioctl_create_vm(uint64_t type, ExecContext& ctx);                        // on /dev/kvm
    int64_t ioctl_check_extension(int fd, int64_t cap, ExecContext& ctx);        // /dev/kvm or VM
    int ioctl_set_user_memory_region(int vmfd, const uapi::kvm_userspace_memory_region& m, ExecContext& ctx);
    int ioctl_set_user_memory_region2(int vmfd, const uapi::kvm_userspace_memory_region2& m, ExecContext& ctx);
    int ioctl_create_guest_memfd(int vmfd, const uapi::kvm_create_guest_memfd& a, ExecContext& ctx);
    int ioctl_set_memory_attributes(int vmfd, const uapi::kvm_memory_attributes& a, ExecContext& ctx);
    int ioctl_set_memory_attributes2(int fd, uapi::kvm_memory_attributes2& a, ExecContext& ctx);
    int ioctl_get_dirty_log(int vmfd, const uapi::kvm_dirty_log& l, std::vector<uint64_t>& bitmap, ExecContext& ctx);
    int ioctl_clear_dirty_log(int vmfd, const uapi::kvm_clear_dirty_log& l, const std::vector<uint64_t>& bitmap,
                              ExecContext& ctx);
    int ioctl_memory_encrypt_reg_region(int vmfd, const uapi::kvm_enc_region& r, ExecContext& ctx);
    int ioctl_memory_encrypt_unreg_region(int vmfd, const uapi::kvm_enc_region& r, ExecContext& ctx);
    int fallocate(int fd, int mode, uint64_t offset, uint64_t len, ExecContext& ctx);

    struct MmapResult {
        int err = 0;
        Hva addr;
    };
    // mmap(2) of a guest_memfd or memfd at a file offset; `fixed` = MAP_FIXED at that hva
    // (replacing what was there), else the next free hva of the mmap area.
    MmapResult mmap(int fd, uint64_t offset, uint64_t size, bool shared, ExecContext& ctx,
                    std::optional<Hva> fixed = std::nullopt);
    int munmap(Hva addr, uint64_t size, ExecContext& ctx);

    // pKVM: host accesses go through the host stage 2 (null: no EL2 hypervisor).
    void set_host_stage2(HostStage2* s) { host_s2_ = s; }
    // Copy-based conversion under pKVM: the anonymous page behind hva becomes `pfn` (pins
    // move with it); returns the page it replaces, which the caller now owns.
    std::optional<Pfn> replace_anon_page(Hva hva, Pfn pfn);

    // ---- the address space ----
    // get_user_pages() of one page, faulting it in. A read (no FOLL_WRITE) of anonymous
    // memory never written maps the zero page (the huge zero page for an empty 2M region
    // with THP) and returns it read-only; a write allocates (copy-on-write from the zero
    // page, which tells KVM through the MMU notifier).
    GupResult get_user_pages(Hva hva, bool write, ExecContext& ctx);
    // pin_user_pages(FOLL_LONGTERM) of every page in [hva, hva+size): the number of pages
    // pinned, or -errno with nothing left pinned (all or nothing, like sev_pin_memory()).
    int64_t pin_user_pages(Hva hva, uint64_t size, ExecContext& ctx);
    // Drop one pin from every page of [hva, hva+size) that has one: the number dropped.
    int64_t unpin_user_pages(Hva hva, uint64_t size, ExecContext& ctx);
    // Host loads/stores through the VMM's page tables (SIGBUS reported, not raised).
    HostAccessResult host_read(Hva hva, uint64_t size, ExecContext& ctx);
    HostAccessResult host_write(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx);
    HostAccessResult host_write_bytes(Hva hva, const uint8_t* src, uint64_t size, ExecContext& ctx);
    // The same through a MAP_SHARED mapping of the whole guest_memfd (created on first use,
    // as a selftest would mmap it); err = the mmap error if it cannot be mapped.
    HostAccessResult host_read_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx);
    HostAccessResult host_write_gmem(int fd, uint64_t offset, uint64_t size, uint8_t value, ExecContext& ctx);
    // The same through explicit mappings only (a pointer an mmap() returned): a page no
    // mmap covers (never mapped, or munmap()ed since) raises SIGSEGV, as a dereference of
    // a dangling pointer does; a page of the mapping beyond the file's EOF raises SIGBUS
    // (kvm_gmem_fault_user_mapping()). Accesses stop at the first fault.
    HostAccessResult host_read_mapped(Hva hva, uint64_t size, ExecContext& ctx);
    HostAccessResult host_write_mapped(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx);
    // Whether every page of [hva, hva+size) lies in an explicit mapping.
    bool mapped(Hva hva, uint64_t size);
    int64_t pin_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx);
    int64_t unpin_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx);
    // Where the whole-file mapping of a guest_memfd fd lives (mmap error if none possible).
    MmapResult gmem_host_mapping(int fd, ExecContext& ctx);
    std::optional<HostAccessResult> gmem_access_start(int fd, uint64_t offset, uint64_t size, Hva& hva,
                                                      ExecContext& ctx);

    // unmap_mapping_range() for guest_memfd pages [start, end): drops every host PTE of
    // those pages in every mapping (punch hole, conversion to private). Returns PTEs dropped.
    uint64_t unmap_mapping_range(GuestMemfd& gmem, uint64_t start, uint64_t end, ExecContext& ctx);

    // State, for tests and invariants.
    size_t nr_anon_pages() const { return anon_.size(); }
    // Anonymous pages and 2M regions a read mapped to the zero page / huge zero page.
    size_t nr_zero_mapped_pages() const { return zero_pages_.count(0, ~0ull); }
    size_t nr_zero_page_runs() const { return zero_pages_.nodes(); }
    size_t nr_huge_zero_regions() const { return huge_zero_regions_.size(); }
    std::optional<Pfn> anon_page(Hva hva) const;
    size_t nr_mappings() const { return maps_.size(); }
    // Host PTEs of the explicit mappings (pages faulted in), and the runs they are kept as.
    uint64_t nr_mapping_ptes() const {
        uint64_t n = 0;
        for (const auto& [s, m] : maps_) n += m.ptes.count(0, ~0ull);
        return n;
    }
    size_t nr_mapping_pte_runs() const {
        size_t n = 0;
        for (const auto& [s, m] : maps_) n += m.ptes.nodes();
        return n;
    }
    uint64_t nr_pins() const { return nr_pins_; }
    // Pin records (runs of pages pinned by one call); what the scale tests assert on.
    size_t nr_pin_runs() const { return pins_.size(); }

    static constexpr uint64_t kMmapBase = 0x600000000000ull;   // where non-fixed mmaps go

    // Every store the VMM makes to a page goes through this check first (nullptr: none).
    void set_host_write_check(HostWriteCheck* c) { write_check_ = c; }

private:
    struct Mapping {
        uint64_t end = 0;                     // exclusive hva
        FileKind kind = FileKind::guest_memfd;
        std::shared_ptr<GuestMemfd> gmem;     // holds a file reference (fget)
        uint64_t pgoff = 0;                   // file page at the mapping's start
        RangeMap<Pfn> ptes;                   // file page index -> page, faulted in (runs of consecutive pfns)
    };
    // The long-term pins one pin_user_pages() call took on one stretch of anonymous memory
    // or of one guest_memfd mapping: the pinned page of each hva page, as runs (a bulk
    // pin of physically contiguous pages is one node, not a node per page).
    struct PinRun {
        std::shared_ptr<GuestMemfd> gmem;     // null: anonymous pages
        uint64_t index_delta = 0;             // gmem: file index = hva page number + delta
        RangeMap<Pfn> pages;                  // hva page number -> the page pinned
    };

    std::map<uint64_t, Mapping>::iterator mapping_at(uint64_t hva);
    // Resolve one page for a host access: {0, pfn} or {-EFAULT} (SIGBUS).
    GupResult fault_in(uint64_t hva_page, bool write, ExecContext& ctx);
    AnonPage* anon_fault(uint64_t hva_page, ExecContext& ctx);
    // A read fault on anonymous memory never written: the zero page, mapped read-only.
    GupResult anon_read_fault(uint64_t hva_page, ExecContext& ctx);
    // mmu_notifier_invalidate_range_start/end() on [start, end): every VM of this
    // process zaps what it maps from there.
    void mmu_notifier_invalidate(uint64_t start, uint64_t end, ExecContext& ctx);
    // Unmap the anonymous pages of [start, end) (page-aligned): free or orphan each.
    void free_anon_range(uint64_t start, uint64_t end, ExecContext& ctx);
    void unmap_range(uint64_t start, uint64_t end, ExecContext& ctx);
    // The PTEs of file pages [first_idx, end_idx) go: the number dropped.
    uint64_t drop_mapping_ptes(Mapping& m, uint64_t first_idx, uint64_t end_idx, ExecContext& ctx);
    template <class Fn>
    HostAccessResult access(Hva hva, uint64_t size, bool write, ExecContext& ctx, Fn&& per_chunk,
                            bool mapped_only = false);
    HostAccessResult host_read_impl(Hva hva, uint64_t size, ExecContext& ctx, bool mapped_only);
    HostAccessResult host_write_impl(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx, bool mapped_only);
    // unpin_user_page() of one pinned page.
    void release_pin(uint64_t hva_page, GuestMemfd* gmem, uint64_t index, Pfn pfn, ExecContext& ctx);
    // The last pin of an unmapped anonymous page (anon_orphans_) frees it.
    void release_orphan_pin(Pfn pfn);
    // release_pin() of the pages [s, e) (hva page numbers) of run r, pinned from pfn on.
    void release_pins(const PinRun& r, uint64_t s, uint64_t e, Pfn pfn, ExecContext& ctx);
    // Record a pin of [page, page + n) (hva page numbers) on the pages from pfn, taken by the
    // pin_user_pages() call whose first run is `call_seq`.
    void record_pins(uint64_t call_seq, uint64_t page, uint64_t n, Pfn pfn, const std::shared_ptr<GuestMemfd>& gmem,
                     uint64_t index);
    // How many pages from hva_page (up to end) have nothing behind them yet (no mapping,
    // no anonymous or zero page, no THP): what pin_fresh_anon() can fault in at once.
    uint64_t fresh_anon_pages(uint64_t hva_page, uint64_t end) const;
    // Fault in and pin n fresh anonymous pages from hva_page at once; false (nothing done)
    // if the allocator cannot supply them all.
    bool pin_fresh_anon(uint64_t call_seq, uint64_t hva_page, uint64_t n, ExecContext& ctx);
    void close_all(ExecContext& ctx);

    PhysMem& mem_;
    HostPageAllocator& alloc_;
    const KvmConfig& cfg_;
    const KvmCosts& costs_;
    ProcessStats stats_;
    HostWriteCheck* write_check_ = nullptr;

    std::map<int, FileRef> fds_;
    int next_fd_ = 3;   // files->next_fd: no free number below it
    int dev_kvm_fd_ = -1;
    uint64_t next_ino_ = 1;
    std::map<uint64_t, Mapping> maps_;            // start hva -> mapping
    uint64_t mmap_next_ = kMmapBase;
    AnonPageTable anon_;                          // hva page -> page
    bool thp_ = false;
    std::set<uint64_t> thp_regions_;              // 2M-aligned hvas backed by one intact huge page
    std::set<uint64_t> huge_zero_regions_;        // 2M-aligned hvas mapped to the huge zero page
    RangeMap<uint8_t> zero_pages_;                // hva page numbers mapped to the 4K zero page, as runs
    std::optional<Pfn> zero_pfn_, huge_zero_pfn_; // never written, freed at exit
    std::map<uint64_t, uint32_t> anon_orphans_;   // pfn -> pins of an unmapped anonymous page
    // Pins by age (a sequence number per run): unpinning a page drops its oldest pin first.
    std::map<uint64_t, PinRun> pins_;
    uint64_t next_pin_seq_ = 0;
    uint64_t nr_pins_ = 0;
    std::map<int, Hva> gmem_whole_maps_;          // gmem fd -> implicit whole-file mapping
    std::vector<std::weak_ptr<Kvm>> vms_;         // every VM created here (kvm->mm == this)
    HostStage2* host_s2_ = nullptr;

    friend class Kvm;
    friend class GuestMemfd;
    uint64_t alloc_ino() { return next_ino_++; }
};

}  // namespace hvsim::kvm
