#include "discovery/http_response_parser.h"

#include <algorithm>
#include <cctype>

namespace berth::discovery {

namespace {
constexpr size_t kMaxHeaderBytes = 64 * 1024;
}

std::string ResponseHead::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return {};
}

HttpResponseParser::HttpResponseParser(Callbacks callbacks) : callbacks_(std::move(callbacks)) {
  llhttp_settings_init(&settings_);
  settings_.on_status = nullptr;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

int HttpResponseParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<HttpResponseParser*>(p->data);
  if (self->in_value_) {
    self->head_.headers.emplace_back(std::move(self->field_), std::move(self->value_));
    self->field_.clear();
    self->value_.clear();
    self->in_value_ = false;
  }
  self->field_.append(at, len);
  return self->field_.size() > kMaxHeaderBytes ? -1 : 0;
}

int HttpResponseParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<HttpResponseParser*>(p->data);
  self->in_value_ = true;
  self->value_.append(at, len);
  return self->value_.size() > kMaxHeaderBytes ? -1 : 0;
}

int HttpResponseParser::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<HttpResponseParser*>(p->data);
  if (self->in_value_ || !self->field_.empty()) {
    self->head_.headers.emplace_back(std::move(self->field_), std::move(self->value_));
    self->field_.clear();
    self->value_.clear();
    self->in_value_ = false;
  }
  for (auto& [key, value] : self->head_.headers) {
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  self->head_.status = static_cast<int>(p->status_code);
  // 1xx interim responses are not expected from the Docker API; treat them as the head anyway.
  self->head_done_ = true;
  if (self->callbacks_.on_head) self->callbacks_.on_head(self->head_);
  return 0;
}

int HttpResponseParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<HttpResponseParser*>(p->data);
  if (self->callbacks_.on_body) self->callbacks_.on_body(std::string_view(at, len));
  return 0;
}

int HttpResponseParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<HttpResponseParser*>(p->data);
  self->complete_ = true;
  if (self->callbacks_.on_complete) self->callbacks_.on_complete();
  return HPE_PAUSED;  // ignore anything after the response
}

bool HttpResponseParser::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  if (complete_ || bytes.empty()) return true;
  llhttp_errno_t rc = llhttp_execute(&parser_, bytes.data(), bytes.size());
  if (rc == HPE_OK || rc == HPE_PAUSED) return true;
  const char* reason = llhttp_get_error_reason(&parser_);
  error_ = std::string("bad HTTP response from the engine: ") + llhttp_errno_name(rc) +
           (reason ? std::string(" (") + reason + ")" : std::string());
  return false;
}

bool HttpResponseParser::finish() {
  if (complete_) return true;
  if (!error_.empty()) return false;
  llhttp_errno_t rc = llhttp_finish(&parser_);
  if (rc == HPE_OK && complete_) return true;
  error_ = head_done_ ? "connection closed before the end of the response"
                      : "connection closed before a response";
  return false;
}

}  // namespace berth::discovery
