// The registry table a watch keeps key by key: the same set as a build from scratch after every
// change, unchanged services and routes kept as the same objects, and whole passes only when a
// change could move a host + path from one service to another.
#include <catch2/catch.hpp>

#include <random>

#include "discovery/label_builder.h"
#include "discovery/registry/registry_table.h"

using namespace berth;
using namespace berth::discovery;
using namespace berth::discovery::registry;

namespace {

const std::string kPrefix = "/berth/v1";
const std::string kRoot = "/berth/v1/instances/";

std::string instance_value(const std::string& service, const std::string& address, std::vector<RegistryRoute> routes,
                           const std::string& health = "healthy", uint32_t weight = 1) {
  Instance i;
  i.service = service;
  i.address = address;
  i.routes = std::move(routes);
  i.health = health;
  i.weight = weight;
  return encode_instance(i);
}

std::string web(const std::string& address, const std::string& host = "a.test") {
  return instance_value("web", address, {RegistryRoute{{host}, "/", 0}});
}

// A value whose container published its labels: service web on a.test, with `extra` labels
// and the text of the files they name.
std::string published_web(const std::string& address, const std::map<std::string, std::string>& extra = {},
                          const std::map<std::string, std::string>& files = {}) {
  auto policy = std::make_shared<PublishedPolicy>();
  policy->labels = {{"berth.host", "a.test"}, {"berth.service", "web"}, {"berth.port", "8080"}};
  for (const auto& [key, value] : extra) policy->labels[key] = value;
  policy->files = files;
  if (!files.empty()) policy->access_files_dir = "/srv/access";
  Instance i;
  i.service = "web";
  i.address = address;
  i.routes = {RegistryRoute{{"a.test"}, "/", 0}};
  i.health = "healthy";
  i.policy = std::move(policy);
  return encode_instance(i);
}

// The names of a set's services.
std::vector<std::string> service_names(const DiscoveredSet& set) {
  std::vector<std::string> names;
  for (const ServicePtr& s : set.services) names.push_back(s->name);
  return names;
}

// The set a table hands out equals the one built from scratch from the same keys (raw values,
// all created together, or StoredKvs with their create_revision), given the holders the table
// decided by and its reserved service names.
void check_same(const DiscoveredSet& table, const StoredKvs& kvs, const TablePolicy& policy,
                const Holders& holders = {}, const ReservedNames& reserved = {}) {
  DiscoveredSet scratch = build_registry_set(kvs, kPrefix, policy, holders, reserved);
  INFO("keys: " << kvs.size());
  // Filter chains are made per parse of a value: where both routes have one, the table's
  // stands for the scratch build's.
  if (table.routes->size() == scratch.routes->size()) {
    auto routes = std::make_shared<std::vector<Route>>(*scratch.routes);
    for (size_t i = 0; i < routes->size(); ++i)
      if ((*routes)[i].filters && (*table.routes)[i].filters) (*routes)[i].filters = (*table.routes)[i].filters;
    scratch.routes = std::move(routes);
  }
  if (table.rejected != scratch.rejected) {
    for (auto& [k, r] : table.rejected) UNSCOPED_INFO("table: " << k << " " << r);
    for (auto& [k, r] : scratch.rejected) UNSCOPED_INFO("scratch: " << k << " " << r);
  }
  REQUIRE(table.rejected == scratch.rejected);
  REQUIRE(same_routes(table.routes, scratch.routes));
  REQUIRE(same_set(table, scratch));
}

void check_same(const DiscoveredSet& table, const std::map<std::string, std::string>& kvs, const TablePolicy& policy) {
  StoredKvs stored;
  for (const auto& [key, value] : kvs) stored.emplace(key, StoredValue{value, 0});
  check_same(table, stored, policy);
}

}  // namespace

