// Health management through the real binary: active checks (out within interval x threshold,
// back after recovery, no traffic before the first passing probe), passive outlier ejection and
// its cap, retries that hide an instance killed without warning, circuit breaking.
#include <signal.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "env.h"

using namespace it;

namespace {

std::string origin_of(const Response& r) {
  if (r.body.rfind("origin=", 0) != 0) return "?";
  return r.body.substr(7, r.body.find(' ') - 7);
}

std::string service_yaml(const std::vector<Origin*>& origins, const std::string& extra) {
  std::string y = "routes:\n  - {name: r, path: /, service: s}\nservices:\n  s:\n    endpoints: [";
  for (size_t i = 0; i < origins.size(); ++i) y += (i ? ", \"" : "\"") + origins[i]->address() + "\"";
  return y + "]\n" + extra;
}

bool set_health(Origin& o, int status) {
  return http_get(o.port(), "/__health_set?status=" + std::to_string(status), "x").status == 200;
}

// Shares of `n` requests on one keep-alive connection, by origin name.
std::map<std::string, int> spread(uint16_t port, int n) {
  std::map<std::string, int> counts;
  Client client(port);
  for (int i = 0; i < n; ++i) ++counts[origin_of(client.get("/s", "x"))];
  return counts;
}

}  // namespace

