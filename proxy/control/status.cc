#include "proxy/control/status.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>

#include "config/config.h"
#include "proxy/base/ascii.h"
#include "proxy/control/admin.h"
#include "proxy/health/outlier.h"
#include "proxy/http/http_head.h"
#include "proxy/model/endpoint_health.h"

namespace berth {
namespace {

// "redirect" for a redirect route: Berth answers it itself, it wants no instance (it is never
// down). Otherwise "ok" with an instance, "503" without one while it still matches, "off" after.
std::string route_state(const Service& service, int64_t now_ms) {
  if (is_redirect_stand_in(service)) return "redirect";
  if (!service.endpoints.empty()) return "ok";
  return serves(service, now_ms) ? "503" : "off";
}

// Calls fn with each service a route sends to: its service, and a split's targets.
template <typename Fn>
void for_each_route_service(const RouteTable& table, const Route& r, Fn&& fn) {
  fn(table.service(r.service));
  if (r.split)
    for (const RouteSplit::Target& t : r.split->targets) fn(table.service(t.service));
}

// A split route serves while any of its services does: "ok" when one has an instance, else "503"
// while one still matches, else "off".
std::string route_state(const RouteTable& table, const Route& r, int64_t now_ms) {
  std::string state;
  for_each_route_service(table, r, [&](const Service& service) {
    std::string other = route_state(service, now_ms);
    if (state.empty() || other == "ok" || state == "off") state = std::move(other);
  });
  return state;
}

std::string seconds_text(int64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + " s";
}

nlohmann::json instance_json(const Endpoint& e, const InstanceEligibility& why, int64_t now_ms) {
  nlohmann::json j = {{"address", e.key},
                      {"container", std::string(instance_container(e))},
                      {"source", e.source},
                      {"weight", e.weight},
                      {"eligible", why.eligible},
                      {"colour", why.colour},
                      {"why", why.why}};
  // Discovery lists only containers that are running, not paused or draining, and healthy (or
  // without a Docker healthcheck): one that is here passed Docker's side.
  j["docker"] = source_origin(e.source) == SourceOrigin::kContainer ? nlohmann::json("running, healthy or no healthcheck")
                                                   : nlohmann::json(nullptr);
  if (e.health) {
    j["probe"] = probe_state_name(e.health->probe.load(std::memory_order_relaxed));
    j["failed_probes"] = e.health->failed_probes.load(std::memory_order_relaxed);
    const char* last = e.health->last_probe_failure.load(std::memory_order_relaxed);
    j["last_probe_failure"] = last ? nlohmann::json(last) : nlohmann::json(nullptr);
    j["ejected"] = e.health->ejected(now_ms);
    j["in_flight"] = InFlightCounts::total(*e.health);
  } else {
    j["probe"] = "unchecked";
    j["ejected"] = false;
    j["in_flight"] = 0;
  }
  return j;
}

// A running container discovery does not route now (Docker health, paused, stopping): red, with
// Docker's side as the reason.
nlohmann::json held_back_json(const HeldBackInstance& h) {
  return {{"address", h.address},
          {"container", std::string(endpoint_container_name(h.source))},
          {"source", h.source},
          {"weight", nullptr},
          {"eligible", false},
          {"colour", "red"},
          {"why", "not routed while Docker reports it so"},
          {"docker", h.reason},
          {"probe", "unchecked"},
          {"ejected", false},
          {"in_flight", 0}};
}

// The routed instances in order, then the held-back ones.
nlohmann::json instances_json(const Service& service, const std::vector<InstanceEligibility>& why, int64_t now_ms) {
  nlohmann::json instances = nlohmann::json::array();
  for (size_t i = 0; i < service.endpoints.size(); ++i) instances.push_back(instance_json(service.endpoints[i], why[i], now_ms));
  for (const HeldBackInstance& h : service.held_back) instances.push_back(held_back_json(h));
  return instances;
}

}  // namespace

std::vector<InstanceEligibility> instance_eligibility(const Service& service, int64_t now_ms, bool* panic) {
  std::vector<uint8_t> routable;
  const bool in_panic = compute_routable(service, now_ms, routable);
  if (panic) *panic = in_panic;
  std::vector<InstanceEligibility> out(service.endpoints.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const EndpointHealth* h = service.endpoints[i].health.get();
    InstanceEligibility& e = out[i];
    e.eligible = routable[i] != 0;
    if (!h) {
      e.colour = "green";
      e.why = "no health state: always eligible";
      continue;
    }
    const ProbeState probe = h->probe.load(std::memory_order_relaxed);
    const bool ejected = h->ejected(now_ms);
    const uint32_t failed = h->failed_probes.load(std::memory_order_relaxed);
    // "the last 12 probes failed (connect-failed)": tells a dead instance from one just added.
    auto failures = [&] {
      const char* last = h->last_probe_failure.load(std::memory_order_relaxed);
      return (failed == 1 ? std::string("the last probe failed") : "the last " + std::to_string(failed) + " probes failed") +
             " (" + (last ? last : "?") + ")";
    };
    std::string problem;
    if (ejected) {
      problem = "ejected by outlier detection (ejection " + std::to_string(h->ejections.load(std::memory_order_relaxed)) +
                ") for " + seconds_text(h->ejected_until_ms.load(std::memory_order_relaxed) - now_ms) + " more";
      if (probe == ProbeState::kUnhealthy) problem += ", then it must pass a probe";
    } else if (probe == ProbeState::kUnhealthy) {
      problem = "failing its active health check (" + service.policy.health.path + ")";
      if (failed > 0) problem += ": " + failures();
    } else if (probe == ProbeState::kPending) {
      problem = failed > 0 ? "no health check has passed yet: " + failures() : "waiting for its first passing health check";
    }
    if (problem.empty()) {
      e.colour = "green";
      e.why = probe == ProbeState::kHealthy ? "passing its health check" : "eligible (no active health check)";
      if (routable[i] == kStandby) e.why += "; another host's instance: stands by while this host has a routable one";
    } else if (e.eligible) {
      e.colour = "amber";
      e.why = problem + "; eligible anyway: panic mode (fewer than " +
              std::to_string(service.policy.outlier.panic_threshold_percent) +
              "% of the service's instances are healthy)";
    } else {
      // Waiting is amber while it may still be starting; failing as many probes as would take a
      // healthy instance out, it is red.
      const bool starting = probe == ProbeState::kPending && !ejected && failed < service.policy.health.unhealthy_threshold;
      e.colour = starting ? "amber" : "red";
      e.why = problem;
    }
  }
  return out;
}

namespace {

void observe_instance(const Service& service, const Endpoint& e, int64_t now_ms, ObservedState& state) {
  InstanceView v;
  v.container = std::string(instance_container(e));
  v.origin = source_origin(e.source);
  if (e.health) {
    v.probe = probe_state_name(e.health->probe.load(std::memory_order_relaxed));
    v.ejected = e.health->ejected(now_ms);
    if (v.ejected)
      state.next_change_ms = std::min(state.next_change_ms, e.health->ejected_until_ms.load(std::memory_order_relaxed));
    v.ejections = e.health->ejections.load(std::memory_order_relaxed);
  } else {
    v.probe = probe_state_name(ProbeState::kUnchecked);
  }
  state.instances.emplace(std::make_pair(service.name, e.key), std::move(v));
}

void observe_instances(const Service& service, int64_t now_ms, ObservedState& state) {
  for (const Endpoint& e : service.endpoints) observe_instance(service, e, now_ms, state);
}

void observe_route(const RouteTable& table, const Route& r, int64_t now_ms, ObservedState& state) {
  for_each_route_service(table, r, [&](const Service& service) {
    if (service.endpoints.empty() && service.serve_empty_until_ms > now_ms)
      state.next_change_ms = std::min(state.next_change_ms, service.serve_empty_until_ms);
  });
  std::string names = r.split ? std::string() : table.service(r.service).name;
  if (r.split)  // its targets, in order (r.service is the first of them)
    for (const RouteSplit::Target& t : r.split->targets)
      names.append(names.empty() ? "" : ", ").append(table.service(t.service).name);
  state.routes.emplace(route_claim_key(r),
                       RouteView{r.name, r.host, r.path_prefix, std::move(names), route_state(table, r, now_ms),
                                 r.split != nullptr});
}

}  // namespace

ObservedState observe_state(const RouteTable& table, int64_t now_ms) {
  ObservedState state;
  for (const ServicePtr& shared : table.services()) observe_instances(*shared, now_ms, state);
  for (const Route& r : table.routes()) observe_route(table, r, now_ms, state);
  return state;
}

bool observe_changed_services(const RouteTable& table, const std::vector<const Service*>& removed,
                              const std::vector<ServicePtr>& added, int64_t now_ms, ObservedState& observed,
                              ObservedState& before, ObservedState& after) {
  // Instances are keyed by service name: a changed name that another service of the table also
  // has (twice in the table, or an unchanged service's) would mix them. Other names do not matter.
  std::unordered_set<std::string_view> changed_names;
  std::unordered_set<const Service*> added_objects;
  for (const ServicePtr& s : added) changed_names.insert(s->name), added_objects.insert(s.get());
  for (const Service* s : removed) changed_names.insert(s->name);
  std::unordered_set<std::string_view> seen;
  for (const ServicePtr& s : table.services())
    if (changed_names.count(s->name) && (!seen.insert(s->name).second || !added_objects.count(s.get()))) return false;
  auto look_up = [&](const Service& s, const Endpoint& e) {
    if (auto it = observed.instances.find(std::make_pair(s.name, e.key)); it != observed.instances.end())
      before.instances.insert(*it);
  };
  // A service replaced by a new object of the same name: an instance in both (same address,
  // container and health state) looks as it did, since no health state changed since the last
  // look. Only the instances that came or went are looked at.
  std::unordered_map<std::string_view, const Service*> replaced;
  for (const Service* s : removed)
    if (!replaced.emplace(s->name, s).second) replaced[s->name] = nullptr;  // two of a name: not paired
  std::unordered_set<const Service*> paired;
  for (const ServicePtr& s : added) {
    auto r = replaced.find(s->name);
    const Service* old = r == replaced.end() ? nullptr : r->second;
    if (!old || !paired.insert(old).second) {
      observe_instances(*s, now_ms, after);
      continue;
    }
    // Those at the same place from either end (common_ends) are compared in place; the rest
    // by address.
    const std::vector<Endpoint>& now = s->endpoints;
    const std::vector<Endpoint>& was = old->endpoints;
    auto same = [](const Endpoint& a, const Endpoint& b) {
      return a.key == b.key && a.source == b.source && a.health == b.health;
    };
    const auto [head, tail] = common_ends(now, was, same);
    std::unordered_map<std::string_view, const Endpoint*> left;
    left.reserve(was.size() - head - tail);
    for (size_t i = head; i < was.size() - tail; ++i) left.emplace(was[i].key, &was[i]);
    for (size_t i = head; i < now.size() - tail; ++i) {
      const Endpoint& e = now[i];
      auto it = left.find(e.key);
      if (it != left.end() && same(e, *it->second)) {
        left.erase(it);
        continue;
      }
      observe_instance(*s, e, now_ms, after);
    }
    for (const auto& [key, e] : left) look_up(*old, *e);
  }
  for (const Service* s : removed)
    if (!paired.count(s))
      for (const Endpoint& e : s->endpoints) look_up(*s, e);
  for (const Route& r : table.routes()) {
    bool changed = false;
    for_each_route_service(table, r, [&](const Service& service) { changed = changed || added_objects.count(&service); });
    if (!changed) continue;
    observe_route(table, r, now_ms, after);
    if (auto it = observed.routes.find(route_claim_key(r)); it != observed.routes.end())
      before.routes.insert(*it);
  }
  for (const auto& [key, view] : before.instances) observed.instances.erase(key);
  for (const auto& [key, view] : after.instances) observed.instances.insert_or_assign(key, view);
  for (const auto& [key, view] : after.routes) observed.routes.insert_or_assign(key, view);
  observed.next_change_ms = std::min(observed.next_change_ms, after.next_change_ms);
  return true;
}

bool parse_status_query(std::string_view query, StatusQuery& out, std::string* error) {
  out = StatusQuery{};
  out.filter = admin_query_param(query, "filter");
  if (out.filter.size() > 256) {
    *error = "filter: at most 256 characters";
    return false;
  }
  if (const std::string limit = admin_query_param(query, "limit"); !limit.empty()) {
    size_t n = 0;
    const auto [end, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), n);
    if (ec != std::errc() || end != limit.data() + limit.size()) {
      *error = "limit: expected a number of routes and services (0, 1, 2, ...)";
      return false;
    }
    out.limit = n;
  }
  if (const std::string order = admin_query_param(query, "order"); order == "problems") {
    out.problems_first = true;
  } else if (!order.empty() && order != "table") {
    *error = "order: expected problems or table";
    return false;
  }
  return true;
}

