#include "config/config.h"
#include "discovery/docker_source.h"
#include "discovery/source.h"

namespace berth::discovery {

std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg) {
  std::vector<std::unique_ptr<Source>> sources;
  // A registry sidecar publishes each container's route policy (discovery/registry/sidecar.h).
  const bool sidecar = cfg.registry.enabled && cfg.registry.role == config::Registry::Role::kSidecar;
  if (cfg.docker.enabled) sources.push_back(std::make_unique<DockerSource>(cfg.docker, sidecar));
  return sources;
}

}  // namespace berth::discovery
