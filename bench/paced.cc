// berth-bench-paced: an open-loop HTTP/1.1 client that sends requests at a fixed rate, for the
// latency of a server under a known load (wrk keeps every connection busy, so what it measures
// rises with its own load; wrk2, which paces, is not in Debian). Used by bench/access.sh.
//
// Usage: berth-bench-paced --port PORT [--host 127.0.0.1] [--path /small] [--host-header H]
//          [--rate 1000] [--duration 10] [--conns 16] [--expect 200] [--timeout SECONDS]
//          [--wrong-password USER]
//
// Request i is due at start + i / rate (the schedule starts once every connection is open).
// It goes out at that time on an idle keep-alive connection, or as soon as one is free, and its
// latency runs from when it was due, not from when it went out: a server that stalls is charged
// for the whole wait of every request scheduled meanwhile (no "coordinated omission"). One
// request per connection at a time. The run is bounded twice: rate x duration requests, and
// --timeout seconds in all (default: duration + 10); requests not answered by then are counted
// as unfinished. With --wrong-password USER, each request carries "Authorization: Basic" for
// USER with a password no other request used ("wrong-<n>"), so no answer can come from a cache.
//
// Prints one line:
//   RESULT sent=N answered=A expected=E unexpected=U errors=X unfinished=F statuses=200:A,...
//     p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. (latencies of the answered requests)
//     cpu_us=.. (the client's own CPU time)
// and exits 0 when every request was answered with the --expect status, 1 otherwise, 64 on a
// usage error.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "bench/http_response.h"
#include "bench/paced_client.h"
#include "proxy/base/base64.h"

namespace {

// A response at the start of `in`: 0 = need more bytes; -1 = malformed or unsupported (chunked,
// or no Content-Length); otherwise its length, with its head.
long parse_response(const std::string& in, bench::ResponseHead* head) {
  std::string reason;
  const int st = bench::parse_response_head(in, head, &reason);
  if (st <= 0) return st;
  if (head->chunked || head->content_length < 0) return -1;
  const size_t total = head->body_start + size_t(head->content_length);
  return in.size() >= total ? long(total) : 0;
}

enum class State { Connecting, Idle, Busy };

struct Conn {
  int fd = -1;
  State state = State::Connecting;
  int64_t due_ns = 0;  // when the request in flight was due
  std::string in;
};

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: berth-bench-paced --port P [--host 127.0.0.1] [--path /small] [--host-header H] "
          "[--rate R] [--duration S] [--conns C] [--expect STATUS] [--timeout S] "
          "[--wrong-password USER]\n");
  exit(64);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", path = "/small", host_header = "bench", wrong_user;
  int port = 0, conns = 16, expect = 200;
  double rate = 1000, duration = 10, timeout_s = -1;
  sockaddr_in addr{};
  if (!bench::parse_flags(argc, argv,
                          {{"--host", &host}, {"--port", &port}, {"--path", &path}, {"--host-header", &host_header},
                           {"--rate", &rate}, {"--duration", &duration}, {"--conns", &conns}, {"--expect", &expect},
                           {"--timeout", &timeout_s}, {"--wrong-password", &wrong_user}}) ||
      !bench::ipv4_address(host, port, &addr) || conns <= 0 || rate <= 0 || duration <= 0)
    usage();
  if (timeout_s < 0) timeout_s = duration + 10;
  const int64_t total = std::max<int64_t>(1, llround(rate * duration));

  const std::string head = "GET " + path + " HTTP/1.1\r\nHost: " + host_header + "\r\n";
  auto request = [&](int64_t n) {
    std::string r = head;
    if (!wrong_user.empty()) {
      r += "Authorization: Basic " + berth::base64_encode(wrong_user + ":wrong-" + std::to_string(n)) + "\r\n";
    }
    return r + "\r\n";
  };

  bench::PacedLoop loop(total, rate, timeout_s);  // its schedule starts once every connection is open
  const int ep = loop.epoll_fd();
  std::vector<Conn> cs(size_t(conns), Conn{});
  int connected = 0;

  auto open_conn = [&](Conn& c) {
    c = Conn{};
    c.fd = bench::tcp_socket();
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) {
      perror("connect");
      exit(1);
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = uint64_t(&c - cs.data());
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  auto reopen = [&](Conn& c) {  // a busy connection's request is lost (counted by the caller)
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    open_conn(c);
  };
  auto dispatch = [&]() {
    std::deque<int64_t>& waiting = loop.waiting();
    for (Conn& c : cs) {
      if (waiting.empty()) return;
      if (c.state != State::Idle) continue;
      const std::string r = request(loop.sent);
      if (send(c.fd, r.data(), r.size(), MSG_NOSIGNAL) != ssize_t(r.size())) {
        ++loop.errors;
        waiting.pop_front();
        reopen(c);
        continue;
      }
      c.state = State::Busy;
      c.due_ns = waiting.front();
      waiting.pop_front();
      ++loop.sent;
    }
  };
  for (Conn& c : cs) open_conn(c);
  char buf[64 * 1024];
  for (std::span<epoll_event> ready; loop.wait(ready);) {
    for (const epoll_event& event : ready) {
      Conn& c = cs[event.data.u64];
      if (c.state == State::Connecting) {
        if (const int err = bench::socket_error(c.fd)) {
          fprintf(stderr, "connect: %s\n", strerror(err));
          return 1;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = event.data.u64;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        c.state = State::Idle;
        if (!loop.started() && ++connected == conns) loop.start();
        continue;
      }
      const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {  // closed or failed: a busy connection loses its request
        if (c.state == State::Busy) ++loop.errors;
        reopen(c);
        continue;
      }
      if (c.state != State::Busy) continue;  // bytes nobody asked for: ignore
      c.in.append(buf, size_t(r));
      bench::ResponseHead head;
      const long used = parse_response(c.in, &head);
      if (used == 0) continue;
      if (used < 0) {
        ++loop.errors;
        reopen(c);
        continue;
      }
      loop.answered(c.due_ns, head.status);
      c.in.erase(0, size_t(used));
      c.state = State::Idle;
      if (head.closes) reopen(c);
    }
    dispatch();
  }

  return loop.print_result(expect);
}
