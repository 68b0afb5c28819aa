// Route filters from the config file, through the real binary: access by address range and by
// method (answered by Berth, never reaching the instance), and header edits in both directions.

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

#include "env.h"

using namespace it;

namespace {

struct FilterEnv : OriginEnv {
  FilterEnv()
      : OriginEnv("F",
        config_head(2) +
        "routes:\n"
        "  - name: r-edit\n"
        "    host: edit.test\n"
        "    service: s\n"
        "    access: {methods: [GET, HEAD]}\n"
        "    headers:\n"
        "      request: {set: {X-Env: prod}, add: {X-Added: \"1\"}, remove: [Cookie]}\n"
        "      response: {set: {Cache-Control: no-store}, remove: [x-origin-name]}\n"
        "  - {name: r-deny, host: deny.test, service: s, access: {deny: [\"127.0.0.0/8\"]}}\n"
        "  - {name: r-allow-other, host: other.test, service: s, access: {allow: [\"10.0.0.0/8\", \"::1\"]}}\n"
        "  - {name: r-allow-local, host: local.test, service: s, access: {allow: [\"127.0.0.1\"]}}\n") {}
};

size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  size_t n = 0, pos = 0;
  while ((pos = text.find("\r\n" + prefix, pos)) != std::string::npos) {
    ++n;
    pos += 2;
  }
  return n;
}

}  // namespace

TEST_CASE("filters: header edits reach the instance and the client", "[filters]") {
  FilterEnv env;
  Response r = http_get(env.berth->port(), "/echo", "edit.test", {"X-Env: dev", "Cookie: session=secret", "X-Keep: yes"});
  INFO(r.raw_head << r.body);
  REQUIRE(r.status == 200);
  // What the instance received (its /echo answers with the request head).
  CHECK(count_lines_starting(r.body, "X-Env: ") == 1);
  CHECK(r.body.find("\r\nX-Env: prod\r\n") != std::string::npos);
  CHECK(r.body.find("\r\nX-Added: 1\r\n") != std::string::npos);
  CHECK(r.body.find("session=secret") == std::string::npos);
  CHECK(r.body.find("\r\nX-Keep: yes\r\n") != std::string::npos);
  // What the client got.
  CHECK(r.header("cache-control") == std::optional<std::string>("no-store"));
  CHECK_FALSE(r.header("x-origin-name").has_value());
  CHECK(r.header("x-origin-conn").has_value());  // other headers pass
}

TEST_CASE("filters: a method not allowed gets 405 with Allow, and never reaches the instance", "[filters]") {
  FilterEnv env;
  const std::string m = marker("FLT");
  Client c(env.berth->port());
  Response r = c.request(make_request("DELETE", "/x?" + m, "edit.test"));
  check_berth_error(r, 405, "method-not-allowed");
  CHECK(r.header("allow") == std::optional<std::string>("GET, HEAD"));
  // The connection stays usable (no body was left unread).
  r = c.get("/y", "edit.test");
  CHECK(r.status == 200);
  CHECK(env.origin.seen(m) == 0);
}

TEST_CASE("filters: address ranges decide who passes", "[filters]") {
  FilterEnv env;
  const std::string m = marker("FLT");
  Response r = http_get(env.berth->port(), "/x?" + m, "deny.test");
  check_berth_error(r, 403, "forbidden-address");
  r = http_get(env.berth->port(), "/x?" + m, "other.test");
  check_berth_error(r, 403, "forbidden-address");
  CHECK(env.origin.seen(m) == 0);
  r = http_get(env.berth->port(), "/x?" + m, "local.test");
  CHECK(r.status == 200);
  CHECK(env.origin.seen(m) == 1);
  // A refused request with a body closes the connection (the body is never read).
  Client c(env.berth->port());
  r = c.request("POST /x HTTP/1.1\r\nHost: deny.test\r\nContent-Length: 5\r\n\r\nhello");
  check_berth_error(r, 403, "forbidden-address");
}

