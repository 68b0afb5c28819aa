// Path rewriting and redirects from the config file, through the real binary and a real origin
// (which answers /echo with the request head it received, and any other path with its path).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "env.h"

using namespace it;

namespace {

// Where the access log goes: a base, so that it exists before the config naming it is written.
struct AccessLogDir {
  TempDir dir;
  std::string access_log = dir.file("access.log");
};

struct RewriteEnv : AccessLogDir, OriginEnv {
  RewriteEnv()
      : OriginEnv("R",
        config_head(1) + "access_log: {format: json, path: \"" + access_log + "\"}\n" +
        "routes:\n"
        "  - {host: rw.test, path: /api, strip_prefix: true, service: s}\n"
        "  - {host: rw.test, path: /add, strip_prefix: true, add_prefix: /v1, service: s}\n"
        "  - {host: rw.test, path: /only-add, add_prefix: /v2, service: s}\n"
        "  - {host: rw.test, path: /given, strip_prefix: /given/deep, service: s}\n"
        "  - host: rw.test\n"
        "    path: /old\n"
        "    rewrite: {regex: \"^/old/(\\\\w+)/(\\\\w+)$\", replacement: \"/new/\\\\2/\\\\1\"}\n"
        "    service: s\n"
        "  - {host: rw.test, path: /r, rewrite: {regex: \"^/r(/.*)$\", replacement: \"\\\\1\"}, service: s}\n"
        "  - {host: rw.test, path: /z, rewrite: {regex: \"^/z(.*)$\", replacement: \"\\\\1\"}, service: s}\n"
        "  - host: rw.test\n"
        "    path: /docs-\n"
        "    rewrite: {regex: \"^/([a-z]+)-(.*)$\", replacement: \"/\\\\1/\\\\2\"}\n"
        "    service: s\n"
        "  - {host: rw.test, service: s}\n"
        "  - {host: moved.test, redirect: {to: \"https://www.example.com{uri}\", code: 301}}\n"
        "  - {host: parts.test, redirect: {to: \"http://{host}/new{path}?was={query}\"}}\n"
        "  - {host: see.test, redirect: {to: /x, code: 303}}\n"
        "  - {host: tmp.test, redirect: {to: /x, code: 307}}\n"
        "  - {host: perm.test, redirect: {to: /x, code: 308}}\n") {}
  // The path the origin answered for (its "origin=R path=..." body).
  std::string origin_path(const std::string& target, const std::vector<std::string>& headers = {}) {
    Response r = http_get(berth->port(), target, "rw.test", headers);
    INFO(target << "\n" << r.raw_head << r.body);
    REQUIRE(r.status == 200);
    const std::string prefix = "origin=R path=";
    REQUIRE(r.body.starts_with(prefix));
    return r.body.substr(prefix.size(), r.body.find('\n') - prefix.size());
  }
};

}  // namespace

TEST_CASE("rewrite: strip_prefix, add_prefix and both", "[rewrite]") {
  RewriteEnv env;
  CHECK(env.origin_path("/api/users") == "/users");
  CHECK(env.origin_path("/api") == "/");             // nothing left: "/"
  CHECK(env.origin_path("/apix/users") == "/apix/users");  // not a segment of /api: unchanged
  CHECK(env.origin_path("/add/users") == "/v1/users");
  CHECK(env.origin_path("/only-add/users") == "/v2/only-add/users");
  CHECK(env.origin_path("/given/deep/x") == "/x");
  CHECK(env.origin_path("/given/shallow") == "/given/shallow");
  CHECK(env.origin_path("/other") == "/other");      // a route without rewriting
}

