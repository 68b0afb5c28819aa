// Path sanitizing through the real binary: a route's access control cannot be passed by writing
// its path another way, and the instance gets the path that was routed.
#include <catch2/catch.hpp>

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
  const Response ok = http_get(port, "//public/x/../%7Euser/a%2fb?q=/../%61", "p.test");
  CHECK(ok.status == 200);
  CHECK(ok.body == "origin=ORIGIN path=/public/~user/a%2Fb\n");
}

TEST_CASE("request path: sanitize_path false routes and forwards the path byte for byte", "[request_path]") {
  PathEnv env("sanitize_path: false\n");
  const Response r = http_get(env.berth->port(), "//admin/./x", "p.test");
  CHECK(r.status == 200);
  CHECK(r.body == "origin=ORIGIN path=//admin/./x\n");
  CHECK(http_get(env.berth->port(), "/admin", "p.test").status == 403);
}
