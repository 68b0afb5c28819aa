#include "discovery/label_builder.h"

#include <algorithm>
#include <unordered_map>

namespace berth::discovery {

namespace {

std::string join_address(const std::string& ip, uint16_t port) {
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
  return ip + ":" + std::to_string(port);
}

std::string pick_ip(const ContainerNetwork& n, bool prefer_ipv6) {
  if (prefer_ipv6) return n.ipv6.empty() ? n.ipv4 : n.ipv6;
  return n.ipv4.empty() ? n.ipv6 : n.ipv4;
}

std::string names_of(const std::vector<ContainerNetwork>& networks) {
  std::string out;
  for (const auto& n : networks) out += (out.empty() ? "" : ", ") + n.name;
  return out.empty() ? "none" : out;
}

bool is_any_address(const std::string& ip) { return ip.empty() || ip == "0.0.0.0" || ip == "::"; }

ServicePtr make_service(const std::string& name, const config::ServicePolicy& policy,
                        const std::vector<const Endpoint*>& endpoints) {
  auto service = std::make_shared<Service>();
  service->name = name;
  service->policy = policy;
  service->endpoints.reserve(endpoints.size());
  for (const Endpoint* e : endpoints) service->endpoints.push_back(*e);
  return service;
}

struct Declared {
  const ContainerFacts* container;
  const ParsedContainer* parsed;
  size_t route;      // index into parsed->spec.routes
  size_t first_key;  // index into parsed->keys of this route's first host
};

}  // namespace

std::optional<std::string> resolve_address(const ContainerFacts& c, const std::string& label_network,
                                           uint16_t port, const BuilderOptions& options, std::string* reason) {
  auto fail = [&](std::string why) -> std::optional<std::string> {
    if (reason) *reason = std::move(why);
    return std::nullopt;
  };
  if (c.network_mode == "host") return join_address(options.host_address, port);
  if (c.network_mode == "none") return fail("network mode 'none': the container cannot be reached");
  if (c.network_mode.rfind("container:", 0) == 0)
    return fail("network mode '" + c.network_mode + "' (shares another container's network): route that container instead");

  if (options.use_published_ports) {
    auto published = c.published.find(port);
    if (published == c.published.end() || published->second.empty())
      return fail("use_published_ports is on but port " + std::to_string(port) + "/tcp is not published");
    const PortBinding& b = published->second.front();
    return join_address(is_any_address(b.host_ip) ? options.host_address : b.host_ip, b.host_port);
  }

  std::string wanted = !label_network.empty() ? label_network : options.network;
  if (!wanted.empty()) {
    for (const auto& n : c.networks) {
      if (n.name != wanted) continue;
      std::string ip = pick_ip(n, options.prefer_ipv6);
      if (ip.empty()) return fail("no IP address on network '" + wanted + "' (is the container running?)");
      return join_address(ip, port);
    }
    std::string source = !label_network.empty() ? "berth.network" : "docker.network";
    return fail("not attached to network '" + wanted + "' (" + source + "); its networks: " + names_of(c.networks));
  }

  std::vector<const ContainerNetwork*> shared;
  for (const auto& n : c.networks)
    if (std::find(options.own_networks.begin(), options.own_networks.end(), n.name) != options.own_networks.end())
      shared.push_back(&n);
  if (shared.size() == 1) {
    std::string ip = pick_ip(*shared.front(), options.prefer_ipv6);
    if (!ip.empty()) return join_address(ip, port);
  }
  if (shared.size() > 1) {
    std::string names;
    for (const auto* n : shared) names += (names.empty() ? "" : ", ") + n->name;
    return fail("shares several networks with Berth (" + names + "): set berth.network to choose one");
  }
  return fail("on network(s) " + names_of(c.networks) +
              " and no network is chosen: set berth.network or docker.network (or docker.use_published_ports)");
}

ParsedContainer parse_container(const ContainerFacts& c, const BuilderOptions& options) {
  ParsedContainer out;
  out.spec = parse_container_labels(c, options.labels);
  out.source = "container:" + c.display();
  if (out.spec.kind != ContainerSpec::Kind::kRouted) return out;
  for (const RouteSpec& route : out.spec.routes) {
    std::string reason;
    auto address = resolve_address(c, out.spec.network, route.port, options, &reason);
    if (!address) {
      out.problem = reason;
      out.endpoints.clear();
      out.keys.clear();
      out.names.clear();
      return out;
    }
    Endpoint endpoint;
    endpoint.key = *address;
    endpoint.weight = out.spec.weight;
    endpoint.source = out.source;
    if (!resolve_endpoint_key(endpoint)) endpoint.addr_len = 0;  // not numeric: never an instance
    out.endpoints.push_back(std::move(endpoint));
    out.names.push_back(route.name.empty() ? route.service : route.service + "/" + route.name);
    if (route.hosts.empty()) out.keys.push_back("\n" + route.path);
    for (const std::string& host : route.hosts) out.keys.push_back(host + "\n" + route.path);
  }
  return out;
}

ServicePtr BuilderMemo::service(const std::string& name, const config::ServicePolicy& policy,
                                const std::vector<const Endpoint*>& endpoints) {
  auto [it, fresh] = services_.try_emplace(name);
  const ServicePtr& before = it->second.service;
  bool same = !fresh && before->policy == policy && before->endpoints.size() == endpoints.size();
  for (size_t i = 0; same && i < endpoints.size(); ++i) same = same_instance(before->endpoints[i], *endpoints[i]);
  if (!same) it->second.service = make_service(name, policy, endpoints);
  it->second.build = builds_;
  return it->second.service;
}

void BuilderMemo::finish_build() {
  const uint64_t build = builds_++;
  if (services_.size() <= 64) return;
  // Entries of services absent from this build: dropped, in one sweep once they add up.
  size_t live = 0;
  for (const auto& [name, entry] : services_) live += entry.build == build;
  if (services_.size() <= 2 * live + 64) return;
  std::erase_if(services_, [&](const auto& kv) { return kv.second.build != build; });
}

const ParsedContainer& BuilderMemo::parse(const ContainerFacts& c, const BuilderOptions& options) {
  auto [it, fresh] = entries_.try_emplace(c.revision);
  if (fresh) it->second = parse_container(c, options);
  return it->second;
}

void BuilderMemo::prune(const ContainerCache& cache) {
  if (entries_.size() <= cache.size() + 64) return;
  std::unordered_map<uint64_t, bool> live;
  live.reserve(cache.size());
  for (const auto& [id, facts] : cache) live.emplace(facts.revision, true);
  std::erase_if(entries_, [&](const auto& kv) { return !live.count(kv.first); });
}

DiscoveredSet build_discovered_set(const ContainerCache& cache, const BuilderOptions& options, BuilderMemo* memo) {
  std::vector<const ContainerFacts*> containers;
  containers.reserve(cache.size());
  for (const auto& [id, facts] : cache) containers.push_back(&facts);
  std::sort(containers.begin(), containers.end(), [](const ContainerFacts* a, const ContainerFacts* b) {
    return a->name != b->name ? a->name < b->name : a->id < b->id;
  });

  DiscoveredSet set;
  // Parses not kept by a memo live here for the duration of the build.
  std::vector<ParsedContainer> local;
  local.reserve(containers.size());
  std::vector<Declared> declared;
  // host + '\n' + path -> (service, container) of the first declaration.
  std::unordered_map<std::string_view, std::pair<std::string_view, const ContainerFacts*>> owners;
  owners.reserve(containers.size() * 2);

  for (const ContainerFacts* cp : containers) {
    const ContainerFacts& c = *cp;
    const ParsedContainer* parsed;
    if (memo && c.revision != 0) {
      parsed = &memo->parse(c, options);
    } else {
      local.push_back(parse_container(c, options));
      parsed = &local.back();
    }
    const ContainerSpec& spec = parsed->spec;
    if (spec.kind == ContainerSpec::Kind::kIgnored) continue;
    if (spec.kind == ContainerSpec::Kind::kRejected) {
      set.rejected.emplace_back(c.display(), spec.reason);
      continue;
    }
    std::string problem = parsed->problem;
    // Another container already owns one of these host+path pairs for a different service?
    for (size_t r = 0, k = 0; problem.empty() && r < spec.routes.size(); ++r) {
      const RouteSpec& route = spec.routes[r];
      size_t hosts = route.hosts.empty() ? 1 : route.hosts.size();
      for (size_t h = 0; h < hosts; ++h, ++k) {
        auto owner = owners.find(parsed->keys[k]);
        if (owner != owners.end() && owner->second.first != route.service) {
          problem = "route " + (route.hosts.empty() ? std::string("(any host)") : route.hosts[h]) + route.path +
                    " is already served by service '" + std::string(owner->second.first) + "' of container " +
                    owner->second.second->display();
          break;
        }
      }
    }
    if (!problem.empty()) {
      set.rejected.emplace_back(c.display(), problem);
      continue;
    }
    for (size_t r = 0, k = 0; r < spec.routes.size(); ++r) {
      const RouteSpec& route = spec.routes[r];
      size_t hosts = route.hosts.empty() ? 1 : route.hosts.size();
      declared.push_back(Declared{&c, parsed, r, k});
      for (size_t h = 0; h < hosts; ++h, ++k) owners.emplace(parsed->keys[k], std::make_pair(std::string_view(route.service), &c));
    }
  }

  // Services in order of first declaration; endpoints from routable instances only, each
  // address once. members: (service index, endpoint) in declaration order, grouped below.
  std::unordered_map<std::string_view, uint32_t> service_index;
  service_index.reserve(declared.size());
  std::vector<const Declared*> first_declaration;  // per service: decides its policy
  first_declaration.reserve(declared.size());
  std::vector<std::pair<uint32_t, const Endpoint*>> members;
  members.reserve(declared.size());
  for (const Declared& d : declared) {
    const RouteSpec& spec = d.parsed->spec.routes[d.route];
    auto [it, inserted] = service_index.emplace(spec.service, static_cast<uint32_t>(first_declaration.size()));
    if (inserted) first_declaration.push_back(&d);  // the first container (by name) of a service
    if (!is_routable(*d.container)) continue;
    const Endpoint& endpoint = d.parsed->endpoints[d.route];
    if (endpoint.addr_len == 0) continue;
    members.emplace_back(it->second, &endpoint);
  }
  std::stable_sort(members.begin(), members.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ServicePtr> services(first_declaration.size());
  std::vector<bool> has_endpoints(first_declaration.size());
  std::vector<const Endpoint*> endpoints;
  for (size_t m = 0; m < members.size();) {
    const uint32_t index = members[m].first;
    endpoints.clear();
    for (; m < members.size() && members[m].first == index; ++m) {
      const Endpoint* endpoint = members[m].second;
      bool known = std::any_of(endpoints.begin(), endpoints.end(),
                               [&](const Endpoint* e) { return e->key == endpoint->key; });
      if (!known) endpoints.push_back(endpoint);
    }
    has_endpoints[index] = true;
    const ContainerSpec& first = first_declaration[index]->parsed->spec;
    const std::string& name = first.routes[first_declaration[index]->route].service;
    if (memo) services[index] = memo->service(name, first.policy, endpoints);
    else services[index] = make_service(name, first.policy, endpoints);
  }

  // Routes whose service has an instance, one per host, each declared once.
  std::unordered_map<std::string_view, bool> emitted;
  emitted.reserve(declared.size());
  std::vector<int64_t> remap(services.size(), -1);  // index in services -> index in set.services
  for (const Declared& d : declared) {
    const RouteSpec& spec = d.parsed->spec.routes[d.route];
    uint32_t index = service_index[spec.service];
    if (!has_endpoints[index]) continue;
    size_t hosts = spec.hosts.empty() ? 1 : spec.hosts.size();
    for (size_t h = 0; h < hosts; ++h) {
      if (!emitted.emplace(d.parsed->keys[d.first_key + h], true).second) continue;
      if (remap[index] < 0) {
        remap[index] = static_cast<int64_t>(set.services.size());
        set.services.push_back(std::move(services[index]));  // each service is emitted once
      }
      Route route;
      route.name = d.parsed->names[d.route];
      route.host = spec.hosts.empty() ? std::string() : spec.hosts[h];
      route.path_prefix = spec.path;
      route.priority = spec.priority;
      route.service = static_cast<uint32_t>(remap[index]);
      route.source = d.parsed->source;
      set.routes.push_back(std::move(route));
    }
  }
  if (memo) {
    memo->prune(cache);
    memo->finish_build();
  }
  return set;
}

bool same_instance(const Endpoint& a, const Endpoint& b) {
  return a.key == b.key && a.weight == b.weight && a.source == b.source;
}

bool same_set(const DiscoveredSet& a, const DiscoveredSet& b) {
  if (a.routes.size() != b.routes.size() || a.services.size() != b.services.size() || a.rejected != b.rejected)
    return false;
  for (size_t i = 0; i < a.routes.size(); ++i) {
    const Route& x = a.routes[i];
    const Route& y = b.routes[i];
    if (x.name != y.name || x.host != y.host || x.path_prefix != y.path_prefix || x.priority != y.priority ||
        x.service != y.service || x.max_body_bytes != y.max_body_bytes || x.source != y.source)
      return false;
  }
  for (size_t i = 0; i < a.services.size(); ++i) {
    if (a.services[i] == b.services[i]) continue;  // shared: the same object
    const Service& x = *a.services[i];
    const Service& y = *b.services[i];
    if (x.name != y.name || x.endpoints.size() != y.endpoints.size() || !(x.policy == y.policy)) return false;
    if (!std::equal(x.endpoints.begin(), x.endpoints.end(), y.endpoints.begin(), same_instance)) return false;
  }
  return true;
}

}  // namespace berth::discovery
