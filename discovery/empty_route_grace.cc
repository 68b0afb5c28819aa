#include "discovery/empty_route_grace.h"

#include <unordered_set>

namespace berth::discovery {

namespace {
std::string key_of(const Route& r) { return r.host + "\n" + r.path_prefix; }
}  // namespace

std::shared_ptr<const DiscoveredSet> EmptyRouteGrace::apply(DiscoveredSet live, Clock::time_point now) {
  auto has_instance = [](const DiscoveredSet& set, const Route& r) {
    return r.service < set.services.size() && !set.services[r.service]->endpoints.empty();
  };
  // host + '\n' + path of every live route, as views into `live` (no copies).
  struct KeyHash {
    size_t operator()(const std::pair<std::string_view, std::string_view>& k) const noexcept {
      return std::hash<std::string_view>{}(k.first) * 31 + std::hash<std::string_view>{}(k.second);
    }
  };
  std::unordered_set<std::pair<std::string_view, std::string_view>, KeyHash> now_live;
  now_live.reserve(live.routes.size());
  for (const Route& r : live.routes)
    if (has_instance(live, r)) now_live.emplace(r.host, r.path_prefix);

  // Routes live before (those of the last result that have an instance) and gone now start
  // their grace period.
  if (last_) {
    for (const Route& r : last_->routes) {
      if (!has_instance(*last_, r) || now_live.count({r.host, r.path_prefix})) continue;
      std::string key = key_of(r);
      if (grace_routes_.count(key)) continue;
      grace_routes_.emplace(std::move(key), Held{r, last_->services[r.service]->name, now});
    }
  }
  // Grace periods end when the route is live again or the time is up.
  for (auto it = grace_routes_.begin(); it != grace_routes_.end();) {
    const Route& r = it->second.route;
    if (now_live.count({r.host, r.path_prefix}) || now - it->second.since >= grace_) it = grace_routes_.erase(it);
    else ++it;
  }
  now_live.clear();  // views into live, which moves below
  auto result = std::make_shared<DiscoveredSet>(std::move(live));
  DiscoveredSet& out = *result;
  std::map<std::string, uint32_t> empty_services;
  for (const auto& [key, held] : grace_routes_) {
    Route route = held.route;
    auto [slot, fresh] = empty_services.emplace(held.service, static_cast<uint32_t>(out.services.size()));
    if (fresh) out.services.push_back(std::make_shared<const Service>(Service{held.service, {}, {}, {}}));
    route.service = slot->second;
    out.routes.push_back(std::move(route));
  }
  last_ = result;
  return result;
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
