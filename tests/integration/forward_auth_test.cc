// Forward authentication through the real binary, against a real authentication service (the
// test origin's /auth): its 2xx lets a request pass with the copied headers (and only those),
// its other answers reach the client as they are and the instance never sees the request; a
// slow, absent or broken service gives 503 forward-auth-unavailable; the URL is checked at load.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "env.h"
#include "harness.h"

using namespace it;

namespace {

std::string auth_yaml(const Origin& app, const Origin& auth, uint16_t dead) {
  const std::string a = auth.address();
  return config_head(2) +
         "routes:\n"
         "  - {host: app.test, service: s, access: {forward_auth: {url: \"http://" + a +
         "/auth?from=berth\", copy_headers: [X-User], timeout: 2s}}}\n"
         "  - {host: slow.test, service: s, access: {forward_auth: {url: \"http://" + a +
         "/auth?delay_ms=3000\", timeout: 300ms}}}\n"
         "  - {host: down.test, service: s, access: {forward_auth: {url: \"http://127.0.0.1:" + std::to_string(dead) +
         "/auth\"}}}\n"
         "  - {host: broken.test, service: s, access: {forward_auth: {url: \"http://" + a +
         "/auth?bad_framing=1\"}}}\n"
         "  - {host: chunked.test, service: s, access: {forward_auth: {url: \"http://" + a +
         "/auth?chunked=1\", copy_headers: [X-User]}}}\n"
         "services:\n"
         "  s: {endpoints: [\"" + app.address() + "\"]}\n";
}

// An instance, an authentication service, and Berth with auth_yaml's routes in front of them.
struct AuthSetup {
  Origin app{"APP"};
  Origin auth{"AUTH"};
  Berth berth{auth_yaml(app, auth, unused_port())};
  AuthSetup() {
    REQUIRE(app.ok());
    REQUIRE(auth.ok());
    INFO(berth.error());
    REQUIRE(berth.ok());
  }
};

}  // namespace

TEST_CASE_METHOD(AuthSetup, "forward auth: the service's 2xx passes with its headers, its other answers reach the client",
                 "[auth][forward_auth]") {
  // No credentials: the service's 401, its challenge, type and body, as it sent them.
  const std::string m = marker("FWD");
  Response r = http_get(berth.port(), "/private?" + m, "app.test");
  INFO(r.raw_head << r.body << r.error);
  CHECK(r.status == 401);
  CHECK(r.header("x-berth-error") == std::optional<std::string>("forward-auth-denied"));
  CHECK(r.header("www-authenticate") == std::optional<std::string>("Bearer realm=\"test\""));
  CHECK(r.header("content-type") == std::optional<std::string>("application/json"));
  CHECK(r.body == "{\"error\":\"denied by the auth service\"}");
  CHECK(r.header_count("content-type") == 1);

  // A login redirect, with its cookie.
  r = http_get(berth.port(), "/private?" + m, "app.test", {"Authorization: Bearer login"});
  CHECK(r.status == 302);
  CHECK(r.header("location") == std::optional<std::string>("http://login.test/?next=1"));
  CHECK(r.header("set-cookie") == std::optional<std::string>("flow=1; HttpOnly"));
  CHECK(r.body == "to the login page\n");

  // A POST with a body, refused: the body never reaches the instance either.
  {
    Client c(berth.port());
    Response p = c.request(make_request("POST", "/upload?" + m, "app.test", {}, "secret body"));
    CHECK(p.status == 401);
  }
  CHECK(app.seen(m) == 0);  // nothing refused reached the instance

  // Passed: on one keep-alive connection, twice. The instance gets X-User from the service (the
  // client's own is replaced), not the service's other headers.
  Client c(berth.port());
  for (int i = 0; i < 2; ++i) {
    r = c.request(make_request("GET", "/echo?n=" + std::to_string(i), "app.test",
                               {"Authorization: Bearer good", "X-User: mallory", "X-Forwarded-For: 6.6.6.6",
                                "X-Forwarded-Prefix: /forged-prefix", "x-forwarded-user: forged-user",
                                "X-Forwarded-Ssl: forged-ssl", "X-Forwarded-Server: forged-server",
                                "Forwarded: for=forged-forwarded", "X-Real-IP: forged-real-ip",
                                "X-Original-URL: /forged-original", "X-Rewrite-URL: /forged-rewrite"}));
    INFO(r.raw_head << r.body);
    REQUIRE(r.status == 200);
    CHECK(r.body.find("forged-") == std::string::npos);  // none of them reaches the instance either
    CHECK(r.body.find("X-User: alice\r\n") != std::string::npos);
    CHECK(r.body.find("mallory") == std::string::npos);
    CHECK(r.body.find("X-Auth-Other") == std::string::npos);
  }
  // What the service was asked: the configured URL, the client's credentials and Berth's
  // X-Forwarded-* (never the client's own).
  CHECK(auth.seen("GET /auth?from=berth HTTP/1.1") >= 2);
  CHECK(auth.seen("Authorization: Bearer good") == 2);
  CHECK(auth.seen("X-Forwarded-Method: GET") >= 2);
  CHECK(auth.seen("X-Forwarded-Host: app.test") >= 2);
  CHECK(auth.seen("X-Forwarded-Uri: /echo?n=1") == 1);
  CHECK(auth.seen("X-Forwarded-Proto: http") >= 2);
  CHECK(auth.seen("X-Forwarded-For: 127.0.0.1") >= 2);
  CHECK(auth.seen("6.6.6.6") == 0);
  // Nor any other field a proxy sets about the client, whatever the case of its name.
  CHECK(auth.seen("forged-") == 0);

  // A chunked 2xx answer works the same.
  r = http_get(berth.port(), "/echo", "chunked.test", {"Authorization: Bearer good"});
  CHECK(r.status == 200);
  CHECK(r.body.find("X-User: alice\r\n") != std::string::npos);
  CHECK(berth.running());
}

