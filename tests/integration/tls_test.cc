// TLS termination through the real binary, with real clients: `openssl s_client`, curl, and a
// small OpenSSL client for hand-made requests. Every certificate is made by the test with the
// openssl command into a temporary directory: a test CA, server certificates (RSA and ECDSA
// sharing names, a wildcard, an exact name under the wildcard) and a client certificate.

#include <catch2/catch.hpp>

#include <csignal>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "env.h"

using namespace it;

namespace {

bool have(const char* tool) { return sh(std::string("command -v ") + tool + " >/dev/null") == 0; }

// The test CA and the certificates it signs, made once per run.
struct Certs {
  TempDir dir;
  bool ok = false;
  std::string error;
  std::string path(const std::string& name) const { return dir.file(name); }

  // A key (rsa or ec), and a certificate for it signed by the CA with these DNS names.
  bool make(const std::string& name, const std::string& type, const std::string& cn, const std::string& sans,
            const std::string& extra_ext = "") {
    const std::string d = dir.path();
    const std::string newkey = type == "rsa" ? "-newkey rsa:2048" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
    std::string ext = extra_ext;
    if (!sans.empty()) ext += "subjectAltName=" + sans + "\n";
    if (!write_file(d + "/" + name + ".ext", ext)) return false;
    std::string out;
    const std::string cmd = "cd " + d + " && openssl req " + newkey + " -nodes -keyout " + name + ".key -out " + name +
                            ".csr -subj /CN=" + cn + " && openssl x509 -req -in " + name +
                            ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile " + name + ".ext -out " +
                            name + ".crt";
    if (sh(cmd, &out) != 0) {
      error = "making " + name + ": " + out;
      return false;
    }
    return true;
  }

  Certs() {
    if (!have("openssl")) {
      error = "the openssl command is missing (Debian package openssl)";
      return;
    }
    std::string out;
    if (sh("cd " + dir.path() +
               " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt"
               " -days 3 -subj /CN=berth-test-ca",
           &out) != 0) {
      error = "making the CA: " + out;
      return;
    }
    ok = make("site-rsa", "rsa", "site-rsa", "DNS:a.test,DNS:redir.test") &&
         make("site-ec", "ec", "site-ec", "DNS:a.test,DNS:redir.test") &&
         make("wild", "ec", "wild", "DNS:*.wild.test") && make("exact", "ec", "exact", "DNS:exact.wild.test") &&
         make("other", "ec", "other", "DNS:other.test") && make("gen1", "ec", "gen1", "DNS:a.test") &&
         make("gen2", "ec", "gen2", "DNS:a.test") &&
         make("client", "ec", "client", "", "extendedKeyUsage=clientAuth\n");
  }
};

Certs& certs() {
  static Certs c;
  INFO(c.error);
  REQUIRE(c.ok);
  return c;
}

// A certificate pair of `c` copied into `dir` as site.crt and site.key: files a test may replace
// while Berth serves them (the originals stay as they are for the other tests).
struct LivePair {
  std::string crt, key;
};
LivePair live_pair(const TempDir& dir, const Certs& c, const std::string& name) {
  LivePair pair{dir.file("site.crt"), dir.file("site.key")};
  REQUIRE(write_file(pair.crt, read_file(c.path(name + ".crt"))));
  REQUIRE(write_file(pair.key, read_file(c.path(name + ".key"))));
  return pair;
}

// Ports of every "event=listening" line, in the order logged (config order).
std::vector<uint16_t> listening_ports(const std::string& log) {
  std::vector<uint16_t> ports;
  size_t p = 0;
  while ((p = log.find("event=listening", p)) != std::string::npos) {
    const size_t l = log.find("listener=", p);
    const size_t colon = log.find(':', l);
    ports.push_back(static_cast<uint16_t>(std::atoi(log.c_str() + colon + 1)));
    p = l;
  }
  return ports;
}

std::string pair(const Certs& c, const std::string& name) {
  return "{cert: \"" + c.path(name + ".crt") + "\", key: \"" + c.path(name + ".key") + "\"}";
}

// A TLS listener (first) and a plain one, both to origin A.
std::string tls_yaml(const std::string& tls_body, Origin& origin) {
  return "listeners:\n"
         "  - address: \"127.0.0.1:0\"\n"
         "    tls: " + tls_body + "\n"
         "  - \"127.0.0.1:0\"\n"
         "workers: 2\n"
         "admin: {address: \"127.0.0.1:0\"}\n"
         "timeouts: {request_header: 3s}\n"
         "routes:\n"
         "  - {name: r-a, host: [\"a.test\", \"*.wild.test\", \"other.test\"], service: s, hsts: \"max-age=31536000\"}\n"
         "  - {name: r-redir, host: \"redir.test\", service: s, https_redirect: true}\n"
         "  - {name: r-auth, host: \"auth.wild.test\", service: s, hsts: \"max-age=600\",\n"
         "     access: {forward_auth: {url: \"http://" + origin.address() + "/auth\"}, methods: [GET]}}\n"
         "services:\n"
         "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
}

struct TlsBerth {
  std::unique_ptr<Berth> berth;
  uint16_t tls_port = 0, plain_port = 0;
  TlsBerth(const std::string& yaml) {
    berth = std::make_unique<Berth>(yaml, 0, std::vector<std::string>{"--log-level", "debug"});
    INFO(berth->error());
    REQUIRE(berth->ok());
    std::vector<uint16_t> ports;
    wait_until([&] { return (ports = listening_ports(berth->log())).size() >= 2; }, 2s);
    REQUIRE(ports.size() >= 2);
    tls_port = ports[0];
    plain_port = ports[1];
  }
};

// What `openssl s_client` got for a name: the server certificate's subject line, or "" (and
// the whole output in *out).
std::string handshake_subject(uint16_t port, const std::string& args, std::string* out = nullptr) {
  std::string text;
  sh("openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -CAfile " + certs().path("ca.crt") + " " + args +
         " </dev/null",
     &text, 10);
  if (out) *out = text;
  const size_t s = text.find("subject=");
  if (s == std::string::npos || text.find("Verify return code: 0 (ok)") == std::string::npos) return "";
  return text.substr(s, text.find('\n', s) - s);
}

std::string curl(uint16_t port, const std::string& host, const std::string& path, const std::string& extra = "",
                 std::string* out = nullptr) {
  std::string text;
  const std::string p = std::to_string(port);
  sh("curl -sS -o - -w \"\\nstatus=%{http_code}\\n\" --max-time 5 --resolve " + host + ":" + p +
         ":127.0.0.1 --cacert " + certs().path("ca.crt") + " " + extra + " https://" + host + ":" + p + path,
     &text, 10);
  if (out) *out = text;
  const size_t s = text.rfind("status=");
  return s == std::string::npos ? "" : text.substr(s + 7, 3);
}

// A TCP connection to 127.0.0.1:port whose reads give up after 5 s; -1 if it fails.
int connect_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
  ::close(fd);
  return -1;
}

