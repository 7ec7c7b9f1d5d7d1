#include "models/common/types.hpp"

namespace hvsim {
const char* level_name(PgLevel l) {
    switch (l) {
    case PgLevel::k4K: return "4K";
    case PgLevel::k2M: return "2M";
    case PgLevel::k1G: return "1G";
    }
    return "?";
}
}  // namespace hvsim
