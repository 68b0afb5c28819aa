// Health of one instance, shared by the control thread (active probes) and every worker
// (passive outlier detection, circuit-breaker counts) through atomics: no lock on the request
// path. The HealthRegistry (control thread) keeps one per endpoint key and attaches it to each
// snapshot's Endpoint, so health survives route-table rebuilds for instances that stay.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "proxy/base/clock.h"

namespace berth {

struct Service;

enum class ProbeState : uint8_t {
  kUnchecked,  // no active check configured: routable
  kPending,    // checked, no probe has passed yet: no traffic
  kHealthy,
  kUnhealthy,
};
const char* probe_state_name(ProbeState s) noexcept;

struct EndpointHealth {
  std::atomic<ProbeState> probe{ProbeState::kUnchecked};
  std::atomic<uint32_t> consecutive_failures{0};  // passive: connect failures / 5xx in a row
  std::atomic<uint32_t> ejections{0};             // how often ejected (grows the ejection time)
  std::atomic<int64_t> ejected_until_ms{0};       // health_clock_ms(); 0 = not ejected
  std::atomic<uint32_t> requests{0};              // in flight, all workers (circuit breaker)
  std::atomic<uint32_t> pending{0};               // connects in progress, all workers
  // When it last became routable (health_clock_ms): it joined a snapshot, passed its first probe
  // or came back from unhealthy. Slow start ramps its weight up from here.
  std::atomic<int64_t> routable_since_ms{0};

  bool ejected(int64_t now_ms) const noexcept {
    return ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
  }
  // Where its slow start begins: when it became routable, or the end of its last ejection if
  // that came later (an ejection ends by time alone, without anyone storing it).
  int64_t ramp_start_ms() const noexcept {
    return std::max(routable_since_ms.load(std::memory_order_relaxed),
                    ejected_until_ms.load(std::memory_order_relaxed));
  }
  // Healthy enough for new requests (ignoring circuit breakers).
  bool routable(int64_t now_ms) const noexcept {
    const ProbeState p = probe.load(std::memory_order_relaxed);
    return (p == ProbeState::kUnchecked || p == ProbeState::kHealthy) && !ejected(now_ms);
  }
};

struct ServiceCounters {
  std::atomic<uint32_t> requests{0};
  std::atomic<uint32_t> pending{0};
};

// Bumped on every change of a probe state or ejection, so workers refresh their view at once.
uint64_t health_epoch() noexcept;
void bump_health_epoch() noexcept;

}  // namespace berth
