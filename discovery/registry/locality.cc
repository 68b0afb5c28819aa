#include "discovery/registry/locality.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace berth::discovery::registry {

namespace {

// The local service with the other hosts' instances after its own (an address both list counts
// once, as the local instance).
ServicePtr join(const Service& local, const Service& remote) {
  auto joined = std::make_shared<Service>(local);
  std::unordered_set<std::string> keys;
  for (const Endpoint& e : local.endpoints) keys.insert(e.key);
  for (const Endpoint& e : remote.endpoints) {
    if (!keys.insert(e.key).second) continue;
    joined->endpoints.push_back(e);
    joined->endpoints.back().remote = true;
  }
  joined->held_back.insert(joined->held_back.end(), remote.held_back.begin(), remote.held_back.end());
  return joined;
}

}  // namespace

std::shared_ptr<const DiscoveredSet> LocalityMerge::merge(const std::shared_ptr<const DiscoveredSet>& local,
                                                          const std::shared_ptr<const DiscoveredSet>& remote) {
  static const DiscoveredSet kNone;
  if (!remote || (remote->services.empty() && remote->rejected.empty())) {
    joined_.clear();
    routes_.reset();
    return local ? local : std::make_shared<const DiscoveredSet>();
  }
  const DiscoveredSet& l = local ? *local : kNone;
  const DiscoveredSet& r = *remote;
  auto out = std::make_shared<DiscoveredSet>();

  std::unordered_map<std::string_view, size_t> remote_by_name;
  for (size_t i = 0; i < r.services.size(); ++i) remote_by_name.emplace(r.services[i]->name, i);
  std::vector<int64_t> merged_index(r.services.size(), -1);  // remote service -> merged position
  std::map<std::string, Joined> joined;
  std::vector<std::string> names;
  names.reserve(l.services.size() + r.services.size());
  for (size_t i = 0; i < l.services.size(); ++i) {
    const ServicePtr& ls = l.services[i];
    ServicePtr service = ls;
    if (auto it = remote_by_name.find(ls->name); it != remote_by_name.end()) {
      const ServicePtr& rs = r.services[it->second];
      merged_index[it->second] = static_cast<int64_t>(i);
      auto before = joined_.find(ls->name);
      service = before != joined_.end() && before->second.local == ls && before->second.remote == rs
                    ? before->second.merged
                    : join(*ls, *rs);
      joined.emplace(ls->name, Joined{ls, rs, service});
    }
    out->services.push_back(std::move(service));
    names.push_back(ls->name);
  }
  joined_ = std::move(joined);

  // The other hosts' routes, unless this host serves their host + path itself. Recomputed only
  // when a layout changed; otherwise the remote-only services come in the same order as before.
  bool same_layout = routes_ && l.routes == local_routes_ && r.routes == remote_routes_ &&
                     names.size() == local_count_ && names.size() <= service_names_.size() &&
                     std::equal(names.begin(), names.end(), service_names_.begin());
  if (same_layout) {
    for (size_t k = names.size(); k < service_names_.size() && same_layout; ++k) {
      auto it = remote_by_name.find(service_names_[k]);
      if (it == remote_by_name.end()) same_layout = false;
      else out->services.push_back(r.services[it->second]);
    }
    if (!same_layout) out->services.resize(names.size());
  }
  if (!same_layout) {
    auto routes = std::make_shared<std::vector<Route>>(*l.routes);
    std::unordered_map<std::string, std::string> claims;  // host \n path -> local service
    for (const Route& route : *l.routes)
      claims.emplace(route.host + '\n' + route.path_prefix, l.services[route.service]->name);
    route_rejections_.clear();
    for (const Route& route : *r.routes) {
      const std::string& name = r.services[route.service]->name;
      if (auto c = claims.find(route.host + '\n' + route.path_prefix); c != claims.end()) {
        if (c->second != name)
          route_rejections_.emplace_back("registry:" + name,
                                         "host '" + route.host + "' path '" + route.path_prefix +
                                             "' is served on this host by service " + c->second);
        continue;
      }
      // A remote service's position in the merged set (added after the others on first use).
      auto merged = [&](uint32_t index) {
        if (merged_index[index] < 0) {
          merged_index[index] = static_cast<int64_t>(out->services.size());
          out->services.push_back(r.services[index]);
          names.push_back(r.services[index]->name);
        }
        return static_cast<uint32_t>(merged_index[index]);
      };
      Route copy = route;
      copy.service = merged(route.service);
      // A mirror names its shadow by the remote set's index too (a published berth.mirror.*).
      if (route.mirror)
        copy.mirror = std::make_shared<const RouteMirror>(
            RouteMirror{merged(route.mirror->service), route.mirror->percent_bp, route.mirror->max_body});
      routes->push_back(std::move(copy));
    }
    routes_ = std::move(routes);
    local_routes_ = l.routes;
    remote_routes_ = r.routes;
    local_count_ = l.services.size();
    service_names_ = std::move(names);
  }
  out->routes = routes_;
  out->rejected = l.rejected;
  out->rejected.insert(out->rejected.end(), r.rejected.begin(), r.rejected.end());
  out->rejected.insert(out->rejected.end(), route_rejections_.begin(), route_rejections_.end());
  out->event_received_ns = std::max(l.event_received_ns, r.event_received_ns);
  return out;
}

}  // namespace berth::discovery::registry
