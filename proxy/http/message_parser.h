// Body framing for one HTTP/1.x message, started from the framing that http_head.h worked out
// when it validated the head (each head is parsed once). A Content-Length or close-delimited
// body is counted here; only a chunked body goes through llhttp (strict mode, no lenient
// flags), primed with a minimal chunked head. Body bytes are handed to the sink as slices of the
// caller's buffer (no copy). Trailer fields are read and dropped: nothing of them is passed on.
//
// Berth adds what llhttp 8.1 does not check itself (each found by tests/unit/http_fuzz_test.cc
// or tests/integration/smuggling_test.cc):
// - the CRLF that must close every chunk's data (llhttp takes any two bytes);
// - every line of the framing (size lines with their extensions, trailer fields, the last empty
//   line) ends in CRLF: llhttp takes a CR followed by any byte, and a bare LF as the last line;
// - no line is folded onto the one before (obs-fold, which llhttp takes in trailers);
// - a trailer field's name is a token (llhttp takes spaces, and an empty name), and not
//   Content-Length or Transfer-Encoding (llhttp refuses those in a request's trailers but not in
//   a response's; framing fields have no place there, RFC 9110 section 6.5.1);
// - a chunk extension has a name and, after '=', a value that is a token or a quoted string
//   without control bytes (llhttp takes ";;", ";a=", ";a=b\"c\"" and DEL inside quotes);
// - a size cap on chunk extensions, and on the trailer section (bytes and fields), which llhttp
//   takes at any length.
// And Berth works around llhttp 8.1 refusing a token-valued chunk extension followed by another
// one (";a=1;b", valid): it takes the ';' that ends the value and then wants another ';' or the
// CR. Berth pauses llhttp right after that ';' and hands it a ';' of its own before the rest
// (see run()), which also refuses the ";a=1;;b" and ";a=1;" llhttp took.
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

// Whether `body`, the first bytes of a chunked body as far as they have arrived, frame a valid
// start of one: they are run through a MessageParser of their own, so whatever the body parser
// would refuse in them (a size that is not hex or overflows, an extension out of grammar, chunk
// data not followed by CRLF, a bare LF...) is found before any instance sees the request.
// Incomplete input is valid; bytes after the body's end (a pipelined request) are not looked at.
bool chunked_prefix_valid(std::string_view body);

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
  static int on_chunk_extension_name(llhttp_t* p, const char* at, size_t len);
  static int on_chunk_extension_name_complete(llhttp_t* p);
  static int on_chunk_extension_value(llhttp_t* p, const char* at, size_t len);
  static int on_chunk_extension_value_complete(llhttp_t* p);
  // The end of an extension's name or value: refused when it was empty, else counted afresh.
  int end_extension_part(uint32_t& bytes, const char* empty_error);
  static int on_field_name(llhttp_t* p, const char* at, size_t len);
  static int on_field_name_complete(llhttp_t* p);
  static int on_field_value(llhttp_t* p, const char* at, size_t len);
  // Trailer name and value bytes (none while the primed head runs): -1, with error_ set, past the cap.
  int count_trailer_bytes(size_t len);
  Result run(const char* data, size_t len);
  // Checks the framing bytes [scan_from_, to): every CR followed by LF, every LF preceded by CR,
  // no SP or HTAB right after an LF (carried across inputs in cr_pending_ and after_lf_). False,
  // with error_ set, when one is not.
  bool check_lines(const char* to);

  http::Framing framing_ = http::Framing::kNone;
  uint64_t remaining_ = 0;       // kContentLength: body bytes still to come
  llhttp_t parser_;
  llhttp_settings_t settings_;
  BodySink* sink_ = nullptr;
  const char* buf_end_ = nullptr;
  const char* scan_from_ = nullptr;  // the framing bytes of this input not checked yet
  uint64_t chunk_remaining_ = 0;
  uint64_t body_bytes_ = 0;
  uint32_t chunk_ext_bytes_ = 0;
  uint32_t field_name_bytes_ = 0;  // of the field name being read (trailers; the primed head)
  uint32_t trailer_bytes_ = 0;     // trailer names and values so far
  uint32_t trailer_fields_ = 0;
  char field_name_[18] = {};       // its first bytes: enough to tell the framing fields
  uint32_t ext_name_bytes_ = 0;    // of the chunk extension name being read
  uint32_t ext_value_bytes_ = 0;   // ...and of its value
  bool ext_value_quoted_ = false;  // the value began with '"' (llhttp checks its quoting)
  bool ext_value_then_semicolon_ = false;  // the token value just read ended at a ';'
  bool resume_with_semicolon_ = false;     // llhttp paused there and is owed that ';' (run())
  uint8_t crlf_expected_ = 0;  // chunk-closing CRLF bytes still to check at the next input
  bool in_chunk_ = false;
  bool check_framing_ = false;  // off while the primed head runs
  bool cr_pending_ = false;     // the framing checked so far ends in a CR
  bool after_lf_ = false;       // ...in an LF (chunk data between breaks this)
  bool complete_ = false;
  const char* error_ = nullptr;
};

}  // namespace berth
