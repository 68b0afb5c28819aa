// background::run: slow work on SCHED_IDLE threads, its result back on the submitting loop's
// thread, the loop kept alive until then and free to close afterwards.
#include <sched.h>
#include <uv.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "proxy/base/background.h"

using namespace berth;

TEST_CASE("background: work runs off the loop at idle priority, done runs on the loop", "[background]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  const std::thread::id loop_thread = std::this_thread::get_id();

  std::atomic<int> policy{-1};
  std::thread::id work_thread;
  std::thread::id done_thread;
  int done = 0;
  background::run(
      &loop,
      [&] {
        policy = sched_getscheduler(0);
        work_thread = std::this_thread::get_id();
      },
      [&] {
        done_thread = std::this_thread::get_id();
        ++done;
      });
  CHECK(done == 0);  // never from inside run()
  uv_run(&loop, UV_RUN_DEFAULT);  // returns once done() ran: the loop was kept alive till then
  CHECK(done == 1);
  CHECK(work_thread != loop_thread);
  CHECK(done_thread == loop_thread);
  CHECK(policy == SCHED_IDLE);
  REQUIRE(uv_loop_close(&loop) == 0);  // nothing of the pool's left open on the loop
}

TEST_CASE("background: many jobs, some submitted from done(), each comes back once", "[background]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  constexpr int kJobs = 200;
  std::vector<int> finished;
  std::atomic<int> worked{0};
  int submitted = 0;
  std::function<void()> submit = [&] {
    const int id = submitted++;
    background::run(&loop, [&] { ++worked; }, [&, id] {
      finished.push_back(id);
      if (submitted < kJobs) submit();  // from done(): the loop's handle stays
    });
  };
  for (int i = 0; i < 8; ++i) submit();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(worked == kJobs);
  REQUIRE(finished.size() == kJobs);
  std::vector<int> sorted = finished;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < kJobs; ++i) CHECK(sorted[i] == i);
  REQUIRE(uv_loop_close(&loop) == 0);

  // A second loop on the same thread (its own mailbox).
  uv_loop_t again;
  REQUIRE(uv_loop_init(&again) == 0);
  bool back = false;
  background::run(&again, [] {}, [&] { back = true; });
  uv_run(&again, UV_RUN_DEFAULT);
  CHECK(back);
  REQUIRE(uv_loop_close(&again) == 0);
}
