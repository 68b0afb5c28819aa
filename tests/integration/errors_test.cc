// Error responses berth generates itself, each with an x-berth-error header.

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <thread>

#include "env.h"

using namespace it;

namespace {

// A berth with 1 s upstream_response and request_header timeouts, routing a.test to origin.
struct TimeoutEnv : OriginEnv {
  TimeoutEnv()
      : OriginEnv("T",
                  config_head(1, "request_header: 1s, upstream_response: 1s, upstream_connect: 2s") +
                      "routes:\n  - {name: r-t, host: \"a.test\", service: s-t}\n",
                  "s-t") {}
};

// On a fresh connection: GET path, whose origin first sends a 103; returns what follows it.
Response final_after_interim(uint16_t port, const std::string& path) {
  Client c(port);
  REQUIRE(c.connected());
  c.set_timeout(5s);
  Response interim = c.get(path, "a.test");
  INFO(interim.raw_head << interim.error);
  REQUIRE(interim.status == 103);
  return c.read_response();
}

}  // namespace

TEST_CASE("unknown host -> 404 no-route", "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/x", "nowhere.test");
  check_berth_error(r, 404, "no-route");
  // A berth error on a well-formed request does not break the connection.
  if (!c.wait_closed(50ms)) {
    r = c.get("/x", "a.test");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
  }
  check_alive(env);
}

TEST_CASE("Berth's own replies to HEAD carry their head and no body", "[errors]") {
  auto& env = shared();
  const std::string m = marker("EHD");
  Client c(env.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("HEAD /x HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"
                 "HEAD /x HTTP/1.1\r\nHost: empty.test\r\n\r\n"
                 "GET /" + m + " HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  check_head_berth_error(c.read_response(true), 404, "no-route");
  check_head_berth_error(c.read_response(true), 503, "no-endpoint");
  Response after = c.read_response();
  INFO(after.raw_head << after.error);
  CHECK(after.status == 200);
  CHECK(env.a->seen(m) == 1);
  check_alive(env);
}

TEST_CASE("service without endpoints -> 503 no-endpoint with Retry-After", "[errors]") {
  auto& env = shared();
  Response r = http_get(env.port(), "/x", "empty.test");
  check_berth_error(r, 503, "no-endpoint");
  CHECK(r.header("retry-after").has_value());
  check_alive(env);
}

TEST_CASE("endpoint where nothing listens -> 502 upstream-connect-failed", "[errors]") {
  auto& env = shared();
  auto t0 = Clock::now();
  Response r = http_get(env.port(), "/x", "dead.test");
  check_berth_error(r, 502, "upstream-connect-failed");
  CHECK(seconds_since(t0) < 5.0);
  check_alive(env);
}

TEST_CASE("origin resets the connection -> 502 upstream-reset", "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/x?abort=1", "a.test");
  check_berth_error(r, 502, "upstream-reset");
  // And the next request (new connection if berth closed this one) works.
  Response r2 = http_get(env.port(), "/next", "a.test");
  INFO(r2.raw_head << r2.error);
  CHECK(r2.status == 200);
  CHECK(r2.body == "origin=A path=/next\n");
  check_alive(env);
}

TEST_CASE("origin with conflicting framing -> 502, and the connection is not reused",
          "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/bad?bad_framing=1", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 502);
  CHECK(r.header("x-berth-error").has_value());
  // The origin kept its side open with leftover bytes; a reused upstream connection would
  // produce garbage. Several follow-ups, on this client connection when still open.
  bool same_open = !c.wait_closed(50ms);
  for (int i = 0; i < 4; ++i) {
    std::string path = "/follow" + std::to_string(i);
    Response f = same_open ? c.get(path, "a.test") : http_get(env.port(), path, "a.test");
    INFO("follow-up " << i << (same_open ? " (same connection)" : " (new connection)") << ": "
                      << f.raw_head << f.error);
    CHECK(f.status == 200);
    CHECK(f.body == "origin=A path=" + path + "\n");
  }
  check_alive(env);
}

TEST_CASE("origin answers bytes that are no status line -> 502 at once, also after a 1xx", "[errors]") {
  // The origin holds the connection open after them: waiting for the end of that head would give
  // 504 after upstream_response (1 s here) instead.
  TimeoutEnv env;
  const uint16_t port = env.berth->port();
  Client c(port);
  REQUIRE(c.connected());
  c.set_timeout(5s);
  Response r = c.get("/junk?not_a_head=1", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 502);
  CHECK(r.header("x-berth-error").value_or("") == "upstream-bad-response");

  Response final_response = final_after_interim(port, "/junk?interim=1&not_a_head=1");
  INFO(final_response.raw_head << final_response.error);
  CHECK(final_response.status == 502);
  CHECK(final_response.header("x-berth-error").value_or("") == "upstream-bad-response");
}

