// The name of a step a charge is made for ("gup", "tdp_mmu_map", ...). Names are
// compile-time constants (a string literal or a constexpr array): the constructor is
// consteval, so a name built at run time does not compile. The characters at a name's
// address therefore never change, and the fault-path recorder can find a name's id by its
// address alone (FaultPathLog::intern) instead of comparing text on every charge.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hvsim {

class StepName {
public:
    template <std::size_t N>
    consteval StepName(const char (&s)[N]) : p_(s), n_(std::char_traits<char>::length(s)) {}   // NOLINT: implicit by design
    constexpr const char* data() const { return p_; }
    constexpr std::size_t size() const { return n_; }
    constexpr std::string_view view() const { return {p_, n_}; }
    constexpr operator std::string_view() const { return view(); }   // NOLINT
    friend constexpr bool operator==(StepName a, std::string_view b) { return a.view() == b; }

private:
    const char* p_;
    std::size_t n_;
};

}  // namespace hvsim
