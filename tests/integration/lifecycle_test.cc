// Process lifecycle: SIGHUP reloads, SIGTERM drains, --check-config, an address in use.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <regex>
#include <atomic>
#include <thread>

#include "env.h"

using namespace it;

namespace {

std::string routes_yaml(const Origin& a, const Origin& b, bool with_new_route) {
  std::string y =
      "routes:\n"
      "  - {name: r-a, host: \"a.test\", service: s-a}\n";
  if (with_new_route) y += "  - {name: r-new, host: \"new.test\", service: s-b}\n";
  y += "services:\n"
       "  s-a: {endpoints: [\"" + a.address() + "\"]}\n"
       "  s-b: {endpoints: [\"" + b.address() + "\"]}\n";
  return y;
}

std::string find_line(const std::string& log, const std::string& needle) {
  size_t p = log.find(needle);
  if (p == std::string::npos) return {};
  size_t s = log.rfind('\n', p);
  s = s == std::string::npos ? 0 : s + 1;
  size_t e = log.find('\n', p);
  return log.substr(s, e == std::string::npos ? std::string::npos : e - s);
}

// A config with one listener (`listener`: its YAML flow mapping or quoted address), one worker
// and a.test routed to `o`.
std::string one_listener_yaml(const std::string& listener, const Origin& o, const std::string& timeouts) {
  return "listeners: [" + listener + "]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n"
         "timeouts: {" + timeouts + "}\n"
         "routes:\n  - {host: \"a.test\", service: s-o}\n"
         "services:\n  s-o: {endpoints: [\"" + o.address() + "\"]}\n";
}

// Routes and services sending a.test (route r-o) to `o`.
std::string a_test_to(const Origin& o) {
  return "routes:\n  - {name: r-o, host: \"a.test\", service: s-o}\n"
         "services:\n  s-o: {endpoints: [\"" + o.address() + "\"]}\n";
}

// The bed of the slow-client cases: an origin for a.test behind a Berth with one worker,
// keepalive_idle 1s, write_buffer_bytes `wbuf` (the default when empty) and debug logging.
struct SlowClientBed {
  Origin o{"O"};
  std::unique_ptr<Berth> berth;
  explicit SlowClientBed(const std::string& wbuf = "") {
    REQUIRE(o.ok());
    berth = std::make_unique<Berth>(
        config_head(1, "keepalive_idle: 1s", wbuf.empty() ? "" : "write_buffer_bytes: " + wbuf) + a_test_to(o), 0,
        std::vector<std::string>{"--log-level", "debug"});
    INFO(berth->error());
    REQUIRE(berth->ok());
  }
};

// Shrinks a client's receive buffer, so that the kernel takes little for it while it reads nothing.
void shrink_receive_buffer(Client& c, int bytes) {
  REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0);
}

// Waits until Berth has accepted `n` connections more than `before` (its connections_accepted).
bool accepted(Berth& berth, uint64_t before, uint64_t n = 1) {
  return wait_until([&] { return stats_counter(berth.admin_port(), "connections_accepted") >= before + n; }, 5s, 10ms);
}

// SIGTERM, then waits until the drain has begun (its log line, and a moment for the worker).
void sigterm_and_wait_draining(Berth& berth) {
  REQUIRE(berth.process().signal(SIGTERM));
  REQUIRE(berth.log_shows("event=draining"));
  std::this_thread::sleep_for(200ms);
}

}  // namespace

TEST_CASE("SIGHUP reloads routes, a broken file is rejected and the old routes keep serving",
          "[lifecycle]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string head = config_head(2);  // 3 lines
  Berth berth(head + routes_yaml(a, b, false));
  INFO(berth.error());
  REQUIRE(berth.ok());

  Client keep(berth.port());
  REQUIRE(keep.connected());
  Response r = keep.get("/before", "a.test");
  INFO(r.raw_head << r.error);
  REQUIRE(r.status == 200);
  r = http_get(berth.port(), "/x", "new.test");
  CHECK(r.status == 404);

  // 1. A good new config.
  REQUIRE(berth.rewrite_config(head + routes_yaml(a, b, true)));
  REQUIRE(berth.process().signal(SIGHUP));
  Response last;
  bool reloaded = wait_until(
      [&] {
        last = http_get(berth.port(), "/x", "new.test");
        return last.status == 200;
      },
      5s, 50ms);
  INFO("last new.test response: " << last.raw_head << last.error << "\nlog:\n" << tail(berth.log()));
  REQUIRE(reloaded);
  CHECK(last.header("x-origin-name") == std::optional<std::string>("B"));
  CHECK(last.body == "origin=B path=/x\n");
  r = keep.get("/after-reload", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "origin=A path=/after-reload\n");

  // 2. A broken config (unknown key on line 4).
  REQUIRE(berth.rewrite_config(head + "bogus_key: 1\n" + routes_yaml(a, b, false)));
  REQUIRE(berth.process().signal(SIGHUP));
  bool failed_logged = berth.log_shows("event=config_reload_failed");
  INFO("log:\n" << tail(berth.log()));
  REQUIRE(failed_logged);
  std::string line = find_line(berth.log(), "event=config_reload_failed");
  INFO("reload failure line: " << line);
  CHECK(line.find(berth.config_path() + ":4") != std::string::npos);
  // The old (second) configuration keeps serving, including the route the broken file lacks.
  std::this_thread::sleep_for(200ms);
  r = http_get(berth.port(), "/still", "new.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.header("x-origin-name") == std::optional<std::string>("B"));
  r = http_get(berth.port(), "/still", "a.test");
  CHECK(r.status == 200);
  r = keep.get("/after-failed-reload", "a.test");
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(berth.running());
}

TEST_CASE("SIGHUP: docker, registry and admin settings wait for a restart, and the log says so", "[lifecycle]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string head = config_head(1);
  Berth berth(head + routes_yaml(a, b, false));
  INFO(berth.error());
  REQUIRE(berth.ok());
  // Discovery that would fail at once if it started (nothing listens there); the new route
  // shows the rest of the file was taken.
  // And the admin listener turned off: it stays (a restart would close it).
  std::string next_head = head;
  const std::string admin_line = "admin: {address: \"127.0.0.1:0\"}";
  REQUIRE(next_head.find(admin_line) != std::string::npos);
  next_head.replace(next_head.find(admin_line), admin_line.size(), "admin: {enabled: false, address: \"127.0.0.1:0\"}");
  REQUIRE(berth.rewrite_config(next_head + routes_yaml(a, b, true) +
                               "docker: {enabled: true, endpoint: \"unix:///nonexistent/docker.sock\"}\n"
                               "registry: {etcd: [\"http://127.0.0.1:1\"], role: front}\n"));
  REQUIRE(berth.process().signal(SIGHUP));
  INFO(tail(berth.log()));
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "new.test").status == 200; }, 5s));
  // The log is written by its own thread: wait for the line rather than read once.
  CHECK(wait_until([&] {
    return find_line(berth.log(), "event=config_restart_needed").find("docker and registry settings change only on restart") !=
           std::string::npos;
  }, 5s));
  CHECK(wait_until([&] {
    return berth.log().find("the admin listener (address, enabled) changes only on restart") != std::string::npos;
  }, 5s));
  CHECK(http_get(berth.admin_port(), "/readyz", "127.0.0.1").status == 200);  // no source started
  CHECK(berth.log().find("docker_") == std::string::npos);
  // Not only in the log: /api/status and the reload's event say what waits for a restart.
  auto status = nlohmann::json::parse(http_get(berth.admin_port(), "/api/status", "127.0.0.1").body, nullptr, false);
  REQUIRE(status.is_object());
  INFO(status["restart_needed"].dump());
  REQUIRE(status["restart_needed"].size() == 2);
  CHECK(status["restart_needed"][0] == "docker and registry settings change only on restart");
  auto events = nlohmann::json::parse(http_get(berth.admin_port(), "/api/events", "127.0.0.1").body, nullptr, false);
  std::string reloaded;
  for (const auto& e : events["events"])
    if (e.value("type", "") == "config_reloaded") reloaded = e.value("restart_needed", "");
  CHECK(reloaded.find("docker and registry settings change only on restart; the admin listener") == 0);

  // The file back as what runs: nothing waits any more.
  REQUIRE(berth.rewrite_config(head + routes_yaml(a, b, true)));
  REQUIRE(berth.process().signal(SIGHUP));
  CHECK(wait_until([&] {
    auto s = nlohmann::json::parse(http_get(berth.admin_port(), "/api/status", "127.0.0.1").body, nullptr, false);
    return s.is_object() && s["restart_needed"].is_array() && s["restart_needed"].empty();
  }, 5s));
  CHECK(berth.running());
}

