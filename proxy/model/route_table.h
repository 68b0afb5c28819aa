// The immutable route snapshot: routes, services and their endpoints together.
// Built on the control thread, published to every worker as shared_ptr<const RouteTable>;
// a request keeps the snapshot it started with. Matching is pure and allocation-free.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.h"
#include "proxy/http/http_head.h"
#include "proxy/model/endpoint_health.h"
#include "proxy/model/source_origin.h"

namespace berth {

class FilterChain;  // proxy/filter: built once per snapshot, shared by every worker
struct LbTable;     // proxy/lb: built once per service object, shared by every worker
namespace tls {
class ClientContext;  // proxy/tls: built by the control thread for a service with upstream TLS
}

struct Endpoint {
  std::string key;              // "127.0.0.1:8080" / "[::1]:8080": identity across snapshots
  sockaddr_storage addr{};      // resolved numeric address
  socklen_t addr_len = 0;
  uint32_t weight = 1;
  std::string source = "config";  // where it came from: see SourceOrigin
  // A registry instance's container name, as its sidecar published it ("" otherwise: a local
  // container's is in its source). Read through instance_container().
  std::string container;
  // Another host's instance, known from the registry to a sidecar: chosen only while no
  // instance of the service on the sidecar's own host is routable (locality; see
  // compute_routable).
  bool remote = false;
  // Shared with the health checker and every worker; set by HealthRegistry::attach (null in
  // snapshots built without one, e.g. unit tests: then always routable).
  std::shared_ptr<EndpointHealth> health;
};

// The name of the container an instance runs in: a local container's (from its source) or a
// registry instance's; "" for the config file's instances.
inline std::string_view instance_container(const Endpoint& e) noexcept {
  return e.container.empty() ? endpoint_container_name(e.source) : std::string_view(e.container);
}

// An instance discovery knows of but does not route now, and why: a running container that
// Docker reports unhealthy or still starting, one that is paused, or one that is stopping. Shown
// on the status page next to the routed instances; never selected.
struct HeldBackInstance {
  std::string address;  // as Endpoint::key ("" when no address could be chosen)
  std::string source;   // as Endpoint::source
  std::string reason;
  bool operator==(const HeldBackInstance&) const = default;
};

struct Service {
  std::string name;
  std::vector<Endpoint> endpoints;  // may be empty: the route then answers 503 (see below)
  std::vector<HeldBackInstance> held_back;  // discovery only; not for selection
  config::ServicePolicy policy;     // load balancing, health checks, retries, circuit breaking
  std::shared_ptr<ServiceCounters> counters;  // set by HealthRegistry
  // What its selectors read (weights, hash ring, sticky ids): built by the control thread when
  // the object is first published and kept with it while later snapshots share it. Null in
  // services built elsewhere (config, discovery, tests): a selector then builds its own.
  std::shared_ptr<const LbTable> lb_table;
  // policy.tls.enabled: the TLS client context its connections are made with, built by the
  // control thread when the object is published and shared by every worker (services with the
  // same settings share one). Null with policy.tls.enabled: it could not be built, and every
  // connect fails as upstream-tls-failed (never plain TCP instead).
  std::shared_ptr<const tls::ClientContext> upstream_tls;
  // Without endpoints, the service's routes answer 503 until this time (health_clock_ms()),
  // then they no longer match (404, or a less specific route). Discovery sets it to the end of
  // the grace period after the last instance left (0: never had one); config services keep
  // answering 503 forever.
  int64_t serve_empty_until_ms = std::numeric_limits<int64_t>::max();
};

// The stand-in service of redirect routes (answered by Berth itself, so no instance is ever
// wanted): nameless, which no configured or discovered service is. Not listed as a service
// (/api/routes, the status page, berth_services); such a route shows service "".
inline bool is_redirect_stand_in(const Service& service) noexcept { return service.name.empty(); }

// Whether a route to `service` matches at `now_ms`: it has an instance, or its empty grace runs.
inline bool serves(const Service& service, int64_t now_ms) noexcept {
  return !service.endpoints.empty() || now_ms < service.serve_empty_until_ms;
}

// Services are shared between snapshots: a service whose instances did not change keeps its
// object (and its attached health state) in the next snapshot; only pointers are copied.
using ServicePtr = std::shared_ptr<const Service>;

// How many endpoints two lists (a service's new object and the one it replaces) share at the
// same place from the front (head) and from the back (tail), by `same`; head + tail is at most
// either size. The usual change adds or removes an instance or two: the others stand at the
// same place from one end or the other, so what is done per endpoint that stays can be done by
// position instead of by a lookup, and the change costs what came or went.
struct CommonEnds {
  size_t head = 0, tail = 0;
};
template <class Same>
CommonEnds common_ends(const std::vector<Endpoint>& now, const std::vector<Endpoint>& was, Same same) {
  CommonEnds c;
  while (c.head < now.size() && c.head < was.size() && same(now[c.head], was[c.head])) ++c.head;
  while (c.tail < now.size() - c.head && c.tail < was.size() - c.head &&
         same(now[now.size() - 1 - c.tail], was[was.size() - 1 - c.tail]))
    ++c.tail;
  return c;
}
inline bool same_key(const Endpoint& a, const Endpoint& b) { return a.key == b.key; }

// A weighted split of a route's requests between services (routes[].split). Each worker picks
// a target per request by smooth weighted round-robin among the targets that serve (see
// pick_split_target); the rest of the request works on the chosen service.
struct RouteSplit {
  struct Target {
    uint32_t service = 0;  // index into RouteTable::services()
    uint32_t weight = 1;
  };
  std::vector<Target> targets;
};

// A share of a route's requests copied to a shadow service (routes[].mirror, berth.mirror.*;
// the datapath's proxy/datapath/mirror.h sends the copies).
struct RouteMirror {
  uint32_t service = 0;        // index into RouteTable::services()
  uint32_t percent_bp = 10000; // hundredths of a percent, 1..10000
  uint64_t max_body = 64 * 1024;
  bool operator==(const RouteMirror&) const = default;
};

struct Route {
  std::string name;
  std::string host;          // lower-case exact host, "*.suffix" wildcard, or "" = any host
  std::string path_prefix;   // starts with '/'
  int32_t priority = 0;      // higher wins before any other rule
  uint32_t service = 0;      // index into RouteTable::services()
  uint64_t max_body_bytes = 0;  // 0 = unlimited
  std::string source = "config";
  bool https_redirect = false;  // plain-HTTP requests get 308 to https:// (ACME paths excepted)
  // The redirect's status for GET and HEAD: 308 (config, berth.tls.redirect), or Traefik's
  // redirectscheme codes, 302 (301 when permanent); other methods get the code that keeps the
  // method (302 -> 307, 301 -> 308).
  uint16_t https_redirect_code = 308;
  std::string hsts;             // Strict-Transport-Security value for responses sent over TLS
  bool acme = false;            // its host gets a certificate from the ACME server (acme: true, berth.tls.acme)
  // Percent-encodings (http::EncodedCharacter bits) this route allows or refuses where the top
  // level (Runtime::refused_encodings) says otherwise; both 0: as the top level says.
  uint8_t allow_encodings = 0;
  uint8_t refuse_encodings = 0;
  // The encodings refused on this route, given those refused at the top level.
  uint8_t refused_encodings(uint8_t top_level) const {
    return static_cast<uint8_t>((top_level | refuse_encodings) & ~allow_encodings);
  }
  std::shared_ptr<const FilterChain> filters;  // per-route policy (null: none), run before an upstream is chosen
  // ---- matchers and weighted split ----
  // Matchers besides host and path (null: none): the route matches only when they all hold.
  std::shared_ptr<const config::RouteMatch> match;
  // Several services by weight (null: `service` alone). `service` is then the first target's,
  // where one service is shown (the status page, metrics of the route).
  std::shared_ptr<const RouteSplit> split;
  // ---- request mirroring ----
  std::shared_ptr<const RouteMirror> mirror;  // null: none
  bool has_matchers() const noexcept { return match != nullptr; }
};

// What makes a route a claim of its own: host + '\n' + path prefix, then '\n' + its matchers'
// key (config::RouteMatch::key) when it has matchers. A table holds one route per claim (the
// first); a route with matchers beside one without on the same host and path is another claim.
std::string route_claim_key(const Route& route);
// The same from its parts (match_key: config::RouteMatch::key, empty without matchers).
std::string route_claim_key(std::string_view host, std::string_view path_prefix, std::string_view match_key = {});

// Whether the request satisfies every matcher. path: the path routes match (http::routed_path:
// no query, no parameters); the query is
// taken from req.path. Header names compare case-insensitively, values exactly; query names and
// values as raw bytes (no percent-decoding); path_regex must match the whole path (RE2).
bool matchers_hold(const config::RouteMatch& match, const http::RequestHead& req, std::string_view path) noexcept;

// {"methods":[...],"headers":[{"name","value"}],"query":[...],"path_regex":"..."}, given ones only.
nlohmann::json route_match_json(const config::RouteMatch& match);

// Whether `service` has an instance that may take a new request now: healthy by its probes (or
// unchecked) and not ejected. Circuit breakers and panic mode aside.
bool has_routable_instance(const Service& service, int64_t now_ms) noexcept;

// Smooth weighted round-robin over the split's targets whose service has a routable instance at
// now_ms; when none has, over those that serve (an instance, or in their empty-route grace), so
// requests still go where they did. `current` (one slot per target, zero at first) is the
// caller's running state, kept per worker. Returns the chosen target's index into split.targets
// (0 when none serves).

uint32_t pick_split_target(const RouteSplit& split, const std::vector<ServicePtr>& services, int64_t now_ms,
                           int64_t* current) noexcept;

// Why a request goes where it goes (/api/explain): every route whose host pattern applies to
// the request, in the order of precedence, with what happened to it. Built on the control
// thread; not for the request path (it allocates).
struct RouteCandidate {
  uint32_t route = 0;         // index into RouteTable::routes()
  std::string host_match;     // "exact", "wildcard" or "any"
  // "chosen"; "outranked" (it matched, the chosen route wins by `rule`); "path_mismatch";
  // "matcher_mismatch" (host and path fit, its matchers do not hold: passed over); or
  // "not_serving" (its service has no instance and its empty-route grace is over).
  std::string outcome;
  std::string rule;           // for "outranked": the precedence rule that decided against it
};
struct RouteExplanation {
  std::string host;                // the Host as matched: lower-case, no port, no trailing dot
  std::string path;                // the path as matched (http::routed_path: no query, no parameters)
  const Route* chosen = nullptr;   // what match() returns; null: nothing matches (404)
  // Why the chosen route won over the next best matching route: "only_match", "priority",
  // "exact_host", "longer_wildcard", "host_over_any", "longer_path_prefix", "matchers",
  // "earlier_route".
  std::string rule;
  std::vector<RouteCandidate> candidates;  // by precedence, the chosen one first
};
// The words for a rule, for people ("higher priority", ...).
const char* precedence_rule_text(std::string_view rule) noexcept;

// Precedence, in order: higher priority; then exact host over wildcard (a longer wildcard
// suffix over a shorter one) over any-host; then the longer path prefix; then a route with
// matchers over one without; then the earlier route. Path prefixes match raw bytes of the path
// (no decoding): "/api" matches "/api", "/api/x" and "/apix". A route whose matchers do not
// hold is passed over like one whose prefix does not fit.
class RouteTable {
 public:
  // routes[i].service (and split targets) must index services; out-of-range routes are
  // dropped. Routes with the same host pattern, path prefix and matchers as an earlier one are
  // dropped (first wins).
  static std::shared_ptr<const RouteTable> build(std::vector<Route> routes,
                                                 std::vector<ServicePtr> services,
                                                 uint64_t generation);
  static std::shared_ptr<const RouteTable> build(std::vector<Route> routes,
                                                 std::vector<Service> services,
                                                 uint64_t generation);
  // The same routes (and their index, shared, not copied) as `previous`, with other service
  // objects at the same positions: the cost is that of the services vector. Requires
  // services.size() == previous.services().size() (nullptr otherwise).
  static std::shared_ptr<const RouteTable> with_services(const RouteTable& previous,
                                                         std::vector<ServicePtr> services,
                                                         uint64_t generation);
  // Static routes from the config file (one Route per host of a config route). build_filters
  // makes a config route's filter chain (null: none); the filter module provides it.
  using FilterBuilder = std::function<std::shared_ptr<const FilterChain>(const config::Route&)>;
  static std::shared_ptr<const RouteTable> from_config(const config::Config& cfg, uint64_t generation,
                                                       const FilterBuilder& build_filters = {});

