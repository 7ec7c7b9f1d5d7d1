#include "kernel/arm64/pkvm_mem_protect.hpp"

#include "models/common/state_graph.hpp"

#include <cerrno>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace hvsim::kvm::arm64 {

using S = PkvmPageState;
using J = PkvmJoint;

const char* pkvm_page_state_name(PkvmPageState s) {
    switch (s) {
    case S::owned: return "OWNED";
    case S::shared_owned: return "SHARED_OWNED";
    case S::shared_borrowed: return "SHARED_BORROWED";
    case S::nopage: return "NOPAGE";
    case S::poison: return "POISON";
    }
    return "?";
}

const char* pkvm_joint_name(PkvmJoint s) {
    switch (s) {
    case J::host_owned: return "host OWNED";
    case J::host_shared_hyp: return "host SHARED_OWNED / hyp SHARED_BORROWED";
    case J::hyp_owned: return "hyp OWNED (host stage-2: annotated, owner hyp)";
    case J::host_shared_ffa: return "host SHARED_OWNED (FF-A)";
    case J::host_shared_guest: return "host SHARED_OWNED / np-guest SHARED_BORROWED";
    case J::guest_owned: return "guest OWNED (host stage-2: annotated, owner guest)";
    case J::guest_shared_host: return "guest SHARED_OWNED / host SHARED_BORROWED";
    }
    return "?";
}

const std::vector<PkvmTransition>& pkvm_transitions() {
    static const std::vector<PkvmTransition> t = {
        {J::host_owned, J::host_shared_hyp, "__pkvm_host_share_hyp"},
        {J::host_shared_hyp, J::host_owned, "__pkvm_host_unshare_hyp"},
        {J::host_owned, J::hyp_owned, "__pkvm_host_donate_hyp"},
        {J::hyp_owned, J::host_owned, "__pkvm_hyp_donate_host"},
        {J::host_owned, J::host_shared_ffa, "__pkvm_host_share_ffa"},
        {J::host_shared_ffa, J::host_owned, "__pkvm_host_unshare_ffa"},
        {J::host_owned, J::host_shared_guest, "__pkvm_host_share_guest"},
        {J::host_shared_guest, J::host_owned, "__pkvm_host_unshare_guest (last share)"},
        {J::host_owned, J::guest_owned, "__pkvm_host_donate_guest"},
        {J::guest_owned, J::guest_shared_host, "MEM_SHARE (__pkvm_guest_share_host)"},
        {J::guest_shared_host, J::guest_owned, "MEM_UNSHARE (__pkvm_guest_unshare_host)"},
        {J::guest_owned, J::host_owned, "__pkvm_host_force_reclaim_page_guest (guest IPA POISON)"},
        {J::guest_owned, J::host_owned, "__pkvm_host_reclaim_page_guest (teardown, zeroed)"},
        {J::guest_shared_host, J::host_owned, "__pkvm_host_reclaim_page_guest (teardown)"},
        {J::guest_owned, J::host_owned, "MEM_RELINQUISH (__pkvm_guest_relinquish_to_host, zeroed)"},
    };
    return t;
}

namespace {
const StateGraph& graph() {
    static const StateGraph g(kNumPkvmJoint, [](int i) { return pkvm_joint_name(PkvmJoint(i)); }, pkvm_transitions());
    return g;
}
}  // namespace

bool pkvm_check_transition(PkvmJoint from, PkvmJoint to) { return graph().allows(int(from), int(to)); }

void write_pkvm_state_dot(std::ostream& os) { graph().write_dot(os, "pkvm_page"); }

std::string pkvm_state_dot() {
    std::ostringstream os;
    write_pkvm_state_dot(os);
    return os.str();
}

// ---------------------------------------------------------------------------------------

PkvmMemProtect::PkvmMemProtect(PhysMem& mem, std::vector<Memblock> memblocks, unsigned page_shift)
    : mem_(mem), blocks_(std::move(memblocks)), page_shift_(page_shift) {
    if (page_shift_ != 12 && page_shift_ != 14 && page_shift_ != 16)
        throw std::invalid_argument("pKVM: PAGE_SHIFT must be 12, 14 or 16 (4K, 16K or 64K pages)");
    for (const auto& b : blocks_) mem_pages_ = std::max(mem_pages_, (b.base + b.size) >> page_shift_);
}

