// The registry's pure parts: gateway encodings (int64, key ranges), the instance schema, the front door's table
// (bad values rejected one by one) and the sidecar's per-container diff.
#include <catch2/catch.hpp>

#include "discovery/label_builder.h"
#include "discovery/registry/etcd_client.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/registry/registry_table.h"

using namespace berth;
using namespace berth::discovery;
using namespace berth::discovery::registry;

namespace {
// A container's endpoint as Docker discovery lists it.
Endpoint container_endpoint(std::string key, std::string source, uint32_t weight = 1) {
  Endpoint e;
  e.key = std::move(key);
  e.source = std::move(source);
  e.weight = weight;
  return e;
}

// A discovered set of one service with these endpoints and routes (each route to service 0).
DiscoveredSet one_service_set(std::string name, std::vector<Endpoint> endpoints, std::vector<Route> routes) {
  DiscoveredSet set;
  auto service = std::make_shared<Service>();
  service->name = std::move(name);
  service->endpoints = std::move(endpoints);
  set.services.push_back(service);
  for (Route& r : routes) r.service = 0;
  set.routes = std::make_shared<std::vector<Route>>(std::move(routes));
  return set;
}
}  // namespace

TEST_CASE("registry: a value's route paths are read as labels declare them", "[registry]") {
  // As the label parser takes them: no length limit but the value's, bytes over 0x7f kept.
  for (const std::string& path : {"/" + std::string(1100, 'x'), std::string("/caf\xc3\xa9/")}) {
    Instance in;
    in.service = "web";
    in.address = "10.0.0.1:80";
    in.routes = {RegistryRoute{{"a.test"}, path, 0}};
    std::string problem;
    auto decoded = decode_instance(encode_instance(in), &problem);
    INFO(problem);
    REQUIRE(decoded);
    CHECK(decoded->routes[0].path == path);
  }
}

TEST_CASE("registry: a prefix's range end is its last byte + 1", "[registry]") {
  CHECK(prefix_range_end("/berth/i/") == "/berth/i0");
  CHECK(prefix_range_end(std::string("a\xff", 2)) == "b");
  CHECK(prefix_range_end(std::string("\xff\xff", 2)) == std::string(1, '\0'));
}

TEST_CASE("registry: int64 fields come as strings, numbers, or not at all", "[registry]") {
  auto j = nlohmann::json::parse(R"({"revision":"21","n":7,"bad":"x1","neg":"-1"})");
  CHECK(json_int64(j, "revision") == 21);
  CHECK(json_int64(j, "n") == 7);
  CHECK(json_int64(j, "missing", 5) == 5);  // zero values are omitted
  CHECK_FALSE(json_int64(j, "bad"));
  CHECK(json_int64(j, "neg") == -1);
  CHECK(json_int64(nlohmann::json::parse(R"({"ID":"4649863488229837599"})"), "ID") == 4649863488229837599LL);
}

TEST_CASE("registry: gateway replies, unary and stream-shaped", "[registry]") {
  std::string error;
  auto r = parse_etcd_body(R"({"header":{"revision":"8"}})", &error);
  CHECK(error.empty());
  CHECK(r["header"]["revision"] == "8");
  r = parse_etcd_body("{\"result\":{\"header\":{\"revision\":\"10\"},\"ID\":\"5\",\"TTL\":\"10\"}}\n", &error);
  CHECK(error.empty());
  CHECK(r["TTL"] == "10");
  r = parse_etcd_body(R"({"error":"etcdserver: requested lease not found","message":"x","code":5})", &error);
  CHECK(error == "etcdserver: requested lease not found");
  parse_etcd_body("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}\n", &error);
  CHECK(error == "etcdserver: no leader");
  parse_etcd_body("<html>", &error);
  CHECK_FALSE(error.empty());
}

TEST_CASE("registry: an unavailable member is told by its error's code, in a stream's 200 too", "[registry]") {
  // A keepalive stream answers 200 and puts its error in the body: "request timed out" (gRPC
  // 14, HTTP 503) is the member's, and another member may serve; a lease not found is not.
  std::string error;
  auto stream = parse_etcd_body(
      "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: request timed out\","
      "\"http_status\":\"Service Unavailable\"}}\n",
      &error);
  CHECK(error == "etcdserver: request timed out");
  CHECK(etcd_unavailable_error(stream));
  CHECK(etcd_unavailable_error(parse_etcd_body(R"({"error":"etcdserver: request timed out","message":"x","code":14})", &error)));
  CHECK_FALSE(etcd_unavailable_error(
      parse_etcd_body(R"({"error":"etcdserver: requested lease not found","message":"x","code":5})", &error)));
  CHECK_FALSE(etcd_unavailable_error(
      parse_etcd_body("{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"lease not found\"}}\n", &error)));
  CHECK_FALSE(etcd_unavailable_error(parse_etcd_body(R"({"header":{"revision":"8"}})", &error)));
}

