#include "proxy/base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

namespace berth::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

class Writer {
 public:
  void start() {
    std::lock_guard lock(mu_);
    if (running_) return;
    running_ = true;
    stop_ = false;
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    std::lock_guard lock(mu_);
    running_ = false;
  }
  void submit(std::string&& line) {
    {
      std::unique_lock lock(mu_);
      if (!running_) {
        lock.unlock();
        write_all(line);
        return;
      }
      // A flood of log lines must not grow memory without bound: drop and count.
      if (queue_.size() >= kMaxQueued) {
        ++dropped_;
        return;
      }
      queue_.push_back(std::move(line));
    }
    cv_.notify_one();
  }

 private:
  static constexpr size_t kMaxQueued = 100000;
  static void write_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(2, s.data() + off, s.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  void run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) return;
      std::string batch;
      while (!queue_.empty()) {
        batch += queue_.front();
        queue_.pop_front();
      }
      uint64_t dropped = dropped_;
      dropped_ = 0;
      lock.unlock();
      if (dropped) batch += "level=warn event=log_lines_dropped count=" + std::to_string(dropped) + "\n";
      write_all(batch);
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
  uint64_t dropped_ = 0;
};

Writer& writer() {
  static Writer* w = new Writer();  // never destroyed: usable during static destruction
  return *w;
}

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

}  // namespace

void set_min_level(Level level) { g_min_level.store(static_cast<int>(level)); }
bool enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed); }
void start_writer() { writer().start(); }
void stop_writer() { writer().stop(); }

Line::Line(Level level, std::string_view event) : active_(enabled(level)) {
  if (!active_) return;
  text_.reserve(160);
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[96];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  text_ += "ts=";
  text_ += ts;
  text_ += " level=";
  text_ += level_name(level);
  text_ += " event=";
  append_value(text_, event);
}

Line::~Line() {
  if (!active_) return;
  text_.push_back('\n');
  writer().submit(std::move(text_));
}

Line& Line::kv(std::string_view key, std::string_view value) {
  if (!active_) return *this;
  text_.push_back(' ');
  text_.append(key);
  text_.push_back('=');
  append_value(text_, value);
  return *this;
}

Line& Line::kv(std::string_view key, int64_t value) { return kv(key, std::string_view(std::to_string(value))); }
Line& Line::kv(std::string_view key, uint64_t value) { return kv(key, std::string_view(std::to_string(value))); }
Line& Line::kv(std::string_view key, double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  return kv(key, std::string_view(buf));
}

}  // namespace berth::log
