// The route snapshot: building it (control thread) and matching requests against it (workers).
#include "proxy/model/route_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <re2/re2.h>
#include <unordered_set>

#include "config/config.h"
#include "proxy/base/ascii.h"
#include "proxy/http/request_path.h"

namespace berth {
namespace {

// Longest request host match() looks at; DNS names are at most 253 characters. A longer Host
// cannot equal or end in any valid route host, so it is matched as if it had no host.
constexpr size_t kHostBufferSize = 256;

// Copies `text` lower-cased into `out` (which must have room); returns the copy.
std::string_view lower_into(std::string_view text, char* out) noexcept {
  for (size_t i = 0; i < text.size(); ++i) out[i] = ascii_lower(text[i]);
  return {out, text.size()};
}

// "[0:0::1]" -> "[::1]" in `out` (kHostBufferSize bytes); empty when not a valid IPv6 literal.
std::string_view canonical_ipv6_literal(std::string_view bracketed, char* out) noexcept {
  std::string_view inner = bracketed.substr(1, bracketed.size() - 2);
  char input[INET6_ADDRSTRLEN + 1];
  if (inner.empty() || inner.size() >= sizeof input) return {};
  inner.copy(input, inner.size());
  input[inner.size()] = '\0';
  in6_addr address;
  if (inet_pton(AF_INET6, input, &address) != 1) return {};
  if (inet_ntop(AF_INET6, &address, out + 1, kHostBufferSize - 2) == nullptr) return {};
  size_t length = std::strlen(out + 1);
  out[0] = '[';
  out[length + 1] = ']';
  return {out, length + 2};
}

// The request's Host header in the form route hosts are stored in: lower-case, no ":port",
// no trailing dot, IPv6 literals canonical and in brackets. Written into `out`, no allocation.
std::string_view normalize_request_host(std::string_view host, char* out) noexcept {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {};
    std::string_view literal = host.substr(0, close + 1);
    std::string_view canonical = canonical_ipv6_literal(literal, out);
    if (!canonical.empty()) return canonical;
    return literal.size() <= kHostBufferSize ? lower_into(literal, out) : std::string_view();
  }
  host = host.substr(0, host.find(':'));
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > kHostBufferSize) return {};
  return lower_into(host, out);
}

// Route hosts should arrive normalised (config::normalize_host_pattern); be lenient anyway.
std::string canonical_route_host(std::string host) {
  for (char& c : host) c = ascii_lower(c);
  if (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

bool is_wildcard(const std::string& host) { return host.starts_with("*."); }

bool parse_port(std::string_view text, uint16_t& port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return false;
  }
  port = static_cast<uint16_t>(value);
  return true;
}

bool fill_ipv4(std::string_view ip, uint16_t port, Endpoint& endpoint) {
  char text[INET_ADDRSTRLEN + 1];
  if (ip.empty() || ip.size() >= sizeof text) return false;
  ip.copy(text, ip.size());
  text[ip.size()] = '\0';
  sockaddr_in address{};
  if (inet_pton(AF_INET, text, &address.sin_addr) != 1) return false;
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  endpoint.addr = {};
  std::memcpy(&endpoint.addr, &address, sizeof address);
  endpoint.addr_len = sizeof address;
  return true;
}

bool fill_ipv6(std::string_view ip, uint16_t port, Endpoint& endpoint) {
  char text[INET6_ADDRSTRLEN + 1];
  if (ip.empty() || ip.size() >= sizeof text) return false;
  ip.copy(text, ip.size());
  text[ip.size()] = '\0';
  sockaddr_in6 address{};
  if (inet_pton(AF_INET6, text, &address.sin6_addr) != 1) return false;
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(port);
  endpoint.addr = {};
  std::memcpy(&endpoint.addr, &address, sizeof address);
  endpoint.addr_len = sizeof address;
  return true;
}

Service service_from_config(const config::Service& configured) {
  Service service;
  service.name = configured.name;
  service.policy = configured.policy;
  for (const config::Endpoint& configured_endpoint : configured.endpoints) {
    Endpoint endpoint;
    endpoint.key = configured_endpoint.address.to_string();
    endpoint.weight = configured_endpoint.weight;
    resolve_endpoint_key(endpoint);
    service.endpoints.push_back(std::move(endpoint));
  }
  return service;
}

}  // namespace

