// Route matchers (routes[].match) and weighted splits (routes[].split): the config file, the
// route table's precedence and fall-through, /api/explain outcomes, and the split's shares.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/http/http_head.h"
#include "proxy/model/route_table.h"
#include "tests/unit/config_helpers.h"

using berth::Route;
using berth::RouteTable;
using berth::config::testing::all_errors;
using berth::config::testing::check_refused_at;
using berth::config::testing::load;
using berth::config::testing::PlacedError;

namespace {

const std::string kHead =
    "listeners: [\"127.0.0.1:8080\"]\n"                                                       // 1
    "services: {a: {endpoints: [\"127.0.0.1:1\"]}, b: {endpoints: [\"127.0.0.1:2\"]}}\n"     // 2
    "routes:\n";                                                                               // 3

std::shared_ptr<const RouteTable> table_from(const std::string& routes) {
  berth::config::LoadResult result = load(kHead + routes);
  INFO(all_errors(result));
  REQUIRE(result.ok());
  return RouteTable::from_config(*result.config, 1);
}

// A parsed request; the text must outlive the head (its views point into it).
struct Request {
  std::string raw;
  berth::http::RequestHead head;
  explicit Request(std::string method, std::string target, std::vector<std::string> headers = {},
                   std::string host = "x.example") {
    raw = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n";
    for (const std::string& h : headers) raw += h + "\r\n";
    raw += "\r\n";
    REQUIRE(berth::http::parse_request_head(raw, berth::http::Limits{1u << 20, 100, 1u << 20}, head).ok());
  }
};

std::string matched(const RouteTable& table, const Request& request) {
  const Route* route = table.match(request.head);
  return route ? route->name : "<none>";
}

}  // namespace

