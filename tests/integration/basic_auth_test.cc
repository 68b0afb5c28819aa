// Basic authentication through the real binary: 401 with WWW-Authenticate without (or with
// wrong) credentials, never reaching the instance; the right ones pass, without the
// Authorization header unless the route forwards it; a bad htpasswd file is refused at load
// with file:line, and on reload the running configuration keeps serving.
#include <crypt.h>
#include <poll.h>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <memory>

#include "env.h"

using namespace it;

namespace {

// A crypt hash of `password`: bcrypt by default, or another prefix ("$6$": SHA-512 crypt).
std::string bcrypt(const std::string& password, unsigned long cost = 5, const char* prefix = "$2b$") {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof setting) != nullptr);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), setting, data.get());
  REQUIRE(out != nullptr);
  return out;
}

// The header line (base64 by OpenSSL).
std::string basic(const std::string& credentials) { return "Authorization: Basic " + base64(credentials); }

}  // namespace

TEST_CASE("basic auth: credentials decide, the instance sees only authenticated requests", "[auth]") {
  Origin origin{"A"};
  REQUIRE(origin.ok());
  TempDir dir;
  REQUIRE(write_file(dir.file("admin.htpasswd"), "alice:" + bcrypt("wonderland") + "\n"));
  const std::string yaml =
      config_head(2) +
      "routes:\n"
      "  - {host: admin.test, service: s, access: {basic_auth: {htpasswd: \"" + dir.file("admin.htpasswd") +
      "\", realm: admin}}}\n"
      "  - {host: fwd.test, service: s, access: {basic_auth: {htpasswd: \"" + dir.file("admin.htpasswd") +
      "\", forward_authorization: true}}}\n"
      "services:\n"
      "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  Berth berth(yaml);
  INFO(berth.error());
  REQUIRE(berth.ok());

  const std::string m = marker("AUTH");
  Response r = http_get(berth.port(), "/x?" + m, "admin.test");
  check_berth_error(r, 401, "auth-required");
  CHECK(r.header("www-authenticate") == std::optional<std::string>("Basic realm=\"admin\", charset=\"UTF-8\""));
  r = http_get(berth.port(), "/x?" + m, "admin.test", {basic("alice:wrong")});
  check_berth_error(r, 401, "auth-required");
  r = http_get(berth.port(), "/x?" + m, "admin.test", {basic("bob:wonderland")});
  check_berth_error(r, 401, "auth-required");
  CHECK(origin.seen(m) == 0);

  // The right credentials: passed, twice on one connection (the second from the cache), and the
  // instance does not see them.
  Client c(berth.port());
  for (int i = 0; i < 2; ++i) {
    r = c.request(make_request("GET", "/echo", "admin.test", {basic("alice:wonderland")}));
    INFO(r.raw_head << r.body);
    REQUIRE(r.status == 200);
    CHECK(r.body.find("Authorization") == std::string::npos);
    CHECK(r.body.find("authorization") == std::string::npos);
  }
  // A route that forwards them.
  r = http_get(berth.port(), "/echo", "fwd.test", {basic("alice:wonderland")});
  REQUIRE(r.status == 200);
  CHECK(r.body.find("Authorization: Basic ") != std::string::npos);

  // A reload with an htpasswd that holds a weak hash is refused with file:line; the running
  // configuration keeps serving.
  REQUIRE(write_file(dir.file("admin.htpasswd"), "alice:" + bcrypt("wonderland") + "\nbob:$apr1$abc$def\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(berth.log_shows("event=config_reload_failed"));
  CHECK(berth.log_shows(dir.file("admin.htpasswd") + ":2:"));
  r = http_get(berth.port(), "/echo", "admin.test", {basic("alice:wonderland")});
  CHECK(r.status == 200);

  // alice's password changed in the file and reloaded: the old one, verified and remembered by
  // the workers before, is refused on every worker; the new one passes.
  for (int i = 0; i < 4; ++i)  // remembered on both workers (connections spread over them)
    CHECK(http_get(berth.port(), "/echo", "admin.test", {basic("alice:wonderland")}).status == 200);
  const uint64_t before = applied_generation(berth.admin_port());
  REQUIRE(before > 0);
  REQUIRE(write_file(dir.file("admin.htpasswd"), "alice:" + bcrypt("looking-glass") + "\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  // Both workers on the new file: a request on the other one would still pass the old password.
  REQUIRE(wait_until([&] { return applied_generation(berth.admin_port()) > before; }, 5s));
  CHECK(http_get(berth.port(), "/echo", "admin.test", {basic("alice:looking-glass")}).status == 200);
  for (int i = 0; i < 6; ++i) {
    r = http_get(berth.port(), "/x?" + m, "admin.test", {basic("alice:wonderland")});
    check_berth_error(r, 401, "auth-required");
  }
  CHECK(origin.seen(m) == 0);
}

TEST_CASE("basic auth: a weak or missing htpasswd file is refused at startup with file:line", "[auth]") {
  TempDir dir;
  REQUIRE(write_file(dir.file("p"), "# ok\nalice:plain\n"));
  REQUIRE(write_file(dir.file("berth.yaml"),
                     "listeners: [\"127.0.0.1:0\"]\n"
                     "routes: [{host: a.test, service: s, access: {basic_auth: {htpasswd: p}}}]\n"
                     "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n"));
  std::string out, err;
  auto status = run_berth({"--check-config", dir.file("berth.yaml")}, &out, &err);
  REQUIRE(status);
  CHECK_FALSE(exited_with(status, 0));
  INFO(err);
  CHECK(err.find(dir.file("p") + ":2:") != std::string::npos);  // relative to the config file
  CHECK(err.find("plain-text") != std::string::npos);
}

TEST_CASE("basic auth: while a password check runs, the same worker goes on serving other requests", "[auth]") {
  // A cost-13 bcrypt check takes hundreds of milliseconds (about 0.5 s on the development
  // machine): were it run on the worker loop, the plain requests below would wait for it and
  // come back after its 401. Run off the loop, they come back while it is still being checked.
  Origin origin{"A"};
  REQUIRE(origin.ok());
  TempDir dir;
  REQUIRE(write_file(dir.file("slow.htpasswd"), "alice:" + bcrypt("wonderland", 13) + "\n"));
  const std::string yaml = config_head(1) +
                           "routes:\n"
                           "  - {host: slow.test, service: s, access: {basic_auth: {htpasswd: \"" +
                           dir.file("slow.htpasswd") + "\"}}}\n"
                           "  - {host: plain.test, service: s}\n"
                           "services:\n"
                           "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  Berth berth(yaml);
  INFO(berth.error());
  REQUIRE(berth.ok());

  Client guesser(berth.port());
  Client other(berth.port());
  REQUIRE(guesser.connected());
  REQUIRE(other.connected());
  REQUIRE(other.get("/x", "plain.test").status == 200);  // connected and served before the check starts
  REQUIRE(guesser.send(make_request("GET", "/x", "slow.test", {basic("alice:not-it")})));
  for (int i = 0; i < 5; ++i) {
    Response r = other.get("/x", "plain.test");
    INFO(r.error);
    REQUIRE(r.status == 200);
  }
  // The five answers are in; the check is not done yet.
  pollfd p{guesser.fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
  CHECK(guesser.pending().empty());
  Response denied = guesser.read_response();
  check_berth_error(denied, 401, "auth-required");
}

TEST_CASE("basic auth: a wrong password for a user with a cheaper hash is answered no sooner than an unknown user",
          "[auth]") {
  // bob's SHA-512 crypt at 1000 rounds takes about half a millisecond to check, alice's cost-12
  // bcrypt hundreds: an unknown user is checked at alice's cost. Were bob's failure answered at
  // once, a 401 in under a millisecond would say "bob exists".
  Origin origin{"A"};
  REQUIRE(origin.ok());
  TempDir dir;
  REQUIRE(write_file(dir.file("mixed.htpasswd"),
                     "alice:" + bcrypt("wonderland", 12) + "\nbob:" + bcrypt("builder", 1000, "$6$") + "\n"));
  const std::string yaml = config_head(1) +
                           "routes:\n"
                           "  - {host: mixed.test, service: s, access: {basic_auth: {htpasswd: \"" +
                           dir.file("mixed.htpasswd") + "\"}}}\n"
                           "services:\n"
                           "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  Berth berth(yaml);
  INFO(berth.error());
  REQUIRE(berth.ok());
  Client c(berth.port());
  REQUIRE(c.connected());
  c.set_timeout(10s);
  auto timed = [&](const std::string& credentials, int expect) {
    const auto start = std::chrono::steady_clock::now();
    Response r = c.request(make_request("GET", "/x", "mixed.test", {basic(credentials)}));
    INFO(credentials << ": " << r.raw_head << r.error);
    CHECK(r.status == expect);
    return std::chrono::steady_clock::now() - start;
  };
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  // The first failure, before any check at alice's cost has run: one runs after bob's.
  const auto first = timed("bob:first", 401);
  INFO("bob's first 401 took " << ms(first) << " ms");
  CHECK(first > 50ms);
  const auto unknown = timed("mallory:guess", 401);
  INFO("unknown user's 401 took " << ms(unknown) << " ms");
  REQUIRE(unknown > 50ms);  // a cost-12 bcrypt check did run
  for (int i = 0; i < 3; ++i) {
    const auto bob = timed("bob:not-it", 401);
    INFO("bob's 401 took " << ms(bob) << " ms");
    CHECK(bob > unknown / 4);
  }
  CHECK(timed("bob:builder", 200) < 10s);  // his right password still passes
}
