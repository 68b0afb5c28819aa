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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench/http_response.h"
#include "bench/paced_schedule.h"
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
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host") host = next();
    else if (a == "--port") port = atoi(next());
    else if (a == "--path") path = next();
    else if (a == "--host-header") host_header = next();
    else if (a == "--rate") rate = atof(next());
    else if (a == "--duration") duration = atof(next());
    else if (a == "--conns") conns = atoi(next());
    else if (a == "--expect") expect = atoi(next());
    else if (a == "--timeout") timeout_s = atof(next());
    else if (a == "--wrong-password") wrong_user = next();
    else usage();
  }
  if (port <= 0 || port > 65535 || conns <= 0 || rate <= 0 || duration <= 0) usage();
  if (timeout_s < 0) timeout_s = duration + 10;
  const int64_t total = std::max<int64_t>(1, llround(rate * duration));

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) usage();
  const std::string head = "GET " + path + " HTTP/1.1\r\nHost: " + host_header + "\r\n";
  auto request = [&](int64_t n) {
    std::string r = head;
    if (!wrong_user.empty()) {
      r += "Authorization: Basic " + berth::base64_encode(wrong_user + ":wrong-" + std::to_string(n)) + "\r\n";
    }
    return r + "\r\n";
  };

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.u64 = UINT64_MAX;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

  std::vector<Conn> cs(size_t(conns), Conn{});
  std::deque<int64_t> waiting;  // due times (ns) of requests not sent yet, in order
  std::vector<int64_t> latencies_us;
  latencies_us.reserve(size_t(total));
  std::map<int, int64_t> statuses;
  int64_t sent = 0, errors = 0;
  int connected = 0;
  bench::Schedule schedule(tfd, total, rate);  // starts once every connection is open
  const int64_t deadline_ns = bench::now_ns() + int64_t(timeout_s * 1e9);

  auto open_conn = [&](Conn& c) {
    c = Conn{};
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
    for (Conn& c : cs) {
      if (waiting.empty()) return;
      if (c.state != State::Idle) continue;
      const std::string r = request(sent);
      if (send(c.fd, r.data(), r.size(), MSG_NOSIGNAL) != ssize_t(r.size())) {
        ++errors;
        waiting.pop_front();
        reopen(c);
        continue;
      }
      c.state = State::Busy;
      c.due_ns = waiting.front();
      waiting.pop_front();
      ++sent;
    }
  };
  for (Conn& c : cs) open_conn(c);
  std::vector<epoll_event> events(256);
  char buf[64 * 1024];
  for (;;) {
    const int64_t answered = int64_t(latencies_us.size());
    if (answered + errors >= total) break;
    const int64_t left_ms = (deadline_ns - bench::now_ns()) / 1000000;
    if (left_ms <= 0) break;
    const int n = epoll_wait(ep, events.data(), int(events.size()), int(std::min<int64_t>(left_ms, 200)));
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == UINT64_MAX) {  // the schedule's timer
        schedule.take_due(waiting);
        continue;
      }
      Conn& c = cs[events[i].data.u64];
      if (c.state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fprintf(stderr, "connect: %s\n", strerror(err));
          return 1;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = events[i].data.u64;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        c.state = State::Idle;
        if (!schedule.started() && ++connected == conns) schedule.start(bench::now_ns());
        continue;
      }
      const ssize_t r = recv(c.fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {  // closed or failed: a busy connection loses its request
        if (c.state == State::Busy) ++errors;
        reopen(c);
        continue;
      }
      if (c.state != State::Busy) continue;  // bytes nobody asked for: ignore
      c.in.append(buf, size_t(r));
      bench::ResponseHead head;
      const long used = parse_response(c.in, &head);
      if (used == 0) continue;
      if (used < 0) {
        ++errors;
        reopen(c);
        continue;
      }
      latencies_us.push_back((bench::now_ns() - c.due_ns) / 1000);
      ++statuses[head.status];
      c.in.erase(0, size_t(used));
      c.state = State::Idle;
      if (head.closes) reopen(c);
    }
    dispatch();
  }

  return bench::print_result(latencies_us, statuses, sent, errors, total, expect);
}
