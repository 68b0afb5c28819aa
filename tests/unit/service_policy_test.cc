// Per-service policy in the config file: lb, health, outlier, retry, circuit_breaker; errors
// with their exact place; the value parsers shared with the berth.lb / berth.health.* labels.
#include <catch2/catch.hpp>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::load;
using namespace std::chrono_literals;

TEST_CASE("service policy: every key is read", "[config][lb]") {
  LoadResult r = load(R"(listeners: ["127.0.0.1:8080"]
services:
  web:
    endpoints: ["127.0.0.1:9000"]
    lb: {policy: hash, hash_on: "header:X-User", cookie: sess, slow_start: 30s}
    health: {path: /healthz, interval: 2s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 3, status: "200-299", port: 9100}
    outlier: {consecutive_failures: 4, base_ejection: 5s, max_ejection_percent: 30, panic_threshold_percent: 20}
    retry: {attempts: 2, non_idempotent: true, budget_percent: 10, min_retries: 1, replay_body_bytes: 4096}
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
  CHECK(p.lb.slow_start == 30s);
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
  CHECK(p.retry.replay_body_bytes == 4096);
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
      {"    lb: {slow_start: 2h}\n", "t.yaml:5:22: services.web.lb.slow_start: must be a duration from 0 to 1h such as 500ms or 30s, got 2h"},
      {"    lb: {slow_start: soon}\n", "t.yaml:5:22: services.web.lb.slow_start: expected a duration"},
      {"    outlier: {base_ejection: 0s}\n", "t.yaml:5:30: services.web.outlier.base_ejection: must be greater than 0"},
      {"    retry: {non_idempotent: 1}\n", "t.yaml:5:29: services.web.retry.non_idempotent: expected true or false"},
      {"    circuit_breaker: {max_pending: -1}\n", "t.yaml:5:36: services.web.circuit_breaker.max_pending: -1 is out of range (0..10000000)"},
      {"    retry: {tries: 2}\n", "t.yaml:5:13: unknown key 'tries' in services.web.retry (expected one of: attempts, non_idempotent, on_response_timeout, budget_percent, min_retries, replay_body_bytes)"},
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

TEST_CASE("service policy: a sticky service's default cookie is its own, stable, and a valid name", "[config][lb]") {
  CHECK(LoadBalancing{}.cookie.empty());  // resolved per service when the snapshot is built
  const std::string web = default_sticky_cookie("web");
  CHECK(web == default_sticky_cookie("web"));
  CHECK(web == "berth_sticky_" + web.substr(13));
  CHECK(web.size() == 13 + 8);
  CHECK(valid_cookie_name(web));
  CHECK(web != default_sticky_cookie("api"));
  CHECK(default_sticky_cookie("") != default_sticky_cookie("web"));
  CHECK(default_sticky_cookie("") == "berth_sticky_cbf29ce4");  // FNV-1a's offset basis: fixed across builds
}

TEST_CASE("service policy: slow_start 0 means off and is allowed", "[config][lb][slow_start]") {
  LoadResult r = load("listeners: [\"127.0.0.1:8080\"]\nservices:\n  web:\n    endpoints: []\n    lb: {slow_start: 0}\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  CHECK(r.config->services[0].policy.lb.slow_start == 0ms);
  CHECK(LoadBalancing{}.slow_start == 0ms);  // the default: off
}

// The config file and the container labels read these settings from one table: the same
// names, the same ranges, the same fields. Check every entry both ways at its bounds.
TEST_CASE("service policy: config keys and labels accept the same values", "[config][labels][lb]") {
  REQUIRE(policy_settings().size() == 15);
  for (const PolicySetting& s : policy_settings()) {
    INFO(s.section << "." << s.name << " / " << s.label);
    CHECK(find_policy_setting(s.section, s.name) == &s);
    CHECK(find_policy_setting_by_label(s.label) == &s);
    const std::string group = s.section == "circuit_breaker" ? "circuit" : std::string(s.section);
    CHECK(s.label == "berth." + group + "." + std::string(s.name));

    auto text = [&](int64_t v) {
      if (s.kind == PolicySetting::Kind::kBool) return std::string(v ? "true" : "false");
      return std::to_string(v) + (s.kind == PolicySetting::Kind::kDuration ? "ms" : "");
    };
    auto via_config = [&](const std::string& value) {
      LoadResult r = load("listeners: [\"127.0.0.1:8080\"]\nservices:\n  web:\n    endpoints: []\n    " +
                          std::string(s.section) + ": {" + std::string(s.name) + ": " + value + "}\n");
      return r.ok() ? std::optional<ServicePolicy>(r.config->services[0].policy) : std::nullopt;
    };
    for (int64_t v : {s.min, s.max}) {
      if (v == std::numeric_limits<int64_t>::max()) continue;
      ServicePolicy from_label;
      CHECK(apply_policy_setting(s, " " + text(v) + " ", from_label));
      auto from_config = via_config(text(v));
      REQUIRE(from_config);
      CHECK(*from_config == from_label);
    }
    if (s.kind == PolicySetting::Kind::kBool) continue;
    std::vector<int64_t> outside = {s.min - 1};
    if (s.max != std::numeric_limits<int64_t>::max()) outside.push_back(s.max + 1);
    for (int64_t v : outside) {
      ServicePolicy untouched;
      CHECK_FALSE(apply_policy_setting(s, text(v), untouched));
      CHECK(untouched == ServicePolicy{});
      CHECK_FALSE(via_config(text(v)));
    }
    ServicePolicy p;
    CHECK_FALSE(apply_policy_setting(s, "many", p));
    CHECK_FALSE(policy_setting_expectation(s).empty());
  }
}
