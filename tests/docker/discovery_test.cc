// Docker discovery against a real (private) engine: routes follow `docker run/stop/rm`,
// health gating, several routes per container, compose grouping, rejected labels, the
// nginx-proxy and Traefik compatibility modes. All containers use host networking and
// listen on 127.0.0.1.
#include <catch2/catch.hpp>

#include <set>

#include "engine.h"

using namespace dk;
using it::Response;

namespace {

std::string source_of(const nlohmann::json& t, const std::string& address) {
  for (const auto& s : t["services"])
    for (const auto& e : s["endpoints"])
      if (e["address"] == address) return e["source"].get<std::string>();
  return {};
}

}  // namespace

TEST_CASE("docker: a route appears after docker run and goes after docker stop and docker rm", "[docker]") {
  engine();
  auto berth = start_berth("", "1500ms");
  Cleanup cleanup{{"dk-basic-a", "dk-basic-b"}};
  const uint16_t pa = fresh_port(), pb = fresh_port();
  WebOptions o;
  o.labels = {{"berth.enable", "true"}, {"berth.host", "basic.dk.test"}, {"berth.port", std::to_string(pa)}};
  std::string error;
  std::string id = run_web("dk-basic-a", pa, "basic-A", o, &error);
  REQUIRE_FALSE(id.empty());

  nlohmann::json t;
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "basic.dk.test") ==
                                                                       std::vector<std::string>{addr(pa)}; },
                      10s, &t));
  CHECK(source_of(t, addr(pa)) == "container:" + id.substr(0, 12) + "/dk-basic-a");
  CHECK(t["discovery"][0]["in_sync"] == true);
  Response r = get(berth->port(), "basic.dk.test");
  CHECK(r.status == 200);
  CHECK(r.body == "basic-A\n");
  CHECK(it::http_get(berth->admin_port(), "/readyz", "127.0.0.1").status == 200);

  // docker stop: the instance leaves at its kill event; the route answers 503 for the grace.
  auto stopped = docker({"stop", "-t", "5", "dk-basic-a"});
  REQUIRE(stopped.ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "basic.dk.test").empty(); }, 5s));
  r = get(berth->port(), "basic.dk.test");
  CHECK(r.status == 503);
  CHECK(r.header("retry-after").has_value());
  // ... then 404 once the grace period is over.
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return !has_route(j, "basic.dk.test"); }, 5s));
  CHECK(get(berth->port(), "basic.dk.test").status == 404);

  // docker start brings it back; docker rm -f takes it away again.
  REQUIRE(docker({"start", "dk-basic-a"}).ok());
  REQUIRE(wait_listening(pa));  // Berth routes at `start`, which comes before httpd listens
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return !endpoints_for(j, "basic.dk.test").empty(); }, 10s));
  CHECK(get(berth->port(), "basic.dk.test").body == "basic-A\n");
  REQUIRE(docker({"rm", "-f", "dk-basic-a"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "basic.dk.test").empty(); }, 5s));

  // A container without berth.enable is not routed (exposed_by_default is off).
  WebOptions quiet;
  quiet.labels = {{"berth.host", "quiet.dk.test"}, {"berth.port", std::to_string(pb)}};
  REQUIRE_FALSE(run_web("dk-basic-b", pb, "quiet", quiet).empty());
  it::wait_until([] { return false; }, 500ms);
  CHECK_FALSE(has_route(routes(berth->admin_port()), "quiet.dk.test"));
  CHECK(berth->running());
}

TEST_CASE("docker: HEALTHCHECK gates the instance: starting -> healthy -> unhealthy -> healthy", "[docker]") {
  engine();
  auto berth = start_berth("", "30s");
  Cleanup cleanup{{"dk-health"}};
  const uint16_t port = fresh_port();
  WebOptions o;
  o.labels = {{"berth.enable", "true"}, {"berth.host", "health.dk.test"}, {"berth.port", std::to_string(port)}};
  o.healthcheck = true;
  REQUIRE_FALSE(run_web("dk-health", port, "healthy-one", o).empty());

  // starting: the container already answers, but Berth does not route to it yet.
  REQUIRE(it::wait_until([&] { return it::http_get(port, "/", "x").status == 200; }, 5s));
  auto state = docker({"inspect", "-f", "{{.State.Health.Status}}", "dk-health"});
  if (state.out.find("starting") != std::string::npos) {
    CHECK_FALSE(has_route(routes(berth->admin_port()), "health.dk.test"));
    CHECK(get(berth->port(), "health.dk.test").status == 404);
  }
  // healthy
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return !endpoints_for(j, "health.dk.test").empty(); }, 10s));
  CHECK(get(berth->port(), "health.dk.test").body == "healthy-one\n");

  // unhealthy: the check fails once index.html is gone; the route stays, empty (503).
  REQUIRE(docker({"exec", "dk-health", "/bin/sh", "-c", "mv /www/index.html /www/away.html"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return has_route(j, "health.dk.test") && endpoints_for(j, "health.dk.test").empty(); }, 10s));
  Response r = get(berth->port(), "health.dk.test");
  CHECK(r.status == 503);
  CHECK(r.header("retry-after").has_value());

  // healthy again
  REQUIRE(docker({"exec", "dk-health", "/bin/sh", "-c", "mv /www/away.html /www/index.html"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return !endpoints_for(j, "health.dk.test").empty(); }, 10s));
  CHECK(get(berth->port(), "health.dk.test").body == "healthy-one\n");

  // pause removes, unpause restores after the next passing check.
  REQUIRE(docker({"pause", "dk-health"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "health.dk.test").empty(); }, 5s));
  REQUIRE(docker({"unpause", "dk-health"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return !endpoints_for(j, "health.dk.test").empty(); }, 10s));
  CHECK(berth->running());
}

