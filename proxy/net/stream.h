// A byte stream with a deadline, owned by one worker loop: the common base of client and upstream
// connections. The bytes travel over a Transport the stream owns (plain TCP, later TLS); the
// stream adds write batching, the write/shutdown/close sequence and deferred deletion: memory
// is freed only after the transport has closed; close is idempotent. The stream's one timer is
// a deadline in its loop's DeadlineWheel (no uv handle of its own): on_timer() runs once the
// deadline has passed, up to a slot (tens of ms) late, never early, never after close().
// Writes either copy small owned bytes (heads) or reference pool blocks (bodies, zero-copy);
// every pending write keeps what it references alive.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/base/buffer_pool.h"
#include "proxy/net/deadline_wheel.h"
#include "proxy/net/io_context.h"
#include "proxy/net/transport.h"
#include "proxy/net/write_req.h"

namespace berth {

class Stream : private TransportEvents, private DeadlineEntry {
 public:
  Stream(IoContext* io, std::unique_ptr<Transport> transport);
  // A transport embedded in the stream's own allocation (one allocation per connection): the
  // caller constructed it there; the stream destroys it, and freeing the stream frees both.
  Stream(IoContext* io, Transport& embedded);
  virtual ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Bytes written and not yet handed to the kernel (backpressure).
  size_t write_queue_bytes() const { return transport_->buffered_bytes(); }
  bool closing() const { return closing_; }
  // Sends what is gathered now, even inside a read callback; false when the stream is closing
  // or a write to the peer has failed (it reset the connection), which the transport reports
  // only from the next turn.
  bool flush_writes();
  IoContext* io() const { return io_; }
  Transport& transport() { return *transport_; }

  // The loop is stopping (IoContext::drain_streams): a stream that serves requests closes once
  // it is idle after a response; others ignore it.
  virtual void drain() {}
  // 0, or, for a connection idle between requests that may be closed to make room
  // (IoContext::close_idle_streams), when its idle timeout ends: the earliest has waited longest.
  virtual uint64_t reclaimable_until() const { return 0; }

  // Queue bytes; false if the stream is closing or the transport refused (the stream is then closed).
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

  // Where the bytes queued so far end. retract_to(mark) takes back everything written after the
  // mark, and says true, when none of it has been handed to the transport yet (it is all in the
  // batch still gathering); else it changes nothing and says false. One mark at a time: a newer
  // mark replaces the older, which no longer retracts.
  struct WriteMark {
    uint32_t owned = 0;      // the batch's owned bytes at the mark
    uint32_t last_len = 0;   // its last segment's length (owned bytes appended later may extend it)
    uint8_t nsegments = 0;
    uint8_t nblocks = 0;
  };
  WriteMark write_mark();
  bool retract_to(const WriteMark& mark);

  // Clear the deadline and close the transport now (pending writes are cancelled). Idempotent.
  void close();
  // Close once queued writes have been flushed: shutdown(SHUT_WR) then close.
  void close_after_flush();
  // A half-close: shutdown(SHUT_WR) once queued writes have been flushed, and go on reading.
  // Nothing more may be written; close_after_flush (or close) still ends the stream.
  void shutdown_after_flush();

 protected:
  // Data/EOF/error from the transport. nread < 0: UV_EOF or an error; the block is nullptr then.
  virtual void on_read(Block* block, ssize_t nread) = 0;
  virtual void on_write_done(int status) {}
  // Outcome of connect_to(); not called once the stream is closing.
  virtual void on_connected(int status) {}
  virtual void on_timer() {}
  // Called when the transport is closed, just before deletion.
  virtual void on_closed() {}
  // close() was called; the transport is not closed yet (a last reset_on_close() still counts).
  virtual void on_closing() {}
  virtual void on_flushed_shutdown() { close(); }

  // Opens an outbound connection; false if it could not start (nothing will be reported).
  bool connect_to(const sockaddr* addr);
  // Sets the deadline `ms` from now (replacing any other); stop_timer clears it.
  void start_timer(uint64_t ms);
  void stop_timer();
  uint64_t now() const;

  IoContext* io_;

 private:
  // TransportEvents
  void on_transport_read(Block* block, ssize_t nread) override;
  void on_transport_write_done(WriteReq* wr, int status) override;
  void on_transport_connected(int status) override;
  void on_transport_shutdown(int status) override;
  void on_transport_closed() override;

  void handle_closed();
  void maybe_shutdown();
  // The batch to append to, flushed first when it cannot take `segments` more pieces.
  WriteReq* batch_for(unsigned segments, bool needs_block);
  void append_owned(WriteReq* wr, std::string_view bytes);
  void append_external(WriteReq* wr, const char* data, size_t len);
  bool finish_write();

  Transport* transport_;
  WriteReq* batch_ = nullptr;
  uint32_t pending_writes_ = 0;
  // Flags, packed: every idle connection carries them.
  bool owns_transport_ : 1 = true;  // false: embedded, destroyed but not freed here
  bool in_dirty_list_ : 1 = false;
  bool reading_ : 1 = false;
  bool closing_ : 1 = false;
  bool close_after_flush_ : 1 = false;
  bool shutdown_started_ : 1 = false;
  bool shutdown_only_ : 1 = false;  // shutdown_after_flush: a half-close, not a close
  bool shutdown_done_ : 1 = false;
  bool marked_ : 1 = false;  // a write_mark() whose bytes since are all still in batch_

  // IoContext's list of open streams (closed all at once when a worker stops).
  Stream* io_prev_ = nullptr;
  Stream* io_next_ = nullptr;
  friend class IoContext;
};

}  // namespace berth
