// EndpointHealth layout and the per-worker in-flight counts behind /api/routes' in_flight.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "proxy/model/endpoint_health.h"

using namespace berth;

TEST_CASE("endpoint health: control, outcome and per-attempt fields on separate cache lines", "[health]") {
  CHECK(sizeof(EndpointHealth) == 192);
  CHECK(offsetof(EndpointHealth, probe) / 64 == offsetof(EndpointHealth, routable_since_ms) / 64);
  CHECK(offsetof(EndpointHealth, probe) / 64 != offsetof(EndpointHealth, consecutive_failures) / 64);
  CHECK(offsetof(EndpointHealth, consecutive_failures) / 64 == offsetof(EndpointHealth, ejected_until_ms) / 64);
  CHECK(offsetof(EndpointHealth, consecutive_failures) / 64 != offsetof(EndpointHealth, requests) / 64);
  CHECK(offsetof(EndpointHealth, requests) / 64 == offsetof(EndpointHealth, pending) / 64);
  CHECK(alignof(ServiceCounters) == 64);
}

TEST_CASE("in-flight counts: each worker counts its own, a reader sums them", "[health]") {
  auto a = std::make_shared<EndpointHealth>(), b = std::make_shared<EndpointHealth>();
  CHECK(a->slot != b->slot);
  InFlightCounts worker0, worker1;
  worker0.add(*a);
  worker0.add(*a);
  worker1.add(*a);
  worker1.add(*b);
  CHECK(worker0.get(*a) == 2);
  CHECK(InFlightCounts::total(*a) == 3);
  CHECK(InFlightCounts::total(*b) == 1);
  worker0.remove(*a);
  worker1.remove(*b);
  CHECK(InFlightCounts::total(*a) == 2);
  CHECK(InFlightCounts::total(*b) == 0);
  {
    InFlightCounts gone;
    gone.add(*b);
    CHECK(InFlightCounts::total(*b) == 1);
    gone.remove(*b);
  }
  CHECK(InFlightCounts::total(*b) == 0);
}

TEST_CASE("in-flight counts: slots are reused, and counted from another thread", "[health]") {
  std::set<uint32_t> live;
  std::vector<std::unique_ptr<EndpointHealth>> many;
  for (int i = 0; i < 3000; ++i) {
    many.push_back(std::make_unique<EndpointHealth>());
    CHECK(live.insert(many.back()->slot).second);  // unique while alive
  }
  const uint32_t freed = many[1234]->slot;
  many[1234].reset();
  auto again = std::make_unique<EndpointHealth>();
  CHECK(again->slot == freed);
  // A worker thread counts past the first chunk while this thread reads.
  InFlightCounts worker;
  std::thread t([&] {
    for (auto& h : many)
      if (h) worker.add(*h);
  });
  t.join();
  CHECK(InFlightCounts::total(*many.back()) == 1);
  CHECK(InFlightCounts::total(*again) == 0);
  for (auto& h : many)
    if (h) worker.remove(*h);
  CHECK(InFlightCounts::total(*many.front()) == 0);
}
