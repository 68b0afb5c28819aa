// The registry of shared per-instance health state: one EndpointHealth per service and endpoint
// key, and one ServiceCounters per service name, attached to each published snapshot's services so
// health survives rebuilds for instances that stay.
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

// Control thread only. Keeps one EndpointHealth per service name and endpoint key, and one
// ServiceCounters per service name, for the published set of services, counted by reference: an
// instance is known while a published service of that name lists it, and "checked" while one of
// those has an active check. Two services listing the same address each keep their own state:
// each has its own checks, outlier rules and breaker limits (an instance failing one service's
// health path may serve another's), as a cluster's hosts are its own in Envoy and HAProxy.
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
  // The registry's key of `service`'s instance at `endpoint` ("name\naddress:port"), by which
  // the health checker also keeps its probes.
  static std::string key_of(const std::string& service, const std::string& endpoint);

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
    uint32_t refs = 0;          // published services of its name listing it (once per listing)
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
  using EndpointMap = std::unordered_map<std::string, EndpointEntry>;  // by key_of()
  EndpointMap endpoints_;
  std::unordered_map<std::string, ServiceEntry> services_;
  std::unordered_set<const Service*> published_;  // what update() added and not yet removed
  std::vector<Service> attached_;  // what attach() published: names, keys and check flags only
  std::vector<EndpointMap::value_type*> touched_;  // entries touched by the current change
  uint64_t change_ = 0;
  bool changed_known_ = false;
  std::string scratch_;  // the key looked up last (key()), kept to spare an allocation each time

  // One change: begin(), count_in() every service entering (which also gives it what it shares),
  // count_out() every service leaving, finish().
  void begin();
  void count_in(Service& s);
  void count_in(const std::string& service, Endpoint& e, bool checked);
  void give(Service& s);  // what it shares, without counting it (it already is)
  void count_out(const Service& s);
  void count_out(const std::string& service, const Endpoint& e, bool checked);
  void replace(Service& s, const Service& old);  // count_in(s) and count_out(old), as one
  void finish();
  EndpointEntry& touch(EndpointMap::value_type& kv);
  const std::string& key(const std::string& service, const Endpoint& e);  // key_of, in scratch_
};

}  // namespace berth
