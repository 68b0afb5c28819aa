// Path sanitizing through the real binary: a route's access control cannot be passed by writing
// its path another way, and the instance gets the path that was routed.
#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <string>

#include "env.h"

using namespace it;

namespace {

struct PathEnv : OriginEnv {
  explicit PathEnv(const std::string& extra = "")
      : OriginEnv("ORIGIN",
                  config_head(1) + extra +
                      "routes:\n"
                      "  - {name: admin, host: p.test, path: /admin, service: app, access: {deny: [\"127.0.0.0/8\"]}}\n"
                      "  - {name: site, host: p.test, service: app}\n",
                  "app") {}
};

}  // namespace

TEST_CASE("request path: other spellings of a protected path reach its route, not another",
          "[request_path]") {
  PathEnv env;
  const uint16_t port = env.berth->port();
  for (const char* path : {"/admin", "/%61dmin", "/%61%64%6D%69%6E/x", "//admin", "/./admin", "/x/../admin",
                           "/x/%2e%2e/admin", "/%2E%2E/admin", "/public/./../admin/", "///admin?q=1"}) {
    INFO(path);
    const Response r = http_get(port, path, "p.test");
    CHECK(r.status == 403);
    CHECK(r.header("x-berth-error").value_or("") == "forbidden-address");
  }
  // Tomcat-style path parameters on a dot segment: refused outright.
  const Response semi = http_get(port, "/public/..;/admin", "p.test");
  CHECK(semi.status == 400);
  CHECK(http_get(port, "/public\\..\\admin", "p.test").status == 400);
  CHECK(http_get(port, "/a%zz", "p.test").status == 400);

  // What the instance gets: the sanitized path (the origin shows it without the query).
  const Response ok = http_get(port, "//public/x/../%7Euser/a%c3%a9b?q=/../%61%2F", "p.test");
  CHECK(ok.status == 200);
  CHECK(ok.body == "origin=ORIGIN path=/public/~user/a%C3%A9b\n");
}

TEST_CASE("request path: encoded separators are refused unless allowed, and the setting reloads",
          "[request_path]") {
  PathEnv env;
  const uint16_t port = env.berth->port();
  // "/public%2F..%2Fadmin" is one segment to Berth (the catch-all route) and "/admin" to a
  // server that decodes %2F before resolving dot segments: refused, and never sent on.
  for (const char* encoded : {"%2F..%2F", "%2f..%2f", "%5C..%5C", "%00", "%3B", "%252e%252e/", "%3F", "%23"}) {
    const std::string m = marker("ENC");
    const std::string path = "/" + m + "/public" + encoded + "admin";
    INFO(path);
    const Response r = http_get(port, path, "p.test");
    CHECK(r.status == 400);
    CHECK(r.header("x-berth-error").value_or("") == "bad-request");
    CHECK(env.origin.seen(m) == 0);
  }
  // The query is not the path: encodings there are the instance's business.
  CHECK(http_get(port, "/public?next=%2Fadmin%3Fx%23y", "p.test").status == 200);

  // Allowed (SIGHUP): kept encoded, so it still does not reach /admin's route.
  REQUIRE(env.berth->rewrite_config(read_file(env.berth->config_path()) +
                                    "encoded_characters: {allow_encoded_slash: true}\n"));
  REQUIRE(env.berth->process().signal(SIGHUP));
  REQUIRE(env.berth->log_shows("event=config_reloaded"));
  const Response slash = http_get(port, "/public%2f..%2Fadmin", "p.test");
  CHECK(slash.status == 200);
  CHECK(slash.body == "origin=ORIGIN path=/public%2F..%2Fadmin\n");
  CHECK(http_get(port, "/public%5C..%5Cadmin", "p.test").status == 400);  // the others stay refused
}

TEST_CASE("request path: sanitize_path false routes and forwards the path byte for byte", "[request_path]") {
  PathEnv env("sanitize_path: false\n");
  const Response r = http_get(env.berth->port(), "//admin/./x", "p.test");
  CHECK(r.status == 200);
  CHECK(r.body == "origin=ORIGIN path=//admin/./x\n");
  CHECK(http_get(env.berth->port(), "/admin", "p.test").status == 403);
}

