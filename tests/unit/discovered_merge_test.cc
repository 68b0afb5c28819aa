// The config file's and each discovery source's services and routes made into one table: a service
// name and a host + path belong to the first that has them, and what is left out is listed.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/control/discovered_merge.h"

using berth::Route;
using berth::RouteMirror;
using berth::Service;
using berth::ServicePtr;
using berth::DiscoveredSets;
using berth::kLeftOut;
using berth::merge_routes;
using berth::merge_services;
using berth::discovery::DiscoveredSet;

namespace {

ServicePtr service(const std::string& name) {
  auto s = std::make_shared<Service>();
  s->name = name;
  return s;
}

Route route(const std::string& host, const std::string& path, uint32_t service, const std::string& source) {
  Route r;
  r.name = host + path;
  r.host = host;
  r.path_prefix = path;
  r.service = service;
  r.source = source;
  return r;
}

std::shared_ptr<const DiscoveredSet> set_of(std::vector<std::string> names, std::vector<Route> routes) {
  auto set = std::make_shared<DiscoveredSet>();
  for (const std::string& n : names) set->services.push_back(service(n));
  set->routes = std::make_shared<const std::vector<Route>>(std::move(routes));
  return set;
}

const std::vector<std::string> kNames = {"docker", "registry"};

}  // namespace

TEST_CASE("merge: every service and route of sources that do not meet is kept, indices shifted", "[merge]") {
  const std::vector<ServicePtr> configured = {service("static")};
  const std::vector<Route> config_routes = {route("static.test", "/", 0, "config")};
  DiscoveredSets sets = {set_of({"web", "api"}, {route("web.test", "/", 0, "container:aaa/web"),
                                                  route("api.test", "/", 1, "container:bbb/api")}),
                         nullptr, set_of({"db"}, {route("db.test", "/", 0, "registry")})};
  auto merged = merge_services(configured, sets);
  REQUIRE(merged.services.size() == 4);
  CHECK(merged.index[0] == std::vector<uint32_t>{1, 2});
  CHECK(merged.index[1].empty());
  CHECK(merged.index[2] == std::vector<uint32_t>{3});
  CHECK(merged.contested.empty());
  auto routes = merge_routes(config_routes, sets, merged, {"docker", "none", "registry"});
  REQUIRE(routes.routes.size() == 4);
  CHECK(routes.left_out.empty());
  for (const Route& r : routes.routes) CHECK(merged.services[r.service]->name + ".test" == r.host);
}

TEST_CASE("merge: a discovered service named like the config file's is left out with its routes", "[merge]") {
  const std::vector<ServicePtr> configured = {service("web")};
  DiscoveredSets sets = {set_of({"other", "web"}, {route("other.test", "/", 0, "container:aaa/other"),
                                                    route("web.test", "/", 1, "container:bbb/web")})};
  auto merged = merge_services(configured, sets);
  REQUIRE(merged.services.size() == 2);  // one "web": the config file's
  CHECK(merged.index[0] == std::vector<uint32_t>{1, kLeftOut});
  auto routes = merge_routes({}, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 1);
  CHECK(routes.routes[0].host == "other.test");
  CHECK(routes.routes[0].service == 1);
  REQUIRE(routes.left_out.size() == 1);
  CHECK(routes.left_out[0].first == "bbb/web");
  CHECK(routes.left_out[0].second ==
        "route web.test/ of service 'web' is not routed: the service name 'web' is taken by the config file "
        "(a service name belongs to the first that has it)");
}

TEST_CASE("merge: a later source's service of a taken name is left out, the earlier one's kept", "[merge]") {
  DiscoveredSets sets = {set_of({"web"}, {route("web.test", "/", 0, "container:aaa/web")}),
                         set_of({"web"}, {route("web.test", "/", 0, "registry"),
                                          route("web2.test", "/", 0, "registry")})};
  auto merged = merge_services({}, sets);
  REQUIRE(merged.services.size() == 1);
  CHECK(merged.services[0] == sets[0]->services[0]);
  auto routes = merge_routes({}, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 1);
  CHECK(routes.routes[0].source == "container:aaa/web");
  REQUIRE(routes.left_out.size() == 2);
  for (const auto& [what, why] : routes.left_out) {
    CHECK(what == "registry");
    CHECK(why.find("is taken by discovery source 'docker'") != std::string::npos);
  }
}

