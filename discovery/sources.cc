#include "config/config.h"
#include "discovery/docker_source.h"
#include "discovery/source.h"

namespace berth::discovery {

std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg) {
  std::vector<std::unique_ptr<Source>> sources;
  if (cfg.docker.enabled) sources.push_back(std::make_unique<DockerSource>(cfg.docker));
  return sources;
}

}  // namespace berth::discovery
