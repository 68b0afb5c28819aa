// What a stream needs from the loop that owns it: the libuv loop, the read-buffer pool, pooled
// write requests, borrowed strings, the streams' deadlines (one wheel, one uv timer) and the
// list of streams still open on the loop. One per event-loop thread (each worker is one);
// nothing in it is shared between threads.
#pragma once

#include <uv.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "proxy/base/buffer_pool.h"
#include "proxy/base/string_pool.h"
#include "proxy/net/deadline_wheel.h"

namespace berth {

class Stream;
class TransportEvents;
struct WriteReq;

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
  // Frees what the pools hold beyond a few warm entries (read buffers, write requests): called
  // now and then, so that a burst's peak does not stay resident.
  void trim_pools();

  // A write a transport finished at once (every byte in the kernel): its completion is reported
  // to `to` from the loop's next idle phase, as libuv would report it from its pending phase,
  // but without libuv's write queue, whose drain re-registers the socket with epoll (one
  // epoll_ctl per write).
  void defer_write_done(TransportEvents* to, WriteReq* wr);
  // Reports now, with status 0, the deferred completions for `to` (its transport is closing:
  // they must come before its close callback, as libuv's do).
  void flush_write_done(TransportEvents* to);

  // Closes every open stream (each frees itself once its handles are closed).
  void close_streams();
  size_t open_streams() const { return open_streams_; }

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
  static void write_done_cb(uv_idle_t* idle);

  uv_loop_t loop_;
  uv_timer_t deadline_timer_;
  uv_idle_t write_done_idle_;  // active while completions wait in write_done_
  std::vector<std::pair<TransportEvents*, WriteReq*>> write_done_;
  uint64_t deadline_timer_due_ = 0;  // loop ms the timer is armed for; 0 = stopped
  DeadlineWheel deadlines_;
  BufferPool pool_;
  StringPool strings_;
  WriteReq* free_writes_ = nullptr;
  size_t free_write_count_ = 0;
  Stream* streams_ = nullptr;
  size_t open_streams_ = 0;
  bool loop_closed_ = false;
};

}  // namespace berth
