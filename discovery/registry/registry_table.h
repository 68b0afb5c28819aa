// The registry's table as a watch keeps it: every key under <prefix>/instances/ with what it
// decodes to, and the DiscoveredSet made of them, updated key by key.
//
// A change touches what it must and no more: the key's value is decoded once, and only the
// services it leaves or joins are made again; the other services stay the same objects, and so
// does the route list while no service's routes change.
//
// What one key may take from another (a host + path served by one service only) stays with the
// service holding it: the table remembers which service holds each claim, and that service
// keeps it while any of its keys declares it, whatever those keys' age (keys are per container:
// a rolling update replaces every key of a service, and a container restarting has its key
// deleted and created again). A newcomer gets it only once no key of the holder declares it
// any more, at the table's next decision (the holder's last key deleted, then created again
// after that decision, is the newcomer then). Without a holder (the table's first build, or a
// claim nobody held) the oldest key decides: the one etcd created first (lowest
// create_revision; keys created by one txn share it, and the first in byte order wins between
// them). A resync (reset) keeps what the table held: it is no restart. That is decided over the
// whole table again when a change could move it: a key that conflicts, or a claim that a
// refused key wanted becoming free. The result is always the set build_registry_set() makes of
// the same keys given the same holders (tests/unit/registry_table_test.cc checks this on random
// changes).
//
// A key whose service name is reserved (the config file's, or an earlier discovery source's:
// the Server leaves such a service out) is refused up front and claims nothing.
//
// Pure: no sockets, no clock. One table serves one prefix and policy.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "discovery/label_builder.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/source.h"

namespace berth::discovery::registry {

// One route an instance declares: as its value lists it, or, for a value with a policy, route
// `spec` of the parse of its published labels (which also gives its filters, matchers...).
struct InstanceRoute {
  RegistryRoute route;
  std::shared_ptr<const ParsedContainer> parsed;  // null: the value carries no policy
  uint32_t spec = 0;
  bool operator==(const InstanceRoute& o) const { return route == o.route && parsed == o.parsed && spec == o.spec; }
};

// What one key makes of its value (given the table's prefix and policy), worked out once per
// value: why it is refused, or its instance, the host + path pairs it claims and its endpoint.
struct DecodedValue {
  std::string value;
  std::optional<Instance> instance;  // nullopt: refused, see problem
  std::string problem;
  std::string source;                // "registry:<host-id>/<container-id>/<n>"
  std::vector<InstanceRoute> routes;
  // "host\npath" for each host of each route ("" = any host), "\n<matchers>" added when it has some
  std::vector<std::string> claims;
  Endpoint endpoint;                 // resolved, with source and remote set
};

// A key's raw value and the etcd revision that created the key (its create_revision).
struct StoredValue {
  std::string value;
  int64_t created = 0;
};
using StoredKvs = std::map<std::string, StoredValue>;
// Which service holds each claim ("host\npath[\nmatchers]", as DecodedValue::claims): the
// table's memory of contested hosts across passes.
using Holders = std::map<std::string, std::string>;
// Service names that keys may not use, each with who has it ("the config file").
using ReservedNames = std::map<std::string, std::string>;

// The whole set from scratch, for every key under <prefix>/instances/ with its raw value:
// services by name with every healthy instance (an unhealthy one keeps its routes and gets no
// traffic), their routes (the union of what the instances declare), and the keys rejected, one
// by one, with the reason. A host + path that `holders` gives to a service that still has a key
// declaring it stays that service's; otherwise it is rejected for the newer key (the higher
// create_revision; the later in byte order when created together). Keys of a `reserved`
// service name are rejected.
// A key declaring more host + path routes than kMaxRoutesPerKey is rejected, with the count.
DiscoveredSet build_registry_set(const StoredKvs& kvs, std::string_view prefix, const TablePolicy& policy,
                                 const Holders& holders = {}, const ReservedNames& reserved = {});
// Why a front door with the default policy (any host, any priority) refuses this key and value
// on their own, whatever the other keys ("": it does not). A sidecar warns of what it publishes
// and front doors will refuse.
std::string front_door_problem(const std::string& key, const std::string& value, std::string_view prefix);
// The same for keys all created in one revision (as by one txn): byte order decides.
DiscoveredSet build_registry_set(const std::map<std::string, std::string>& kvs, std::string_view prefix,
                                 const TablePolicy& policy);

class RegistryTable {
 public:
  RegistryTable(std::string_view prefix, TablePolicy policy);

