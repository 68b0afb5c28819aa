// Prometheus metrics without sockets: the per-worker record sinks, their sums, the families and
// labels built from them and the snapshot, series removal, and the text the exporter serves.
#include <catch2/catch.hpp>

#include <prometheus/text_serializer.h>

#include <set>
#include <string>
#include <vector>

#include "proxy/base/utf8.h"
#include "proxy/metrics/exporter.h"
#include "proxy/metrics/metrics_sink.h"
#include "proxy/model/route_table.h"
#include "tests/unit/config_helpers.h"

using namespace berth;

namespace {

constexpr int64_t kMs = 1'000'000;

Endpoint endpoint(const std::string& key, const std::string& source = "config") {
  Endpoint e;
  e.key = key;
  e.source = source;
  return e;
}

// r-web -> web (10.0.0.5:80 from container "web-1", 10.0.0.6:80), r-api -> api (10.0.0.7:80).
std::shared_ptr<const RouteTable> table(std::vector<Endpoint> web = {endpoint("10.0.0.5:80", "container:abc/web-1"),
                                                                      endpoint("10.0.0.6:80")}) {
  std::vector<Route> routes(2);
  routes[0].name = "r-web";
  routes[0].host = "web.test";
  routes[0].path_prefix = "/";
  routes[0].service = 0;
  routes[1].name = "r-api";
  routes[1].host = "api.test";
  routes[1].path_prefix = "/";
  routes[1].service = 1;
  std::vector<Service> services(2);
  services[0].name = "web";
  services[0].endpoints = std::move(web);
  services[1].name = "api";
  services[1].endpoints = {endpoint("10.0.0.7:80")};
  return RouteTable::build(std::move(routes), std::move(services), 1);
}

// A proxied GET: one attempt per given instance, the last one answered `status`.
ExchangeRecord proxied(std::string_view route, std::string_view service, std::vector<std::string_view> instances,
                       uint16_t status, int64_t duration_ms = 3, int64_t upstream_ms = 2) {
  ExchangeRecord r;
  r.method_class = MethodClass::kGet;
  r.route = route;
  r.service = service;
  r.start_ns = 1000 * kMs;
  r.end_ns = r.start_ns + duration_ms * kMs;
  r.status = status;
  r.end = ExchangeEnd::kResponded;
  r.bytes_in = 100;
  r.bytes_out = 250;
  for (size_t i = 0; i < instances.size(); ++i) {
    AttemptRecord& a = r.attempts[r.attempt_count++];
    a.instance = instances[i];
    a.start_ns = r.start_ns;
    if (i + 1 < instances.size()) {
      a.failure = "upstream-connect-failed";  // the earlier ones could not connect
      continue;
    }
    a.connected_ns = a.start_ns + kMs / 2;
    a.first_byte_ns = a.connected_ns + upstream_ms * kMs;
    a.status = status;
  }
  return r;
}

ExchangeRecord local(uint16_t status, const char* cause, std::string_view route = {}, std::string_view service = {}) {
  ExchangeRecord r;
  r.method_class = MethodClass::kOther;
  r.route = route;
  r.service = service;
  r.start_ns = 1000 * kMs;
  r.end_ns = r.start_ns + kMs / 10;
  r.status = status;
  r.cause = cause;
  r.end = ExchangeEnd::kLocalReply;
  return r;
}

const prometheus::MetricFamily* find_family(const std::vector<prometheus::MetricFamily>& fs, const std::string& name) {
  for (const auto& f : fs)
    if (f.name == name) return &f;
  return nullptr;
}

std::string label_of(const prometheus::ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label)
    if (l.name == name) return l.value;
  return "<absent>";
}