TEST_CASE("registry: the instance value schema round trips", "[registry]") {
  Instance in;
  in.service = "web";
  in.routes = {RegistryRoute{{"a.test", "*.b.test"}, "/api", 5}, RegistryRoute{{}, "/", 0}};
  in.address = "10.0.0.12:32768";
  in.weight = 3;
  in.health = "healthy";
  in.host_id = "host-2";
  in.container = "web-1";
  std::string problem;
  auto out = decode_instance(encode_instance(in), &problem);
  INFO(problem);
  REQUIRE(out);
  CHECK(out->service == "web");
  CHECK(out->routes == in.routes);
  CHECK(out->address == in.address);
  CHECK(out->weight == 3);
  CHECK(out->host_id == "host-2");
  CHECK(out->container == "web-1");
}

TEST_CASE("registry: a value holds as many routes and hosts as a container's labels may declare", "[registry]") {
  // A list label holds at most 1000 items: a container routed by its sidecar is routed by the
  // front doors too.
  auto with = [](size_t routes, size_t hosts) {
    Instance in;
    in.service = "web";
    in.address = "10.0.0.12:80";
    for (size_t r = 0; r < routes; ++r) {
      RegistryRoute route{{}, "/r" + std::to_string(r), 0};
      for (size_t h = 0; h < hosts; ++h) route.hosts.push_back("h" + std::to_string(h) + ".test");
      in.routes.push_back(std::move(route));
    }
    return encode_instance(in);
  };
  std::string problem;
  CHECK(decode_instance(with(1, 1000), &problem));
  CHECK(decode_instance(with(1000, 1), &problem));
  CHECK_FALSE(decode_instance(with(1, 1001), &problem));
  CHECK(problem == "route 'hosts' must be a list of at most 1000 host names");
  CHECK_FALSE(decode_instance(with(1001, 1), &problem));
  CHECK(problem == "'routes' must be a list of 1 to 1000 routes");
}

TEST_CASE("registry: a front door shows a published container name only as a Docker name, cut to 255 bytes",
          "[registry]") {
  CHECK(container_display_name("web-1") == "web-1");
  CHECK(container_display_name("shop_web.1") == "shop_web.1");
  CHECK(container_display_name(std::string(300, 'w')) == std::string(255, 'w'));
  CHECK(container_display_name("").empty());
  CHECK(container_display_name("we b").empty());
  CHECK(container_display_name("-web").empty());
  CHECK(container_display_name("web\x1b[31m").empty());
  CHECK(container_display_name(std::string("we\0b", 4)).empty());
  // In the table: the endpoint shows the display name; the value is not refused for it.
  const std::string p = "/berth/v1/instances/";
  auto value_named = [](const std::string& name) {
    Instance in;
    in.service = "web";
    in.address = "10.0.0.1:80";
    in.container = name;
    in.routes = {RegistryRoute{{"a.test"}, "/", 0}};
    return encode_instance(in);
  };
  DiscoveredSet set = build_registry_set({{p + "h1/c1/0", value_named(std::string(1000, 'x') + "\x1b")}}, "/berth/v1",
                                         TablePolicy{});
  CHECK(set.rejected.empty());
  REQUIRE(set.services.size() == 1);
  REQUIRE(set.services[0]->endpoints.size() == 1);
  CHECK(set.services[0]->endpoints[0].container.empty());
  set = build_registry_set({{p + "h1/c1/0", value_named(std::string(1000, 'x'))}}, "/berth/v1", TablePolicy{});
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0]->endpoints[0].container == std::string(255, 'x'));
}

