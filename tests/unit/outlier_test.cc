// Passive health: ejection after consecutive failures, growing ejection time, the ejection cap,
// panic mode, and the health registry keeping state across rebuilds.
#include <catch2/catch.hpp>

#include <uv.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "proxy/health/health_registry.h"
#include "proxy/health/health_checker.h"
#include "proxy/health/outlier.h"

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

TEST_CASE("locality: other hosts' instances stand by while one of this host's is routable", "[outlier]") {
  HealthRegistry registry;
  auto services = services_of(4, false);
  services[0].endpoints[2].remote = true;
  services[0].endpoints[3].remote = true;
  registry.attach(services);
  const Service& s = services[0];
  std::vector<uint8_t> ok;
  CHECK_FALSE(compute_routable(s, 5000, ok));
  CHECK(ok == std::vector<uint8_t>{kRoutable, kRoutable, kStandby, kStandby});
  // Both local instances ejected: the remote ones take the traffic.
  for (size_t i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k) record_failure(s, i, 5000);
  CHECK_FALSE(compute_routable(s, 5000, ok));
  CHECK(ok == std::vector<uint8_t>{0, 0, kRoutable, kRoutable});
  // Back after the ejection: local first again.
  CHECK_FALSE(compute_routable(s, 7000, ok));
  CHECK(ok == std::vector<uint8_t>{kRoutable, kRoutable, kStandby, kStandby});
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

TEST_CASE("health registry: each service keeps its own state for an address another service lists too", "[outlier][registry]") {
  HealthRegistry registry;
  // Update 1: one service enters.
  auto a = std::make_shared<Service>(services_of(2, false)[0]);
  registry.update({a.get()}, {});
  REQUIRE(a->endpoints[0].health);
  REQUIRE(a->counters);
  a->endpoints[0].health->ejected_until_ms = 123;  // a's own ejection

  // Update 2: `a` stays as it is (not passed again); another service on one of its addresses
  // enters. a's ejection (its outlier rules, its health path) is not the other service's.
  Service other_value = services_of(1, false)[0];
  other_value.name = "other";
  auto other = std::make_shared<Service>(other_value);
  registry.update({other.get()}, {});
  REQUIRE(other->endpoints[0].health);
  CHECK(other->endpoints[0].health != a->endpoints[0].health);
  CHECK(other->endpoints[0].health->ejected_until_ms == 0);
  CHECK(a->endpoints[0].health->ejected_until_ms == 123);
  CHECK(registry.size() == 3);
  other->endpoints[0].health->ejected_until_ms = 456;

  // Update 3: `a` leaves: its instances are forgotten, the other service's stays as it was.
  registry.update({}, {a.get()});
  CHECK(registry.size() == 1);
  CHECK(registry.service_count() == 1);
  CHECK(other->endpoints[0].health->ejected_until_ms == 456);

  // A check on the address through a service of another name leaves "other" unchecked.
  auto checked = std::make_shared<Service>(services_of(1, true)[0]);
  registry.update({checked.get()}, {});
  CHECK(checked->endpoints[0].health != other->endpoints[0].health);
  CHECK(checked->endpoints[0].health->probe == ProbeState::kPending);
  CHECK(other->endpoints[0].health->probe == ProbeState::kUnchecked);
  CHECK_FALSE(registry.changed_known());  // a newcomer only
}

TEST_CASE("health registry: a service replaced by a new object keeps its health and counters", "[outlier][registry]") {
  HealthRegistry registry;
  auto old_svc = std::make_shared<Service>(services_of(2, true)[0]);
  registry.update({old_svc.get()}, {});
  const auto health = old_svc->endpoints[0].health;
  const auto counters = old_svc->counters;
  health->probe = ProbeState::kHealthy;
  health->consecutive_failures = 2;
  counters->requests = 7;

  // The new object: same name, the first address stays, the second is replaced by a third.
  auto new_svc = std::make_shared<Service>(services_of(1, true)[0]);
  Endpoint third;
  third.key = "10.0.0.3:80";
  new_svc->endpoints.push_back(third);
  registry.update({new_svc.get()}, {old_svc.get()});
  CHECK(new_svc->endpoints[0].health == health);
  CHECK(new_svc->endpoints[0].health->probe == ProbeState::kHealthy);
  CHECK(new_svc->endpoints[0].health->consecutive_failures == 2);
  CHECK(new_svc->counters == counters);
  CHECK(new_svc->counters->requests == 7);
  CHECK(new_svc->endpoints[1].health->probe == ProbeState::kPending);  // a newcomer, checked
  CHECK(registry.size() == 2);  // 10.0.0.2 is forgotten
  CHECK(registry.service_count() == 1);
}

TEST_CASE("health registry: the last object of a service listing an address forgets it", "[outlier][registry]") {
  HealthRegistry registry;
  // Two published objects of one service ("svc") and another service, on one address.
  auto a = std::make_shared<Service>(services_of(1, false)[0]);
  auto twin = std::make_shared<Service>(services_of(1, false)[0]);
  Service b_value = services_of(1, false)[0];
  b_value.name = "b";
  auto b = std::make_shared<Service>(b_value);
  registry.update({a.get(), twin.get(), b.get()}, {});
  const auto health = a->endpoints[0].health;  // held, so a new one cannot reuse its address
  const auto counters = a->counters;
  CHECK(twin->endpoints[0].health == health);
  CHECK(b->endpoints[0].health != health);
  CHECK(registry.size() == 2);
  health->ejections = 3;

  registry.update({}, {a.get()});  // twin still lists it
  CHECK(registry.size() == 2);
  CHECK(registry.service_count() == 2);
  CHECK(twin->endpoints[0].health->ejections == 3);
  registry.update({}, {twin.get()});
  CHECK(registry.size() == 1);  // b's own
  CHECK(registry.service_count() == 1);
  registry.update({}, {b.get()});
  CHECK(registry.size() == 0);
  CHECK(registry.service_count() == 0);

  // Back again: a new instance and a new service, with state of their own.
  auto again = std::make_shared<Service>(services_of(1, false)[0]);
  registry.update({again.get()}, {});
  CHECK(again->endpoints[0].health != health);
  CHECK(again->endpoints[0].health->ejections == 0);
  CHECK(again->counters != counters);
  CHECK(registry.size() == 1);
}

TEST_CASE("health registry: a check configured and removed through update()", "[outlier][registry]") {
  HealthRegistry registry;
  // Two objects of one service published at once ("svc"): an unchecked one stays, checked ones
  // come and go.
  auto plain = std::make_shared<Service>(services_of(1, false)[0]);
  const int64_t before = health_clock_ms();
  registry.update({plain.get()}, {});
  const auto& health = plain->endpoints[0].health;
  CHECK(health->probe == ProbeState::kUnchecked);
  CHECK_FALSE(registry.changed_known());  // a newcomer only
  CHECK(health->routable_since_ms >= before);
  health->routable_since_ms = 1;

  // A first check configured: pending.
  auto c1 = std::make_shared<Service>(services_of(1, true)[0]);
  registry.update({c1.get()}, {});
  CHECK(health->probe == ProbeState::kPending);
  CHECK(health->routable_since_ms == 1);
  CHECK(registry.changed_known());  // `plain` lists it too: its view changed
  health->probe = ProbeState::kHealthy;

  // Another checked service replaces it: still checked all along, no change.
  auto c2 = std::make_shared<Service>(services_of(1, true)[0]);
  registry.update({c2.get()}, {c1.get()});
  CHECK(health->probe == ProbeState::kHealthy);
  CHECK_FALSE(registry.changed_known());

  // The last check removed from a healthy instance: unchecked, its ramp not restarted.
  registry.update({}, {c2.get()});
  CHECK(health->probe == ProbeState::kUnchecked);
  CHECK(health->routable_since_ms == 1);
  CHECK(registry.changed_known());

  // Checked again, never passes, check removed by a replacement without it: routable from now.
  auto c3 = std::make_shared<Service>(services_of(1, true)[0]);
  registry.update({c3.get()}, {});
  CHECK(health->probe == ProbeState::kPending);
  auto u3 = std::make_shared<Service>(services_of(1, false)[0]);
  const int64_t removed_at = health_clock_ms();
  registry.update({u3.get()}, {c3.get()});
  CHECK(health->probe == ProbeState::kUnchecked);
  CHECK(health->routable_since_ms >= removed_at);

  // An unhealthy one whose check goes: routable from now as well.
  auto c4 = std::make_shared<Service>(services_of(1, true)[0]);
  registry.update({c4.get()}, {u3.get()});
  CHECK(health->probe == ProbeState::kPending);
  health->probe = ProbeState::kUnhealthy;
  health->routable_since_ms = 1;
  registry.update({}, {c4.get()});
  CHECK(health->probe == ProbeState::kUnchecked);
  CHECK(health->routable_since_ms >= removed_at);

  // A newcomer listed by a checked and an unchecked object of one service at once: pending.
  // "svc"'s own instance at 10.0.0.1 is not another service's business: still unchecked.
  auto mixed_plain = std::make_shared<Service>(services_of(2, false)[0]);
  mixed_plain->name = "mixed";
  auto mixed_checked = std::make_shared<Service>(services_of(2, true)[0]);
  mixed_checked->name = "mixed";
  registry.update({mixed_plain.get(), mixed_checked.get()}, {});
  CHECK(mixed_plain->endpoints[1].health == mixed_checked->endpoints[1].health);
  CHECK(mixed_plain->endpoints[1].health->probe == ProbeState::kPending);
  CHECK(mixed_plain->endpoints[0].health != health);
  CHECK(health->probe == ProbeState::kUnchecked);
  CHECK_FALSE(registry.changed_known());
}

TEST_CASE("health registry: counters and health brought along by an unknown service are kept", "[outlier][registry]") {
  HealthRegistry registry;
  auto s = std::make_shared<Service>(services_of(1, false)[0]);
  auto counters = std::make_shared<ServiceCounters>();
  auto health = std::make_shared<EndpointHealth>();
  health->ejected_until_ms = 77;
  s->counters = counters;
  s->endpoints[0].health = health;
  registry.update({s.get()}, {});
  CHECK(s->counters == counters);
  CHECK(s->endpoints[0].health == health);
  CHECK(health->ejected_until_ms == 77);

  // Once known, the registry's own win over what another newcomer brings.
  auto t = std::make_shared<Service>(services_of(1, false)[0]);
  t->counters = std::make_shared<ServiceCounters>();
  t->endpoints[0].health = std::make_shared<EndpointHealth>();
  registry.update({t.get()}, {});
  CHECK(t->counters == counters);
  CHECK(t->endpoints[0].health == health);
}

TEST_CASE("health registry: a confused caller does not corrupt the counts", "[outlier][registry]") {
  HealthRegistry registry;
  auto a = std::make_shared<Service>(services_of(2, false)[0]);
  auto b = std::make_shared<Service>(services_of(1, false)[0]);
  b->name = "b";
  registry.update({a.get(), b.get()}, {});
  registry.update({a.get()}, {});  // added twice: counted once
  registry.update({}, {a.get()});
  registry.update({}, {a.get()});  // removed twice, or never added: ignored
  auto never = std::make_shared<Service>(services_of(1, false)[0]);
  registry.update({}, {never.get()});
  CHECK(registry.size() == 1);  // b's address only
  CHECK(registry.service_count() == 1);
  auto c = std::make_shared<Service>(services_of(3, false)[0]);
  registry.update({c.get()}, {c.get()});  // in both: not published
  CHECK(c->endpoints[2].health);
  CHECK(registry.size() == 1);
  registry.update({}, {b.get()});
  CHECK(registry.size() == 0);
}

TEST_CASE("health registry: a service replaced one for one counts as if counted whole", "[outlier][registry]") {
  // Two registries see the same random changes of three services (two share a name). One gets
  // each replacement paired (the new object and the one it replaces, in order); the other gets
  // it unpaired (a never-published object in `removed` makes the lists unequal), so it counts
  // every endpoint in and out. They must agree on every instance's state, on which instances
  // keep their state object, and on what they know.
  HealthRegistry paired, whole;
  std::mt19937 rng(20261203);
  constexpr int kSlots = 3;
  std::shared_ptr<Service> a[kSlots], b[kSlots];
  auto never = std::make_shared<Service>();
  never->name = "never";
  // service + key -> state object at the last step (held: a new object cannot take a freed one's
  // address)
  std::map<std::string, std::shared_ptr<EndpointHealth>> kept_a, kept_b;
  for (int step = 0; step < 3000; ++step) {
    INFO("step " << step);
    const int slot = static_cast<int>(rng() % kSlots);
    Service next;
    if (a[slot]) next = *a[slot];
    next.name = "svc" + std::to_string(slot % 2);
    for (Endpoint& e : next.endpoints) e.health.reset();  // what a source hands over
    const unsigned op = rng() % 8;
    if (op < 3 || next.endpoints.empty()) {  // an instance joins, anywhere
      Endpoint e;
      e.key = "10.0.0." + std::to_string(rng() % 12 + 1) + ":80";
      const bool listed = std::any_of(next.endpoints.begin(), next.endpoints.end(),
                                      [&](const Endpoint& x) { return x.key == e.key; });
      if (!listed) next.endpoints.insert(next.endpoints.begin() + static_cast<long>(rng() % (next.endpoints.size() + 1)), e);
    } else if (op < 6) {  // one leaves
      next.endpoints.erase(next.endpoints.begin() + static_cast<long>(rng() % next.endpoints.size()));
    } else if (op == 6) {  // the check is switched
      next.policy.health.enabled = !next.policy.health.enabled;
    } else if (a[slot]) {  // the service leaves
      paired.update({}, {a[slot].get()});
      whole.update({}, {b[slot].get()});
      a[slot].reset();
      b[slot].reset();
      continue;
    }
    auto na = std::make_shared<Service>(next), nb = std::make_shared<Service>(next);
    if (a[slot]) {
      paired.update({na.get()}, {a[slot].get()});
      whole.update({nb.get()}, {b[slot].get(), never.get()});
    } else {
      paired.update({na.get()}, {});
      whole.update({nb.get()}, {});
    }
    a[slot] = na;
    b[slot] = nb;
    REQUIRE(paired.size() == whole.size());
    REQUIRE(paired.service_count() == whole.service_count());
    std::map<std::string, std::shared_ptr<EndpointHealth>> now_a, now_b;
    for (int i = 0; i < kSlots; ++i) {
      if (!a[i]) continue;
      REQUIRE(a[i]->counters);
      for (size_t j = 0; j < a[i]->endpoints.size(); ++j) {
        const Endpoint& ea = a[i]->endpoints[j];
        const Endpoint& eb = b[i]->endpoints[j];
        REQUIRE(ea.health);
        REQUIRE(eb.health);
        CHECK(ea.health->probe.load() == eb.health->probe.load());
        now_a[a[i]->name + ' ' + ea.key] = ea.health;
        now_b[b[i]->name + ' ' + eb.key] = eb.health;
      }
    }
    std::set<const EndpointHealth*> distinct;
    for (const auto& [key, h] : now_a) distinct.insert(h.get());
    REQUIRE(distinct.size() == now_a.size());  // "svc0" and "svc1" on one address: two states
    for (const auto& [key, h] : now_a) {
      // one state object per service name and address, whichever object of it lists it
      for (int i = 0; i < kSlots; ++i)
        if (a[i])
          for (const Endpoint& e : a[i]->endpoints)
            if (a[i]->name + ' ' + e.key == key) REQUIRE(e.health == h);
      const bool same_a = kept_a.count(key) && kept_a[key] == h;
      const bool same_b = kept_b.count(key) && kept_b[key] == now_b[key];
      CHECK(same_a == same_b);
    }
    // States that differ between instances, the same in both registries: a state object
    // mixed up shows as a difference at a later step.
    for (const auto& [key, h] : now_a) {
      if (rng() % 3) continue;
      h->probe.store(ProbeState::kHealthy);
      now_b[key]->probe.store(ProbeState::kHealthy);
    }
    kept_a = std::move(now_a);
    kept_b = std::move(now_b);
  }
}

TEST_CASE("health registry: one service changing among 1,000 touches only that one", "[outlier][registry]") {
  HealthRegistry registry;
  std::vector<std::shared_ptr<Service>> all;
  std::vector<Service*> added;
  for (int i = 0; i < 1000; ++i) {
    auto s = std::make_shared<Service>();
    s->name = "svc" + std::to_string(i);
    s->policy.health.enabled = i % 2 == 0;
    for (int j = 0; j < 2; ++j) {
      Endpoint e;
      e.key = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + "." + std::to_string(j + 1) + ":80";
      s->endpoints.push_back(e);
    }
    added.push_back(s.get());
    all.push_back(std::move(s));
  }
  registry.update(added, {});
  CHECK(registry.size() == 2000);
  CHECK(registry.service_count() == 1000);
  std::vector<EndpointHealth*> before;
  for (const auto& s : all)
    for (const Endpoint& e : s->endpoints) {
      e.health->probe = ProbeState::kHealthy;
      e.health->routable_since_ms = 5;
      before.push_back(e.health.get());
    }

  // Service 500 is replaced: its first address stays, its second is replaced.
  auto replacement = std::make_shared<Service>(*all[500]);
  replacement->endpoints[1].key = "192.168.0.1:80";
  replacement->endpoints[1].health = nullptr;
  registry.update({replacement.get()}, {all[500].get()});
  CHECK(registry.size() == 2000);
  CHECK(registry.service_count() == 1000);
  CHECK(replacement->endpoints[0].health.get() == before[1000]);
  CHECK(replacement->endpoints[1].health.get() != before[1001]);
  CHECK(replacement->endpoints[1].health->probe == ProbeState::kPending);  // svc500 is checked
  CHECK(replacement->counters == all[500]->counters);
  size_t i = 0;
  for (const auto& s : all)
    for (const Endpoint& e : s->endpoints) {
      if (s != all[500]) {
        CHECK(e.health.get() == before[i]);
        CHECK(e.health->probe == ProbeState::kHealthy);
        CHECK(e.health->routable_since_ms == 5);
      }
      ++i;
    }
  // The others are still known: a new object for one of them gets the same state.
  auto again = std::make_shared<Service>(*all[7]);
  for (Endpoint& e : again->endpoints) e.health = nullptr;
  again->counters = nullptr;
  registry.update({again.get()}, {all[7].get()});
  CHECK(again->endpoints[1].health.get() == before[15]);
  CHECK(again->counters == all[7]->counters);
}

TEST_CASE("health checker: an incremental update looks only at the changed checked services", "[outlier][health_checker]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  auto make = [](const char* name, const char* path, std::vector<std::string> keys) {
    auto s = std::make_shared<Service>();
    s->name = name;
    s->policy.health.enabled = path != nullptr;
    if (path) s->policy.health.path = path;
    for (std::string& key : keys) {
      Endpoint e;
      e.key = std::move(key);
      REQUIRE(resolve_endpoint_key(e));
      s->endpoints.push_back(std::move(e));
    }
    return s;
  };
  const std::string a = "127.0.0.1:9", b = "127.0.0.2:9", c = "127.0.0.3:9";
  HealthRegistry registry;
  auto first = make("first", "/a", {a, b});
  auto plain = make("plain", nullptr, {b, c});
  auto second = make("second", "/b", {b});
  registry.update({first.get(), plain.get(), second.get()}, {});
  std::vector<ServicePtr> services{first, plain, second};
  HealthChecker checker(&loop);
  checker.update(*RouteTable::build({}, services, 1));
  // Each checked service probes its own instances with its own check, b twice.
  CHECK(checker.size() == 3);
  REQUIRE(checker.check_of("first", b));
  CHECK(checker.check_of("first", b)->path == "/a");
  REQUIRE(checker.check_of("second", b));
  CHECK(checker.check_of("second", b)->path == "/b");
  CHECK_FALSE(checker.check_of("plain", b));
  CHECK_FALSE(checker.check_of("plain", c));
  CHECK_FALSE(checker.check_of("second", a));
  const config::HealthCheck* probing_b = checker.check_of("second", b);

  // An unchecked service replaced: nothing to do.
  auto plain2 = make("plain", nullptr, {b, c});
  registry.update({plain2.get()}, {plain.get()});
  services = {first, plain2, second};
  checker.update(*RouteTable::build({}, services, 2), {plain2}, {plain.get()});
  CHECK(checker.size() == 3);
  CHECK(checker.check_of("second", b) == probing_b);

  // The first checked service leaves: its probes stop, second's probe of b goes on as it was.
  registry.update({}, {first.get()});
  services = {plain2, second};
  checker.update(*RouteTable::build({}, services, 3), {}, {first.get()});
  CHECK(checker.size() == 1);
  CHECK_FALSE(checker.check_of("first", a));
  CHECK_FALSE(checker.check_of("first", b));
  CHECK(checker.check_of("second", b) == probing_b);

  // It comes back with another check: its probes start with it, second's stays.
  auto first2 = make("first", "/c", {a, b});
  registry.update({first2.get()}, {});
  services = {plain2, second, first2};
  checker.update(*RouteTable::build({}, services, 4), {first2}, {});
  CHECK(checker.size() == 3);
  REQUIRE(checker.check_of("first", a));
  CHECK(checker.check_of("first", a)->path == "/c");
  CHECK(checker.check_of("first", b)->path == "/c");
  CHECK(checker.check_of("second", b) == probing_b);

  // The second service goes: its probe stops. The unchecked ones stay unprobed.
  registry.update({}, {second.get()});
  services = {plain2, first2};
  checker.update(*RouteTable::build({}, services, 5), {}, {second.get()});
  CHECK(checker.size() == 2);
  CHECK_FALSE(checker.check_of("second", b));
  REQUIRE(checker.check_of("first", b));
  CHECK(checker.check_of("first", b)->path == "/c");
  CHECK_FALSE(checker.check_of("plain", c));

  // The same as a full recompute would give.
  checker.update(*RouteTable::build({}, services, 6));
  CHECK(checker.size() == 2);
  CHECK(checker.check_of("first", a)->path == "/c");
  CHECK(checker.check_of("first", b)->path == "/c");

  checker.stop();  // before any probe ran: the loop only closes the handles
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
