// Automatic HTTPS against a real ACME server (pebble.h: Debian's pebble and its DNS, started by
// each test on loopback; pebble validates at Berth's own plain and TLS listeners, and curl
// verifies what Berth serves against pebble's issuing CA).

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
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

// An origin, pebble validating at two free ports for Berth's plain and TLS listeners, and a
// directory for Berth's ACME storage.
struct AcmeSetup {
  Origin origin;
  uint16_t http_port = unused_port(), tls_port = unused_port();
  Pebble pebble;
  TempDir state;
  explicit AcmeSetup(int validity_s = 0) : pebble(http_port, tls_port, validity_s) { REQUIRE(origin.ok()); }
};

// The one directory under storage's certificates/ whose name starts with `prefix` ("" if none).
std::string stored_certificate_dir(const std::string& storage, const std::string& prefix) {
  std::string found;
  if (DIR* d = ::opendir((storage + "/certificates").c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name).starts_with(prefix)) found = storage + "/certificates/" + e->d_name;
    ::closedir(d);
  }
  return found;
}

}  // namespace

TEST_CASE("acme: http-01 gets a certificate curl verifies, and a restart serves it from storage with no new order",
          "[acme][tls]") {
  AcmeSetup setup;
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  const std::string storage = state.file("acme");
  const std::string yaml = acme_yaml(http_port, tls_port, pebble, storage, "http-01",
                                     "  - {name: app, host: [app.test, www.app.test], service: s, acme: true}\n", origin);
  std::string issued_log, cert_dir;
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
    // Two names: the directory is the first and a digest of both (another route whose first
    // host is app.test keeps its own).
    cert_dir = stored_certificate_dir(storage, "app.test+");
    REQUIRE_FALSE(cert_dir.empty());
    REQUIRE(::stat((cert_dir + "/key.pem").c_str(), &st) == 0);
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
  // Stored by an older Berth under the first host alone: still served, with no new order.
  REQUIRE(std::rename(cert_dir.c_str(), (storage + "/certificates/app.test").c_str()) == 0);
  {
    Berth older(yaml);
    INFO(older.error() << "\n" << tail(older.log()));
    REQUIRE(older.ok());
    std::string out;
    CHECK(curl_https(tls_port, "www.app.test", pebble.trust_bundle(), &out) == "status=200");
    INFO(out);
    std::this_thread::sleep_for(1500ms);
    CHECK(count(older.log(), "event=acme_certificate_loaded") == 1);
    CHECK(count(older.log(), "event=acme_order_started") == 0);
    // ...and written under its own name, out of the way of a route whose one host is app.test.
    nlohmann::json s;
    CHECK(wait_acme(older.admin_port(), "app.test", "stored", true, 5s, &s));
    CHECK(stored_certificate_dir(storage, "app.test+") == cert_dir);
    CHECK(count(older.log(), "event=acme_certificate_stored") == 1);
  }
  INFO(tail(pebble.log()));
  CHECK(orders_before >= 1);
  CHECK(finalizes_before >= 1);
  CHECK(count(pebble.log(), "POST /order-plz") == orders_before);
  CHECK(count(pebble.log(), "POST /finalize-order") == finalizes_before);
}

