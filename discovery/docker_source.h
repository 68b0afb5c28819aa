// The Docker discovery source: watches one engine's /events on the control loop and keeps a
// cache of the containers that matter; the pure builder turns the cache into the route set.
//
// Sync (on start and after every reconnect): GET /version (API check) -> subscribe to /events
// with `since` and wait for its head -> list + inspect -> apply the events buffered meanwhile
// -> publish. Each later event updates the cache at once (kill/die/pause/health) and inspects
// only the container it names. A container is inspected at `create`, so its `start` is
// applied from the event alone; labels are parsed once per inspect, not once per event. While the engine is unreachable the last good set stays
// published and stale_reason() says why; reconnects back off exponentially up to
// docker.reconnect_max.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/config.h"
#include "discovery/docker_client.h"
#include "discovery/docker_event.h"
#include "discovery/empty_route_grace.h"
#include "discovery/label_builder.h"
#include "discovery/line_splitter.h"
#include "discovery/source.h"
#include "discovery/uv_handle.h"

namespace berth::discovery {

class DockerSource final : public Source {
 public:
  // publish_policies: BuilderOptions::publish_policies (a registry sidecar's Docker discovery).
  explicit DockerSource(const config::Docker& cfg, bool publish_policies = false);
  ~DockerSource() override;

  std::string_view name() const override { return "docker"; }
  void start(uv_loop_t* loop, UpdateFn on_update) override;
  void stop(std::function<void()> done) override;
  std::string stale_reason() const override;
  SourceStats stats() const override;

 private:
  // kListing: the list is asked for; kInspecting: it answered, and the inspects it wants are under
  // way. Only then can the sync end: an inspect sent before a relist may answer first.
  enum class Phase { kIdle, kConnecting, kSubscribing, kListing, kInspecting, kSynced, kWaiting, kStopped };

  void connect();
  void on_version(const HttpResult& r);
  void find_own_networks();
  void subscribe();
  void on_stream_data(std::string_view bytes);
  void list();
  void on_list(const HttpResult& r);
  void finish_sync();
  void lost(const std::string& why);

  bool matters(const std::map<std::string, std::string>& labels) const;
  void handle_event(const DockerEvent& e);
  bool duplicate(const DockerEvent& e);
  void inspect(const std::string& id);
  void pump_inspects();
  void on_inspect(const std::string& id, const HttpResult& r);
  void store(ContainerFacts facts);
  void keep_dormant(ContainerFacts facts);
  bool revive(const std::string& id, int64_t started_ns);

  void rebuild();
  void log_rejections(const DiscoveredSet& set);
  void arm_grace_timer();
  void ping();
  // Each kWatchInterval: lists the containers again after a stall, or when the last list is old.
  void watch();
  std::string path(const std::string& rest) const { return api_prefix_ + rest; }

  config::Docker cfg_;
  BuilderOptions options_;
  std::optional<DockerEndpoint> endpoint_;
  std::shared_ptr<TlsContext> tls_;
  std::string setup_error_;
  uv_loop_t* loop_ = nullptr;
  UpdateFn on_update_;
  std::unique_ptr<DockerClient> client_;
  Phase phase_ = Phase::kIdle;
  std::string api_prefix_ = "/v1.41";
  std::string own_id_guess_;
  bool own_networks_known_ = false;

  // An event over 16 MiB (a container's labels are copied into its events) is skipped, not the
  // stream's end: reconnecting from `since` would replay it, for ever.
  LineSplitter splitter_{16u << 20, /*skip_long=*/true};
  std::vector<DockerEvent> buffered_;       // events that arrived during a sync
  int64_t last_event_ns_ = 0;               // resume point for `since`
  int64_t first_since_ns_ = 0;
  std::deque<std::string> recent_keys_;     // replay de-duplication
  std::unordered_set<std::string> recent_set_;

  ContainerCache cache_;                    // running containers that matter
  // Facts of containers that matter but are not running (inspected at `create`, or stopped),
  // so that their `start` is applied at once, without waiting for an inspect (host network:
  // the address does not depend on the run). Bounded; kept when the stream is lost (a resync
  // lists stopped containers too and forgets only the ones removed meanwhile).
  // Their routes stay in the layout (their services without them), so a stop and a start
  // change services only.
  ContainerCache dormant_;
  uint64_t revision_ = 0;                   // ContainerFacts::revision source
  BuilderMemo memo_;                        // parsed labels per container revision
  std::deque<std::string> inspect_queue_;
  std::set<std::string> queued_;
  // An inspect in flight, and what happened to its container since it was asked.
  struct Flight {
    bool stale = false;      // an event other than `start` arrived: the answer may predate it, ask again
    int64_t started_ns = 0;  // only a `start` arrived (its timeNano): an answer from before it gets it applied
  };
  std::map<std::string, Flight> in_flight_;
  // Receipt time of the first event whose effect waits for the container's inspect (a `start`
  // that could not be applied from known facts, a restart...), for the publication's timing.
  std::map<std::string, int64_t> waiting_cause_ns_;
  int64_t event_received_ns_ = 0;           // receipt of the event being handled
  std::set<std::string> sync_waiting_;      // inspects the current sync waits for
  struct Kill {
    int64_t time_nano;
    int signal;
  };
  std::map<std::string, Kill> pending_kills_;  // kills seen while the container's inspect was in flight

  Timer retry_timer_, grace_timer_, ping_timer_, watch_timer_;
  uint64_t synced_at_ms_ = 0;   // uv_now at the last sync's end (a relist every kRelistInterval)
  uint64_t last_watch_ms_ = 0;  // uv_now at the last watch tick (a late one: the process stood still)
  // How late the watch tick was when the process stood still during a relist (-1: it did not):
  // the relist's list may predate events the engine dropped meanwhile, so it lists again.
  int64_t stalled_in_sync_ms_ = -1;
  std::chrono::milliseconds backoff_{200};
  EmptyRouteGrace grace_;
  bool dirty_ = false;  // an event since the last rebuild may have changed the set
  int64_t cause_received_ns_ = 0;  // receipt of the first event that dirtied the set since the last rebuild
  std::shared_ptr<const DiscoveredSet> published_;
  std::map<std::string, std::string> logged_rejections_;
  std::string stale_;
  std::string unreachable_since_;
  std::map<std::string, uint64_t> event_counts_;  // handled events by action (a fixed set, "other")
};

}  // namespace berth::discovery
