#include "discovery/label_builder.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "proxy/filter/route_filters.h"

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
                        const std::vector<const Endpoint*>& endpoints, std::vector<HeldBackInstance> held_back,
                        int64_t serve_empty_until_ms) {
  auto service = std::make_shared<Service>();
  service->name = name;
  service->policy = policy;
  service->serve_empty_until_ms = serve_empty_until_ms;
  service->endpoints.reserve(endpoints.size());
  for (const Endpoint* e : endpoints) service->endpoints.push_back(*e);
  service->held_back = std::move(held_back);
  return service;
}

struct Declared {
  const ContainerFacts* container;
  const ParsedContainer* parsed;
  size_t route;      // index into parsed->spec.routes
  size_t first_key;  // index into parsed->keys of this route's first host
};

size_t host_count(const RouteSpec& route) { return route.hosts.empty() ? 1 : route.hosts.size(); }

// Calls fn(key, route, route index, host index) for every host + path a parse declares, in order.
template <typename Fn>
void for_each_key(const ParsedContainer& parsed, Fn&& fn) {
  for (size_t r = 0, k = 0; r < parsed.spec.routes.size(); ++r) {
    const RouteSpec& route = parsed.spec.routes[r];
    for (size_t h = 0; h < host_count(route); ++h, ++k) fn(parsed.keys[k], route, r, h);
  }
}

// route_labels_differ(), priority included: in Docker discovery a host + path (+ matchers) is
// one route whatever the priorities its containers ask for.
std::string route_differs(const ParsedContainer& a, size_t ra, const ParsedContainer& b, size_t rb) {
  std::string labels = route_labels_differ(a, ra, b, rb);
  if (a.spec.routes[ra].priority == b.spec.routes[rb].priority) return labels;
  const bool traefik = a.spec.origin == "traefik" || b.spec.origin == "traefik";
  const std::string priority = traefik ? "priority (berth.priority or the router's priority)" : "berth.priority";
  return priority + (labels.empty() ? " labels" : ", " + labels);
}

// The lists of a container's access labels that are sets, in one canonical text: the methods
// let through (config::methods_let_through, as MethodFilter lets them), and each allow and deny
// range as fixed bytes, sorted, each once. Built once per parse, so that two replicas compare in
// one pass whatever order their labels list them in.
std::string access_sets_of(const config::RouteAccess& access) {
  const std::vector<std::string> methods = config::methods_let_through(access.methods);
  auto ranges = [](const std::vector<config::Cidr>& list) {
    std::vector<std::string> records;
    records.reserve(list.size());
    for (const config::Cidr& c : list) {
      std::string r(reinterpret_cast<const char*>(c.bytes), sizeof c.bytes);
      r.push_back(static_cast<char>(c.ipv6));
      r.push_back(static_cast<char>(c.prefix));
      records.push_back(std::move(r));
    }
    return records;
  };
  std::string out;
  for (std::vector<std::string> set : {methods, ranges(access.allow), ranges(access.deny)}) {
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
    // Each list: its count, then its members, each followed by a NUL (a method has none; a range
    // record is 18 bytes, so the count keeps the lists apart).
    out.append(std::to_string(set.size())).push_back('\n');
    for (const std::string& member : set) out.append(member).push_back('\0');
  }
  return out;
}

bool same_access(const ParsedContainer& a, const ParsedContainer& b) {
  const config::RouteAccess& x = a.spec.access;
  const config::RouteAccess& y = b.spec.access;
  return a.access_sets == b.access_sets && x.basic_auth == y.basic_auth && x.rate_limit == y.rate_limit &&
         x.forward_auth == y.forward_auth;
}

const ContainerFacts* find_facts(const std::vector<const ContainerCache*>& caches, const std::string& id) {
  for (const ContainerCache* cache : caches) {
    auto it = cache->find(id);
    if (it != cache->end()) return &it->second;
  }
  return nullptr;
}

}  // namespace

