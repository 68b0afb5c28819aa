// A sidecar's east-west table (discovery/registry/locality.h): its host's services keep their
// place with the other hosts' instances appended as remote, services only other hosts run are
// added, the host's own routes win a host + path, and unchanged inputs keep their objects.
#include <catch2/catch.hpp>

#include "discovery/registry/locality.h"

using namespace berth;
using namespace berth::discovery;
using namespace berth::discovery::registry;

namespace {

ServicePtr service(const std::string& name, std::vector<std::string> keys, bool remote) {
  auto s = std::make_shared<Service>();
  s->name = name;
  for (auto& k : keys) {
    Endpoint e;
    e.key = k;
    e.remote = remote;
    s->endpoints.push_back(e);
  }
  return s;
}

Route route(const std::string& host, const std::string& path, uint32_t service) {
  Route r;
  r.name = host + path;
  r.host = host;
  r.path_prefix = path;
  r.service = service;
  return r;
}

std::shared_ptr<DiscoveredSet> set_of(std::vector<ServicePtr> services, std::vector<Route> routes) {
  auto set = std::make_shared<DiscoveredSet>();
  set->services = std::move(services);
  set->routes = std::make_shared<const std::vector<Route>>(std::move(routes));
  return set;
}

}  // namespace

TEST_CASE("locality: local services first, other hosts' instances appended, remote-only services added",
          "[registry]") {
  auto local = set_of({service("web", {"127.0.0.1:8080"}, false)}, {route("web.test", "/", 0)});
  auto remote = set_of({service("api", {"10.0.0.2:9000"}, true), service("web", {"10.0.0.2:8080", "127.0.0.1:8080"}, true)},
                       {route("api.test", "/", 0), route("web.test", "/", 1)});
  LocalityMerge merge;
  auto out = merge.merge(local, remote);
  REQUIRE(out->services.size() == 2);
  const Service& web = *out->services[0];
  CHECK(web.name == "web");
  REQUIRE(web.endpoints.size() == 2);  // the address both list counts once, as local
  CHECK(web.endpoints[0].key == "127.0.0.1:8080");
  CHECK_FALSE(web.endpoints[0].remote);
  CHECK(web.endpoints[1].key == "10.0.0.2:8080");
  CHECK(web.endpoints[1].remote);
  CHECK(out->services[1]->name == "api");
  CHECK(out->services[1] == remote->services[0]);  // taken as it is
  REQUIRE(out->routes->size() == 2);                // web.test / once: the local route
  CHECK((*out->routes)[0].host == "web.test");
  CHECK((*out->routes)[0].service == 0);
  CHECK((*out->routes)[1].host == "api.test");
  CHECK((*out->routes)[1].service == 1);
  CHECK(out->rejected.empty());
}

TEST_CASE("locality: a host + path this host serves is not taken by another host's service", "[registry]") {
  auto local = set_of({service("web", {"127.0.0.1:8080"}, false)}, {route("a.test", "/", 0)});
  auto remote = set_of({service("other", {"10.0.0.2:1"}, true)}, {route("a.test", "/", 0)});
  LocalityMerge merge;
  auto out = merge.merge(local, remote);
  REQUIRE(out->services.size() == 1);
  CHECK(out->services[0] == local->services[0]);
  CHECK(out->routes->size() == 1);
  REQUIRE(out->rejected.size() == 1);
  CHECK(out->rejected[0].first == "registry:other");
  CHECK(out->rejected[0].second.find("served on this host by service web") != std::string::npos);
}

TEST_CASE("locality: unchanged inputs keep their objects, a changed side rebuilds only its part", "[registry]") {
  auto local = set_of({service("web", {"127.0.0.1:8080"}, false), service("db", {"127.0.0.1:5432"}, false)},
                      {route("web.test", "/", 0), route("db.test", "/", 1)});
  auto remote = set_of({service("web", {"10.0.0.2:8080"}, true), service("api", {"10.0.0.2:9000"}, true)},
                       {route("web.test", "/", 0), route("api.test", "/", 1)});
  LocalityMerge merge;
  auto first = merge.merge(local, remote);
  REQUIRE(first->services.size() == 3);
  auto again = merge.merge(local, remote);
  CHECK(again->routes == first->routes);
  for (size_t i = 0; i < 3; ++i) CHECK(again->services[i] == first->services[i]);

  // Only the local db service changed (same layout): web stays the same joined object.
  auto local2 = std::make_shared<DiscoveredSet>(*local);
  local2->services[1] = service("db", {"127.0.0.1:5433"}, false);
  auto second = merge.merge(local2, remote);
  CHECK(second->routes == first->routes);
  CHECK(second->services[0] == first->services[0]);
  CHECK(second->services[1] == local2->services[1]);
  CHECK(second->services[2] == first->services[2]);

  // The remote web changed: the joined web is rebuilt.
  auto remote2 = std::make_shared<DiscoveredSet>(*remote);
  remote2->services[0] = service("web", {"10.0.0.2:8080", "10.0.0.3:8080"}, true);
  auto third = merge.merge(local2, remote2);
  CHECK(third->services[0] != first->services[0]);
  CHECK(third->services[0]->endpoints.size() == 3);
  CHECK(third->services[1] == local2->services[1]);
}

TEST_CASE("locality: without the registry's set the host's own set passes through", "[registry]") {
  auto local = set_of({service("web", {"127.0.0.1:8080"}, false)}, {route("web.test", "/", 0)});
  LocalityMerge merge;
  CHECK(merge.merge(local, nullptr) == local);
  auto remote = set_of({service("api", {"10.0.0.2:9000"}, true)}, {route("api.test", "/", 0)});
  auto only_remote = merge.merge(nullptr, remote);
  REQUIRE(only_remote->services.size() == 1);
  CHECK(only_remote->services[0]->name == "api");
  CHECK(only_remote->routes->size() == 1);
}
