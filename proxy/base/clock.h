// The two clocks Berth reads outside a loop's own uv_now().
#pragma once

#include <chrono>
#include <cstdint>

namespace berth {

// Monotonic milliseconds, the same on every thread: health, ejection and grace deadlines.
int64_t health_clock_ms() noexcept;

// CLOCK_REALTIME in ns: the clock of /api/stats' timing fields (applied_at_ns,
// generation_event_received_ns), comparable across threads and with other processes.
inline int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace berth
