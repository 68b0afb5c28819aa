// A real ACME server for tests: Debian's pebble and pebble-challtestsrv (its DNS answers
// 127.0.0.1 for every name), started on loopback with free ports; pebble validates at Berth's
// plain and TLS listeners, so Berth answers the challenges itself. Pebble's API certificate is
// made with openssl; its issuing CA (new at each start) comes from the management port, for curl
// to verify what Berth serves. When pebble is missing the tests fail and say so
// (scripts/install-deps.sh --docker). Used by the integration and the real-Docker tests.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include "harness.h"

namespace it {

inline void require_pebble() {
  for (const char* tool : {"/usr/bin/pebble", "/usr/bin/pebble-challtestsrv"}) {
    INFO(tool << " is missing: install the Debian package pebble (scripts/install-deps.sh --docker)");
    REQUIRE(::access(tool, X_OK) == 0);
  }
  INFO("the openssl and curl commands are needed");
  REQUIRE(sh("command -v openssl >/dev/null && command -v curl >/dev/null") == 0);
}

inline size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Pebble and its DNS on free loopback ports; validations go to Berth's http_port / tls_port.
struct Pebble {
  TempDir dir;
  uint16_t api = unused_port(), management = unused_port(), dns = unused_port(), cts_management = unused_port();
  Process cts, pebble;

  // validity_s: the lifetime of the certificates it issues (0: pebble's default, about 5 years).
  Pebble(uint16_t http_port, uint16_t tls_port, int validity_s = 0) {
    require_pebble();
    const std::string d = dir.path();
    std::string out;
    const std::string make_cert =
        "cd " + d +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pebble-api-ca"
        " -keyout api-ca.key -out api-ca.pem"
        " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout api.key -out api.csr"
        " && printf \"subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n\" > api.ext"
        " && openssl x509 -req -in api.csr -CA api-ca.pem -CAkey api-ca.key -CAcreateserial -days 2 -extfile api.ext"
        " -out api.pem"
        // Berth's default certificate for the TLS listener (handshakes for names with no certificate yet).
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=berth-default"
        " -keyout default.key -out default.pem";
    INFO(out);
    REQUIRE(sh(make_cert, &out) == 0);
    nlohmann::json config = {{"pebble",
                              {{"listenAddress", "127.0.0.1:" + std::to_string(api)},
                               {"managementListenAddress", "127.0.0.1:" + std::to_string(management)},
                               {"certificate", d + "/api.pem"},
                               {"privateKey", d + "/api.key"},
                               {"httpPort", http_port},
                               {"tlsPort", tls_port}}}};
    if (validity_s > 0) config["pebble"]["certificateValidityPeriod"] = validity_s;
    REQUIRE(write_file(d + "/pebble.json", config.dump()));
    cts = Process({"/usr/bin/pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01",
                   "127.0.0.1:" + std::to_string(dns), "-http01", "", "-https01", "", "-tlsalpn01", "", "-management",
                   "127.0.0.1:" + std::to_string(cts_management)},
                  d + "/cts.out", d + "/cts.err");
    pebble = Process({"/usr/bin/env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "/usr/bin/pebble", "-config",
                      d + "/pebble.json", "-dnsserver", "127.0.0.1:" + std::to_string(dns), "-strict=false"},
                     d + "/pebble.out", d + "/pebble.err");
    const bool up = wait_until(
        [&] {
          return sh("curl -sf --max-time 2 --cacert " + d + "/api-ca.pem https://127.0.0.1:" + std::to_string(api) +
                    "/dir >/dev/null") == 0;
        },
        15s, 100ms);
    INFO("pebble: " << tail(log()) << "\nchalltestsrv: " << tail(cts.err() + cts.out()));
    REQUIRE(up);
  }
  ~Pebble() {
    pebble.terminate();
    cts.terminate();
  }
  std::string log() const { return pebble.err() + pebble.out(); }
  std::string directory() const { return "https://127.0.0.1:" + std::to_string(api) + "/dir"; }
  std::string ca() const { return dir.file("api-ca.pem"); }
  // Pebble's root and intermediate (new at every start), for curl: "" on failure.
  std::string trust_bundle() const {
    const std::string m = "https://127.0.0.1:" + std::to_string(management);
    const std::string bundle = dir.file("issuers.pem");
    const int rc = sh("curl -sf --max-time 5 --cacert " + ca() + " " + m + "/roots/0 > " + bundle + " && curl -sf --max-time 5 --cacert " +
                      ca() + " " + m + "/intermediates/0 >> " + bundle);
    return rc == 0 ? bundle : "";
  }
  // challtestsrv: `name` resolves to `address` (127.0.0.2: nothing of Berth's listens there).
  bool add_a(const std::string& name, const std::string& address) {
    return sh("curl -sf --max-time 5 -X POST -d \"{\\\"host\\\":\\\"" + name + "\\\",\\\"addresses\\\":[\\\"" + address +
              "\\\"]}\" http://127.0.0.1:" + std::to_string(cts_management) + "/add-a") == 0;
  }
};

// A Berth config's listeners (plain on http_port, TLS with the fixture's default certificate on
// tls_port), workers: 2, an admin listener and the acme: section for `pebble`; routes and the
// rest follow.
inline std::string acme_base_yaml(uint16_t http_port, uint16_t tls_port, const Pebble& pebble,
                                  const std::string& storage, const std::string& challenge) {
  return "listeners:\n"
         "  - \"127.0.0.1:" + std::to_string(http_port) + "\"\n"
         "  - address: \"127.0.0.1:" + std::to_string(tls_port) + "\"\n"
         "    tls:\n"
         "      certificates: [{cert: \"" + pebble.dir.file("default.pem") + "\", key: \"" +
         pebble.dir.file("default.key") + "\"}]\n"
         "workers: 2\n"
         "admin: {address: \"127.0.0.1:0\"}\n"
         "acme:\n"
         "  directory: " + pebble.directory() + "\n"
         "  email: ops@example.com\n"
         "  storage: " + storage + "\n"
         "  ca_bundle: " + pebble.ca() + "\n"
         "  challenge: " + challenge + "\n"
         "  renew_before: 720h\n";
}

// The ACME entry of /api/routes whose first host is `host` (null when absent).
inline nlohmann::json acme_state(uint16_t admin_port, const std::string& host) {
  Response r = http_get(admin_port, "/api/routes", "127.0.0.1");
  if (r.status != 200) return nullptr;
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("acme")) return nullptr;
  for (const nlohmann::json& e : j["acme"])
    if (!e["hosts"].empty() && e["hosts"][0] == host) return e;
  return nullptr;
}

