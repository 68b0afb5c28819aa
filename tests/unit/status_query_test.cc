// GET /api/status?filter=&limit=&order= without sockets: the query's parsing and its 400 reasons,
// the case-insensitive match, the counts the document adds, the cap and the problems-first order.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "proxy/control/status.h"
#include "proxy/health/health_registry.h"

using namespace berth;

namespace {

// n services "svc-000".."svc-<n-1>", each with one unchecked instance and a route "r-<i>" at
// h<i>.example/app<i>; then "empty" (no instance: its route answers 503) and "mixed" (one
// healthy instance, one failing its probe: red).
std::shared_ptr<const RouteTable> many_services(size_t n) {
  std::vector<Service> services;
  std::vector<Route> routes;
  auto add = [&](Service s, const std::string& route, const std::string& host) {
    Route r;
    r.name = route;
    r.host = host;
    r.path_prefix = "/app" + std::to_string(services.size());
    r.service = services.size();
    routes.push_back(r);
    services.push_back(std::move(s));
  };
  for (size_t i = 0; i < n; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "svc-%03zu", i);
    Service s;
    s.name = name;
    Endpoint e;
    e.key = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":80";
    s.endpoints.push_back(e);
    add(std::move(s), "r-" + std::to_string(i), "h" + std::to_string(i) + ".example");
  }
  Service empty;
  empty.name = "empty";
  add(std::move(empty), "r-empty", "Empty.Example");
  Service mixed;
  mixed.name = "mixed";
  mixed.policy.health.enabled = true;
  mixed.policy.health.path = "/healthz";
  for (const char* key : {"10.9.0.1:80", "10.9.0.2:80"}) {
    Endpoint e;
    e.key = key;
    mixed.endpoints.push_back(e);
  }
  add(std::move(mixed), "r-mixed", "mixed.example");
  HealthRegistry registry;  // gives mixed's instances their health state, which the table shares
  registry.attach(services);
  auto table = RouteTable::build(routes, services, 3);
  const Service& m = table->service(n + 1);
  m.endpoints[0].health->probe = ProbeState::kHealthy;
  m.endpoints[1].health->probe = ProbeState::kUnhealthy;
  return table;
}

StatusQuery parsed(std::string_view query) {
  StatusQuery q;
  std::string error;
  INFO(query);
  REQUIRE(parse_status_query(query, q, &error));
  return q;
}

// routes_total, routes_matched, services_total, services_matched, instances_total.
std::vector<size_t> counts(const nlohmann::json& j) {
  std::vector<size_t> out;
  for (const char* key : {"routes_total", "routes_matched", "services_total", "services_matched", "instances_total"})
    out.push_back(j.value(key, size_t{0}));
  return out;
}

std::vector<std::string> names(const nlohmann::json& list) {
  std::vector<std::string> out;
  for (const nlohmann::json& item : list) out.push_back(item["name"]);
  return out;
}

}  // namespace

TEST_CASE("status query: parameters, and a 400 reason for each bad value", "[status]") {
  CHECK_FALSE(parsed("").given());
  CHECK_FALSE(parsed("filter=&other=1").given());
  StatusQuery q = parsed("filter=Shop%20A&limit=200&order=problems");
  CHECK(q.filter == "Shop A");
  CHECK(q.limit == size_t{200});
  CHECK(q.problems_first);
  CHECK(q.given());
  CHECK(parsed("limit=0").limit == size_t{0});
  CHECK_FALSE(parsed("order=table").problems_first);
  for (const auto& [query, field] : std::vector<std::pair<std::string, std::string>>{
           {"limit=-1", "limit"}, {"limit=x", "limit"}, {"limit=1x", "limit"},
           {"limit=99999999999999999999999", "limit"}, {"order=worst", "order"},
           {"filter=" + std::string(257, 'a'), "filter"}}) {
    StatusQuery bad;
    std::string error;
    INFO(query);
    CHECK_FALSE(parse_status_query(query, bad, &error));
    CHECK(error.rfind(field + ": ", 0) == 0);
  }
}

