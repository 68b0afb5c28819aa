// What the status page and /api/explain say about instances and services, without sockets:
// eligibility and why (probes, ejections, panic mode), the traffic hook, the observed state the
// journal diffs, and the explain document with its 400 reasons.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "proxy/control/status.h"
#include "proxy/health/health_registry.h"
#include "proxy/http/request_path.h"
#include "tests/unit/config_helpers.h"

using namespace berth;

namespace {

// One service "web" of n instances with shared health state, routed at web.test; "idle" has none.
struct Fixture {
  HealthRegistry registry;
  std::vector<Service> services;
  std::shared_ptr<const RouteTable> table;
  explicit Fixture(size_t n, uint32_t panic_percent = 50, bool checked = false) {
    Service web;
    web.name = "web";
    web.policy.health.enabled = checked;
    web.policy.health.path = "/healthz";
    web.policy.outlier.panic_threshold_percent = panic_percent;
    for (size_t i = 0; i < n; ++i) {
      Endpoint e;
      e.key = "10.0.0." + std::to_string(i + 1) + ":80";
      e.source = "container:0123456789ab/web-" + std::to_string(i + 1);
      web.endpoints.push_back(e);
    }
    Service idle;
    idle.name = "idle";
    services = {web, idle};
    registry.attach(services);
    Route r;
    r.name = "r-web";
    r.host = "web.test";
    r.path_prefix = "/";
    r.service = 0;
    Route r2 = r;
    r2.name = "r-idle";
    r2.host = "idle.test";
    r2.service = 1;
    table = RouteTable::build({r, r2}, services, 7);
  }
  EndpointHealth& health(size_t i) { return *table->service(0).endpoints[i].health; }
};

}  // namespace

TEST_CASE("status: eligibility and why follow selection: probes, ejections, panic", "[status]") {
  const int64_t now = 1'000'000;
  Fixture f(4, 50, true);
  f.health(0).probe = ProbeState::kHealthy;
  f.health(1).probe = ProbeState::kHealthy;
  f.health(2).probe = ProbeState::kUnhealthy;
  f.health(3).probe = ProbeState::kPending;
  bool panic = true;
  auto why = instance_eligibility(f.table->service(0), now, &panic);
  CHECK_FALSE(panic);  // 2 of the 3 checked-once instances are healthy
  REQUIRE(why.size() == 4);
  CHECK(why[0].eligible);
  CHECK(why[0].colour == "green");
  CHECK(why[0].why == "passing its health check");
  CHECK_FALSE(why[2].eligible);
  CHECK(why[2].colour == "red");
  CHECK(why[2].why == "failing its active health check (/healthz)");
  CHECK_FALSE(why[3].eligible);
  CHECK(why[3].colour == "amber");
  CHECK(why[3].why == "waiting for its first passing health check");

  // Probes failing say so: a pending instance whose probes fail (refused: a dead instance, not
  // one still starting) turns red once as many failed as would take a healthy one out (2).
  f.health(2).failed_probes = 3;
  f.health(2).last_probe_failure = "timeout";
  f.health(3).failed_probes = 1;
  f.health(3).last_probe_failure = "connect-failed";
  why = instance_eligibility(f.table->service(0), now, &panic);
  CHECK(why[2].why == "failing its active health check (/healthz): the last 3 probes failed (timeout)");
  CHECK(why[3].colour == "amber");
  CHECK(why[3].why == "no health check has passed yet: the last probe failed (connect-failed)");
  f.health(3).failed_probes = 12;
  why = instance_eligibility(f.table->service(0), now, &panic);
  CHECK(why[3].colour == "red");
  CHECK(why[3].why == "no health check has passed yet: the last 12 probes failed (connect-failed)");
  f.health(2).failed_probes = 0;
  f.health(3).failed_probes = 0;

  // Instance 1 ejected: now only 1 of 3 healthy, under 50%: panic mode lets the checked ones in.
  f.health(1).ejected_until_ms = now + 8'200;
  f.health(1).ejections = 1;
  why = instance_eligibility(f.table->service(0), now, &panic);
  CHECK(panic);
  CHECK(why[1].eligible);
  CHECK(why[1].colour == "amber");
  CHECK(why[1].why.find("ejected by outlier detection (ejection 1) for 8.2 s more") == 0);
  CHECK(why[1].why.find("panic mode (fewer than 50%") != std::string::npos);
  CHECK(why[2].eligible);
  CHECK(why[2].colour == "amber");
  CHECK_FALSE(why[3].eligible);  // never passed a probe: not even in panic

  // Without panic mode, the ejected one is out and red.
  Fixture g(2, 0);
  g.health(0).ejected_until_ms = now + 1'000;
  g.health(0).ejections = 2;
  why = instance_eligibility(g.table->service(0), now, &panic);
  CHECK_FALSE(panic);
  CHECK_FALSE(why[0].eligible);
  CHECK(why[0].colour == "red");
  CHECK(why[1].why == "eligible (no active health check)");
}

