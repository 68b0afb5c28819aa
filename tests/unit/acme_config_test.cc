// acme: in the config file, routes' acme: true and the berth.tls.acme label: what is accepted
// and what is refused with file:line.
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "discovery/docker_labels.h"
#include "proxy/acme/acme_crypto.h"
#include "tests/unit/config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::load;

namespace {

// A TLS listener whose certificate files exist (the loader checks that they load).
struct TlsListenerFiles {
  std::string dir;
  TlsListenerFiles() {
    char tmpl[] = "/tmp/berth-acme-config-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string cert, key, error;
    REQUIRE(berth::acme::make_alpn_challenge_certificate("default.test", "x", &cert, &key, &error));
    std::ofstream(dir + "/c.pem") << cert;
    std::ofstream(dir + "/k.pem") << key;
  }
  ~TlsListenerFiles() {
    ::unlink((dir + "/c.pem").c_str());
    ::unlink((dir + "/k.pem").c_str());
    ::rmdir(dir.c_str());
  }
  std::string listeners() const {
    return "listeners:\n  - \"127.0.0.1:8080\"\n  - address: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n"
           "        - {cert: " + dir + "/c.pem, key: " + dir + "/k.pem}\n";
  }
};

const char* const kServices = "services:\n  web: {endpoints: [\"127.0.0.1:9000\"]}\n";

}  // namespace

TEST_CASE("acme config: every key, and a route asking for a certificate", "[config][acme]") {
  TlsListenerFiles files;
  LoadResult r = load(files.listeners() + kServices +
                      "acme:\n"
                      "  directory: https://127.0.0.1:14000/dir\n"
                      "  email: ops@example.com\n"
                      "  storage: /var/lib/berth/acme\n"
                      "  challenge: tls-alpn-01\n"
                      "  renew_before: 240h\n"
                      "routes:\n"
                      "  - {host: [app.test, www.app.test], service: web, acme: true}\n"
                      "  - {host: other.test, service: web}\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const Acme& acme = r.config->acme;
  CHECK(acme.enabled);
  CHECK(acme.directory == "https://127.0.0.1:14000/dir");
  CHECK(acme.email == "ops@example.com");
  CHECK(acme.storage == "/var/lib/berth/acme");
  CHECK(acme.ca_bundle.empty());
  CHECK(acme.challenge == Acme::Challenge::kTlsAlpn01);
  CHECK(acme.renew_before == std::chrono::hours(240));
  CHECK(r.config->routes[0].acme);
  CHECK_FALSE(r.config->routes[1].acme);

  LoadResult defaults = load(files.listeners() + kServices + "acme: {directory: \"https://ca.test/dir\", storage: /s}\n");
  INFO(all_errors(defaults));
  REQUIRE(defaults.ok());
  CHECK(defaults.config->acme.challenge == Acme::Challenge::kHttp01);
  CHECK(defaults.config->acme.renew_before == std::chrono::hours(720));
  CHECK_FALSE(load(files.listeners()).config->acme.enabled);
}

TEST_CASE("acme config: refusals carry file:line", "[config][acme]") {
  TlsListenerFiles files;
  const std::string base = files.listeners() + kServices;  // 8 lines
  SECTION("a route with acme: true and no acme: section") {
    LoadResult r = load(base + "routes:\n  - host: a.test\n    service: web\n    acme: true\n");
    REQUIRE_FALSE(r.ok());
    CHECK(all_errors(r) == "t.yaml:12:11: routes[0].acme: needs the top-level 'acme:' section (directory, storage, ...)\n");
  }
  SECTION("an unknown challenge") {
    LoadResult r = load(base + "acme:\n  directory: https://ca.test/dir\n  storage: /s\n  challenge: dns-01\n");
    CHECK(all_errors(r) == "t.yaml:12:14: acme.challenge: must be http-01 or tls-alpn-01, got 'dns-01'\n");
  }
  SECTION("a bad renew_before") {
    LoadResult r = load(base + "acme:\n  directory: https://ca.test/dir\n  storage: /s\n  renew_before: soon\n");
    CHECK(all_errors(r) == "t.yaml:12:17: acme.renew_before: expected a duration such as 500ms, 10s, 5m, 1h or a whole "
                           "number of seconds (at most 87600h), got 'soon'\n");
  }
  SECTION("a wildcard host over http-01") {
    LoadResult r = load(base + "acme: {directory: \"https://ca.test/dir\", storage: /s}\n"
                               "routes:\n  - host: [a.test, \"*.a.test\"]\n    service: web\n    acme: true\n");
    CHECK(all_errors(r) == "t.yaml:11:20: routes[0].host: wildcard '*.a.test' cannot get a certificate over http-01 "
                           "(only dns-01 proves wildcards)\n");
  }
  SECTION("no TLS listener") {
    LoadResult r = load(std::string("listeners: [\"127.0.0.1:8080\"]\n") + kServices +
                        "acme:\n  directory: https://ca.test/dir\n  storage: /s\n"
                        "routes:\n  - {host: a.test, service: web, acme: true}\n");
    CHECK(all_errors(r) == "t.yaml:5:3: acme: needs a listener with 'tls:' to serve the certificates on "
                           "(routes ask for acme: true)\n");
  }
  SECTION("missing directory and storage, a plain-HTTP directory") {
    LoadResult r = load(base + "acme:\n  email: ops@example.com\n");
    CHECK(all_errors(r) == "t.yaml:10:3: acme: missing required key 'directory' (the ACME directory URL)\n"
                           "t.yaml:10:3: acme: missing required key 'storage' (a directory for keys and certificates)\n");
    LoadResult http = load(base + "acme: {directory: \"http://ca.test/dir\", storage: /s}\n");
    CHECK(all_errors(http).find("acme.directory: expected the ACME directory URL (https://...)") != std::string::npos);
  }
}

TEST_CASE("docker labels: berth.tls.acme=true asks for a certificate for the container's routes", "[docker][labels][acme]") {
  using namespace berth::discovery;
  ContainerFacts c;
  c.id = std::string(64, 'a');
  c.name = "web-1";
  c.running = true;
  c.network_mode = "host";
  c.labels = {{"berth.enable", "true"}, {"berth.host", "app.test,www.app.test"}, {"berth.port", "80"},
              {"berth.tls.acme", "true"}};
  ContainerSpec spec = parse_container_labels(c, {});
  REQUIRE(spec.kind == ContainerSpec::Kind::kRouted);
  REQUIRE(spec.routes.size() == 1);
  CHECK(spec.routes[0].acme);
  CHECK(spec.routes[0].hosts == std::vector<std::string>{"app.test", "www.app.test"});
  c.labels["berth.tls.acme"] = "false";
  CHECK_FALSE(parse_container_labels(c, {}).routes[0].acme);
  c.labels["berth.tls.acme"] = "maybe";
  ContainerSpec bad = parse_container_labels(c, {});
  CHECK(bad.kind == ContainerSpec::Kind::kRejected);
  CHECK(bad.label == "berth.tls.acme");
}
