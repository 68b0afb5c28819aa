// SlotPool: slots from 64 KiB slabs; empty slabs go back to the kernel but one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "proxy/base/slot_pool.h"

namespace berth {
namespace {

uintptr_t slab_of(void* p) { return reinterpret_cast<uintptr_t>(p) & ~(uintptr_t{SlotPool::kSlabBytes} - 1); }

TEST_CASE("slot pool: slots are distinct, aligned, and their slabs few", "[slot_pool]") {
  SlotPool pool(360);
  CHECK(pool.slot_size() == 368);  // rounded up to 16
  const size_t per = pool.slots_per_slab();
  CHECK(per * 368 + 16 <= SlotPool::kSlabBytes);  // a small header in each slab, then slots
  CHECK(per >= (SlotPool::kSlabBytes - 64) / 368);
  const size_t n = 3 * per + 5;
  std::vector<void*> slots;
  for (size_t i = 0; i < n; ++i) {
    void* p = pool.allocate();
    CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0);
    std::memset(p, static_cast<int>(i & 0xff), pool.slot_size());  // every byte is usable
    slots.push_back(p);
  }
  CHECK(pool.slots_in_use() == n);
  CHECK(pool.slabs() == 4);
  std::set<uintptr_t> slabs;
  std::vector<void*> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    slabs.insert(slab_of(sorted[i]));
    if (i > 0 && slab_of(sorted[i]) == slab_of(sorted[i - 1]))
      CHECK(static_cast<char*>(sorted[i]) - static_cast<char*>(sorted[i - 1]) >= 368);  // no overlap
  }
  CHECK(slabs.size() == 4);
  // What was written stayed: no slot overlaps another.
  for (size_t i = 0; i < n; ++i) {
    const auto* b = static_cast<const unsigned char*>(slots[i]);
    CHECK((b[0] == (i & 0xff) && b[367] == (i & 0xff)));
  }
  for (void* p : slots) SlotPool::release(p);
  CHECK(pool.slots_in_use() == 0);
  CHECK(pool.slabs() == 1);  // one kept warm
}

TEST_CASE("slot pool: a released slot is used again, and the warm slab comes last", "[slot_pool]") {
  SlotPool pool(100);
  void* a = pool.allocate();
  void* b = pool.allocate();
  SlotPool::release(a);
  CHECK(pool.allocate() == a);  // the freed slot first, before untouched ones
  // Fill the first slab, open a second one, then empty the first: it stays as the warm slab,
  // and new slots come from the second (in use) until it is full.
  std::vector<void*> first = {a, b};
  while (pool.slabs() == 1) first.push_back(pool.allocate());
  void* second = first.back();
  first.pop_back();
  CHECK(slab_of(second) != slab_of(a));
  for (void* p : first) SlotPool::release(p);
  CHECK(pool.slabs() == 2);
  void* next = pool.allocate();
  CHECK(slab_of(next) == slab_of(second));
  SlotPool::release(next);
  SlotPool::release(second);
  CHECK(pool.slabs() == 1);
  CHECK(pool.slots_in_use() == 0);
}

TEST_CASE("slot pool: random churn keeps counts exact and frees empty slabs", "[slot_pool]") {
  SlotPool pool(360);
  std::mt19937 rng(7);
  std::vector<void*> live;
  std::set<void*> seen_live;
  for (int step = 0; step < 200000; ++step) {
    // Grow to a few thousand, then shrink to none, twice.
    const int phase = (step / 50000) % 2;
    const bool add = live.empty() || (phase == 0 ? rng() % 4 != 0 : rng() % 4 == 0);
    if (add) {
      void* p = pool.allocate();
      REQUIRE(seen_live.insert(p).second);  // never handed out twice
      live.push_back(p);
    } else {
      const size_t i = rng() % live.size();
      seen_live.erase(live[i]);
      SlotPool::release(live[i]);
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 997 == 0) {
      REQUIRE(pool.slots_in_use() == live.size());
      // Mapped: the slabs holding live slots, and at most one empty slab kept warm.
      std::set<uintptr_t> used;
      for (void* p : live) used.insert(slab_of(p));
      REQUIRE(pool.slabs() <= used.size() + 1);
    }
  }
  for (void* p : live) SlotPool::release(p);
  CHECK(pool.slots_in_use() == 0);
  CHECK(pool.slabs() == 1);
}

}  // namespace
}  // namespace berth
