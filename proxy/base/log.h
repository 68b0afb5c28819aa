// Structured logging: one key=value line per event on stderr, with a level.
// Once the writer thread is started, each thread appends its lines to its own bounded buffer and
// the writer writes them in batches (see batch_sink.h): no lock shared between threads per line,
// and no event loop ever blocks on stderr. A line that finds its thread's buffer full (stderr
// stalled) is dropped and counted; a `log_lines_dropped` line reports the count later. Lines of one
// thread keep their order; lines of different threads may interleave out of timestamp order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::log {

enum class Level : uint8_t { kDebug, kInfo, kWarn, kError };

void set_min_level(Level level);
bool enabled(Level level);
// Starts the writer thread (idempotent). Until then lines are written synchronously.
void start_writer();
// Writes every pending line (of every thread, exited ones too) and stops the writer thread.
// Afterwards lines are written synchronously again. Bounded (2 s): lines stderr has not taken by
// then are given up and counted in dropped(), and later lines are dropped, not written.
void stop_writer();
// Lines dropped because their thread's buffer was full, or not written (an error, or given up by
// stop_writer), since the process started.
uint64_t dropped();

// Builds one line: `ts=... level=info event=name k=v ...`, submitted by the destructor.
class Line {
 public:
  Line(Level level, std::string_view event);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& kv(std::string_view key, std::string_view value);
  Line& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, int64_t value);
  Line& kv(std::string_view key, uint64_t value);
  Line& kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  Line& kv(std::string_view key, unsigned value) { return kv(key, static_cast<uint64_t>(value)); }
  Line& kv(std::string_view key, long long value) { return kv(key, static_cast<int64_t>(value)); }
  Line& kv(std::string_view key, unsigned long long value) { return kv(key, static_cast<uint64_t>(value)); }
  Line& kv(std::string_view key, bool value) { return kv(key, value ? std::string_view("true") : std::string_view("false")); }
  Line& kv(std::string_view key, double value);

 private:
  bool active_;
  std::string text_;
};

inline Line debug(std::string_view event) { return Line(Level::kDebug, event); }
inline Line info(std::string_view event) { return Line(Level::kInfo, event); }
inline Line warn(std::string_view event) { return Line(Level::kWarn, event); }
inline Line error(std::string_view event) { return Line(Level::kError, event); }

}  // namespace berth::log
