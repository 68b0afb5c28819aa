// Health of one instance, shared by the control thread (active probes) and every worker
// (passive outlier detection, circuit-breaker counts) through atomics: no lock on the request
// path. The HealthRegistry (control thread) keeps one per service and endpoint key and attaches
// it to each snapshot's Endpoint, so health survives route-table rebuilds for instances that stay.
//
// Cache lines: what the control thread writes, what workers write on an outcome, and what
// workers write per attempt sit on separate lines, so probes and per-request counts do not
// invalidate each other. The per-attempt counts are kept only while the service has the
// circuit-breaker limit that reads them; the in-flight figure /api/routes shows is counted
// per worker instead (InFlightCounts).
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
  EndpointHealth();
  ~EndpointHealth();
  EndpointHealth(const EndpointHealth&) = delete;
  EndpointHealth& operator=(const EndpointHealth&) = delete;

  // Written by the control thread (probe results, the registry); read by workers.
  alignas(64) std::atomic<ProbeState> probe{ProbeState::kUnchecked};
  // When it last became routable (health_clock_ms): it joined a snapshot, passed its first probe
  // or came back from unhealthy. Slow start ramps its weight up from here.
  std::atomic<int64_t> routable_since_ms{0};
  // Active probes that failed in a row (0 after one passes), and why the last one failed (a
  // static string: "timeout", "connect-failed", "status", ...; null before any failed): for
  // people (the status page), not for selection.
  std::atomic<uint32_t> failed_probes{0};
  std::atomic<const char*> last_probe_failure{nullptr};
  const uint32_t slot;  // its index in every worker's InFlightCounts, unique while it lives

  // Written by workers on an outcome (passive outlier detection).
  alignas(64) std::atomic<uint32_t> consecutive_failures{0};  // connect failures / 5xx in a row
  std::atomic<uint32_t> ejections{0};                          // how often ejected (grows the ejection time)
  std::atomic<int64_t> ejected_until_ms{0};                    // health_clock_ms(); 0 = not ejected
  // An ejection turned its probe state unhealthy (an active check): it stays out past
  // ejected_until_ms until a probe passes, and counts against the cap. Cleared by any probe
  // result: a failed one makes it out by its probes.
  std::atomic<bool> held_by_ejection{false};

  // Written by workers on every attempt, but only while the service's circuit breaker has the
  // limit that reads it (config::CircuitBreaker); left alone otherwise.
  alignas(64) std::atomic<uint32_t> requests{0};  // in flight, all workers (max_requests)
  std::atomic<uint32_t> pending{0};               // connects in progress, all workers (max_pending)

  bool ejected(int64_t now_ms) const noexcept {
    return ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
  }
  // Out because of an ejection: its time runs, or it waits for the probe the ejection asks for.
  bool out_by_ejection(int64_t now_ms) const noexcept {
    return ejected(now_ms) || (held_by_ejection.load(std::memory_order_relaxed) &&
                               probe.load(std::memory_order_relaxed) == ProbeState::kUnhealthy);
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

// Per service, across workers; each kept only while the service's circuit breaker has the
// matching limit (service_max_requests, service_max_pending). Own cache line.
struct alignas(64) ServiceCounters {
  std::atomic<uint32_t> requests{0};
  std::atomic<uint32_t> pending{0};
};

// Requests in flight per instance, for /api/routes: each worker counts in memory only it writes
// (no cache line shared with other workers per request) and a reader sums every worker's count.
// One per worker; counts are indexed by EndpointHealth::slot.
class InFlightCounts {
 public:
  InFlightCounts();   // joins the set that total() sums
  ~InFlightCounts();  // leaves it
  InFlightCounts(const InFlightCounts&) = delete;
  InFlightCounts& operator=(const InFlightCounts&) = delete;

  // The owning thread only. Every add is matched by a remove of the same instance.
  void add(const EndpointHealth& h) noexcept { change(h.slot, 1); }
  void remove(const EndpointHealth& h) noexcept { change(h.slot, -1); }
  uint32_t get(const EndpointHealth& h) const noexcept;
  // Any thread: the requests in flight to the instance, summed over every live InFlightCounts.
  static uint32_t total(const EndpointHealth& h) noexcept;

 private:
  static constexpr uint32_t kChunkBits = 10;  // 1,024 instances per chunk (4 KiB)
  static constexpr uint32_t kChunks = 4096;   // up to 4M instances alive at once
  void change(uint32_t slot, int delta) noexcept;
  // Chunks are made by the owning thread on first use and freed only by the destructor.
  std::unique_ptr<std::atomic<std::atomic<uint32_t>*>[]> chunks_;
};

// Bumped on every change of a probe state or ejection, so workers refresh their view at once.
uint64_t health_epoch() noexcept;
void bump_health_epoch() noexcept;

}  // namespace berth
