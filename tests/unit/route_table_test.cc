// Route matching and precedence, snapshot building, JSON, endpoint key resolution.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/model/route_table.h"

using berth::Endpoint;
using berth::Route;
using berth::RouteTable;
using berth::Service;

namespace {

struct RouteSpec {
  std::string name;
  std::string host;
  std::string path;
  int32_t priority = 0;
};

std::shared_ptr<const RouteTable> table_of(const std::vector<RouteSpec>& specs) {
  std::vector<Route> routes;
  for (const RouteSpec& spec : specs) {
    Route route;
    route.name = spec.name;
    route.host = spec.host;
    route.path_prefix = spec.path;
    route.priority = spec.priority;
    route.service = 0;
    routes.push_back(route);
  }
  return RouteTable::build(std::move(routes), {Service{"svc", {}}}, 1);
}

std::string matched_name(const RouteTable& table, std::string_view host, std::string_view path) {
  const Route* route = table.match(host, path);
  return route ? route->name : "<none>";
}

struct MatchCase {
  std::string host;
  std::string path;
  std::string expected;  // route name, or "<none>"
};

}  // namespace

TEST_CASE("routes: host specificity, then longest prefix", "[routes]") {
  auto table = table_of({
      {"exact-root", "example.com", "/"},
      {"exact-api", "example.com", "/api"},
      {"wild", "*.example.com", "/"},
      {"wild-deep", "*.b.example.com", "/"},
      {"any-api", "", "/api"},
      {"any-root", "", "/"},
      {"ipv6", "[::1]", "/"},
      {"wild-static", "*.example.com", "/static"},
  });
  const MatchCase c = GENERATE(values<MatchCase>({
      {"example.com", "/", "exact-root"},
      {"example.com", "/api/users", "exact-api"},
      {"example.com", "/apix", "exact-api"},        // raw byte prefix
      {"example.com", "/ap", "exact-root"},
      {"a.example.com", "/api", "wild"},            // wildcard host beats any-host's longer prefix
      {"a.example.com", "/static/app.js", "wild-static"},
      {"a.b.example.com", "/", "wild-deep"},        // longer wildcard suffix wins
      {"x.a.b.example.com", "/", "wild-deep"},
      {"b.example.com", "/", "wild"},               // "*.b.example.com" needs a label before it
      {"aexample.com", "/", "any-root"},
      {".example.com", "/", "any-root"},
      {"other.org", "/api/v1", "any-api"},
      {"other.org", "/", "any-root"},
      {"", "/", "any-root"},
      {"", "/api", "any-api"},
      {"[::1]:8080", "/", "ipv6"},
      {"[::1]", "/x", "ipv6"},
      {"[0:0::1]", "/", "ipv6"},
      {"[::2]:8080", "/", "any-root"},
  }));
  INFO(c.host << " " << c.path);
  CHECK(matched_name(*table, c.host, c.path) == c.expected);
}

TEST_CASE("routes: the request host is normalised", "[routes]") {
  auto table = table_of({
      {"exact-root", "example.com", "/"},
      {"exact-api", "example.com", "/api"},
      {"any-root", "", "/"},
  });
  const MatchCase c = GENERATE(values<MatchCase>({
      {"EXAMPLE.COM", "/", "exact-root"},
      {"Example.Com:8080", "/api", "exact-api"},
      {"example.com.", "/", "exact-root"},
      {"example.com.:443", "/api", "exact-api"},
      {"example.com..", "/", "any-root"},           // only one trailing dot is removed
      {"example.com:", "/", "exact-root"},
      {std::string(300, 'a'), "/", "any-root"},     // absurdly long hosts only see any-host routes
  }));
  INFO(c.host << " " << c.path);
  CHECK(matched_name(*table, c.host, c.path) == c.expected);
}

TEST_CASE("routes: the query string is ignored", "[routes]") {
  auto table = table_of({
      {"root", "", "/"},
      {"api", "", "/api"},
      {"search", "", "/search"},
  });
  const MatchCase c = GENERATE(values<MatchCase>({
      {"h", "/api?x=1", "api"},
      {"h", "/x?/api", "root"},
      {"h", "/search?q=/api", "search"},
      {"h", "/?", "root"},
  }));
  INFO(c.path);
  CHECK(matched_name(*table, c.host, c.path) == c.expected);
}

