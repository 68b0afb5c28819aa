// Body framing for one HTTP/1.x message: llhttp in strict mode (no lenient flags), fed the head
// that http_head.h already validated, then the body bytes. Berth adds what llhttp 8.1 does not
// check itself: the CRLF that must close every chunk's data, and a size cap on chunk-size lines.
// Body bytes are handed to the sink as slices of the caller's buffer (no copy).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace berth {

class BodySink {
 public:
  virtual ~BodySink() = default;
  // Decoded body bytes (chunk framing removed).
  virtual void on_body_data(const char* data, size_t len) = 0;
};

class MessageParser {
 public:
  enum class State : uint8_t { kBody, kComplete, kUpgrade, kError };
  struct Result {
    State state = State::kBody;
    size_t consumed = 0;          // bytes of the input that belong to this message
    const char* reason = "";      // for kError
  };

  void init(llhttp_type_t type, BodySink* sink);
  // skip_body: response to HEAD (llhttp otherwise believes its Content-Length).
  Result feed_head(std::string_view head, bool skip_body = false);
  Result feed(const char* data, size_t len);
  // The peer closed: completes a close-delimited body, errors on a truncated one.
  Result finish();
  bool complete() const { return complete_; }
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_extension(llhttp_t* p, const char* at, size_t len);
  Result run(const char* data, size_t len);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  BodySink* sink_ = nullptr;
  const char* buf_end_ = nullptr;
  uint64_t chunk_remaining_ = 0;
  uint64_t body_bytes_ = 0;
  uint32_t chunk_ext_bytes_ = 0;
  uint8_t crlf_expected_ = 0;  // chunk-closing CRLF bytes still to check at the next input
  bool in_chunk_ = false;
  bool skip_body_ = false;
  bool complete_ = false;
  const char* error_ = nullptr;
};

}  // namespace berth