TEST_CASE("registry table: values decoded once, changed and removed keys followed", "[registry]") {
  RegistryTable table(kPrefix, TablePolicy{});
  std::map<std::string, std::string> kvs = {{kRoot + "h1/c1/0", web("10.0.0.1:8080")}, {kRoot + "h2/c2/0", "{broken"}};
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first);
  check_same(*first, kvs, TablePolicy{});
  CHECK(table.size() == 2);
  CHECK(table.next() == nullptr);  // nothing changed since
  CHECK_FALSE(table.put(kRoot + "h1/c1/0", web("10.0.0.1:8080")));  // the same value
  CHECK_FALSE(table.erase(kRoot + "h9/c9/0"));                      // no such key
  CHECK(table.put(kRoot + "h1/c1/0", web("10.0.0.1:9090")));
  CHECK(table.erase(kRoot + "h2/c2/0"));
  auto second = table.next();
  REQUIRE(second);
  REQUIRE(second->services.size() == 1);
  CHECK(second->services[0]->endpoints[0].key == "10.0.0.1:9090");
  CHECK(second->rejected.empty());
  CHECK(second->routes == first->routes);  // the same routes: the same object
  CHECK(table.size() == 1);
}

TEST_CASE("registry table: an instance change makes its service again and nothing else", "[registry]") {
  RegistryTable table(kPrefix, TablePolicy{});
  std::map<std::string, std::string> kvs;
  for (int h = 0; h < 20; ++h)
    for (int c = 0; c < 5; ++c)
      kvs[kRoot + "h" + std::to_string(h) + "/c" + std::to_string(c) + "/0"] =
          instance_value("s" + std::to_string(c), "10.0." + std::to_string(h) + ".1:" + std::to_string(8000 + c),
                         {RegistryRoute{{"s" + std::to_string(c) + ".test"}, "/", 0}});
  table.reset(kvs);
  auto before = table.next();
  REQUIRE(before);
  REQUIRE(before->services.size() == 5);
  const uint64_t passes = table.full_builds();

  // A new instance of s0, then its removal: s0 alone is a new object, the routes stay.
  const std::string key = kRoot + "h99/c0/0";
  kvs[key] = instance_value("s0", "10.0.99.1:8000", {RegistryRoute{{"s0.test"}, "/", 0}});
  REQUIRE(table.put(key, kvs[key]));
  auto added = table.next();
  REQUIRE(added);
  check_same(*added, kvs, TablePolicy{});
  CHECK(added->routes == before->routes);
  CHECK(added->services[0] != before->services[0]);
  CHECK(added->services[0]->endpoints.size() == 21);
  for (size_t i = 1; i < 5; ++i) CHECK(added->services[i] == before->services[i]);
  kvs.erase(key);
  REQUIRE(table.erase(key));
  auto removed = table.next();
  REQUIRE(removed);
  check_same(*removed, kvs, TablePolicy{});
  CHECK(removed->routes == before->routes);
  CHECK(removed->services[0]->endpoints.size() == 20);

  // An unhealthy instance keeps its routes and gets no traffic: s1 changes, nothing else.
  const std::string sick = kRoot + "h3/c1/0";
  kvs[sick] = instance_value("s1", "10.0.3.1:8001", {RegistryRoute{{"s1.test"}, "/", 0}}, "unhealthy");
  REQUIRE(table.put(sick, kvs[sick]));
  auto unhealthy = table.next();
  REQUIRE(unhealthy);
  check_same(*unhealthy, kvs, TablePolicy{});
  CHECK(unhealthy->services[1]->endpoints.size() == 19);
  CHECK(unhealthy->services[0] == removed->services[0]);

  // A new service: its routes join the list; the other services stay the same objects.
  const std::string fresh = kRoot + "h0/c9/0";
  kvs[fresh] = instance_value("api", "10.0.0.1:9000", {RegistryRoute{{"api.test"}, "/", 0}});
  REQUIRE(table.put(fresh, kvs[fresh]));
  auto grown = table.next();
  REQUIRE(grown);
  check_same(*grown, kvs, TablePolicy{});
  CHECK(grown->routes != before->routes);
  CHECK(grown->services.size() == 6);
  CHECK(grown->services[1] == unhealthy->services[0]);  // "api" sorts first: s0 moved to position 1
  CHECK(table.full_builds() == passes);  // none of these needed a whole pass
}

