#include "discovery/registry/registry_table.h"

#include <algorithm>

namespace berth::discovery::registry {

namespace {

// Everything about one key that depends on its key and value alone (and the table's fixed
// prefix and policy): why it is refused, or its instance, the host + path pairs it claims and
// its endpoint, ready to be grouped.
void prepare(const std::string& key, const std::string& value, const std::string& root,
             const BuilderOptions& options, bool remote, DecodedValue& out) {
  out.value = value;
  out.instance.reset();
  out.problem.clear();
  out.claims.clear();
  out.source = "registry:" + (key.rfind(root, 0) == 0 ? key.substr(root.size()) : key);
  // <host>/<container>/<n>
  std::string_view rest = std::string_view(key);
  if (rest.rfind(root, 0) != 0) {
    out.problem = "key outside " + root;
    return;
  }
  rest.remove_prefix(root.size());
  if (std::count(rest.begin(), rest.end(), '/') != 2 || rest.front() == '/' || rest.back() == '/' ||
      rest.find("//") != std::string_view::npos) {
    out.problem = "key is not <prefix>/instances/<host-id>/<container-id>/<n>";
    return;
  }
  std::optional<Instance> instance = decode_instance(value, &out.problem);
  if (!instance) return;
  for (const RegistryRoute& r : instance->routes) {
    RouteSpec spec;
    spec.hosts = r.hosts;
    spec.path = r.path;
    spec.priority = r.priority;
    if (std::string refused = policy_problem(spec, options); !refused.empty()) {
      out.problem = "refused by policy: " + refused;
      return;
    }
    if (r.hosts.empty()) out.claims.push_back("\n" + r.path);
    for (const std::string& h : r.hosts) out.claims.push_back(h + "\n" + r.path);
  }
  out.endpoint = Endpoint{};
  out.endpoint.key = instance->address;
  resolve_endpoint_key(out.endpoint);
  out.endpoint.weight = instance->weight;
  out.endpoint.source = out.source;
  out.endpoint.remote = remote;
  out.instance = std::move(instance);
}

}  // namespace

DiscoveredSet build_registry_set(const std::map<std::string, std::string>& kvs, std::string_view prefix,
                                 const TablePolicy& policy) {
  RegistryTable table(prefix, policy);
  table.reset(kvs);
  return *table.next();
}

RegistryTable::RegistryTable(std::string_view prefix, TablePolicy policy)
    : root_(instances_prefix(prefix)),
      own_(policy.local_host_id.empty() ? std::string() : host_prefix(prefix, policy.local_host_id)),
      policy_(std::move(policy)) {
  options_.allowed_hosts = policy_.allowed_hosts;
  options_.max_priority = policy_.max_priority;
  options_.allow_any_host = policy_.allow_any_host;
}

void RegistryTable::reset(const std::map<std::string, std::string>& kvs) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (kvs.count(it->first)) {
      ++it;
      continue;
    }
    leave(&*it);
    it = entries_.erase(it);
  }
  for (const auto& [key, value] : kvs) put(key, value);
  full_ = true;  // a range is a reconcile: every key is decided again
}

bool RegistryTable::put(const std::string& key, std::string value) {
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (!inserted && e.d.value == value) return false;
  if (!inserted) leave(&*it);
  if (!own_.empty() && key.rfind(own_, 0) == 0) {  // this host's own: its Docker discovery routes those
    e.d = DecodedValue{};
    e.d.value = std::move(value);
    e.status = Status::kOwn;
    return true;
  }
  prepare(key, value, root_, options_, !own_.empty(), e.d);
  enter(&*it);
  return true;
}

bool RegistryTable::erase(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  leave(&*it);
  entries_.erase(it);
  return true;
}

void RegistryTable::leave(EntryRef ref) {
  Entry& e = ref->second;
  switch (e.status) {
    case Status::kOwn:
    case Status::kPending:
      break;
    case Status::kConflict:  // a refused claimant leaves: only a whole pass can say what follows
      full_ = true;
      [[fallthrough]];
    case Status::kRefused:
      rejected_.erase(ref);
      rejected_changed_ = true;
      break;
    case Status::kAccepted: {
      const std::string& name = e.d.instance->service;
      if (auto s = services_.find(name); s != services_.end()) {
        s->second.keys.erase(ref);
        if (auto a = s->second.addresses.find(e.d.endpoint.key); a != s->second.addresses.end()) {
          if (--a->second == 1) --s->second.shared_addresses;
          if (a->second == 0) s->second.addresses.erase(a);
        }
      }
      dirty_.insert(name);
      for (const std::string& claim : e.d.claims) {
        // A key refused for this claim may come first now, or find it free.
        if (contested_.count(claim)) full_ = true;
        auto c = claims_.find(claim);
        if (c != claims_.end() && --c->second.keys == 0) claims_.erase(c);
      }
      break;
    }
  }
  e.status = Status::kPending;
}

void RegistryTable::enter(EntryRef ref) {
  Entry& e = ref->second;
  if (!e.d.instance) return refuse(ref, Status::kRefused);
  for (const std::string& claim : e.d.claims) {
    if (contested_.count(claim)) full_ = true;
    if (auto c = claims_.find(claim); c != claims_.end() && c->second.service != e.d.instance->service) full_ = true;
  }
  if (full_) {
    e.status = Status::kPending;  // decided by the next whole pass
    return;
  }
  accept(ref);
}

void RegistryTable::accept(EntryRef ref) {
  Entry& e = ref->second;
  e.status = Status::kAccepted;
  const std::string& name = e.d.instance->service;
  ServiceState& s = services_[name];
  s.keys.insert(ref);
  if (++s.addresses[e.d.endpoint.key] == 2) ++s.shared_addresses;
  dirty_.insert(name);
  for (const std::string& claim : e.d.claims) {
    Claim& c = claims_[claim];
    if (c.keys++ == 0) c.service = name;
  }
}

