#include "proxy/http/message_parser.h"

#include <algorithm>
#include <cstring>

#include "proxy/http/http_head.h"

namespace berth {
namespace {
constexpr uint32_t kMaxChunkExtensionBytes = 4096;  // a size line's extensions, ';' and '=' included
// The trailer section (dropped, but the last chunk waits for its end): bounded as a head is by
// default (limits.max_header_bytes, max_headers), name and value bytes.
constexpr uint32_t kMaxTrailerBytes = 32 * 1024;
constexpr uint32_t kMaxTrailerFields = 100;

// Whether every one of the `len` bytes at `at` satisfies `pred`.
template <typename Pred>
bool all_bytes(const char* at, size_t len, Pred pred) {
  return std::all_of(at, at + len, [&pred](char c) { return pred(static_cast<unsigned char>(c)); });
}
}  // namespace

bool chunked_prefix_valid(std::string_view body) {
  if (body.empty()) return true;
  struct Discard final : BodySink {
    void on_body_data(const char*, size_t) override {}
  } discard;
  MessageParser probe;
  if (probe.start(http::Framing::kChunked, 0, HTTP_REQUEST, &discard).state == MessageParser::State::kError)
    return false;
  return probe.feed(body.data(), body.size()).state != MessageParser::State::kError;
}

MessageParser::Result MessageParser::start(http::Framing framing, uint64_t content_length, llhttp_type_t type,
                                           BodySink* sink) {
  framing_ = framing;
  sink_ = sink;
  remaining_ = framing == http::Framing::kContentLength ? content_length : 0;
  buf_end_ = nullptr;
  chunk_remaining_ = 0;
  body_bytes_ = 0;
  chunk_ext_bytes_ = 0;
  field_name_bytes_ = 0;
  trailer_bytes_ = 0;
  trailer_fields_ = 0;
  ext_name_bytes_ = 0;
  ext_value_bytes_ = 0;
  ext_value_then_semicolon_ = false;
  resume_with_semicolon_ = false;
  crlf_expected_ = 0;
  in_chunk_ = false;
  check_framing_ = false;
  cr_pending_ = false;
  after_lf_ = false;
  complete_ = framing == http::Framing::kNone || (framing == http::Framing::kContentLength && remaining_ == 0);
  error_ = nullptr;
  if (complete_) return {State::kComplete, 0, ""};
  if (framing != http::Framing::kChunked) return {State::kBody, 0, ""};
  // Chunked: llhttp decodes it. Prime it with a head that declares nothing but the framing (the
  // real head was validated already); the method of a request head allows a body.
  llhttp_settings_init(&settings_);
  settings_.on_body = &MessageParser::on_body;
  settings_.on_message_complete = &MessageParser::on_message_complete;
  settings_.on_chunk_header = &MessageParser::on_chunk_header;
  settings_.on_chunk_extension_name = &MessageParser::on_chunk_extension_name;
  settings_.on_chunk_extension_name_complete = &MessageParser::on_chunk_extension_name_complete;
  settings_.on_chunk_extension_value = &MessageParser::on_chunk_extension_value;
  settings_.on_chunk_extension_value_complete = &MessageParser::on_chunk_extension_value_complete;
  settings_.on_header_field = &MessageParser::on_field_name;
  settings_.on_header_field_complete = &MessageParser::on_field_name_complete;
  settings_.on_header_value = &MessageParser::on_field_value;
  llhttp_init(&parser_, type, &settings_);
  parser_.data = this;
  static constexpr std::string_view kRequestHead = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  static constexpr std::string_view kResponseHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string_view head = type == HTTP_REQUEST ? kRequestHead : kResponseHead;
  Result r = run(head.data(), head.size());
  r.consumed = 0;
  check_framing_ = true;
  return r;
}

MessageParser::Result MessageParser::feed(const char* data, size_t len) {
  if (complete_) return {State::kComplete, 0, ""};
  if (error_) return {State::kError, 0, error_};
  if (framing_ == http::Framing::kContentLength) {
    const size_t take = len < remaining_ ? len : static_cast<size_t>(remaining_);
    remaining_ -= take;
    body_bytes_ += take;
    if (take) sink_->on_body_data(data, take);
    if (remaining_ > 0) return {State::kBody, len, ""};
    complete_ = true;
    return {State::kComplete, take, ""};
  }
  if (framing_ == http::Framing::kUntilClose) {
    body_bytes_ += len;
    if (len) sink_->on_body_data(data, len);
    return {State::kBody, len, ""};
  }
  // The CRLF closing the previous chunk's data started in the previous input.
  size_t i = 0;
  while (crlf_expected_ > 0 && i < len) {
    const char want = crlf_expected_ == 2 ? '\r' : '\n';
    if (data[i] != want) {
      error_ = "invalid chunk terminator";
      return {State::kError, 0, error_};
    }
    --crlf_expected_;
    ++i;
  }
  return run(data, len);
}

MessageParser::Result MessageParser::finish() {
  if (complete_) return {State::kComplete, 0, ""};
  if (framing_ == http::Framing::kUntilClose) {
    complete_ = true;
    return {State::kComplete, 0, ""};
  }
  if (framing_ == http::Framing::kContentLength) return {State::kError, 0, "message truncated by close"};
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (complete_ || err == HPE_PAUSED) return {State::kComplete, 0, ""};
  if (err != HPE_OK) return {State::kError, 0, error_ ? error_ : llhttp_errno_name(err)};
  // llhttp_finish returns OK without completing when the message needed more bytes.
  return {State::kError, 0, "message truncated by close"};
}

bool MessageParser::check_lines(const char* to) {
  for (const char* p = scan_from_; p < to; ++p) {
    const char c = *p;
    if (cr_pending_ ? c != '\n' : c == '\n') {  // a CR's next byte; no bare LF
      error_ = "invalid line ending in chunked framing";
      return false;
    }
    if (after_lf_ && (c == ' ' || c == '\t')) {
      error_ = "folded line in chunked framing";
      return false;
    }
    cr_pending_ = c == '\r';
    after_lf_ = c == '\n';
  }
  scan_from_ = to;
  return true;
}

MessageParser::Result MessageParser::run(const char* data, size_t len) {
  buf_end_ = data + len;
  scan_from_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  // Paused just after the ';' that ended a token-valued chunk extension (llhttp 8.1 took it and
  // wants another): the ';' is fed again on its own, then the rest of the input from there. No
  // callback runs for that ';' (llhttp then waits for the next extension's name), so buf_end_,
  // scan_from_ and the counts all stay with the caller's bytes, where the ';' is checked once.
  while (err == HPE_PAUSED && resume_with_semicolon_) {
    resume_with_semicolon_ = false;
    const char* rest = llhttp_get_error_pos(&parser_);
    llhttp_resume(&parser_);
    err = llhttp_execute(&parser_, ";", 1);
    if (err == HPE_OK && rest < buf_end_) err = llhttp_execute(&parser_, rest, static_cast<size_t>(buf_end_ - rest));
  }
  Result r;
  switch (err) {
    case HPE_OK:
      if (check_framing_ && !check_lines(buf_end_)) return {State::kError, 0, error_};
      r.state = State::kBody;
      r.consumed = len;
      break;
    case HPE_PAUSED:
      r.consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      if (check_framing_ && !check_lines(data + r.consumed)) {
        complete_ = false;
        return {State::kError, 0, error_};
      }
      r.state = State::kComplete;
      break;
    case HPE_PAUSED_UPGRADE:
      r.state = State::kUpgrade;
      r.consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      break;
    default:
      r.state = State::kError;
      r.reason = error_ ? error_ : llhttp_get_error_reason(&parser_);
      if (!error_) error_ = r.reason ? r.reason : "parse error";
      break;
  }
  return r;
}

int MessageParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  // The size line before these bytes is checked before any of them goes on.
  if (self->check_framing_ && !self->check_lines(at)) return -1;
  self->scan_from_ = at + len;
  self->after_lf_ = false;
  self->body_bytes_ += len;
  self->sink_->on_body_data(at, len);
  if (!self->in_chunk_) return 0;
  self->chunk_remaining_ -= len;
  if (self->chunk_remaining_ > 0) return 0;
  self->in_chunk_ = false;
  // The chunk's data must be followed by exactly CRLF (llhttp 8.1 accepts any two bytes).
  const char* after = at + len;
  const size_t avail = static_cast<size_t>(self->buf_end_ - after);
  if (avail >= 2) {
    if (after[0] != '\r' || after[1] != '\n') {
      self->error_ = "invalid chunk terminator";
      return -1;
    }
  } else if (avail == 1) {
    if (after[0] != '\r') {
      self->error_ = "invalid chunk terminator";
      return -1;
    }
    self->crlf_expected_ = 1;
  } else {
    self->crlf_expected_ = 2;
  }
  return 0;
}

