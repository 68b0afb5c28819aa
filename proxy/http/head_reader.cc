#include "proxy/http/head_reader.h"

#include "proxy/http/http_head.h"
#include "proxy/base/string_pool.h"

namespace berth {

size_t http::empty_lines(const char* data, size_t len, bool& cr_carried) noexcept {
  size_t i = 0;
  if (cr_carried) {
    if (len == 0 || data[0] != '\n') return 0;
    cr_carried = false;
    i = 1;
  }
  while (i < len) {
    if (data[i] == '\n') {
      ++i;
    } else if (data[i] != '\r') {
      break;
    } else if (i + 1 == len) {
      cr_carried = true;
      ++i;
    } else if (data[i + 1] == '\n') {
      i += 2;
    } else {
      break;
    }
  }
  return i;
}

HeadReader::Status HeadReader::feed(StringPool& strings, const char* data, size_t len, size_t& used,
                                    uint32_t max_bytes, uint32_t max_line) {
  started_ = true;
  head_ = {};
  if (!buf_ || buf_->empty()) {
    size_t end = http::find_head_end(data, len, 0);
    if (end) {
      used = end;
      size_t line = http::first_line_length(data, end);
      if (line > max_line) return Status::kLineTooLong;
      if (end > max_bytes) return Status::kTooLarge;
      head_ = std::string_view(data, end);
      return Status::kComplete;
    }
    if (!buf_) buf_ = strings.acquire();
    scanned_ = 0;
  }
  // Slow path: the head spans reads. Never copy more than the limit allows.
  const size_t room = max_bytes + 1 > buf_->size() ? max_bytes + 1 - buf_->size() : 0;
  const size_t take = len < room ? len : room;
  const size_t before = buf_->size();
  buf_->append(data, take);
  size_t end = http::find_head_end(buf_->data(), buf_->size(), scanned_);
  scanned_ = buf_->size();
  size_t line = http::first_line_length(buf_->data(), end ? end : buf_->size());
  if ((line == 0 && buf_->size() > max_line) || line > max_line) {
    used = take;
    return Status::kLineTooLong;
  }
  if (!end) {
    used = take;
    return buf_->size() > max_bytes ? Status::kTooLarge : Status::kNeedMore;
  }
  if (end > max_bytes) {
    used = take;
    return Status::kTooLarge;
  }
  used = end - before;
  buf_->resize(end);
  head_ = *buf_;
  return Status::kComplete;
}

void HeadReader::reset(StringPool& strings) {
  if (buf_) {
    strings.release(buf_);
    buf_ = nullptr;
  }
  head_ = {};
  scanned_ = 0;
  started_ = false;
}

}  // namespace berth
