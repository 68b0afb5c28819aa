// What the open-loop bench clients (bench/paced.cc, bench/tls_paced.cc) share: their flags, the
// TCP socket they open, and PacedLoop, which owns the epoll set, the schedule (request i due at
// start + i / rate, a timerfd armed at the next due time), the run's bounds and the tally printed
// as the RESULT line. Measurement code only; nothing here is part of Berth.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bench {

inline int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// "--name value" pairs into the variables `flags` names. False on a name not in `flags`, a
// missing value, or a number that does not parse.
using Flag = std::variant<std::string*, int*, double*>;
inline bool parse_flags(int argc, char** argv, const std::map<std::string_view, Flag>& flags) {
  for (int i = 1; i < argc; i += 2) {
    const auto it = flags.find(argv[i]);
    if (it == flags.end() || i + 1 >= argc) return false;
    const char* value = argv[i + 1];
    char* end = nullptr;
    if (auto* s = std::get_if<std::string*>(&it->second)) {
      **s = value;
      continue;
    }
    if (auto* n = std::get_if<int*>(&it->second)) **n = int(strtol(value, &end, 10));
    else **std::get_if<double*>(&it->second) = strtod(value, &end);
    if (end == value || *end != '\0') return false;
  }
  return true;
}

// host:port as an IPv4 socket address; false when host is not a dotted quad or port is out of range.
inline bool ipv4_address(const std::string& host, int port, sockaddr_in* addr) {
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_port = htons(uint16_t(port));
  return port > 0 && port <= 65535 && inet_pton(AF_INET, host.c_str(), &addr->sin_addr) == 1;
}

// A non-blocking TCP socket with TCP_NODELAY; exits on failure (nothing to measure without one).
inline int tcp_socket() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// The outcome of a non-blocking connect, once the socket reported writable (0: connected).
inline int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

// One run of an open-loop client: `total` requests at `rate` per second from start(), answered
// or failed, bounded by `timeout_s` seconds from construction.
//
//   PacedLoop loop(total, rate, timeout_s);
//   ... add connections to loop.epoll_fd() (any data but kTimer), then loop.start() ...
//   for (std::span<epoll_event> ready; loop.wait(ready);) {
//     ... handle ready; loop.answered(due, status) or ++loop.errors ...
//     ... send what loop.waiting() holds, ++loop.sent for each ...
//   }
//   return loop.print_result(expect);
class PacedLoop {
 public:
  static constexpr uint64_t kTimer = UINT64_MAX;  // the schedule's timer in the epoll set

