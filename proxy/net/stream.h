// A TCP stream with a timer, owned by one worker loop: the common base of client and upstream
// connections. Memory is freed only after libuv has closed both handles (deferred deletion);
// close is idempotent. Writes either copy small owned bytes (heads) or reference pool blocks
// (bodies, zero-copy); every pending write keeps what it references alive.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/base/buffer_pool.h"
#include "proxy/net/io_context.h"

namespace berth {

class Stream;

// One uv_write of up to kMaxSegments pieces: bytes copied into `owned`, or bytes that live
// elsewhere (pool blocks, referenced; static strings).
struct WriteReq {
  static constexpr uint8_t kMaxSegments = 16;
  static constexpr uint8_t kMaxBlocks = 8;
  struct Segment {
    const char* external;  // nullptr: bytes are owned[offset, offset+len)
    uint32_t offset;
    uint32_t len;
  };
  uv_write_t req;
  Stream* owner = nullptr;
  Block* blocks[kMaxBlocks] = {nullptr};
  uint8_t nblocks = 0;
  uint8_t nsegments = 0;
  Segment segments[kMaxSegments];
  std::string owned;     // chunk headers, heads, local replies
  WriteReq* next_free = nullptr;
};

class Stream {
 public:
  explicit Stream(IoContext* io);
  virtual ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  size_t write_queue_bytes() const { return tcp_.write_queue_size; }
  bool closing() const { return closing_; }
  IoContext* io() const { return io_; }

  // Queue bytes; false if the stream is closing or libuv refused (the stream is then closed).
  bool write_copy(std::string_view bytes);
  bool write_copy2(std::string_view a, std::string_view b);
  // Zero-copy body bytes from a block, with optional owned prefix and static suffix (chunking).
  bool write_block(Block* block, const char* data, size_t len, std::string_view prefix = {},
                   std::string_view suffix = {});

  // Start/stop reading; idempotent.
  void set_reading(bool on);

  // Writes made while a read callback runs are gathered per stream and sent as one writev when
  // the callback returns (a response head and its first body bytes leave in one syscall).
  void flush_batch();

  // Close both handles now (pending writes are cancelled). Idempotent.
  void close();
  // Close once queued writes have been flushed: shutdown(SHUT_WR) then close.
  void close_after_flush();

 protected:
  // Data/EOF/error from the socket. nread < 0: UV_EOF or an error; the block is nullptr then.
  virtual void on_read(Block* block, ssize_t nread) = 0;
  virtual void on_write_done(int status) {}
  virtual void on_timer() {}
  // Called when the last handle is closed, just before deletion.
  virtual void on_closed() {}
  virtual void on_flushed_shutdown() { close(); }

  void start_timer(uint64_t ms);
  void stop_timer();
  uint64_t now() const;

  uv_tcp_t tcp_;
  uv_timer_t timer_;
  IoContext* io_;

 private:
  static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void write_cb(uv_write_t* req, int status);
  static void close_cb(uv_handle_t* h);
  static void timer_cb(uv_timer_t* t);
  static void shutdown_cb(uv_shutdown_t* req, int status);
  bool submit(WriteReq* wr, const uv_buf_t* bufs, unsigned n);
  void maybe_shutdown();
  // The batch to append to, flushed first when it cannot take `segments` more pieces.
  WriteReq* batch_for(unsigned segments, bool needs_block);
  void append_owned(WriteReq* wr, std::string_view bytes);
  void append_external(WriteReq* wr, const char* data, size_t len);
  bool finish_write();

  WriteReq* batch_ = nullptr;
  bool in_dirty_list_ = false;

  uv_shutdown_t* shutdown_req_ = nullptr;
  uint32_t pending_writes_ = 0;
  uint8_t open_handles_ = 2;
  bool reading_ = false;
  bool closing_ = false;
  bool close_after_flush_ = false;
  bool shutdown_started_ = false;
};

}  // namespace berth
