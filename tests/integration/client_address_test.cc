// The client address through the real binary: X-Forwarded-For believed only from trusted_proxies,
// PROXY protocol v1/v2 headers on a listener that asks for them, and the one address feeding
// allow/deny, rate limits, the X-Forwarded-For sent upstream and the access log.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <set>
#include <string>

#include "env.h"

using namespace it;

namespace {

// The routes every test here uses; `head` is the listener/top-level part of the config.
std::string routes_yaml(const Origin& origin) {
  return "routes:\n"
         "  - {host: open.test, service: s}\n"
         "  - {host: deny.test, service: s, access: {deny: [\"10.1.2.0/24\", \"203.0.113.0/24\", \"127.0.0.0/8\"]}}\n"
         "  - {host: allow.test, service: s, access: {allow: [\"10.0.0.0/8\", \"2001:db8::/32\"]}}\n"
         "  - {host: limited.test, service: s, access: {rate_limit: {per_second: 1, burst: 2}}}\n"
         "services:\n"
         "  s: {endpoints: [\"" + origin.address() + "\"]}\n";
}

// A field the origin's /echo saw (lower-case name).
std::string echoed(const Response& r, const std::string& field) {
  auto hs = parse_echo_headers(r.body);
  for (const auto& [name, value] : hs)
    if (name == field) return value;
  return "<none>";
}

std::string xff_seen(const Response& r) { return echoed(r, "x-forwarded-for"); }

std::string proxy_v2_tcp4(const uint8_t src[4], uint16_t sport) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += std::string("\x21\x11\x00\x0c", 4);
  h.append(reinterpret_cast<const char*>(src), 4);
  h += std::string("\x7f\x00\x00\x01", 4);
  h.push_back(static_cast<char>(sport >> 8));
  h.push_back(static_cast<char>(sport & 0xff));
  h += std::string("\x00\x50", 2);
  return h;
}

std::string proxy_v2_tcp6(const uint8_t src[16], uint16_t sport) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += std::string("\x21\x21\x00\x24", 4);
  h.append(reinterpret_cast<const char*>(src), 16);
  h += std::string(15, '\0') + "\x01";
  h.push_back(static_cast<char>(sport >> 8));
  h.push_back(static_cast<char>(sport & 0xff));
  h += std::string("\x00\x50", 2);
  return h;
}

// Stops Berth (its access log is written out on exit) and returns the log line holding `id`.
std::string logged_line(Berth& berth, const std::string& log_path, const std::string& id) {
  auto status = berth.process().terminate();
  CHECK(exited_with(status, 0));
  const std::string log = read_file(log_path);
  const size_t at = log.find(id);
  INFO(log);
  REQUIRE(at != std::string::npos);
  const size_t line = log.rfind('\n', at) + 1;
  return log.substr(line, log.find('\n', at) - line);
}

// A request on a fresh connection that first sends `preface` (a PROXY header, or nothing).
Response proxied_get(uint16_t port, const std::string& preface, const std::string& target, const std::string& host,
                     const std::vector<std::string>& headers = {}) {
  Client c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send(preface));
  return c.request(make_request("GET", target, host, headers));
}

}  // namespace

