// What a stream needs from the loop that owns it: the libuv loop, the read-buffer pool, pooled
// write requests, borrowed strings, the streams' deadlines (one wheel, one uv timer) and the
// list of streams still open on the loop. One per event-loop thread (each worker is one);
// nothing in it is shared between threads.
#pragma once

#include <uv.h>

#include <cstddef>
#include <vector>

#include "proxy/base/buffer_pool.h"
#include "proxy/base/low_water.h"
#include "proxy/base/string_pool.h"
#include "proxy/net/deadline_wheel.h"

namespace berth {

class Stream;
class TcpTransport;
struct WriteReq;

// A step that costs far more CPU than an I/O callback: the first step of a TLS handshake (its
// key exchange and signature take hundreds of microseconds). IoContext runs one queued step per
// loop turn, before the turn's poll, so the requests of open connections are served between
// two handshakes instead of waiting behind a burst of them.
class HeavyStep {
 public:
  virtual void run_heavy() = 0;
  bool heavy_queued() const { return heavy_queued_; }

 protected:
  ~HeavyStep() = default;

 private:
  friend class IoContext;
  HeavyStep* heavy_prev_ = nullptr;
  HeavyStep* heavy_next_ = nullptr;
  bool heavy_queued_ = false;
};

class IoContext {
 public:
  IoContext();
  ~IoContext();
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;

  uv_loop_t* loop() { return &loop_; }
  // The context whose loop this is (its data points back at it).
  static IoContext* of(uv_loop_t* loop) { return static_cast<IoContext*>(loop->data); }
  BufferPool& pool() { return pool_; }
  StringPool& strings() { return strings_; }
  WriteReq* acquire_write();
  void release_write(WriteReq* wr);  // drops its block references
  // Frees what the pools (read buffers, write requests) held unused since the last call, beyond
  // a few warm entries: called now and then, so that a burst's peak does not stay resident.
  void trim_pools();

  // Closes every open stream (each frees itself once its handles are closed).
  void close_streams();
  // Asks every open stream to drain (Stream::drain): client connections close once idle.
  void drain_streams();
  // Closes up to `at_most` streams idle between requests (Stream::reclaimable_until), those idle
  // longest first; returns how many. A walk over every stream: for a full worker only.
  size_t close_idle_streams(size_t at_most);
  size_t open_streams() const { return open_streams_; }

  // A transport with something finished to report (a write the kernel took whole, a shutdown):
  // its run_deferred() is called from the loop's next turn, never from inside the call that
  // finished it. cancel_deferred: it is going away.
  void defer(TcpTransport* t);
  void cancel_deferred(TcpTransport* t);

  // Queues a heavy step (no-op if it is already queued); steps run in the order queued, one
  // per loop turn, and the loop's poll does not block while any waits. cancel_heavy: it is
  // going away (no-op if not queued).
  void queue_heavy(HeavyStep* s);
  void cancel_heavy(HeavyStep* s);
  size_t heavy_waiting() const;  // walks the queue (for tests and reports)

 protected:
  // Closes the loop; the owner calls it once every handle is closed.
  void close_loop();

 private:
  friend class Stream;
  void track(Stream* s);
  void untrack(Stream* s);
  // A stream's deadline (loop ms, 0 = none); the loop's timer is re-armed only when the
  // stream's slot is due before the time it is armed for.
  void set_deadline(Stream* s, uint64_t deadline);
  void remove_deadline(Stream* s);
  void arm_deadline_timer(uint64_t due);
  static void deadline_timer_cb(uv_timer_t* t);
  static void deferred_cb(uv_idle_t* h);
  static void heavy_cb(uv_idle_t* h);

  uv_loop_t loop_;
  uv_timer_t deadline_timer_;
  uint64_t deadline_timer_due_ = 0;  // loop ms the timer is armed for; 0 = stopped
  // Runs while transports wait in deferred_ (an active idle handle also keeps the loop from
  // blocking in its poll meanwhile); running_: the turn's batch being reported.
  uv_idle_t deferred_idle_;
  std::vector<TcpTransport*> deferred_;
  std::vector<TcpTransport*> running_;
  // Heavy steps waiting, oldest first (an intrusive list: cancelling one costs nothing).
  uv_idle_t heavy_idle_;
  HeavyStep* heavy_head_ = nullptr;
  HeavyStep* heavy_tail_ = nullptr;
  DeadlineWheel deadlines_;
  BufferPool pool_;
  StringPool strings_;
  WriteReq* free_writes_ = nullptr;
  size_t free_write_count_ = 0;
  LowWater free_writes_low_;
  Stream* streams_ = nullptr;
  size_t open_streams_ = 0;
  bool loop_closed_ = false;
};

}  // namespace berth