TEST_CASE("health: active checks take a failing instance out within interval x threshold, and back", "[health]") {
  Origin a("A"), b("B"), c("C");
  REQUIRE((a.ok() && b.ok() && c.ok()));
  REQUIRE(set_health(c, 503));  // C fails its checks from the start
  Berth berth(config_head(2) +
              service_yaml({&a, &b, &c}, "    health: {path: /__health, interval: 200ms, timeout: 200ms, "
                                         "unhealthy_threshold: 2, healthy_threshold: 1}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { auto s = spread(berth.port(), 20); return s["A"] > 0 && s["B"] > 0; }, 5s));
  // No traffic at all before a passing probe: C never passed one.
  auto s = spread(berth.port(), 60);
  CHECK(s["C"] == 0);
  CHECK(c.stats().requests == 0);

  // A starts failing: out within interval x unhealthy_threshold (+ one probe and the workers'
  // 50 ms refresh).
  REQUIRE(set_health(a, 500));
  const auto t0 = Clock::now();
  REQUIRE(wait_until([&] { return spread(berth.port(), 10)["A"] == 0; }, 5s, 10ms));
  const double out_s = std::chrono::duration<double>(Clock::now() - t0).count();
  WARN("active check: failing instance out after " << out_s << " s (interval 200ms x threshold 2)");
  CHECK(out_s < 0.2 * 2 + 0.5);
  {
    auto after = spread(berth.port(), 40);
    INFO("A " << after["A"] << " B " << after["B"] << " C " << after["C"] << " other " << after["?"] << "\n"
              << http_get(berth.admin_port(), "/api/routes", "localhost").body << "\n" << berth.log());
    CHECK(after["A"] == 0);
  }

  // Recovery: back after healthy_threshold passing probes.
  REQUIRE(set_health(a, 200));
  REQUIRE(wait_until([&] { return spread(berth.port(), 10)["A"] > 0; }, 3s, 10ms));
  REQUIRE(set_health(c, 200));
  REQUIRE(wait_until([&] { return spread(berth.port(), 12)["C"] > 0; }, 3s, 10ms));
  Response routes = http_get(berth.admin_port(), "/api/routes", "localhost");
  CHECK(occurrences(routes.body, "\"health\":\"healthy\"") == 3);
}

TEST_CASE("health: outlier ejection after N consecutive failures, ejection cap respected", "[health]") {
  Origin a("A"), b("B"), c("C"), d("D");
  REQUIRE((a.ok() && b.ok() && c.ok() && d.ok()));
  Berth berth(config_head(1) +
              service_yaml({&a, &b, &c, &d}, "    outlier: {consecutive_failures: 3, base_ejection: 30s, "
                                             "max_ejection_percent: 50, panic_threshold_percent: 0}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  CHECK(spread(berth.port(), 8).size() == 4);
  // One dies: ejected after 3 failures (the requests themselves are retried elsewhere).
  a.process().signal(SIGKILL);
  a.process().wait_exit(2s);
  int failed = 0;
  for (int i = 0; i < 40; ++i) failed += http_get(berth.port(), "/s", "x").status != 200;
  CHECK(failed == 0);
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  const uint64_t connect_failures = stats_counter(berth.admin_port(), "upstream_connect_failures");
  CHECK(connect_failures == 3);
  for (int i = 0; i < 40; ++i) http_get(berth.port(), "/s", "x");
  CHECK(stats_counter(berth.admin_port(), "upstream_connect_failures") == connect_failures);  // ejected: not tried
  // Two more die: at most 50% of 4 are ejected.
  b.process().signal(SIGKILL);
  c.process().signal(SIGKILL);
  b.process().wait_exit(2s);
  c.process().wait_exit(2s);
  for (int i = 0; i < 60; ++i) http_get(berth.port(), "/s", "x");
  Response routes = http_get(berth.admin_port(), "/api/routes", "localhost");
  CHECK(occurrences(routes.body, "\"ejected\":true") == 2);
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 2);
}

TEST_CASE("health: an instance that cuts its answers short mid-body is ejected", "[health]") {
  // The head said 200, then the body broke (a FIN before its end, a reset): a failure of the
  // instance, counted at the body's end, not a success at the head.
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1) + service_yaml({&a}, "    outlier: {consecutive_failures: 3, base_ejection: 30s}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (const char* how : {"abort_after_headers=1", "reset_mid_body=1", "abort_after_headers=1&chunked=1"}) {
    Client c(berth.port());
    c.set_timeout(5s);
    const Response r = c.get(std::string("/die?size=300000&") + how, "x");
    INFO(how << ": " << r.raw_head << r.error);
    CHECK(!(r.status == 200 && r.body_complete));
  }
  INFO(tail(berth.log()));
  CHECK(berth.log_shows("event=outlier_ejected", 3s));
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  // Whole answers are successes: they start the count afresh.
  Berth other(config_head(1) + service_yaml({&a}, "    outlier: {consecutive_failures: 3, base_ejection: 30s}\n"));
  REQUIRE(other.ok());
  for (int i = 0; i < 6; ++i) {
    Client c(other.port());
    c.set_timeout(5s);
    const Response r = c.get(i % 2 ? "/whole?size=1000" : "/die?size=300000&reset_mid_body=1", "x");
    INFO(i << ": " << r.raw_head << r.error);
    CHECK(r.status == 200);
  }
  CHECK(stats_counter(other.admin_port(), "outlier_ejections") == 0);
}

TEST_CASE("health: with an active check, an instance waiting for its probe after an ejection counts against the cap",
          "[health]") {
  // Both instances answer 500 and pass their probes. A is ejected; its ejection time runs out
  // but it stays out until its next probe (20 s away). Meanwhile B fails as often: ejecting it
  // too would leave no instance (max_ejection_percent 50 of 2 is one).
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) +
              service_yaml({&a, &b}, "    health: {path: /__health, interval: 20s, timeout: 1s}\n"
                                     "    outlier: {consecutive_failures: 2, base_ejection: 1s, max_ejection_percent: 50,"
                                     " panic_threshold_percent: 0}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/s", "x").status == 200; }, 5s));
  REQUIRE(wait_until([&] { auto s = spread(berth.port(), 10); return s["A"] > 0 && s["B"] > 0; }, 5s));
  for (int i = 0; i < 4; ++i) http_get(berth.port(), "/s?status=500", "x");
  REQUIRE(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  std::this_thread::sleep_for(1500ms);  // the ejection time is over; the probe is not due yet
  for (int i = 0; i < 6; ++i) {
    const Response r = http_get(berth.port(), "/s?status=500", "x");
    INFO(i << ": " << r.raw_head << "\n" << tail(berth.log()));
    CHECK(r.status == 500);  // the instance's own answer, not 503 no-endpoint
  }
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
}

TEST_CASE("health: a new instance takes traffic after its first passing probe, whatever healthy_threshold",
          "[health]") {
  // healthy_threshold counts for an instance coming back from unhealthy; a new one needs one
  // probe (probes 5 s apart here: three would take 10 s).
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1) + service_yaml({&a}, "    health: {path: /__health, interval: 5s, timeout: 1s, "
                                                  "healthy_threshold: 3}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  CHECK(wait_until([&] { return http_get(berth.port(), "/s", "x").status == 200; }, 3s));
  CHECK(berth.log_shows("to=healthy", 1s));
}

