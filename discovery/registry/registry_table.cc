#include "discovery/registry/registry_table.h"

#include <algorithm>

namespace berth::discovery::registry {

namespace {

// A value's routes as it lists them: the operator policy applies to each.
bool listed_routes(const Instance& instance, const BuilderOptions& options, DecodedValue& out) {
  for (const RegistryRoute& r : instance.routes) {
    RouteSpec spec;
    spec.hosts = r.hosts;
    spec.path = r.path;
    spec.priority = r.priority;
    if (std::string refused = policy_problem(spec, options); !refused.empty()) {
      out.problem = "refused by policy: " + refused;
      return false;
    }
    out.routes.push_back(InstanceRoute{r, nullptr, 0});
    if (r.hosts.empty()) out.claims.push_back("\n" + r.path);
    for (const std::string& h : r.hosts) out.claims.push_back(h + "\n" + r.path);
  }
  return true;
}

// A value with a policy: its routes are the ones its published labels declare for its service,
// made by Docker discovery's own label code under the operator policy. Labels that do not
// parse refuse the key: routed without its policy, it would be open where its host is not.
// `before`: the parse of the key's previous value, reused when made of the same facts (so a
// rate limit's buckets outlive a health change).
bool published_routes(const Instance& instance, const std::string& container_id,
                      const std::shared_ptr<const ParsedContainer>& before, const BuilderOptions& options,
                      DecodedValue& out) {
  std::shared_ptr<const ParsedContainer> parsed = before;
  const std::string source = container_source(std::string_view(container_id).substr(0, 12), instance.container);
  if (!parsed || parsed->source != source || !parsed->published || !(*parsed->published == *instance.policy))
    parsed = std::make_shared<const ParsedContainer>(
        parse_published(*instance.policy, container_id, instance.container, options));
  const ContainerSpec& spec = parsed->spec;
  if (spec.kind == ContainerSpec::Kind::kIgnored) {
    out.problem = "its published labels route nothing";
    if (!spec.reason.empty()) out.problem += ": " + spec.reason;
    return false;
  }
  if (spec.kind == ContainerSpec::Kind::kRejected) {
    out.problem = spec.reason.rfind("refused by policy", 0) == 0 ? spec.reason : "its published labels: " + spec.reason;
    return false;
  }
  for (size_t r = 0, k = 0; r < spec.routes.size(); ++r) {
    const RouteSpec& route = spec.routes[r];
    const size_t hosts = route.hosts.empty() ? 1 : route.hosts.size();
    if (route.service == instance.service) {
      out.routes.push_back(
          InstanceRoute{RegistryRoute{route.hosts, route.path, route.priority}, parsed, static_cast<uint32_t>(r)});
      out.claims.insert(out.claims.end(), parsed->keys.begin() + k, parsed->keys.begin() + k + hosts);
    }
    k += hosts;
  }
  if (out.routes.empty()) {
    out.problem = "its published labels declare no route for service " + instance.service;
    return false;
  }
  return true;
}

// Everything about one key that depends on its key and value alone (and the table's fixed
// prefix and policy): why it is refused, or its instance, the host + path pairs it claims and
// its endpoint, ready to be grouped.
void prepare(const std::string& key, const std::string& value, const std::string& root,
             const BuilderOptions& options, bool remote, DecodedValue& out) {
  std::shared_ptr<const ParsedContainer> before = out.routes.empty() ? nullptr : out.routes.front().parsed;
  out.value = value;
  out.instance.reset();
  out.problem.clear();
  out.routes.clear();
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
  const size_t slash = rest.find('/');
  const std::string container_id(rest.substr(slash + 1, rest.find('/', slash + 1) - slash - 1));
  bool ok = instance->policy ? published_routes(*instance, container_id, before, options, out)
                             : listed_routes(*instance, options, out);
  if (ok && out.claims.size() > kMaxRoutesPerKey) {
    out.problem = "declares " + std::to_string(out.claims.size()) + " host + path routes, more than the " +
                  std::to_string(kMaxRoutesPerKey) + " one key may";
    ok = false;
  }
  if (!ok) {
    out.routes.clear();
    out.claims.clear();
    return;
  }
  out.endpoint = Endpoint{};
  out.endpoint.key = instance->address;
  resolve_endpoint_key(out.endpoint);
  out.endpoint.weight = instance->weight;
  out.endpoint.source = out.source;
  out.endpoint.container = container_display_name(instance->container);
  out.endpoint.remote = remote;
  out.instance = std::move(instance);
}

// "host 'a.test' path '/'" for a claim ("host\npath", "\nmatchers" after it when it has some).
std::string claim_text(std::string_view claim) {
  const size_t nl = claim.find('\n');
  const std::string_view path = claim.substr(nl + 1, claim.find('\n', nl + 1) - nl - 1);
  return "host '" + std::string(claim.substr(0, nl)) + "' path '" + std::string(path) + "'";
}

// The labels where two values' declarations of one claim (`ca` of a's claims, `cb` of b's)
// disagree beyond port and priority, or "" when they agree. Values without a policy
// declare no labels.
std::string claim_labels_differ(const DecodedValue& a, size_t ca, const DecodedValue& b, size_t cb) {
  auto route_of_claim = [](const DecodedValue& d, size_t c) -> const InstanceRoute& {
    size_t r = 0;
    for (; r + 1 < d.routes.size(); ++r) {
      const size_t hosts = std::max<size_t>(1, d.routes[r].route.hosts.size());
      if (c < hosts) break;
      c -= hosts;
    }
    return d.routes[r];
  };
  const InstanceRoute& x = route_of_claim(a, ca);
  const InstanceRoute& y = route_of_claim(b, cb);
  if (!x.parsed || !y.parsed) return x.parsed || y.parsed ? "route labels (one publishes a policy, one none)" : "";
  return route_labels_differ(*x.parsed, x.spec, *y.parsed, y.spec);
}

StoredKvs created_together(const std::map<std::string, std::string>& kvs) {
  StoredKvs out;
  for (const auto& [key, value] : kvs) out.emplace_hint(out.end(), key, StoredValue{value, 0});
  return out;
}

}  // namespace

DiscoveredSet build_registry_set(const StoredKvs& kvs, std::string_view prefix, const TablePolicy& policy,
                                 const Holders& holders, const ReservedNames& reserved) {
  RegistryTable table(prefix, policy);
  table.set_holders(holders);
  table.reserve(reserved);
  table.reset(kvs);
  return *table.next();
}

DiscoveredSet build_registry_set(const std::map<std::string, std::string>& kvs, std::string_view prefix,
                                 const TablePolicy& policy) {
  return build_registry_set(created_together(kvs), prefix, policy);
}

std::string front_door_problem(const std::string& key, const std::string& value, std::string_view prefix) {
  DecodedValue d;
  prepare(key, value, instances_prefix(prefix), BuilderOptions{}, false, d);
  return d.problem;
}

RegistryTable::RegistryTable(std::string_view prefix, TablePolicy policy)
    : root_(instances_prefix(prefix)),
      own_(policy.local_host_id.empty() ? std::string() : host_prefix(prefix, policy.local_host_id)),
      policy_(std::move(policy)) {
  options_.allowed_hosts = policy_.allowed_hosts;
  options_.max_priority = policy_.max_priority;
  options_.allow_any_host = policy_.allow_any_host;
  options_.forward_auth_addresses = policy_.forward_auth_addresses;
}

void RegistryTable::reset(const std::map<std::string, std::string>& kvs) { reset(created_together(kvs)); }

void RegistryTable::reset(const StoredKvs& kvs) {
  full_ = true;  // a range is a reconcile: every key is decided again, by the holders as they are
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (kvs.count(it->first)) {
      ++it;
      continue;
    }
    leave(&*it);
    it = entries_.erase(it);
  }
  for (const auto& [key, stored] : kvs) put(key, stored.value, stored.created);
}

