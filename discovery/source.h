// A source of routes discovered at run time (the Docker engine today; Swarm, etcd later).
// A Source runs on the control loop, never on a worker loop, and reports the complete set of
// routes and services it currently wants, each time that set changes. The Server merges it with
// the static routes from the config file and publishes one snapshot to the workers.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/model/route_table.h"

namespace berth::discovery {

using RouteList = std::shared_ptr<const std::vector<Route>>;
inline const RouteList& no_routes() {
  static const RouteList empty = std::make_shared<const std::vector<Route>>();
  return empty;
}

// What a registry sidecar publishes of one routed container so that a front door rebuilds its
// routes with the same label code, policy included (access control, redirects, matchers...):
// the facts the label parser reads, and nothing else of the container.
struct PublishedPolicy {
  std::map<std::string, std::string> labels;  // berth.*, traefik.*, the compose project and service
  std::map<std::string, std::string> env;     // VIRTUAL_HOST / _PATH / _PORT (nginx-proxy mode only)
  std::vector<uint16_t> exposed_ports;        // a route without a port label uses the only one
  // The files its labels name (an htpasswd), path -> text, as the sidecar read them: the front
  // door's disk does not have them.
  std::map<std::string, std::string> files;
  // The sidecar's label modes (docker.traefik, nginx_proxy, access_files_dir).
  bool traefik = false;
  bool nginx_proxy = false;
  std::string access_files_dir;
  bool operator==(const PublishedPolicy&) const = default;
};
using PublishedPolicies = std::map<std::string, std::shared_ptr<const PublishedPolicy>>;  // by Endpoint::source

// Everything one source wants routed. routes[i].service indexes `services` (this set's own
// services, not the merged table's). Endpoint.source / Route.source name where they came from,
// e.g. "container:3f2a…/name".
struct DiscoveredSet {
  // Never null. The same object as in the previous set while the layout stands (only
  // services changed), so that consumers can tell at the cost of a pointer comparison.
  RouteList routes = no_routes();
  std::vector<ServicePtr> services;  // never null; unchanged services keep their object
  // Things the source refused to route, shown in /api/routes: {"container", "reason"} pairs.
  std::vector<std::pair<std::string, std::string>> rejected;
  // The published policy of each container that has a service here, by Endpoint::source
  // (Docker discovery of a registry sidecar, BuilderOptions::publish_policies; null elsewhere).
  // What a registry sidecar publishes.
  std::shared_ptr<const PublishedPolicies> policies;
  // CLOCK_REALTIME ns at which the source received the event that led to this set (0: none,
  // e.g. a sync or a timer). Shown in /api/stats, for measuring propagation exactly.
  int64_t event_received_ns = 0;
};

// Counts a source keeps for metrics (plain values, read on the control loop).
struct SourceStats {
  bool connected = true;  // in sync with its origin (the Docker engine's event stream)
  std::vector<std::pair<std::string, uint64_t>> events;  // events handled, by action
};

class Source {
 public:
  // The set is immutable once handed over: the receiver keeps the pointer, no copy.
  using UpdateFn = std::function<void(std::shared_ptr<const DiscoveredSet>)>;
  virtual ~Source() = default;
  virtual std::string_view name() const = 0;
  // Starts watching on `loop`; on_update is called on that loop with every new complete set
  // (identical consecutive sets may be dropped by the source).
  virtual void start(uv_loop_t* loop, UpdateFn on_update) = 0;
  // Stops watching and closes every handle; `done` runs once all are closed.
  virtual void stop(std::function<void()> done) = 0;
  // Empty when the source is in sync; otherwise why not (e.g. "docker engine unreachable since
  // ...; serving the last good routes"). Shown by /readyz.
  virtual std::string stale_reason() const = 0;
  // Empty when all works; otherwise what does not, though the source's routes are good (a
  // registry sidecar that cannot publish to etcd, or whose watch of the other hosts is behind).
  // Shown in /api/routes and /api/status; such a source counts as not connected in stats().
  virtual std::string degraded_reason() const { return {}; }
  // Connection state and event counts (a source without events: connected, none).
  virtual SourceStats stats() const { return {}; }
  // The service names this source's services may not have, each with who has it ("the config
  // file", an earlier source): the Server leaves such a service out of the merged table. A
  // source that decides between claimants of one host (the registry) then counts none of their
  // keys, so that a service left out blocks nothing. Called on the control loop, before start()
  // and whenever the names change; the source publishes again if its set changes. Default:
  // ignored (the merge still leaves such a service out).
  virtual void reserve_service_names(std::map<std::string, std::string> /*name_to_owner*/) {}
};

}  // namespace berth::discovery

namespace berth::config { struct Config; }

namespace berth::discovery {
// The sources the configuration asks for (none when no discovery is configured).
std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg);
}  // namespace berth::discovery
