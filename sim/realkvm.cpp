// The real-KVM executor behind `hvsim diff-kvm`: scenario uAPI steps replayed on /dev/kvm.
// Runs in-process; every fd and mapping a run creates is released before it returns.
#include "sim/realkvm.hpp"

#include "kernel/uapi.hpp"
#include "sim/errno_names.hpp"
#include "sim/kvm_linux_uapi.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <set>

#include <cpuid.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace hvsim {

namespace {

namespace lu = linux_uapi;
namespace ua = uapi;

constexpr uint64_t kPage = 4096;
constexpr int kFdBase = 600;   // first descriptor number of a run's private range
constexpr uint64_t kMaxPremap = 64ull << 30;   // largest memslot whose userspace range is mapped

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

int sys_ioctl(int fd, unsigned long req, void* arg) { return ::ioctl(fd, req, arg); }
int sys_ioctl(int fd, unsigned long req, unsigned long arg) { return ::ioctl(fd, req, arg); }

// KVM_CHECK_EXTENSION answer, 0 when the call itself fails (caps are non-negative).
int64_t check_cap(int fd, int cap) {
    int r = sys_ioctl(fd, lu::KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap));
    return r < 0 ? 0 : r;
}

unsigned cpuid_phys_bits() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000008u) return 0;
    __get_cpuid(0x80000008u, &a, &b, &c, &d);
    return a & 0xff;
}

// ---- SIGBUS-guarded host memory access ------------------------------------------------
// A host access through a guest_memfd mapping faults with SIGBUS beyond EOF or where the
// memory is private (kvm_gmem_fault_user_mapping). The handler is installed only around
// the access and jumps back out of it.

sigjmp_buf g_bus_env;
volatile sig_atomic_t g_bus_armed = 0;
volatile sig_atomic_t g_fault_sig = 0;

void on_sigbus(int sig) {
    if (g_bus_armed) {
        g_bus_armed = 0;
        g_fault_sig = sig;
        siglongjmp(g_bus_env, 1);
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

struct Touched {
    bool sigbus = false;
    bool sigsegv = false;
    bool any = false;     // at least one byte read
    bool mixed = false;
    uint8_t first = 0;
};

// Reads or writes every byte of [p, p+n); stops at the first SIGBUS.
Touched touch_bytes(volatile uint8_t* const p, const uint64_t n, const bool write, const uint8_t v) {
    struct sigaction sa {}, old {}, old_segv {};
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    sigaction(SIGSEGV, &sa, &old_segv);   // an access through an unmapped pointer
    g_fault_sig = 0;
    volatile bool bus = false, any = false, mixed = false;
    volatile uint8_t first = 0;
    if (sigsetjmp(g_bus_env, 1) == 0) {
        g_bus_armed = 1;
        for (uint64_t i = 0; i < n; ++i) {
            if (write) {
                p[i] = v;
            } else {
                uint8_t b = p[i];
                if (!any) {
                    first = b;
                    any = true;
                } else if (b != first) {
                    mixed = true;
                }
            }
        }
        g_bus_armed = 0;
    } else {
        bus = true;
    }
    sigaction(SIGBUS, &old, nullptr);
    sigaction(SIGSEGV, &old_segv, nullptr);
    Touched t;
    t.sigbus = bus && g_fault_sig == SIGBUS;
    t.sigsegv = bus && g_fault_sig == SIGSEGV;
    t.any = any;
    t.mixed = mixed;
    t.first = first;
    return t;
}

void fill_access_outcome(const Touched& t, bool write, StepOutcome& o) {
    if (t.sigbus || t.sigsegv) {
        o.signal = t.sigbus ? "SIGBUS" : "SIGSEGV";
        return;
    }
    if (write || !t.any) return;
    if (t.mixed)
        o.bytes_mixed = true;
    else
        o.bytes = t.first;
}

StepOutcome skipped(std::string why) {
    StepOutcome o;
    o.skipped = true;
    o.skip_reason = std::move(why);
    return o;
}

StepOutcome from_ret(long r) {
    StepOutcome o;
    if (r < 0) o.err = errno;
    return o;
}

void flatten(const std::vector<scn::Step>& steps, bool in_parallel, std::vector<FlatStep>& out) {
    for (const auto& st : steps) {
        if (auto* group = std::get_if<std::vector<scn::Step>>(&st.op))
            flatten(*group, true, out);
        else
            out.push_back({&st, in_parallel});
    }
}

// ---- one run ------------------------------------------------------------------------

class HostRun {
public:
    explicit HostRun(const HostKvmCaps& caps) : caps_(caps) {
        // Descriptors are moved into a private high range and numbers are never reused
        // within a run, so a closed object keeps answering EBADF (as in a VMM that does not
        // open anything else) instead of aliasing a later fd.
        rlimit rl {};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 1024))
            fd_base_ = kFdBase;
        next_fd_ = fd_base_;
    }
    ~HostRun() { cleanup(); }
    HostRun(const HostRun&) = delete;
    HostRun& operator=(const HostRun&) = delete;

    RealRun run(const scn::Scenario& s);

private:
    int adopt(int fd);
    void close_owned(int fd) { open_fds_.erase(fd); }
    void cleanup();
    int invalid_fd();
    int fd_of(const scn::FdRef& r);
    bool touchable(const scn::FdRef& r, int fd, std::string& why);
    std::string setup(const scn::Scenario& s, const std::vector<FlatStep>& flat);
    StepOutcome run_step(const scn::Step& st);
    StepOutcome do_region(const scn::MemslotDecl& m, bool v1 = false);
    StepOutcome do_create_gmem(const scn::GmemDecl& g);
    StepOutcome do_host(const scn::HostAccess& h);
    StepOutcome do_close(const scn::Close& c);
    bool ensure_anon(uint64_t addr, uint64_t size, std::string& why);

    const HostKvmCaps& caps_;
    int fd_base_ = -1, next_fd_ = -1;
    int kvm_fd_ = -1, vm_fd_ = -1, memfd_ = -1;
    int vcpu_err_ = 0;
    std::vector<int> vcpu_fds_;
    std::map<std::string, int> gmem_;            // scenario id -> fd (kept after close: EBADF)
    std::set<int> open_fds_;
    std::vector<std::pair<void*, size_t>> maps_;  // host mmap steps
    std::map<std::string, void*> named_;          // mapping id -> address (MAP_FAILED when the mmap failed)
    std::map<uint64_t, uint64_t> anon_;           // anonymous runs at userspace_addr: start -> end
};