std::shared_ptr<const RouteTable> RouteTable::build(std::vector<Route> routes,
                                                    std::vector<Service> services,
                                                    uint64_t generation) {
  std::vector<ServicePtr> shared;
  shared.reserve(services.size());
  for (Service& service : services) shared.push_back(std::make_shared<const Service>(std::move(service)));
  return build(std::move(routes), std::move(shared), generation);
}

std::shared_ptr<const RouteTable> RouteTable::build(std::vector<Route> routes,
                                                    std::vector<ServicePtr> services,
                                                    uint64_t generation) {
  auto table = std::make_shared<RouteTable>();
  table->services_ = std::move(services);
  table->generation_ = generation;
  auto layout = std::make_shared<Layout>();
  std::vector<Route>& kept = layout->routes;
  // host, path prefix and matchers of the routes kept.
  std::unordered_set<std::string> seen;
  seen.reserve(routes.size());
  kept.reserve(std::min<size_t>(routes.size(), std::numeric_limits<uint32_t>::max()));
  const size_t service_count = table->services_.size();
  for (Route& route : routes) {
    if (route.service >= service_count) continue;
    if (route.split && (route.split->targets.empty() ||
                        std::any_of(route.split->targets.begin(), route.split->targets.end(),
                                    [&](const RouteSplit::Target& t) { return t.service >= service_count; })))
      continue;
    if (route.match && route.match->empty()) route.match.reset();
    if (route.mirror && route.mirror->service >= service_count) route.mirror.reset();
    if (kept.size() >= std::numeric_limits<uint32_t>::max()) break;
    route.host = canonical_route_host(std::move(route.host));
    if (!seen.insert(route_claim_key(route)).second) continue;
    kept.push_back(std::move(route));
  }
  index_routes(*layout);
  table->layout_ = std::move(layout);
  return table;
}

std::shared_ptr<const RouteTable> RouteTable::with_services(const RouteTable& previous,
                                                            std::vector<ServicePtr> services,
                                                            uint64_t generation) {
  if (services.size() != previous.services_.size()) return nullptr;
  auto table = std::make_shared<RouteTable>();
  table->services_ = std::move(services);
  table->generation_ = generation;
  table->layout_ = previous.layout_;
  return table;
}

std::shared_ptr<const RouteTable> RouteTable::from_config(const config::Config& cfg,
                                                          uint64_t generation,
                                                          const FilterBuilder& build_filters) {
  std::vector<Service> services;
  for (const config::Service& service : cfg.services) services.push_back(service_from_config(service));

  std::vector<Route> routes;
  uint32_t redirect_service = std::numeric_limits<uint32_t>::max();
  for (const config::Route& configured : cfg.routes) {
    // One chain per config route, shared by the routes of its hosts (and their per-worker state).
    std::shared_ptr<const FilterChain> filters = build_filters ? build_filters(configured) : nullptr;
    auto index_of = [&services](const std::string& name) {
      auto named = std::find_if(services.begin(), services.end(), [&](const Service& s) { return s.name == name; });
      return named == services.end() ? std::numeric_limits<uint32_t>::max()  // dropped by build()
                                     : static_cast<uint32_t>(named - services.begin());
    };
    // ---- matchers and weighted split ----
    std::shared_ptr<const config::RouteMatch> match;
    if (!configured.match.empty()) match = std::make_shared<const config::RouteMatch>(configured.match);
    std::shared_ptr<const RouteSplit> split;
    uint32_t service_index = index_of(configured.service);
    if (!configured.split.empty()) {
      auto made = std::make_shared<RouteSplit>();
      for (const config::SplitTarget& target : configured.split)
        made->targets.push_back({index_of(target.service), target.weight});
      service_index = made->targets.front().service;
      split = std::move(made);
    } else if (configured.service.empty() && configured.redirect.enabled()) {
      // A redirect route has no service; it gets one without instances and without a name,
      // shared by every such route, so that it matches for ever (its filter answers).
      if (redirect_service == std::numeric_limits<uint32_t>::max()) {
        redirect_service = static_cast<uint32_t>(services.size());
        services.emplace_back();
      }
      service_index = redirect_service;
    }
    std::shared_ptr<const RouteMirror> mirror;
    if (configured.mirror.enabled())
      mirror = std::make_shared<const RouteMirror>(
          RouteMirror{index_of(configured.mirror.service), configured.mirror.percent_bp, configured.mirror.max_body});
    std::vector<std::string> hosts = configured.hosts;
    if (hosts.empty()) hosts.emplace_back();  // any host
    for (std::string& host : hosts) {
      Route route;
      route.name = configured.name;
      route.host = std::move(host);
      route.path_prefix = configured.path_prefix;
      route.priority = configured.priority.value_or(0);
      route.service = service_index;
      route.max_body_bytes = configured.max_body_bytes.value_or(cfg.limits.max_body_bytes);
      // config::EncodedCharacter's bits are http::EncodedCharacter's (runtime.h checks it).
      route.allow_encodings = configured.encoded_characters.allowed_given();
      route.refuse_encodings = configured.encoded_characters.refused_given();
      route.filters = filters;
      route.https_redirect = configured.https_redirect;
      route.hsts = configured.hsts;
      route.acme = configured.acme;
      route.match = match;
      route.split = split;
      route.mirror = mirror;
      routes.push_back(std::move(route));
    }
  }
  return build(std::move(routes), std::move(services), generation);
}

