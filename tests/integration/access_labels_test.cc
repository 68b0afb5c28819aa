// berth.access.* labels through the real binary, with containers from a fake Docker engine
// (bench/fake_docker_engine.h): each label allowed and denied, and the rule that files a label
// names lie under docker.access_files_dir.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

// "alice" / "opensesame", SHA-512 crypt.
constexpr const char* kHtpasswd =
    "alice:$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0\n";

}  // namespace

TEST_CASE("access labels: each label allows and denies through Berth", "[docker_fake][access]") {
  TempDir files;  // docker.access_files_dir
  TempDir other;  // a directory labels may not use
  REQUIRE(write_file(files.file("team.htpasswd"), kHtpasswd));
  REQUIRE(write_file(other.file("stolen.htpasswd"), kHtpasswd));
  Origin origin{"LBL"}, auth{"AUTH"};
  REQUIRE(origin.ok());
  REQUIRE(auth.ok());
  const uint16_t port = origin.port();
  const uint16_t dead = unused_port();

  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(fake_docker::running_routed(1, "allow-1", "allow.labels.test", port, {{"berth.access.allow", "10.0.0.0/8, ::1"}}));
  engine.add(fake_docker::running_routed(2, "allow-2", "local.labels.test", port, {{"berth.access.allow", "127.0.0.1"}}));
  engine.add(fake_docker::running_routed(3, "deny-1", "deny.labels.test", port, {{"berth.access.deny", "127.0.0.0/8"}}));
  engine.add(fake_docker::running_routed(4, "methods-1", "methods.labels.test", port, {{"berth.access.methods", "GET, HEAD"}}));
  engine.add(fake_docker::running_routed(5, "rate-1", "rate.labels.test", port, {{"berth.access.rate_limit", "1/s burst=2"}}));
  engine.add(fake_docker::running_routed(6, "auth-1", "auth.labels.test", port,
                     {{"berth.access.basic_auth", files.file("team.htpasswd") + " realm=team"}}));
  engine.add(fake_docker::running_routed(7, "fwd-1", "fwd.labels.test", port,
                     {{"berth.access.forward_auth", "http://" + auth.address() + "/auth copy_headers=X-User"}}));
  engine.add(fake_docker::running_routed(8, "fwd-down-1", "fwd-down.labels.test", port,
                     {{"berth.access.forward_auth", "http://127.0.0.1:" + std::to_string(dead) + "/auth"}}));
  engine.add(fake_docker::running_routed(9, "outside-1", "outside.labels.test", port,
                     {{"berth.access.basic_auth", other.file("stolen.htpasswd")}}));
  engine.add(fake_docker::running_routed(10, "escape-1", "escape.labels.test", port,
                     {{"berth.access.basic_auth", files.path() + "/../" + other.path().substr(other.path().rfind('/') + 1) +
                                                      "/stolen.htpasswd"}}));
  engine.start();

  Berth berth(config_head(2) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") +
              "\", access_files_dir: \"" + files.path() + "\", forward_auth_addresses: [\"" + auth.address() +
              "\", \"127.0.0.1:" + std::to_string(dead) + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(berth.log_shows("event=docker_synced", 10s));
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "methods.labels.test").status == 200; }, 5s));
  REQUIRE(workers_caught_up(berth.admin_port()));  // the other worker too, not only the one that answered

  const std::string m = marker("LBL");
  // allow / deny
  check_berth_error(http_get(berth.port(), "/x?" + m, "allow.labels.test"), 403, "forbidden-address");
  CHECK(http_get(berth.port(), "/x", "local.labels.test").status == 200);
  check_berth_error(http_get(berth.port(), "/x?" + m, "deny.labels.test"), 403, "forbidden-address");
  // methods
  {
    Client c(berth.port());
    Response r = c.request(make_request("POST", "/x?" + m, "methods.labels.test", {}, "body"));
    check_berth_error(r, 405, "method-not-allowed");
    CHECK(r.header("allow") == std::optional<std::string>("GET, HEAD"));
  }
  // rate_limit: a burst of 2 at 1/s
  CHECK(http_get(berth.port(), "/x", "rate.labels.test").status == 200);
  CHECK(http_get(berth.port(), "/x", "rate.labels.test").status == 200);
  check_berth_error(http_get(berth.port(), "/x?" + m, "rate.labels.test"), 429, "rate-limited");
  // basic_auth, from a file under access_files_dir
  Response r = http_get(berth.port(), "/x?" + m, "auth.labels.test");
  check_berth_error(r, 401, "auth-required");
  CHECK(r.header("www-authenticate") == std::optional<std::string>("Basic realm=\"team\", charset=\"UTF-8\""));
  check_berth_error(http_get(berth.port(), "/x?" + m, "auth.labels.test", {"Authorization: Basic YWxpY2U6d3Jvbmc="}),
                    401, "auth-required");  // alice:wrong
  CHECK(http_get(berth.port(), "/x", "auth.labels.test", {"Authorization: Basic YWxpY2U6b3BlbnNlc2FtZQ=="}).status ==
        200);  // alice:opensesame
  // forward_auth: the service's refusal, its approval, and the service down
  r = http_get(berth.port(), "/x?" + m, "fwd.labels.test");
  CHECK(r.status == 401);
  CHECK(r.header("x-berth-error") == std::optional<std::string>("forward-auth-denied"));
  CHECK(http_get(berth.port(), "/x", "fwd.labels.test", {"Authorization: Bearer good"}).status == 200);
  check_berth_error(http_get(berth.port(), "/x?" + m, "fwd-down.labels.test"), 503, "forward-auth-unavailable");
  CHECK(origin.seen(m) == 0);  // nothing refused reached the instance

  // Files outside access_files_dir: the container is rejected with the reason, and not routed.
  CHECK(rejected_reason(berth.admin_port(), "outside-1").find("is not under docker.access_files_dir (" + files.path() + ")") !=
        std::string::npos);
  CHECK(rejected_reason(berth.admin_port(), "escape-1").find("'..' part") != std::string::npos);
  CHECK(http_get(berth.port(), "/x", "outside.labels.test").status == 404);
  CHECK(http_get(berth.port(), "/x", "escape.labels.test").status == 404);
  CHECK(berth.running());
}

