// The pure builder: the cache of container facts -> the complete DiscoveredSet (routes,
// services with the routable instances, rejected containers). No sockets, no clock: the same
// cache always gives the same set. Table-driven tests in tests/unit/docker_builder_test.cc.
#pragma once

#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "discovery/container_facts.h"
#include "discovery/docker_labels.h"
#include "discovery/source.h"
#include "proxy/filter/filter.h"

namespace berth::discovery {

struct BuilderOptions {
  LabelOptions labels;
  std::string host_address = "127.0.0.1";  // for host-network containers (and published ports on 0.0.0.0)
  std::string network;                      // config docker.network
  bool prefer_ipv6 = false;
  bool use_published_ports = false;
  std::vector<std::string> own_networks;    // networks of Berth's own container, if it runs in one
  std::string own_container_id;             // Berth's own container (full id): never routed, whatever its labels
  std::chrono::milliseconds empty_route_grace{0};  // a service whose last instance left serves 503 this long
  // Operator policy (config docker.allowed_hosts, max_priority, allow_any_host). The defaults
  // here allow everything, for the builder's own tests; the config's defaults are strict.
  std::vector<std::string> allowed_hosts;  // empty: any host
  int32_t max_priority = std::numeric_limits<int32_t>::max();
  bool allow_any_host = true;
  // The addresses a berth.access.forward_auth label may name (config
  // docker.forward_auth_addresses; an empty list: none). Unset: any.
  std::optional<std::vector<std::string>> forward_auth_addresses;
  // Reads a file a berth.access.* label names (already checked to lie under
  // labels.access_files_dir): its text, or nullopt with *problem set. Null: read it from disk,
  // refusing one whose real path (symbolic links resolved) leaves that directory.
  std::function<std::optional<std::string>(const std::string& path, std::string* problem)> read_access_file;
  // Keep what a registry sidecar publishes of each routed container (ParsedContainer::published,
  // DiscoveredSet::policies). Off elsewhere: nobody would read it.
  bool publish_policies = false;
};

// The default BuilderOptions::read_access_file: `path` read from disk when its real path lies
// under the real path of `dir`.
std::optional<std::string> read_file_under(const std::string& dir, const std::string& path, std::string* problem);

// Why the operator policy refuses this route (empty: it does not).
std::string policy_problem(const RouteSpec& route, const BuilderOptions& options);

using ContainerCache = std::map<std::string, ContainerFacts>;  // by full id

// What one container's labels and addresses say, independent of its run state: parsed once
// per inspect (ContainerFacts::revision) instead of once per event.
struct ParsedContainer {
  ContainerSpec spec;
  std::string problem;              // an address could not be chosen (then spec is not routed)
  std::vector<Endpoint> endpoints;  // per spec.routes entry: resolved address, weight, source
  std::vector<std::string> keys;    // host + '\n' + path (+ '\n' + matchers key) of every route x host, in order
  std::vector<std::string> names;   // per spec.routes entry: the route's name
  std::string source;               // "container:<display>"
  // The berth.access.* filters, shared by every route the container declares (null: none).
  // Built once per parse, so a rate limit's buckets last while the container's labels do.
  std::shared_ptr<const FilterChain> filters;
  // The text of each file its access labels named (the htpasswd of berth.access.basic_auth), by
  // path, as read for `filters`: two containers naming one file agree only if they read the same.
  std::map<std::string, std::string> access_files;
  // Its access labels' lists that are sets (methods, allow, deny) in one canonical text: equal
  // for two containers whose lists let the same through, in whatever order they are written.
  std::string access_sets;
  // Per spec.routes entry: its matchers (RouteSpec::match), shared by its hosts (null: none).
  std::vector<std::shared_ptr<const config::RouteMatch>> matches;
  // What a registry sidecar publishes of it (routed containers only; null otherwise).
  std::shared_ptr<const PublishedPolicy> published;
};

// Reuses ParsedContainers across builds for facts whose revision is unchanged (revision 0:
// never reused; a revision names one version of one container's facts), hands an unchanged
// service out as the same object, and keeps the layout of the last full build so that a build
// after run-state changes only recomputes the services of the containers it was told about.
class BuilderMemo {
 public:
  // c.revision must not be 0.
  const ParsedContainer& parse(const ContainerFacts& c, const BuilderOptions& options);
  // Forgets everything (e.g. the options changed): the next build is a full one.
  void clear() {
    entries_.clear();
    services_.clear();
    touch_all();
  }
  size_t size() const { return entries_.size(); }

  // The facts of container `id` changed since the last build: it appeared, left, got a new
  // revision, or its run state changed. A build that follows only touches, and whose layout
  // stands (no touched container appears, leaves, changes revision, is rejected or in a
  // conflict), recomputes only the services the touched containers declare.
  void touch(const std::string& id) {
    if (!all_touched_) touched_.insert(id);
  }
  // Anything may have changed: the next build is a full one.
  void touch_all() {
    all_touched_ = true;
    touched_.clear();
  }
  // Whether the last build reused the layout (for tests and the benchmark's curiosity).
  bool last_build_partial() const { return last_partial_; }
  // When the earliest claim that kept a newcomer out lapses (its service has had no running
  // instance for the grace period), in health_clock_ms() time: the source rebuilds then, with
  // touch_all(), so the newcomer gets the route. nullopt: no claim is keeping anyone out.
  std::optional<int64_t> next_claim_expiry() const { return claim_expiry_; }

 private:
  friend DiscoveredSet build_discovered_set(const std::vector<const ContainerCache*>& caches,
                                            const BuilderOptions& options, BuilderMemo* memo, int64_t now_ms);
  friend struct BuildRun;

