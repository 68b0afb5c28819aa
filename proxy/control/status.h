// What the status page and the debugging endpoints show, built on the control loop from the
// published snapshot and the shared health state: GET /api/status (routes, services, instances
// with their health and why, per-service traffic totals), GET /api/explain (which route a host
// and path reach, and which instances are eligible now), and the state the event journal diffs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "proxy/control/event_journal.h"
#include "proxy/http/http_head.h"
#include "proxy/http/request_path.h"
#include "proxy/metrics/exporter.h"
#include "proxy/model/route_table.h"

namespace berth {

// Requests finished and 5xx answers sent per service, totals since start (the page turns
// successive samples into rates): the metrics exporter's own per-service totals.
using StatusTraffic = ServiceTraffic;

// Why an instance takes new requests or not, as selection decides it now.
struct InstanceEligibility {
  bool eligible = true;
  std::string colour;  // "green" (eligible), "amber" (eligible only in panic mode, or waiting for a probe), "red"
  std::string why;     // for people
};
// One entry per endpoint of the service, in order (compute_routable, ignoring circuit breakers).
// *panic: whether the service is in panic mode.
std::vector<InstanceEligibility> instance_eligibility(const Service& service, int64_t now_ms, bool* panic = nullptr);

// The routes of the table with their state (see RouteView) and the instances with their health.
ObservedState observe_state(const RouteTable& table, int64_t now_ms);

// For a snapshot that differs from the one `observed` was taken of only in some services (same
// routes; `removed` replaced by `added`) and in nothing time or health_epoch() would change:
// brings `observed` up to date at the cost of the changed services, not of the table, and gives
// the old and new views of what they cover (before, after) for record_changes. False, with
// nothing touched, when that cannot be done exactly (two services share a name): look at all.
bool observe_changed_services(const RouteTable& table, const std::vector<const Service*>& removed,
                              const std::vector<ServicePtr>& added, int64_t now_ms, ObservedState& observed,
                              ObservedState& before, ObservedState& after);

// What GET /api/status?filter=TEXT&limit=N&order=problems asks for: a table of 10,000 routes
// is not sent, nor drawn, whole every 2 s.
struct StatusQuery {
  std::string filter;           // case-insensitive substring of a route's name, host, path or service names,
                                // or of a service's name; "" = all
  std::optional<size_t> limit;  // at most this many routes, and as many services; none = all
  bool problems_first = false;  // order=problems: 503 routes (not redirects), then services with no
                                // eligible instance, then those with a red or amber instance or in panic mode
  // Any of them was given: the document then says how many there are and how many matched.
  bool given() const { return !filter.empty() || limit || problems_first; }
};

// Reads filter, limit and order from a query string ("filter=shop&limit=200"); other names are
// ignored. False, with `error` saying which value is wrong, for a limit that is not a number, an
// order other than "problems" or "table", or a filter longer than 256 bytes.
bool parse_status_query(std::string_view query, StatusQuery& out, std::string* error);

// Whether `text` contains `filter`, ASCII letters compared without case.
bool status_filter_matches(std::string_view text, std::string_view filter);

class StatusBuilder {
 public:
  // Unset: the traffic fields are null and the page shows "—".
  std::function<std::vector<StatusTraffic>()> traffic;

  // {"generation","monotonic_ms" (health_clock_ms: for rates, not a date),"routes":[{"name","host","path_prefix","priority","service","source",
  //  "state": "ok", "503" or "redirect"}],"services":[{"name","requests","responses_5xx","panic","instances":[{"address",
  //  "container","source","weight","in_flight","eligible","colour","why","probe","ejected",
  //  "docker"}]}]}. Instances discovery holds back (running containers Docker reports unhealthy
  //  or starting, paused or stopping) follow the routed ones: red, not eligible, "docker" says
  //  why. Routes that no longer match (state "off") are left out, and so are their services
  //  unless they have held-back instances.
  // With a query that asks for something (StatusQuery::given), only the routes and services that
  // match it are listed, in that order and number, and the document adds "routes_total",
  // "services_total" and "instances_total" (what is listed without a query) and "routes_matched"
  // and "services_matched" (what matches the filter, before the limit). A service matches by
  // its name or by a matching route that reaches it.
  nlohmann::json status(const RouteTable& table, int64_t now_ms, const StatusQuery& query = {}) const;
};

// GET /api/explain: the route `host` and `path` reach and why, its service, and each instance's
// eligibility. Empty `error` on success; otherwise the JSON is null and `error` says what is
// wrong with the input (the caller answers 400). For routes with matchers: `method` ("" = GET),
// `headers` ("Name: value" each) and the query in `path` ("/x?beta=1") make the request tested.
// client_limits: how the request is parsed, as a client's would be (the running config's: its
// path sanitized or not, head limits); null: Berth's defaults (sanitized). refused_encodings:
// the top level's (Runtime::refused_encodings); a path the chosen route refuses is an error.
nlohmann::json explain_request(const RouteTable& table, std::string_view host, std::string_view path,
                               int64_t now_ms, std::string* error, std::string_view method = {},
                               const std::vector<std::string>& headers = {},
                               const http::Limits* client_limits = nullptr,
                               uint8_t refused_encodings = http::kAllEncodedCharacters);

}  // namespace berth