TEST_CASE("status: the document, with and without the traffic hook", "[status]") {
  const int64_t now = 1'000'000;
  Fixture f(2);
  StatusBuilder builder;
  nlohmann::json j = builder.status(*f.table, now);
  CHECK(j["generation"] == 7);
  CHECK(j["traffic"] == false);
  REQUIRE(j["routes"].size() == 2);
  CHECK(j["routes"][0]["name"] == "r-web");
  CHECK(j["routes"][0]["state"] == "ok");
  CHECK(j["routes"][1]["state"] == "503");  // "idle" has no instance (a config service: forever)
  REQUIRE(j["services"].size() == 2);
  const nlohmann::json& web = j["services"][0];
  CHECK(web["name"] == "web");
  CHECK(web["requests"].is_null());
  CHECK(web["responses_5xx"].is_null());
  REQUIRE(web["instances"].size() == 2);
  CHECK(web["instances"][0]["container"] == "web-1");
  CHECK(web["instances"][0]["address"] == "10.0.0.1:80");
  CHECK(web["instances"][0]["docker"] == "running, healthy or no healthcheck");
  CHECK(web["instances"][0]["in_flight"] == 0);
  CHECK(web["instances"][0]["eligible"] == true);

  builder.traffic = [] { return std::vector<StatusTraffic>{{"web", 120, 3}}; };
  j = builder.status(*f.table, now);
  CHECK(j["traffic"] == true);
  CHECK(j["services"][0]["requests"] == 120);
  CHECK(j["services"][0]["responses_5xx"] == 3);
  CHECK(j["services"][1]["requests"] == 0);  // no traffic reported for it yet
}

