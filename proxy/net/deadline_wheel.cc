#include "proxy/net/deadline_wheel.h"

namespace berth {

DeadlineWheel::DeadlineWheel(uint64_t now) : current_(now / kSlotMs) {
  for (auto& s : slots_) s.prev = s.next = &s;
}

// Entries still filed are not touched: their owners may be gone already.
DeadlineWheel::~DeadlineWheel() = default;

void DeadlineWheel::unlink(DeadlineEntry* e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
  e->prev = e->next = nullptr;
}

void DeadlineWheel::push(DeadlineEntry* head, DeadlineEntry* e) {
  e->prev = head->prev;
  e->next = head;
  head->prev->next = e;
  head->prev = e;
}

// The first tick whose time is at or after the deadline, never the tick being looked at, and
// within the horizon (a farther deadline waits in the last slot and is re-filed from there).
void DeadlineWheel::file(DeadlineEntry* e) {
  uint64_t tick = (e->deadline + kSlotMs - 1) / kSlotMs;
  if (tick <= current_) tick = current_ + 1;
  if (tick >= current_ + kSlots) tick = current_ + kSlots - 1;
  e->tick = tick;
  push(&slots_[tick % kSlots], e);
  ++filed_;
}

uint64_t DeadlineWheel::set(DeadlineEntry* e, uint64_t deadline) {
  e->deadline = deadline;
  if (deadline == 0) return 0;  // cleared lazily: dropped when its slot comes
  if (e->filed()) {
    uint64_t tick = (deadline + kSlotMs - 1) / kSlotMs;
    if (tick >= e->tick) return 0;  // later (or same slot): looked at when the slot comes
    unlink(e);
    --filed_;
  }
  file(e);
  return e->tick * kSlotMs;
}

void DeadlineWheel::remove(DeadlineEntry* e) {
  e->deadline = 0;
  if (!e->filed()) return;
  unlink(e);
  --filed_;
}

uint64_t DeadlineWheel::next_due() const {
  if (filed_ == 0) return 0;
  for (uint64_t t = current_ + 1; t < current_ + kSlots; ++t) {
    const DeadlineEntry* head = &slots_[t % kSlots];
    if (head->next != head) return t * kSlotMs;
  }
  return 0;  // unreachable: every filed entry is within the horizon
}

}  // namespace berth
