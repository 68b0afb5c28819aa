// Passive health (outlier detection) and the per-service choice of routable instances,
// including panic mode. Pure functions over the shared EndpointHealth atomics; run on workers.
//
// An instance is ejected after outlier.consecutive_failures connect failures or 5xx answers in
// a row (counted across workers), for base_ejection x 2^(n-1) on its n-th ejection (capped at
// 16x). At most max_ejection_percent of a service's instances are ejected at once (but always
// at least one may be). With an active check, an ejected instance must also pass a probe again.
// Panic: when fewer than panic_threshold_percent of a service's instances (not counting those
// still waiting for their first passing probe) are routable, every
// instance that has passed a probe at least once (or has no check) takes traffic again,
// routable or not: better to try a possibly-bad instance than to fail every request.
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/model/route_table.h"

namespace berth {

void record_success(const Endpoint& endpoint) noexcept;
// Returns true when this failure ejected the instance.
bool record_failure(const Service& service, size_t index, int64_t now_ms) noexcept;

// out[i] = kRoutable when endpoint i may take new requests, kStandby when it may but stands by
// (another host's instance while one of this host's is routable: locality; chosen only when no
// routable instance is eligible, e.g. by retries), 0 when it may not. Returns true in panic mode. next_change:
// when the answer changes by itself (the earliest end of an ejection or of a slow-start window),
// else INT64_MAX; other changes bump health_epoch(). ramp_until: when the last slow-start window
// of a routable endpoint ends, or 0 when none is in its window now (or the policy ignores slow
// start, or in panic mode).
constexpr uint8_t kRoutable = 1;
constexpr uint8_t kStandby = 2;
bool compute_routable(const Service& service, int64_t now_ms, std::vector<uint8_t>& out,
                      int64_t* next_change = nullptr, int64_t* ramp_until = nullptr);

}  // namespace berth
