// berth-bench-idle_conns: opens N keep-alive connections to HOST:PORT, sends one
// "GET /small HTTP/1.1" on each, reads each response completely, then holds every connection
// open and idle. Used by bench/run.sh to measure a proxy's memory per idle connection.
//
// Usage: berth-bench-idle_conns --host 127.0.0.1 --port PORT [--conns 10000]
//          [--hold SECONDS (default 60)] [--concurrency 256] [--timeout SECONDS (default 60)]
//          [--path /small]
//
// At most --concurrency connections are connecting/awaiting their response at a time (so a
// listen backlog never overflows). When all N have a complete 200 response it prints
//   READY conns=N elapsed_ms=T
// and holds them for --hold seconds or until SIGTERM/SIGINT, then prints
//   DONE held=H closed_by_peer=C
// and exits 0 (1 if any connection was closed by the peer while held). Connections are closed
// with a reset (SO_LINGER 0), so they leave no TIME_WAIT behind. If a connection fails
// (connect error, non-200 status, early close) or --timeout passes before READY, it prints
//   FAILED ok=K failed=F reason=...
// and exits 2.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench/http_response.h"

namespace {

enum class State { Unused, Connecting, Reading, Idle, Closed };

struct Conn {
  int fd = -1;
  State state = State::Unused;
  std::string in;
};

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// 1 = complete 200 response, 0 = need more bytes, -1 = bad response (reason set).
int check_response(const std::string& in, std::string* reason) {
  bench::ResponseHead head;
  const int st = bench::parse_response_head(in, &head, reason);
  if (st <= 0) return st;
  if (head.status != 200) return *reason = "status " + std::to_string(head.status), -1;
  if (head.chunked) return in.find("\r\n0\r\n\r\n", head.body_start - 2) != std::string::npos ? 1 : 0;
  if (head.content_length < 0) return *reason = "no Content-Length", -1;
  return in.size() >= head.body_start + size_t(head.content_length) ? 1 : 0;
}

void usage() {
  fprintf(stderr,
          "usage: berth-bench-idle_conns --host H --port P [--conns N] [--hold S] "
          "[--concurrency C] [--timeout S] [--path /small]\n");
  exit(64);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", path = "/small";
  int port = 0, conns = 10000, hold = 60, concurrency = 256, timeout_s = 60;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host") host = next();
    else if (a == "--port") port = atoi(next());
    else if (a == "--conns") conns = atoi(next());
    else if (a == "--hold") hold = atoi(next());
    else if (a == "--concurrency") concurrency = atoi(next());
    else if (a == "--timeout") timeout_s = atoi(next());
    else if (a == "--path") path = next();
    else usage();
  }
  if (port <= 0 || port > 65535 || conns <= 0 || concurrency <= 0) usage();

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rlim_t(conns) + 64) {
    rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, rlim_t(conns) + 64));
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rlim_t(conns) + 16) {
      printf("FAILED ok=0 failed=0 reason=RLIMIT_NOFILE %llu too low for %d connections\n",
             (unsigned long long)rl.rlim_cur, conns);
      return 2;
    }
  }

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) usage();
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> cs(static_cast<size_t>(conns));
  int started = 0, in_flight = 0, ok = 0, failed = 0;
  std::string fail_reason;
  const int64_t t0 = now_ms();
  const int64_t deadline = t0 + int64_t(timeout_s) * 1000;

  auto fail = [&](Conn& c, const std::string& why) {
    if (c.fd >= 0) {
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
    }
    c.state = State::Closed;
    --in_flight;
    ++failed;
    if (fail_reason.empty()) fail_reason = why;
  };
  auto send_request = [&](Conn& c) {
    ssize_t w = send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (w != ssize_t(request.size())) return fail(c, std::string("send: ") + strerror(errno));
    c.state = State::Reading;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = uint64_t(&c - cs.data());
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  };
  auto start_one = [&]() {
    Conn& c = cs[size_t(started++)];
    ++in_flight;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fail(c, std::string("socket: ") + strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (r < 0 && errno != EINPROGRESS) return fail(c, std::string("connect: ") + strerror(errno));
    c.state = State::Connecting;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = uint64_t(&c - cs.data());
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };

  std::vector<epoll_event> events(1024);
  char buf[16 * 1024];
  bool ready = false;
  int64_t hold_until = 0;
  int closed_by_peer = 0;
  while (!g_stop) {
    if (!ready) {
      while (failed == 0 && started < conns && in_flight < concurrency) start_one();
      if (failed > 0) break;
      if (ok == conns) {
        ready = true;
        hold_until = now_ms() + int64_t(hold) * 1000;
        printf("READY conns=%d elapsed_ms=%lld\n", conns, (long long)(now_ms() - t0));
        fflush(stdout);
      } else if (now_ms() > deadline) {
        fail_reason = "timeout before all responses arrived";
        break;
      }
    }
    int64_t limit = ready ? hold_until : deadline;
    int64_t wait = limit - now_ms();
    if (wait <= 0) {
      if (ready) break;
      continue;
    }
    int n = epoll_wait(ep, events.data(), int(events.size()), int(std::min<int64_t>(wait, 200)));
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 3;
    }
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[i].data.u64];
      if (c.state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(c, std::string("connect: ") + strerror(err));
          continue;
        }
        send_request(c);
      } else if (c.state == State::Reading) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) {
          fail(c, r == 0 ? "closed before the response completed" : std::string("recv: ") + strerror(errno));
          continue;
        }
        c.in.append(buf, size_t(r));
        std::string reason;
        int st = check_response(c.in, &reason);
        if (st < 0) {
          fail(c, reason);
        } else if (st > 0) {
          c.state = State::Idle;
          std::string().swap(c.in);
          --in_flight;
          ++ok;
        }
      } else if (c.state == State::Idle) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r > 0) continue;  // unexpected bytes on an idle connection: ignore
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
        c.state = State::Closed;
        ++closed_by_peer;
      }
    }
  }
  if (!ready) {
    if (fail_reason.empty()) fail_reason = g_stop ? "interrupted" : "unknown";
    printf("FAILED ok=%d failed=%d reason=%s\n", ok, failed, fail_reason.c_str());
    return 2;
  }
  // Close with RST (SO_LINGER 0) so 10k sockets do not sit in TIME_WAIT, holding ephemeral
  // ports, for the next proxy's run.
  for (Conn& c : cs) {
    if (c.fd < 0) continue;
    linger lg{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c.fd);
  }
  printf("DONE held=%d closed_by_peer=%d\n", ok - closed_by_peer, closed_by_peer);
  fflush(stdout);
  return closed_by_peer ? 1 : 0;
}
