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

// A timeout timer that fires well after it was due ran late because its loop was held up (a
// long callback, the process stopped or starved of CPU); timers run before I/O in a loop's turn,
// so an answer that came meanwhile still waits unread. Such a timeout is moved once by the time
// it lost: this returns the ms to restart the timer with (at most timeout_ms, at least 1, so
// that the loop polls I/O first: libuv 1.44 runs a timer restarted at 0 ms in the same pass),
// or 0 when the timeout stands (on time, or already moved). Times are the loop's uv_now().
constexpr uint64_t kLateTimerMs = 50;
inline uint64_t late_timer_extension(uint64_t due_ms, uint64_t now_ms, uint64_t timeout_ms, bool already_moved) noexcept {
  if (already_moved || now_ms <= due_ms + kLateTimerMs) return 0;
  const uint64_t lost = now_ms - due_ms;
  return lost < timeout_ms ? lost : (timeout_ms ? timeout_ms : 1);
}

}  // namespace berth
