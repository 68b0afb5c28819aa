// Automatic HTTPS against a real ACME server (pebble.h: Debian's pebble and its DNS, started by
// each test on loopback; pebble validates at Berth's own plain and TLS listeners, and curl
// verifies what Berth serves against pebble's issuing CA).

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "bench/fake_docker_engine.h"
#include "env.h"
#include "pebble.h"

using namespace it;

namespace {

std::string acme_yaml(uint16_t http_port, uint16_t tls_port, const Pebble& p, const std::string& storage,
                      const std::string& challenge, const std::string& routes, Origin& origin) {
  return acme_base_yaml(http_port, tls_port, p, storage, challenge) +
         "routes:\n" + routes +
         "services:\n"
         "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
}

}  // namespace

TEST_CASE("acme: http-01 gets a certificate curl verifies, and a restart serves it from storage with no new order",
          "[acme][tls]") {
  Origin origin;
  REQUIRE(origin.ok());
  const uint16_t http_port = unused_port(), tls_port = unused_port();
  Pebble pebble(http_port, tls_port);
  TempDir state;
  const std::string storage = state.file("acme");
  const std::string yaml = acme_yaml(http_port, tls_port, pebble, storage, "http-01",
                                     "  - {name: app, host: [app.test, www.app.test], service: s, acme: true}\n", origin);
  std::string issued_log;
  {
    Berth berth(yaml);
    INFO(berth.error() << "\n" << tail(berth.log()));
    REQUIRE(berth.ok());
    nlohmann::json state_json;
    const bool valid = wait_acme(berth.admin_port(), "app.test", "state", "valid", 30s, &state_json);
    INFO("acme state: " << state_json.dump() << "\nberth: " << tail(berth.log()) << "\npebble: " << tail(pebble.log()));
    REQUIRE(valid);
    CHECK(state_json["not_after"].get<int64_t>() > std::time(nullptr));
    CHECK(state_json["error"] == "");
    const std::string bundle = pebble.trust_bundle();
    REQUIRE_FALSE(bundle.empty());
    // The TLS contexts are rebuilt on the control loop after the order: new handshakes get it.
    std::string out;
    CHECK(wait_until([&] { return curl_https(tls_port, "app.test", bundle, &out) == "status=200"; }, 5s, 100ms));
    INFO(out);
    CHECK(curl_https(tls_port, "www.app.test", bundle, &out) == "status=200");
    // A name with no ACME certificate still gets the default one.
    CHECK(served_issuer(tls_port, "other.test").find("berth-default") != std::string::npos);
    // Storage: a 0700 directory, 0600 keys.
    struct stat st {};
    REQUIRE(::stat(storage.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::stat((storage + "/account.key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((storage + "/certificates/app.test/key.pem").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    issued_log = berth.log();
    CHECK(count(issued_log, "event=acme_order_started") == 1);
    CHECK(count(issued_log, "event=acme_certificate_issued") == 1);
  }
  const size_t orders_before = count(pebble.log(), "POST /order-plz");
  const size_t finalizes_before = count(pebble.log(), "POST /finalize-order");
  {
    Berth again(yaml);
    INFO(again.error() << "\n" << tail(again.log()));
    REQUIRE(again.ok());
    // Served at once: the first handshake after "ready" already has pebble's certificate.
    const std::string bundle = pebble.trust_bundle();
    std::string out;
    CHECK(curl_https(tls_port, "app.test", bundle, &out) == "status=200");
    INFO(out);
    nlohmann::json s = acme_state(again.admin_port(), "app.test");
    REQUIRE(s.is_object());
    CHECK(s["state"] == "valid");
    std::this_thread::sleep_for(1500ms);  // the ACME thread's first look has passed
    CHECK(count(again.log(), "event=acme_certificate_loaded") == 1);
    CHECK(count(again.log(), "event=acme_order_started") == 0);
  }
  INFO(tail(pebble.log()));
  CHECK(orders_before >= 1);
  CHECK(finalizes_before >= 1);
  CHECK(count(pebble.log(), "POST /order-plz") == orders_before);
  CHECK(count(pebble.log(), "POST /finalize-order") == finalizes_before);
}

TEST_CASE("acme: a challenge that cannot be answered is reported in /api/routes and retried", "[acme][tls]") {
  Origin origin;
  REQUIRE(origin.ok());
  const uint16_t http_port = unused_port(), tls_port = unused_port();
  Pebble pebble(http_port, tls_port);
  // Pebble validates fail.test at 127.0.0.2, where nothing of Berth's listens.
  REQUIRE(pebble.add_a("fail.test", "127.0.0.2"));
  TempDir state;
  Berth berth(acme_yaml(http_port, tls_port, pebble, state.file("acme"), "http-01",
                        "  - {name: bad, host: fail.test, service: s, acme: true}\n", origin));
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  nlohmann::json s;
  const bool failed = wait_acme(berth.admin_port(), "fail.test", "state", "failed", 30s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << tail(berth.log()));
  REQUIRE(failed);
  CHECK(s["failures"] == 1);
  CHECK(s["error"].get<std::string>().find("fail.test") != std::string::npos);
  CHECK(s["error"].get<std::string>().find("invalid") != std::string::npos);
  CHECK(s["next_attempt"].get<int64_t>() >= std::time(nullptr) + 5);
  CHECK(berth.log().find("event=acme_order_failed") != std::string::npos);
  // Retried after the first backoff (10 s): a second failure, a longer wait.
  const bool retried = wait_acme(berth.admin_port(), "fail.test", "failures", 2, 25s, &s);
  INFO("acme state: " << s.dump());
  CHECK(retried);
  CHECK(count(berth.log(), "event=acme_order_started") == 2);
}

TEST_CASE("acme: tls-alpn-01 end to end", "[acme][tls]") {
  Origin origin;
  REQUIRE(origin.ok());
  const uint16_t http_port = unused_port(), tls_port = unused_port();
  Pebble pebble(http_port, tls_port);
  TempDir state;
  Berth berth(acme_yaml(http_port, tls_port, pebble, state.file("acme"), "tls-alpn-01",
                        "  - {name: alpn, host: alpn.test, service: s, acme: true}\n", origin));
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  nlohmann::json s;
  const bool valid = wait_acme(berth.admin_port(), "alpn.test", "state", "valid", 30s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << tail(berth.log()) << "\npebble: " << tail(pebble.log()));
  REQUIRE(valid);
  CHECK(berth.log().find("type=tls-alpn-01") != std::string::npos);
  const std::string bundle = pebble.trust_bundle();
  REQUIRE_FALSE(bundle.empty());
  std::string out;
  CHECK(wait_until([&] { return curl_https(tls_port, "alpn.test", bundle, &out) == "status=200"; }, 5s, 100ms));
  INFO(out);
}

// A container's label asks for a certificate, but the config has no acme: section: its route is
// served as it is (plain HTTP here), and the operator is told, in the log and in /api/routes.
TEST_CASE("acme: berth.tls.acme without an acme: section is reported, and the route still serves",
          "[acme][docker_fake]") {
  Origin origin{"NOACME"};
  REQUIRE(origin.ok());
  TempDir dir;
  fake_docker::FakeEngine engine(dir.file("docker.sock"), 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  fake_docker::Container c = fake_docker::routed_container(1, "wants-cert-1", "cert.labels.test", origin.port());
  c.labels["berth.tls.acme"] = "true";
  c.running = true;
  c.started_ns = c.created_ns;
  engine.add(c);
  engine.start();

  Berth berth(config_head(1) + "docker: {enabled: true, endpoint: \"unix://" + dir.file("docker.sock") + "\"}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "cert.labels.test").status == 200; }, 10s));
  CHECK(wait_until([&] { return berth.log().find("event=acme_not_configured") != std::string::npos; }, 5s));
  INFO(berth.log());
  CHECK(berth.log().find("host=cert.labels.test") != std::string::npos);
  auto j = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("acme_not_configured"));
  REQUIRE(j["acme_not_configured"].size() == 1);
  CHECK(j["acme_not_configured"][0]["host"] == "cert.labels.test");
  CHECK(j["acme_not_configured"][0]["source"].get<std::string>().find("wants-cert-1") != std::string::npos);
  CHECK_FALSE(j.contains("acme"));
}
