// The registry of shared per-instance health state: one EndpointHealth per endpoint key and one
// ServiceCounters per service name, attached to each published snapshot's services so health
// survives rebuilds for instances that stay.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/model/endpoint_health.h"
#include "proxy/model/route_table.h"

namespace berth {

// Control thread only. Keeps one EndpointHealth per endpoint key and one ServiceCounters per
// service name for the published set of services, counted by reference: an endpoint is known
// while a published service lists it, and "checked" while one of those has an active check.
class HealthRegistry {
 public:
  // The published set changes: `added` services enter it (fresh objects, still writable: they get
  // their counters and each endpoint's shared health assigned), `removed` leave it (objects that an
  // earlier update() added). Added are counted before removed are dropped, so a service replaced by
  // a new object keeps its endpoints' health state and counters. Cost: the endpoints of added and
  // removed services only.
  //
  // A newcomer starts "pending" when a service listing it has an active check, routable since
  // now otherwise; a check configured for a known unchecked instance makes it pending; the last
  // check removed makes it unchecked (routable from now if it was not taking traffic). An entry
  // whose last service leaves is forgotten: a service or instance added again starts afresh.
  // `removed` must still be readable during the call. An object already added, or removed without
  // having been added, is not counted again.
  void update(const std::vector<Service*>& added, const std::vector<const Service*>& removed);
  // For tests and simple callers: `services` is the whole published set, replacing what the
  // previous attach() published (services published through update() are not affected).
  void attach(std::vector<Service>& services);
  // Whether the last update() or attach() changed the state of an instance that was known
  // before it (a check configured or removed). False when it only gave newcomers their state
  // and dropped leavers: services it did not touch then look as they did.
  bool changed_known() const { return changed_known_; }
  size_t size() const { return endpoints_.size(); }
  size_t service_count() const { return services_.size(); }

 private:
  enum class Origin : uint8_t { kKnown, kCreated, kAdopted };
  struct EndpointEntry {
    std::shared_ptr<EndpointHealth> health;
    uint32_t refs = 0;          // published services listing it (once per listing)
    uint32_t checked_refs = 0;  // ...of which with an active check
    // The state before the change that touched it last (see begin()).
    uint64_t touched = 0;
    bool was_checked = false;
    Origin origin = Origin::kKnown;
  };
  struct ServiceEntry {
    std::shared_ptr<ServiceCounters> counters;
    uint32_t refs = 0;
  };
  using EndpointMap = std::unordered_map<std::string, EndpointEntry>;
  EndpointMap endpoints_;
  std::unordered_map<std::string, ServiceEntry> services_;
  std::unordered_set<const Service*> published_;  // what update() added and not yet removed
  std::vector<Service> attached_;  // what attach() published: names, keys and check flags only
  std::vector<EndpointMap::value_type*> touched_;  // entries touched by the current change
  uint64_t change_ = 0;
  bool changed_known_ = false;

  // One change: begin(), count_in() every service entering (which also gives it what it shares),
  // count_out() every service leaving, finish().
  void begin();
  void count_in(Service& s);
  void count_in(Endpoint& e, bool checked);
  void give(Service& s);  // what it shares, without counting it (it already is)
  void count_out(const Service& s);
  void count_out(const Endpoint& e, bool checked);
  void replace(Service& s, const Service& old);  // count_in(s) and count_out(old), as one
  void finish();
  EndpointEntry& touch(EndpointMap::value_type& kv);
};

}  // namespace berth