TEST_CASE("health: /readyz waits, once after the start, for each checked instance's first probe", "[health]") {
  // Before its first passing probe an instance takes no traffic: a Berth that said "ready"
  // then (taking over from another, joining a load balancer's pool) would answer 503.
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) + service_yaml({&a, &b}, "    health: {path: \"/s?delay_ms=1500\", interval: 30s, "
                                                      "timeout: 5s}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  Response r = http_get(berth.admin_port(), "/readyz", "localhost");
  INFO(r.status << " " << r.body);
  CHECK(r.status == 503);
  CHECK(r.body.find("2 checked instance(s) wait for their first probe") != std::string::npos);
  CHECK(http_get(berth.port(), "/s", "x").status == 503);  // indeed: no instance yet
  REQUIRE(wait_until([&] { return http_get(berth.admin_port(), "/readyz", "localhost").status == 200; }, 5s, 50ms));
  CHECK(http_get(berth.port(), "/s", "x").status == 200);
  CHECK(berth.log_shows("event=first_probes_answered instances=2"));
  // A probe that fails answers too; and once ready, a later newcomer does not make it unready.
  REQUIRE(set_health(a, 503));
  Berth second(config_head(1) + service_yaml({&a}, "    health: {path: /__health, interval: 30s, timeout: 5s}\n"));
  REQUIRE(second.ok());
  CHECK(wait_until([&] { return http_get(second.admin_port(), "/readyz", "localhost").status == 200; }, 5s, 50ms));
}