TEST_CASE("registry table: a host + path moves between services exactly as a build from scratch says",
          "[registry]") {
  RegistryTable table(kPrefix, TablePolicy{});
  StoredKvs kvs = {
      {kRoot + "h1/c1/0", {web("10.0.0.1:8080"), 5}},
      {kRoot + "h2/c2/0", {instance_value("api", "10.0.0.2:9000", {RegistryRoute{{"a.test"}, "/", 0}}), 6}},
  };
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first);
  check_same(*first, kvs, TablePolicy{});
  REQUIRE(first->rejected.size() == 1);  // api's claim on a.test / is web's (the older key)
  const uint64_t passes = table.full_builds();
  // web's only key leaves: a.test / is free, and the refused api key is served.
  kvs.erase(kRoot + "h1/c1/0");
  REQUIRE(table.erase(kRoot + "h1/c1/0"));
  auto moved = table.next();
  REQUIRE(moved);
  check_same(*moved, kvs, TablePolicy{});
  CHECK(moved->rejected.empty());
  REQUIRE(moved->services.size() == 1);
  CHECK(moved->services[0]->name == "api");
  CHECK(table.full_builds() == passes + 1);
  // web comes back with a newer key, one that sorts first: api keeps the host.
  kvs[kRoot + "h0/c1/0"] = {web("10.0.0.3:8080"), 8};
  REQUIRE(table.put(kRoot + "h0/c1/0", kvs[kRoot + "h0/c1/0"].value, 8));
  auto back = table.next();
  REQUIRE(back);
  check_same(*back, kvs, TablePolicy{});
  REQUIRE(back->rejected.size() == 1);
  CHECK(back->rejected[0].first == "registry:h0/c1/0");
}

TEST_CASE("registry table: the oldest key keeps a contested host, whatever its key sorts", "[registry]") {
  // web-1 has served a.test since revision 5; a-evil's key sorts first but was created later.
  const std::string incumbent = kRoot + "web-1/c1/0", newcomer = kRoot + "a-evil/c9/0";
  const std::string evil = instance_value("evil", "10.0.9.9:80", {RegistryRoute{{"a.test"}, "/", 0}});
  const std::string taken = "host 'a.test' path '/' is already served by service web";
  StoredKvs kvs = {{incumbent, {web("10.0.0.1:8080"), 5}}, {newcomer, {evil, 9}}};

  DiscoveredSet scratch = build_registry_set(kvs, kPrefix, TablePolicy{});
  CHECK(service_names(scratch) == std::vector<std::string>{"web"});
  CHECK(scratch.rejected == std::vector<std::pair<std::string, std::string>>{{"registry:a-evil/c9/0", taken}});

  RegistryTable table(kPrefix, TablePolicy{});
  table.reset(StoredKvs{{incumbent, kvs[incumbent]}});
  REQUIRE(table.next());
  const uint64_t passes = table.full_builds();
  REQUIRE(table.put(newcomer, evil, 9));
  auto contested = table.next();
  REQUIRE(contested);
  check_same(*contested, kvs, TablePolicy{});
  CHECK(service_names(*contested) == std::vector<std::string>{"web"});
  CHECK(table.full_builds() == passes + 1);

  // Whole passes again: a resync, and the incumbent rewriting its key in place (a restarted
  // sidecar: same create_revision, a new value). web keeps a.test.
  table.reset(kvs);
  CHECK(table.next() == nullptr);  // nothing moved
  kvs[incumbent].value = web("10.0.0.2:8080");
  REQUIRE(table.put(incumbent, kvs[incumbent].value, 5));
  auto rewritten = table.next();
  REQUIRE(rewritten);
  check_same(*rewritten, kvs, TablePolicy{});
  CHECK(service_names(*rewritten) == std::vector<std::string>{"web"});
  CHECK(rewritten->services[0]->endpoints[0].key == "10.0.0.2:8080");
  CHECK(rewritten->rejected.size() == 1);
  CHECK(table.full_builds() == passes + 3);

  // The incumbent's key goes: the newcomer is the oldest claimant left, and serves a.test.
  kvs.erase(incumbent);
  REQUIRE(table.erase(incumbent));
  auto freed = table.next();
  REQUIRE(freed);
  check_same(*freed, kvs, TablePolicy{});
  CHECK(service_names(*freed) == std::vector<std::string>{"evil"});
  CHECK(freed->rejected.empty());

  // Created again, web's key is the newcomer now: evil keeps a.test.
  kvs[incumbent] = {web("10.0.0.1:8080"), 12};
  REQUIRE(table.put(incumbent, kvs[incumbent].value, 12));
  auto again = table.next();
  REQUIRE(again);
  check_same(*again, kvs, TablePolicy{});
  CHECK(service_names(*again) == std::vector<std::string>{"evil"});
  REQUIRE(again->rejected.size() == 1);
  CHECK(again->rejected[0].first == "registry:web-1/c1/0");
  CHECK(again->rejected[0].second == "host 'a.test' path '/' is already served by service evil");

  // evil's key deleted and created again while the watch was away: a resync is no restart, and
  // evil, the holder with a key for a.test, keeps it though web's key is older now. A table
  // without that history (a front door started afresh) gives it to the oldest key, web's.
  kvs[newcomer].created = 15;
  const Holders held = table.holders();
  CHECK(held.at("a.test\n/") == "evil");
  table.reset(kvs);
  CHECK(table.next() == nullptr);  // nothing moved
  check_same(*again, kvs, TablePolicy{}, held);
  CHECK(service_names(build_registry_set(kvs, kPrefix, TablePolicy{})) == std::vector<std::string>{"web"});
}

