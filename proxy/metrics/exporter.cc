#include "proxy/metrics/exporter.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>

#include <prometheus/text_serializer.h>

#include "proxy/base/clock.h"
#include "proxy/base/utf8.h"
#include "proxy/health/outlier.h"

namespace berth {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

// Label values are UTF-8 in the exposition format: one route name with other bytes (a config
// file may hold any) would make Prometheus refuse the whole scrape.
ClientMetric::Label label(const char* name, std::string value) { return {name, utf8::valid(std::move(value))}; }

void add_value(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void add_histogram(MetricFamily& f, std::vector<ClientMetric::Label> labels, const HistogramSum& h) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBucketsSeconds.size(); ++i) {
    cumulative += h.buckets[i];
    m.histogram.bucket.push_back({cumulative, kLatencyBucketsSeconds[i]});
  }
  // The serializer adds the +Inf bucket with sample_count.
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = static_cast<double>(h.sum_ns) / 1e9;
  f.metric.push_back(std::move(m));
}

MetricFamily single(const char* name, const char* help, MetricType type, double value) {
  MetricFamily f = family(name, help, type);
  add_value(f, {}, value);
  return f;
}

bool read_small_file(const char* path, std::string& out) {
  FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[4096];
  size_t n;
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return true;
}

}  // namespace

namespace {

std::shared_ptr<const LiveNames::RouteNames> route_names(const RouteTable& routes) {
  auto names = std::make_shared<LiveNames::RouteNames>();
  for (const Route& r : routes.routes()) {
    if (r.service < routes.services().size()) names->routes.emplace(r.name, routes.service(r.service).name);
    if (r.split)  // each split service is a (route, service) series of its own
      for (const RouteSplit::Target& t : r.split->targets) names->routes.emplace(r.name, routes.service(t.service).name);
    if (r.mirror) names->mirrors.emplace(r.name, routes.service(r.mirror->service).name);
  }
  const auto& services = routes.services();
  for (size_t i = 0; i < services.size(); ++i) names->services[services[i]->name].push_back(static_cast<uint32_t>(i));
  return names;
}

std::shared_ptr<const InstanceKeys> instance_keys(const ServicePtr& s) { return std::make_shared<InstanceKeys>(s); }

}  // namespace

LiveNames live_names(const RouteTable& routes) {
  LiveNames live;
  live.names = route_names(routes);
  live.keys.reserve(routes.services().size());
  for (const ServicePtr& s : routes.services()) live.keys.push_back(instance_keys(s));
  return live;
}

std::shared_ptr<const LiveNames> live_names(std::shared_ptr<const RouteTable> routes, LiveNamesCache& cache,
                                            LostNames* lost) {
  auto live = std::make_shared<LiveNames>();
  const std::vector<ServicePtr>& services = routes->services();
  const LiveNames* last = cache.live.get();
  const std::vector<ServicePtr>* old = cache.table && last ? &cache.table->services() : nullptr;
  // Positions line up with the last snapshot's: its names and keys by position apply.
  const bool aligned = old && old->size() == services.size() && last->keys.size() == services.size();
  // The route names stand while the route list does and every position keeps its service's name.
  bool same_names = aligned && routes->same_layout(*cache.table);
  for (size_t i = 0; same_names && i < services.size(); ++i)
    same_names = services[i] == (*old)[i] || services[i]->name == (*old)[i]->name;
  live->names = same_names ? last->names : route_names(*routes);
  // With the same names, only a changed service can have lost an instance.
  LostNames gone;
  gone.names = !same_names;
  if (aligned) {
    live->keys = last->keys;
    for (size_t i = 0; i < services.size(); ++i) {
      if (services[i] == (*old)[i]) continue;
      live->keys[i] = instance_keys(services[i]);
      if (gone.names) continue;
      for (const Endpoint& e : (*old)[i]->endpoints)
        if (!live->keys[i]->contains(e.key)) gone.instances.emplace_back(services[i]->name, e.key);
    }
  } else {
    live->keys.reserve(services.size());
    for (const ServicePtr& s : services) live->keys.push_back(instance_keys(s));
  }
  if (lost) *lost = std::move(gone);
  cache.live = live;
  cache.table = std::move(routes);
  return live;
}