  // The service with this name, policy and endpoints: the object the last build that had this
  // service handed out when it is the same (so the server and workers see an unchanged service
  // as the same pointer), else a new one. A service left without endpoints serves its routes
  // (503) until now_ms + grace when it had some before, else not at all.
  // held_back: its running instances not routed now (HeldBackInstance), part of its identity.
  ServicePtr service(const std::string& name, const config::ServicePolicy& policy,
                     const std::vector<const Endpoint*>& endpoints, std::vector<HeldBackInstance> held_back,
                     int64_t now_ms, std::chrono::milliseconds grace);
  // Ends a full build: services it did not ask for are forgotten (in one sweep, once they add
  // up), and so are parses of revisions no longer known.
  void finish_build(size_t containers);

  std::unordered_map<uint64_t, ParsedContainer> entries_;  // by ContainerFacts::revision
  struct SharedService {
    ServicePtr service;
    uint64_t build = 0;  // the last build that asked for it
  };
  std::unordered_map<std::string, SharedService> services_;  // by name
  uint64_t builds_ = 0;

  // The last full build's layout.
  struct Member {
    std::string id;   // container
    uint32_t route;   // index into its parse's spec.routes
  };
  struct Known {
    uint64_t revision = 0;
    bool pinned = false;              // rejected, unreachable or in a conflict: any change is a full build
    bool accepted = false;            // routed (not rejected) in that build
    std::vector<uint32_t> services;   // indexes of the services it declares
  };
  std::unordered_map<std::string, Known> known_;      // every container of the last full build, by id
  std::vector<std::vector<Member>> members_;          // per service, in declaration order
  std::vector<std::string> service_names_;            // per service
  DiscoveredSet last_;                                // the last build's result
  // Who served each host + path (host\npath) in the last full build: the incumbent keeps it
  // against newcomers while it has a running instance declaring it, and for the grace period
  // after its last one stopped (held_until_ms; INT64_MAX while one runs).
  struct Claim {
    std::string service;
    int64_t held_until_ms = std::numeric_limits<int64_t>::max();
  };
  std::unordered_map<std::string, Claim> claims_;
  std::optional<int64_t> claim_expiry_;
  std::unordered_set<std::string> touched_;
  bool all_touched_ = true;
  bool last_partial_ = false;
};

ParsedContainer parse_container(const ContainerFacts& c, const BuilderOptions& options);

// parse_container without the addresses (endpoints stays empty, problem too): the routes a
// container's labels declare, with their policy and filters, names, matchers and keys.
ParsedContainer parse_container_routes(const ContainerFacts& c, const BuilderOptions& options);

// A registry front door's parse of what a sidecar published for container `id` named `name`:
// parse_container_routes of those facts under the front door's operator policy (allowed
// hosts, max priority, any host), the files its labels name read from the published ones.
ParsedContainer parse_published(const PublishedPolicy& published, const std::string& id, const std::string& name,
                                const BuilderOptions& operator_options);

// The Route for host `h` of spec route `r` of a parse, as Docker discovery routes it: its
// host, path, priority and policy (filters, matchers, redirects, encodings, ACME). The caller
// sets service and mirror, which index its own set's services.
Route route_of(const ParsedContainer& parsed, size_t r, size_t h);

// Where route `ra` of `a` and route `rb` of `b`, two declarations of one host + path (+
// matchers) by one service, disagree beyond their port and priority: every group of labels that
// differs ("berth.access.*, berth.mirror.* labels"; for a Traefik-labelled container the
// middlewares too), or "" when they agree. Lists that are sets (methods, allow, deny) agree in
// any order. Such containers are not merged: the route takes one policy, and which one must not
// depend on their names.
std::string route_labels_differ(const ParsedContainer& a, size_t ra, const ParsedContainer& b, size_t rb);

// The copies a route's labels ask for, its shadow service found by name among the services being
// built (name -> index); null when mirroring is off or no service has that name (yet).
std::shared_ptr<const RouteMirror> resolve_mirror(const config::RouteMirror& mirror,
                                                  const std::unordered_map<std::string_view, uint32_t>& service_index);

// The whole set from the containers known, running or not: every container that is not
// rejected puts its routes in the layout; a service's instances are its routable containers
// (a service without any keeps its routes, see Service::serve_empty_until_ms). Conflicts
// (one host + path declared for two services) are decided for running containers first, then
// by container name; only running containers are listed as rejected. `now_ms`
// (health_clock_ms()) dates the grace of services whose last instance left (with a memo).
// Each container id is in at most one of the caches.
DiscoveredSet build_discovered_set(const std::vector<const ContainerCache*>& caches, const BuilderOptions& options,
                                   BuilderMemo* memo = nullptr, int64_t now_ms = 0);
inline DiscoveredSet build_discovered_set(const ContainerCache& cache, const BuilderOptions& options,
                                          BuilderMemo* memo = nullptr, int64_t now_ms = 0) {
  return build_discovered_set(std::vector<const ContainerCache*>{&cache}, options, memo, now_ms);
}

// The "ip:port" / "[ip6]:port" at which `port` of the container is reached, or nullopt with
// *reason saying why there is no deliberate choice.
std::optional<std::string> resolve_address(const ContainerFacts& c, const std::string& label_network,
                                           uint16_t port, const BuilderOptions& options,
                                           std::string* reason);

// Same address, weight and source: what a publish shows of an instance.
bool same_instance(const Endpoint& a, const Endpoint& b);

// The same routes, field by field (or the same list object).
bool same_routes(const RouteList& a, const RouteList& b);

// Same routes, services, endpoints and rejections (what a publish would change). A service's
// serve_empty_until_ms is not compared: it changes only with its endpoints.
bool same_set(const DiscoveredSet& a, const DiscoveredSet& b);

}  // namespace berth::discovery
