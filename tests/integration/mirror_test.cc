// Request mirroring (routes[].mirror) through the real binary: copies reach the shadow origin
// as they went to the primary (method, target, headers, body), the client's answer is the
// primary's whatever the shadow does, and sent / dropped / skipped copies are counted in
// /metrics (berth_mirror_requests_total).
#include <catch2/catch.hpp>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

std::string origin_of(const Response& r) { return r.header("x-origin-name").value_or("<none>"); }

// One worker: one mirror accumulator per route, so a percent is exact over a run.
struct MirrorEnv {
  Origin primary{"PRIMARY"}, shadow{"SHADOW"};
  uint16_t dead_port = unused_port();
  std::unique_ptr<Berth> berth;
  // extra: more top-level YAML (an access_log section, say).
  explicit MirrorEnv(const std::string& extra = "", const std::string& timeouts = "upstream_response: 30s") {
    REQUIRE(primary.ok());
    REQUIRE(shadow.ok());
    berth = std::make_unique<Berth>(
        config_head(1, timeouts) + extra +
        "routes:\n"
        "  - {name: all, host: all.test, service: primary, mirror: {service: shadow}}\n"
        "  - {name: half, host: half.test, service: primary, mirror: {service: shadow, percent: 50}}\n"
        "  - {name: small, host: small.test, service: primary, mirror: {service: shadow, max_body: 1KiB}}\n"
        "  - {name: down, host: down.test, service: primary, mirror: {service: dead}}\n"
        "  - {name: plain, host: plain.test, service: primary}\n"
        "services:\n"
        "  primary: {endpoints: [\"" + primary.address() + "\"]}\n"
        "  shadow: {endpoints: [\"" + shadow.address() + "\"]}\n"
        "  dead: {endpoints: [\"127.0.0.1:" + std::to_string(dead_port) + "\"]}\n");
    INFO(berth->error());
    REQUIRE(berth->ok());
  }
  ~MirrorEnv() {
    if (berth) CHECK(berth->running());
  }
  // berth_mirror_requests_total{route, result} (-1: no such series).
  double mirrored(const std::string& route, const std::string& result) {
    std::istringstream in(http_get(berth->admin_port(), "/metrics", "127.0.0.1").body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("berth_mirror_requests_total{", 0) != 0) continue;
      if (line.find("route=\"" + route + "\"") == std::string::npos) continue;
      if (line.find("result=\"" + result + "\"") == std::string::npos) continue;
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
    return -1;
  }
  // The head and body the origin recorded for the request carrying `mark` ("" when none).
  static std::string recorded(Origin& o, const std::string& mark) {
    Response r = http_get(o.port(), "/__recorded?marker=" + mark, "origin");
    return r.status == 200 ? r.body : std::string();
  }
};

}  // namespace

