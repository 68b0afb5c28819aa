// Request mirroring (routes[].mirror, berth.mirror.* labels): the config file, the percent
// parser, the route table's view of a mirror, and the labels. The copies themselves go through
// the real binary in tests/integration/mirror_test.cc.
#include <catch2/catch.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "discovery/docker_labels.h"
#include "proxy/model/route_table.h"
#include "tests/unit/config_helpers.h"

using berth::config::testing::all_errors;
using berth::config::testing::check_refused_at;
using berth::config::testing::load;
using berth::config::testing::PlacedError;

namespace {

const std::string kHead =
    "listeners: [\"127.0.0.1:8080\"]\n"                                                            // 1
    "services: {web: {endpoints: [\"127.0.0.1:1\"]}, shadow: {endpoints: [\"127.0.0.1:2\"]}}\n"  // 2
    "routes:\n";                                                                                    // 3

berth::discovery::ContainerFacts labelled(std::map<std::string, std::string> labels) {
  berth::discovery::ContainerFacts c;
  c.id = std::string(64, 'a');
  c.name = "web-1";
  c.labels = std::move(labels);
  c.network_mode = "host";
  c.running = true;
  return c;
}

}  // namespace

TEST_CASE("mirror: the percent is a share above 0 and at most 100, in hundredths", "[mirror][config]") {
  using berth::config::parse_mirror_percent;
  CHECK(parse_mirror_percent("100") == std::optional<uint32_t>(10000));
  CHECK(parse_mirror_percent("50") == std::optional<uint32_t>(5000));
  CHECK(parse_mirror_percent("12.5") == std::optional<uint32_t>(1250));
  CHECK(parse_mirror_percent("0.01") == std::optional<uint32_t>(1));
  CHECK(parse_mirror_percent("99.99") == std::optional<uint32_t>(9999));
  CHECK(parse_mirror_percent("007") == std::optional<uint32_t>(700));
  for (const char* bad : {"0", "0.0", "100.01", "101", "1000", "-5", "5%", "", ".5", "5.", "1.234", "abc", " 5"})
    CHECK_FALSE(parse_mirror_percent(bad).has_value());
}