std::string route_labels_differ(const ParsedContainer& a, size_t ra, const ParsedContainer& b, size_t rb) {
  const ContainerSpec& x = a.spec;
  const ContainerSpec& y = b.spec;
  const RouteSpec& u = x.routes[ra];
  const RouteSpec& v = y.routes[rb];
  // Named as the containers' labels name them: a Traefik-labelled container may set a group
  // with a middleware as well as with berth.* labels.
  const bool traefik = x.origin == "traefik" || y.origin == "traefik";
  std::string out;
  auto differ = [&](bool same, const char* berth, const char* traefik_too) {
    if (same) return;
    if (!out.empty()) out += ", ";
    out += traefik && traefik_too ? traefik_too : berth;
  };
  differ(same_access(a, b), "berth.access.*",
         "access (berth.access.* or the ipallowlist/basicauth/ratelimit middlewares)");
  differ(a.access_files == b.access_files, "berth.access.basic_auth file contents", "basic auth users file contents");
  differ(x.rewrite == y.rewrite, "berth.strip_prefix / berth.add_prefix",
         "path prefix (berth.strip_prefix / berth.add_prefix or the stripprefix/addprefix middlewares)");
  differ(x.redirect == y.redirect, "berth.redirect.*", nullptr);
  differ(x.request_headers == y.request_headers && x.response_headers == y.response_headers,
         "header rules (the headers middleware)", nullptr);
  differ(x.encoded_characters == y.encoded_characters, "berth.encoded_characters.*",
         "encoded characters (berth.encoded_characters.* or the encodedcharacters middleware)");
  differ(u.https_redirect == v.https_redirect && u.https_redirect_code == v.https_redirect_code, "berth.tls.redirect",
         "HTTPS redirect (berth.tls.redirect or the redirectscheme middleware)");
  differ(u.acme == v.acme, "berth.tls.acme", nullptr);
  differ(u.mirror == v.mirror, "berth.mirror.*", nullptr);
  if (!out.empty()) out += " labels";
  return out;
}

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

std::string policy_problem(const RouteSpec& route, const BuilderOptions& options) {
  if (route.priority > options.max_priority)
    return "priority " + std::to_string(route.priority) + " is above docker.max_priority (" +
           std::to_string(options.max_priority) + ")";
  if (route.hosts.empty() && !options.allow_any_host)
    return "a route without berth.host would match any host, and docker.allow_any_host is off";
  if (options.allowed_hosts.empty()) return {};
  for (const std::string& host : route.hosts) {
    bool covered = false;
    for (const std::string& allowed : options.allowed_hosts) covered = covered || config::host_pattern_covers(allowed, host);
    if (!covered) return "host " + host + " is not under docker.allowed_hosts";
  }
  return {};
}

// Whether the operator lets a container's labels send each request's check to this service.
std::string forward_auth_problem(const config::ForwardAuth& auth, const BuilderOptions& options) {
  if (!auth.enabled() || !options.forward_auth_addresses) return {};
  const std::string address = auth.address.to_string();
  for (const std::string& allowed : *options.forward_auth_addresses)
    if (allowed == address) return {};
  if (options.forward_auth_addresses->empty())
    return "labels may not name a forward_auth service: docker.forward_auth_addresses is not set";
  return "forward_auth address " + address + " is not in docker.forward_auth_addresses";
}

std::optional<std::string> read_file_under(const std::string& dir, const std::string& path, std::string* problem) {
  char real_dir[PATH_MAX], real_path[PATH_MAX];
  if (!::realpath(dir.c_str(), real_dir)) {
    *problem = "docker.access_files_dir " + dir + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!::realpath(path.c_str(), real_path)) {
    *problem = std::strerror(errno);
    return std::nullopt;
  }
  const std::string prefix = std::string(real_dir) == "/" ? "/" : std::string(real_dir) + "/";
  if (std::string_view(real_path).substr(0, prefix.size()) != prefix) {
    *problem = "it resolves to " + std::string(real_path) + ", outside docker.access_files_dir";
    return std::nullopt;
  }
  std::ifstream in(real_path, std::ios::binary);
  if (!in) {
    *problem = std::strerror(errno);
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > (1u << 20)) {
    *problem = "larger than 1 MiB";
    return std::nullopt;
  }
  return text;
}

