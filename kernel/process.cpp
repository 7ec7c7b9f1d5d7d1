// The simulated VMM process: fd table, syscalls by fd, and the address space
// (anonymous guest RAM, guest_memfd mmaps, GUP and long-term pins).
#include "kernel/process.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>

#include "kernel/guest_memfd.hpp"
#include "kernel/kvm.hpp"

namespace hvsim::kvm {

namespace {
constexpr uint64_t page_down(uint64_t a) { return a & ~kPageMask; }
constexpr uint64_t page_up(uint64_t a) { return (a + kPageMask) & ~kPageMask; }
}  // namespace

VmmProcess::VmmProcess(PhysMem& mem, HostPageAllocator& alloc, const KvmConfig& cfg, const KvmCosts& costs)
    : mem_(mem), alloc_(alloc), cfg_(cfg), costs_(costs) {
    FileRef f;
    f.kind = FileKind::dev_kvm;
    dev_kvm_fd_ = install_fd(std::move(f));   // 0..2 are stdio: /dev/kvm is 3
}

VmmProcess::~VmmProcess() {
    CycleCounter discard;
    // The MMU may already be gone: detach every VM from it first, and give back what
    // legacy SEV pinned while this process still exists.
    for (auto& w : vms_)
        if (auto k = w.lock()) k->on_process_exit();
    close_all(discard);
}

void VmmProcess::exit_mm(ExecContext& ctx) { close_all(ctx); }

void VmmProcess::close_all(ExecContext& ctx) {
    while (!fds_.empty()) close(fds_.begin()->first, ctx);
    while (!maps_.empty()) {
        const uint64_t s = maps_.begin()->first;
        unmap_range(s, maps_.begin()->second.end, ctx);
    }
    while (!pins_.empty()) {
        const PinRun r = std::move(pins_.begin()->second);
        pins_.erase(pins_.begin());
        r.pages.for_each(0, ~0ull, [&](uint64_t s, uint64_t e, Pfn pfn) { release_pins(r, s, e, pfn, ctx); });
    }
    free_anon_range(0, ~0ull & ~kPageMask, ctx);
    for (auto& [pfn, pins] : anon_orphans_) {
        mem_.discard(Pfn(pfn));
        alloc_.free(Pfn(pfn), 0);
    }
    anon_orphans_.clear();
    zero_pages_.clear();
    huge_zero_regions_.clear();
    if (zero_pfn_) alloc_.free(*zero_pfn_, 0);
    if (huge_zero_pfn_) alloc_.free(*huge_zero_pfn_, 9);
    zero_pfn_.reset();
    huge_zero_pfn_.reset();
}

// ---------------------------------------------------------------------------------
// File descriptors

// alloc_fd(): the lowest free number, searched from files->next_fd (every number below it
// is in use), so opening n files costs n steps, not n^2.
int VmmProcess::install_fd(FileRef f) {
    int fd = std::max(3, next_fd_);
    for (auto it = fds_.lower_bound(fd); it != fds_.end() && it->first == fd; ++it) ++fd;
    next_fd_ = fd + 1;
    fds_.emplace(fd, std::move(f));
    return fd;
}

const FileRef* VmmProcess::fget(int64_t fd) const {
    if (fd < 0 || fd > INT_MAX) return nullptr;
    auto it = fds_.find(int(fd));
    return it == fds_.end() ? nullptr : &it->second;
}

int VmmProcess::memfd_create() {
    FileRef f;
    f.kind = FileKind::memfd;
    return install_fd(std::move(f));
}

int VmmProcess::invalid_fd() const {
    int fd = std::max(3, next_fd_);
    for (auto it = fds_.lower_bound(fd); it != fds_.end() && it->first == fd; ++it) ++fd;
    return fd;
}

int VmmProcess::close(int fd, ExecContext& ctx) {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return -EBADF;
    FileRef f = std::move(it->second);
    // __put_unused_fd(): a freed number below the hint becomes the next candidate.
    if (it->first < next_fd_) next_fd_ = it->first;
    fds_.erase(it);
    // The implicit whole-file mapping made for host accesses by fd goes with the fd, so
    // closing a guest_memfd releases it as a selftest's close() would.
    if (auto w = gmem_whole_maps_.find(fd); w != gmem_whole_maps_.end()) {
        const Hva at = w->second;
        gmem_whole_maps_.erase(w);
        auto m = maps_.find(at.raw());
        if (m != maps_.end() && m->second.gmem == f.gmem) unmap_range(m->first, m->second.end, ctx);
    }
    if (f.kind == FileKind::guest_memfd) f.gmem->fput(ctx);
    // VM fd: kvm_vm_release() -> kvm_put_kvm(); guest_memfds keep the VM alive.
    return 0;
}

std::shared_ptr<Kvm> VmmProcess::vm(int fd) const {
    const FileRef* f = fget(fd);
    return f && f->kind == FileKind::vm ? f->kvm : nullptr;
}

std::shared_ptr<GuestMemfd> VmmProcess::gmem(int fd) const {
    const FileRef* f = fget(fd);
    return f && f->kind == FileKind::guest_memfd ? f->gmem : nullptr;
}

// ---------------------------------------------------------------------------------
// ioctls by fd: resolve the file the way the VFS and KVM's fops do.

namespace {
// An ioctl on a file without that ioctl: /dev/kvm answers EINVAL for unknown ioctls
// (kvm_dev_ioctl default), other files ENOTTY (no unlocked_ioctl or no such command).
int wrong_file_ioctl(const FileRef& f) { return f.kind == FileKind::dev_kvm ? -EINVAL : -ENOTTY; }
}  // namespace

int VmmProcess::ioctl_create_vm(uint64_t type, ExecContext& ctx) {
    std::shared_ptr<Kvm> k;
    const int r = Kvm::create(type, *this, ctx, k);
    if (r) return r;
    FileRef f;
    f.kind = FileKind::vm;
    f.kvm = std::move(k);
    return install_fd(std::move(f));
}

int64_t VmmProcess::ioctl_check_extension(int fd, int64_t cap, ExecContext& ctx) {
    ctx.charge("ioctl", costs_.ioctl);
    const FileRef* f = fget(fd);
    if (!f) return -EBADF;
    if (f->kind == FileKind::dev_kvm) return Kvm::kvm_dev_check_extension(cfg_, cap);
    if (f->kind == FileKind::vm) return f->kvm->kvm_vm_ioctl_check_extension(cap);
    return -ENOTTY;
}

#define HVSIM_VM_IOCTL(call)                               \
    const FileRef* f = fget(vmfd);                         \
    if (!f) {                                              \
        ctx.charge("ioctl", costs_.ioctl);                 \
        return -EBADF;                                     \
    }                                                      \
    if (f->kind != FileKind::vm) {                         \
        ctx.charge("ioctl", costs_.ioctl);                 \
        return wrong_file_ioctl(*f);                       \
    }                                                      \
    return f->kvm->call

int VmmProcess::ioctl_set_user_memory_region(int vmfd, const uapi::kvm_userspace_memory_region& m, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_set_memory_region(m, ctx));
}

