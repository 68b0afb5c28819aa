// The control side of Berth: owns the configuration, the workers and the admin listener, and
// runs the control loop (signals, reloads; later the Docker watcher). It builds each new
// Runtime snapshot and hands it to every worker.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <uv.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "discovery/source.h"
#include "proxy/acme/acme_manager.h"
#include "proxy/accesslog/access_log.h"
#include "proxy/control/admin.h"
#include "proxy/control/event_journal.h"
#include "proxy/control/status.h"
#include "proxy/control/tls_certificates.h"
#include "proxy/control/service_notify.h"
#include "proxy/control/upstream_tls.h"
#include "proxy/health/health_registry.h"
#include "proxy/health/health_checker.h"
#include "proxy/datapath/runtime.h"
#include "proxy/datapath/worker.h"
#include "proxy/net/listen_socket.h"
#include "proxy/metrics/exporter.h"
#include "proxy/record/log_record_sink.h"
#include "proxy/record/record_fanout.h"

namespace berth {

class Server {
 public:
  Server(std::string config_path, config::Config initial);
  ~Server();
  // Runs until SIGTERM/SIGINT has drained every worker. Returns the process exit code.
  int run();
  // Lets the listeners join sockets another process already listens with (--share-listeners:
  // a new Berth taking over from an old one, which is then sent SIGTERM). Before run().
  void share_listeners(bool share) { share_listeners_ = share; }
  // Access-log records dropped (full buffers, undeliverable syslog messages); 0 without an
  // access log. Any thread (for berth_access_log_dropped_total).
  uint64_t access_log_dropped() const;

 private:
  bool open_listeners(std::vector<std::vector<ListenSocket>>& per_worker);
  void reload();
  void reopen_logs();  // SIGUSR1
  void begin_shutdown(const char* signal_name);
  void on_worker_stopped();
  void publish(std::shared_ptr<const Runtime> rt);
  // Static routes from the config file first (they win on conflicts), then each source's set.
  std::shared_ptr<const Runtime> build_runtime();
  void on_discovered(size_t source_index, std::shared_ptr<const discovery::DiscoveredSet> set);
  // Tells each source from `first` on the service names the config file and the sources before
  // it have (Source::reserve_service_names).
  void reserve_service_names(size_t first);
  std::vector<std::string> source_names() const;  // each source's name(), in order
  // Gives each worker its record sink: the fan-out of every record consumer configured.
  void attach_record_sinks();
  // Registers the admin listener's paths.
  void register_admin_paths(AdminServer& admin);
  std::string routes_json() const;
  // Each discovery source: name, in_sync, stale_reason, degraded_reason (/api/routes, /api/status).
  nlohmann::json discovery_json() const;
  std::string stats_json() const;
  std::string not_ready_reason() const;
  size_t first_probes_waiting() const;
  // The Prometheus exporter (null when the admin listener is off): its record sinks, the
  // control-side values it reads at scrape time.
  void make_metrics();
  // Compares the published state (instances, health, routes answering 503) with the last look
  // and journals the changes: after each publish and every second (health changes by itself).
  void observe_changes();
  static int64_t wall_clock_ms();

  static void on_signal(uv_signal_t* s, int signum);