int HostRun::adopt(int fd) {
    if (fd < 0) return fd;
    if (fd_base_ >= 0) {
        int moved = fcntl(fd, F_DUPFD, next_fd_);
        if (moved >= 0) {
            ::close(fd);
            fd = moved;
            next_fd_ = moved + 1;
        }
    }
    open_fds_.insert(fd);
    return fd;
}

void HostRun::cleanup() {
    for (auto& [p, n] : maps_) munmap(p, n);
    named_.clear();
    maps_.clear();
    for (auto& [a, e] : anon_) munmap(reinterpret_cast<void*>(a), e - a);
    anon_.clear();
    for (int fd : open_fds_) ::close(fd);
    open_fds_.clear();
}

// A descriptor number that is certainly not open: one below the private range, or the
// number a just-closed descriptor had.
int HostRun::invalid_fd() {
    if (fd_base_ > 0) {
        for (int n = fd_base_ - 1; n > 2; --n)
            if (fcntl(n, F_GETFD) < 0 && errno == EBADF) return n;
    }
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return fd;
}

int HostRun::fd_of(const scn::FdRef& r) {
    using K = scn::FdRef::Kind;
    switch (r.kind) {
    case K::gmem: {
        auto it = gmem_.find(r.id);
        return it == gmem_.end() ? -1 : it->second;   // a failed create leaves -1, as in C
    }
    case K::kvm: return kvm_fd_;
    case K::vm: return vm_fd_;
    case K::memfd: return memfd_;
    case K::invalid: return invalid_fd();
    case K::raw: return r.raw;
    }
    return -1;
}

// File operations (fallocate, mmap, close) on a raw descriptor number run only when that
// number is not open here: an open one is the harness's own file.
bool HostRun::touchable(const scn::FdRef& r, int fd, std::string& why) {
    if (r.kind != scn::FdRef::Kind::raw) return true;
    if (fd < 0 || (fcntl(fd, F_GETFD) < 0 && errno == EBADF)) return true;
    why = "raw descriptor " + std::to_string(fd) + " is one of hvsim's own files here; not touched";
    return false;
}