  // host: the request's Host (any case, may carry ":port" or a trailing dot; IPv6 literal in
  // brackets allowed). path: the request target's path (no query), or the whole origin-form
  // target — matching stops at ';' or '?' (http::routed_path). Returns nullptr when nothing matches. Routes whose service
  // no longer serves (see serves()) are passed over.
  // Routes with matchers never match here (no request to test them against): use the
  // overload below on the request path.
  const Route* match(std::string_view host, std::string_view path) const noexcept;
  // The same for a parsed request (req.host, req.path), whose method, headers and query the
  // routes with matchers test. Routes without matchers cost nothing more.
  const Route* match(const http::RequestHead& req) const noexcept;
  // The same decision as match() at now_ms, with the candidates considered and the rule that
  // chose. host_valid is false when a non-empty host cannot be matched (e.g. a bad IPv6
  // literal, or over 256 bytes): it is then matched as if absent, like match() does.
  // req (optional): the request the matchers are tested against; without it every route with
  // matchers is "matcher_mismatch".
  RouteExplanation explain(std::string_view host, std::string_view path, int64_t now_ms,
                           bool* host_valid = nullptr, const http::RequestHead* req = nullptr) const;

  const std::vector<Route>& routes() const noexcept { return layout_->routes; }
  // Where `route` is in routes() (UINT32_MAX: not one of this table's routes).
  uint32_t index_of(const Route& route) const noexcept {
    const std::vector<Route>& all = layout_->routes;
    const auto at = reinterpret_cast<uintptr_t>(&route) - reinterpret_cast<uintptr_t>(all.data());
    return at % sizeof(Route) == 0 && at / sizeof(Route) < all.size() ? static_cast<uint32_t>(at / sizeof(Route))
                                                                       : UINT32_MAX;
  }
  // Whether two tables share their routes and index (with_services).
  bool same_layout(const RouteTable& other) const noexcept { return layout_ == other.layout_; }
  const std::vector<ServicePtr>& services() const noexcept { return services_; }
  const Service& service(uint32_t index) const noexcept { return *services_[index]; }
  uint64_t generation() const noexcept { return generation_; }