TEST_CASE("client address: an untrusted peer's X-Forwarded-For is ignored", "[client_address]") {
  Origin origin{"U"};
  REQUIRE(origin.ok());
  Berth berth(config_head(2) + routes_yaml(origin));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t port = berth.port();
  const std::string m = marker("XU");

  // deny lists 127.0.0.0/8: a forged 10.x address does not get the request past it.
  check_berth_error(http_get(port, "/x?" + m, "deny.test", {"X-Forwarded-For: 192.0.2.1"}), 403, "forbidden-address");
  // allow needs 10.0.0.0/8: claiming to be there does not help.
  check_berth_error(http_get(port, "/x?" + m, "allow.test", {"X-Forwarded-For: 10.1.1.1"}), 403, "forbidden-address");
  CHECK(origin.seen(m) == 0);

  // The rate limit's key is the peer: a new forged address per request shares one bucket.
  CHECK(http_get(port, "/x", "limited.test", {"X-Forwarded-For: 192.0.2.1"}).status == 200);
  CHECK(http_get(port, "/x", "limited.test", {"X-Forwarded-For: 192.0.2.2"}).status == 200);
  check_berth_error(http_get(port, "/x", "limited.test", {"X-Forwarded-For: 192.0.2.3"}), 429, "rate-limited");

  // Upstream, the forged chain is dropped: the instance sees the peer only.
  Response r = http_get(port, "/echo", "open.test", {"X-Forwarded-For: 6.6.6.6, 10.1.1.1"});
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "127.0.0.1");

  // So is what the client says a proxy in front received (a framework may route by it): the
  // instance gets the path Berth routed, nothing else.
  r = http_get(port, "/echo", "open.test",
               {"X-Original-URL: /forged", "x-original-uri: /forged", "X-Original-Method: DELETE",
                "X-Rewrite-URL: /forged", "X_Original_URL: /forged"});
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "127.0.0.1");
  INFO(r.body);
  CHECK(r.body.find("forged") == std::string::npos);
  CHECK(r.body.find("DELETE") == std::string::npos);
}

TEST_CASE("client address: a trusted peer's X-Forwarded-For names the client", "[client_address]") {
  Origin origin{"T"};
  REQUIRE(origin.ok());
  TempDir dir;
  const std::string log_path = dir.file("access.log");
  Berth berth(config_head(2) + "trusted_proxies: [\"127.0.0.1/32\", \"10.9.0.0/16\"]\n" +
              "access_log: {format: json, path: \"" + log_path + "\"}\n" + routes_yaml(origin));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t port = berth.port();

  // allow: the client behind the proxy is in 10.0.0.0/8 (the trusted hop 10.9.x is skipped).
  Response r = http_get(port, "/echo", "allow.test", {"X-Forwarded-For: 6.6.6.6, 10.1.1.1, 10.9.0.5"});
  REQUIRE(r.status == 200);
  // The instance gets the chain from the client on (the forged 6.6.6.6 left of it dropped), then the peer.
  CHECK(xff_seen(r) == "10.1.1.1, 10.9.0.5, 127.0.0.1");
  // deny: the right-most untrusted entry decides, whatever is claimed left of it.
  const std::string m = marker("XT");
  check_berth_error(http_get(port, "/x?" + m, "deny.test", {"X-Forwarded-For: 192.0.2.9, 10.1.2.3"}), 403,
                    "forbidden-address");
  check_berth_error(http_get(port, "/x?" + m, "allow.test", {"X-Forwarded-For: 10.1.1.1, 192.0.2.9"}), 403,
                    "forbidden-address");
  CHECK(origin.seen(m) == 0);
  // Several header lines make one list; IPv6 entries with brackets and ports work.
  r = http_get(port, "/echo", "allow.test", {"X-Forwarded-For: 192.0.2.9", "X-Forwarded-For: [2001:db8::5]:4431"});
  CHECK(r.status == 200);
  // What the trusted proxy received passes on as it said; the '_' spelling does not.
  r = http_get(port, "/echo", "open.test", {"X-Original-URL: /before-rewrite", "X_Rewrite_URL: /alias"});
  REQUIRE(r.status == 200);
  CHECK(echoed(r, "x-original-url") == "/before-rewrite");
  CHECK(r.body.find("/alias") == std::string::npos);

  // One bucket per client behind the proxy.
  for (const char* client : {"X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 198.51.100.2"}) {
    CHECK(http_get(port, "/x", "limited.test", {client}).status == 200);
    CHECK(http_get(port, "/x", "limited.test", {client}).status == 200);
    check_berth_error(http_get(port, "/x", "limited.test", {client}), 429, "rate-limited");
  }

  // The access log records the client, not the proxy: an IPv6 entry without a port as the
  // address alone, as written (no brackets); with one, as "[address]:port".
  const std::string id = marker("XL"), id6 = marker("XL"), id6p = marker("XL");
  REQUIRE(http_get(port, "/x", "open.test", {"X-Forwarded-For: 198.51.100.77", "X-Request-Id: " + id}).status == 200);
  REQUIRE(http_get(port, "/x", "open.test", {"X-Forwarded-For: 2001:db8::9", "X-Request-Id: " + id6}).status == 200);
  REQUIRE(http_get(port, "/x", "open.test", {"X-Forwarded-For: [2001:db8::9]:4431", "X-Request-Id: " + id6p}).status ==
          200);
  CHECK(logged_line(berth, log_path, id).find("\"client\":\"198.51.100.77\"") != std::string::npos);
  const std::string log = read_file(log_path);
  CHECK(log.find("\"request_id\":\"" + id6 + "\",\"client\":\"2001:db8::9\"") != std::string::npos);
  CHECK(log.find("\"request_id\":\"" + id6p + "\",\"client\":\"[2001:db8::9]:4431\"") != std::string::npos);
}