bool HostRun::ensure_anon(uint64_t addr, uint64_t size, std::string& why) {
    uint64_t a = addr & ~(kPage - 1);
    uint64_t e = addr + size;
    if (e < addr || e > UINT64_MAX - kPage) {
        why = "host range " + hex(addr) + "+" + hex(size) + " wraps";
        return false;
    }
    e = (e + kPage - 1) & ~(kPage - 1);
    // Map the gaps between runs already mapped.
    uint64_t cur = a;
    while (cur < e) {
        auto it = anon_.upper_bound(cur);
        if (it != anon_.begin()) {
            auto prev = std::prev(it);
            if (prev->second > cur) {
                cur = prev->second;
                continue;
            }
        }
        uint64_t gap_end = (it != anon_.end() && it->first < e) ? it->first : e;
        void* p = mmap(reinterpret_cast<void*>(cur), gap_end - cur, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED || p != reinterpret_cast<void*>(cur)) {
            int err = p == MAP_FAILED ? errno : EEXIST;
            if (p != MAP_FAILED) munmap(p, gap_end - cur);
            why = err == EEXIST ? "host range " + hex(cur) + ".." + hex(gap_end) + " is already used by hvsim itself"
                                : "cannot map anonymous memory at " + hex(cur) + ": " + errno_name(err);
            return false;
        }
        anon_[cur] = gap_end;
        cur = gap_end;
    }
    return true;
}

std::string HostRun::setup(const scn::Scenario& s, const std::vector<FlatStep>& flat) {
    // vCPUs only when a step needs one (KVM_PRE_FAULT_MEMORY is a vCPU ioctl); they are made
    // up front, like the VM's vCPUs in the simulation exist from VM creation.
    unsigned need = 0;
    for (auto& [st, par] : flat)
        if (auto* pf = std::get_if<scn::PreFaultMemory>(&st->op)) need = std::max(need, pf->vcpu + 1);
    for (unsigned i = 0; i < need && i < 1024; ++i) {
        int fd = sys_ioctl(vm_fd_, lu::KVM_CREATE_VCPU, static_cast<unsigned long>(i));
        if (fd < 0) {
            vcpu_err_ = errno;
            break;
        }
        vcpu_fds_.push_back(adopt(fd));
    }
    for (size_t i = 0; i < s.vm.guest_memfd.size(); ++i) {
        StepOutcome o = do_create_gmem(s.vm.guest_memfd[i]);
        if (o.err)
            return "vm.guest_memfd[" + std::to_string(i) + "] '" + s.vm.guest_memfd[i].id +
                   "': KVM_CREATE_GUEST_MEMFD: " + errno_name(o.err);
    }
    for (size_t i = 0; i < s.vm.memslots.size(); ++i) {
        StepOutcome o = do_region(s.vm.memslots[i]);
        if (o.err)
            return "vm.memslots[" + std::to_string(i) + "]: KVM_SET_USER_MEMORY_REGION2: " + errno_name(o.err);
    }
    for (size_t i = 0; i < s.vm.private_ranges.size(); ++i) {
        ua::kvm_memory_attributes a {};
        a.address = s.vm.private_ranges[i].gpa;
        a.size = s.vm.private_ranges[i].size;
        a.attributes = ua::KVM_MEMORY_ATTRIBUTE_PRIVATE;
        if (sys_ioctl(vm_fd_, lu::KVM_SET_MEMORY_ATTRIBUTES, &a) < 0)
            return "vm.private[" + std::to_string(i) + "]: KVM_SET_MEMORY_ATTRIBUTES: " + errno_name(errno);
    }
    return {};
}