TEST_CASE("match and split: a valid configuration loads", "[route_match][config]") {
  berth::config::LoadResult result = load(kHead +
                                          "  - host: x.example\n"
                                          "    match:\n"
                                          "      methods: [get, HEAD]\n"
                                          "      headers: [{name: X-Env, value: canary}, {name: X-Debug}]\n"
                                          "      query: [{name: beta, value: \"1\"}, {name: preview}]\n"
                                          "      path_regex: \"^/users/[0-9]+$\"\n"
                                          "    service: a\n"
                                          "  - host: x.example\n"
                                          "    split: [{service: a, weight: 90}, {service: b, weight: 10}]\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const auto& routes = result.config->routes;
  REQUIRE(routes.size() == 2);
  CHECK(routes[0].match.methods == std::vector<std::string>{"GET", "HEAD"});
  REQUIRE(routes[0].match.headers.size() == 2);
  CHECK(routes[0].match.headers[0].value == std::optional<std::string>("canary"));
  CHECK_FALSE(routes[0].match.headers[1].value.has_value());
  CHECK(routes[0].match.query[0].value == std::optional<std::string>("1"));
  CHECK(routes[0].match.path_regex_compiled != nullptr);
  CHECK(routes[1].service.empty());
  REQUIRE(routes[1].split.size() == 2);
  CHECK(routes[1].split[1].service == "b");
  CHECK(routes[1].split[1].weight == 10);
}

TEST_CASE("match and split: bad settings are refused at their line", "[route_match][config]") {
  const std::vector<PlacedError> cases = {
      {"  - match: {path_regex: \"(unclosed\"}\n    service: a\n", 4, 25, "invalid regular expression (RE2 syntax)"},
      {"  - match: {methods: [\"GE T\"]}\n    service: a\n", 4, 23, "'GE T' is not an HTTP method"},
      {"  - match: {headers: [{name: \"X Env\"}]}\n    service: a\n", 4, 30, "is not a header name"},
      {"  - match: {query: [{name: \"a=b\"}]}\n    service: a\n", 4, 28, "cannot appear in a raw query name"},
      {"  - match: {query: [{value: \"1\"}]}\n    service: a\n", 4, 21, "missing required key 'name'"},
      {"  - match: {cookie: x}\n    service: a\n", 4, 13, "unknown key 'cookie' in routes[0].match"},
      {"  - service: a\n    split: [{service: b, weight: 1}]\n", 4, 5, "'service' and 'split' exclude each other"},
      {"  - split: [{service: a, weight: 0}]\n", 4, 34, "out of range (1..1000000)"},
      {"  - split: [{service: a, weight: 1000001}]\n", 4, 34, "out of range (1..1000000)"},
      {"  - split: [{service: a}]\n", 4, 13, "missing required key 'weight'"},
      {"  - split: [{service: c, weight: 5}]\n", 4, 23, "routes[0].split[0].service: no service named 'c'"},
      {"  - split: []\n", 4, 12, "must name at least one service"},
      {"  - split: [{service: a, weight: 1}, {service: a, weight: 2}]\n", 4, 48, "'a' is already in this split"},
      {"  - path: /\n    service: a\n  - path: /\n    service: b\n", 6, 5, "duplicate of routes[0]"},
  };
  for (const PlacedError& c : cases) check_refused_at(kHead + c.yaml, c);
}

TEST_CASE("match: routes differing only in matchers are not duplicates", "[route_match][config]") {
  berth::config::LoadResult result = load(kHead +
                                          "  - {path: /, service: a}\n"
                                          "  - {path: /, service: b, match: {headers: [{name: X-Env, value: canary}]}}\n"
                                          "  - {path: /, service: b, match: {query: [{name: beta}]}}\n");
  INFO(all_errors(result));
  CHECK(result.ok());
  result = load(kHead +
                "  - {path: /, service: a, match: {methods: [GET]}}\n"
                "  - {path: /, service: b, match: {methods: [get]}}\n");
  REQUIRE_FALSE(result.ok());
  CHECK(all_errors(result).find("t.yaml:5:5: routes[1]: duplicate of routes[0]") != std::string::npos);
}

TEST_CASE("match: a route with matchers goes first; one that fails falls through", "[route_match][routes]") {
  auto table = table_from(
      "  - {name: main, host: x.example, path: /, service: a}\n"
      "  - {name: canary, host: x.example, path: /, service: b, match: {headers: [{name: X-Env, value: canary}]}}\n"
      "  - {name: beta, host: x.example, path: /, service: b, match: {query: [{name: beta, value: \"1\"}]}}\n"
      "  - {name: debug, host: x.example, path: /, service: b, match: {headers: [{name: x-debug}]}}\n"
      "  - {name: posts, host: x.example, path: /, service: b, match: {methods: [POST, PUT]}}\n"
      "  - {name: users, host: x.example, path: /users, service: b, match: {path_regex: \"/users/[0-9]+\"}}\n"
      "  - {name: high, host: x.example, path: /, priority: 5, service: a, match: {headers: [{name: X-High}]}}\n");
  struct Case {
    std::string method, target;
    std::vector<std::string> headers;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"GET", "/", {}, "main"},
      {"GET", "/", {"x-env: canary"}, "canary"},           // names are case-insensitive
      {"GET", "/", {"X-Env: Canary"}, "main"},             // values are exact
      {"GET", "/", {"X-Env: other", "X-Env: canary"}, "canary"},  // any occurrence
      {"GET", "/", {"X-Debug: "}, "debug"},                // present, even empty
      {"GET", "/?beta=1", {}, "beta"},
      {"GET", "/?a=2&beta=0&beta=1", {}, "beta"},              // a repeated parameter: any
      {"GET", "/?beta=%31", {}, "main"},                       // no percent-decoding
      {"GET", "/?beta", {}, "main"},                           // present but not "1"
      {"GET", "/?xbeta=1", {}, "main"},
      {"POST", "/", {}, "posts"},
      {"DELETE", "/", {}, "main"},
      {"GET", "/users/42", {}, "users"},
      {"GET", "/users/42?x=1", {}, "users"},                   // the query is not the path
      {"GET", "/users/42;v=2", {}, "users"},                   // nor are path parameters
      {"GET", "/users/42/x", {}, "main"},                      // the whole path must match
      {"GET", "/users/abc", {}, "main"},                       // regex fails: the shorter prefix
      {"GET", "/", {"X-High: 1", "X-Env: canary"}, "high"},
  };
  for (const Case& c : cases) {
    Request request(c.method, c.target, c.headers);
    INFO(request.raw);
    CHECK(matched(*table, request) == c.expected);
  }
  // Without a request, a route with matchers never matches.
  CHECK(table->match("x.example", "/users/42")->name == "main");
}

