#include "proxy/stream.h"

#include "proxy/worker.h"

namespace berth {

Stream::Stream(Worker* worker) : worker_(worker) {
  uv_tcp_init(worker->loop(), &tcp_);
  uv_timer_init(worker->loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
}

Stream::~Stream() = default;

uint64_t Stream::now() const { return uv_now(worker_->loop()); }

void Stream::alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(h->data);
  Block* b = self->worker_->pool().acquire();
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
  // on_read takes over the read's reference to the block.
  self->on_read(block, nread);
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
    worker_->release_write(wr);
    close();
    return false;
  }
  ++pending_writes_;
  return true;
}

bool Stream::write_copy(std::string_view bytes) {
  if (closing_ || shutdown_started_) return false;
  WriteReq* wr = worker_->acquire_write();
  wr->owned.assign(bytes);
  uv_buf_t b = uv_buf_init(wr->owned.data(), static_cast<unsigned>(wr->owned.size()));
  return submit(wr, &b, 1);
}

bool Stream::write_copy2(std::string_view a, std::string_view b) {
  if (closing_ || shutdown_started_) return false;
  WriteReq* wr = worker_->acquire_write();
  wr->owned.assign(a);
  wr->owned.append(b);
  uv_buf_t buf = uv_buf_init(wr->owned.data(), static_cast<unsigned>(wr->owned.size()));
  return submit(wr, &buf, 1);
}

bool Stream::write_block(Block* block, const char* data, size_t len, std::string_view prefix,
                         std::string_view suffix) {
  if (closing_ || shutdown_started_) return false;
  WriteReq* wr = worker_->acquire_write();
  BufferPool::ref(block);
  wr->blocks[0] = block;
  wr->nblocks = 1;
  uv_buf_t bufs[3];
  unsigned n = 0;
  if (!prefix.empty()) {
    wr->owned.assign(prefix);
    bufs[n++] = uv_buf_init(wr->owned.data(), static_cast<unsigned>(wr->owned.size()));
  }
  bufs[n++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  if (!suffix.empty()) bufs[n++] = uv_buf_init(const_cast<char*>(suffix.data()), static_cast<unsigned>(suffix.size()));
  return submit(wr, bufs, n);
}

void Stream::write_cb(uv_write_t* req, int status) {
  auto* wr = static_cast<WriteReq*>(req->data);
  Stream* self = wr->owner;
  self->worker_->release_write(wr);
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
  if (shutdown_started_ || pending_writes_ > 0) return;
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
