// Legacy SEV/SEV-ES memory registration: KVM_MEMORY_ENCRYPT_REG_REGION pins every page
// of a VMM range up front (arch/x86/kvm/svm/sev.c sev_mem_enc_register_region,
// sev_pin_memory, sev_mem_enc_unregister_region).
#include <algorithm>
#include <cerrno>

#include "kernel/error_rule.hpp"
#include "kernel/kvm.hpp"
#include "kernel/process.hpp"

namespace hvsim::kvm {

int Kvm::kvm_vm_ioctl_memory_encrypt_reg_region(const uapi::kvm_enc_region& r, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    // No vendor hook / not an SEV guest -> ENOTTY (size 0 included). sev_guest() is also
    // true for SNP VMs, which KVM does not refuse here. Mirror VMs are not modelled.
    if (!config().sev) return error_rule(-ENOTTY, "KVM_MEMORY_ENCRYPT_*_REGION needs CONFIG_KVM_AMD_SEV (kvm.config.sev=true)");
    if (!arch_->sev_guest()) return error_rule(-ENOTTY, "KVM_MEMORY_ENCRYPT_*_REGION: not an SEV VM (vm.type sev or sev_es)");

    // sev_pin_memory(): size 0 or a wrapping range is EINVAL; the pages spanned by
    // [addr, addr+size) (addr need not be aligned) count against RLIMIT_MEMLOCK.
    if (r.size == 0 || r.addr + r.size < r.addr) return -EINVAL;
    const uint64_t first = r.addr >> kPageShift;
    const uint64_t last = (r.addr + r.size - 1) >> kPageShift;
    const uint64_t npages = last - first + 1;
    const uint64_t limit = config().memlock_limit;
    if (limit && sev_pages_locked_ + npages > (limit >> kPageShift)) return -ENOMEM;
    if (npages > uint64_t(INT32_MAX)) return -EINVAL;

    // pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM): all or nothing (partial -> ENOMEM).
    const uint64_t first_run = proc_.next_pin_seq_;
    const int64_t pinned = proc_.pin_user_pages(Hva(first << kPageShift), npages << kPageShift, ctx);
    if (pinned < 0 || uint64_t(pinned) != npages) return -ENOMEM;
    // sev_clflush_pages(): the pages' cache lines are written back before encryption.
    ctx.charge("clflush_4k", costs().clflush_4k * npages);

    sev_pages_locked_ += npages;
    sev_regions_.push_back({r.addr, r.size, npages});
    // The pages just pinned are the region's anonymous pages (a page of a guest_memfd
    // mapping has no anonymous page and is left out): count their pfns run by run, as
    // the pins of this call record them, instead of looking each page up.
    for (auto it = proc_.pins_.lower_bound(first_run); it != proc_.pins_.end(); ++it) {
        if (it->second.gmem) continue;
        it->second.pages.for_each(first, first + npages, [&](uint64_t s, uint64_t e, Pfn pfn) {
            sev_enc_.pfns.add(pfn.raw(), pfn.raw() + (e - s), 1);
        });
    }
    stats_.sev_regions = sev_regions_.size();
    stats_.sev_pages_pinned = sev_pages_locked_;
    stats_.sev_pages_pinned_peak = std::max(stats_.sev_pages_pinned_peak, sev_pages_locked_);
    return 0;
}

int Kvm::kvm_vm_ioctl_memory_encrypt_unreg_region(const uapi::kvm_enc_region& r, ExecContext& ctx) {
    ctx.charge("ioctl", costs().ioctl);
    if (!config().sev) return error_rule(-ENOTTY, "KVM_MEMORY_ENCRYPT_*_REGION needs CONFIG_KVM_AMD_SEV (kvm.config.sev=true)");
    if (!arch_->sev_guest()) return error_rule(-ENOTTY, "KVM_MEMORY_ENCRYPT_*_REGION: not an SEV VM (vm.type sev or sev_es)");
    // find_enc_region(): an exact {addr, size} match, the first registered one.
    auto it = std::find_if(sev_regions_.begin(), sev_regions_.end(),
                           [&](const EncRegion& e) { return e.uaddr == r.addr && e.size == r.size; });
    if (it == sev_regions_.end()) return -EINVAL;
    // sev_flush_asids()/WBINVD before the pages go back to the host.
    ctx.charge("wbinvd", costs().wbinvd);
    const uint64_t first = it->uaddr >> kPageShift;
    sev_track_pfns(first, it->npages, false);
    proc_.unpin_user_pages(Hva(first << kPageShift), it->npages << kPageShift, ctx);
    sev_pages_locked_ -= it->npages;
    sev_regions_.erase(it);
    stats_.sev_regions = sev_regions_.size();
    stats_.sev_pages_pinned = sev_pages_locked_;
    return 0;
}

// The pfns behind a registered region's pages (anonymous guest RAM; a page of a file
// mapping has no anon page and is left out): the pages whose DRAM fills are decrypted.
void Kvm::sev_track_pfns(uint64_t first_page, uint64_t npages, bool add) {
    // Gather the pages into runs of consecutive pfns (a run goes on across unmapped hva
    // pages), then count each run at once. The table is walked leaf by leaf, not looked up
    // page by page: unregistering 64 GiB visits 1 M leaves instead of 16 M tree searches.
    const int64_t delta = add ? 1 : -1;
    uint64_t run_start = 0, run_len = 0;
    proc_.anon_.for_each_in(first_page << kPageShift, (first_page + npages) << kPageShift,
                            [&](uint64_t, const AnonPage& a) {
                                if (run_len && run_start + run_len == a.pfn.raw()) {
                                    ++run_len;
                                    return;
                                }
                                if (run_len) sev_enc_.pfns.add(run_start, run_start + run_len, delta);
                                run_start = a.pfn.raw();
                                run_len = 1;
                            });
    if (run_len) sev_enc_.pfns.add(run_start, run_start + run_len, delta);
}

void Kvm::sev_unpin_all() {
    CycleCounter discard;
    for (const EncRegion& e : sev_regions_) {
        const uint64_t first = e.uaddr >> kPageShift;
        proc_.unpin_user_pages(Hva(first << kPageShift), e.npages << kPageShift, discard);
    }
    sev_regions_.clear();
    sev_enc_.pfns.clear();
    sev_pages_locked_ = 0;
    stats_.sev_pages_pinned = 0;
}

}  // namespace hvsim::kvm