// The metric of a family with exactly these label values (name=value pairs), or null.
const prometheus::ClientMetric* find_metric(const std::vector<prometheus::MetricFamily>& fs, const std::string& family,
                                           const std::vector<std::pair<std::string, std::string>>& labels) {
  const prometheus::MetricFamily* f = find_family(fs, family);
  if (!f) return nullptr;
  for (const auto& m : f->metric) {
    if (m.label.size() != labels.size()) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && label_of(m, k) == v;
    if (all) return &m;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("metrics: method classes are the standard methods, anything else OTHER", "[metrics]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GET", "GET"},       {"HEAD", "HEAD"},   {"POST", "POST"},     {"PUT", "PUT"},
      {"DELETE", "DELETE"}, {"CONNECT", "CONNECT"}, {"OPTIONS", "OPTIONS"}, {"TRACE", "TRACE"},
      {"PATCH", "PATCH"},   {"get", "OTHER"},   {"PROPFIND", "OTHER"}, {"", "OTHER"},
      {"GETS", "OTHER"},    {"POS", "OTHER"},
  };
  for (const auto& [method, name] : cases) {
    INFO(method);
    CHECK(std::string(method_class_name(classify_method(method))) == name);
  }
}

TEST_CASE("metrics: records are counted per route, service, method and code; attempts per instance",
          "[metrics]") {
  MetricsRecordSink sink;
  for (int i = 0; i < 3; ++i) sink.on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.6:80", "10.0.0.5:80"}, 503));  // a retry
  ExchangeRecord post = proxied("r-api", "api", {"10.0.0.7:80"}, 201);
  post.method_class = MethodClass::kPost;
  sink.on_exchange(post);
  sink.on_exchange(local(404, "no-route"));
  sink.on_exchange(local(503, "circuit-open", "r-api", "api"));

  RequestTotals t;
  sink.add_to(t);
  using K = std::tuple<std::string, std::string, MethodClass, uint16_t>;
  CHECK(t.requests[K{"r-web", "web", MethodClass::kGet, 200}] == 3);
  CHECK(t.requests[K{"r-web", "web", MethodClass::kGet, 503}] == 1);
  CHECK(t.requests[K{"r-api", "api", MethodClass::kPost, 201}] == 1);
  CHECK(t.requests[K{"", "", MethodClass::kOther, 404}] == 1);
  CHECK(t.requests[K{"r-api", "api", MethodClass::kOther, 503}] == 1);
  CHECK(t.requests.size() == 5);

  using U = std::tuple<std::string, std::string, uint16_t>;
  CHECK(t.upstream_requests[U{"web", "10.0.0.5:80", 200}] == 3);
  CHECK(t.upstream_requests[U{"web", "10.0.0.5:80", 503}] == 1);
  CHECK(t.upstream_requests[U{"web", "10.0.0.6:80", 0}] == 1);
  CHECK(t.connect_errors[NamePair("web", "10.0.0.6:80")] == 1);
  CHECK(t.connect_errors[NamePair("web", "10.0.0.5:80")] == 0);
  CHECK(t.retries["web"] == 1);
  CHECK(t.circuit_open["api"] == 1);
  CHECK(t.local_replies["no-route"] == 1);
  CHECK(t.local_replies["circuit-open"] == 1);
  CHECK(t.bytes_in == 500);
  CHECK(t.bytes_out == 1250);

  // Durations: 4 web exchanges of 3 ms (the 0.005 bucket); upstream: only attempts with a response.
  const HistogramSum& d = t.durations[NamePair("r-web", "web")];
  CHECK(d.count == 4);
  CHECK(d.sum_ns == 12 * kMs);
  CHECK(d.buckets[2] == 4);  // le=0.005
  const HistogramSum& u = t.upstream_response[NamePair("web", "10.0.0.5:80")];
  CHECK(u.count == 4);
  CHECK(u.buckets[1] == 4);  // 2 ms: le=0.0025
  CHECK(t.upstream_response[NamePair("web", "10.0.0.6:80")].count == 0);
}