int VmmProcess::ioctl_set_user_memory_region2(int vmfd, const uapi::kvm_userspace_memory_region2& m, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_set_memory_region2(m, ctx));
}

int VmmProcess::ioctl_create_guest_memfd(int vmfd, const uapi::kvm_create_guest_memfd& a, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_gmem_create(a, ctx));
}

int VmmProcess::ioctl_set_memory_attributes(int vmfd, const uapi::kvm_memory_attributes& a, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_set_mem_attributes(a, ctx));
}

int VmmProcess::ioctl_memory_encrypt_reg_region(int vmfd, const uapi::kvm_enc_region& r, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_memory_encrypt_reg_region(r, ctx));
}

int VmmProcess::ioctl_memory_encrypt_unreg_region(int vmfd, const uapi::kvm_enc_region& r, ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_memory_encrypt_unreg_region(r, ctx));
}

int VmmProcess::ioctl_get_dirty_log(int vmfd, const uapi::kvm_dirty_log& l, std::vector<uint64_t>& bitmap,
                                    ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_get_dirty_log(l, bitmap, ctx));
}

int VmmProcess::ioctl_clear_dirty_log(int vmfd, const uapi::kvm_clear_dirty_log& l, const std::vector<uint64_t>& bitmap,
                                      ExecContext& ctx) {
    HVSIM_VM_IOCTL(kvm_vm_ioctl_clear_dirty_log(l, bitmap, ctx));
}

#undef HVSIM_VM_IOCTL

int VmmProcess::ioctl_set_memory_attributes2(int fd, uapi::kvm_memory_attributes2& a, ExecContext& ctx) {
    const FileRef* f = fget(fd);
    if (!f || f->kind != FileKind::guest_memfd) {
        ctx.charge("ioctl", costs_.ioctl);
        return !f ? -EBADF : wrong_file_ioctl(*f);
    }
    return f->gmem->kvm_gmem_set_attributes2(a, ctx);
}

int VmmProcess::fallocate(int fd, int mode, uint64_t offset, uint64_t len, ExecContext& ctx) {
    using namespace uapi;
    ctx.charge("ioctl", costs_.ioctl);
    const FileRef* f = fget(fd);
    if (!f) return -EBADF;
    // vfs_fallocate(): argument and mode checks common to every file.
    if (int64_t(offset) < 0 || int64_t(len) <= 0) return -EINVAL;
    constexpr int kWriteZeroes = 0x80;
    constexpr int kModeMask = uapi::falloc::PUNCH_HOLE | uapi::falloc::COLLAPSE_RANGE | uapi::falloc::ZERO_RANGE |
                              uapi::falloc::INSERT_RANGE | uapi::falloc::UNSHARE_RANGE | kWriteZeroes;
    if (mode & ~(kModeMask | uapi::falloc::KEEP_SIZE)) return -EOPNOTSUPP;
    switch (mode & kModeMask) {
    case 0:
    case uapi::falloc::UNSHARE_RANGE:
    case uapi::falloc::ZERO_RANGE: break;
    case uapi::falloc::PUNCH_HOLE:
        if (!(mode & uapi::falloc::KEEP_SIZE)) return -EOPNOTSUPP;
        break;
    case uapi::falloc::COLLAPSE_RANGE:
    case uapi::falloc::INSERT_RANGE:
    case kWriteZeroes:
        if (mode & uapi::falloc::KEEP_SIZE) return -EOPNOTSUPP;
        break;
    default: return -EOPNOTSUPP;
    }
    // /dev/kvm and VM fds are anonymous inodes, not regular files.
    if (f->kind == FileKind::dev_kvm || f->kind == FileKind::vm) return -ENODEV;
    if (int64_t(offset + len) < 0) return -EFBIG;
    if (f->kind == FileKind::memfd) return 0;   // shmem: contents not modelled
    return f->gmem->kvm_gmem_fallocate(mode, offset, len, ctx);
}

// ---------------------------------------------------------------------------------
// mmap / munmap

std::map<uint64_t, VmmProcess::Mapping>::iterator VmmProcess::mapping_at(uint64_t hva) {
    auto it = maps_.upper_bound(hva);
    if (it == maps_.begin()) return maps_.end();
    --it;
    return it->second.end > hva ? it : maps_.end();
}