namespace {

// The filters of berth.access.*, berth.redirect.* and berth.strip_prefix / add_prefix labels
// (and of the Traefik middlewares mapped onto them);
// reads the htpasswd file a label names. Empty, or why the container is refused.
// files: the text of each file read, by path (for PublishedPolicy::files).
std::string build_access_filters(const ContainerSpec& spec, const BuilderOptions& options,
                                 std::shared_ptr<const FilterChain>& out, std::map<std::string, std::string>& files) {
  config::RouteAccess access = spec.access;
  if (access.empty() && !spec.rewrite.enabled() && !spec.redirect.enabled() && spec.request_headers.empty() &&
      spec.response_headers.empty())
    return {};
  // Users given inline (Traefik's basicauth.users) are already parsed; a path names a file.
  if (access.basic_auth.enabled() && access.basic_auth.users.empty()) {
    const std::string& path = access.basic_auth.htpasswd;
    std::string problem;
    std::optional<std::string> text = options.read_access_file
                                          ? options.read_access_file(path, &problem)
                                          : read_file_under(options.labels.access_files_dir, path, &problem);
    if (!text) return "berth.access.basic_auth: cannot read '" + path + "': " + problem;
    files[path] = *text;
    std::vector<config::Error> errors;
    access.basic_auth.users = config::parse_htpasswd(*text, path, errors);
    if (!errors.empty()) return "berth.access.basic_auth: " + errors.front().to_string();
    if (access.basic_auth.users.empty()) return "berth.access.basic_auth: '" + path + "' lists no users";
  }
  config::Route route;
  route.access = std::move(access);
  route.rewrite = spec.rewrite;
  route.redirect = spec.redirect;
  route.request_headers = spec.request_headers;
  route.response_headers = spec.response_headers;
  out = build_route_filters(route);
  return {};
}

// What the label parser reads of a container, for a registry sidecar to publish.
std::shared_ptr<const PublishedPolicy> published_policy(const ContainerFacts& c, const LabelOptions& options,
                                                        std::map<std::string, std::string> files) {
  auto out = std::make_shared<PublishedPolicy>();
  for (const auto& [key, value] : c.labels)
    if (key.rfind("berth.", 0) == 0 || key.rfind("traefik.", 0) == 0 || key == "com.docker.compose.project" ||
        key == "com.docker.compose.service")
      out->labels.emplace(key, value);
  if (options.nginx_proxy)
    for (const char* key : {"VIRTUAL_HOST", "VIRTUAL_PATH", "VIRTUAL_PORT"})
      if (std::string value = c.env_value(key); !value.empty()) out->env.emplace(key, std::move(value));
  out->exposed_ports = c.exposed_ports;
  out->files = std::move(files);
  out->traefik = options.traefik;
  out->nginx_proxy = options.nginx_proxy;
  out->access_files_dir = options.access_files_dir;
  return out;
}

}  // namespace

ParsedContainer parse_container_routes(const ContainerFacts& c, const BuilderOptions& options) {
  ParsedContainer out;
  out.spec = parse_container_labels(c, options.labels);
  out.source = container_source(std::string_view(c.id).substr(0, 12), c.name);
  // Routing to itself would loop: Berth's own container is ignored even with berth.* labels.
  if (!options.own_container_id.empty() && c.id == options.own_container_id) out.spec = ContainerSpec{};
  if (out.spec.kind != ContainerSpec::Kind::kRouted) return out;
  std::string refused = forward_auth_problem(out.spec.access.forward_auth, options);
  for (size_t i = 0; refused.empty() && i < out.spec.routes.size(); ++i)
    refused = policy_problem(out.spec.routes[i], options);
  if (!refused.empty()) {
    // Not routed at all: the operator did not allow what its labels ask for.
    out.spec.kind = ContainerSpec::Kind::kRejected;
    out.spec.reason = "refused by policy: " + refused;
    out.spec.routes.clear();
    return out;
  }
  std::map<std::string, std::string> files;
  if (std::string why = build_access_filters(out.spec, options, out.filters, files); !why.empty()) {
    out.spec.kind = ContainerSpec::Kind::kRejected;
    out.spec.reason = why;
    out.spec.routes.clear();
    return out;
  }
  for (const RouteSpec& route : out.spec.routes) {
    out.names.push_back(route.name.empty() ? route.service : route.service + "/" + route.name);
    // Routes that differ in their matchers are different routes (a canary beside the main one).
    out.matches.push_back(route.match.empty() ? nullptr : std::make_shared<const config::RouteMatch>(route.match));
    const std::string matchers = out.matches.back() ? "\n" + out.matches.back()->key() : std::string();
    if (route.hosts.empty()) out.keys.push_back("\n" + route.path + matchers);
    for (const std::string& host : route.hosts) out.keys.push_back(host + "\n" + route.path + matchers);
  }
  if (options.publish_policies) out.published = published_policy(c, options.labels, files);
  out.access_files = std::move(files);
  out.access_sets = access_sets_of(out.spec.access);
  return out;
}

std::shared_ptr<const RouteMirror> resolve_mirror(const config::RouteMirror& mirror,
                                                  const std::unordered_map<std::string_view, uint32_t>& service_index) {
  if (!mirror.enabled()) return nullptr;
  const auto shadow = service_index.find(mirror.service);
  if (shadow == service_index.end()) return nullptr;
  return std::make_shared<const RouteMirror>(RouteMirror{shadow->second, mirror.percent_bp, mirror.max_body});
}