bool status_filter_matches(std::string_view text, std::string_view filter) {
  return ascii_icontains(text, filter);
}

namespace {

// A service's place when problems come first: no eligible instance (its routes answer 503),
// then a red or amber instance or panic mode, then the rest.
int problem_rank(const Service& service, const std::vector<InstanceEligibility>& why, bool panic) {
  bool any_eligible = false, any_problem = panic || !service.held_back.empty();
  for (const InstanceEligibility& w : why) {
    any_eligible = any_eligible || w.eligible;
    any_problem = any_problem || w.colour != "green";
  }
  return !any_eligible ? 0 : any_problem ? 1 : 2;
}

}  // namespace

nlohmann::json StatusBuilder::status(const RouteTable& table, int64_t now_ms, const StatusQuery& query) const {
  std::unordered_map<std::string, const StatusTraffic*> by_service;
  std::vector<StatusTraffic> samples;
  if (traffic) {
    samples = traffic();
    for (const StatusTraffic& t : samples) by_service[t.service] = &t;
  }
  const std::string_view filter = query.filter;
  const size_t limit = query.limit.value_or(SIZE_MAX);

  // Routes: those that serve, then those the filter keeps (and the services they reach).
  struct RouteRow {
    const Route* route;
    std::string state;
  };
  std::vector<RouteRow> route_rows;
  size_t routes_total = 0;
  std::unordered_set<std::string_view> reached;  // services of matching routes
  for (const Route& r : table.routes()) {
    const Service& service = table.service(r.service);
    std::string state = route_state(table, r, now_ms);
    if (state == "off") continue;
    ++routes_total;
    if (!filter.empty()) {
      bool match = status_filter_matches(r.name, filter) || status_filter_matches(r.host, filter) ||
                   status_filter_matches(r.path_prefix, filter) || status_filter_matches(service.name, filter);
      if (r.split)
        for (const RouteSplit::Target& t : r.split->targets)
          match = match || status_filter_matches(table.service(t.service).name, filter);
      if (!match) continue;
      reached.insert(service.name);
      if (r.split)
        for (const RouteSplit::Target& t : r.split->targets) reached.insert(table.service(t.service).name);
    }
    route_rows.push_back({&r, std::move(state)});
  }
  const size_t routes_matched = route_rows.size();
  if (query.problems_first)
    std::stable_partition(route_rows.begin(), route_rows.end(), [](const RouteRow& r) { return r.state == "503"; });
  if (route_rows.size() > limit) route_rows.resize(limit);

  nlohmann::json routes = nlohmann::json::array();
  for (const RouteRow& row : route_rows) {
    const Route& r = *row.route;
    routes.push_back({{"name", r.name},
                      {"host", r.host},
                      {"path_prefix", r.path_prefix},
                      {"priority", r.priority},
                      {"service", table.service(r.service).name},
                      {"source", r.source},
                      {"state", row.state}});
    if (r.split) routes.back()["split"] = table.split_json(*r.split, now_ms);
    if (r.mirror) routes.back()["mirror"] = table.mirror_json(*r.mirror);
  }

  // Services: eligibility is worked out only for those that may be shown (all that match when
  // problems come first, since their order depends on it).
  struct ServiceRow {
    const Service* service;
    std::vector<InstanceEligibility> why;
    bool panic = false;
    bool judged = false;
    int rank = 0;  // problem_rank, when problems come first
  };
  std::vector<ServiceRow> service_rows;
  size_t services_total = 0, instances_total = 0;
  for (const ServicePtr& shared : table.services()) {
    const Service& service = *shared;
    // A service whose routes no longer match still shows while it has held-back instances:
    // "web: both containers unhealthy" is what the operator needs to see.
    if (!serves(service, now_ms) && service.held_back.empty()) continue;
    if (is_redirect_stand_in(service)) continue;
    ++services_total;
    instances_total += service.endpoints.size() + service.held_back.size();
    if (!filter.empty() && !reached.count(service.name) && !status_filter_matches(service.name, filter)) continue;
    service_rows.push_back({&service, {}});
  }
  const size_t services_matched = service_rows.size();
  auto judge = [&](ServiceRow& row) {
    if (row.judged) return;
    row.why = instance_eligibility(*row.service, now_ms, &row.panic);
    row.judged = true;
  };
  if (query.problems_first) {
    for (ServiceRow& row : service_rows) {
      judge(row);
      row.rank = problem_rank(*row.service, row.why, row.panic);
    }
    std::stable_sort(service_rows.begin(), service_rows.end(),
                     [](const ServiceRow& a, const ServiceRow& b) { return a.rank < b.rank; });
  }
  if (service_rows.size() > limit) service_rows.resize(limit);

  nlohmann::json services = nlohmann::json::array();
  for (ServiceRow& row : service_rows) {
    judge(row);
    const Service& service = *row.service;
    nlohmann::json s = {{"name", service.name}, {"panic", row.panic}, {"instances", instances_json(service, row.why, now_ms)}};
    auto t = by_service.find(service.name);
    if (traffic) {
      s["requests"] = t == by_service.end() ? 0 : t->second->requests;
      s["responses_5xx"] = t == by_service.end() ? 0 : t->second->responses_5xx;
    } else {
      s["requests"] = nullptr;
      s["responses_5xx"] = nullptr;
    }
    services.push_back(std::move(s));
  }
  nlohmann::json out = {{"generation", table.generation()},
                        {"monotonic_ms", now_ms},
                        {"traffic", static_cast<bool>(traffic)},
                        {"routes", std::move(routes)},
                        {"services", std::move(services)}};
  if (query.given()) {
    out["routes_total"] = routes_total;
    out["routes_matched"] = routes_matched;
    out["services_total"] = services_total;
    out["services_matched"] = services_matched;
    out["instances_total"] = instances_total;
  }
  return out;
}