TEST_CASE("acme: a certificate issued after a reload dropped a TLS listener whose files are gone is served",
          "[acme][tls]") {
  // The dropped listener runs on with what it had until a restart; its files are not read
  // again, and the listeners that stay take the new certificate.
  AcmeSetup setup;
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  const std::string storage = state.file("acme");
  TempDir gone;
  const std::string crt = gone.file("extra.pem"), key = gone.file("extra.key");
  REQUIRE(write_file(crt, read_file(pebble.dir.file("default.pem"))));
  REQUIRE(write_file(key, read_file(pebble.dir.file("default.key"))));
  const uint16_t extra_port = unused_port();
  const std::string base = acme_base_yaml(http_port, tls_port, pebble, storage, "http-01");
  const std::string services = "services:\n  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  std::string with_extra = base;
  with_extra.insert(std::string("listeners:\n").size(), "  - address: \"127.0.0.1:" + std::to_string(extra_port) +
                                                           "\"\n    tls: {certificates: [{cert: \"" + crt +
                                                           "\", key: \"" + key + "\"}]}\n");
  Berth berth(with_extra + "routes:\n  - {name: plain, host: plain.test, service: s}\n" + services);
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  ::unlink(crt.c_str());
  ::unlink(key.c_str());
  REQUIRE(berth.rewrite_config(base + "routes:\n  - {name: app, host: app.test, service: s, acme: true}\n" + services));
  REQUIRE(berth.process().signal(SIGHUP));
  nlohmann::json state_json;
  const bool valid = wait_acme(berth.admin_port(), "app.test", "state", "valid", 30s, &state_json);
  INFO("acme state: " << state_json.dump() << "\nberth: " << tail(berth.log()) << "\npebble: " << tail(pebble.log()));
  REQUIRE(valid);
  const std::string bundle = pebble.trust_bundle();
  std::string out;
  CHECK(wait_until([&] { return curl_https(tls_port, "app.test", bundle, &out) == "status=200"; }, 5s, 100ms));
  INFO(out);
  CHECK(berth.log().find("event=config_reload_failed") == std::string::npos);
}

TEST_CASE("acme: a certificate shorter-lived than renew_before is renewed once a third of it is left, not at once",
          "[acme][tls]") {
  AcmeSetup setup(3600);  // one-hour certificates; renew_before is 720h
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  Berth berth(acme_yaml(http_port, tls_port, pebble, state.file("acme"), "http-01",
                        "  - {name: a, host: a.test, service: s, acme: true}\n"
                        "  - {name: b, host: b.test, service: s, acme: true}\n",
                        origin));
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  nlohmann::json a, b;
  REQUIRE(wait_acme(berth.admin_port(), "a.test", "state", "valid", 30s, &a));
  // The other route is not starved by the first one's renewals.
  const bool b_valid = wait_acme(berth.admin_port(), "b.test", "state", "valid", 30s, &b);
  INFO("b: " << b.dump() << "\nberth: " << tail(berth.log()));
  REQUIRE(b_valid);
  std::this_thread::sleep_for(3s);  // time for a loop to show
  a = acme_state(berth.admin_port(), "a.test");
  INFO("a: " << a.dump());
  const int64_t not_after = a["not_after"].get<int64_t>(), renew_at = a["renew_at"].get<int64_t>();
  CHECK(not_after - renew_at >= 1100);  // a third of an hour ahead
  CHECK(not_after - renew_at <= 1300);
  CHECK(renew_at > std::time(nullptr) + 1800);
  CHECK(a["stored"] == true);
  CHECK(count(berth.log(), "event=acme_order_started") == 2);
  CHECK(count(berth.log(), "event=acme_certificate_issued") == 2);
}

TEST_CASE("acme: storage that cannot be used is reported and tried again; an issued certificate is served even "
          "when it cannot be stored, and not ordered again",
          "[acme][tls]") {
  AcmeSetup setup;
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  const std::string storage = state.file("acme");
  REQUIRE(write_file(storage, "a file where the storage directory should be\n"));
  Berth berth(acme_yaml(http_port, tls_port, pebble, storage, "http-01",
                        "  - {name: app, host: app.test, service: s, acme: true}\n", origin));
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  // At start: failed, with the reason, rather than pending for ever.
  nlohmann::json s;
  REQUIRE(wait_acme(berth.admin_port(), "app.test", "state", "failed", 5s, &s));
  INFO("acme state: " << s.dump());
  CHECK(s["error"].get<std::string>().find("storage: cannot create") != std::string::npos);
  CHECK(s["next_attempt"].get<int64_t>() > std::time(nullptr));
  CHECK(count(berth.log(), "event=acme_storage_failed") == 1);

  // The volume arrives, but the certificate's own directory cannot be made (a file is in the
  // way): the next try (10 s) uses the storage, the order succeeds, and the certificate is
  // served from memory.
  REQUIRE(std::remove(storage.c_str()) == 0);
  REQUIRE(::mkdir(storage.c_str(), 0700) == 0);
  REQUIRE(::mkdir((storage + "/certificates").c_str(), 0700) == 0);
  REQUIRE(write_file(storage + "/certificates/app.test", "in the way\n"));
  const bool valid = wait_acme(berth.admin_port(), "app.test", "state", "valid", 30s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << tail(berth.log()));
  REQUIRE(valid);
  CHECK(s["stored"] == false);
  CHECK(s["error"].get<std::string>().find("issued, not stored") != std::string::npos);
  CHECK(berth.log_shows("event=acme_storage_ready"));
  const std::string bundle = pebble.trust_bundle();
  std::string out;
  CHECK(wait_until([&] { return curl_https(tls_port, "app.test", bundle, &out) == "status=200"; }, 5s, 100ms));
  INFO(out);

  // The way is cleared: written at the next try, with no second order.
  REQUIRE(std::remove((storage + "/certificates/app.test").c_str()) == 0);
  const bool stored = wait_acme(berth.admin_port(), "app.test", "stored", true, 20s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << tail(berth.log()));
  CHECK(stored);
  CHECK(s["error"] == "");
  struct stat st {};
  CHECK(::stat((storage + "/certificates/app.test/chain.pem").c_str(), &st) == 0);
  CHECK(count(berth.log(), "event=acme_certificate_stored") == 1);
  CHECK(count(berth.log(), "event=acme_order_started") == 1);
  CHECK(count(pebble.log(), "POST /finalize-order") == 1);
}

