#include "models/mem/tlm_mem.hpp"

#include <cstring>

namespace hvsim {

// ---- PhysMemTarget ----

PhysMemTarget::PhysMemTarget(sc_core::sc_module_name name, PhysMem& mem) : sc_module(name), socket("socket"), mem_(mem) {
    socket.bind(*this);
    mem_.set_page_listener(&PhysMemTarget::page_changed, this);
}

PhysMemTarget::~PhysMemTarget() { mem_.set_page_listener(nullptr, nullptr); }

void PhysMemTarget::page_changed(void* self, uint64_t pfn) {
    auto* t = static_cast<PhysMemTarget*>(self);
    if (!t->dmi_out_) return;
    ++t->dmi_invalidations_;
    const uint64_t start = pfn << kPageShift;
    for (int i = 0; i < t->socket.size(); ++i) t->socket[i]->invalidate_direct_mem_ptr(start, start + kPageSize - 1);
}

bool PhysMemTarget::access(tlm::tlm_generic_payload& tr) {
    const uint64_t a = tr.get_address();
    const unsigned len = tr.get_data_length();
    uint8_t* data = tr.get_data_ptr();
    if (tr.get_byte_enable_ptr() || tr.get_streaming_width() < len) {
        tr.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
        return false;
    }
    if (a >= (1ull << 52) || len > (1ull << 52) - a) {
        tr.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return false;
    }
    const bool aligned8 = len == 8 && (a & 7) == 0;
    switch (tr.get_command()) {
    case tlm::TLM_READ_COMMAND:
        if (aligned8) {
            const uint64_t v = mem_.read64(Hpa(a));
            std::memcpy(data, &v, 8);
        } else {
            mem_.read(Hpa(a), data, len);
        }
        break;
    case tlm::TLM_WRITE_COMMAND:
        if (tr.get_extension<FillExtension>() && len) {
            mem_.fill(Hpa(a), data[0], len);
        } else if (aligned8) {
            uint64_t v;
            std::memcpy(&v, data, 8);
            mem_.write64(Hpa(a), v);
        } else {
            mem_.write(Hpa(a), data, len);
        }
        break;
    case tlm::TLM_IGNORE_COMMAND:
        break;
    }
    tr.set_response_status(tlm::TLM_OK_RESPONSE);
    return true;
}

void PhysMemTarget::b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time&) {
    ++transactions_;
    if (access(tr)) tr.set_dmi_allowed(true);
}

tlm::tlm_sync_enum PhysMemTarget::nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase&, sc_core::sc_time&) {
    tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
    return tlm::TLM_COMPLETED;   // loosely timed only
}

// One page per grant: the store is sparse, so a page is the largest range with one
// host pointer. An untouched page is granted read-only on the shared zero page; a page
// sharing a uniform copy read-only; its first write (b_transport) invalidates the grant.
bool PhysMemTarget::get_direct_mem_ptr(tlm::tlm_generic_payload& tr, tlm::tlm_dmi& dmi) {
    const uint64_t a = tr.get_address();
    const uint64_t base = a & ~kPageMask;
    dmi.set_start_address(base);
    dmi.set_end_address(base + kPageSize - 1);
    if (a >= (1ull << 52)) return false;
    const Pfn pfn = hpa_to_pfn(Hpa(a));
    const uint8_t* p = mem_.page_if_present(pfn);
    const bool own = p && !mem_.is_uniform(pfn);
    if (tr.get_command() == tlm::TLM_WRITE_COMMAND && !own) return false;
    dmi.set_dmi_ptr(const_cast<uint8_t*>(p ? p : PhysMem::zero_page()));
    dmi.set_granted_access(own ? tlm::tlm_dmi::DMI_ACCESS_READ_WRITE : tlm::tlm_dmi::DMI_ACCESS_READ);
    dmi.set_read_latency(sc_core::SC_ZERO_TIME);
    dmi.set_write_latency(sc_core::SC_ZERO_TIME);
    dmi_out_ = true;
    ++dmi_grants_;
    return true;
}

unsigned PhysMemTarget::transport_dbg(tlm::tlm_generic_payload& tr) {
    return access(tr) ? tr.get_data_length() : 0;
}

// ---- MemHierarchy ----

MemHierarchy::MemHierarchy(sc_core::sc_module_name name, const MemHierarchyConfig& cfg, uint64_t period_ps,
                           SharedCache* llc)
    : sc_module(name), in("in"), dram("dram"), phys("phys"), cache_(cfg, llc), period_ps_(period_ps) {
    in.bind(*this);
    dram.bind(*this);
    phys.bind(*this);
    cache_.set_line_fill(this);
    miss_ext_.array = llc;
}

void MemHierarchy::end_of_elaboration() {
    if (auto* t = dynamic_cast<PhysMemTarget*>(phys.operator->())) phys_mem_ = &t->mem();
    auto* const target = dram.operator->();
    if (auto* d = dynamic_cast<DramTarget*>(target)) {
        direct_dram_ = d;
    } else if (auto* l = dynamic_cast<LlcModule*>(target); l && miss_ext_.array == &l->array()) {
        if (auto* d = dynamic_cast<DramTarget*>(l->dram.operator->())) {
            direct_dram_ = d;
            direct_llc_ = l;
        }
    }
}

