#include "proxy/net/stream.h"

#include <vector>


namespace berth {
namespace {
// Streams with an unsent batch, and whether writes are being batched (inside a read callback).
// Per thread: each loop runs on its own thread.
thread_local std::vector<Stream*> t_dirty;
thread_local bool t_batching = false;
}  // namespace

Stream::Stream(IoContext* io) : io_(io) {
  uv_tcp_init(io->loop(), &tcp_);
  uv_timer_init(io->loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
}

Stream::~Stream() = default;

uint64_t Stream::now() const { return uv_now(io_->loop()); }

void Stream::alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(h->data);
  Block* b = self->io_->pool().acquire();
  buf->base = b->data();
  buf->len = b->capacity;
}

void Stream::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(s->data);
  Block* block = buf->base ? Block::from_data(buf->base) : nullptr;
  if (nread == 0) {
    if (block) BufferPool::unref(block);
    return;
  }
  if (nread < 0) {
    if (block) BufferPool::unref(block);
    if (self->closing_) return;
    self->on_read(nullptr, nread);
    return;
  }
  if (self->closing_) {
    BufferPool::unref(block);
    return;
  }
  // on_read takes over the read's reference to the block. Writes it causes (on this stream and
  // on its peer) are gathered and sent once it returns.
  t_batching = true;
  self->on_read(block, nread);
  t_batching = false;
  for (size_t i = 0; i < t_dirty.size(); ++i) {
    Stream* st = t_dirty[i];
    st->in_dirty_list_ = false;
    st->flush_batch();
  }
  t_dirty.clear();
}

void Stream::set_reading(bool on) {
  if (closing_ || on == reading_) return;
  if (on) {
    if (uv_read_start(stream(), alloc_cb, read_cb) == 0) reading_ = true;
  } else {
    uv_read_stop(stream());
    reading_ = false;
  }
}

bool Stream::submit(WriteReq* wr, const uv_buf_t* bufs, unsigned n) {
  wr->owner = this;
  wr->req.data = wr;
  int rc = uv_write(&wr->req, stream(), bufs, n, write_cb);
  if (rc != 0) {
    io_->release_write(wr);
    close();
    return false;
  }
  ++pending_writes_;
  return true;
}

WriteReq* Stream::batch_for(unsigned segments, bool needs_block) {
  if (batch_ && (batch_->nsegments + segments > WriteReq::kMaxSegments ||
                 (needs_block && batch_->nblocks >= WriteReq::kMaxBlocks)))
    flush_batch();
  if (!batch_) {
    batch_ = io_->acquire_write();
    batch_->nsegments = 0;
    batch_->nblocks = 0;
  }
  return batch_;
}

void Stream::append_owned(WriteReq* wr, std::string_view bytes) {
  if (bytes.empty()) return;
  auto& last = wr->segments[wr->nsegments ? wr->nsegments - 1 : 0];
  const uint32_t off = static_cast<uint32_t>(wr->owned.size());
  wr->owned.append(bytes);
  if (wr->nsegments && !last.external && last.offset + last.len == off) {
    last.len += static_cast<uint32_t>(bytes.size());  // contiguous owned bytes: one piece
    return;
  }
  wr->segments[wr->nsegments++] = {nullptr, off, static_cast<uint32_t>(bytes.size())};
}

void Stream::append_external(WriteReq* wr, const char* data, size_t len) {
  if (len == 0) return;
  wr->segments[wr->nsegments++] = {data, 0, static_cast<uint32_t>(len)};
}

// Sends the batch now unless a read callback is gathering writes.
bool Stream::finish_write() {
  if (t_batching) {
    if (!in_dirty_list_) {
      in_dirty_list_ = true;
      t_dirty.push_back(this);
    }
    return true;
  }
  flush_batch();
  return !closing_;
}

void Stream::flush_batch() {
  WriteReq* wr = batch_;
  if (!wr) return;
  batch_ = nullptr;
  if (closing_ || wr->nsegments == 0) {
    io_->release_write(wr);
    return;
  }
  uv_buf_t bufs[WriteReq::kMaxSegments];
  for (uint8_t i = 0; i < wr->nsegments; ++i) {
    const auto& seg = wr->segments[i];
    char* base = seg.external ? const_cast<char*>(seg.external) : wr->owned.data() + seg.offset;
    bufs[i] = uv_buf_init(base, seg.len);
  }
  submit(wr, bufs, wr->nsegments);
}

bool Stream::write_copy(std::string_view bytes) {
  if (closing_ || shutdown_started_) return false;
  append_owned(batch_for(1, false), bytes);
  return finish_write();
}

bool Stream::write_copy2(std::string_view a, std::string_view b) {
  if (closing_ || shutdown_started_) return false;
  WriteReq* wr = batch_for(1, false);
  append_owned(wr, a);
  append_owned(wr, b);
  return finish_write();
}

bool Stream::write_block(Block* block, const char* data, size_t len, std::string_view prefix,
                         std::string_view suffix) {
  if (closing_ || shutdown_started_) return false;
  WriteReq* wr = batch_for(3, true);
  append_owned(wr, prefix);
  BufferPool::ref(block);
  wr->blocks[wr->nblocks++] = block;
  append_external(wr, data, len);
  // The suffix is a string literal ("\r\n"): static storage, safe to reference.
  append_external(wr, suffix.data(), suffix.size());
  return finish_write();
}

void Stream::write_cb(uv_write_t* req, int status) {
  auto* wr = static_cast<WriteReq*>(req->data);
  Stream* self = wr->owner;
  self->io_->release_write(wr);
  --self->pending_writes_;
  if (self->closing_) return;
  if (status < 0) {
    self->on_write_done(status);
    if (!self->closing_) self->close();
    return;
  }
  self->on_write_done(0);
  if (self->close_after_flush_ && !self->closing_) self->maybe_shutdown();
}

void Stream::close_after_flush() {
  if (closing_) return;
  close_after_flush_ = true;
  maybe_shutdown();
}

void Stream::maybe_shutdown() {
  if (shutdown_started_) return;
  if (batch_) flush_batch();
  if (closing_ || pending_writes_ > 0) return;
  shutdown_started_ = true;
  shutdown_req_ = new uv_shutdown_t;
  shutdown_req_->data = this;
  if (uv_shutdown(shutdown_req_, stream(), shutdown_cb) != 0) {
    delete shutdown_req_;
    shutdown_req_ = nullptr;
    close();
  }
}

void Stream::shutdown_cb(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  delete req;
  self->shutdown_req_ = nullptr;
  if (self->closing_) return;
  if (status < 0) {
    self->close();
    return;
  }
  self->on_flushed_shutdown();
}

void Stream::start_timer(uint64_t ms) {
  if (closing_) return;
  uv_timer_start(&timer_, timer_cb, ms, 0);
}

void Stream::stop_timer() { uv_timer_stop(&timer_); }

void Stream::timer_cb(uv_timer_t* t) {
  auto* self = static_cast<Stream*>(t->data);
  if (!self->closing_) self->on_timer();
}

void Stream::close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  if (batch_) {
    io_->release_write(batch_);
    batch_ = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
}

void Stream::close_cb(uv_handle_t* h) {
  auto* self = static_cast<Stream*>(h->data);
  if (--self->open_handles_ > 0) return;
  self->on_closed();
  delete self;
}

}  // namespace berth
