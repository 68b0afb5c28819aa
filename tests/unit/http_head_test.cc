// Request/response head validation: everything that decides where a message ends or what a
// backend sees. Table-driven: each row is raw bytes and the verdict Berth must reach.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/http/http_head.h"

using berth::http::Framing;
using berth::http::offers_h2c;
using berth::http::HeadError;
using berth::http::Limits;
using berth::http::RequestHead;
using berth::http::ResponseHead;

namespace {

struct RequestCase {
  const char* name;
  std::string raw;
  HeadError expected;
};

// The head keeps views into the bytes: keep them alive until the next parse.
HeadError parse(const std::string& raw, RequestHead& out, Limits limits = {}) {
  static std::string kept;
  kept = raw;
  return berth::http::parse_request_head(kept, limits, out).error;
}

}  // namespace

TEST_CASE("request heads: accepted forms", "[http_head]") {
  RequestHead h;
  REQUIRE(parse("GET /a?b=c HTTP/1.1\r\nHost: Example.COM:8080\r\nX-A:  spaced value \t\r\n\r\n", h) ==
          HeadError::kNone);
  CHECK(h.method == "GET");
  CHECK(h.target == "/a?b=c");
  CHECK(h.path == "/a?b=c");
  CHECK(h.host == "Example.COM:8080");
  CHECK(h.version_minor == 1);
  CHECK(h.framing == Framing::kNone);
  CHECK(h.keep_alive());
  REQUIRE(h.fields.size() == 2);
  CHECK(h.name(h.fields[1]) == "X-A");
  CHECK(h.value(h.fields[1]) == "spaced value");

  REQUIRE(parse("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.framing == Framing::kContentLength);
  CHECK(h.content_length == 42);
  REQUIRE(parse("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.content_length == 9223372036854775807ull);  // 2^63 - 1, the largest taken

  REQUIRE(parse("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.framing == Framing::kChunked);

  REQUIRE(parse("GET / HTTP/1.0\r\n\r\n", h) == HeadError::kNone);  // Host optional in 1.0
  CHECK_FALSE(h.keep_alive());
  REQUIRE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.keep_alive());
  REQUIRE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", h) == HeadError::kNone);
  CHECK_FALSE(h.keep_alive());

  REQUIRE(parse("GET http://Up.Example:81/p?q HTTP/1.1\r\nHost: ignored\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.absolute_form);
  CHECK(h.host == "Up.Example:81");
  CHECK(h.path == "/p?q");
  REQUIRE(parse("GET http://up.example HTTP/1.1\r\nHost: up.example\r\n\r\n", h) == HeadError::kNone);
  CHECK(h.path == "/");

  REQUIRE(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", h) == HeadError::kNone);
  // Host forms: an IPv6 literal with a port, an empty port, a trailing dot, an underscore.
  for (const char* host : {"[::1]:8080", "[2001:db8::1]", "a.test:", "a_b.test", "a.test.", "127.0.0.1:80"}) {
    INFO(host);
    CHECK(parse(std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n", h) == HeadError::kNone);
  }
  // The longest DNS name, 253 characters, with a trailing dot and a port too.
  const std::string longest = std::string(243, 'a') + ".wild.test";
  for (const std::string& host : {longest, longest + ".", longest + ".:8080"}) {
    INFO(host);
    CHECK(parse("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n", h) == HeadError::kNone);
  }

  REQUIRE(parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", h) ==
          HeadError::kNone);
  CHECK(h.upgrade);
  CHECK(h.upgrade_protocol == "websocket");
  REQUIRE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n", h) ==
          HeadError::kNone);
  CHECK_FALSE(h.upgrade);  // h2c is not passed on
  // ... wherever the list names it: a later element, after an empty one, in capitals, versioned.
  for (const char* list : {"websocket, h2c", ",h2c", "foo, h2c", "websocket , H2C", "websocket, h2c/1", "h2c-14"}) {
    INFO(list);
    REQUIRE(parse(std::string("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: ") + list + "\r\n\r\n",
                  h) == HeadError::kNone);
    CHECK_FALSE(h.upgrade);
  }
  CHECK(offers_h2c("websocket, h2c"));
  CHECK_FALSE(offers_h2c("websocket, h2"));
  CHECK_FALSE(offers_h2c("websocket"));
  // An HTTP/1.0 request's Upgrade is ignored (RFC 9110 7.8): no 101 can go back to it.
  REQUIRE(parse("GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", h) == HeadError::kNone);
  CHECK_FALSE(h.upgrade);

  REQUIRE(parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", h) ==
          HeadError::kNone);
  CHECK(h.expect_continue);

  REQUIRE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n", h) ==
          HeadError::kNone);
  CHECK(h.is_connection_listed("x-secret"));
  CHECK(h.connection_close);
}

TEST_CASE("request heads: rejected, never forwarded", "[http_head][smuggling]") {
  const std::string ok_line = "GET / HTTP/1.1\r\nHost: a\r\n";
  const std::vector<RequestCase> cases = {
      {"CL and TE together", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       HeadError::kBadRequest},
      {"two equal CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", HeadError::kBadRequest},
      {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", HeadError::kBadRequest},
      {"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", HeadError::kBadRequest},
      {"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", HeadError::kBadRequest},
      {"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", HeadError::kBadRequest},
      {"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", HeadError::kBadRequest},
      // Past 2^63 - 1: a negative or clamped length to a server reading it as a signed number.
      {"CL over int64", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", HeadError::kBadRequest},
      {"CL 19 nines", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", HeadError::kBadRequest},
      {"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", HeadError::kBadRequest},
      {"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", HeadError::kBadRequest},
      {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", HeadError::kNotImplemented},
      {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HeadError::kNotImplemented},
      {"TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HeadError::kBadRequest},
      {"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       HeadError::kBadRequest},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HeadError::kBadRequest},
      {"TE empty element", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", HeadError::kBadRequest},
      {"TE chunked-false", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", HeadError::kNotImplemented},
      {"obs-fold", ok_line + "X-A: 1\r\n  continued\r\n\r\n", HeadError::kBadRequest},
      {"obs-fold tab", ok_line + "X-A: 1\r\n\tcontinued\r\n\r\n", HeadError::kBadRequest},
      {"bare LF in headers", "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", HeadError::kBadRequest},
      {"bare LF head end", "GET / HTTP/1.1\nHost: a\n\n", HeadError::kBadRequest},
      {"bare CR in value", ok_line + "X-A: 1\r2\r\n\r\n", HeadError::kBadRequest},
      {"space before colon", ok_line + "X-A : 1\r\n\r\n", HeadError::kBadRequest},
      {"tab before colon", ok_line + "Content-Length\t: 1\r\n\r\n", HeadError::kBadRequest},
      {"NUL in value", ok_line + std::string("X-A: a\0b\r\n\r\n", 12), HeadError::kBadRequest},
      {"NUL in name", ok_line + std::string("X\0A: 1\r\n\r\n", 10), HeadError::kBadRequest},
      {"control in value", ok_line + "X-A: a\x01" "b\r\n\r\n", HeadError::kBadRequest},
      {"DEL in value", ok_line + "X-A: a\x7f\r\n\r\n", HeadError::kBadRequest},
      {"name not a token", ok_line + "Bad@Name: 1\r\n\r\n", HeadError::kBadRequest},
      {"name with slash", ok_line + "A/B: 1\r\n\r\n", HeadError::kBadRequest},
      {"empty name", ok_line + ": 1\r\n\r\n", HeadError::kBadRequest},
      {"no colon", ok_line + "JustText\r\n\r\n", HeadError::kBadRequest},
      {"missing Host 1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", HeadError::kBadRequest},
      {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HeadError::kBadRequest},
      {"two Host in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HeadError::kBadRequest},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", HeadError::kBadRequest},
      {"Host port not digits", "GET / HTTP/1.1\r\nHost: a.test:abc\r\n\r\n", HeadError::kBadRequest},
      {"Host with two ports", "GET / HTTP/1.1\r\nHost: a.test:1:2\r\n\r\n", HeadError::kBadRequest},
      {"Host port too long", "GET / HTTP/1.1\r\nHost: a.test:123456\r\n\r\n", HeadError::kBadRequest},
      {"Host bad percent-encoding", "GET / HTTP/1.1\r\nHost: a%zz.test\r\n\r\n", HeadError::kBadRequest},
      // Characters no route host holds: a ',' would make X-Forwarded-Host a list whose last
      // item the client picks ("x,admin.test"); %HH and sub-delims are read differently by others.
      {"Host with a comma", "GET / HTTP/1.1\r\nHost: x,admin.test\r\n\r\n", HeadError::kBadRequest},
      {"Host percent-encoded", "GET / HTTP/1.1\r\nHost: %61dmin.test\r\n\r\n", HeadError::kBadRequest},
      {"Host sub-delims", "GET / HTTP/1.1\r\nHost: a;b!c.test\r\n\r\n", HeadError::kBadRequest},
      {"Host empty label", "GET / HTTP/1.1\r\nHost: admin..test\r\n\r\n", HeadError::kBadRequest},
      {"Host leading dot", "GET / HTTP/1.1\r\nHost: .admin.test\r\n\r\n", HeadError::kBadRequest},
      // Longer than a DNS name can be: it would match no route host (not even a wildcard).
      {"Host of 254 characters", "GET / HTTP/1.1\r\nHost: " + std::string(244, 'a') + ".wild.test\r\n\r\n",
       HeadError::kBadRequest},
      {"absolute-form authority of 254 characters",
       "GET http://" + std::string(244, 'a') + ".wild.test/ HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"Host two trailing dots", "GET / HTTP/1.1\r\nHost: admin.test..\r\n\r\n", HeadError::kBadRequest},
      {"absolute-form comma", "GET http://x,a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", HeadError::kBadRequest},
      {"fragment in target", "GET /secret#.png HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"fragment in absolute-form", "GET http://a/b#c HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"lower-case method", "delete /x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"mixed-case method", "Post /x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"lower-case head", "head /x HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"Host IPv6 unclosed", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", HeadError::kBadRequest},
      {"Host IPv6 then junk", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", HeadError::kBadRequest},
      {"Host IPv6 empty", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", HeadError::kBadRequest},
      {"Host bracket in a name", "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n", HeadError::kBadRequest},
      {"absolute-form port not digits", "GET http://a.test:x/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
       HeadError::kBadRequest},
      {"HTTP/0.9 line", "GET /\r\n\r\n", HeadError::kBadRequest},
      {"extra token", "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", HeadError::kVersionNotSupported},
      {"version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", HeadError::kVersionNotSupported},
      {"version garbage", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"method chars", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"target control char", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"target non-ascii", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"target relative", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"asterisk on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", HeadError::kNotImplemented},
      {"absolute-form bad scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"absolute-form userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
      {"CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::kBadRequest},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    RequestHead h;
    CHECK(parse(c.raw, h) == c.expected);
  }
}

TEST_CASE("request heads: limits", "[http_head]") {
  Limits limits;
  limits.max_header_bytes = 200;
  limits.max_headers = 3;
  limits.max_request_line = 40;
  RequestHead h;
  CHECK(parse("GET /" + std::string(60, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", h, limits) == HeadError::kUriTooLong);
  CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", h, limits) == HeadError::kHeaderTooLarge);
  CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nA: " + std::string(250, 'x') + "\r\n\r\n", h, limits) ==
        HeadError::kHeaderTooLarge);
  CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", h, limits) == HeadError::kNone);
}

TEST_CASE("find_head_end finds CRLFCRLF and bare-LF ends, resumably", "[http_head]") {
  using berth::http::find_head_end;
  const std::string a = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
  CHECK(find_head_end(a.data(), a.size(), 0) == a.size() - 4);
  CHECK(find_head_end(a.data(), 20, 0) == 0);
  // Resume after a split in the middle of the terminator.
  for (size_t split = 1; split < a.size() - 4; ++split) {
    INFO(split);
    REQUIRE(find_head_end(a.data(), split, 0) == 0);
    CHECK(find_head_end(a.data(), a.size(), split) == a.size() - 4);
  }
  const std::string lf = "GET / HTTP/1.1\nHost: a\n\nX";
  CHECK(find_head_end(lf.data(), lf.size(), 0) == lf.size() - 1);
}

TEST_CASE("response heads: framing decisions", "[http_head]") {
  Limits limits;
  ResponseHead r;
  std::string kept;  // the head keeps views into its bytes
  auto parse_resp = [&](const std::string& raw, bool head_req = false) {
    kept = raw;
    return berth::http::parse_response_head(kept, limits, head_req, r).error;
  };
  REQUIRE(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") == HeadError::kNone);
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.framing == Framing::kContentLength);
  REQUIRE(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == HeadError::kNone);
  CHECK(r.framing == Framing::kChunked);
  REQUIRE(parse_resp("HTTP/1.1 200 OK\r\n\r\n") == HeadError::kNone);
  CHECK(r.framing == Framing::kUntilClose);
  REQUIRE(parse_resp("HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n") == HeadError::kNone);  // empty reason
  CHECK(r.reason.empty());
  REQUIRE(parse_resp("HTTP/1.1 204 No Content\r\n\r\n") == HeadError::kNone);
  CHECK(r.framing == Framing::kNone);
  REQUIRE(parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n") == HeadError::kNone);
  CHECK(r.framing == Framing::kNone);
  REQUIRE(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true) == HeadError::kNone);
  CHECK(r.framing == Framing::kNone);  // answer to HEAD
  REQUIRE(parse_resp("HTTP/1.1 100 Continue\r\n\r\n") == HeadError::kNone);
  CHECK(r.framing == Framing::kNone);
  REQUIRE(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n") == HeadError::kNone);
  CHECK(r.connection_close);
  // A later HTTP/1.x is read as 1.1 (RFC 9110 2.5): keep-alive unless it says close.
  REQUIRE(parse_resp("HTTP/1.2 200 OK\r\nContent-Length: 1\r\n\r\n") == HeadError::kNone);
  CHECK(r.status == 200);
  CHECK_FALSE(r.connection_close);

  // A broken backend must not be able to confuse framing.
  CHECK(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 2000 OK\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 099 Low\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/2 200 OK\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n") == HeadError::kBadResponse);
  CHECK(parse_resp("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n") == HeadError::kBadResponse);
}

TEST_CASE("upgrade_offered: a 101 names only protocols the request offered", "[http_head]") {
  using berth::http::upgrade_offered;
  CHECK(upgrade_offered("websocket", "websocket"));
  CHECK(upgrade_offered("websocket", "WebSocket"));
  CHECK(upgrade_offered("foo/2, websocket", " websocket "));
  CHECK(upgrade_offered("foo/2, websocket", "websocket, foo/2"));
  CHECK_FALSE(upgrade_offered("websocket", ""));  // a 101 must name the protocol
  CHECK_FALSE(upgrade_offered("websocket", " , "));
  CHECK_FALSE(upgrade_offered("websocket", "h2c"));
  CHECK_FALSE(upgrade_offered("websocket", "websocket, h2c"));
  CHECK_FALSE(upgrade_offered("foo/2", "foo"));  // a version offered is part of the name
  CHECK_FALSE(upgrade_offered("", "websocket"));
}

TEST_CASE("classify_field is case-insensitive and exact", "[http_head]") {
  using berth::http::classify_field;
  using berth::http::FieldKind;
  CHECK(classify_field("content-length") == FieldKind::kContentLength);
  CHECK(classify_field("CONTENT-LENGTH") == FieldKind::kContentLength);
  CHECK(classify_field("Content-Lengths") == FieldKind::kOther);
  CHECK(classify_field("Transfer-Encoding") == FieldKind::kTransferEncoding);
  CHECK(classify_field("te") == FieldKind::kTe);
  CHECK(classify_field("X-Forwarded-For") == FieldKind::kXForwardedFor);
  CHECK(classify_field("Proxy-Connection") == FieldKind::kProxyConnection);
  CHECK(classify_field("Forwarded") == FieldKind::kForwarded);
  CHECK(classify_field("X-Real-IP") == FieldKind::kXRealIp);
  CHECK(classify_field("X-Forwarded-Prefix") == FieldKind::kXForwardedOther);
  CHECK(classify_field("x-forwarded-user") == FieldKind::kXForwardedOther);
  CHECK(classify_field("X-Forwarded-") == FieldKind::kOther);  // a prefix with nothing after it
  CHECK(classify_field("X-Forwardedness") == FieldKind::kOther);
  for (const char* name : {"X-Original-URL", "x-original-uri", "X-ORIGINAL-METHOD", "X-Rewrite-URL"})
    CHECK(classify_field(name) == FieldKind::kXOriginal);
  CHECK(classify_field("X-Original-Host") == FieldKind::kOther);
  // The names of what Berth sets or judges, spelled with '_' (CGI/WSGI servers cannot tell).
  for (const char* alias : {"X_Forwarded_For", "x_forwarded-proto", "X-Forwarded_Host", "X_Forwarded_Port",
                            "X_Real_IP", "X_Request_Id", "X_Forwarded_User", "x_forwarded_uri", "X_Original_URL",
                            "x_rewrite-url", "X_Original_Method"})
    CHECK(classify_field(alias) == FieldKind::kUnderscoreAlias);
  CHECK(classify_field("X_Env") == FieldKind::kOther);
  // ... and so are the framing and connection fields (never framed by: only dropped on the way).
  for (const char* alias : {"Content_Length", "transfer_encoding", "Keep_Alive", "Proxy_Connection"})
    CHECK(classify_field(alias) == FieldKind::kUnderscoreAlias);
  CHECK(classify_field("Content_Type") == FieldKind::kOther);
}