bool RegistryTable::reserve(ReservedNames names) {
  if (names == reserved_) return false;
  reserved_ = std::move(names);
  full_ = true;
  return true;
}

void RegistryTable::set_holders(Holders holders) {
  held_ = std::move(holders);
  full_ = true;
}

bool RegistryTable::put(const std::string& key, std::string value, int64_t created) {
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (!inserted && e.d.value == value && e.created == created) return false;
  if (!inserted) leave(&*it);
  e.created = created;
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
    case Status::kReserved:
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
        if (c == claims_.end()) continue;
        if (--c->second.keys == 0) {
          claims_.erase(c);
        } else if (c->second.key == ref) {  // another accepted key of the service declares it
          c->second.key = nullptr;
          for (const EntryRef other : services_.at(name).keys) {
            const auto& claims = other->second.d.claims;
            if (auto at = std::find(claims.begin(), claims.end(), claim); at != claims.end()) {
              c->second.key = other;
              c->second.index = static_cast<size_t>(at - claims.begin());
              break;
            }
          }
        }
      }
      break;
    }
  }
  e.status = Status::kPending;
}

void RegistryTable::enter(EntryRef ref) {
  Entry& e = ref->second;
  if (!e.d.instance) return refuse(ref, Status::kRefused);
  if (reserved(ref)) return;
  for (size_t i = 0; i < e.d.claims.size(); ++i) {
    const std::string& claim = e.d.claims[i];
    if (contested_.count(claim)) full_ = true;
    auto c = claims_.find(claim);
    if (c == claims_.end()) continue;
    if (c->second.service != e.d.instance->service) full_ = true;
    else if (c->second.key && !claim_labels_differ(c->second.key->second.d, c->second.index, e.d, i).empty()) full_ = true;
  }
  if (full_) {
    e.status = Status::kPending;  // decided by the next whole pass
    return;
  }
  accept(ref);
}

