// Basic proxying through the real berth binary: routing, bodies, framing, keep-alive,
// pipelining, header rewriting, special status codes, 100-continue, upgrades.

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <random>
#include <thread>

#include "env.h"

using namespace it;

namespace {

std::optional<std::string> echo_header(const std::vector<std::pair<std::string, std::string>>& hs,
                                       const std::string& name) {
  for (auto& [k, v] : hs)
    if (k == name) return v;
  return std::nullopt;
}

size_t echo_count(const std::vector<std::pair<std::string, std::string>>& hs,
                  const std::string& name) {
  size_t n = 0;
  for (auto& [k, v] : hs)
    if (k == name) ++n;
  return n;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string chunk(std::string_view data) {
  char hex[32];
  std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  return std::string(hex) + std::string(data) + "\r\n";
}

}  // namespace

TEST_CASE("GET is routed by host to the right origin", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());

  Response r = c.get("/hello?header=X-Test:one", "a.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "origin=A path=/hello\n");
  CHECK(r.header("x-origin-name") == std::optional<std::string>("A"));
  CHECK(r.header("x-test") == std::optional<std::string>("one"));
  CHECK_FALSE(r.header("x-berth-error"));

  r = c.get("/there", "b.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "origin=B path=/there\n");

  r = c.get("/w", "x.wild.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.header("x-origin-name") == std::optional<std::string>("A"));

  // Host matching is case-insensitive and ignores the port.
  r = c.get("/case", "A.TEST:" + std::to_string(env.port()));
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.header("x-origin-name") == std::optional<std::string>("A"));
  check_alive(env);
}

TEST_CASE("origin status codes and bodies pass through unchanged", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  for (int status : {201, 404, 500, 502, 503}) {
    Response r = c.get("/s?status=" + std::to_string(status), "a.test");
    INFO(status << " " << r.raw_head << r.error);
    CHECK(r.status == status);
    CHECK(r.body == "origin=A path=/s\n");
    CHECK_FALSE(r.header("x-berth-error"));
  }
  check_alive(env);
}

TEST_CASE("request bodies of 0 B and 1 MiB reach the origin intact", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());

  SECTION("empty body") {
    Response r = c.request(make_request("POST", "/upload", "a.test", {}, ""));
    INFO(r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body == "bytes=0 sum=0");
  }
  SECTION("1 MiB Content-Length body") {
    std::string body = random_bytes(1 << 20, 7);
    Response r = c.request(make_request("POST", "/upload", "a.test", {}, body));
    INFO(r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body == "bytes=1048576 sum=" + std::to_string(byte_sum(body)));
    // And the connection is still usable.
    r = c.get("/after", "a.test");
    CHECK(r.status == 200);
  }
  SECTION("1 MiB chunked body with odd chunk sizes") {
    std::string body = random_bytes(1 << 20, 11);
    std::string raw = "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t off = 0, step = 1;
    while (off < body.size()) {
      size_t n = std::min(step, body.size() - off);
      raw += chunk(std::string_view(body).substr(off, n));
      off += n;
      step = step * 3 + 1;
      if (step > 200000) step = 7;
    }
    raw += "0\r\n\r\n";
    Response r = c.request(raw);
    INFO(r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body == "bytes=1048576 sum=" + std::to_string(byte_sum(body)));
  }
  SECTION("chunked body with extensions and a trailer; origin sees valid framing") {
    std::string raw =
        "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    Response r = c.request(raw);
    INFO(r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-origin-body-bytes") == std::optional<std::string>("11"));
    auto hs = parse_echo_headers(r.body);
    INFO("origin saw:\n" << r.body);
    auto te = echo_header(hs, "transfer-encoding");
    auto cl = echo_header(hs, "content-length");
    // Exactly one framing: chunked, or a Content-Length of 11.
    CHECK(te.has_value() != cl.has_value());
    if (te) CHECK(lower(*te) == "chunked");
    if (cl) CHECK(*cl == "11");
    CHECK(echo_count(hs, "transfer-encoding") <= 1);
    CHECK(echo_count(hs, "content-length") <= 1);
  }
  check_alive(env);
}

TEST_CASE("response bodies: 1 MiB with Content-Length and chunked", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  for (const char* extra : {"", "&chunked=1"}) {
    Response r = c.get(std::string("/download?size=1048576") + extra, "a.test");
    INFO(extra << " " << r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body_complete);
    CHECK(r.body.size() == 1048576);
    CHECK(r.body == pattern(0, 1048576));
  }
  // A small chunked response (the origin sends it in two chunks).
  Response r = c.get("/small?chunked=1", "a.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "origin=A path=/small\n");
  check_alive(env);
}

TEST_CASE("keep-alive: 200 sequential requests reuse connections", "[proxy]") {
  auto& env = shared();
  REQUIRE(env.a->reset());

  SECTION("one client connection") {
    Client c(env.port());
    REQUIRE(c.connected());
    int ok = 0;
    for (int i = 0; i < 200; ++i) {
      Response r = c.get("/ka?i=" + std::to_string(i), "a.test");
      if (r.status == 200 && r.body == "origin=A path=/ka\n") ++ok;
      else {
        INFO("request " << i << ": " << r.raw_head << r.error);
        CHECK(r.status == 200);
        break;
      }
    }
    CHECK(ok == 200);
  }
  SECTION("several client connections, interleaved") {
    std::vector<std::unique_ptr<Client>> cs;
    for (int i = 0; i < 4; ++i) {
      cs.push_back(std::make_unique<Client>(env.port()));
      REQUIRE(cs.back()->connected());
    }
    int ok = 0;
    for (int i = 0; i < 200; ++i) {
      Response r = cs[i % 4]->get("/ka?i=" + std::to_string(i), "a.test");
      if (r.status == 200) ++ok;
      else {
        INFO("request " << i << ": " << r.raw_head << r.error);
        CHECK(r.status == 200);
        break;
      }
    }
    CHECK(ok == 200);
  }
  auto st = env.a->stats();
  INFO("origin connections=" << st.connections << " requests=" << st.requests);
  CHECK(st.requests == 200);
  CHECK(st.connections >= 1);
  CHECK(st.connections <= 5);
  check_alive(env);
}

TEST_CASE("pipelining: a request whose head was half read while the one before it was out is read on", "[proxy]") {
  // The first bytes of the second head wait with the first request; its rest comes 50 ms
  // later. Once the first response is out, reading must go on for the rest of that head (it
  // stopped while the input waited), not wait for the header timeout.
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  const std::string second = make_request("GET", "/second", "a.test");
  REQUIRE(c.send(make_request("GET", "/first?delay_ms=20", "a.test") + second.substr(0, 10)));
  std::this_thread::sleep_for(50ms);
  REQUIRE(c.send(second.substr(10)));
  Response first = c.read_response();
  INFO(first.raw_head << first.error);
  CHECK(first.status == 200);
  Response r = c.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "origin=A path=/second\n");
  check_alive(env);
}

TEST_CASE("pipelining: a client that sends its whole pipeline before it reads gets every answer", "[proxy]") {
  // A 4.5 MB answer, then a POST of 8 MB sent before the client reads a byte: the POST must be
  // taken while the first answer's tail (within write_buffer_bytes) is still on its way, or
  // neither side ever moves.
  OriginEnv env("A",
                config_head(1, "", "write_buffer_bytes: 32MiB") +
                    "routes:\n  - {name: r-a, host: \"a.test\", service: s}\n");
  Client c(env.berth->port());
  REQUIRE(c.connected());
  c.set_timeout(20s);
  const int small = 64 * 1024;
  REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  const std::string body(8'000'000, 'b');
  REQUIRE(c.send(make_request("GET", "/big?size=4500000", "a.test") + make_request("POST", "/sink", "a.test", {}, body)));
  Response big = c.read_response();
  INFO(big.raw_head << big.error);
  CHECK(big.status == 200);
  CHECK(big.body.size() == 4'500'000);
  Response post = c.read_response();
  INFO(post.raw_head << post.error);
  CHECK(post.status == 200);
  CHECK(post.header("x-origin-body-bytes") == std::optional<std::string>("8000000"));
}

TEST_CASE("pipelining: a client that never reads has at most write_buffer_bytes of answers made for it", "[proxy]") {
  // 400 pipelined requests for 60 KB answers, none read: Berth takes them only while the
  // answers before them that wait for the client fit in write_buffer_bytes (and the kernel's
  // buffers), not all 400 at once (24 MB held for a client that reads nothing). Once the client
  // reads, every one is answered, in order.
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(20s);
  const int small = 64 * 1024;
  REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  const std::string m = marker("HOLD");
  std::string all;
  for (int i = 0; i < 400; ++i) all += make_request("GET", "/" + m + "/" + std::to_string(i) + "?size=60000", "a.test");
  REQUIRE(c.send(all));
  std::this_thread::sleep_for(1s);
  const long taken = env.a->seen(m);
  INFO("requests taken while the client read nothing: " << taken);
  CHECK(taken > 0);
  CHECK(taken < 200);
  for (int i = 0; i < 400; ++i) {
    Response r = c.read_response();
    INFO("response " << i << ": " << r.raw_head << r.error);
    REQUIRE(r.status == 200);
    REQUIRE(r.body.size() == 60'000);
  }
  CHECK(env.a->seen(m) == 400);
  check_alive(env);
}

TEST_CASE("pipelining: a client that never reads has Berth's own answers made only while they fit", "[proxy]") {
  // 150,000 pipelined requests that Berth answers itself (404: no route), none read: it stops
  // reading them once write_buffer_bytes (and the kernel's buffers, some 4 MB) of answers wait,
  // instead of answering all and holding some 16 MB for a client that reads nothing. Once the
  // client reads, every one is answered.
  auto& env = shared();
  const uint64_t before = stats_counter(env.admin_port(), "local_replies");
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(20s);
  const int small = 64 * 1024;
  REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  constexpr int kRequests = 150'000;
  std::string all;
  for (int i = 0; i < kRequests; ++i) all += make_request("GET", "/" + std::to_string(i), "nowhere.test");
  bool sent = false;
  std::thread sender([&] { sent = c.send(all); });  // blocks while Berth reads nothing
  std::this_thread::sleep_for(1s);
  const uint64_t answered = stats_counter(env.admin_port(), "local_replies") - before;
  INFO("answered while the client read nothing: " << answered);
  CHECK(answered > 0);
  CHECK(answered < kRequests / 2);
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    Response r = c.read_response();
    if (r.status != 404) {
      INFO("response " << i << ": " << r.raw_head << r.error);
      CHECK(r.status == 404);
      break;
    }
    ++ok;
  }
  sender.join();
  CHECK(sent);
  CHECK(ok == kRequests);
  check_alive(env);
}

TEST_CASE("pipelining: 10 requests in one write come back in order", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  std::string m = marker("PIPE");
  std::string all;
  for (int i = 0; i < 10; ++i) {
    if (i == 4)  // one with a body in the middle
      all += make_request("POST", "/echo?" + m + "=" + std::to_string(i), "a.test", {}, "0123456789");
    else
      all += make_request("GET", "/echo?" + m + "=" + std::to_string(i), "a.test");
  }
  REQUIRE(c.send(all));
  for (int i = 0; i < 10; ++i) {
    Response r = c.read_response();
    INFO("response " << i << ": " << r.raw_head << r.error);
    REQUIRE(r.status == 200);
    std::string expect_start =
        std::string(i == 4 ? "POST" : "GET") + " /echo?" + m + "=" + std::to_string(i) + " HTTP/1.1\r\n";
    CHECK(r.body.rfind(expect_start, 0) == 0);
    CHECK(r.header("x-origin-body-bytes") == std::optional<std::string>(i == 4 ? "10" : "0"));
  }
  // Still usable afterwards.
  Response r = c.get("/after-pipeline", "a.test");
  CHECK(r.status == 200);
  check_alive(env);
}

TEST_CASE("hop-by-hop headers are removed and forwarding headers added", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/echo", "a.test",
                     {"Connection: keep-alive, X-Foo", "Keep-Alive: timeout=5", "TE: trailers",
                      "Trailer: X-Checksum", "Proxy-Connection: keep-alive", "Upgrade: h2c",
                      "X-Foo: secret", "X-Bar: kept", "X-Forwarded-For: 1.2.3.4",
                      "X-Request-Id: my-request-id"});
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  INFO("origin saw:\n" << r.body);
  auto hs = parse_echo_headers(r.body);
  for (const char* h : {"connection", "keep-alive", "te", "trailer", "proxy-connection", "upgrade",
                        "x-foo"}) {
    INFO("header " << h);
    CHECK_FALSE(echo_header(hs, h).has_value());
  }
  CHECK(echo_header(hs, "x-bar") == std::optional<std::string>("kept"));
  CHECK(echo_header(hs, "host") == std::optional<std::string>("a.test"));
  CHECK(echo_count(hs, "host") == 1);
  // The peer is not a trusted proxy (trusted_proxies is empty): what it claims is dropped.
  CHECK(echo_header(hs, "x-forwarded-for") == std::optional<std::string>("127.0.0.1"));
  CHECK(echo_count(hs, "x-forwarded-for") == 1);
  CHECK(echo_header(hs, "x-forwarded-proto") == std::optional<std::string>("http"));
  CHECK(echo_header(hs, "x-forwarded-host") == std::optional<std::string>("a.test"));
  CHECK(echo_header(hs, "x-forwarded-port") == std::optional<std::string>(std::to_string(env.port())));
  CHECK(echo_header(hs, "x-request-id") == std::optional<std::string>("my-request-id"));
  CHECK(echo_count(hs, "x-request-id") == 1);

  // Without client-sent values: XFF is just the client, a request id is generated.
  r = c.get("/echo", "a.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  INFO("origin saw:\n" << r.body);
  hs = parse_echo_headers(r.body);
  CHECK(echo_header(hs, "x-forwarded-for") == std::optional<std::string>("127.0.0.1"));
  auto id1 = echo_header(hs, "x-request-id");
  REQUIRE(id1.has_value());
  CHECK_FALSE(id1->empty());
  r = c.get("/echo", "a.test");
  REQUIRE(r.status == 200);
  auto id2 = echo_header(parse_echo_headers(r.body), "x-request-id");
  REQUIRE(id2.has_value());
  CHECK(*id1 != *id2);
  check_alive(env);
}

TEST_CASE("HEAD, 204 and 304 responses are framed without a body", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);

  Response r = c.request(make_request("HEAD", "/h?size=1000", "a.test"), /*is_head=*/true);
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body.empty());
  if (auto cl = r.header("content-length")) CHECK(*cl == "1000");
  r = c.get("/after-head", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "origin=A path=/after-head\n");