RealRun HostRun::run(const scn::Scenario& s) {
    RealRun out;
    const std::vector<FlatStep> flat = flatten_steps(s.steps);
    auto skip_all = [&](const std::string& why) {
        out.steps.assign(flat.size(), skipped(why));
    };
    if (!caps_.available) {
        out.setup_error = "no usable /dev/kvm: " + caps_.why_not;
        skip_all(out.setup_error);
        return out;
    }
    int type = x86_vm_type_number(s.vm.type);
    if (type < 0) {
        out.setup_error = "VM type '" + s.vm.type + "' is not an x86 VM type; this host is x86";
        skip_all(out.setup_error);
        return out;
    }
    kvm_fd_ = adopt(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (kvm_fd_ < 0) {
        out.setup_error = std::string("cannot open /dev/kvm: ") + errno_name(errno);
        skip_all(out.setup_error);
        return out;
    }
    // KVM only asks a memfd whether it is a guest_memfd; made up front so it never takes a
    // number a closed object had.
    memfd_ = adopt(memfd_create("hvsim-diffkvm", MFD_CLOEXEC));
    int vm = sys_ioctl(kvm_fd_, lu::KVM_CREATE_VM, static_cast<unsigned long>(type));
    if (vm < 0) {
        out.create_vm_err = errno;
        skip_all("host cannot create VM type " + s.vm.type + ": " + errno_name(out.create_vm_err));
        return out;
    }
    vm_fd_ = adopt(vm);
    out.setup_error = setup(s, flat);
    if (!out.setup_error.empty()) {
        skip_all("setup failed on the host: " + out.setup_error);
        return out;
    }
    for (auto& [st, par] : flat) {
        StepOutcome o = run_step(*st);
        if (par && !o.skipped) {
            o.skipped = true;
            o.skip_reason = "parallel group member: run in order on the host, the interleaving is not compared";
        }
        out.steps.push_back(std::move(o));
    }
    return out;
}

StepOutcome HostRun::do_create_gmem(const scn::GmemDecl& g) {
    ua::kvm_create_guest_memfd a {};
    a.size = g.size;
    a.flags = g.flags;
    int fd = sys_ioctl(vm_fd_, lu::KVM_CREATE_GUEST_MEMFD, &a);
    StepOutcome o = from_ret(fd);
    if (fd >= 0) {
        gmem_[g.id] = adopt(fd);
    } else if (!gmem_.count(g.id)) {
        gmem_[g.id] = -1;
    }
    return o;
}

StepOutcome HostRun::do_region(const scn::MemslotDecl& m, bool v1) {
    // A VMM maps guest RAM before it hands it to KVM, and the simulated VMM treats every
    // unmapped hva as such memory; map it here too so that KVM's own accesses through
    // userspace_addr (GUP on a TDP fault or pre-fault, SEV pinning) find memory. Best effort:
    // KVM validates only access_ok, so a range that cannot be mapped (address 0, kernel
    // half, wrap, hvsim's own mappings) is still a valid ioctl to compare.
    if (m.size != 0 && m.size <= kMaxPremap) {
        std::string ignored;
        ensure_anon(m.userspace_addr, m.size, ignored);
    }
    ua::kvm_userspace_memory_region2 r {};
    r.slot = (m.as_id << 16) | (m.slot & 0xffff);
    r.flags = m.flags;
    r.guest_phys_addr = m.gpa;
    r.memory_size = m.size;
    r.userspace_addr = m.userspace_addr;
    r.guest_memfd_offset = m.guest_memfd_offset;
    r.guest_memfd = m.guest_memfd ? static_cast<uint32_t>(fd_of(*m.guest_memfd)) : 0;
    if (v1) {   // the 32-byte v1 struct: the common prefix of the v2 one
        ua::kvm_userspace_memory_region r1 {};
        r1.slot = r.slot;
        r1.flags = r.flags;
        r1.guest_phys_addr = r.guest_phys_addr;
        r1.memory_size = r.memory_size;
        r1.userspace_addr = r.userspace_addr;
        return from_ret(sys_ioctl(vm_fd_, lu::KVM_SET_USER_MEMORY_REGION, &r1));
    }
    return from_ret(sys_ioctl(vm_fd_, lu::KVM_SET_USER_MEMORY_REGION2, &r));
}

StepOutcome HostRun::do_close(const scn::Close& c) {
    int fd = -1;
    if (c.vm) {
        fd = vm_fd_;
    } else {
        std::string why;
        fd = fd_of(c.guest_memfd);
        if (!touchable(c.guest_memfd, fd, why)) return skipped(why);
    }
    StepOutcome o = from_ret(::close(fd));
    if (o.err == 0) close_owned(fd);
    return o;
}

StepOutcome HostRun::do_host(const scn::HostAccess& h) {
    using Op = scn::HostAccess::Op;
    if (h.op == Op::pin || h.op == Op::unpin)
        return skipped("cannot pin from userspace without VFIO (a long-term GUP pin)");
    if (!h.mapping.empty() && h.op != Op::mmap) {
        auto it = named_.find(h.mapping);
        if (it == named_.end()) return skipped("mapping " + h.mapping + " was not created on the host");
        if (it->second == MAP_FAILED) {
            // The C variable holds MAP_FAILED: munmap((void *)-1, n) is EINVAL; a dereference
            // faults. Neither is performed here.
            if (h.op == Op::munmap) return from_ret(munmap(MAP_FAILED, h.size));
            return skipped("mapping " + h.mapping + " failed on the host; not dereferencing MAP_FAILED");
        }
        auto* base = static_cast<uint8_t*>(it->second);
        if (h.op == Op::munmap) {
            StepOutcome o = from_ret(munmap(base + h.offset, h.size));
            // Keep the range reserved (PROT_NONE), so a later access through the dangling
            // pointer faults with SIGSEGV and never lands in memory this process reuses.
            if (o.err == 0) {
                void* g = mmap(base + h.offset, h.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
                if (g != MAP_FAILED) maps_.emplace_back(g, h.size);
            }
            return o;
        }
        if (h.size == 0) return {};
        StepOutcome o;
        Touched t = touch_bytes(base + h.offset, h.size, h.op == Op::write, h.value);
        fill_access_outcome(t, h.op == Op::write, o);
        return o;
    }
    if (h.guest_memfd) {
        int fd = fd_of(*h.guest_memfd);
        std::string why;
        if (!touchable(*h.guest_memfd, fd, why)) return skipped(why);
        if (h.op == Op::mmap) {
            void* p = mmap(nullptr, h.size, PROT_READ | PROT_WRITE, h.map_shared ? MAP_SHARED : MAP_PRIVATE, fd,
                           static_cast<off_t>(h.offset));
            if (!h.mapping.empty()) named_[h.mapping] = p;
            if (p == MAP_FAILED) return from_ret(-1);
            maps_.emplace_back(p, h.size);
            return {};
        }
        if (h.size == 0) return {};
        // Map the pages covering [offset, offset+size) shared, as a VMM maps guest_memfd.
        uint64_t start = h.offset & ~(kPage - 1);
        uint64_t end = h.offset + h.size;
        if (end < h.offset || end > UINT64_MAX - kPage) return skipped("host range wraps");
        end = (end + kPage - 1) & ~(kPage - 1);
        void* p = mmap(nullptr, end - start, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(start));
        if (p == MAP_FAILED) return from_ret(-1);
        StepOutcome o;
        Touched t = touch_bytes(static_cast<uint8_t*>(p) + (h.offset - start), h.size, h.op == Op::write, h.value);
        munmap(p, end - start);
        fill_access_outcome(t, h.op == Op::write, o);
        return o;
    }
    if (!h.userspace_addr) return skipped("host access names neither guest_memfd nor userspace_addr");
    uint64_t addr = *h.userspace_addr;
    if (h.op == Op::mmap) {
        // An anonymous mapping at that address, as a VMM maps guest RAM.
        void* p = mmap(reinterpret_cast<void*>(addr), h.size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED) return from_ret(-1);
        if (p != reinterpret_cast<void*>(addr)) {   // kernels without MAP_FIXED_NOREPLACE
            munmap(p, h.size);
            StepOutcome o;
            o.err = EEXIST;
            return o;
        }
        uint64_t e = (addr + h.size + kPage - 1) & ~(kPage - 1);
        anon_[addr & ~(kPage - 1)] = e;
        return {};
    }
    if (h.size == 0) return {};
    std::string why;
    if (!ensure_anon(addr, h.size, why)) return skipped(why);
    StepOutcome o;
    Touched t = touch_bytes(reinterpret_cast<uint8_t*>(addr), h.size, h.op == Op::write, h.value);
    fill_access_outcome(t, h.op == Op::write, o);
    return o;
}

StepOutcome HostRun::run_step(const scn::Step& st) {
    return std::visit(
        [&](const auto& op) -> StepOutcome {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                return skipped("empty step");
            } else if constexpr (std::is_same_v<T, scn::CreateGuestMemfd>) {
                return do_create_gmem(op.gmem);
            } else if constexpr (std::is_same_v<T, scn::SetUserMemoryRegion2>) {
                return do_region(op.region, op.v1);
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes>) {
                ua::kvm_memory_attributes a {};
                a.address = op.gpa;
                a.size = op.size;
                a.attributes = op.attributes;
                a.flags = op.flags;
                return from_ret(sys_ioctl(vm_fd_, lu::KVM_SET_MEMORY_ATTRIBUTES, &a));
            } else if constexpr (std::is_same_v<T, scn::SetMemoryAttributes2>) {
                if (!caps_.set_memory_attributes2_ioctl)
                    return skipped("KVM_SET_MEMORY_ATTRIBUTES2 is not in this kernel (guest_memfd ioctl is ENOTTY)");
                ua::kvm_memory_attributes2 a {};
                a.offset = op.offset;
                a.size = op.size;
                a.attributes = op.attributes;
                a.flags = op.flags;
                StepOutcome o = from_ret(sys_ioctl(fd_of(op.guest_memfd), lu::KVM_SET_MEMORY_ATTRIBUTES2, &a));
                if (o.err == EAGAIN || o.err == ENOMEM) o.error_offset = a.error_offset;
                return o;
            } else if constexpr (std::is_same_v<T, scn::Fallocate>) {
                int fd = fd_of(op.guest_memfd);
                std::string why;
                if (!touchable(op.guest_memfd, fd, why)) return skipped(why);
                return from_ret(::fallocate(fd, op.mode, static_cast<off_t>(op.offset), static_cast<off_t>(op.len)));
            } else if constexpr (std::is_same_v<T, scn::PreFaultMemory>) {
                if (op.vcpu >= vcpu_fds_.size())
                    return skipped("no vCPU " + std::to_string(op.vcpu) + " on the host: KVM_CREATE_VCPU: " +
                                   errno_name(vcpu_err_));
                ua::kvm_pre_fault_memory r {};
                r.gpa = op.gpa;
                r.size = op.size;
                r.flags = op.flags;
                StepOutcome o = from_ret(sys_ioctl(vcpu_fds_[op.vcpu], lu::KVM_PRE_FAULT_MEMORY, &r));
                o.remaining = r.size;   // KVM copies the range back whatever the result
                return o;
            } else if constexpr (std::is_same_v<T, scn::EncryptRegion>) {
                if (op.reg && op.size != 0 && op.size <= kMaxPremap) {   // SEV pins these pages (GUP)
                    std::string ignored;
                    ensure_anon(op.addr, op.size, ignored);
                }
                ua::kvm_enc_region r {op.addr, op.size};
                return from_ret(sys_ioctl(vm_fd_, op.reg ? lu::KVM_MEMORY_ENCRYPT_REG_REGION
                                                         : lu::KVM_MEMORY_ENCRYPT_UNREG_REGION, &r));
            } else if constexpr (std::is_same_v<T, scn::CheckExtension>) {
                int64_t nr = op.cap_nr >= 0 ? op.cap_nr : cap_number(op.cap);
                if (nr < 0) return skipped("capability '" + op.cap + "' has no number in kernel/uapi.hpp");
                int r = sys_ioctl(op.vm_scope ? vm_fd_ : kvm_fd_, lu::KVM_CHECK_EXTENSION, static_cast<unsigned long>(nr));
                StepOutcome o = from_ret(r);
                if (r >= 0) o.value = r;
                return o;
            } else if constexpr (std::is_same_v<T, scn::Close>) {
                return do_close(op);
            } else if constexpr (std::is_same_v<T, scn::HostAccess>) {
                return do_host(op);
            } else if constexpr (std::is_same_v<T, scn::Access> || std::is_same_v<T, scn::MapGpaRange>) {
                return skipped("guest execution is not compared");
            } else if constexpr (std::is_same_v<T, scn::DirtyLog>) {
                return skipped("dirty logging is not compared (no guest writes run on the host)");
            } else if constexpr (std::is_same_v<T, scn::Launch>) {
                return skipped("confidential-VM launch is not compared (needs SEV-SNP or TDX hardware)");
            } else {
                return skipped("parallel group");   // flattened before we get here
            }
        },
        st.op);
}

}  // namespace