TEST_CASE("match: path parameters are left out, as servers that drop them read the path", "[route_match][routes]") {
  auto table = table_from(
      "  - {name: site, host: x.example, path: /, service: a}\n"
      "  - {name: admin, host: x.example, path: /admin/, service: b}\n"
      "  - {name: page, host: x.example, path: /app/page, service: b}\n");
  CHECK(table->match("x.example", "/admin/users;jsessionid=1")->name == "admin");
  CHECK(table->match("x.example", "/app/page;x=1?q=2")->name == "page");
  // A prefix that runs into the parameters does not match: "/app/pa;ge" is /app/pa to a server.
  CHECK(table->match("x.example", "/app/pa;ge")->name == "site");
  // Unsanitized, "/admin;x/users" is routed as /admin (sanitizing refuses it before routing).
  CHECK(table->match("x.example", "/admin;x/users")->name == "site");
  const berth::RouteExplanation x = table->explain("x.example", "/admin/u;p?q", 1);
  CHECK(x.path == "/admin/u");
}

TEST_CASE("match: a pathological pattern answers in linear time", "[route_match][routes]") {
  auto table = table_from(
      "  - {name: main, path: /, service: a}\n"
      "  - {name: evil, path: /, service: b, match: {path_regex: \"/(a+)+$\"}}\n");
  std::string path = "/" + std::string(100 * 1024, 'a') + "!";
  Request request("GET", path);
  CHECK(matched(*table, request) == "main");
  Request matching("GET", "/" + std::string(100 * 1024, 'a'));
  CHECK(matched(*table, matching) == "evil");
}

TEST_CASE("match: /api/explain says which matchers passed a route over", "[route_match][explain]") {
  auto table = table_from(
      "  - {name: main, host: x.example, path: /, service: a}\n"
      "  - {name: canary, host: x.example, path: /, service: b, match: {headers: [{name: X-Env, value: canary}]}}\n");
  Request plain("GET", "/");
  berth::RouteExplanation x = table->explain("x.example", "/", 1, nullptr, &plain.head);
  REQUIRE(x.chosen != nullptr);
  CHECK(x.chosen->name == "main");
  CHECK(x.rule == "only_match");
  REQUIRE(x.candidates.size() == 2);
  CHECK(table->routes()[x.candidates[1].route].name == "canary");
  CHECK(x.candidates[1].outcome == "matcher_mismatch");

  Request canary("GET", "/", {"X-Env: canary"});
  x = table->explain("x.example", "/", 1, nullptr, &canary.head);
  REQUIRE(x.chosen != nullptr);
  CHECK(x.chosen->name == "canary");
  CHECK(x.rule == "matchers");
  CHECK(x.candidates[1].outcome == "outranked");
  CHECK(x.candidates[1].rule == "matchers");
  CHECK(std::string(berth::precedence_rule_text("matchers")) == "a route with matchers over one without");

  // No request given: matchers cannot hold.
  x = table->explain("x.example", "/", 1);
  CHECK(x.chosen->name == "main");
}

