// A bounded free list of strings for one thread: heads, replies and split-head copies borrow a
// string with its capacity and give it back, so the request path does not allocate.
#pragma once

#include <string>
#include <vector>

namespace berth {

class StringPool {
 public:
  StringPool() = default;
  ~StringPool();
  StringPool(const StringPool&) = delete;
  StringPool& operator=(const StringPool&) = delete;

  std::string* acquire();
  // Clears it; keeps it unless it grew large or enough are already kept.
  void release(std::string* s);

 private:
  std::vector<std::string*> free_;
};

}  // namespace berth