VmmProcess::MmapResult VmmProcess::mmap(int fd, uint64_t offset, uint64_t size, bool shared, ExecContext& ctx,
                                        std::optional<Hva> fixed) {
    MmapResult res;
    ctx.charge("mmap", costs_.mmap);
    const FileRef* f = fget(fd);
    if (!f) return {-EBADF, Hva()};
    if (size == 0 || (offset & kPageMask)) return {-EINVAL, Hva()};
    if (fixed && (fixed->raw() & kPageMask)) return {-EINVAL, Hva()};
    const uint64_t len = page_up(size);
    // do_mmap(): a length beyond the address space is ENOMEM, and an offset whose last page
    // index wraps, or that ends beyond the largest file size, is EOVERFLOW.
    if (len < size || len > kTaskSizeMax ||
        (fixed && (fixed->raw() + len < fixed->raw() || fixed->raw() + len > kTaskSizeMax)))
        return {-ENOMEM, Hva()};
    if ((offset >> kPageShift) + (len >> kPageShift) < (offset >> kPageShift)) return {-EOVERFLOW, Hva()};
    // file_mmap_ok(): the mapping must end within MAX_LFS_FILESIZE (LLONG_MAX on 64-bit).
    constexpr uint64_t kMaxLfsFileSize = uint64_t(INT64_MAX);
    if (len > kMaxLfsFileSize || (offset >> kPageShift) > ((kMaxLfsFileSize - len) >> kPageShift))
        return {-EOVERFLOW, Hva()};
    switch (f->kind) {
    case FileKind::dev_kvm:
    case FileKind::vm: return {-ENODEV, Hva()};   // no .mmap in kvm_chardev_ops / kvm_vm_fops
    case FileKind::guest_memfd:
        if (const int r = f->gmem->kvm_gmem_mmap(shared)) return {r, Hva()};
        break;
    case FileKind::memfd: break;
    }
    std::shared_ptr<GuestMemfd> g = f->kind == FileKind::guest_memfd ? f->gmem : nullptr;
    uint64_t at;
    if (fixed) {
        at = fixed->raw();
        unmap_range(at, at + len, ctx);   // MAP_FIXED replaces what was there
    } else {
        at = mmap_next_;
        for (;;) {   // skip over MAP_FIXED mappings placed in the mmap area
            auto it = maps_.lower_bound(at);
            auto prev = it == maps_.begin() ? maps_.end() : std::prev(it);
            if (prev != maps_.end() && prev->second.end > at) { at = prev->second.end; continue; }
            if (it != maps_.end() && it->first < at + len) { at = it->second.end; continue; }
            break;
        }
        if (at + len < at || at + len > kTaskSizeMax) return {-ENOMEM, Hva()};   // no room left
        mmap_next_ = at + len;
    }
    Mapping m;
    m.end = at + len;
    m.kind = f->kind;
    m.gmem = g;
    m.pgoff = offset >> kPageShift;
    if (g) g->fget();
    maps_.emplace(at, std::move(m));
    ++stats_.mmaps;
    res.addr = Hva(at);
    return res;
}

int VmmProcess::munmap(Hva addr, uint64_t size, ExecContext& ctx) {
    ctx.charge("mmap", costs_.mmap);
    // __vm_munmap() -> do_vmi_munmap(): unaligned, empty or beyond TASK_SIZE is EINVAL.
    if ((addr.raw() & kPageMask) || size == 0) return -EINVAL;
    if (addr.raw() > kTaskSizeMax || page_up(size) > kTaskSizeMax - addr.raw() || page_up(size) < size) return -EINVAL;
    const uint64_t end = addr.raw() + page_up(size);
    unmap_range(addr.raw(), end, ctx);
    return 0;
}

uint64_t VmmProcess::drop_mapping_ptes(Mapping& m, uint64_t first_idx, uint64_t end_idx, ExecContext& ctx) {
    // zap_pte_range() over the mapping's PTEs: each page drops the mapping's reference on it.
    uint64_t n = 0;
    m.ptes.for_each(first_idx, end_idx, [&](uint64_t s, uint64_t e, Pfn) {
        if (m.gmem)
            for (uint64_t idx = s; idx < e; ++idx) m.gmem->host_map_put(idx);
        n += e - s;
    });
    if (!n) return 0;
    m.ptes.erase(first_idx, end_idx);
    ctx.charge("host_unmap_page", costs_.host_unmap_page * n);
    return n;
}

void VmmProcess::unmap_range(uint64_t start, uint64_t end, ExecContext& ctx) {
    // Zero-page mappings in the range go; KVM drops what it mapped from there (the MMU
    // notifier of zap_page_range), then anonymous pages go (pinned ones live on until
    // unpinned).
    bool notify = false;
    if (zero_pages_.any_in(page_up(start) >> kPageShift, page_up(end) >> kPageShift)) {
        zero_pages_.erase(page_up(start) >> kPageShift, page_up(end) >> kPageShift);
        notify = true;
    }
    for (auto h = huge_zero_regions_.lower_bound(start & ~((2ull << 20) - 1));
         h != huge_zero_regions_.end() && *h < end;) {
        h = huge_zero_regions_.erase(h);
        notify = true;
    }
    if (anon_.any_in(start, end)) notify = true;
    if (notify) mmu_notifier_invalidate(start, end, ctx);
    free_anon_range(page_up(start), end, ctx);
    // Explicit mappings: cut [start, end) out of each, keeping what is left on each side.
    std::vector<uint64_t> hit;
    for (auto it = maps_.begin(); it != maps_.end(); ++it)
        if (it->first < end && it->second.end > start) hit.push_back(it->first);
    for (uint64_t ms : hit) {
        auto node = maps_.extract(ms);
        Mapping m = std::move(node.mapped());
        const uint64_t me = m.end;
        const uint64_t cut_s = std::max(ms, start), cut_e = std::min(me, end);
        const uint64_t idx_s = m.pgoff + ((cut_s - ms) >> kPageShift);
        const uint64_t idx_e = m.pgoff + ((cut_e - ms) >> kPageShift);
        drop_mapping_ptes(m, idx_s, idx_e, ctx);
        ++stats_.munmaps;
        const bool left = ms < start, right = me > end;
        if (right) {
            Mapping r;
            r.end = me;
            r.kind = m.kind;
            r.gmem = m.gmem;
            r.pgoff = idx_e;
            m.ptes.for_each(idx_e, ~0ull, [&](uint64_t s, uint64_t e, Pfn pfn) { r.ptes.assign(s, e, pfn); });
            m.ptes.erase(idx_e, ~0ull);
            if (r.gmem) r.gmem->fget();
            maps_.emplace(end, std::move(r));
        }
        if (left) {
            m.end = start;
            maps_.emplace(ms, std::move(m));
        } else if (m.gmem) {
            m.gmem->fput(ctx);   // the mapping's file reference (may release the file)
        }
    }
}

