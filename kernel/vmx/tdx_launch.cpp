// The TD's initial memory (arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region() ->
// kvm_gmem_populate() -> tdx_gmem_post_populate()). Two flows (kvm.config.tdx_page_add_in_map):
// 6.19 and later, TDH.MEM.PAGE.ADD runs inside the mirror-root update, so the mirror and the
// secure EPT never diverge; 6.18, the mirror is mapped first (its leaf hook counts the page
// in nr_premapped) and TDH.MEM.PAGE.ADD follows.
#include <cerrno>

#include "kernel/error_rule.hpp"
#include "kernel/guest_memfd.hpp"
#include "kernel/vmx/tdx.hpp"

namespace hvsim::kvm {

namespace {
constexpr uint64_t kTdxExtendMrChunk = 256;   // TDX_EXTENDMR_CHUNKSIZE
}

int KvmTdx::tdx_gmem_post_populate(Gfn gfn, Pfn pfn, std::optional<Pfn> src, ExecContext& ctx) {
    if (page_add_src_) return bug(0);   // KVM_BUG_ON(kvm_tdx->page_add_src)
    if (!src) return -EFAULT;           // get_user_pages_fast() of the source failed
    if (!map_private_pfn_) return -EOPNOTSUPP;
    if (!page_add_in_map_) {
        // 6.18: kvm_tdp_map_page() builds the mirror (SEPT.ADD for missing tables; the leaf
        // hook counts the page), then TDH.MEM.PAGE.ADD copies the source in.
        if (const int r = map_private_pfn_(gfn, pfn, ctx)) return r;
        ctx.charge("tdh_mem_page_add", costs_.seamcall + costs_.page_add);
        const uint64_t err =
            module_.tdh_mem_page_add(tdx::gpa_level(gfn_to_gpa(gfn).raw(), 0), tdr_, pfn_to_hpa(pfn), pfn_to_hpa(*src)).rax;
        if (err) return tdx::is_operand_busy(err) ? -EBUSY : -EIO;
        if (!nr_premapped_) return bug(0);   // KVM_BUG_ON(!atomic64_read(&kvm_tdx->nr_premapped))
        --nr_premapped_;
        return measure_ ? tdx_mr_extend_page(gfn, ctx) : 0;
    }
    // The mirror update's leaf hook (set_external_spte) issues TDH.MEM.PAGE.ADD with this source.
    page_add_src_ = pfn_to_hpa(*src);
    const int r = map_private_pfn_(gfn, pfn, ctx);
    page_add_src_.reset();
    if (r || !measure_) return r;
    return tdx_mr_extend_page(gfn, ctx);
}

int KvmTdx::tdx_mr_extend_page(Gfn gfn, ExecContext& ctx) {
    const uint64_t gpa = gfn_to_gpa(gfn).raw();
    for (uint64_t off = 0; off < kPageSize; off += kTdxExtendMrChunk) {
        ctx.charge("tdh_mr_extend", costs_.seamcall + costs_.mr_extend);
        const uint64_t err = module_.tdh_mr_extend(gpa + off, tdr_).rax;
        if (err) return bug(err);   // TDX_BUG_ON_2(err, TDH_MR_EXTEND, ...)
    }
    return 0;
}

int KvmTdx::tdx_vcpu_init_mem_region(KvmTdxInitMemRegion& r, const std::vector<Pfn>& src, uint32_t flags,
                                     ExecContext& ctx) {
    // Once the TD is finalized, the initial guest memory is fixed.
    if (state_ != TdState::initialized)
        return error_rule(-EINVAL, "tdx_vcpu_init_mem_region(): the TD is already finalized (KVM_TDX_FINALIZE_VM)");
    if (flags & ~KVM_TDX_MEASURE_MEMORY_REGION) return error_rule(-EINVAL, "tdx_vcpu_init_mem_region(): unknown flags");
    const uint64_t bytes = r.nr_pages << kPageShift;
    if ((r.gpa & kPageMask) || !r.nr_pages || r.gpa + bytes <= r.gpa ||
        kvm_.kvm_is_gfn_alias(gpa_to_gfn(Gpa(r.gpa))) || kvm_.kvm_is_gfn_alias(gpa_to_gfn(Gpa(r.gpa + bytes - 1))))
        return error_rule(-EINVAL, "tdx_vcpu_init_mem_region(): gpa unaligned, no pages, wrap, or a shared (aliased) GPA");
    if (src.size() < r.nr_pages) return -EFAULT;
    measure_ = flags & KVM_TDX_MEASURE_MEMORY_REGION;
    int ret = 0;
    size_t i = 0;
    while (r.nr_pages) {
        const long n = kvm_gmem_populate(kvm_, gpa_to_gfn(Gpa(r.gpa)), {src[i]}, 1, ctx);
        if (n < 0) {
            ret = int(n);
            break;
        }
        if (n != 1) {
            ret = -EIO;
            break;
        }
        ++init_mem_pages_;
        ++i;
        r.gpa += kPageSize;
        --r.nr_pages;
    }
    measure_ = false;
    return ret;
}

}  // namespace hvsim::kvm
