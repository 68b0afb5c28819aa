// Forward authentication's pure parts: the URL, the request the service gets, and reading its
// answer (strict head, framed body, bounds).
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/filter/forward_auth.h"
#include "proxy/http/http_head.h"
#include "proxy/model/route_table.h"

using namespace berth;

TEST_CASE("forward auth URL: numeric address (or localhost), port, path", "[forward_auth]") {
  config::ForwardAuth fa;
  CHECK(config::parse_forward_auth_url("http://127.0.0.1:9100/check?x=1", fa).empty());
  CHECK(fa.address.host == "127.0.0.1");
  CHECK(fa.address.port == 9100);
  CHECK(fa.authority == "127.0.0.1:9100");
  CHECK(fa.target == "/check?x=1");
  CHECK(config::parse_forward_auth_url("http://[::1]:80", fa).empty());
  CHECK(fa.address.ipv6);
  CHECK(fa.target == "/");
  CHECK(config::parse_forward_auth_url("http://localhost:9000/a", fa).empty());
  CHECK(fa.address.host == "127.0.0.1");
  CHECK(fa.authority == "localhost:9000");

  CHECK_FALSE(config::parse_forward_auth_url("https://127.0.0.1:9100/", fa).empty());
  CHECK_FALSE(config::parse_forward_auth_url("http://auth.example:80/", fa).empty());  // would need DNS
  CHECK_FALSE(config::parse_forward_auth_url("http://127.0.0.1/", fa).empty());         // no port
  CHECK_FALSE(config::parse_forward_auth_url("http://u:p@127.0.0.1:1/", fa).empty());
  CHECK_FALSE(config::parse_forward_auth_url("http://127.0.0.1:1/a b", fa).empty());
}

TEST_CASE("forward auth request: client headers, Berth's X-Forwarded-*, no body", "[forward_auth]") {
  config::ForwardAuth fa;
  REQUIRE(config::parse_forward_auth_url("http://127.0.0.1:9100/check", fa).empty());
  const std::string raw =
      "POST /app/x?y=1 HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer t\r\nCookie: s=1\r\n"
      "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Uri: /forged\r\nContent-Length: 3\r\n"
      "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
      // the '_' spellings, which a WSGI service reads as the real ones
      "X_Real_IP: 10.0.0.1\r\nX_Forwarded_Uri: /public\r\nX_Forwarded_For: 6.6.6.6\r\n"
      // the names nginx setups and Authelia read for what was asked
      "X-Original-URL: https://app.test/\r\nx_original_method: GET\r\nX-Original-URI: /\r\n"
      "X-Rewrite-URL: /\r\nX-Berth-Auth-Hops: x\r\nX_Berth_Auth_Hops: 0\r\n\r\n";
  http::RequestHead head;
  REQUIRE(http::parse_request_head(raw, http::Limits{}, head).ok());
  std::string out;
  build_forward_auth_request(fa, head, "10.1.2.3", "https", out);
  CHECK(out ==
        "GET /check HTTP/1.1\r\n"
        "Host: 127.0.0.1:9100\r\n"
        "Authorization: Bearer t\r\n"
        "Cookie: s=1\r\n"
        "X-Forwarded-Method: POST\r\n"
        "X-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: app.test\r\n"
        "X-Forwarded-Uri: /app/x?y=1\r\n"
        "X-Forwarded-For: 10.1.2.3\r\n"
        "X-Original-URL: https://app.test/app/x?y=1\r\n"
        "X-Original-Method: POST\r\n"
        "X-Berth-Auth-Hops: 1\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n\r\n");
}