TEST_CASE("origin sends a head and a broken first chunk in one write -> 502, counted as 502", "[errors]") {
  // The head has not left when the chunk-size line breaks: the client gets a 502 in its place,
  // not an empty reply, and the counters and the access log say 502, not 200.
  TimeoutEnv env;
  const uint16_t port = env.berth->port();
  for (int i = 0; i < 3; ++i) {
    Client c(port);
    REQUIRE(c.connected());
    c.set_timeout(5s);
    Response r = c.get("/chunk?bad_chunk=1", "a.test");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 502);
    CHECK(r.header("x-berth-error").value_or("") == "upstream-bad-response");
    CHECK(r.body_complete);
  }
  CHECK(stats_counter(env.berth->admin_port(), "responses_2xx") == 0);
  CHECK(stats_counter(env.berth->admin_port(), "responses_5xx") == 3);
  const uint16_t admin = env.berth->admin_port();
  const std::string series = "berth_requests_total{route=\"r-t\",service=\"s-t\",method=\"GET\",code=\"";
  CHECK(wait_until([&] { return metric_sample(admin, series + "502\"}") == 3; }, 5s, 50ms));
  CHECK(metric_sample(admin, series + "200\"}") == -1);
  Response ok = http_get(port, "/after", "a.test");
  CHECK(ok.status == 200);
}

TEST_CASE("origin resets after a 1xx or inside its head -> 502 upstream-reset", "[errors]") {
  // Nothing it sent was malformed: the connection went before a whole final head.
  TimeoutEnv env;
  const uint16_t port = env.berth->port();
  Response final_response = final_after_interim(port, "/x?interim=1&reset_in_head=0");
  INFO(final_response.raw_head << final_response.error);
  check_berth_error(final_response, 502, "upstream-reset");

  Client d(port);
  REQUIRE(d.connected());
  d.set_timeout(5s);
  Response cut = d.get("/x?reset_in_head=20", "a.test");  // "HTTP/1.1 200 OK\r\nx-or"
  INFO(cut.raw_head << cut.error);
  check_berth_error(cut, 502, "upstream-reset");
}