// A blocking TLS client for hand-made requests (bytes as given, no HTTP library in between).
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& sni) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    fd_ = connect_loopback(port);
    if (fd_ < 0) return;
    SSL_CTX_load_verify_locations(ctx_, certs().path("ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, sni.c_str());
    SSL_set1_host(ssl_, sni.c_str());
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
    ERR_clear_error();
  }
  bool connected() const { return connected_; }
  SSL* ssl() const { return ssl_; }
  int fd() const { return fd_; }
  bool send(const std::string& data) { return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) > 0; }
  // Everything until the server closes (or 5 s pass).
  std::string read_until_close() {
    std::string out;
    char buf[16384];
    while (true) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::atoi(response.c_str() + 9);
}

}  // namespace

TEST_CASE("tls: SNI chooses the certificate (exact, wildcard, default) and RSA or ECDSA by the client offer",
          "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-rsa") + ", " + pair(c, "site-ec") + ", " + pair(c, "wild") +
                          ", " + pair(c, "exact") + ", " + pair(c, "other") + "]}",
                      origin));
  const uint16_t port = b.tls_port;
  std::string out;

  // Several names, each its own certificate; a name under the wildcard; an exact name that
  // beats the wildcard.
  CHECK(handshake_subject(port, "-servername other.test", &out).find("CN = other") != std::string::npos);
  INFO(out);
  CHECK(handshake_subject(port, "-servername foo.wild.test").find("CN = wild") != std::string::npos);
  CHECK(handshake_subject(port, "-servername exact.wild.test").find("CN = exact") != std::string::npos);
  // Unknown name and no SNI: the default (the first listed: the names of site-rsa/site-ec).
  CHECK(handshake_subject(port, "-servername unknown.test -verify_hostname a.test").find("CN = site-") !=
        std::string::npos);
  CHECK(handshake_subject(port, "-noservername -verify_hostname a.test").find("CN = site-") != std::string::npos);

  // RSA and ECDSA share the names: the client's signature algorithms decide (TLS 1.3)...
  CHECK(handshake_subject(port, "-servername a.test -sigalgs ECDSA+SHA256").find("CN = site-ec") !=
        std::string::npos);
  CHECK(handshake_subject(port, "-servername a.test -sigalgs rsa_pss_rsae_sha256").find("CN = site-rsa") !=
        std::string::npos);
  // ...and its cipher suites (TLS 1.2, with curl).
  curl(port, "a.test", "/x", "-v --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256", &out);
  CHECK(out.find("CN=site-rsa") != std::string::npos);
  CHECK(out.find("status=200") != std::string::npos);
  curl(port, "a.test", "/x", "-v --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256", &out);
  CHECK(out.find("CN=site-ec") != std::string::npos);
  CHECK(out.find("status=200") != std::string::npos);

  // curl verifies each name against the CA.
  CHECK(curl(port, "a.test", "/x") == "200");
  CHECK(curl(port, "foo.wild.test", "/x") == "200");
  CHECK(curl(port, "exact.wild.test", "/x") == "200");
  CHECK(curl(port, "other.test", "/x", "", &out) == "200");
  INFO(out);
  // ALPN: http/1.1 is what Berth offers.
  handshake_subject(port, "-servername a.test -alpn h2,http/1.1", &out);
  CHECK(out.find("ALPN protocol: http/1.1") != std::string::npos);

  // TLS 1.0 and 1.1 are refused by Berth (the client is allowed to offer them).
  for (const char* v : {"-tls1_1", "-tls1"}) {
    CHECK(handshake_subject(port, std::string("-servername a.test ") + v + " -cipher DEFAULT@SECLEVEL=0", &out).empty());
    INFO(out);
  }
  CHECK(b.berth->log_shows("cause=protocol_version", 3s));
  // ...and counted for the metrics exporter.
  Response metrics = http_get(b.berth->admin_port(), "/metrics", "localhost");
  CHECK(metrics.body.find("berth_tls_handshake_errors_total{cause=\"protocol_version\"} ") != std::string::npos);
  CHECK(metrics.body.find("berth_tls_handshake_errors_total{cause=\"protocol_version\"} 0") == std::string::npos);
  // TLS 1.2 and 1.3 both work.
  CHECK(!handshake_subject(port, "-servername a.test -tls1_2").empty());
  CHECK(!handshake_subject(port, "-servername a.test -tls1_3").empty());
  // Session resumption with a ticket.
  const std::string sess = c.path("sess.pem");
  handshake_subject(port, "-servername a.test -tls1_2 -sess_out " + sess);
  handshake_subject(port, "-servername a.test -tls1_2 -sess_in " + sess, &out);
  CHECK(out.find("Reused, TLSv1.2") != std::string::npos);
  CHECK(b.berth->running());
}