PkvmPageState PkvmMemProtect::host_state(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    return it == pages_.end() ? S::owned : it->second.host;
}
PkvmPageState PkvmMemProtect::hyp_state(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    return it == pages_.end() ? S::nopage : it->second.hyp;
}
uint32_t PkvmMemProtect::hyp_refcount(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    return it == pages_.end() ? 0 : it->second.refcount;
}
uint32_t PkvmMemProtect::share_guest_count(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    return it == pages_.end() ? 0 : it->second.share_guest;
}
PkvmOwner PkvmMemProtect::annotation(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    return it == pages_.end() ? PkvmOwner::host : it->second.annot;
}
PkvmPageState PkvmMemProtect::guest_state(unsigned vm, uint64_t gfn) const {
    auto v = vms_.find(vm);
    if (v == vms_.end()) return S::nopage;
    auto it = v->second.s2.find(gfn);
    return it == v->second.s2.end() ? S::nopage : it->second.state;
}

PkvmJoint PkvmMemProtect::joint(uint64_t pfn) const {
    auto it = pages_.find(pfn);
    if (it == pages_.end()) return J::host_owned;
    const Page& p = it->second;
    if (p.host == S::nopage) return p.annot == PkvmOwner::hyp ? J::hyp_owned : J::guest_owned;
    if (p.host == S::shared_borrowed) return J::guest_shared_host;
    if (p.host == S::shared_owned) {
        if (p.hyp == S::shared_borrowed) return J::host_shared_hyp;
        if (p.share_guest) return J::host_shared_guest;
        return J::host_shared_ffa;
    }
    return J::host_owned;
}

// pfn_range_is_valid() and __host_check_page_state_range()'s memblock checks: a range
// beyond memory or straddling two regions is -EINVAL, NOMAP memory -EPERM.
int PkvmMemProtect::check_range(uint64_t pfn, uint64_t nr) const {
    if (nr == 0 || pfn + nr < pfn || pfn + nr > mem_pages_) return -EINVAL;
    const uint64_t a = pfn << page_shift_, e = (pfn + nr) << page_shift_;
    for (const auto& b : blocks_) {
        if (a >= b.base && a < b.base + b.size) {
            if (e > b.base + b.size) return -EINVAL;
            return b.nomap ? -EPERM : 0;
        }
    }
    return -EPERM;   // not memory
}

namespace {
// Applies a transition and checks it is an edge of the graph.
struct Step {
    PkvmMemProtect& pm;
    uint64_t pfn;
    PkvmJoint before;
    const char* op;
    Step(PkvmMemProtect& p, uint64_t f, const char* o) : pm(p), pfn(f), before(p.joint(f)), op(o) {}
    void done() const {
        const PkvmJoint after = pm.joint(pfn);
        if (!pkvm_check_transition(before, after))
            throw std::logic_error(std::string("pKVM: ") + op + " moved a page " + pkvm_joint_name(before) + " -> " +
                                   pkvm_joint_name(after) + ", not an edge of the ownership graph");
    }
};
}  // namespace

int PkvmMemProtect::__pkvm_host_share_hyp(uint64_t pfn) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, 1)) return refuse(r);
    if (host_state(pfn) != S::owned || hyp_state(pfn) != S::nopage) return refuse(-EPERM);
    Step st(*this, pfn, "__pkvm_host_share_hyp");
    Page& p = page(pfn);
    p.host = S::shared_owned;
    p.hyp = S::shared_borrowed;
    st.done();
    ++stats_.share;
    return 0;
}

int PkvmMemProtect::__pkvm_host_unshare_hyp(uint64_t pfn) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, 1)) return refuse(r);
    if (host_state(pfn) != S::shared_owned || hyp_state(pfn) != S::shared_borrowed) return refuse(-EPERM);
    if (hyp_refcount(pfn)) return refuse(-EBUSY);
    Step st(*this, pfn, "__pkvm_host_unshare_hyp");
    Page& p = page(pfn);
    p.host = S::owned;
    p.hyp = S::nopage;
    st.done();
    ++stats_.unshare;
    return 0;
}

int PkvmMemProtect::hyp_pin_shared_mem(uint64_t pfn) {
    if (host_state(pfn) != S::shared_owned || hyp_state(pfn) != S::shared_borrowed) return refuse(-EPERM);
    ++page(pfn).refcount;
    return 0;
}

int PkvmMemProtect::hyp_unpin_shared_mem(uint64_t pfn) {
    if (!hyp_refcount(pfn)) return refuse(-EINVAL);
    --page(pfn).refcount;
    return 0;
}