TEST_CASE("filters: a HEAD refused by a filter gets the refusal's head and no body", "[filters]") {
  // Pipelined: were the refusal's text sent after the HEAD's head, the client would read it where
  // the next status line belongs.
  FilterEnv env;
  const std::string m = marker("FLH");
  Client c(env.berth->port());
  REQUIRE(c.connected());
  REQUIRE(c.send("HEAD /x?" + m + " HTTP/1.1\r\nHost: deny.test\r\n\r\n"
                 "DELETE /x?" + m + " HTTP/1.1\r\nHost: edit.test\r\n\r\n"
                 "GET /x?" + m + " HTTP/1.1\r\nHost: local.test\r\n\r\n"));
  Response head = c.read_response(true);
  check_head_berth_error(head, 403, "forbidden-address");
  Response method = c.read_response();
  check_berth_error(method, 405, "method-not-allowed");
  Response after = c.read_response();
  INFO(after.raw_head << after.error);
  CHECK(after.status == 200);
  CHECK(env.origin.seen(m) == 1);  // the GET alone
}

TEST_CASE("filters: a rate limit counts exactly across workers and answers 429 with its fields", "[filters]") {
  Origin origin{"R"};
  REQUIRE(origin.ok());
  Berth berth(config_head(2) +
              "routes:\n"
              "  - {host: limited.test, service: s, access: {rate_limit: {per_second: 1, burst: 40}}}\n"
              "  - {host: keyed.test, service: s, access: {rate_limit: {per_second: 1, burst: 2, key: \"header:X-Api-Key\"}}}\n"
              "services:\n"
              "  s: {endpoints: [\"" + origin.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  // 4 clients x 25 requests, on new connections (spread over both workers), at once: 40 pass,
  // (plus at most the few tokens that came back while they ran).
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        Response r = http_get(berth.port(), "/x", "limited.test");
        if (r.status == 200) ++ok;
        else if (r.status == 429) ++limited;
        else ++other;
      }
    });
  for (auto& t : clients) t.join();
  CHECK(other.load() == 0);
  CHECK(ok.load() >= 40);
  CHECK(ok.load() <= 42);
  CHECK(ok.load() + limited.load() == 100);

  Response r = http_get(berth.port(), "/x", "limited.test");
  check_berth_error(r, 429, "rate-limited");
  CHECK(r.header("retry-after") == std::optional<std::string>("1"));
  CHECK(r.header("ratelimit-policy") == std::optional<std::string>("1;w=1;burst=40"));
  CHECK(r.header("ratelimit").has_value());

  // Keyed by a header: each key has its own bucket.
  for (const char* key : {"X-Api-Key: a", "X-Api-Key: b"}) {
    CHECK(http_get(berth.port(), "/x", "keyed.test", {key}).status == 200);
    CHECK(http_get(berth.port(), "/x", "keyed.test", {key}).status == 200);
    CHECK(http_get(berth.port(), "/x", "keyed.test", {key}).status == 429);
  }

  // A reload (another route added) gives nobody a fresh bucket: the routes whose rate limit did
  // not change keep theirs (limited.test's 40 are spent). Before, every SIGHUP refilled them all.
  const std::string unchanged = config_head(2) +
      "routes:\n"
      "  - {host: limited.test, service: s, access: {rate_limit: {per_second: 1, burst: 40}}}\n"
      "  - {host: keyed.test, service: s, access: {rate_limit: {per_second: 1, burst: 2, key: \"header:X-Api-Key\"}}}\n"
      "  - {host: added.test, service: s}\n"
      "services:\n"
      "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  auto passing = [&](int n) {
    int passed = 0;
    for (int i = 0; i < n; ++i) passed += http_get(berth.port(), "/x", "limited.test").status == 200;
    return passed;
  };
  const auto spent = Clock::now();
  const uint64_t first = applied_generation(berth.admin_port());
  REQUIRE(first > 0);
  REQUIRE(berth.rewrite_config(unchanged));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return applied_generation(berth.admin_port()) > first; }, 5s));
  CHECK(http_get(berth.port(), "/x", "added.test").status == 200);
  const int kept = passing(20);
  CHECK(kept <= 1 + static_cast<int>(seconds_since(spent)));  // what refilled at 1/s, not 20
  // New settings (a larger burst): a new limit, with full buckets.
  std::string larger = unchanged;
  larger.replace(larger.find("burst: 40"), 9, "burst: 50");
  const uint64_t before = applied_generation(berth.admin_port());
  REQUIRE(berth.rewrite_config(larger));
  REQUIRE(berth.process().signal(SIGHUP));
  // Every worker on the new limit first: one still on the old one answers from the old bucket.
  REQUIRE(wait_until([&] { return applied_generation(berth.admin_port()) > before; }, 5s));
  CHECK(passing(20) == 20);
}