  // Routes and services that no longer serve are left out.
  // {"generation":N,"routes":[{"name","host","path_prefix","priority","service","max_body_bytes",
  //  "source", and when set "match":{...}, "split":[{"service","weight"}]}],"services":[{"name","endpoints":[{"address","weight","source"}]}]}
  std::string to_json() const;
  // The same document as a value, for callers that add to it before serializing once.
  nlohmann::json to_json_value() const;
  // A route's split ([{service, weight, serving}]) and mirror ({service, percent, max_body}) as
  // /api/routes, /api/status and /api/explain show them.
  nlohmann::json split_json(const RouteSplit& split, int64_t now_ms) const;
  nlohmann::json mirror_json(const RouteMirror& mirror) const;

 private:
  std::vector<ServicePtr> services_;  // never null
  uint64_t generation_ = 0;
  // Implementation detail: the routes and indexes into them, see route_table.cc. Each list is
  // sorted by (priority desc, path prefix length desc, matchers first, index asc), so its first
  // match is its best. Transparent hashing lets match() look up a std::string_view without allocating.
  struct HostHash {
    using is_transparent = void;
    size_t operator()(std::string_view host) const noexcept {
      return std::hash<std::string_view>{}(host);
    }
  };
  using HostIndex = std::unordered_map<std::string, std::vector<uint32_t>, HostHash, std::equal_to<>>;
  struct Layout {
    std::vector<Route> routes;
    HostIndex exact;                  // host -> routes
    HostIndex wildcard;               // ".suffix" (from "*.suffix") -> routes
    std::vector<uint32_t> any_host;   // routes without a host
  };
  std::shared_ptr<const Layout> layout_;

  static void index_routes(Layout& layout);
  const Route* first_path_match(const std::vector<uint32_t>& candidates, std::string_view path,
                                int64_t& now_ms, const http::RequestHead* req) const noexcept;
  const Route* match(std::string_view host, std::string_view path, const http::RequestHead* req) const noexcept;
  // Whether the route's service (any of its split services) serves at now_ms.
  bool route_serves(const Route& route, int64_t now_ms) const noexcept;
};

// Fills addr/addr_len from a numeric "ip:port" or "[ip6]:port" key. False when not numeric.
bool resolve_endpoint_key(Endpoint& endpoint);

}  // namespace berth
