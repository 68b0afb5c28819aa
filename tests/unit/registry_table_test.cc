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

// The names of a set's services.
std::vector<std::string> service_names(const DiscoveredSet& set) {
  std::vector<std::string> names;
  for (const ServicePtr& s : set.services) names.push_back(s->name);
  return names;
}

// The set a table hands out equals the one built from scratch from the same keys (raw values,
// all created together, or StoredKvs with their create_revision).
template <class Kvs>
void check_same(const DiscoveredSet& table, const Kvs& kvs, const TablePolicy& policy) {
  DiscoveredSet scratch = build_registry_set(kvs, kPrefix, policy);
  INFO("keys: " << kvs.size());
  if (table.rejected != scratch.rejected) {
    for (auto& [k, r] : table.rejected) UNSCOPED_INFO("table: " << k << " " << r);
    for (auto& [k, r] : scratch.rejected) UNSCOPED_INFO("scratch: " << k << " " << r);
  }
  REQUIRE(table.rejected == scratch.rejected);
  REQUIRE(same_routes(table.routes, scratch.routes));
  REQUIRE(same_set(table, scratch));
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

  // evil's key deleted and created again while the watch was away: a resync finds its value
  // the same and its create_revision newer than web's, and web has a.test back.
  kvs[newcomer].created = 15;
  table.reset(kvs);
  auto recreated = table.next();
  REQUIRE(recreated);
  check_same(*recreated, kvs, TablePolicy{});
  CHECK(service_names(*recreated) == std::vector<std::string>{"web"});
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

namespace {

// Random puts and deletes (one to three per step, as one watch message may carry several events,
// and now and then a resync) over a small world of keys and values; after every step the table's
// set must be the one built from scratch. Returns the whole passes beyond the resyncs'.
uint64_t random_walk(const std::vector<std::string>& values, const TablePolicy& policy, uint32_t seed) {
  std::vector<std::string> keys;
  for (const char* host : {"h1", "h2", "h3", "h10"})
    for (const char* c : {"c1", "c2", "c3"})
      for (const char* n : {"0", "1"}) keys.push_back(kRoot + host + "/" + c + "/" + n);
  keys.push_back(kRoot + "stray");  // not <host>/<container>/<n>: refused
  std::mt19937 rng(seed);
  RegistryTable table(kPrefix, policy);
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
    if (rng() % 50 == 0) {
      // Away from the watch, a key may have been deleted and created again: the same value, newer.
      if (!kvs.empty() && rng() % 2 == 0) std::next(kvs.begin(), rng() % kvs.size())->second.created = ++revision;
      table.reset(kvs);
      ++resyncs;
    }
    if (auto next = table.next()) current = std::move(next);
    INFO("step " << step);
    check_same(*current, kvs, policy);
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
