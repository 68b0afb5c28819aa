// An HTTP/1.1 response reader for the Docker API client. Bytes go in as they arrive, in any
// split; out come the status and headers, then de-chunked body bytes, then completion. It is the
// proxy's own response parsing (proxy/http: the strict head parser, then MessageParser for the
// body framing), so Berth has one HTTP response parser. Pure: no sockets, unit-tested with
// arbitrary splits.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/message_parser.h"

namespace berth::discovery {

struct ResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  // First value of a header (name in lower case), or "".
  std::string header(std::string_view name) const;
};

class HttpResponseParser final : private BodySink {
 public:
  struct Callbacks {
    std::function<void(const ResponseHead&)> on_head;
    std::function<void(std::string_view)> on_body;
    std::function<void()> on_complete;
  };
  explicit HttpResponseParser(Callbacks callbacks);
  HttpResponseParser(const HttpResponseParser&) = delete;
  HttpResponseParser& operator=(const HttpResponseParser&) = delete;

  // False on a protocol error (error() says why). Bytes after the end of the response are
  // ignored. Callbacks may not destroy the parser.
  bool feed(std::string_view bytes);
  // The peer closed. True when that ends the response cleanly (close-delimited body); false
  // when the response was cut short.
  bool finish();
  bool head_done() const { return head_done_; }
  bool complete() const { return complete_; }
  const std::string& error() const { return error_; }

 private:
  void on_body_data(const char* data, size_t len) override;
  bool take(const MessageParser::Result& r);
  bool fail(std::string why);

  Callbacks callbacks_;
  std::string head_bytes_;    // the head as it arrives
  size_t head_scanned_ = 0;   // how far find_head_end has looked
  MessageParser body_;
  ResponseHead head_;
  bool head_done_ = false;
  bool complete_ = false;
  std::string error_;
};

}  // namespace berth::discovery