TEST_CASE("metrics: histogram buckets are upper-inclusive, with +Inf last", "[metrics]") {
  HistogramCells h;
  h.observe_ns(1 * kMs);       // exactly 0.001: le=0.001
  h.observe_ns(1 * kMs + 1);   // just above: le=0.0025
  h.observe_ns(60'000 * kMs);  // a minute: +Inf
  h.observe_ns(-5);            // clock oddity: counted as 0
  HistogramSum s;
  s.add(h);
  CHECK(s.buckets[0] == 2);
  CHECK(s.buckets[1] == 1);
  CHECK(s.buckets.back() == 1);
  CHECK(s.count == 4);
}

TEST_CASE("metrics: every worker's counts are summed", "[metrics]") {
  MetricsExporter exporter(3, MetricsInputs{});
  for (unsigned w = 0; w < 3; ++w)
    for (unsigned i = 0; i <= w; ++i) exporter.sink(w)->on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  exporter.sink(1)->on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 502));
  exporter.sink(2)->on_exchange(local(404, "no-route"));

  auto fs = exporter.collect();
  const auto* m = find_metric(fs, "berth_requests_total",
                              {{"route", "r-web"}, {"service", "web"}, {"method", "GET"}, {"code", "200"}});
  REQUIRE(m);
  CHECK(m->counter.value == 6);

  // Per service, for the status page: requests and 5xx, no entry for exchanges without a service.
  auto traffic = exporter.service_traffic();
  REQUIRE(traffic.size() == 1);
  CHECK(traffic[0].service == "web");
  CHECK(traffic[0].requests == 7);
  CHECK(traffic[0].responses_5xx == 1);
}