TEST_CASE("registry: malformed values are refused with the reason", "[registry]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not JSON"},
      {"[1]", "not a JSON object"},
      {R"({"routes":[{"path":"/"}],"address":"1.2.3.4:80"})", "'service'"},
      {R"({"service":"a b","routes":[{"path":"/"}],"address":"1.2.3.4:80"})", "'service'"},
      {R"({"service":"a","routes":[{"path":"/"}]})", "'address'"},
      {R"({"service":"a","routes":[{"path":"/"}],"address":"host:80"})", "numeric"},
      {R"({"service":"a","routes":[{"path":"/"}],"address":"1.2.3.4"})", "numeric"},
      {R"({"service":"a","routes":[],"address":"1.2.3.4:80"})", "'routes'"},
      {R"({"service":"a","routes":[{"path":"x"}],"address":"1.2.3.4:80"})", "'path'"},
      {R"({"service":"a","routes":[{"path":"/a b"}],"address":"1.2.3.4:80"})", "'path'"},
      {R"({"service":"a","routes":[{"path":"/a?b"}],"address":"1.2.3.4:80"})", "'path'"},
      {R"({"service":"a","routes":[{"hosts":["bad host"]}],"address":"1.2.3.4:80"})", "invalid host pattern"},
      {R"({"service":"a","routes":[{"priority":"high"}],"address":"1.2.3.4:80"})", "'priority'"},
      {R"({"service":"a","routes":[{}],"address":"1.2.3.4:80","weight":0})", "'weight'"},
      {R"({"service":"a","routes":[{}],"address":"1.2.3.4:80","health":"meh"})", "'health'"},
  };
  for (const auto& [value, expected] : cases) {
    std::string problem;
    INFO(value);
    CHECK_FALSE(decode_instance(value, &problem));
    CHECK(problem.find(expected) != std::string::npos);
  }
}

