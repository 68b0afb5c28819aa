// Prometheus metrics through the real binary: GET /metrics on the admin listener after known
// traffic (counters, a local reply's cause, upstream attempts and a retry), `promtool check
// metrics` on the output, an instance removed by a reload losing its series, and a real
// Prometheus server scraping Berth every second. promtool and prometheus come from the Debian
// package prometheus; the tests fail (never skip) when they are missing.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <csignal>
#include <map>
#include <thread>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kPrometheus = "/usr/bin/prometheus";

void require_tool(const char* path) {
  INFO(path << " is missing: install the Debian package prometheus (scripts/install-deps.sh --docker)");
  REQUIRE(::access(path, X_OK) == 0);
}

std::string scrape(uint16_t admin_port) {
  Response r = http_get(admin_port, "/metrics", "127.0.0.1");
  INFO(r.error);
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").value_or("") == "text/plain; version=0.0.4; charset=utf-8");
  return r.body;
}

// Samples of the text format: "name{labels}" (exactly as written) -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& s, const std::string& series) {
  auto it = s.find(series);
  return it == s.end() ? -1 : it->second;
}

// Waits (up to 3 s) until the scraped series has the value: a record is finalised right after
// its response's last byte is queued, so a scrape can run just before.
bool series_reaches(uint16_t admin_port, const std::string& series, double expected, double* last) {
  return wait_until([&] {
    *last = value(samples(scrape(admin_port)), series);
    return *last == expected;
  }, 3s, 50ms);
}

#define CHECK_SERIES(port, series, expected)                     \
  do {                                                           \
    double last_ = -2;                                           \
    INFO(series);                                                \
    bool ok_ = series_reaches((port), (series), (expected), &last_); \
    INFO("last value: " << last_);                               \
    CHECK(ok_);                                                  \
  } while (0)

}  // namespace