TEST_CASE("health: a retry with no routable instance left goes to an ejected one rather than failing", "[health]") {
  // A was ejected for its 500s (and serves again); B, the only routable one, stops listening
  // (a container restarted, routed before its app listens): B's connect fails, and the retry
  // goes to A, not to a 502.
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) + service_yaml({&a, &b}, "    outlier: {consecutive_failures: 3, base_ejection: 30s, "
                                                      "panic_threshold_percent: 0}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (int i = 0; i < 12 && stats_counter(berth.admin_port(), "outlier_ejections") == 0; ++i)
    http_get(berth.port(), "/s?fail=A:500", "x");
  REQUIRE(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  REQUIRE(spread(berth.port(), 6)["B"] == 6);  // A is out
  b.process().signal(SIGKILL);
  b.process().wait_exit(2s);
  for (int i = 0; i < 4; ++i) {
    const Response r = http_get(berth.port(), "/s", "x");
    INFO(i << ": " << r.raw_head << r.error << "\n" << tail(berth.log()));
    CHECK(r.status == 200);
    CHECK(r.header("x-origin-name") == std::optional<std::string>("A"));
  }
}

TEST_CASE("health: a retry never goes to an ejected instance that then fails its probes", "[health]") {
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) +
              service_yaml({&a, &b}, "    health: {path: /__health, interval: 300ms, timeout: 300ms, unhealthy_threshold: 1}\n"
                                     "    outlier: {consecutive_failures: 2, base_ejection: 30s, panic_threshold_percent: 0}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { auto s = spread(berth.port(), 10); return s["A"] > 0 && s["B"] > 0; }, 5s));
  for (int i = 0; i < 12 && stats_counter(berth.admin_port(), "outlier_ejections") == 0; ++i)
    http_get(berth.port(), "/s?fail=A:500", "x");
  REQUIRE(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  REQUIRE(set_health(a, 503));  // out by its probes from the next one on
  std::this_thread::sleep_for(1s);
  b.process().signal(SIGKILL);
  b.process().wait_exit(2s);
  const Response r = http_get(berth.port(), "/s", "x");
  INFO(r.raw_head << r.error << "\n" << tail(berth.log()));
  CHECK(r.header("x-origin-name") != std::optional<std::string>("A"));
  CHECK(r.status != 200);
}

// Two services on one instance (one container serving two apps, or the same address in two
// routes' services): each judges it by its own check and its own outlier rules.
static std::string two_services_yaml(Origin& o, const std::string& one, const std::string& two) {
  return "routes:\n  - {name: r1, host: one.test, path: /, service: one}\n"
         "  - {name: r2, host: two.test, path: /, service: two}\n"
         "services:\n  one:\n    endpoints: [\"" + o.address() + "\"]\n" + one +
         "  two:\n    endpoints: [\"" + o.address() + "\"]\n" + two;
}

TEST_CASE("health: an instance failing one service's check still serves another service on its address", "[health]") {
  Origin o("O");
  REQUIRE(o.ok());
  REQUIRE(set_health(o, 503));  // /__health fails; any other path answers 200
  const std::string check = ", interval: 200ms, timeout: 200ms, unhealthy_threshold: 1, healthy_threshold: 1}\n";
  // "one" comes first: its failing check is the one a probe per address would run for both.
  Berth berth(config_head(1) + two_services_yaml(o, "    health: {path: /__health" + check,
                                                 "    health: {path: /alive" + check));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/x", "two.test").status == 200; }, 5s, 20ms));
  for (int i = 0; i < 10; ++i) {
    CHECK(http_get(berth.port(), "/x", "two.test").status == 200);
    check_berth_error(http_get(berth.port(), "/x", "one.test"), 503, "no-endpoint");
  }
  const std::string routes = http_get(berth.admin_port(), "/api/routes", "localhost").body;
  INFO(routes);
  CHECK(occurrences(routes, "\"health\":\"healthy\"") == 1);
  CHECK(occurrences(routes, "\"health\":\"pending\"") == 1);

  // Its own check passing lets "one" in too; "two" never stopped.
  REQUIRE(set_health(o, 200));
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/x", "one.test").status == 200; }, 5s, 20ms));
  CHECK(http_get(berth.port(), "/x", "two.test").status == 200);
}

TEST_CASE("health: an instance ejected by one service's outlier detection still serves another service", "[health]") {
  Origin o("O");
  REQUIRE(o.ok());
  const std::string outlier = "    outlier: {consecutive_failures: 3, base_ejection: 30s, max_ejection_percent: 100, "
                              "panic_threshold_percent: 0}\n    retry: {attempts: 1}\n";
  Berth berth(config_head(1) + two_services_yaml(o, outlier, outlier));
  INFO(berth.error());
  REQUIRE(berth.ok());
  // "one"'s requests fail with 500 three times: ejected from "one".
  for (int i = 0; i < 3; ++i) CHECK(http_get(berth.port(), "/x?status=500", "one.test").status == 500);
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
  check_berth_error(http_get(berth.port(), "/x", "one.test"), 503, "no-endpoint");
  // "two" saw none of those failures: the instance serves it.
  for (int i = 0; i < 10; ++i) CHECK(http_get(berth.port(), "/x", "two.test").status == 200);
  const std::string routes = http_get(berth.admin_port(), "/api/routes", "localhost").body;
  INFO(routes);
  CHECK(occurrences(routes, "\"ejected\":true") == 1);
  CHECK(occurrences(routes, "\"ejected\":false") == 1);
}

TEST_CASE("health: in panic mode /metrics counts the instances that serve as up", "[health]") {
  // Both instances fail their check: too few are healthy, so panic mode sends traffic to all of
  // them, and the metrics must say so (an alert on berth_route_up_instances == 0 would fire on a
  // route that serves).
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) + service_yaml({&a, &b}, "    health: {path: /__health, interval: 200ms, timeout: 200ms, "
                                                      "unhealthy_threshold: 1, healthy_threshold: 1}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { auto s = spread(berth.port(), 10); return s["A"] > 0 && s["B"] > 0; }, 5s));
  REQUIRE(set_health(a, 503));
  REQUIRE(set_health(b, 503));
  REQUIRE(wait_until([&] {
    return occurrences(http_get(berth.admin_port(), "/api/routes", "localhost").body, "\"health\":\"unhealthy\"") == 2;
  }, 5s, 20ms));
  auto s = spread(berth.port(), 10);
  CHECK(s["A"] + s["B"] == 10);  // panic mode: served
  for (Origin* o : {&a, &b})
    CHECK(metric_sample(berth.admin_port(), "berth_instance_up{service=\"s\",instance=\"" + o->address() + "\"}") == 1);
  CHECK(metric_sample(berth.admin_port(), "berth_route_up_instances{route=\"r\",service=\"s\"}") == 2);
}

TEST_CASE("health: a 103 before each 503 does not hide the failures from outlier detection", "[health]") {
  // The final response is the outcome: an interim one counted as a success used to reset the
  // count of consecutive failures before every 503.
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) + service_yaml({&a, &b}, "    outlier: {consecutive_failures: 3, base_ejection: 30s, "
                                                      "max_ejection_percent: 50, panic_threshold_percent: 0}\n"
                                                      "    retry: {attempts: 1}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  int from_a = 0;
  for (int i = 0; i < 12; ++i) {
    Client c(berth.port());
    Response r = c.get("/x?interim=1&fail=A:503", "x");  // 103 then 503 from A, 103 then 200 from B
    CHECK(r.status == 103);
    r = c.read_response();
    from_a += r.status == 503;
  }
  CHECK(from_a == 3);  // then A is ejected and B answers everything
  CHECK(stats_counter(berth.admin_port(), "outlier_ejections") == 1);
}

TEST_CASE("health: a probe answered while Berth was held up is not counted as timed out", "[health]") {
  // The control loop can be held up: a large admin document being built, the process stopped or
  // starved of CPU. A probe's answer that arrived meanwhile waits unread while its overdue timeout
  // fires first. Here Berth is stopped (SIGSTOP) for 600 ms at a time while probes that take
  // 100 ms of a 300 ms timeout are under way: each answer comes during the stop.
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1) + service_yaml({&a}, "    health: {path: \"/__health?delay_ms=100\", interval: 150ms, "
                                                    "timeout: 300ms, unhealthy_threshold: 1, healthy_threshold: 1}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/s", "x").status == 200; }, 5s));
  for (int i = 0; i < 12; ++i) {
    // Start the stop 50 ms into a probe (interval 150 ms + 100 ms answer: one every ~250 ms).
    std::this_thread::sleep_for(std::chrono::milliseconds(170 + 23 * i));
    REQUIRE(berth.process().signal(SIGSTOP));
    std::this_thread::sleep_for(600ms);
    REQUIRE(berth.process().signal(SIGCONT));
  }
  std::this_thread::sleep_for(300ms);
  INFO(berth.log());
  CHECK(berth.log().find("to=unhealthy") == std::string::npos);
  CHECK(http_get(berth.port(), "/s", "x").status == 200);
}

