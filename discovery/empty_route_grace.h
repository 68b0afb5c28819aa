// Keeps a route that left the layout (its containers were removed, or a resync no longer
// lists them) for what is left of its grace period, with an empty service, so it answers 503 +
// Retry-After (not 404) while a replacement starts; then it is dropped. Routes that stay in the
// layout without instances need no help: their service carries its own grace end
// (Service::serve_empty_until_ms). Pure apart from the time passed in; the source arms a timer
// for next_expiry().
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "discovery/source.h"

namespace berth::discovery {

class EmptyRouteGrace {
 public:
  explicit EmptyRouteGrace(std::chrono::milliseconds grace) : grace_(grace) {}

  // `live`: what the builder wants now. Returns it plus the routes in their grace period,
  // pointing at empty services. When the live layout is the one of the previous call (the
  // same routes object) the cost is that of copying the services' pointers; the routes object
  // handed out is then the previous one too. now_ms: health_clock_ms().
  std::shared_ptr<const DiscoveredSet> apply(DiscoveredSet live, int64_t now_ms);
  // When the earliest grace period ends (nullopt: none running), in health_clock_ms() time.
  std::optional<int64_t> next_expiry() const;
  size_t in_grace() const { return held_.size(); }

 private:
  struct Held {
    Route route;
    ServicePtr empty;  // an empty service of the route's service name, serving until the grace ends
  };
  std::chrono::milliseconds grace_;
  RouteList live_routes_;                      // the layout of the previous call's `live`
  std::shared_ptr<const DiscoveredSet> last_;  // what the previous call returned
  std::map<std::string, Held> held_;           // route_claim_key -> route kept
};

}  // namespace berth::discovery
