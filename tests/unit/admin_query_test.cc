// The admin listener's query-string reader (used by /api/explain and friends).
#include <catch2/catch.hpp>

#include "proxy/control/admin.h"

using berth::admin_query_param;

TEST_CASE("admin query: finds a parameter and percent-decodes it", "[admin]") {
  CHECK(admin_query_param("host=a.example&path=%2Fapi%2Fv1", "host") == "a.example");
  CHECK(admin_query_param("host=a.example&path=%2Fapi%2Fv1", "path") == "/api/v1");
  CHECK(admin_query_param("q=a+b", "q") == "a b");
  CHECK(admin_query_param("x=1&hostname=z&host=y", "host") == "y");
}

TEST_CASE("admin query: absent, empty and malformed escapes", "[admin]") {
  CHECK(admin_query_param("", "host").empty());
  CHECK(admin_query_param("host", "host").empty());
  CHECK(admin_query_param("host=", "host").empty());
  CHECK(admin_query_param("other=1", "host").empty());
  CHECK(admin_query_param("p=%zz%4", "p") == "%zz%4");
  CHECK(admin_query_param("p=100%", "p") == "100%");
}

TEST_CASE("admin host: a loopback admin listener answers localhost and IP addresses only", "[admin]") {
  using berth::admin_host_allowed;
  for (const char* ok : {"", "localhost", "LOCALHOST:9901", "localhost:1", "127.0.0.1", "127.0.0.1:9901",
                         "10.1.2.3:80", "[::1]", "[::1]:9901", "[2001:db8::1]:80"})
    CHECK(admin_host_allowed(ok));
  // Names an attacker's DNS could point at 127.0.0.1 after the page loaded (DNS rebinding).
  for (const char* refused : {"evil.example", "evil.example:9901", "localhost.evil.example", "127.0.0.1.nip.io:9901",
                              "berth", "admin:9901", "1.2.3"})
    CHECK_FALSE(admin_host_allowed(refused));
}
