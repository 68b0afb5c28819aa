// Route matchers (methods, headers, query, path_regex) and weighted splits through the real
// binary with real origins, from the config file and from berth.match.* / berth.path_regex
// container labels (a fake Docker engine, bench/fake_docker_engine.h).
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

std::string origin_of(const Response& r) { return r.header("x-origin-name").value_or("<none>"); }

struct MatchEnv {
  Origin main{"MAIN"}, canary{"CANARY"};
  std::unique_ptr<Berth> berth;
  MatchEnv() {
    REQUIRE(main.ok());
    REQUIRE(canary.ok());
    berth = std::make_unique<Berth>(
        config_head(2, "", "max_request_line: 1MiB, max_header_bytes: 1MiB") +
        "routes:\n"
        "  - {name: main, host: m.test, service: main}\n"
        "  - {name: canary-header, host: m.test, service: canary, match: {headers: [{name: X-Env, value: canary}]}}\n"
        "  - {name: canary-query, host: m.test, service: canary, match: {query: [{name: beta, value: \"1\"}]}}\n"
        "  - {name: writes, host: m.test, path: /api, service: canary, match: {methods: [POST, PUT]}}\n"
        "  - {name: users, host: m.test, path: /users, service: canary, match: {path_regex: \"/users/[0-9]+\"}}\n"
        "  - {name: evil, host: e.test, service: canary, match: {path_regex: \"/(a+)+\"}}\n"
        "  - {name: evil-main, host: e.test, service: main}\n"
        "  - {name: web, host: s.test, split: [{service: main, weight: 90}, {service: canary, weight: 10}]}\n"
        "services:\n"
        "  main: {endpoints: [\"" + main.address() + "\"]}\n"
        "  canary: {endpoints: [\"" + canary.address() + "\"]}\n");
    INFO(berth->error());
    REQUIRE(berth->ok());
  }
};

}  // namespace

TEST_CASE("route matchers: headers, query and methods pick the canary origin", "[route_match]") {
  MatchEnv env;
  const uint16_t port = env.berth->port();
  CHECK(origin_of(http_get(port, "/", "m.test")) == "MAIN");
  CHECK(origin_of(http_get(port, "/", "m.test", {"X-Env: canary"})) == "CANARY");
  CHECK(origin_of(http_get(port, "/", "m.test", {"x-env: canary"})) == "CANARY");
  CHECK(origin_of(http_get(port, "/", "m.test", {"X-Env: prod"})) == "MAIN");
  CHECK(origin_of(http_get(port, "/?beta=1", "m.test")) == "CANARY");
  CHECK(origin_of(http_get(port, "/?x=2&beta=1", "m.test")) == "CANARY");
  CHECK(origin_of(http_get(port, "/?beta=2", "m.test")) == "MAIN");
  {
    Client c(port);
    Response r = c.request(make_request("POST", "/api/items", "m.test", {}, "body"));
    CHECK(r.status == 200);
    CHECK(origin_of(r) == "CANARY");
    r = c.request(make_request("GET", "/api/items", "m.test"));
    CHECK(origin_of(r) == "MAIN");
  }
  CHECK(origin_of(http_get(port, "/users/42", "m.test")) == "CANARY");
  CHECK(origin_of(http_get(port, "/users/42?tab=1", "m.test")) == "CANARY");
  CHECK(origin_of(http_get(port, "/users/ann", "m.test")) == "MAIN");
}

TEST_CASE("route matchers: a pathological path against a nested-repeat pattern is answered promptly", "[route_match]") {
  MatchEnv env;
  const std::string evil = "/" + std::string(100 * 1024, 'a') + "!";
  auto start = std::chrono::steady_clock::now();
  Response r = http_get(env.berth->port(), evil, "e.test");
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.status == 200);
  CHECK(origin_of(r) == "MAIN");
  CHECK(took < 5s);  // linear time: milliseconds; a backtracking engine would not finish
  CHECK(origin_of(http_get(env.berth->port(), "/" + std::string(100 * 1024, 'a'), "e.test")) == "CANARY");
}