// ---- public -------------------------------------------------------------------------

int x86_vm_type_number(const std::string& type) {
    static const std::map<std::string, int> types = {
        {"default", ua::KVM_X86_DEFAULT_VM}, {"sw_protected", ua::KVM_X86_SW_PROTECTED_VM},
        {"sev", ua::KVM_X86_SEV_VM},         {"sev_es", ua::KVM_X86_SEV_ES_VM},
        {"snp", ua::KVM_X86_SNP_VM},         {"tdx", ua::KVM_X86_TDX_VM},
    };
    auto it = types.find(type);
    return it == types.end() ? -1 : it->second;
}

int64_t cap_number(const std::string& name_in) {
    std::string name;
    for (char ch : name_in) name += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (name.rfind("kvm_cap_", 0) == 0) name = name.substr(8);
    static const std::map<std::string, int> caps = {
        {"nr_memslots", ua::KVM_CAP_NR_MEMSLOTS},
        {"readonly_mem", ua::KVM_CAP_READONLY_MEM},
        {"multi_address_space", ua::KVM_CAP_MULTI_ADDRESS_SPACE},
        {"exit_hypercall", ua::KVM_CAP_EXIT_HYPERCALL},
        {"user_memory2", ua::KVM_CAP_USER_MEMORY2},
        {"memory_attributes", ua::KVM_CAP_MEMORY_ATTRIBUTES},
        {"guest_memfd", ua::KVM_CAP_GUEST_MEMFD},
        {"vm_types", ua::KVM_CAP_VM_TYPES},
        {"pre_fault_memory", ua::KVM_CAP_PRE_FAULT_MEMORY},
        {"guest_memfd_flags", ua::KVM_CAP_GUEST_MEMFD_FLAGS},
    };
    auto it = caps.find(name);
    return it == caps.end() ? -1 : it->second;
}

