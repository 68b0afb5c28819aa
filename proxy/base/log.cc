#include "proxy/base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "proxy/base/batch_sink.h"
#include "proxy/base/time_text.h"

namespace berth::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

std::string header(Level level, std::string_view event);

// How long stop_writer() waits for a stderr that takes nothing (a pipe nobody reads): the last
// lines at exit are few, and exit must not hang on them. Comes after the access log's 5 s.
constexpr auto kStopGrace = std::chrono::seconds(2);

FdOutput& stderr_output() {
  static FdOutput* output = new FdOutput(2);  // never destroyed, like the sink
  return *output;
}

// Lines go to stderr through a BatchSink: each thread fills its own buffer (1 MiB at most; a line
// that does not fit is dropped and counted), and the writer thread writes them every 25 ms.
BatchSink& sink() {
  static BatchSink* s = [] {  // never destroyed: usable during static destruction
    BatchSink::Options options;
    options.drop_report = [](uint64_t count) {
      return header(Level::kWarn, "log_lines_dropped") + " count=" + std::to_string(count) + "\n";
    };
    return new BatchSink(stderr_output(), std::move(options));
  }();
  return *s;
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

void append_timestamp(std::string& out) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  append_rfc3339_ms(out, static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000);
}

std::string header(Level level, std::string_view event) {
  std::string text;
  text.reserve(160);
  text += "ts=";
  append_timestamp(text);
  text += " level=";
  text += level_name(level);
  text += " event=";
  append_value(text, event);
  return text;
}

}  // namespace

void set_min_level(Level level) { g_min_level.store(static_cast<int>(level)); }
bool enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed); }
void start_writer() { sink().start(); }
void stop_writer() { sink().stop(kStopGrace); }
uint64_t dropped() { return sink().dropped() + stderr_output().lost(); }

Line::Line(Level level, std::string_view event) : active_(enabled(level)) {
  if (active_) text_ = header(level, event);
}

Line::~Line() {
  if (!active_) return;
  text_.push_back('\n');
  // Before start_writer (and after stop_writer) lines are written here, as they come; not after
  // a stop_writer that had to give stderr up: this write would block just the same.
  if (sink().append(text_) == BatchSink::Append::kNotRunning && !stderr_output().abandoned()) write_all(2, text_);
}

Line& Line::kv(std::string_view key, std::string_view value) {
  if (!active_) return *this;
  text_.push_back(' ');
  text_.append(key);
  text_.push_back('=');
  append_value(text_, value);
  return *this;
}

// std::to_chars writes what %lld, %llu and %.3f write, without printf's parsing or locale.
Line& Line::kv(std::string_view key, int64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return kv(key, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}
Line& Line::kv(std::string_view key, uint64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return kv(key, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}
Line& Line::kv(std::string_view key, double value) {
  char buf[400];  // room for %.3f of the largest double
  auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, 3);
  if (r.ec != std::errc()) return kv(key, std::string_view("nan"));
  return kv(key, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

}  // namespace berth::log