TEST_CASE("metrics: a label value that is not UTF-8 has its bad bytes replaced, so the scrape stays valid",
          "[metrics]") {
  MetricsExporter exporter(1, MetricsInputs{});
  exporter.sink(0)->on_exchange(proxied("bad\xff\xfename", "web", {"10.0.0.5:80"}, 200));
  auto fs = exporter.collect();
  CHECK(find_metric(fs, "berth_requests_total", {{"route", "bad\xEF\xBF\xBD\xEF\xBF\xBDname"}, {"service", "web"},
                                                 {"method", "GET"}, {"code", "200"}}));
  CHECK(utf8::valid("caf\xC3\xA9") == "caf\xC3\xA9");           // valid: as it is
  CHECK(utf8::valid("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/': two bad bytes
  CHECK(utf8::valid("a\xE2\x82") == "a\xEF\xBF\xBD\xEF\xBF\xBD");  // cut short
}

TEST_CASE("metrics: instance series carry the snapshot's health and container, and leave with the instance",
          "[metrics]") {
  // 10.0.0.6 has health state: ejected 3 times, the last one until 2000 ms.
  Endpoint ejected = endpoint("10.0.0.6:80");
  ejected.health = std::make_shared<EndpointHealth>();
  ejected.health->ejections.store(3);
  ejected.health->ejected_until_ms.store(2000);
  auto routes = table({endpoint("10.0.0.5:80", "container:abc/web-1"), ejected});

  MetricsRecordSink sink;
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.6:80", "10.0.0.5:80"}, 200));
  RequestTotals t;
  sink.add_to(t);
  auto fs = request_families(t, routes.get(), 1000);

  const auto* info = find_metric(fs, "berth_instance_info",
                                 {{"service", "web"}, {"instance", "10.0.0.5:80"}, {"container", "web-1"}});
  REQUIRE(info);
  CHECK(info->gauge.value == 1);
  CHECK(find_metric(fs, "berth_instance_info", {{"service", "web"}, {"instance", "10.0.0.6:80"}, {"container", ""}}));
  const auto* up5 = find_metric(fs, "berth_instance_up", {{"service", "web"}, {"instance", "10.0.0.5:80"}});
  const auto* up6 = find_metric(fs, "berth_instance_up", {{"service", "web"}, {"instance", "10.0.0.6:80"}});
  REQUIRE(up5);
  REQUIRE(up6);
  CHECK(up5->gauge.value == 1);
  CHECK(up6->gauge.value == 0);  // ejected until 2000 ms
  const auto* ej = find_metric(fs, "berth_instance_ejections_total", {{"service", "web"}, {"instance", "10.0.0.6:80"}});
  REQUIRE(ej);
  CHECK(ej->counter.value == 3);
  const auto* route_up = find_metric(fs, "berth_route_up_instances", {{"route", "r-web"}, {"service", "web"}});
  REQUIRE(route_up);
  CHECK(route_up->gauge.value == 1);
  // After the ejection ends, it is up again.
  auto later = request_families(t, routes.get(), 2001);
  CHECK(find_metric(later, "berth_instance_up", {{"service", "web"}, {"instance", "10.0.0.6:80"}})->gauge.value == 1);

  // 10.0.0.6 leaves: its series disappear from the next scrape at once...
  auto without = table({endpoint("10.0.0.5:80", "container:abc/web-1")});
  fs = request_families(t, without.get(), 1000);
  for (const char* name : {"berth_upstream_requests_total", "berth_upstream_connect_errors_total",
                           "berth_upstream_response_seconds", "berth_instance_info", "berth_instance_up",
                           "berth_instance_ejections_total"}) {
    INFO(name);
    const auto* f = find_family(fs, name);
    REQUIRE(f);
    CHECK(!f->metric.empty());
    for (const auto& m : f->metric) CHECK(label_of(m, "instance") != "10.0.0.6:80");
  }
  // A snapshot that lost nothing asks for no pass: the cells stay until one that lost a name.
  sink.set_live(std::make_shared<const LiveNames>(live_names(*without)), LostNames{});
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  RequestTotals kept;
  sink.add_to(kept);
  CHECK(kept.connect_errors.count(NamePair("web", "10.0.0.6:80")) == 1);
  // ...and the worker drops its cells at its next record.
  sink.set_live(std::make_shared<const LiveNames>(live_names(*without)));
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  RequestTotals after;
  sink.add_to(after);
  CHECK(after.connect_errors.count(NamePair("web", "10.0.0.6:80")) == 0);
  CHECK(after.connect_errors.count(NamePair("web", "10.0.0.5:80")) == 1);
  CHECK(after.upstream_requests.size() == 1);
}

TEST_CASE("metrics: another host's instance standing by is up, and counts for its route once this host's are out",
          "[metrics]") {
  // 10.0.0.5 runs on this host, 10.0.0.9 on another (registry): it stands by while .5 is routable.
  Endpoint remote = endpoint("10.0.0.9:80", "registry:h2/abc/0");
  remote.remote = true;
  remote.health = std::make_shared<EndpointHealth>();
  Endpoint local = endpoint("10.0.0.5:80", "container:abc/web-1");
  local.health = std::make_shared<EndpointHealth>();
  auto routes = table({local, remote});
  RequestTotals t;
  auto up = [&](const std::vector<prometheus::MetricFamily>& fs, const char* instance) {
    const auto* m = find_metric(fs, "berth_instance_up", {{"service", "web"}, {"instance", instance}});
    REQUIRE(m);
    return m->gauge.value;
  };
  auto route_up = [&](const std::vector<prometheus::MetricFamily>& fs) {
    const auto* m = find_metric(fs, "berth_route_up_instances", {{"route", "r-web"}, {"service", "web"}});
    REQUIRE(m);
    return m->gauge.value;
  };
  auto fs = request_families(t, routes.get(), 1000);
  CHECK(up(fs, "10.0.0.5:80") == 1);
  CHECK(up(fs, "10.0.0.9:80") == 1);  // healthy, and picked when .5 is not eligible: no alert
  CHECK(route_up(fs) == 1);           // new requests go to .5 alone

  // .5 is ejected: .9 takes the new requests.
  routes->services()[0]->endpoints[0].health->ejected_until_ms.store(5000);
  fs = request_families(t, routes.get(), 1000);
  CHECK(up(fs, "10.0.0.5:80") == 0);
  CHECK(up(fs, "10.0.0.9:80") == 1);
  CHECK(route_up(fs) == 1);
}

TEST_CASE("metrics: a redirect route has no berth_route_up_instances series; a route without instances has 0",
          "[metrics]") {
  // Berth answers r-redir itself (its stand-in service has no name and no instance): a series for
  // it would be 0 for ever and fire BerthRouteNoHealthyInstance.
  auto loaded = config::testing::load(config::testing::kRedirectBesideServices);
  REQUIRE(loaded.ok());
  auto routes = RouteTable::from_config(*loaded.config, 1);
  RequestTotals t;
  auto fs = request_families(t, routes.get(), 1000);
  const auto* family = find_family(fs, "berth_route_up_instances");
  REQUIRE(family);
  CHECK(family->metric.size() == 2);
  for (const auto& m : family->metric) {
    CHECK(label_of(m, "route") != "r-redir");
    CHECK(label_of(m, "service") != "");
  }
  const auto* a = find_metric(fs, "berth_route_up_instances", {{"route", "r-a"}, {"service", "s-a"}});
  REQUIRE(a);
  CHECK(a->gauge.value == 1);
  const auto* empty = find_metric(fs, "berth_route_up_instances", {{"route", "r-empty"}, {"service", "s-empty"}});
  REQUIRE(empty);
  CHECK(empty->gauge.value == 0);  // answers 503: the alert is meant for it
}

TEST_CASE("metrics: a snapshot that lost instances drops exactly those series, a lookup each",
          "[metrics]") {
  MetricsRecordSink sink;
  for (const char* instance : {"10.0.0.5:80", "10.0.0.6:80", "10.0.0.8:80"})
    sink.on_exchange(proxied("r-web", "web", {instance}, 200));
  sink.on_exchange(proxied("r-api", "api", {"10.0.0.7:80"}, 200));
  sink.on_exchange(proxied("r-old", "old", {"10.0.0.9:80"}, 200));
  auto instances_of = [&] {
    RequestTotals t;
    sink.add_to(t);
    std::set<NamePair> out;
    for (const auto& [k, v] : t.connect_errors) out.insert(k);
    return out;
  };
  auto live = std::make_shared<const LiveNames>(live_names(*table()));  // web: .5 and .6; api: .7

  // Listed: .6, still live (the list may name an instance another service of the name keeps),
  // and .8, gone. Only .8 goes; "old", not listed, stays until a pass over every series.
  LostNames lost;
  lost.instances = {{"web", "10.0.0.6:80"}, {"web", "10.0.0.8:80"}};
  sink.set_live(live, lost);
  sink.on_exchange(local(404, "no-route"));
  CHECK(instances_of() == std::set<NamePair>{{"web", "10.0.0.5:80"}, {"web", "10.0.0.6:80"},
                                            {"api", "10.0.0.7:80"}, {"old", "10.0.0.9:80"}});

  // Lists add up until the worker's next record; one longer than the series it has turns into a
  // pass over all of them (so the list stays bounded while the worker records nothing).
  LostNames many;
  for (int i = 0; i < 5; ++i) many.instances.emplace_back("old", "10.1.0." + std::to_string(i) + ":80");
  sink.set_live(live, many);
  sink.on_exchange(local(404, "no-route"));
  CHECK(instances_of() == std::set<NamePair>{{"web", "10.0.0.5:80"}, {"web", "10.0.0.6:80"}, {"api", "10.0.0.7:80"}});
}

TEST_CASE("metrics: request series of routes that left are dropped, requests without a route kept",
          "[metrics]") {
  MetricsRecordSink sink;
  sink.on_exchange(proxied("r-old", "old", {"10.0.0.9:80"}, 200));
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  sink.on_exchange(local(404, "no-route"));
  RequestTotals t;
  sink.add_to(t);
  auto routes = table();
  auto fs = request_families(t, routes.get(), 0);
  const auto* f = find_family(fs, "berth_requests_total");
  REQUIRE(f);
  REQUIRE(f->metric.size() == 2);
  CHECK(find_metric(fs, "berth_requests_total", {{"route", "r-web"}, {"service", "web"}, {"method", "GET"}, {"code", "200"}}));
  CHECK(find_metric(fs, "berth_requests_total", {{"route", ""}, {"service", ""}, {"method", "OTHER"}, {"code", "404"}}));

  sink.set_live(std::make_shared<const LiveNames>(live_names(*routes)));
  sink.on_exchange(local(404, "no-route"));
  RequestTotals after;
  sink.add_to(after);
  CHECK(after.requests.size() == 2);
  CHECK(after.durations.count(NamePair("r-old", "old")) == 0);
}

TEST_CASE("metrics: the text format has help, type and the exact names and labels", "[metrics]") {
  auto routes = table();
  MetricsInputs in;
  in.routes = [routes] { return routes; };
  in.generation = [] { return uint64_t{7}; };
  in.open_connections = [] { return OpenConnections{4, 2}; };
  in.config_reloads = [] { return ConfigReloads{2, 1}; };
  in.discovery = [] {
    DiscoveryStatus d;
    d.configured = true;
    d.connected = true;
    d.events = {{"start", 3}, {"die", 1}};
    return d;
  };
  MetricsExporter exporter(1, std::move(in));
  exporter.sink(0)->on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));
  const std::string text = exporter.render();
  INFO(text);
  for (const char* line : {
           "# TYPE berth_requests_total counter",
           "berth_requests_total{route=\"r-web\",service=\"web\",method=\"GET\",code=\"200\"} 1\n",
           "# TYPE berth_request_duration_seconds histogram",
           "berth_request_duration_seconds_bucket{route=\"r-web\",service=\"web\",le=\"0.005\"} 1\n",
           "berth_request_duration_seconds_bucket{route=\"r-web\",service=\"web\",le=\"+Inf\"} 1\n",
           "berth_request_duration_seconds_count{route=\"r-web\",service=\"web\"} 1\n",
           "berth_upstream_requests_total{service=\"web\",instance=\"10.0.0.5:80\",code=\"200\"} 1\n",
           "berth_upstream_response_seconds_count{service=\"web\",instance=\"10.0.0.5:80\"} 1\n",
           "berth_instance_info{service=\"web\",instance=\"10.0.0.5:80\",container=\"web-1\"} 1\n",
           "berth_instance_up{service=\"api\",instance=\"10.0.0.7:80\"} 1\n",
           "berth_open_connections{side=\"client\"} 4\n",
           "berth_open_connections{side=\"upstream\"} 2\n",
           "berth_bytes_total{direction=\"in\"} 100\n",
           "berth_bytes_total{direction=\"out\"} 250\n",
           "berth_routes 2\n",
           "berth_services 2\n",
           "berth_route_table_generation 7\n",
           "berth_config_reloads_total{result=\"ok\"} 2\n",
           "berth_config_reloads_total{result=\"error\"} 1\n",
           "berth_discovery_events_total{action=\"start\"} 3\n",
           "berth_discovery_connected 1\n",
           "berth_access_log_dropped_total 0\n",
           "# TYPE process_cpu_seconds_total counter",
           "# TYPE process_resident_memory_bytes gauge",
           "# TYPE process_open_fds gauge",
           "# TYPE process_start_time_seconds gauge",
       }) {
    INFO(line);
    CHECK(text.find(line) != std::string::npos);
  }
  // Every family has help text.
  for (const auto& f : exporter.collect()) {
    INFO(f.name);
    CHECK(!f.help.empty());
  }
}

