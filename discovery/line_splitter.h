// Splits a byte stream into newline-terminated lines, whatever the reads or chunks were:
// a line may span many feeds, one feed may hold many lines. Used for the /events stream
// (newline-delimited JSON). Pure.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace berth::discovery {

class LineSplitter {
 public:
  // skip_long: a line that grows past max_line is dropped (its bytes discarded up to its '\n')
  // and counted in skipped(), and the lines after it go on; else the stream is unusable.
  explicit LineSplitter(size_t max_line = 16u << 20, bool skip_long = false)
      : max_line_(max_line), skip_long_(skip_long) {}
  // Calls on_line for every complete line (without the '\n' or a trailing '\r'; empty lines are
  // skipped). False when a line grows past max_line and skip_long is off.
  bool feed(std::string_view bytes, const std::function<void(std::string_view)>& on_line);
  size_t pending() const { return partial_.size(); }
  uint64_t skipped() const { return skipped_; }
  void reset() {
    partial_.clear();
    skipping_ = false;
  }

 private:
  // A line outgrew max_line: false, or (skip_long) true with the rest of it to be discarded.
  bool too_long();

  size_t max_line_;
  bool skip_long_;
  bool skipping_ = false;  // inside a line too long to keep
  uint64_t skipped_ = 0;
  std::string partial_;
};

}  // namespace berth::discovery
