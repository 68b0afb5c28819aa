// The front door's registry source: the instances every sidecar published under
// <prefix>/instances/, turned into routes and services through the same Source path Docker
// discovery uses (so load balancing, health, the status page and metrics work unchanged).
//
// Gapless: range the prefix (revision R) in pages of a few MiB, every page after the first
// read at R so that together they are the prefix at R, publish, then watch from R + 1. A compacted revision
// or any broken watch -> range again on the next member and reconcile (the range replaces every
// key; the service holding a contested host keeps it if it still has a key for it). While etcd is unreachable the last good table stays published and
// stale_reason() says so (/readyz). A watched member is checked every few seconds with a
// serializable-free, leader-requiring read: a hung or leaderless member is left.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "discovery/empty_route_grace.h"
#include "discovery/registry/etcd_client.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/registry/registry_table.h"
#include "discovery/source.h"
#include "discovery/uv_handle.h"

namespace berth::discovery::registry {

class RegistryWatch final : public Source {
 public:
  // page_bytes: about how much of the prefix one range reply carries (range_page_limit).
  RegistryWatch(const config::Registry& cfg, TablePolicy policy, size_t page_bytes = kRangePageBytes);
  ~RegistryWatch() override;

  std::string_view name() const override { return "registry"; }
  void start(uv_loop_t* loop, UpdateFn on_update) override;
  void stop(std::function<void()> done) override;
  std::string stale_reason() const override;
  SourceStats stats() const override;
  // Keys of these services are refused, claiming nothing.
  void reserve_service_names(std::map<std::string, std::string> name_to_owner) override;

 private:
  void sync();
  // Ranges the prefix from `from` (a key) on, at range_revision_ once the first page set it.
  void range_page(const std::string& from);
  void on_range(const EtcdReply& reply, const std::string& from);
  void watch();
  void on_watch_message(const nlohmann::json& result);
  void lost(const std::string& why);
  void check();
  // Publishes the table's set (when it changed) with the routes in their empty-route grace.
  void publish(int64_t received_ns);
  void arm_grace_timer();

  config::Registry cfg_;
  TablePolicy policy_;
  std::shared_ptr<TlsContext> tls_;
  std::string setup_error_;
  uv_loop_t* loop_ = nullptr;
  UpdateFn on_update_;
  std::unique_ptr<EtcdClient> client_;
  std::string root_;                       // <prefix>/instances/
  RegistryTable table_;                    // every key, decoded, and the set made of them
  int64_t revision_ = 0;                   // the store revision the table is at
  size_t page_bytes_;
  // The range being read: its pages so far, their revision, the largest key + value in them,
  // the key limit of the page in flight and how many pages were read.
  StoredKvs ranged_;
  int64_t range_revision_ = 0;
  size_t range_largest_ = 0;
  int64_t range_limit_ = 1;
  uint64_t range_pages_ = 0;
  EtcdClient::Id watch_id_ = 0;
  uint64_t generation_ = 0;                // bumps on every sync: late replies of older ones are ignored
  bool synced_ = false;
  bool stopped_ = false;
  std::string stale_ = "not yet read from etcd";
  std::string unreachable_since_;
  std::map<std::string, std::string> logged_rejections_;
  // A route whose last key left answers 503 for registry.empty_route_grace: live_ is the
  // table's latest set, published_ what went out (live_ plus the routes in their grace).
  EmptyRouteGrace grace_;
  std::shared_ptr<const DiscoveredSet> live_, published_;
  Timer retry_timer_, check_timer_, grace_timer_;
  // Watch messages are applied as they come, and published once per loop turn: a burst read in
  // one turn (the loop fell behind: each new route re-indexes the route table) costs one
  // snapshot, not one per message. received_ns of the earliest change not yet published.
  Timer publish_timer_;
  int64_t unpublished_since_ns_ = 0;
  void publish_soon(int64_t received_ns);
  std::chrono::milliseconds backoff_{100};
  std::map<std::string, uint64_t> event_counts_;
};

}  // namespace berth::discovery::registry
