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
  explicit LineSplitter(size_t max_line = 16u << 20) : max_line_(max_line) {}
  // Calls on_line for every complete line (without the '\n' or a trailing '\r'; empty lines are
  // skipped). False when a line grows past max_line (the stream is then unusable).
  bool feed(std::string_view bytes, const std::function<void(std::string_view)>& on_line);
  size_t pending() const { return partial_.size(); }
  void reset() { partial_.clear(); }

 private:
  size_t max_line_;
  std::string partial_;
};

}  // namespace berth::discovery