uint64_t VmmProcess::unmap_mapping_range(GuestMemfd& gmem, uint64_t start, uint64_t end, ExecContext& ctx) {
    uint64_t n = 0;
    for (auto& [ms, m] : maps_) {
        if (m.gmem.get() != &gmem) continue;
        n += drop_mapping_ptes(m, start, end, ctx);
    }
    return n;
}

// ---------------------------------------------------------------------------------
// The address space

std::optional<Pfn> VmmProcess::replace_anon_page(Hva hva, Pfn pfn) {
    const uint64_t page = page_down(hva.raw());
    AnonPage* a = anon_.find(page);
    if (!a) return std::nullopt;
    const Pfn old = a->pfn;
    a->pfn = pfn;
    // The 2M region is no longer one huge page; pins follow the page they hold.
    thp_regions_.erase(page & ~((2ull << 20) - 1));
    const uint64_t pno = page >> kPageShift;
    for (auto& [seq, r] : pins_)
        if (!r.gmem && r.pages.find(pno) == old) r.pages.assign(pno, pno + 1, pfn);
    return old;
}

std::optional<Pfn> VmmProcess::anon_page(Hva hva) const {
    const AnonPage* a = anon_.find(page_down(hva.raw()));
    if (!a) return std::nullopt;
    return a->pfn;
}

void VmmProcess::mmu_notifier_invalidate(uint64_t start, uint64_t end, ExecContext& ctx) {
    for (auto& w : vms_)
        if (auto k = w.lock()) k->kvm_mmu_notifier_invalidate_range(Hva(start), Hva(end), ctx);
}

GupResult VmmProcess::anon_read_fault(uint64_t hva_page, ExecContext& ctx) {
    // do_anonymous_page() / do_huge_pmd_anonymous_page() for a read: map the shared zero
    // page (the huge zero page when the whole 2M region is empty and THP may use it)
    // read-only; nothing is allocated until the first write.
    GupResult r;
    r.writable = false;
    const uint64_t region = hva_page & ~((2ull << 20) - 1), region_end = region + (2ull << 20);
    auto region_empty = [&] {
        return !anon_.any_in(region, region_end) &&
               !zero_pages_.any_in(region >> kPageShift, region_end >> kPageShift);
    };
    const bool huge = huge_zero_regions_.count(region) ||
                      (thp_ && region_end <= kTaskSizeMax && region_empty());
    if (huge && !huge_zero_pfn_) {
        if ((huge_zero_pfn_ = alloc_.alloc(9)))
            for (uint64_t i = 0; i < 512; ++i) mem_.discard(*huge_zero_pfn_ + i);
    }
    if (huge && huge_zero_pfn_) {
        if (huge_zero_regions_.insert(region).second) {
            ctx.charge("host_fault", costs_.host_fault);
            ++stats_.host_faults;
        }
        r.pfn = *huge_zero_pfn_ + ((hva_page - region) >> kPageShift);
        r.level = PgLevel::k2M;
        return r;
    }
    if (!zero_pfn_) {
        if (!(zero_pfn_ = alloc_.alloc(0))) {
            r.err = -ENOMEM;
            return r;
        }
        mem_.discard(*zero_pfn_);
    }
    if (const uint64_t pn = hva_page >> kPageShift; !zero_pages_.contains(pn)) {
        zero_pages_.assign(pn, pn + 1, 1);
        ctx.charge("host_fault", costs_.host_fault);
        ++stats_.host_faults;
    }
    r.pfn = *zero_pfn_;
    return r;
}

AnonPage* VmmProcess::anon_fault(uint64_t hva_page, ExecContext& ctx) {
    if (AnonPage* a = anon_.find(hva_page)) return a;
    // A write where a read mapped the zero page: copy-on-write. do_huge_pmd_wp_page()
    // splits a huge zero PMD and copies one 4K page (no huge folio); do_wp_page() replaces
    // a zero-page PTE. Either way the old translation goes first (the MMU notifier tells
    // KVM, which zaps its read-only SPTE).
    bool small_only = false;
    const uint64_t zregion = hva_page & ~((2ull << 20) - 1);
    if (!huge_zero_regions_.empty() && huge_zero_regions_.erase(zregion)) {
        mmu_notifier_invalidate(zregion, zregion + (2ull << 20), ctx);
        small_only = true;
    }
    if (const uint64_t pn = hva_page >> kPageShift; !zero_pages_.empty() && zero_pages_.contains(pn)) {
        zero_pages_.erase(pn, pn + 1);
        mmu_notifier_invalidate(hva_page, hva_page + kPageSize, ctx);
        small_only = true;
    }
    if (thp_ && !small_only) {
        // A region with zero-page PTEs has a page table under its PMD: no huge folio.
        small_only = zero_pages_.any_in(zregion >> kPageShift, (zregion + (2ull << 20)) >> kPageShift);
    }
    if (thp_ && !small_only) {
        // do_huge_pmd_anonymous_page(): a huge folio when nothing of the 2M region is
        // populated yet (else the region stays with small pages, as after a split).
        const uint64_t region = hva_page & ~((2ull << 20) - 1);
        const uint64_t region_end = region + (2ull << 20);
        if (region_end <= kTaskSizeMax && !anon_.any_in(region, region_end)) {
            if (const std::optional<Pfn> h = alloc_.alloc(9)) {
                ctx.charge("host_fault", costs_.host_fault);
                ctx.charge("page_alloc", costs_.page_alloc);
                ctx.charge("zero_2m", costs_.zero_2m);
                ++stats_.host_faults;
                ++stats_.thp_allocated;
                mem_.discard_range(*h, 512);            // a fresh folio reads as zeros
                anon_.insert_run(region, 512, *h, 0);   // nothing of the region was mapped
                stats_.anon_pages_allocated += 512;
                thp_regions_.insert(region);
                return anon_.find(hva_page);
            }
            // No free 2 MiB block: fall back to a small page, as the kernel does.
        }
    }
    const std::optional<Pfn> p = alloc_.alloc(0);
    if (!p) return nullptr;
    ctx.charge("host_fault", costs_.host_fault);
    ctx.charge("page_alloc", costs_.page_alloc);
    ctx.charge("zero_4k", costs_.zero_4k);
    mem_.discard(*p);   // a fresh anonymous page reads as zeros
    ++stats_.host_faults;
    ++stats_.anon_pages_allocated;
    return anon_.insert(hva_page, AnonPage{*p, 0});
}

