// Body framing for one HTTP/1.x message, started from the framing that http_head.h worked out
// when it validated the head (each head is parsed once). A Content-Length or close-delimited
// body is counted here; only a chunked body goes through llhttp (strict mode, no lenient
// flags), primed with a minimal chunked head. Berth adds what llhttp 8.1 does not check
// itself: the CRLF that must close every chunk's data, and a size cap on chunk extensions.
// Body bytes are handed to the sink as slices of the caller's buffer (no copy).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/http/http_head.h"

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

  // A new message whose head declared `framing` (and content_length for kContentLength):
  // kComplete when no body follows, kBody otherwise (kError only if llhttp refuses to start).
  Result start(http::Framing framing, uint64_t content_length, llhttp_type_t type, BodySink* sink);
  Result feed(const char* data, size_t len);
  // The peer closed: completes a close-delimited body, errors on a truncated one.
  Result finish();
  bool complete() const { return complete_; }
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_extension(llhttp_t* p, const char* at, size_t len);
  Result run(const char* data, size_t len);

  http::Framing framing_ = http::Framing::kNone;
  uint64_t remaining_ = 0;       // kContentLength: body bytes still to come
  llhttp_t parser_;
  llhttp_settings_t settings_;
  BodySink* sink_ = nullptr;
  const char* buf_end_ = nullptr;
  uint64_t chunk_remaining_ = 0;
  uint64_t body_bytes_ = 0;
  uint32_t chunk_ext_bytes_ = 0;
  uint8_t crlf_expected_ = 0;  // chunk-closing CRLF bytes still to check at the next input
  bool in_chunk_ = false;
  bool complete_ = false;
  const char* error_ = nullptr;
};

}  // namespace berth
