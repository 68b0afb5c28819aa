#include "proxy/http/replay_buffer.h"

#include <algorithm>
#include <charconv>

namespace berth {
namespace {
// A copy's capacity up to this stays with the (pooled) exchange for the next request.
constexpr size_t kKeepCapacity = 64 * 1024;
// First reservation for a body of unknown length; it grows geometrically, up to the bound.
constexpr uint64_t kInitialChunkedReserve = 4096;
}  // namespace

void ReplayBuffer::start(uint64_t bound, uint64_t length) {
  reset();
  bound_ = bound;
  if (length == kUnknownLength) {
    keeping_ = true;
    grow_to(std::min<uint64_t>(bound, kInitialChunkedReserve));
    return;
  }
  keeping_ = length <= bound;
  if (keeping_) grow_to(length);
}

void ReplayBuffer::add(const char* data, size_t len) {
  seen_ += len;
  if (!keeping_) return;
  if (seen_ > bound_) {
    drop();
    return;
  }
  // Chunked: grow geometrically, but never past the bound.
  if (kept_.capacity() < seen_) grow_to(std::min<uint64_t>(bound_, std::max<uint64_t>(seen_, 2 * kept_.capacity())));
  kept_.append(data, len);
}

void ReplayBuffer::append_framed(bool chunked, bool body_complete, std::string& out) const {
  if (!chunked) {
    out.append(kept_);
    return;
  }
  if (!kept_.empty()) {
    char hex[20];
    auto r = std::to_chars(hex, hex + sizeof hex, static_cast<unsigned long long>(kept_.size()), 16);
    out.append(hex, r.ptr).append("\r\n").append(kept_).append("\r\n");
  }
  if (body_complete) out.append("0\r\n\r\n");
}

// std::string::reserve may round up to twice the old capacity, past the bound: a new string
// reserved from empty gets exactly what is asked.
void ReplayBuffer::grow_to(uint64_t capacity) {
  if (kept_.capacity() >= capacity) return;
  std::string grown;
  grown.reserve(static_cast<size_t>(capacity));
  grown.append(kept_);
  kept_.swap(grown);
}

void ReplayBuffer::drop() {
  keeping_ = false;
  if (kept_.capacity() > kKeepCapacity) std::string().swap(kept_);
  else kept_.clear();
}

void ReplayBuffer::reset() {
  drop();
  bound_ = seen_ = 0;
}

}  // namespace berth