TEST_CASE("mirror: at 100 % the shadow gets the same request, and the client the primary's answer", "[mirror]") {
  MirrorEnv env;
  const uint16_t port = env.berth->port();
  const std::string mark = marker("MIR");
  const std::string body = "hello, shadow " + mark;
  Client c(port);
  Response r = c.request(make_request("POST", "/echo_body?m=" + mark, "all.test",
                                      {"X-Record-Body: 1", "X-Custom: kept", "Content-Type: text/plain"}, body));
  REQUIRE(r.status == 200);
  CHECK(origin_of(r) == "PRIMARY");
  CHECK(r.body == body);

  std::string at_shadow;
  REQUIRE(wait_until([&] { return !(at_shadow = MirrorEnv::recorded(env.shadow, mark)).empty(); }, 5s));
  const std::string at_primary = MirrorEnv::recorded(env.primary, mark);
  REQUIRE_FALSE(at_primary.empty());
  // Method, target, every header (Host, X-Forwarded-*, the request id) and the body: byte for byte.
  CHECK(at_shadow == at_primary);
  CHECK(at_shadow.rfind("POST /echo_body?m=" + mark + " HTTP/1.1\r\n", 0) == 0);
  CHECK(at_shadow.find("\r\nHost: all.test\r\n") != std::string::npos);
  CHECK(at_shadow.find("\r\nX-Custom: kept\r\n") != std::string::npos);
  CHECK(at_shadow.size() >= body.size());
  CHECK(at_shadow.substr(at_shadow.size() - body.size()) == body);

  // A chunked body: the shadow gets the same decoded body.
  const std::string chunked_mark = marker("MIRC");
  std::string raw = "POST /echo_body?m=" + chunked_mark +
                    " HTTP/1.1\r\nHost: all.test\r\nX-Record-Body: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
  r = c.request(raw);
  REQUIRE(r.status == 200);
  CHECK(r.body == "hello, world");
  REQUIRE(wait_until([&] { return !(at_shadow = MirrorEnv::recorded(env.shadow, chunked_mark)).empty(); }, 5s));
  CHECK(at_shadow.find("\r\n\r\nhello, world") != std::string::npos);

  // Every request is copied: 20 GETs, 20 at each origin.
  const std::string many = marker("MIRN");
  for (int i = 0; i < 20; ++i) REQUIRE(c.get("/x?m=" + many, "all.test").status == 200);
  CHECK(env.primary.seen(many) == 20);
  CHECK(wait_until([&] { return env.shadow.seen(many) == 20; }, 5s));
  CHECK(wait_until([&] { return env.mirrored("all", "sent") == 22; }, 5s));
  CHECK(env.mirrored("all", "dropped") == 0);

  // A route without a mirror sends nothing to the shadow.
  const std::string plain = marker("MIRP");
  REQUIRE(c.get("/x?m=" + plain, "plain.test").status == 200);
  CHECK(env.primary.seen(plain) == 1);
  CHECK(env.shadow.seen(plain) == 0);

  auto routes = nlohmann::json::parse(http_get(env.berth->admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(routes.is_object());
  bool shown = false;
  for (const auto& route : routes["routes"]) {
    if (route.value("name", "") != "half") continue;
    shown = true;
    CHECK(route["mirror"]["service"] == "shadow");
    CHECK(route["mirror"]["percent"] == 50.0);
  }
  CHECK(shown);
  auto status = nlohmann::json::parse(http_get(env.berth->admin_port(), "/api/status", "127.0.0.1").body, nullptr, false);
  REQUIRE(status.is_object());
  shown = false;
  for (const auto& route : status["routes"])
    if (route.value("name", "") == "all") shown = route["mirror"]["service"] == "shadow" && route["mirror"]["percent"] == 100.0;
  CHECK(shown);
}

TEST_CASE("mirror: a failing or silent shadow changes nothing for the client", "[mirror]") {
  MirrorEnv env;
  Client c(env.berth->port(), 10s);
  const std::string failing = marker("MIRF");
  for (int i = 0; i < 5; ++i) {
    Response r = c.get("/x?fail=SHADOW:500&m=" + failing, "all.test");
    CHECK(r.status == 200);
    CHECK(origin_of(r) == "PRIMARY");
  }
  CHECK(wait_until([&] { return env.shadow.seen(failing) == 5; }, 5s));
  CHECK(wait_until([&] { return env.mirrored("all", "sent") == 5; }, 5s));  // answered (500), discarded

  // The shadow waits 20 s before answering: the client does not.
  const std::string slow = marker("MIRS");
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    Response r = c.get("/x?slow=SHADOW:20000&m=" + slow, "all.test");
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.status == 200);
    CHECK(origin_of(r) == "PRIMARY");
    CHECK(took < 2s);
  }
  CHECK(wait_until([&] { return env.shadow.seen(slow) == 3; }, 5s));
}

TEST_CASE("mirror: at most 64 copies are in flight per worker, the rest dropped", "[mirror]") {
  MirrorEnv env;
  Client c(env.berth->port());
  const std::string mark = marker("MIRQ");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 70; ++i) {
    Response r = c.get("/x?slow=SHADOW:20000&m=" + mark, "all.test");
    REQUIRE(r.status == 200);
    CHECK(origin_of(r) == "PRIMARY");
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // the client never waited for the shadow
  CHECK(wait_until([&] { return env.mirrored("all", "dropped") == 6; }, 5s));
  CHECK(wait_until([&] { return env.shadow.seen(mark) == 64; }, 5s));
  CHECK(env.mirrored("all", "sent") == 0);  // all 64 still waiting
}

TEST_CASE("mirror: a shadow that streams its answer slowly holds a copy's slot for upstream_response at most",
          "[mirror]") {
  // Each byte restarts the connection's own timer: a shadow sending one every 200 ms (an event
  // stream, a slow download) would hold the slot for its whole answer, and 64 of them would stop
  // mirroring on every route of the worker. The copy is dropped once upstream_response has passed.
  MirrorEnv env("", "upstream_response: 1s");
  const std::string mark = marker("MIRD");
  const auto t0 = std::chrono::steady_clock::now();
  Response r = http_get(env.berth->port(), "/x?size=40&drip=SHADOW:200&m=" + mark, "all.test");  // 8 s from the shadow
  CHECK(r.status == 200);
  CHECK(origin_of(r) == "PRIMARY");
  CHECK(r.body.size() == 40);
  CHECK(wait_until([&] { return env.shadow.seen(mark) == 1; }, 5s));
  CHECK(wait_until([&] { return env.mirrored("all", "dropped") == 1; }, 5s, 20ms));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(took < 4.0);  // not the 8 s of the whole answer
  CHECK(env.mirrored("all", "sent") <= 0);
}