TEST_CASE("rewrite: the query goes on as sent, with X-Forwarded-Prefix for what was stripped", "[rewrite]") {
  RewriteEnv env;
  const std::string m = marker("RWQ");
  Response r = http_get(env.berth->port(), "/api/echo?m=" + m + "&p=%2Fapi%2F&x", "rw.test",
                        {"X-Forwarded-Prefix: /forged"});
  INFO(r.raw_head << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.body.starts_with("GET /echo?m=" + m + "&p=%2Fapi%2F&x HTTP/1.1\r\n"));
  CHECK(r.body.find("\r\nX-Forwarded-Prefix: /api\r\n") != std::string::npos);
  CHECK(r.body.find("/forged") == std::string::npos);

  // A regex rewrite to /echo: the query again unchanged, no X-Forwarded-Prefix added.
  r = http_get(env.berth->port(), "/r/echo?q=/r/1", "rw.test");
  REQUIRE(r.status == 200);
  CHECK(r.body.starts_with("GET /echo?q=/r/1 HTTP/1.1\r\n"));
  CHECK(r.body.find("X-Forwarded-Prefix") == std::string::npos);

  // The access log keeps the client's target.
  REQUIRE(wait_until([&] { return read_file(env.access_log).find(m) != std::string::npos; }, 5s));
  const std::string log = read_file(env.access_log);
  CHECK(log.find("\"path\":\"/api/echo\"") != std::string::npos);
}

TEST_CASE("rewrite: regex with groups; a result that is no path answers 500", "[rewrite]") {
  RewriteEnv env;
  CHECK(env.origin_path("/old/a/b") == "/new/b/a");
  CHECK(env.origin_path("/old/a/b/c") == "/old/a/b/c");  // no match: unchanged
  CHECK(env.origin_path("/z/fine") == "/fine");
  const std::string m = marker("RWF");
  Response r = http_get(env.berth->port(), "/zbad?" + m, "rw.test");
  check_berth_error(r, 500, "rewrite-failed");
  CHECK(env.origin.seen(m) == 0);
}

TEST_CASE("rewrite: a rewritten path with a dot segment answers 400 and is never sent", "[rewrite]") {
  RewriteEnv env;
  CHECK(env.origin_path("/docs-guide/intro") == "/docs/guide/intro");
  // The client's path has no dot segment (its ".." follows "docs-"), the rewritten one has: an
  // instance would resolve it to /admin/secret, which the route that matched does not guard.
  for (const std::string bad : {"/docs-../admin/secret", "/docs-%2e%2E/admin", "/docs-./x", "/docs-..;x/admin"}) {
    const std::string m = marker("RWD");
    Response r = http_get(env.berth->port(), bad + "?" + m, "rw.test");
    INFO(bad << "\n" << r.raw_head);
    check_berth_error(r, 400, "bad-request");
    CHECK(env.origin.seen(m) == 0);
  }
}

TEST_CASE("rewrite: redirects answer locally with Location, no service, no error", "[rewrite]") {
  RewriteEnv env;
  const std::string m = marker("RWR");
  Client c(env.berth->port());
  Response r = c.request(make_request("GET", "/a/b?m=" + m, "moved.test"));
  INFO(r.raw_head << r.body);
  CHECK(r.status == 301);
  CHECK(r.header("location") == std::optional<std::string>("https://www.example.com/a/b?m=" + m));
  CHECK_FALSE(r.header("x-berth-error").has_value());
  // The connection stays usable.
  r = c.request(make_request("GET", "/p?q=1", "parts.test:8080"));
  CHECK(r.status == 302);  // the default
  CHECK(r.header("location") == std::optional<std::string>("http://parts.test:8080/new/p?was=q=1"));
  for (auto [host, code] : {std::pair{"see.test", 303}, {"tmp.test", 307}, {"perm.test", 308}}) {
    r = http_get(env.berth->port(), "/", host);
    CHECK(r.status == code);
    CHECK(r.header("location") == std::optional<std::string>("/x"));
  }
  CHECK(env.origin.seen(m) == 0);

  // A redirect route has no service: it shows service "", and no nameless service is listed.
  for (const char* path : {"/api/routes", "/api/status"}) {
    Response listed = http_get(env.berth->admin_port(), path, "127.0.0.1");
    REQUIRE(listed.status == 200);
    auto j = nlohmann::json::parse(listed.body);
    INFO(path << ": " << j.dump());
    bool redirect_listed = false;
    for (const auto& route : j["routes"])
      if (route["host"] == "moved.test") redirect_listed = route["service"] == "";
    CHECK(redirect_listed);
    REQUIRE(j["services"].size() == 1);
    CHECK(j["services"][0]["name"] == "s");
  }
  Response metrics = http_get(env.berth->admin_port(), "/metrics", "127.0.0.1");
  CHECK(metrics.body.find("\nberth_services 1\n") != std::string::npos);
}