ParsedContainer parse_container(const ContainerFacts& c, const BuilderOptions& options) {
  ParsedContainer out = parse_container_routes(c, options);
  if (out.spec.kind != ContainerSpec::Kind::kRouted) return out;
  for (const RouteSpec& route : out.spec.routes) {
    std::string reason;
    auto address = resolve_address(c, out.spec.network, route.port, options, &reason);
    if (!address) {
      out.problem = reason;
      out.endpoints.clear();
      out.keys.clear();
      out.names.clear();
      out.matches.clear();
      return out;
    }
    Endpoint endpoint;
    endpoint.key = *address;
    endpoint.weight = out.spec.weight;
    endpoint.source = out.source;
    if (!resolve_endpoint_key(endpoint)) endpoint.addr_len = 0;  // not numeric: never an instance
    out.endpoints.push_back(std::move(endpoint));
  }
  return out;
}

ParsedContainer parse_published(const PublishedPolicy& published, const std::string& id, const std::string& name,
                                const BuilderOptions& operator_options) {
  ContainerFacts c;
  c.id = id;
  c.name = name;
  c.labels = published.labels;
  for (const auto& [key, value] : published.env) c.env.push_back(key + "=" + value);
  c.exposed_ports = published.exposed_ports;
  c.running = true;
  BuilderOptions options;
  options.allowed_hosts = operator_options.allowed_hosts;
  options.max_priority = operator_options.max_priority;
  options.allow_any_host = operator_options.allow_any_host;
  options.forward_auth_addresses = operator_options.forward_auth_addresses;
  // The sidecar routed it: whatever enabled it there (berth.enable, exposed_by_default, a
  // Traefik router, VIRTUAL_HOST) enables it here.
  options.labels.exposed_by_default = true;
  options.labels.traefik = published.traefik;
  options.labels.nginx_proxy = published.nginx_proxy;
  options.labels.access_files_dir = published.access_files_dir;
  options.read_access_file = [&published](const std::string& path, std::string* problem) -> std::optional<std::string> {
    auto it = published.files.find(path);
    if (it != published.files.end()) return it->second;
    *problem = "not published with the instance";
    return std::nullopt;
  };
  ParsedContainer out = parse_container_routes(c, options);
  out.published = std::make_shared<const PublishedPolicy>(published);  // what it was made of, as received
  return out;
}

Route route_of(const ParsedContainer& parsed, size_t r, size_t h) {
  const RouteSpec& spec = parsed.spec.routes[r];
  Route route;
  route.name = parsed.names[r];
  route.host = spec.hosts.empty() ? std::string() : spec.hosts[h];
  route.path_prefix = spec.path;
  route.priority = spec.priority;
  route.source = parsed.source;
  route.https_redirect = spec.https_redirect;
  route.https_redirect_code = spec.https_redirect_code;
  route.filters = parsed.filters;
  route.match = parsed.matches[r];
  route.acme = spec.acme;
  route.allow_encodings = parsed.spec.encoded_characters.allowed_given();
  route.refuse_encodings = parsed.spec.encoded_characters.refused_given();
  return route;
}

ServicePtr BuilderMemo::service(const std::string& name, const config::ServicePolicy& policy,
                                const std::vector<const Endpoint*>& endpoints,
                                std::vector<HeldBackInstance> held_back, int64_t now_ms,
                                std::chrono::milliseconds grace) {
  auto [it, fresh] = services_.try_emplace(name);
  const ServicePtr& before = it->second.service;
  bool same = !fresh && before->policy == policy && before->endpoints.size() == endpoints.size() &&
              before->held_back == held_back;
  for (size_t i = 0; same && i < endpoints.size(); ++i) same = same_instance(before->endpoints[i], *endpoints[i]);
  if (!same) {
    int64_t until = 0;  // never had an instance: its routes do not match
    if (endpoints.empty() && !fresh)
      until = before->endpoints.empty() ? before->serve_empty_until_ms : now_ms + static_cast<int64_t>(grace.count());
    it->second.service = make_service(name, policy, endpoints, std::move(held_back), until);
  }
  it->second.build = builds_;
  return it->second.service;
}

void BuilderMemo::finish_build(size_t containers) {
  const uint64_t build = builds_++;
  if (services_.size() > 64) {
    // Entries of services absent from this build: dropped, in one sweep once they add up.
    size_t live = 0;
    for (const auto& [name, entry] : services_) live += entry.build == build;
    if (services_.size() > 2 * live + 64)
      std::erase_if(services_, [&](const auto& kv) { return kv.second.build != build; });
  }
  if (entries_.size() > containers + 64) {
    std::unordered_set<uint64_t> live;
    live.reserve(known_.size());
    for (const auto& [id, known] : known_) live.insert(known.revision);
    std::erase_if(entries_, [&](const auto& kv) { return !live.count(kv.first); });
  }
}

const ParsedContainer& BuilderMemo::parse(const ContainerFacts& c, const BuilderOptions& options) {
  auto [it, fresh] = entries_.try_emplace(c.revision);
  if (fresh) it->second = parse_container(c, options);
  return it->second;
}