TEST_CASE("metrics: the access-log drop hook is read at scrape time", "[metrics]") {
  MetricsInputs in;
  uint64_t dropped = 5;
  in.access_log_dropped = [&dropped] { return dropped; };
  MetricsExporter exporter(1, std::move(in));
  CHECK(exporter.render().find("berth_access_log_dropped_total 5\n") != std::string::npos);
  dropped = 9;
  CHECK(exporter.render().find("berth_access_log_dropped_total 9\n") != std::string::npos);
  // Without discovery, berth_discovery_connected is left out (nothing to be connected to).
  CHECK(exporter.render().find("berth_discovery_connected") == std::string::npos);
}

namespace {
// A proxied exchange as the data path records it: with the snapshot it ran on and the indices of
// its route and instances in it (the sink then counts by index).
ExchangeRecord proxied_in(const RouteTable& t, uint32_t route, std::vector<uint32_t> endpoints, uint16_t status) {
  const Route& r = t.routes()[route];
  const Service& s = t.service(r.service);
  std::vector<std::string_view> keys;
  for (uint32_t e : endpoints) keys.push_back(s.endpoints[e].key);
  ExchangeRecord rec = proxied(r.name, s.name, keys, status);
  rec.snapshot = &t;
  rec.snapshot_generation = t.generation();
  rec.route_index = route;
  rec.service_index = r.service;
  for (size_t i = 0; i < endpoints.size(); ++i) rec.attempts[i].endpoint_index = endpoints[i];
  return rec;
}
}  // namespace