TEST_CASE("tls: session_tickets false issues no ticket, so every handshake is a full one", "[tls]") {
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "], session_tickets: false}", origin));
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    INFO(version);
    const std::string sess = c.path(std::string("nosess") + version + ".pem");
    ::unlink(sess.c_str());
    std::string out;
    REQUIRE(!handshake_subject(b.tls_port, std::string("-servername a.test ") + version + " -sess_out " + sess, &out).empty());
    INFO(out);
    // No ticket and no session id: the client has nothing it could offer next time (with
    // tickets on, the same command writes a session that the next connection resumes).
    CHECK(out.find("New, TLSv1.") != std::string::npos);
    CHECK(out.find("session ticket") == std::string::npos);
    CHECK(read_file(sess).empty());
  }
  CHECK(b.berth->running());
}

TEST_CASE("tls: the SNI recorded is the one the client sent, also when a TLS 1.2 session resumes", "[tls]") {
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + ", " + pair(c, "other") + "]}", origin));
  const std::string sess = c.path("sni12.pem");
  ::unlink(sess.c_str());
  auto request = [&](const std::string& name, const std::string& path, const std::string& session_args) {
    std::string out;
    // sh() quotes the command in '...': double quotes here.
    sh("(printf \"GET " + path + " HTTP/1.1\\r\\nHost: " + name + "\\r\\nConnection: close\\r\\n\\r\\n\"; sleep 1) | "
           "openssl s_client -quiet -tls1_2 -connect 127.0.0.1:" + std::to_string(b.tls_port) + " -servername " + name +
           " -CAfile " + c.path("ca.crt") + " " + session_args + " 2>&1",
       &out, 10);
    return out;
  };
  INFO(request("a.test", "/sni-first", "-sess_out " + sess));
  REQUIRE(!read_file(sess).empty());
  std::string resumed;
  sh("openssl s_client -tls1_2 -connect 127.0.0.1:" + std::to_string(b.tls_port) +
         " -servername other.test -sess_in " + sess + " </dev/null 2>&1",
     &resumed, 10);
  INFO(resumed);
  REQUIRE(resumed.find("Reused, TLSv1.2") != std::string::npos);
  INFO(request("other.test", "/sni-resumed", "-sess_in " + sess));
  CHECK(b.berth->log_shows("path=/sni-resumed"));
  const std::string log = b.berth->log();
  const size_t at = log.find("path=/sni-resumed");
  REQUIRE(at != std::string::npos);
  const std::string line = log.substr(at, log.find('\n', at) - at);
  INFO(line);
  CHECK(line.find("tls_sni=other.test") != std::string::npos);
  const size_t first = log.find("path=/sni-first");
  REQUIRE(first != std::string::npos);
  CHECK(log.substr(first, log.find('\n', first) - first).find("tls_sni=a.test") != std::string::npos);
}

namespace {

// A client that uses each session ticket once, as TLS 1.3 clients do (RFC 8446, C.4): every
// connection offers the newest ticket the previous one received, then forgets it.
struct SingleUseTicketClient {
  struct Outcome {
    bool ok = false;       // handshake done and a 200 read
    bool reused = false;   // the handshake resumed the offered session
    int new_tickets = 0;   // tickets received on this connection
  };
  int version;
  SSL_CTX* ctx = nullptr;
  SSL_SESSION* newest = nullptr;
  int tickets = 0;

  explicit SingleUseTicketClient(int v) : version(v) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_load_verify_locations(ctx, certs().path("ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // The new-session callback (the client's only way to see TLS 1.3 tickets) needs client caching on.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_app_data(ctx, this);
    SSL_CTX_sess_set_new_cb(ctx, [](SSL* ssl, SSL_SESSION* s) {
      auto* self = static_cast<SingleUseTicketClient*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
      if (self->newest) SSL_SESSION_free(self->newest);
      self->newest = s;
      ++self->tickets;
      return 1;  // the reference is ours
    });
  }
  ~SingleUseTicketClient() {
    if (newest) SSL_SESSION_free(newest);
    SSL_CTX_free(ctx);
    ERR_clear_error();
  }

  Outcome request(uint16_t port) {
    Outcome out;
    const int fd = connect_loopback(port);
    if (fd < 0) return out;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "a.test");
    SSL_set1_host(ssl, "a.test");
    if (newest) {
      SSL_set_session(ssl, newest);  // offered once, then forgotten
      SSL_SESSION_free(newest);
      newest = nullptr;
    }
    const int before = tickets;
    if (SSL_connect(ssl) == 1) {
      out.reused = SSL_session_reused(ssl) == 1;
      const std::string req = "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
      SSL_write(ssl, req.data(), static_cast<int>(req.size()));
      std::string got;
      char buf[4096];
      for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
      out.ok = status_of(got) == 200;
      SSL_shutdown(ssl);
    }
    out.new_tickets = tickets - before;
    // A TLS 1.2 session may be resumed again; with no new ticket the client keeps this one.
    if (version == TLS1_2_VERSION && out.reused && out.new_tickets == 0) newest = SSL_get1_session(ssl);
    SSL_free(ssl);
    ::close(fd);
    return out;
  }
};

}  // namespace

