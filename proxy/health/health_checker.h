// Active health checks: an HTTP/1.1 GET from Berth to each instance of every service with a
// `health:` check (or berth.health.* labels), run on the control loop, never on a worker loop.
// Results go to the instance's shared EndpointHealth (atomics) that every worker reads, so a
// probe result reaches the request path without a new snapshot.
//
// A new instance starts "pending" (no traffic) and becomes healthy after healthy_threshold
// passing probes (the first probe runs at once); a healthy one becomes unhealthy after
// unhealthy_threshold failing probes in a row (status outside the range, connect failure,
// reset, or no answer within the timeout), and healthy again after healthy_threshold passes.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "proxy/health/health_registry.h"
#include "proxy/model/route_table.h"

namespace berth {

class HealthChecker {
 public:
  explicit HealthChecker(uv_loop_t* loop) : loop_(loop) {}
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The instances to check, from a new snapshot: probes start for new instances and stop for
  // those gone; the others keep their state (and their schedule unless their check changed).
  // A full recompute, costing every checked endpoint of the snapshot (used at startup).
  void update(const RouteTable& routes);
  // The same, told which services entered and left the published snapshot (as for
  // HealthRegistry::update). Costs nothing when none of them has an active check; otherwise
  // only the changed checked services' endpoints are looked at. Each service's instance is probed
  // with that service's check (two services on one address: two probes, each judging its own
  // state); should two published services share a name and an address, the first one's check
  // of the last full update is probed while it stays. `routes` is the new snapshot, used for the full recompute before any full update();
  // `removed` must still be readable during the call.
  void update(const RouteTable& routes, const std::vector<ServicePtr>& added,
              const std::vector<const Service*>& removed);
  // Closes every handle (memory is freed in the close callbacks). update() is a no-op after.
  void stop();
  // Instances probed (per service and address), and the check probing `service`'s instance at
  // `endpoint` (null when it is not probed).
  size_t size() const { return targets_.size(); }
  const config::HealthCheck* check_of(const std::string& service, const std::string& endpoint) const;

  struct Target;
  struct Probe;

 private:
  // A checked endpoint of a published service; holds that service (the snapshot it came from
  // may be gone before the service leaves it).
  struct Listing {
    ServicePtr service;
    const Endpoint* endpoint;
  };

  uv_loop_t* loop_;
  // Keyed as the registry keeps health (HealthRegistry::key_of: service name and endpoint key).
  std::unordered_map<std::string, Target*> targets_;
  // Key -> the published services of that name with an active check listing the address (with
  // health), in snapshot order after a full update. The front one's check is probed.
  std::unordered_map<std::string, std::vector<Listing>> listed_;
  bool indexed_ = false;  // listed_ was built by a full update()
  bool stopped_ = false;

  // Starts, restarts or stops the probe of `key` to match listed_ for it.
  void reconcile(const std::string& key);
  void start_target(const std::string& key, const Listing& listing);
};

}  // namespace berth