TEST_CASE("SIGHUP: the same listeners in another order need no restart; a restart's reason says what changed",
          "[lifecycle]") {
  Origin a("A");
  REQUIRE(a.ok());
  const uint16_t p1 = unused_port(), p2 = unused_port();
  REQUIRE((p1 && p2 && p1 != p2));
  const std::string l1 = "\"127.0.0.1:" + std::to_string(p1) + "\"", l2 = "\"127.0.0.1:" + std::to_string(p2) + "\"";
  auto yaml = [&](const std::string& listeners, int workers, const std::string& host) {
    return "listeners: [" + listeners + "]\nworkers: " + std::to_string(workers) +
           "\nadmin: {address: \"127.0.0.1:0\"}\nroutes:\n  - {host: " + host + ", service: s}\nservices:\n  s: {endpoints: [\"" +
           a.address() + "\"]}\n";
  };
  Berth berth(yaml(l1 + ", " + l2, 2, "one.test"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(berth.rewrite_config(yaml(l2 + ", " + l1, 2, "two.test")));
  REQUIRE(berth.process().signal(SIGHUP));
  INFO(tail(berth.log()));
  REQUIRE(wait_until([&] { return http_get(p1, "/", "two.test").status == 200 && http_get(p2, "/", "two.test").status == 200; }, 5s));
  CHECK_FALSE(berth.log_shows("event=config_restart_needed", 1s));  // the log is written in batches
  REQUIRE(berth.rewrite_config(yaml(l1, 3, "three.test")));
  REQUIRE(berth.process().signal(SIGHUP));
  CHECK(berth.log_shows("listeners removed (127.0.0.1:" + std::to_string(p2) + ") change only on restart"));
  CHECK(berth.log_shows("workers (2 running, 3 in the file) change only on restart"));
  CHECK(wait_until([&] { return http_get(p2, "/", "three.test").status == 200; }, 5s));  // it still serves
}

TEST_CASE("SIGTERM drains an in-flight request, refuses new connections, exits 0",
          "[lifecycle]") {
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(config_head(1, "drain: 10s") + a_test_to(o));
  INFO(berth.error());
  REQUIRE(berth.ok());

  std::string m = marker("DRAIN");
  Client slow(berth.port());
  REQUIRE(slow.connected());
  REQUIRE(slow.send(make_request("GET", "/slow?delay_ms=1500&" + m, "a.test")));
  REQUIRE(wait_until([&] { return o.seen(m) == 1; }, 3s, 10ms));

  auto t0 = Clock::now();
  REQUIRE(berth.process().signal(SIGTERM));
  std::this_thread::sleep_for(300ms);
  // A SIGHUP while draining (kill -HUP $(pidof berth) during a hand-over) is ignored, not fatal.
  REQUIRE(berth.process().signal(SIGHUP));
  CHECK(berth.log_shows("event=reload_ignored reason=draining", 3s));

  // New connections are refused once the drain started.
  {
    Client fresh(berth.port(), 2s);
    if (fresh.connected()) {
      fresh.send(make_request("GET", "/new", "a.test"));
      Response nr = fresh.read_response();
      INFO("new connection during drain got: " << nr.raw_head << nr.error);
      CHECK(nr.status == 0);
      // Refused means closed or reset, not accepted-and-ignored.
      CHECK(nr.error.find("timeout") == std::string::npos);
    } else {
      CHECK(fresh.connect_errno() == ECONNREFUSED);
    }
  }

  Response r = slow.read_response();
  INFO(r.raw_head << r.error << "\nlog:\n" << tail(berth.log()));
  CHECK(r.status == 200);
  CHECK(r.body == "origin=O path=/slow\n");

  auto st = berth.process().wait_exit(10s);
  INFO("exit: " << (st ? describe_status(*st) : "still running after 10 s") << "\nlog:\n"
                << tail(berth.log()));
  CHECK(exited_with(st, 0));
  double took = seconds_since(t0);
  CHECK(took >= 1.0);  // it waited for the slow response
  CHECK(took < 10.0);
}

TEST_CASE("SIGTERM: a response still in Berth's buffers is delivered whole before its connection closes",
          "[lifecycle]") {
  // The instance's whole answer (16 MB) is in Berth, the client has read none of it, and the
  // connection is between requests: the drain must let the answer's tail out, not close it.
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(config_head(1, "drain: 10s", "write_buffer_bytes: 32MiB") + a_test_to(o),
              0, std::vector<std::string>{"--log-level", "debug"});
  INFO(berth.error());
  REQUIRE(berth.ok());
  Client c(berth.port());
  REQUIRE(c.connected());
  c.set_timeout(10s);
  shrink_receive_buffer(c, 64 * 1024);
  REQUIRE(c.send(make_request("GET", "/big?size=16000000", "a.test")));
  // Its record is written once the instance's last byte is in Berth.
  REQUIRE(berth.log_shows("event=exchange ", 10s));
  REQUIRE(berth.process().signal(SIGTERM));
  std::this_thread::sleep_for(300ms);  // the drain has looked at the connection
  Response r = c.read_response();
  INFO(r.raw_head << r.error);
  CHECK(r.status == 200);
  CHECK(r.body.size() == 16'000'000);
  auto st = berth.process().wait_exit(10s);
  INFO("exit: " << (st ? describe_status(*st) : "still running after 10 s") << "\nlog:\n" << tail(berth.log()));
  CHECK(exited_with(st, 0));
}

namespace {

// A client with a `rcvbuf` receive buffer asks a.test for `size` bytes and reads them, at most
// 64 KB at a time, calling pace(bytes just read) after each read (it sleeps there). Returns the
// head; *body gets the body bytes read (reads give up after 5 s without data). With `next`,
// the same connection then sends a second request, whose response goes there.
std::string read_paced(uint16_t port, size_t size, const std::function<void(size_t)>& pace, size_t* body,
                       int rcvbuf = 64 * 1024, Response* next = nullptr) {
  *body = 0;
  Client c(port);
  if (!c.connected()) return "<not connected>";
  const int small = rcvbuf;
  const timeval wait{5, 0};
  if (::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
      ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) != 0 ||
      !c.send(make_request("GET", "/big?size=" + std::to_string(size), "a.test")))
    return "<setup failed>";
  std::string head;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t n = ::recv(c.fd(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
    size_t used = 0;
    if (head.find("\r\n\r\n") == std::string::npos) {
      head.append(buf.data(), static_cast<size_t>(n));
      const size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      *body += head.size() - (end + 4);
      head.resize(end + 4);
      used = static_cast<size_t>(n);
    }
    *body += static_cast<size_t>(n) - used;
    if (*body >= size) break;
    pace(static_cast<size_t>(n));
  }
  if (next) *next = c.request(make_request("GET", "/again", "a.test"));
  return head;
}

}  // namespace

TEST_CASE("keepalive_idle does not cut a response's tail that a slow client is still reading", "[lifecycle]") {
  // keepalive_idle 1s, and a 16 MB answer all in Berth, read at about 5 MB/s: the idle time
  // runs from the tail's last progress, not from when the instance finished.
  SlowClientBed bed("32MiB");
  Berth& berth = *bed.berth;
  size_t body = 0;
  const auto t0 = Clock::now();
  // About 64 KB per 12 ms: some 3 s in all.
  const std::string head = read_paced(berth.port(), 16'000'000, [](size_t) { std::this_thread::sleep_for(12ms); }, &body);
  INFO(head);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body == 16'000'000);
  CHECK(seconds_since(t0) > 1.5);  // it did outlast keepalive_idle
}

TEST_CASE("a client that reads nothing of a response in flight is cut off after keepalive_idle", "[lifecycle]") {
  // The instance sends 64 MB; Berth holds at most write_buffer_bytes for the client and stops
  // reading the instance. A client that then takes nothing for keepalive_idle must not hold
  // both connections for ever: the exchange ends with cause response-send-timeout.
  SlowClientBed bed("64KiB");
  Berth& berth = *bed.berth;
  Client c(berth.port());
  REQUIRE(c.connected());
  shrink_receive_buffer(c, 16 * 1024);
  const auto t0 = Clock::now();
  REQUIRE(c.send(make_request("GET", "/big?size=64000000", "a.test")));
  const bool cut = berth.log_shows("event=exchange ", 15s);
  const double took = seconds_since(t0);
  INFO("log:\n" << tail(berth.log()));
  REQUIRE(cut);
  CHECK(took >= 1.0);  // not before keepalive_idle
  CHECK(berth.log_shows("event=response_send_timeout"));
  CHECK(berth.log_shows("cause=response-send-timeout"));
  // Both sides are freed: the instance's connection is closed, not pooled, and the client's.
  CHECK(wait_until([&] { return metric_sample(berth.admin_port(), "berth_open_connections{side=\"upstream\"}") == 0; },
                   5s, 20ms));
  CHECK(wait_until([&] { return metric_sample(berth.admin_port(), "berth_open_connections{side=\"client\"}") == 0; },
                   5s, 20ms));
  CHECK(c.wait_closed(5s));
}

TEST_CASE("a client that sends all of its body before it reads gets an answer that came early, whole",
          "[lifecycle]") {
  // The instance answers at once, before it reads the body (Connection: close), or Berth itself
  // refuses the body (413); the client uploads 8 MB over some 3 s, longer than keepalive_idle
  // (1s) and than a linger (2 s), then half-closes, then reads. What it still sends is the rest
  // of a request, read and discarded: it is not a client that takes nothing. Both ways the
  // answer can wait: an answer larger than the client's receive buffer waits in Berth; a small
  // one is all in the kernel, and Berth lingers on it.
  auto upload_then_read = [](Berth& berth, const std::string& target) {
    Client c(berth.port());
    REQUIRE(c.connected());
    constexpr size_t kBody = 8'000'000, kPiece = 64 * 1024;
    REQUIRE(c.send("POST " + target + " HTTP/1.1\r\nHost: a.test\r\nContent-Length: " + std::to_string(kBody) +
                   "\r\n\r\n"));
    const std::string piece = pattern(0, kPiece);
    const auto t0 = Clock::now();
    size_t sent = 0;
    while (sent < kBody) {
      const size_t n = std::min(kPiece, kBody - sent);
      if (!c.send(std::string_view(piece).substr(0, n))) break;
      sent += n;
      std::this_thread::sleep_for(25ms);  // 122 pieces: some 3 s
    }
    INFO("uploaded " << sent << " bytes in " << seconds_since(t0) << " s: " << c.error() << "\nlog:\n"
                     << tail(berth.log()));
    CHECK(sent == kBody);
    c.shutdown_write();
    Response r = c.read_response();
    INFO(r.raw_head << r.error);
    return r;
  };
  SlowClientBed bed("64KiB");
  Berth& berth = *bed.berth;
  for (const size_t size : {1'000'000u, 40'000u}) {
    INFO("answer of " << size << " bytes");
    Response r = upload_then_read(berth, "/up?respond_first=1&size=" + std::to_string(size));
    CHECK(r.status == 200);
    CHECK(r.body.size() == size);
    CHECK(byte_sum(r.body) == pattern_sum(size));
  }
  CHECK(berth.log().find("event=response_send_timeout") == std::string::npos);

  Berth refusing(config_head(1, "keepalive_idle: 1s", "max_body_bytes: 1000") + a_test_to(bed.o));
  INFO(refusing.error());
  REQUIRE(refusing.ok());
  Response r = upload_then_read(refusing, "/up");
  CHECK(r.status == 413);
  CHECK(r.header("x-berth-error") == std::optional<std::string>("body-too-large"));
}

TEST_CASE("a client reading a response in flight with pauses shorter than keepalive_idle gets all of it",
          "[lifecycle]") {
  // keepalive_idle 1s and write_buffer_bytes 64KiB: the instance is held back most of the time,
  // and the client reads 512 KB, then nothing for 700 ms, again and again (some 6 s in all).
  // Its reads are progress: it is never cut.
  SlowClientBed bed("64KiB");
  Berth& berth = *bed.berth;
  constexpr size_t kSize = 4'000'000;
  size_t body = 0, burst = 0;
  const auto t0 = Clock::now();
  const std::string head = read_paced(
      berth.port(), kSize,
      [&](size_t n) {
        burst += n;
        if (burst < 512 * 1024) return;
        burst = 0;
        std::this_thread::sleep_for(700ms);
      },
      &body);
  INFO(head);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body == kSize);
  CHECK(seconds_since(t0) > 2.0);  // it did outlast keepalive_idle
}

TEST_CASE("a client reading a response in flight slowly and steadily is not cut off", "[lifecycle]") {
  // keepalive_idle 1s, write_buffer_bytes 64KiB, and a client that reads about 1 MB/s without
  // pause, 6 MB in all. The first 4 MB or so fill the kernel's buffers and Berth holds the
  // instance back; from then on the kernel signals room only once a third of its send buffer
  // (grown to 4 MiB) is free: for this reader, longer than keepalive_idle without any write
  // completing. What it reads is progress all the same.
  SlowClientBed bed("64KiB");
  Berth& berth = *bed.berth;
  constexpr size_t kSize = 6'000'000;
  size_t body = 0;
  const auto t0 = Clock::now();
  const std::string head = read_paced(
      berth.port(), kSize, [](size_t n) { std::this_thread::sleep_for(std::chrono::microseconds(n)); }, &body);
  INFO(head << "\nlog:\n" << tail(berth.log()));
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body == kSize);
  CHECK(seconds_since(t0) > 3.0);  // it did outlast keepalive_idle
  CHECK(berth.log().find("event=response_send_timeout") == std::string::npos);
}

