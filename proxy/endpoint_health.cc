#include "proxy/endpoint_health.h"

#include <uv.h>


#include "proxy/route_table.h"

namespace berth {

const char* probe_state_name(ProbeState s) noexcept {
  switch (s) {
    case ProbeState::kUnchecked: return "unchecked";
    case ProbeState::kPending: return "pending";
    case ProbeState::kHealthy: return "healthy";
    case ProbeState::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

int64_t health_clock_ms() noexcept { return static_cast<int64_t>(uv_hrtime() / 1'000'000); }

namespace {
std::atomic<uint64_t> g_health_epoch{1};
}  // namespace

uint64_t health_epoch() noexcept { return g_health_epoch.load(std::memory_order_acquire); }
void bump_health_epoch() noexcept { g_health_epoch.fetch_add(1, std::memory_order_acq_rel); }

void HealthRegistry::attach(std::vector<Service>& services) {
  std::vector<const Service*> all;
  std::vector<Service*> fresh;
  all.reserve(services.size());
  fresh.reserve(services.size());
  for (Service& s : services) {
    all.push_back(&s);
    fresh.push_back(&s);
  }
  run_pass(all, fresh);
}

void HealthRegistry::attach(const std::vector<std::shared_ptr<const Service>>& services,
                            const std::vector<Service*>& fresh) {
  std::vector<const Service*> all;
  all.reserve(services.size());
  for (const auto& s : services) all.push_back(s.get());
  run_pass(all, fresh);
}

void HealthRegistry::run_pass(const std::vector<const Service*>& all, const std::vector<Service*>& fresh) {
  const uint64_t pass = ++pass_;
  // An endpoint in several services is checked when any of them has a check.
  for (const Service* s : all)
    if (s->policy.health.enabled)
      for (const Endpoint& e : s->endpoints) endpoints_[e.key].checked = pass;

  const int64_t now = health_clock_ms();
  for (const Service* s : all) {
    ServiceEntry& service = services_[s->name];
    if (!service.counters) service.counters = s->counters ? s->counters : std::make_shared<ServiceCounters>();
    service.seen = pass;
    for (const Endpoint& e : s->endpoints) {
      EndpointEntry& entry = endpoints_[e.key];
      auto& health = entry.health;
      const bool is_checked = entry.checked == pass;
      entry.seen = pass;
      if (!health && e.health) health = e.health;  // a shared service keeps the state it was given
      if (!health) {
        health = std::make_shared<EndpointHealth>();
        health->probe.store(is_checked ? ProbeState::kPending : ProbeState::kUnchecked);
        health->routable_since_ms.store(now);  // a checked one starts again at its first passing probe
      } else if (is_checked && health->probe.load() == ProbeState::kUnchecked) {
        health->probe.store(ProbeState::kPending);  // a check was just configured
      } else if (!is_checked) {
        // The check was removed: an instance that was not taking traffic takes it from now.
        const ProbeState before = health->probe.exchange(ProbeState::kUnchecked);
        if (before == ProbeState::kPending || before == ProbeState::kUnhealthy) health->routable_since_ms.store(now);
      }
    }
  }
  for (Service* s : fresh) {
    s->counters = services_[s->name].counters;
    for (Endpoint& e : s->endpoints) e.health = endpoints_[e.key].health;
  }
  bump_health_epoch();
  std::erase_if(endpoints_, [&](const auto& kv) { return kv.second.seen != pass; });
  std::erase_if(services_, [&](const auto& kv) { return kv.second.seen != pass; });
}

}  // namespace berth