TEST_CASE("acme: an ACME server that does not answer does not hold up the exit", "[acme][tls]") {
  // A listener that never answers (connections complete in its backlog): the ACME thread waits
  // in its TLS handshake's read, with a 10 s timeout, when SIGTERM comes.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(silent >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(silent, 16) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::shared_ptr<void> close_silent(nullptr, [silent](void*) { ::close(silent); });
  AcmeSetup setup;
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  std::string yaml = acme_yaml(http_port, tls_port, pebble, state.file("acme"), "http-01",
                               "  - {name: app, host: app.test, service: s, acme: true}\n", origin);
  const std::string real = pebble.directory(), fake = "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/dir";
  yaml.replace(yaml.find(real), real.size(), fake);
  Berth berth(yaml);
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  REQUIRE(berth.log_shows("event=acme_started", 10s));
  std::this_thread::sleep_for(1s);  // the handshake is under way; its answer is awaited
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(berth.process().signal(SIGTERM));
  const bool exited = berth.process().wait_exit(8s).has_value();
  const auto took = std::chrono::steady_clock::now() - start;
  INFO("exit took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n" << tail(berth.log()));
  REQUIRE(exited);
  CHECK(took < 3s);
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
  CHECK(berth.log_shows("event=acme_order_failed"));
  // Retried after the first backoff (10 s): a second failure, a longer wait.
  const bool retried = wait_acme(berth.admin_port(), "fail.test", "failures", 2, 25s, &s);
  INFO("acme state: " << s.dump());
  CHECK(retried);
  CHECK(count(berth.log(), "event=acme_order_started") == 2);
}

TEST_CASE("acme: tls-alpn-01 end to end", "[acme][tls]") {
  AcmeSetup setup;
  auto& [origin, http_port, tls_port, pebble, state] = setup;
  Berth berth(acme_yaml(http_port, tls_port, pebble, state.file("acme"), "tls-alpn-01",
                        "  - {name: alpn, host: alpn.test, service: s, acme: true}\n", origin));
  INFO(berth.error() << "\n" << tail(berth.log()));
  REQUIRE(berth.ok());
  nlohmann::json s;
  const bool valid = wait_acme(berth.admin_port(), "alpn.test", "state", "valid", 30s, &s);
  INFO("acme state: " << s.dump() << "\nberth: " << tail(berth.log()) << "\npebble: " << tail(pebble.log()));
  REQUIRE(valid);
  CHECK(berth.log_shows("type=tls-alpn-01"));
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
  CHECK(berth.log_shows("event=acme_not_configured"));
  INFO(berth.log());
  CHECK(berth.log_shows("host=cert.labels.test"));
  auto j = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("acme_not_configured"));
  REQUIRE(j["acme_not_configured"].size() == 1);
  CHECK(j["acme_not_configured"][0]["host"] == "cert.labels.test");
  CHECK(j["acme_not_configured"][0]["source"].get<std::string>().find("wants-cert-1") != std::string::npos);
  CHECK_FALSE(j.contains("acme"));
}
