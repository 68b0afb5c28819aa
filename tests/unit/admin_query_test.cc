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

TEST_CASE("admin documents: one that took long to build answers the next second's requests", "[admin]") {
  uint64_t now = 1'000;
  int builds = 0;
  uint64_t cost = 200;  // what a build takes, in ms of the fake clock
  auto handler = berth::reuse_slow_documents(
      [&](const berth::AdminRequest&) {
        ++builds;
        now += cost;
        return berth::AdminResponse{200, "application/json", "doc " + std::to_string(builds)};
      },
      50, 1000, [&] { return now; }, [&] { return now; });
  berth::AdminRequest plain{"/api/status", ""};
  CHECK(handler(plain).body == "doc 1");  // built, 200 ms: kept
  now += 500;
  CHECK(handler(plain).body == "doc 1");  // reused within the second
  CHECK(builds == 1);
  CHECK(handler(berth::AdminRequest{"/api/status", "x=1"}).body == "doc 2");  // a query: always built
  CHECK(handler(plain).body == "doc 1");  // and the kept one stays
  now += 400;                             // over a second since doc 1 was built
  CHECK(handler(plain).body == "doc 3");
  // Quick builds are never reused.
  cost = 10;
  now += 2'000;
  CHECK(handler(plain).body == "doc 4");
  CHECK(handler(plain).body == "doc 5");
  CHECK(builds == 5);
  // A slow answer to a query is never given to another query (/api/status?filter=a, then =b),
  // nor to the same one again.
  cost = 200;
  int doc = 6;
  for (const char* query : {"filter=a", "filter=b", "filter=a"})
    CHECK(handler(berth::AdminRequest{"/api/status", query}).body == "doc " + std::to_string(doc++));
  CHECK(builds == 8);
}