int PkvmMemProtect::__pkvm_host_donate_hyp(uint64_t pfn, uint64_t nr) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, nr)) return refuse(r);
    for (uint64_t i = 0; i < nr; ++i)
        if (host_state(pfn + i) != S::owned || hyp_state(pfn + i) != S::nopage) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_host_donate_hyp");
        Page& p = page(pfn + i);
        p.host = S::nopage;
        p.annot = PkvmOwner::hyp;   // host stage-2: DONATION annotation, owner PKVM_ID_HYP
        p.hyp = S::owned;
        st.done();
    }
    ++stats_.donate;
    return 0;
}

int PkvmMemProtect::__pkvm_hyp_donate_host(uint64_t pfn, uint64_t nr) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, nr)) return refuse(r);
    for (uint64_t i = 0; i < nr; ++i)
        if (hyp_state(pfn + i) != S::owned || host_state(pfn + i) != S::nopage) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i)
        if (hyp_refcount(pfn + i)) return refuse(-EBUSY);
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_hyp_donate_host");
        Page& p = page(pfn + i);
        p.host = S::owned;
        p.annot = PkvmOwner::host;   // valid identity mapping again
        p.hyp = S::nopage;
        st.done();
    }
    ++stats_.donate;
    return 0;
}

int PkvmMemProtect::__pkvm_host_share_ffa(uint64_t pfn, uint64_t nr) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, nr)) return refuse(r);
    for (uint64_t i = 0; i < nr; ++i)
        if (host_state(pfn + i) != S::owned) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_host_share_ffa");
        Page& p = page(pfn + i);
        p.host = S::shared_owned;
        p.ffa = true;
        st.done();
    }
    ++stats_.share;
    return 0;
}

int PkvmMemProtect::__pkvm_host_unshare_ffa(uint64_t pfn, uint64_t nr) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, nr)) return refuse(r);
    for (uint64_t i = 0; i < nr; ++i)
        if (host_state(pfn + i) != S::shared_owned || !pages_[pfn + i].ffa) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_host_unshare_ffa");
        Page& p = page(pfn + i);
        p.host = S::owned;
        p.ffa = false;
        st.done();
    }
    ++stats_.unshare;
    return 0;
}

// __guest_check_transition_size(): one page, or one level-2 block (2 MiB, 32 MiB or 512 MiB
// for 4K, 16K or 64K pages) with pfn and gfn aligned to it.
int PkvmMemProtect::__pkvm_host_share_guest(uint64_t pfn, uint64_t gfn, uint64_t nr, unsigned vm, uint32_t prot) {
    ++stats_.hypercalls;
    if (prot & ~7u) return refuse(-EINVAL);
    if (int r = check_range(pfn, nr)) return refuse(r);
    const uint64_t blk = block_pages();
    if (nr != 1 && (nr != blk || (pfn & (blk - 1)) || (gfn & (blk - 1)))) return refuse(-EINVAL);
    Vm& v = vms_[vm];
    for (uint64_t i = 0; i < nr; ++i)
        if (guest_state(vm, gfn + i) != S::nopage) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i) {
        const PkvmPageState h = host_state(pfn + i);
        if (!(h == S::owned && hyp_state(pfn + i) == S::nopage) &&
            !(h == S::shared_owned && share_guest_count(pfn + i) > 0))
            return refuse(-EPERM);
        if (share_guest_count(pfn + i) == std::numeric_limits<uint32_t>::max()) return refuse(-EBUSY);
    }
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_host_share_guest");
        Page& p = page(pfn + i);
        p.host = S::shared_owned;
        ++p.share_guest;
        st.done();
    }
    v.s2[gfn] = GuestPage{pfn, nr, S::shared_borrowed};
    ++stats_.share;
    return 0;
}

