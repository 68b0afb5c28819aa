// berth-bench-log_lines: the cost of one log line on the thread that logs it (ns/line), with the
// background writer running and stderr sent to /dev/null, for 1 and 2 producer threads logging at
// once. Each line is what a worker typically logs: an event and four key=value pairs. Wall time
// and the producer thread's CPU time are both shown: on a busy machine the CPU time is the steadier.
//
//   berth-bench-log_lines [lines_per_thread]      (default 200,000)
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "proxy/base/log.h"

namespace {

void log_lines(int n) {
  for (int i = 0; i < n; ++i)
    berth::log::info("bench_line").kv("seq", i).kv("route", "api.example.test/v1").kv("status", 200).kv("ms", 1.25);
}

double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Cost {
  double wall_ns = 0;
  double cpu_ns = 0;
};

// Mean ns per line seen by each producer, over `threads` threads logging `n` lines each at once.
Cost ns_per_line(int threads, int n) {
  std::vector<std::thread> pool;
  std::vector<Cost> ns(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      log_lines(1000);  // warm-up: registers the thread, grows its buffers
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = thread_cpu_ns();
      log_lines(n);
      const double c1 = thread_cpu_ns();
      const auto t1 = std::chrono::steady_clock::now();
      ns[static_cast<size_t>(t)] = {std::chrono::duration<double, std::nano>(t1 - t0).count() / n, (c1 - c0) / n};
    });
  }
  for (auto& th : pool) th.join();
  Cost sum;
  for (const Cost& c : ns) sum.wall_ns += c.wall_ns, sum.cpu_ns += c.cpu_ns;
  return {sum.wall_ns / threads, sum.cpu_ns / threads};
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  int devnull = ::open("/dev/null", O_WRONLY);
  if (devnull < 0 || ::dup2(devnull, 2) < 0) return 1;
  berth::log::start_writer();
  std::printf("| producers | ns/line (wall) | ns/line (producer CPU) |\n|---|---|---|\n");
  for (int threads : {1, 2, 1, 2}) {
    Cost c = ns_per_line(threads, n);
    std::printf("| %d | %.1f | %.1f |\n", threads, c.wall_ns, c.cpu_ns);
  }
  berth::log::stop_writer();
  return 0;
}
