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
