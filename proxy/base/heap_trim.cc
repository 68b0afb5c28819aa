#include "proxy/base/heap_trim.h"

#include <malloc.h>

namespace berth {

bool run_requested_heap_trim() noexcept {
  if (!detail::heap_trim_requested.exchange(false, std::memory_order_relaxed)) return false;
  malloc_trim(0);
  return true;
}

}  // namespace berth
