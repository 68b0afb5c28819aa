#include "discovery/registry/registry_codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include "config/config.h"
#include "discovery/label_builder.h"

namespace berth::discovery::registry {

namespace {
// The config file's rules for names and paths, so that what a sidecar routes, its front doors
// read. A name is also bounded, as a sidecar's names come from labels of any length.
bool service_name_ok(std::string_view name) { return name.size() <= 200 && config::valid_service_name(name); }

bool path_ok(std::string_view path) { return config::path_prefix_problem(path).empty(); }

// "ip:port" -> (ip, port); the port of any endpoint key.
std::optional<uint16_t> port_of(std::string_view key) {
  size_t colon = key.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view digits = key.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// Why an IPv4 address (host byte order) is no instance's: "" when it may be one.
std::string_view unroutable_ipv4(uint32_t ip) {
  if (ip == 0) return "unspecified";
  if (ip == 0xffffffffu) return "broadcast";
  if ((ip >> 28) == 0xe) return "multicast";                 // 224.0.0.0/4
  if ((ip >> 16) == 0xa9fe) return "link-local";             // 169.254.0.0/16 (cloud metadata)
  return {};
}
}  // namespace

std::string_view unroutable_address(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    return unroutable_ipv4(ntohl(v4.sin_addr.s_addr));
  }
  if (address.ss_family != AF_INET6) return "not an IP address";
  const in6_addr& a = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
  if (IN6_IS_ADDR_UNSPECIFIED(&a)) return "unspecified";
  if (IN6_IS_ADDR_MULTICAST(&a)) return "multicast";         // ff00::/8
  if (IN6_IS_ADDR_LINKLOCAL(&a)) return "link-local";        // fe80::/10
  if (IN6_IS_ADDR_V4MAPPED(&a)) {                            // ::ffff:a.b.c.d is a.b.c.d
    uint32_t ip = 0;
    std::memcpy(&ip, a.s6_addr + 12, 4);
    return unroutable_ipv4(ntohl(ip));
  }
  return {};
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::optional<int64_t> json_int64(const nlohmann::json& object, const char* name, int64_t fallback) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) return std::nullopt;
  const std::string& text = it->get_ref<const std::string&>();
  // uint64 values (member ids) may not fit: those are compared as text, never parsed here.
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

int64_t range_page_limit(size_t page_bytes, size_t largest_kv_bytes) {
  size_t assumed = largest_kv_bytes ? largest_kv_bytes : kMaxValueBytes;
  size_t reply_bytes = assumed / 3 * 4 + 256;  // base64 of key and value, the JSON around them
  return std::clamp<int64_t>(static_cast<int64_t>(page_bytes / reply_bytes), 1, kRangePageMaxKeys);
}

std::string instances_prefix(std::string_view prefix) { return std::string(prefix) + "/instances/"; }

std::string host_prefix(std::string_view prefix, std::string_view host_id) {
  return instances_prefix(prefix) + std::string(host_id) + "/";
}

namespace {

nlohmann::json encode_policy(const PublishedPolicy& p) {
  nlohmann::json j = {{"labels", p.labels}, {"exposed_ports", p.exposed_ports}};
  if (!p.env.empty()) j["env"] = p.env;
  if (!p.files.empty()) j["files"] = p.files;
  if (p.traefik) j["traefik"] = true;
  if (p.nginx_proxy) j["nginx_proxy"] = true;
  if (!p.access_files_dir.empty()) j["access_files_dir"] = p.access_files_dir;
  return j;
}

// A JSON object of strings -> the map; false when it is something else.
bool string_map(const nlohmann::json& j, std::map<std::string, std::string>& out) {
  if (!j.is_object()) return false;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return false;
    out.emplace(key, value.get<std::string>());
  }
  return true;
}

std::shared_ptr<const PublishedPolicy> decode_policy(const nlohmann::json& j, std::string* problem) {
  auto bad = [&](std::string why) -> std::shared_ptr<const PublishedPolicy> {
    *problem = "'policy': " + std::move(why);
    return nullptr;
  };
  if (!j.is_object()) return bad("must be an object");
  auto out = std::make_shared<PublishedPolicy>();
  auto labels = j.find("labels");
  if (labels == j.end() || !string_map(*labels, out->labels)) return bad("'labels' must map label names to strings");
  if (auto env = j.find("env"); env != j.end() && !string_map(*env, out->env))
    return bad("'env' must map variable names to strings");
  if (auto files = j.find("files"); files != j.end() && !string_map(*files, out->files))
    return bad("'files' must map paths to their text");
  if (auto ports = j.find("exposed_ports"); ports != j.end()) {
    if (!ports->is_array()) return bad("'exposed_ports' must be a list of ports");
    for (const auto& port : *ports) {
      if (!port.is_number_integer() || port.get<int64_t>() < 1 || port.get<int64_t>() > 65535)
        return bad("'exposed_ports' must be a list of ports");
      out->exposed_ports.push_back(static_cast<uint16_t>(port.get<int64_t>()));
    }
  }
  for (auto [name, flag] : {std::pair{"traefik", &out->traefik}, std::pair{"nginx_proxy", &out->nginx_proxy}}) {
    auto it = j.find(name);
    if (it == j.end()) continue;
    if (!it->is_boolean()) return bad("'" + std::string(name) + "' must be true or false");
    *flag = it->get<bool>();
  }
  if (auto dir = j.find("access_files_dir"); dir != j.end()) {
    if (!dir->is_string()) return bad("'access_files_dir' must be a string");
    out->access_files_dir = dir->get<std::string>();
  }
  return out;
}

}  // namespace