TEST_CASE("registry: a range page holds as many keys as fit its bytes, by the largest met so far", "[registry]") {
  // Before any key: as if each were the largest value a front door reads (1 MiB, 1.4 MB of base64).
  CHECK(range_page_limit(kRangePageBytes, 0) == 5);
  CHECK(range_page_limit(kRangePageBytes, 1'000'000) == 6);
  CHECK(range_page_limit(kRangePageBytes, 2'000) == kRangePageMaxKeys);   // small values: big pages
  CHECK(range_page_limit(kRangePageBytes, 13u << 20) == 1);               // one key over the page: 1
  CHECK(range_page_limit(1, 0) == 1);
  // A page of the largest values a front door reads stays far under the client's 64 MiB.
  CHECK(range_page_limit(kRangePageBytes, 0) * ((kMaxValueBytes + 2048) / 3 * 4) < (16u << 20));
}

TEST_CASE("registry: an address no instance has is refused with its kind", "[registry]") {
  // Decoded only: nothing is ever sent to these addresses.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"0.0.0.0:80", "unspecified"},         {"[::]:80", "unspecified"},
      {"255.255.255.255:80", "broadcast"},   {"224.0.0.1:80", "multicast"},
      {"239.255.255.250:1900", "multicast"}, {"[ff02::1]:80", "multicast"},
      {"169.254.169.254:80", "link-local"},  {"169.254.0.1:80", "link-local"},
      {"[fe80::1]:80", "link-local"},        {"[febf::1]:80", "link-local"},
      {"[::ffff:169.254.169.254]:80", "link-local"}, {"[::ffff:0.0.0.0]:80", "unspecified"},
  };
  for (const auto& [address, kind] : refused) {
    const std::string value = R"({"service":"a","routes":[{}],"address":")" + address + R"("})";
    std::string problem;
    INFO(address);
    CHECK_FALSE(decode_instance(value, &problem));
    CHECK(problem.find("'address' " + address + " is " + kind) != std::string::npos);
  }
  // Their neighbours are instances' addresses.
  for (const std::string address : {"10.0.0.12:80", "127.0.0.1:80", "169.253.255.255:80", "169.255.0.1:80",
                                    "223.255.255.255:80", "255.255.255.254:80", "0.0.0.1:80", "[fd00::5]:80",
                                    "[fec0::1]:80", "[fe7f::1]:80", "[::1]:80", "[::ffff:10.0.0.1]:80"}) {
    const std::string value = R"({"service":"a","routes":[{}],"address":")" + address + R"("})";
    std::string problem;
    INFO(address);
    auto decoded = decode_instance(value, &problem);
    REQUIRE(decoded);
    CHECK(decoded->address == address);
  }
}

namespace {
std::string value(const std::string& service, const std::string& address, const std::string& host,
                  const std::string& path = "/") {
  Instance i;
  i.service = service;
  i.address = address;
  i.routes = {RegistryRoute{host.empty() ? std::vector<std::string>{} : std::vector<std::string>{host}, path, 0}};
  return encode_instance(i);
}
}  // namespace

TEST_CASE("registry: the front door's table, bad keys rejected one by one", "[registry]") {
  const std::string p = "/berth/v1/instances/";
  std::map<std::string, std::string> kvs = {
      {p + "h1/c1/0", value("web", "10.0.0.1:8080", "a.test")},
      {p + "h2/c2/0", value("web", "10.0.0.2:8080", "a.test")},
      {p + "h2/c3/0", "{broken"},
      {p + "h3/c4/0", value("api", "10.0.0.3:9000", "a.test")},  // a.test / taken by web
      {p + "h3/c5/0", value("api", "10.0.0.3:9001", "a.test", "/api")},
      {p + "stray", value("x", "10.0.0.9:1", "x.test")},
  };
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", TablePolicy{});
  REQUIRE(set.services.size() == 2);
  const Service& api = *set.services[0];
  const Service& web = *set.services[1];
  CHECK(api.name == "api");
  REQUIRE(api.endpoints.size() == 1);
  CHECK(api.endpoints[0].key == "10.0.0.3:9001");
  CHECK(web.name == "web");
  REQUIRE(web.endpoints.size() == 2);
  CHECK(web.endpoints[0].key == "10.0.0.1:8080");
  CHECK(web.endpoints[0].addr_len > 0);
  CHECK(web.endpoints[0].source == "registry:h1/c1/0");
  REQUIRE(set.routes->size() == 2);
  std::map<std::string, std::string> rejected(set.rejected.begin(), set.rejected.end());
  REQUIRE(rejected.size() == 3);
  CHECK(rejected["registry:h2/c3/0"].find("not JSON") != std::string::npos);
  CHECK(rejected["registry:h3/c4/0"].find("already served by service web") != std::string::npos);
  CHECK(rejected["registry:stray"].find("<host-id>") != std::string::npos);
}

TEST_CASE("registry: a key making more than 10000 host + path routes is rejected with the count", "[registry]") {
  auto key_of = [](size_t routes) {
    Instance in;
    in.service = "many";
    in.address = "10.0.0.1:80";
    for (size_t r = 0; r < routes; ++r) {
      RegistryRoute route{{}, "/r" + std::to_string(r), 0};
      for (size_t h = 0; h < 1000; ++h) route.hosts.push_back("h" + std::to_string(h) + ".test");
      in.routes.push_back(std::move(route));
    }
    return encode_instance(in);
  };
  const std::string p = "/berth/v1/instances/";
  DiscoveredSet at_limit = build_registry_set({{p + "h1/c1/0", key_of(10)}}, "/berth/v1", TablePolicy{});
  CHECK(at_limit.rejected.empty());
  CHECK(at_limit.routes->size() == 10000);
  DiscoveredSet over = build_registry_set({{p + "h1/c1/0", key_of(11)}, {p + "h1/c2/0", value("web", "10.0.0.2:80", "a.test")}},
                                          "/berth/v1", TablePolicy{});
  REQUIRE(over.rejected.size() == 1);
  CHECK(over.rejected[0].second == "declares 11000 host + path routes, more than the 10000 one key may");
  CHECK(over.routes->size() == 1);  // the other key's
}

TEST_CASE("registry: a sidecar publishes routes as front doors read them, and knows what they refuse", "[registry]") {
  // One service, one container: a route for any host and `hosts` host routes, all on "/".
  auto publication_of = [](size_t hosts) {
    std::vector<Route> routes;
    Route r;
    r.path_prefix = "/";
    for (size_t h = 0; h < hosts; ++h) {
      r.host = "h" + std::to_string(h) + ".test";
      routes.push_back(r);
      if (h == 1) routes.push_back(Route{.path_prefix = "/"});
    }
    DiscoveredSet set = one_service_set("many", {container_endpoint("172.17.0.2:80", "container:0123456789ab/many-1")},
                                        std::move(routes));
    return publication_from_set(set, "/berth/v1", "host-2", "10.0.0.12");
  };
  const std::string key = "/berth/v1/instances/host-2/0123456789ab/0";
  // Hosts beyond kMaxListItems on one path make more groups; the route for any host is its own.
  Publication at_limit = publication_of(kMaxRoutesPerKey - 1);
  REQUIRE(at_limit.kvs.count(key));
  std::string problem;
  auto instance = decode_instance(at_limit.kvs[key], &problem);
  INFO(problem);
  REQUIRE(instance);
  REQUIRE(instance->routes.size() == 11);
  CHECK(instance->routes[0].hosts.size() == kMaxListItems);
  CHECK(instance->routes[1].hosts.empty());
  CHECK(instance->routes[10].hosts.size() == kMaxRoutesPerKey - 1 - 9 * kMaxListItems);
  DiscoveredSet front = build_registry_set(at_limit.kvs, "/berth/v1", TablePolicy{});
  CHECK(front.rejected.empty());
  CHECK(front.routes->size() == kMaxRoutesPerKey);
  CHECK(front_door_problem(key, at_limit.kvs[key], "/berth/v1").empty());
  // One more: published all the same; the sidecar's check gives the front door's reason.
  Publication over = publication_of(kMaxRoutesPerKey);
  REQUIRE(over.kvs.count(key));
  const std::string reason = "declares 10001 host + path routes, more than the 10000 one key may";
  CHECK(front_door_problem(key, over.kvs[key], "/berth/v1") == reason);
  front = build_registry_set(over.kvs, "/berth/v1", TablePolicy{});
  REQUIRE(front.rejected.size() == 1);
  CHECK(front.rejected[0].second == reason);
}

TEST_CASE("registry: the front door applies the operator's policy", "[registry]") {
  const std::string p = "/berth/v1/instances/";
  std::map<std::string, std::string> kvs = {
      {p + "h1/c1/0", value("web", "10.0.0.1:8080", "a.apps.test")},
      {p + "h1/c2/0", value("evil", "10.0.0.1:8081", "bank.test")},
      {p + "h1/c3/0", value("any", "10.0.0.1:8082", "")},
  };
  TablePolicy policy;
  policy.allowed_hosts = {"*.apps.test"};
  policy.max_priority = 0;
  policy.allow_any_host = false;
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", policy);
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0]->name == "web");
  CHECK(set.rejected.size() == 2);
}

