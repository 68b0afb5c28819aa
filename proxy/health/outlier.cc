#include "proxy/health/outlier.h"

#include <algorithm>
#include <cstdint>

#include "proxy/lb/lb.h"

namespace berth {
namespace {

// When the last slow-start window of a routable endpoint ends; 0 when none is in one now.
int64_t slow_start_end(const Service& service, const std::vector<uint8_t>& routable, int64_t now_ms) {
  if (!uses_slow_start(service.policy.lb)) return 0;
  const int64_t window = service.policy.lb.slow_start.count();
  int64_t last = 0;
  for (size_t i = 0; i < routable.size(); ++i) {
    const EndpointHealth* h = service.endpoints[i].health.get();
    if (routable[i] == kRoutable && h && h->ramp_start_ms() + window > now_ms) last = std::max(last, h->ramp_start_ms() + window);
  }
  return last;
}

// Locality: while an instance on this host is routable, other hosts' instances stand by.
void prefer_local(const Service& service, std::vector<uint8_t>& out) noexcept {
  bool any_remote = false, local_routable = false;
  for (size_t i = 0; i < out.size(); ++i) {
    any_remote = any_remote || service.endpoints[i].remote;
    local_routable = local_routable || (out[i] && !service.endpoints[i].remote);
  }
  if (!any_remote || !local_routable) return;
  for (size_t i = 0; i < out.size(); ++i)
    if (service.endpoints[i].remote && out[i]) out[i] = kStandby;
}

}  // namespace

void record_success(const Endpoint& endpoint) noexcept {
  if (endpoint.health && endpoint.health->consecutive_failures.load(std::memory_order_relaxed) != 0)
    endpoint.health->consecutive_failures.store(0, std::memory_order_relaxed);
}

bool record_failure(const Service& service, size_t index, int64_t now_ms) noexcept {
  const Endpoint& endpoint = service.endpoints[index];
  EndpointHealth* h = endpoint.health.get();
  const config::OutlierDetection& o = service.policy.outlier;
  if (!h || o.consecutive_failures == 0) return false;
  const uint32_t failures = h->consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failures < o.consecutive_failures || h->out_by_ejection(now_ms)) return false;
  // The cap: count the instances out because of an ejection right now, those whose time has run
  // but that still wait for the probe it asked for included (rare path: only at the threshold).
  size_t ejected = 0;
  for (const Endpoint& e : service.endpoints)
    if (e.health && e.health->out_by_ejection(now_ms)) ++ejected;
  const size_t allowed = std::max<size_t>(1, service.endpoints.size() * o.max_ejection_percent / 100);
  if (ejected >= allowed) return false;
  const uint32_t n = h->ejections.fetch_add(1, std::memory_order_relaxed);
  const int64_t factor = int64_t{1} << std::min<uint32_t>(n, 4);
  h->ejected_until_ms.store(now_ms + o.base_ejection.count() * factor, std::memory_order_relaxed);
  h->consecutive_failures.store(0, std::memory_order_relaxed);
  // With an active check, the instance comes back only once a probe passes again.
  ProbeState expected = ProbeState::kHealthy;
  if (h->probe.compare_exchange_strong(expected, ProbeState::kUnhealthy))
    h->held_by_ejection.store(true, std::memory_order_relaxed);
  bump_health_epoch();
  return true;
}

bool compute_routable(const Service& service, int64_t now_ms, std::vector<uint8_t>& out, int64_t* next_change,
                      int64_t* ramp_until) {
  const size_t n = service.endpoints.size();
  out.assign(n, 0);
  if (ramp_until) *ramp_until = 0;
  if (next_change) {
    *next_change = INT64_MAX;
    for (const Endpoint& e : service.endpoints) {
      const int64_t until = e.health ? e.health->ejected_until_ms.load(std::memory_order_relaxed) : 0;
      if (until > now_ms) *next_change = std::min(*next_change, until);
    }
  }
  size_t routable = 0, candidates = 0;  // candidates: all but those waiting for a first probe
  for (size_t i = 0; i < n; ++i) {
    const EndpointHealth* h = service.endpoints[i].health.get();
    out[i] = !h || h->routable(now_ms);
    routable += out[i];
    candidates += !h || h->probe.load(std::memory_order_relaxed) != ProbeState::kPending;
  }
  const uint32_t threshold = service.policy.outlier.panic_threshold_percent;
  if (candidates == 0 || threshold == 0 || routable * 100 >= candidates * threshold) {
    prefer_local(service, out);
    if (ramp_until) {
      *ramp_until = slow_start_end(service, out, now_ms);
      if (next_change && *ramp_until) *next_change = std::min(*next_change, *ramp_until);
    }
    return false;
  }
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    const EndpointHealth* h = service.endpoints[i].health.get();
    out[i] = !h || h->probe.load(std::memory_order_relaxed) != ProbeState::kPending;
    any = any || out[i];
  }
  return any;
}

}  // namespace berth