TEST_CASE("a Content-Length: 0 response completes at its head, and the connections stay in use", "[errors]") {
  TimeoutEnv env;  // upstream_response 1s: a response waiting for a body that never comes shows
  Client c(env.berth->port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  for (const char* method : {"GET", "POST"}) {
    INFO(method);
    const auto t0 = Clock::now();
    Response r = c.request(std::string(method) + " /x?size=0 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == "0");
    CHECK(seconds_since(t0) < 0.5);
    // The next request on the same client connection is answered (it used to wait for the
    // upstream_response timeout, then find the connection closed).
    r = c.get("/next", "a.test");
    CHECK(r.status == 200);
    CHECK(r.body.find("path=/next") != std::string::npos);
    CHECK(seconds_since(t0) < 0.5);
  }
  CHECK(env.origin.stats().connections == 1);  // one instance connection, reused throughout
}

TEST_CASE("bytes after a response without a body never answer the next request, of any client", "[errors][smuggling]") {
  // A confused instance sends a whole extra response after its answer to a HEAD (or a 204, or a
  // small body). The client's pipelined request must not get those bytes as its response, and
  // the connection must not go back to the pool, where its real answer would reach another client.
  TimeoutEnv env;
  for (const char* first : {"HEAD /x?smuggle=1", "GET /x?status=204&smuggle=1", "GET /x?smuggle=1"}) {
    INFO(first);
    Client a(env.berth->port());
    REQUIRE(a.connected());
    a.set_timeout(5s);
    REQUIRE(a.send(std::string(first) + " HTTP/1.1\r\nHost: a.test\r\n\r\n"
                   "GET /second?delay_ms=300 HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    Response r1 = a.read_response(std::string(first).starts_with("HEAD"));
    INFO(r1.raw_head << r1.error);
    CHECK(r1.status == (std::string(first).find("204") != std::string::npos ? 204 : 200));
    Response r2 = a.read_response();
    INFO(r2.raw_head << r2.error);
    CHECK(r2.status == 200);
    CHECK_FALSE(r2.header("x-smuggled"));
    CHECK(r2.body.find("path=/second") != std::string::npos);
    // Another client, meanwhile: its own answer.
    Response b = http_get(env.berth->port(), "/other", "a.test");
    CHECK_FALSE(b.header("x-smuggled"));
    CHECK(b.body.find("path=/other") != std::string::npos);
  }
}

TEST_CASE("origin dies mid-body: the client never sees a complete response", "[errors]") {
  auto& env = shared();
  // Cut by a FIN (sized or chunked), or by a reset: then even a body delimited by the close
  // (no_length) is incomplete, and the client must not get the chunked body's last chunk.
  for (const char* how : {"abort_after_headers=1", "abort_after_headers=1&chunked=1", "reset_mid_body=1",
                          "reset_mid_body=1&no_length=1"}) {
    Client c(env.port());
    REQUIRE(c.connected());
    c.set_timeout(5s);
    Response r = c.get(std::string("/die?size=300000&") + how, "a.test");
    INFO(how << ": " << r.raw_head << r.error << " body bytes " << r.body.size());
    if (r.status == 200) {
      CHECK_FALSE(r.body_complete);
      CHECK(r.body.size() < 300000);
    } else {
      CHECK(r.status == 502);
    }
  }
  check_alive(env);
}

TEST_CASE("origin dies mid-body: an HTTP/1.0 client's connection ends with a reset, never a clean close",
          "[errors]") {
  // To an HTTP/1.0 client a body runs until the close (a chunked one is passed on unframed): a
  // FIN would make a cut body look whole, to the client and to any cache in between.
  auto& env = shared();
  for (const char* how : {"abort_after_headers=1&chunked=1", "reset_mid_body=1&no_length=1", "reset_mid_body=1",
                          "bad_chunk=1"}) {
    INFO(how);
    Client c(env.port());
    REQUIRE(c.connected());
    REQUIRE(c.send(std::string("GET /die?size=300000&") + how + " HTTP/1.0\r\nHost: a.test\r\n\r\n"));
    std::string got;
    char buf[65536];
    ssize_t n = 0;
    int end_errno = 0;
    const auto until = Clock::now() + 10s;
    while (Clock::now() < until) {
      n = ::recv(c.fd(), buf, sizeof buf, 0);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      end_errno = n < 0 ? errno : 0;
      break;
    }
    INFO(got.substr(0, got.find("\r\n\r\n")) << "\nbody and head bytes: " << got.size());
    if (got.rfind("HTTP/1.1 502", 0) == 0) continue;  // caught before the head left: a whole 502
    REQUIRE(got.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(end_errno == ECONNRESET);
  }
  check_alive(env);
}

TEST_CASE("upstream slower than upstream_response -> 504 upstream-response-timeout",
          "[errors]") {
  TimeoutEnv env;
  auto t0 = Clock::now();
  Response r = http_get(env.berth->port(), "/slow?delay_ms=3000", "a.test");
  double took = seconds_since(t0);
  check_berth_error(r, 504, "upstream-response-timeout");
  CHECK(took >= 0.8);
  CHECK(took < 2.9);
  // A response that arrives in time is fine.
  r = http_get(env.berth->port(), "/quick?delay_ms=200", "a.test");
  CHECK(r.status == 200);
  // An upgrade request waits for its 101 no longer than any request.
  const std::vector<std::string> upgrade = {"Connection: Upgrade", "Upgrade: websocket"};
  t0 = Clock::now();
  Client c(env.berth->port());
  REQUIRE(c.send(make_request("GET", "/ws?delay_ms=3000", "a.test", upgrade)));
  r = c.read_response();
  took = seconds_since(t0);
  check_berth_error(r, 504, "upstream-response-timeout");
  CHECK(took >= 0.8);
  CHECK(took < 2.9);
  Client quick(env.berth->port());
  REQUIRE(quick.send(make_request("GET", "/ws?delay_ms=200", "a.test", upgrade)));
  r = quick.read_response();
  CHECK(r.status == 101);
  CHECK(env.berth->running());
}

TEST_CASE("request header not completed within request_header -> 408 or close", "[errors]") {
  TimeoutEnv env;
  SECTION("stalled head") {
    Client c(env.berth->port());
    REQUIRE(c.connected());
    auto t0 = Clock::now();
    REQUIRE(c.send("GET /x HTTP/1.1\r\nHost: a.test\r\n"));
    std::string data;
    bool closed = c.wait_closed(5s, &data);
    double took = seconds_since(t0);
    INFO("received: " << data);
    CHECK(closed);
    CHECK(took >= 0.8);
    CHECK(took < 3.5);
    if (!data.empty()) {
      CHECK(data.rfind("HTTP/1.1 408 ", 0) == 0);
      CHECK(lower(data).find("x-berth-error:") != std::string::npos);
    }
  }
  SECTION("trickled head (the deadline runs from the first byte)") {
    Client c(env.berth->port());
    REQUIRE(c.connected());
    auto t0 = Clock::now();
    std::string head = "GET /x HTTP/1.1\r\nHost: a.test\r\nX-Slow: ";
    REQUIRE(c.send(head));
    bool closed = false;
    std::string data;
    for (int i = 0; i < 20 && !closed; ++i) {
      c.send("a");
      closed = c.wait_closed(250ms, &data);
    }
    double took = seconds_since(t0);
    INFO("received: " << data);
    CHECK(closed);
    CHECK(took < 3.5);
    if (!data.empty()) CHECK(data.rfind("HTTP/1.1 408 ", 0) == 0);
  }
  CHECK(env.berth->running());
}

TEST_CASE("header block over max_header_bytes -> 431", "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/x", "a.test", {"X-Big: " + std::string(40000, 'a')});
  check_berth_error(r, 431, "");
  // Many small headers over the byte limit too.
  std::vector<std::string> many;
  for (int i = 0; i < 90; ++i) many.push_back("X-H" + std::to_string(i) + ": " + std::string(400, 'b'));
  r = http_get(env.port(), "/x", "a.test", many);
  check_berth_error(r, 431, "");
  check_alive(env);
}

TEST_CASE("too many headers -> 431", "[errors]") {
  auto& env = shared();
  std::vector<std::string> many;
  for (int i = 0; i < 150; ++i) many.push_back("X-N" + std::to_string(i) + ": v");
  Response r = http_get(env.port(), "/x", "a.test", many);
  check_berth_error(r, 431, "");
  check_alive(env);
}

TEST_CASE("request line over max_request_line -> 414", "[errors]") {
  auto& env = shared();
  Response r = http_get(env.port(), "/" + std::string(9000, 'p'), "a.test");
  check_berth_error(r, 414, "");
  // Just under the limit is fine.
  r = http_get(env.port(), "/" + std::string(7000, 'p'), "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  check_alive(env);
}

TEST_CASE("Content-Length over the route's max_body_bytes -> 413", "[errors]") {
  auto& env = shared();
  std::string m = marker("BIG");
  Client c(env.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("POST /upload?" + m + " HTTP/1.1\r\nHost: small.test\r\nContent-Length: 2048\r\n\r\n"));
  Response r = c.read_response();
  check_berth_error(r, 413, "");
  CHECK(env.a->seen(m) == 0);
  // At the limit it passes.
  Client c2(env.port());
  REQUIRE(c2.connected());
  r = c2.request(make_request("POST", "/upload", "small.test", {}, std::string(1024, 'z')));
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "bytes=1024 sum=" + std::to_string(1024 * 'z'));
  check_alive(env);
}

TEST_CASE("malformed request -> 400 and the connection is closed", "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("GET /x HTTP/1.1\r\nHost: a.test\r\nNoColonHere\r\n\r\n"));
  Response r = c.read_response();
  check_berth_error(r, 400, "");
  CHECK(c.wait_closed(3s));
  check_alive(env);
}

TEST_CASE("Expect: 100-continue with a too-large Content-Length -> 413, no 100", "[errors]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("POST /upload HTTP/1.1\r\nHost: small.test\r\nExpect: 100-continue\r\n"
                 "Content-Length: 4096\r\n\r\n"));
  Response r = c.read_response();
  check_berth_error(r, 413, "");
  check_alive(env);
}

TEST_CASE("clients vanishing mid-request or mid-response do not hurt berth", "[errors]") {
  auto& env = shared();
  long rss_before = vmrss_kb(env.berth->pid());
  for (int round = 0; round < 10; ++round) {
    {  // mid request body
      Client c(env.port());
      REQUIRE(c.connected());
      c.send("POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000000\r\n\r\n" +
             std::string(5000, 'x'));
    }
    {  // mid response body
      Client c(env.port());
      REQUIRE(c.connected());
      c.send(make_request("GET", "/download?size=100000000", "a.test"));
      Response r = c.read_head();
      REQUIRE(r.status == 200);
      c.read_exact(100000);
    }
    {  // mid head
      Client c(env.port());
      REQUIRE(c.connected());
      c.send("GET /x HTTP/1.1\r\nHost: a.");
    }
  }
  std::this_thread::sleep_for(200ms);
  Response r = http_get(env.port(), "/still-fine", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  long rss_after = vmrss_kb(env.berth->pid());
  INFO("RSS before " << rss_before << " KiB, after " << rss_after << " KiB");
  CHECK(rss_after < rss_before + 32 * 1024);
  check_alive(env);
}