TEST_CASE("request path: a route's encoded_characters overrides the top level's for that route",
          "[request_path]") {
  OriginEnv env("ORIGIN",
                config_head(1) +
                    "encoded_characters: {allow_encoded_semicolon: true}\n"
                    "routes:\n"
                    "  - {name: projects, host: e.test, path: /projects, service: s,"
                    " encoded_characters: {allow_encoded_slash: true}}\n"
                    "  - {name: strict, host: e.test, path: /strict, service: s,"
                    " encoded_characters: {allow_encoded_semicolon: false}}\n"
                    "  - {name: admin, host: e.test, path: /admin, service: s, access: {deny: [\"127.0.0.0/8\"]}}\n"
                    "  - {name: site, host: e.test, service: s}\n");
  const uint16_t port = env.berth->port();
  // An API that puts encoded slashes in its IDs, on its own route.
  const Response id = http_get(port, "/projects/group%2fname/issues", "e.test");
  CHECK(id.status == 200);
  CHECK(id.body == "origin=ORIGIN path=/projects/group%2Fname/issues\n");
  CHECK(http_get(port, "/projects/a%5Cb", "e.test").status == 400);  // only %2F is allowed there
  // Elsewhere %2F stays refused: the catch-all route does not let it reach /admin's instance.
  const std::string m = marker("ENC");
  const Response bypass = http_get(port, "/" + m + "/public%2F..%2F..%2Fadmin", "e.test");
  CHECK(bypass.status == 400);
  CHECK(env.origin.seen(m) == 0);
  // The top level allows %3B; the strict route refuses it again.
  CHECK(http_get(port, "/site/a%3Bb", "e.test").status == 200);
  CHECK(http_get(port, "/strict/a%3Bb", "e.test").status == 400);
  // /api/explain says the same (its path parameter is URL-decoded once: %252F is %2F).
  const Response x = http_get(env.berth->admin_port(), "/api/explain?host=e.test&path=/strict/a%253Bb", "localhost");
  CHECK(x.status == 400);
  CHECK(x.body.find("refused on route strict (encoded semicolon (%3B) in path)") != std::string::npos);
  CHECK(http_get(env.berth->admin_port(), "/api/explain?host=e.test&path=/projects/a%252Fb", "localhost").status == 200);
}

TEST_CASE("request path: path parameters cannot lead a protected prefix to another route", "[request_path]") {
  OriginEnv env("ORIGIN",
                config_head(1) +
                    "routes:\n"
                    "  - {name: admin, host: p.test, path: /admin/, service: app, access: {deny: [\"127.0.0.0/8\"]}}\n"
                    "  - {name: private, host: p.test, path: /api/private, service: app, access: {deny: [\"127.0.0.0/8\"]}}\n"
                    "  - {name: site, host: p.test, service: app}\n",
                "app");
  const uint16_t port = env.berth->port();
  // A server that drops path parameters reads these as /admin/secret and /api/private/x; to
  // routes they would have been /admin;... and /api;...: refused, and never sent on.
  for (const std::string prefix : {"/admin;", "/api;", "/api/;"}) {
    const std::string m = marker("PARAM");
    const std::string path = prefix + m + (prefix == "/admin;" ? "/secret" : "/private/x");
    INFO(path);
    const Response r = http_get(port, path, "p.test");
    CHECK(r.status == 400);
    CHECK(r.header("x-berth-error").value_or("") == "bad-request");
    CHECK(env.origin.seen(m) == 0);
  }
  // Parameters on the last segment are routed without them, and sent on as they came.
  for (const char* path : {"/admin/secret;jsessionid=1", "/api/private;v=1?q=1"}) {
    INFO(path);
    const Response r = http_get(port, path, "p.test");
    CHECK(r.status == 403);
    CHECK(r.header("x-berth-error").value_or("") == "forbidden-address");
  }
  const Response page = http_get(port, "/public/page;jsessionid=A1?q=1", "p.test");
  CHECK(page.status == 200);
  CHECK(page.body == "origin=ORIGIN path=/public/page;jsessionid=A1\n");
}

TEST_CASE("request heads another server would read differently are refused before any route", "[request_path]") {
  // Each names the protected /admin or p.test in a way a common backend reads as such, while a
  // route would have seen something else: a fragment (cut by frameworks), a lower-case method
  // (upper-cased by frameworks), a comma in Host (the last item of X-Forwarded-Host).
  PathEnv env;
  const uint16_t port = env.berth->port();
  for (const std::string& head : {std::string("GET /admin#.png HTTP/1.1\r\nHost: p.test\r\n"),
                                  std::string("get /admin HTTP/1.1\r\nHost: p.test\r\n"),
                                  std::string("GET /x HTTP/1.1\r\nHost: x,p.test\r\n"),
                                  std::string("GET /x HTTP/1.1\r\nHost: p..test\r\n")}) {
    const std::string m = marker("HEAD");
    INFO(head);
    Client c(port);
    REQUIRE(c.connected());
    const Response r = c.request(head + "X-Marker: " + m + "\r\nConnection: close\r\n\r\n");
    CHECK(r.status == 400);
    CHECK(env.origin.seen(m) == 0);
  }
}

TEST_CASE("a Host longer than a DNS name is refused, not routed past a wildcard route's checks", "[request_path]") {
  // 257 characters under *.wild.test matched no route host (the matcher's buffer is 256) and went
  // to the any-host route, while the instance took it for a name under wild.test.
  OriginEnv env("ORIGIN",
                config_head(1) +
                    "routes:\n"
                    "  - {name: wild, host: \"*.wild.test\", service: app, access: {deny: [\"127.0.0.0/8\"]}}\n"
                    "  - {name: any, service: app}\n",
                "app");
  const uint16_t port = env.berth->port();
  const std::string m = marker("LONG");
  for (size_t total : {size_t{253}, size_t{254}, size_t{257}}) {
    const std::string host = std::string(total - 10, 'a') + ".wild.test";
    REQUIRE(host.size() == total);
    INFO(total);
    const Response r = http_get(port, "/x?" + m, host);
    CHECK(r.status == (total == 253 ? 403 : 400));
  }
  CHECK(env.origin.seen(m) == 0);
}