HostKvmCaps probe_host_kvm() {
    HostKvmCaps c;
    utsname u {};
    if (uname(&u) == 0) c.kernel_release = u.release;
    rlimit rl {};
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) c.memlock_limit = rl.rlim_cur == RLIM_INFINITY ? 0 : rl.rlim_cur;
    c.host_phys_bits = cpuid_phys_bits();

    int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        c.why_not = std::string("cannot open /dev/kvm: ") + std::strerror(errno);
        return c;
    }
    c.api_version = sys_ioctl(kvm, lu::KVM_GET_API_VERSION, 0ul);
    if (c.api_version != lu::KVM_API_VERSION) {
        c.why_not = "KVM_GET_API_VERSION returned " + std::to_string(c.api_version) + ", expected 12";
        ::close(kvm);
        return c;
    }
    c.vm_types_mask = static_cast<uint32_t>(check_cap(kvm, ua::KVM_CAP_VM_TYPES));
    if (c.vm_types_mask == 0) c.vm_types_mask = 1u << ua::KVM_X86_DEFAULT_VM;   // kernels before the cap
    c.guest_memfd = check_cap(kvm, ua::KVM_CAP_GUEST_MEMFD);
    c.guest_memfd_flags = check_cap(kvm, ua::KVM_CAP_GUEST_MEMFD_FLAGS);
    c.user_memory2 = check_cap(kvm, ua::KVM_CAP_USER_MEMORY2);
    c.memory_attributes = check_cap(kvm, ua::KVM_CAP_MEMORY_ATTRIBUTES);
    c.pre_fault_memory = check_cap(kvm, ua::KVM_CAP_PRE_FAULT_MEMORY);
    c.multi_address_space = check_cap(kvm, ua::KVM_CAP_MULTI_ADDRESS_SPACE);
    c.nr_memslots = check_cap(kvm, ua::KVM_CAP_NR_MEMSLOTS);
    c.readonly_mem = check_cap(kvm, ua::KVM_CAP_READONLY_MEM);
    c.exit_hypercall = check_cap(kvm, ua::KVM_CAP_EXIT_HYPERCALL);

    int vm = sys_ioctl(kvm, lu::KVM_CREATE_VM, static_cast<unsigned long>(ua::KVM_X86_DEFAULT_VM));
    if (vm < 0) {
        c.why_not = std::string("KVM_CREATE_VM(default) failed: ") + std::strerror(errno);
        ::close(kvm);
        return c;
    }
    c.vm_guest_memfd_flags = check_cap(vm, ua::KVM_CAP_GUEST_MEMFD_FLAGS);
    c.vm_memory_attributes = check_cap(vm, ua::KVM_CAP_MEMORY_ATTRIBUTES);
    c.vm_multi_address_space = check_cap(vm, ua::KVM_CAP_MULTI_ADDRESS_SPACE);

    // flags = 1 is EINVAL wherever the ioctl exists (kvm_vm_ioctl_set_mem_attributes checks
    // flags first); ENOTTY means CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is not built in.
    ua::kvm_memory_attributes attrs {0, kPage, 0, 1};
    c.set_memory_attributes_ioctl = !(sys_ioctl(vm, lu::KVM_SET_MEMORY_ATTRIBUTES, &attrs) < 0 && errno == ENOTTY);

    if (c.guest_memfd) {
        ua::kvm_create_guest_memfd g {};
        g.size = kPage;
        int gfd = sys_ioctl(vm, lu::KVM_CREATE_GUEST_MEMFD, &g);
        if (gfd >= 0) {
            // size 0 and unknown flags: EINVAL wherever the proposed ioctl exists.
            ua::kvm_memory_attributes2 a2 {};
            a2.flags = ~0ull;
            c.set_memory_attributes2_ioctl =
                !(sys_ioctl(gfd, lu::KVM_SET_MEMORY_ATTRIBUTES2, &a2) < 0 && errno == ENOTTY);
            // Two memslots bound to the same guest_memfd page: the second is EINVAL before
            // Linux 7.2, EEXIST from 7.2 (kvm_gmem_bind()). The VM is closed right after.
            if (c.user_memory2) {
                ua::kvm_userspace_memory_region2 r {};
                r.flags = ua::KVM_MEM_GUEST_MEMFD;
                r.memory_size = kPage;
                r.userspace_addr = 0x400000000000ull;
                r.guest_memfd = uint32_t(gfd);
                if (sys_ioctl(vm, lu::KVM_SET_USER_MEMORY_REGION2, &r) == 0) {
                    r.slot = 1;
                    r.guest_phys_addr = kPage;
                    c.gmem_bind_eexist = sys_ioctl(vm, lu::KVM_SET_USER_MEMORY_REGION2, &r) < 0 && errno == EEXIST;
                }
            }
            ::close(gfd);
        }
    }
    int vcpu = sys_ioctl(vm, lu::KVM_CREATE_VCPU, 0ul);
    c.vcpu_create = vcpu >= 0;
    if (vcpu >= 0) ::close(vcpu);
    ::close(vm);
    ::close(kvm);
    c.available = true;
    return c;
}

