// The pure builder: the cache of container facts -> the complete DiscoveredSet (routes,
// services with the routable instances, rejected containers). No sockets, no clock: the same
// cache always gives the same set. Table-driven tests in tests/unit/docker_builder_test.cc.
#pragma once

#include <map>
#include <optional>
#include <string>
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

DiscoveredSet build_discovered_set(const ContainerCache& cache, const BuilderOptions& options);

// The "ip:port" / "[ip6]:port" at which `port` of the container is reached, or nullopt with
// *reason saying why there is no deliberate choice.
std::optional<std::string> resolve_address(const ContainerFacts& c, const std::string& label_network,
                                           uint16_t port, const BuilderOptions& options,
                                           std::string* reason);

// Same routes, services, endpoints and rejections (what a publish would change).
bool same_set(const DiscoveredSet& a, const DiscoveredSet& b);

}  // namespace berth::discovery