void VmmProcess::free_anon_range(uint64_t start, uint64_t end, ExecContext& ctx) {
    // zap_pte_range() for anonymous pages, in one walk of the table: an unpinned page goes
    // back to the allocator (as runs of consecutive pfns; HostPageAllocator::free_range()
    // leaves the free lists as one-page frees would); a pinned page lives on as an orphan
    // until its last pin goes.
    uint64_t mapped = 0, freed = 0, run_pfn = 0, run_len = 0;
    auto flush = [&] {
        if (!run_len) return;
        mem_.discard_range(Pfn(run_pfn), run_len);
        alloc_.free_range(Pfn(run_pfn), run_len);
        freed += run_len;
        run_len = 0;
    };
    anon_.for_each_in(start, end, [&](uint64_t, const AnonPage& a) {
        ++mapped;
        if (a.pins) {
            anon_orphans_[a.pfn.raw()] += a.pins;
            return;
        }
        if (run_len && run_pfn + run_len == a.pfn.raw()) {
            ++run_len;
            return;
        }
        flush();
        run_pfn = a.pfn.raw();
        run_len = 1;
    });
    flush();
    if (!mapped) return;
    // Freeing part of a huge page splits it: every intact huge page with a page in the range
    // (all 512 of its pages are mapped) is no longer one.
    if (!thp_regions_.empty()) {
        auto first = thp_regions_.lower_bound(start & ~((2ull << 20) - 1));
        thp_regions_.erase(first, thp_regions_.lower_bound(end));
    }
    if (freed) ctx.charge("page_free", costs_.page_free * freed);
    stats_.anon_pages_freed += mapped;
    anon_.erase_range(start, end);
}

GupResult VmmProcess::fault_in(uint64_t hva_page, bool write, ExecContext& ctx) {
    GupResult r;
    if (hva_page >= kTaskSizeMax) {   // not a user address: SIGSEGV, not SIGBUS
        r.err = -EFAULT;
        return r;
    }
    auto m = mapping_at(hva_page);
    if (m != maps_.end() && m->second.kind == FileKind::guest_memfd) {
        Mapping& mp = m->second;
        const uint64_t idx = mp.pgoff + ((hva_page - m->first) >> kPageShift);
        if (const auto p = mp.ptes.find(idx)) {
            r.pfn = *p;
            return r;
        }
        ctx.charge("host_fault", costs_.host_fault);
        ++stats_.host_faults;
        [[maybe_unused]] const GmemPageState before = mp.gmem->page_state(idx);
        Pfn pfn;
        if (const int e = mp.gmem->kvm_gmem_fault_user_mapping(idx, pfn, ctx)) {
            ++stats_.host_sigbus;
            r.err = e == -ENOMEM ? -ENOMEM : -EFAULT;
            r.sigbus = e != -ENOMEM;
            return r;
        }
        mp.ptes.assign(idx, idx + 1, pfn);
        mp.gmem->host_map_get(idx);
        HVSIM_GMEM_TRANSITION(before, mp.gmem->page_state(idx), "host_fault");
        r.pfn = pfn;
        return r;
    }
    // Anonymous memory (implicit guest RAM, or a memfd mapping modelled the same way).
    if (!write && !anon_.contains(hva_page)) return anon_read_fault(hva_page, ctx);
    AnonPage* a = anon_fault(hva_page, ctx);
    if (!a) {
        r.err = -ENOMEM;
        return r;
    }
    r.pfn = a->pfn;
    if (!thp_regions_.empty() && thp_regions_.count(hva_page & ~((2ull << 20) - 1))) r.level = PgLevel::k2M;
    return r;
}

GupResult VmmProcess::get_user_pages(Hva hva, bool write, ExecContext& ctx) {
    ctx.charge("gup_page", costs_.gup_page);
    ++stats_.gup_pages;
    return fault_in(page_down(hva.raw()), write, ctx);
}

void VmmProcess::record_pins(uint64_t call_seq, uint64_t page, uint64_t n, Pfn pfn,
                             const std::shared_ptr<GuestMemfd>& gmem, uint64_t index) {
    // Extend the call's current run when the pages are of the same kind (anonymous, or the
    // same file at the same offset); else open a run. The runs of one call never share a
    // page, so their order among themselves does not matter.
    const uint64_t delta = index - page;
    PinRun* r = nullptr;
    if (!pins_.empty()) {
        auto last = std::prev(pins_.end());
        if (last->first >= call_seq && last->second.gmem == gmem && (!gmem || last->second.index_delta == delta))
            r = &last->second;
    }
    if (!r) {
        r = &pins_[next_pin_seq_++];
        r->gmem = gmem;
        r->index_delta = gmem ? delta : 0;
    }
    r->pages.assign(page, page + n, pfn);
    nr_pins_ += n;
    stats_.pins += n;
}

