// Health of one instance, shared by the control thread (active probes) and every worker
// (passive outlier detection, circuit-breaker counts) through atomics: no lock on the request
// path. The HealthRegistry (control thread) keeps one per endpoint key and attaches it to each
// snapshot's Endpoint, so health survives route-table rebuilds for instances that stay.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

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

// Monotonic milliseconds, the same on every thread.
int64_t health_clock_ms() noexcept;
// Bumped on every change of a probe state or ejection, so workers refresh their view at once.
uint64_t health_epoch() noexcept;
void bump_health_epoch() noexcept;

// Control thread only.
class HealthRegistry {
 public:
  // Attaches the shared health of each endpoint and the counters of each service (creating them
  // for newcomers: "pending" when their service has an active check, routable since now
  // otherwise), and forgets endpoints and services that are no longer present.
  void attach(std::vector<Service>& services);
  // The same pass over a snapshot whose services are shared: `services` is every service of
  // the snapshot about to be published; `fresh` are those among them built since the last pass
  // (not yet published, so still writable): only they get counters and health assigned. The
  // others were attached when they were fresh and keep what they were given.
  void attach(const std::vector<std::shared_ptr<const Service>>& services, const std::vector<Service*>& fresh);
  size_t size() const { return endpoints_.size(); }

 private:
  // Each attach() is a pass; entries not seen in the latest pass are forgotten. No allocation
  // per endpoint that stays.
  struct EndpointEntry {
    std::shared_ptr<EndpointHealth> health;
    uint64_t seen = 0;     // last pass that listed it
    uint64_t checked = 0;  // last pass in which a service with an active check listed it
  };
  struct ServiceEntry {
    std::shared_ptr<ServiceCounters> counters;
    uint64_t seen = 0;
  };
  std::unordered_map<std::string, EndpointEntry> endpoints_;
  std::unordered_map<std::string, ServiceEntry> services_;
  uint64_t pass_ = 0;

  void run_pass(const std::vector<const Service*>& all, const std::vector<Service*>& fresh);
};

}  // namespace berth