TEST_CASE("routes: explicit priority comes before every other rule", "[routes]") {
  auto table = table_of({
      {"exact", "example.com", "/"},
      {"any-admin", "", "/admin", 10},
      {"wild-prio", "*.example.com", "/", 5},
      {"exact-neg", "neg.example.com", "/", -1},
      {"exact-long", "example.com", "/a/b/c"},
      {"exact-short-prio", "example.com", "/a", 1},
  });
  const MatchCase c = GENERATE(values<MatchCase>({
      {"example.com", "/admin/x", "any-admin"},      // priority beats exact host
      {"example.com", "/", "exact"},
      {"a.example.com", "/", "wild-prio"},
      {"neg.example.com", "/", "wild-prio"},         // 5 > -1 despite the exact host
      {"neg.example.com", "/admin", "any-admin"},
      {"example.com", "/a/b/c/d", "exact-short-prio"},  // priority beats the longer prefix
      {"example.com", "/b", "exact"},
  }));
  INFO(c.host << " " << c.path);
  CHECK(matched_name(*table, c.host, c.path) == c.expected);
}

TEST_CASE("routes: no match gives nullptr", "[routes]") {
  auto table = table_of({
      {"exact", "example.com", "/"},
      {"wild", "*.example.org", "/app"},
      {"any-api", "", "/api"},
  });
  const MatchCase c = GENERATE(values<MatchCase>({
      {"other.com", "/", "<none>"},
      {"a.example.org", "/", "<none>"},
      {"example.org", "/app", "<none>"},
      {"other.com", "/ap", "<none>"},
      {"", "/", "<none>"},
      {"example.com", "", "<none>"},
  }));
  INFO(c.host << " " << c.path);
  CHECK(table->match(c.host, c.path) == nullptr);
  CHECK(matched_name(*table, c.host, c.path) == c.expected);
}

TEST_CASE("routes: an empty table matches nothing", "[routes]") {
  auto table = RouteTable::build({}, std::vector<Service>{}, 7);
  CHECK(table->match("example.com", "/") == nullptr);
  CHECK(table->generation() == 7);
  CHECK(table->routes().empty());
}

TEST_CASE("routes: build drops duplicates (first wins) and routes to unknown services", "[routes]") {
  std::vector<Route> routes(5);
  routes[0] = Route{"first", "example.com", "/api", 0, 0, 0, "config"};
  routes[1] = Route{"second", "EXAMPLE.com", "/api", 9, 0, 0, "container:abc"};  // same host after lower-casing
  routes[2] = Route{"orphan", "orphan.com", "/", 0, 5, 0, "config"};             // no service 5
  routes[3] = Route{"catch-all", "", "/", 0, 0, 0, "config"};
  routes[4] = Route{"catch-all-again", "", "/", 0, 0, 0, "config"};
  auto table = RouteTable::build(std::move(routes), {Service{"svc", {}}}, 3);

  REQUIRE(table->routes().size() == 2);
  CHECK(table->routes()[0].name == "first");
  CHECK(table->routes()[1].name == "catch-all");
  CHECK(matched_name(*table, "example.com", "/api") == "first");
  CHECK(matched_name(*table, "orphan.com", "/") == "catch-all");
  CHECK(matched_name(*table, "x", "/") == "catch-all");
}

TEST_CASE("routes: a service without instances serves its routes until its grace ends, then they are passed over",
          "[routes]") {
  std::vector<Route> routes(2);
  routes[0] = Route{"app", "app.test", "/", 0, 0, 0, "container:a"};
  routes[1] = Route{"fallback", "", "/", 0, 1, 0, "config"};
  const int64_t now = berth::health_clock_ms();
  Service draining{"app", {}};
  draining.serve_empty_until_ms = now + 60'000;  // its last instance just left
  Service fallback{"fallback", {}};              // a config service: serves forever
  auto table = RouteTable::build(routes, {draining, fallback}, 1);
  CHECK(matched_name(*table, "app.test", "/") == "app");  // answers 503 during the grace
  auto shown = nlohmann::json::parse(table->to_json());
  CHECK(shown["routes"].size() == 2);

  Service expired{"app", {}};
  expired.serve_empty_until_ms = now - 1;
  auto later = RouteTable::with_services(
      *table, {std::make_shared<const Service>(expired), table->services()[1]}, 2);
  REQUIRE(later);
  CHECK(later->same_layout(*table));
  CHECK(later->generation() == 2);
  CHECK(matched_name(*later, "app.test", "/") == "fallback");  // the less specific route matches
  shown = nlohmann::json::parse(later->to_json());
  REQUIRE(shown["routes"].size() == 1);
  CHECK(shown["routes"][0]["name"] == "fallback");
  CHECK(shown["services"].size() == 1);

  Service never{"app", {}};
  never.serve_empty_until_ms = 0;  // never had an instance
  CHECK(matched_name(*RouteTable::build(routes, {never, fallback}, 3), "app.test", "/x") == "fallback");
  // with_services needs the same number of services.
  CHECK_FALSE(RouteTable::with_services(*table, {table->services()[0]}, 4));
}