TEST_CASE("client address: PROXY v1 and v2 headers set the address", "[client_address][proxy_protocol]") {
  Origin origin{"P"};
  REQUIRE(origin.ok());
  TempDir dir;
  const std::string log_path = dir.file("access.log");
  Berth berth("listeners: [{address: \"127.0.0.1:0\", proxy_protocol: true}]\nworkers: 2\n"
              "admin: {address: \"127.0.0.1:0\"}\n"
              "access_log: {format: json, path: \"" + log_path + "\"}\n" + routes_yaml(origin));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t port = berth.port();

  // v1: the named source is the client; deny and allow see it.
  const std::string v1 = "PROXY TCP4 203.0.113.7 127.0.0.1 56324 80\r\n";
  const std::string m = marker("PP");
  check_berth_error(proxied_get(port, v1, "/x?" + m, "deny.test"), 403, "forbidden-address");
  check_berth_error(proxied_get(port, v1, "/x?" + m, "allow.test"), 403, "forbidden-address");
  CHECK(origin.seen(m) == 0);
  Response r = proxied_get(port, "PROXY TCP4 10.2.3.4 127.0.0.1 40000 443\r\n", "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.2.3.4");
  // X-Forwarded-Port: the port the client connected to, at the balancer (not Berth's listener).
  CHECK(echoed(r, "x-forwarded-port") == "443");
  // The header ends where it ends: the request may follow in the same packet (it did above) or later.
  {
    Client c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send("PROXY TCP6 2001:db8::9 ::1 1234 80\r"));
    REQUIRE(c.send("\nGET /echo HTTP/1.1\r\nHost: allow.test\r\n\r\n"));
    r = c.read_response();
    CHECK(r.status == 200);
    CHECK(xff_seen(r) == "2001:db8::9");
    // Later requests on the connection keep the address.
    r = c.get("/echo", "allow.test");
    CHECK(xff_seen(r) == "2001:db8::9");
  }

  // v2, TCP4 and TCP6.
  const uint8_t src4[4] = {10, 7, 7, 7};
  r = proxied_get(port, proxy_v2_tcp4(src4, 5555), "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.7.7.7");
  CHECK(echoed(r, "x-forwarded-port") == "80");
  const uint8_t src4_denied[4] = {203, 0, 113, 8};
  check_berth_error(proxied_get(port, proxy_v2_tcp4(src4_denied, 5555), "/x", "deny.test"), 403, "forbidden-address");
  const uint8_t src6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77};
  r = proxied_get(port, proxy_v2_tcp6(src6, 6666), "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "2001:db8::77");
  // An IPv4 client in IPv4-mapped form, in v1 and v2: the address it has, for rules and upstream.
  r = proxied_get(port, "PROXY TCP6 ::ffff:10.8.8.8 ::ffff:127.0.0.1 5555 80\r\n", "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.8.8.8");
  const uint8_t mapped6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 9, 9};
  r = proxied_get(port, proxy_v2_tcp6(mapped6, 6666), "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.9.9.9");
  // v2 LOCAL: the connection's own peer (127.0.0.1) stays, which deny.test refuses.
  std::string local("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
  check_berth_error(proxied_get(port, local, "/x", "deny.test"), 403, "forbidden-address");
  CHECK(proxied_get(port, local, "/x", "open.test").status == 200);
  r = proxied_get(port, local, "/echo", "open.test");  // no destination named: the listener's port
  REQUIRE(r.status == 200);
  CHECK(echoed(r, "x-forwarded-port") == std::to_string(port));

  // The access log has the PROXY source and port.
  const std::string id = marker("PL");
  REQUIRE(proxied_get(port, v1, "/x", "open.test", {"X-Request-Id: " + id}).status == 200);
  CHECK(logged_line(berth, log_path, id).find("\"client\":\"203.0.113.7:56324\"") != std::string::npos);
}

