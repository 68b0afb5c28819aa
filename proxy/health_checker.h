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

#include "config/config.h"
#include "proxy/endpoint_health.h"
#include "proxy/route_table.h"

namespace berth {

class HealthChecker {
 public:
  explicit HealthChecker(uv_loop_t* loop) : loop_(loop) {}
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The instances to check, from a new snapshot: probes start for new instances and stop for
  // those gone; the others keep their state (and their schedule unless their check changed).
  void update(const RouteTable& routes);
  // Closes every handle (memory is freed in the close callbacks). update() is a no-op after.
  void stop();

  struct Target;
  struct Probe;

 private:
  uv_loop_t* loop_;
  std::unordered_map<std::string, Target*> targets_;  // by endpoint key
  bool stopped_ = false;
};

}  // namespace berth
