// Continuous load through Berth for the Docker tests: threads send GET / (a fresh connection
// each) until finished, counting statuses and bodies and keeping the first few failures.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace dk {

class Load {
 public:
  // pause: wait between one thread's requests (0: back to back).
  Load(uint16_t port, std::string host, int threads = 2,
       std::chrono::milliseconds pause = std::chrono::milliseconds(0)) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, port, host, pause] {
        while (!stop_) {
          it::Response r = it::http_get(port, "/", host);
          {
            std::lock_guard<std::mutex> lock(mu_);
            ++statuses_[r.status];
            if (r.status == 200) ++bodies_[r.body];
            else if (failures_.size() < 5) failures_.push_back(r.raw_head + r.body + r.error);
          }
          if (pause.count() > 0) std::this_thread::sleep_for(pause);
        }
      });
    }
  }
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;
  ~Load() { finish(); }

  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::map<int, long> statuses() {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }
  std::map<std::string, long> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  long total() {
    long n = 0;
    for (auto& [status, count] : statuses()) n += count;
    return n;
  }
  std::string failures() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (auto& f : failures_) all += f + "\n---\n";
    return all;
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::map<int, long> statuses_;
  std::map<std::string, long> bodies_;
  std::vector<std::string> failures_;
};

}  // namespace dk
