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

struct Declared {
  const ContainerFacts* container;
  const RouteSpec* spec;
  std::string endpoint_key;
  const config::ServicePolicy* policy;
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

DiscoveredSet build_discovered_set(const ContainerCache& cache, const BuilderOptions& options) {
  std::vector<const ContainerFacts*> containers;
  containers.reserve(cache.size());
  for (const auto& [id, facts] : cache) containers.push_back(&facts);
  std::sort(containers.begin(), containers.end(), [](const ContainerFacts* a, const ContainerFacts* b) {
    return a->name != b->name ? a->name < b->name : a->id < b->id;
  });

  DiscoveredSet set;
  std::vector<ContainerSpec> specs(containers.size());
  std::vector<Declared> declared;
  // host + '\n' + path -> (service, container) of the first declaration.
  std::unordered_map<std::string, std::pair<std::string, const ContainerFacts*>> owners;

  for (size_t i = 0; i < containers.size(); ++i) {
    const ContainerFacts& c = *containers[i];
    ContainerSpec& spec = specs[i];
    spec = parse_container_labels(c, options.labels);
    if (spec.kind == ContainerSpec::Kind::kIgnored) continue;
    if (spec.kind == ContainerSpec::Kind::kRejected) {
      set.rejected.emplace_back(c.display(), spec.reason);
      continue;
    }
    std::vector<Declared> mine;
    std::string problem;
    for (const RouteSpec& route : spec.routes) {
      std::string reason;
      auto address = resolve_address(c, spec.network, route.port, options, &reason);
      if (!address) {
        problem = reason;
        break;
      }
      mine.push_back(Declared{&c, &route, *address, &spec.policy});
    }
    // Another container already owns one of these host+path pairs for a different service?
    std::vector<std::string> keys;
    for (size_t r = 0; problem.empty() && r < spec.routes.size(); ++r) {
      const RouteSpec& route = spec.routes[r];
      std::vector<std::string> hosts = route.hosts.empty() ? std::vector<std::string>{""} : route.hosts;
      for (const std::string& host : hosts) {
        std::string key = host + "\n" + route.path;
        auto owner = owners.find(key);
        if (owner != owners.end() && owner->second.first != route.service) {
          problem = "route " + (host.empty() ? std::string("(any host)") : host) + route.path +
                    " is already served by service '" + owner->second.first + "' of container " +
                    owner->second.second->display();
          break;
        }
        keys.push_back(key);
      }
    }
    if (!problem.empty()) {
      spec.kind = ContainerSpec::Kind::kRejected;
      set.rejected.emplace_back(c.display(), problem);
      continue;
    }
    size_t k = 0;
    for (const RouteSpec& route : spec.routes) {
      size_t hosts = route.hosts.empty() ? 1 : route.hosts.size();
      for (size_t h = 0; h < hosts; ++h) owners.emplace(keys[k++], std::make_pair(route.service, &c));
    }
    declared.insert(declared.end(), mine.begin(), mine.end());
  }

  // Services in order of first declaration; endpoints from routable instances only.
  std::unordered_map<std::string, uint32_t> service_index;
  std::vector<Service> services;
  std::unordered_map<const ContainerFacts*, uint32_t> weights;
  for (size_t i = 0; i < containers.size(); ++i)
    if (specs[i].kind == ContainerSpec::Kind::kRouted) weights[containers[i]] = specs[i].weight;
  for (const Declared& d : declared) {
    auto [it, inserted] = service_index.emplace(d.spec->service, static_cast<uint32_t>(services.size()));
    if (inserted) {
      // The first container (by name) of a service decides its policy.
      services.push_back(Service{d.spec->service, {}});
      services.back().policy = *d.policy;
    }
    if (!is_routable(*d.container)) continue;
    Service& service = services[it->second];
    bool known = std::any_of(service.endpoints.begin(), service.endpoints.end(),
                             [&](const Endpoint& e) { return e.key == d.endpoint_key; });
    if (known) continue;
    Endpoint endpoint;
    endpoint.key = d.endpoint_key;
    endpoint.weight = weights[d.container];
    endpoint.source = "container:" + d.container->display();
    if (!resolve_endpoint_key(endpoint)) continue;
    service.endpoints.push_back(std::move(endpoint));
  }

  // Routes whose service has an instance, one per host, each declared once.
  std::unordered_map<std::string, bool> emitted;
  std::unordered_map<uint32_t, uint32_t> remap;  // index in services -> index in set.services
  for (const Declared& d : declared) {
    uint32_t index = service_index[d.spec->service];
    if (services[index].endpoints.empty()) continue;
    std::vector<std::string> hosts = d.spec->hosts.empty() ? std::vector<std::string>{""} : d.spec->hosts;
    for (const std::string& host : hosts) {
      std::string key = host + "\n" + d.spec->path;
      if (emitted.count(key)) continue;
      emitted[key] = true;
      auto [slot, fresh] = remap.emplace(index, static_cast<uint32_t>(set.services.size()));
      if (fresh) set.services.push_back(services[index]);
      Route route;
      const std::string& base = d.spec->service;
      route.name = d.spec->name.empty() ? base : base + "/" + d.spec->name;
      route.host = host;
      route.path_prefix = d.spec->path;
      route.priority = d.spec->priority;
      route.service = slot->second;
      route.source = "container:" + d.container->display();
      set.routes.push_back(std::move(route));
    }
  }
  return set;
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
    const Service& x = a.services[i];
    const Service& y = b.services[i];
    if (x.name != y.name || x.endpoints.size() != y.endpoints.size() || !(x.policy == y.policy)) return false;
    for (size_t e = 0; e < x.endpoints.size(); ++e) {
      if (x.endpoints[e].key != y.endpoints[e].key || x.endpoints[e].weight != y.endpoints[e].weight ||
          x.endpoints[e].source != y.endpoints[e].source)
        return false;
    }
  }
  return true;
}

}  // namespace berth::discovery