std::string encode_instance(const Instance& instance) {
  nlohmann::json routes = nlohmann::json::array();
  for (const RegistryRoute& r : instance.routes)
    routes.push_back({{"hosts", r.hosts}, {"path", r.path}, {"priority", r.priority}});
  nlohmann::json j = {{"service", instance.service}, {"routes", routes},         {"address", instance.address},
                      {"weight", instance.weight},   {"health", instance.health}, {"host_id", instance.host_id},
                      {"container", instance.container}};
  if (instance.policy) j["policy"] = encode_policy(*instance.policy);
  return j.dump();
}

std::string container_display_name(std::string_view name) {
  const bool name_like = !name.empty() && std::isalnum(static_cast<unsigned char>(name.front())) &&
                         std::all_of(name.begin(), name.end(), [](char ch) {
                           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-';
                         });
  return name_like ? std::string(name.substr(0, kMaxContainerDisplayName)) : std::string();
}

std::optional<Instance> decode_instance(std::string_view value, std::string* problem) {
  auto bad = [&](std::string why) -> std::optional<Instance> {
    *problem = std::move(why);
    return std::nullopt;
  };
  if (value.size() > kMaxValueBytes) return bad("value larger than 1 MiB");
  nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded()) return bad("value is not JSON");
  if (!j.is_object()) return bad("value is not a JSON object");
  Instance out;
  auto service = j.find("service");
  if (service == j.end() || !service->is_string() || !service_name_ok(service->get_ref<const std::string&>()))
    return bad("'service' must be a service name (letters, digits, '-', '_', '.')");
  out.service = service->get<std::string>();
  auto address = j.find("address");
  if (address == j.end() || !address->is_string()) return bad("'address' must be a string \"ip:port\"");
  {
    Endpoint probe;
    probe.key = address->get<std::string>();
    if (!resolve_endpoint_key(probe) || !port_of(probe.key)) return bad("'address' must be a numeric \"ip:port\"");
    if (auto why = unroutable_address(probe.addr); !why.empty())
      return bad("'address' " + probe.key + " is " + std::string(why) +
                 ": not an instance's (unspecified, broadcast, multicast and link-local addresses are refused)");
    out.address = probe.key;
  }
  if (auto w = j.find("weight"); w != j.end()) {
    if (!w->is_number_integer() || w->get<int64_t>() < 1 || w->get<int64_t>() > 1000)
      return bad("'weight' must be an integer from 1 to 1000");
    out.weight = static_cast<uint32_t>(w->get<int64_t>());
  }
  if (auto h = j.find("health"); h != j.end()) {
    if (!h->is_string()) return bad("'health' must be healthy, unhealthy or unchecked");
    out.health = h->get<std::string>();
    if (out.health != "healthy" && out.health != "unhealthy" && out.health != "unchecked")
      return bad("'health' must be healthy, unhealthy or unchecked");
  }
  if (auto h = j.find("host_id"); h != j.end() && h->is_string()) out.host_id = h->get<std::string>();
  if (auto c = j.find("container"); c != j.end() && c->is_string()) out.container = c->get<std::string>();
  if (auto p = j.find("policy"); p != j.end()) {
    out.policy = decode_policy(*p, problem);
    if (!out.policy) return std::nullopt;
  }
  auto routes = j.find("routes");
  if (routes == j.end() || !routes->is_array() || routes->empty() || routes->size() > kMaxListItems)
    return bad("'routes' must be a list of 1 to 1000 routes");
  for (const auto& r : *routes) {
    if (!r.is_object()) return bad("a route must be an object with hosts, path, priority");
    RegistryRoute route;
    if (auto hosts = r.find("hosts"); hosts != r.end()) {
      if (!hosts->is_array() || hosts->size() > kMaxListItems)
        return bad("route 'hosts' must be a list of at most 1000 host names");
      for (const auto& h : *hosts) {
        if (!h.is_string()) return bad("route 'hosts' must be a list of host names");
        auto pattern = config::normalize_host_pattern(h.get<std::string>());
        if (!pattern) return bad("invalid host pattern '" + h.get<std::string>() + "'");
        route.hosts.push_back(*pattern);
      }
    }
    if (auto path = r.find("path"); path != r.end()) {
      if (!path->is_string() || !path_ok(path->get_ref<const std::string&>()))
        return bad("route 'path' must start with '/' and hold no space, control character, '?' or '#'");
      route.path = path->get<std::string>();
    }
    if (auto priority = r.find("priority"); priority != r.end()) {
      if (!priority->is_number_integer() || priority->get<int64_t>() < INT32_MIN || priority->get<int64_t>() > INT32_MAX)
        return bad("route 'priority' must be an integer");
      route.priority = static_cast<int32_t>(priority->get<int64_t>());
    }
    out.routes.push_back(std::move(route));
  }
  return out;
}

