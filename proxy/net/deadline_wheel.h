// Per-loop deadlines of streams, checked lazily: a coarse timer wheel of intrusive lists, one
// slot per kSlotMs of loop time. Each entry has one deadline (loop ms, 0 = none) and is filed
// in the slot of the first tick at or after it, so it never fires early. Moving a deadline
// later, or clearing it, touches no list: the entry is looked at again when its slot comes and
// is then dropped, re-filed or fired. Only a deadline moving earlier than its slot re-files it.
// Deadlines beyond the wheel's horizon wait in the farthest slot and are re-filed from there.
// Pure: no libuv; IoContext drives it with one uv timer per loop.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth {

struct DeadlineEntry {
  DeadlineEntry* prev = nullptr;
  DeadlineEntry* next = nullptr;  // null when not filed
  uint64_t deadline = 0;          // loop ms; 0 = none
  uint64_t tick = 0;              // the slot's tick while filed
  bool filed() const { return next != nullptr; }
};

class DeadlineWheel {
 public:
  static constexpr uint64_t kSlotMs = 16;
  static constexpr uint64_t kSlots = 512;  // about 8 s ahead

  explicit DeadlineWheel(uint64_t now);
  ~DeadlineWheel();
  DeadlineWheel(const DeadlineWheel&) = delete;
  DeadlineWheel& operator=(const DeadlineWheel&) = delete;

  // Sets e's deadline (0 clears it). Returns the loop ms at which e's slot is due if e was
  // (re-)filed, 0 if no list was touched.
  uint64_t set(DeadlineEntry* e, uint64_t deadline);
  // Takes e out of the wheel for good (its owner is going away).
  void remove(DeadlineEntry* e);
  // Looks at every slot due by `now`: entries whose deadline has passed are taken out and
  // passed to fire(e), in slot order; fire may set or remove any entry. Others are re-filed.
  template <class Fire>
  void advance(uint64_t now, Fire&& fire);
  // Loop ms at which the next non-empty slot is due; 0 when nothing is filed.
  uint64_t next_due() const;
  size_t filed() const { return filed_; }

 private:
  void file(DeadlineEntry* e);
  static void unlink(DeadlineEntry* e);
  static void push(DeadlineEntry* head, DeadlineEntry* e);

  DeadlineEntry slots_[kSlots];  // list heads (circular, the head is a sentinel)
  uint64_t current_;             // the last tick looked at
  size_t filed_ = 0;
};

template <class Fire>
void DeadlineWheel::advance(uint64_t now, Fire&& fire) {
  const uint64_t target = now / kSlotMs;
  if (filed_ == 0) {
    if (target > current_) current_ = target;
    return;
  }
  DeadlineEntry due;
  due.prev = due.next = &due;
  while (current_ < target && filed_ > 0) {
    ++current_;
    DeadlineEntry* head = &slots_[current_ % kSlots];
    if (head->next == head) continue;
    // Move the slot to a local list: whatever fire() files goes to later ticks.
    due.next = head->next;
    due.prev = head->prev;
    due.next->prev = &due;
    due.prev->next = &due;
    head->prev = head->next = head;
    while (due.next != &due) {
      DeadlineEntry* e = due.next;
      unlink(e);
      --filed_;
      if (e->deadline == 0) continue;
      if (e->deadline <= now) fire(e);
      else file(e);
    }
  }
  if (current_ < target) current_ = target;
}

}  // namespace berth
