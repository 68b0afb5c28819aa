// registry.role sidecar as one Source: the host's Docker discovery, published to etcd
// (RegistryPublisher), joined with what the other hosts publish (a RegistryWatch that leaves
// this host's keys out and marks the rest remote) by LocalityMerge: the sidecar routes its
// host's apps to every host's instances, its own first (east-west).
//
// Readiness follows the host's own discovery: with etcd unreachable the sidecar keeps routing,
// locally and to the other hosts' instances it last knew.
#pragma once

#include <memory>

#include "config/config.h"
#include "discovery/registry/locality.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/source.h"

namespace berth::discovery::registry {

class RegistryPublisher;
class RegistryWatch;

class Sidecar final : public Source {
 public:
  Sidecar(const config::Registry& cfg, TablePolicy policy, std::unique_ptr<Source> docker);
  ~Sidecar() override;

  std::string_view name() const override;
  void start(uv_loop_t* loop, UpdateFn on_update) override;
  void stop(std::function<void()> done) override;
  // Readiness is the host's Docker discovery's alone: the sidecar routes its host's instances
  // whatever etcd does. Publishing and the watch of the other hosts are degraded_reason().
  std::string stale_reason() const override;
  std::string degraded_reason() const override;
  SourceStats stats() const override;
  // The other hosts' keys of these services are refused (this host's Docker discovery shares
  // its service names with them on purpose).
  void reserve_service_names(std::map<std::string, std::string> name_to_owner) override;

 private:
  void emit();

  std::unique_ptr<RegistryPublisher> publisher_;
  std::unique_ptr<RegistryWatch> watch_;
  UpdateFn on_update_;
  std::shared_ptr<const DiscoveredSet> local_, remote_;
  LocalityMerge merge_;
};

}  // namespace berth::discovery::registry