int MessageParser::on_chunk_header(llhttp_t* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  self->chunk_remaining_ = p->content_length;
  self->in_chunk_ = self->chunk_remaining_ > 0;
  self->chunk_ext_bytes_ = 0;
  return 0;
}

int MessageParser::on_chunk_extension(llhttp_t* p, const char*, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  self->chunk_ext_bytes_ += static_cast<uint32_t>(len);
  if (self->chunk_ext_bytes_ > kMaxChunkExtensionBytes) {
    self->error_ = "chunk extension too long";
    return -1;
  }
  return 0;
}

int MessageParser::on_chunk_extension_name(llhttp_t* p, const char* at, size_t len) {
  static_cast<MessageParser*>(p->data)->ext_name_bytes_ += static_cast<uint32_t>(len);
  return on_chunk_extension(p, at, len);
}

int MessageParser::end_extension_part(uint32_t& bytes, const char* empty_error) {
  if (bytes == 0) {
    error_ = empty_error;
    return -1;
  }
  bytes = 0;
  return 0;
}

int MessageParser::on_chunk_extension_name_complete(llhttp_t* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->end_extension_part(self->ext_name_bytes_, "empty chunk extension name") != 0) return -1;
  return on_chunk_extension(p, nullptr, 1);  // the ';' before the name
}