int PkvmMemProtect::__pkvm_host_unshare_guest(uint64_t gfn, uint64_t nr, unsigned vm) {
    ++stats_.hypercalls;
    if (nr != 1 && nr != block_pages()) return refuse(-EINVAL);
    Vm& v = vms_[vm];
    auto it = v.s2.find(gfn);
    if (it == v.s2.end()) return refuse(-ENOENT);
    if (it->second.nr != nr) return refuse(-E2BIG);
    if (it->second.state != S::shared_borrowed) return refuse(-EPERM);
    const uint64_t pfn = it->second.pfn;
    for (uint64_t i = 0; i < nr; ++i)
        if (host_state(pfn + i) != S::shared_owned) return refuse(-EPERM);
    for (uint64_t i = 0; i < nr; ++i) {
        Step st(*this, pfn + i, "__pkvm_host_unshare_guest");
        Page& p = page(pfn + i);
        if (--p.share_guest == 0) p.host = S::owned;
        st.done();
    }
    v.s2.erase(it);   // guest stage-2 unmapped (BBM + TLBI in the real thing)
    ++stats_.unshare;
    return 0;
}

int PkvmMemProtect::__pkvm_host_donate_guest(uint64_t pfn, uint64_t gfn, unsigned vm) {
    ++stats_.hypercalls;
    if (int r = check_range(pfn, 1)) return refuse(r);
    if (host_state(pfn) != S::owned || hyp_state(pfn) != S::nopage) return refuse(-EPERM);
    if (guest_state(vm, gfn) != S::nopage) return refuse(-EPERM);   // POISON is not NOPAGE
    Vm& v = vms_[vm];
    if (v.dying) return refuse(-EPERM);
    Step st(*this, pfn, "__pkvm_host_donate_guest");
    Page& p = page(pfn);
    p.host = S::nopage;
    p.annot = PkvmOwner::guest;   // DONATION annotation: owner guest, VM handle and gfn
    p.vm = vm;
    p.gfn = gfn;
    st.done();
    v.s2[gfn] = GuestPage{pfn, 1, S::owned};   // mapped RWX, PAGE_SIZE
    ++stats_.donate;
    return 0;
}

// The checks every guest hypercall on one page starts with (__pkvm_guest_share_host(),
// __pkvm_guest_unshare_host(), Android's __pkvm_guest_relinquish_to_host()): the guest's leaf
// at gfn, POISONED -EHWPOISON, none -ENOENT, not a page -E2BIG, not in state `want` -EPERM.
int PkvmMemProtect::guest_leaf(unsigned vm, uint64_t gfn, PkvmPageState want, GuestPage*& out) {
    Vm& v = vms_[vm];
    auto it = v.s2.find(gfn);
    if (it != v.s2.end() && it->second.state == S::poison) return -EHWPOISON;
    if (it == v.s2.end()) return -ENOENT;
    if (it->second.nr != 1) return -E2BIG;
    if (it->second.state != want) return -EPERM;
    out = &it->second;
    return 0;
}

// A page leaves a guest for the host: zeroed first when the guest's data is in it, then the
// host's own again (OWNED, its stage-2 annotation replaced by a valid identity entry).
void PkvmMemProtect::give_back_to_host(uint64_t pfn, bool zero, const char* op) {
    Step st(*this, pfn, op);
    // The guest's data never reaches the host: the whole PAGE_SIZE page is zeroed.
    if (zero) mem_.fill(Hpa(pfn << page_shift_), 0, page_size());
    Page& p = page(pfn);
    p.host = S::owned;
    p.annot = PkvmOwner::host;
    st.done();
    ++stats_.reclaim;
}

int PkvmMemProtect::__pkvm_guest_share_host(unsigned vm, uint64_t gfn) {
    ++stats_.hypercalls;
    GuestPage* g = nullptr;
    if (int r = guest_leaf(vm, gfn, S::owned, g)) return refuse(r);
    if (host_state(g->pfn) != S::nopage) return refuse(-EPERM);
    Step st(*this, g->pfn, "MEM_SHARE");
    Page& p = page(g->pfn);
    p.host = S::shared_borrowed;
    p.annot = PkvmOwner::host;   // the annotation is replaced by a valid identity mapping
    st.done();
    g->state = S::shared_owned;   // a software-bit update of the guest leaf
    ++stats_.share;
    return 0;
}

int PkvmMemProtect::__pkvm_guest_unshare_host(unsigned vm, uint64_t gfn) {
    ++stats_.hypercalls;
    GuestPage* g = nullptr;
    if (int r = guest_leaf(vm, gfn, S::shared_owned, g)) return refuse(r);
    if (host_state(g->pfn) != S::shared_borrowed) return refuse(-EPERM);
    Step st(*this, g->pfn, "MEM_UNSHARE");
    Page& p = page(g->pfn);
    p.host = S::nopage;
    p.annot = PkvmOwner::guest;   // annotated again (BBM + TLBI of the host's VMID 0)
    p.vm = vm;
    p.gfn = gfn;
    st.done();
    g->state = S::owned;
    ++stats_.unshare;
    return 0;
}

