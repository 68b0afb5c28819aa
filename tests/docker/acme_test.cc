// Automatic HTTPS from container labels against a real engine and a real ACME server (pebble.h):
// a container labelled berth.tls.acme=true gets a certificate for its berth.host without anyone's
// help, curl verifies it with pebble's CA, and berth.tls.redirect=true sends plain HTTP to HTTPS
// while the http-01 challenge on the same host still passes on the plain listener.
#include <catch2/catch.hpp>

#include "engine.h"
#include "pebble.h"

using namespace dk;

TEST_CASE("docker: a container labelled berth.tls.acme=true gets a certificate from pebble, curl verifies it",
          "[docker][acme][tls]") {
  engine();
  const uint16_t http_port = fresh_port(), tls_port = fresh_port(), web_port = fresh_port();
  it::Pebble pebble(http_port, tls_port);
  it::TempDir state;
  const std::string yaml =
      it::acme_base_yaml(http_port, tls_port, pebble, state.file("acme"), "http-01") +
      "docker: {enabled: true, endpoint: \"" + engine().host + "\", empty_route_grace: 2s, reconnect_max: 1s}\n";
  it::Berth berth(yaml);
  INFO(berth.error() << "\n" << it::tail(berth.log()));
  REQUIRE(berth.ok());
  REQUIRE(it::wait_until([&] { return berth.log().find("event=docker_synced") != std::string::npos; }, 20s));

  Cleanup cleanup{{"acme-web"}};
  WebOptions o;
  o.labels = {{"berth.enable", "true"},
              {"berth.host", "secure.dk.test"},
              {"berth.port", std::to_string(web_port)},
              {"berth.tls.acme", "true"},
              {"berth.tls.redirect", "true"}};
  std::string error;
  REQUIRE_FALSE(run_web("acme-web", web_port, "secure", o, &error).empty());
  INFO(error);

  nlohmann::json s;
  const bool valid = it::wait_acme(berth.admin_port(), "secure.dk.test", "state", "valid", 45s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << it::tail(berth.log()) << "\npebble: " << it::tail(pebble.log()));
  REQUIRE(valid);
  CHECK(s["error"] == "");
  CHECK(s["not_after"].get<int64_t>() > std::time(nullptr));
  CHECK(it::count(berth.log(), "event=acme_certificate_issued") == 1);

  // New handshakes for the label's host get pebble's certificate, and curl verifies it.
  const std::string bundle = pebble.trust_bundle();
  REQUIRE_FALSE(bundle.empty());
  std::string out;
  CHECK(it::wait_until([&] { return it::curl_https(tls_port, "secure.dk.test", bundle, &out) == "status=200"; }, 5s,
                       100ms));
  INFO(out);
  CHECK(it::served_issuer(tls_port, "other.dk.test").find("berth-default") != std::string::npos);

  // Plain HTTP to the host is redirected (the challenge above passed on that same listener).
  it::Response r = get(http_port, "secure.dk.test", "/page?x=1");
  CHECK(r.status == 308);
  CHECK(r.header("location") == std::optional<std::string>("https://secure.dk.test/page?x=1"));

  // The container goes, and so does its route.
  REQUIRE(docker({"stop", "-t", "1", "acme-web"}).ok());
  CHECK(wait_routes(berth.admin_port(), [](const nlohmann::json& j) { return !has_route(j, "secure.dk.test"); }, 10s));
}
