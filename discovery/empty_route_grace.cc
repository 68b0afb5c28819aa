#include "discovery/empty_route_grace.h"

#include <unordered_set>

namespace berth::discovery {


std::shared_ptr<const DiscoveredSet> EmptyRouteGrace::apply(DiscoveredSet live, int64_t now_ms) {
  auto result = std::make_shared<DiscoveredSet>(std::move(live));
  DiscoveredSet& out = *result;
  const size_t live_services = out.services.size();
  bool changed = !last_ || out.routes != live_routes_;
  if (changed) {
    // The claim of every live route (route_claim_key). A route with matchers beside one without
    // (a canary beside the main route) is a claim of its own.
    std::unordered_set<std::string> now_live;
    now_live.reserve(out.routes->size());
    for (const Route& r : *out.routes) now_live.insert(route_claim_key(r));
    // Routes the previous result had (live or held) and the layout lost start their grace:
    // what is left of it when their service was already empty, all of it otherwise.
    if (last_) {
      for (const Route& r : *last_->routes) {
        std::string key = route_claim_key(r);
        if (now_live.count(key) || held_.count(key)) continue;
        const Service& was = *last_->services[r.service];
        int64_t until = was.endpoints.empty() ? was.serve_empty_until_ms : now_ms + grace_.count();
        if (until <= now_ms) continue;
        auto empty = std::make_shared<Service>();
        empty->name = was.name;
        empty->policy = was.policy;
        empty->serve_empty_until_ms = until;
        held_.emplace(std::move(key), Held{r, std::move(empty)});
      }
    }
    for (auto it = held_.begin(); it != held_.end();) {
      if (now_live.count(it->first)) it = held_.erase(it);
      else ++it;
    }
    live_routes_ = out.routes;
  }
  // Grace periods that ended: dropped.
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.empty->serve_empty_until_ms <= now_ms) {
      it = held_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (held_.empty()) {
    last_ = result;
    return result;
  }
  // The held routes go after the live ones; their routes object is reused while nothing changed.
  for (const auto& [key, held] : held_) out.services.push_back(held.empty);
  if (!changed && last_->routes->size() == out.routes->size() + held_.size()) {
    out.routes = last_->routes;
  } else {
    auto routes = std::make_shared<std::vector<Route>>(*out.routes);
    uint32_t index = static_cast<uint32_t>(live_services);
    for (const auto& [key, held] : held_) {
      Route route = held.route;
      route.service = index++;
      route.mirror.reset();  // it answers 503 while held: nothing to copy
      routes->push_back(std::move(route));
    }
    out.routes = std::move(routes);
  }
  last_ = result;
  return result;
}

std::optional<int64_t> EmptyRouteGrace::next_expiry() const {
  std::optional<int64_t> earliest;
  for (const auto& [key, held] : held_) {
    int64_t end = held.empty->serve_empty_until_ms;
    if (!earliest || end < *earliest) earliest = end;
  }
  return earliest;
}

}  // namespace berth::discovery