bool RegistryTable::reserved(EntryRef ref) {
  Entry& e = ref->second;
  auto it = reserved_.find(e.d.instance->service);
  if (it == reserved_.end()) return false;
  e.conflict = "service name '" + it->first + "' is taken by " + it->second;
  refuse(ref, Status::kReserved);
  return true;
}

void RegistryTable::accept(EntryRef ref) {
  Entry& e = ref->second;
  e.status = Status::kAccepted;
  const std::string& name = e.d.instance->service;
  ServiceState& s = services_[name];
  s.keys.insert(ref);
  if (++s.addresses[e.d.endpoint.key] == 2) ++s.shared_addresses;
  dirty_.insert(name);
  for (size_t i = 0; i < e.d.claims.size(); ++i) {
    Claim& c = claims_[e.d.claims[i]];
    if (c.keys++ == 0) {
      held_[e.d.claims[i]] = c.service = name;
      c.key = ref;
      c.index = i;
    }
  }
}

void RegistryTable::refuse(EntryRef ref, Status status) {
  ref->second.status = status;
  rejected_.insert(ref);
  rejected_changed_ = true;
}

void RegistryTable::decide_all() {
  ++full_builds_;
  // A host + path served by another service: its holder keeps it while a key of the holder
  // declares it; other claims go to the oldest key (the first created; of keys created
  // together, the first in byte order).
  std::vector<EntryRef> oldest_first;
  oldest_first.reserve(entries_.size());
  for (auto& kv : entries_) oldest_first.push_back(&kv);
  std::stable_sort(oldest_first.begin(), oldest_first.end(),
                   [](const EntryRef a, const EntryRef b) { return a->second.created < b->second.created; });
  // The claims their holder still declares (keys it may not use declare nothing).
  std::unordered_map<std::string_view, std::string_view> defended;
  for (const EntryRef ref : oldest_first) {
    const Entry& e = ref->second;
    if (e.status == Status::kOwn || !e.d.instance || reserved_.count(e.d.instance->service)) continue;
    for (const std::string& claim : e.d.claims)
      if (auto h = held_.find(claim); h != held_.end() && h->second == e.d.instance->service)
        defended.emplace(h->first, e.d.instance->service);
  }
  std::vector<EntryRef> outbid;  // refused for a claim another service holds
  for (;;) {
    outbid.clear();
    claims_.clear();
    contested_.clear();
    rejected_.clear();
    for (auto& [name, s] : services_) {
      s.keys.clear();
      s.addresses.clear();
      s.shared_addresses = 0;
      dirty_.insert(name);
    }
    for (const EntryRef ref : oldest_first) {
      Entry& e = ref->second;
      if (e.status == Status::kOwn) continue;
      if (!e.d.instance) {
        refuse(ref, Status::kRefused);
        continue;
      }
      if (reserved(ref)) continue;
      const std::string& name = e.d.instance->service;
      // The keys of a route agree on its labels: the older key's stand (see
      // route_labels_differ()). Checked first: which claims another service holds may change
      // with the holders a pass starts from, the keys of its own service do not.
      std::string disagrees;
      for (size_t i = 0; i < e.d.claims.size() && disagrees.empty(); ++i) {
        auto c = claims_.find(e.d.claims[i]);
        if (c == claims_.end() || c->second.service != name || !c->second.key) continue;
        const std::string labels = claim_labels_differ(c->second.key->second.d, c->second.index, e.d, i);
        if (labels.empty()) continue;
        disagrees = claim_text(e.d.claims[i]) + " is served by " + c->second.key->second.d.source + " of service " +
                    name + " with other " + labels + " (the instances of a route must agree on them)";
      }
      if (!disagrees.empty()) {
        e.conflict = std::move(disagrees);
        for (const std::string& claim : e.d.claims) ++contested_[claim];
        refuse(ref, Status::kConflict);
        continue;
      }
      // Outbid: a claim another service defends, or took earlier in this pass.
      const bool taken = std::any_of(e.d.claims.begin(), e.d.claims.end(), [&](const std::string& claim) {
        if (auto d = defended.find(claim); d != defended.end() && d->second != name) return true;
        auto c = claims_.find(claim);
        return c != claims_.end() && c->second.service != name;
      });
      if (taken) {
        outbid.push_back(ref);
        for (const std::string& claim : e.d.claims) ++contested_[claim];
        refuse(ref, Status::kConflict);
        continue;
      }
      accept(ref);
    }
    // A holder whose keys declaring a claim were all refused (for another claim) does not serve
    // it: decide again without holding it for them.
    const size_t before = defended.size();
    std::erase_if(defended, [&](const auto& d) { return !claims_.count(std::string(d.first)); });
    if (defended.size() == before) break;
  }
  // Each refused key names the first of its claims (in the order its value declares them) that
  // another service holds once the pass is over: which of them were taken when the pass reached
  // the key depends on the holders it started from, the outcome does not.
  for (const EntryRef ref : outbid) {
    Entry& e = ref->second;
    e.conflict = "a route it declares is already served by another service";  // (not reached)
    for (const std::string& claim : e.d.claims) {
      auto c = claims_.find(claim);
      if (c == claims_.end() || c->second.service == e.d.instance->service) continue;
      e.conflict = claim_text(claim) + " is already served by service " + c->second.service;
      break;
    }
  }
  held_.clear();
  for (const auto& [claim, c] : claims_) held_.emplace(claim, c.service);
  rejected_changed_ = true;
  full_ = false;
}

