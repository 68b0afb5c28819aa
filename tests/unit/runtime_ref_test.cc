// RuntimeRef: a worker's handle on a snapshot, counted without touching the snapshot's shared
// reference count.
#include <catch2/catch.hpp>

#include <memory>

#include "proxy/datapath/runtime.h"

using namespace berth;

TEST_CASE("runtime ref: copies count in the worker's holder, not in the shared snapshot", "[runtime]") {
  auto rt = std::make_shared<Runtime>();
  rt->generation = 7;
  std::weak_ptr<const Runtime> watch = rt;
  RuntimeRef worker = RuntimeRef::hold(rt);  // the worker applies the snapshot
  CHECK(rt.use_count() == 2);                // the control side's and the holder's
  {
    RuntimeRef a = worker, b = worker;       // two requests start on it
    CHECK(worker.use_count() == 3);
    CHECK(rt.use_count() == 2);              // unchanged: no shared count per request
    CHECK(a->generation == 7);
    CHECK(&*b == rt.get());
    RuntimeRef moved = std::move(a);
    CHECK(!a);
    CHECK(worker.use_count() == 3);
  }
  CHECK(worker.use_count() == 1);
  rt.reset();
  // The worker moves on to a new snapshot while a request still holds the old one.
  RuntimeRef request = worker;
  worker = RuntimeRef::hold(std::make_shared<Runtime>());
  CHECK(!watch.expired());
  CHECK(request->generation == 7);
  request.reset();  // the last request lets go: the snapshot goes
  CHECK(watch.expired());
  CHECK(RuntimeRef::hold(nullptr).get() == nullptr);
}
