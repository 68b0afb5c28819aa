#include "proxy/control/discovered_merge.h"

#include <algorithm>
#include <string_view>

namespace berth {

namespace {

std::string who(size_t owner, const std::vector<std::string>& source_names) {
  if (owner == 0) return "the config file";
  return "discovery source '" + (owner - 1 < source_names.size() ? source_names[owner - 1] : std::string("?")) + "'";
}

}  // namespace

MergedServices merge_services(const std::vector<ServicePtr>& configured, const DiscoveredSets& sets) {
  MergedServices out;
  out.services = configured;
  out.index.resize(sets.size());
  // name -> who has it (0: the config file, s + 1: source s)
  std::unordered_map<std::string_view, size_t> owner;
  owner.reserve(configured.size());
  for (const ServicePtr& s : configured) owner.emplace(s->name, 0);
  for (size_t s = 0; s < sets.size(); ++s) {
    if (!sets[s]) continue;
    std::vector<uint32_t>& index = out.index[s];
    index.reserve(sets[s]->services.size());
    for (const ServicePtr& service : sets[s]->services) {
      auto [it, fresh] = owner.emplace(service->name, s + 1);
      if (!fresh) {
        index.push_back(kLeftOut);
        out.contested.emplace(service->name, it->second);
        continue;
      }
      index.push_back(static_cast<uint32_t>(out.services.size()));
      out.services.push_back(service);
    }
  }
  return out;
}

std::map<std::string, std::string> reserved_service_names(const std::vector<ServicePtr>& configured,
                                                          const DiscoveredSets& sets, size_t source,
                                                          const std::vector<std::string>& source_names) {
  std::map<std::string, std::string> out;
  for (const ServicePtr& s : configured) out.emplace(s->name, who(0, source_names));
  for (size_t s = 0; s < source && s < sets.size(); ++s)
    if (sets[s])
      for (const ServicePtr& service : sets[s]->services) out.emplace(service->name, who(s + 1, source_names));
  return out;
}

MergedRoutes merge_routes(const std::vector<Route>& configured, const DiscoveredSets& sets,
                          const MergedServices& services, const std::vector<std::string>& source_names) {
  MergedRoutes out;
  out.routes = configured;
  std::unordered_map<std::string, std::string> config_paths;  // host + path -> the config route's name
  for (const Route& r : configured) config_paths.emplace(r.host + '\n' + r.path_prefix, r.name);
  // host + path + matchers -> the source that routes it (the first), and its service there
  std::unordered_map<std::string, std::pair<size_t, const Service*>> routed;
  for (size_t s = 0; s < sets.size(); ++s) {
    if (!sets[s]) continue;
    const discovery::DiscoveredSet& set = *sets[s];
    const std::vector<uint32_t>& index = services.index[s];
    for (const Route& r : *set.routes) {
      if (r.service >= index.size()) continue;  // RouteTable::build would drop it
      const Service& own = *set.services[r.service];
      auto leave_out = [&](const std::string& why) {
        out.left_out.emplace_back(std::string(route_source_label(r.source)),
                                  "route " + (r.host.empty() ? std::string("(any host)") : r.host) + r.path_prefix +
                                      " of service '" + own.name + "' " + why);
      };
      if (auto c = config_paths.find(r.host + '\n' + r.path_prefix); c != config_paths.end()) {
        leave_out("is the config file's (route '" + c->second + "'): the config file wins");
        continue;
      }
      const uint32_t at = index[r.service];
      const uint32_t shadow = r.mirror && r.mirror->service < index.size() ? index[r.mirror->service] : 0;
      if (at == kLeftOut || shadow == kLeftOut) {
        const std::string& name = at == kLeftOut ? own.name : set.services[r.mirror->service]->name;
        auto owner = services.contested.find(name);
        const size_t holder = owner == services.contested.end() ? 0 : owner->second;
        if (holder == s + 1) {
          // A source names each of its services once: two of one name in one set is a bug in
          // the source, not a contest between sources, and says so (4cad24e was such a bug).
          leave_out("is not routed: " + who(holder, source_names) + " listed the service '" + name +
                    "' twice (an internal error: please report it)");
        } else {
          leave_out("is not routed: the service name '" + name + "' is taken by " + who(holder, source_names) +
                    " (a service name belongs to the first that has it)");
        }
        continue;
      }
      auto [claim, fresh] = routed.try_emplace(route_claim_key(r), s, &own);
      if (!fresh && claim->second.first != s) {
        leave_out("is served by service '" + claim->second.second->name + "' from " +
                  who(claim->second.first + 1, source_names) + " (the first source wins)");
        continue;
      }
      Route kept = r;
      kept.service = at;
      if (kept.mirror) {
        RouteMirror shifted = *kept.mirror;
        shifted.service = shadow;
        kept.mirror = std::make_shared<const RouteMirror>(shifted);
      }
      out.routes.push_back(std::move(kept));
    }
  }
  std::sort(out.left_out.begin(), out.left_out.end());
  out.left_out.erase(std::unique(out.left_out.begin(), out.left_out.end()), out.left_out.end());
  return out;
}

}  // namespace berth