uint64_t VmmProcess::fresh_anon_pages(uint64_t hva_page, uint64_t end) const {
    if (thp_ || hva_page >= kTaskSizeMax) return 0;   // THP folios are per 2M region: the page-by-page path
    end = std::min(end, kTaskSizeMax);
    if (auto m = maps_.upper_bound(hva_page); m != maps_.begin() && std::prev(m)->second.end > hva_page) return 0;
    if (auto m = maps_.lower_bound(hva_page); m != maps_.end()) end = std::min(end, m->first);
    if (const auto a = anon_.next(hva_page)) end = std::min(end, *a);
    if (const auto z = zero_pages_.first_in(hva_page >> kPageShift, ~0ull)) end = std::min(end, *z << kPageShift);
    const uint64_t region = hva_page & ~((2ull << 20) - 1);
    if (auto h = huge_zero_regions_.lower_bound(region); h != huge_zero_regions_.end())
        end = std::min(end, std::max(*h, hva_page));
    return end > hva_page ? (end - hva_page) >> kPageShift : 0;
}

bool VmmProcess::pin_fresh_anon(uint64_t call_seq, uint64_t hva_page, uint64_t n, ExecContext& ctx) {
    // What n write faults of do_anonymous_page() and n pins would do, page for page: the
    // same pages (alloc_bulk() hands out what n alloc(0) calls would), the same cycles.
    const std::vector<HostPageAllocator::PfnRun> runs = alloc_.alloc_bulk(n);
    if (runs.empty()) return false;
    ctx.charge("host_fault", costs_.host_fault * n);
    ctx.charge("page_alloc", costs_.page_alloc * n);
    ctx.charge("zero_4k", costs_.zero_4k * n);
    ctx.charge("pin_page", costs_.pin_page * n);
    uint64_t page = hva_page;
    for (const HostPageAllocator::PfnRun& run : runs) {
        mem_.discard_range(run.first, run.count);   // fresh anonymous pages read as zeros
        anon_.insert_run(page, run.count, run.first, 1);
        record_pins(call_seq, page >> kPageShift, run.count, run.first, nullptr, 0);
        page += run.count << kPageShift;
    }
    stats_.host_faults += n;
    stats_.anon_pages_allocated += n;
    return true;
}

int64_t VmmProcess::pin_user_pages(Hva hva, uint64_t size, ExecContext& ctx) {
    if (size == 0) return 0;
    const uint64_t first = page_down(hva.raw());
    const uint64_t end = page_up(hva.raw() + size);
    if (end <= first) return -EINVAL;
    const uint64_t call_seq = next_pin_seq_;
    const uint64_t pins_before = nr_pins_;
    for (uint64_t page = first; page < end;) {
        if (const uint64_t n = fresh_anon_pages(page, end); n > 1 && pin_fresh_anon(call_seq, page, n, ctx)) {
            page += n << kPageShift;
            continue;
        }
        const GupResult g = fault_in(page, true, ctx);
        if (g.err) {
            // All or nothing: drop what this call pinned, oldest page first.
            while (!pins_.empty() && std::prev(pins_.end())->first >= call_seq) {
                auto it = pins_.lower_bound(call_seq);
                const PinRun r = std::move(it->second);
                pins_.erase(it);
                r.pages.for_each(0, ~0ull, [&](uint64_t s, uint64_t e, Pfn pfn) { release_pins(r, s, e, pfn, ctx); });
            }
            return g.err;
        }
        auto m = mapping_at(page);
        const bool gmem = m != maps_.end() && m->second.kind == FileKind::guest_memfd;
        if (!gmem && g.level == PgLevel::k2M && (page & ((2ull << 20) - 1)) == 0 && end - page >= (2ull << 20)) {
            // An intact transparent huge page, all of it in the range: its 512 pages are
            // consecutive, so they are pinned as one piece (the cycles of 512 pins).
            ctx.charge("pin_page", costs_.pin_page * 512);
            for (uint64_t i = 0; i < 512; ++i) ++anon_.find(page + (i << kPageShift))->pins;
            record_pins(call_seq, page >> kPageShift, 512, g.pfn, nullptr, 0);
            page += 2ull << 20;
            continue;
        }
        ctx.charge("pin_page", costs_.pin_page);
        if (gmem) {
            const uint64_t index = m->second.pgoff + ((page - m->first) >> kPageShift);
            m->second.gmem->pin(index);
            record_pins(call_seq, page >> kPageShift, 1, g.pfn, m->second.gmem, index);
        } else {
            ++anon_.find(page)->pins;
            record_pins(call_seq, page >> kPageShift, 1, g.pfn, nullptr, 0);
        }
        page += kPageSize;
    }
    return int64_t(nr_pins_ - pins_before);
}

void VmmProcess::release_pin(uint64_t hva_page, GuestMemfd* gmem, uint64_t index, Pfn pfn, ExecContext& ctx) {
    ++stats_.unpins;
    if (gmem) {
        gmem->unpin(index, pfn, ctx);
        return;
    }
    AnonPage* a = anon_.find(hva_page);
    if (a && a->pfn == pfn && a->pins) {
        --a->pins;
        return;
    }
    release_orphan_pin(pfn);
}

void VmmProcess::release_orphan_pin(Pfn pfn) {
    auto o = anon_orphans_.find(pfn.raw());
    if (o != anon_orphans_.end() && --o->second == 0) {
        anon_orphans_.erase(o);
        mem_.discard(pfn);
        alloc_.free(pfn, 0);
    }
}

