#include "discovery/http_response_parser.h"

#include <algorithm>

#include "proxy/base/ascii.h"
#include "proxy/http/http_head.h"

namespace berth::discovery {

namespace {
constexpr uint32_t kMaxHeadBytes = 64 * 1024;
}

std::string ResponseHead::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return {};
}

HttpResponseParser::HttpResponseParser(Callbacks callbacks) : callbacks_(std::move(callbacks)) {}

bool HttpResponseParser::fail(std::string why) {
  error_ = std::move(why);
  return false;
}

void HttpResponseParser::on_body_data(const char* data, size_t len) {
  if (callbacks_.on_body) callbacks_.on_body(std::string_view(data, len));
}

bool HttpResponseParser::take(const MessageParser::Result& r) {
  switch (r.state) {
    case MessageParser::State::kBody:
      return true;
    case MessageParser::State::kComplete:
    case MessageParser::State::kUpgrade:  // the engine's streams are not upgrades: the end
      complete_ = true;
      if (callbacks_.on_complete) callbacks_.on_complete();
      return true;
    case MessageParser::State::kError:
      break;
  }
  return fail(std::string("bad HTTP response from the engine: ") + r.reason);
}

bool HttpResponseParser::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  if (complete_ || bytes.empty()) return true;
  if (head_done_) return take(body_.feed(bytes.data(), bytes.size()));

  while (true) {
    head_bytes_.append(bytes);
    bytes = {};
    const size_t end = http::find_head_end(head_bytes_.data(), head_bytes_.size(), head_scanned_);
    if (end == 0) {
      // Whatever is not HTTP is refused as soon as its first line or first bytes show it.
      const size_t probe = std::min<size_t>(head_bytes_.size(), 7);
      if (head_bytes_.compare(0, probe, std::string_view("HTTP/1.").substr(0, probe)) != 0)
        return fail("bad HTTP response from the engine: not an HTTP/1 status line");
      head_scanned_ = head_bytes_.size();
      if (head_bytes_.size() > kMaxHeadBytes) return fail("bad HTTP response from the engine: head too large");
      return true;
    }
    http::Limits limits;
    limits.max_header_bytes = kMaxHeadBytes;
    http::ResponseHead parsed;
    const http::Outcome o = http::parse_response_head(std::string_view(head_bytes_.data(), end), limits, false, parsed);
    if (!o.ok()) return fail(std::string("bad HTTP response from the engine: ") + o.detail);
    if (parsed.status >= 100 && parsed.status < 200 && parsed.status != 101) {
      // An interim response (100 Continue, 103 Early Hints): the real one follows.
      head_bytes_.erase(0, end);
      head_scanned_ = 0;
      continue;
    }
    head_.status = parsed.status;
    head_.headers.clear();
    for (const http::Field& f : parsed.fields) {
      std::string name = ascii_lowered(parsed.name(f));
      head_.headers.emplace_back(std::move(name), std::string(parsed.value(f)));
    }
    head_done_ = true;
    if (callbacks_.on_head) callbacks_.on_head(head_);
    if (!take(body_.start(parsed.framing, parsed.content_length, HTTP_RESPONSE, this))) return false;
    if (complete_ || end == head_bytes_.size()) return true;
    std::string rest = head_bytes_.substr(end);
    head_bytes_.clear();
    head_bytes_.shrink_to_fit();
    return take(body_.feed(rest.data(), rest.size()));
  }
}

bool HttpResponseParser::finish() {
  if (complete_) return true;
  if (!error_.empty()) return false;
  if (!head_done_) return fail("connection closed before a response");
  const MessageParser::Result r = body_.finish();
  if (r.state == MessageParser::State::kComplete) {
    complete_ = true;
    if (callbacks_.on_complete) callbacks_.on_complete();
    return true;
  }
  return fail("connection closed before the end of the response");
}

}  // namespace berth::discovery