void RouteTable::index_routes(Layout& layout) {
  const std::vector<Route>& routes = layout.routes;
  for (uint32_t i = 0; i < routes.size(); ++i) {
    const std::string& host = routes[i].host;
    if (host.empty()) layout.any_host.push_back(i);
    else if (is_wildcard(host)) layout.wildcard[host.substr(1)].push_back(i);
    else layout.exact[host].push_back(i);
  }
  auto better = [&routes](uint32_t a, uint32_t b) {
    const Route& x = routes[a];
    const Route& y = routes[b];
    if (x.priority != y.priority) return x.priority > y.priority;
    if (x.path_prefix.size() != y.path_prefix.size()) return x.path_prefix.size() > y.path_prefix.size();
    if (x.has_matchers() != y.has_matchers()) return x.has_matchers();
    return a < b;
  };
  for (auto& [host, list] : layout.exact) std::sort(list.begin(), list.end(), better);
  for (auto& [suffix, list] : layout.wildcard) std::sort(list.begin(), list.end(), better);
  std::sort(layout.any_host.begin(), layout.any_host.end(), better);
}

bool RouteTable::route_serves(const Route& route, int64_t now_ms) const noexcept {
  if (!route.split) return serves(*services_[route.service], now_ms);
  for (const RouteSplit::Target& target : route.split->targets)
    if (serves(*services_[target.service], now_ms)) return true;
  return false;
}

// now_ms is read from the clock only when a route without instances is met (0: not yet).
const Route* RouteTable::first_path_match(const std::vector<uint32_t>& candidates, std::string_view path,
                                          int64_t& now_ms, const http::RequestHead* req) const noexcept {
  const std::vector<Route>& routes = layout_->routes;
  for (uint32_t index : candidates) {
    const Route& route = routes[index];
    if (!path.starts_with(route.path_prefix)) continue;
    if (route.match && (req == nullptr || !matchers_hold(*route.match, *req, path))) continue;
    if (route.split) {
      if (now_ms == 0) now_ms = health_clock_ms();
      if (!route_serves(route, now_ms)) continue;
    } else if (const Service& service = *services_[route.service]; service.endpoints.empty()) {
      if (now_ms == 0) now_ms = health_clock_ms();
      if (!serves(service, now_ms)) continue;
    }
    return &route;
  }
  return nullptr;
}

const Route* RouteTable::match(std::string_view host, std::string_view path) const noexcept {
  return match(host, path, nullptr);
}

const Route* RouteTable::match(const http::RequestHead& req) const noexcept {
  return match(req.host, req.path, &req);
}

