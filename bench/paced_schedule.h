// What the open-loop bench clients (bench/paced.cc, bench/tls_paced.cc) share: the monotonic
// clock, the schedule (request i due at start + i / rate, a timerfd armed at the next due time)
// and the RESULT line with the latency percentiles. Measurement code only; nothing here is part
// of Berth.
#pragma once

#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace bench {

inline int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// `total` requests at `rate` per second from start().
class Schedule {
 public:
  Schedule(int fd, int64_t total, double rate) : fd_(fd), total_(total), interval_ns_(1e9 / rate) {}

  void start(int64_t now) {
    start_ns_ = now;
    arm();
  }
  bool started() const { return start_ns_ != 0; }

  // After the timer fired: every request due by now, appended to `due` (their due times).
  void take_due(std::deque<int64_t>& due) {
    uint64_t expirations;
    while (read(fd_, &expirations, sizeof expirations) > 0) {
    }
    const int64_t now = now_ns();
    while (scheduled_ < total_ && due_of(scheduled_) <= now) due.push_back(due_of(scheduled_++));
    arm();
  }

 private:
  int64_t due_of(int64_t i) const { return start_ns_ + int64_t(double(i) * interval_ns_); }
  void arm() {  // at the next request's due time
    if (scheduled_ >= total_) return;
    const int64_t due = due_of(scheduled_);
    itimerspec its{};
    its.it_value.tv_sec = due / 1000000000;
    its.it_value.tv_nsec = due % 1000000000;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(fd_, TFD_TIMER_ABSTIME, &its, nullptr);
  }

  int fd_;
  int64_t total_;
  double interval_ns_;
  int64_t start_ns_ = 0;
  int64_t scheduled_ = 0;
};

inline long long cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) { return (long long)t.tv_sec * 1000000 + t.tv_usec; };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

// Prints
//   RESULT sent=N answered=A expected=E unexpected=U errors=X unfinished=F statuses=200:A,...
//     p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. cpu_us=..
// (cpu_us: this client's own user + system CPU time) and returns the exit code: 0 when all `total` requests were answered with `expect`, else 1.
inline int print_result(std::vector<int64_t>& latencies_us, std::map<int, int64_t>& statuses, int64_t sent,
                        int64_t errors, int64_t total, int expect) {
  const int64_t answered = int64_t(latencies_us.size());
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) -> long long {
    if (latencies_us.empty()) return -1;
    const size_t idx = std::min(latencies_us.size() - 1, size_t(std::ceil(q * double(latencies_us.size()))) - 1);
    return (long long)latencies_us[idx];
  };
  const int64_t expected = statuses.count(expect) ? statuses[expect] : 0;
  std::string status_list;
  for (const auto& [s, count] : statuses) {
    if (!status_list.empty()) status_list += ',';
    status_list += std::to_string(s);
    status_list += ':';
    status_list += std::to_string(count);
  }
  printf("RESULT sent=%lld answered=%lld expected=%lld unexpected=%lld errors=%lld unfinished=%lld "
         "statuses=%s p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld cpu_us=%lld\n",
         (long long)sent, (long long)answered, (long long)expected, (long long)(answered - expected),
         (long long)errors, (long long)(total - answered - errors), status_list.empty() ? "none" : status_list.c_str(),
         pct(0.50), pct(0.90), pct(0.99), pct(0.999), latencies_us.empty() ? -1LL : (long long)latencies_us.back(),
         cpu_us());
  fflush(stdout);
  return expected == total ? 0 : 1;
}

}  // namespace bench
