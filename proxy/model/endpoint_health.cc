#include "proxy/model/endpoint_health.h"

namespace berth {

const char* probe_state_name(ProbeState s) noexcept {
  switch (s) {
    case ProbeState::kUnchecked: return "unchecked";
    case ProbeState::kPending: return "pending";
    case ProbeState::kHealthy: return "healthy";
    case ProbeState::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

namespace {
std::atomic<uint64_t> g_health_epoch{1};
}  // namespace

uint64_t health_epoch() noexcept { return g_health_epoch.load(std::memory_order_acquire); }
void bump_health_epoch() noexcept { g_health_epoch.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace berth
