// Load-balancing selectors, without sockets: fixture services and a fake EndpointStatus.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "proxy/lb/lb.h"

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

// Slow start through a clock: endpoint i became routable at since[i]; the window is the
// service's lb.slow_start. Ramps only while some endpoint is inside its window, like the worker.
struct RampStatus : FakeStatus {
  std::vector<int64_t> since;
  int64_t window_ms;
  int64_t now_ms = 0;
  RampStatus(size_t n, int64_t window) : FakeStatus(n), since(n, 0), window_ms(window) {}
  bool ramping() const override {
    for (int64_t t : since)
      if (now_ms < t + window_ms) return true;
    return false;
  }
  uint32_t weight_permille(size_t i) const override { return slow_start_permille(since[i], now_ms, window_ms); }
};

// Share of picks (percent) endpoint `of` gets over `picks` picks.
double share_of(Selector& sel, const EndpointStatus& status, size_t of, int picks) {
  int hits = 0;
  for (int i = 0; i < picks; ++i) hits += sel.pick(PickKey{}, status) == static_cast<int>(of);
  return hits * 100.0 / picks;
}

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

TEST_CASE("slow start: linear share of the weight over the window, with a 10% floor", "[lb][slow_start]") {
  CHECK(slow_start_permille(1000, 1000, 10'000) == kSlowStartFloorPermille);   // just routable
  CHECK(slow_start_permille(1000, 500, 10'000) == kSlowStartFloorPermille);    // clock before since
  CHECK(slow_start_permille(0, 500, 10'000) == kSlowStartFloorPermille);       // 5% -> the floor
  CHECK(slow_start_permille(0, 2'500, 10'000) == 250);
  CHECK(slow_start_permille(0, 9'999, 10'000) == 999);
  CHECK(slow_start_permille(0, 10'000, 10'000) == kFullWeightPermille);
  CHECK(slow_start_permille(0, 50'000, 10'000) == kFullWeightPermille);
  CHECK(slow_start_permille(0, 0, 0) == kFullWeightPermille);  // no window: off

  config::LoadBalancing lb;
  CHECK_FALSE(uses_slow_start(lb));  // default 0 = off
  lb.slow_start = std::chrono::seconds(30);
  for (Policy p : {Policy::kRoundRobin, Policy::kLeastRequest}) {
    lb.policy = p;
    CHECK(uses_slow_start(lb));
  }
  for (Policy p : {Policy::kHash, Policy::kSticky}) {  // a key or cookie names its instance
    lb.policy = p;
    CHECK_FALSE(uses_slow_start(lb));
  }
}

TEST_CASE("slow start: round robin gives a ramping instance weight x share, exactly", "[lb][slow_start]") {
  Service s = service_of({1, 1}, Policy::kRoundRobin);
  auto sel = make_selector(s, 1);
  RampStatus status(2, 10'000);
  status.since = {-100'000, 0};  // 0 long in service, 1 new at t = 0
  int counts[2] = {};
  status.now_ms = 2'500;  // 1 at 25% of its weight: 4:1
  for (int i = 0; i < 500; ++i) ++counts[sel->pick(PickKey{}, status)];
  CHECK(counts[0] == 400);
  CHECK(counts[1] == 100);
  // Rising with the clock, and the floor right at the start.
  status.now_ms = 0;
  const double at_start = share_of(*sel, status, 1, 1100);
  status.now_ms = 5'000;
  const double halfway = share_of(*sel, status, 1, 1500);
  status.now_ms = 10'000;
  const double done = share_of(*sel, status, 1, 1000);
  CHECK(std::abs(at_start - 100.0 / 11) < 0.5);  // 10% of its weight: 1 in 11
  CHECK(std::abs(halfway - 100.0 / 3) < 0.5);    // 50%: 1 in 3
  CHECK(std::abs(done - 50.0) < 0.2);
}

TEST_CASE("slow start: a ramp at full share changes no round-robin pick", "[lb][slow_start]") {
  // Weights are kept in thousandths: a status that says "ramping" but grants everyone their
  // whole weight must give exactly the 1:2:3 sequence of a plain pick.
  Service s = service_of({1, 2, 3}, Policy::kRoundRobin);
  auto plain = make_selector(s, 1), ramped = make_selector(s, 1);
  FakeStatus none(3);
  RampStatus all_in(3, 10'000);
  all_in.since = {0, 0, 0};
  all_in.now_ms = 9'999;  // still "ramping"...
  struct FullShare : RampStatus {
    using RampStatus::RampStatus;
    uint32_t weight_permille(size_t) const override { return kFullWeightPermille; }  // ...but at 100%
  } full(3, 10'000);
  REQUIRE(full.ramping());
  for (int i = 0; i < 600; ++i) CHECK(plain->pick(PickKey{}, none) == ramped->pick(PickKey{}, full));
}

TEST_CASE("slow start: least request draws a ramping instance in proportion to its share", "[lb][slow_start]") {
  Service s = service_of({1, 1}, Policy::kLeastRequest);
  auto sel = make_selector(s, 42);
  RampStatus status(2, 10'000);
  status.since = {-100'000, 0};
  status.now_ms = 1'000;  // 10%: ideally 1 in 11 (9%)
  const double early = share_of(*sel, status, 1, 20'000);
  status.now_ms = 20'000;
  const double later = share_of(*sel, status, 1, 20'000);
  WARN("least request, new instance: " << early << "% at 10% of the window, " << later << "% after it");
  CHECK(early < 15.0);
  CHECK(early > 4.0);
  CHECK(std::abs(later - 50.0) < 3.0);
  // Every instance ramping together keeps their proportions.
  RampStatus both(2, 10'000);
  both.now_ms = 1'000;
  CHECK(std::abs(share_of(*sel, both, 1, 20'000) - 50.0) < 3.0);
}

TEST_CASE("slow start: hash and sticky ignore it", "[lb][slow_start]") {
  // The worker never reports a ramp for these policies (uses_slow_start); even if a status did,
  // a hashed key keeps its instance.
  Service s = service_of({1, 1, 1}, Policy::kHash);
  auto sel = make_selector(s, 1);
  FakeStatus plain(3);
  RampStatus ramp(3, 10'000);
  ramp.since = {0, 0, 5'000};
  ramp.now_ms = 5'000;
  for (int k = 0; k < 200; ++k) {
    PickKey key{hash_bytes("k" + std::to_string(k)), true};
    CHECK(sel->pick(key, plain) == sel->pick(key, ramp));
  }
}

// ---------------------------------------------------------------- tables built once, shared

namespace {

// A key for every other pick, a sticky cookie naming endpoint (k % n) for every third.
PickKey key_for(int k, const Service& s) {
  PickKey key;
  key.has_hash = k % 2 == 0;
  key.hash = hash_bytes("user-" + std::to_string(k));
  key.has_sticky = k % 3 == 0;
  key.sticky = instance_id(s.name, s.endpoints[static_cast<size_t>(k) % s.endpoints.size()].key);
  return key;
}

}  // namespace

TEST_CASE("lb table: every worker's selector reads the one table of the service object", "[lb][table]") {
  for (Policy p : {Policy::kRoundRobin, Policy::kLeastRequest, Policy::kHash, Policy::kSticky}) {
    Service s = service_of({1, 2, 3, 1}, p);
    s.lb_table = make_lb_table(s);  // what the control thread does when it publishes the object
    const std::shared_ptr<const LbTable> table = s.lb_table;
    // Two workers make their selectors with their own seeds: both read the same table.
    auto worker_a = make_selector(s, 1), worker_b = make_selector(s, 2);
    CHECK(&worker_a->table() == table.get());
    CHECK(&worker_b->table() == table.get());
    // A copy of the object (a snapshot sharing or copying it) carries the same table.
    const Service copy = s;
    CHECK(make_selector(copy, 3)->shared_table() == table);
    // The table is read, never rebuilt or changed, by picks.
    FakeStatus status(4);
    for (int k = 0; k < 100; ++k) worker_a->pick(key_for(k, s), status);
    CHECK(s.lb_table == table);
    CHECK(table.use_count() == 5);  // s, copy, the local and the two selectors
  }
}

TEST_CASE("lb table: selections read from a shared table are those of a selector's own", "[lb][table]") {
  for (Policy p : {Policy::kRoundRobin, Policy::kLeastRequest, Policy::kHash, Policy::kSticky}) {
    Service bare = service_of({1, 2, 3, 1, 5}, p);  // no table: the selector builds its own
    Service with = bare;
    with.lb_table = make_lb_table(with);
    auto own = make_selector(bare, 42), shared = make_selector(with, 42);
    REQUIRE(&shared->table() == with.lb_table.get());
    REQUIRE(&own->table() != with.lb_table.get());
    FakeStatus status(5);
    status.ok[1] = 0;
    status.in_flight = {3, 0, 1, 7, 2};
    for (int k = 0; k < 2'000; ++k) {
      const PickKey key = key_for(k, bare);
      CHECK(own->pick(key, status) == shared->pick(key, status));
    }
  }
  // The ring is the same size as before tables: weight x 160 points per instance.
  Service ring = service_of({1, 2}, Policy::kHash);
  CHECK(RingHash(ring).ring_size() == 480);
}

TEST_CASE("lb table: a new service object reuses its predecessor's table only for the same input", "[lb][table]") {
  Service before = service_of({1, 2, 3}, Policy::kHash, "web");
  before.lb_table = make_lb_table(before);
  Service same = service_of({1, 2, 3}, Policy::kHash, "web");  // e.g. a health-check change
  same.policy.health.enabled = true;
  CHECK(lb_table_for(same, &before) == before.lb_table);
  Service reweighted = service_of({1, 2, 4}, Policy::kHash, "web");
  CHECK(lb_table_for(reweighted, &before) != before.lb_table);
  Service grown = service_of({1, 2, 3, 1}, Policy::kHash, "web");
  CHECK(lb_table_for(grown, &before)->ring.size() > before.lb_table->ring.size());
  Service other_policy = service_of({1, 2, 3}, Policy::kSticky, "web");
  auto sticky = lb_table_for(other_policy, &before);
  CHECK(sticky != before.lb_table);
  CHECK(sticky->ids.size() == 3);
  CHECK(lb_table_for(same, nullptr) != before.lb_table);
}

TEST_CASE("lb table: a table that does not fit the service is not used", "[lb][table]") {
  Service s = service_of({1, 1, 1}, Policy::kRoundRobin);
  s.lb_table = make_lb_table(s);
  s.endpoints.push_back(s.endpoints.front());  // changed after the table was built
  s.endpoints.back().key = "10.0.0.9:8080";
  auto sel = make_selector(s, 1);
  CHECK(&sel->table() != s.lb_table.get());
  CHECK(sel->table().size() == 4);
  s.policy.lb.policy = Policy::kHash;
  s.endpoints.pop_back();  // the size fits again, the policy does not
  CHECK(make_selector(s, 1)->table().policy == Policy::kHash);
}