TEST_CASE("mirror: the access log has the client's requests only, not the copies", "[mirror]") {
  TempDir dir;
  const std::string path = dir.file("access.log");
  MirrorEnv env("access_log: {format: json, path: \"" + path + "\"}\n");
  Client c(env.berth->port());
  const std::string mark = marker("MIRA");
  for (int i = 0; i < 5; ++i) REQUIRE(c.get("/x?m=" + mark, "all.test").status == 200);
  REQUIRE(wait_until([&] { return env.shadow.seen(mark) == 5; }, 5s));
  REQUIRE(wait_until([&] { return env.mirrored("all", "sent") == 5; }, 5s));
  auto lines = [&] {
    size_t n = 0;
    for (char ch : read_file(path)) n += ch == '\n';
    return n;
  };
  CHECK(wait_until([&] { return lines() == 5; }, 5s));
  std::this_thread::sleep_for(300ms);  // nothing more comes
  CHECK(lines() == 5);
}

TEST_CASE("mirror: a shadow nobody listens for is dropped and counted", "[mirror]") {
  MirrorEnv env;
  Client c(env.berth->port());
  const std::string mark = marker("MIRD");
  for (int i = 0; i < 10; ++i) {
    Response r = c.request(make_request("POST", "/upload?m=" + mark, "down.test", {}, "some body"));
    CHECK(r.status == 200);
    CHECK(origin_of(r) == "PRIMARY");
  }
  CHECK(env.primary.seen(mark) == 10);
  CHECK(wait_until([&] { return env.mirrored("down", "dropped") == 10; }, 5s));
  CHECK(env.mirrored("down", "sent") == 0);
}

TEST_CASE("mirror: percent 50 copies exactly every other request of a worker", "[mirror]") {
  MirrorEnv env;
  Client c(env.berth->port());
  const std::string mark = marker("MIRH");
  for (int i = 0; i < 200; ++i) REQUIRE(c.get("/x?m=" + mark, "half.test").status == 200);
  CHECK(env.primary.seen(mark) == 200);
  // One worker, counter-based: exactly 100 (the 2nd, 4th, ...).
  CHECK(wait_until([&] { return env.mirrored("half", "sent") == 100; }, 5s));
  CHECK(env.shadow.seen(mark) == 100);
}

TEST_CASE("mirror: a body over mirror.max_body is served but not copied", "[mirror]") {
  MirrorEnv env;
  Client c(env.berth->port());
  const std::string big = marker("MIRB");
  Response r = c.request(make_request("POST", "/upload?m=" + big, "small.test", {}, std::string(2048, 'x')));
  CHECK(r.status == 200);
  CHECK(r.body.rfind("bytes=2048 ", 0) == 0);
  const std::string big_chunked = marker("MIRK");
  std::string raw = "POST /upload?m=" + big_chunked +
                    " HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "600\r\n" + std::string(0x600, 'y') + "\r\n0\r\n\r\n";
  r = c.request(raw);
  CHECK(r.status == 200);
  CHECK(r.body.rfind("bytes=1536 ", 0) == 0);
  const std::string fits = marker("MIRS");
  r = c.request(make_request("POST", "/upload?m=" + fits, "small.test", {}, std::string(512, 'z')));
  CHECK(r.status == 200);
  CHECK(wait_until([&] { return env.shadow.seen(fits) == 1; }, 5s));
  CHECK(env.shadow.seen(big) == 0);
  CHECK(env.shadow.seen(big_chunked) == 0);
  CHECK(env.primary.seen(big) == 1);
  CHECK(env.primary.seen(big_chunked) == 1);
  CHECK(wait_until([&] { return env.mirrored("small", "sent") == 1; }, 5s));
  CHECK(env.mirrored("small", "skipped") == 2);
}

TEST_CASE("mirror labels: berth.mirror.service names a discovered shadow service", "[docker_fake][mirror]") {
  Origin primary{"LPRIMARY"}, shadow{"LSHADOW"};
  REQUIRE(primary.ok());
  REQUIRE(shadow.ok());
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.add(fake_docker::running_routed(1, "web-main", "m.test", primary.port(),
                                         {{"berth.service", "web"}, {"berth.mirror.service", "web-next"},
                                          {"berth.mirror.percent", "100"}}));
  engine.add(fake_docker::running_routed(2, "web-next", "next.test", shadow.port(), {{"berth.service", "web-next"}}));
  engine.start();

  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "m.test").status == 200; }, 10s));

  const std::string mark = marker("MIRL");
  Response r = http_get(berth.port(), "/x?m=" + mark, "m.test");
  CHECK(r.status == 200);
  CHECK(origin_of(r) == "LPRIMARY");
  CHECK(wait_until([&] { return shadow.seen(mark) == 1; }, 5s));
  CHECK(primary.seen(mark) == 1);

  auto routes = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(routes.is_object());
  bool shown = false;
  for (const auto& route : routes["routes"])
    if (route.value("host", "") == "m.test") shown = route["mirror"]["service"] == "web-next";
  CHECK(shown);
}