TEST_CASE("tls: a client using each ticket once resumes every connection (TLS 1.3 renews the ticket)", "[tls]") {
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "]}", origin));  // two workers, one set of keys
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    INFO((version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2"));
    SingleUseTicketClient client(version);
    const auto first = client.request(b.tls_port);
    CHECK(first.ok);
    CHECK(!first.reused);
    CHECK(first.new_tickets == 1);
    for (int i = 0; i < 8; ++i) {
      INFO("connection " << i + 2);
      const auto next = client.request(b.tls_port);
      CHECK(next.ok);
      CHECK(next.reused);
      // TLS 1.3: the ticket spent is replaced. TLS 1.2 keeps its ticket (no new one per resumption).
      CHECK(next.new_tickets == (version == TLS1_3_VERSION ? 1 : 0));
    }
  }
  CHECK(b.berth->running());
}

TEST_CASE("tls: a client asking for key updates and reading nothing is held back; its request is still due",
          "[tls]") {
  // TLS 1.3 lets a peer ask for a key update at any time, and each request makes Berth write one
  // back. A client that sends them as fast as it can (for up to 8 s) and reads nothing must not
  // make Berth keep those answers without bound: once 64 KiB of them wait, Berth reads no more
  // from it (before, its memory grew by about 2 MB/s). Nor are they a request: request_header
  // (3 s) still closes the connection, which ends the flood.
  Origin a("A");
  REQUIRE(a.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(certs(), "site-ec") + "]}", a));
  const long before = peak_rss_kib(b.berth->pid());
  const auto t0 = Clock::now();
  TlsClient c(b.tls_port, "a.test");
  REQUIRE(c.connected());
  REQUIRE(std::string(SSL_get_version(c.ssl())) == "TLSv1.3");
  const int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const timeval give_up{0, 300'000};  // a write Berth does not take
  ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &give_up, sizeof give_up);
  long sent = 0;
  while (seconds_since(t0) < 8.0) {
    if (SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED) != 1 || SSL_do_handshake(c.ssl()) != 1) break;
    ++sent;
  }
  ERR_clear_error();
  const long after = peak_rss_kib(b.berth->pid());
  INFO(sent << " key update requests in " << seconds_since(t0) << " s; Berth's peak RSS " << before << " -> " << after
            << " KiB");
  CHECK(sent > 1000);
  // A sanitizer build's figure includes its quarantine of freed memory: not a bound.
  if (!sanitized()) CHECK(after - before < 8 * 1024);
  CHECK(wait_until([&] { return metric_sample(b.berth->admin_port(), "berth_open_connections{side=\"client\"}") == 0; },
                   5s));
  CHECK(seconds_since(t0) < 7.0);  // request_header, not keepalive_idle (60 s)
}

TEST_CASE("tls: min_version 1.3 refuses TLS 1.2", "[tls]") {
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "], min_version: \"1.3\"}", origin));
  CHECK(handshake_subject(b.tls_port, "-servername a.test -tls1_2").empty());
  CHECK(!handshake_subject(b.tls_port, "-servername a.test -tls1_3").empty());
}

TEST_CASE("tls: client_ca requires a client certificate signed by it", "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "], client_ca: \"" + c.path("ca.crt") + "\"}", origin));
  std::string out;
  CHECK(curl(b.tls_port, "a.test", "/x", "", &out) != "200");
  INFO(out);
  CHECK(curl(b.tls_port, "a.test", "/x", "--cert " + c.path("client.crt") + " --key " + c.path("client.key"), &out) ==
        "200");
  // A certificate the CA did not sign (self-signed) is refused.
  REQUIRE(sh("cd " + c.dir.path() +
             " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key"
             " -out stranger.crt -days 1 -subj /CN=stranger") == 0);
  CHECK(curl(b.tls_port, "a.test", "/x", "--cert " + c.path("stranger.crt") + " --key " + c.path("stranger.key")) !=
        "200");
  CHECK(b.berth->log_shows("cause=client_certificate", 3s));
}

TEST_CASE("tls: a ticket from a listener without client_ca does not resume where one is required", "[tls]") {
  // Ticket keys are shared by every listener; the session context (which names the client_ca)
  // is what keeps a session to listeners that demand what it was made under.
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  const std::string yaml = "listeners:\n"
                           "  - address: \"127.0.0.1:0\"\n"
                           "    tls: {certificates: [" + pair(c, "site-ec") + "]}\n"
                           "  - address: \"127.0.0.1:0\"\n"
                           "    tls: {certificates: [" + pair(c, "site-ec") + "], client_ca: \"" + c.path("ca.crt") + "\"}\n"
                           "admin: {address: \"127.0.0.1:0\"}\n"
                           "routes:\n  - {host: \"a.test\", service: s}\n"
                           "services:\n  s: {endpoints: [\"" + origin.address() + "\"]}\n";
  Berth berth(yaml, 0, std::vector<std::string>{"--log-level", "debug"});
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::vector<uint16_t> ports;
  wait_until([&] { return (ports = listening_ports(berth.log())).size() >= 2; }, 2s);
  REQUIRE(ports.size() >= 2);
  const std::string open = std::to_string(ports[0]), mtls = std::to_string(ports[1]);
  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    INFO(version);
    const std::string sess = c.path(std::string("open") + version + ".pem");
    ::unlink(sess.c_str());
    const std::string client = "openssl s_client -servername a.test -CAfile " + c.path("ca.crt") + " " + version +
                               " -connect 127.0.0.1:";
    const std::string request = "(printf \"GET /x HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n\"; sleep 1) | ";
    std::string out;
    sh(request + client + open + " -sess_out " + sess + " 2>&1", &out, 10);
    INFO(out);
    REQUIRE(!read_file(sess).empty());
    sh(request + client + open + " -sess_in " + sess + " 2>&1", &out, 10);
    CHECK(out.find("Reused,") != std::string::npos);  // the ticket is good where it was made
    sh(request + client + mtls + " -sess_in " + sess + " 2>&1", &out, 10);
    CHECK(out.find("Reused,") == std::string::npos);
    CHECK(out.find("HTTP/1.1 200") == std::string::npos);
  }
  CHECK(berth.running());
}

