#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

namespace berth {

// Which of a free list's items a periodic trim may release. The list is used from its head, so
// the fewest items it held over a span of time are items nobody took in that span.
// - A quiet interval (nothing taken): everything beyond the warm ones goes, so that a burst's
//   peak leaves soon after the burst.
// - Under load: only what stayed unused for the last kIntervals intervals. A load's demand peaks
//   vary from one interval to the next; releasing on one short interval's low would unmap what
//   the next peak maps and faults in again (a stall of milliseconds every trim).
class LowWater {
 public:
  static constexpr size_t kIntervals = 8;

  // After an item is taken from the list, with `left` still free.
  void taken(size_t left) {
    if (left < low_) low_ = left;
    took_ = true;
  }
  // How many the trim may release from the list's tail, with `free_now` items free, keeping at
  // least `keep_warm`.
  size_t surplus(size_t free_now, size_t keep_warm) const {
    size_t unused = free_now;
    if (took_) {
      unused = low_;
      for (size_t l : lows_) unused = std::min(unused, l);
    }
    return std::min(unused, free_now > keep_warm ? free_now - keep_warm : 0);
  }
  // The trim released `released` items from the tail and leaves `free_now`: the next interval
  // starts.
  void restart(size_t released, size_t free_now) {
    lows_[next_] = low_;
    next_ = (next_ + 1) % kIntervals;
    for (size_t& l : lows_) l = l > released ? l - released : 0;
    low_ = free_now;
    took_ = false;
  }
  // The whole trim of a singly linked free list (most recently used first, linked through
  // `next_free`, `count` long): the surplus is unlinked from the tail and handed to `release`.
  // Returns how many went.
  template <class Node, class Count, class Release>
  size_t trim_list(Node*& head, Count& count, size_t keep_warm, Release release) {
    const size_t n = surplus(count, keep_warm);
    if (n > 0) {
      Node** link = &head;
      for (size_t i = n; i < count; ++i) link = &(*link)->next_free;
      while (Node* node = *link) {
        *link = node->next_free;
        release(node);
      }
      count -= static_cast<Count>(n);
    }
    restart(n, count);
    return n;
  }

 private:
  std::array<size_t, kIntervals> lows_{};  // the lows of the last intervals, oldest overwritten
  size_t next_ = 0;
  size_t low_ = 0;
  bool took_ = false;
};

}  // namespace berth
