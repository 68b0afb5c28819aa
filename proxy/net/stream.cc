#include "proxy/net/stream.h"

#include <vector>

namespace berth {
namespace {
// Streams with an unsent batch, and whether writes are being batched (inside a read callback).
// Per thread: each loop runs on its own thread.
thread_local std::vector<Stream*> t_dirty;
thread_local bool t_batching = false;
}  // namespace

Stream::Stream(IoContext* io, std::unique_ptr<Transport> transport) : io_(io), transport_(transport.release()) {
  transport_->bind(this);
  io_->track(this);
}

Stream::Stream(IoContext* io, Transport& embedded) : io_(io), transport_(&embedded), owns_transport_(false) {
  transport_->bind(this);
  io_->track(this);
}

// Runs from handle_closed only: the transport's handles are closed by then.
Stream::~Stream() {
  if (owns_transport_) delete transport_;
  else transport_->~Transport();
}

uint64_t Stream::now() const { return uv_now(io_->loop()); }

void Stream::on_transport_read(Block* block, ssize_t nread) {
  if (nread < 0) {
    if (closing_) return;
    on_read(nullptr, nread);
    return;
  }
  if (closing_) {
    BufferPool::unref(block);
    return;
  }
  // on_read takes over the read's reference to the block. Writes it causes (on this stream and
  // on its peer) are gathered and sent once it returns.
  t_batching = true;
  on_read(block, nread);
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
    if (transport_->read_start() == 0) reading_ = true;
  } else {
    transport_->read_stop();
    reading_ = false;
  }
}

bool Stream::connect_to(const sockaddr* addr) { return !closing_ && transport_->connect(addr) == 0; }

void Stream::on_transport_connected(int status) {
  if (closing_) return;
  on_connected(status);
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

bool Stream::flush_writes() {
  if (batch_) flush_batch();
  return !closing_ && !transport_->write_failed();
}

void Stream::flush_batch() {
  WriteReq* wr = batch_;
  if (!wr) return;
  batch_ = nullptr;
  marked_ = false;
  if (closing_ || wr->nsegments == 0) {
    io_->release_write(wr);
    return;
  }
  if (transport_->write(wr) != 0) {
    io_->release_write(wr);
    close();
    return;
  }
  ++pending_writes_;
}

Stream::WriteMark Stream::write_mark() {
  WriteMark m;
  marked_ = !closing_;
  if (batch_) {
    m.owned = static_cast<uint32_t>(batch_->owned.size());
    m.nsegments = batch_->nsegments;
    m.nblocks = batch_->nblocks;
    if (m.nsegments) m.last_len = batch_->segments[m.nsegments - 1].len;
  }
  return m;
}

bool Stream::retract_to(const WriteMark& mark) {
  if (!marked_) return false;  // some of it has gone (or the stream is closing)
  marked_ = false;
  if (!batch_) return true;  // nothing written since
  if (mark.nsegments == 0) {
    io_->release_write(batch_);  // all of it came after the mark
    batch_ = nullptr;
    return true;
  }
  for (uint8_t i = mark.nblocks; i < batch_->nblocks; ++i) BufferPool::unref(batch_->blocks[i]);
  batch_->nblocks = mark.nblocks;
  batch_->nsegments = mark.nsegments;
  batch_->segments[mark.nsegments - 1].len = mark.last_len;
  batch_->owned.resize(mark.owned);
  return true;
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

void Stream::on_transport_write_done(WriteReq* wr, int status) {
  io_->release_write(wr);
  --pending_writes_;
  if (closing_) return;
  if (status < 0) {
    on_write_done(status);
    if (!closing_) close();
    return;
  }
  on_write_done(0);
  if ((close_after_flush_ || shutdown_only_) && !closing_) maybe_shutdown();
}

void Stream::close_after_flush() {
  if (closing_) return;
  close_after_flush_ = true;
  if (shutdown_done_) {  // half-closed already: nothing left to send
    on_flushed_shutdown();
    return;
  }
  maybe_shutdown();
}

void Stream::shutdown_after_flush() {
  if (closing_ || shutdown_only_) return;
  shutdown_only_ = true;
  maybe_shutdown();
}

void Stream::maybe_shutdown() {
  if (shutdown_started_) return;
  if (batch_) flush_batch();
  if (closing_ || pending_writes_ > 0) return;
  shutdown_started_ = true;
  if (transport_->shutdown() != 0) close();
}

void Stream::on_transport_shutdown(int status) {
  if (closing_) return;
  if (status < 0) {
    close();
    return;
  }
  shutdown_done_ = true;
  if (close_after_flush_) on_flushed_shutdown();  // else a half-close: reading goes on
}

void Stream::start_timer(uint64_t ms) {
  if (closing_) return;
  io_->set_deadline(this, now() + ms);
}

void Stream::stop_timer() { io_->set_deadline(this, 0); }

void Stream::close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  if (batch_) {
    io_->release_write(batch_);
    batch_ = nullptr;
  }
  marked_ = false;
  io_->remove_deadline(this);
  on_closing();
  // Reports back later, from the loop: deletion waits for it.
  transport_->close();
}

void Stream::on_transport_closed() { handle_closed(); }

void Stream::handle_closed() {
  io_->untrack(this);
  on_closed();
  delete this;
}

}  // namespace berth