TEST_CASE("a slow steady reader keeps its connection while the kernel still holds the tail", "[lifecycle]") {
  // keepalive_idle 1s, and a 6 MB answer read at about 1 MB/s: Berth hands its last bytes to
  // the kernel seconds before the client has read them. Those seconds are progress too: the
  // connection stays open, and the next request on it is answered.
  SlowClientBed bed;
  Berth& berth = *bed.berth;
  constexpr size_t kSize = 6'000'000;
  size_t body = 0;
  Response next;
  const std::string head = read_paced(
      berth.port(), kSize, [](size_t n) { std::this_thread::sleep_for(std::chrono::microseconds(n)); }, &body,
      64 * 1024, &next);
  INFO(head << next.raw_head << next.error);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body == kSize);
  CHECK(next.status == 200);
}

TEST_CASE("a client that asked for Connection: close and reads nothing of the answer is cut off", "[lifecycle]") {
  // The whole 8 MB answer is in Berth (write_buffer_bytes 32MiB): the exchange is over and the
  // connection closes once it is sent. A client that reads none of it must not hold it for ever:
  // keepalive_idle without progress cuts it, as between requests.
  SlowClientBed bed("32MiB");
  Berth& berth = *bed.berth;
  Client c(berth.port());
  REQUIRE(c.connected());
  shrink_receive_buffer(c, 16 * 1024);
  REQUIRE(c.send(make_request("GET", "/big?size=8000000", "a.test", {"Connection: close"})));
  std::this_thread::sleep_for(500ms);
  CHECK(metric_sample(berth.admin_port(), "berth_open_connections{side=\"client\"}") == 1);
  CHECK(wait_until([&] { return metric_sample(berth.admin_port(), "berth_open_connections{side=\"client\"}") == 0; },
                   6s, 50ms));
  CHECK(berth.log_shows("event=response_send_timeout"));
  // The cut is a reset: read now, the answer does not end as if it were whole (a body that runs
  // until the close, as HTTP/1.0 has, would otherwise look complete).
  char buf[65536];
  ssize_t n = 0;
  size_t got = 0;
  while ((n = ::recv(c.fd(), buf, sizeof buf, 0)) > 0) got += static_cast<size_t>(n);
  INFO("read " << got << " bytes, then " << (n == 0 ? "a clean end" : std::strerror(errno)));
  CHECK(n < 0);
  CHECK(errno == ECONNRESET);
}

