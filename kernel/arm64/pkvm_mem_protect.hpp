// pKVM's page ownership at EL2 (arch/arm64/kvm/hyp/nvhe/mem_protect.c, Linux 7.1): every
// physical page has a state for the host, the hypervisor and (through its stage 2) each
// guest: OWNED, SHARED_OWNED, SHARED_BORROWED, NOPAGE (and POISON for a guest page the
// host took back by force). The transition functions check their preconditions in
// mem_protect.c's order and return its errnos; the host stage-2 carries an annotation
// (KVM_HOST_INVALID_PTE_TYPE_DONATION with the owner) for every page the host gave away,
// so a host access to such a page faults.
//
// The joint state of one page (host, hyp, guest) is a vertex of a Boost.Graph whose edges
// are the hypercalls (`hvsim graph pkvm`); every transition performed is checked to be an
// edge. Not modelled here: the stage-2 descriptors themselves (the host stage-2 and the
// guests' are tracked as page state, not walked), hyp stage-1 mappings, the memcache
// (-ENOMEM), FF-A beyond the host's own state.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/mem/phys_mem.hpp"

namespace hvsim::kvm::arm64 {

// enum pkvm_page_state (mem_protect.h).
enum class PkvmPageState : uint8_t { owned = 0, shared_owned = 1, shared_borrowed = 2, nopage = 3, poison = 4 };
const char* pkvm_page_state_name(PkvmPageState s);

// PKVM_ID_* owner ids carried by a host stage-2 DONATION annotation.
enum class PkvmOwner : uint8_t { host = 0, hyp = 1, guest = 2 };

// The joint state of one page: a vertex of the ownership graph.
enum class PkvmJoint : uint8_t {
    host_owned,          // host OWNED, hyp NOPAGE, no guest
    host_shared_hyp,     // host SHARED_OWNED, hyp SHARED_BORROWED
    hyp_owned,           // host NOPAGE (annotated, owner hyp), hyp OWNED
    host_shared_ffa,     // host SHARED_OWNED with the secure world
    host_shared_guest,   // host SHARED_OWNED, a non-protected guest SHARED_BORROWED
    guest_owned,         // host NOPAGE (annotated, owner guest), guest OWNED (donated)
    guest_shared_host,   // host SHARED_BORROWED, guest SHARED_OWNED (MEM_SHARE)
};
inline constexpr int kNumPkvmJoint = 7;
const char* pkvm_joint_name(PkvmJoint s);

struct PkvmTransition {
    PkvmJoint from, to;
    const char* op;
};
const std::vector<PkvmTransition>& pkvm_transitions();
bool pkvm_check_transition(PkvmJoint from, PkvmJoint to);
void write_pkvm_state_dot(std::ostream& os);
std::string pkvm_state_dot();

struct PkvmStats {
    uint64_t hypercalls = 0, share = 0, unshare = 0, donate = 0, reclaim = 0, refused = 0;
};

class PkvmMemProtect {
public:
    // Host memory is [0, mem_bytes); `memblocks` splits it into regions (a range must not
    // straddle two); `nomap` regions are memory KVM may not hand out.
    struct Memblock {
        uint64_t base = 0, size = 0;
        bool nomap = false;
    };
    // `page_shift`: the host's PAGE_SHIFT, pKVM's unit (12, 14 or 16 for the 4K, 16K and 64K
    // granules). Every pfn and gfn below counts pages of that size (hyp_vmemmap has one entry
    // per PAGE_SIZE page), so a 64K page is 16 frames of simulated memory held as one unit.
    PkvmMemProtect(PhysMem& mem, std::vector<Memblock> memblocks, unsigned page_shift = kPageShift);
    unsigned page_shift() const { return page_shift_; }
    uint64_t page_size() const { return 1ull << page_shift_; }
    // Pages in one level-2 block (2 MiB / 32 MiB / 512 MiB): the only nr besides 1 that
    // __pkvm_host_share_guest() accepts (__guest_check_transition_size()).
    uint64_t block_pages() const { return 1ull << (page_shift_ - 3); }