nlohmann::json explain_request(const RouteTable& table, std::string_view host, std::string_view path,
                               int64_t now_ms, std::string* error, std::string_view method,
                               const std::vector<std::string>& headers, const http::Limits* client_limits,
                               uint8_t refused_encodings) {
  if (host.empty()) {
    *error = "missing query parameter: host (e.g. /api/explain?host=example.com&path=/)";
    return nullptr;
  }
  if (path.empty()) {
    *error = "missing query parameter: path (e.g. /api/explain?host=example.com&path=/)";
    return nullptr;
  }
  if (path.front() != '/') {
    *error = "invalid path: it must start with '/'";
    return nullptr;
  }
  for (char c : std::string(host) + std::string(path)) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      *error = "invalid host or path: control characters or spaces";
      return nullptr;
    }
  }
  if (!http::valid_host(host)) {
    *error = "invalid host: " + std::string(host.substr(0, 300));
    return nullptr;
  }
  // The request the route matchers are tested against, parsed as one from a client would be.
  std::string raw = std::string(method.empty() ? "GET" : method) + " " + std::string(path) + " HTTP/1.1\r\nHost: " +
                    std::string(host) + "\r\n";
  for (const std::string& header : headers) {
    if (header.find_first_of("\r\n") != std::string::npos || header.find(':') == std::string::npos) {
      *error = "invalid header: expected header=Name:value";
      return nullptr;
    }
    raw += header + "\r\n";
  }
  raw += "\r\n";
  http::RequestHead head;
  http::Limits limits;
  if (client_limits) limits = *client_limits;
  else limits.sanitize_path = config::Config{}.sanitize_path;  // config's default
  if (const http::Outcome o = http::parse_request_head(raw, limits, head); !o.ok()) {
    *error = std::string("invalid method, path or header: the request they make is refused (") + o.detail + ")";
    return nullptr;
  }
  bool host_valid = true;
  // Routed by the path as a client's request would be: sanitized (head.path), when it is.
  RouteExplanation x = table.explain(host, head.path, now_ms, &host_valid, &head);
  if (!host_valid) {
    *error = "invalid host: " + std::string(host.substr(0, 300));
    return nullptr;
  }
  if (x.chosen) {
    if (const char* why = http::refused_encoding(head.path, x.chosen->refused_encodings(refused_encodings))) {
      *error = "the request is refused on route " + x.chosen->name + " (" + why + ")";
      return nullptr;
    }
  }
  error->clear();
  const std::vector<Route>& routes = table.routes();
  nlohmann::json candidates = nlohmann::json::array();
  for (const RouteCandidate& c : x.candidates) {
    const Route& r = routes[c.route];
    nlohmann::json j = {{"route", r.name},
                        {"host", r.host},
                        {"path_prefix", r.path_prefix},
                        {"priority", r.priority},
                        {"service", table.service(r.service).name},
                        {"host_match", c.host_match},
                        {"outcome", c.outcome}};
    if (r.match) j["match"] = route_match_json(*r.match);
    if (!c.rule.empty()) {
      j["rule"] = c.rule;
      j["why"] = std::string("the chosen route wins: ") + precedence_rule_text(c.rule);
    } else if (c.outcome == "path_mismatch") {
      j["why"] = "the path does not start with " + r.path_prefix;
    } else if (c.outcome == "matcher_mismatch") {
      j["why"] = "its matchers (method, headers, query or path_regex) do not hold for this request";
    } else if (c.outcome == "not_serving") {
      j["why"] = "its service has no instance and its empty-route grace is over";
    }
    candidates.push_back(std::move(j));
  }
  nlohmann::json out = {{"host", x.host}, {"path", x.path}, {"candidates", std::move(candidates)}};
  if (!x.chosen) {
    out["matched"] = false;
    out["route"] = nullptr;
    out["why"] = "no route matches: the request is answered 404";
    return out;
  }
  const Route& chosen = *x.chosen;
  const Service& service = table.service(chosen.service);
  out["matched"] = true;
  out["route"] = {{"name", chosen.name}, {"host", chosen.host}, {"path_prefix", chosen.path_prefix},
                  {"priority", chosen.priority}, {"source", chosen.source}};
  // A split route: the service shown below is the split's first; each request picks one by weight.
  if (chosen.split) out["route"]["split"] = table.split_json(*chosen.split, now_ms);
  if (chosen.mirror) out["route"]["mirror"] = table.mirror_json(*chosen.mirror);
  out["rule"] = x.rule;
  out["why"] = precedence_rule_text(x.rule);
  if (is_redirect_stand_in(service)) out["route"]["redirect"] = true;
  bool panic = false;
  std::vector<InstanceEligibility> why = instance_eligibility(service, now_ms, &panic);
  size_t eligible = 0;
  for (const InstanceEligibility& w : why) eligible += w.eligible;
  out["service"] = {{"name", service.name}, {"panic", panic}, {"eligible", eligible},
                    {"instances", instances_json(service, why, now_ms)}};
  if (is_redirect_stand_in(service))
    out["service"]["why"] = "a redirect route: Berth answers it itself with the redirect, no instance is wanted";
  else if (service.endpoints.empty())
    out["service"]["why"] = "no instance: the route answers 503 until one joins or its empty-route grace ends";
  else if (eligible == 0)
    out["service"]["why"] = "no eligible instance: the route answers 503";
  return out;
}

}  // namespace berth