void VmmProcess::release_pins(const PinRun& r, uint64_t s, uint64_t e, Pfn pfn, ExecContext& ctx) {
    if (r.gmem) {
        for (uint64_t p = s; p < e; ++p) release_pin(p << kPageShift, r.gmem.get(), p + r.index_delta, pfn + (p - s), ctx);
        nr_pins_ -= e - s;
        return;
    }
    // Anonymous pages: what release_pin() does page by page, with the table walked leaf by
    // leaf instead of a look-up per page. A page no longer mapped there (or mapped to
    // another page) is an orphan; orphans are looked up only if there are any.
    auto orphans = [&](uint64_t from, uint64_t to) {
        if (anon_orphans_.empty()) return;
        for (uint64_t p = from; p < to; ++p) release_orphan_pin(pfn + (p - s));
    };
    uint64_t next = s;
    anon_.for_each_in(s << kPageShift, e << kPageShift, [&](uint64_t hva, AnonPage& a) {
        const uint64_t p = hva >> kPageShift;
        orphans(next, p);
        const Pfn want = pfn + (p - s);
        if (a.pfn == want && a.pins)
            --a.pins;
        else
            release_orphan_pin(want);
        next = p + 1;
    });
    orphans(next, e);
    stats_.unpins += e - s;
    nr_pins_ -= e - s;
}

int64_t VmmProcess::unpin_user_pages(Hva hva, uint64_t size, ExecContext& ctx) {
    if (size == 0) return 0;
    const uint64_t first = page_down(hva.raw()) >> kPageShift;
    const uint64_t end = page_up(hva.raw() + size) >> kPageShift;
    if (end <= first) return 0;
    // Each page of the range drops its oldest pin: walk the runs oldest first, taking from
    // each the pages of the range that have not dropped a pin yet.
    RangeMap<uint8_t> todo;   // pages still to unpin
    todo.assign(first, end, 1);
    int64_t n = 0;
    struct Piece {
        uint64_t s, e;
        Pfn pfn;
    };
    std::vector<Piece> pieces;
    for (auto it = pins_.begin(); it != pins_.end() && !todo.empty();) {
        PinRun& r = it->second;
        pieces.clear();
        todo.for_each(first, end, [&](uint64_t ts, uint64_t te, uint8_t) {
            r.pages.for_each(ts, te, [&](uint64_t s, uint64_t e, Pfn pfn) { pieces.push_back({s, e, pfn}); });
        });
        for (const Piece& p : pieces) {
            release_pins(r, p.s, p.e, p.pfn, ctx);
            r.pages.erase(p.s, p.e);
            todo.erase(p.s, p.e);
            n += int64_t(p.e - p.s);
        }
        if (r.pages.empty())
            it = pins_.erase(it);
        else
            ++it;
    }
    return n;
}

template <class Fn>
HostAccessResult VmmProcess::access(Hva hva, uint64_t size, bool write, ExecContext& ctx, Fn&& per_chunk,
                                    bool mapped_only) {
    HostAccessResult res;
    uint64_t a = hva.raw();
    const uint64_t end = a + size;
    uint64_t done = 0;
    while (a < end) {
        const uint64_t page = page_down(a);
        const uint64_t n = std::min(end, page + kPageSize) - a;
        std::optional<Pfn> pfn;
        auto m = mapping_at(page);
        if (mapped_only && m == maps_.end()) {
            // No VMA: the page fault handler finds nothing to fault in (SIGSEGV, SEGV_MAPERR).
            res.err = -EFAULT;
            res.sigsegv = true;
            res.fault_hva = Hva(page);
            return res;
        }
        const bool anon = m == maps_.end() || m->second.kind != FileKind::guest_memfd;
        if (anon && !write && page < kTaskSizeMax && !anon_.contains(page)) {
            pfn.reset();   // untouched anonymous memory reads the zero page
        } else {
            const GupResult g = fault_in(page, write, ctx);
            if (g.err) {
                res.err = g.err;
                res.sigbus = g.sigbus;
                res.fault_hva = Hva(page);
                return res;
            }
            pfn = g.pfn;
            // The store reaches physical memory only if the CPU's check lets it: on an SNP
            // host a guest-owned page (or a 2M mapping over a region holding one) is an
            // RMP #PF. Linux has no RMP-specific recovery for a user-mode store (the host
            // series sent SIGBUS, "Unexpected RMP page fault"); the VMM gets SIGBUS here and
            // nothing is written (arch/x86/mm/fault.c; AMD APM vol. 2 §15.36.10).
            if (write && write_check_ && !write_check_->host_write_allowed(*pfn, g.level, ctx)) {
                ++stats_.host_sigbus;
                ++stats_.host_rmp_faults;
                res.err = -EFAULT;
                res.sigbus = true;
                res.rmp_fault = true;
                res.fault_hva = Hva(page);
                return res;
            }
            // pKVM: the host's stage 2 decides whether this page is still the host's.
            if (host_s2_ && host_s2_->host_stage2_access(*pfn, true, ctx) < 0) {
                res.err = -EFAULT;
                res.sigsegv = true;
                res.fault_hva = Hva(page);
                return res;
            }
        }
        per_chunk(pfn, a & kPageMask, n, done);
        a += n;
        done += n;
    }
    return res;
}

namespace {
// The VMM's own copy or memset of n bytes, at a 4 KiB page's cost pro rata (rounded up).
Cycles per_bytes(Cycles per_4k, uint64_t n) { return (per_4k * n + kPageSize - 1) / kPageSize; }
}  // namespace

HostAccessResult VmmProcess::host_read(Hva hva, uint64_t size, ExecContext& ctx) {
    return host_read_impl(hva, size, ctx, false);
}

HostAccessResult VmmProcess::host_read_mapped(Hva hva, uint64_t size, ExecContext& ctx) {
    return host_read_impl(hva, size, ctx, true);
}

