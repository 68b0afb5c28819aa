#include "proxy/base/background.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "proxy/base/log.h"

namespace berth::background {
namespace {

struct Mailbox;

struct Job {
  std::function<void()> work;
  std::function<void()> done;
  std::shared_ptr<Mailbox> mailbox;
  Job* next = nullptr;
};

// One per loop: finished jobs come back here. Its fd is watched (a poll handle) only while jobs
// are out, so an idle loop holds no handle of ours and may close.
struct Mailbox {
  uv_loop_t* loop;
  int efd;
  std::atomic<Job*> finished{nullptr};  // pushed by background threads, taken whole by the loop
  uv_poll_t* poll = nullptr;
  size_t out = 0;  // jobs submitted and not yet done (loop thread only)

  explicit Mailbox(uv_loop_t* l) : loop(l), efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Mailbox() {
    if (efd >= 0) ::close(efd);
  }

  // Background thread.
  void finish(Job* job) {
    Job* head = finished.load(std::memory_order_relaxed);
    do {
      job->next = head;
    } while (!finished.compare_exchange_weak(head, job, std::memory_order_release, std::memory_order_relaxed));
    const uint64_t one = 1;
    while (::write(efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  // Loop thread.
  void watch() {
    if (poll) return;
    poll = new uv_poll_t;
    poll->data = this;
    uv_poll_init(loop, poll, efd);
    uv_poll_start(poll, UV_READABLE, [](uv_poll_t* p, int, int) { static_cast<Mailbox*>(p->data)->take(); });
  }

  void take() {
    uint64_t count;
    while (::read(efd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    Job* list = finished.exchange(nullptr, std::memory_order_acquire);
    Job* in_order = nullptr;  // pushed newest first: reverse
    while (list) {
      Job* next = list->next;
      list->next = in_order;
      in_order = list;
      list = next;
    }
    // A done() may submit again (out goes back up) and so keep the handle.
    std::shared_ptr<Mailbox> self;  // a job may hold the last reference but one
    while (in_order) {
      std::unique_ptr<Job> job(in_order);
      in_order = job->next;
      self = job->mailbox;
      --out;
      job->done();
    }
    if (out == 0 && poll) {
      uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll = nullptr;
    }
  }
};

class Pool {
 public:
  Pool() {
    const unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) std::thread([this] { serve(); }).detach();
  }

  void submit(Job* job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    cv_.notify_one();
  }

 private:
  void serve() {
    pthread_setname_np(pthread_self(), "berth-bg");
    sched_param param{};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0 && !warned_.exchange(true)) {
      log::warn("background_priority").kv("detail", "SCHED_IDLE refused, password checks run at normal priority")
          .kv("error", std::strerror(errno));
    }
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        job = queue_.front();
        queue_.pop_front();
      }
      job->work();
      job->work = nullptr;  // what it captured goes now, on this thread
      std::shared_ptr<Mailbox> mailbox = job->mailbox;  // outlives the push: the loop may free the job at once
      mailbox->finish(job);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  std::atomic<bool> warned_{false};
};

Pool& pool() {
  static Pool* p = new Pool;  // its threads never stop: never destroyed
  return *p;
}

std::shared_ptr<Mailbox> mailbox_of(uv_loop_t* loop) {
  thread_local std::unordered_map<uv_loop_t*, std::shared_ptr<Mailbox>> mailboxes;
  std::shared_ptr<Mailbox>& mb = mailboxes[loop];
  if (!mb) mb = std::make_shared<Mailbox>(loop);
  return mb;
}

}  // namespace

void run(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  std::shared_ptr<Mailbox> mailbox = mailbox_of(loop);
  auto* job = new Job{std::move(work), std::move(done), mailbox};
  ++mailbox->out;
  mailbox->watch();
  pool().submit(job);
}

}  // namespace berth::background
