// berth.lb*, berth.health.*, berth.outlier.*, berth.retry.* and berth.circuit.* labels -> the
// service policy, and the builder carrying it into the discovered service.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "discovery/docker_labels.h"
#include "discovery/label_builder.h"

using namespace berth::discovery;
using namespace std::chrono_literals;
using berth::config::LoadBalancing;

namespace {

ContainerFacts host_container(char id, const std::string& name, std::map<std::string, std::string> labels) {
  ContainerFacts c;
  c.id = std::string(64, id);
  c.name = name;
  c.labels = std::move(labels);
  c.network_mode = "host";
  c.running = true;
  return c;
}

}  // namespace

TEST_CASE("lb labels: policy, hash key, cookie and health check", "[docker][labels][lb]") {
  auto spec = parse_container_labels(
      host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "8080"},
                                    {"berth.lb", "hash"}, {"berth.lb.hash_on", "cookie:uid"},
                                    {"berth.lb.cookie", "pin"}, {"berth.health.path", "/healthz"},
                                    {"berth.health.interval", "2s"}, {"berth.health.timeout", "300ms"},
                                    {"berth.health.healthy_threshold", "2"},
                                    {"berth.health.unhealthy_threshold", "3"},
                                    {"berth.health.status", "200-204"}, {"berth.health.port", "9000"}}),
      {});
  REQUIRE(spec.kind == ContainerSpec::Kind::kRouted);
  const auto& p = spec.policy;
  CHECK(p.lb.policy == LoadBalancing::Policy::kHash);
  CHECK(p.lb.hash_on == LoadBalancing::HashOn::kCookie);
  CHECK(p.lb.hash_name == "uid");
  CHECK(p.lb.cookie == "pin");
  CHECK(p.health.enabled);
  CHECK(p.health.path == "/healthz");
  CHECK(p.health.interval == 2s);
  CHECK(p.health.timeout == 300ms);
  CHECK(p.health.healthy_threshold == 2);
  CHECK(p.health.unhealthy_threshold == 3);
  CHECK((p.health.status_min == 200 && p.health.status_max == 204));
  CHECK(p.health.port == 9000);
}

TEST_CASE("lb labels: bad values reject the container, naming the label", "[docker][labels][lb]") {
  const std::pair<std::string, std::string> cases[] = {
      {"berth.lb", "random"},           {"berth.lb.hash_on", "ip"},     {"berth.lb.cookie", "a;b"},
      {"berth.health.interval", "0s"},  {"berth.health.status", "2xx"}, {"berth.health.port", "0"},
      {"berth.health.path", "healthz"}, {"berth.health.bogus", "1"},    {"berth.lb.bogus", "1"},
  };
  for (const auto& [label, value] : cases) {
    INFO(label << "=" << value);
    auto spec = parse_container_labels(
        host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"},
                                      {label, value}}),
        {});
    CHECK(spec.kind == ContainerSpec::Kind::kRejected);
    CHECK(spec.label == label);
  }
}

TEST_CASE("policy labels: slow start, outlier detection, retries and circuit breaking", "[docker][labels][lb]") {
  auto spec = parse_container_labels(
      host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "8080"},
                                    {"berth.lb.slow_start", "30s"},
                                    {"berth.outlier.consecutive_failures", "7"},
                                    {"berth.outlier.base_ejection", "2s"},
                                    {"berth.outlier.max_ejection_percent", "25"},
                                    {"berth.outlier.panic_threshold_percent", "0"},
                                    {"berth.retry.attempts", "2"},
                                    {"berth.retry.non_idempotent", "true"},
                                    {"berth.retry.budget_percent", "50"},
                                    {"berth.retry.min_retries", "10"},
                                    {"berth.retry.replay_body_bytes", "65536"},
                                    {"berth.circuit.max_requests", "100"},
                                    {"berth.circuit.max_pending", "20"},
                                    {"berth.circuit.service_max_requests", "1000"},
                                    {"berth.circuit.service_max_pending", " 200 "}}),
      {});
  INFO(spec.reason);
  REQUIRE(spec.kind == ContainerSpec::Kind::kRouted);
  const auto& p = spec.policy;
  CHECK(p.lb.policy == LoadBalancing::Policy::kRoundRobin);
  CHECK(p.lb.slow_start == 30s);
  CHECK(p.outlier.consecutive_failures == 7);
  CHECK(p.outlier.base_ejection == 2s);
  CHECK(p.outlier.max_ejection_percent == 25);
  CHECK(p.outlier.panic_threshold_percent == 0);
  CHECK(p.retry.attempts == 2);
  CHECK(p.retry.non_idempotent);
  CHECK(p.retry.budget_percent == 50);
  CHECK(p.retry.min_retries == 10);
  CHECK(p.retry.replay_body_bytes == 65536);
  CHECK(p.circuit.max_requests == 100);
  CHECK(p.circuit.max_pending == 20);
  CHECK(p.circuit.service_max_requests == 1000);
  CHECK(p.circuit.service_max_pending == 200);
  CHECK_FALSE(p.health.enabled);  // only berth.health.* turns the check on
}

