// Passive health: ejection after consecutive failures, growing ejection time, the ejection cap,
// panic mode, and the health registry keeping state across rebuilds.
#include <catch2/catch.hpp>

#include "proxy/outlier.h"

using namespace berth;

namespace {

std::vector<Service> services_of(size_t n, bool checked) {
  Service s;
  s.name = "svc";
  s.policy.health.enabled = checked;
  s.policy.outlier.consecutive_failures = 3;
  s.policy.outlier.base_ejection = std::chrono::milliseconds(1000);
  for (size_t i = 0; i < n; ++i) {
    Endpoint e;
    e.key = "10.0.0." + std::to_string(i + 1) + ":80";
    s.endpoints.push_back(e);
  }
  return {s};
}

}  // namespace

TEST_CASE("outlier: ejected after N consecutive failures, for a growing time", "[outlier]") {
  HealthRegistry registry;
  auto services = services_of(4, false);
  registry.attach(services);
  const Service& s = services[0];
  const int64_t t = 1'000'000;
  CHECK_FALSE(record_failure(s, 0, t));
  CHECK_FALSE(record_failure(s, 0, t));
  record_success(s.endpoints[0]);  // a success resets the streak
  CHECK_FALSE(record_failure(s, 0, t));
  CHECK_FALSE(record_failure(s, 0, t));
  CHECK(record_failure(s, 0, t));
  CHECK(s.endpoints[0].health->ejected(t + 999));
  CHECK_FALSE(s.endpoints[0].health->ejected(t + 1000));
  // Second ejection: twice as long.
  for (int i = 0; i < 2; ++i) CHECK_FALSE(record_failure(s, 0, t + 2000));
  CHECK(record_failure(s, 0, t + 2000));
  CHECK(s.endpoints[0].health->ejected(t + 2000 + 1999));
  CHECK_FALSE(s.endpoints[0].health->ejected(t + 2000 + 2000));
}

TEST_CASE("outlier: the ejection cap keeps part of the service in", "[outlier]") {
  HealthRegistry registry;
  auto services = services_of(4, false);
  services[0].policy.outlier.max_ejection_percent = 50;
  registry.attach(services);
  const Service& s = services[0];
  int ejected = 0;
  for (size_t i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) ejected += record_failure(s, i, 5000);
  CHECK(ejected == 2);
  std::vector<uint8_t> ok;
  CHECK_FALSE(compute_routable(s, 5000, ok));  // 2 of 4 routable: not below 50%
  CHECK(ok == std::vector<uint8_t>{0, 0, 1, 1});
}

TEST_CASE("panic mode: too few routable instances -> every probed instance", "[outlier]") {
  HealthRegistry registry;
  auto services = services_of(4, true);
  registry.attach(services);
  const Service& s = services[0];
  std::vector<uint8_t> ok;
  // All pending (no probe passed yet): nothing, even in panic.
  CHECK_FALSE(compute_routable(s, 0, ok));
  CHECK(ok == std::vector<uint8_t>{0, 0, 0, 0});
  s.endpoints[0].health->probe = ProbeState::kHealthy;
  s.endpoints[1].health->probe = ProbeState::kUnhealthy;
  s.endpoints[2].health->probe = ProbeState::kUnhealthy;
  CHECK(compute_routable(s, 0, ok));  // 1 of 4 healthy < 50%: panic
  CHECK(ok == std::vector<uint8_t>{1, 1, 1, 0});  // the pending one still gets nothing
  s.endpoints[1].health->probe = ProbeState::kHealthy;
  CHECK_FALSE(compute_routable(s, 0, ok));
  CHECK(ok == std::vector<uint8_t>{1, 1, 0, 0});
}

TEST_CASE("health registry: state survives rebuilds for instances that stay", "[outlier]") {
  HealthRegistry registry;
  auto first = services_of(3, true);
  registry.attach(first);
  first[0].endpoints[1].health->probe = ProbeState::kHealthy;
  auto second = services_of(3, true);
  second[0].endpoints.erase(second[0].endpoints.begin());  // instance 1 leaves
  registry.attach(second);
  CHECK(second[0].endpoints[0].health == first[0].endpoints[1].health);
  CHECK(second[0].endpoints[0].health->probe == ProbeState::kHealthy);
  CHECK(registry.size() == 2);
  auto third = services_of(3, true);  // instance 1 is back: a new instance, pending again
  registry.attach(third);
  CHECK(third[0].endpoints[0].health->probe == ProbeState::kPending);
  CHECK(third[0].endpoints[1].health->probe == ProbeState::kHealthy);
  CHECK(third[0].counters == first[0].counters);
}