TEST_CASE("client address: a missing or malformed PROXY header closes the connection", "[client_address][proxy_protocol]") {
  Origin origin{"M"};
  REQUIRE(origin.ok());
  Berth berth("listeners: [{address: \"127.0.0.1:0\", proxy_protocol: true}]\nworkers: 1\n"
              "admin: {address: \"127.0.0.1:0\"}\ntimeouts: {request_header: 1s}\n" + routes_yaml(origin));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint16_t port = berth.port();
  const std::string m = marker("PM");

  const std::string bad[] = {
      "",                                                   // no header: plain HTTP
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",               // a field too many
      "PROXY TCP4 203.0.113.7 127.0.0.1 99999 80\r\n",      // port out of range
      "PROXY UNKNOWN " + std::string(120, 'x') + "\r\n",    // longer than 107 bytes
      std::string("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c", 16) + std::string(12, '\1'),  // bad signature
      std::string("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x08", 16) + std::string(8, '\1'),   // TCP4 too short
  };
  for (const std::string& preface : bad) {
    INFO("preface: " << preface);
    Client c(port);
    REQUIRE(c.connected());
    c.send(preface + make_request("GET", "/x?" + m, "open.test"));
    std::string got;
    CHECK(c.wait_closed(5s, &got));
    CHECK(got.empty());  // closed without an answer
  }
  CHECK(origin.seen(m) == 0);
  CHECK(stats_counter(berth.admin_port(), "proxy_protocol_rejected") == 6);
  // ...and Prometheus sees the same count.
  const std::string metrics = http_get(berth.admin_port(), "/metrics", "127.0.0.1").body;
  CHECK(metrics.find("\nberth_proxy_protocol_rejected_total 6\n") != std::string::npos);

  // Half a header and then silence: closed by the request_header deadline (1 s).
  Client c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send("PROXY TCP4 203.0.113.7 "));
  const auto t0 = Clock::now();
  CHECK(c.wait_closed(5s));
  CHECK(seconds_since(t0) < 4.0);
  // The listener still serves a good header afterwards.
  CHECK(proxied_get(port, "PROXY TCP4 10.0.0.1 127.0.0.1 1 80\r\n", "/x", "open.test").status == 200);
}

