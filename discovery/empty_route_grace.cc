#include "discovery/empty_route_grace.h"

#include <algorithm>
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
        const ServicePtr& was = last_->services[r.service];
        int64_t until = was->endpoints.empty() ? was->serve_empty_until_ms : now_ms + grace_.count();
        if (until <= now_ms) continue;
        held_.emplace(std::move(key), Held{r, was, until});
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
    if (it->second.until <= now_ms) {
      it = held_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (held_.empty()) {
    empties_.clear();
    last_ = result;
    return result;
  }
  // Unchanged, the layout and the empty services are the previous call's, and so is the routes
  // object. Otherwise each held route goes to the live service of its name, or to the empty one
  // of its name (after the live ones, one per name).
  if (!changed && last_->routes->size() == out.routes->size() + held_.size()) {
    out.routes = last_->routes;
  } else {
    std::map<std::string_view, uint32_t> index_of;
    for (size_t i = 0; i < live_services; ++i) index_of.emplace(out.services[i]->name, static_cast<uint32_t>(i));
    if (changed) {
      std::vector<std::shared_ptr<Service>> made;
      for (const auto& [key, held] : held_) {
        auto [at, fresh] = index_of.emplace(held.was->name, static_cast<uint32_t>(live_services + made.size()));
        if (fresh) {
          auto empty = std::make_shared<Service>();
          empty->name = held.was->name;
          empty->policy = held.was->policy;
          empty->serve_empty_until_ms = held.until;
          made.push_back(std::move(empty));
        } else if (at->second >= live_services) {
          Service& empty = *made[at->second - live_services];
          empty.serve_empty_until_ms = std::max(empty.serve_empty_until_ms, held.until);
        }
      }
      empties_.assign(made.begin(), made.end());
    } else {
      for (size_t i = 0; i < empties_.size(); ++i)
        index_of.emplace(empties_[i]->name, static_cast<uint32_t>(live_services + i));
    }
    auto routes = std::make_shared<std::vector<Route>>(*out.routes);
    for (const auto& [key, held] : held_) {
      Route route = held.route;
      route.service = index_of.at(held.was->name);
      route.mirror.reset();  // while held, nothing to copy
      routes->push_back(std::move(route));
    }
    out.routes = std::move(routes);
  }
  for (const ServicePtr& empty : empties_) out.services.push_back(empty);
  last_ = result;
  return result;
}

std::optional<int64_t> EmptyRouteGrace::next_expiry() const {
  std::optional<int64_t> earliest;
  for (const auto& [key, held] : held_) {
    int64_t end = held.until;
    if (!earliest || end < *earliest) earliest = end;
  }
  return earliest;
}

}  // namespace berth::discovery
