// Keeps a route that left the layout (its containers were removed, or a resync no longer
// lists them) for what is left of its grace period, with an empty service, so it answers 503 +
// Retry-After (not 404) while a replacement starts; then it is dropped. Routes that stay in the
// layout without instances need no help: their service carries its own grace end
// (Service::serve_empty_until_ms). A set holds one service per name: the routes held of one
// name share one empty service, serving until the last of their grace ends; a route held while
// its service is still in the layout (another container of it still declares other routes)
// goes to that service, as it did before it left. Pure apart from the time passed in; the
// source arms a timer for next_expiry().
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
    ServicePtr was;     // its service when it left (name and policy)
    int64_t until = 0;  // when its grace ends, in health_clock_ms() time
  };
  std::chrono::milliseconds grace_;
  RouteList live_routes_;                      // the layout of the previous call's `live`
  std::shared_ptr<const DiscoveredSet> last_;  // what the previous call returned
  std::map<std::string, Held> held_;           // route_claim_key -> route kept
  std::vector<ServicePtr> empties_;            // the empty services of the held routes, as last made
};

}  // namespace berth::discovery