TEST_CASE("health: an instance killed without any event: zero failed GETs thanks to retries", "[health]") {
  Origin a("A"), b("B"), c("C");
  REQUIRE((a.ok() && b.ok() && c.ok()));
  Berth berth(config_head(2) + service_yaml({&a, &b, &c}, ""));
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      auto client = std::make_unique<Client>(berth.port());
      while (!stop) {
        Response r = client->get("/k?delay_ms=2", "x");
        if (r.status == 200) {
          ++ok;
        } else {
          ++failed;
          client = std::make_unique<Client>(berth.port());
        }
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  a.process().signal(SIGKILL);
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (auto& t : load) t.join();
  WARN("killed one of 3 instances under load: " << ok << " GETs ok, " << failed << " failed, "
                                                << stats_counter(berth.admin_port(), "upstream_retries") << " retries");
  CHECK(failed == 0);
  CHECK(ok > 100);
}

TEST_CASE("health: circuit breaker answers overload with fast 503s, not timeouts", "[health]") {
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1) + service_yaml({&a}, "    circuit_breaker: {max_requests: 2}\n"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::vector<std::thread> threads;
  std::vector<int> status(8, 0);
  std::vector<double> took(8, 0);
  std::vector<std::string> cause(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      if (i >= 2) std::this_thread::sleep_for(200ms);  // the first two hold the instance
      const auto t0 = Clock::now();
      Response r = http_get(berth.port(), "/slow?delay_ms=1500", "x");
      took[static_cast<size_t>(i)] = std::chrono::duration<double>(Clock::now() - t0).count();
      status[static_cast<size_t>(i)] = r.status;
      cause[static_cast<size_t>(i)] = r.header("x-berth-error").value_or("");
    });
  }
  for (auto& t : threads) t.join();
  CHECK(status[0] == 200);
  CHECK(status[1] == 200);
  for (size_t i = 2; i < 8; ++i) {
    CHECK(status[i] == 503);
    CHECK(cause[i] == "circuit-open");
    CHECK(took[i] < 0.3);
  }
  CHECK(stats_counter(berth.admin_port(), "circuit_open") == 6);
}

TEST_CASE("health: /api/routes counts requests in flight across workers without a circuit breaker", "[health]") {
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(2) + service_yaml({&a}, ""));
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::vector<std::thread> threads;
  std::vector<int> status(4, 0);
  for (int i = 0; i < 4; ++i)  // each on its own connection: SO_REUSEPORT spreads them over workers
    threads.emplace_back([&, i] { status[static_cast<size_t>(i)] = http_get(berth.port(), "/slow?delay_ms=1500", "x").status; });
  std::string body;
  const bool seen = wait_until([&] {
    body = http_get(berth.admin_port(), "/api/routes", "localhost").body;
    return body.find("\"in_flight\":4") != std::string::npos;
  }, 1200ms, 20ms);
  INFO(body);
  CHECK(seen);
  for (auto& t : threads) t.join();
  CHECK(status == std::vector<int>{200, 200, 200, 200});
  CHECK(wait_until([&] {  // the last answer may reach the client just before its exchange ends
    body = http_get(berth.admin_port(), "/api/routes", "localhost").body;
    return body.find("\"in_flight\":0") != std::string::npos;
  }, 1s));
}
