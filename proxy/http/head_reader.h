// Collects one message head from a stream of reads. When a head arrives whole in one read (the
// usual case) it is used in place; only a head split over reads is copied, into a string
// borrowed from the worker and returned as soon as the head is complete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth {

class StringPool;

namespace http {

// RFC 9112 section 2.2: how many bytes at the start of [data, data+len) are empty lines (CRLF,
// or a bare LF) before a request line, to be ignored. `cr_carried`: the input before ended in a
// CR that may be the first half of one. It is set when this input ends in a CR where a request
// line could start (that CR is counted); left set, with 0 returned, when this input starts with
// anything but an LF: then that CR is the first byte of the head.
size_t empty_lines(const char* data, size_t len, bool& cr_carried) noexcept;

}  // namespace http

class HeadReader {
 public:
  enum class Status : uint8_t { kNeedMore, kComplete, kTooLarge, kLineTooLong };

  // Consumes bytes of [data, data+len). On kComplete, `used` is the number of bytes of this
  // input that belong to the head and head() is valid until the next feed/reset (it may point
  // into `data`). On kNeedMore all bytes were used.
  Status feed(StringPool& strings, const char* data, size_t len, size_t& used, uint32_t max_bytes,
              uint32_t max_line);
  std::string_view head() const { return head_; }
  bool started() const { return started_; }
  // After kNeedMore: every byte of the head so far.
  std::string_view pending() const { return buf_ ? std::string_view(*buf_) : std::string_view(); }
  void reset(StringPool& strings);

 private:
  std::string* buf_ = nullptr;
  std::string_view head_;
  size_t scanned_ = 0;
  bool started_ = false;
};

}  // namespace berth