// Candidate lists are visited from the most specific host (exact, then wildcards from the
// longest suffix down, then any-host); a later list only wins with a strictly higher priority.
const Route* RouteTable::match(std::string_view host, std::string_view path,
                               const http::RequestHead* req) const noexcept {
  path = http::routed_path(path);
  char buffer[kHostBufferSize];
  std::string_view request_host = normalize_request_host(host, buffer);

  const Route* best = nullptr;
  int64_t now_ms = 0;
  auto consider = [&](const std::vector<uint32_t>& candidates) {
    const Route* route = first_path_match(candidates, path, now_ms, req);
    if (route != nullptr && (best == nullptr || route->priority > best->priority)) best = route;
  };
  if (!request_host.empty()) {
    if (auto exact = layout_->exact.find(request_host); exact != layout_->exact.end()) consider(exact->second);
    // "*.example.com" is stored as ".example.com"; "a.b.example.com" tries ".b.example.com",
    // then ".example.com", then ".com". The first label must be non-empty.
    for (size_t dot = request_host.find('.', 1); dot != std::string_view::npos;
         dot = request_host.find('.', dot + 1)) {
      if (auto wildcard = layout_->wildcard.find(request_host.substr(dot)); wildcard != layout_->wildcard.end()) {
        consider(wildcard->second);
      }
    }
  }
  consider(layout_->any_host);
  return best;
}

const char* precedence_rule_text(std::string_view rule) noexcept {
  if (rule == "only_match") return "the only route that matches";
  if (rule == "priority") return "higher priority";
  if (rule == "exact_host") return "exact host over a wildcard or any-host route";
  if (rule == "longer_wildcard") return "longer wildcard suffix";
  if (rule == "host_over_any") return "a host pattern over an any-host route";
  if (rule == "longer_path_prefix") return "longer path prefix";
  if (rule == "matchers") return "a route with matchers over one without";
  if (rule == "earlier_route") return "declared earlier";
  return "";
}

namespace {

struct Considered {
  uint32_t route;
  const char* host_match;
  size_t specificity;  // exact: SIZE_MAX; wildcard: its suffix length; any host: 0
  bool matches = false;
};

// The rule by which `winner` goes before `loser`, both matching (see the precedence order).
const char* deciding_rule(const std::vector<Route>& routes, const Considered& winner, const Considered& loser) {
  const Route& w = routes[winner.route];
  const Route& l = routes[loser.route];
  if (w.priority != l.priority) return "priority";
  if (winner.specificity != loser.specificity) {
    if (winner.specificity == SIZE_MAX) return "exact_host";
    return loser.specificity == 0 ? "host_over_any" : "longer_wildcard";
  }
  if (w.path_prefix.size() != l.path_prefix.size()) return "longer_path_prefix";
  if (w.has_matchers() != l.has_matchers()) return "matchers";
  return "earlier_route";
}

}  // namespace

// Not the request path: this walks every candidate list match() would visit, keeps them all and
// orders them by the precedence match() applies list by list: priority, then host specificity
// (the order in which match() visits the lists), then path prefix length, then route order.
RouteExplanation RouteTable::explain(std::string_view host, std::string_view path, int64_t now_ms,
                                     bool* host_valid, const http::RequestHead* req) const {
  RouteExplanation out;
  path = http::routed_path(path);
  out.path = std::string(path);
  char buffer[kHostBufferSize];
  std::string_view request_host = normalize_request_host(host, buffer);
  if (host_valid) *host_valid = host.empty() || !request_host.empty();
  out.host = std::string(request_host);

  const std::vector<Route>& routes = layout_->routes;
  std::vector<Considered> considered;
  auto add = [&](const std::vector<uint32_t>& list, const char* kind, size_t specificity) {
    for (uint32_t index : list) considered.push_back({index, kind, specificity});
  };
  if (!request_host.empty()) {
    if (auto exact = layout_->exact.find(request_host); exact != layout_->exact.end())
      add(exact->second, "exact", SIZE_MAX);
    for (size_t dot = request_host.find('.', 1); dot != std::string_view::npos;
         dot = request_host.find('.', dot + 1)) {
      std::string_view suffix = request_host.substr(dot);
      if (auto wildcard = layout_->wildcard.find(suffix); wildcard != layout_->wildcard.end())
        add(wildcard->second, "wildcard", suffix.size());
    }
  }
  add(layout_->any_host, "any", 0);

  std::stable_sort(considered.begin(), considered.end(), [&](const Considered& a, const Considered& b) {
    const Route& x = routes[a.route];
    const Route& y = routes[b.route];
    if (x.priority != y.priority) return x.priority > y.priority;
    if (a.specificity != b.specificity) return a.specificity > b.specificity;
    if (x.path_prefix.size() != y.path_prefix.size()) return x.path_prefix.size() > y.path_prefix.size();
    if (x.has_matchers() != y.has_matchers()) return x.has_matchers();
    return a.route < b.route;
  });

  const Considered* winner = nullptr;
  const Considered* runner_up = nullptr;
  for (Considered& c : considered) {
    const Route& route = routes[c.route];
    RouteCandidate candidate;
    candidate.route = c.route;
    candidate.host_match = c.host_match;
    if (!path.starts_with(route.path_prefix)) {
      candidate.outcome = "path_mismatch";
    } else if (route.match && (req == nullptr || !matchers_hold(*route.match, *req, path))) {
      candidate.outcome = "matcher_mismatch";
    } else if (!route_serves(route, now_ms)) {
      candidate.outcome = "not_serving";
    } else if (winner == nullptr) {
      c.matches = true;
      winner = &c;
      candidate.outcome = "chosen";
    } else {
      c.matches = true;
      if (runner_up == nullptr) runner_up = &c;
      candidate.outcome = "outranked";
      candidate.rule = deciding_rule(routes, *winner, c);
    }
    out.candidates.push_back(std::move(candidate));
  }
  // The chosen one first, the rest in precedence order.
  std::stable_partition(out.candidates.begin(), out.candidates.end(),
                        [](const RouteCandidate& c) { return c.outcome == "chosen"; });
  if (winner) {
    out.chosen = &routes[winner->route];
    out.rule = runner_up ? deciding_rule(routes, *winner, *runner_up) : "only_match";
  }
  return out;
}

