// Body framing, started from the framing the strict head parser found (each head is parsed
// once): Content-Length and close-delimited bodies counted, chunked ones through llhttp plus
// Berth's own chunk checks, fed in every possible split.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/lb/lb.h"
#include "proxy/http/http_head.h"
#include "proxy/http/message_parser.h"

using berth::MessageParser;

namespace {

struct Collect : berth::BodySink {
  std::string body;
  void on_body_data(const char* d, size_t n) override { body.append(d, n); }
};

struct Outcome {
  MessageParser::State state;
  std::string body;
  size_t consumed_total;
};

// Parses the head, starts the body framing it declares, then feeds body bytes split at `split`
// (0 = in one piece).
Outcome run_request(const std::string& head, const std::string& body, size_t split) {
  Collect sink;
  berth::http::RequestHead req;
  REQUIRE(berth::http::parse_request_head(head, berth::http::Limits{}, req).ok());
  MessageParser p;
  MessageParser::Result r = p.start(req.framing, req.content_length, HTTP_REQUEST, &sink);
  size_t consumed = 0;
  if (r.state != MessageParser::State::kBody) return {r.state, sink.body, 0};
  std::string a = split ? body.substr(0, split) : body;
  std::string b = split ? body.substr(split) : std::string();
  r = p.feed(a.data(), a.size());
  consumed += r.consumed;
  if (r.state == MessageParser::State::kBody && !b.empty()) {
    r = p.feed(b.data(), b.size());
    consumed += r.consumed;
  }
  return {r.state, sink.body, consumed};
}

const std::string kChunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

}  // namespace

TEST_CASE("chunked bodies decode identically at every split", "[framing]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n", "hello world!"},
      // A quoted extension value may hold spaces and tabs; trailer fields follow the last chunk.
      {"5;name=\"a b\tc\"\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", "hello"},
  };
  for (const auto& [body, decoded] : cases) {
    for (size_t split = 0; split < body.size(); ++split) {
      INFO(body << " split at " << split);
      Outcome o = run_request(kChunkedHead, body, split);
      CHECK(o.state == MessageParser::State::kComplete);
      CHECK(o.body == decoded);
    }
  }
}

TEST_CASE("bytes after a complete message are left for the next one", "[framing]") {
  const std::string body = "3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\n";
  Outcome o = run_request(kChunkedHead, body, 0);
  CHECK(o.state == MessageParser::State::kComplete);
  CHECK(o.consumed_total == body.find("GET"));

  Outcome cl = run_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", "abcdEXTRA", 0);
  CHECK(cl.state == MessageParser::State::kComplete);
  CHECK(cl.body == "abcd");
  CHECK(cl.consumed_total == 4);
}

TEST_CASE("invalid chunk framing is refused at every split", "[framing][smuggling]") {
  const std::vector<std::pair<const char*, std::string>> bad = {
      {"data not followed by CRLF", "5\r\nhelloXX0\r\n\r\n"},
      {"data followed by LF only", "5\r\nhello\n0\r\n\r\n"},
      {"data followed by CR + other", "5\r\nhello\rX0\r\n\r\n"},
      {"size not hex", "zz\r\nhello\r\n0\r\n\r\n"},
      {"negative size", "-1\r\nx\r\n0\r\n\r\n"},
      {"size overflow", "ffffffffffffffffff\r\nx\r\n0\r\n\r\n"},
      {"size with bare LF", "5\nhello\r\n0\r\n\r\n"},
      {"missing size", "\r\nhello\r\n0\r\n\r\n"},
      {"extension value with a control byte", std::string("5;a=b\x01\r\nhello\r\n0\r\n\r\n")},
      {"quoted extension value with DEL", "5;a=\"b\x7f\"\r\nhello\r\n0\r\n\r\n"},
      {"extension value with a space", "5;a=b c\r\nhello\r\n0\r\n\r\n"},
      {"trailer name not a token", "5\r\nhello\r\n0\r\nX@Y: 1\r\n\r\n"},
  };
  for (const auto& [name, body] : bad) {
    for (size_t split = 0; split < body.size(); ++split) {
      INFO(name << " split at " << split);
      Outcome o = run_request(kChunkedHead, body, split);
      CHECK(o.state == MessageParser::State::kError);
    }
  }
}

TEST_CASE("a size line's extensions and the trailer section are bounded", "[framing][smuggling]") {
  auto repeat = [](const std::string& unit, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += unit;
    return out;
  };
  auto state_of = [](const std::string& body) { return run_request(kChunkedHead, body, 0).state; };
  using S = MessageParser::State;
  // Extensions: 4096 bytes with their ';' and '=' pass, 4100 do not (names and values alone
  // would be 2050 bytes).
  CHECK(state_of("3" + repeat(";a=b", 1024) + "\r\nabc\r\n0\r\n\r\n") == S::kComplete);
  CHECK(state_of("3" + repeat(";a=b", 1025) + "\r\nabc\r\n0\r\n\r\n") == S::kError);
  CHECK(state_of("3" + repeat(";ab", 1365) + "\r\nabc\r\n0\r\n\r\n") == S::kComplete);
  CHECK(state_of("3" + repeat(";ab", 1366) + "\r\nabc\r\n0\r\n\r\n") == S::kError);
  // Trailers: up to 32 KiB of names and values, and 100 fields.
  CHECK(state_of("3\r\nabc\r\n0\r\nT: " + std::string(32 * 1024 - 1, 'v') + "\r\n\r\n") == S::kComplete);
  CHECK(state_of("3\r\nabc\r\n0\r\nT: " + std::string(32 * 1024, 'v') + "\r\n\r\n") == S::kError);
  CHECK(state_of("3\r\nabc\r\n0\r\n" + repeat("T: 1\r\n", 100) + "\r\n") == S::kComplete);
  CHECK(state_of("3\r\nabc\r\n0\r\n" + repeat("T: 1\r\n", 101) + "\r\n") == S::kError);
  // ...also when they come a byte at a time, and on a reused parser.
  const std::string too_many = "3\r\nabc\r\n0\r\n" + repeat("T: 1\r\n", 101) + "\r\n";
  Collect sink;
  MessageParser p;
  for (int round = 0; round < 2; ++round) {
    REQUIRE(p.start(berth::http::Framing::kChunked, 0, HTTP_REQUEST, &sink).state == S::kBody);
    MessageParser::Result r;
    for (char c : too_many) {
      r = p.feed(&c, 1);
      if (r.state != S::kBody) break;
    }
    CHECK(r.state == S::kError);
  }
}