int MessageParser::on_chunk_extension_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (len > 0 && self->ext_value_bytes_ == 0) self->ext_value_quoted_ = at[0] == '"';
  // A token, or a quoted string: no control byte but HTAB, no DEL (llhttp takes DEL there).
  const bool quoted = self->ext_value_quoted_;
  if (!all_bytes(at, len, [quoted](unsigned char c) {
        return quoted ? (c >= 0x20 || c == '\t') && c != 0x7f : http::is_token_char(c);
      })) {
    self->error_ = "invalid chunk extension value";
    return -1;
  }
  self->ext_value_bytes_ += static_cast<uint32_t>(len);
  // A span that ends before the input does ends the value (one that reaches the input's end is
  // a piece of it): at a ';' when it is a token, llhttp 8.1 takes that ';' (see the header).
  self->ext_value_then_semicolon_ = !quoted && at + len < self->buf_end_ && at[len] == ';';
  return on_chunk_extension(p, at, len);
}

int MessageParser::on_chunk_extension_value_complete(llhttp_t* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->end_extension_part(self->ext_value_bytes_, "empty chunk extension value") != 0) return -1;
  if (on_chunk_extension(p, nullptr, 1) != 0) return -1;  // the '=' before the value
  if (!self->ext_value_then_semicolon_) return 0;
  self->ext_value_then_semicolon_ = false;
  self->resume_with_semicolon_ = true;
  return HPE_PAUSED;
}

int MessageParser::count_trailer_bytes(size_t len) {
  if (!check_framing_) return 0;  // the primed head
  trailer_bytes_ += static_cast<uint32_t>(len);
  if (trailer_bytes_ <= kMaxTrailerBytes) return 0;
  error_ = "trailer section too large";
  return -1;
}

int MessageParser::on_field_value(llhttp_t* p, const char*, size_t len) {
  return static_cast<MessageParser*>(p->data)->count_trailer_bytes(len);
}

int MessageParser::on_field_name(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (!all_bytes(at, len, [](unsigned char c) { return http::is_token_char(c); })) {
    self->error_ = "invalid trailer field name";
    return -1;
  }
  if (self->count_trailer_bytes(len) != 0) return -1;
  for (size_t i = 0; i < len && self->field_name_bytes_ + i < sizeof self->field_name_; ++i)
    self->field_name_[self->field_name_bytes_ + i] = at[i];
  self->field_name_bytes_ += static_cast<uint32_t>(len);
  return 0;
}

int MessageParser::on_field_name_complete(llhttp_t* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->field_name_bytes_ == 0) {
    self->error_ = "invalid trailer field name";
    return -1;
  }
  if (self->check_framing_ && ++self->trailer_fields_ > kMaxTrailerFields) {
    self->error_ = "too many trailer fields";
    return -1;
  }
  if (self->check_framing_ && self->field_name_bytes_ <= sizeof self->field_name_) {
    const std::string_view name(self->field_name_, self->field_name_bytes_);
    if (http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding")) {
      self->error_ = "framing field in trailers";
      return -1;
    }
  }
  self->field_name_bytes_ = 0;
  return 0;
}

int MessageParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  self->complete_ = true;
  return HPE_PAUSED;
}

}  // namespace berth
