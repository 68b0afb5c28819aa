// berth-bench-lb_select: the cost of one endpoint selection, per policy, at 10 and 1,000
// instances (ns/pick), on one thread, with every instance eligible and with 10% ineligible.
// Then what a worker pays to make the selector of a new service object, with a table of its own
// or reading the one the control thread built. Also prints the figures the load-balancing tests
// assert: 1:2:3 shares and ring-hash stability.
//
//   berth-bench-lb_select [picks_per_case]      (default 2,000,000)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/lb/lb.h"

using namespace berth;
using Policy = config::LoadBalancing::Policy;

namespace {

Service make_service(size_t n, Policy policy) {
  Service s;
  s.name = "bench";
  s.policy.lb.policy = policy;
  for (size_t i = 0; i < n; ++i) {
    Endpoint e;
    e.key = "10." + std::to_string(i / 65536) + "." + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) + ":8080";
    e.weight = static_cast<uint32_t>(1 + i % 3);
    s.endpoints.push_back(e);
  }
  return s;
}

// What a worker's status looks like: a routable mask and per-endpoint in-flight counts.
class BenchStatus final : public EndpointStatus {
 public:
  BenchStatus(size_t n, bool some_down) : ok_(n, 1), active_(n) {
    for (size_t i = 0; i < n; ++i) {
      active_[i] = static_cast<uint32_t>((i * 7) % 5);
      if (some_down && i % 10 == 3) ok_[i] = 0;
    }
  }
  bool eligible(size_t i) const override { return ok_[i] != 0; }
  uint32_t active(size_t i) const override { return active_[i]; }

 private:
  std::vector<uint8_t> ok_;
  std::vector<uint32_t> active_;
};

double ns_per_pick(Selector& sel, const EndpointStatus& status, Policy policy, long picks) {
  std::vector<PickKey> keys(1024);
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i].hash = hash_bytes("client-" + std::to_string(i));
    keys[i].has_hash = policy == Policy::kHash;
    keys[i].sticky = 0x1234567890abcdefULL + i;  // unknown ids: the fallback path (worst case)
    keys[i].has_sticky = policy == Policy::kSticky;
  }
  volatile long sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < picks; ++i) sink = sink + sel.pick(keys[static_cast<size_t>(i) & 1023], status);
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(picks);
}

}  // namespace

int main(int argc, char** argv) {
  const long picks = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  const std::pair<Policy, const char*> policies[] = {{Policy::kRoundRobin, "round_robin"},
                                                     {Policy::kLeastRequest, "least_request"},
                                                     {Policy::kHash, "hash"},
                                                     {Policy::kSticky, "sticky"}};
  std::printf("| policy | instances | ns/pick (all up) | ns/pick (10%% down) |\n|---|---|---|---|\n");
  for (auto [policy, name] : policies) {
    for (size_t n : {size_t{10}, size_t{1000}}) {
      Service s = make_service(n, policy);
      auto sel = make_selector(s, 1);
      const long count = policy == Policy::kRoundRobin && n >= 1000 ? picks / 20 : picks;
      double up = ns_per_pick(*sel, BenchStatus(n, false), policy, count);
      double down = ns_per_pick(*sel, BenchStatus(n, true), policy, count);
      std::printf("| %s | %zu | %.1f | %.1f |\n", name, n, up, down);
    }
  }

  // What a worker pays to serve a new service object: its own selector, with a table it builds
  // itself (a service without one) or reading the table the control thread built once.
  std::printf("\n| policy | instances | table, built once (us) | selector per worker, own table (us) | selector per worker, shared table (us) |\n|---|---|---|---|---|\n");
  for (auto [policy, name] : policies) {
    for (size_t n : {size_t{10}, size_t{1000}}) {
      Service s = make_service(n, policy);
      const int rounds = n >= 1000 ? 20 : 2000;
      auto time_us = [&](auto&& fn) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < rounds; ++r) fn();
        const auto t1 = std::chrono::steady_clock::now();
        return std::chrono::duration<double, std::micro>(t1 - t0).count() / rounds;
      };
      volatile size_t sink = 0;
      const double table = time_us([&] { sink = sink + make_lb_table(s)->size(); });
      const double own = time_us([&] { sink = sink + make_selector(s, 1)->table().size(); });
      Service shared = s;
      shared.lb_table = make_lb_table(shared);
      const double reading = time_us([&] { sink = sink + make_selector(shared, 1)->table().size(); });
      std::printf("| %s | %zu | %.2f | %.2f | %.3f |\n", name, n, table, own, reading);
    }
  }

  // The distribution figures.
  Service w = make_service(3, Policy::kRoundRobin);
  for (size_t i = 0; i < 3; ++i) w.endpoints[i].weight = static_cast<uint32_t>(i + 1);
  auto rr = make_selector(w, 1);
  int counts[3] = {};
  AllEligible all;
  for (int i = 0; i < 6000; ++i) ++counts[rr->pick(PickKey{}, all)];
  std::printf("\nround robin, weights 1:2:3 over 6000 picks: %.2f%% %.2f%% %.2f%%\n", counts[0] / 60.0,
              counts[1] / 60.0, counts[2] / 60.0);

  Service five = make_service(5, Policy::kHash);
  for (Endpoint& e : five.endpoints) e.weight = 1;
  Service four = five;
  four.endpoints.erase(four.endpoints.begin() + 2);
  RingHash before(five), after(four);
  BenchStatus s5(5, false), s4(4, false);
  int kept = 0;
  for (int k = 0; k < 1000; ++k) {
    PickKey key{hash_bytes("user-" + std::to_string(k)), true};
    kept += five.endpoints[static_cast<size_t>(before.pick(key, s5))].key ==
            four.endpoints[static_cast<size_t>(after.pick(key, s4))].key;
  }
  std::printf("ring hash: removing 1 of 5 instances keeps %.1f%% of 1000 keys (ideal 80%%)\n", kept / 10.0);
  return 0;
}
