#include "discovery/registry/sidecar.h"

#include "discovery/registry/registry_publish.h"
#include "discovery/registry/registry_watch.h"

namespace berth::discovery::registry {

Sidecar::Sidecar(const config::Registry& cfg, TablePolicy policy, std::unique_ptr<Source> docker)
    : publisher_(std::make_unique<RegistryPublisher>(cfg, std::move(docker))) {
  policy.local_host_id = cfg.host_id;
  watch_ = std::make_unique<RegistryWatch>(cfg, std::move(policy));
}

Sidecar::~Sidecar() = default;

std::string_view Sidecar::name() const { return publisher_->name(); }

void Sidecar::start(uv_loop_t* loop, UpdateFn on_update) {
  on_update_ = std::move(on_update);
  publisher_->start(loop, [this](std::shared_ptr<const DiscoveredSet> set) {
    local_ = std::move(set);
    emit();
  });
  watch_->start(loop, [this](std::shared_ptr<const DiscoveredSet> set) {
    remote_ = std::move(set);
    emit();
  });
}

void Sidecar::stop(std::function<void()> done) {
  watch_->stop(nullptr);
  publisher_->stop(std::move(done));
}

std::string Sidecar::stale_reason() const { return publisher_->stale_reason(); }

std::string Sidecar::degraded_reason() const {
  std::string out;
  if (std::string p = publisher_->publish_problem(); !p.empty()) out = "publishing to etcd: " + p;
  if (std::string w = watch_->stale_reason(); !w.empty()) out += (out.empty() ? "" : "; ") + ("watching etcd: " + w);
  return out;
}

SourceStats Sidecar::stats() const {
  SourceStats s = publisher_->stats();
  SourceStats remote = watch_->stats();
  s.connected = s.connected && remote.connected && publisher_->publish_problem().empty();
  s.events.insert(s.events.end(), remote.events.begin(), remote.events.end());
  return s;
}

void Sidecar::reserve_service_names(std::map<std::string, std::string> name_to_owner) {
  watch_->reserve_service_names(std::move(name_to_owner));
}

void Sidecar::emit() {
  if (on_update_) on_update_(merge_.merge(local_, remote_));
}

}  // namespace berth::discovery::registry
