// berth.strip_prefix, berth.add_prefix and berth.redirect.* labels through the real binary, with
// containers from a fake Docker engine (bench/fake_docker_engine.h); a bad value rejects the
// container with the reason.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

TEST_CASE("rewrite labels: strip, add and redirect through Berth; bad values reject", "[docker_fake][rewrite]") {
  Origin origin{"RWL"};
  REQUIRE(origin.ok());
  const uint16_t port = origin.port();

  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(fake_docker::running_routed(1, "strip-1", "strip.labels.test", port,
                     {{"berth.path", "/api"}, {"berth.strip_prefix", "true"}, {"berth.add_prefix", "/v1"}}));
  engine.add(fake_docker::running_routed(2, "given-1", "given.labels.test", port, {{"berth.strip_prefix", "/svc"}}));
  engine.add(fake_docker::running_routed(3, "moved-1", "moved.labels.test", port,
                     {{"berth.redirect.to", "https://www.example.com{uri}"}, {"berth.redirect.code", "301"}}));
  engine.add(fake_docker::running_routed(4, "badcode-1", "badcode.labels.test", port,
                     {{"berth.redirect.to", "/x"}, {"berth.redirect.code", "200"}}));
  engine.add(fake_docker::running_routed(5, "badstrip-1", "badstrip.labels.test", port, {{"berth.strip_prefix", "api"}}));
  engine.add(fake_docker::running_routed(6, "both-1", "both.labels.test", port,
                     {{"berth.redirect.to", "/x"}, {"berth.strip_prefix", "true"}}));
  engine.start();

  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(berth.log_shows("event=docker_synced", 10s));
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/svc", "given.labels.test").status == 200; }, 5s));

  Response r = http_get(berth.port(), "/api/echo?x=1", "strip.labels.test");
  INFO(r.raw_head << r.body);
  CHECK(r.body == "origin=RWL path=/v1/echo\n");
  r = http_get(berth.port(), "/svc/users", "given.labels.test");
  CHECK(r.body == "origin=RWL path=/users\n");

  const std::string m = marker("RWL");
  r = http_get(berth.port(), "/a?" + m, "moved.labels.test");
  CHECK(r.status == 301);
  CHECK(r.header("location") == std::optional<std::string>("https://www.example.com/a?" + m));
  CHECK_FALSE(r.header("x-berth-error").has_value());
  CHECK(origin.seen(m) == 0);

  CHECK(rejected_reason(berth.admin_port(), "badcode-1").find("berth.redirect.code=\"200\" is not 301, 302, 303, 307 or 308") !=
        std::string::npos);
  CHECK(rejected_reason(berth.admin_port(), "badstrip-1").find("berth.strip_prefix=\"api\"") != std::string::npos);
  CHECK(rejected_reason(berth.admin_port(), "both-1").find("a redirect cannot also rewrite the path") != std::string::npos);
  CHECK(http_get(berth.port(), "/", "badcode.labels.test").status == 404);
  CHECK(berth.running());
}

// Traefik's redirectscheme keeps its codes: 302 (permanent=true: 301) for GET and HEAD, and the
// method-keeping 307 (308) for other methods; berth.tls.redirect stays 308 for every method.
TEST_CASE("rewrite labels: Traefik redirectscheme answers with its own codes, berth.tls.redirect with 308",
          "[docker_fake][rewrite]") {
  Origin origin{"RSC"};
  REQUIRE(origin.ok());
  const uint16_t port = origin.port();
  auto traefik = [&](uint64_t seed, const std::string& name, const std::string& host, const char* permanent) {
    std::map<std::string, std::string> labels = {
        {"traefik.http.routers.r.rule", "Host(`" + host + "`)"},
        {"traefik.http.routers.r.middlewares", "https@docker"},
        {"traefik.http.services.s.loadbalancer.server.port", std::to_string(port)},
        {"traefik.http.middlewares.https.redirectscheme.scheme", "https"}};
    if (permanent) labels["traefik.http.middlewares.https.redirectscheme.permanent"] = permanent;
    return fake_docker::running_container(seed, name, port, std::move(labels));
  };
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(traefik(1, "temp-1", "temp.traefik.test", nullptr));
  engine.add(traefik(2, "perm-1", "perm.traefik.test", "true"));
  engine.add(traefik(3, "badperm-1", "badperm.traefik.test", "maybe"));
  engine.add(fake_docker::running_routed(4, "berth-1", "berth.labels.test", port, {{"berth.tls.redirect", "true"}}));
  engine.start();

  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") +
              "\", compat: {traefik: true}}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "perm.traefik.test").status == 301; }, 10s));
  INFO(berth.log());

  auto codes = [&](const std::string& host) {
    Response get = http_get(berth.port(), "/a?b=1", host);
    CHECK(get.header("location") == std::optional<std::string>("https://" + host + "/a?b=1"));
    Client c(berth.port());
    Response post = c.request("POST /form HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n");
    CHECK(post.header("location") == std::optional<std::string>("https://" + host + "/form"));
    return std::pair<int, int>{get.status, post.status};
  };
  CHECK(codes("temp.traefik.test") == std::pair<int, int>{302, 307});
  CHECK(codes("perm.traefik.test") == std::pair<int, int>{301, 308});
  CHECK(codes("berth.labels.test") == std::pair<int, int>{308, 308});
  CHECK(rejected_reason(berth.admin_port(), "badperm-1").find("redirectscheme.permanent") != std::string::npos);
  CHECK(berth.running());
}