TEST_CASE("weighted split: 90/10 over 1000 requests lands as weighted", "[route_match][split]") {
  MatchEnv env;
  std::map<std::string, int> counts;
  Client c(env.berth->port());  // one connection: one worker, whose round-robin is exact
  for (int i = 0; i < 1000; ++i) {
    Response r = c.get("/", "s.test");
    REQUIRE(r.status == 200);
    ++counts[origin_of(r)];
  }
  CHECK(counts["MAIN"] >= 898);
  CHECK(counts["MAIN"] <= 902);
  CHECK(counts["CANARY"] >= 98);
  CHECK(counts["CANARY"] <= 102);
  CHECK(counts["MAIN"] + counts["CANARY"] == 1000);
  // The route's series are per chosen service, each counting what that service answered.
  auto served = [&](const std::string& service) {
    return metric_sample(env.berth->admin_port(),
                         "berth_requests_total{route=\"web\",service=\"" + service + "\",method=\"GET\",code=\"200\"}");
  };
  CHECK(wait_until([&] { return served("main") + served("canary") == 1000; }, std::chrono::seconds(5)));
  CHECK(served("main") == counts["MAIN"]);
  CHECK(served("canary") == counts["CANARY"]);

  auto routes = nlohmann::json::parse(http_get(env.berth->admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(routes.is_object());
  bool found = false;
  for (const auto& r : routes["routes"]) {
    if (r.value("name", "") != "web") continue;
    found = true;
    REQUIRE(r["split"].size() == 2);
    CHECK(r["split"][0]["service"] == "main");
    CHECK(r["split"][0]["weight"] == 90);
    CHECK(r["split"][1]["service"] == "canary");
    CHECK(r["split"][1]["weight"] == 10);
  }
  CHECK(found);
}

TEST_CASE("weighted split: a canary whose instances fail their probes gets no share, and gets it back",
          "[route_match][split]") {
  Origin main("MAIN"), canary("CANARY");
  REQUIRE((main.ok() && canary.ok()));
  auto set_health = [](Origin& o, int status) {  // what the origin's /__health answers
    return http_get(o.port(), "/__health_set?status=" + std::to_string(status), "x").status == 200;
  };
  REQUIRE(set_health(canary, 503));
  Berth berth(config_head(1) +
              "routes:\n  - {name: web, host: s.test, split: [{service: main, weight: 3}, {service: canary, weight: 1}]}\n"
              "services:\n  main: {endpoints: [\"" + main.address() + "\"]}\n"
              "  canary: {endpoints: [\"" + canary.address() + "\"], health: {path: /__health, interval: 200ms, "
              "timeout: 200ms, unhealthy_threshold: 1, healthy_threshold: 1}}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  auto spread = [&](int n) {
    std::map<std::string, int> counts;
    Client c(berth.port());
    for (int i = 0; i < n; ++i) {
      Response r = c.get("/", "s.test");
      ++counts[r.status == 200 ? origin_of(r) : std::to_string(r.status)];
    }
    return counts;
  };
  // The canary never passed a probe: its quarter goes to main, not to 503s.
  auto down = spread(200);
  INFO("MAIN " << down["MAIN"] << ", 503 " << down["503"]);
  CHECK(down["MAIN"] == 200);
  // Once it passes, 3:1 again.
  REQUIRE(set_health(canary, 200));
  CHECK(wait_until([&] { return spread(4)["CANARY"] == 1; }, 5s));
  auto up = spread(400);
  CHECK(up["MAIN"] == 300);
  CHECK(up["CANARY"] == 100);
}

TEST_CASE("route matchers: /api/explain tests the method, headers and query given", "[route_match][explain]") {
  MatchEnv env;
  const uint16_t admin = env.berth->admin_port();
  auto explain = [&](const std::string& query) {
    return nlohmann::json::parse(http_get(admin, "/api/explain?" + query, "127.0.0.1").body, nullptr, false);
  };
  auto plain = explain("host=m.test&path=/");
  REQUIRE(plain.is_object());
  CHECK(plain["route"]["name"] == "main");
  bool mismatch = false;
  for (const auto& c : plain["candidates"])
    if (c.value("route", "") == "canary-header") mismatch = c.value("outcome", "") == "matcher_mismatch";
  CHECK(mismatch);

  auto canary = explain("host=m.test&path=/&header=X-Env%3A%20canary");
  REQUIRE(canary.is_object());
  CHECK(canary["route"]["name"] == "canary-header");
  CHECK(canary["rule"] == "matchers");
  CHECK(explain("host=m.test&path=%2F%3Fbeta%3D1")["route"]["name"] == "canary-query");
  CHECK(explain("host=m.test&path=/api/x&method=POST")["route"]["name"] == "writes");
  auto split = explain("host=s.test&path=/");
  REQUIRE(split.is_object());
  CHECK(split["route"]["split"].size() == 2);
  CHECK(split["route"]["split"][1]["service"] == "canary");
}

TEST_CASE("route matcher labels: berth.match.*, berth.path_regex and berth.routes.NAME.match.* through Docker", "[docker_fake][route_match]") {
  Origin main{"LMAIN"}, canary{"LCANARY"};
  REQUIRE(main.ok());
  REQUIRE(canary.ok());
  auto container = [](uint64_t seed, const std::string& name, uint16_t port, std::map<std::string, std::string> extra) {
    return fake_docker::running_routed(seed, name, "l.test", port, std::move(extra));
  };
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(container(1, "web-main", main.port(), {}));
  engine.add(container(2, "web-canary", canary.port(), {{"berth.match.header.X-Env", "canary"}}));
  engine.add(container(3, "web-users", canary.port(), {{"berth.path_regex", "/users/[0-9]+"}}));
  engine.add(container(4, "web-bad", canary.port(), {{"berth.path_regex", "(unclosed"}}));
  engine.add(container(5, "web-debug", canary.port(), {{"berth.match.header.X-Debug", ""}, {"berth.match.methods", "GET,HEAD"}}));
  {
    // Only a named route, with its own matcher: berth.routes.NAME.match.query.*.
    fake_docker::Container named = container(6, "web-v2", canary.port(), {{"berth.routes.v2.host", "l.test"},
                                                                           {"berth.routes.v2.match.query.v", "2"}});
    named.labels.erase("berth.host");
    engine.add(named);
  }
  engine.start();

  Berth berth(config_head(2) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(berth.log_shows("event=docker_synced", 10s));
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "l.test").status == 200; }, 5s));
  REQUIRE(workers_caught_up(berth.admin_port()));  // the other worker too, not only the one that answered

  CHECK(origin_of(http_get(berth.port(), "/", "l.test")) == "LMAIN");
  CHECK(origin_of(http_get(berth.port(), "/", "l.test", {"X-Env: canary"})) == "LCANARY");
  CHECK(origin_of(http_get(berth.port(), "/users/7", "l.test")) == "LCANARY");
  CHECK(origin_of(http_get(berth.port(), "/users/x", "l.test")) == "LMAIN");
  CHECK(origin_of(http_get(berth.port(), "/", "l.test", {"X-Debug: 1"})) == "LCANARY");
  CHECK(origin_of(http_get(berth.port(), "/?v=2", "l.test")) == "LCANARY");
  CHECK(origin_of(http_get(berth.port(), "/?v=1", "l.test")) == "LMAIN");
  {
    Client c(berth.port());
    Response r = c.request(make_request("POST", "/", "l.test", {"X-Debug: 1"}, "body"));
    CHECK(origin_of(r) == "LMAIN");  // berth.match.methods=GET,HEAD
  }

  const std::string reason = rejected_reason(berth.admin_port(), "web-bad");
  CHECK(reason.find("berth.path_regex") != std::string::npos);
  CHECK(reason.find("invalid regular expression") != std::string::npos);
}