std::string container_of(std::string_view key, std::string_view host_prefix) {
  if (key.rfind(host_prefix, 0) != 0) return {};
  key.remove_prefix(host_prefix.size());
  return std::string(key.substr(0, key.find('/')));
}

Publication publication_from_set(const DiscoveredSet& set, std::string_view prefix, std::string_view host_id,
                                 std::string_view advertise_address) {
  Publication out;
  const std::string base = host_prefix(prefix, host_id);
  // Routes of each service, grouped by path and priority: the hosts of a group together (at most
  // kMaxListItems, as a front door reads them; more make another group), a route for any host a
  // group of its own (a group's empty host list means any host).
  std::vector<std::vector<RegistryRoute>> service_routes(set.services.size());
  std::vector<std::set<std::string>> seen(set.services.size());  // "priority\npath\nhost" of each service
  // The group still filling for each (service, priority, path, any host): a lookup, not a walk
  // of the service's groups, so a thousand paths cost a thousand lookups.
  std::map<std::tuple<size_t, int32_t, std::string_view, bool>, size_t> filling;
  for (const Route& route : *set.routes) {
    if (route.service >= set.services.size()) continue;
    if (!seen[route.service]
             .insert(std::to_string(route.priority) + "\n" + route.path_prefix + "\n" + route.host)
             .second)
      continue;
    auto& list = service_routes[route.service];
    const bool any_host = route.host.empty();
    auto [slot, fresh] =
        filling.try_emplace({route.service, route.priority, route.path_prefix, any_host}, list.size());
    if (fresh || list[slot->second].hosts.size() >= kMaxListItems) {
      slot->second = list.size();
      list.push_back(RegistryRoute{{}, route.path_prefix, route.priority});
    }
    if (!any_host) list[slot->second].hosts.push_back(route.host);
  }
  std::string address_host(advertise_address);
  if (address_host.find(':') != std::string::npos) address_host = "[" + address_host + "]";
  std::map<std::string, uint32_t> next_index;  // per container
  for (size_t s = 0; s < set.services.size(); ++s) {
    const Service& service = *set.services[s];
    if (service_routes[s].empty()) continue;
    for (const Endpoint& e : service.endpoints) {
      const std::string_view source = container_source_tail(e.source);
      if (source.empty()) continue;
      size_t slash = source.find('/');
      std::string id(source.substr(0, slash));
      std::string name = slash == std::string_view::npos ? std::string() : std::string(source.substr(slash + 1));
      auto port = port_of(e.key);
      if (id.empty() || !port) continue;
      Instance instance;
      instance.service = service.name;
      instance.routes = service_routes[s];
      instance.address = address_host + ":" + std::to_string(*port);
      instance.weight = std::clamp<uint32_t>(e.weight, 1, 1000);
      instance.health = "healthy";  // Docker discovery lists only instances it routes to
      instance.host_id = std::string(host_id);
      instance.container = name;
      if (set.policies)
        if (auto p = set.policies->find(e.source); p != set.policies->end()) instance.policy = p->second;
      // With a policy, the list is read only by front doors that predate policies (a front door
      // routes the container's own labels): its service's routes may be more than one value may
      // list, and the first ones do for those.
      if (instance.policy && instance.routes.size() > kMaxListItems) instance.routes.resize(kMaxListItems);
      const std::string key = base + id + "/" + std::to_string(next_index[id]++);
      std::string value = encode_instance(instance);
      if (value.size() > kMaxValueBytes) {
        out.too_large.push_back(key);
        continue;
      }
      out.kvs[key] = std::move(value);
    }
  }
  return out;
}

std::vector<ContainerChange> diff_publication(const std::map<std::string, std::string>& have,
                                              const std::map<std::string, std::string>& want,
                                              std::string_view host_prefix) {
  std::map<std::string, ContainerChange> changes;
  for (const auto& [key, value] : want) {
    auto it = have.find(key);
    if (it != have.end() && it->second == value) continue;
    std::string c = container_of(key, host_prefix);
    changes[c].container = c;
    changes[c].puts[key] = value;
  }
  for (const auto& [key, value] : have) {
    if (want.count(key)) continue;
    std::string c = container_of(key, host_prefix);
    changes[c].container = c;
    changes[c].deletes.push_back(key);
  }
  // Containers with keys to put first, those that are only gone last: after a restart (or a
  // redeploy meanwhile) the replacement of a gone container is then in etcd before the gone
  // one's key leaves, and its service never has no instance between two transactions.
  std::vector<ContainerChange> out;
  for (auto& [c, change] : changes) out.push_back(std::move(change));
  std::stable_partition(out.begin(), out.end(), [](const ContainerChange& c) { return !c.puts.empty(); });
  return out;
}

}  // namespace berth::discovery::registry
