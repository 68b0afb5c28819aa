// An HTTP/1.1 response parser for the Docker API client (llhttp underneath). Bytes go in as
// they arrive, in any split; out come the status and headers, then de-chunked body bytes, then
// completion. Pure: no sockets, unit-tested with arbitrary splits.
#pragma once

#include <llhttp.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::discovery {

struct ResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  // First value of a header (name in lower case), or "".
  std::string header(std::string_view name) const;
};

class HttpResponseParser {
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
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);

  Callbacks callbacks_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  ResponseHead head_;
  std::string field_, value_;
  bool in_value_ = false;
  bool head_done_ = false;
  bool complete_ = false;
  std::string error_;
};

}  // namespace berth::discovery
