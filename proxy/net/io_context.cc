#include "proxy/net/io_context.h"

#include "proxy/net/stream.h"

namespace berth {
namespace {
// Enough for steady state at a few hundred concurrent requests per loop.
constexpr size_t kMaxFreeWrites = 512;
constexpr size_t kMaxKeptOwnedBytes = 64 * 1024;
constexpr size_t kWarmReadBuffers = 16;
constexpr size_t kWarmWrites = 32;
}  // namespace

IoContext::IoContext() { uv_loop_init(&loop_); }

IoContext::~IoContext() {
  while (free_writes_) {
    WriteReq* w = free_writes_;
    free_writes_ = w->next_free;
    delete w;
  }
  close_loop();
}

void IoContext::close_loop() {
  if (loop_closed_) return;
  loop_closed_ = true;
  uv_loop_close(&loop_);
}

void IoContext::trim_pools() {
  pool_.trim(kWarmReadBuffers);
  while (free_write_count_ > kWarmWrites) {
    WriteReq* w = free_writes_;
    free_writes_ = w->next_free;
    delete w;
    --free_write_count_;
  }
}

WriteReq* IoContext::acquire_write() {
  WriteReq* w = free_writes_;
  if (w) {
    free_writes_ = w->next_free;
    w->next_free = nullptr;
    --free_write_count_;
    return w;
  }
  return new WriteReq();
}

void IoContext::release_write(WriteReq* w) {
  for (uint8_t i = 0; i < w->nblocks; ++i) BufferPool::unref(w->blocks[i]);
  w->nblocks = 0;
  if (w->owned.capacity() > kMaxKeptOwnedBytes) std::string().swap(w->owned);
  else w->owned.clear();
  // Keep a bounded free list: a burst must not pin its peak forever.
  if (free_write_count_ >= kMaxFreeWrites) {
    delete w;
    return;
  }
  w->next_free = free_writes_;
  free_writes_ = w;
  ++free_write_count_;
}

void IoContext::track(Stream* s) {
  s->io_next_ = streams_;
  if (streams_) streams_->io_prev_ = s;
  streams_ = s;
  ++open_streams_;
}

void IoContext::untrack(Stream* s) {
  if (s->io_prev_) s->io_prev_->io_next_ = s->io_next_;
  else streams_ = s->io_next_;
  if (s->io_next_) s->io_next_->io_prev_ = s->io_prev_;
  s->io_prev_ = s->io_next_ = nullptr;
  --open_streams_;
}

// close() never deletes on the spot (deletion waits for the loop's close callbacks), so the
// list stays intact while it is walked.
void IoContext::close_streams() {
  for (Stream* s = streams_; s; s = s->io_next_) s->close();
}

}  // namespace berth