std::vector<MetricFamily> request_families(const RequestTotals& t, const RouteTable* routes, int64_t now_ms) {
  std::vector<MetricFamily> out;
  // Only what the current snapshot has (routes, services and instances that left are gone), and
  // requests that matched no route.
  std::optional<LiveNames> live;
  if (routes) live = live_names(*routes);
  auto route_live = [&](const std::string& route, const std::string& service) {
    return route.empty() || !live || live->has_route(route, service);
  };
  auto instance_live = [&](const std::string& service, const std::string& instance) {
    return !live || live->has_instance(service, instance);
  };
  auto service_live = [&](const std::string& service) { return !live || live->has_service(service); };

  MetricFamily requests = family("berth_requests_total",
                                 "Requests finished, local replies included (service=\"\" when none was chosen; "
                                 "code=\"0\" when the client left before a response was sent).",
                                 MetricType::Counter);
  for (const auto& [k, v] : t.requests) {
    const auto& [route, service, method, code] = k;
    if (!route_live(route, service)) continue;
    add_value(requests,
              {label("route", route), label("service", service), label("method", method_class_name(method)),
               label("code", std::to_string(code))},
              static_cast<double>(v));
  }
  out.push_back(std::move(requests));

  MetricFamily duration = family("berth_request_duration_seconds",
                                 "Time from the request's first byte to the response's last byte sent to the client.",
                                 MetricType::Histogram);
  for (const auto& [k, h] : t.durations)
    if (route_live(k.first, k.second))
      add_histogram(duration, {label("route", k.first), label("service", k.second)}, h);
  out.push_back(std::move(duration));

  MetricFamily upstream = family("berth_upstream_requests_total",
                                 "Attempts sent to an instance, one per try (code=\"0\" when the instance sent no "
                                 "response head).",
                                 MetricType::Counter);
  for (const auto& [k, v] : t.upstream_requests) {
    const auto& [service, instance, code] = k;
    if (!instance_live(service, instance)) continue;
    add_value(upstream, {label("service", service), label("instance", instance), label("code", std::to_string(code))},
              static_cast<double>(v));
  }
  out.push_back(std::move(upstream));

  MetricFamily connect_errors = family("berth_upstream_connect_errors_total",
                                       "Attempts whose connection to the instance failed or timed out.",
                                       MetricType::Counter);
  for (const auto& [k, v] : t.connect_errors)
    if (instance_live(k.first, k.second))
      add_value(connect_errors, {label("service", k.first), label("instance", k.second)}, static_cast<double>(v));
  out.push_back(std::move(connect_errors));

  MetricFamily response = family("berth_upstream_response_seconds",
                                 "Time from the request being sent to an instance (its connection usable) to the "
                                 "response head received.",
                                 MetricType::Histogram);
  for (const auto& [k, h] : t.upstream_response)
    if (instance_live(k.first, k.second))
      add_histogram(response, {label("service", k.first), label("instance", k.second)}, h);
  out.push_back(std::move(response));

  MetricFamily info = family("berth_instance_info", "An instance of a service (always 1); container is its "
                             "container name (\"\" for instances from the config file).",
                             MetricType::Gauge);
  MetricFamily up = family("berth_instance_up",
                           "1 when the instance gets new requests (Docker health, active probes, outlier "
                           "ejection and panic mode together), else 0.",
                           MetricType::Gauge);
  MetricFamily ejections = family("berth_instance_ejections_total",
                                  "Times the instance was ejected by outlier detection.", MetricType::Counter);
  // What selection may pick now, per service, as the workers see it (compute_routable: probes,
  // ejections, panic mode, locality). Another host's instance standing by is up: healthy, and
  // picked when this host's are not eligible; it does not count as getting new requests.
  std::vector<std::vector<uint8_t>> selectable;
  if (routes) {
    selectable.resize(routes->services().size());
    for (size_t i = 0; i < routes->services().size(); ++i) compute_routable(*routes->services()[i], now_ms, selectable[i]);
  }
  if (routes) {
    // A service name may appear twice (config and discovery): one series per label set.
    std::map<NamePair, std::tuple<std::string, bool, uint64_t>> instances;
    for (size_t i = 0; i < routes->services().size(); ++i)
      for (size_t j = 0; j < routes->services()[i]->endpoints.size(); ++j) {
        const ServicePtr& s = routes->services()[i];
        const Endpoint& e = s->endpoints[j];
        const bool routable = selectable[i][j] != 0;
        const uint64_t ejected = e.health ? e.health->ejections.load(std::memory_order_relaxed) : 0;
        auto [it, fresh] = instances.try_emplace(NamePair(s->name, e.key),
                                                 std::string(instance_container(e)), routable, ejected);
        if (!fresh) {
          std::get<1>(it->second) = std::get<1>(it->second) || routable;
          std::get<2>(it->second) = std::max(std::get<2>(it->second), ejected);
        }
      }
    for (const auto& [k, v] : instances) {
      const auto& [container, routable, ejected] = v;
      add_value(info, {label("service", k.first), label("instance", k.second), label("container", container)}, 1);
      add_value(up, {label("service", k.first), label("instance", k.second)}, routable ? 1 : 0);
      add_value(ejections, {label("service", k.first), label("instance", k.second)}, static_cast<double>(ejected));
    }
  }
  out.push_back(std::move(info));
  out.push_back(std::move(up));
  out.push_back(std::move(ejections));

  MetricFamily route_up = family("berth_route_up_instances",
                                 "Instances of the route's service that get new requests now (0: the route answers "
                                 "503, or 404 once its service's grace period is over). Redirect routes are not listed.",
                                 MetricType::Gauge);
  if (routes) {
    std::vector<uint64_t> up_count(routes->services().size(), 0);
    for (size_t i = 0; i < routes->services().size(); ++i)
      up_count[i] = static_cast<uint64_t>(std::count(selectable[i].begin(), selectable[i].end(), kRoutable));
    std::map<NamePair, uint64_t> by_route;  // a config route with several hosts is several Routes
    for (const Route& r : routes->routes()) {
      if (r.service >= up_count.size()) continue;
      // A redirect route is answered by Berth itself: no instance, and none wanted. A series
      // that is 0 for ever would only fire BerthRouteNoHealthyInstance.
      if (!r.split && is_redirect_stand_in(routes->service(r.service))) continue;
      if (r.split) {
        for (const RouteSplit::Target& t : r.split->targets) {
          uint64_t& n = by_route[NamePair(r.name, routes->service(t.service).name)];
          n = std::max(n, up_count[t.service]);
        }
        continue;
      }
      uint64_t& n = by_route[NamePair(r.name, routes->service(r.service).name)];
      n = std::max(n, up_count[r.service]);
    }
    for (const auto& [k, n] : by_route)
      add_value(route_up, {label("route", k.first), label("service", k.second)}, static_cast<double>(n));
  }
  out.push_back(std::move(route_up));

  // Every service of the snapshot has both series from the start, at 0: rate() and increase()
  // then see its first retry or refusal, and an alert on them has a series to watch.
  std::map<std::string, uint64_t> retry_counts, circuit_counts;
  if (routes)
    for (const ServicePtr& s : routes->services())
      if (!is_redirect_stand_in(*s)) {
        retry_counts.try_emplace(s->name, 0);
        circuit_counts.try_emplace(s->name, 0);
      }
  for (const auto& [service, v] : t.retries)
    if (service_live(service)) retry_counts[service] = v;
  for (const auto& [service, v] : t.circuit_open)
    if (service_live(service)) circuit_counts[service] = v;
  MetricFamily retries = family("berth_retries_total", "Retries: attempts after a request's first.", MetricType::Counter);
  for (const auto& [service, v] : retry_counts) add_value(retries, {label("service", service)}, static_cast<double>(v));
  out.push_back(std::move(retries));
  MetricFamily circuit = family("berth_circuit_open_total",
                                "Requests refused with 503 because a circuit-breaker limit was reached.",
                                MetricType::Counter);
  for (const auto& [service, v] : circuit_counts) add_value(circuit, {label("service", service)}, static_cast<double>(v));
  out.push_back(std::move(circuit));

  MetricFamily mirrors = family("berth_mirror_requests_total",
                                "Request copies for a route's mirror (shadow) service, by result: sent (answered, "
                                "the answer discarded), dropped (no instance, too many in flight, failed or timed "
                                "out), skipped (body over mirror.max_body or unfinished).",
                                MetricType::Counter);
  for (const auto& [k, counts] : t.mirrors) {
    if (live && !live->has_mirror(k.first, k.second)) continue;
    for (size_t i = 0; i < counts.size(); ++i)
      add_value(mirrors, {label("route", k.first), label("service", k.second), label("result", kMirrorResultNames[i])},
                static_cast<double>(counts[i]));
  }
  out.push_back(std::move(mirrors));

  MetricFamily replies = family("berth_local_replies_total",
                                "Responses Berth made itself, by cause (the x-berth-error header value).",
                                MetricType::Counter);
  for (const auto& [cause, v] : t.local_replies) add_value(replies, {label("cause", cause)}, static_cast<double>(v));
  out.push_back(std::move(replies));

  MetricFamily bytes = family("berth_bytes_total",
                              "Bytes read from clients (in) and queued to clients (out), heads and bodies.",
                              MetricType::Counter);
  add_value(bytes, {label("direction", "in")}, static_cast<double>(t.bytes_in));
  add_value(bytes, {label("direction", "out")}, static_cast<double>(t.bytes_out));
  out.push_back(std::move(bytes));
  return out;
}