TEST_CASE("split: smooth weighted round-robin gives exact shares", "[route_match][split]") {
  auto table = table_from("  - {name: web, host: x.example, split: [{service: a, weight: 90}, {service: b, weight: 10}]}\n");
  const Route* route = table->match("x.example", "/");
  REQUIRE(route != nullptr);
  REQUIRE(route->split != nullptr);
  CHECK(route->service == route->split->targets[0].service);
  std::vector<int64_t> current(route->split->targets.size(), 0);
  std::map<std::string, int> counts;
  std::vector<std::string> first_ten;
  for (int i = 0; i < 1000; ++i) {
    const uint32_t target = berth::pick_split_target(*route->split, table->services(), 1, current.data());
    const std::string& name = table->service(route->split->targets[target].service).name;
    ++counts[name];
    if (i < 10) first_ten.push_back(name);
  }
  CHECK(counts["a"] == 900);
  CHECK(counts["b"] == 100);
  // Smooth: the canary's share is spread out, not sent in a burst.
  CHECK(std::count(first_ten.begin(), first_ten.end(), "b") == 1);

  nlohmann::json routes = table->to_json_value()["routes"];
  REQUIRE(routes.size() == 1);
  CHECK(routes[0]["split"][0]["service"] == "a");
  CHECK(routes[0]["split"][0]["weight"] == 90);
  CHECK(routes[0]["split"][1]["service"] == "b");
}

TEST_CASE("split: only services that serve are chosen", "[route_match][split]") {
  std::vector<berth::Service> services(2);
  services[0].name = "a";
  services[1].name = "b";
  services[1].serve_empty_until_ms = 0;  // no instance and no grace: does not serve
  berth::Endpoint endpoint;
  endpoint.key = "127.0.0.1:1";
  services[0].endpoints.push_back(endpoint);
  Route route;
  route.name = "web";
  route.path_prefix = "/";
  auto split = std::make_shared<berth::RouteSplit>();
  split->targets = {{0, 1}, {1, 9}};
  route.split = split;
  auto table = RouteTable::build({route}, std::move(services), 1);
  std::vector<int64_t> current(2, 0);
  for (int i = 0; i < 20; ++i)
    CHECK(berth::pick_split_target(*table->routes()[0].split, table->services(), 1, current.data()) == 0);
  REQUIRE(table->match("", "/") != nullptr);
}

TEST_CASE("split: a service with no routable instance gets no share while another has one", "[route_match][split]") {
  // a: routable; down: its only instance failed its probes; empty: a config service with no
  // instance (it serves, answering 503). Their shares go to a; with a down too, the split falls
  // back to the services that serve, by weight.
  std::vector<berth::Service> services(3);
  services[0].name = "a";
  services[1].name = "down";
  services[2].name = "empty";
  services[2].serve_empty_until_ms = INT64_MAX;
  berth::Endpoint up, down;
  up.key = "127.0.0.1:1";
  up.health = std::make_shared<berth::EndpointHealth>();
  up.health->probe = berth::ProbeState::kHealthy;
  down.key = "127.0.0.1:2";
  down.health = std::make_shared<berth::EndpointHealth>();
  down.health->probe = berth::ProbeState::kUnhealthy;
  services[0].endpoints.push_back(up);
  services[1].endpoints.push_back(down);
  Route route;
  route.name = "web";
  route.path_prefix = "/";
  auto split = std::make_shared<berth::RouteSplit>();
  split->targets = {{0, 3}, {1, 1}, {2, 1}};
  route.split = split;
  auto table = RouteTable::build({route}, std::move(services), 1);
  const berth::RouteSplit& s = *table->routes()[0].split;
  std::vector<int64_t> current(3, 0);
  for (int i = 0; i < 50; ++i) CHECK(berth::pick_split_target(s, table->services(), 1, current.data()) == 0);
  nlohmann::json routes = table->to_json_value()["routes"];
  CHECK(routes[0]["split"][0]["routable"] == true);
  CHECK(routes[0]["split"][1]["routable"] == false);
  CHECK(routes[0]["split"][1]["serving"] == true);
  CHECK(routes[0]["split"][2]["routable"] == false);

  // a fails too: no service has a routable instance; all three serve, 3:1:1 as configured.
  up.health->probe = berth::ProbeState::kUnhealthy;
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 500; ++i) ++counts[berth::pick_split_target(s, table->services(), 1, current.data())];
  CHECK(counts[0] == 300);
  CHECK(counts[1] == 100);
  CHECK(counts[2] == 100);
}