  // The whole table (a range reply): replaces every key. Values seen before are not decoded
  // again, and the holders stay: a holder that still has a key for its claim keeps it.
  void reset(const StoredKvs& kvs);
  void reset(const std::map<std::string, std::string>& kvs);  // every key created in revision 0
  // One key written (created in revision `created`) or deleted; false when that changed nothing
  // (same value and revision, unknown key).
  bool put(const std::string& key, std::string value, int64_t created = 0);
  bool erase(const std::string& key);

  // The set for the keys as they are now, or null when it equals the last one returned (the
  // first call always returns one). Services that did not change are the objects of the last
  // set, and so is the route list when it is equal. Rejected keys are listed in key order.
  std::shared_ptr<DiscoveredSet> next();

  // The service names keys may not use; true when they changed (the next call to next()
  // decides every key again).
  bool reserve(ReservedNames names);
  // Who holds each claim, as the next whole pass will take it (a claim may be listed whose
  // holder has no key left: it goes to a newcomer at that pass); set_holders() replaces it.
  const Holders& holders() const { return held_; }
  void set_holders(Holders holders);

  size_t size() const { return entries_.size(); }
  // Times next() decided every key again (reset, a conflict, a contested claim freed).
  uint64_t full_builds() const { return full_builds_; }

 private:
  enum class Status : uint8_t { kOwn, kPending, kRefused, kReserved, kConflict, kAccepted };
  struct Entry {
    DecodedValue d;
    int64_t created = 0;  // create_revision: the older key keeps a contested claim
    Status status = Status::kPending;
    std::string conflict;  // kConflict, kReserved: why
  };
  using Entries = std::map<std::string, Entry>;
  using EntryRef = Entries::value_type*;  // stable while the key is in the table
  struct ByKey {
    bool operator()(const EntryRef a, const EntryRef b) const { return a->first < b->first; }
  };
  struct ServiceState {
    std::set<EntryRef, ByKey> keys;  // accepted keys, in byte order
    // How many accepted keys have each endpoint address, and how many addresses more than one
    // has: while none does, making the service needs no look for duplicates.
    std::unordered_map<std::string, uint32_t> addresses;
    uint32_t shared_addresses = 0;
    // The union of what its keys declare, each with the source of the first key declaring it.
    std::vector<std::pair<InstanceRoute, std::string>> routes;
    ServicePtr service;              // as last handed out; null: not yet
  };
  struct Claim {
    std::string service;
    uint32_t keys = 0;
    // One accepted key declaring it (all agree on the route's labels) and the claim's index in
    // its claims: what a newcomer of the same service is compared with.
    EntryRef key = nullptr;
    size_t index = 0;
  };

  void leave(EntryRef e);
  void enter(EntryRef e);
  bool reserved(EntryRef e);
  void accept(EntryRef e);
  void refuse(EntryRef e, Status status);
  void decide_all();
  bool remake(ServiceState& s, const std::string& name, bool* routes_changed);
  RouteList make_routes() const;

  std::string root_, own_;
  TablePolicy policy_;
  BuilderOptions options_;
  Entries entries_;
  std::map<std::string, ServiceState> services_;        // by name: the set's order
  std::unordered_map<std::string, Claim> claims_;        // "host\npath" -> the service of the keys holding it
  std::unordered_map<std::string, uint32_t> contested_;  // claims of keys refused for a conflict
  Holders held_;           // claim -> its service, as of the last decision (see holders())
  ReservedNames reserved_;
  std::set<EntryRef, ByKey> rejected_;
  std::set<std::string> dirty_;  // services to make again
  bool full_ = true;             // decide every key again
  bool rejected_changed_ = true;
  bool handed_out_ = false;
  RouteList routes_ = no_routes();
  std::vector<ServicePtr> services_out_;
  std::vector<std::pair<std::string, std::string>> rejected_out_;
  uint64_t full_builds_ = 0;
};

}  // namespace berth::discovery::registry