TEST_CASE("registry table: the service holding a host keeps it through a rolling update", "[registry]") {
  // web-1 has served web.test since revision 3; evil's key (revision 5) is refused.
  const std::string web1 = kRoot + "web-1/c1/0", web2 = kRoot + "web-2/c2/0", evil_key = kRoot + "a-evil/e1/0";
  const std::string evil = instance_value("evil", "10.0.9.9:80", {RegistryRoute{{"web.test"}, "/", 0}});
  const std::string taken = "host 'web.test' path '/' is already served by service ";
  StoredKvs kvs = {{web1, {web("10.0.0.1:8080", "web.test"), 3}}, {evil_key, {evil, 5}}};
  RegistryTable table(kPrefix, TablePolicy{});
  table.reset(kvs);
  REQUIRE(table.next());
  // web's new instance joins (revision 6), then its old one leaves: web's remaining key is
  // newer than evil's, and web keeps web.test.
  kvs[web2] = {web("10.0.0.2:8080", "web.test"), 6};
  REQUIRE(table.put(web2, kvs[web2].value, 6));
  Holders held = table.holders();
  auto joined = table.next();
  REQUIRE(joined);
  check_same(*joined, kvs, TablePolicy{}, held);
  kvs.erase(web1);
  REQUIRE(table.erase(web1));
  held = table.holders();
  auto replaced = table.next();
  REQUIRE(replaced);
  check_same(*replaced, kvs, TablePolicy{}, held);
  CHECK(service_names(*replaced) == std::vector<std::string>{"web"});
  REQUIRE(replaced->services[0]->endpoints.size() == 1);
  CHECK(replaced->services[0]->endpoints[0].key == "10.0.0.2:8080");
  CHECK(replaced->rejected ==
        std::vector<std::pair<std::string, std::string>>{{"registry:a-evil/e1/0", taken + "web"}});
  // A resync keeps that; only a table without history (a restart) goes by age.
  table.reset(kvs);
  CHECK(table.next() == nullptr);
  CHECK(service_names(build_registry_set(kvs, kPrefix, TablePolicy{})) == std::vector<std::string>{"evil"});

  // web's only key restarts, deleted and created again in one watch message: web still has a
  // key declaring web.test when the table decides, and keeps it.
  kvs[web2].created = 8;
  REQUIRE(table.erase(web2));
  REQUIRE(table.put(web2, kvs[web2].value, 8));
  held = table.holders();
  auto restarted = table.next();
  if (restarted) check_same(*restarted, kvs, TablePolicy{}, held);
  CHECK(service_names(restarted ? *restarted : *replaced) == std::vector<std::string>{"web"});

  // Deleted, and the table decides before it comes back: web has no key for web.test, and the
  // newcomer takes it; web's key created again is the newcomer then.
  kvs.erase(web2);
  REQUIRE(table.erase(web2));
  auto gone = table.next();
  REQUIRE(gone);
  CHECK(service_names(*gone) == std::vector<std::string>{"evil"});
  CHECK(gone->rejected.empty());
  kvs[web2] = {web("10.0.0.2:8080", "web.test"), 10};
  REQUIRE(table.put(web2, kvs[web2].value, 10));
  held = table.holders();
  auto back = table.next();
  REQUIRE(back);
  check_same(*back, kvs, TablePolicy{}, held);
  CHECK(service_names(*back) == std::vector<std::string>{"evil"});
  CHECK(back->rejected == std::vector<std::pair<std::string, std::string>>{{"registry:web-2/c2/0", taken + "evil"}});
}