TEST_CASE("SIGTERM with nothing in flight exits 0 promptly", "[lifecycle]") {
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(config_head(2) +
              "routes:\n  - {host: \"a.test\", service: s-o}\n"
              "services:\n  s-o: {endpoints: [\"" + o.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  // An idle keep-alive connection must not hold the drain up.
  Client idle(berth.port());
  REQUIRE(idle.connected());
  REQUIRE(idle.get("/x", "a.test").status == 200);
  auto t0 = Clock::now();
  REQUIRE(berth.process().signal(SIGTERM));
  auto st = berth.process().wait_exit(10s);
  INFO("exit: " << (st ? describe_status(*st) : "still running after 10 s") << "\nlog:\n"
                << tail(berth.log()));
  CHECK(exited_with(st, 0));
  CHECK(seconds_since(t0) < 3.0);
  CHECK(idle.wait_closed(1s));
}

namespace {

// The response of a connection that drains: the whole answer, marked Connection: close, then EOF.
void check_last_response(Client& c, const std::string& path, Berth& berth) {
  Response r = c.read_response();
  INFO("response to " << path << ": " << r.raw_head << r.error << "\nlog:\n" << tail(berth.log()));
  CHECK(r.status == 200);
  CHECK(r.body == "origin=O path=" + path + "\n");
  CHECK(lower(r.header("connection").value_or("")) == "close");
  std::string after;
  CHECK(c.wait_closed(3s, &after));
  CHECK(after.empty());  // nothing more: a request pipelined after it is not answered
}

// The drain ends when its last connection closes: Berth exits 0 within `seconds` of t0.
void check_prompt_exit(Berth& berth, Clock::time_point t0, double seconds) {
  auto st = berth.process().wait_exit(10s);
  INFO("exit: " << (st ? describe_status(*st) : "still running after 10 s") << "\nlog:\n" << tail(berth.log()));
  CHECK(exited_with(st, 0));
  CHECK(seconds_since(t0) < seconds);
}

}  // namespace

TEST_CASE("SIGTERM: a connection accepted but not yet served gets its first request answered, then closes",
          "[lifecycle]") {
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(one_listener_yaml("\"127.0.0.1:0\"", o, "drain: 10s, request_header: 5s"));
  INFO(berth.error());
  REQUIRE(berth.ok());

  // Served once and idle between requests: closed as the drain begins.
  Client served(berth.port());
  REQUIRE(served.connected());
  REQUIRE(served.get("/first", "a.test").status == 200);
  const uint64_t before = stats_counter(berth.admin_port(), "connections_accepted");
  Client fresh(berth.port());  // accepted, nothing sent yet
  REQUIRE(fresh.connected());
  Client partial(berth.port());  // accepted, part of its first head sent
  REQUIRE(partial.connected());
  const std::string partial_req = make_request("GET", "/partial", "a.test");
  REQUIRE(partial.send(partial_req.substr(0, 10)));
  Client pipelined(berth.port());  // accepted; sends two requests at once after the SIGTERM
  REQUIRE(pipelined.connected());
  REQUIRE(accepted(berth, before, 3));

  const auto t0 = Clock::now();
  sigterm_and_wait_draining(berth);
  CHECK(served.wait_closed(2s));

  REQUIRE(fresh.send(make_request("GET", "/fresh", "a.test")));
  check_last_response(fresh, "/fresh", berth);
  REQUIRE(partial.send(partial_req.substr(10)));
  check_last_response(partial, "/partial", berth);
  REQUIRE(pipelined.send(make_request("GET", "/one", "a.test") + make_request("GET", "/two", "a.test")));
  check_last_response(pipelined, "/one", berth);
  check_prompt_exit(berth, t0, 5.0);  // the last of them closed: no wait for the drain timeout
}

TEST_CASE("SIGTERM: a client still uploading after its early answer does not hold the drain", "[lifecycle]") {
  // A 413 answered at once (the declared body is over max_body_bytes); the client goes on
  // sending a byte every 200 ms and reads nothing. Its answer has gone: the drain ends within
  // a linger (2 s), not at the 30 s bound of an upload's discard.
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(config_head(1, "keepalive_idle: 1s", "max_body_bytes: 1000") + a_test_to(o));
  INFO(berth.error());
  REQUIRE(berth.ok());
  Client c(berth.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n"));
  std::atomic<bool> stop{false};
  std::thread dribble([&] {
    for (int i = 0; i < 100 && !stop && c.send("x"); ++i) std::this_thread::sleep_for(200ms);
  });
  std::this_thread::sleep_for(600ms);  // the 413 is out; the client dribbles on
  const auto t0 = Clock::now();
  sigterm_and_wait_draining(berth);
  check_prompt_exit(berth, t0, 5.0);
  stop = true;
  dribble.join();
}

TEST_CASE("SIGTERM: a TLS connection accepted before it does its handshake after and is served",
          "[lifecycle][tls]") {
  TempDir dir;
  std::string made;
  INFO(made);
  REQUIRE(make_certificates(dir, {"ca"}, {{"server", "subjectAltName=DNS:a.test"}}, &made));
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(one_listener_yaml("{address: \"127.0.0.1:0\", tls: {certificates: [{cert: \"" + dir.file("server.crt") +
                                    "\", key: \"" + dir.file("server.key") + "\"}]}}",
                                o, "drain: 10s, request_header: 5s"));
  INFO(berth.error());
  REQUIRE(berth.ok());

  const uint64_t before = stats_counter(berth.admin_port(), "connections_accepted");
  Client tcp(berth.port());  // the TCP connection only: no ClientHello yet
  REQUIRE(tcp.connected());
  timeval tv{5, 0};
  ::setsockopt(tcp.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(accepted(berth, before));
  const auto t0 = Clock::now();
  sigterm_and_wait_draining(berth);

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx);
  SSL_CTX_load_verify_locations(ctx, dir.file("ca.crt").c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, tcp.fd());
  SSL_set_tlsext_host_name(ssl, "a.test");
  SSL_set1_host(ssl, "a.test");
  const bool handshake = SSL_connect(ssl) == 1;
  std::string response;
  if (handshake) {
    const std::string req = make_request("GET", "/tls", "a.test");
    CHECK(SSL_write(ssl, req.data(), static_cast<int>(req.size())) > 0);
    char buf[16384];
    for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;) response.append(buf, static_cast<size_t>(n));
  }
  const bool clean_close = (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0 || response.size() > 0;
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  INFO("response: " << response << "\nlog:\n" << tail(berth.log()));
  CHECK(handshake);
  CHECK(response.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(lower(response).find("\r\nconnection: close\r\n") != std::string::npos);
  CHECK(response.find("\r\n\r\norigin=O path=/tls\n") != std::string::npos);
  CHECK(clean_close);  // read until the server closed, not until the 5 s read timeout
  check_prompt_exit(berth, t0, 5.0);
}

TEST_CASE("SIGTERM: a connection waiting for its PROXY header is not served yet: it is answered after it",
          "[lifecycle][proxy_protocol]") {
  Origin o("O");
  REQUIRE(o.ok());
  Berth berth(one_listener_yaml("{address: \"127.0.0.1:0\", proxy_protocol: true}", o, "drain: 10s, request_header: 5s"));
  INFO(berth.error());
  REQUIRE(berth.ok());
  const uint64_t before = stats_counter(berth.admin_port(), "connections_accepted");
  Client c(berth.port());
  REQUIRE(c.connected());
  REQUIRE(accepted(berth, before));
  const auto t0 = Clock::now();
  sigterm_and_wait_draining(berth);
  REQUIRE(c.send("PROXY TCP4 203.0.113.7 127.0.0.1 56324 80\r\n" + make_request("GET", "/pp", "a.test")));
  check_last_response(c, "/pp", berth);
  check_prompt_exit(berth, t0, 5.0);
}

TEST_CASE("SIGTERM: a fresh connection that sends nothing is closed by its header timeout or the drain timeout",
          "[lifecycle]") {
  Origin o("O");
  REQUIRE(o.ok());
  struct Case {
    const char* what;
    const char* timeouts;
    double at_least, at_most;  // seconds from SIGTERM to exit
  };
  for (const Case& k : {Case{"request_header first", "drain: 10s, request_header: 1s", 0.3, 5.0},
                        Case{"drain timeout first", "drain: 1s, request_header: 30s", 0.8, 6.0}}) {
    INFO(k.what);
    Berth berth(one_listener_yaml("\"127.0.0.1:0\"", o, k.timeouts));
    INFO(berth.error());
    REQUIRE(berth.ok());
    const uint64_t before = stats_counter(berth.admin_port(), "connections_accepted");
    Client silent(berth.port());
    REQUIRE(silent.connected());
    REQUIRE(accepted(berth, before));
    const auto t0 = Clock::now();
    REQUIRE(berth.process().signal(SIGTERM));
    std::string got;
    CHECK(silent.wait_closed(8s, &got));
    CHECK(got.empty());  // closed without a word: it never asked for anything
    auto st = berth.process().wait_exit(10s);
    const double took = seconds_since(t0);
    INFO("exit: " << (st ? describe_status(*st) : "still running after 10 s") << " after " << took << " s\nlog:\n"
                  << tail(berth.log()));
    CHECK(exited_with(st, 0));
    CHECK(took >= k.at_least);
    CHECK(took < k.at_most);
  }
}

TEST_CASE("a burst of SIGHUPs makes a few reloads, not one each; the last file is taken", "[lifecycle]") {
  // 5,000 routes: a reload takes tens of ms, the burst's signals come 1 ms apart. One reload
  // per signal, back to back, held the control loop (the admin listener, the probes) for the
  // whole queue.
  Origin a("A");
  REQUIRE(a.ok());
  auto yaml = [&](bool late) {
    std::string y = config_head(2) + "routes:\n";
    for (int i = 0; i < 5000; ++i) y += "  - {host: h" + std::to_string(i) + ".test, service: s}\n";
    if (late) y += "  - {host: late.test, service: s}\n";
    return y + "services:\n  s: {endpoints: [\"" + a.address() + "\"]}\n";
  };
  Berth berth(yaml(false));
  INFO(berth.error());
  REQUIRE(berth.ok());
  for (int i = 0; i < 30; ++i) {
    if (i == 29) REQUIRE(berth.rewrite_config(yaml(true)));
    REQUIRE(berth.process().signal(SIGHUP));
    std::this_thread::sleep_for(1ms);
  }
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "late.test").status == 200; }, 10s, 50ms));
  std::this_thread::sleep_for(1s);
  const size_t reloads = occurrences(berth.log(), "event=config_reloaded");
  INFO(tail(berth.log()));
  CHECK(reloads >= 1);
  CHECK(reloads <= 5);
  CHECK(http_get(berth.admin_port(), "/healthz", "localhost").status == 200);
}