TEST_CASE("forward auth answer: head, headers kept, body by its framing, in pieces", "[forward_auth]") {
  const std::string answer =
      "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/html\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\nX-Berth-Error: forged\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n";
  ForwardAuthAnswer a;
  ForwardAuthAnswer::State s = ForwardAuthAnswer::State::kMore;
  for (char c : answer) {  // a byte at a time: every boundary
    REQUIRE(s == ForwardAuthAnswer::State::kMore);
    s = a.feed(&c, 1);
  }
  CHECK(s == ForwardAuthAnswer::State::kDone);
  CHECK(a.status == 401);
  CHECK(a.content_type == "text/html");
  CHECK(a.body == "hello");
  REQUIRE(a.headers.size() == 1);  // framing, hop-by-hop, type and x-berth-error are Berth's own
  CHECK(a.headers[0].name == "WWW-Authenticate");

  ForwardAuthAnswer until_close;
  const std::string close_delimited = "HTTP/1.1 200 OK\r\nX-User: a\r\n\r\nbody";
  CHECK(until_close.feed(close_delimited.data(), close_delimited.size()) == ForwardAuthAnswer::State::kMore);
  CHECK(until_close.finish() == ForwardAuthAnswer::State::kDone);
  CHECK(until_close.body == "body");

  ForwardAuthAnswer cut;
  const std::string short_body = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  CHECK(cut.feed(short_body.data(), short_body.size()) == ForwardAuthAnswer::State::kMore);
  CHECK(cut.finish() == ForwardAuthAnswer::State::kError);

  ForwardAuthAnswer smuggled;
  const std::string both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK(smuggled.feed(both.data(), both.size()) == ForwardAuthAnswer::State::kError);

  ForwardAuthAnswer huge;
  const std::string big = "HTTP/1.1 403 Forbidden\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'x');
  CHECK(huge.feed(big.data(), big.size()) == ForwardAuthAnswer::State::kDone);
  CHECK(huge.body.size() == ForwardAuthAnswer::kMaxBody);
}

TEST_CASE("forward auth answer: another Berth's 508 at the hop limit is marked a loop", "[forward_auth]") {
  auto loop = [](const std::string& answer) {
    ForwardAuthAnswer a;
    REQUIRE(a.feed(answer.data(), answer.size()) == ForwardAuthAnswer::State::kDone);
    return a.loop;
  };
  CHECK(loop("HTTP/1.1 508 Loop Detected\r\nx-berth-error: forward-auth-loop\r\nContent-Length: 0\r\n\r\n"));
  // Only that cause on that status: a service's own 508, or another cause, is a denial.
  CHECK_FALSE(loop("HTTP/1.1 508 Loop Detected\r\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(loop("HTTP/1.1 508 Loop Detected\r\nx-berth-error: forward-auth-denied\r\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(loop("HTTP/1.1 403 Forbidden\r\nx-berth-error: forward-auth-loop\r\nContent-Length: 0\r\n\r\n"));
}

TEST_CASE("forward auth: a check that comes back to a forward_auth route ends at the hop limit", "[forward_auth]") {
  config::ForwardAuth fa;
  REQUIRE(config::parse_forward_auth_url("http://127.0.0.1:9100/check", fa).empty());
  std::vector<std::string> raws;  // the heads' text outlives them
  auto parse = [&](const std::string& hops, http::RequestHead& head) {
    raws.push_back("GET /x HTTP/1.1\r\nHost: app.test\r\n" +
                   (hops.empty() ? std::string() : "X-Berth-Auth-Hops: " + hops + "\r\n") + "\r\n");
    REQUIRE(http::parse_request_head(raws.back(), http::Limits{}, head).ok());
  };
  // The check carries one hop more than the request it checks, the client's value replaced.
  std::string out;
  {
    http::RequestHead head;
    parse("2", head);
    build_forward_auth_request(fa, head, "10.1.2.3", "http", out);
  }
  CHECK(out.find("X-Berth-Auth-Hops: 3\r\n") != std::string::npos);
  CHECK(out.find("X-Berth-Auth-Hops") == out.rfind("X-Berth-Auth-Hops"));
  for (const auto& [hops, expect] : {std::pair<std::string, unsigned>{"", 0}, {"99999999999", 1000}, {"1x", 0}}) {
    http::RequestHead head;
    parse(hops, head);
    CHECK(auth_hops(head) == expect);
  }

  // A request at the limit is answered 508 without a check.
  FilterChain chain({std::make_shared<ForwardAuthFilter>(fa)});
  FilterStates states;
  Route route;
  struct Owner final : FilterRunOwner {
    void on_filter_done() override {}
  } owner;
  for (const char* hops : {"3", "7"}) {
    http::RequestHead head;
    parse(hops, head);
    FilterRequest req{head, route, "127.0.0.1"};
    FilterRun run;
    REQUIRE(run.start(chain, states, req, &owner) == FilterResult::kReply);
    CHECK(run.reply().status == 508);
    CHECK(std::string_view(run.reply().cause) == "forward-auth-loop");
  }
}