TEST_CASE("client address: a reload that adds a listener applies proxy_protocol to the listeners that stay",
          "[client_address][proxy_protocol]") {
  Origin origin{"R"};
  REQUIRE(origin.ok());
  const std::string rest = "workers: 1\nadmin: {address: \"127.0.0.1:0\"}\n" + routes_yaml(origin);
  Berth berth("listeners: [\"127.0.0.1:0\"]\n" + rest);
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(proxied_get(berth.port(), "", "/echo", "open.test").status == 200);
  // The running listener asks for PROXY headers now; the one added waits for a restart.
  REQUIRE(berth.rewrite_config("listeners: [{address: \"127.0.0.1:0\", proxy_protocol: true}, \"127.0.0.1:1\"]\n" +
                               rest));
  REQUIRE(berth.process().signal(SIGHUP));
  INFO(tail(berth.log()));
  REQUIRE(berth.log_shows("event=config_reloaded"));
  CHECK(berth.log_shows("event=config_restart_needed"));
  const std::string m = marker("PR");
  Client plain(berth.port());
  REQUIRE(plain.connected());
  plain.send(make_request("GET", "/x?" + m, "open.test"));
  std::string got;
  CHECK(plain.wait_closed(5s, &got));
  CHECK(got.empty());  // no PROXY header: closed unanswered
  CHECK(origin.seen(m) == 0);
  Response r = proxied_get(berth.port(), "PROXY TCP4 10.2.3.4 127.0.0.1 40000 80\r\n", "/echo", "open.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.2.3.4");
}