TEST_CASE("tls: X-Forwarded-Proto https, HSTS over TLS only, https_redirect on plain HTTP", "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + ", " + pair(c, "wild") + "]}", origin));
  std::string out;
  REQUIRE(curl(b.tls_port, "a.test", "/echo", "-i", &out) == "200");
  INFO(out);
  CHECK(lower(out).find("x-forwarded-proto: https") != std::string::npos);
  CHECK(lower(out).find("strict-transport-security: max-age=31536000") != std::string::npos);
  // The exchange record carries the TLS facts.
  CHECK(b.berth->log_shows("tls_version=TLSv1.3", 3s));
  // The route's value stands for the instance's own (a browser heeds the first field only).
  REQUIRE(curl(b.tls_port, "a.test", "/x?header=Strict-Transport-Security:max-age=1", "-i", &out) == "200");
  {
    const std::string head = lower(out.substr(0, out.find("\r\n\r\n")));
    INFO(out);
    CHECK(occurrences(head, "strict-transport-security:") == 1);
    CHECK(head.find("strict-transport-security: max-age=31536000") != std::string::npos);
  }

  // Local replies and a filter's own answer carry it too: the auth service's 401 (sent as it
  // is) and Berth's own 405.
  REQUIRE(curl(b.tls_port, "auth.wild.test", "/echo", "-i", &out) == "401");
  CHECK(lower(out).find("x-berth-error: forward-auth-denied") != std::string::npos);
  CHECK(lower(out).find("strict-transport-security: max-age=600") != std::string::npos);
  REQUIRE(curl(b.tls_port, "auth.wild.test", "/echo", "-i -X DELETE", &out) == "405");
  CHECK(lower(out).find("strict-transport-security: max-age=600") != std::string::npos);

  // Plain HTTP: no HSTS, X-Forwarded-Proto http.
  Response r = http_get(b.plain_port, "/echo", "a.test");
  REQUIRE(r.status == 200);
  CHECK(!r.header("strict-transport-security"));
  // Nor is the instance's own touched there.
  r = http_get(b.plain_port, "/echo?header=Strict-Transport-Security:max-age=1", "a.test");
  CHECK(r.header("strict-transport-security").value_or("") == "max-age=1");
  CHECK(lower(r.body).find("x-forwarded-proto: http\r\n") != std::string::npos);

  // https_redirect: 308 to the same host and target on HTTPS...
  r = http_get(b.plain_port, "/some/path?q=1", "redir.test:8080");
  CHECK(r.status == 308);
  CHECK(r.header("location").value_or("") == "https://redir.test/some/path?q=1");
  // ...except the ACME challenge path, and not over TLS.
  r = http_get(b.plain_port, "/.well-known/acme-challenge/token1", "redir.test");
  CHECK(r.status == 200);
  // Only a challenge token is: a longer path under the prefix is redirected like any other.
  r = http_get(b.plain_port, "/.well-known/acme-challenge/token1/secret", "redir.test");
  CHECK(r.status == 308);
  CHECK(curl(b.tls_port, "redir.test", "/over-tls") == "200");
  CHECK(b.berth->running());
}

TEST_CASE("tls: the core's refusals hold over TLS (smuggling, bad framing)", "[tls]") {
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "]}", origin));
  struct Case {
    const char* name;
    std::string raw;
    int status;
  };
  const std::string m = marker("TLSM");
  const std::string post = "POST /" + m + " HTTP/1.1\r\nHost: a.test\r\n";
  const std::string smuggled = "GET /" + m + "-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
  const std::vector<Case> cases = {
      {"Content-Length and Transfer-Encoding", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
       400},
      {"two different Content-Length", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"Content-Length 2^64", post + "Content-Length: 18446744073709551616\r\n\r\n" + smuggled, 400},
      {"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\nxxxx", 501},
      {"obs-fold", "GET /" + m + " HTTP/1.1\r\nHost: a.test\r\nX-A: a\r\n folded\r\n\r\n", 400},
      {"bare LF", "GET /" + m + " HTTP/1.1\nHost: a.test\n\n", 400},
      {"space before colon", "GET /" + m + " HTTP/1.1\r\nHost: a.test\r\nX-A : b\r\n\r\n", 400},
  };
  for (const Case& k : cases) {
    INFO(k.name);
    TlsClient client(b.tls_port, "a.test");
    REQUIRE(client.connected());
    REQUIRE(client.send(k.raw));
    const std::string response = client.read_until_close();
    INFO(response);
    CHECK(status_of(response) == k.status);
  }
  // None of them reached the origin.
  CHECK(origin.seen(m) == 0);
  // A well-formed request on the same kind of connection does.
  TlsClient good(b.tls_port, "a.test");
  REQUIRE(good.connected());
  REQUIRE(good.send("GET /" + m + "-good HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"));
  CHECK(status_of(good.read_until_close()) == 200);
  // Plain HTTP sent to the TLS port is a failed handshake, counted as such.
  Client plain(b.tls_port, 3s);
  REQUIRE(plain.connected());
  plain.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  CHECK(plain.wait_closed(5s));
  CHECK(b.berth->log_shows("cause=http_request", 3s));
  // A handshake that never comes is cut by request_header (3 s here).
  Client silent(b.tls_port, 6s);
  REQUIRE(silent.connected());
  const auto t0 = Clock::now();
  CHECK(silent.wait_closed(6s));
  CHECK(Clock::now() - t0 >= 2s);
  CHECK(b.berth->running());
}