TEST_CASE("registry: a sidecar's view leaves its own keys out and marks the rest remote", "[registry]") {
  const std::string p = "/berth/v1/instances/";
  std::map<std::string, std::string> kvs = {
      {p + "h1/c1/0", value("web", "10.0.0.1:8080", "a.test")},
      {p + "h2/c2/0", value("web", "10.0.0.2:8080", "a.test")},
      {p + "h10/c3/0", value("web", "10.0.0.10:8080", "a.test")},  // h1 is not a prefix of h10
  };
  TablePolicy policy;
  policy.local_host_id = "h1";
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", policy);
  REQUIRE(set.services.size() == 1);
  const Service& web = *set.services[0];
  REQUIRE(web.endpoints.size() == 2);
  CHECK(web.endpoints[0].key == "10.0.0.10:8080");
  CHECK(web.endpoints[1].key == "10.0.0.2:8080");
  CHECK(web.endpoints[0].remote);
  CHECK(web.endpoints[1].remote);
  // A front door's view: everything, nothing remote.
  DiscoveredSet front = build_registry_set(kvs, "/berth/v1", TablePolicy{});
  REQUIRE(front.services[0]->endpoints.size() == 3);
  CHECK_FALSE(front.services[0]->endpoints[0].remote);
}

TEST_CASE("registry: the sidecar publishes each container's instances at the advertised address", "[registry]") {
  DiscoveredSet set = one_service_set("web",
                                      {container_endpoint("172.17.0.2:80", "container:0123456789ab/web-1", 2),
                                       container_endpoint("127.0.0.1:32768", "container:ba9876543210/web-2")},
                                      {Route{.host = "a.test", .path_prefix = "/"}, Route{.host = "b.test", .path_prefix = "/"}});
  Publication pub = publication_from_set(set, "/berth/v1", "host-2", "10.0.0.12");
  REQUIRE(pub.kvs.size() == 2);
  const std::string k1 = "/berth/v1/instances/host-2/0123456789ab/0";
  REQUIRE(pub.kvs.count(k1));
  std::string problem;
  auto i = decode_instance(pub.kvs[k1], &problem);
  REQUIRE(i);
  CHECK(i->service == "web");
  CHECK(i->address == "10.0.0.12:80");
  CHECK(i->weight == 2);
  CHECK(i->container == "web-1");
  REQUIRE(i->routes.size() == 1);
  CHECK(i->routes[0].hosts == std::vector<std::string>{"a.test", "b.test"});
  auto j = decode_instance(pub.kvs["/berth/v1/instances/host-2/ba9876543210/0"], &problem);
  REQUIRE(j);
  CHECK(j->address == "10.0.0.12:32768");
}

