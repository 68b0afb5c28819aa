// Slow CPU work (password hashes) off the event loops, at the lowest scheduling priority.
//
// background::run(loop, work, done) runs work() on one of Berth's background threads and then
// done() on `loop`, from the loop's own turn. The loop stays alive until done() has run.
//
// Why not libuv's thread pool (uv_queue_work):
// - The threads run SCHED_IDLE: they only get CPU time that nothing else wants, and any other
//   thread that wakes takes their CPU at once. At normal priority a check that had just started
//   kept its CPU for the scheduler's slice (milliseconds) while a worker loop, or the client and
//   backend sharing the core, waited: 100 wrong passwords/s raised every other request's p99
//   by about one check time (bench/access.sh). The cost: under a load that keeps every core
//   busy, checks wait (the filter's in-flight bound then answers 503 auth-busy).
// - libuv brings results back with uv_async_send, whose handshake makes the woken loop spin
//   until the sender has set its second flag; a sender descheduled in between (as a SCHED_IDLE
//   thread is, at once, when the loop it woke shares its core) leaves the loop spinning. Here a
//   result is pushed onto a lock-free list first, and then the loop's eventfd is written: the
//   loop has nothing to wait for.
// - libuv's pool (four threads) also runs the access log's file operations: a flood of checks
//   must not queue in front of them.
//
// Threads: as many as the machine has CPUs, started on first use, never stopped (they wait
// for work). Submissions go through one mutex, held only to push or pop.
#pragma once

#include <uv.h>

#include <functional>

namespace berth::background {

// From the thread running `loop`. work() runs on a background thread (it must not touch the
// loop); done() runs afterwards on the loop's thread, and is destroyed there.
void run(uv_loop_t* loop, std::function<void()> work, std::function<void()> done);

}  // namespace berth::background