TEST_CASE("SIGHUP or SIGUSR1 while berth starts is held until it runs, never fatal", "[lifecycle]") {
  // Both kill a process that does not handle them. A script reloading or rotating logs right
  // after starting Berth must not kill it: the signal waits until the control loop handles it.
  // It is sent while Berth's main thread holds it blocked (/proc/PID/status SigBlk), i.e. after
  // main() began and before the loop is up; 3,000 routes make that window a few tens of ms.
  TempDir dir;
  std::string yaml = "listeners: [\"127.0.0.1:0\"]\nworkers: 2\nadmin: {address: \"127.0.0.1:0\"}\nroutes:\n";
  for (int i = 0; i < 3000; ++i) yaml += "  - {host: h" + std::to_string(i) + ".test, service: s}\n";
  yaml += "services:\n  s: {endpoints: [\"127.0.0.1:9\"]}\n";
  const std::string path = dir.file("early.yaml");
  REQUIRE(write_file(path, yaml));
  auto blocked = [](pid_t pid, int sig) {
    const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    const size_t at = status.find("SigBlk:");
    if (at == std::string::npos) return false;
    const unsigned long long mask = std::strtoull(status.c_str() + at + 7, nullptr, 16);
    return ((mask >> (sig - 1)) & 1) != 0;
  };
  int caught = 0;
  for (int attempt = 0; attempt < 12 && caught < 4; ++attempt) {
    const int sig = attempt % 2 ? SIGUSR1 : SIGHUP;
    INFO("attempt " << attempt << ", signal " << sig);
    Process p({BERTH_BINARY, "--config", path}, dir.file("out"), dir.file("err"));
    REQUIRE(p.started());
    bool in_window = false;
    const auto t0 = Clock::now();
    while (!in_window && seconds_since(t0) < 5 && p.running() && p.err().find("event=ready") == std::string::npos)
      in_window = blocked(p.pid(), sig);
    if (in_window) {
      ++caught;
      REQUIRE(p.signal(sig));
    }
    CHECK(wait_until([&] { return p.err().find("event=ready") != std::string::npos || !p.running(); }, 10s));
    INFO(p.err());
    CHECK(p.running());
    if (in_window && sig == SIGHUP)  // the reload it asked for ran once the loop was up
      CHECK(wait_until([&] { return p.err().find("event=config_reloaded") != std::string::npos; }, 5s));
    auto st = p.terminate();
    CHECK((st && exited_with(st, 0)));
  }
  CHECK(caught > 0);
}

