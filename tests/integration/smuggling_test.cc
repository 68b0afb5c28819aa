// Request smuggling and malformed input: every case is rejected, the connection is closed,
// and the origin (asked directly, not through berth) never saw the request.

#include <catch2/catch.hpp>
#include <algorithm>
#include <thread>
#include <utility>

#include "env.h"

using namespace it;
using namespace std::string_literals;

namespace {

struct Case {
  std::string name;
  std::string raw;            // "{M}" = this case's marker (in the path), "{S}" = smuggled marker
  std::vector<int> statuses;  // acceptable statuses
  // Neither the request ({M}) nor the smuggled one ({S}) may reach the origin: chunked framing
  // that is broken in the bytes arriving with the head (each case is one write) is refused
  // before any instance sees the request, as a broken head is.
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

const std::string kSmuggled = "GET /{S} HTTP/1.1\r\nHost: a.test\r\n\r\n";

std::vector<Case> head_cases() {
  const std::string post = "POST /{M} HTTP/1.1\r\nHost: a.test\r\n";
  const std::string get = "GET /{M} HTTP/1.1\r\nHost: a.test\r\n";
  return {
      {"Content-Length and Transfer-Encoding",
       post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", {400}},
      {"Transfer-Encoding and Content-Length",
       post + "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG", {400}},
      {"two equal Content-Length", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", {400}},
      {"two different Content-Length", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       {400}},
      {"Content-Length with plus sign", post + "Content-Length: +5\r\n\r\nhello", {400}},
      {"Content-Length negative", post + "Content-Length: -5\r\n\r\nhello", {400}},
      {"Content-Length hex", post + "Content-Length: 0x5\r\n\r\nhello", {400}},
      {"Content-Length with letters", post + "Content-Length: 5a\r\n\r\nhello", {400}},
      {"Content-Length overflow", post + "Content-Length: 99999999999999999999999\r\n\r\nhello", {400}},
      {"Content-Length 2^64 (wraps to 0)", post + "Content-Length: 18446744073709551616\r\n\r\n" + kSmuggled,
       {400}},
      {"Content-Length space-separated values", post + "Content-Length: 5 5\r\n\r\nhello", {400}},
      {"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\nxxxx", {501}},
      {"Transfer-Encoding chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400}},
      {"Transfer-Encoding chunked on HTTP/1.0",
       "POST /{M} HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}},
      {"obs-fold with space", get + "X-A: a\r\n folded\r\n\r\n", {400}},
      {"obs-fold with tab", get + "X-A: a\r\n\tfolded\r\n\r\n", {400}},
      {"obs-fold on the first header line", "GET /{M} HTTP/1.1\r\n Host: a.test\r\n\r\n", {400}},
      {"bare LF line endings", "GET /{M} HTTP/1.1\nHost: a.test\n\n", {400}},
      {"bare LF in one header line", "GET /{M} HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n", {400}},
      {"bare LF after request line", "GET /{M} HTTP/1.1\nHost: a.test\r\n\r\n", {400}},
      {"bare CR inside header block", get + "X-A: b\rX-B: c\r\n\r\n", {400}},
      {"bare CR in request line", "GET /{M}\rX HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"space between header name and colon", get + "X-A : b\r\n\r\n", {400}},
      {"tab between header name and colon", get + "X-A\t: b\r\n\r\n", {400}},
      {"space before colon on Content-Length",
       post + "Content-Length : 5\r\n\r\nhello", {400}},
      {"NUL in header value", get + "X-A: a\0b\r\n\r\n"s, {400}},
      {"control char in header value", get + "X-A: a\x01z\r\n\r\n", {400}},
      {"ESC in header value", get + "X-A: a\x1bz\r\n\r\n", {400}},
      {"NUL in header name", get + "X-\0A: b\r\n\r\n"s, {400}},
      {"control char in header name", get + "X-\x02" "A: b\r\n\r\n", {400}},
      {"non-token header name", get + "Bad@Name: x\r\n\r\n", {400}},
      {"header name with inner space", get + "Bad Name: x\r\n\r\n", {400}},
      {"empty header name", get + ": x\r\n\r\n", {400}},
      {"missing Host on HTTP/1.1", "GET /{M} HTTP/1.1\r\nX-A: b\r\n\r\n", {400}},
      {"two equal Host headers", get + "Host: a.test\r\n\r\n", {400}},
      {"two different Host headers", get + "Host: b.test\r\n\r\n", {400}},
      {"HTTP/0.9 style request", "GET /{M}\r\n\r\n", {400}},
      {"extra token in request line", "GET /{M} HTTP/1.1 extra\r\nHost: a.test\r\n\r\n", {400}},
      {"invalid method character", "G(T /{M} HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"control char in method", "GE\x01T /{M} HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"space in target", "GET /{M} x HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"control char in target", "GET /{M}\x01x HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"double space in request line", "GET  /{M} HTTP/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"lower-case version", "GET /{M} http/1.1\r\nHost: a.test\r\n\r\n", {400}},
      {"HTTP/2.0 in request line", "GET /{M} HTTP/2.0\r\nHost: a.test\r\n\r\n", {505}},
      {"HTTP/1.2 in request line", "GET /{M} HTTP/1.2\r\nHost: a.test\r\n\r\n", {505}},
  };
}

std::vector<Case> body_cases() {
  const std::string chunked = "POST /{M} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  return {
      {"chunk size zz", chunked + "zz\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      {"chunk size -1", chunked + "-1\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      {"chunk size overflow ffffffffffffffffff", chunked + "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n" + kSmuggled,
       {400}},
      {"chunk size that wraps to 5 in 64 bits", chunked + "10000000000000005\r\nhello\r\n0\r\n\r\n" + kSmuggled,
       {400}},
      {"chunk data not followed by CRLF", chunked + "5\r\nhelloXX0\r\n\r\n" + kSmuggled, {400}},
      {"bare LF after chunk size", chunked + "5\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      {"bare LF after chunk data", chunked + "5\r\nhello\n0\r\n\r\n" + kSmuggled, {400}},
      {"chunk size with 0x prefix", chunked + "0x5\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      // Line endings later in the framing: llhttp 8.1 takes a CR followed by any byte as the end
      // of a size line or of the body, and a bare LF as the body's last line.
      {"CR and another byte after a later chunk size", chunked + "5\r\nhello\r\n3\rJabc\r\n0\r\n\r\n" + kSmuggled,
       {400}},
      {"CR and another byte after the last chunk size", chunked + "5\r\nhello\r\n0\rJ\r\n\r\n" + kSmuggled, {400}},
      {"CR and another byte as the body's last line", chunked + "5\r\nhello\r\n0\r\n\rJ" + kSmuggled, {400}},
      {"bare LF as the body's last line", chunked + "5\r\nhello\r\n0\r\n\n" + kSmuggled, {400}},
      {"CR and another byte after a chunk extension", chunked + "5\r\nhello\r\n3;x=y\rJabc\r\n0\r\n\r\n" + kSmuggled,
       {400}},
      {"folded trailer field", chunked + "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n" + kSmuggled, {400}},
      {"trailer field name with a space", chunked + "5\r\nhello\r\n0\r\nX T: a\r\n\r\n" + kSmuggled, {400}},
      // Chunk extensions out of grammar: whitespace before ';', an empty name, an empty value.
      {"space before a chunk extension", chunked + "5 ;a=b\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      {"chunk extension without a name", chunked + "5;=b\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
      {"chunk extension with an empty value", chunked + "5;a=\r\nhello\r\n0\r\n\r\n" + kSmuggled, {400}},
  };
}

// Sends `raw`, two requests, in one write on a new connection and reads the two answers.
std::pair<Response, Response> two_answers(uint16_t port, const std::string& raw) {
  Client c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send(raw));
  Response r1 = c.read_response();
  Response r2 = c.read_response();
  return {std::move(r1), std::move(r2)};
}

}  // namespace

TEST_CASE("malformed and ambiguous requests are rejected and never reach the origin",
          "[smuggling]") {
  auto& env = shared();
  std::vector<Case> cases = head_cases();
  for (auto& c : body_cases()) cases.push_back(c);

  struct Sent {
    std::string name, m, s;
  };
  std::vector<Sent> sent;
  for (const Case& tc : cases) {
    std::string m = marker("SMH"), s = marker("SMS");
    std::string raw = replace_all(replace_all(tc.raw, "{M}", m), "{S}", s);
    sent.push_back({tc.name, m, s});

    INFO("case: " << tc.name);
    Client c(env.port());
    REQUIRE(c.connected());
    c.set_timeout(5s);
    c.send(raw);  // berth may close before reading it all
    Response r = c.read_response();
    INFO("response: " << r.raw_head << " error: " << r.error);
    bool closed = c.wait_closed(3s);
    bool status_ok = std::find(tc.statuses.begin(), tc.statuses.end(), r.status) != tc.statuses.end();
    CHECK(status_ok);
    // Any answer must come from berth itself: a 400 relayed from the origin would mean the
    // bad bytes were forwarded.
    if (r.status != 0) CHECK(r.header("x-berth-error").has_value());
    CHECK(closed);
  }

  // Give any (wrongly) forwarded request a moment to arrive, then ask the origin directly.
  std::this_thread::sleep_for(200ms);
  for (auto& s : sent) {
    INFO("case: " << s.name);
    CHECK(env.a->seen(s.m) == 0);
    CHECK(env.a->seen(s.s) == 0);
  }
  // Berth still serves normal traffic.
  Response r = http_get(env.port(), "/after-smuggling", "a.test");
  CHECK(r.status == 200);
  check_alive(env);
}

TEST_CASE("pipelined request after a rejected one is not processed", "[smuggling]") {
  auto& env = shared();
  std::string m = marker("SMP");
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  // A bad request followed, in the same write, by a good one: nothing after the 400.
  c.send("GET /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
         "GET /" + m + " HTTP/1.1\r\nHost: a.test\r\n\r\n");
  Response r = c.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 400);
  std::string rest;
  CHECK(c.wait_closed(3s, &rest));
  CHECK(rest.empty());
  std::this_thread::sleep_for(100ms);
  CHECK(env.a->seen(m) == 0);
  check_alive(env);
}

TEST_CASE("a valid chunked body followed by a pipelined request is framed correctly",
          "[smuggling]") {
  // The control case for the body-level table: with a correct body both requests arrive as
  // two separate requests and nothing else.
  auto& env = shared();
  std::string m = marker("SMOK"), s = marker("SMOK2");
  auto [r1, r2] = two_answers(env.port(), "POST /echo?" + m +
                                              " HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              "5\r\nhello\r\n0\r\n\r\nGET /echo?" + s + " HTTP/1.1\r\nHost: a.test\r\n\r\n");
  INFO(r1.raw_head << r1.error << r2.raw_head << r2.error);
  CHECK(r1.status == 200);
  CHECK(r1.header("x-origin-body-bytes") == std::optional<std::string>("5"));
  CHECK(r2.status == 200);
  CHECK(r2.body.rfind("GET /echo?" + s + " ", 0) == 0);
  CHECK(env.a->seen(m) == 1);
  CHECK(env.a->seen(s) == 1);
  check_alive(env);
}

TEST_CASE("chunk extensions after a token value are taken, and the body reaches the origin intact",
          "[smuggling]") {
  // RFC 9112 allows any number of extensions on a size line, token-valued ones included. A second
  // request, in the same write, is framed as its own.
  auto& env = shared();
  std::string m = marker("SMEXT"), s = marker("SMEXT2");
  const std::string head = " HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto [r1, r2] = two_answers(env.port(), "POST /echo_body?" + m + head + "5;a=1;b=2\r\nhello\r\n0\r\n\r\n" +
                                              "POST /echo_body?" + s + head +
                                              "3;a=1;b;c=\"d\";e=2\r\nabc\r\n2;f=3;g=4\r\nde\r\n0;h=5;i\r\n\r\n");
  INFO(r1.raw_head << r1.error << r2.raw_head << r2.error);
  CHECK(r1.status == 200);
  CHECK(r1.body == "hello");
  CHECK(r2.status == 200);
  CHECK(r2.body == "abcde");
  CHECK(env.a->seen(m) == 1);
  CHECK(env.a->seen(s) == 1);
  check_alive(env);
}

TEST_CASE("empty lines before a request line are ignored; a CR alone is refused", "[smuggling]") {
  auto& env = shared();
  const std::string m1 = marker("SME"), m2 = marker("SME"), m3 = marker("SME"), m4 = marker("SME");
  // Before the first request, and after a body (a client may end one with an extra CRLF): on one
  // connection, every request is answered by the instance, nothing else is.
  auto [r1, r2] = two_answers(env.port(), "\r\n\r\n\nPOST /echo?" + m1 +
                                              " HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello\r\n"
                                              "GET /echo?" + m2 + " HTTP/1.1\r\nHost: a.test\r\n\r\n");
  INFO(r1.raw_head << r1.error << r2.raw_head << r2.error);
  CHECK(r1.status == 200);
  CHECK(r1.header("x-origin-body-bytes") == std::optional<std::string>("5"));
  CHECK(r2.status == 200);
  CHECK(r2.body.rfind("GET /echo?" + m2 + " ", 0) == 0);
  {
    // A CRLF split over two writes is an empty line too.
    Client c(env.port());
    REQUIRE(c.connected());
    c.set_timeout(5s);
    REQUIRE(c.send("\r"));
    std::this_thread::sleep_for(100ms);
    REQUIRE(c.send("\nGET /echo?" + m3 + " HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    Response r = c.read_response();
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    // A CR that no LF follows is no empty line: the head it starts is refused, and closed.
    REQUIRE(c.send("\r"));
    std::this_thread::sleep_for(100ms);
    REQUIRE(c.send("GET /echo?" + m4 + " HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    r = c.read_response();
    INFO(r.raw_head << r.error);
    check_berth_error(r, 400, "bad-request");
    CHECK(c.wait_closed(3s));
  }
  std::this_thread::sleep_for(100ms);
  CHECK(env.a->seen(m1) == 1);
  CHECK(env.a->seen(m2) == 1);
  CHECK(env.a->seen(m3) == 1);
  CHECK(env.a->seen(m4) == 0);
  check_alive(env);
}

TEST_CASE("a connection that sends only empty lines is closed quietly at its idle time", "[smuggling]") {
  OriginEnv env("E", config_head(1, "request_header: 600ms, keepalive_idle: 600ms") +
                         "routes:\n  - {name: r-e, host: \"a.test\", service: s}\n");
  const uint16_t port = env.berth->port(), admin = env.berth->admin_port();
  // A fresh connection, and one kept alive after a request: CRLFs start no request, so neither
  // gets a 408 nor leaves a record; each is closed when its time is up, not before.
  Client fresh(port), kept(port);
  REQUIRE(fresh.connected());
  REQUIRE(kept.connected());
  kept.set_timeout(5s);
  Response r = kept.get("/x", "a.test");
  REQUIRE(r.status == 200);
  auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) {
    REQUIRE(fresh.send("\r\n"));
    REQUIRE(kept.send("\r\n"));
    std::this_thread::sleep_for(100ms);
  }
  std::string fresh_rest, kept_rest;
  CHECK(fresh.wait_closed(5s, &fresh_rest));
  CHECK(kept.wait_closed(5s, &kept_rest));
  const double took = seconds_since(t0);
  CHECK(took >= 0.3);
  CHECK(took < 3.0);
  CHECK(fresh_rest.empty());
  CHECK(kept_rest.empty());
  CHECK(metric_sample(admin, "berth_local_replies_total{cause=\"request-header-timeout\"}") <= 0);
  CHECK(metric_sample(admin, "berth_requests_total{route=\"r-e\",service=\"s\",method=\"GET\",code=\"200\"}") == 1);
  CHECK(env.berth->running());
}
