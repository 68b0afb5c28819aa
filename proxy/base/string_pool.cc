#include "proxy/base/string_pool.h"

namespace berth {
namespace {
constexpr size_t kMaxFree = 64;
constexpr size_t kMaxKeptCapacity = 64 * 1024;
constexpr size_t kInitialCapacity = 1024;
}  // namespace

StringPool::~StringPool() {
  for (auto* s : free_) delete s;
}

std::string* StringPool::acquire() {
  if (free_.empty()) {
    auto* s = new std::string();
    s->reserve(kInitialCapacity);
    return s;
  }
  std::string* s = free_.back();
  free_.pop_back();
  return s;
}

void StringPool::release(std::string* s) {
  if (s->capacity() > kMaxKeptCapacity || free_.size() >= kMaxFree) {
    delete s;
    return;
  }
  s->clear();
  free_.push_back(s);
}

}  // namespace berth