TEST_CASE("registry: a sidecar groups hosts per path and priority in the order routes come", "[registry]") {
  // 2100 hosts, each on "/a", "/b" and "/a" at priority 5: three groups fill side by side, a
  // thousand hosts each, then three more, then three of 100.
  std::vector<Route> routes;
  for (int h = 0; h < 2100; ++h) {
    const std::string host = "h" + std::to_string(h) + ".test";
    routes.push_back(Route{.host = host, .path_prefix = "/a"});
    routes.push_back(Route{.host = host, .path_prefix = "/b"});
    routes.push_back(Route{.host = host, .path_prefix = "/a", .priority = 5});
    routes.push_back(Route{.host = host, .path_prefix = "/a"});  // listed twice: published once
  }
  DiscoveredSet set = one_service_set("web", {container_endpoint("172.17.0.2:80", "container:0123456789ab/web-1")},
                                      std::move(routes));
  Publication pub = publication_from_set(set, "/berth/v1", "host-2", "10.0.0.12");
  const std::string key = "/berth/v1/instances/host-2/0123456789ab/0";
  REQUIRE(pub.kvs.count(key));
  std::string problem;
  auto instance = decode_instance(pub.kvs[key], &problem);
  INFO(problem);
  REQUIRE(instance);
  REQUIRE(instance->routes.size() == 9);
  for (size_t g = 0; g < 9; ++g) {
    const RegistryRoute& group = instance->routes[g];
    INFO("group " << g);
    CHECK(group.path == (g % 3 == 1 ? "/b" : "/a"));
    CHECK(group.priority == (g % 3 == 2 ? 5 : 0));
    CHECK(group.hosts.size() == (g < 6 ? 1000u : 100u));
    REQUIRE_FALSE(group.hosts.empty());
    CHECK(group.hosts.front() == "h" + std::to_string(g / 3 * 1000) + ".test");
  }
  DiscoveredSet front = build_registry_set(pub.kvs, "/berth/v1", TablePolicy{});
  CHECK(front.rejected.empty());
  CHECK(front.routes->size() == 6300);
}

TEST_CASE("registry: the sidecar's diff groups changes by container", "[registry]") {
  const std::string hp = "/p/instances/h/";
  std::map<std::string, std::string> have = {
      {hp + "c1/0", "v1"}, {hp + "c2/0", "v2"}, {hp + "c2/1", "v2b"}, {hp + "gone/0", ""}};
  std::map<std::string, std::string> want = {{hp + "c1/0", "v1"}, {hp + "c2/0", "v2-new"}, {hp + "c3/0", "v3"}};
  auto changes = diff_publication(have, want, hp);
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].container == "c2");
  CHECK(changes[0].puts.size() == 1);
  CHECK(changes[0].deletes == std::vector<std::string>{hp + "c2/1"});
  CHECK(changes[1].container == "c3");
  CHECK(changes[2].container == "gone");
  CHECK(changes[2].puts.empty());
  CHECK(diff_publication(want, want, hp).empty());
  // A key found at start (value "") is rewritten even when the value is the same.
  CHECK(diff_publication({{hp + "c1/0", ""}}, {{hp + "c1/0", "v1"}}, hp).size() == 1);
}

TEST_CASE("registry diff puts every container's keys before it deletes those of gone containers", "[registry]") {
  // A restarted sidecar finds its previous run's keys (value ""); containers replaced while it
  // was down sort anywhere among the new ones. Each transaction is sent after the previous one's
  // reply: a gone container's delete sent first would leave its service without an instance
  // until its replacement's put.
  const std::string hp = "/p/instances/h/";
  std::map<std::string, std::string> have = {{hp + "a-old/0", ""}, {hp + "c-old/0", ""}, {hp + "e/0", ""},
                                             {hp + "e/1", ""}};
  std::map<std::string, std::string> want = {{hp + "b-new/0", "vb"}, {hp + "d-new/0", "vd"}, {hp + "e/0", "ve"}};
  auto changes = diff_publication(have, want, hp);
  std::vector<std::string> order;
  for (const ContainerChange& c : changes) order.push_back(c.container);
  CHECK(order == std::vector<std::string>{"b-new", "d-new", "e", "a-old", "c-old"});
  REQUIRE(changes.size() == 5);
  // A container that stays and loses a key: its put and delete are one transaction.
  CHECK(changes[2].deletes == std::vector<std::string>{hp + "e/1"});
  CHECK(changes[3].puts.empty());
  CHECK(changes[3].deletes == std::vector<std::string>{hp + "a-old/0"});
  CHECK(changes[4].deletes == std::vector<std::string>{hp + "c-old/0"});
}