// Builds only the services of the touched containers on the last full build's layout; false
// when the layout may have changed (then a full build runs).
struct BuildRun {
  // One service from its declarations (in declaration order): the routable instances, each
  // address once; the policy of the first running container (the first one when none runs).
  static ServicePtr service_of(const std::string& name, const std::vector<Declared>& declarations,
                               BuilderMemo* memo, const BuilderOptions& options, int64_t now_ms) {
    std::vector<const Endpoint*> endpoints;
    std::vector<HeldBackInstance> held_back;
    const Declared* decides = nullptr;
    for (const Declared& d : declarations) {
      if (!decides && d.container->running) decides = &d;
      const Endpoint& endpoint = d.parsed->endpoints[d.route];
      if (!is_routable(*d.container)) {
        if (d.container->running)
          held_back.push_back(HeldBackInstance{endpoint.key, d.parsed->source, held_back_reason(*d.container)});
        continue;
      }
      if (endpoint.addr_len == 0) continue;
      bool known = std::any_of(endpoints.begin(), endpoints.end(), [&](const Endpoint* e) { return e->key == endpoint.key; });
      if (!known) endpoints.push_back(&endpoint);
    }
    if (!decides) decides = &declarations.front();
    const config::ServicePolicy& policy = decides->parsed->spec.policy;
    if (memo) return memo->service(name, policy, endpoints, std::move(held_back), now_ms, options.empty_route_grace);
    return make_service(name, policy, endpoints, std::move(held_back), 0);
  }

  static bool patch(const std::vector<const ContainerCache*>& caches, const BuilderOptions& options,
                    BuilderMemo& memo, int64_t now_ms, DiscoveredSet& out) {
    if (memo.all_touched_) return false;
    std::vector<uint32_t> affected;
    for (const std::string& id : memo.touched_) {
      const ContainerFacts* facts = find_facts(caches, id);
      auto known = memo.known_.find(id);
      if (!facts != (known == memo.known_.end())) return false;  // appeared or left
      if (!facts) continue;
      if (facts->revision == 0 || facts->revision != known->second.revision || known->second.pinned) return false;
      affected.insert(affected.end(), known->second.services.begin(), known->second.services.end());
    }
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    std::vector<Declared> declarations;
    std::vector<std::pair<uint32_t, ServicePtr>> rebuilt;
    for (uint32_t index : affected) {
      declarations.clear();
      for (const BuilderMemo::Member& m : memo.members_[index]) {
        const ContainerFacts* facts = find_facts(caches, m.id);
        if (!facts || facts->revision == 0) return false;  // changed without a touch: be safe
        declarations.push_back(Declared{facts, &memo.parse(*facts, options), m.route, 0});
      }
      rebuilt.emplace_back(index, service_of(memo.service_names_[index], declarations, &memo, options, now_ms));
    }
    for (auto& [index, service] : rebuilt) memo.last_.services[index] = std::move(service);
    out = memo.last_;
    return true;
  }
};

