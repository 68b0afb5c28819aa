// berth-bench-tls_paced: an open-loop TLS client that starts new connections at a fixed rate,
// one request each, for the latency of full TLS handshakes under a known load.
//
// wrk keeps every connection busy: when a handshake costs its one thread as much as it costs the
// server, the load core saturates and wrk's p99 measures its own backlog, which grows with the
// rate the server sustains (a faster server looks slower). Here the rate is fixed, so every
// contestant is asked for the same work, and what is measured is the server's answer to it.
//
// Usage: berth-bench-tls_paced --port PORT [--host 127.0.0.1] [--sni bench.test] [--path /small]
//          [--rate 1000] [--duration 10] [--max-conns 256] [--timeout SECONDS]
//
// Request i is due at start + i / rate. At that time a new TCP connection opens (or, when
// --max-conns connections are already open, as soon as one closes); a full TLS 1.3 handshake
// follows (the client keeps no session and asks for no ticket, so nothing is resumed), then
// "GET path" with "Connection: close", the response (Content-Length framed), and the close.
// A request's latency runs from when it was due to the response's last byte: the connection,
// the handshake and any wait for a free slot are all in it (no "coordinated omission"). The run is
// bounded by rate x duration requests and by --timeout seconds in all (default: duration + 10).
//
// Prints one line:
//   RESULT sent=N answered=A expected=E unexpected=U errors=X unfinished=F statuses=200:A,...
//     p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. (latencies of the answered requests)
//     cpu_us=.. (the client's own CPU time)
// and exits 0 when every request was answered 200, 1 otherwise, 64 on a usage error.
// Measurement code only; nothing here is part of Berth.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "bench/http_response.h"
#include "bench/paced_client.h"

namespace {

enum class State { Free, Connecting, Handshaking, Writing, Reading };

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  State state = State::Free;
  int64_t due_ns = 0;
  uint32_t events = 0;  // what epoll watches for this connection now
  std::string in;
};

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: berth-bench-tls_paced --port P [--host 127.0.0.1] [--sni bench.test] [--path /small] "
          "[--rate R] [--duration S] [--max-conns C] [--timeout S]\n");
  exit(64);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", sni = "bench.test", path = "/small";
  int port = 0, max_conns = 256;
  double rate = 1000, duration = 10, timeout_s = -1;
  sockaddr_in addr{};
  if (!bench::parse_flags(argc, argv,
                          {{"--host", &host}, {"--port", &port}, {"--sni", &sni}, {"--path", &path}, {"--rate", &rate},
                           {"--duration", &duration}, {"--max-conns", &max_conns}, {"--timeout", &timeout_s}}) ||
      !bench::ipv4_address(host, port, &addr) || max_conns <= 0 || rate <= 0 || duration <= 0)
    usage();
  if (timeout_s < 0) timeout_s = duration + 10;
  const int64_t total = std::max<int64_t>(1, llround(rate * duration));
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + sni + "\r\nConnection: close\r\n\r\n";

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    fprintf(stderr, "SSL_CTX_new failed\n");
    return 1;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake a full one
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // the bench's own certificate, on loopback

  bench::PacedLoop loop(total, rate, timeout_s);
  const int ep = loop.epoll_fd();
  std::vector<Conn> cs(static_cast<size_t>(max_conns));
  std::vector<size_t> free_slots;
  for (size_t i = cs.size(); i-- > 0;) free_slots.push_back(i);

  auto watch = [&](Conn& c, uint32_t events) {
    if (events == c.events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = uint64_t(&c - cs.data());
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    c.events = events;
  };
  auto finish = [&](Conn& c, bool failed) {
    if (failed) ++loop.errors;
    if (c.ssl) SSL_free(c.ssl);
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c = Conn{};
    free_slots.push_back(size_t(&c - cs.data()));
  };
  auto start = [&](int64_t due) {
    const size_t slot = free_slots.back();
    free_slots.pop_back();
    Conn& c = cs[slot];
    c.due_ns = due;
    c.fd = bench::tcp_socket();
    ++loop.sent;
    c.state = State::Connecting;
    c.events = EPOLLOUT;
    epoll_event ev{};
    ev.events = c.events;
    ev.data.u64 = slot;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) finish(c, true);
  };
  auto dispatch = [&]() {
    std::deque<int64_t>& waiting = loop.waiting();
    while (!waiting.empty() && !free_slots.empty()) {
      start(waiting.front());
      waiting.pop_front();
    }
  };
  // Runs the connection's TLS steps as far as they go now.
  char buf[64 * 1024];
  auto drive = [&](Conn& c) {
    for (;;) {
      int r = 0;
      if (c.state == State::Handshaking) r = SSL_connect(c.ssl);
      else if (c.state == State::Writing) r = SSL_write(c.ssl, request.data(), int(request.size()));
      else r = SSL_read(c.ssl, buf, sizeof buf);
      if (r > 0) {
        if (c.state == State::Handshaking) {
          c.state = State::Writing;
        } else if (c.state == State::Writing) {
          c.state = State::Reading;
        } else {
          c.in.append(buf, size_t(r));
          bench::ResponseHead head;
          std::string reason;
          const int st = bench::parse_response_head(c.in, &head, &reason);
          if (st < 0 || (st > 0 && (head.chunked || head.content_length < 0))) {
            finish(c, true);
            return;
          }
          if (st > 0 && c.in.size() >= head.body_start + size_t(head.content_length)) {
            loop.answered(c.due_ns, head.status);
            finish(c, false);
            return;
          }
        }
        continue;
      }
      const int err = SSL_get_error(c.ssl, r);
      if (err == SSL_ERROR_WANT_READ) {
        watch(c, EPOLLIN);
        return;
      }
      if (err == SSL_ERROR_WANT_WRITE) {
        watch(c, EPOLLOUT);
        return;
      }
      ERR_clear_error();
      finish(c, true);  // closed early, or a TLS failure
      return;
    }
  };
  loop.start();
  for (std::span<epoll_event> ready; loop.wait(ready);) {
    for (const epoll_event& event : ready) {
      Conn& c = cs[event.data.u64];
      if (c.state == State::Free) continue;  // ended earlier in this batch
      if (c.state == State::Connecting) {
        if (bench::socket_error(c.fd) != 0) {
          finish(c, true);
          continue;
        }
        c.ssl = SSL_new(ctx);
        SSL_set_fd(c.ssl, c.fd);
        SSL_set_tlsext_host_name(c.ssl, sni.c_str());
        c.state = State::Handshaking;
      }
      drive(c);
    }
    dispatch();
  }

  SSL_CTX_free(ctx);
  return loop.print_result(200);
}