  for (int status : {204, 304}) {
    r = c.get("/s?status=" + std::to_string(status), "a.test");
    INFO(status << ": " << r.raw_head << r.error);
    CHECK(r.status == status);
    CHECK(r.body.empty());
    CHECK_FALSE(r.header("transfer-encoding"));
    r = c.get("/after-" + std::to_string(status), "a.test");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "origin=A path=/after-" + std::to_string(status) + "\n");
  }
  // HEAD of a chunked response.
  r = c.request(make_request("HEAD", "/hc?chunked=1", "a.test"), true);
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  r = c.get("/after-head-chunked", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "origin=A path=/after-head-chunked\n");
  check_alive(env);
}

TEST_CASE("Expect: 100-continue gets 100 Continue, then the final response", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  REQUIRE(c.send("POST /upload HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                 "Content-Length: 11\r\n\r\n"));
  Response r = c.read_head();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 100);
  REQUIRE(c.send("hello world"));
  r = c.read_response();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "bytes=11 sum=" + std::to_string(byte_sum("hello world")));
  check_alive(env);
}

TEST_CASE("Expect: 100-continue answered early by the origin without reading the body",
          "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  REQUIRE(c.send("POST /early?expect100=0 HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                 "Content-Length: 11\r\n\r\n"));
  // The body is never sent: the final response must arrive anyway (an interim 100 from
  // berth itself is allowed before it).
  Response r = c.read_head();
  if (r.status == 100) r = c.read_head();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  Response body = r;
  c.read_body(body, false, [&](std::string_view d) {
    body.body.append(d);
    return true;
  });
  CHECK(body.body == "origin=A path=/early\n");
  check_alive(env);
}