TEST_CASE("status query: the match is a substring, ASCII letters without case", "[status]") {
  CHECK(status_filter_matches("Shop.Example.COM", "example.com"));
  CHECK(status_filter_matches("shop", ""));
  CHECK(status_filter_matches("/api/v1", "I/V"));
  CHECK_FALSE(status_filter_matches("shop", "shops"));
  CHECK_FALSE(status_filter_matches("caf\xc3\xa9", "CAF\xc3\x89"));  // bytes beyond ASCII as they are
}

TEST_CASE("status query: without parameters the document is the one it always was", "[status]") {
  const auto table = many_services(5);
  const nlohmann::json plain = StatusBuilder{}.status(*table, 1'000'000);
  CHECK(plain == StatusBuilder{}.status(*table, 1'000'000, parsed("filter=")));
  CHECK_FALSE(plain.contains("routes_total"));
  CHECK_FALSE(plain.contains("services_matched"));
  CHECK(plain["routes"].size() == 7);
  CHECK(plain["services"].size() == 7);
}

TEST_CASE("status query: filter and limit, with totals and matched counts", "[status]") {
  const auto table = many_services(300);
  StatusBuilder builder;
  nlohmann::json j = builder.status(*table, 1'000'000, parsed("limit=200"));
  CHECK(j["routes"].size() == 200);
  CHECK(j["services"].size() == 200);
  CHECK(counts(j) == std::vector<size_t>{302, 302, 302, 302, 302});  // instances: 300 + mixed's 2
  CHECK(j["routes"][0]["name"] == "r-0");  // table order
  CHECK(j["services"][0]["name"] == "svc-000");

  // By service name: "svc-12" is svc-120..svc-129; each reaches its own route.
  j = builder.status(*table, 1'000'000, parsed("filter=SVC-12&limit=5"));
  CHECK(counts(j) == std::vector<size_t>{302, 10, 302, 10, 302});
  CHECK(j["services"].size() == 5);
  CHECK(j["routes"].size() == 5);
  // By host: the route, and the service it reaches though its name does not match.
  j = builder.status(*table, 1'000'000, parsed("filter=h42.EXAMPLE"));
  CHECK(names(j["routes"]) == std::vector<std::string>{"r-42"});
  CHECK(names(j["services"]) == std::vector<std::string>{"svc-042"});
  // By path and by route name.
  j = builder.status(*table, 1'000'000, parsed("filter=/app301"));
  CHECK(names(j["routes"]) == std::vector<std::string>{"r-mixed"});
  CHECK(names(j["services"]) == std::vector<std::string>{"mixed"});
  j = builder.status(*table, 1'000'000, parsed("filter=r-empty"));
  CHECK(names(j["services"]) == std::vector<std::string>{"empty"});
  // Nothing matches: empty lists, the totals still there.
  j = builder.status(*table, 1'000'000, parsed("filter=nothing-like-it"));
  CHECK(j["routes"].empty());
  CHECK(j["services"].empty());
  CHECK(counts(j) == std::vector<size_t>{302, 0, 302, 0, 302});
  // limit=0: the counts alone.
  j = builder.status(*table, 1'000'000, parsed("limit=0"));
  CHECK(j["services"].empty());
  CHECK(counts(j) == std::vector<size_t>{302, 302, 302, 302, 302});
}

TEST_CASE("status query: problems first: no eligible instance, then red or amber, then the rest", "[status]") {
  const auto table = many_services(300);
  nlohmann::json j = StatusBuilder{}.status(*table, 1'000'000, parsed("limit=3&order=problems"));
  CHECK(names(j["services"]) == std::vector<std::string>{"empty", "mixed", "svc-000"});
  CHECK(names(j["routes"]) == std::vector<std::string>{"r-empty", "r-0", "r-1"});  // 503 routes first
  CHECK(j["routes"][0]["state"] == "503");
  REQUIRE(j["services"][1]["instances"].size() == 2);
  CHECK(j["services"][1]["instances"][1]["colour"] == "red");
  // Without the order, the cap keeps the table's first ones.
  j = StatusBuilder{}.status(*table, 1'000'000, parsed("limit=3"));
  CHECK(names(j["services"]) == std::vector<std::string>{"svc-000", "svc-001", "svc-002"});
}
