// Wiring of the registry (config registry:) into the Server's sources.
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "discovery/source.h"

namespace berth::discovery::registry {

// registry.role front: adds the registry watch. registry.role sidecar: replaces the Docker
// source with a Sidecar (what it discovers is published to etcd, and joined with the other
// hosts' instances). Nothing without registry:.
void add_registry_sources(const config::Config& cfg, std::vector<std::unique_ptr<Source>>& sources);

}  // namespace berth::discovery::registry