TEST_CASE("metrics: records with snapshot indices count under the same names, across snapshots",
          "[metrics]") {
  MetricsRecordSink sink;
  auto t1 = table();
  sink.set_live(std::make_shared<const LiveNames>(live_names(*t1)));
  for (int i = 0; i < 3; ++i) sink.on_exchange(proxied_in(*t1, 0, {0}, 200));
  sink.on_exchange(proxied_in(*t1, 0, {1, 0}, 200));  // a retry: 10.0.0.6 failed, then 10.0.0.5
  sink.on_exchange(proxied_in(*t1, 1, {0}, 500));
  sink.on_exchange(proxied("r-web", "web", {"10.0.0.5:80"}, 200));  // by name: the same series

  // A later snapshot where web's instances are in the other order and one is new: indices now
  // mean other instances, and the counts must still land under the instances' own names.
  auto t2 = table({endpoint("10.0.0.9:80"), endpoint("10.0.0.5:80", "container:abc/web-1")});
  sink.set_live(std::make_shared<const LiveNames>(live_names(*t2)));
  sink.on_exchange(proxied_in(*t2, 0, {0}, 200));
  sink.on_exchange(proxied_in(*t2, 0, {1}, 200));
  sink.on_exchange(proxied_in(*t1, 0, {0}, 200));  // still in flight on the older snapshot

  RequestTotals t;
  sink.add_to(t);
  using K = std::tuple<std::string, std::string, MethodClass, uint16_t>;
  CHECK(t.requests[K{"r-web", "web", MethodClass::kGet, 200}] == 8);
  CHECK(t.requests[K{"r-api", "api", MethodClass::kGet, 500}] == 1);
  using U = std::tuple<std::string, std::string, uint16_t>;
  CHECK(t.upstream_requests[U{"web", "10.0.0.5:80", 200}] == 7);
  CHECK(t.upstream_requests[U{"web", "10.0.0.9:80", 200}] == 1);
  CHECK(t.upstream_requests[U{"api", "10.0.0.7:80", 500}] == 1);
  // 10.0.0.6 left with t2: its series were dropped, and no later record brought them back.
  CHECK(t.upstream_requests.count(U{"web", "10.0.0.6:80", 0}) == 0);
  CHECK(t.connect_errors.count(NamePair("web", "10.0.0.6:80")) == 0);
  CHECK(t.retries["web"] == 1);
  CHECK(t.durations[NamePair("r-web", "web")].count == 8);
}