TEST_CASE_METHOD(AuthSetup, "forward auth: a slow, absent or broken service gives 503 and the instance sees nothing",
                 "[auth][forward_auth]") {
  const std::string m = marker("FWD");

  auto t0 = Clock::now();
  Response r = http_get(berth.port(), "/x?" + m, "slow.test", {"Authorization: Bearer good"});
  check_berth_error(r, 503, "forward-auth-unavailable");
  CHECK(seconds_since(t0) < 2.5);  // cut at its 300 ms timeout, not the service's 3 s

  r = http_get(berth.port(), "/x?" + m, "down.test", {"Authorization: Bearer good"});
  check_berth_error(r, 503, "forward-auth-unavailable");

  // Content-Length with Transfer-Encoding: the strict parser refuses the answer.
  r = http_get(berth.port(), "/x?" + m, "broken.test", {"Authorization: Bearer good"});
  check_berth_error(r, 503, "forward-auth-unavailable");

  CHECK(app.seen(m) == 0);
  CHECK(berth.log_shows("event=forward_auth_failed"));
  CHECK(berth.running());
}

TEST_CASE("forward auth: a check whose client went away is stopped and its connection closed",
          "[auth][forward_auth]") {
  // The service takes 4 s to answer and Berth would wait 10 s. Clients that send a request and
  // reset their connections must not leave their checks open meanwhile: each would hold a
  // descriptor, and no connection limit counts them once their clients are gone.
  Origin app("APP"), auth("AUTH");
  REQUIRE(app.ok());
  REQUIRE(auth.ok());
  Berth berth(config_head(1) + "routes:\n  - {host: app.test, service: s, access: {forward_auth: {url: \"http://" +
              auth.address() + "/auth?delay_ms=4000\", timeout: 10s}}}\nservices:\n  s: {endpoints: [\"" +
              app.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  const int before = fd_count(berth.pid());
  int during = 0;
  const std::string m = marker("GONE");
  constexpr int kClients = 20;
  {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(std::make_unique<Client>(berth.port()));
      REQUIRE(clients.back()->send(make_request("GET", "/x?" + m, "app.test")));
    }
    REQUIRE(wait_until([&] { return auth.seen(m) == kClients; }, 3s));  // every check is asked
    during = fd_count(berth.pid());
    INFO("descriptors at rest " << before << ", with the checks " << during);
    REQUIRE(during >= before + 2 * kClients);  // each client's connection and its check's
    for (auto& c : clients) {  // a reset, not a half-close (which still gets its answer)
      const linger hard{1, 0};
      REQUIRE(::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
    }
  }  // the clients leave
  const auto t0 = Clock::now();
  const bool freed = wait_until([&] { return fd_count(berth.pid()) <= during - 2 * kClients; }, 3s);
  INFO("descriptors with the checks " << during << ", after the clients left " << fd_count(berth.pid()));
  CHECK(freed);
  CHECK(seconds_since(t0) < 2.0);  // not when the service answers
  CHECK(app.seen(m) == 0);
  CHECK(berth.log().find("event=forward_auth_failed") == std::string::npos);  // not a failure of the service
  CHECK(berth.running());
}

TEST_CASE_METHOD(AuthSetup, "forward auth: a client that half-closes after a request without a body gets its answer",
                 "[auth][forward_auth]") {
  // printf ... | nc -N: the request, then FIN. The check is still pending when the FIN comes;
  // the answer must come all the same (as on a route without filters), and the connection close.
  for (const char* credentials : {"Bearer good", "Bearer nobody"}) {
    Client c(berth.port());
    REQUIRE(c.connected());
    REQUIRE(c.send(make_request("GET", "/echo?half", "app.test", {std::string("Authorization: ") + credentials})));
    REQUIRE(::shutdown(c.fd(), SHUT_WR) == 0);
    Response r = c.read_response();
    INFO(credentials << ": " << r.raw_head << r.error);
    CHECK(r.status == (std::string_view(credentials) == "Bearer good" ? 200 : 401));
    CHECK(c.wait_closed(3s));
  }
  CHECK(berth.running());
}

TEST_CASE("forward auth: a check that comes back to Berth ends with 508 at the third hop", "[auth][forward_auth]") {
  // The route's service URL is Berth's own listener, with a Host the route matches: each check
  // is a request to the same route, which would start another check.
  Origin app("APP");
  REQUIRE(app.ok());
  const std::string port = std::to_string(unused_port());
  Berth berth("listeners: [\"127.0.0.1:" + port + "\"]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n"
              "routes:\n  - {host: \"127.0.0.1\", service: s, access: {forward_auth: {url: \"http://127.0.0.1:" +
              port + "/check\", timeout: 3s}}}\nservices:\n  s: {endpoints: [\"" + app.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint64_t accepted = stats_counter(berth.admin_port(), "connections_accepted");
  const std::string m = marker("LOOP");
  Response r = http_get(berth.port(), "/x?" + m, "127.0.0.1");
  INFO(r.raw_head << r.body << r.error << "\nlog:\n" << berth.log());
  // The third check is refused; each level relays that answer to the one before, as a loop.
  CHECK(r.status == 508);
  CHECK(r.body == "508 Loop Detected (forward-auth-loop)\n");
  CHECK(r.header("x-berth-error") == std::optional<std::string>("forward-auth-loop"));
  CHECK(stats_counter(berth.admin_port(), "connections_accepted") == accepted + 4);  // the client's, 3 checks
  CHECK(app.seen(m) == 0);
  CHECK(berth.running());
}

TEST_CASE("forward auth: a URL Berth cannot use is refused at load with file:line", "[auth][forward_auth]") {
  TempDir dir;
  REQUIRE(write_file(dir.file("berth.yaml"),
                     "listeners: [\"127.0.0.1:0\"]\n"
                     "routes:\n"
                     "  - {host: a.test, service: s, access: {forward_auth: {url: \"https://auth.example/check\"}}}\n"
                     "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n"));
  std::string out, err;
  auto status = run_berth({"--check-config", dir.file("berth.yaml")}, &out, &err);
  REQUIRE(status);
  CHECK_FALSE(exited_with(status, 0));
  INFO(err);
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("http:// URL") != std::string::npos);
}