TEST_CASE("registry table: keys of a reserved service name are refused and claim nothing", "[registry]") {
  // The config file has a service `cfg`: the Server leaves a discovered `cfg` out, so its older
  // key must not keep shop.test from `shop`.
  const std::string cfg_shop = kRoot + "h1/k1/0", cfg_own = kRoot + "h1/k2/0", shop = kRoot + "h2/k2/0";
  StoredKvs kvs = {
      {cfg_shop, {instance_value("cfg", "10.0.0.1:80", {RegistryRoute{{"shop.test"}, "/", 0}}), 3}},
      {cfg_own, {instance_value("cfg", "10.0.0.2:80", {RegistryRoute{{"cfg.test"}, "/", 0}}), 4}},
      {shop, {instance_value("shop", "10.0.0.3:80", {RegistryRoute{{"shop.test"}, "/", 0}}), 5}},
  };
  const ReservedNames reserved = {{"cfg", "the config file"}};
  const std::string why = "service name 'cfg' is taken by the config file";
  RegistryTable table(kPrefix, TablePolicy{});
  CHECK(table.reserve(reserved));
  CHECK_FALSE(table.reserve(reserved));  // the same names: nothing to decide again
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first);
  check_same(*first, kvs, TablePolicy{}, {}, reserved);
  CHECK(service_names(*first) == std::vector<std::string>{"shop"});
  CHECK(first->rejected ==
        std::vector<std::pair<std::string, std::string>>{{"registry:h1/k1/0", why}, {"registry:h1/k2/0", why}});
  // A reserved key written later is refused as it comes, without a whole pass.
  const uint64_t passes = table.full_builds();
  kvs[kRoot + "h3/k3/0"] = {instance_value("cfg", "10.0.0.4:80", {RegistryRoute{{"cfg.test"}, "/", 0}}), 6};
  REQUIRE(table.put(kRoot + "h3/k3/0", kvs[kRoot + "h3/k3/0"].value, 6));
  auto more = table.next();
  REQUIRE(more);
  check_same(*more, kvs, TablePolicy{}, {}, reserved);
  CHECK(more->rejected.size() == 3);
  CHECK(table.full_builds() == passes);

  // The name is free again (the config file dropped it): cfg's keys come in, but shop holds
  // shop.test now, and cfg's older key for it stays refused.
  CHECK(table.reserve({}));
  const Holders held = table.holders();
  auto freed = table.next();
  REQUIRE(freed);
  check_same(*freed, kvs, TablePolicy{}, held);
  CHECK(service_names(*freed) == std::vector<std::string>{"cfg", "shop"});
  CHECK(freed->rejected == std::vector<std::pair<std::string, std::string>>{
                               {"registry:h1/k1/0", "host 'shop.test' path '/' is already served by service shop"}});
}

TEST_CASE("registry table: a route names the first key that declares it", "[registry]") {
  StoredKvs kvs = {{kRoot + "h1/c1/0", {web("10.0.0.1:8080"), 3}}, {kRoot + "h2/c2/0", {web("10.0.0.2:8080"), 4}}};
  RegistryTable table(kPrefix, TablePolicy{});
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first);
  REQUIRE(first->routes->size() == 1);
  CHECK((*first->routes)[0].source == "registry:h1/c1/0");
  REQUIRE(table.erase(kRoot + "h1/c1/0"));
  auto second = table.next();
  REQUIRE(second);
  REQUIRE(second->routes->size() == 1);
  CHECK((*second->routes)[0].source == "registry:h2/c2/0");
}

