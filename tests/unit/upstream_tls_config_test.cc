// services.NAME.tls in the config file: the keys and their defaults, and the refusals that need
// no certificate files (those with files are in tests/integration/upstream_tls_test.cc).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "config/config.h"
#include "tests/unit/config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::load;

namespace {

LoadResult with_tls(const std::string& lines) {
  return load("listeners: [\"127.0.0.1:8080\"]\nservices:\n  api:\n    endpoints: [\"127.0.0.1:8443\"]\n" + lines);
}

}  // namespace

TEST_CASE("upstream tls config: keys and defaults", "[config][tls]") {
  SECTION("a tls map turns it on with verification and the system store") {
    LoadResult r = with_tls("    tls: {server_name: api.internal}\n");
    INFO(all_errors(r));
    REQUIRE(r.ok());
    const UpstreamTls& t = r.config->services[0].policy.tls;
    CHECK(t.enabled);
    CHECK(t.verify);
    CHECK(t.ca.empty());
    CHECK(t.server_name == "api.internal");
    CHECK(t.cert.empty());
    CHECK(t.key.empty());
  }
  SECTION("enabled: false and verify: false") {
    LoadResult r = with_tls("    tls: {enabled: false, verify: false}\n");
    INFO(all_errors(r));
    REQUIRE(r.ok());
    CHECK_FALSE(r.config->services[0].policy.tls.enabled);
    CHECK_FALSE(r.config->services[0].policy.tls.verify);
  }
  SECTION("no tls map: plain") {
    LoadResult r = with_tls("");
    REQUIRE(r.ok());
    CHECK_FALSE(r.config->services[0].policy.tls.enabled);
  }
}

TEST_CASE("upstream tls config: refusals point at the value", "[config][tls][errors]") {
  struct Case {
    const char* lines;
    const char* error;
  };
  const Case cases[] = {
      {"    tls: {verify: sometimes}\n", "t.yaml:5:19: services.api.tls.verify: expected true or false"},
      {"    tls: {srv: x}\n", "t.yaml:5:11: unknown key 'srv' in services.api.tls"},
      {"    tls: {ca: /nonexistent/ca.crt}\n", "t.yaml:5:15: services.api.tls.ca: cannot read '/nonexistent/ca.crt'"},
      {"    tls: true\n", "t.yaml:5:10: services.api.tls: expected a map"},
      {"    tls: {server_name: a}\n    health: {path: /h}\n", "t.yaml:3:3: services.api: active health checks"},
  };
  for (const Case& c : cases) {
    LoadResult r = with_tls(c.lines);
    const std::string errors = all_errors(r);
    INFO(c.lines << errors);
    CHECK_FALSE(r.ok());
    CHECK(errors.find(c.error) != std::string::npos);
  }
}

TEST_CASE("upstream tls config: server_name must be a host name or an IP address", "[config][tls][errors]") {
  for (const char* bad : {"'a b'", "-bad-", "x..y", "'[::1]'", "a.-b", "'*.w.test'", "'a/b'", "999.1.1.1", "api.123"}) {
    LoadResult r = with_tls(std::string("    tls: {server_name: ") + bad + "}\n");
    const std::string errors = all_errors(r);
    INFO(bad << ": " << errors);
    CHECK_FALSE(r.ok());
    CHECK(errors.find("t.yaml:5:24: services.api.tls.server_name: ") != std::string::npos);
  }
  for (const char* good : {"api.internal", "api.internal.", "a_b.svc", "127.0.0.1", "'::1'", "x", "1a.example"}) {
    LoadResult r = with_tls(std::string("    tls: {server_name: ") + good + "}\n");
    INFO(good << ": " << all_errors(r));
    CHECK(r.ok());
  }
  // A fully qualified name is sent and checked without its dot: certificates name none.
  LoadResult fqdn = with_tls("    tls: {server_name: api.internal.}\n");
  REQUIRE(fqdn.ok());
  CHECK(fqdn.config->services[0].policy.tls.server_name == "api.internal");
  // "" is the default written out: the instance's IP address.
  LoadResult empty = with_tls("    tls: {server_name: \"\"}\n");
  INFO(all_errors(empty));
  REQUIRE(empty.ok());
  CHECK(empty.config->services[0].policy.tls.server_name.empty());
}

TEST_CASE("upstream tls config: verifying against a system CA store that is missing is refused at load",
          "[config][tls][errors]") {
  // OpenSSL takes a missing store for an empty one: every handshake would fail. The file (or
  // SSL_CERT_FILE, as OpenSSL reads it) is checked when a service verifies without its own 'ca'.
  const char* before = std::getenv("SSL_CERT_FILE");
  const std::string saved = before ? before : "";
  ::setenv("SSL_CERT_FILE", "/nonexistent/berth-ca-store.pem", 1);
  LoadResult missing = with_tls("    tls: {server_name: api.internal}\n");
  LoadResult unverified = with_tls("    tls: {server_name: api.internal, verify: false}\n");
  if (before) ::setenv("SSL_CERT_FILE", saved.c_str(), 1);
  else ::unsetenv("SSL_CERT_FILE");
  const std::string errors = all_errors(missing);
  INFO(errors);
  CHECK_FALSE(missing.ok());
  CHECK(errors.find("t.yaml:5:10: services.api.tls: no 'ca', and the system CA store "
                    "'/nonexistent/berth-ca-store.pem' cannot be read (install ca-certificates, or set 'ca')") !=
        std::string::npos);
  CHECK(unverified.ok());
  CHECK(with_tls("    tls: {server_name: api.internal}\n").ok());  // the real store, from ca-certificates
}
