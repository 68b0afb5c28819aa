// Keeps a route whose last instance went away for a grace period with an empty service, so it
// answers 503 + Retry-After (not 404) while a replacement starts; after the grace it is dropped.
// Pure apart from the time passed in; the source arms a timer for next_expiry().
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
  using Clock = std::chrono::steady_clock;
  explicit EmptyRouteGrace(std::chrono::milliseconds grace) : grace_(grace) {}

  // `live`: what the builder wants now (every route has an instance). Returns it plus the
  // routes in their grace period, pointing at empty services. Copies only routes that enter
  // their grace: the cost per call is a hash of each live route's host and path.
  std::shared_ptr<const DiscoveredSet> apply(DiscoveredSet live, Clock::time_point now);
  // When the earliest grace period ends (nullopt: none running).
  std::optional<Clock::time_point> next_expiry() const;
  size_t in_grace() const { return grace_routes_.size(); }

 private:
  struct Held {
    Route route;
    std::string service;
    Clock::time_point since;
  };
  std::chrono::milliseconds grace_;
  std::shared_ptr<const DiscoveredSet> last_;  // what the previous call returned
  std::map<std::string, Held> grace_routes_;  // host\npath -> route kept empty
};

}  // namespace berth::discovery
