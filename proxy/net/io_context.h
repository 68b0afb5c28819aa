// What a stream needs from the loop that owns it: the libuv loop, the read-buffer pool, pooled
// write requests, borrowed strings, and the list of streams still open on the loop. One per event-loop thread (each worker is one); nothing
// in it is shared between threads.
#pragma once

#include <uv.h>

#include <cstddef>

#include "proxy/base/buffer_pool.h"
#include "proxy/base/string_pool.h"

namespace berth {

class Stream;
struct WriteReq;

class IoContext {
 public:
  IoContext();
  ~IoContext();
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;

  uv_loop_t* loop() { return &loop_; }
  BufferPool& pool() { return pool_; }
  StringPool& strings() { return strings_; }
  WriteReq* acquire_write();
  void release_write(WriteReq* wr);  // drops its block references
  // Frees what the pools hold beyond a few warm entries (read buffers, write requests): called
  // now and then, so that a burst's peak does not stay resident.
  void trim_pools();

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

  uv_loop_t loop_;
  BufferPool pool_;
  StringPool strings_;
  WriteReq* free_writes_ = nullptr;
  size_t free_write_count_ = 0;
  Stream* streams_ = nullptr;
  size_t open_streams_ = 0;
  bool loop_closed_ = false;
};

}  // namespace berth