std::vector<MetricFamily> process_families() {
  std::vector<MetricFamily> out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::string stat;
  if (read_small_file("/proc/self/stat", stat)) {
    // Fields after the command name (which may hold spaces, inside parentheses).
    const size_t close = stat.rfind(')');
    std::vector<std::string_view> fields;
    if (close != std::string::npos) {
      std::string_view rest = std::string_view(stat).substr(close + 1);
      size_t i = 0;
      while (i < rest.size()) {
        while (i < rest.size() && rest[i] == ' ') ++i;
        size_t j = i;
        while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
        if (j > i) fields.push_back(rest.substr(i, j - i));
        i = j + 1;
      }
    }
    // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22, rss 24.
    auto field = [&](size_t n) { return n - 3 < fields.size() ? std::strtod(std::string(fields[n - 3]).c_str(), nullptr) : 0.0; };
    if (fields.size() >= 22) {
      out.push_back(single("process_cpu_seconds_total", "User and system CPU time spent, seconds.",
                           MetricType::Counter, (field(14) + field(15)) / ticks));
      out.push_back(single("process_resident_memory_bytes", "Resident memory size, bytes.", MetricType::Gauge,
                           field(24) * page));
      std::string proc_stat;
      if (read_small_file("/proc/stat", proc_stat)) {
        const size_t at = proc_stat.find("\nbtime ");
        if (at != std::string::npos) {
          const double boot = std::strtod(proc_stat.c_str() + at + 7, nullptr);
          out.push_back(single("process_start_time_seconds", "Start time of the process since the Unix epoch, seconds.",
                               MetricType::Gauge, boot + field(22) / ticks));
        }
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    uint64_t n = 0;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    out.push_back(single("process_open_fds", "Open file descriptors.", MetricType::Gauge,
                         static_cast<double>(n > 0 ? n - 1 : 0)));  // not the directory's own
  }
  return out;
}

MetricsExporter::MetricsExporter(unsigned workers, MetricsInputs inputs) : in_(std::move(inputs)) {
  for (unsigned i = 0; i < workers; ++i) sinks_.push_back(std::make_unique<MetricsRecordSink>());
  if (!in_.access_log_dropped) in_.access_log_dropped = [] { return uint64_t{0}; };
}

void MetricsExporter::on_snapshot(std::shared_ptr<const RouteTable> routes) {
  LostNames lost;
  std::shared_ptr<const LiveNames> live = live_names(std::move(routes), live_cache_, &lost);
  for (auto& s : sinks_) s->set_live(live, lost);
}

RequestTotals MetricsExporter::totals() const {
  RequestTotals t;
  for (const auto& s : sinks_) s->add_to(t);
  return t;
}

std::vector<MetricFamily> MetricsExporter::collect() const {
  std::shared_ptr<const RouteTable> routes = in_.routes ? in_.routes() : nullptr;
  std::vector<MetricFamily> out = request_families(totals(), routes.get(), health_clock_ms());

  const OpenConnections open = in_.open_connections ? in_.open_connections() : OpenConnections{};
  MetricFamily conns = family("berth_open_connections", "Connections open now: from clients, and to instances.",
                              MetricType::Gauge);
  add_value(conns, {label("side", "client")}, static_cast<double>(open.client));
  add_value(conns, {label("side", "upstream")}, static_cast<double>(open.upstream));
  out.push_back(std::move(conns));

  if (routes) {
    out.push_back(single("berth_routes", "Routes in the current snapshot.", MetricType::Gauge,
                         static_cast<double>(routes->routes().size())));
    std::set<std::string_view> names;
    for (const ServicePtr& s : routes->services())
      if (!is_redirect_stand_in(*s)) names.insert(s->name);
    out.push_back(single("berth_services", "Services in the current snapshot.", MetricType::Gauge,
                         static_cast<double>(names.size())));
  }
  out.push_back(single("berth_route_table_generation", "Generation of the route snapshot the workers are given.",
                       MetricType::Gauge, static_cast<double>(in_.generation ? in_.generation() : 0)));
  const ConfigReloads reloads = in_.config_reloads ? in_.config_reloads() : ConfigReloads{};
  MetricFamily rl = family("berth_config_reloads_total", "Configuration reloads (SIGHUP), by result.",
                           MetricType::Counter);
  add_value(rl, {label("result", "ok")}, static_cast<double>(reloads.ok));
  add_value(rl, {label("result", "error")}, static_cast<double>(reloads.error));
  out.push_back(std::move(rl));

  const DiscoveryStatus disc = in_.discovery ? in_.discovery() : DiscoveryStatus{};
  MetricFamily events = family("berth_discovery_events_total", "Discovery events by action: Docker events that concerned routed containers, and the registry's "
                               "etcd puts, deletes and re-reads.",
                               MetricType::Counter);
  for (const auto& [action, n] : disc.events) add_value(events, {label("action", action)}, static_cast<double>(n));
  out.push_back(std::move(events));
  if (disc.configured)
    out.push_back(single("berth_discovery_connected", "1 while every discovery source (Docker, the etcd registry) is in sync, else 0.",
                         MetricType::Gauge, disc.connected ? 1 : 0));
  out.push_back(single("berth_access_log_dropped_total",
                       "Access-log records not delivered: an output could not keep up, a syslog receiver was unreachable, or a write failed.", MetricType::Counter,
                       static_cast<double>(in_.access_log_dropped())));
  if (in_.proxy_protocol_rejected)
    out.push_back(single("berth_proxy_protocol_rejected_total",
                         "Connections closed because their PROXY protocol header was missing or malformed.",
                         MetricType::Counter, static_cast<double>(in_.proxy_protocol_rejected())));

  if (in_.tls_handshake_errors) {
    MetricFamily tls = family("berth_tls_handshake_errors_total", "TLS handshakes that failed, by cause.",
                              MetricType::Counter);
    for (const auto& [cause, n] : in_.tls_handshake_errors()) add_value(tls, {label("cause", cause)}, static_cast<double>(n));
    out.push_back(std::move(tls));
  }
  if (in_.tls_certificate_not_after) {
    MetricFamily expiry = family("berth_tls_certificate_not_after_seconds",
                                 "When each certificate name served stops being valid (Unix seconds).", MetricType::Gauge);
    for (const auto& [name, t] : in_.tls_certificate_not_after())
      add_value(expiry, {label("name", name)}, static_cast<double>(t));
    out.push_back(std::move(expiry));
  }

  std::vector<MetricFamily> process = process_families();
  out.insert(out.end(), std::make_move_iterator(process.begin()), std::make_move_iterator(process.end()));
  return out;
}

std::string MetricsExporter::render() const {
  return prometheus::TextSerializer().Serialize(collect());
}

std::vector<ServiceTraffic> MetricsExporter::service_traffic() const {
  const RequestTotals t = totals();
  std::map<std::string, ServiceTraffic> by_service;
  for (const auto& [k, v] : t.requests) {
    const auto& [route, service, method, code] = k;
    if (service.empty()) continue;
    ServiceTraffic& s = by_service[service];
    s.service = service;
    s.requests += v;
    if (code >= 500 && code <= 599) s.responses_5xx += v;
  }
  std::vector<ServiceTraffic> out;
  out.reserve(by_service.size());
  for (auto& [name, s] : by_service) out.push_back(std::move(s));
  return out;
}

}  // namespace berth
