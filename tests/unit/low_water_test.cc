// LowWater and the pools that trim by it: a quiet interval frees a burst's peak, a steady load
// keeps what it cycles through, and what stays unused under load goes after kIntervals.
#include <catch2/catch.hpp>

#include <vector>

#include "proxy/base/buffer_pool.h"
#include "proxy/base/low_water.h"

namespace berth {
namespace {

TEST_CASE("low water: a quiet interval releases all but the warm ones", "[low_water]") {
  LowWater w;
  w.taken(0);  // a burst: the list ran dry
  w.restart(0, 0);
  // The burst ended: 100 items came back, none was taken since.
  CHECK(w.surplus(100, 16) == 84);
  CHECK(w.surplus(10, 16) == 0);
}

TEST_CASE("low water: under load only what no interval took is released", "[low_water]") {
  LowWater w;
  w.restart(0, 100);  // 100 free
  // Each interval's load takes the list down to a low between 30 and 60.
  const size_t lows[] = {50, 30, 60, 45, 55, 40, 35, 60};
  for (size_t low : lows) {
    w.taken(low);
    CHECK(w.surplus(100, 16) == 0);  // not yet kIntervals intervals under load
    w.restart(0, 100);
  }
  static_assert(LowWater::kIntervals == 8);
  // Eight intervals seen: 30 items (the lowest low) were never taken in any of them.
  w.taken(70);
  CHECK(w.surplus(100, 16) == 30);
  CHECK(w.surplus(40, 16) == 24);  // never below the warm ones
  w.restart(30, 70);
  // What was released is gone from every remembered low too: nothing more until the load drops.
  w.taken(50);
  CHECK(w.surplus(70, 16) == 0);
}

TEST_CASE("low water: one busy interval keeps the pool whole", "[low_water]") {
  LowWater w;
  for (size_t i = 0; i < LowWater::kIntervals; ++i) {
    w.taken(90);
    w.restart(0, 100);
  }
  w.taken(0);  // a peak took everything
  CHECK(w.surplus(100, 16) == 0);
}

TEST_CASE("buffer pool: trim keeps a steady load's blocks and frees them once quiet", "[low_water]") {
  BufferPool pool(1024, 256);
  std::vector<Block*> out;
  auto take = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) out.push_back(pool.acquire());
  };
  auto give_back = [&] {
    for (Block* b : out) BufferPool::unref(b);
    out.clear();
  };
  take(100);  // a peak of 100 blocks
  give_back();
  REQUIRE(pool.blocks_free() == 100);
  CHECK(pool.trim(16) == 0);  // the peak's own interval
  // A steady load of 60 blocks at a time, trimmed between: nothing is unmapped for many
  // intervals, although 40 stay unused (they might be the next peak's).
  for (size_t i = 0; i < LowWater::kIntervals; ++i) {
    take(60);
    give_back();
    CHECK(pool.trim(16) == 0);
  }
  CHECK(pool.blocks_free() == 100);
  // Still under load, the 40 never taken in kIntervals intervals go; the load's 60 stay.
  take(60);
  give_back();
  CHECK(pool.trim(16) == 40);
  CHECK(pool.blocks_free() == 60);
  // The load stops: the next trim leaves the warm ones only.
  CHECK(pool.trim(16) == 44);
  CHECK(pool.blocks_free() == 16);
  CHECK(pool.trim(16) == 0);
  // Blocks handed out again are the warm ones, then new mappings; each is whole and usable.
  take(20);
  for (Block* b : out) CHECK(b->capacity == 1024);
  give_back();
  CHECK(pool.blocks_out() == 0);
}

}  // namespace
}  // namespace berth
