// Heap trims asked for by workers run once, on the control loop's next tick.
#include <catch2/catch.hpp>

#include "proxy/base/heap_trim.h"

TEST_CASE("heap trim: a request runs one trim, then nothing until asked again", "[base]") {
  berth::run_requested_heap_trim();  // whatever an earlier test left
  CHECK_FALSE(berth::run_requested_heap_trim());
  berth::request_heap_trim();
  berth::request_heap_trim();  // asking twice before the tick: one trim
  CHECK(berth::run_requested_heap_trim());
  CHECK_FALSE(berth::run_requested_heap_trim());
}