void RegistryTable::refuse(EntryRef ref, Status status) {
  ref->second.status = status;
  rejected_.insert(ref);
  rejected_changed_ = true;
}

void RegistryTable::decide_all() {
  ++full_builds_;
  claims_.clear();
  contested_.clear();
  rejected_.clear();
  for (auto& [name, s] : services_) {
    s.keys.clear();
    s.addresses.clear();
    s.shared_addresses = 0;
    dirty_.insert(name);
  }
  for (auto& kv : entries_) {
    Entry& e = kv.second;
    if (e.status == Status::kOwn) continue;
    if (!e.d.instance) {
      refuse(&kv, Status::kRefused);
      continue;
    }
    // A host + path served by another service: the first key in order keeps it.
    const std::string* taken_by = nullptr;
    std::string_view taken;
    for (const std::string& claim : e.d.claims)
      if (auto c = claims_.find(claim); c != claims_.end() && c->second.service != e.d.instance->service)
        taken_by = &c->second.service, taken = claim;
    if (taken_by) {
      const size_t nl = taken.find('\n');
      e.conflict = "host '" + std::string(taken.substr(0, nl)) + "' path '" + std::string(taken.substr(nl + 1)) +
                   "' is already served by service " + *taken_by;
      for (const std::string& claim : e.d.claims) ++contested_[claim];
      refuse(&kv, Status::kConflict);
      continue;
    }
    accept(&kv);
  }
  rejected_changed_ = true;
  full_ = false;
}

bool RegistryTable::remake(ServiceState& s, const std::string& name, bool* routes_changed) {
  // Its routes: the union of what its instances declare, in key order; its endpoints: each
  // address once, unhealthy instances left out.
  std::vector<RegistryRoute> routes;
  std::vector<const Endpoint*> endpoints;
  std::set<std::string_view> seen;  // used only when some address is shared
  const bool distinct = s.shared_addresses == 0;
  for (const EntryRef ref : s.keys) {
    const Instance& instance = *ref->second.d.instance;
    for (const RegistryRoute& r : instance.routes)
      if (std::find(routes.begin(), routes.end(), r) == routes.end()) routes.push_back(r);
    if (instance.health == "unhealthy") continue;  // its routes stand; it gets no traffic
    const Endpoint& e = ref->second.d.endpoint;
    if (distinct || seen.insert(e.key).second) endpoints.push_back(&e);
  }
  if (!s.service || routes != s.routes) {
    s.routes = std::move(routes);
    *routes_changed = true;
  }
  if (s.service && s.service->endpoints.size() == endpoints.size() &&
      std::equal(endpoints.begin(), endpoints.end(), s.service->endpoints.begin(),
                 [](const Endpoint* a, const Endpoint& b) { return same_instance(*a, b); }))
    return false;
  auto service = std::make_shared<Service>();
  service->name = name;
  service->endpoints.reserve(endpoints.size());
  for (const Endpoint* e : endpoints) service->endpoints.push_back(*e);
  service->policy = policy_.service_policy;
  service->serve_empty_until_ms = 0;  // no instance: the routes no longer match
  s.service = std::move(service);
  return true;
}

std::shared_ptr<DiscoveredSet> RegistryTable::next() {
  if (full_) decide_all();
  bool services_changed = false, routes_changed = false;
  for (const std::string& name : dirty_) {
    auto it = services_.find(name);
    if (it == services_.end()) continue;
    if (it->second.keys.empty()) {  // its last key left
      services_.erase(it);
      services_changed = routes_changed = true;
      continue;
    }
    services_changed = remake(it->second, name, &routes_changed) || services_changed;
  }
  dirty_.clear();
  if (services_changed) {
    services_out_.clear();
    services_out_.reserve(services_.size());
    for (const auto& [name, s] : services_) services_out_.push_back(s.service);
  }
  if (routes_changed) {
    auto routes = std::make_shared<std::vector<Route>>();
    uint32_t index = 0;
    for (const auto& [name, s] : services_) {
      for (const RegistryRoute& r : s.routes) {
        std::vector<std::string> hosts = r.hosts.empty() ? std::vector<std::string>{""} : r.hosts;
        for (const std::string& h : hosts) {
          Route route;
          route.name = name + (h.empty() ? "" : "@" + h) + r.path;
          route.host = h;
          route.path_prefix = r.path;
          route.priority = r.priority;
          route.service = index;
          route.source = "registry";
          routes->push_back(std::move(route));
        }
      }
      ++index;
    }
    RouteList fresh = std::move(routes);
    if (same_routes(routes_, fresh)) routes_changed = false;  // the same object stays
    else routes_ = std::move(fresh);
  }
  bool rejected_changed = false;
  if (rejected_changed_) {
    std::vector<std::pair<std::string, std::string>> rejected;
    rejected.reserve(rejected_.size());
    for (const EntryRef ref : rejected_)
      rejected.emplace_back(ref->second.d.source,
                            ref->second.status == Status::kConflict ? ref->second.conflict : ref->second.d.problem);
    rejected_changed = rejected != rejected_out_;
    rejected_out_ = std::move(rejected);
    rejected_changed_ = false;
  }
  if (handed_out_ && !services_changed && !routes_changed && !rejected_changed) return nullptr;
  handed_out_ = true;
  auto set = std::make_shared<DiscoveredSet>();
  set->routes = routes_;
  set->services = services_out_;
  set->rejected = rejected_out_;
  return set;
}

}  // namespace berth::discovery::registry