TEST_CASE("an origin closing after each response does not break later requests", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  for (int i = 0; i < 20; ++i) {
    std::string path = "/cl" + std::to_string(i);
    Response r = c.get(path + (i % 2 ? "?close=1" : ""), "a.test");
    INFO("request " << i << ": " << r.raw_head << r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body == "origin=A path=" + path + "\n");
  }
  check_alive(env);
}

TEST_CASE("response headers are forwarded before a delayed body", "[proxy][stream]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  auto t0 = Clock::now();
  REQUIRE(c.send(make_request("GET", "/bd?body_delay_ms=1500&size=1000", "a.test")));
  Response r = c.read_head();
  auto head_at = Clock::now() - t0;
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(head_at < 1200ms);
  c.read_body(r, false, [&](std::string_view d) {
    r.body.append(d);
    return true;
  });
  CHECK(Clock::now() - t0 >= 1400ms);
  CHECK(r.body == pattern(0, 1000));
  check_alive(env);
}

TEST_CASE("a response delimited by connection close reaches the client intact", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  Response r = c.get("/nl?no_length=1&size=200000", "a.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body_complete);
  CHECK(r.body.size() == 200000);
  CHECK(r.body == pattern(0, 200000));
  check_alive(env);
}

TEST_CASE("weighted endpoints: both get traffic, the heavier more", "[proxy]") {
  auto& env = shared();
  REQUIRE(env.a->reset());
  REQUIRE(env.b->reset());
  int a = 0, b = 0;
  for (int i = 0; i < 60; ++i) {
    Client c(env.port());  // a new connection each time so both workers take part
    REQUIRE(c.connected());
    Response r = c.get("/lb", "lb.test");
    INFO(r.raw_head << r.error);
    REQUIRE(r.status == 200);
    auto name = r.header("x-origin-name");
    if (name == std::optional<std::string>("A")) ++a;
    if (name == std::optional<std::string>("B")) ++b;
  }
  INFO("A=" << a << " B=" << b);
  CHECK(a + b == 60);
  CHECK(a > 0);
  CHECK(b > a);
  check_alive(env);
}

TEST_CASE("WebSocket-style upgrade is tunnelled both ways", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  REQUIRE(c.send("GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  Response r = c.read_head();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 101);
  CHECK(lower(r.header("upgrade").value_or("")) == "websocket");
  CHECK(lower(r.header("connection").value_or("")).find("upgrade") != std::string::npos);

  REQUIRE(c.send("ping-1"));
  CHECK(c.read_exact(6) == "ping-1");
  std::string big = random_bytes(300000, 3);
  REQUIRE(c.send(big));
  std::string back = c.read_exact(big.size());
  CHECK(back.size() == big.size());
  CHECK(back == big);
  REQUIRE(c.send("bye"));
  CHECK(c.read_exact(3) == "bye");
  // The client ends its side: the origin sees EOF and closes, and berth closes the tunnel.
  c.shutdown_write();
  std::string rest;
  CHECK(c.wait_closed(5s, &rest));
  CHECK(rest.empty());
  check_alive(env);
}

namespace {
// A client whose upgrade to the shared origin's tunnel (tunnel=MODE) was answered 101.
std::unique_ptr<Client> open_tunnel(uint16_t port, const std::string& mode) {
  auto c = std::make_unique<Client>(port);
  REQUIRE(c->connected());
  c->set_timeout(20s);
  REQUIRE(c->send("GET /ws?tunnel=" + mode + " HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\n\r\n"));
  Response r = c->read_head();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 101);
  return c;
}
}  // namespace

TEST_CASE("a tunnel passes each side's end on and keeps the other direction open", "[proxy][stream]") {
  auto& env = shared();
  {
    // The client ends first, with 16 MiB still on its way to a slow reader: every byte arrives,
    // and the instance's answer, sent after it saw the client's end, reaches the client.
    auto tunnel = open_tunnel(env.port(), "count");
    Client& c = *tunnel;
    const std::string big(16 << 20, 'x');
    REQUIRE(c.send(big));
    c.shutdown_write();
    std::string rest;
    CHECK(c.wait_closed(20s, &rest));
    CHECK(rest == "got " + std::to_string(big.size()) + "\n");
  }
  {
    // The instance ends first: what the client sends afterwards still reaches it.
    const std::string m = marker("TBYE");
    auto tunnel = open_tunnel(env.port(), "bye");
    Client& c = *tunnel;
    CHECK(c.read_exact(4) == "BYE\n");
    REQUIRE(c.send("answer " + m));
    c.shutdown_write();
    std::string rest;
    CHECK(c.wait_closed(5s, &rest));
    CHECK(rest.empty());
    CHECK(wait_until([&] { return env.a->seen(m) == 1; }, 3s));
  }
  check_alive(env);
}

TEST_CASE("concurrent clients each get their own responses", "[proxy]") {
  auto& env = shared();
  constexpr int kClients = 32, kRequests = 20;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Client c(env.port());
      if (!c.connected()) {
        failures[t] = "connect failed: " + c.error();
        return;
      }
      for (int i = 0; i < kRequests; ++i) {
        std::string path = "/c" + std::to_string(t) + "-" + std::to_string(i);
        Response r = c.get(path + (i % 3 == 0 ? "?size=20000" : ""), i % 2 ? "a.test" : "b.test");
        bool good = r.status == 200 && (i % 3 == 0 ? r.body == pattern(0, 20000)
                                                   : r.body == std::string("origin=") + (i % 2 ? "A" : "B") +
                                                                      " path=" + path + "\n");
        if (!good) {
          failures[t] = "request " + path + ": " + r.raw_head + r.error;
          return;
        }
        ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& f : failures) {
    INFO(f);
    CHECK(f.empty());
  }
  CHECK(ok == kClients * kRequests);
  check_alive(env);
}

TEST_CASE("HTTP/1.0 clients get no chunked encoding and the connection closes", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("GET /old?chunked=1 HTTP/1.0\r\nHost: a.test\r\n\r\n"));
  Response r = c.read_response();
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK_FALSE(r.header("transfer-encoding").has_value());
  CHECK(r.body == "origin=A path=/old\n");
  CHECK(c.wait_closed(3s));
  check_alive(env);
}

TEST_CASE("HTTP/1.0 clients that ask to keep the connection are told it is kept", "[proxy]") {
  // An HTTP/1.0 client (ab -k, for one) keeps a connection only when the response says
  // `Connection: keep-alive`; without it, it closes after every response.
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  for (const char* host : {"a.test", "a.test", "nowhere.test", "a.test"}) {
    INFO(host);
    REQUIRE(c.send(std::string("GET /old HTTP/1.0\r\nHost: ") + host + "\r\nConnection: keep-alive\r\n\r\n"));
    Response r = c.read_response();
    INFO(r.raw_head << r.error);
    CHECK(r.status == (std::string(host) == "a.test" ? 200 : 404));
    CHECK(r.header("connection") == std::optional<std::string>("keep-alive"));
    CHECK(r.header_count("connection") == 1);
  }
  // Without the ask, the connection closes after the response, which says so.
  REQUIRE(c.send("GET /old HTTP/1.0\r\nHost: a.test\r\n\r\n"));
  Response r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.header("connection") == std::optional<std::string>("close"));
  CHECK(c.wait_closed(3s));
  // A client that ended its side after asking is not told the connection stays.
  Client h(env.port());
  REQUIRE(h.send("GET /old?delay_ms=300 HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n"));
  h.shutdown_write();
  r = h.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.header("connection") == std::optional<std::string>("close"));
  CHECK(h.wait_closed(3s));
  check_alive(env);
}