TEST_CASE("client address: proxy_protocol_from takes PROXY headers from the named peers only",
          "[client_address][proxy_protocol]") {
  Origin origin{"F"};
  REQUIRE(origin.ok());
  auto berth_from = [&](const std::string& from) {
    return std::make_unique<Berth>("listeners: [{address: \"127.0.0.1:0\", proxy_protocol: true, proxy_protocol_from: [" +
                                   from + "]}]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n" + routes_yaml(origin));
  };
  // This test's connections come from 127.0.0.1: not a balancer in 10.0.0.0/8. Its header would
  // make it 10.2.3.4, which allow.test lets through.
  auto refused = berth_from("\"10.0.0.0/8\", \"::1\"");
  INFO(refused->error());
  REQUIRE(refused->ok());
  const std::string m = marker("PF");
  {
    Client c(refused->port());
    REQUIRE(c.connected());
    c.send("PROXY TCP4 10.2.3.4 127.0.0.1 40000 80\r\n" + make_request("GET", "/x?" + m, "allow.test"));
    std::string got;
    CHECK(c.wait_closed(5s, &got));
    CHECK(got.empty());  // closed without an answer
  }
  CHECK(origin.seen(m) == 0);
  CHECK(stats_counter(refused->admin_port(), "proxy_protocol_rejected") == 1);
  CHECK(refused->log_shows("peer not in proxy_protocol_from", 3s));

  auto trusted = berth_from("\"127.0.0.0/8\"");
  INFO(trusted->error());
  REQUIRE(trusted->ok());
  Response r = proxied_get(trusted->port(), "PROXY TCP4 10.2.3.4 127.0.0.1 40000 80\r\n", "/echo", "allow.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "10.2.3.4");
}

namespace {

// A blocking TCP connection to 127.0.0.1:port (5 s receive timeout), -1 on failure.
int connect_blocking(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `preface` in the clear, then GET target over TLS (SNI `host`) on the same connection;
// the raw response, or "" when the handshake failed.
std::string tls_get_after(uint16_t port, const std::string& preface, const std::string& host, const std::string& target) {
  const int fd = connect_blocking(port);
  REQUIRE(fd >= 0);
  if (!preface.empty()) REQUIRE(::send(fd, preface.data(), preface.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(preface.size()));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host.c_str());
  std::string out;
  if (SSL_connect(ssl) == 1) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return out;
}

}  // namespace

TEST_CASE("client address: a PROXY header before the TLS handshake", "[client_address][proxy_protocol][tls]") {
  TempDir certs;
  const std::string cmd = "cd " + certs.path() +
                          " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem"
                          " -out c.pem -days 2 -subj /CN=tls.test -addext subjectAltName=DNS:tls.test >out.txt 2>&1";
  INFO("openssl (Debian package openssl) must make a certificate: " << read_file(certs.file("out.txt")));
  REQUIRE(std::system(cmd.c_str()) == 0);
  Origin origin{"S"};
  REQUIRE(origin.ok());
  Berth berth("listeners:\n  - {address: \"127.0.0.1:0\", proxy_protocol: true, tls: {certificates: [{cert: \"" +
              certs.file("c.pem") + "\", key: \"" + certs.file("k.pem") + "\"}]}}\nworkers: 1\n"
              "admin: {address: \"127.0.0.1:0\"}\n"
              "routes:\n"
              "  - {host: tls.test, service: s}\n"
              "  - {host: deny.tls.test, service: s, access: {deny: [\"203.0.113.0/24\"]}}\n"
              "services:\n"
              "  s: {endpoints: [\"" + origin.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  INFO(berth.log());

  std::string raw = tls_get_after(berth.port(), "PROXY TCP4 203.0.113.7 127.0.0.1 4444 443\r\n", "tls.test", "/echo");
  INFO(raw);
  REQUIRE(raw.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(raw.find("X-Forwarded-For: 203.0.113.7\r\n") != std::string::npos);
  CHECK(raw.find("X-Forwarded-Proto: https\r\n") != std::string::npos);
  raw = tls_get_after(berth.port(), "PROXY TCP4 203.0.113.7 127.0.0.1 4444 443\r\n", "deny.tls.test", "/x");
  CHECK(raw.rfind("HTTP/1.1 403", 0) == 0);
  // A TLS client that sends no PROXY header first: closed before any handshake.
  CHECK(tls_get_after(berth.port(), "", "tls.test", "/echo").empty());
  CHECK(stats_counter(berth.admin_port(), "proxy_protocol_rejected") == 1);
}

TEST_CASE("client address: hashing by client_ip uses the client a trusted proxy names", "[client_address][lb]") {
  Origin a{"HA"}, b{"HB"};
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  Berth berth(config_head(2) + "trusted_proxies: [\"127.0.0.1/32\"]\n"
              "routes:\n  - {host: hash.test, service: s}\n"
              "services:\n  s:\n    endpoints: [\"" + a.address() + "\", \"" + b.address() + "\"]\n"
              "    lb: {policy: hash, hash_on: client_ip}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  // "origin=NAME path=..." -> NAME
  const auto origin_of = [](const Response& r) { return r.body.substr(0, r.body.find(' ')); };
  // One client behind the proxy always reaches the same instance.
  const std::string first = origin_of(http_get(berth.port(), "/", "hash.test", {"X-Forwarded-For: 198.51.100.1"}));
  for (int i = 0; i < 10; ++i)
    CHECK(origin_of(http_get(berth.port(), "/", "hash.test", {"X-Forwarded-For: 198.51.100.1"})) == first);
  // Different clients behind the one proxy spread over both (all 32 on one: about 1 in 2^31).
  std::set<std::string> seen;
  for (int i = 0; i < 32; ++i)
    seen.insert(origin_of(
        http_get(berth.port(), "/", "hash.test", {"X-Forwarded-For: 198.51.100." + std::to_string(10 + i)})));
  CHECK(seen.size() == 2);
}

TEST_CASE("client address: an IPv4 client of a listener on a mapped address is an IPv4 client", "[client_address]") {
  // The socket is IPv6 and names the peer ::ffff:127.0.0.1; the instance and the access rules see
  // 127.0.0.1, the address the client has.
  Origin origin{"M"};
  REQUIRE(origin.ok());
  Berth berth("listeners: [\"[::ffff:127.0.0.1]:0\"]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n" +
              routes_yaml(origin));
  INFO(berth.error());
  REQUIRE(berth.ok());
  Response r = http_get(berth.port(), "/echo", "open.test");
  REQUIRE(r.status == 200);
  CHECK(xff_seen(r) == "127.0.0.1");
  check_berth_error(http_get(berth.port(), "/x", "deny.test"), 403, "forbidden-address");
}
