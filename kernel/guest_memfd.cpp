// guest_memfd: creation, bindings, the page cache, fallocate, invalidation and release
// (virt/kvm/guest_memfd.c).
#include "kernel/error_rule.hpp"
#include "kernel/guest_memfd.hpp"

#include <cerrno>
#include <stdexcept>
#include <vector>

#include "kernel/kvm.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm {

namespace {

// How long a host fault waiting for filemap_invalidate_lock lets pass between looks. Like
// the SRCU poll, simulated time passing while the holder runs, not work of its own (the
// holder charges its work); a bound turns a model deadlock into an error.
constexpr Cycles kInvalidateLockPollCycles = 100;
constexpr unsigned kInvalidateLockMaxPolls = 10000000;

}  // namespace

// ---------------------------------------------------------------------------------
// Creation (kvm_gmem_create / __kvm_gmem_create)

uint64_t Kvm::kvm_gmem_get_supported_flags() const {
    // MMAP always (with the option); INIT_SHARED where the arch allows it: x86 6.18 only
    // for VMs without private memory. With in-place conversion (vm_memory_attributes
    // false) the guest_memfd tracks shared/private itself, so CoCo VMs may start shared.
    const KvmConfig& cfg = config();
    if (!cfg.guest_memfd) return 0;
    uint64_t f = 0;
    if (cfg.guest_memfd_mmap) f |= uapi::GUEST_MEMFD_FLAG_MMAP;
    if (cfg.guest_memfd_init_shared && (arch_->supports_gmem_init_shared() || !cfg.vm_memory_attributes))
        f |= uapi::GUEST_MEMFD_FLAG_INIT_SHARED;
    return f;
}

int Kvm::kvm_gmem_create(const uapi::kvm_create_guest_memfd& args, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    if (!config().guest_memfd)   // no KVM_CREATE_GUEST_MEMFD in this kernel
        return error_rule(-ENOTTY, "KVM_CREATE_GUEST_MEMFD needs CONFIG_KVM_GUEST_MEMFD (kvm.config.guest_memfd=true)");
    if (args.flags & ~kvm_gmem_get_supported_flags())
        return error_rule(-EINVAL, "kvm_gmem_create: a flag this kernel or VM type does not support (mmap needs "
                                   "kvm.config.guest_memfd_mmap, init_shared kvm.config.guest_memfd_init_shared)");
    // size is a loff_t: <= 0 (so also >= 2^63) or unaligned is EINVAL. reserved[] unchecked.
    if (int64_t(args.size) <= 0 || (args.size & kPageMask)) return -EINVAL;
    ctx.charge("gmem_create", costs().gmem_create);
    auto g = std::make_shared<GuestMemfd>(shared_from_this(), args.size, args.flags, proc_.alloc_ino());
    g->fget();
    FileRef f;
    f.kind = FileKind::guest_memfd;
    f.gmem = std::move(g);
    ++stats_.gmem_created;
    return proc_.install_fd(std::move(f));
}

