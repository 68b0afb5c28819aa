// Continuous load through Berth for the Docker tests: threads send GET / (a fresh connection
// each) until finished, counting statuses and bodies and keeping the failures.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace dk {

struct LoadOptions {
  int threads = 2;
  std::chrono::milliseconds pause{0};  // between one thread's requests (0: back to back)
  long max_requests = 0;               // over all threads; 0: until finish()
  std::chrono::seconds max_time{0};    // 0: until finish()
  // Run first on each load thread, e.g. to enter a network namespace: what it returns is held
  // until the thread ends; null (with *error set) counts a failure (status -1) and ends the thread.
  std::function<std::shared_ptr<void>(std::string* error)> thread_setup;
};

class Load {
 public:
  struct Failure {
    it::Clock::time_point sent;
    int status = 0;
    std::string cause;  // x-berth-error, or the client's error
    std::string text;
  };

  Load(uint16_t port, std::string host, int threads = 2, std::chrono::milliseconds pause = std::chrono::milliseconds(0))
      : Load(port, std::move(host), LoadOptions{threads, pause}) {}
  Load(uint16_t port, std::string host, LoadOptions options) {
    const auto deadline = options.max_time.count() > 0 ? it::Clock::now() + options.max_time : it::Clock::time_point::max();
    for (int i = 0; i < options.threads; ++i) {
      threads_.emplace_back([this, port, host, options, deadline] {
        std::shared_ptr<void> held;
        if (options.thread_setup) {
          std::string error;
          held = options.thread_setup(&error);
          if (!held) {
            record(it::Clock::now(), -1, "setup", "load thread: " + error);
            return;
          }
        }
        while (!stop_ && it::Clock::now() < deadline && (options.max_requests <= 0 || sent_++ < options.max_requests)) {
          const auto sent = it::Clock::now();
          it::Response r = it::http_get(port, "/", host);
          if (r.status == 200) {
            std::lock_guard<std::mutex> lock(mu_);
            ++statuses_[200];
            ++bodies_[r.body];
          } else {
            record(sent, r.status, r.header("x-berth-error").value_or(r.error), r.raw_head + r.body + r.error);
          }
          if (options.pause.count() > 0) std::this_thread::sleep_for(options.pause);
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
  // Every request that did not get a 200 (the first 10,000).
  std::vector<Failure> failure_records() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  // The first five failures' responses, for a test's message.
  std::string failures() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (size_t i = 0; i < failures_.size() && i < 5; ++i) all += failures_[i].text + "\n---\n";
    return all;
  }
  // Counts by status, then the first five failures.
  std::string summary() {
    std::string s;
    for (auto& [status, count] : statuses()) s += std::to_string(status) + "=" + std::to_string(count) + " ";
    return s + "\n" + failures();
  }

 private:
  void record(it::Clock::time_point sent, int status, std::string cause, std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    ++statuses_[status];
    if (failures_.size() < 10'000) failures_.push_back({sent, status, std::move(cause), std::move(text)});
  }

  std::atomic<bool> stop_{false};
  std::atomic<long> sent_{0};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::map<int, long> statuses_;
  std::map<std::string, long> bodies_;
  std::vector<Failure> failures_;
};

}  // namespace dk
