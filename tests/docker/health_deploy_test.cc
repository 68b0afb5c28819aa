// Berth's active health checks against real containers, under load: a rolling deploy whose new
// instances start listening only a second after Docker reports them started (only Berth's
// probe can keep traffic off them), and an instance whose health path starts failing while it
// still serves. The load is keep-alive GETs through Berth; every answer is counted.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "engine.h"

using namespace dk;
using it::Response;

namespace {

// The answers seen so far: statuses (0 = no valid answer) and the bodies of the 200s.
struct Tally {
  std::map<int, long> statuses;
  std::map<std::string, long> bodies;
  std::vector<std::string> failures;  // the first few answers that were not 2xx, raw
  long connections = 0;               // connections opened to Berth

  long total() const {
    long n = 0;
    for (const auto& [status, count] : statuses) n += count;
    return n;
  }
  long non_2xx() const {
    long n = 0;
    for (const auto& [status, count] : statuses)
      if (status < 200 || status > 299) n += count;
    return n;
  }
  long body(const std::string& b) const {
    auto it = bodies.find(b + "\n");
    return it == bodies.end() ? 0 : it->second;
  }
  std::string describe() const {
    std::string s = "answers: " + std::to_string(total()) + " on " + std::to_string(connections) + " connection(s);";
    for (const auto& [status, count] : statuses) s += " " + std::to_string(status) + "=" + std::to_string(count);
    s += "; bodies:";
    for (const auto& [b, count] : bodies) s += " " + b.substr(0, b.find('\n')) + "=" + std::to_string(count);
    for (const auto& f : failures) s += "\n--- not 2xx:\n" + f;
    return s;
  }
};

// Bodies answered between two tallies.
long answered_between(const Tally& before, const Tally& after, const std::string& body) {
  return after.body(body) - before.body(body);
}

// Keep-alive load through Berth: each thread sends GET / on one connection, the next request as
// soon as the answer is complete, and opens a new connection only when Berth closes the old one.
class KeepAliveLoad {
 public:
  KeepAliveLoad(uint16_t port, std::string host, int threads = 3) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, port, host] { run(port, host); });
  }
  ~KeepAliveLoad() { finish(); }
  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  Tally tally() {
    std::lock_guard<std::mutex> lock(mu_);
    return tally_;
  }

 private:
  void run(uint16_t port, const std::string& host) {
    std::unique_ptr<it::Client> client;
    while (!stop_) {
      if (!client) {
        client = std::make_unique<it::Client>(port, 10s);
        std::lock_guard<std::mutex> lock(mu_);
        ++tally_.connections;
      }
      Response r;
      if (client->connected()) r = client->get("/", host);
      else r.error = "connect: " + client->error();
      auto connection = r.header("connection");
      const bool reusable = r.ok() && r.body_complete && !(connection && it::lower(*connection) == "close");
      record(r);
      if (!reusable) {
        if (!client->connected()) std::this_thread::sleep_for(10ms);
        client.reset();
      }
    }
  }
  void record(const Response& r) {
    std::lock_guard<std::mutex> lock(mu_);
    ++tally_.statuses[r.status];
    if (r.status == 200) ++tally_.bodies[r.body];
    else if (tally_.failures.size() < 5) tally_.failures.push_back(r.raw_head + r.body + r.error);
  }

  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  Tally tally_;
};

// Labels of an instance of `service` on `host`, probed on /health.html every 200 ms.
WebOptions checked_instance(const std::string& host, const std::string& service, uint16_t port) {
  WebOptions o;
  o.labels = {{"berth.enable", "true"},
              {"berth.host", host},
              {"berth.service", service},
              {"berth.port", std::to_string(port)},
              {"berth.health.path", "/health.html"},
              {"berth.health.interval", "200ms"},
              {"berth.health.timeout", "500ms"},
              {"berth.health.healthy_threshold", "1"},
              {"berth.health.unhealthy_threshold", "2"}};
  o.extra_script = "echo ok > /www/health.html";
  return o;
}

// The probe state of an instance in the route table ("absent" when it is not listed).
std::string health_of(const nlohmann::json& t, const std::string& host, uint16_t port) {
  nlohmann::json e = endpoint_of(t, host, addr(port));
  return e.is_object() ? e.value("health", "unchecked") : "absent";
}