TEST_CASE("merge: a source that lists one service name twice is named as an internal error", "[merge]") {
  // Not a contest between sources: the second service's routes are left out, and the reason
  // says whose bug it is instead of pointing at the source itself as the name's holder.
  DiscoveredSets sets = {set_of({"web", "web"}, {route("a.test", "/", 0, "registry"),
                                                 route("b.test", "/", 1, "registry")})};
  auto merged = merge_services({}, sets);
  REQUIRE(merged.services.size() == 1);
  auto routes = merge_routes({}, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 1);
  CHECK(routes.routes[0].host == "a.test");
  REQUIRE(routes.left_out.size() == 1);
  CHECK(routes.left_out[0].second ==
        "route b.test/ of service 'web' is not routed: discovery source 'docker' listed the service 'web' twice "
        "(an internal error: please report it)");
}

TEST_CASE("merge: a host + path an earlier source routes stays its, and the later route is listed", "[merge]") {
  DiscoveredSets sets = {set_of({"local"}, {route("shop.test", "/", 0, "container:aaa/local")}),
                         set_of({"remote"}, {route("shop.test", "/", 0, "registry"),
                                             route("shop.test", "/api", 0, "registry")})};
  auto merged = merge_services({}, sets);
  REQUIRE(merged.services.size() == 2);
  auto routes = merge_routes({}, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 2);
  CHECK(merged.services[routes.routes[0].service]->name == "local");
  CHECK(routes.routes[1].path_prefix == "/api");
  CHECK(merged.services[routes.routes[1].service]->name == "remote");
  REQUIRE(routes.left_out.size() == 1);
  CHECK(routes.left_out[0].second ==
        "route shop.test/ of service 'remote' is served by service 'local' from discovery source 'docker' "
        "(the first source wins)");
}

TEST_CASE("merge: the config file's host + path wins over any source, matchers or not", "[merge]") {
  const std::vector<ServicePtr> configured = {service("static")};
  const std::vector<Route> config_routes = {route("shop.test", "/", 0, "config")};
  Route with_header = route("shop.test", "/", 0, "container:aaa/web");
  with_header.match = std::make_shared<berth::config::RouteMatch>();
  DiscoveredSets sets = {set_of({"web"}, {with_header})};
  auto merged = merge_services(configured, sets);
  auto routes = merge_routes(config_routes, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 1);
  CHECK(routes.routes[0].source == "config");
  REQUIRE(routes.left_out.size() == 1);
  CHECK(routes.left_out[0].second ==
        "route shop.test/ of service 'web' is the config file's (route 'shop.test/'): the config file wins");
}

TEST_CASE("merge: a mirror's shadow service moves with its set, and a left-out shadow leaves the route out",
          "[merge]") {
  Route mirrored = route("web.test", "/", 0, "container:aaa/web");
  mirrored.mirror = std::make_shared<const RouteMirror>(RouteMirror{1, 5000, 1024});
  DiscoveredSets sets = {set_of({"web", "web-shadow"}, {mirrored})};
  auto merged = merge_services({service("static")}, sets);
  auto routes = merge_routes({}, sets, merged, kNames);
  REQUIRE(routes.routes.size() == 1);
  CHECK(routes.routes[0].service == 1);
  REQUIRE(routes.routes[0].mirror);
  CHECK(routes.routes[0].mirror->service == 2);
  CHECK(routes.routes[0].mirror->percent_bp == 5000);

  auto taken = merge_services({service("web-shadow")}, sets);
  auto left = merge_routes({}, sets, taken, kNames);
  CHECK(left.routes.empty());
  REQUIRE(left.left_out.size() == 1);
  CHECK(left.left_out[0].second.find("the service name 'web-shadow' is taken by the config file") !=
        std::string::npos);
}

TEST_CASE("merge: a source is told the names the config file and earlier sources have", "[merge]") {
  const std::vector<ServicePtr> configured = {service("cfg")};
  DiscoveredSets sets = {set_of({"web", "cfg"}, {}), set_of({"db"}, {})};
  using Names = std::map<std::string, std::string>;
  CHECK(berth::reserved_service_names(configured, sets, 0, kNames) == Names{{"cfg", "the config file"}});
  CHECK(berth::reserved_service_names(configured, sets, 1, kNames) ==
        Names{{"cfg", "the config file"}, {"web", "discovery source 'docker'"}});
}