    // Host <-> hypervisor.
    int __pkvm_host_share_hyp(uint64_t pfn);
    int __pkvm_host_unshare_hyp(uint64_t pfn);
    int hyp_pin_shared_mem(uint64_t pfn);
    int hyp_unpin_shared_mem(uint64_t pfn);
    int __pkvm_host_donate_hyp(uint64_t pfn, uint64_t nr);
    int __pkvm_hyp_donate_host(uint64_t pfn, uint64_t nr);
    int __pkvm_host_share_ffa(uint64_t pfn, uint64_t nr);
    int __pkvm_host_unshare_ffa(uint64_t pfn, uint64_t nr);
    // Host -> guests. `vm` is the VM handle; prot bits R=4, W=2, X=1 (KVM_PGTABLE_PROT_*),
    // anything else (DEVICE) is -EINVAL.
    int __pkvm_host_share_guest(uint64_t pfn, uint64_t gfn, uint64_t nr, unsigned vm, uint32_t prot);
    int __pkvm_host_unshare_guest(uint64_t gfn, uint64_t nr, unsigned vm);
    int __pkvm_host_donate_guest(uint64_t pfn, uint64_t gfn, unsigned vm);
    // The protected guest's hypercalls (MEM_SHARE / MEM_UNSHARE).
    int __pkvm_guest_share_host(unsigned vm, uint64_t gfn);
    int __pkvm_guest_unshare_host(unsigned vm, uint64_t gfn);
    // MEM_RELINQUISH handled at EL2 (Android's __pkvm_guest_relinquish_to_host(); upstream
    // 7.1 leaves the call to the host): the guest gives an OWNED page back, zeroed.
    int __pkvm_guest_relinquish_to_host(unsigned vm, uint64_t gfn);
    // The host touched a donated page (pkvm_force_reclaim_guest_page()).
    int __pkvm_host_force_reclaim_page_guest(uint64_t phys);
    // Teardown: start (the VM dies), then reclaim page by page.
    int __pkvm_start_teardown_vm(unsigned vm);
    int __pkvm_host_reclaim_page_guest(uint64_t gfn, unsigned vm);

    // A host access to pfn (a page of page_size()) through its stage 2: 0, or -EPERM for an annotated page (EL2
    // injects an abort into the host).
    int host_access(uint64_t pfn) const;
    PkvmPageState host_state(uint64_t pfn) const;
    PkvmPageState hyp_state(uint64_t pfn) const;
    PkvmPageState guest_state(unsigned vm, uint64_t gfn) const;
    PkvmJoint joint(uint64_t pfn) const;
    uint32_t hyp_refcount(uint64_t pfn) const;
    uint32_t share_guest_count(uint64_t pfn) const;
    // The host stage-2 annotation of pfn: owner (host = none).
    PkvmOwner annotation(uint64_t pfn) const;
    // After every step in checked builds: the host stage-2 maps no page the host gave away
    // (an annotation exactly where the host's state is NOPAGE). Empty when it holds.
    std::string check_host_stage2() const;
    const PkvmStats& stats() const { return stats_; }
    // Every page with a state other than the initial one: pfn, host state, host stage-2
    // annotation owner, and the annotation's VM handle and gfn.
    void for_each_page(const std::function<void(uint64_t, PkvmPageState, PkvmOwner, unsigned, uint64_t)>& fn) const;
    // The guest stage-2 leaf of gfn: its pfn, or nullopt (no page or poisoned).
    std::optional<uint64_t> guest_pfn(unsigned vm, uint64_t gfn) const;

private:
    struct Page {
        PkvmPageState host = PkvmPageState::owned;
        PkvmPageState hyp = PkvmPageState::nopage;
        PkvmOwner annot = PkvmOwner::host;   // host stage-2 DONATION annotation (host: valid)
        uint32_t refcount = 0;               // hyp pins
        uint32_t share_guest = 0;            // host_share_guest_count
        bool ffa = false;
        unsigned vm = 0;                     // annotation metadata: VM handle and gfn
        uint64_t gfn = 0;
    };
    struct GuestPage {
        uint64_t pfn = 0;
        uint64_t nr = 1;
        PkvmPageState state = PkvmPageState::nopage;
    };
    struct Vm {
        std::map<uint64_t, GuestPage> s2;    // gfn -> mapping (the guest stage-2 leaves)
        bool dying = false;
    };
    int check_range(uint64_t pfn, uint64_t nr) const;   // pfn_range_is_valid + memblock checks
    int guest_leaf(unsigned vm, uint64_t gfn, PkvmPageState want, GuestPage*& out);
    void give_back_to_host(uint64_t pfn, bool zero, const char* op);
    Page& page(uint64_t pfn) { return pages_[pfn]; }
    int refuse(int e) {
        ++stats_.refused;
        return e;
    }

    PhysMem& mem_;
    std::vector<Memblock> blocks_;
    unsigned page_shift_ = kPageShift;
    uint64_t mem_pages_ = 0;
    std::map<uint64_t, Page> pages_;
    std::map<unsigned, Vm> vms_;
    PkvmStats stats_;
};

}  // namespace hvsim::kvm::arm64
