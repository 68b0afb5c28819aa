// The Prometheus exporter behind `GET /metrics` on the admin listener. Runs on the control
// loop: at each scrape it sums every worker's MetricsRecordSink, reads the current snapshot
// (instances, their health), the control side's counters and /proc/self, builds prometheus-cpp
// metric families and serializes them as the text format. Workers never touch prometheus-cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "proxy/metrics/metrics_sink.h"
#include "proxy/model/route_table.h"

namespace berth {

// Per service name: requests answered and how many of them were 5xx, summed over routes and
// workers (for the status page).
struct ServiceTraffic {
  std::string service;
  uint64_t requests = 0;
  uint64_t responses_5xx = 0;
};

struct DiscoveryStatus {
  bool configured = false;  // no source: berth_discovery_connected is left out
  bool connected = false;   // every source is in sync with its origin
  std::map<std::string, uint64_t> events;  // by action, summed over sources
};

struct ConfigReloads {
  uint64_t ok = 0;
  uint64_t error = 0;
};

struct OpenConnections {
  uint64_t client = 0;
  uint64_t upstream = 0;
};

// What the exporter reads from the control side at scrape time (each called on the control loop).
struct MetricsInputs {
  std::function<std::shared_ptr<const RouteTable>()> routes;  // the current snapshot (may be null)
  std::function<uint64_t()> generation;
  std::function<OpenConnections()> open_connections;
  std::function<ConfigReloads()> config_reloads;
  std::function<DiscoveryStatus()> discovery;
  // Access-log records dropped because a sink stalled (the access log sets it).
  std::function<uint64_t()> access_log_dropped = [] { return uint64_t{0}; };
  // Connections closed on listeners with proxy_protocol: true because their PROXY header was
  // missing or malformed (berth_proxy_protocol_rejected_total); unset: not shown.
  std::function<uint64_t()> proxy_protocol_rejected;
  // Failed TLS handshakes by cause (berth_tls_handshake_errors_total{cause}); unset: not shown.
  std::function<std::vector<std::pair<std::string, uint64_t>>()> tls_handshake_errors;
  // The certificates served now, as (name, notAfter in Unix seconds), one per name
  // (berth_tls_certificate_not_after_seconds{name}); unset: not shown.
  std::function<std::vector<std::pair<std::string, int64_t>>()> tls_certificate_not_after;
};

// What live_names() keeps from one snapshot for the next: the table (held, so that neither its
// layout's nor its services' addresses are reused) and the names made of it.
struct LiveNamesCache {
  std::shared_ptr<const RouteTable> table;
  std::shared_ptr<const LiveNames> live;
};

class MetricsExporter {
 public:
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  MetricsExporter(unsigned workers, MetricsInputs inputs);

  // Worker w's record sink: it lives as long as the exporter.
  MetricsRecordSink* sink(unsigned worker) const { return sinks_[worker].get(); }
  // A new snapshot was published: workers drop the series of routes and instances it lacks.
  void on_snapshot(std::shared_ptr<const RouteTable> routes);

  // Every family, as of now.
  std::vector<prometheus::MetricFamily> collect() const;
  // The text format of collect().
  std::string render() const;
  std::vector<ServiceTraffic> service_traffic() const;

 private:
  RequestTotals totals() const;

  std::vector<std::unique_ptr<MetricsRecordSink>> sinks_;
  MetricsInputs in_;
  LiveNamesCache live_cache_;  // on_snapshot's, by the control thread
};

// Builds the families from summed counts and the snapshot; pure (for unit tests): `routes` may be
// null; `now_ms` is health_clock_ms() for instance health.
std::vector<prometheus::MetricFamily> request_families(const RequestTotals& totals, const RouteTable* routes,
                                                       int64_t now_ms);
LiveNames live_names(const RouteTable& routes);
// The same, taking from `cache` what the last snapshot had: the route names while the layout and
// the services' names stay, and the instance keys of each service object still at its position.
// The cache is left holding this snapshot. Cost: the services, a pointer comparison and a
// pointer copy each, plus the instances of the services that changed. `lost`, when given, says
// which names of the last snapshot may be missing from this one: all of them when the route names
// changed or there was no last snapshot, else the instances gone from the services that changed
// (none: every series stays live).
std::shared_ptr<const LiveNames> live_names(std::shared_ptr<const RouteTable> routes, LiveNamesCache& cache,
                                            LostNames* lost = nullptr);

// Process metrics from /proc/self (CPU seconds, resident memory, open fds, start time).
std::vector<prometheus::MetricFamily> process_families();

}  // namespace berth