const HostKvmCaps& host_kvm_caps() {
    static const HostKvmCaps caps = probe_host_kvm();
    return caps;
}

std::vector<std::pair<std::string, std::string>> sim_config_for_host(const HostKvmCaps& c) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!c.available) return out;
    auto b = [](bool x) { return std::string(x ? "true" : "false"); };
    auto has_type = [&](uint32_t t) { return (c.vm_types_mask >> t & 1u) != 0; };
    // KVM_CAP_PRE_FAULT_MEMORY is x86's tdp_enabled (kvm_vm_ioctl_check_extension).
    const bool tdp = c.pre_fault_memory != 0;
    // KVM_CAP_MULTI_ADDRESS_SPACE is KVM_MAX_NR_ADDRESS_SPACES, 2 only with CONFIG_KVM_SMM.
    out.emplace_back("kvm.config.smm", b(c.multi_address_space > 1));
    out.emplace_back("kvm.config.sw_protected_vm", b(has_type(ua::KVM_X86_SW_PROTECTED_VM)));
    out.emplace_back("kvm.config.sev", b(has_type(ua::KVM_X86_SEV_VM)));
    out.emplace_back("kvm.config.sev_es", b(has_type(ua::KVM_X86_SEV_ES_VM)));
    out.emplace_back("kvm.config.snp", b(has_type(ua::KVM_X86_SNP_VM)));
    out.emplace_back("kvm.config.tdx", b(has_type(ua::KVM_X86_TDX_VM)));
    out.emplace_back("kvm.config.generic_memory_attributes", b(c.set_memory_attributes_ioctl));
    out.emplace_back("kvm.config.memory_attributes2", b(c.set_memory_attributes2_ioctl));
    // Without the in-place conversion ioctl, attributes are per VM as in Linux today.
    out.emplace_back("kvm.config.vm_memory_attributes", b(!c.set_memory_attributes2_ioctl));
    out.emplace_back("kvm.config.gmem_bind_eexist", b(c.gmem_bind_eexist));
    out.emplace_back("kvm.config.tdp", b(tdp));
    out.emplace_back("kvm.config.guest_memfd", b(c.guest_memfd != 0));
    out.emplace_back("kvm.config.guest_memfd_mmap", b((c.guest_memfd_flags & ua::GUEST_MEMFD_FLAG_MMAP) != 0));
    out.emplace_back("kvm.config.guest_memfd_init_shared",
                     b((c.guest_memfd_flags & ua::GUEST_MEMFD_FLAG_INIT_SHARED) != 0));
    out.emplace_back("kvm.config.readonly_mem", b(c.readonly_mem != 0));
    out.emplace_back("kvm.config.exit_hypercall", b(c.exit_hypercall != 0));
    if (c.nr_memslots > 0) out.emplace_back("kvm.config.nr_memslots", std::to_string(c.nr_memslots));
    // kvm_mmu_max_gfn(): host MAXPHYADDR with TDP, 52 bits for shadow paging.
    unsigned bits = tdp && c.host_phys_bits ? c.host_phys_bits : 52;
    out.emplace_back("kvm.config.maxphyaddr", std::to_string(bits));
    out.emplace_back("kvm.config.memlock_limit", std::to_string(c.memlock_limit));
    return out;
}

std::vector<FlatStep> flatten_steps(const std::vector<scn::Step>& steps) {
    std::vector<FlatStep> out;
    flatten(steps, false, out);
    return out;
}

RealRun run_uapi_steps_real(const scn::Scenario& s) {
    HostRun run(host_kvm_caps());
    return run.run(s);
}

}  // namespace hvsim