Cycles MemHierarchy::fill(uint64_t line_addr) {
    if (direct_dram_) {
        if (direct_llc_) direct_llc_->count_core_fill();
        const Cycles n = direct_dram_->access_cycles(line_addr, false);
        // On the core's clock (hvsim's platforms) the rounding below gives n: no division.
        if (direct_dram_->period_ps() == period_ps_) return with_encryption(line_addr, n);
        return fill_cycles(line_addr, n * direct_dram_->period_ps());
    }
    fill_tr_.set_command(tlm::TLM_READ_COMMAND);
    fill_tr_.set_address(line_addr);
    fill_tr_.set_data_ptr(line_buf_);
    fill_tr_.set_data_length(cache_.config().line_bytes);
    fill_tr_.set_streaming_width(cache_.config().line_bytes);
    fill_tr_.set_byte_enable_ptr(nullptr);
    fill_tr_.set_dmi_allowed(false);
    fill_tr_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    if (miss_ext_.array) fill_tr_.set_extension(&miss_ext_);
    dram->b_transport(fill_tr_, d);
    if (miss_ext_.array) fill_tr_.clear_extension(&miss_ext_);
    if (fill_tr_.is_response_error())
        SC_REPORT_ERROR(name(), ("line fill failed: " + fill_tr_.get_response_string()).c_str());
    return fill_cycles(line_addr, d.value());
}

Cycles MemHierarchy::fill_cycles(uint64_t line_addr, uint64_t ps) {
    // Round up: a DRAM clocked differently from the core still costs whole core cycles.
    return with_encryption(line_addr, (ps + period_ps_ - 1) / period_ps_);
}

Cycles MemHierarchy::with_encryption(uint64_t line_addr, Cycles c) {
    if (enc_pages_ && enc_pages_->encrypted(hpa_to_pfn(Hpa(line_addr)))) {
        c += enc_extra_;   // the AES engine decrypts the fill (SME/SEV, APM vol. 2 §7.10)
        ++enc_fills_;
    }
    return c;
}

// One 8-byte transaction to physical memory (the bytes behind a line; untimed: the
// caches' latency is the delay).
void MemHierarchy::phys_transport(tlm::tlm_command cmd, uint64_t addr, uint64_t* v) {
    phys_tr_.set_command(cmd);
    phys_tr_.set_address(addr);
    phys_tr_.set_data_ptr(reinterpret_cast<uint8_t*>(v));
    phys_tr_.set_data_length(8);
    phys_tr_.set_streaming_width(8);
    phys_tr_.set_byte_enable_ptr(nullptr);
    phys_tr_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    phys->b_transport(phys_tr_, d);
    if (phys_tr_.is_response_error())
        SC_REPORT_ERROR(name(), (std::string(cmd == tlm::TLM_READ_COMMAND ? "read" : "write") +
                                 " failed: " + phys_tr_.get_response_string()).c_str());
}

uint64_t MemHierarchy::read_phys(uint64_t addr) {
    uint64_t v = 0;
    phys_transport(tlm::TLM_READ_COMMAND, addr, &v);
    return v;
}

void MemHierarchy::write_phys(uint64_t addr, uint64_t v) { phys_transport(tlm::TLM_WRITE_COMMAND, addr, &v); }

// Reads of 8 aligned bytes (page-table entries) are timed; anything else is passed to
// physical memory untimed.
void MemHierarchy::b_transport(tlm::tlm_generic_payload& tr, sc_core::sc_time& delay) {
    const uint64_t a = tr.get_address();
    if (tr.get_command() == tlm::TLM_READ_COMMAND) {
        const uint64_t line = a & ~uint64_t(cache_.config().line_bytes - 1);
        const uint64_t last = (a + (tr.get_data_length() ? tr.get_data_length() - 1 : 0)) & ~uint64_t(cache_.config().line_bytes - 1);
        Cycles c = 0;
        for (uint64_t l = line;; l += cache_.config().line_bytes) {
            c += cache_.access(Hpa(l));
            if (l == last) break;
        }
        delay += sc_core::sc_time::from_value(c * period_ps_);
    }
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    phys->b_transport(tr, d);
    delay += d;
    tr.set_dmi_allowed(false);
}

tlm::tlm_sync_enum MemHierarchy::nb_transport_fw(tlm::tlm_generic_payload& tr, tlm::tlm_phase&, sc_core::sc_time&) {
    tr.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
    return tlm::TLM_COMPLETED;
}

// A cache grants no direct access: it would bypass the latency it models.
bool MemHierarchy::get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi&) { return false; }

unsigned MemHierarchy::transport_dbg(tlm::tlm_generic_payload& tr) { return phys->transport_dbg(tr); }

tlm::tlm_sync_enum MemHierarchy::nb_transport_bw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_COMPLETED;
}

void MemHierarchy::invalidate_direct_mem_ptr(sc_dt::uint64, sc_dt::uint64) {}

}  // namespace hvsim
