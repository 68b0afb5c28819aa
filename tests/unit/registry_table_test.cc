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

// The set a table hands out equals the one built from scratch from the same keys.
void check_same(const DiscoveredSet& table, const std::map<std::string, std::string>& kvs, const TablePolicy& policy) {
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
  std::map<std::string, std::string> kvs = {
      {kRoot + "h1/c1/0", web("10.0.0.1:8080")},
      {kRoot + "h2/c2/0", instance_value("api", "10.0.0.2:9000", {RegistryRoute{{"a.test"}, "/", 0}})},
  };
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first);
  check_same(*first, kvs, TablePolicy{});
  REQUIRE(first->rejected.size() == 1);  // api's claim on a.test / is web's (the earlier key)
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
  // web comes back with a later key: api keeps the host.
  kvs[kRoot + "h3/c1/0"] = web("10.0.0.3:8080");
  REQUIRE(table.put(kRoot + "h3/c1/0", kvs[kRoot + "h3/c1/0"]));
  auto back = table.next();
  REQUIRE(back);
  check_same(*back, kvs, TablePolicy{});
  CHECK(back->rejected.size() == 1);
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
  std::map<std::string, std::string> kvs;
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
        const bool changed = !kvs.count(key) || kvs[key] != v;
        kvs[key] = v;
        REQUIRE(table.put(key, v) == changed);
      }
    }
    if (rng() % 50 == 0) {
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