std::string RouteTable::to_json() const {
  // Names and hosts come from files and container labels; never fail on odd bytes.
  return to_json_value().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json RouteTable::to_json_value() const {
  const int64_t now = health_clock_ms();
  nlohmann::json routes = nlohmann::json::array();
  for (const Route& route : layout_->routes) {
    if (!route_serves(route, now)) continue;
    nlohmann::json r = {{"name", route.name},
                        {"host", route.host},
                        {"path_prefix", route.path_prefix},
                        {"priority", route.priority},
                        {"service", services_[route.service]->name},
                        {"max_body_bytes", route.max_body_bytes},
                        {"source", route.source}};
    if (route.match) r["match"] = route_match_json(*route.match);
    if (route.split) r["split"] = split_json(*route.split, now);
    if (route.mirror) r["mirror"] = mirror_json(*route.mirror);
    routes.push_back(std::move(r));
  }
  nlohmann::json services = nlohmann::json::array();
  for (const ServicePtr& shared : services_) {
    const Service& service = *shared;
    if (!serves(service, now) || is_redirect_stand_in(service)) continue;
    nlohmann::json endpoints = nlohmann::json::array();
    for (const Endpoint& endpoint : service.endpoints) {
      nlohmann::json e = {{"address", endpoint.key}, {"weight", endpoint.weight}, {"source", endpoint.source}};
      if (endpoint.health) {
        e["health"] = probe_state_name(endpoint.health->probe.load(std::memory_order_relaxed));
        e["ejected"] = endpoint.health->ejected(now);
        e["in_flight"] = InFlightCounts::total(*endpoint.health);
      }
      endpoints.push_back(std::move(e));
    }
    services.push_back({{"name", service.name}, {"endpoints", std::move(endpoints)}});
  }
  return {{"generation", generation_}, {"routes", std::move(routes)}, {"services", std::move(services)}};
}

// ---- matchers and weighted split ----

namespace {

// Whether `query` (the raw text after '?') has a parameter `name` (with `value`, when given).
// Split on '&', then on the first '='; a parameter without '=' has an empty value.
bool query_has(std::string_view query, const config::NameMatch& want) noexcept {
  while (true) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (name == want.name && (!want.value || value == *want.value)) return true;
    if (amp == std::string_view::npos) return false;
    query.remove_prefix(amp + 1);
  }
}

bool header_has(const http::RequestHead& req, const config::NameMatch& want) noexcept {
  for (const http::Field& field : req.fields) {
    if (!http::iequals(req.name(field), want.name)) continue;
    if (!want.value || req.value(field) == *want.value) return true;
  }
  return false;
}

}  // namespace

std::string route_claim_key(const Route& route) {
  return route_claim_key(route.host, route.path_prefix,
                         route.match && !route.match->empty() ? route.match->key() : std::string());
}