TEST_CASE("access labels: without docker.access_files_dir a label may not name a file, nor an auth service without "
          "docker.forward_auth_addresses",
          "[docker_fake][access]") {
  TempDir files;
  REQUIRE(write_file(files.file("team.htpasswd"), kHtpasswd));
  Origin origin{"LBN"};
  REQUIRE(origin.ok());
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(fake_docker::running_routed(1, "auth-1", "auth.labels.test", origin.port(),
                     {{"berth.access.basic_auth", files.file("team.htpasswd")}}));
  engine.add(fake_docker::running_routed(2, "plain-1", "plain.labels.test", origin.port(), {{"berth.access.allow", "127.0.0.1"}}));
  // Berth would send every request's check there, with the client's headers.
  engine.add(fake_docker::running_routed(3, "fwd-1", "fwd.labels.test", origin.port(),
                     {{"berth.access.forward_auth", "http://127.0.0.1:9/api/routes"}}));
  engine.start();
  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "plain.labels.test").status == 200; }, 10s));
  CHECK(rejected_reason(berth.admin_port(), "auth-1").find("labels may not name files: docker.access_files_dir is not set") !=
        std::string::npos);
  CHECK(http_get(berth.port(), "/", "auth.labels.test").status == 404);
  CHECK(rejected_reason(berth.admin_port(), "fwd-1").find("docker.forward_auth_addresses is not set") != std::string::npos);
  CHECK(http_get(berth.port(), "/", "fwd.labels.test").status == 404);
}

// Traefik compatibility: the access and header middlewares a router names act like berth.access.*
// and the route's header rules.
TEST_CASE("access labels: Traefik ipallowlist, basicauth, ratelimit and headers middlewares", "[docker_fake][access]") {
  Origin origin{"TFK"};
  REQUIRE(origin.ok());
  const uint16_t port = origin.port();
  auto traefik = [&](uint64_t seed, const std::string& name, const std::string& host,
                     std::map<std::string, std::string> middlewares) {
    std::map<std::string, std::string> labels = {
        {"traefik.http.routers.r.rule", "Host(`" + host + "`)"},
        {"traefik.http.routers.r.middlewares", "m@docker"},
        {"traefik.http.services.s.loadbalancer.server.port", std::to_string(port)}};
    for (auto& [k, v] : middlewares) labels["traefik.http.middlewares.m." + k] = v;
    return fake_docker::running_container(seed, name, port, std::move(labels));
  };
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(traefik(1, "tf-allow-1", "allow.traefik.test", {{"ipallowlist.sourcerange", "10.0.0.0/8"}}));
  engine.add(traefik(2, "tf-local-1", "local.traefik.test", {{"ipallowlist.sourcerange", "127.0.0.1/32"}}));
  engine.add(traefik(3, "tf-auth-1", "auth.traefik.test",
                     {{"basicauth.users", std::string(kHtpasswd).substr(0, std::string(kHtpasswd).size() - 1)}}));
  engine.add(traefik(4, "tf-rate-1", "rate.traefik.test", {{"ratelimit.average", "1"}, {"ratelimit.burst", "2"}}));
  engine.add(traefik(5, "tf-hdr-1", "hdr.traefik.test",
                     {{"headers.customRequestHeaders.X-Team", "blue"},
                      {"headers.customRequestHeaders.X-Secret", ""},
                      {"headers.customResponseHeaders.X-Served-By", "berth"}}));
  engine.start();

  Berth berth(config_head(2) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") +
              "\", compat: {traefik: true}}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "local.traefik.test").status == 200; }, 10s));
  REQUIRE(workers_caught_up(berth.admin_port()));
  INFO(berth.log());

  const std::string m = marker("TFK");
  check_berth_error(http_get(berth.port(), "/x?" + m, "allow.traefik.test"), 403, "forbidden-address");
  check_berth_error(http_get(berth.port(), "/x?" + m, "auth.traefik.test"), 401, "auth-required");
  CHECK(http_get(berth.port(), "/x", "auth.traefik.test", {"Authorization: Basic YWxpY2U6b3BlbnNlc2FtZQ=="}).status ==
        200);  // alice:opensesame
  CHECK(http_get(berth.port(), "/x", "rate.traefik.test").status == 200);
  CHECK(http_get(berth.port(), "/x", "rate.traefik.test").status == 200);
  check_berth_error(http_get(berth.port(), "/x?" + m, "rate.traefik.test"), 429, "rate-limited");
  CHECK(origin.seen(m) == 0);

  Response r = http_get(berth.port(), "/echo", "hdr.traefik.test", {"X-Secret: hunter2"});
  REQUIRE(r.status == 200);
  CHECK(r.header("x-served-by") == std::optional<std::string>("berth"));
  bool team = false, secret = false;
  for (const auto& [name, value] : parse_echo_headers(r.body)) {
    team = team || (name == "x-team" && value == "blue");
    secret = secret || name == "x-secret";
  }
  CHECK(team);
  CHECK_FALSE(secret);
}