TEST_CASE("metrics: mirror copies are counted per route, shadow service and result, while the mirror lasts",
          "[metrics][mirror]") {
  std::vector<Route> routes(1);
  routes[0].name = "r-web";
  routes[0].host = "web.test";
  routes[0].path_prefix = "/";
  routes[0].service = 0;
  routes[0].mirror = std::make_shared<const RouteMirror>(RouteMirror{1, 5000, 1024});
  std::vector<Service> services(2);
  services[0].name = "web";
  services[1].name = "web-next";
  auto mirrored = RouteTable::build(std::move(routes), std::move(services), 1);

  MetricsRecordSink a, b;  // two workers
  a.on_mirror("r-web", "web-next", MirrorResult::kSent);
  a.on_mirror("r-web", "web-next", MirrorResult::kSent);
  a.on_mirror("r-web", "web-next", MirrorResult::kSkipped);
  b.on_mirror("r-web", "web-next", MirrorResult::kDropped);
  b.on_mirror("r-old", "gone", MirrorResult::kSent);
  RequestTotals t;
  a.add_to(t);
  b.add_to(t);
  auto fs = request_families(t, mirrored.get(), 0);
  const std::string family = "berth_mirror_requests_total";
  auto value = [&](const std::string& result) {
    const auto* m = find_metric(fs, family, {{"route", "r-web"}, {"service", "web-next"}, {"result", result}});
    return m ? m->counter.value : -1.0;
  };
  CHECK(value("sent") == 2);
  CHECK(value("dropped") == 1);
  CHECK(value("skipped") == 1);
  CHECK_FALSE(find_metric(fs, family, {{"route", "r-old"}, {"service", "gone"}, {"result", "sent"}}));

  // A snapshot without the mirror: its series are dropped by the worker.
  b.set_live(std::make_shared<const LiveNames>(live_names(*table())));
  b.on_mirror("r-api", "api", MirrorResult::kSent);  // (prunes first)
  RequestTotals after;
  b.add_to(after);
  CHECK(after.mirrors.count(NamePair("r-web", "web-next")) == 0);
}

