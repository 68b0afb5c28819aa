#include "discovery/empty_route_grace.h"

namespace berth::discovery {

namespace {
std::string key_of(const Route& r) { return r.host + "\n" + r.path_prefix; }
}  // namespace

DiscoveredSet EmptyRouteGrace::apply(const DiscoveredSet& live, Clock::time_point now) {
  std::map<std::string, Held> now_live;
  for (const Route& r : live.routes) {
    if (r.service >= live.services.size() || live.services[r.service].endpoints.empty()) continue;
    now_live[key_of(r)] = Held{r, live.services[r.service].name, now};
  }
  // Routes live before and gone now start their grace period.
  for (auto& [key, held] : last_live_) {
    if (now_live.count(key) || grace_routes_.count(key)) continue;
    grace_routes_[key] = Held{held.route, held.service, now};
  }
  last_live_ = std::move(now_live);

  DiscoveredSet out = live;
  std::map<std::string, uint32_t> empty_services;
  for (auto it = grace_routes_.begin(); it != grace_routes_.end();) {
    if (last_live_.count(it->first) || now - it->second.since >= grace_) {
      it = grace_routes_.erase(it);
      continue;
    }
    Route route = it->second.route;
    auto [slot, fresh] = empty_services.emplace(it->second.service, static_cast<uint32_t>(out.services.size()));
    if (fresh) out.services.push_back(Service{it->second.service, {}});
    route.service = slot->second;
    out.routes.push_back(std::move(route));
    ++it;
  }
  return out;
}

std::optional<EmptyRouteGrace::Clock::time_point> EmptyRouteGrace::next_expiry() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& [key, held] : grace_routes_) {
    auto end = held.since + grace_;
    if (!earliest || end < *earliest) earliest = end;
  }
  return earliest;
}

}  // namespace berth::discovery