DiscoveredSet build_discovered_set(const std::vector<const ContainerCache*>& caches, const BuilderOptions& options,
                                   BuilderMemo* memo, int64_t now_ms) {
  if (memo) {
    DiscoveredSet patched;
    const bool partial = BuildRun::patch(caches, options, *memo, now_ms, patched);
    memo->touched_.clear();
    memo->last_partial_ = partial;
    if (partial) return patched;
  }

  std::vector<const ContainerFacts*> containers;
  for (const ContainerCache* cache : caches)
    for (const auto& [id, facts] : *cache) containers.push_back(&facts);
  std::sort(containers.begin(), containers.end(), [](const ContainerFacts* a, const ContainerFacts* b) {
    return a->name != b->name ? a->name < b->name : a->id < b->id;
  });
  const size_t n = containers.size();

  // Parses not kept by a memo live here for the duration of the build.
  std::vector<ParsedContainer> local;
  local.reserve(n);
  std::vector<const ParsedContainer*> parsed(n);
  for (size_t i = 0; i < n; ++i) {
    const ContainerFacts& c = *containers[i];
    if (memo && c.revision != 0) {
      parsed[i] = &memo->parse(c, options);
    } else {
      local.push_back(parse_container(c, options));
      parsed[i] = &local.back();
    }
  }

  DiscoveredSet set;
  // pinned: its run state decides something beyond its own services (it is rejected, or it
  // shares a host + path with another service), so a change of it needs a full build.
  std::vector<uint8_t> pinned(n, 0), accepted(n, 0);
  auto candidate = [&](size_t i) {
    return parsed[i]->spec.kind == ContainerSpec::Kind::kRouted && parsed[i]->problem.empty();
  };
  {
    // Keys declared by more than one service, or by containers of one service that disagree on
    // the route's labels, pin every container declaring them.
    struct KeyUse {
      std::string_view service;
      const ParsedContainer* first;
      size_t route;
      bool contested = false;
    };
    std::unordered_map<std::string_view, KeyUse> uses;
    uses.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
      if (!candidate(i)) continue;
      for_each_key(*parsed[i], [&](std::string_view key, const RouteSpec& route, size_t r, size_t) {
        auto [it, fresh] = uses.try_emplace(key, KeyUse{route.service, parsed[i], r});
        if (!fresh && (it->second.service != route.service ||
                       !route_differs(*it->second.first, it->second.route, *parsed[i], r).empty()))
          it->second.contested = true;
      });
    }
    for (size_t i = 0; i < n; ++i) {
      if (candidate(i))
        for_each_key(*parsed[i],
                     [&](std::string_view key, const RouteSpec&, size_t, size_t) { pinned[i] |= uses[key].contested; });
      else
        pinned[i] = parsed[i]->spec.kind != ContainerSpec::Kind::kIgnored;
      if (containers[i]->revision == 0) pinned[i] = 1;  // no memo parse to patch with
    }

    // Conflicts. The incumbent wins: a host + path that a service served in the last build stays
    // with it while that service still declares it and has a running instance for it, or is in
    // its grace period after the last one stopped. Otherwise the first service to declare it
    // keeps it, in this order: running containers first, then those routed in the last build,
    // then the one created first (a restart
    // keeps a container's creation time: the incumbent restarted after a newcomer started
    // still wins when Berth starts), then the one that started first, then by name. (A
    // container whose name sorts first, or that comes later, cannot take a host.) In the same
    // order, a container of the owning service whose labels for the route disagree with the
    // owner's is refused: a route has one policy, and which one must not hang on names.
    struct Holder {
      std::string_view service;
      int64_t until_ms;  // INT64_MAX while it has a running instance
    };
    std::unordered_map<std::string_view, Holder> holder;  // key -> incumbent
    if (memo) {
      std::unordered_map<std::string_view, int> incumbent;  // key -> 0 declared, 1 running
      for (size_t i = 0; i < n; ++i) {
        if (!candidate(i)) continue;
        for_each_key(*parsed[i], [&](std::string_view key, const RouteSpec& route, size_t, size_t) {
          auto claim = memo->claims_.find(std::string(key));
          if (claim == memo->claims_.end() || claim->second.service != route.service) return;
          int& state = incumbent[key];
          state = std::max(state, containers[i]->running ? 1 : 0);
        });
      }
      const int64_t never = std::numeric_limits<int64_t>::max();
      for (const auto& [key, running] : incumbent) {
        const BuilderMemo::Claim& claim = memo->claims_.find(std::string(key))->second;
        // Its last instance stopped since the last full build: the grace runs from now.
        int64_t until = running ? never : claim.held_until_ms;
        if (!running && until == never) until = now_ms + static_cast<int64_t>(options.empty_route_grace.count());
        if (running || now_ms < until) holder.emplace(key, Holder{claim.service, until});
      }
    }
    if (memo) memo->claim_expiry_.reset();
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    // Routed in the last build: among running containers these come first, so that a replica
    // whose route labels disagree (an older version started again) does not take the route
    // back from the ones serving it. Container labels never change, so this decides nothing
    // else: their hosts are held for their services already.
    std::vector<uint8_t> routed_before(n, 0);
    if (memo)
      for (size_t i = 0; i < n; ++i)
        if (auto k = memo->known_.find(containers[i]->id); k != memo->known_.end()) routed_before[i] = k->second.accepted;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const ContainerFacts& x = *containers[a];
      const ContainerFacts& y = *containers[b];
      if (x.running != y.running) return x.running;
      if (routed_before[a] != routed_before[b]) return routed_before[a] > routed_before[b];
      auto known = [](int64_t t) { return t ? t : std::numeric_limits<int64_t>::max(); };
      if (known(x.created_at_ns) != known(y.created_at_ns)) return known(x.created_at_ns) < known(y.created_at_ns);
      return known(x.started_at_ns) < known(y.started_at_ns);
    });
    struct Owner {
      std::string_view service;
      const ContainerFacts* container;
      const ParsedContainer* parsed;
      size_t route;
    };
    std::unordered_map<std::string_view, Owner> owners;
    owners.reserve(n * 2);
    std::vector<std::pair<size_t, std::string>> rejected;  // (container, why)
    for (size_t i : order) {
      const ContainerFacts& c = *containers[i];
      const ContainerSpec& spec = parsed[i]->spec;
      if (spec.kind == ContainerSpec::Kind::kIgnored) continue;
      std::string problem = spec.kind == ContainerSpec::Kind::kRejected ? spec.reason : parsed[i]->problem;
      if (problem.empty()) {
        for_each_key(*parsed[i], [&](std::string_view key, const RouteSpec& route, size_t r, size_t h) {
          if (!problem.empty()) return;
          auto held = holder.find(key);
          if (held != holder.end() && held->second.service != route.service) {
            problem = "route " + (route.hosts.empty() ? std::string("(any host)") : route.hosts[h]) + route.path +
                      " is already served by service '" + std::string(held->second.service) +
                      "' (the incumbent keeps it)";
            const int64_t until = held->second.until_ms;
            if (until != std::numeric_limits<int64_t>::max() && (!memo->claim_expiry_ || until < *memo->claim_expiry_))
              memo->claim_expiry_ = until;
            return;
          }
          auto owner = owners.find(key);
          if (owner == owners.end()) return;
          const Owner& o = owner->second;
          const std::string where = (route.hosts.empty() ? std::string("(any host)") : route.hosts[h]) + route.path;
          if (o.service != route.service) {
            problem = "route " + where + " is already served by service '" + std::string(o.service) +
                      "' of container " + o.container->display();
            return;
          }
          if (std::string labels = route_differs(*o.parsed, o.route, *parsed[i], r); !labels.empty())
            problem = "route " + where + " of service '" + route.service + "' is served by container " +
                      o.container->display() + " with other " + labels +
                      " (the containers of a route must agree on them)";
        });
      }
      if (!problem.empty()) {
        if (c.running) rejected.emplace_back(i, std::move(problem));
        continue;
      }
      accepted[i] = 1;
      for_each_key(*parsed[i], [&](std::string_view key, const RouteSpec& route, size_t r, size_t) {
        owners.emplace(key, Owner{route.service, &c, parsed[i], r});
      });
    }
    // Listed in container name order.
    std::sort(rejected.begin(), rejected.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [i, why] : rejected) set.rejected.emplace_back(containers[i]->display(), std::move(why));
  }

  // Declarations in container name order; services in order of first declaration.
  std::vector<Declared> declared;
  declared.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!accepted[i]) continue;
    for (size_t r = 0, k = 0; r < parsed[i]->spec.routes.size(); ++r) {
      const RouteSpec& route = parsed[i]->spec.routes[r];
      declared.push_back(Declared{containers[i], parsed[i], r, k});
      k += host_count(route);
    }
  }
  std::unordered_map<std::string_view, uint32_t> service_index;
  service_index.reserve(declared.size());
  std::vector<std::vector<Declared>> members;
  std::vector<uint32_t> index_of(declared.size());
  for (size_t d = 0; d < declared.size(); ++d) {
    const std::string& name = declared[d].parsed->spec.routes[declared[d].route].service;
    auto [it, inserted] = service_index.emplace(name, static_cast<uint32_t>(members.size()));
    if (inserted) members.emplace_back();
    members[it->second].push_back(declared[d]);
    index_of[d] = it->second;
  }
  set.services.reserve(members.size());
  for (const auto& list : members)
    set.services.push_back(BuildRun::service_of(list.front().parsed->spec.routes[list.front().route].service, list,
                                                memo, options, now_ms));

  // Routes, one per host, each host + path once (its first declaration, by container name).
  auto routes = std::make_shared<std::vector<Route>>();
  // key -> whether a running container declares it (all declarations of a key are its owner's)
  std::unordered_map<std::string_view, bool> emitted;
  emitted.reserve(declared.size());
  for (size_t d = 0; d < declared.size(); ++d) {
    const Declared& decl = declared[d];
    const RouteSpec& spec = decl.parsed->spec.routes[decl.route];
    for (size_t h = 0; h < host_count(spec); ++h) {
      auto [seen, first] = emitted.emplace(decl.parsed->keys[decl.first_key + h], decl.container->running);
      if (!first) {
        seen->second = seen->second || decl.container->running;
        continue;
      }
      Route route = route_of(*decl.parsed, decl.route, h);
      route.service = index_of[d];
      route.mirror = resolve_mirror(spec.mirror, service_index);
      routes->push_back(std::move(route));
    }
  }
  set.routes = std::move(routes);
  if (options.publish_policies) {
    auto policies = std::make_shared<PublishedPolicies>();
    for (size_t i = 0; i < n; ++i)
      if (accepted[i] && parsed[i]->published) policies->emplace(parsed[i]->source, parsed[i]->published);
    set.policies = std::move(policies);
  }

  if (memo) {
    // The claims of this build: each emitted host + path with its service. One whose service
    // has no running instance for it is held for the grace period from when that was first seen.
    std::unordered_map<std::string, BuilderMemo::Claim> claims;
    claims.reserve(emitted.size());
    for (size_t d = 0; d < declared.size(); ++d) {
      const Declared& decl = declared[d];
      const RouteSpec& spec = decl.parsed->spec.routes[decl.route];
      for (size_t h = 0; h < host_count(spec); ++h) {
        const std::string& key = decl.parsed->keys[decl.first_key + h];
        if (claims.count(key)) continue;
        BuilderMemo::Claim claim{spec.service, std::numeric_limits<int64_t>::max()};
        if (!emitted[key]) {
          auto before = memo->claims_.find(key);
          const bool held = before != memo->claims_.end() && before->second.service == spec.service &&
                            before->second.held_until_ms != std::numeric_limits<int64_t>::max();
          claim.held_until_ms = held ? before->second.held_until_ms
                                     : now_ms + static_cast<int64_t>(options.empty_route_grace.count());
        }
        claims.emplace(key, std::move(claim));
      }
    }
    memo->claims_ = std::move(claims);
    memo->known_.clear();
    memo->known_.reserve(n);
    for (size_t i = 0; i < n; ++i)
      memo->known_.emplace(containers[i]->id,
                           BuilderMemo::Known{containers[i]->revision, pinned[i] != 0, accepted[i] != 0, {}});
    memo->members_.assign(members.size(), {});
    memo->service_names_.assign(members.size(), {});
    for (size_t s = 0; s < members.size(); ++s) {
      memo->service_names_[s] = members[s].front().parsed->spec.routes[members[s].front().route].service;
      for (const Declared& d : members[s]) {
        memo->members_[s].push_back(BuilderMemo::Member{d.container->id, static_cast<uint32_t>(d.route)});
        auto& services = memo->known_[d.container->id].services;
        if (services.empty() || services.back() != s) services.push_back(static_cast<uint32_t>(s));
      }
    }
    memo->last_ = set;
    memo->all_touched_ = false;
    memo->finish_build(n);
  }
  return set;
}

