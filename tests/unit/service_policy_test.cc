// Per-service policy in the config file: lb, health, outlier, retry, circuit_breaker; errors
// with their exact place; the value parsers shared with the berth.lb / berth.health.* labels.
#include <catch2/catch.hpp>

#include <string>

#include "config/config.h"

using namespace berth::config;
using namespace std::chrono_literals;

namespace {
LoadResult load(const std::string& yaml) { return load_string(yaml, "t.yaml"); }
std::string all_errors(const LoadResult& result) {
  std::string text;
  for (const Error& error : result.errors) text += error.to_string() + "\n";
  return text;
}
}  // namespace

TEST_CASE("service policy: every key is read", "[config][lb]") {
  LoadResult r = load(R"(listeners: ["127.0.0.1:8080"]
services:
  web:
    endpoints: ["127.0.0.1:9000"]
    lb: {policy: hash, hash_on: "header:X-User", cookie: sess}
    health: {path: /healthz, interval: 2s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 3, status: "200-299", port: 9100}
    outlier: {consecutive_failures: 4, base_ejection: 5s, max_ejection_percent: 30, panic_threshold_percent: 20}
    retry: {attempts: 2, non_idempotent: true, budget_percent: 10, min_retries: 1}
    circuit_breaker: {max_requests: 10, max_pending: 5, service_max_requests: 100, service_max_pending: 50}
  plain:
    endpoints: []
)");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const ServicePolicy& p = r.config->services[0].policy;
  CHECK(p.lb.policy == LoadBalancing::Policy::kHash);
  CHECK(p.lb.hash_on == LoadBalancing::HashOn::kHeader);
  CHECK(p.lb.hash_name == "X-User");
  CHECK(p.lb.cookie == "sess");
  CHECK(p.health.enabled);
  CHECK(p.health.path == "/healthz");
  CHECK(p.health.interval == 2s);
  CHECK(p.health.timeout == 500ms);
  CHECK(p.health.healthy_threshold == 2);
  CHECK(p.health.unhealthy_threshold == 3);
  CHECK(p.health.status_min == 200);
  CHECK(p.health.status_max == 299);
  CHECK(p.health.port == 9100);
  CHECK(p.outlier.consecutive_failures == 4);
  CHECK(p.outlier.base_ejection == 5s);
  CHECK(p.outlier.max_ejection_percent == 30);
  CHECK(p.outlier.panic_threshold_percent == 20);
  CHECK(p.retry.attempts == 2);
  CHECK(p.retry.non_idempotent);
  CHECK(p.retry.budget_percent == 10);
  CHECK(p.retry.min_retries == 1);
  CHECK(p.circuit.max_requests == 10);
  CHECK(p.circuit.max_pending == 5);
  CHECK(p.circuit.service_max_requests == 100);
  CHECK(p.circuit.service_max_pending == 50);
  const ServicePolicy& d = r.config->services[1].policy;
  CHECK(d == ServicePolicy{});
  CHECK_FALSE(d.health.enabled);
}

TEST_CASE("service policy: errors point at the value", "[config][lb][errors]") {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"    lb: {policy: random}\n", "t.yaml:5:18: services.web.lb.policy: unknown policy 'random'"},
      {"    lb: {hash_on: \"ip\"}\n", "t.yaml:5:19: services.web.lb.hash_on: expected client_ip, header:NAME or cookie:NAME"},
      {"    lb: {cookie: \"a b\"}\n", "t.yaml:5:18: services.web.lb.cookie: 'a b' is not a valid cookie name"},
      {"    health: {status: \"399-200\"}\n", "t.yaml:5:22: services.web.health.status: expected a status or a range"},
      {"    health: {interval: 0s}\n", "t.yaml:5:24: services.web.health.interval: must be greater than 0"},
      {"    health: {path: health}\n", "t.yaml:5:20: services.web.health.path: must start with '/'"},
      {"    health: {pth: /x}\n", "t.yaml:5:14: unknown key 'pth' in services.web.health"},
      {"    retry: {attempts: 0}\n", "t.yaml:5:23: services.web.retry.attempts: 0 is out of range (1..10)"},
      {"    outlier: {max_ejection_percent: 101}\n", "t.yaml:5:37: services.web.outlier.max_ejection_percent: 101 is out of range"},
  };
  for (const Case& c : cases) {
    std::string yaml = std::string("listeners: [\"127.0.0.1:8080\"]\nservices:\n  web:\n    endpoints: []\n") + c.yaml;
    LoadResult r = load(yaml);
    INFO(yaml);
    REQUIRE_FALSE(r.ok());
    CHECK(all_errors(r).find(c.error) != std::string::npos);
    INFO(all_errors(r));
  }
}

TEST_CASE("service policy: value parsers", "[config][lb]") {
  CHECK(parse_lb_policy("least_request") == LoadBalancing::Policy::kLeastRequest);
  CHECK_FALSE(parse_lb_policy("Round_Robin"));
  LoadBalancing lb;
  CHECK(parse_hash_on("cookie:session", lb));
  CHECK(lb.hash_on == LoadBalancing::HashOn::kCookie);
  CHECK(lb.hash_name == "session");
  CHECK(parse_hash_on("client_ip", lb));
  CHECK(lb.hash_name.empty());
  CHECK_FALSE(parse_hash_on("header:", lb));
  HealthCheck h;
  CHECK(parse_status_range("204", h));
  CHECK((h.status_min == 204 && h.status_max == 204));
  CHECK_FALSE(parse_status_range("2xx", h));
  CHECK_FALSE(parse_status_range("200-", h));
  CHECK_FALSE(parse_status_range("600", h));
}
