// A bounded copy of a request body as it streams upstream, so that a retry on another instance
// can send again what the failed one already took. Only decoded body bytes are kept (chunk
// framing removed): the bound is the body size, whatever the client's chunking, and the copy is
// framed again when it is replayed. A body known to be larger than the bound (Content-Length)
// is never copied; a chunked one is copied while its running total stays within the bound, and
// the copy is dropped as soon as it does not. Pure: no loop, no sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth {

class ReplayBuffer {
 public:
  // A body is about to stream. length: its Content-Length, or kUnknownLength (chunked).
  static constexpr uint64_t kUnknownLength = UINT64_MAX;
  void start(uint64_t bound, uint64_t length);
  // Body bytes read from the client (decoded), in order.
  void add(const char* data, size_t len);
  // Every body byte read so far is in the copy (true too when none was read).
  bool replayable() const { return seen_ == kept_.size(); }
  uint64_t seen() const { return seen_; }
  std::string_view bytes() const { return kept_; }
  size_t capacity() const { return kept_.capacity(); }  // memory held for the copy
  // Appends the copy as it goes upstream: as is (Content-Length), or as one chunk followed,
  // once the body is complete, by the last chunk. Only meaningful while replayable().
  void append_framed(bool chunked, bool body_complete, std::string& out) const;
  // Back to empty; a large allocation is released rather than kept for the next request.
  void reset();

 private:
  void grow_to(uint64_t capacity);
  void drop();
  std::string kept_;
  uint64_t bound_ = 0;
  uint64_t seen_ = 0;
  bool keeping_ = false;
};

}  // namespace berth