  std::string config_path_;
  config::Config config_;
  std::shared_ptr<const Runtime> runtime_;
  bool share_listeners_ = false;
  config::SocketAddress admin_bound_;  // the admin listener's address and actual port
  // What the config file changes that waits for a restart (as of the last reload that applied).
  std::vector<std::string> restart_needed_;
  uint64_t generation_ = 1;
  uint64_t config_generation_ = 1;  // generation_ at the last config (re)load
  int64_t generation_event_received_ns_ = 0;  // discovery event behind generation_ (0: none)
  unsigned worker_count_ = 1;
  uv_loop_t loop_;
  uv_signal_t sighup_, sigterm_, sigint_;
  uv_timer_t housekeeping_;  // every 250 ms on the control loop: heap trims the workers asked for
  uv_signal_t sigusr1_;  // reopens the access log file (logrotate)
  // SIGHUP asks for a reload on the next loop turn: those that come during a reload, or
  // together, make one more reload, not one each (queue_reload).
  uv_timer_t reload_timer_;
  bool reload_queued_ = false;
  void queue_reload();
  uv_async_t worker_stopped_async_;
  std::atomic<unsigned> workers_stopped_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  // Record consumers outlive the workers (~Server joins them first). record_fanouts_[w] is
  // worker w's sink when more than one consumer is configured.
  std::unique_ptr<RecordSink> exchange_log_;
  std::unique_ptr<accesslog::AccessLog> access_log_;  // null: access_log is off
  std::vector<std::unique_ptr<RecordFanout>> record_fanouts_;
  std::unique_ptr<MetricsExporter> metrics_;
  ConfigReloads config_reloads_;  // SIGHUP reloads by result (berth_config_reloads_total)
  std::vector<std::unique_ptr<discovery::Source>> sources_;
  std::vector<std::shared_ptr<const discovery::DiscoveredSet>> discovered_;  // null: nothing yet
  HealthRegistry health_;
  // The config file's part of every snapshot, built when the config is (re)loaded.
  std::shared_ptr<const Runtime> static_runtime_;
  // What the last snapshot was built from: per position of its services, the object each was
  // copied from (a config service or a source's service), and each source's routes object. A
  // service handed over again is published as the same object; only new ones are copied and
  // attached to health state. When no routes object changed, the snapshot shares the previous
  // one's routes and index.
  std::vector<ServicePtr> published_inputs_;
  std::vector<discovery::RouteList> built_layouts_;
  std::vector<std::vector<uint32_t>> built_index_;  // MergedServices::index of that build
  // The services that entered and left the published set with the last build, for the checker.
  std::vector<ServicePtr> last_added_;
  std::vector<const Service*> last_removed_;
  std::pair<uint64_t, uint64_t> update_epochs_{0, 0};  // health epoch around the last build's update
  bool last_same_layout_ = false;  // the last build kept the routes, replacing only services
  uint64_t route_index_builds_ = 0;  // snapshots whose routes were indexed anew (/api/stats)
  std::unique_ptr<HealthChecker> checker_;  // active probes, on loop_
  bool shutting_down_ = false;
  bool ready_ = false;
  // Once every checked instance of the first table had its first probe answered (/readyz).
  mutable bool first_probes_answered_ = false;
  // The status page and /api/events, /api/explain (proxy/control/status.h).
  EventJournal journal_;
  ObservedState observed_;
  uint64_t observed_generation_ = 0, observed_epoch_ = 0;  // what observed_ was taken from
  // status_.traffic: per-service request and 5xx totals for the page's rates. Unset here (the
  // page shows "—"); the metrics side sets it from its per-service counters.
  StatusBuilder status_;
  uv_timer_t observe_timer_;
  notify::Notifier notifier_;  // systemd readiness ($NOTIFY_SOCKET); off without it
  // TLS listeners' certificates (loaded with the config, watched on disk once a second).
  TlsCertificates tls_;
  UpstreamTlsContexts upstream_tls_;  // services' TLS client contexts (services.NAME.tls, berth.upstream.tls)
  uv_timer_t tls_watch_;
  bool tls_watching_ = false;
  void start_tls_watch();
  void watch_tls_files();
  // ACME (null unless `acme:` is configured): its thread signals new certificates through
  // acme_async_; the control loop then rebuilds the TLS contexts and publishes.
  std::unique_ptr<acme::AcmeManager> acme_;
  uv_async_t acme_async_;
  void start_acme();
  void update_acme_wanted();
  // Routes that ask for a certificate (label berth.tls.acme) while no acme: section is
  // configured, as "source route" keys: warned about once each, listed in /api/routes.
  std::set<std::string> acme_unconfigured_;
  void on_acme_certificates();
  // Discovered routes dropped because the config file routes their host + path: (source,
  // reason) pairs, listed under `rejected` in /api/routes and logged once each.
  std::vector<std::pair<std::string, std::string>> overridden_;
};

}  // namespace berth