TEST_CASE("registry table: keys of one route that disagree on its labels: the oldest key's stand", "[registry]") {
  // h2's instance guards a.test with an allow list; an instance published later by h1 without
  // it must not open the route, though its key sorts first.
  const std::string guarded = published_web("10.0.0.2:8080", {{"berth.access.allow", "10.0.0.0/8"}});
  const std::string open = published_web("10.0.0.1:8080");
  const std::string twin = published_web("10.0.0.3:8080", {{"berth.access.allow", "10.0.0.0/8"}});
  StoredKvs kvs = {{kRoot + "h2/c2/0", {guarded, 3}}, {kRoot + "h3/c3/0", {twin, 4}}, {kRoot + "h1/c1/0", {open, 5}}};
  RegistryTable table(kPrefix, TablePolicy{});
  table.reset(kvs);
  // The table's next set, checked against a build from scratch.
  auto next = [&] {
    std::shared_ptr<const DiscoveredSet> set = table.next();
    REQUIRE(set);
    check_same(*set, kvs, TablePolicy{});
    return set;
  };
  auto erase = [&](const std::string& key) {
    REQUIRE(table.erase(kRoot + key));
    kvs.erase(kRoot + key);
    return next();
  };
  auto set = next();
  REQUIRE(set->routes->size() == 1);
  CHECK((*set->routes)[0].filters != nullptr);
  REQUIRE(set->services.size() == 1);
  CHECK(set->services[0]->endpoints.size() == 2);
  CHECK(set->rejected == std::vector<std::pair<std::string, std::string>>{
                             {"registry:h1/c1/0", "host 'a.test' path '/' is served by registry:h2/c2/0 of service web "
                                                  "with other berth.access.* labels (the instances of a route must "
                                                  "agree on them)"}});

  // The guarded key leaves: its twin, older than the open one, keeps the route as it was.
  set = erase("h2/c2/0");
  REQUIRE(set->routes->size() == 1);
  CHECK((*set->routes)[0].filters != nullptr);
  CHECK(set->rejected.size() == 1);

  // An open one put while the route is held: refused in its turn.
  REQUIRE(table.put(kRoot + "h4/c4/0", published_web("10.0.0.4:8080"), 6));
  kvs[kRoot + "h4/c4/0"] = {published_web("10.0.0.4:8080"), 6};
  set = next();
  CHECK(set->rejected.size() == 2);

  // The twin leaves too: the oldest open key takes the route with its own labels.
  set = erase("h3/c3/0");
  REQUIRE(set->routes->size() == 1);
  CHECK((*set->routes)[0].filters == nullptr);
  CHECK((*set->routes)[0].source == "registry:h1/c1/0");
  CHECK(set->rejected.empty());
  CHECK(set->services[0]->endpoints.size() == 2);
}

TEST_CASE("registry table: keys naming one htpasswd file with other users disagree", "[registry]") {
  // "alice" / "opensesame" and "bob" / the same, SHA-512 crypt.
  const std::string path = "/srv/access/team.htpasswd";
  const std::string alice =
      "alice:$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0\n";
  const std::string bob =
      "bob:$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0\n";
  const std::map<std::string, std::string> label = {{"berth.access.basic_auth", path}};
  StoredKvs kvs = {{kRoot + "h2/c2/0", {published_web("10.0.0.2:8080", label, {{path, alice}}), 3}},
                   {kRoot + "h1/c1/0", {published_web("10.0.0.1:8080", label, {{path, alice + bob}}), 4}},
                   {kRoot + "h3/c3/0", {published_web("10.0.0.3:8080", label, {{path, alice}}), 5}}};
  DiscoveredSet set = build_registry_set(kvs, kPrefix, TablePolicy{});
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0]->endpoints.size() == 2);
  REQUIRE(set.rejected.size() == 1);
  CHECK(set.rejected[0].first == "registry:h1/c1/0");
  CHECK(set.rejected[0].second.find("with other berth.access.basic_auth file contents") != std::string::npos);
}

TEST_CASE("registry table: keys created in one revision contest a host by key order", "[registry]") {
  const std::string api = instance_value("api", "10.0.1.1:9000", {RegistryRoute{{"a.test"}, "/", 0}});
  StoredKvs kvs = {{kRoot + "b-1/c1/0", {web("10.0.0.1:8080"), 7}}, {kRoot + "a-1/c1/0", {api, 7}}};
  DiscoveredSet scratch = build_registry_set(kvs, kPrefix, TablePolicy{});
  CHECK(service_names(scratch) == std::vector<std::string>{"api"});
  REQUIRE(scratch.rejected.size() == 1);
  CHECK(scratch.rejected[0].first == "registry:b-1/c1/0");
  // Raw values are taken as created together.
  std::map<std::string, std::string> raw = {{kRoot + "b-1/c1/0", kvs[kRoot + "b-1/c1/0"].value},
                                            {kRoot + "a-1/c1/0", api}};
  CHECK(build_registry_set(raw, kPrefix, TablePolicy{}).rejected == scratch.rejected);
}

