// errno numbers <-> the names scenarios and reports use ("EINVAL", "ok").
#pragma once

#include <optional>
#include <string>

namespace hvsim {

// "ok" for 0, "EINVAL" for EINVAL, "errno 123" for a number without a name here.
std::string errno_name(int err);
// The number for a name accepted in `expect.errno` ("ok" = 0); nullopt if unknown.
std::optional<int> errno_from_name(const std::string& name);

}  // namespace hvsim