TEST_CASE("metrics: counters follow the requests sent, and promtool check metrics passes", "[metrics]") {
  require_tool(kPromtool);
  Origin origin("M");
  REQUIRE(origin.ok());
  const uint16_t dead1 = unused_port(), dead2 = unused_port();
  Berth berth(config_head(2, "upstream_connect: 2s, upstream_response: 5s") +
              "routes:\n"
              "  - {name: r-m, host: \"m.test\", service: s-m}\n"
              "  - {name: r-dead, host: \"dead.test\", service: s-dead}\n"
              "services:\n"
              "  s-m: {endpoints: [\"" + origin.address() + "\"]}\n"
              "  s-dead:\n"
              "    endpoints: [\"127.0.0.1:" + std::to_string(dead1) + "\", \"127.0.0.1:" + std::to_string(dead2) + "\"]\n"
              "    retry: {attempts: 2}\n"
              "    outlier: {consecutive_failures: 0}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t admin = berth.admin_port();

  constexpr int kGets = 7;
  uint64_t bytes_in = 0, bytes_out = 0;
  auto send = [&](const std::string& raw) {
    Client c(berth.port());
    Response r = c.request(raw);
    bytes_in += raw.size();
    bytes_out += r.raw_head.size() + r.body.size();
    return r;
  };
  for (int i = 0; i < kGets; ++i) REQUIRE(send(make_request("GET", "/x", "m.test")).status == 200);
  const Response post = send(make_request("POST", "/x", "m.test", {}, "hello"));
  REQUIRE(post.status != 0);
  const Response other = send(make_request("PROPFIND", "/x", "m.test"));
  REQUIRE(other.status != 0);
  REQUIRE(send(make_request("GET", "/x", "nowhere.test")).status == 404);
  const Response dead = send(make_request("GET", "/x", "dead.test"));
  REQUIRE(dead.status == 502);
  CHECK(dead.header("x-berth-error").value_or("") == "upstream-connect-failed");

  const std::string o = origin.address();
  CHECK_SERIES(admin, "berth_requests_total{route=\"r-m\",service=\"s-m\",method=\"GET\",code=\"200\"}", kGets);
  CHECK_SERIES(admin, "berth_requests_total{route=\"r-m\",service=\"s-m\",method=\"POST\",code=\"" +
                          std::to_string(post.status) + "\"}", 1);
  CHECK_SERIES(admin, "berth_requests_total{route=\"r-m\",service=\"s-m\",method=\"OTHER\",code=\"" +
                          std::to_string(other.status) + "\"}", 1);
  CHECK_SERIES(admin, "berth_requests_total{route=\"\",service=\"\",method=\"GET\",code=\"404\"}", 1);
  CHECK_SERIES(admin, "berth_requests_total{route=\"r-dead\",service=\"s-dead\",method=\"GET\",code=\"502\"}", 1);
  CHECK_SERIES(admin, "berth_local_replies_total{cause=\"no-route\"}", 1);
  CHECK_SERIES(admin, "berth_local_replies_total{cause=\"upstream-connect-failed\"}", 1);
  CHECK_SERIES(admin, "berth_request_duration_seconds_count{route=\"r-m\",service=\"s-m\"}", kGets + 2);

  // A client connection held open (keep-alive) during the scrape.
  Client held(berth.port());
  const Response held_r = held.request(make_request("GET", "/x", "m.test"));
  REQUIRE(held_r.status == 200);
  bytes_in += make_request("GET", "/x", "m.test").size();
  bytes_out += held_r.raw_head.size() + held_r.body.size();
  CHECK_SERIES(admin, "berth_requests_total{route=\"r-m\",service=\"s-m\",method=\"GET\",code=\"200\"}", kGets + 1);
  const auto s = samples(scrape(admin));
  // One upstream attempt per proxied request, each answered; the retry's two attempts failed to connect.
  const int answered_200 = kGets + 1 + (post.status == 200) + (other.status == 200);
  CHECK(value(s, "berth_upstream_requests_total{service=\"s-m\",instance=\"" + o + "\",code=\"200\"}") == answered_200);
  CHECK(value(s, "berth_upstream_response_seconds_count{service=\"s-m\",instance=\"" + o + "\"}") == kGets + 3);
  CHECK(value(s, "berth_upstream_connect_errors_total{service=\"s-m\",instance=\"" + o + "\"}") == 0);
  const std::string d1 = "127.0.0.1:" + std::to_string(dead1), d2 = "127.0.0.1:" + std::to_string(dead2);
  CHECK(value(s, "berth_upstream_connect_errors_total{service=\"s-dead\",instance=\"" + d1 + "\"}") +
            value(s, "berth_upstream_connect_errors_total{service=\"s-dead\",instance=\"" + d2 + "\"}") == 2);
  CHECK(value(s, "berth_upstream_requests_total{service=\"s-dead\",instance=\"" + d1 + "\",code=\"0\"}") == 1);
  CHECK(value(s, "berth_upstream_requests_total{service=\"s-dead\",instance=\"" + d2 + "\",code=\"0\"}") == 1);
  CHECK(value(s, "berth_retries_total{service=\"s-dead\"}") == 1);
  // Series that nothing has counted yet are there, at 0.
  CHECK(value(s, "berth_retries_total{service=\"s-m\"}") == 0);
  CHECK(value(s, "berth_circuit_open_total{service=\"s-m\"}") == 0);
  CHECK(value(s, "berth_circuit_open_total{service=\"s-dead\"}") == 0);
  CHECK(value(s, "berth_instance_info{service=\"s-m\",instance=\"" + o + "\",container=\"\"}") == 1);
  CHECK(value(s, "berth_instance_up{service=\"s-m\",instance=\"" + o + "\"}") == 1);
  CHECK(value(s, "berth_route_up_instances{route=\"r-m\",service=\"s-m\"}") == 1);
  CHECK(value(s, "berth_bytes_total{direction=\"in\"}") == static_cast<double>(bytes_in));
  CHECK(value(s, "berth_bytes_total{direction=\"out\"}") == static_cast<double>(bytes_out));
  CHECK(value(s, "berth_routes") == 2);
  CHECK(value(s, "berth_services") == 2);
  CHECK(value(s, "berth_route_table_generation") == 1);
  CHECK(value(s, "berth_config_reloads_total{result=\"ok\"}") == 0);
  CHECK(value(s, "berth_access_log_dropped_total") == 0);
  CHECK(value(s, "berth_open_connections{side=\"client\"}") == 1);  // the held one (the scrape is on the admin listener)
  CHECK(value(s, "process_resident_memory_bytes") > 1e6);
  CHECK(value(s, "process_open_fds") > 3);
  CHECK(value(s, "process_start_time_seconds") > 1.6e9);
  CHECK(value(s, "process_cpu_seconds_total") >= 0);

  // promtool lints the whole output: exit 0 and nothing on stderr.
  TempDir dir;
  REQUIRE(write_file(dir.file("metrics.txt"), scrape(admin)));
  Process check({"/bin/sh", "-c", std::string(kPromtool) + " check metrics < " + dir.file("metrics.txt")},
                dir.file("out"), dir.file("err"));
  auto st = check.wait_exit(20s);
  INFO("promtool stdout: " << check.out() << "\nstderr: " << check.err());
  REQUIRE(st);
  CHECK(exited_with(st, 0));
  CHECK(check.err().empty());
  CHECK(berth.running());
}

TEST_CASE("metrics: an instance removed by a reload loses its series", "[metrics]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto yaml = [&](bool with_b) {
    return config_head(1) +
           "routes:\n"
           "  - {name: r-ab, host: \"ab.test\", service: s-ab}\n"
           "services:\n"
           "  s-ab: {endpoints: [\"" + a.address() + "\"" + (with_b ? ", \"" + b.address() + "\"" : "") + "]}\n";
  };
  Berth berth(yaml(true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (int i = 0; i < 6; ++i) REQUIRE(http_get(berth.port(), "/x", "ab.test").status == 200);
  const std::string inst_b = "instance=\"" + b.address() + "\"";
  {
    const std::string text = scrape(berth.admin_port());
    INFO(text);
    CHECK(text.find("berth_upstream_requests_total{service=\"s-ab\"," + inst_b + ",code=\"200\"}") != std::string::npos);
    CHECK(text.find("berth_instance_up{service=\"s-ab\"," + inst_b + "} 1") != std::string::npos);
  }
  REQUIRE(berth.rewrite_config(yaml(false)));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return scrape(berth.admin_port()).find(inst_b) == std::string::npos; }, 5s));
  // More traffic: the worker drops its cells of the instance; it does not come back.
  for (int i = 0; i < 3; ++i) REQUIRE(http_get(berth.port(), "/x", "ab.test").status == 200);
  const std::string text = scrape(berth.admin_port());
  INFO(text);
  CHECK(text.find(inst_b) == std::string::npos);
  CHECK(text.find("instance=\"" + a.address() + "\"") != std::string::npos);
  const auto s = samples(text);
  CHECK(value(s, "berth_config_reloads_total{result=\"ok\"}") == 1);
  CHECK(value(s, "berth_route_table_generation") == 2);
  CHECK(value(s, "berth_requests_total{route=\"r-ab\",service=\"s-ab\",method=\"GET\",code=\"200\"}") == 9);

  // A broken config is counted as a failed reload.
  REQUIRE(berth.rewrite_config("routes: [\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  double last = -2;
  CHECK(series_reaches(berth.admin_port(), "berth_config_reloads_total{result=\"error\"}", 1, &last));
  CHECK(berth.running());
}

namespace {

// A Prometheus server on 127.0.0.1 scraping Berth's admin listener every second.
struct PrometheusServer {
  TempDir dir;
  uint16_t port = unused_port();
  Process proc;
  explicit PrometheusServer(uint16_t berth_admin_port) {
    require_tool(kPrometheus);
    REQUIRE(write_file(dir.file("prometheus.yml"),
                       "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                       "scrape_configs:\n"
                       "  - job_name: berth\n"
                       "    metrics_path: /metrics\n"
                       "    static_configs: [{targets: ['127.0.0.1:" + std::to_string(berth_admin_port) + "']}]\n"));
    proc = Process({kPrometheus, "--config.file=" + dir.file("prometheus.yml"),
                    "--web.listen-address=127.0.0.1:" + std::to_string(port),
                    "--storage.tsdb.path=" + dir.file("data")},
                   dir.file("prom.out"), dir.file("prom.log"));
    INFO(proc.spawn_error());
    REQUIRE(proc.started());
  }
  ~PrometheusServer() { proc.terminate(); }
  // The result vector of an instant query (null on any failure).
  nlohmann::json query(const std::string& promql) {
    Response r = http_get(port, "/api/v1/query?query=" + url_encode(promql), "127.0.0.1");
    if (r.status != 200) return nullptr;
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return nullptr;
    return j["data"]["result"];
  }
  // The value of a query that returns one sample (-1: none or several).
  double scalar(const std::string& promql) {
    nlohmann::json res = query(promql);
    if (!res.is_array() || res.size() != 1) return -1;
    return std::stod(res[0]["value"][1].get<std::string>());
  }
  std::string log() const { return tail(proc.err(), 3000); }
};

}  // namespace

TEST_CASE("metrics: a real Prometheus scraping Berth sees the requests and loses a removed instance",
          "[metrics][prometheus]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto yaml = [&](bool with_b) {
    return config_head(2) +
           "routes:\n"
           "  - {name: r-prom, host: \"prom.test\", service: s-prom}\n"
           "services:\n"
           "  s-prom: {endpoints: [\"" + a.address() + "\"" + (with_b ? ", \"" + b.address() + "\"" : "") + "]}\n";
  };
  Berth berth(yaml(true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  PrometheusServer prom(berth.admin_port());

  constexpr int kRequests = 12;
  for (int i = 0; i < kRequests; ++i) REQUIRE(http_get(berth.port(), "/x", "prom.test").status == 200);

  // The first scrape lands ~6 s after Prometheus starts; then one per second.
  const std::string requests = "sum(berth_requests_total{job=\"berth\",route=\"r-prom\"})";
  double got = -1;
  bool seen = wait_until([&] { return (got = prom.scalar(requests)) == kRequests; }, 25s, 250ms);
  INFO("Prometheus log: " << prom.log());
  INFO("last value of " << requests << ": " << got);
  REQUIRE(seen);
  // Berth's `instance` label is stored as exported_instance (Prometheus keeps its own `instance`).
  const std::string b_series = "berth_instance_info{job=\"berth\",exported_instance=\"" + b.address() + "\"}";
  REQUIRE(wait_until([&] { return prom.scalar(b_series) == 1; }, 10s, 250ms));
  CHECK(prom.scalar("sum(berth_upstream_requests_total{job=\"berth\",service=\"s-prom\"})") == kRequests);

  // B leaves (reload): its series go stale in Prometheus after the next scrape.
  REQUIRE(berth.rewrite_config(yaml(false)));
  REQUIRE(berth.process().signal(SIGHUP));
  const std::string any_b = "count({job=\"berth\",exported_instance=\"" + b.address() + "\"})";
  CHECK(wait_until([&] {
    nlohmann::json res = prom.query(any_b);
    return res.is_array() && res.empty();
  }, 15s, 250ms));
  CHECK(prom.scalar("berth_instance_info{job=\"berth\",exported_instance=\"" + a.address() + "\"}") == 1);
  CHECK(prom.scalar("up{job=\"berth\"}") == 1);
  CHECK(berth.running());
}

TEST_CASE("metrics: Docker discovery: connected, events by action, the container's name, and a stopped one's "
          "series gone", "[metrics][docker_fake]") {
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.start();
  Origin origin("D");
  REQUIRE(origin.ok());
  {
    Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") +
                "\", empty_route_grace: 1s, reconnect_max: 1s}\n");
    INFO(berth.error());
    REQUIRE(berth.ok());
    REQUIRE(berth.log_shows("event=docker_synced", 10s));
    INFO(berth.log());
    CHECK_SERIES(berth.admin_port(), "berth_discovery_connected", 1);

    fake_docker::Container c;
    c.id = fake_docker::hex_id(4242);
    c.name = "metrics-web-1";
    c.port = origin.port();
    c.labels = {{"berth.enable", "true"}, {"berth.host", "dm.test"}, {"berth.port", std::to_string(origin.port())}};
    c.running = false;
    c.created_ns = pb::realtime_ns();
    const size_t i = engine.add(c);
    engine.emit(i, "create");
    engine.emit(i, "start");
    REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "dm.test").status == 200; }, 5s));
    const std::string instance = "127.0.0.1:" + std::to_string(origin.port());
    {
      const std::string text = scrape(berth.admin_port());
      INFO(text);
      const auto s = samples(text);
      CHECK(value(s, "berth_discovery_events_total{action=\"create\"}") == 1);
      CHECK(value(s, "berth_discovery_events_total{action=\"start\"}") == 1);
      // The instance's container name, and its route's series.
      bool info = false;
      for (const auto& [series, v] : s)
        if (series.rfind("berth_instance_info{", 0) == 0 && series.find("instance=\"" + instance + "\"") != std::string::npos &&
            series.find("container=\"metrics-web-1\"") != std::string::npos && v == 1)
          info = true;
      CHECK(info);
      CHECK(value(s, "berth_routes") == 1);
      CHECK(value(s, "berth_route_table_generation") >= 2);
    }
    engine.emit_stop(i);
    CHECK(wait_until([&] { return scrape(berth.admin_port()).find("instance=\"" + instance + "\"") == std::string::npos; },
                     5s));
    const auto s = samples(scrape(berth.admin_port()));
    CHECK(value(s, "berth_discovery_events_total{action=\"kill\"}") == 1);
    CHECK(value(s, "berth_discovery_events_total{action=\"die\"}") == 1);
    CHECK(value(s, "berth_discovery_events_total{action=\"stop\"}") == 1);
    CHECK(berth.running());
  }  // Berth stops before the engine
  engine.stop();
}