TEST_CASE("tls: certificates replaced on disk under continuous HTTPS traffic and a corrupt one refused",
          "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  TempDir live;
  const auto [crt, key] = live_pair(live, c, "gen1");
  TlsBerth b(tls_yaml("{certificates: [{cert: \"" + crt + "\", key: \"" + key + "\"}]}", origin));
  REQUIRE(handshake_subject(b.tls_port, "-servername a.test").find("CN = gen1") != std::string::npos);

  // Requests in a loop, each on a new connection (a new handshake), bounded in count and time.
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, failed{0};
  std::string first_failure;
  std::thread traffic([&] {
    const auto until = Clock::now() + 25s;
    while (!stop && Clock::now() < until && done < 400) {
      std::string out;
      if (curl(b.tls_port, "a.test", "/x", "", &out) != "200") {
        if (failed++ == 0) first_failure = out;
      }
      ++done;
    }
  });
  auto replace = [&](const std::string& file, const std::string& content) {
    REQUIRE(write_file(file + ".tmp", content));
    REQUIRE(::rename((file + ".tmp").c_str(), file.c_str()) == 0);
  };
  std::this_thread::sleep_for(500ms);
  // The key first, then the certificate: in between the pair does not match and is refused.
  replace(key, read_file(c.path("gen2.key")));
  replace(crt, read_file(c.path("gen2.crt")));
  CHECK(wait_until([&] { return handshake_subject(b.tls_port, "-servername a.test").find("CN = gen2") != std::string::npos; },
                   8s, 200ms));
  CHECK(b.berth->log_shows("event=tls_certificates_reloaded", 3s));

  // A corrupt certificate: refused with a log line; gen2 keeps serving.
  auto refusals = [&] { return occurrences(b.berth->log(), "event=tls_certificate_reload_refused"); };
  const size_t refused_before = refusals();
  replace(crt, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
  CHECK(wait_until([&] { return refusals() > refused_before; }, 5s));
  std::this_thread::sleep_for(500ms);
  CHECK(handshake_subject(b.tls_port, "-servername a.test").find("CN = gen2") != std::string::npos);
  stop = true;
  traffic.join();
  INFO(first_failure);
  CHECK(done >= 10);
  CHECK(failed == 0);

  // SIGHUP with a configuration naming a missing file: refused, the running one stays.
  REQUIRE(b.berth->rewrite_config(tls_yaml("{certificates: [{cert: \"" + live.file("missing.crt") + "\", key: \"" +
                                               key + "\"}]}",
                                           origin)));
  REQUIRE(b.berth->process().signal(SIGHUP));
  CHECK(b.berth->log_shows("event=config_reload_failed"));
  CHECK(handshake_subject(b.tls_port, "-servername a.test").find("CN = gen2") != std::string::npos);
  // SIGHUP with another certificate: new handshakes get it.
  REQUIRE(b.berth->rewrite_config(tls_yaml("{certificates: [" + pair(c, "gen1") + "]}", origin)));
  REQUIRE(b.berth->process().signal(SIGHUP));
  CHECK(wait_until([&] { return handshake_subject(b.tls_port, "-servername a.test").find("CN = gen1") != std::string::npos; },
                   5s, 200ms));
  CHECK(b.berth->running());
}

TEST_CASE("tls: a refused reload is tried again when only a file's change time moves; the refusal names the key",
          "[tls]") {
  // A key installed unreadable (root's 0600, Berth running as its own user) is refused; the
  // operator's chmod or chown then changes nothing but the inode's change time. Emulated here
  // (the tests run as root, which reads any file): the right key written in place over the
  // wrong one, same size, same inode, and its modification time set back.
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TempDir live;
  const auto [crt, key] = live_pair(live, c, "gen1");
  TlsBerth b(tls_yaml("{certificates: [{cert: \"" + crt + "\", key: \"" + key + "\"}]}", origin));
  REQUIRE(handshake_subject(b.tls_port, "-servername a.test").find("CN = gen1") != std::string::npos);

  // gen2's certificate beside gen1's key: refused, and the line says which two files.
  REQUIRE(write_file(crt, read_file(c.path("gen2.crt"))));
  CHECK(b.berth->log_shows("event=tls_certificate_reload_refused", 5s));
  {
    const std::string log = b.berth->log();
    const size_t at = log.find("event=tls_certificate_reload_refused");
    REQUIRE(at != std::string::npos);
    const std::string line = log.substr(at, log.find('\n', at) - at);
    INFO(line);
    CHECK(line.find("site.key") != std::string::npos);
    CHECK(line.find("the key does not match the certificate") != std::string::npos);
  }
  std::this_thread::sleep_for(1500ms);  // the poll after the refusal has stamped the files
  const std::string key2 = read_file(c.path("gen2.key"));
  REQUIRE(key2.size() == read_file(key).size());  // both P-256 PKCS#8
  struct stat before {};
  REQUIRE(::stat(key.c_str(), &before) == 0);
  {
    std::ofstream f(key, std::ios::binary | std::ios::trunc);  // in place: the same inode
    f.write(key2.data(), static_cast<std::streamsize>(key2.size()));
    REQUIRE(f.good());
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, key.c_str(), times, 0) == 0);
  struct stat after {};
  REQUIRE(::stat(key.c_str(), &after) == 0);
  REQUIRE(after.st_ino == before.st_ino);
  REQUIRE(after.st_size == before.st_size);
  REQUIRE(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  REQUIRE(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(wait_until([&] { return handshake_subject(b.tls_port, "-servername a.test").find("CN = gen2") != std::string::npos; },
                   6s, 300ms));
  CHECK(b.berth->log_shows("event=tls_certificates_reloaded", 3s));
  CHECK(b.berth->running());
}

TEST_CASE("tls: client_ca may name an intermediate alone; certificates it signed pass, its root's others do not",
          "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  const std::string d = c.dir.path();
  std::string out;
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  REQUIRE(write_file(d + "/int.ext", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"));
  REQUIRE(write_file(d + "/client-int.ext", "extendedKeyUsage=clientAuth\n"));
  const int made = sh("cd " + d + " && openssl req" + ec + " -keyout int.key -out int.csr -subj /CN=berth-test-int" +
                          " && openssl x509 -req -in int.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2" +
                          " -extfile int.ext -out int.crt && openssl req" + ec +
                          " -keyout client-int.key -out client-int.csr -subj /CN=client-int" +
                          " && openssl x509 -req -in client-int.csr -CA int.crt -CAkey int.key -CAcreateserial" +
                          " -days 2 -extfile client-int.ext -out client-int.crt",
                      &out);
  INFO(out);
  REQUIRE(made == 0);
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "], client_ca: \"" + c.path("int.crt") + "\"}", origin));
  CHECK(curl(b.tls_port, "a.test", "/x", "--cert " + c.path("client-int.crt") + " --key " + c.path("client-int.key"),
             &out) == "200");
  // Signed by the root, not by the intermediate: not accepted.
  CHECK(curl(b.tls_port, "a.test", "/x", "--cert " + c.path("client.crt") + " --key " + c.path("client.key")) != "200");
  CHECK(curl(b.tls_port, "a.test", "/x") != "200");
  CHECK(b.berth->log_shows("cause=client_certificate", 3s));
}

TEST_CASE("tls: an answer cut short ends with a TCP reset, as on a plain listener", "[tls]") {
  // No close_notify either way; but a client that takes a TLS end without it as an end (many
  // do) would read a body that runs until the close as whole after a FIN.
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TlsBerth b(tls_yaml("{certificates: [" + pair(c, "site-ec") + "]}", origin));
  for (const char* how : {"reset_mid_body=1&no_length=1", "abort_after_headers=1&chunked=1"}) {
    INFO(how);
    TlsClient client(b.tls_port, "a.test");
    REQUIRE(client.connected());
    REQUIRE(client.send(std::string("GET /die?size=300000&") + how + " HTTP/1.0\r\nHost: a.test\r\n\r\n"));
    std::string got;
    char buf[16384];
    int n = 0;
    while ((n = SSL_read(client.ssl(), buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    const int err = SSL_get_error(client.ssl(), n);
    const int sys = errno;
    ERR_clear_error();
    INFO(got.substr(0, got.find("\r\n\r\n")) << "\nbytes " << got.size() << ", SSL error " << err << ", errno " << sys);
    REQUIRE(got.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(err == SSL_ERROR_SYSCALL);
    CHECK(sys == ECONNRESET);
  }
  CHECK(b.berth->running());
}

TEST_CASE("tls: https_redirect without a host to send the client to answers 400", "[tls]") {
  // "https:///evil.example/login" is read by browsers and curl as https://evil.example/login.
  Origin origin("A");
  REQUIRE(origin.ok());
  Berth berth("listeners: [\"127.0.0.1:0\"]\nadmin: {address: \"127.0.0.1:0\"}\n"
              "routes:\n  - {service: s, https_redirect: true}\n"
              "services:\n  s: {endpoints: [\"" + origin.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (const char* request : {"GET /evil.example/login HTTP/1.0\r\n\r\n",
                              "GET /evil.example/login HTTP/1.1\r\nHost:\r\n\r\n",
                              "GET /evil.example/login HTTP/1.1\r\nHost: :80\r\n\r\n"}) {
    INFO(request);
    Client client(berth.port());
    Response r = client.request(request);
    CHECK(r.status == 400);
    CHECK(!r.header("location"));
  }
  Client client(berth.port());
  Response r = client.request("GET /p?q=1 HTTP/1.1\r\nHost: x.test:8080\r\n\r\n");
  CHECK(r.status == 308);
  CHECK(r.header("location").value_or("") == "https://x.test/p?q=1");
  CHECK(origin.stats().requests == 0);
}

TEST_CASE("tls: a reload that drops a TLS listener does not read its files again", "[tls]") {
  // The listener serves until a restart; its certificate files may be gone already.
  Certs& c = certs();
  Origin origin("A");
  REQUIRE(origin.ok());
  TempDir live;
  const auto [crt, key] = live_pair(live, c, "gen1");
  const uint16_t tls_port = unused_port();
  REQUIRE(tls_port != 0);
  const std::string rest = "admin: {address: \"127.0.0.1:0\"}\n"
                           "services:\n  s: {endpoints: [\"" + origin.address() + "\"]}\n"
                           "routes:\n  - {host: \"a.test\", service: s}\n";
  Berth berth("listeners:\n  - \"127.0.0.1:0\"\n  - address: \"127.0.0.1:" + std::to_string(tls_port) +
              "\"\n    tls: {certificates: [{cert: \"" + crt + "\", key: \"" + key + "\"}]}\n" + rest);
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(handshake_subject(tls_port, "-servername a.test").find("CN = gen1") != std::string::npos);
  ::unlink(crt.c_str());
  ::unlink(key.c_str());
  REQUIRE(berth.rewrite_config("listeners: [\"127.0.0.1:0\"]\n" + rest + "  - {host: \"b.test\", service: s}\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  INFO(tail(berth.log()));
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "b.test").status == 200; }, 5s));
  CHECK(berth.log().find("event=config_reload_failed") == std::string::npos);
  // The dropped listener still serves, with what it had.
  CHECK(handshake_subject(tls_port, "-servername a.test").find("CN = gen1") != std::string::npos);
}

TEST_CASE("tls: an emptied client_ca or a cut-off chain on disk is refused, and the old ones keep serving",
          "[tls]") {
  Certs& c = certs();
  REQUIRE(have("curl"));
  Origin origin("A");
  REQUIRE(origin.ok());
  TempDir live;
  // The chain: the leaf, then the CA (standing in for an intermediate).
  const std::string chain = read_file(c.path("site-ec.crt")) + read_file(c.path("ca.crt"));
  const std::string crt = live.file("site.crt"), key = live.file("site.key"), ca = live.file("clients.pem");
  REQUIRE(write_file(crt, chain));
  REQUIRE(write_file(key, read_file(c.path("site-ec.key"))));
  REQUIRE(write_file(ca, read_file(c.path("ca.crt"))));
  TlsBerth b(tls_yaml("{certificates: [{cert: \"" + crt + "\", key: \"" + key + "\"}], client_ca: \"" + ca + "\"}",
                      origin));
  const std::string client = "--cert " + c.path("client.crt") + " --key " + c.path("client.key");
  REQUIRE(curl(b.tls_port, "a.test", "/x", client) == "200");
  REQUIRE(curl(b.tls_port, "a.test", "/x") != "200");
  auto refusals = [&] { return occurrences(b.berth->log(), "event=tls_certificate_reload_refused"); };
  auto overwrite_in_place = [](const std::string& path, const std::string& content) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
    return static_cast<bool>(f);
  };

  // The CA file emptied in place (as a writer that truncates first leaves it): before, the reload
  // took it as "no client certificates" and let everyone in.
  REQUIRE(overwrite_in_place(ca, ""));
  CHECK(wait_until([&] { return refusals() >= 1; }, 5s));
  std::this_thread::sleep_for(1500ms);  // past the next look at the files
  std::string out;
  CHECK(curl(b.tls_port, "a.test", "/x", "", &out) != "200");
  INFO(out);
  CHECK(curl(b.tls_port, "a.test", "/x", client) == "200");
  REQUIRE(overwrite_in_place(ca, read_file(c.path("ca.crt"))));

  // A chain cut off inside its second certificate: before, the leaf loaded alone and was served
  // without the rest of its chain.
  const size_t before = refusals();
  const std::string leaf = read_file(c.path("site-ec.crt"));
  REQUIRE(overwrite_in_place(crt, chain.substr(0, leaf.size() + (chain.size() - leaf.size()) / 2)));
  CHECK(wait_until([&] { return refusals() > before; }, 5s));
  std::this_thread::sleep_for(1500ms);
  std::string shown;
  handshake_subject(b.tls_port,
                    "-servername a.test -showcerts -cert " + c.path("client.crt") + " -key " + c.path("client.key"),
                    &shown);
  INFO(shown);
  CHECK(shown.find(" 1 s:CN = berth-test-ca") != std::string::npos);
  CHECK(curl(b.tls_port, "a.test", "/x", client) == "200");
  CHECK(b.berth->running());
}

TEST_CASE("tls: the configuration is refused with file:line for bad TLS settings", "[tls]") {
  Certs& c = certs();
  TempDir dir;
  // Relative paths resolve against the config file's directory.
  REQUIRE(write_file(dir.file("s.crt"), read_file(c.path("site-ec.crt"))));
  REQUIRE(write_file(dir.file("s.key"), read_file(c.path("site-ec.key"))));
  REQUIRE(write_file(dir.file("wrong.key"), read_file(c.path("site-rsa.key"))));
  auto check = [&](const std::string& tls, std::string* err) {
    const std::string path = dir.file("berth.yaml");
    REQUIRE(write_file(path, "listeners:\n  - address: \"127.0.0.1:0\"\n    tls: " + tls + "\n"
                             "routes: []\nservices: {}\n"));
    std::string out;
    auto status = run_berth({"--check-config", path}, &out, err);
    REQUIRE(status);
    return exited_with(status, 0);
  };
  std::string err;
  CHECK(check("{certificates: [{cert: s.crt, key: s.key}]}", &err));
  INFO(err);
  CHECK_FALSE(check("{certificates: [{cert: nothere.crt, key: s.key}]}", &err));
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("nothere.crt") != std::string::npos);
  CHECK_FALSE(check("{certificates: [{cert: s.crt, key: wrong.key}]}", &err));
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("does not match") != std::string::npos);
  CHECK_FALSE(check("{certificates: [{cert: s.crt, key: s.key}], min_version: \"1.1\"}", &err));
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("min_version") != std::string::npos);
  CHECK_FALSE(check("{certificates: [{cert: s.crt, key: s.key}], client_ca: none.pem}", &err));
  CHECK(err.find("none.pem") != std::string::npos);
  // A chain cut off inside its second certificate (a write still under way, a full disk).
  const std::string whole = read_file(c.path("ca.crt"));
  REQUIRE(write_file(dir.file("cut.crt"), read_file(c.path("site-ec.crt")) + whole.substr(0, whole.size() / 2)));
  CHECK_FALSE(check("{certificates: [{cert: cut.crt, key: s.key}]}", &err));
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("certificate 2 in the file does not parse") != std::string::npos);
  REQUIRE(write_file(dir.file("empty.pem"), ""));
  CHECK_FALSE(check("{certificates: [{cert: s.crt, key: s.key}], client_ca: empty.pem}", &err));
  CHECK(err.find("empty.pem") != std::string::npos);
  // A pair OpenSSL itself refuses at its security level (a 1024-bit RSA key): refused here too,
  // not at start or reload without a line.
  REQUIRE(sh("cd " + dir.path() + " && openssl req -x509 -newkey rsa:1024 -nodes -keyout weak.key -out weak.crt "
                    "-subj /CN=a.test -days 2 2>/dev/null") == 0);
  CHECK_FALSE(check("{certificates: [{cert: weak.crt, key: weak.key}]}", &err));
  CHECK(err.find("berth.yaml:3:") != std::string::npos);
  CHECK(err.find("security level") != std::string::npos);
}
