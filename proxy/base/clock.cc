#include "proxy/base/clock.h"

#include <uv.h>

namespace berth {

int64_t health_clock_ms() noexcept { return static_cast<int64_t>(uv_hrtime() / 1'000'000); }

}  // namespace berth
