// What leaves Berth: the upstream request head and the client response head.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"

using namespace berth::http;

namespace {

std::string upstream_head(const std::string& raw_in, std::string_view generated_id = "gen-id",
                          const HeaderEdits* edits = nullptr) {
  const std::string raw = raw_in;
  RequestHead req;
  Limits limits;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  ForwardInfo info{"10.9.8.7", "http", 8080, generated_id, edits};
  std::string out;
  build_upstream_request(req, info, out);
  return out;
}

bool has_line(const std::string& head, const std::string& line) {
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}

bool has_name(const std::string& head, const std::string& name) {
  std::string lower_head, lower_name = "\r\n";
  for (char c : head) lower_head += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char c : name) lower_name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  lower_name += ":";
  return lower_head.find(lower_name) != std::string::npos;
}

}  // namespace

TEST_CASE("upstream request: hop-by-hop removed, forwarding headers set", "[rewrite]") {
  std::string h = upstream_head(
      "GET /p?q=1 HTTP/1.1\r\n"
      "Host: app.example\r\n"
      "Connection: keep-alive, X-Drop-Me\r\n"
      "Keep-Alive: timeout=5\r\n"
      "TE: trailers\r\n"
      "Trailer: X-T\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "Upgrade: something\r\n"
      "X-Drop-Me: secret\r\n"
      "X-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: evil\r\n"
      "X-Forwarded-Port: 1\r\n"
      "Accept: */*\r\n"
      "\r\n");
  CHECK(h.rfind("GET /p?q=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(has_line(h, "Host: app.example"));
  CHECK(has_line(h, "Accept: */*"));
  for (const char* gone : {"Connection", "Keep-Alive", "TE", "Trailer", "Proxy-Connection", "Upgrade", "X-Drop-Me"}) {
    INFO(gone);
    CHECK_FALSE(has_name(h, gone));
  }
  CHECK(has_line(h, "X-Forwarded-For: 10.9.8.7"));
  CHECK(has_line(h, "X-Forwarded-Proto: http"));
  CHECK(has_line(h, "X-Forwarded-Host: app.example"));
  CHECK(has_line(h, "X-Forwarded-Port: 8080"));
  CHECK(has_line(h, "X-Request-Id: gen-id"));
  CHECK(h.find("evil") == std::string::npos);
  CHECK(h.substr(h.size() - 4) == "\r\n\r\n");
}

TEST_CASE("upstream request: X-Forwarded-For appended, X-Request-Id kept", "[rewrite]") {
  std::string h = upstream_head("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc-123\r\n\r\n");
  CHECK(has_line(h, "X-Forwarded-For: 1.2.3.4, 10.9.8.7"));
  CHECK(has_line(h, "X-Request-Id: abc-123"));
  CHECK(h.find("gen-id") == std::string::npos);

  std::string two = upstream_head(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n");
  CHECK(has_line(two, "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.9.8.7"));
}

TEST_CASE("upstream request: what a proxy says about the client passes only from a trusted peer", "[rewrite]") {
  const std::string raw =
      "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n"
      "X-Forwarded-Prefix: /admin\r\nx-forwarded-user: root\r\nX-Forwarded-Ssl: on\r\nAccept: */*\r\n"
      "X-Original-URL: /admin\r\nx-original-uri: /admin\r\nX-Original-Method: DELETE\r\nX-Rewrite-URL: /admin\r\n\r\n";
  RequestHead req;
  Limits limits;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  const std::vector<std::string> claims = {"Forwarded: for=1.2.3.4", "X-Real-IP: 1.2.3.4", "X-Forwarded-Prefix: /admin",
                                           "x-forwarded-user: root", "X-Forwarded-Ssl: on",
                                           "X-Original-URL: /admin", "x-original-uri: /admin",
                                           "X-Original-Method: DELETE", "X-Rewrite-URL: /admin"};
  for (const bool trusted : {false, true}) {
    INFO("peer trusted: " << trusted);
    ForwardInfo info{"10.9.8.7", "http", 8080, "gen-id"};
    info.own_chain = true;
    info.peer_trusted = trusted;
    std::string out;
    build_upstream_request(req, info, out);
    for (const std::string& line : claims) {
      INFO(line);
      CHECK(has_line(out, line) == trusted);
    }
    CHECK(has_line(out, "Accept: */*"));
    CHECK(has_line(out, "X-Forwarded-For: 10.9.8.7"));
  }
}

TEST_CASE("upstream request: the '_' spelling of a forwarding field never passes, trusted peer or not", "[rewrite]") {
  const std::string raw =
      "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nX_Request_Id: evil\r\n"
      "X_Forwarded_User: root\r\nx_forwarded-proto: https\r\nX_Env: kept\r\nX_Original_URL: /evil\r\n"
      "X_Rewrite_URL: /evil\r\n"
      "Content_Length: 40\r\nTransfer_Encoding: chunked\r\n\r\n";
  RequestHead req;
  Limits limits;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  for (const bool trusted : {false, true}) {
    INFO("peer trusted: " << trusted);
    ForwardInfo info{"10.9.8.7", "http", 8080, "gen-id"};
    info.peer_trusted = trusted;
    std::string out;
    build_upstream_request(req, info, out);
    CHECK(out.find("6.6.6.6") == std::string::npos);
    CHECK(out.find("evil") == std::string::npos);
    CHECK(out.find("root") == std::string::npos);
    CHECK(out.find("https") == std::string::npos);
    CHECK(has_line(out, "X_Env: kept"));  // not a name Berth sets
    CHECK(out.find("Content_Length") == std::string::npos);  // a second framing to a CGI server
    CHECK(out.find("Transfer_Encoding") == std::string::npos);
    CHECK(has_line(out, "X-Request-Id: gen-id"));
  }
}

TEST_CASE("upstream request: an X-Request-Id that Connection lists is replaced, not logged unsent", "[rewrite]") {
  const std::string raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-1\r\nConnection: X-Request-Id\r\n\r\n";
  RequestHead req;
  Limits limits;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  CHECK(effective_request_id(req, {}).empty());
  CHECK(effective_request_id(req, "gen-id") == "gen-id");
  ForwardInfo info{"10.9.8.7", "http", 8080, "gen-id"};
  std::string out;
  build_upstream_request(req, info, out);
  CHECK(has_line(out, "X-Request-Id: gen-id"));
  CHECK(out.find("client-1") == std::string::npos);
}

TEST_CASE("upstream request: framing re-declared", "[rewrite]") {
  std::string cl = upstream_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n");
  CHECK(has_line(cl, "Content-Length: 12"));
  std::string ch = upstream_head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n");
  CHECK(has_line(ch, "Transfer-Encoding: chunked"));
  CHECK_FALSE(has_name(ch, "Content-Length"));
  std::string none = upstream_head("GET / HTTP/1.0\r\n\r\n");
  CHECK(none.rfind("GET / HTTP/1.1\r\n", 0) == 0);  // Berth always speaks 1.1 upstream
  CHECK_FALSE(has_name(none, "Content-Length"));
  // ...and HTTP/1.1 requires Host: an HTTP/1.0 request without one goes out with an empty one.
  CHECK(has_line(none, "Host: "));
  RequestHead again;
  CHECK(parse_request_head(none, Limits{}, again).ok());
}

TEST_CASE("upstream request: absolute-form becomes origin-form with its authority as Host", "[rewrite]") {
  std::string h = upstream_head("GET http://real.example/x HTTP/1.1\r\nHost: other\r\n\r\n");
  CHECK(h.rfind("GET /x HTTP/1.1\r\n", 0) == 0);
  CHECK(has_line(h, "Host: real.example"));
  CHECK(h.find("other") == std::string::npos);
}

TEST_CASE("upstream request: upgrade keeps Upgrade and Connection: upgrade", "[rewrite]") {
  std::string h = upstream_head(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n");
  CHECK(has_line(h, "Connection: upgrade"));
  CHECK(has_line(h, "Upgrade: websocket"));
  CHECK(has_line(h, "Sec-WebSocket-Key: k"));
}

TEST_CASE("client response: planning and hop-by-hop removal", "[rewrite]") {
  Limits limits;
  ResponseHead r;
  const std::string chunked_raw =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\nX-Hop: 1\r\n"
      "Keep-Alive: timeout=1\r\nX-Keep: yes\r\n\r\n";
  REQUIRE(parse_response_head(chunked_raw, limits, false, r).ok());
  ResponsePlan p11 = plan_response(r, 1, false);
  CHECK(p11.to_client == Framing::kChunked);
  CHECK_FALSE(p11.close_client);
  std::string out;
  build_client_response(r, p11, false, out);
  CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(has_line(out, "Transfer-Encoding: chunked"));
  CHECK(has_line(out, "X-Keep: yes"));
  CHECK_FALSE(has_name(out, "X-Hop"));
  CHECK_FALSE(has_name(out, "Keep-Alive"));
  CHECK_FALSE(has_name(out, "Connection"));

  ResponsePlan p10 = plan_response(r, 0, false);  // HTTP/1.0 client can't take chunks
  CHECK(p10.to_client == Framing::kUntilClose);
  CHECK(p10.close_client);
  out.clear();
  build_client_response(r, p10, false, out);
  CHECK_FALSE(has_name(out, "Transfer-Encoding"));
  CHECK(has_line(out, "Connection: close"));

  // A sized response to an HTTP/1.0 client that asked to keep the connection says it is kept.
  const std::string sized_raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n";
  REQUIRE(parse_response_head(sized_raw, limits, false, r).ok());
  for (uint8_t minor : {0, 1})
    for (bool close : {false, true}) {
      INFO("HTTP/1." << int(minor) << (close ? ", closing" : ", kept"));
      out.clear();
      build_client_response(r, plan_response(r, minor, close), false, out);
      CHECK(has_line(out, "Connection: keep-alive") == (minor == 0 && !close));
      CHECK(has_line(out, "Connection: close") == close);
      CHECK(has_name(out, "Connection") == (close || minor == 0));
    }

  const std::string close_raw = "HTTP/1.1 200 OK\r\n\r\n";
  REQUIRE(parse_response_head(close_raw, limits, false, r).ok());  // ends by close
  CHECK(plan_response(r, 1, false).to_client == Framing::kChunked);

  const std::string head_raw = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
  REQUIRE(parse_response_head(head_raw, limits, true, r).ok());  // HEAD
  ResponsePlan ph = plan_response(r, 1, false);
  out.clear();
  build_client_response(r, ph, false, out);
  CHECK(has_line(out, "Content-Length: 7"));  // describes the representation, passed through
}

TEST_CASE("local replies are complete and name their cause", "[rewrite]") {
  std::string out;
  build_local_reply(503, "no-endpoint", false, "Retry-After: 1\r\n", out);
  CHECK(out.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(has_line(out, "x-berth-error: no-endpoint"));
  CHECK(has_line(out, "Retry-After: 1"));
  size_t body_at = out.find("\r\n\r\n") + 4;
  std::string body = out.substr(body_at);
  CHECK(has_line(out, "Content-Length: " + std::to_string(body.size())));
  CHECK_FALSE(has_name(out, "Connection"));
  out.clear();
  build_local_reply(400, "bad-request", true, "", out);
  CHECK(has_line(out, "Connection: close"));
}

TEST_CASE("local responses: 304 and 204 go without body, length and type; known codes get their phrase",
          "[rewrite]") {
  for (uint16_t status : {304, 204}) {
    std::string out;
    build_local_response(status, "text/plain", "ignored", false, "ETag: \"x\"\r\n", out);
    INFO(out);
    CHECK(out == "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\nETag: \"x\"\r\n\r\n");
  }
  std::string out;
  build_local_response(407, "text/html", "<p>", false, "", out);
  CHECK(out.rfind("HTTP/1.1 407 Proxy Authentication Required\r\n", 0) == 0);
  CHECK(has_line(out, "Content-Length: 3"));
  CHECK(has_line(out, "Content-Type: text/html"));
  for (uint16_t status : {402, 410, 422, 451, 508})
    CHECK(std::string_view(reason_phrase(status)) != "Unknown");
}

TEST_CASE("client response: replace_sts leaves the instance's Strict-Transport-Security out", "[rewrite]") {
  Limits limits;
  ResponseHead r;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=1\r\nX-Keep: 1\r\n"
                              "Content-Length: 0\r\n\r\n",
                              limits, false, r)
              .ok());
  ResponsePlan plan = plan_response(r, 1, false);
  std::string out;
  build_client_response(r, plan, false, out);
  CHECK(has_name(out, "strict-transport-security"));
  plan.replace_sts = true;
  out.clear();
  build_client_response(r, plan, false, out);
  CHECK_FALSE(has_name(out, "strict-transport-security"));
  CHECK(has_line(out, "X-Keep: 1"));
}

TEST_CASE("header removal takes '_' for '-': no X_User slips past a rule removing X-User", "[rewrite]") {
  HeaderEdits edits;
  edits.remove_request.push_back("X-User");
  edits.add_request.push_back(Header{"X-User", "alice"});  // what forward auth's copy_headers does
  const std::string up = upstream_head(
      "GET / HTTP/1.1\r\nHost: a\r\nX-User: mallory\r\nx_user: mallory\r\nX_USER: mallory\r\n"
      "X-Users: kept\r\nXUser: kept\r\n\r\n",
      "id", &edits);
  CHECK(up.find("mallory") == std::string::npos);
  CHECK(has_line(up, "X-User: alice"));
  CHECK(has_line(up, "X-Users: kept"));
  CHECK(has_line(up, "XUser: kept"));
}

TEST_CASE("fixed header rules: removal by name whatever the length mask says, lines appended whole", "[rewrite]") {
  // Content-Type and X-Powered-By have the same length (12): the mask lets both through to the
  // comparison, which tells them apart. A name of 70 characters lands on bit 6, like Cookie.
  const std::string long_name(70, 'x');
  FixedHeaderRules rules({"Cookie", long_name}, {{"X-Env", "bench"}, {"X-Team", "a"}}, {"X-Powered-By"},
                               {{"X-Policy", "on"}});
  CHECK(rules.add_request == "X-Env: bench\r\nX-Team: a\r\n");
  CHECK(rules.add_response == "X-Policy: on\r\n");
  HeaderEdits edits;
  edits.fixed = &rules;

  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\ncookie: c\r\nCookiz: kept\r\n" + long_name + ": gone\r\n" +
                    std::string(70, 'y') + ": kept\r\n\r\n";
  RequestHead req;
  Limits limits;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  ForwardInfo info{"192.0.2.1", "http", 80, "id", &edits};
  std::string up;
  build_upstream_request(req, info, up);
  CHECK(up.find("cookie") == std::string::npos);
  CHECK(up.find("Cookiz: kept\r\n") != std::string::npos);
  CHECK(up.find(long_name) == std::string::npos);
  CHECK(up.find(std::string(70, 'y') + ": kept\r\n") != std::string::npos);
  CHECK(up.find("X-Env: bench\r\nX-Team: a\r\n") != std::string::npos);

  ResponseHead resp;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Powered-By: x\r\n"
                                    "Content-Length: 0\r\n\r\n", limits, false, resp).ok());
  std::string out;
  build_client_response(resp, plan_response(resp, 1, false), false, out, &edits);
  CHECK(out.find("Content-Type: text/plain\r\n") != std::string::npos);
  CHECK(out.find("X-Powered-By") == std::string::npos);
  CHECK(out.find("X-Policy: on\r\n") != std::string::npos);
}