// Polls /api/routes until the ACME entry for `host` has `key` == `want` (bounded by `timeout`);
// true when it did. The last entry seen is left in *state.
inline bool wait_acme(uint16_t admin_port, const std::string& host, const std::string& key, const nlohmann::json& want,
               std::chrono::milliseconds timeout, nlohmann::json* state) {
  return wait_until(
      [&] {
        *state = acme_state(admin_port, host);
        return state->is_object() && (*state)[key] == want;
      },
      timeout, 200ms);
}

// curl over HTTPS to Berth's TLS port for `host`, verified against `bundle`: "status=NNN" or curl's error.
inline std::string curl_https(uint16_t tls_port, const std::string& host, const std::string& bundle, std::string* out) {
  const std::string p = std::to_string(tls_port);
  sh("curl -sS -o /dev/null -w \"status=%{http_code}\\n\" --max-time 5 --resolve " + host + ":" + p +
         ":127.0.0.1 --cacert " + bundle + " https://" + host + ":" + p + "/",
     out, 10);
  const size_t s = out->rfind("status=");
  return s == std::string::npos ? *out : out->substr(s, 10);
}

// Issuer of the certificate Berth serves for `host` (openssl s_client), "" if none.
inline std::string served_issuer(uint16_t tls_port, const std::string& host) {
  std::string text;
  sh("openssl s_client -connect 127.0.0.1:" + std::to_string(tls_port) + " -servername " + host +
         " </dev/null 2>/dev/null | openssl x509 -noout -issuer",
     &text, 10);
  return text;
}


}  // namespace it