  PacedLoop(int64_t total, double rate, double timeout_s)
      : total_(total),
        interval_ns_(1e9 / rate),
        deadline_ns_(now_ns() + int64_t(timeout_s * 1e9)),
        ep_(epoll_create1(EPOLL_CLOEXEC)),
        timer_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
        events_(256) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimer;
    if (ep_ < 0 || timer_ < 0 || epoll_ctl(ep_, EPOLL_CTL_ADD, timer_, &ev) < 0) {
      perror("epoll/timerfd");
      exit(1);
    }
    latencies_us_.reserve(size_t(total));
  }
  ~PacedLoop() {
    close(timer_);
    close(ep_);
  }
  PacedLoop(const PacedLoop&) = delete;
  PacedLoop& operator=(const PacedLoop&) = delete;

  int epoll_fd() const { return ep_; }

  // Request 0 is due now.
  void start() {
    start_ns_ = now_ns();
    arm();
  }
  bool started() const { return start_ns_ != 0; }

  // Waits for the next events. False once every request was answered or failed, or when the
  // timeout passed. Requests that fell due meanwhile are appended to waiting(); `ready` holds
  // the other events (possibly none).
  bool wait(std::span<epoll_event>& ready) {
    ready = {};
    if (int64_t(latencies_us_.size()) + errors >= total_) return false;
    const int64_t left_ms = (deadline_ns_ - now_ns()) / 1000000;
    if (left_ms <= 0) return false;
    int n = epoll_wait(ep_, events_.data(), int(events_.size()), int(std::min<int64_t>(left_ms, 200)));
    if (n < 0) {
      if (errno != EINTR) {
        perror("epoll_wait");
        exit(1);
      }
      n = 0;
    }
    const auto end = std::remove_if(events_.begin(), events_.begin() + n,
                                    [](const epoll_event& e) { return e.data.u64 == kTimer; });
    if (end != events_.begin() + n) take_due();
    ready = std::span<epoll_event>(events_.data(), size_t(end - events_.begin()));
    return true;
  }

  // Due times (ns) of the requests due and not sent yet, oldest first.
  std::deque<int64_t>& waiting() { return waiting_; }

  // The response to the request due at `due_ns` ended now.
  void answered(int64_t due_ns, int status) {
    latencies_us_.push_back((now_ns() - due_ns) / 1000);
    ++statuses_[status];
  }

  int64_t sent = 0;    // requests sent
  int64_t errors = 0;  // requests lost to a connection error or a malformed response

  // Prints
  //   RESULT sent=N answered=A expected=E unexpected=U errors=X unfinished=F statuses=200:A,...
  //     p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. cpu_us=..
  // (cpu_us: this client's own user + system CPU time) and returns the exit code: 0 when every
  // request was answered with `expect`, else 1.
  int print_result(int expect) {
    std::vector<int64_t>& lat = latencies_us_;
    const int64_t answered = int64_t(lat.size());
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) -> long long {
      if (lat.empty()) return -1;
      const size_t idx = std::min(lat.size() - 1, size_t(std::ceil(q * double(lat.size()))) - 1);
      return (long long)lat[idx];
    };
    const int64_t expected = statuses_.count(expect) ? statuses_[expect] : 0;
    std::string status_list;
    for (const auto& [s, count] : statuses_) {
      if (!status_list.empty()) status_list += ',';
      status_list += std::to_string(s) + ':' + std::to_string(count);
    }
    printf("RESULT sent=%lld answered=%lld expected=%lld unexpected=%lld errors=%lld unfinished=%lld "
           "statuses=%s p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld cpu_us=%lld\n",
           (long long)sent, (long long)answered, (long long)expected, (long long)(answered - expected),
           (long long)errors, (long long)(total_ - answered - errors),
           status_list.empty() ? "none" : status_list.c_str(), pct(0.50), pct(0.90), pct(0.99), pct(0.999),
           lat.empty() ? -1LL : (long long)lat.back(), cpu_us());
    fflush(stdout);
    return expected == total_ ? 0 : 1;
  }

 private:
  static long long cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto us = [](const timeval& t) { return (long long)t.tv_sec * 1000000 + t.tv_usec; };
    return us(ru.ru_utime) + us(ru.ru_stime);
  }

  int64_t due_of(int64_t i) const { return start_ns_ + int64_t(double(i) * interval_ns_); }

  // After the timer fired: every request due by now goes to waiting_.
  void take_due() {
    uint64_t expirations;
    while (read(timer_, &expirations, sizeof expirations) > 0) {
    }
    const int64_t now = now_ns();
    while (scheduled_ < total_ && due_of(scheduled_) <= now) waiting_.push_back(due_of(scheduled_++));
    arm();
  }

  void arm() {  // at the next request's due time
    if (scheduled_ >= total_) return;
    const int64_t due = due_of(scheduled_);
    itimerspec its{};
    its.it_value.tv_sec = due / 1000000000;
    its.it_value.tv_nsec = due % 1000000000;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(timer_, TFD_TIMER_ABSTIME, &its, nullptr);
  }

  const int64_t total_;
  const double interval_ns_;
  const int64_t deadline_ns_;
  const int ep_;
  const int timer_;
  std::vector<epoll_event> events_;
  int64_t start_ns_ = 0;
  int64_t scheduled_ = 0;
  std::deque<int64_t> waiting_;
  std::vector<int64_t> latencies_us_;
  std::map<int, int64_t> statuses_;
};

}  // namespace bench