TEST_CASE("slow start: the routable set tells when the last ramp ends", "[outlier][slow_start]") {
  HealthRegistry registry;
  auto services = services_of(3, false);
  services[0].policy.lb.slow_start = std::chrono::milliseconds(10'000);
  registry.attach(services);
  const Service& s = services[0];
  // Instances long in service, then instance 2 joins at t = 50,000.
  for (const Endpoint& e : s.endpoints) e.health->routable_since_ms = 0;
  s.endpoints[2].health->routable_since_ms = 50'000;
  std::vector<uint8_t> ok;
  int64_t next = 0, ramp = 0;
  CHECK_FALSE(compute_routable(s, 52'000, ok, &next, &ramp));
  CHECK(ramp == 60'000);
  CHECK(next == 60'000);  // the worker looks again when the ramp is over
  CHECK_FALSE(compute_routable(s, 60'000, ok, &next, &ramp));
  CHECK(ramp == 0);
  CHECK(next == INT64_MAX);

  // Back from an ejection: the ramp starts when the ejection ends.
  s.endpoints[1].health->ejected_until_ms = 70'000;
  compute_routable(s, 65'000, ok, &next, &ramp);
  CHECK(ok == std::vector<uint8_t>{1, 0, 1});
  CHECK(ramp == 0);        // ejected: not routable, so not ramping yet
  CHECK(next == 70'000);   // ...until the ejection ends
  compute_routable(s, 70'000, ok, &next, &ramp);
  CHECK(ramp == 80'000);
  CHECK(s.endpoints[1].health->ramp_start_ms() == 70'000);

  // hash ignores slow start.
  services[0].policy.lb.policy = config::LoadBalancing::Policy::kHash;
  compute_routable(s, 70'000, ok, &next, &ramp);
  CHECK(ramp == 0);
}

TEST_CASE("slow start: newcomers are routable since they joined; checked ones since a probe passes", "[outlier][slow_start]") {
  HealthRegistry registry;
  auto first = services_of(2, false);
  const int64_t before = health_clock_ms();
  registry.attach(first);
  const int64_t since = first[0].endpoints[0].health->routable_since_ms;
  CHECK(since >= before);
  CHECK(since <= health_clock_ms());
  // Instances that stay keep their time; a check added and removed again does not restart a
  // healthy instance, but does start one that never passed a probe.
  auto checked = services_of(3, true);
  registry.attach(checked);
  CHECK(checked[0].endpoints[0].health->routable_since_ms == since);
  CHECK(checked[0].endpoints[2].health->probe == ProbeState::kPending);
  checked[0].endpoints[0].health->probe = ProbeState::kHealthy;
  checked[0].endpoints[2].health->routable_since_ms = 0;
  auto unchecked = services_of(3, false);
  registry.attach(unchecked);
  CHECK(unchecked[0].endpoints[0].health->routable_since_ms == since);
  CHECK(unchecked[0].endpoints[2].health->routable_since_ms >= before);
}

TEST_CASE("health registry: shared services keep their state; fresh ones get the same per address", "[outlier][registry]") {
  HealthRegistry registry;
  // Pass 1: one service, fresh.
  auto a = std::make_shared<Service>(services_of(2, false)[0]);
  std::vector<ServicePtr> snapshot{a};
  registry.attach(snapshot, {a.get()});
  REQUIRE(a->endpoints[0].health);
  REQUIRE(a->counters);
  a->endpoints[0].health->ejected_until_ms = 123;  // state that must survive

  // Pass 2: the same object again (not fresh), plus a fresh service sharing one address.
  Service other_value = services_of(1, false)[0];
  other_value.name = "other";
  auto other = std::make_shared<Service>(other_value);
  snapshot = {a, other};
  registry.attach(snapshot, {other.get()});
  CHECK(other->endpoints[0].health == a->endpoints[0].health);
  CHECK(other->endpoints[0].health->ejected_until_ms == 123);
  CHECK(registry.size() == 2);

  // Pass 3: `other` alone: the address only `a` had is forgotten, the one both had stays.
  snapshot = {other};
  registry.attach(snapshot, {});
  CHECK(registry.size() == 1);
  CHECK(other->endpoints[0].health->ejected_until_ms == 123);

  // Adding a check to a shared service's address through a fresh service marks it pending.
  auto checked = std::make_shared<Service>(services_of(1, true)[0]);
  snapshot = {other, checked};
  registry.attach(snapshot, {checked.get()});
  CHECK(checked->endpoints[0].health == other->endpoints[0].health);
  CHECK(other->endpoints[0].health->probe == ProbeState::kPending);
}
