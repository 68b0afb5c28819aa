// Load-balancing selectors, without sockets: fixture services and a fake EndpointStatus.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "proxy/lb.h"

using namespace berth;

namespace {

Service service_of(const std::vector<uint32_t>& weights, config::LoadBalancing::Policy policy,
                   const std::string& name = "svc") {
  Service s;
  s.name = name;
  s.policy.lb.policy = policy;
  for (size_t i = 0; i < weights.size(); ++i) {
    Endpoint e;
    e.key = "10.0.0." + std::to_string(i + 1) + ":8080";
    e.weight = weights[i];
    s.endpoints.push_back(e);
  }
  return s;
}

struct FakeStatus : EndpointStatus {
  std::vector<uint8_t> ok;
  std::vector<uint32_t> in_flight;
  explicit FakeStatus(size_t n) : ok(n, 1), in_flight(n, 0) {}
  bool eligible(size_t i) const override { return ok[i] != 0; }
  uint32_t active(size_t i) const override { return in_flight[i]; }
};

using Policy = config::LoadBalancing::Policy;

}  // namespace

TEST_CASE("round robin: weights 1:2:3 over 6,000 picks within 3 points", "[lb]") {
  Service s = service_of({1, 2, 3}, Policy::kRoundRobin);
  auto sel = make_selector(s, 1);
  FakeStatus status(3);
  int counts[3] = {};
  for (int i = 0; i < 6000; ++i) {
    int k = sel->pick(PickKey{}, status);
    REQUIRE(k >= 0);
    ++counts[k];
  }
  const double expected[3] = {100.0 / 6, 200.0 / 6, 300.0 / 6};
  for (int k = 0; k < 3; ++k) CHECK(std::abs(counts[k] * 100.0 / 6000 - expected[k]) <= 3.0);
}

TEST_CASE("round robin skips ineligible endpoints and keeps the others' proportions", "[lb]") {
  Service s = service_of({1, 2, 3}, Policy::kRoundRobin);
  auto sel = make_selector(s, 1);
  FakeStatus status(3);
  status.ok[2] = 0;
  int counts[3] = {};
  for (int i = 0; i < 300; ++i) ++counts[sel->pick(PickKey{}, status)];
  CHECK(counts[0] == 100);
  CHECK(counts[1] == 200);
  CHECK(counts[2] == 0);
  status.ok = {0, 0, 0};
  CHECK(sel->pick(PickKey{}, status) == -1);
}

TEST_CASE("least request: weights spread traffic when idle", "[lb]") {
  Service s = service_of({1, 2, 3}, Policy::kLeastRequest);
  auto sel = make_selector(s, 42);
  FakeStatus status(3);
  int counts[3] = {};
  for (int i = 0; i < 60000; ++i) ++counts[sel->pick(PickKey{}, status)];
  // Two weighted draws, ties to the first: still roughly 1:2:3.
  CHECK(counts[0] < counts[1]);
  CHECK(counts[1] < counts[2]);
}

TEST_CASE("least request: P2C with skewed active counts favours the idle one", "[lb]") {
  Service s = service_of({1, 1, 1, 1}, Policy::kLeastRequest);
  auto sel = make_selector(s, 7);
  FakeStatus status(4);
  status.in_flight = {20, 20, 0, 20};
  int counts[4] = {};
  for (int i = 0; i < 10000; ++i) ++counts[sel->pick(PickKey{}, status)];
  // Endpoint 2 wins every draw it is part of: 1 - (3/4)^2 = 7/16 of all picks.
  CHECK(counts[2] > 4000);
  for (int k : {0, 1, 3}) CHECK(counts[k] < counts[2] / 2);

  FakeStatus two(2);
  Service pair = service_of({1, 1}, Policy::kLeastRequest);
  auto p = make_selector(pair, 9);
  two.in_flight = {5, 1};
  int c[2] = {};
  for (int i = 0; i < 1000; ++i) ++c[p->pick(PickKey{}, two)];
  CHECK(c[1] > 700);
  two.ok[1] = 0;
  CHECK(p->pick(PickKey{}, two) == 0);
}

