// RAII for libuv handles used by discovery: the handle lives on the heap and is freed in
// libuv's close callback, never before; the owner may go away at any time (the handle's data
// pointer is cleared first, so a late callback finds no owner).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace berth::discovery {

template <typename H>
class UvHandle {
 public:
  UvHandle() = default;
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  // A fresh zeroed handle (closing any previous one); the caller initialises it at once.
  H* allocate() {
    close();
    handle_ = new H{};
    return handle_;
  }
  H* get() const { return handle_; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }

  // Idempotent. If something else already started closing the handle (a uv_walk at shutdown),
  // its memory is left alone: that close has no callback of ours to free it.
  void close() {
    if (!handle_) return;
    auto* h = reinterpret_cast<uv_handle_t*>(handle_);
    handle_ = nullptr;
    h->data = nullptr;
    if (uv_is_closing(h)) return;
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<H*>(closed); });
  }

 private:
  H* handle_ = nullptr;
};

// A one-shot or repeating timer on a loop; the callback never runs after stop() or destruction.
class Timer {
 public:
  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(uv_loop_t* loop, uint64_t timeout_ms, std::function<void()> fn, uint64_t repeat_ms = 0) {
    if (!handle_) {
      uv_timer_init(loop, handle_.allocate());
    }
    handle_.get()->data = this;
    fn_ = std::move(fn);
    uv_timer_start(handle_.get(), [](uv_timer_t* t) {
      auto* self = static_cast<Timer*>(t->data);
      if (!self) return;
      if (!uv_timer_get_repeat(t)) {
        // One-shot: move the callback out so it may restart or destroy this timer.
        std::function<void()> fn = std::move(self->fn_);
        fn();
      } else {
        self->fn_();
      }
    }, timeout_ms, repeat_ms);
  }
  void stop() {
    if (handle_) uv_timer_stop(handle_.get());
    fn_ = nullptr;
  }
  bool active() const { return handle_ && uv_is_active(handle_.base()); }
  void close() {
    fn_ = nullptr;
    handle_.close();
  }

 private:
  UvHandle<uv_timer_t> handle_;
  std::function<void()> fn_;
};

}  // namespace berth::discovery