long ms_since(it::Clock::time_point t0) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(it::Clock::now() - t0).count());
}

void pause_for(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

uint64_t counter(const nlohmann::json& stats, const std::string& name) {
  if (!stats.is_object() || !stats.contains("counters")) return UINT64_MAX;
  return stats["counters"].value(name, UINT64_MAX);
}

}  // namespace

TEST_CASE("docker: rolling deploy under load with active checks on: zero non-2xx answers", "[docker][slow][health]") {
  engine();
  auto berth = start_berth();
  const std::string host = "deploy.dk.test";
  const int kInstances = 3;
  std::vector<std::string> v1_names, v2_names;
  for (int i = 0; i < kInstances; ++i) {
    v1_names.push_back("dk-hd-v1-" + std::to_string(i));
    v2_names.push_back("dk-hd-v2-" + std::to_string(i));
  }
  Cleanup cleanup{v1_names};
  cleanup.names.insert(cleanup.names.end(), v2_names.begin(), v2_names.end());

  std::vector<uint16_t> v1_ports, v2_ports;
  for (int i = 0; i < kInstances; ++i) {
    v1_ports.push_back(fresh_port());
    WebOptions o = checked_instance(host, "deploy", v1_ports[i]);
    o.drain_seconds = 1;  // keeps serving for 1 s after SIGTERM, then exits
    REQUIRE_FALSE(run_web(v1_names[i], v1_ports[i], "v1-" + std::to_string(i), o).empty());
  }
  INFO(berth->log());
  nlohmann::json t;
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    for (uint16_t p : v1_ports)
      if (health_of(j, host, p) != "healthy") return false;
    return true; }, 20s, &t));

  KeepAliveLoad load(berth->port(), host);
  const auto load_start = it::Clock::now();
  std::vector<bool> seen_pending(kInstances, false);
  std::vector<long> healthy_ms(kInstances, -1);
  for (int i = 0; i < kInstances; ++i) {
    v2_ports.push_back(fresh_port());
    WebOptions o = checked_instance(host, "deploy", v2_ports[i]);
    o.drain_seconds = 1;
    // Started, but listening only a second later. The middle instance also has a Docker
    // HEALTHCHECK (discovery waits for `healthy` too); the others rely on Berth's probe alone.
    o.extra_script += "; sleep 1";
    o.wait_listening = false;  // the point: routed before it listens, the probe must gate it
    o.healthcheck = i == 1;
    REQUIRE_FALSE(run_web(v2_names[i], v2_ports[i], "v2-" + std::to_string(i), o).empty());
    const auto started = it::Clock::now();
    // Routed once its first probe passes: listed as pending before that.
    REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
      const std::string h = health_of(j, host, v2_ports[i]);
      if (h == "pending") seen_pending[i] = true;
      return h == "healthy"; }, 20s, &t));
    healthy_ms[i] = ms_since(started);
    REQUIRE(docker({"stop", "-t", "10", v1_names[i]}).ok());
    REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
      return health_of(j, host, v1_ports[i]) == "absent"; }, 10s, &t));
  }
  std::vector<std::string> expected;
  for (uint16_t p : v2_ports) expected.push_back(addr(p));
  std::sort(expected.begin(), expected.end());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    auto eps = endpoints_for(j, host);
    std::sort(eps.begin(), eps.end());
    return eps == expected; }, 10s, &t));
  // One more second of load on the new set only.
  const Tally before_end = load.tally();
  pause_for(1s);
  load.finish();
  const Tally all = load.tally();
  const long load_ms = ms_since(load_start);
  const nlohmann::json counters = stats(berth->admin_port());

  INFO(all.describe());
  INFO("stats: " << counters.dump());
  CHECK(all.non_2xx() == 0);
  CHECK(all.total() >= 2000);
  for (int i = 0; i < kInstances; ++i) {
    INFO("instance " << i);
    // Gated by Berth's probe: listed, but pending until it listens. The instance with a Docker
    // HEALTHCHECK is listed only once Docker says healthy, when it already listens.
    if (i != 1) CHECK(seen_pending[i]);
    CHECK(all.body("v1-" + std::to_string(i)) > 0);                    // served before the deploy
    CHECK(answered_between(before_end, all, "v2-" + std::to_string(i)) > 0);  // serving at the end
    CHECK(answered_between(before_end, all, "v1-" + std::to_string(i)) == 0);
    CHECK(health_of(t, host, v1_ports[i]) == "absent");
    CHECK(health_of(t, host, v2_ports[i]) == "healthy");
  }
  // No request was ever sent to an instance that was not listening: a connect failure would
  // have been hidden from the client by a retry on another instance.
  CHECK(counter(counters, "upstream_connect_failures") == 0);
  WARN("rolling deploy with active checks: " << all.total() << " answers in " << load_ms << " ms on "
       << all.connections << " keep-alive connection(s), " << all.non_2xx() << " not 2xx; new instances healthy after "
       << healthy_ms[0] << "/" << healthy_ms[1] << "/" << healthy_ms[2] << " ms; upstream connect failures "
       << counter(counters, "upstream_connect_failures") << ", retries " << counter(counters, "upstream_retries"));
  CHECK(berth->running());
}