HostAccessResult VmmProcess::host_read_impl(Hva hva, uint64_t size, ExecContext& ctx, bool mapped_only) {
    std::vector<uint8_t> keep;
    std::optional<uint8_t> first;
    bool mixed = false;
    uint64_t total = 0;
    uint8_t page[kPageSize];
    HostAccessResult r = access(hva, size, false, ctx, [&](std::optional<Pfn> pfn, uint64_t off, uint64_t n, uint64_t) {
        const uint64_t kept = std::min<uint64_t>(n, HostAccessResult::kHostReadKeep - keep.size());
        if (!pfn) {   // the zero page: nothing to copy or compare byte by byte
            if (!first) first = 0;
            mixed |= *first != 0;
            keep.insert(keep.end(), kept, uint8_t(0));
        } else {
            mem_.read(pfn_to_hpa(*pfn) + off, page, n);
            ctx.charge("copy", per_bytes(costs_.copy_4k, n));   // memcpy out of the mapping
            if (!first) first = page[0];
            for (uint64_t i = 0; i < n && !mixed; ++i) mixed = page[i] != *first;
            keep.insert(keep.end(), page, page + kept);
        }
        total += n;
    }, mapped_only);
    r.bytes = std::move(keep);
    r.bytes_read = total;
    r.first_byte = first;
    r.bytes_mixed = mixed;
    return r;
}

HostAccessResult VmmProcess::host_write(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx) {
    return host_write_impl(hva, size, value, ctx, false);
}

HostAccessResult VmmProcess::host_write_mapped(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx) {
    return host_write_impl(hva, size, value, ctx, true);
}

HostAccessResult VmmProcess::host_write_impl(Hva hva, uint64_t size, uint8_t value, ExecContext& ctx,
                                             bool mapped_only) {
    return access(
        hva, size, true, ctx,
        [&](std::optional<Pfn> pfn, uint64_t off, uint64_t n, uint64_t) {
            mem_.fill(pfn_to_hpa(*pfn) + off, value, n);
            ctx.charge("fill", per_bytes(costs_.fill_4k, n));   // memset through the mapping
        },
        mapped_only);
}

bool VmmProcess::mapped(Hva hva, uint64_t size) {
    const uint64_t end = hva.raw() + size;
    if (end < hva.raw()) return false;
    for (uint64_t a = page_down(hva.raw()); a < end; a += kPageSize) {
        auto m = mapping_at(a);
        if (m == maps_.end()) return false;
        a = std::max(a, page_up(m->second.end) - kPageSize);   // skip to the mapping's last page
    }
    return true;
}

HostAccessResult VmmProcess::host_write_bytes(Hva hva, const uint8_t* src, uint64_t size, ExecContext& ctx) {
    return access(hva, size, true, ctx, [&](std::optional<Pfn> pfn, uint64_t off, uint64_t n, uint64_t at) {
        mem_.write(pfn_to_hpa(*pfn) + off, src + at, n);
        ctx.charge("copy", per_bytes(costs_.copy_4k, n));   // memcpy into the mapping
    });
}

VmmProcess::MmapResult VmmProcess::gmem_host_mapping(int fd, ExecContext& ctx) {
    const FileRef* f = fget(fd);
    if (!f) return {-EBADF, Hva()};
    if (f->kind != FileKind::guest_memfd) return {f->kind == FileKind::memfd ? -EINVAL : -ENODEV, Hva()};
    if (auto w = gmem_whole_maps_.find(fd); w != gmem_whole_maps_.end()) {
        auto m = maps_.find(w->second.raw());
        if (m != maps_.end() && m->second.gmem == f->gmem && m->second.pgoff == 0) return {0, w->second};
        gmem_whole_maps_.erase(w);
    }
    // Map the file and a 2 MiB tail beyond EOF, so accesses past the end fault (SIGBUS)
    // inside the mapping as they do for a selftest that maps more than i_size.
    const uint64_t len = page_up(f->gmem->size()) + (2ull << 20);
    MmapResult r = mmap(fd, 0, len, true, ctx);
    if (!r.err) gmem_whole_maps_[fd] = r.addr;
    return r;
}

// Where a host access through the whole-file mapping of a guest_memfd goes, or the result
// it ends with before touching memory: the mmap error, or SIGBUS for an access that starts
// at or beyond EOF, however far out (the mapping only carries a 2 MiB tail of its own).
std::optional<HostAccessResult> VmmProcess::gmem_access_start(int fd, uint64_t offset, uint64_t size, Hva& hva,
                                                              ExecContext& ctx) {
    const MmapResult m = gmem_host_mapping(fd, ctx);
    HostAccessResult r;
    if (m.err) {
        r.err = m.err;
        return r;
    }
    hva = m.addr + offset;
    const FileRef* f = fget(fd);
    if (size && f && f->kind == FileKind::guest_memfd && offset >= page_up(f->gmem->size())) {
        ++stats_.host_sigbus;
        r.err = -EFAULT;
        r.sigbus = true;
        r.fault_hva = hva;
        return r;
    }
    return std::nullopt;
}

HostAccessResult VmmProcess::host_read_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx) {
    Hva hva;
    if (auto early = gmem_access_start(fd, offset, size, hva, ctx)) return *early;
    return host_read(hva, size, ctx);
}

HostAccessResult VmmProcess::host_write_gmem(int fd, uint64_t offset, uint64_t size, uint8_t value, ExecContext& ctx) {
    Hva hva;
    if (auto early = gmem_access_start(fd, offset, size, hva, ctx)) return *early;
    return host_write(hva, size, value, ctx);
}

int64_t VmmProcess::pin_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx) {
    const MmapResult m = gmem_host_mapping(fd, ctx);
    if (m.err) return m.err;
    return pin_user_pages(m.addr + offset, size, ctx);
}

int64_t VmmProcess::unpin_gmem(int fd, uint64_t offset, uint64_t size, ExecContext& ctx) {
    const MmapResult m = gmem_host_mapping(fd, ctx);
    if (m.err) return m.err;
    return unpin_user_pages(m.addr + offset, size, ctx);
}

}  // namespace hvsim::kvm