TEST_CASE("metrics: live names follow a changed service and share what did not change", "[metrics]") {
  LiveNamesCache cache;
  auto t1 = table();
  LostNames lost;
  auto first = live_names(t1, cache, &lost);
  CHECK(lost.names);  // no last snapshot to compare with
  CHECK(first->has_instance("web", "10.0.0.6:80"));
  CHECK(first->has_route("r-web", "web"));

  // web loses 10.0.0.6 and gains 10.0.0.9; the routes stay.
  auto web = std::make_shared<Service>(t1->service(0));
  web->endpoints = {endpoint("10.0.0.5:80", "container:abc/web-1"), endpoint("10.0.0.9:80")};
  auto t2 = RouteTable::with_services(*t1, {web, t1->services()[1]}, 2);
  auto second = live_names(t2, cache, &lost);
  CHECK_FALSE(lost.names);  // 10.0.0.6 left, and only it
  CHECK(lost.instances == std::vector<NamePair>{{"web", "10.0.0.6:80"}});
  CHECK(second->names == first->names);  // the same route list and names: shared
  CHECK(second->keys[1] == first->keys[1]);  // api unchanged: its keys shared
  CHECK_FALSE(second->has_instance("web", "10.0.0.6:80"));
  CHECK(second->has_instance("web", "10.0.0.9:80"));
  CHECK(second->has_instance("api", "10.0.0.7:80"));

  // Instances only added (and a service object replaced with the same instances): nothing
  // lost, so the workers need not look over their series.
  auto grown = std::make_shared<Service>(*web);
  grown->endpoints.push_back(endpoint("10.0.0.10:80"));
  auto api = std::make_shared<Service>(t2->service(1));
  auto t2b = RouteTable::with_services(*t2, {grown, api}, 3);
  auto grown_live = live_names(t2b, cache, &lost);
  CHECK_FALSE(lost.any());
  CHECK(grown_live->has_instance("web", "10.0.0.10:80"));
  CHECK(grown_live->has_instance("web", "10.0.0.9:80"));

  // The same list with a service renamed: the names are read again.
  auto renamed = std::make_shared<Service>(*web);
  renamed->name = "www";
  auto t3 = RouteTable::with_services(*t2b, {renamed, t2b->services()[1]}, 4);
  auto third = live_names(t3, cache, &lost);
  CHECK(lost.names);
  CHECK(lost.instances.empty());  // every series is looked at anyway
  CHECK(third->names != second->names);
  CHECK(third->has_route("r-web", "www"));
  CHECK_FALSE(third->has_route("r-web", "web"));
  CHECK(third->has_instance("www", "10.0.0.9:80"));
  CHECK_FALSE(third->has_instance("web", "10.0.0.9:80"));

  // The whole-table form gives the same answers.
  LiveNames whole = live_names(*t3);
  CHECK(whole.has_route("r-web", "www"));
  CHECK(whole.has_instance("www", "10.0.0.5:80"));
  CHECK_FALSE(whole.has_service("web"));
}

TEST_CASE("metrics: a service's instance keys find each of its instances and no other", "[metrics]") {
  for (size_t n : {0, 1, 2, 3, 7, 100, 1000}) {
    INFO(n << " instances");
    auto s = std::make_shared<Service>();
    for (size_t i = 0; i < n; ++i) {
      Endpoint e;
      e.key = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1:8080";
      s->endpoints.push_back(e);
    }
    InstanceKeys keys(s);
    for (size_t i = 0; i < n; ++i) CHECK(keys.contains(s->endpoints[i].key));
    for (size_t i = 0; i < 1000; ++i)
      CHECK_FALSE(keys.contains("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1:9090"));
    CHECK_FALSE(keys.contains(""));
  }
}
