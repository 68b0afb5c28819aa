#include "proxy/health/health_registry.h"

namespace berth {

void HealthRegistry::update(const std::vector<Service*>& added, const std::vector<const Service*>& removed) {
  if (added.empty() && removed.empty()) return;
  begin();
  // The usual change replaces services one for one, in order (same name): each new object is
  // counted against the one it replaces, so the change costs the endpoints that came or went.
  const bool paired = added.size() == removed.size();
  for (size_t i = 0; i < added.size(); ++i) {
    Service* s = added[i];
    if (!published_.insert(s).second) {
      give(*s);
      continue;
    }
    const Service* old = paired && removed[i] != s && removed[i]->name == s->name ? removed[i] : nullptr;
    if (old && published_.erase(old)) replace(*s, *old);
    else count_in(*s);
  }
  for (const Service* s : removed)
    if (published_.erase(s)) count_out(*s);
  finish();
}

void HealthRegistry::replace(Service& s, const Service& old) {
  if (s.policy.health.enabled != old.policy.health.enabled) {  // every endpoint's checked count moves
    count_in(s);
    count_out(old);
    return;
  }
  // The service's entry keeps its count (one in, one out).
  s.counters = services_[s.name].counters;
  // Endpoints at the same place from either end (common_ends) keep their entry as it is (one
  // reference in, one out): they take the state the old object has. The rest are counted.
  std::vector<Endpoint>& now = s.endpoints;
  const std::vector<Endpoint>& was = old.endpoints;
  const auto [head, tail] = common_ends(now, was, same_key);
  const bool checked = s.policy.health.enabled;
  for (size_t i = 0; i < now.size(); ++i) {
    if (i < head) now[i].health = was[i].health;
    else if (i >= now.size() - tail) now[i].health = was[was.size() - (now.size() - i)].health;
    else count_in(s.name, now[i], checked);
  }
  for (size_t i = head; i < was.size() - tail; ++i) count_out(old.name, was[i], checked);
}

void HealthRegistry::attach(std::vector<Service>& services) {
  begin();
  std::vector<Service> keys(services.size());
  for (size_t i = 0; i < services.size(); ++i) {
    Service& s = services[i];
    count_in(s);
    keys[i].name = s.name;
    keys[i].policy.health.enabled = s.policy.health.enabled;
    keys[i].endpoints.resize(s.endpoints.size());
    for (size_t j = 0; j < s.endpoints.size(); ++j) keys[i].endpoints[j].key = s.endpoints[j].key;
  }
  for (const Service& s : attached_) count_out(s);
  attached_ = std::move(keys);
  finish();
}

namespace {
// The one spelling of a health key: service name, newline, endpoint key (neither holds a newline).
std::string& assign_key(std::string& out, const std::string& service, const std::string& endpoint) {
  return out.assign(service).append(1, '\n').append(endpoint);
}
}  // namespace

std::string HealthRegistry::key_of(const std::string& service, const std::string& endpoint) {
  std::string k;
  k.reserve(service.size() + 1 + endpoint.size());
  return assign_key(k, service, endpoint);
}

const std::string& HealthRegistry::key(const std::string& service, const Endpoint& e) {
  return assign_key(scratch_, service, e.key);
}

void HealthRegistry::begin() {
  ++change_;
  touched_.clear();
  changed_known_ = false;
}

HealthRegistry::EndpointEntry& HealthRegistry::touch(EndpointMap::value_type& kv) {
  EndpointEntry& entry = kv.second;
  if (entry.touched != change_) {
    entry.touched = change_;
    entry.was_checked = entry.checked_refs > 0;
    entry.origin = Origin::kKnown;
    touched_.push_back(&kv);
  }
  return entry;
}

void HealthRegistry::count_in(Service& s) {
  ServiceEntry& service = services_[s.name];
  if (!service.counters) service.counters = s.counters ? s.counters : std::make_shared<ServiceCounters>();
  ++service.refs;
  s.counters = service.counters;
  const bool checked = s.policy.health.enabled;
  for (Endpoint& e : s.endpoints) count_in(s.name, e, checked);
}

void HealthRegistry::count_in(const std::string& service, Endpoint& e, bool checked) {
  EndpointEntry& entry = touch(*endpoints_.try_emplace(key(service, e)).first);
  if (!entry.health) {
    // A newcomer, or one the service brought along (it keeps that state); its probe state is
    // set in finish(), once every service of the change is counted.
    entry.origin = e.health ? Origin::kAdopted : Origin::kCreated;
    entry.health = e.health ? e.health : std::make_shared<EndpointHealth>();
  }
  ++entry.refs;
  if (checked) ++entry.checked_refs;
  e.health = entry.health;
}

void HealthRegistry::give(Service& s) {
  if (auto it = services_.find(s.name); it != services_.end()) s.counters = it->second.counters;
  for (Endpoint& e : s.endpoints)
    if (auto it = endpoints_.find(key(s.name, e)); it != endpoints_.end()) e.health = it->second.health;
}

void HealthRegistry::count_out(const Service& s) {
  if (auto it = services_.find(s.name); it != services_.end() && it->second.refs > 0 && --it->second.refs == 0)
    services_.erase(it);
  const bool checked = s.policy.health.enabled;
  for (const Endpoint& e : s.endpoints) count_out(s.name, e, checked);
}

void HealthRegistry::count_out(const std::string& service, const Endpoint& e, bool checked) {
  auto it = endpoints_.find(key(service, e));
  if (it == endpoints_.end()) return;
  EndpointEntry& entry = touch(*it);
  if (entry.refs > 0) --entry.refs;
  if (checked && entry.checked_refs > 0) --entry.checked_refs;
}

void HealthRegistry::finish() {
  const int64_t now = health_clock_ms();
  for (EndpointMap::value_type* kv : touched_) {
    EndpointEntry& entry = kv->second;
    if (entry.refs == 0) {  // its last service left (references to other entries stay valid)
      endpoints_.erase(endpoints_.find(kv->first));
      continue;
    }
    EndpointHealth& health = *entry.health;
    const bool checked = entry.checked_refs > 0;
    if (entry.origin == Origin::kCreated) {
      health.probe.store(checked ? ProbeState::kPending : ProbeState::kUnchecked);
      health.routable_since_ms.store(now);  // a checked one starts again at its first passing probe
      continue;
    }
    // A state brought along is held to the checks as they are now; a known one changes only
    // when its first check is configured or its last one removed.
    const bool any = entry.origin == Origin::kAdopted;
    bool changed = false;
    if (checked && (any || !entry.was_checked)) {
      ProbeState unchecked = ProbeState::kUnchecked;
      changed = health.probe.compare_exchange_strong(unchecked, ProbeState::kPending);  // a check was just configured
    } else if (!checked && (any || entry.was_checked)) {
      // The check was removed: an instance that was not taking traffic takes it from now.
      const ProbeState before = health.probe.exchange(ProbeState::kUnchecked);
      if (before == ProbeState::kPending || before == ProbeState::kUnhealthy) health.routable_since_ms.store(now);
      changed = before != ProbeState::kUnchecked;
    }
    if (changed && entry.origin == Origin::kKnown) changed_known_ = true;
  }
  touched_.clear();
  bump_health_epoch();
}

}  // namespace berth