bool RegistryTable::remake(ServiceState& s, const std::string& name, bool* routes_changed) {
  // Its routes: the union of what its instances declare, in key order; its endpoints: each
  // address once, unhealthy instances left out.
  std::vector<std::pair<InstanceRoute, std::string>> routes;
  std::vector<const Endpoint*> endpoints;
  std::set<std::string_view> seen;  // used only when some address is shared
  const bool distinct = s.shared_addresses == 0;
  for (const EntryRef ref : s.keys) {
    const Instance& instance = *ref->second.d.instance;
    for (const InstanceRoute& r : ref->second.d.routes)
      if (std::find_if(routes.begin(), routes.end(), [&](const auto& have) { return have.first == r; }) ==
          routes.end())
        routes.emplace_back(r, ref->second.d.source);
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

RouteList RegistryTable::make_routes() const {
  auto routes = std::make_shared<std::vector<Route>>();
  std::unordered_map<std::string_view, uint32_t> index_of;  // a mirror names its shadow service
  for (const auto& [name, s] : services_) index_of.emplace(name, static_cast<uint32_t>(index_of.size()));
  uint32_t index = 0;
  for (const auto& [name, s] : services_) {
    // Each host + path + priority (+ matchers) once per service: its instances declare it
    // alike (keys whose labels for it disagree are refused), and the first key in byte order
    // names it.
    std::set<std::string> emitted;
    for (const auto& [r, source] : s.routes) {
      const size_t hosts = r.route.hosts.empty() ? 1 : r.route.hosts.size();
      for (size_t h = 0; h < hosts; ++h) {
        Route route = r.parsed ? route_of(*r.parsed, r.spec, h) : Route{};
        route.host = r.route.hosts.empty() ? std::string() : r.route.hosts[h];
        route.path_prefix = r.route.path;
        route.priority = r.route.priority;
        const std::string key = route.host + "\n" + route.path_prefix + "\n" + std::to_string(route.priority) +
                                (route.match ? "\n" + route.match->key() : std::string());
        if (!emitted.insert(key).second) continue;
        route.name = name + (route.host.empty() ? "" : "@" + route.host) + route.path_prefix;
        route.service = index;
        route.source = source;  // the first key declaring it: /api/routes and logs name it
        // A sidecar routes other hosts' apps east-west: their certificates are their own
        // host's to ask for (two hosts asking for one name would fight over its challenges).
        if (!own_.empty()) route.acme = false;
        if (r.parsed) route.mirror = resolve_mirror(r.parsed->spec.routes[r.spec].mirror, index_of);
        routes->push_back(std::move(route));
      }
    }
    ++index;
  }
  return routes;
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
    RouteList fresh = make_routes();
    if (same_routes(routes_, fresh)) routes_changed = false;  // the same object stays
    else routes_ = std::move(fresh);
  }
  bool rejected_changed = false;
  if (rejected_changed_) {
    std::vector<std::pair<std::string, std::string>> rejected;
    rejected.reserve(rejected_.size());
    for (const EntryRef ref : rejected_)
      rejected.emplace_back(ref->second.d.source,
                            ref->second.status == Status::kRefused ? ref->second.d.problem : ref->second.conflict);
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
