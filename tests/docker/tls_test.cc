// Docker discovery over tcp:// with TLS and client certificates: a second private engine listens
// on 127.0.0.1 with --tlsverify, with a CA, server and client certificates made by openssl for
// this test. Berth must sync and route through it with the right client certificate, and stay
// out of sync (saying why) with a certificate from another CA.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine.h"

using namespace dk;

namespace {

// A throw-away CA with a server certificate for IP 127.0.0.1 and a client certificate, plus a
// client certificate from a second, untrusted CA.
const char* kMakeCerts = R"(set -e
cd "$1"
mk_ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
mk_cert() {  # name ca usage [san]
  openssl req -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'extendedKeyUsage=%s\n' "$3" > "$1.ext"
  [ -z "$4" ] || printf 'subjectAltName=%s\n' "$4" >> "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial -out "$1.pem" -days 2 \
    -extfile "$1.ext" 2>/dev/null
}
mk_ca ca
mk_ca rogue-ca
mk_cert server ca serverAuth IP:127.0.0.1
mk_cert client ca clientAuth
mk_cert rogue rogue-ca clientAuth
)";

// A second private engine (its own dirs), purged when the test ends.
struct TlsEngine {
  std::string dir;
  ~TlsEngine() {
    if (!dir.empty()) run_command({"/bin/sh", dockerd_script(), "purge", dir}, 300s);
  }
};

std::string berth_tls_yaml(uint16_t port, const it::TempDir& certs, const std::string& client) {
  return "listeners: [\"127.0.0.1:0\"]\nworkers: 2\nadmin: {address: \"127.0.0.1:0\"}\n"
         "docker: {enabled: true, endpoint: \"tcp://127.0.0.1:" + std::to_string(port) +
         "\", reconnect_max: 1s, tls: {ca: \"" + certs.file("ca.pem") + "\", cert: \"" + certs.file(client + ".pem") +
         "\", key: \"" + certs.file(client + "-key.pem") + "\"}}\n";
}

}  // namespace

TEST_CASE("docker: discovery over TLS with client certificates, to an engine on tcp://127.0.0.1",
          "[docker][tls]") {
  engine();  // the shared engine: dependencies are there; this test starts its own
  it::TempDir certs;
  CmdResult made = run_command({"/bin/sh", "-c", kMakeCerts, "make-certs", certs.path()});
  INFO(made.text());
  REQUIRE(made.ok());

  TlsEngine tls;
  char templ[] = "/tmp/berth-dktls-XXXXXX";
  REQUIRE(::mkdtemp(templ) != nullptr);
  tls.dir = templ;
  const uint16_t port = fresh_port();
  CmdResult started = run_command({"/bin/sh", dockerd_script(), "start", tls.dir, "-H",
                                   "tcp://127.0.0.1:" + std::to_string(port), "--tlsverify",
                                   "--tlscacert=" + certs.file("ca.pem"), "--tlscert=" + certs.file("server.pem"),
                                   "--tlskey=" + certs.file("server-key.pem")},
                                  120s);
  INFO(started.text());
  REQUIRE(started.ok());
  // The image goes into this engine (the script's `image` honours DOCKER_HOST, set to the shared one).
  const std::string local = "DOCKER_HOST=unix://" + tls.dir + "/docker.sock";
  CmdResult imported = run_command({"/usr/bin/env", local, "/bin/sh", dockerd_script(), "image", tls.dir, engine().image}, 180s);
  INFO(imported.text());
  REQUIRE(imported.ok());

  // A labelled container on the TLS engine (driven through its local socket).
  const uint16_t web = fresh_port();
  WebOptions o;
  o.labels = {{"berth.enable", "true"}, {"berth.host", "tls.dk.test"}, {"berth.port", std::to_string(web)}};
  o.wait_listening = false;
  std::vector<std::string> argv{"/usr/bin/env", "docker", "-H", "unix://" + tls.dir + "/docker.sock"};
  for (const std::string& a : web_run_args("dk-tls-web", web, "over-tls", o)) argv.push_back(a);
  CmdResult ran = run_command(argv);
  INFO(ran.text());
  REQUIRE(ran.ok());
  REQUIRE(wait_listening(web));

  // The right client certificate: in sync over TLS, the container routed.
  it::Berth berth(berth_tls_yaml(port, certs, "client"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  INFO(berth.log());
  nlohmann::json t;
  REQUIRE(wait_routes(berth.admin_port(), [&](const nlohmann::json& j) {
    return j["discovery"][0]["in_sync"] == true && endpoints_for(j, "tls.dk.test") == std::vector<std::string>{addr(web)};
  }, 20s, &t));
  // The log is written off the loop: the line may reach the file after /api/routes shows the sync.
  CHECK(it::wait_until([&] {
    return berth.log().find("event=docker_connected endpoint=tcp://127.0.0.1:" + std::to_string(port)) != std::string::npos;
  }, 5s));
  it::Response r = get(berth.port(), "tls.dk.test");
  CHECK(r.status == 200);
  CHECK(r.body == "over-tls\n");

  // A client certificate from another CA: the engine refuses the handshake; Berth stays out of
  // sync, says so on /readyz, and keeps retrying.
  it::Berth rogue(berth_tls_yaml(port, certs, "rogue"));
  INFO(rogue.error());
  REQUIRE(rogue.ok());
  INFO(rogue.log());
  REQUIRE(it::wait_until([&] { return rogue.log().find("event=docker_disconnected") != std::string::npos; }, 10s));
  it::Response ready = it::http_get(rogue.admin_port(), "/readyz", "127.0.0.1");
  CHECK(ready.status == 503);
  CHECK(ready.body.find("docker") != std::string::npos);
  auto rt = routes(rogue.admin_port());
  CHECK(rt["discovery"][0]["in_sync"] == false);
  const std::string why = rt["discovery"][0]["stale_reason"].get<std::string>();
  CHECK(why.find("unreachable") != std::string::npos);
  WARN("with a client certificate from another CA: " << why);
  CHECK_FALSE(has_route(rt, "tls.dk.test"));
  CHECK(rogue.log().find("event=docker_synced") == std::string::npos);
}
