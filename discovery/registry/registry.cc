#include "discovery/registry/registry.h"

#include "discovery/registry/registry_watch.h"
#include "discovery/registry/sidecar.h"
#include "proxy/base/log.h"

namespace berth::discovery::registry {

void add_registry_sources(const config::Config& cfg, std::vector<std::unique_ptr<Source>>& sources) {
  if (!cfg.registry.enabled) return;
  TablePolicy policy;
  policy.allowed_hosts = cfg.docker.allowed_hosts;
  policy.max_priority = cfg.docker.max_priority;
  policy.allow_any_host = cfg.docker.allow_any_host;
  policy.forward_auth_addresses = cfg.docker.forward_auth_addresses;
  policy.service_policy = cfg.registry.service_policy;
  if (cfg.registry.role == config::Registry::Role::kFront) {
    sources.push_back(std::make_unique<RegistryWatch>(cfg.registry, std::move(policy)));
    return;
  }
  for (auto& source : sources) {
    if (source->name() != "docker") continue;
    source = std::make_unique<Sidecar>(cfg.registry, std::move(policy), std::move(source));
    return;
  }
  log::warn("registry_sidecar_without_docker")
      .kv("reason", "registry.role is sidecar but docker discovery is off: nothing to publish");
}

}  // namespace berth::discovery::registry