TEST_CASE("close-delimited response completes at finish, truncated sized one fails", "[framing]") {
  Collect sink;
  MessageParser p;
  berth::http::ResponseHead resp;
  REQUIRE(berth::http::parse_response_head("HTTP/1.1 200 OK\r\n\r\n", {}, false, resp).ok());
  REQUIRE(p.start(resp.framing, resp.content_length, HTTP_RESPONSE, &sink).state == MessageParser::State::kBody);
  REQUIRE(p.feed("abc", 3).state == MessageParser::State::kBody);
  CHECK(p.finish().state == MessageParser::State::kComplete);
  CHECK(sink.body == "abc");

  Collect sink2;
  MessageParser q;
  REQUIRE(berth::http::parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", {}, false, resp).ok());
  REQUIRE(q.start(resp.framing, resp.content_length, HTTP_RESPONSE, &sink2).state == MessageParser::State::kBody);
  REQUIRE(q.feed("abc", 3).state == MessageParser::State::kBody);
  CHECK(q.finish().state == MessageParser::State::kError);

  Collect sink3;  // chunked, cut short by the close
  MessageParser c;
  REQUIRE(c.start(berth::http::Framing::kChunked, 0, HTTP_RESPONSE, &sink3).state == MessageParser::State::kBody);
  REQUIRE(c.feed("5\r\nab", 5).state == MessageParser::State::kBody);
  CHECK(c.finish().state == MessageParser::State::kError);
  CHECK(sink3.body == "ab");
}

TEST_CASE("responses to HEAD and 204 have no body", "[framing]") {
  Collect sink;
  MessageParser p;
  berth::http::ResponseHead resp;
  REQUIRE(berth::http::parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", {}, true, resp).ok());
  CHECK(p.start(resp.framing, resp.content_length, HTTP_RESPONSE, &sink).state == MessageParser::State::kComplete);
  REQUIRE(berth::http::parse_response_head("HTTP/1.1 204 No Content\r\n\r\n", {}, false, resp).ok());
  CHECK(p.start(resp.framing, resp.content_length, HTTP_RESPONSE, &sink).state == MessageParser::State::kComplete);
  CHECK(sink.body.empty());
}

TEST_CASE("smooth weighted round robin spreads picks by weight, interleaved", "[lb]") {
  berth::Service svc;
  svc.name = "s";
  for (uint32_t w : {1u, 2u, 3u}) {
    berth::Endpoint e;
    e.key = "127.0.0.1:" + std::to_string(1000 + w);
    e.weight = w;
    svc.endpoints.push_back(e);
  }
  berth::SmoothWeightedRoundRobin lb;
  lb.reset(svc);
  int counts[3] = {0, 0, 0};
  std::string order;
  for (int i = 0; i < 600; ++i) {
    int k = lb.pick(svc);
    REQUIRE(k >= 0);
    ++counts[k];
    if (i < 6) order += static_cast<char>('a' + k);
  }
  CHECK(counts[0] == 100);
  CHECK(counts[1] == 200);
  CHECK(counts[2] == 300);
  CHECK(order == "cbacbc");  // smooth: never three of the heaviest in a row

  berth::Service empty;
  CHECK(lb.pick(empty) == -1);
}

TEST_CASE("a chunked body's first bytes: what the body parser refuses is found before forwarding", "[body][smuggling]") {
  using berth::chunked_prefix_valid;
  for (const char* ok : {"", "5", "5\r", "5\r\nhello", "5\r\nhello\r\n", "1a;ext=1\r\n", "1;a=\"b\"\r\nx\r\n",
                         "0\r\n\r\n", "000A\r\n", "0000000000000000003\r\nabc\r\n0\r\n\r\n",
                         "0\r\n\r\nGET / HTTP/1.1\r\n"}) {  // bytes after the body's end are not its
    INFO(ok);
    CHECK(chunked_prefix_valid(ok));
  }
  for (const char* bad : {"zz\r\n", "-1\r\n", "0x5\r\n", "5\nhello", "5\rX", "\r\nhello", " 5\r\n", "5z\r\n",
                          "10000000000000003\r\nabc\r\n",  // overflows 64 bits
                          "3 ;a=b\r\n", "3;=b\r\n", "3;a=\r\n", "3;;a\r\n",  // extensions out of grammar
                          "3\r\nabcX\r\n",                                     // data not followed by CRLF
                          "0\r\nX:y\nx\r\n"}) {                                 // a bare LF in a trailer
    INFO(bad);
    CHECK_FALSE(chunked_prefix_valid(bad));
  }
}