TEST_CASE("status: the observed state lists instances and route states for the journal", "[status]") {
  Fixture f(2);
  f.health(1).ejected_until_ms = 2'000;
  f.health(1).ejections = 1;
  ObservedState s = observe_state(*f.table, 1'000);
  REQUIRE(s.instances.size() == 2);
  const InstanceView& v = s.instances.at({"web", "10.0.0.2:80"});
  CHECK(v.container == "web-2");
  CHECK(v.ejected);
  CHECK(v.ejections == 1);
  CHECK(v.probe == "unchecked");
  REQUIRE(s.routes.size() == 2);
  CHECK(s.routes.at(route_claim_key("idle.test", "/")).state == "503");
  CHECK(s.routes.at(route_claim_key("web.test", "/")).state == "ok");
  // Ejection over: the next look differs by exactly one instance_returned.
  EventJournal journal;
  record_changes(s, observe_state(*f.table, 3'000), 5, journal);
  REQUIRE(journal.events().size() == 1);
  CHECK(journal.events()[0].type == "instance_returned");
}

TEST_CASE("status: explain answers 400 reasons for bad input, and the instances for good input", "[status]") {
  Fixture f(2);
  std::string error;
  CHECK(explain_request(*f.table, "", "/", 1, &error).is_null());
  CHECK(error.find("missing query parameter: host") == 0);
  CHECK(explain_request(*f.table, "web.test", "", 1, &error).is_null());
  CHECK(error.find("missing query parameter: path") == 0);
  CHECK(explain_request(*f.table, "web.test", "x", 1, &error).is_null());
  CHECK(error.find("invalid path") == 0);
  CHECK(explain_request(*f.table, "web.test", "/a b", 1, &error).is_null());
  CHECK(error.find("invalid host or path") == 0);
  CHECK(explain_request(*f.table, "[::1", "/", 1, &error).is_null());
  CHECK(error.find("invalid host") == 0);
  // The path is sanitized as a client's is (config sanitize_path), or taken as it is.
  CHECK(explain_request(*f.table, "web.test", "/a%zz", 1, &error).is_null());
  CHECK(error.find("invalid percent-encoding in path") != std::string::npos);
  const berth::http::Limits byte_for_byte;  // sanitize_path: false, no encoding refused
  CHECK_FALSE(explain_request(*f.table, "web.test", "/a%zz", 1, &error, "GET", {}, &byte_for_byte).is_null());
  // Encodings a client's path is refused for (config encoded_characters): all by default.
  CHECK(explain_request(*f.table, "web.test", "/a%2Fb", 1, &error).is_null());
  CHECK(error.find("refused on route r-web (encoded slash (%2F) in path)") != std::string::npos);
  CHECK_FALSE(explain_request(*f.table, "web.test", "/a%2Fb", 1, &error, "GET", {}, nullptr,
                              berth::http::kAllEncodedCharacters & ~berth::http::kEncodedSlash)
                  .is_null());
  CHECK(error.empty());

  nlohmann::json j = explain_request(*f.table, "WEB.test", "/x", 1, &error);
  CHECK(error.empty());
  CHECK(j["matched"] == true);
  CHECK(j["route"]["name"] == "r-web");
  CHECK(j["rule"] == "only_match");
  CHECK(j["service"]["name"] == "web");
  CHECK(j["service"]["eligible"] == 2);
  CHECK(j["service"]["instances"].size() == 2);
  nlohmann::json idle = explain_request(*f.table, "idle.test", "/", 1, &error);
  CHECK(idle["service"]["why"].get<std::string>().find("no instance") == 0);
  nlohmann::json none = explain_request(*f.table, "nowhere.test", "/", 1, &error);
  CHECK(none["matched"] == false);
}

TEST_CASE("status: containers discovery holds back are listed red with Docker's reason", "[status]") {
  const int64_t now = 1'000'000;
  Service web;
  web.name = "web";
  Endpoint e;
  e.key = "10.0.0.1:80";
  e.source = "container:0123456789ab/web-1";
  web.endpoints.push_back(e);
  web.held_back.push_back({"10.0.0.2:80", "container:0123456789ac/web-2", "unhealthy (its healthcheck fails)"});
  // All of its containers unhealthy and the empty-route grace over: its route no longer
  // matches, but the service still shows, with why.
  Service down;
  down.name = "down";
  down.serve_empty_until_ms = 0;
  down.held_back.push_back({"10.0.0.3:80", "container:0123456789ad/down-1", "starting (no passing healthcheck yet)"});
  Service gone;  // neither serving nor held back: left out as before
  gone.name = "gone";
  gone.serve_empty_until_ms = 0;
  std::vector<Service> services = {web, down, gone};
  HealthRegistry registry;
  registry.attach(services);
  Route r;
  r.name = "r-web";
  r.host = "web.test";
  r.service = 0;
  Route r2 = r;
  r2.name = "r-down";
  r2.host = "down.test";
  r2.service = 1;
  Route r3 = r;
  r3.name = "r-gone";
  r3.host = "gone.test";
  r3.service = 2;
  auto table = RouteTable::build({r, r2, r3}, services, 1);

  nlohmann::json j = StatusBuilder{}.status(*table, now);
  INFO(j.dump(2));
  REQUIRE(j["routes"].size() == 1);  // r-down and r-gone are off
  REQUIRE(j["services"].size() == 2);
  const nlohmann::json& w = j["services"][0]["instances"];
  REQUIRE(w.size() == 2);
  CHECK(w[0]["address"] == "10.0.0.1:80");
  CHECK(w[0]["eligible"] == true);
  CHECK(w[1]["address"] == "10.0.0.2:80");
  CHECK(w[1]["container"] == "web-2");
  CHECK(w[1]["eligible"] == false);
  CHECK(w[1]["colour"] == "red");
  CHECK(w[1]["docker"] == "unhealthy (its healthcheck fails)");
  CHECK(w[1]["weight"].is_null());
  CHECK(j["services"][1]["name"] == "down");
  REQUIRE(j["services"][1]["instances"].size() == 1);
  CHECK(j["services"][1]["instances"][0]["docker"] == "starting (no passing healthcheck yet)");

  // /api/explain lists them too, and does not count them as eligible.
  std::string error;
  nlohmann::json x = explain_request(*table, "web.test", "/", now, &error);
  REQUIRE(error.empty());
  CHECK(x["service"]["eligible"] == 1);
  REQUIRE(x["service"]["instances"].size() == 2);
  CHECK(x["service"]["instances"][1]["colour"] == "red");
}

TEST_CASE("status: a split route lists every service by weight and serves while one of them does; explain and "
          "status show its mirror", "[status]") {
  Fixture f(1);
  Route r;
  r.name = "canary";
  r.host = "split.test";
  r.path_prefix = "/";
  auto split = std::make_shared<RouteSplit>();
  split->targets = {{1, 90}, {0, 10}};  // "idle" (no instance) first, then "web"
  r.service = 1;
  r.split = split;
  r.mirror = std::make_shared<berth::RouteMirror>(berth::RouteMirror{0, 2500, 4096});
  auto table = RouteTable::build({r}, f.services, 8);
  nlohmann::json j = StatusBuilder().status(*table, 1'000'000);
  REQUIRE(j["routes"].size() == 1);
  const nlohmann::json& route = j["routes"][0];
  CHECK(route["service"] == "idle");  // the first target, where one service is shown
  REQUIRE(route["split"].size() == 2);
  CHECK(route["split"][0]["service"] == "idle");
  CHECK(route["split"][0]["weight"] == 90);
  CHECK(route["split"][1]["service"] == "web");
  CHECK(route["split"][1]["weight"] == 10);
  CHECK(route["split"][0]["serving"] == true);  // a config service with no instance still serves (503)
  CHECK(route["split"][1]["serving"] == true);
  CHECK(route["state"] == "ok");  // "web" has an instance
  CHECK(route["mirror"] == nlohmann::json({{"service", "web"}, {"percent", 25.0}, {"max_body", 4096}}));

  std::string error;
  nlohmann::json x = explain_request(*table, "split.test", "/", 1'000'000, &error);
  CHECK(error.empty());
  CHECK(x["route"]["split"] == route["split"]);
  CHECK(x["route"]["mirror"] == route["mirror"]);

  // The journal's view agrees: the route serves through "web" although its first target has no
  // instance. When web, not the first target, loses its instance, the route goes 503; when one
  // comes back, it recovers.
  ObservedState observed = observe_state(*table, 1'000'000);
  const std::string key = route_claim_key("split.test", "/");
  CHECK(observed.routes.at(key).state == "ok");
  auto web = std::make_shared<Service>(table->service(0));
  web->endpoints.clear();
  web->serve_empty_until_ms = 1'010'000;
  std::vector<ServicePtr> services = table->services();
  services[0] = web;
  auto empty = RouteTable::with_services(*table, services, 9);
  REQUIRE(empty);
  ObservedState before, after;
  REQUIRE(observe_changed_services(*empty, {&table->service(0)}, {web}, 1'000'000, observed, before, after));
  CHECK(observed.routes.at(key).state == "503");
  CHECK(observed.next_change_ms == 1'010'000);  // web's grace ends then
  EventJournal journal;
  record_changes(before, after, 5, journal);
  const JournalEvent* went_503 = nullptr;
  for (const JournalEvent& e : journal.events())
    if (e.type == "route_503") went_503 = &e;
  REQUIRE(went_503);
  // It names the split's services, not only the first.
  bool named = false;
  for (const auto& [field, value] : went_503->fields)
    named = named || (field == "service" && value == JournalValue(std::string("idle, web")));
  CHECK(named);
  CHECK(observe_state(*empty, 1'000'000).routes.at(key).state == "503");
  record_changes(observe_state(*empty, 1'000'000), observe_state(*table, 1'000'000), 6, journal);
  CHECK(journal.events().back().type == "route_recovered");
}

TEST_CASE("status: a look at the changed services alone matches a look at the whole table", "[status]") {
  Fixture f(3);
  ObservedState observed = observe_state(*f.table, 1'000);
  // web loses its third instance and gains a fourth; idle gets one: the same routes.
  auto web = std::make_shared<Service>(f.table->service(0));
  web->endpoints.pop_back();
  Endpoint e;
  e.key = "10.0.0.9:80";
  e.source = "container:0123456789ab/web-9";
  web->endpoints.push_back(e);
  web->endpoints[1].source = "container:0123456789ab/web-7";  // another container at the same address
  auto idle = std::make_shared<Service>(f.table->service(1));
  idle->endpoints.push_back(e);
  auto next = RouteTable::with_services(*f.table, {web, idle}, 8);
  ObservedState before, after;
  REQUIRE(observe_changed_services(*next, {&f.table->service(0), &f.table->service(1)}, {web, idle}, 1'000,
                                   observed, before, after));
  ObservedState whole = observe_state(*next, 1'000);
  REQUIRE(observed.instances.size() == whole.instances.size());
  for (const auto& [key, view] : whole.instances) {
    REQUIRE(observed.instances.count(key));
    CHECK(observed.instances.at(key).container == view.container);
  }
  REQUIRE(observed.routes.size() == whole.routes.size());
  for (const auto& [key, view] : whole.routes) CHECK(observed.routes.at(key).state == view.state);
  // The journal gets what a whole look would give.
  EventJournal partial, full;
  record_changes(before, after, 5, partial);
  record_changes(observe_state(*f.table, 1'000), whole, 5, full);
  REQUIRE(partial.events().size() == full.events().size());
  for (size_t i = 0; i < full.events().size(); ++i) CHECK(partial.events()[i].type == full.events()[i].type);
  // web-3 left, web-9 joined web and idle, idle.test recovered (web-7 at web-2's address is no
  // event, but the observed view names it: checked above).
  CHECK(full.events().size() == 4);
}

TEST_CASE("status: a redirect route is shown as a redirect, never as 503; the journal has no event for it",
          "[status]") {
  // Berth answers r-redir itself: its route has the nameless stand-in service, without instances.
  auto loaded = config::testing::load(config::testing::kRedirectBesideServices);
  REQUIRE(loaded.ok());
  auto table = RouteTable::from_config(*loaded.config, 1);
  const int64_t now = 1'000'000;

  nlohmann::json j = StatusBuilder().status(*table, now);
  REQUIRE(j["routes"].size() == 3);
  CHECK(j["routes"][1]["name"] == "r-redir");
  CHECK(j["routes"][1]["state"] == "redirect");
  CHECK(j["routes"][1]["service"] == "");
  CHECK(j["routes"][2]["state"] == "503");
  for (const nlohmann::json& s : j["services"]) CHECK(s["name"] != "");
  // Problems first: the 503 route alone moves up; the redirect keeps its place.
  StatusQuery problems;
  problems.problems_first = true;
  j = StatusBuilder().status(*table, now, problems);
  REQUIRE(j["routes"].size() == 3);
  CHECK(j["routes"][0]["name"] == "r-empty");
  CHECK(j["routes"][1]["name"] == "r-a");
  CHECK(j["routes"][2]["name"] == "r-redir");

  // The journal's view: a redirect, so neither its appearing nor its leaving (a reload that
  // drops it) is a route event.
  ObservedState with = observe_state(*table, now);
  CHECK(with.routes.at(route_claim_key("r.test", "/")).state == "redirect");
  CHECK(with.next_change_ms == INT64_MAX);
  auto without = RouteTable::build({table->routes()[0], table->routes()[2]}, table->services(), 2);
  EventJournal journal;
  record_changes(ObservedState{}, with, 1, journal);
  record_changes(with, observe_state(*without, now), 2, journal);
  record_changes(observe_state(*without, now), with, 3, journal);
  REQUIRE_FALSE(journal.events().empty());  // s-a's instance joining, first
  for (const JournalEvent& e : journal.events()) CHECK(e.type == "instance_joined");

  // /api/explain: chosen, marked as a redirect, and not said to answer 503.
  std::string error;
  nlohmann::json x = explain_request(*table, "r.test", "/x", now, &error);
  CHECK(error.empty());
  CHECK(x["route"]["name"] == "r-redir");
  CHECK(x["route"]["redirect"] == true);
  CHECK(x["service"]["instances"].empty());
  CHECK(x["service"]["why"].get<std::string>().find("503") == std::string::npos);
  CHECK(x["service"]["why"].get<std::string>().find("redirect") != std::string::npos);
  CHECK_FALSE(explain_request(*table, "a.test", "/", now, &error)["route"].contains("redirect"));
}

TEST_CASE("status: the journal knows a route by host and path, not by its name", "[status]") {
  // A config route without a name is route-<index>: a reload that removes the first of three
  // renames the other two, which still serve. Only the removed one expired.
  Fixture f(1);
  auto table_of = [&](const std::vector<std::string>& hosts) {
    std::vector<Route> routes;
    for (size_t i = 0; i < hosts.size(); ++i) {
      Route r;
      r.name = "route-" + std::to_string(i);
      r.host = hosts[i];
      r.path_prefix = "/";
      r.service = 0;
      routes.push_back(r);
    }
    return RouteTable::build(routes, f.services, 1);
  };
  const auto three = table_of({"a.test", "b.test", "c.test"});
  const auto two = table_of({"b.test", "c.test"});
  EventJournal journal;
  record_changes(observe_state(*three, 1'000'000), observe_state(*two, 1'000'000), 1, journal);
  REQUIRE(journal.events().size() == 1);
  const JournalEvent& e = journal.events()[0];
  CHECK(e.type == "route_expired");
  CHECK(std::find(e.fields.begin(), e.fields.end(), std::make_pair(std::string("host"), JournalValue(std::string("a.test")))) !=
        e.fields.end());
  // Two routes put before them rename them again: nothing expired, nothing recovered.
  EventJournal quiet;
  record_changes(observe_state(*two, 1'000'000), observe_state(*table_of({"x.test", "y.test", "b.test", "c.test"}), 1'000'000),
                 2, quiet);
  CHECK(quiet.events().empty());
}
