// berth-bench-log_lines: the cost of one log line on the thread that logs it (ns/line), with the
// background writer running and stderr sent to /dev/null, for 1 and 2 producer threads logging at
// once. Each line is what a worker typically logs: an event and four key=value pairs.
//
//   berth-bench-log_lines [lines_per_thread]      (default 200,000)
#include <fcntl.h>
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

// Mean ns per line seen by each producer, over `threads` threads logging `n` lines each at once.
double ns_per_line(int threads, int n) {
  std::vector<std::thread> pool;
  std::vector<double> ns(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      log_lines(1000);  // warm-up: registers the thread, grows its buffers
      const auto t0 = std::chrono::steady_clock::now();
      log_lines(n);
      const auto t1 = std::chrono::steady_clock::now();
      ns[static_cast<size_t>(t)] = std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
    });
  }
  for (auto& th : pool) th.join();
  double sum = 0;
  for (double v : ns) sum += v;
  return sum / threads;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  int devnull = ::open("/dev/null", O_WRONLY);
  if (devnull < 0 || ::dup2(devnull, 2) < 0) return 1;
  berth::log::start_writer();
  std::printf("| producers | ns/line |\n|---|---|\n");
  for (int threads : {1, 2, 1, 2}) std::printf("| %d | %.1f |\n", threads, ns_per_line(threads, n));
  berth::log::stop_writer();
  return 0;
}