int PkvmMemProtect::__pkvm_host_force_reclaim_page_guest(uint64_t phys) {
    ++stats_.hypercalls;
    const uint64_t pfn = phys >> page_shift_;
    if (check_range(pfn, 1)) return refuse(-EFAULT);
    const PkvmPageState h = host_state(pfn);
    if (h == S::owned || h == S::shared_owned || h == S::shared_borrowed) return refuse(-EAGAIN);
    if (h != S::nopage) return refuse(-EPERM);
    Page& p = page(pfn);
    if (p.annot != PkvmOwner::guest) return refuse(-EPERM);
    auto v = vms_.find(p.vm);
    if (v == vms_.end()) return refuse(-EAGAIN);
    auto it = v->second.s2.find(p.gfn);
    if (it == v->second.s2.end() || it->second.state != S::owned) return refuse(-EPERM);
    // The guest's secret must not reach the host: zeroed (and cleaned to PoC) first.
    give_back_to_host(pfn, true, "__pkvm_host_force_reclaim_page_guest");
    it->second.state = S::poison;   // POISONED annotation: the IPA can never be mapped again
    return 0;
}

int PkvmMemProtect::__pkvm_start_teardown_vm(unsigned vm) {
    ++stats_.hypercalls;
    Vm& v = vms_[vm];
    if (v.dying) return refuse(-EINVAL);
    v.dying = true;
    return 0;
}

int PkvmMemProtect::__pkvm_host_reclaim_page_guest(uint64_t gfn, unsigned vm) {
    ++stats_.hypercalls;
    Vm& v = vms_[vm];
    if (!v.dying) return refuse(-EINVAL);
    auto it = v.s2.find(gfn);
    if (it != v.s2.end() && it->second.state == S::poison) {
        v.s2.erase(it);
        return 0;
    }
    if (it == v.s2.end()) return refuse(-ENOENT);
    const uint64_t pfn = it->second.pfn;
    const PkvmPageState gs = it->second.state;
    if (gs != S::owned && gs != S::shared_owned) return refuse(-EPERM);
    // A page the guest owned is zeroed before the host gets it back; one it had shared
    // with the host is the host's content already.
    give_back_to_host(pfn, gs == S::owned, "__pkvm_host_reclaim_page_guest");
    v.s2.erase(it);
    return 0;
}

int PkvmMemProtect::__pkvm_guest_relinquish_to_host(unsigned vm, uint64_t gfn) {
    ++stats_.hypercalls;
    GuestPage* g = nullptr;
    if (int r = guest_leaf(vm, gfn, S::owned, g)) return refuse(r);
    const uint64_t pfn = g->pfn;
    if (host_state(pfn) != S::nopage) return refuse(-EPERM);
    give_back_to_host(pfn, true, "MEM_RELINQUISH");
    vms_[vm].s2.erase(gfn);
    return 0;
}

void PkvmMemProtect::for_each_page(
    const std::function<void(uint64_t, PkvmPageState, PkvmOwner, unsigned, uint64_t)>& fn) const {
    for (const auto& kv : pages_) fn(kv.first, kv.second.host, kv.second.annot, kv.second.vm, kv.second.gfn);
}

std::optional<uint64_t> PkvmMemProtect::guest_pfn(unsigned vm, uint64_t gfn) const {
    auto v = vms_.find(vm);
    if (v == vms_.end()) return std::nullopt;
    auto it = v->second.s2.find(gfn);
    if (it == v->second.s2.end() || it->second.state == S::poison) return std::nullopt;
    return it->second.pfn;
}

int PkvmMemProtect::host_access(uint64_t pfn) const { return annotation(pfn) == PkvmOwner::host ? 0 : -EPERM; }

std::string PkvmMemProtect::check_host_stage2() const {
    for (const auto& [pfn, p] : pages_) {
        const bool annotated = p.annot != PkvmOwner::host;
        if (annotated != (p.host == S::nopage)) {
            std::ostringstream os;
            os << "pKVM: pfn " << std::hex << pfn << " host state " << pkvm_page_state_name(p.host)
               << (annotated ? " but annotated in the host stage-2" : " but still mapped by the host stage-2");
            return os.str();
        }
    }
    return {};
}

}  // namespace hvsim::kvm::arm64