TEST_CASE("docker: an instance whose health path fails leaves within interval x unhealthy_threshold, all 2xx",
          "[docker][slow][health]") {
  engine();
  auto berth = start_berth();
  const std::string host = "failing.dk.test";
  Cleanup cleanup{{"dk-hd-fail-a", "dk-hd-fail-b"}};
  const uint16_t pa = fresh_port(), pb = fresh_port();
  REQUIRE_FALSE(run_web("dk-hd-fail-a", pa, "A", checked_instance(host, "failing", pa)).empty());
  REQUIRE_FALSE(run_web("dk-hd-fail-b", pb, "B", checked_instance(host, "failing", pb)).empty());
  INFO(berth->log());
  nlohmann::json t;
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return health_of(j, host, pa) == "healthy" && health_of(j, host, pb) == "healthy"; }, 20s, &t));

  KeepAliveLoad load(berth->port(), host);
  pause_for(1s);
  const Tally before_fail = load.tally();

  // A's health path starts answering 404 while / still answers 200.
  auto exec_start = it::Clock::now();
  REQUIRE(docker({"exec", "dk-hd-fail-a", "sh", "-c", "rm /www/health.html"}).ok());
  const long exec_ms = ms_since(exec_start);
  const auto removed = it::Clock::now();
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return health_of(j, host, pa) == "unhealthy"; }, 10s, &t));
  const long out_ms = ms_since(removed);
  CHECK(health_of(t, host, pb) == "healthy");
  // interval 200 ms x unhealthy_threshold 2, plus slack for a busy machine.
  CHECK(out_ms <= 400 + 1000);

  // Out of selection (still listed): for a second only B answers.
  pause_for(100ms);
  const Tally out_start = load.tally();
  pause_for(1s);
  const Tally out_end = load.tally();

  // The health file comes back: A is back after healthy_threshold (1) passing probe.
  REQUIRE(docker({"exec", "dk-hd-fail-a", "sh", "-c", "echo ok > /www/health.html"}).ok());
  const auto restored = it::Clock::now();
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return health_of(j, host, pa) == "healthy"; }, 10s, &t));
  const long back_ms = ms_since(restored);
  CHECK(back_ms <= 200 + 1000);
  pause_for(1s);
  load.finish();
  const Tally all = load.tally();

  INFO(all.describe());
  CHECK(all.non_2xx() == 0);
  CHECK(all.total() >= 1000);
  CHECK(answered_between(Tally{}, before_fail, "A") > 0);
  CHECK(answered_between(out_start, out_end, "A") == 0);
  CHECK(answered_between(out_start, out_end, "B") > 0);
  CHECK(answered_between(out_end, all, "A") > 0);
  WARN("failing health path: out of selection " << out_ms << " ms after the docker exec returned (exec took "
       << exec_ms << " ms), back " << back_ms << " ms after the file returned; " << all.total() << " answers, "
       << all.non_2xx() << " not 2xx");
  CHECK(berth->running());
}