TEST_CASE("registry table: a key outbid for a route names the first of its routes another service holds",
          "[registry]") {
  // web's key declares a.test/ and a.test/x; an older api key holds /x, so web's is refused, and a
  // younger api key then takes a.test/ too. The message names a.test/, the first route web's value
  // declares that api holds, whichever of them was taken when the key was refused.
  const std::string web_value = instance_value("web", "10.0.0.1:8080", {RegistryRoute{{"a.test"}, "/", 0},
                                                                         RegistryRoute{{"a.test"}, "/x", 0}});
  const std::string api_x = instance_value("api", "10.0.1.1:9000", {RegistryRoute{{"a.test"}, "/x", 0}});
  const std::string api_root = instance_value("api", "10.0.1.2:9000", {RegistryRoute{{"a.test"}, "/", 0}});
  const std::pair<std::string, std::string> expected = {
      "registry:h2/c2/0", "host 'a.test' path '/' is already served by service api"};
  StoredKvs kvs = {{kRoot + "h1/c1/0", {api_x, 3}}, {kRoot + "h2/c2/0", {web_value, 4}}};
  RegistryTable table(kPrefix, TablePolicy{});
  table.reset(kvs);
  auto set = table.next();
  REQUIRE(set);
  CHECK(set->rejected == std::vector<std::pair<std::string, std::string>>{
                             {"registry:h2/c2/0", "host 'a.test' path '/x' is already served by service api"}});
  REQUIRE(table.put(kRoot + "h3/c3/0", api_root, 5));
  kvs[kRoot + "h3/c3/0"] = {api_root, 5};
  const Holders held = table.holders();
  set = table.next();
  REQUIRE(set);
  CHECK(set->rejected == std::vector<std::pair<std::string, std::string>>{expected});
  check_same(*set, kvs, TablePolicy{}, held);
  CHECK(build_registry_set(kvs, kPrefix, TablePolicy{}).rejected ==
        std::vector<std::pair<std::string, std::string>>{expected});
}

namespace {

// Random puts and deletes (one to three per step, as one watch message may carry several events,
// now and then a resync, and now and then the service name api reserved or freed) over a small
// world of keys and values; after every step the table's set must be the one built from scratch
// given the holders the table decided by. Returns the whole passes beyond the resyncs'.
uint64_t random_walk(const std::vector<std::string>& values, const TablePolicy& policy, uint32_t seed) {
  std::vector<std::string> keys;
  for (const char* host : {"h1", "h2", "h3", "h10"})
    for (const char* c : {"c1", "c2", "c3"})
      for (const char* n : {"0", "1"}) keys.push_back(kRoot + host + "/" + c + "/" + n);
  keys.push_back(kRoot + "stray");  // not <host>/<container>/<n>: refused
  std::mt19937 rng(seed);
  RegistryTable table(kPrefix, policy);
  ReservedNames reserved;  // now and then the config file has a service named api
  StoredKvs kvs;
  int64_t revision = 0;  // etcd's: a new key is created at the next one, or with the last (one txn)
  table.reset(kvs);
  std::shared_ptr<const DiscoveredSet> current = table.next();
  REQUIRE(current);
  uint64_t resyncs = 1;
  for (int step = 0; step < 3000; ++step) {
    const int batch = 1 + static_cast<int>(rng() % 3);
    for (int b = 0; b < batch; ++b) {
      const std::string& key = keys[rng() % keys.size()];
      if (rng() % 3 == 0) {
        REQUIRE(table.erase(key) == (kvs.erase(key) > 0));
      } else {
        const std::string& v = values[rng() % values.size()];
        auto [it, created] = kvs.try_emplace(key);
        const bool changed = created || it->second.value != v;
        it->second.value = v;  // written in place: its create_revision stays
        if (created) it->second.created = revision > 0 && rng() % 4 == 0 ? revision : ++revision;
        REQUIRE(table.put(key, v, it->second.created) == changed);
      }
    }
    bool whole = false;  // a resync, or the reserved names changed: one whole pass
    if (rng() % 50 == 0) {
      // Away from the watch, a key may have been deleted and created again: the same value, newer.
      if (!kvs.empty() && rng() % 2 == 0) std::next(kvs.begin(), rng() % kvs.size())->second.created = ++revision;
      table.reset(kvs);
      whole = true;
    }
    if (rng() % 40 == 0) {
      reserved = reserved.empty() ? ReservedNames{{"api", "the config file"}} : ReservedNames{};
      REQUIRE(table.reserve(reserved));
      whole = true;
    }
    resyncs += whole;
    const Holders held = table.holders();
    if (auto next = table.next()) current = std::move(next);
    INFO("step " << step);
    check_same(*current, kvs, policy, held, reserved);
  }
  return table.full_builds() - resyncs;
}

}  // namespace