TEST_CASE("a 101 to a protocol the client did not offer is a bad response, not a tunnel", "[proxy][smuggling]") {
  // A tunnel carries bytes that Berth no longer checks as requests: only the switch asked for.
  auto& env = shared();
  const std::vector<std::string> offer = {"Connection: Upgrade", "Upgrade: websocket"};
  for (const char* as : {"h2c", "-", "websocket,%20h2c"}) {
    INFO("the 101 names: " << as);
    Client c(env.port());
    REQUIRE(c.connected());
    c.set_timeout(5s);
    Response r = c.get(std::string("/ws?upgrade_as=") + as, "a.test", offer);
    check_berth_error(r, 502, "upstream-bad-response");
  }
  // Protocol names compare case-insensitively.
  Client c(env.port());
  Response r = c.get("/ws?upgrade_as=WebSocket", "a.test", offer);
  CHECK(r.status == 101);
  check_alive(env);
}

TEST_CASE("an Upgrade offering h2c anywhere in its list is no upgrade: no tunnel opens", "[proxy][smuggling]") {
  // An h2c tunnel would carry HTTP/2 requests past every route and check. The origin here
  // switches to whatever the 101 names when offered websocket: were the offer passed on, it
  // would answer 101 h2c, which the client offered.
  auto& env = shared();
  for (const char* list : {"websocket, h2c", ",h2c, websocket", "websocket, H2C"}) {
    INFO("Upgrade: " << list);
    Client c(env.port());
    REQUIRE(c.connected());
    c.set_timeout(5s);
    Response r = c.get("/ws?upgrade_as=h2c", "a.test", {"Connection: Upgrade", std::string("Upgrade: ") + list});
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "origin=A path=/ws\n");
  }
  check_alive(env);
}

TEST_CASE("an Upgrade the origin declines stays plain HTTP", "[proxy]") {
  auto& env = shared();
  Client c(env.port());
  REQUIRE(c.connected());
  c.set_timeout(5s);
  // The origin only upgrades to websocket; for "foo" it answers normally.
  Response r = c.get("/noup", "a.test", {"Connection: Upgrade", "Upgrade: foo"});
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "origin=A path=/noup\n");
  if (!c.wait_closed(100ms)) {
    r = c.get("/after-noup", "a.test");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "origin=A path=/after-noup\n");
  }
  check_alive(env);
}