std::string route_claim_key(std::string_view host, std::string_view path_prefix, std::string_view match_key) {
  std::string key;
  key.reserve(host.size() + path_prefix.size() + match_key.size() + 2);
  key.append(host).append(1, '\n').append(path_prefix);
  if (!match_key.empty()) key.append(1, '\n').append(match_key);
  return key;
}

bool matchers_hold(const config::RouteMatch& match, const http::RequestHead& req, std::string_view path) noexcept {
  if (!match.methods.empty() &&
      std::find(match.methods.begin(), match.methods.end(), req.method) == match.methods.end())
    return false;
  for (const config::NameMatch& header : match.headers)
    if (!header_has(req, header)) return false;
  if (!match.query.empty()) {
    size_t mark = req.path.find('?');
    if (mark == std::string_view::npos) return false;
    std::string_view query = req.path.substr(mark + 1);
    query = query.substr(0, query.find('#'));
    for (const config::NameMatch& parameter : match.query)
      if (!query_has(query, parameter)) return false;
  }
  if (match.path_regex_compiled &&
      !re2::RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *match.path_regex_compiled))
    return false;
  return true;
}

bool has_routable_instance(const Service& service, int64_t now_ms) noexcept {
  for (const Endpoint& e : service.endpoints)
    if (!e.health || e.health->routable(now_ms)) return true;
  return false;
}

uint32_t pick_split_target(const RouteSplit& split, const std::vector<ServicePtr>& services, int64_t now_ms,
                           int64_t* current) noexcept {
  int64_t total = 0;
  size_t best = split.targets.size();
  for (const bool routable_only : {true, false}) {
    for (size_t i = 0; i < split.targets.size(); ++i) {
      const Service& service = *services[split.targets[i].service];
      if (routable_only ? !has_routable_instance(service, now_ms) : !serves(service, now_ms)) continue;
      current[i] += split.targets[i].weight;
      total += split.targets[i].weight;
      if (best == split.targets.size() || current[i] > current[best]) best = i;
    }
    if (best != split.targets.size()) break;
  }
  if (best == split.targets.size()) return 0;
  current[best] -= total;
  return static_cast<uint32_t>(best);
}

nlohmann::json RouteTable::split_json(const RouteSplit& split, int64_t now_ms) const {
  nlohmann::json out = nlohmann::json::array();
  for (const RouteSplit::Target& target : split.targets)
    out.push_back({{"service", services_[target.service]->name},
                   {"weight", target.weight},
                   {"serving", serves(*services_[target.service], now_ms)},
                   {"routable", has_routable_instance(*services_[target.service], now_ms)}});
  return out;
}

nlohmann::json RouteTable::mirror_json(const RouteMirror& mirror) const {
  return {{"service", services_[mirror.service]->name},
          {"percent", mirror.percent_bp / 100.0},
          {"max_body", mirror.max_body}};
}

nlohmann::json route_match_json(const config::RouteMatch& match) {
  nlohmann::json out = nlohmann::json::object();
  if (!match.methods.empty()) out["methods"] = match.methods;
  auto list = [](const std::vector<config::NameMatch>& entries) {
    nlohmann::json items = nlohmann::json::array();
    for (const config::NameMatch& e : entries) {
      nlohmann::json item = {{"name", e.name}};
      if (e.value) item["value"] = *e.value;
      items.push_back(std::move(item));
    }
    return items;
  };
  if (!match.headers.empty()) out["headers"] = list(match.headers);
  if (!match.query.empty()) out["query"] = list(match.query);
  if (!match.path_regex.empty()) out["path_regex"] = match.path_regex;
  return out;
}

bool resolve_endpoint_key(Endpoint& endpoint) {
  std::string_view key = endpoint.key;
  uint16_t port = 0;
  if (key.starts_with('[')) {
    size_t close = key.find("]:");
    if (close == std::string_view::npos || !parse_port(key.substr(close + 2), port)) return false;
    return fill_ipv6(key.substr(1, close - 1), port, endpoint);
  }
  size_t colon = key.rfind(':');
  if (colon == std::string_view::npos || !parse_port(key.substr(colon + 1), port)) return false;
  return fill_ipv4(key.substr(0, colon), port, endpoint);
}

}  // namespace berth