TEST_CASE("ring hash: the same key goes to the same endpoint", "[lb]") {
  Service s = service_of({1, 1, 1, 1, 1}, Policy::kHash);
  auto sel = make_selector(s, 1);
  FakeStatus status(5);
  std::set<int> used;
  for (int k = 0; k < 200; ++k) {
    PickKey key{hash_bytes("client-" + std::to_string(k)), true};
    int first = sel->pick(key, status);
    REQUIRE(first >= 0);
    used.insert(first);
    for (int again = 0; again < 3; ++again) CHECK(sel->pick(key, status) == first);
  }
  CHECK(used.size() == 5);
}

TEST_CASE("ring hash: removing one of 5 instances keeps at least 75% of 1,000 keys", "[lb]") {
  Service five = service_of({1, 1, 1, 1, 1}, Policy::kHash);
  Service four = five;
  four.endpoints.erase(four.endpoints.begin() + 2);  // a new snapshot without instance 3
  RingHash before(five), after(four);
  FakeStatus s5(5), s4(4);
  int kept = 0, moved_from_others = 0;
  for (int k = 0; k < 1000; ++k) {
    PickKey key{hash_bytes("user-" + std::to_string(k)), true};
    const std::string& a = five.endpoints[static_cast<size_t>(before.pick(key, s5))].key;
    const std::string& b = four.endpoints[static_cast<size_t>(after.pick(key, s4))].key;
    if (a == b) ++kept;
    else if (a != five.endpoints[2].key) ++moved_from_others;
  }
  INFO("kept " << kept << " of 1000");
  CHECK(kept >= 750);
  CHECK(moved_from_others == 0);  // only the removed instance's keys move
  // An ineligible (unhealthy) instance behaves the same way without a rebuild.
  s5.ok[2] = 0;
  for (int k = 0; k < 1000; ++k) {
    PickKey key{hash_bytes("user-" + std::to_string(k)), true};
    CHECK(five.endpoints[static_cast<size_t>(before.pick(key, s5))].key ==
          four.endpoints[static_cast<size_t>(after.pick(key, s4))].key);
  }
}

TEST_CASE("sticky: the cookie's instance while eligible, else another one", "[lb]") {
  Service s = service_of({1, 1, 1}, Policy::kSticky, "web");
  auto sel = make_selector(s, 1);
  FakeStatus status(3);
  PickKey none;
  int first = sel->pick(none, status);
  REQUIRE(first >= 0);
  PickKey pinned;
  pinned.has_sticky = true;
  pinned.sticky = instance_id("web", s.endpoints[static_cast<size_t>(first)].key);
  for (int i = 0; i < 50; ++i) CHECK(sel->pick(pinned, status) == first);
  status.ok[static_cast<size_t>(first)] = 0;
  int moved = sel->pick(pinned, status);
  CHECK(moved >= 0);
  CHECK(moved != first);
  PickKey unknown;
  unknown.has_sticky = true;
  unknown.sticky = 12345;
  CHECK(sel->pick(unknown, status) >= 0);
}

TEST_CASE("instance ids are opaque, stable and round-trip through 16 hex digits", "[lb]") {
  uint64_t a = instance_id("web", "10.0.0.1:8080");
  CHECK(a == instance_id("web", "10.0.0.1:8080"));
  CHECK(a != instance_id("web", "10.0.0.2:8080"));
  CHECK(a != instance_id("api", "10.0.0.1:8080"));
  char text[16];
  format_instance_id(a, text);
  uint64_t back = 0;
  REQUIRE(parse_instance_id(std::string_view(text, 16), back));
  CHECK(back == a);
  CHECK(std::string_view(text, 16).find("10.0.0.1") == std::string_view::npos);
  CHECK_FALSE(parse_instance_id("xyz", back));
  CHECK_FALSE(parse_instance_id("0123456789ABCDEF", back));
}