TEST_CASE("docker: several routes per container, compose grouping, invalid labels isolated", "[docker]") {
  engine();
  auto berth = start_berth();
  Cleanup cleanup{{"dk-multi", "proj_web_1", "proj_web_2", "dk-bad", "dk-good"}};
  const uint16_t web = fresh_port(), api = fresh_port();
  WebOptions multi;
  multi.labels = {{"berth.enable", "true"},
                  {"berth.routes.site.host", "multi.dk.test"},
                  {"berth.routes.site.port", std::to_string(web)},
                  {"berth.routes.api.host", "multi.dk.test"},
                  {"berth.routes.api.path", "/api/"},
                  {"berth.routes.api.port", std::to_string(api)}};
  multi.extra_script = "mkdir -p /www2/api && echo api-side > /www2/api/index.html && httpd -p " + addr(api) + " -h /www2";
  REQUIRE_FALSE(run_web("dk-multi", web, "site-side", multi).empty());

  const uint16_t c1 = fresh_port(), c2 = fresh_port();
  for (auto [name, port] : {std::pair{"proj_web_1", c1}, std::pair{"proj_web_2", c2}}) {
    WebOptions compose;
    compose.labels = {{"berth.enable", "true"}, {"berth.host", "compose.dk.test"}, {"berth.port", std::to_string(port)},
                      {"com.docker.compose.project", "proj"}, {"com.docker.compose.service", "web"}};
    REQUIRE_FALSE(run_web(name, port, name, compose).empty());
  }
  const uint16_t bad = fresh_port(), good = fresh_port();
  WebOptions bad_labels;
  bad_labels.labels = {{"berth.enable", "true"}, {"berth.host", "bad.dk.test"}, {"berth.port", "not-a-port"}};
  REQUIRE_FALSE(run_web("dk-bad", bad, "bad", bad_labels).empty());
  WebOptions good_labels;
  good_labels.labels = {{"berth.enable", "true"}, {"berth.host", "good.dk.test"}, {"berth.port", std::to_string(good)}};
  REQUIRE_FALSE(run_web("dk-good", good, "good", good_labels).empty());

  nlohmann::json t;
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "multi.dk.test").size() == 1 && endpoints_for(j, "multi.dk.test", "/api/").size() == 1 &&
           endpoints_for(j, "compose.dk.test").size() == 2 && endpoints_for(j, "good.dk.test").size() == 1 &&
           j["rejected"].size() == 1; }, 15s, &t));
  INFO(t.dump(1));
  // Several routes, each to its own port.
  CHECK(get(berth->port(), "multi.dk.test").body == "site-side\n");
  CHECK(get(berth->port(), "multi.dk.test", "/api/").body == "api-side\n");
  // One service "proj-web" with both compose instances, balanced.
  for (const auto& s : t["services"])
    if (s["name"] == "proj-web") CHECK(s["endpoints"].size() == 2);
  std::set<std::string> seen;
  for (int i = 0; i < 10; ++i) seen.insert(get(berth->port(), "compose.dk.test").body);
  CHECK(seen == std::set<std::string>{"proj_web_1\n", "proj_web_2\n"});
  // The bad container is rejected with the label named; the good one is unaffected.
  CHECK(t["rejected"][0]["container"].get<std::string>().find("/dk-bad") != std::string::npos);
  CHECK(t["rejected"][0]["reason"].get<std::string>().find("berth.port") != std::string::npos);
  CHECK_FALSE(has_route(t, "bad.dk.test"));
  CHECK(get(berth->port(), "good.dk.test").body == "good\n");
  CHECK(berth->log().find("event=docker_container_rejected container=") != std::string::npos);
  CHECK(berth->log().find("dk-bad reason=\"berth.port=") != std::string::npos);
}

TEST_CASE("docker: nginx-proxy and Traefik compatibility labels", "[docker]") {
  engine();
  auto berth = start_berth("compat: {nginx_proxy: true, traefik: true}");
  Cleanup cleanup{{"dk-nginx", "dk-traefik"}};
  const uint16_t pn = fresh_port(), pt = fresh_port();
  WebOptions nginx;
  nginx.env = {"VIRTUAL_HOST=nginx.dk.test,alias.dk.test", "VIRTUAL_PORT=" + std::to_string(pn)};
  REQUIRE_FALSE(run_web("dk-nginx", pn, "from-nginx-proxy", nginx).empty());
  WebOptions traefik;
  traefik.labels = {{"traefik.enable", "true"},
                    {"traefik.http.routers.tr.rule", "Host(`traefik.dk.test`) && PathPrefix(`/t/`)"},
                    {"traefik.http.services.tsvc.loadbalancer.server.port", std::to_string(pt)}};
  traefik.extra_script = "mkdir -p /www/t && echo from-traefik > /www/t/index.html";
  REQUIRE_FALSE(run_web("dk-traefik", pt, "root", traefik).empty());

  nlohmann::json t;
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "nginx.dk.test").size() == 1 && endpoints_for(j, "alias.dk.test").size() == 1 &&
           endpoints_for(j, "traefik.dk.test", "/t/").size() == 1; }, 15s, &t));
  INFO(t.dump(1));
  CHECK(get(berth->port(), "nginx.dk.test").body == "from-nginx-proxy\n");
  CHECK(get(berth->port(), "alias.dk.test").body == "from-nginx-proxy\n");
  CHECK(get(berth->port(), "traefik.dk.test", "/t/").body == "from-traefik\n");
  CHECK(get(berth->port(), "traefik.dk.test", "/").status == 404);
  bool tsvc = false;
  for (const auto& s : t["services"]) tsvc = tsvc || s["name"] == "tsvc";
  CHECK(tsvc);
}
