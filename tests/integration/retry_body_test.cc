// Retries of requests with a body through the real binary: a body within retry.replay_body_bytes
// is sent again, byte for byte, to the next instance after the first one reset the connection
// (Content-Length and chunked, whole or still streaming from the client); a larger one is not,
// and the client gets the 502. Origin A resets (reset_on=A), origin B answers with the body it
// received (/echo_body).
#include <signal.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <thread>

#include "env.h"

using namespace it;

namespace {

std::string service_yaml(const std::vector<std::string>& addresses, const std::string& retry) {
  std::string y = "routes:\n  - {name: r, path: /, service: s}\nservices:\n  s:\n    endpoints: [";
  for (size_t i = 0; i < addresses.size(); ++i) y += (i ? ", \"" : "\"") + addresses[i] + "\"";
  // No ejections: every request of a test must meet the resetting instance if it is picked.
  y += "]\n    outlier: {consecutive_failures: 0}\n";
  if (!retry.empty()) y += "    retry: {" + retry + "}\n";
  return y;
}

// n bytes that differ from one offset to the next (a reordering or a lost piece shows).
std::string body_of(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string chunk(std::string_view data) {
  char hex[20];
  std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  return std::string(hex) + std::string(data) + "\r\n";
}

// The body as chunks of `piece` bytes, then the last chunk.
std::string chunks(std::string_view body, size_t piece) {
  std::string out;
  for (size_t off = 0; off < body.size(); off += piece) out += chunk(body.substr(off, piece));
  return out + "0\r\n\r\n";
}

std::string chunked_head(std::string_view method, const std::string& target) {
  return std::string(method) + " " + target + " HTTP/1.1\r\nHost: retry.test\r\nTransfer-Encoding: chunked\r\n\r\n";
}

// Writes one request, whose target carries the marker, and reads its response.
using Send = std::function<Response(Client&, const std::string& marker)>;

// /echo_body?QUERY&m=MARKER with a Content-Length body, sent at once, or the first `first`
// body bytes, a pause, then the rest.
Send with_length(std::string method, std::string query, std::string body, size_t first = 0) {
  return [=](Client& c, const std::string& mk) {
    const std::string req = make_request(method, "/echo_body?" + query + "&m=" + mk, "retry.test", {}, body);
    if (first == 0) return c.request(req);
    const size_t cut = req.size() - body.size() + first;
    c.send(std::string_view(req).substr(0, cut));
    std::this_thread::sleep_for(300ms);
    c.send(std::string_view(req).substr(cut));
    return c.read_response();
  };
}

// The same with a chunked body in chunks of `piece` bytes; with `first`, a first chunk of that
// size, a pause, then the rest.
Send with_chunks(std::string method, std::string query, std::string body, size_t piece, size_t first = 0) {
  return [=](Client& c, const std::string& mk) {
    const std::string head = chunked_head(method, "/echo_body?" + query + "&m=" + mk);
    if (first == 0) return c.request(head + chunks(body, piece));
    c.send(head + chunk(std::string_view(body).substr(0, first)));
    std::this_thread::sleep_for(300ms);
    c.send(chunks(std::string_view(body).substr(first), piece));
    return c.read_response();
  };
}

// Origin A, which resets, and B, which answers, behind one berth with these retry settings.
struct TwoOrigins {
  Origin a{"A"}, b{"B"};
  std::unique_ptr<Berth> berth;
  explicit TwoOrigins(const std::string& retry) {
    REQUIRE((a.ok() && b.ok()));
    berth = std::make_unique<Berth>(config_head(1) + service_yaml({a.address(), b.address()}, retry));
    INFO(berth->error());
    REQUIRE(berth->ok());
  }

  // Round robin may start at either instance: sends (on a fresh connection, with a fresh
  // marker) until A got the request first. *m is the marker of the returned attempt.
  Response first_on_a(const Send& send, std::string* m) {
    for (int i = 0; i < 4; ++i) {
      *m = marker("RB");
      Client c(berth->port());
      if (!c.connected()) break;
      Response r = send(c, *m);
      if (a.seen(*m) > 0) return r;
    }
    Response none;
    none.error = "origin A never got the request first";
    return none;
  }

  // A reset the request, B answered with exactly `body`.
  void check_replayed(const Send& send, const std::string& body) {
    std::string m;
    Response r = first_on_a(send, &m);
    INFO(r.error << "\n" << r.raw_head << "\n" << berth->log());
    REQUIRE(r.status == 200);
    CHECK(r.header("x-origin-name") == "B");
    CHECK(r.body.size() == body.size());
    CHECK(r.body == body);
    CHECK(a.seen(m) == 1);
    CHECK(b.seen(m) == 1);
  }

  // A reset the request and it went nowhere else: the client has the 502.
  void check_not_retried(const Send& send) {
    std::string m;
    Response r = first_on_a(send, &m);
    INFO(r.error << "\n" << berth->log());
    check_berth_error(r, 502, "upstream-reset");
    CHECK(b.seen(m) == 0);
  }
};

}  // namespace

TEST_CASE("retry body: a Content-Length body is replayed to the next instance after a reset", "[retry_body]") {
  TwoOrigins o("");
  o.check_replayed(with_length("PUT", "reset_on=A", body_of(4096, 1)), body_of(4096, 1));
  CHECK(stats_counter(o.berth->admin_port(), "upstream_retries") >= 1);
}

TEST_CASE("retry body: a chunked body is replayed, chunked again", "[retry_body]") {
  TwoOrigins o("");
  o.check_replayed(with_chunks("PUT", "reset_on=A", body_of(4096, 2), 700), body_of(4096, 2));
  CHECK(o.b.seen("Transfer-Encoding: chunked") >= 1);  // B got a chunked request, as A did
  CHECK(o.b.seen("Content-Length") == 0);
  // An empty chunked body: only the last chunk to send again.
  o.check_replayed(with_chunks("DELETE", "reset_on=A", "", 1), "");
}

TEST_CASE("retry body: a body still streaming is replayed, then the rest follows", "[retry_body]") {
  TwoOrigins o("");
  // A resets after part of what berth forwarded; the rest reaches berth only after the retry.
  SECTION("Content-Length") {
    o.check_replayed(with_length("PUT", "reset_on=A&reset_after=1024", body_of(6000, 3), 2048), body_of(6000, 3));
  }
  SECTION("chunked") {
    o.check_replayed(with_chunks("PUT", "reset_on=A&reset_after=100", body_of(6000, 4), 999, 1500), body_of(6000, 4));
  }
}

TEST_CASE("retry body: POST is retried with its body only with retry.non_idempotent", "[retry_body]") {
  const std::string body = body_of(4096, 6);
  SECTION("non_idempotent: false (the default) -> 502") {
    TwoOrigins o("non_idempotent: false");
    o.check_not_retried(with_length("POST", "reset_on=A", body));
  }
  SECTION("non_idempotent: true -> retried with the body") {
    TwoOrigins o("non_idempotent: true");
    o.check_replayed(with_length("POST", "reset_on=A", body), body);
    o.check_replayed(with_chunks("POST", "reset_on=A&reset_after=100", body, 999, 1500), body);
  }
}

TEST_CASE("retry body: a body over replay_body_bytes is not retried", "[retry_body]") {
  TwoOrigins o("replay_body_bytes: 1024");
  const std::string body = body_of(4096, 7);
  SECTION("Content-Length") { o.check_not_retried(with_length("PUT", "reset_on=A", body)); }
  SECTION("chunked, over the bound only after some chunks") {
    o.check_not_retried(with_chunks("PUT", "reset_on=A", body, 512));
  }
  SECTION("exactly the bound is still replayed") {
    o.check_replayed(with_chunks("PUT", "reset_on=A", body_of(1024, 8), 300), body_of(1024, 8));
    o.check_replayed(with_length("PUT", "reset_on=A", body_of(1024, 9)), body_of(1024, 9));
  }
}

TEST_CASE("retry body: a connect failure before any body byte still retries a large body", "[retry_body]") {
  Origin b("B");
  REQUIRE(b.ok());
  const std::string dead = "127.0.0.1:" + std::to_string(unused_port());
  Berth berth(config_head(1) + service_yaml({dead, b.address()}, "replay_body_bytes: 1024"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string body = body_of(200 * 1024, 10);
  // Round robin may start at either: until one request met the dead instance first.
  for (int i = 0; i < 4 && stats_counter(berth.admin_port(), "upstream_connect_failures") == 0; ++i) {
    Client c(berth.port());
    Response r = c.request(make_request("PUT", "/echo_body", "retry.test", {}, body));
    INFO(r.error << "\n" << r.raw_head << "\n" << berth.log());
    REQUIRE(r.status == 200);
    CHECK(r.body == body);
  }
  CHECK(stats_counter(berth.admin_port(), "upstream_connect_failures") >= 1);
}

TEST_CASE("retry body: reset, then a failed connect, then the body goes to a third instance", "[retry_body]") {
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  const std::string dead = "127.0.0.1:" + std::to_string(unused_port());
  Berth berth(config_head(1) + service_yaml({a.address(), dead, b.address()}, "attempts: 3"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string body = body_of(3000, 11);
  const Send send = with_length("PUT", "reset_on=A&reset_after=500", body, 1000);
  bool met_all = false;
  for (int i = 0; i < 6 && !met_all; ++i) {
    const uint64_t failures = stats_counter(berth.admin_port(), "upstream_connect_failures");
    const std::string m = marker("RB");
    Client c(berth.port());
    Response r = send(c, m);
    INFO(r.error << "\n" << r.raw_head << "\n" << berth.log());
    REQUIRE(r.status == 200);
    CHECK(r.header("x-origin-name") == "B");
    CHECK(r.body == body);
    met_all = a.seen(m) == 1 && stats_counter(berth.admin_port(), "upstream_connect_failures") > failures;
  }
  CHECK(met_all);
}

TEST_CASE("retry: a response timeout on a reused connection is not sent again to the same instance",
          "[retry_body]") {
  // One instance, kept-alive connections, retries on response timeouts for any method. The slow
  // instance saw the request: sending it again there would run a POST twice (and the client would
  // wait twice the timeout). Only a reset on a reused connection says it was stale.
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1, "upstream_response: 1s") +
              service_yaml({a.address()}, "attempts: 3, on_response_timeout: true, non_idempotent: true"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (const char* method : {"POST", "GET"}) {
    INFO(method);
    Client c(berth.port(), 10s);
    REQUIRE(c.connected());
    REQUIRE(c.get("/warm", "retry.test").status == 200);  // leaves a pooled connection
    const std::string m = marker("SLOW");
    const auto t0 = Clock::now();
    const Response r = c.request(std::string(method) + " /x?delay_ms=1500&m=" + m +
                                 " HTTP/1.1\r\nHost: retry.test\r\nContent-Length: 8\r\n\r\ncharge=1");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 504);
    CHECK(seconds_since(t0) < 1.8);
    std::this_thread::sleep_for(700ms);  // the origin's sleep ends; a second copy would be seen
    CHECK(a.seen(m) == 1);
  }
}

TEST_CASE("retry: a retry after a reload goes only to an instance the reload kept", "[retry_body]") {
  // A request on A (which resets after a while) started on the snapshot listing A, B and C; a
  // reload meanwhile keeps A, drops B and C and adds D. The retry runs on the request's own
  // snapshot, where only B and C are left to try, and both are out of the service now (another
  // service lists them: still not this one's): the client gets A's reset. D is not the older
  // snapshot's to give.
  Origin a("A"), b("B"), c("C"), d("D");
  REQUIRE((a.ok() && b.ok() && c.ok() && d.ok()));
  const std::string head = config_head(1);
  Berth berth(head + service_yaml({a.address(), b.address(), c.address()}, "attempts: 3"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  // The worker's rotation is a fixed cycle over the three (equal weights): learn it, then send
  // plain requests until A is next.
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) order.push_back(http_get(berth.port(), "/x", "retry.test").header("x-origin-name").value_or("?"));
  std::vector<std::string> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(sorted == std::vector<std::string>{"A", "B", "C"});
  const auto at_a = std::find(order.begin(), order.end(), "A") - order.begin();
  for (long i = 0; i < at_a; ++i) REQUIRE(http_get(berth.port(), "/x", "retry.test").status == 200);

  const std::string m = marker("RLD");
  Response r;
  std::thread client([&] {
    r = http_get(berth.port(), "/x?reset_on=A&reset_delay_ms=2000&m=" + m, "retry.test");
  });
  const bool on_a = wait_until([&] { return a.seen(m) == 1; }, 1s, 10ms);
  bool reloaded = false;
  if (on_a) {
    REQUIRE(berth.rewrite_config(head + service_yaml({a.address(), d.address()}, "attempts: 3") +
                                 "  t: {endpoints: [\"" + b.address() + "\", \"" + c.address() + "\"]}\n"));
    REQUIRE(berth.process().signal(SIGHUP));
    reloaded = wait_until([&] {
      return http_get(berth.admin_port(), "/api/routes", "localhost").body.find(d.address()) != std::string::npos;
    }, 1s, 10ms);
  }
  client.join();
  REQUIRE(on_a);
  REQUIRE(reloaded);  // within A's 2 s, before its reset
  INFO(r.error << "\n" << r.raw_head << "\n" << berth.log());
  check_berth_error(r, 502, "upstream-reset");
  CHECK(b.seen(m) == 0);
  CHECK(c.seen(m) == 0);
  CHECK(d.seen(m) == 0);
}

TEST_CASE("retry: a pooled connection the instance closed is re-sent there, outside attempts and the budget",
          "[retry_body]") {
  // The instance resets a kept-alive connection 300 ms after its answer, without reading the
  // request Berth sent on it meanwhile: a server closing idle connections on its own. That says
  // nothing about the instance, so even with no retry allowed (one attempt; or a budget of none)
  // the request goes to it again on a new connection, instead of a 502.
  Origin a("A");
  REQUIRE(a.ok());
  for (const char* retry : {"attempts: 1", "attempts: 3, budget_percent: 0, min_retries: 0"}) {
    INFO(retry);
    Berth berth(config_head(1) + service_yaml({a.address()}, retry));
    INFO(berth.error());
    REQUIRE(berth.ok());
    Client c(berth.port(), 10s);
    REQUIRE(c.connected());
    REQUIRE(c.get("/warm?stale_after_ms=300", "retry.test").status == 200);  // leaves a pooled connection
    const std::string m = marker("STALE");
    const Response r = c.get("/x?m=" + m, "retry.test");
    INFO(r.raw_head << r.error << "\n" << tail(berth.log()));
    CHECK(r.status == 200);
    CHECK(r.header("x-origin-name") == std::optional<std::string>("A"));
    CHECK(a.seen(m) == 1);
    CHECK(stats_counter(berth.admin_port(), "upstream_retries") == 1);
    // A request with a body too: its copy is kept for the re-send, with one attempt as well.
    REQUIRE(c.get("/warm?stale_after_ms=300", "retry.test").status == 200);
    const std::string mp = marker("STALE-PUT");
    const Response p = c.request(make_request("PUT", "/echo_body?m=" + mp, "retry.test", {}, "the body, sent twice"));
    INFO(p.raw_head << p.error << "\n" << tail(berth.log()));
    CHECK(p.status == 200);
    CHECK(p.body == "the body, sent twice");
    CHECK(a.seen(mp) == 1);
    CHECK(stats_counter(berth.admin_port(), "upstream_retries") == 2);
    CHECK(stats_counter(berth.admin_port(), "retry_budget_exhausted") == 0);
  }

  // A reload while the request waits on the stale connection: the instance is still listed, so
  // the re-send still goes to it (the request's snapshot is the older one then).
  Berth berth(config_head(1) + service_yaml({a.address()}, "attempts: 1"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  Client c(berth.port(), 10s);
  REQUIRE(c.connected());
  REQUIRE(c.get("/warm?stale_after_ms=1000", "retry.test").status == 200);
  const std::string m = marker("STALE-HUP");
  Response r;
  std::thread waiting([&] { r = c.get("/x?m=" + m, "retry.test"); });
  REQUIRE(wait_until([&] { return stats_counter(berth.admin_port(), "upstream_reuses") >= 1; }, 2s, 10ms));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(berth.log_shows("event=config_reloaded", 2s));
  waiting.join();
  INFO(r.raw_head << r.error << "\n" << tail(berth.log()));
  CHECK(r.status == 200);
  CHECK(a.seen(m) == 1);
}
