#include "proxy/net/io_context.h"

#include <algorithm>

#include "proxy/net/stream.h"
#include "proxy/net/tcp_transport.h"

namespace berth {
namespace {
// Enough for steady state at a few hundred concurrent requests per loop.
constexpr size_t kMaxFreeWrites = 512;
constexpr size_t kMaxKeptOwnedBytes = 64 * 1024;
constexpr size_t kWarmReadBuffers = 16;
constexpr size_t kWarmWrites = 32;
}  // namespace

IoContext::IoContext() : deadlines_((uv_loop_init(&loop_), uv_now(&loop_))) {
  loop_.data = this;  // handles find their context through their loop
  uv_timer_init(&loop_, &deadline_timer_);
  deadline_timer_.data = this;
  uv_idle_init(&loop_, &deferred_idle_);
  deferred_idle_.data = this;
  uv_idle_init(&loop_, &heavy_idle_);
  heavy_idle_.data = this;
}

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
  // The deadline timer is the context's own handle: close it and let its close complete.
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&deferred_idle_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&heavy_idle_), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_loop_close(&loop_);
}

void IoContext::trim_pools() {
  pool_.trim(kWarmReadBuffers);
  free_writes_low_.trim_list(free_writes_, free_write_count_, kWarmWrites, [](WriteReq* w) { delete w; });
}

WriteReq* IoContext::acquire_write() {
  WriteReq* w = free_writes_;
  if (w) {
    free_writes_ = w->next_free;
    w->next_free = nullptr;
    --free_write_count_;
    free_writes_low_.taken(free_write_count_);
    return w;
  }
  free_writes_low_.taken(0);
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

void IoContext::set_deadline(Stream* s, uint64_t deadline) {
  const uint64_t due = deadlines_.set(s, deadline);
  if (due && (deadline_timer_due_ == 0 || due < deadline_timer_due_)) arm_deadline_timer(due);
}

// With nothing filed the timer stops at once, so a loop whose streams are all closed can exit.
void IoContext::remove_deadline(Stream* s) {
  deadlines_.remove(s);
  if (deadlines_.filed() == 0 && deadline_timer_due_) arm_deadline_timer(0);
}

void IoContext::arm_deadline_timer(uint64_t due) {
  deadline_timer_due_ = due;
  if (due == 0) {
    uv_timer_stop(&deadline_timer_);
    return;
  }
  const uint64_t t = uv_now(&loop_);
  uv_timer_start(&deadline_timer_, deadline_timer_cb, due > t ? due - t : 0, 0);
}

void IoContext::deadline_timer_cb(uv_timer_t* t) {
  auto* self = static_cast<IoContext*>(t->data);
  self->deadline_timer_due_ = 0;
  self->deadlines_.advance(uv_now(&self->loop_), [](DeadlineEntry* e) {
    auto* s = static_cast<Stream*>(e);
    if (!s->closing_) s->on_timer();
  });
  // Nothing filed: the timer stays stopped and does not keep the loop alive.
  const uint64_t due = self->deadlines_.next_due();
  if (due && (self->deadline_timer_due_ == 0 || due < self->deadline_timer_due_)) self->arm_deadline_timer(due);
}

// close() never deletes on the spot (deletion waits for the loop's close callbacks), so the
// list stays intact while it is walked.
void IoContext::close_streams() {
  for (Stream* s = streams_; s; s = s->io_next_) s->close();
}

// Likewise for drain(), which at most closes.
void IoContext::drain_streams() {
  for (Stream* s = streams_; s; s = s->io_next_) s->drain();
}

size_t IoContext::close_idle_streams(size_t at_most) {
  std::vector<std::pair<uint64_t, Stream*>> idle;
  for (Stream* s = streams_; s; s = s->io_next_)
    if (const uint64_t until = s->closing() ? 0 : s->reclaimable_until()) idle.emplace_back(until, s);
  const size_t n = std::min(at_most, idle.size());
  std::partial_sort(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n), idle.end());
  for (size_t i = 0; i < n; ++i) idle[i].second->close();
  return n;
}

void IoContext::defer(TcpTransport* t) {
  if (deferred_.empty()) uv_idle_start(&deferred_idle_, deferred_cb);
  deferred_.push_back(t);
}

void IoContext::cancel_deferred(TcpTransport* t) {
  deferred_.erase(std::remove(deferred_.begin(), deferred_.end(), t), deferred_.end());
  std::replace(running_.begin(), running_.end(), t, static_cast<TcpTransport*>(nullptr));
  if (deferred_.empty()) uv_idle_stop(&deferred_idle_);
}

void IoContext::queue_heavy(HeavyStep* s) {
  if (s->heavy_queued_) return;
  s->heavy_queued_ = true;
  s->heavy_next_ = nullptr;
  s->heavy_prev_ = heavy_tail_;
  if (heavy_tail_) heavy_tail_->heavy_next_ = s;
  else heavy_head_ = s;
  heavy_tail_ = s;
  if (heavy_head_ == s) uv_idle_start(&heavy_idle_, heavy_cb);
}

void IoContext::cancel_heavy(HeavyStep* s) {
  if (!s->heavy_queued_) return;
  s->heavy_queued_ = false;
  if (s->heavy_prev_) s->heavy_prev_->heavy_next_ = s->heavy_next_;
  else heavy_head_ = s->heavy_next_;
  if (s->heavy_next_) s->heavy_next_->heavy_prev_ = s->heavy_prev_;
  else heavy_tail_ = s->heavy_prev_;
  s->heavy_prev_ = s->heavy_next_ = nullptr;
  if (!heavy_head_) uv_idle_stop(&heavy_idle_);
}

size_t IoContext::heavy_waiting() const {
  size_t n = 0;
  for (const HeavyStep* s = heavy_head_; s; s = s->heavy_next_) ++n;
  return n;
}

// One step per turn: the turn's poll (which does not block while steps wait) and its I/O
// callbacks come between two of them.
void IoContext::heavy_cb(uv_idle_t* h) {
  auto* self = static_cast<IoContext*>(h->data);
  HeavyStep* s = self->heavy_head_;
  if (!s) return;
  self->cancel_heavy(s);
  s->run_heavy();
}

// What the batch's reports cause lands in deferred_, for the next turn.
void IoContext::deferred_cb(uv_idle_t* h) {
  auto* self = static_cast<IoContext*>(h->data);
  self->running_.swap(self->deferred_);
  if (self->deferred_.empty()) uv_idle_stop(&self->deferred_idle_);
  for (size_t i = 0; i < self->running_.size(); ++i)
    if (TcpTransport* t = self->running_[i]) t->run_deferred();
  self->running_.clear();  // a report that deferred again restarted the idle handle (defer())
}

}  // namespace berth
