// The admin listener: health, readiness and the route table.

#include <catch2/catch.hpp>

#include "env.h"

using namespace it;

TEST_CASE("admin: /healthz and /readyz answer 200", "[admin]") {
  auto& env = shared();
  REQUIRE(env.admin_port() != 0);
  CHECK(env.admin_port() != env.port());
  for (const char* path : {"/healthz", "/readyz"}) {
    Response r = http_get(env.admin_port(), path, "127.0.0.1");
    INFO(path << ": " << r.raw_head << r.body << r.error);
    CHECK(r.status == 200);
    CHECK(r.body_complete);
  }
  check_alive(env);
}

TEST_CASE("admin: /api/routes lists routes, services and endpoints as JSON", "[admin]") {
  auto& env = shared();
  Response r = http_get(env.admin_port(), "/api/routes", "127.0.0.1");
  INFO(r.raw_head << r.body << r.error);
  REQUIRE(r.status == 200);
  CHECK(lower(r.header("content-type").value_or("")).find("json") != std::string::npos);
  REQUIRE_FALSE(r.body.empty());
  CHECK(r.body.front() == '{');
  for (std::string s : {"\"r-a\"", "\"r-b\"", "\"r-lb\"", "\"r-empty\"", "\"r-dead\"", "\"r-small\"",
                        "\"s-a\"", "\"s-b\"", "\"s-ab\"", "\"s-empty\"", "\"s-dead\"", "\"a.test\"",
                        "\"*.wild.test\"", "\"b.test\""}) {
    INFO("looking for " << s);
    CHECK(r.body.find(s) != std::string::npos);
  }
  CHECK(r.body.find("\"" + env.a->address() + "\"") != std::string::npos);
  CHECK(r.body.find("\"" + env.b->address() + "\"") != std::string::npos);
  CHECK(r.body.find("\"127.0.0.1:" + std::to_string(env.dead_port) + "\"") != std::string::npos);
  check_alive(env);
}

TEST_CASE("admin: unknown paths are 404, and the admin API is not on the proxy listener",
          "[admin]") {
  auto& env = shared();
  Response r = http_get(env.admin_port(), "/no-such-admin-path", "127.0.0.1");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 404);
  // On the proxy listener /api/routes is just a path: routed by host like any other.
  r = http_get(env.port(), "/api/routes", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "origin=A path=/api/routes\n");
  // Only GET and HEAD: anything else is 405 with the methods allowed.
  Client c(env.admin_port());
  r = c.request(make_request("POST", "/api/routes", "127.0.0.1", {}, "x"));
  INFO(r.raw_head << r.error);
  CHECK(r.status == 405);
  CHECK(r.header("allow").value_or("") == "GET, HEAD");
  // A head that passes 16 KiB unfinished is answered 431, not cut without a word.
  Client big(env.admin_port());
  REQUIRE(big.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(17 * 1024, 'a')));
  r = big.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 431);
  // So is a whole head over 16 KiB that arrives with its end.
  Client whole(env.admin_port());
  REQUIRE(whole.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n"));
  r = whole.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 431);
  check_alive(env);
}

TEST_CASE("admin: on loopback, a request naming another host is refused (DNS rebinding)", "[admin]") {
  auto& env = shared();
  const std::string port = std::to_string(env.admin_port());
  // A page from rebind.example whose name now resolves to 127.0.0.1 sends its own name.
  for (const std::string& host : {"rebind.example:" + port, std::string("rebind.example")}) {
    Response r = http_get(env.admin_port(), "/api/routes", host);
    INFO(host << ": " << r.raw_head << r.error);
    CHECK(r.status == 403);
    CHECK(r.body.find("\"routes\"") == std::string::npos);
  }
  for (const std::string& host : {"localhost:" + port, "127.0.0.1:" + port, std::string("[::1]:") + port}) {
    Response r = http_get(env.admin_port(), "/api/routes", host);
    INFO(host << ": " << r.raw_head << r.error);
    CHECK(r.status == 200);
  }
  check_alive(env);
}

TEST_CASE("admin: on loopback written as an IPv4-mapped address, the Host check holds", "[admin]") {
  Berth berth("listeners: [\"127.0.0.1:0\"]\nworkers: 1\nadmin: {address: \"[::ffff:127.0.0.1]:0\"}\n"
              "routes: []\nservices: {}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  Response r = http_get(berth.admin_port(), "/api/routes", "rebind.example");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 403);
  r = http_get(berth.admin_port(), "/api/routes", "127.0.0.1:" + std::to_string(berth.admin_port()));
  CHECK(r.status == 200);
}

TEST_CASE("admin: idle connections are closed after 10 s, and at most 64 are open at once", "[admin]") {
  // Clients that send nothing must not hold descriptors the proxy listeners need, nor keep a
  // scraper out.
  Berth berth(config_head(1) + "routes: []\nservices: {}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<Client>(berth.admin_port()));
    REQUIRE(idle.back()->connected());
  }
  // Each connect is accepted on the control loop in turn: the 65th takes the place of the oldest
  // silent one, which is closed as soon as the 65th is accepted.
  auto over = std::make_unique<Client>(berth.admin_port());
  REQUIRE(over->connected());
  CHECK(idle.front()->wait_closed(3s));
  // A scrape while 64 silent connections are open is answered at once (it too takes a place).
  const auto scrape = Clock::now();
  Response r = http_get(berth.admin_port(), "/healthz", "127.0.0.1");
  CHECK(r.status == 200);
  CHECK(seconds_since(scrape) < 3.0);
  CHECK(idle[1]->wait_closed(3s));
  const auto t0 = Clock::now();
  for (size_t i = 2; i < idle.size(); ++i) CHECK(idle[i]->wait_closed(15s));  // the exchange deadline: 10 s
  CHECK(over->wait_closed(15s));
  CHECK(seconds_since(t0) > 5.0);
  r = http_get(berth.admin_port(), "/healthz", "127.0.0.1");
  CHECK(r.status == 200);
  CHECK(berth.running());
}