bool same_instance(const Endpoint& a, const Endpoint& b) {
  return a.key == b.key && a.weight == b.weight && a.source == b.source && a.container == b.container &&
         a.remote == b.remote;
}

bool same_routes(const RouteList& a, const RouteList& b) {
  if (a == b) return true;
  const std::vector<Route>& ra = *a;
  const std::vector<Route>& rb = *b;
  if (ra.size() != rb.size()) return false;
  for (size_t i = 0; i < ra.size(); ++i) {
    const Route& x = ra[i];
    const Route& y = rb[i];
    if (x.name != y.name || x.host != y.host || x.path_prefix != y.path_prefix || x.priority != y.priority ||
        x.service != y.service || x.max_body_bytes != y.max_body_bytes || x.source != y.source ||
        x.https_redirect != y.https_redirect || x.https_redirect_code != y.https_redirect_code || x.hsts != y.hsts ||
        x.allow_encodings != y.allow_encodings || x.refuse_encodings != y.refuse_encodings ||
        x.filters != y.filters || x.acme != y.acme ||
        !(x.mirror == y.mirror || (x.mirror && y.mirror && *x.mirror == *y.mirror)))
      return false;
  }
  return true;
}

namespace {
bool same_policies(const std::shared_ptr<const PublishedPolicies>& a, const std::shared_ptr<const PublishedPolicies>& b) {
  if (a == b) return true;
  if (!a || !b || a->size() != b->size()) return false;
  return std::equal(a->begin(), a->end(), b->begin(), [](const auto& x, const auto& y) {
    return x.first == y.first && (x.second == y.second || *x.second == *y.second);
  });
}
}  // namespace

bool same_set(const DiscoveredSet& a, const DiscoveredSet& b) {
  if (a.services.size() != b.services.size() || a.rejected != b.rejected) return false;
  if (!same_policies(a.policies, b.policies)) return false;
  if (!same_routes(a.routes, b.routes)) return false;
  for (size_t i = 0; i < a.services.size(); ++i) {
    if (a.services[i] == b.services[i]) continue;  // shared: the same object
    const Service& x = *a.services[i];
    const Service& y = *b.services[i];
    if (x.name != y.name || x.endpoints.size() != y.endpoints.size() || !(x.policy == y.policy) ||
        x.held_back != y.held_back)
      return false;
    if (!std::equal(x.endpoints.begin(), x.endpoints.end(), y.endpoints.begin(), same_instance)) return false;
  }
  return true;
}

}  // namespace berth::discovery