TEST_CASE("policy labels: bad values reject the container with the label and what it accepts", "[docker][labels][lb]") {
  struct Case {
    const char* label;
    const char* value;
    const char* reason;
  };
  const Case cases[] = {
      {"berth.lb.slow_start", "2h", "berth.lb.slow_start=\"2h\": expected a duration from 0 to 1h"},
      {"berth.lb.slow_start", "fast", "expected a duration"},
      {"berth.outlier.consecutive_failures", "1001", "expected an integer from 0 to 1000"},
      {"berth.outlier.base_ejection", "0s", "expected a duration greater than 0"},
      {"berth.outlier.max_ejection_percent", "101", "expected an integer from 0 to 100"},
      {"berth.outlier.panic_threshold_percent", "-1", "expected an integer from 0 to 100"},
      {"berth.retry.attempts", "0", "expected an integer from 1 to 10"},
      {"berth.retry.attempts", "3x", "expected an integer from 1 to 10"},
      {"berth.retry.non_idempotent", "maybe", "expected true or false"},
      {"berth.retry.budget_percent", "200", "expected an integer from 0 to 100"},
      {"berth.retry.min_retries", "100001", "expected an integer from 0 to 100000"},
      {"berth.retry.replay_body_bytes", "2000000", "expected an integer from 0 to 1048576"},
      {"berth.circuit.max_requests", "many", "expected an integer from 0 to 10000000"},
      {"berth.circuit.service_max_pending", "", "expected an integer from 0 to 10000000"},
      {"berth.retry.tries", "2", "unknown label berth.retry.tries (expected berth.retry.attempts, .non_idempotent"},
      {"berth.circuit.max", "2", "unknown label berth.circuit.max (expected berth.circuit.max_requests, .max_pending"},
      {"berth.outlier.x", "2", "(expected berth.outlier.consecutive_failures, .base_ejection"},
      {"berth.circuit_breaker.max_requests", "2", "unknown label berth.circuit_breaker.max_requests"},
  };
  for (const Case& c : cases) {
    INFO(c.label << "=" << c.value);
    auto spec = parse_container_labels(
        host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"},
                                      {c.label, c.value}}),
        {});
    CHECK(spec.kind == ContainerSpec::Kind::kRejected);
    CHECK(spec.label == c.label);
    INFO(spec.reason);
    CHECK(spec.reason.find(c.reason) != std::string::npos);
  }
}

TEST_CASE("lb labels: the builder gives the service its first container's policy", "[docker][builder][lb]") {
  ContainerCache cache;
  for (auto c : {host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"},
                                               {"berth.port", "8081"}, {"berth.service", "web"},
                                               {"berth.lb", "sticky"}, {"berth.health.path", "/hc"}}),
                 host_container('b', "web-2", {{"berth.enable", "true"}, {"berth.host", "a.test"},
                                               {"berth.port", "8082"}, {"berth.service", "web"}})})
    cache[c.id] = c;
  DiscoveredSet set = build_discovered_set(cache, {});
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0]->endpoints.size() == 2);
  CHECK(set.services[0]->policy.lb.policy == LoadBalancing::Policy::kSticky);
  CHECK(set.services[0]->policy.health.path == "/hc");
  // A policy change is a change of the set (so it gets published).
  DiscoveredSet other = set;
  auto changed = std::make_shared<berth::Service>(*set.services[0]);
  changed->policy.lb.policy = LoadBalancing::Policy::kRoundRobin;
  other.services[0] = changed;
  CHECK_FALSE(same_set(set, other));
}