TEST_CASE("an address already in use: berth says which and exits 1", "[lifecycle]") {
  // Held by this test: a listening socket without SO_REUSEPORT, so nobody else may bind it.
  const int held = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(held >= 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof at;
  REQUIRE(::bind(held, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
  REQUIRE(::listen(held, 1) == 0);
  REQUIRE(::getsockname(held, reinterpret_cast<sockaddr*>(&at), &len) == 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(at.sin_port));
  TempDir dir;
  const std::string services = "routes:\n  - {service: s}\nservices:\n  s: {endpoints: [\"127.0.0.1:9\"]}\n";
  // The admin listener opens after the workers are made: they must close cleanly (it aborted).
  for (const std::string& yaml : {"listeners: [\"127.0.0.1:0\"]\nworkers: 2\nadmin: {address: \"" + taken + "\"}\n" + services,
                                  "listeners: [\"" + taken + "\"]\nadmin: {address: \"127.0.0.1:0\"}\n" + services}) {
    const std::string path = dir.file("taken.yaml");
    REQUIRE(write_file(path, yaml));
    std::string out, err;
    auto st = run_berth({"--config", path}, &out, &err);
    INFO(yaml << "\nstdout: " << out << "\nstderr: " << err);
    CHECK(exited_with(st, 1));
    CHECK((out + err).find(taken) != std::string::npos);
  }
  ::close(held);
}

TEST_CASE("a second Berth on a port another listens on refuses; --share-listeners takes over", "[lifecycle]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string routes = "routes:\n  - {host: \"a.test\", service: s}\nservices:\n  s: {endpoints: [\"";
  Berth first(config_head(2) + routes + a.address() + "\"]}\n");
  INFO(first.error());
  REQUIRE(first.ok());
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  const std::string second_yaml = "listeners: [\"" + taken + "\"]\nworkers: 2\nadmin: {address: \"127.0.0.1:0\"}\n" +
                                  routes + b.address() + "\"]}\n";
  // Started by mistake next to the first: it would have joined the port (SO_REUSEPORT) and taken
  // a share of the connections. It refuses, naming the address.
  TempDir dir;
  const std::string path = dir.file("second.yaml");
  REQUIRE(write_file(path, second_yaml));
  std::string out, err;
  auto st = run_berth({"--config", path}, &out, &err);
  INFO("stdout: " << out << "\nstderr: " << err);
  CHECK(exited_with(st, 1));
  CHECK((out + err).find(taken) != std::string::npos);
  CHECK((out + err).find("another process listens there") != std::string::npos);
  for (int i = 0; i < 20; ++i) {
    Client c(first.port());
    REQUIRE(c.connected());
    CHECK(c.get("/x", "a.test").header("x-origin-name") == std::optional<std::string>("A"));
  }

  // A hand-over asks for it: the new one joins, the old one drains and exits, nothing is refused.
  Berth second(second_yaml, 0, {"--share-listeners"});
  INFO(second.error());
  REQUIRE(second.ok());
  REQUIRE(first.process().signal(SIGTERM));
  auto first_exit = first.process().wait_exit(10s);
  CHECK(exited_with(first_exit, 0));
  for (int i = 0; i < 20; ++i) {
    Client c(second.port());
    REQUIRE(c.connected());
    CHECK(c.get("/x", "a.test").header("x-origin-name") == std::optional<std::string>("B"));
  }
}

TEST_CASE("a hand-over: connections queued on the old Berth's sockets are served, not reset", "[lifecycle]") {
  // The old Berth is at its connection limit, so the connections the kernel gives its socket wait
  // in the queue (under load they wait there too, briefly). SO_REUSEPORT spreads 24 new
  // connections over both processes' sockets; then the old one drains. Closing its socket with
  // connections queued would reset them: it takes them first and serves them.
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  const std::string routes = "routes:\n  - {host: \"a.test\", service: s}\nservices:\n  s: {endpoints: [\"";
  Berth first(config_head(1, "drain: 10s", "max_connections_per_worker: 1") + routes + a.address() + "\"]}\n");
  INFO(first.error());
  REQUIRE(first.ok());
  Client busy(first.port());
  REQUIRE(busy.connected());
  REQUIRE(busy.send("GET /slow?delay_ms=1500 HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  REQUIRE(accepted(first, 0));
  const std::string second_yaml = "listeners: [\"127.0.0.1:" + std::to_string(first.port()) +
                                  "\"]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n" + routes + b.address() + "\"]}\n";
  Berth second(second_yaml, 0, {"--share-listeners"});
  INFO(second.error());
  REQUIRE(second.ok());
  std::vector<std::unique_ptr<Client>> queued;
  for (int i = 0; i < 24; ++i) {
    queued.push_back(std::make_unique<Client>(first.port()));
    REQUIRE(queued.back()->connected());
  }
  sigterm_and_wait_draining(first);
  int from_a = 0, from_b = 0;
  for (auto& c : queued) {
    const Response r = c->get("/x", "a.test");
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    const std::string name = r.header("x-origin-name").value_or("");
    from_a += name == "A";
    from_b += name == "B";
  }
  CHECK(from_a + from_b == 24);
  CHECK(from_a > 0);  // some were queued on the old Berth (all 24 on one socket: 2^-23)
  const Response slow = busy.read_response();
  CHECK(slow.status == 200);
  CHECK(exited_with(first.process().wait_exit(10s), 0));
}

TEST_CASE("a hand-over with a fixed admin address: the new Berth shares it, the old one hands it over",
          "[lifecycle]") {
  Origin a("A"), b("B");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string admin = "127.0.0.1:" + std::to_string(unused_port());
  const std::string head = "workers: 1\nadmin: {address: \"" + admin + "\"}\ntimeouts: {drain: 10s}\n";
  const std::string routes = "routes:\n  - {host: \"a.test\", service: s}\nservices:\n  s: {endpoints: [\"";
  Berth first("listeners: [\"127.0.0.1:0\"]\n" + head + routes + a.address() + "\"]}\n");
  INFO(first.error());
  REQUIRE(first.ok());
  REQUIRE(first.admin_port() != 0);
  const std::string proxy = "127.0.0.1:" + std::to_string(first.port());
  const std::string second_yaml = "listeners: [\"" + proxy + "\"]\n" + head + routes + b.address() + "\"]}\n";

  // Without --share-listeners the taken admin address is refused first, naming it.
  TempDir dir;
  const std::string path = dir.file("second.yaml");
  REQUIRE(write_file(path, second_yaml));
  std::string out, err;
  auto st = run_berth({"--config", path}, &out, &err);
  INFO("stdout: " << out << "\nstderr: " << err);
  CHECK(exited_with(st, 1));
  CHECK((out + err).find("event=admin_listen_failed") != std::string::npos);
  CHECK((out + err).find(admin) != std::string::npos);
  CHECK((out + err).find("event=listening") == std::string::npos);  // it never joined the proxy port

  // The hand-over: the new one binds the admin address beside the old one.
  Berth second(second_yaml, 0, {"--share-listeners"});
  INFO("second: " << second.error() << "\n" << tail(second.log()));
  REQUIRE(second.ok());
  REQUIRE(first.process().signal(SIGTERM));
  CHECK(first.log_shows("event=admin_handed_over", 3s));
  // From then on the admin address is the new one's: ready, not the old one's 503 draining.
  for (int i = 0; i < 20; ++i) {
    Response r = http_get(first.admin_port(), "/readyz", "127.0.0.1");
    INFO(r.raw_head << r.body << r.error);
    CHECK(r.status == 200);
  }
  // A SIGHUP to both (kill -HUP $(pidof berth)) reloads the new one and leaves the old one be.
  REQUIRE(second.process().signal(SIGHUP));
  if (first.running()) first.process().signal(SIGHUP);
  auto first_exit = first.process().wait_exit(10s);
  INFO("first: " << tail(first.log()));
  CHECK(exited_with(first_exit, 0));
  CHECK(second.log_shows("event=config_reloaded"));
  CHECK(http_get(second.admin_port(), "/readyz", "127.0.0.1").status == 200);
  CHECK(http_get(second.port(), "/x", "a.test").header("x-origin-name") == std::optional<std::string>("B"));
}

namespace {
// Holds a Berth's control loop: its config file becomes a FIFO, and a SIGHUP makes the loop (its
// main thread) wait in open() for a writer. Meanwhile connections to its admin listener wait in
// the kernel's queue.
void hold_control_loop(Berth& berth) {
  REQUIRE(::unlink(berth.config_path().c_str()) == 0);
  REQUIRE(::mkfifo(berth.config_path().c_str(), 0600) == 0);
  REQUIRE(berth.process().signal(SIGHUP));
  const std::string wchan = "/proc/" + std::to_string(berth.pid()) + "/wchan";
  CHECK(wait_until([&] { return read_file(wchan) == "wait_for_partner"; }, 5s));
}

// Lets the reload end: writes `yaml` to the FIFO. Without a reader (the Berth gone) this fails
// instead of waiting forever.
void release_control_loop(Berth& berth, const std::string& yaml) {
  int fifo = -1;
  CHECK(wait_until([&] {
    fifo = ::open(berth.config_path().c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    return fifo >= 0;
  }, 5s));
  REQUIRE(fifo >= 0);
  CHECK(::write(fifo, yaml.data(), yaml.size()) == static_cast<ssize_t>(yaml.size()));
  ::close(fifo);
}
}  // namespace

TEST_CASE("a hand-over: connections queued on the old Berth's admin socket are answered and not reset",
          "[lifecycle]") {
  // The old Berth's control loop is held in a reload that reads its config file from a FIFO, with
  // a SIGTERM behind it. Meanwhile SO_REUSEPORT spreads 24 admin requests over both processes'
  // sockets; those given to the old one wait in its queue. Then the reload ends, the SIGTERM hands
  // the admin address over and the old one's drain ends at once (no proxy connection): its
  // queued requests are answered (503, draining) before it exits, none is reset.
  Origin a("A");
  REQUIRE(a.ok());
  const std::string admin = "127.0.0.1:" + std::to_string(unused_port());
  const std::string yaml = "listeners: [\"127.0.0.1:0\"]\nworkers: 1\nadmin: {address: \"" + admin +
                           "\"}\ntimeouts: {drain: 10s}\nroutes:\n  - {host: \"a.test\", service: s}\nservices:\n"
                           "  s: {endpoints: [\"" + a.address() + "\"]}\n";
  Berth first(yaml);
  INFO(first.error());
  REQUIRE(first.ok());
  const std::string proxy = "127.0.0.1:" + std::to_string(first.port());
  std::string second_yaml = yaml;
  second_yaml.replace(second_yaml.find("127.0.0.1:0"), 11, proxy);
  Berth second(second_yaml, 0, {"--share-listeners"});
  INFO("second: " << second.error());
  REQUIRE(second.ok());

  hold_control_loop(first);
  REQUIRE(first.process().signal(SIGTERM));
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 24; ++i) {
    clients.push_back(std::make_unique<Client>(first.admin_port()));
    REQUIRE(clients.back()->connected());
    REQUIRE(clients.back()->send("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  std::this_thread::sleep_for(100ms);
  CHECK(first.log().find("event=draining") == std::string::npos);
  release_control_loop(first, yaml);  // the reload reads the file as it was; then the SIGTERM
  CHECK(first.log_shows("event=admin_handed_over"));
  int from_old = 0, from_new = 0;
  for (auto& c : clients) {
    const Response r = c->read_response();
    INFO(r.raw_head << r.body << r.error);
    CHECK((r.status == 200 || r.status == 503));
    from_new += r.status == 200;
    from_old += r.status == 503 && r.body.find("draining") != std::string::npos;
  }
  CHECK(from_old + from_new == 24);
  CHECK(from_old > 0);  // some were queued on the old Berth (all 24 on one socket: 2^-23)
  INFO("first: " << tail(first.log()));
  CHECK(exited_with(first.process().wait_exit(10s), 0));
}

TEST_CASE("a burst of admin requests beyond the connection limit is answered and not reset", "[lifecycle]") {
  // 100 admin requests arrive while the control loop is held: one turn then accepts them all,
  // over the limit of 64 open connections. None is silent (each request is in its socket), so
  // none gives its place: closing one with its request unread would reset it.
  Berth berth(config_head(1) + "routes: []\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string yaml = read_file(berth.config_path());
  hold_control_loop(berth);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(std::make_unique<Client>(berth.admin_port()));
    REQUIRE(clients.back()->connected());
    REQUIRE(clients.back()->send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  }
  release_control_loop(berth, yaml);
  int answered = 0;
  for (auto& c : clients) {
    const Response r = c->read_response();
    INFO(r.raw_head << r.error);
    CHECK(r.status == 200);
    answered += r.status == 200;
  }
  CHECK(answered == 100);
  CHECK(berth.running());
}

TEST_CASE("berth --check-config: 0 for a good file, 1 with file:line:col for a bad one",
          "[lifecycle]") {
  TempDir dir;
  const std::string good_yaml = config_head(1) +
                                "routes:\n  - {name: r1, host: [\"a.test\", \"*.wild.test\"], path: /api, "
                                "priority: 0, service: s1, max_body_bytes: 1MiB}\n"
                                "  - {host: \"b.test\", service: s2}\n"
                                "services:\n"
                                "  s1: {endpoints: [\"127.0.0.1:9\", {address: \"127.0.0.1:10\", weight: 2}]}\n"
                                "  s2: {endpoints: []}\n";
  std::string good = dir.file("good.yaml");
  REQUIRE(write_file(good, good_yaml));
  std::string out, err;
  auto st = run_berth({"--check-config", good}, &out, &err);
  INFO("stdout: " << out << "\nstderr: " << err);
  CHECK(exited_with(st, 0));

  struct Bad {
    const char* what;
    std::string yaml;
    int line;
  };
  std::vector<Bad> bads = {
      {"invalid value", "listeners: [\"127.0.0.1:0\"]\nworkers: lots\n", 2},
      {"unknown key", config_head(1) + "bogus_key: 1\n", 4},
      {"route naming an unknown service",
       config_head(1) + "routes:\n  - {host: \"a.test\", service: nope}\nservices: {}\n", 5},
      {"YAML syntax error", config_head(1) + "routes: [\n  {host: \"a.test\"\n", 0},
  };
  for (auto& bad : bads) {
    std::string path = dir.file("bad.yaml");
    REQUIRE(write_file(path, bad.yaml));
    st = run_berth({"--check-config", path}, &out, &err);
    INFO(bad.what << "\nstdout: " << out << "\nstderr: " << err);
    CHECK(exited_with(st, 1));
    std::regex place(std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                     ":([0-9]+):([0-9]+)");
    std::smatch mt;
    bool found = std::regex_search(err, mt, place);
    CHECK(found);
    if (found && bad.line > 0) CHECK(std::stoi(mt[1].str()) == bad.line);
  }
}
