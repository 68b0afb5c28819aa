// The per-loop deadline wheel, without a loop: filing, moving a deadline later (no list touched)
// and earlier (re-filed), clearing, removing, the order entries come due, and that no entry is
// ever passed to fire before its deadline.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "proxy/base/clock.h"
#include "proxy/net/deadline_wheel.h"

using namespace berth;

namespace {

constexpr uint64_t kStart = 1'000'000;  // loop time is ms since boot: never zero
constexpr uint64_t kSlot = DeadlineWheel::kSlotMs;

struct Item : DeadlineEntry {
  int id = 0;
};

// Advances the wheel to `now`, returning the ids fired; each must be due.
std::vector<int> run(DeadlineWheel& w, uint64_t now) {
  std::vector<int> fired;
  w.advance(now, [&](DeadlineEntry* e) {
    CHECK(e->deadline != 0);
    CHECK(e->deadline <= now);
    CHECK_FALSE(e->filed());
    fired.push_back(static_cast<Item*>(e)->id);
  });
  return fired;
}

}  // namespace

TEST_CASE("a filed deadline fires once, at its slot and not before") {
  DeadlineWheel w(kStart);
  Item a;
  a.id = 1;
  const uint64_t due = w.set(&a, kStart + 100);
  CHECK(due >= kStart + 100);
  CHECK(due < kStart + 100 + kSlot);
  CHECK(w.next_due() == due);
  CHECK(run(w, kStart + 99).empty());
  CHECK(run(w, due) == std::vector<int>{1});
  CHECK(w.filed() == 0);
  CHECK(w.next_due() == 0);
  CHECK(run(w, due + 10'000).empty());
}

TEST_CASE("moving a deadline later touches no list; it fires at the new time") {
  DeadlineWheel w(kStart);
  Item a;
  a.id = 1;
  const uint64_t due = w.set(&a, kStart + 100);
  CHECK(w.set(&a, kStart + 5'000) == 0);  // nothing re-filed, the timer stays as it is
  CHECK(w.next_due() == due);
  CHECK(run(w, due).empty());  // looked at, re-filed
  CHECK(a.filed());
  CHECK(run(w, kStart + 4'999).empty());
  CHECK(run(w, kStart + 5'000 + kSlot) == std::vector<int>{1});
}

TEST_CASE("moving a deadline earlier re-files it and reports the earlier slot") {
  DeadlineWheel w(kStart);
  Item a;
  a.id = 1;
  w.set(&a, kStart + 5'000);
  const uint64_t due = w.set(&a, kStart + 50);
  CHECK(due >= kStart + 50);
  CHECK(due < kStart + 50 + kSlot);
  CHECK(w.next_due() == due);
  CHECK(run(w, due) == std::vector<int>{1});
}

TEST_CASE("a cleared deadline never fires and leaves the wheel when its slot comes") {
  DeadlineWheel w(kStart);
  Item a;
  a.id = 1;
  w.set(&a, kStart + 100);
  CHECK(w.set(&a, 0) == 0);
  CHECK(run(w, kStart + 1'000).empty());
  CHECK(w.filed() == 0);
  // Set again after clearing: filed anew.
  CHECK(w.set(&a, kStart + 2'000) != 0);
  CHECK(run(w, kStart + 2'000 + kSlot) == std::vector<int>{1});
}

TEST_CASE("a removed entry is out of the wheel at once") {
  DeadlineWheel w(kStart);
  Item a, b;
  a.id = 1;
  b.id = 2;
  w.set(&a, kStart + 100);
  w.set(&b, kStart + 100);
  w.remove(&a);
  CHECK_FALSE(a.filed());
  CHECK(w.filed() == 1);
  CHECK(run(w, kStart + 200) == std::vector<int>{2});
}

TEST_CASE("entries come due in deadline order across slots and beyond the horizon") {
  DeadlineWheel w(kStart);
  const uint64_t horizon = DeadlineWheel::kSlots * kSlot;
  std::vector<uint64_t> offsets = {700, 30, 2 * horizon + 5, 300, horizon + 40, 1};
  std::vector<Item> items(offsets.size());
  for (size_t i = 0; i < items.size(); ++i) {
    items[i].id = static_cast<int>(offsets[i]);
    w.set(&items[i], kStart + offsets[i]);
  }
  std::vector<int> order;
  for (uint64_t t = kStart; w.filed() > 0; t += 7) {
    for (int id : run(w, t)) order.push_back(id);
  }
  std::vector<int> want = {1, 30, 300, 700, static_cast<int>(horizon + 40), static_cast<int>(2 * horizon + 5)};
  CHECK(order == want);
}

TEST_CASE("fire may set deadlines, its own included; those go to later slots") {
  DeadlineWheel w(kStart);
  Item a, b;
  a.id = 1;
  b.id = 2;
  w.set(&a, kStart + 10);
  w.set(&b, kStart + 10);
  int fired = 0;
  const uint64_t t = kStart + 10 + kSlot;
  w.advance(t, [&](DeadlineEntry* e) {
    ++fired;
    w.set(e, t);  // due now: must wait for the next slot, not loop forever
    if (e == &a) w.remove(&b);
  });
  CHECK(fired == 1);  // b was removed before its turn
  CHECK(a.filed());
  CHECK_FALSE(b.filed());
  CHECK(run(w, t + kSlot) == std::vector<int>{1});
}

TEST_CASE("random moves never fire early and never lose an entry") {
  DeadlineWheel w(kStart);
  std::mt19937 rng(7);
  std::vector<Item> items(200);
  for (size_t i = 0; i < items.size(); ++i) items[i].id = static_cast<int>(i);
  uint64_t now = kStart;
  std::vector<uint64_t> want(items.size(), 0);
  for (int step = 0; step < 5'000; ++step) {
    Item& it = items[rng() % items.size()];
    switch (rng() % 4) {
      case 0: want[it.id] = 0; w.set(&it, 0); break;
      case 1: want[it.id] = 0; w.remove(&it); break;
      default: want[it.id] = now + 1 + rng() % 20'000; w.set(&it, want[it.id]); break;
    }
    now += rng() % 40;
    w.advance(now, [&](DeadlineEntry* e) {
      auto* x = static_cast<Item*>(e);
      CHECK(want[x->id] != 0);
      CHECK(want[x->id] <= now);
      CHECK(x->deadline == want[x->id]);
      want[x->id] = 0;
    });
    // Nothing overdue by more than a slot is still waiting.
    for (size_t i = 0; i < items.size(); ++i)
      if (want[i] && want[i] + kSlot <= now) FAIL("entry " << i << " overdue");
  }
}

TEST_CASE("late timers: a timeout that fired well after it was due is moved once by the time it lost",
          "[timers]") {
  using berth::late_timer_extension;
  // On time, or within 50 ms of it: the timeout stands.
  CHECK(late_timer_extension(1000, 1000, 300, false) == 0);
  CHECK(late_timer_extension(1000, 1050, 300, false) == 0);
  // The loop was held up 200 ms past the deadline: 200 ms more, once.
  CHECK(late_timer_extension(1000, 1200, 300, false) == 200);
  CHECK(late_timer_extension(1000, 1200, 300, true) == 0);
  // Held up longer than the timeout: at most the timeout again.
  CHECK(late_timer_extension(1000, 9000, 300, false) == 300);
  CHECK(late_timer_extension(1000, 9000, 0, false) == 1);  // never 0: the loop polls I/O first
}
