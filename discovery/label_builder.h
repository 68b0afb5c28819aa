// The pure builder: the cache of container facts -> the complete DiscoveredSet (routes,
// services with the routable instances, rejected containers). No sockets, no clock: the same
// cache always gives the same set. Table-driven tests in tests/unit/docker_builder_test.cc.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "discovery/container_facts.h"
#include "discovery/docker_labels.h"
#include "discovery/source.h"

namespace berth::discovery {

struct BuilderOptions {
  LabelOptions labels;
  std::string host_address = "127.0.0.1";  // for host-network containers (and published ports on 0.0.0.0)
  std::string network;                      // config docker.network
  bool prefer_ipv6 = false;
  bool use_published_ports = false;
  std::vector<std::string> own_networks;    // networks of Berth's own container, if it runs in one
};

using ContainerCache = std::map<std::string, ContainerFacts>;  // by full id

// What one container's labels and addresses say, independent of its run state: parsed once
// per inspect (ContainerFacts::revision) instead of once per event.
struct ParsedContainer {
  ContainerSpec spec;
  std::string problem;              // an address could not be chosen (then spec is not routed)
  std::vector<Endpoint> endpoints;  // per spec.routes entry: resolved address, weight, source
  std::vector<std::string> keys;    // host + '\n' + path of every route x host, in order
  std::vector<std::string> names;   // per spec.routes entry: the route's name
  std::string source;               // "container:<display>"
};

// Reuses ParsedContainers across builds for facts whose revision is unchanged (revision 0:
// never reused; a revision names one version of one container's facts). Entries of revisions
// no longer in the cache are dropped by a later build.
class BuilderMemo {
 public:
  // c.revision must not be 0.
  const ParsedContainer& parse(const ContainerFacts& c, const BuilderOptions& options);
  void clear() {
    entries_.clear();
    services_.clear();
  }
  void prune(const ContainerCache& cache);
  size_t size() const { return entries_.size(); }

  // The service with this name, policy and endpoints: the object the last build that had this
  // service handed out when it is the same (so the server and workers see an unchanged service
  // as the same pointer), else a new one.
  ServicePtr service(const std::string& name, const config::ServicePolicy& policy,
                     const std::vector<const Endpoint*>& endpoints);
  // Ends a build: services no build since the previous finish_build asked for are forgotten
  // (in one sweep, once they add up).
  void finish_build();

 private:
  std::unordered_map<uint64_t, ParsedContainer> entries_;  // by ContainerFacts::revision
  struct SharedService {
    ServicePtr service;
    uint64_t build = 0;  // the last build that asked for it
  };
  std::unordered_map<std::string, SharedService> services_;  // by name
  uint64_t builds_ = 0;
};


ParsedContainer parse_container(const ContainerFacts& c, const BuilderOptions& options);

// The whole set from the cache; with a memo, only containers whose facts changed are parsed.
DiscoveredSet build_discovered_set(const ContainerCache& cache, const BuilderOptions& options,
                                   BuilderMemo* memo = nullptr);

// The "ip:port" / "[ip6]:port" at which `port` of the container is reached, or nullopt with
// *reason saying why there is no deliberate choice.
std::optional<std::string> resolve_address(const ContainerFacts& c, const std::string& label_network,
                                           uint16_t port, const BuilderOptions& options,
                                           std::string* reason);

// Same address, weight and source: what a publish shows of an instance.
bool same_instance(const Endpoint& a, const Endpoint& b);

// Same routes, services, endpoints and rejections (what a publish would change).
bool same_set(const DiscoveredSet& a, const DiscoveredSet& b);

}  // namespace berth::discovery
