// The status page and its APIs through the real binary: GET / (the page), /api/status,
// /api/events (reloads, instances leaving, routes going 503, probes failing) and /api/explain.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "chromium.h"
#include "env.h"

using namespace it;
using nlohmann::json;

namespace {

json get_json(uint16_t admin_port, const std::string& target, int expected_status = 200) {
  Response r = http_get(admin_port, target, "127.0.0.1");
  INFO(target << ": " << r.raw_head << r.body << r.error);
  REQUIRE(r.status == expected_status);
  CHECK(lower(r.header("content-type").value_or("")).find("application/json") != std::string::npos);
  json j = json::parse(r.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// The events of /api/events of one type.
std::vector<json> events_of(uint16_t admin_port, const std::string& type) {
  json doc = get_json(admin_port, "/api/events");
  std::vector<json> out;
  for (const json& e : doc["events"])
    if (e["type"] == type) out.push_back(e);
  return out;
}

const json* find_by(const json& list, const std::string& key, const std::string& value) {
  for (const json& item : list)
    if (item.contains(key) && item[key] == value) return &item;
  return nullptr;
}

constexpr const char* kMarkupName = "<img src=x onerror=document.body.dataset.pwned=1>";

std::string two_service_yaml(const Origin& a, const Origin& b, uint16_t dead, bool with_b) {
  std::string y = config_head(1, "upstream_connect: 1s, upstream_response: 5s") +
                  "routes:\n"
                  "  - {name: r-root, host: \"a.test\", path: /, service: s-web}\n"
                  "  - {name: r-api, host: \"a.test\", path: /api, service: s-api}\n"
                  "  - {name: r-wild, host: \"*.test\", path: /, service: s-web}\n"
                  "  - {name: r-top, path: /admin, priority: 10, service: s-api}\n"
                  // A route name is free text: the page must show it as text, never run it.
                  "  - {name: '" + std::string(kMarkupName) + "', host: \"markup.example\", service: s-api}\n"
                  "services:\n"
                  "  s-web:\n"
                  "    endpoints: [\"" + a.address() + "\", \"127.0.0.1:" + std::to_string(dead) + "\"]\n"
                  "    health: {path: /__health, interval: 200ms, timeout: 200ms, unhealthy_threshold: 1, healthy_threshold: 1}\n"
                  "    outlier: {panic_threshold_percent: 0}\n";
  y += with_b ? "  s-api: {endpoints: [\"" + b.address() + "\"]}\n" : "  s-api: {endpoints: []}\n";
  return y;
}

// n routes r-0000.. at h0000.scale.test, each to its own service svc-0000.. with the origin as
// its one instance; every `empty_every`-th service has none (its route answers 503).
std::string many_routes_yaml(const Origin& origin, size_t n, size_t empty_every) {
  std::string routes = "routes:\n", services = "services:\n";
  for (size_t i = 0; i < n; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "%04zu", i);
    routes += "  - {name: r-" + std::string(id) + ", host: h" + id + ".scale.test, path: /, service: svc-" + id + "}\n";
    const bool empty = i % empty_every == empty_every - 1;
    services += "  svc-" + std::string(id) + ": {endpoints: [" + (empty ? "" : "\"" + origin.address() + "\"") + "]}\n";
  }
  return config_head(1) + routes + services;
}

}  // namespace

TEST_CASE("status: GET / is the self-contained status page", "[status]") {
  auto& env = shared();
  Response r = http_get(env.admin_port(), "/", "127.0.0.1");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(lower(r.header("content-type").value_or("")).find("text/html") != std::string::npos);
  CHECK(r.body.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(r.body.find("<title>Berth status</title>") != std::string::npos);
  CHECK(r.body.find("/api/status") != std::string::npos);
  CHECK(r.body.find("/api/events") != std::string::npos);
  // No external assets, and data is never inserted as markup.
  CHECK(r.body.find("src=") == std::string::npos);
  CHECK(r.body.find("<link") == std::string::npos);
  CHECK(r.body.find("http://") == r.body.find("http://www.w3.org/2000/svg"));
  CHECK(r.body.find("innerHTML") == std::string::npos);
  check_alive(env);
}

TEST_CASE("status: /api/status lists routes, services and instances with health", "[status]") {
  auto& env = shared();
  json j = get_json(env.admin_port(), "/api/status");
  CHECK(j["generation"].is_number());
  CHECK(j["traffic"].is_boolean());
  const json* r = find_by(j["routes"], "name", "r-lb");
  REQUIRE(r != nullptr);
  CHECK((*r)["host"] == "lb.test");
  CHECK((*r)["service"] == "s-ab");
  CHECK((*r)["state"] == "ok");
  const json* empty = find_by(j["routes"], "name", "r-empty");
  REQUIRE(empty != nullptr);
  CHECK((*empty)["state"] == "503");
  const json* s = find_by(j["services"], "name", "s-ab");
  REQUIRE(s != nullptr);
  REQUIRE((*s)["instances"].size() == 2);
  const json* b = find_by((*s)["instances"], "address", env.b->address());
  REQUIRE(b != nullptr);
  CHECK((*b)["weight"] == 2);
  CHECK((*b)["eligible"] == true);
  CHECK((*b)["colour"] == "green");
  CHECK((*b)["container"] == "");
  CHECK((*b)["in_flight"] == 0);
  CHECK((*b)["docker"].is_null());
  if (!j["traffic"].get<bool>()) CHECK((*s)["requests"].is_null());
  check_alive(env);
}

TEST_CASE("status: /api/explain names the route, the rule that chose it and each instance's eligibility",
          "[status]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const uint16_t dead = unused_port();
  Berth berth(two_service_yaml(a, b, dead, true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t admin = berth.admin_port();
  // The live instance passes its first probe; the dead one never does: not eligible, and says why.
  REQUIRE(wait_until([&] {
    json j = get_json(admin, "/api/explain?host=a.test&path=/");
    const json* d = find_by(j["service"]["instances"], "address", a.address());
    const json* x = find_by(j["service"]["instances"], "address", "127.0.0.1:" + std::to_string(dead));
    return d && (*d)["probe"] == "healthy" && x && (*x)["why"].get<std::string>().find("failed") != std::string::npos;
  }, 5s));

  json j = get_json(admin, "/api/explain?host=A.TEST:80&path=/index.html%3Fq%3D1");
  CHECK(j["matched"] == true);
  CHECK(j["host"] == "a.test");
  CHECK(j["path"] == "/index.html");
  CHECK(j["route"]["name"] == "r-root");
  CHECK(j["rule"] == "exact_host");  // over r-wild, same priority
  CHECK(j["why"].get<std::string>().find("exact host") != std::string::npos);
  CHECK(j["service"]["name"] == "s-web");
  CHECK(j["service"]["eligible"] == 1);
  REQUIRE(j["candidates"].size() == 4);  // r-root; r-wild (outranked); r-api, r-top (path)
  CHECK(j["candidates"][0]["route"] == "r-root");
  CHECK(j["candidates"][0]["outcome"] == "chosen");
  const json* wild = find_by(j["candidates"], "route", "r-wild");
  REQUIRE(wild != nullptr);
  CHECK((*wild)["outcome"] == "outranked");
  CHECK((*wild)["rule"] == "exact_host");
  CHECK((*wild)["host_match"] == "wildcard");
  const json* api = find_by(j["candidates"], "route", "r-api");
  REQUIRE(api != nullptr);
  CHECK((*api)["outcome"] == "path_mismatch");
  const json* live = find_by(j["service"]["instances"], "address", a.address());
  const json* down = find_by(j["service"]["instances"], "address", "127.0.0.1:" + std::to_string(dead));
  REQUIRE(live != nullptr);
  REQUIRE(down != nullptr);
  CHECK((*live)["eligible"] == true);
  CHECK((*live)["probe"] == "healthy");
  CHECK((*down)["eligible"] == false);
  CHECK((*down)["probe"] == "pending");
  // Its probes are refused (unhealthy_threshold 1): dead, not starting, so red, with the cause.
  CHECK((*down)["colour"] == "red");
  CHECK((*down)["why"].get<std::string>().find("no health check has passed yet: the last") == 0);
  CHECK((*down)["why"].get<std::string>().find("(connect-failed)") != std::string::npos);

  json api_x = get_json(admin, "/api/explain?host=a.test&path=/api/v1");
  CHECK(api_x["route"]["name"] == "r-api");
  CHECK(api_x["rule"] == "longer_path_prefix");
  json top = get_json(admin, "/api/explain?host=a.test&path=/admin");
  CHECK(top["route"]["name"] == "r-top");
  CHECK(top["rule"] == "priority");
  CHECK(top["service"]["name"] == "s-api");
  json none = get_json(admin, "/api/explain?host=other.org&path=/");
  CHECK(none["matched"] == false);
  CHECK(none["route"].is_null());
  CHECK(none["why"].get<std::string>().find("404") != std::string::npos);

  // Bad input: 400 with a message that says what is wrong.
  for (const char* target : {"/api/explain", "/api/explain?path=/", "/api/explain?host=a.test",
                             "/api/explain?host=a.test&path=nope", "/api/explain?host=%5Bzz&path=/",
                             "/api/explain?host=a%20b&path=/"}) {
    json e = get_json(admin, target, 400);
    INFO(target);
    CHECK(e["error"].get<std::string>().size() > 10);
  }
  CHECK(get_json(admin, "/api/explain?path=/", 400)["error"].get<std::string>().find("host") != std::string::npos);
  CHECK(get_json(admin, "/api/explain?host=x", 400)["error"].get<std::string>().find("path") != std::string::npos);
  CHECK(berth.running());
}

TEST_CASE("status: /api/events records reloads, instances leaving, routes going 503 and failing probes",
          "[status]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const uint16_t dead = unused_port();
  Berth berth(two_service_yaml(a, b, dead, true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t admin = berth.admin_port();
  CHECK(events_of(admin, "started").size() == 1);
  REQUIRE(wait_until([&] {
    for (const json& e : events_of(admin, "probe_changed"))
      if (e["instance"] == a.address() && e["to"] == "healthy") return true;
    return false;
  }, 5s));

  // A broken config: the reload fails and says so.
  REQUIRE(berth.rewrite_config("routes: [unclosed\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return !events_of(admin, "config_reloaded").empty(); }, 5s));
  json failed = events_of(admin, "config_reloaded").back();
  CHECK(failed["result"] == "failed");
  CHECK_FALSE(failed["error"].get<std::string>().empty());

  // A good one that removes s-api's only instance: the reload, the instance leaving and s-api's
  // routes going 503.
  REQUIRE(berth.rewrite_config(two_service_yaml(a, b, dead, false)));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return events_of(admin, "config_reloaded").size() == 2; }, 5s));
  CHECK(events_of(admin, "config_reloaded").back()["result"] == "ok");
  std::vector<json> left = events_of(admin, "instance_left");
  REQUIRE(left.size() == 1);
  CHECK(left[0]["service"] == "s-api");
  CHECK(left[0]["instance"] == b.address());
  CHECK(left[0]["why"] == "removed from the configuration");
  std::vector<json> went_503 = events_of(admin, "route_503");
  REQUIRE(went_503.size() == 3);  // and the route with the markup name
  CHECK(find_by(json(went_503), "route", "r-api") != nullptr);
  CHECK(find_by(json(went_503), "route", "r-top") != nullptr);
  CHECK(get_json(admin, "/api/explain?host=a.test&path=/api")["service"]["why"].get<std::string>().find("503") !=
        std::string::npos);

  // The live instance goes away (its process ends): its probe fails, and that is journalled.
  a.process().terminate();
  REQUIRE(wait_until([&] {
    for (const json& e : events_of(admin, "probe_changed"))
      if (e["instance"] == a.address() && e["to"] == "unhealthy") return true;
    return false;
  }, 5s));

  // Every event has a time and a sequence number, oldest first.
  json doc = get_json(admin, "/api/events");
  CHECK(doc["capacity"] == 256);
  uint64_t last = 0;
  for (const json& e : doc["events"]) {
    CHECK(e["seq"].get<uint64_t>() > last);
    last = e["seq"].get<uint64_t>();
    CHECK(e["time"].get<std::string>().size() == 24);  // 2026-12-02T08:00:00.123Z
    CHECK(e["time_ms"].get<int64_t>() > 1'700'000'000'000);
  }
  CHECK(get_json(admin, "/api/events?after=" + std::to_string(last))["events"].empty());
  for (const char* bad : {"-1", "x", "1x", "99999999999999999999999", ""})
    CHECK(http_get(admin, std::string("/api/events?after=") + bad, "127.0.0.1").status == 400);
  CHECK(http_get(admin, "/api/events?after", "127.0.0.1").status == 400);
  CHECK(events_of(admin, "started").front()["generation"].is_number());
  CHECK(berth.running());
}

TEST_CASE("status: a redirect route shows as a redirect, not as down: /api/status, /metrics, /api/explain, "
          "and no route event when a reload removes it",
          "[status][metrics]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  // r-redir has no service (Berth answers it); a reload takes it away, and one of s-a's instances
  // with it, so that the journal has a change to wait for.
  auto yaml = [&](bool with_redirect) {
    return config_head(1) +
           "routes:\n"
           "  - {name: r-a, host: \"a.test\", service: s-a}\n" +
           (with_redirect ? "  - {name: r-redir, host: \"r.test\", redirect: {to: \"http://x.test/\"}}\n" : "") +
           "services:\n"
           "  s-a: {endpoints: [\"" + a.address() + "\"" + (with_redirect ? ", \"" + b.address() + "\"" : "") + "]}\n";
  };
  Berth berth(yaml(true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t admin = berth.admin_port();
  Response redirected = http_get(berth.port(), "/x", "r.test");
  CHECK(redirected.status == 302);
  CHECK(redirected.header("location").value_or("") == "http://x.test/");

  json status = get_json(admin, "/api/status");
  const json* r = find_by(status["routes"], "name", "r-redir");
  REQUIRE(r != nullptr);
  CHECK((*r)["state"] == "redirect");
  CHECK((*r)["service"] == "");
  CHECK((*find_by(status["routes"], "name", "r-a"))["state"] == "ok");
  CHECK(find_by(status["services"], "name", "") == nullptr);
  // Problems first: a redirect is no problem, so both keep their table order.
  json problems = get_json(admin, "/api/status?order=problems");
  REQUIRE(problems["routes"].size() == 2);
  CHECK(problems["routes"][0]["name"] == "r-a");

  // No berth_route_up_instances series for it (an always-0 series would fire
  // BerthRouteNoHealthyInstance); the service-backed route keeps its own.
  {
    Response metrics = http_get(admin, "/metrics", "127.0.0.1");
    REQUIRE(metrics.status == 200);
    INFO(metrics.body);
    CHECK(metrics.body.find("berth_route_up_instances{route=\"r-a\",service=\"s-a\"} 2") != std::string::npos);
    CHECK(metrics.body.find("berth_route_up_instances{route=\"r-redir\"") == std::string::npos);
  }

  // /api/explain: the redirect route is chosen, and nothing says it answers 503.
  json x = get_json(admin, "/api/explain?host=r.test&path=/x");
  CHECK(x["route"]["name"] == "r-redir");
  CHECK(x["route"]["redirect"] == true);
  CHECK(x["service"]["why"].get<std::string>().find("503") == std::string::npos);
  CHECK(x["service"]["why"].get<std::string>().find("redirect") != std::string::npos);

  // Removed by a reload: s-a's instance leaving is journalled, the redirect route's going is not
  // (as for a service-backed route that leaves), and no route event came before either.
  REQUIRE(berth.rewrite_config(yaml(false)));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return !events_of(admin, "instance_left").empty(); }, 5s));
  for (const char* type : {"route_503", "route_recovered", "route_expired"}) {
    INFO(type);
    CHECK(events_of(admin, type).empty());
  }
  CHECK(find_by(get_json(admin, "/api/status")["routes"], "name", "r-redir") == nullptr);
  CHECK(berth.running());
}

TEST_CASE("status: headless Chromium renders the page with the config's routes and instances", "[status][browser]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const uint16_t dead = unused_port();
  Berth berth(two_service_yaml(a, b, dead, true));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(berth.admin_port()) + "/";
  // The live instance has passed a probe before the page is loaded; the dead one never does.
  REQUIRE(wait_until([&] {
    return http_get(berth.admin_port(), "/api/status", "localhost").body.find("\"probe\":\"healthy\"") != std::string::npos;
  }, 5s));

  BrowserRun dom = chromium_dom(url, 3000);
  INFO(dom.error << "\n" << dom.log);
  REQUIRE(dom.error.empty());
  // The page updated itself from the JSON APIs at least once, without an error.
  CHECK(dom.output.find("data-updates=\"0\"") == std::string::npos);
  CHECK(dom.output.find("data-updates=\"") != std::string::npos);
  CHECK(dom.output.find("id=\"error\"></span>") != std::string::npos);  // no "update failed"
  for (const char* route : {"r-root", "r-api", "r-wild", "r-top"})
    CHECK(dom.output.find(std::string("data-route=\"") + route + "\"") != std::string::npos);
  CHECK(dom.output.find("data-service=\"s-web\"") != std::string::npos);
  CHECK(dom.output.find("data-service=\"s-api\"") != std::string::npos);
  CHECK(dom.output.find("data-address=\"" + a.address() + "\"") != std::string::npos);
  CHECK(dom.output.find("data-address=\"" + b.address() + "\"") != std::string::npos);
  CHECK(dom.output.find("no health check has passed yet") != std::string::npos);
  CHECK(occurrences(dom.output, "class=\"dot red\"") == 1);
  CHECK(occurrences(dom.output, "class=\"dot green\"") == 2);
  CHECK(dom.output.find(">started<") != std::string::npos);  // the events table
  // Names from the configuration are text: escaped in the DOM, and the markup never ran.
  CHECK(dom.output.find(">&lt;img src=x onerror=document.body.dataset.pwned=1&gt;<") != std::string::npos);
  CHECK(dom.output.find("data-pwned") == std::string::npos);
  CHECK(dom.output.find("<img") == std::string::npos);

  const std::string png = screenshot_path("status-page-config.png");
  BrowserRun shot = chromium_screenshot(url, png, 1100, 700, 3000);
  INFO(shot.error << "\n" << shot.log);
  REQUIRE(shot.error.empty());
  const std::string bytes = read_file(png);
  CHECK(is_png(bytes));
  CHECK(png_size(bytes) == std::make_pair(1100u, 700u));
  CHECK(berth.running());
}

TEST_CASE("status: /api/status?filter=&limit=&order= lists what matches, capped, and says how many", "[status]") {
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(many_routes_yaml(a, 300, 100));  // svc-0099, svc-0199, svc-0299 have no instance
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t admin = berth.admin_port();

  // Without parameters: every route and service, and no counts (the document scripts read).
  json all = get_json(admin, "/api/status");
  CHECK(all["routes"].size() == 300);
  CHECK(all["services"].size() == 300);
  CHECK_FALSE(all.contains("routes_total"));

  json capped = get_json(admin, "/api/status?limit=50");
  CHECK(capped["routes"].size() == 50);
  CHECK(capped["services"].size() == 50);
  const json counts = {{"routes_total", 300}, {"routes_matched", 300}, {"services_total", 300},
                       {"services_matched", 300}, {"instances_total", 297}};
  for (const auto& [key, n] : counts.items()) CHECK(capped[key] == n);
  CHECK(capped["services"][0]["name"] == "svc-0000");

  // One service by its host, without case; "SVC-01" is svc-0100..svc-0199.
  json one = get_json(admin, "/api/status?filter=H0042.Scale.TEST&limit=200");
  REQUIRE(one["routes"].size() == 1);
  CHECK(one["routes"][0]["name"] == "r-0042");
  REQUIRE(one["services"].size() == 1);
  CHECK(one["services"][0]["name"] == "svc-0042");
  CHECK(one["services_matched"] == 1);
  json hundred = get_json(admin, "/api/status?filter=SVC-01&limit=20");
  CHECK(hundred["services"].size() == 20);
  CHECK(hundred["services_matched"] == 100);
  CHECK(hundred["routes_matched"] == 100);

  // Problems first: the services without an instance and their 503 routes lead.
  json worst = get_json(admin, "/api/status?limit=3&order=problems");
  REQUIRE(worst["services"].size() == 3);
  CHECK(worst["services"][0]["name"] == "svc-0099");
  CHECK(worst["services"][2]["name"] == "svc-0299");
  CHECK(worst["routes"][0]["state"] == "503");
  CHECK(worst["routes"][0]["name"] == "r-0099");

  for (const char* bad : {"limit=x", "limit=-1", "order=worst"}) {
    INFO(bad);
    json e = get_json(admin, std::string("/api/status?") + bad, 400);
    CHECK(e["error"].get<std::string>().size() > 10);
  }
  CHECK(berth.running());
}

TEST_CASE("status: headless Chromium shows 200 of 2,000 services and narrows to one by the filter in the URL",
          "[status][browser]") {
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(many_routes_yaml(a, 2000, 1000));  // svc-0999 and svc-1999 have no instance
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(berth.admin_port()) + "/";

  BrowserRun dom = chromium_dom(url, 3000);
  INFO(dom.error << "\n" << dom.log);
  REQUIRE(dom.error.empty());
  CHECK(dom.output.find("data-updates=\"0\"") == std::string::npos);
  CHECK(dom.output.find("id=\"error\"></span>") != std::string::npos);
  CHECK(occurrences(dom.output, "data-service=\"") == 200);
  CHECK(occurrences(dom.output, "data-route=\"") == 200);
  CHECK(dom.output.find("showing 200 of 2,000 services \u2014 narrow the filter") != std::string::npos);
  CHECK(dom.output.find("showing 200 of 2,000 routes \u2014 narrow the filter") != std::string::npos);
  CHECK(dom.output.find("2,000 routes \u00b7 2,000 services \u00b7 1,998 instances") != std::string::npos);
  // Problems first: the two services without an instance lead the list.
  const size_t empty = dom.output.find("data-service=\"svc-0999\"");
  CHECK(empty != std::string::npos);
  CHECK(empty < dom.output.find("data-service=\"svc-0000\""));
  CHECK(dom.output.find("data-service=\"svc-1999\"") != std::string::npos);

  // A shared link: the filter in the hash narrows the page to one service and its route.
  BrowserRun one = chromium_dom(url + "#filter=SVC-1234", 3000);
  INFO(one.error << "\n" << one.log);
  REQUIRE(one.error.empty());
  CHECK(occurrences(one.output, "data-service=\"") == 1);
  CHECK(one.output.find("data-service=\"svc-1234\"") != std::string::npos);
  CHECK(occurrences(one.output, "data-route=\"") == 1);
  CHECK(one.output.find("data-route=\"r-1234\"") != std::string::npos);
  CHECK(one.output.find("1 of 2,000 services match \u201cSVC-1234\u201d") != std::string::npos);
  CHECK(berth.running());
}