TEST_CASE("mirror: a valid configuration loads, defaults included", "[mirror][config]") {
  berth::config::LoadResult result = load(kHead +
                                          "  - host: a.example\n"
                                          "    service: web\n"
                                          "    mirror: {service: shadow, percent: 12.5, max_body: 1KiB}\n"
                                          "  - host: b.example\n"
                                          "    service: web\n"
                                          "    mirror: {service: shadow}\n"
                                          "  - host: c.example\n"
                                          "    service: web\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const auto& routes = result.config->routes;
  REQUIRE(routes.size() == 3);
  CHECK(routes[0].mirror.service == "shadow");
  CHECK(routes[0].mirror.percent_bp == 1250);
  CHECK(routes[0].mirror.max_body == 1024);
  CHECK(routes[1].mirror.percent_bp == 10000);
  CHECK(routes[1].mirror.max_body == 64 * 1024);
  CHECK_FALSE(routes[2].mirror.enabled());

  auto table = berth::RouteTable::from_config(*result.config, 1);
  const berth::Route* a = table->match("a.example", "/");
  REQUIRE(a != nullptr);
  REQUIRE(a->mirror != nullptr);
  CHECK(table->service(a->mirror->service).name == "shadow");
  CHECK(a->mirror->percent_bp == 1250);
  const berth::Route* c = table->match("c.example", "/");
  REQUIRE(c != nullptr);
  CHECK(c->mirror == nullptr);

  auto json = nlohmann::json::parse(table->to_json());
  bool shown = false;
  for (const auto& r : json["routes"]) {
    if (r["host"] != "a.example") continue;
    shown = true;
    CHECK(r["mirror"]["service"] == "shadow");
    CHECK(r["mirror"]["percent"] == 12.5);
    CHECK(r["mirror"]["max_body"] == 1024);
  }
  CHECK(shown);
}

TEST_CASE("mirror: bad settings are refused at their line", "[mirror][config]") {
  const std::vector<PlacedError> cases = {
      {"  - service: web\n    mirror: {service: ghost}\n", 5, 23,
       "routes[0].mirror.service: no service named 'ghost' (defined services: web, shadow)"},
      {"  - service: web\n    mirror: {service: shadow, percent: 0}\n", 5, 40,
       "'0' is not a percentage above 0 and at most 100"},
      {"  - service: web\n    mirror: {service: shadow, percent: 150}\n", 5, 40, "'150' is not a percentage"},
      {"  - service: web\n    mirror: {service: shadow, percent: ten}\n", 5, 40, "'ten' is not a percentage"},
      {"  - service: web\n    mirror: {percent: 10}\n", 5, 13, "routes[0].mirror: missing required key 'service'"},
      {"  - service: web\n    mirror: {service: shadow, max_body: lots}\n", 5, 41, "expected a size"},
      {"  - service: web\n    mirror: {service: shadow, copies: 2}\n", 5, 31, "unknown key 'copies'"},
      {"  - service: web\n    mirror: shadow\n", 5, 13, "expected a map"},
      {"  - redirect: {to: \"https://x.example\"}\n    mirror: {service: shadow}\n", 5, 23,
       "a route with 'redirect' sends nothing to mirror"},
  };
  for (const PlacedError& c : cases) check_refused_at(kHead + c.yaml, c);
}

TEST_CASE("mirror labels: berth.mirror.* and berth.routes.NAME.mirror.*", "[mirror][docker][labels]") {
  using berth::discovery::parse_container_labels;
  using Kind = berth::discovery::ContainerSpec::Kind;
  {
    auto spec = parse_container_labels(labelled({{"berth.enable", "true"},
                                                 {"berth.host", "a.test"},
                                                 {"berth.port", "80"},
                                                 {"berth.mirror.service", "shadow"},
                                                 {"berth.mirror.percent", "25"},
                                                 {"berth.mirror.max_body", "8KiB"},
                                                 {"berth.routes.api.path", "/api"},
                                                 {"berth.routes.api.mirror.service", "api-shadow"},
                                                 {"berth.routes.docs.path", "/docs"}}),
                                       {});
    INFO(spec.reason);
    REQUIRE(spec.kind == Kind::kRouted);
    REQUIRE(spec.routes.size() == 3);
    CHECK(spec.routes[0].mirror.service == "shadow");  // the main route
    CHECK(spec.routes[0].mirror.percent_bp == 2500);
    CHECK(spec.routes[0].mirror.max_body == 8 * 1024);
    CHECK(spec.routes[1].name == "api");  // its own mirror replaces the container's
    CHECK(spec.routes[1].mirror.service == "api-shadow");
    CHECK(spec.routes[1].mirror.percent_bp == 10000);
    CHECK(spec.routes[2].name == "docs");  // the container's
    CHECK(spec.routes[2].mirror.service == "shadow");
  }
  {
    auto spec = parse_container_labels(
        labelled({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}}), {});
    REQUIRE(spec.kind == Kind::kRouted);
    CHECK_FALSE(spec.routes[0].mirror.enabled());
  }
  struct Bad {
    std::map<std::string, std::string> labels;
    std::string label, reason_part;
  };
  const std::vector<Bad> bad = {
      {{{"berth.mirror.service", "shadow"}, {"berth.mirror.percent", "0"}}, "berth.mirror.percent",
       "is not a percentage above 0 and at most 100"},
      {{{"berth.mirror.service", "shadow"}, {"berth.mirror.percent", "200"}}, "berth.mirror.percent", "is not a percentage"},
      {{{"berth.mirror.service", "no/such"}}, "berth.mirror.service", "is not a valid service name"},
      {{{"berth.mirror.percent", "10"}}, "berth.mirror.percent", "needs berth.mirror.service"},
      {{{"berth.mirror.service", "shadow"}, {"berth.mirror.max_body", "huge"}}, "berth.mirror.max_body", "is not a size"},
      {{{"berth.mirror.service", "shadow"}, {"berth.mirror.copies", "2"}}, "berth.mirror.copies", "unknown label"},
      {{{"berth.routes.api.path", "/api"}, {"berth.routes.api.mirror.percent", "5"}}, "berth.routes.api.mirror.percent",
       "needs berth.routes.api.mirror.service"},
  };
  for (const Bad& b : bad) {
    auto labels = b.labels;
    labels["berth.enable"] = "true";
    labels["berth.host"] = "a.test";
    labels["berth.port"] = "80";
    auto spec = parse_container_labels(labelled(labels), {});
    INFO(b.label << ": " << spec.reason);
    CHECK(spec.kind == Kind::kRejected);
    CHECK(spec.label == b.label);
    CHECK(spec.reason.find(b.reason_part) != std::string::npos);
  }
}