GuestMemfd::GuestMemfd(std::shared_ptr<Kvm> kvm, uint64_t size, uint64_t flags, uint64_t ino)
    : kvm_(std::move(kvm)), owner_(kvm_.get()), proc_(kvm_->process()), size_(size), flags_(flags), ino_(ino) {
    // In-place conversion: every index has an attribute, PRIVATE unless INIT_SHARED.
    attributes_.assign(0, npages(), init_shared() ? 0 : uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

GuestMemfd::~GuestMemfd() {
    // Only reached once no fd, mapping or pin refers to the file; give back anything left.
    for (auto& [start, run] : page_cache_.runs())
        for (uint64_t i = 0; i < run.end - start; ++i) {
            proc_.mem().discard(run.value + i);
            proc_.allocator().free(run.value + i, 0);
        }
    for (auto& [pfn, pins] : orphans_) {
        proc_.mem().discard(Pfn(pfn));
        proc_.allocator().free(Pfn(pfn), 0);
    }
}

// ---------------------------------------------------------------------------------
// Bindings

int kvm_gmem_bind(Kvm& kvm, kvm_memory_slot& slot, uint32_t fd, uint64_t offset) {
    const FileRef* f = kvm.process().fget(fd);
    if (!f) return -EBADF;
    if (f->kind != FileKind::guest_memfd) return -EINVAL;   // not a guest_memfd
    if (f->gmem->kvm() != &kvm) return -EINVAL;             // another VM's guest_memfd
    return f->gmem->bind(slot, offset);
}

int GuestMemfd::bind(kvm_memory_slot& slot, uint64_t offset) {
    // offset is a loff_t: negative, unaligned or past i_size -> EINVAL.
    if (int64_t(offset) < 0 || (offset & kPageMask)) return -EINVAL;
    const uint64_t bytes = slot.npages << kPageShift;
    if (offset + bytes > size_ || offset + bytes < offset) return -EINVAL;
    const uint64_t start = offset >> kPageShift, end = start + slot.npages;
    // One binding per file page: overlap with another slot's binding is EINVAL up to Linux
    // 7.1, EEXIST from 7.2 (kvm.config.gmem_bind_eexist).
    if (bindings_.any_in(start, end)) return proc_.config().gmem_bind_eexist ? -EEXIST : -EINVAL;
    slot.gmem.file = this;
    slot.gmem.pgoff = start;
    if (supports_mmap()) slot.flags |= KVM_MEMSLOT_GMEM_ONLY;
    bindings_.assign(start, end, &slot);
    return 0;
}

void kvm_gmem_unbind(kvm_memory_slot& slot) {
    // Nothing to do if the file was already released: release cleared every binding.
    if (!slot.gmem.file) return;
    slot.gmem.file->unbind(slot);
}

void GuestMemfd::unbind(kvm_memory_slot& slot) {
    bindings_.erase(slot.gmem.pgoff, slot.gmem.pgoff + slot.npages);
    slot.gmem.file = nullptr;
}

GmemPageState GuestMemfd::page_state(uint64_t index) const {
    const bool priv = kvm_gmem_get_attributes(index) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE;
    if (!page_cache_.contains(index)) return priv ? GmemPageState::hole_private : GmemPageState::hole_shared;
    if (priv) return GmemPageState::private_;
    if (pin_count(index)) return GmemPageState::shared_pinned;
    if (host_map_count(index)) return GmemPageState::shared_mapped;
    return GmemPageState::shared;
}

kvm_memory_slot* GuestMemfd::binding(uint64_t index) const {
    return bindings_.find(index).value_or(nullptr);
}

// ---------------------------------------------------------------------------------
// Page cache

unsigned GuestMemfd::new_folio_order(uint64_t index) const {
    const unsigned order = proc_.config().gmem_max_order;
    if (order == 0) return 0;
    const uint64_t n = 1ull << order, head = index & ~(n - 1);
    if (head + n > npages() || page_cache_.any_in(head, head + n)) return 0;
    return order;
}

unsigned GuestMemfd::folio_order(uint64_t index, uint64_t* head) const {
    auto it = huge_folios_.upper_bound(index);
    if (it != huge_folios_.begin()) {
        --it;
        if (index < it->first + (1ull << it->second)) {
            if (head) *head = it->first;
            return it->second;
        }
    }
    if (head) *head = index;
    return 0;
}

void GuestMemfd::split_huge_folios(uint64_t start, uint64_t end) {
    // The folio starting before start may reach into the range; those starting inside go.
    uint64_t head = 0;
    if (folio_order(start, &head) && head < start) huge_folios_.erase(head);
    huge_folios_.erase(huge_folios_.lower_bound(start), huge_folios_.lower_bound(end));
}

int GuestMemfd::kvm_gmem_get_folio(uint64_t index, Pfn& pfn, ExecContext& ctx) {
    if (auto p = page_cache_.find(index)) {
        pfn = *p;
        return 0;
    }
    // Upstream allocates order-0 folios only. With huge folios (the HugeTLB guest_memfd
    // series) a folio is naturally aligned both in the file and in host physical memory;
    // when the 2 MiB block is not available the file falls back to an order-0 page.
    unsigned order = new_folio_order(index);
    std::optional<Pfn> p = order ? proc_.allocator().alloc(order) : std::nullopt;
    if (!p) {
        order = 0;
        p = proc_.allocator().alloc(0);
    }
    if (!p) return -ENOMEM;
    const uint64_t n = 1ull << order, head = index & ~(n - 1);
    ctx.charge("page_alloc", proc_.costs().page_alloc);
    page_cache_.assign(head, head + n, *p);
    if (order) {
        huge_folios_.emplace(head, order);
        if (kvm_) ++kvm_->stats().gmem_huge_folios;
    }
    nr_pages_ += n;
    if (kvm_) kvm_->stats().gmem_pages_allocated += n;
    pfn = *p + (index - head);
    return 0;
}

void GuestMemfd::kvm_gmem_mark_uptodate(uint64_t index, Pfn pfn, ExecContext& ctx) {
    if (uptodate_.contains(index)) return;
    // A huge folio is cleared and marked uptodate as a whole (kvm_gmem_get_pfn() clears
    // every page of a folio that is not yet uptodate).
    uint64_t head = index;
    const unsigned order = folio_order(index, &head);
    const uint64_t n = 1ull << order;
    const Pfn first = pfn - (index - head);
    if (order == 9 && !uptodate_.any_in(head, head + n)) {
        // A whole 2 MiB folio at once, as a THP is cleared (cost.zero_2m).
        for (uint64_t i = 0; i < n; ++i) proc_.mem().discard(first + i);
        ctx.charge("zero_2m", proc_.costs().zero_2m);
        if (kvm_) kvm_->stats().gmem_pages_zeroed += n;
        uptodate_.assign(head, head + n, true);
        return;
    }
    for (uint64_t i = 0; i < n; ++i) {
        if (uptodate_.contains(head + i)) continue;
        // clear_highpage(): the page may hold a previous owner's bytes.
        proc_.mem().discard(first + i);
        ctx.charge("zero_4k", proc_.costs().zero_4k);
        if (kvm_) ++kvm_->stats().gmem_pages_zeroed;
    }
    uptodate_.assign(head, head + n, true);
}

int kvm_gmem_get_pfn(Kvm& kvm, const kvm_memory_slot& slot, Gfn gfn, Pfn& pfn, int& max_order,
                     ExecContext& ctx) {
    ctx.charge("gmem_get_pfn", kvm.costs().gmem_get_pfn);
    GuestMemfd* file = slot.gmem.file;
    // The file is closed (release cleared slot->gmem.file) or no longer the slot's.
    if (!file || file->released() || file->kvm() != &kvm) return -EFAULT;
    const uint64_t index = gfn - slot.base_gfn + slot.gmem.pgoff;
    if (file->binding(index) != &slot) return -EIO;
    [[maybe_unused]] const GmemPageState before = file->page_state(index);
    int r = file->kvm_gmem_get_folio(index, pfn, ctx);
    if (r) return r;
    HVSIM_GMEM_TRANSITION(before, file->page_state(index), "kvm_gmem_get_pfn");
    file->kvm_gmem_mark_uptodate(index, pfn, ctx);
    // The folio bounds the mapping; a gfn not congruent with its file index modulo the
    // folio cannot be mapped by it at all (the huge-folio series checks the same).
    max_order = int(file->folio_order(index));
    if (max_order && ((gfn.raw() ^ index) & ((1ull << max_order) - 1))) max_order = 0;
    r = kvm.arch().gmem_prepare(kvm, pfn, gfn, max_order, ctx);
    if (r) return r;
    ++kvm.stats().gmem_get_pfn;
    return 0;
}

void GuestMemfd::free_page(Pfn pfn, ExecContext& ctx) {
    proc_.mem().discard(pfn);
    proc_.allocator().free(pfn, 0);
    ctx.charge("page_free", proc_.costs().page_free);
    if (kvm_) ++kvm_->stats().gmem_pages_freed;
}

void GuestMemfd::truncate_range(uint64_t start, uint64_t end, ExecContext& ctx) {
    if (end > npages()) end = npages();
    if (start >= end) return;
    struct Run { uint64_t s, e; Pfn pfn; };
    std::vector<Run> runs;
    page_cache_.for_each(start, end, [&](uint64_t s, uint64_t e, Pfn p) { runs.push_back({s, e, p}); });
    for (const Run& r : runs) {
        // Free contiguous unpinned stretches; a pinned page survives (orphaned) until unpin.
        uint64_t i = r.s;
        while (i < r.e) {
            auto pin = pins_.lower_bound(i);
            const uint64_t stop = (pin != pins_.end() && pin->first < r.e) ? pin->first : r.e;
            if (stop > i) {
                const Pfn first = r.pfn + (i - r.s);
                // kvm_gmem_free_folio() -> kvm_arch_gmem_invalidate() before the page is freed.
                if (kvm_) kvm_->arch().gmem_invalidate(*kvm_, first, first + (stop - i), ctx);
                for (uint64_t k = 0; k < stop - i; ++k) {
                    [[maybe_unused]] const GmemPageState before = page_state(i + k);
                    HVSIM_GMEM_TRANSITION(before, before == GmemPageState::private_ ? GmemPageState::hole_private
                                                                                 : GmemPageState::hole_shared,
                                          "truncate");
                    free_page(first + k, ctx);
                }
            }
            if (stop < r.e) {
                HVSIM_GMEM_TRANSITION(page_state(stop), GmemPageState::hole_shared, "truncate (pinned)");
                orphans_[(r.pfn + (stop - r.s)).raw()] += pin->second;
                pins_.erase(pin);
                i = stop + 1;
            } else {
                i = r.e;
            }
        }
        nr_pages_ -= r.e - r.s;
    }
    page_cache_.erase(start, end);
    uptodate_.erase(start, end);
    split_huge_folios(start, end);
}

void GuestMemfd::host_map_get(uint64_t index) {
    // The page was just faulted in (hole or shared -> shared_mapped is checked by the
    // caller around the whole fault); a private page must never get here.
    if (kvm_gmem_get_attributes(index) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE)
        HVSIM_GMEM_TRANSITION(GmemPageState::private_, GmemPageState::shared_mapped, "host_map");
    ++host_mapped_[index];
}

void GuestMemfd::pin(uint64_t index) {
    [[maybe_unused]] const GmemPageState before = page_state(index);
    ++pins_[index];
    HVSIM_GMEM_TRANSITION(before, page_state(index), "pin");
}

void GuestMemfd::host_map_put(uint64_t index) {
    [[maybe_unused]] const GmemPageState before = page_state(index);
    auto it = host_mapped_.find(index);
    if (it != host_mapped_.end() && --it->second == 0) host_mapped_.erase(it);
    HVSIM_GMEM_TRANSITION(before, page_state(index), "unmap");
}

void GuestMemfd::unpin(uint64_t index, Pfn pfn, ExecContext& ctx) {
    auto cur = page_cache_.find(index);
    auto it = pins_.find(index);
    if (cur && *cur == pfn && it != pins_.end()) {
        [[maybe_unused]] const GmemPageState before = page_state(index);
        if (--it->second == 0) pins_.erase(it);
        HVSIM_GMEM_TRANSITION(before, page_state(index), "unpin");
        return;
    }
    auto o = orphans_.find(pfn.raw());
    if (o != orphans_.end() && --o->second == 0) {
        orphans_.erase(o);
        free_page(pfn, ctx);
    }
}

uint32_t GuestMemfd::pin_count(uint64_t index) const {
    auto it = pins_.find(index);
    return it == pins_.end() ? 0 : it->second;
}

uint32_t GuestMemfd::host_map_count(uint64_t index) const {
    auto it = host_mapped_.find(index);
    return it == host_mapped_.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------------
// Invalidation over the bindings (kvm_gmem_invalidate_begin/end, the guest_memfd invalidation patch)

AttrFilter GuestMemfd::kvm_gmem_get_invalidate_filter() const {
    // 6.18: an INIT_SHARED file backs shared mappings, any other private ones. With
    // in-place conversion one file holds both, so both kinds of mapping go.
    if (!proc_.config().vm_memory_attributes) return AttrFilter::both;
    return init_shared() ? AttrFilter::shared : AttrFilter::private_;
}

void GuestMemfd::invalidate_begin(MmuInvalidation& inv, uint64_t start, uint64_t end, bool set_attributes) {
    bindings_.for_each(start, end, [&](uint64_t s, uint64_t e, kvm_memory_slot* slot) {
        // The clipped run is [max(pgoff, start), min(pgoff + npages, end)): gfns are
        // base_gfn + (index - pgoff), so a slot bound at a file offset maps correctly.
        const Gfn gs = slot->base_gfn + (s - slot->gmem.pgoff);
        const Gfn ge = slot->base_gfn + (e - slot->gmem.pgoff);
        inv.begin();   // first binding: take mmu_lock, kvm_mmu_invalidate_begin()
        // An attribute change goes through the arch hook as a per-VM change does
        // (kvm_arch_pre_set_memory_attributes(): huge-page frames around the range).
        if (set_attributes) inv.pre_set_attributes(*slot, gs, ge);
        else inv.unmap(*slot, gs, ge);
    });
    if (inv.begun()) inv.flush_and_unlock();
}

void GuestMemfd::invalidate_end(MmuInvalidation& inv, uint64_t start, uint64_t end) {
    if (inv.begun() && bindings_.any_in(start, end)) inv.end();
}

// ---------------------------------------------------------------------------------
// fallocate

int GuestMemfd::kvm_gmem_fallocate(int mode, uint64_t offset, uint64_t len, ExecContext& ctx) {
    using namespace uapi;
    // Mode before alignment: only KEEP_SIZE and KEEP_SIZE|PUNCH_HOLE.
    if (!(mode & uapi::falloc::KEEP_SIZE)) return -EOPNOTSUPP;
    if (mode & ~(uapi::falloc::KEEP_SIZE | uapi::falloc::PUNCH_HOLE)) return -EOPNOTSUPP;
    if ((offset & kPageMask) || (len & kPageMask)) return -EINVAL;
    if (kvm_) ++kvm_->stats().gmem_fallocate;
    if (mode & uapi::falloc::PUNCH_HOLE) return kvm_gmem_punch_hole(offset, len, ctx);
    return kvm_gmem_allocate(offset, len, ctx);
}

int GuestMemfd::kvm_gmem_allocate(uint64_t offset, uint64_t len, ExecContext& ctx) {
    // The size is immutable: allocating past EOF (including offset == size) is EINVAL.
    if (offset + len > size_ || offset + len < offset) return -EINVAL;
    const uint64_t start = offset >> kPageShift, end = (offset + len) >> kPageShift;
    // Walk the holes only, so re-allocating an allocated range costs nothing per page.
    std::vector<std::pair<uint64_t, uint64_t>> holes;
    uint64_t cursor = start;
    page_cache_.for_each(start, end, [&](uint64_t s, uint64_t e, Pfn) {
        if (s > cursor) holes.emplace_back(cursor, s);
        cursor = e;
    });
    if (cursor < end) holes.emplace_back(cursor, end);
    for (auto [s, e] : holes)
        for (uint64_t i = s; i < e; ++i) {
            Pfn p;
            [[maybe_unused]] const GmemPageState before = page_state(i);
            if (const int r = kvm_gmem_get_folio(i, p, ctx)) return r;
            HVSIM_GMEM_TRANSITION(before, page_state(i), "fallocate");
        }
    return 0;
}

int GuestMemfd::kvm_gmem_punch_hole(uint64_t offset, uint64_t len, ExecContext& ctx) {
    const uint64_t start = offset >> kPageShift;
    const uint64_t end = (offset + len < offset) ? ~0ull : (offset + len) >> kPageShift;
    if (kvm_) ++kvm_->stats().gmem_punch_hole;
    // filemap_invalidate_lock held across begin..end keeps the bindings stable and host
    // faults out until the pages are gone.
    InvalidateLock lock(*this);
    ctx.charge("mmu_lock", proc_.costs().mmu_lock);
    MmuInvalidation inv(*kvm_, InvalidateCause::punch_hole, kvm_gmem_get_invalidate_filter(), ctx);
    invalidate_begin(inv, start, end);
    // truncate_inode_pages_range(): unmap host PTEs, then drop and free the pages.
    if (start < npages()) {
        proc_.unmap_mapping_range(*this, start, end < npages() ? end : npages(), inv.ctx());
        truncate_range(start, end, inv.ctx());
    }
    invalidate_end(inv, start, end);
    return 0;
}

// ---------------------------------------------------------------------------------
// mmap and host faults

int GuestMemfd::kvm_gmem_mmap(bool shared) const {
    if (!supports_mmap()) return -ENODEV;
    if (!shared) return -EINVAL;   // needs VM_SHARED | VM_MAYSHARE
    return 0;
}

int GuestMemfd::kvm_gmem_fault_user_mapping(uint64_t index, Pfn& pfn, ExecContext& ctx) {
    if (index >= npages()) return -EFAULT;   // VM_FAULT_SIGBUS beyond EOF
    // filemap_invalidate_lock_shared(): a conversion or punch hole in progress finishes
    // first, so the fault sees the attributes it left (a page gone private: SIGBUS).
    for (unsigned polls = 0; invalidate_locked_; ++polls) {
        if (polls == kInvalidateLockMaxPolls)
            throw std::logic_error("host fault waits forever for the guest_memfd invalidate lock");
        ctx.charge("filemap_invalidate_lock", kInvalidateLockPollCycles);
        ctx.sync();
    }
    if (proc_.config().vm_memory_attributes) {
        // 6.18: without INIT_SHARED all of the file is private to the guest.
        if (!init_shared()) return -EFAULT;
    } else if (kvm_gmem_get_attributes(index) & uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE) {
        return -EFAULT;   // in-place conversion: private pages are not host-mappable
    }
    if (const int r = kvm_gmem_get_folio(index, pfn, ctx)) return r;
    kvm_gmem_mark_uptodate(index, pfn, ctx);
    return 0;
}

// ---------------------------------------------------------------------------------
// Release (last reference to the file)

void GuestMemfd::fput(ExecContext& ctx) {
    if (--file_refs_ == 0) kvm_gmem_release(ctx);
}

void GuestMemfd::kvm_gmem_release(ExecContext& ctx) {
    if (released_) return;
    Kvm& kvm = *kvm_;
    // Every bound slot loses its file (later private faults: EFAULT), then everything
    // mapped from the file is zapped: invalidation over pgoff [0, ~0).
    for (auto& [start, run] : bindings_.runs()) run.value->gmem.file = nullptr;
    MmuInvalidation inv(kvm, InvalidateCause::gmem_release, kvm_gmem_get_invalidate_filter(), ctx);
    invalidate_begin(inv, 0, ~0ull);
    invalidate_end(inv, 0, ~0ull);
    bindings_.clear();
    released_ = true;
    ++kvm.stats().gmem_released;
    // The inode goes with its only file: its pages are freed (pinned ones on unpin).
    truncate_range(0, npages(), ctx);
    kvm_.reset();   // kvm_put_kvm(): may destroy the VM if its fd is closed too
}

}  // namespace hvsim::kvm

namespace hvsim::kvm {

long kvm_gmem_populate(Kvm& kvm, Gfn start_gfn, const std::vector<Pfn>& src, long npages, ExecContext& ctx) {
    if (npages <= 0) return -EINVAL;
    // The source, when there is one, covers every page (the ioctl GUPs len bytes).
    if (!src.empty() && src.size() < uint64_t(npages)) return -EINVAL;
    const kvm_memory_slot* slot = kvm.gfn_to_memslot(0, start_gfn);
    if (!slot || !slot->has_gmem()) return -EINVAL;
    GuestMemfd* file = slot->gmem.file;
    if (!file || file->released() || file->kvm() != &kvm) return -EFAULT;
    npages = long(std::min<uint64_t>(uint64_t(npages), slot->base_gfn.raw() + slot->npages - start_gfn.raw()));
    long i = 0;
    int ret = 0;
    for (; i < npages; ++i) {
        const Gfn gfn(start_gfn.raw() + uint64_t(i));
        const uint64_t index = gfn - slot->base_gfn + slot->gmem.pgoff;
        if (file->binding(index) != slot) {
            ret = -EIO;
            break;
        }
        [[maybe_unused]] const GmemPageState before = file->page_state(index);
        Pfn pfn;
        ret = file->kvm_gmem_get_folio(index, pfn, ctx);
        if (ret) break;
        HVSIM_GMEM_TRANSITION(before, file->page_state(index), "kvm_gmem_populate");
        // __kvm_gmem_get_pfn() reports is_prepared: populating twice is refused.
        if (file->uptodate(index)) {
            ret = -EEXIST;
            break;
        }
        // Only memory the VMM made private can receive the initial image (max_order 0).
        if (!kvm.kvm_range_has_memory_attributes(gfn, Gfn(gfn.raw() + 1), uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE,
                                                  uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
            ret = -EINVAL;
            break;
        }
        ret = kvm.arch().gmem_post_populate(kvm, gfn, pfn, src.empty() ? std::nullopt : std::optional<Pfn>(src[i]), ctx);
        if (ret) break;
        file->kvm_gmem_mark_populated(index);
    }
    return ret && i == 0 ? ret : i;
}

}  // namespace hvsim::kvm
