// berth.strip_prefix, berth.add_prefix and berth.redirect.* labels through the real binary, with
// containers from a fake Docker engine (bench/fake_docker_engine.h); a bad value rejects the
// container with the reason.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

fake_docker::Container running(uint64_t seed, const std::string& name, const std::string& host, uint16_t port,
                               std::map<std::string, std::string> labels) {
  fake_docker::Container c;
  c.id = fake_docker::hex_id(seed);
  c.name = name;
  c.port = port;
  c.labels = {{"berth.enable", "true"}, {"berth.host", host}, {"berth.port", std::to_string(port)}};
  for (auto& [k, v] : labels) c.labels[k] = v;
  c.running = true;
  c.created_ns = c.started_ns = pb::realtime_ns();
  return c;
}

std::string rejected_reason(Berth& berth, const std::string& name) {
  auto j = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  if (!j.is_object()) return "<no /api/routes>";
  for (const auto& r : j["rejected"])
    if (r.value("container", "").find(name) != std::string::npos) return r.value("reason", "");
  return "<not rejected>";
}

}  // namespace

TEST_CASE("rewrite labels: strip, add and redirect through Berth; bad values reject", "[docker_fake][rewrite]") {
  Origin origin{"RWL"};
  REQUIRE(origin.ok());
  const uint16_t port = origin.port();

  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(running(1, "strip-1", "strip.labels.test", port,
                     {{"berth.path", "/api"}, {"berth.strip_prefix", "true"}, {"berth.add_prefix", "/v1"}}));
  engine.add(running(2, "given-1", "given.labels.test", port, {{"berth.strip_prefix", "/svc"}}));
  engine.add(running(3, "moved-1", "moved.labels.test", port,
                     {{"berth.redirect.to", "https://www.example.com{uri}"}, {"berth.redirect.code", "301"}}));
  engine.add(running(4, "badcode-1", "badcode.labels.test", port,
                     {{"berth.redirect.to", "/x"}, {"berth.redirect.code", "200"}}));
  engine.add(running(5, "badstrip-1", "badstrip.labels.test", port, {{"berth.strip_prefix", "api"}}));
  engine.add(running(6, "both-1", "both.labels.test", port,
                     {{"berth.redirect.to", "/x"}, {"berth.strip_prefix", "true"}}));
  engine.start();

  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return berth.log().find("event=docker_synced") != std::string::npos; }, 10s));
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

  CHECK(rejected_reason(berth, "badcode-1").find("berth.redirect.code=\"200\" is not 301, 302, 303, 307 or 308") !=
        std::string::npos);
  CHECK(rejected_reason(berth, "badstrip-1").find("berth.strip_prefix=\"api\"") != std::string::npos);
  CHECK(rejected_reason(berth, "both-1").find("a redirect cannot also rewrite the path") != std::string::npos);
  CHECK(http_get(berth.port(), "/", "badcode.labels.test").status == 404);
  CHECK(berth.running());
}