TEST_CASE("routes: a route's encoded_characters overrides the top level's for the keys it names", "[routes]") {
  auto loaded = berth::config::load_string(
      "listeners: [\"127.0.0.1:8080\"]\n"
      "encoded_characters: {allow_encoded_percent: true}\n"
      "routes:\n"
      "  - {path: /projects, service: s, encoded_characters: {allow_encoded_slash: true, allow_encoded_percent: false}}\n"
      "  - {service: s}\n"
      "services: {s: {endpoints: []}}\n",
      "t.yaml");
  REQUIRE(loaded.ok());
  auto table = RouteTable::from_config(*loaded.config, 1);
  const Route& projects = table->routes()[0];
  const Route& rest = table->routes()[1];
  // Bits as http::EncodedCharacter: slash 1, backslash 2, null 4, semicolon 8, percent 16, ? 32, # 64.
  const uint8_t top_level = 0x7F & ~16;  // what Runtime::refused_encodings holds for this config
  CHECK(projects.allow_encodings == 1);
  CHECK(projects.refuse_encodings == 16);
  CHECK(projects.refused_encodings(top_level) == (0x7F & ~1));
  CHECK(rest.allow_encodings == 0);
  CHECK(rest.refuse_encodings == 0);
  CHECK(rest.refused_encodings(top_level) == top_level);
}

TEST_CASE("routes: from_config expands hosts and applies limits", "[routes]") {
  const std::string yaml =
      "listeners: [\"127.0.0.1:8080\"]\n"
      "limits: {max_body_bytes: 1MiB}\n"
      "routes:\n"
      "  - name: multi\n"
      "    host: [a.com, \"*.b.com\"]\n"
      "    path: /x\n"
      "    priority: 4\n"
      "    service: api\n"
      "    max_body_bytes: 10KiB\n"
      "  - service: web\n"
      "services:\n"
      "  web:\n"
      "    endpoints: [\"127.0.0.1:9000\", {address: \"[::1]:9001\", weight: 3}]\n"
      "  api:\n"
      "    endpoints: []\n";
  auto loaded = berth::config::load_string(yaml, "t.yaml");
  REQUIRE(loaded.ok());
  auto table = RouteTable::from_config(*loaded.config, 42);

  CHECK(table->generation() == 42);
  REQUIRE(table->routes().size() == 3);
  const Route& a = table->routes()[0];
  const Route& b = table->routes()[1];
  const Route& any = table->routes()[2];
  CHECK(a.name == "multi");
  CHECK(a.host == "a.com");
  CHECK(b.name == "multi");
  CHECK(b.host == "*.b.com");
  for (const Route* route : {&a, &b}) {
    CHECK(route->path_prefix == "/x");
    CHECK(route->priority == 4);
    CHECK(table->service(route->service).name == "api");
    CHECK(route->max_body_bytes == 10 * 1024);
    CHECK(route->source == "config");
  }
  CHECK(any.name == "route-1");
  CHECK(any.host.empty());
  CHECK(any.priority == 0);
  CHECK(table->service(any.service).name == "web");
  CHECK(any.max_body_bytes == 1024 * 1024);

  REQUIRE(table->services().size() == 2);
  const Service& web = *table->services()[0];
  REQUIRE(web.endpoints.size() == 2);
  CHECK(web.endpoints[0].key == "127.0.0.1:9000");
  CHECK(web.endpoints[0].addr.ss_family == AF_INET);
  CHECK(web.endpoints[0].weight == 1);
  CHECK(web.endpoints[1].key == "[::1]:9001");
  CHECK(web.endpoints[1].addr.ss_family == AF_INET6);
  CHECK(web.endpoints[1].weight == 3);
  CHECK(table->services()[1]->endpoints.empty());

  CHECK(matched_name(*table, "x.b.com", "/x/y") == "multi");
  CHECK(matched_name(*table, "a.com", "/y") == "route-1");
}

