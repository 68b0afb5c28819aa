// Handing freed heap pages back to the kernel, off the worker loops. malloc_trim walks every
// malloc arena under its lock, which can take milliseconds on a large heap: a worker only asks
// for it (one relaxed store), and the control loop does it on its next tick.
#pragma once

#include <atomic>

namespace berth {

namespace detail {
inline std::atomic<bool> heap_trim_requested{false};
}

// Any thread, cheap: a trim is wanted (e.g. a worker just freed the buffers of a burst).
inline void request_heap_trim() noexcept { detail::heap_trim_requested.store(true, std::memory_order_relaxed); }

// The control loop: trims if asked since the last call. Returns whether it trimmed.
bool run_requested_heap_trim() noexcept;

}  // namespace berth