TEST_CASE("registry table: random changes give the set a build from scratch gives", "[registry]") {
  TablePolicy front;
  front.allowed_hosts = {"a.test", "b.test", "api.test"};  // bank.test is refused
  front.allow_any_host = true;
  TablePolicy sidecar = front;
  sidecar.local_host_id = "h1";
  const std::string refused = instance_value("jobs", "10.0.2.2:7000", {RegistryRoute{{"bank.test"}, "/", 0}});

  SECTION("services that want the same host + path: whole passes where a claim may move") {
    // Two services share hosts; some values are refused (bad JSON, policy), some instances
    // unhealthy, some at one address.
    const std::vector<std::string> values = {
        web("10.0.0.1:8080"),
        web("10.0.0.2:8080"),
        web("10.0.0.2:8080", "b.test"),
        instance_value("web", "10.0.0.3:8080", {RegistryRoute{{"a.test"}, "/", 0}}, "unhealthy"),
        instance_value("web", "10.0.0.4:8080", {RegistryRoute{{"a.test"}, "/", 0}, RegistryRoute{{"a.test"}, "/x", 0}}),
        instance_value("web", "10.0.0.5:8080", {RegistryRoute{{"a.test"}, "/", 0}}, "healthy", 7),
        instance_value("api", "10.0.1.1:9000", {RegistryRoute{{"a.test"}, "/", 0}}),
        instance_value("api", "10.0.1.2:9000", {RegistryRoute{{"api.test"}, "/", 0}}),
        instance_value("api", "10.0.1.3:9000", {RegistryRoute{{"a.test", "api.test"}, "/x", 0}}),
        instance_value("jobs", "10.0.2.1:7000", {RegistryRoute{{}, "/jobs", 0}}),
        instance_value("jobs", "10.0.2.3:7000", {RegistryRoute{{"b.test"}, "/", 0}}),
        refused,
        "{broken",
        published_web("10.0.0.6:8080"),
        published_web("10.0.0.7:8080", {{"berth.access.allow", "10.0.0.0/8"}}),
        published_web("10.0.0.8:8080", {{"berth.access.allow", "10.0.0.0/8"}}),
        published_web("10.0.0.9:8080", {{"berth.strip_prefix", "/x"}}),
    };
    random_walk(values, front, 7);
    random_walk(values, sidecar, 11);
  }
  SECTION("services with hosts of their own: no whole pass beyond the resyncs") {
    const std::vector<std::string> values = {
        web("10.0.0.1:8080"),
        web("10.0.0.2:8080"),
        instance_value("web", "10.0.0.3:8080", {RegistryRoute{{"a.test"}, "/", 0}}, "unhealthy"),
        instance_value("web", "10.0.0.4:8080", {RegistryRoute{{"a.test"}, "/", 0}, RegistryRoute{{"a.test"}, "/x", 0}}),
        instance_value("api", "10.0.1.2:9000", {RegistryRoute{{"api.test"}, "/", 0}}),
        instance_value("api", "10.0.1.2:9000", {RegistryRoute{{"api.test"}, "/", 0}}, "healthy", 3),
        instance_value("jobs", "10.0.2.1:7000", {RegistryRoute{{}, "/jobs", 0}}),
        instance_value("jobs", "10.0.2.3:7000", {RegistryRoute{{"b.test"}, "/", 0}}),
        refused,
        "{broken",
    };
    CHECK(random_walk(values, front, 13) == 0);
    CHECK(random_walk(values, sidecar, 17) == 0);
  }
}