TEST_CASE("routes: the example config routes demo.localhost and everything else", "[routes]") {
  auto loaded = berth::config::load_file(BERTH_SOURCE_DIR "/config/berth.example.yaml");
  REQUIRE(loaded.ok());
  auto table = RouteTable::from_config(*loaded.config, 1);
  CHECK(matched_name(*table, "demo.localhost:8080", "/") == "demo");
  CHECK(matched_name(*table, "127.0.0.1:8080", "/anything") == "catch-all");
  const Route* route = table->match("demo.localhost", "/");
  REQUIRE(route != nullptr);
  REQUIRE(table->service(route->service).endpoints.size() == 1);
  CHECK(table->service(route->service).endpoints[0].key == "127.0.0.1:8081");
}

TEST_CASE("routes: to_json", "[routes]") {
  Endpoint endpoint;
  endpoint.key = "127.0.0.1:9000";
  endpoint.weight = 5;
  endpoint.source = "container:abc";
  REQUIRE(berth::resolve_endpoint_key(endpoint));
  std::vector<Route> routes = {Route{"api", "*.example.com", "/api", -2, 0, 4096, "config"}};
  auto table = RouteTable::build(std::move(routes), {Service{"web", {endpoint}}}, 9);

  auto json = nlohmann::json::parse(table->to_json());
  CHECK(json == nlohmann::json::parse(R"({
    "generation": 9,
    "routes": [{"name": "api", "host": "*.example.com", "path_prefix": "/api", "priority": -2,
                "service": "web", "max_body_bytes": 4096, "source": "config"}],
    "services": [{"name": "web",
                  "endpoints": [{"address": "127.0.0.1:9000", "weight": 5, "source": "container:abc"}]}]
  })"));
}

TEST_CASE("routes: to_json survives bytes that are not UTF-8", "[routes]") {
  std::vector<Route> routes = {Route{"bad\xff", "", "/\xfe", 0, 0, 0, "config"}};
  auto table = RouteTable::build(std::move(routes), {Service{"web", {}}}, 1);
  std::string text;
  REQUIRE_NOTHROW(text = table->to_json());
  CHECK(nlohmann::json::parse(text)["routes"][0]["name"] == "bad\xef\xbf\xbd");
}

TEST_CASE("routes: resolve_endpoint_key", "[routes]") {
  struct Case {
    std::string key;
    bool ok;
    int family;
    uint16_t port;
    std::string ip;
  };
  const Case c = GENERATE(values<Case>({
      {"127.0.0.1:8080", true, AF_INET, 8080, "127.0.0.1"},
      {"10.1.2.3:1", true, AF_INET, 1, "10.1.2.3"},
      {"[::1]:443", true, AF_INET6, 443, "::1"},
      {"[2001:db8::7]:65535", true, AF_INET6, 65535, "2001:db8::7"},
      {"localhost:80", false, 0, 0, ""},
      {"example.com:80", false, 0, 0, ""},
      {"127.0.0.1", false, 0, 0, ""},
      {"127.0.0.1:0", false, 0, 0, ""},
      {"127.0.0.1:70000", false, 0, 0, ""},
      {"127.0.0.1:80x", false, 0, 0, ""},
      {"[::1]", false, 0, 0, ""},
      {"[::1:80", false, 0, 0, ""},
      {"::1:80", false, 0, 0, ""},
      {"", false, 0, 0, ""},
  }));
  INFO(c.key);
  Endpoint endpoint;
  endpoint.key = c.key;
  REQUIRE(berth::resolve_endpoint_key(endpoint) == c.ok);
  if (!c.ok) return;
  REQUIRE(endpoint.addr.ss_family == c.family);
  char text[INET6_ADDRSTRLEN] = {};
  if (c.family == AF_INET) {
    const auto* address = reinterpret_cast<const sockaddr_in*>(&endpoint.addr);
    CHECK(endpoint.addr_len == sizeof(sockaddr_in));
    CHECK(ntohs(address->sin_port) == c.port);
    inet_ntop(AF_INET, &address->sin_addr, text, sizeof text);
  } else {
    const auto* address = reinterpret_cast<const sockaddr_in6*>(&endpoint.addr);
    CHECK(endpoint.addr_len == sizeof(sockaddr_in6));
    CHECK(ntohs(address->sin6_port) == c.port);
    inet_ntop(AF_INET6, &address->sin6_addr, text, sizeof text);
  }
  CHECK(std::string(text) == c.ip);
}

TEST_CASE("endpoint_container_name reads the name out of an endpoint's source", "[route_table]") {
  CHECK(berth::endpoint_container_name("container:0123456789ab/web-1") == "web-1");
  CHECK(berth::endpoint_container_name("container:web-2") == "web-2");
  CHECK(berth::endpoint_container_name("config").empty());
  CHECK(berth::endpoint_container_name("").empty());
}
