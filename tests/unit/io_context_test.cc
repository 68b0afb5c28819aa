// IoContext's heavy queue on a real loop: one step per loop turn, in the order queued; a step
// queued twice runs once; a cancelled step never runs; the loop's poll does not block while
// steps wait, and the queue leaves no active handle behind once it is empty.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proxy/net/io_context.h"

using namespace berth;

namespace {

struct Step final : HeavyStep {
  Step(std::vector<std::string>& log, std::string name) : log(log), name(std::move(name)) {}
  void run_heavy() override { log.push_back(name); }
  std::vector<std::string>& log;
  std::string name;
};

}  // namespace

TEST_CASE("io context: heavy steps run one per loop turn, oldest first", "[io_context]") {
  IoContext io;
  std::vector<std::string> ran;
  Step a(ran, "a"), b(ran, "b"), c(ran, "c");
  io.queue_heavy(&a);
  io.queue_heavy(&b);
  io.queue_heavy(&a);  // already queued: still once, in its first place
  io.queue_heavy(&c);
  CHECK(io.heavy_waiting() == 3);
  CHECK(a.heavy_queued());

  // UV_RUN_NOWAIT is one turn: the queue's idle phase runs one step, and the poll after it
  // returns at once (a blocking poll would hang the test here).
  uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"a"});
  CHECK_FALSE(a.heavy_queued());
  uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"a", "b"});
  uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"a", "b", "c"});
  CHECK(io.heavy_waiting() == 0);

  // Nothing waits: the loop has no active handle left, so UV_RUN_DEFAULT returns at once.
  CHECK(uv_run(io.loop(), UV_RUN_DEFAULT) == 0);
}

TEST_CASE("io context: a cancelled heavy step never runs; the others keep their order", "[io_context]") {
  IoContext io;
  std::vector<std::string> ran;
  Step a(ran, "a"), b(ran, "b"), c(ran, "c"), d(ran, "d");
  for (Step* s : {&a, &b, &c, &d}) io.queue_heavy(s);
  io.cancel_heavy(&b);  // from the middle
  io.cancel_heavy(&d);  // the tail
  io.cancel_heavy(&d);  // not queued any more: no-op
  CHECK(io.heavy_waiting() == 2);
  io.queue_heavy(&d);  // back in, now last
  io.cancel_heavy(&a);  // the head
  while (io.heavy_waiting() > 0) uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"c", "d"});

  // Everything cancelled before its turn: nothing runs and nothing stays active.
  io.queue_heavy(&a);
  io.cancel_heavy(&a);
  CHECK(uv_run(io.loop(), UV_RUN_DEFAULT) == 0);
  CHECK(ran == std::vector<std::string>{"c", "d"});
}

TEST_CASE("io context: a step may queue another while it runs", "[io_context]") {
  IoContext io;
  std::vector<std::string> ran;
  Step later(ran, "later");
  struct Requeue final : HeavyStep {
    Requeue(IoContext& io, std::vector<std::string>& log, HeavyStep& next) : io(io), log(log), next(next) {}
    void run_heavy() override {
      log.push_back("first");
      io.queue_heavy(&next);
    }
    IoContext& io;
    std::vector<std::string>& log;
    HeavyStep& next;
  } first(io, ran, later);
  io.queue_heavy(&first);
  uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"first"});
  CHECK(io.heavy_waiting() == 1);
  uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<std::string>{"first", "later"});
  CHECK(uv_run(io.loop(), UV_RUN_DEFAULT) == 0);
}
