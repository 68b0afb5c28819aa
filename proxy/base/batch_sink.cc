#include "proxy/base/batch_sink.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace berth {

namespace {

// One producing thread's buffer. `buf` is what the thread appends to; the writer swaps it for
// `drain` (empty) under `mu` and writes `drain` with no lock held.
struct Producer {
  std::mutex mu;
  std::string buf;     // guarded by mu
  bool woke = false;   // guarded by mu: this buffer already woke the writer for this batch
  bool retired = false;  // guarded by State::registry_mu: the thread has exited
  std::string drain;   // the writer's only
};

// A drained buffer that grew past this during a burst is freed rather than kept for the next one.
constexpr size_t kKeepBytes = 64 * 1024;

std::atomic<uint64_t> g_next_sink_id{1};

// How often stop() interrupts an abandoned writer: an interrupt that lands just before the
// writer's blocking call (after it looked at abandoned()) is lost, the next one is not.
constexpr auto kInterruptEvery = std::chrono::milliseconds(20);

// The signal that cuts short an abandoned writer's blocking writev or poll. A real-time signal
// nothing else in Berth uses (its signal handles are SIGTERM, SIGINT, SIGHUP and SIGUSR1; SIGPIPE
// is ignored), sent to the writer thread only (pthread_kill).
int interrupt_signal() { return SIGRTMIN + 5; }

void on_interrupt(int) {}  // its only effect is the EINTR

void install_interrupt_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the interrupted call fails with EINTR instead of resuming
    ::sigaction(interrupt_signal(), &sa, nullptr);
  });
}

// The writer inherits its creator's signal mask; the interrupt must reach it whatever that was.
void unblock_interrupt_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, interrupt_signal());
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

uint64_t newlines_in(std::span<const iovec> bytes) {
  uint64_t n = 0;
  for (const iovec& v : bytes) {
    const char* p = static_cast<const char*>(v.iov_base);
    n += static_cast<uint64_t>(std::count(p, p + v.iov_len, '\n'));
  }
  return n;
}

// Moves the start of rest[i...] past `written` bytes.
void skip_written(std::vector<iovec>& rest, size_t& i, size_t written) {
  while (written > 0) {
    if (written >= rest[i].iov_len) {
      written -= rest[i].iov_len;
      ++i;
    } else {
      rest[i].iov_base = static_cast<char*>(rest[i].iov_base) + written;
      rest[i].iov_len -= written;
      written = 0;
    }
  }
}

}  // namespace

struct BatchSink::State {
  explicit State(Options o) : options(std::move(o)) {}

  const uint64_t id = g_next_sink_id.fetch_add(1);
  const Options options;
  // True while the writer will still take what producers append. Read under a producer's lock and
  // cleared by the writer before its final drain, which takes every producer's lock afterwards, so
  // whatever a producer queued while it read true is in that drain.
  std::atomic<bool> accepting{false};
  std::atomic<uint64_t> dropped{0};

  std::mutex registry_mu;  // taken once per thread to register, and by the writer to collect
  std::vector<std::shared_ptr<Producer>> producers;

  // Set by the writer when it found nothing to write and is about to wait without a period; the
  // first producer to append then wakes it (one notify per idle spell, never one per record).
  // The writer sets it and then looks at every buffer under its lock, and a producer reads it
  // after appending under the same lock: whichever comes second sees the other's doing, so a
  // record never waits for a writer that sleeps until the next one.
  std::atomic<bool> sleeping{false};

  std::mutex wake_mu;
  std::condition_variable wake_cv;
  bool wake = false;  // guarded by wake_mu
  bool stop = false;  // guarded by wake_mu
  bool done = false;  // guarded by wake_mu: the writer has left run() (its thread is ending)
  std::condition_variable done_cv;

  std::mutex control_mu;  // serialises start() and stop()
  uint64_t dropped_reported = 0;  // the writer's only (kept across restarts)

  void wake_writer() {
    {
      std::lock_guard lock(wake_mu);
      wake = true;
    }
    wake_cv.notify_one();
  }
  void ask_stop() {
    {
      std::lock_guard lock(wake_mu);
      stop = true;
    }
    wake_cv.notify_one();
  }
  void mark_done() {
    {
      std::lock_guard lock(wake_mu);
      done = true;
    }
    done_cv.notify_all();
  }
};

namespace {

// This thread's buffers, one per sink it has appended to. On thread exit each buffer is either
// freed now (empty) or left to the writer, which writes it and then frees it.
struct Registration {
  uint64_t sink_id;
  std::weak_ptr<BatchSink::State> state;
  std::shared_ptr<Producer> producer;
};

struct Registrations {
  std::vector<Registration> entries;
  ~Registrations();
};

thread_local Registrations t_registrations;
// Set once t_registrations is destroyed: a record appended later in this thread's teardown (from
// another thread-local's destructor) is answered kNotRunning instead of touching a dead object.
thread_local bool t_registrations_gone = false;

Registrations::~Registrations() {
  t_registrations_gone = true;
  for (Registration& r : entries) {
    std::shared_ptr<BatchSink::State> state = r.state.lock();
    if (!state) continue;  // the sink is gone, and so is its list
    std::lock_guard registry(state->registry_mu);
    bool empty;
    {
      std::lock_guard lock(r.producer->mu);
      empty = r.producer->buf.empty();
    }
    if (empty) {
      std::erase(state->producers, r.producer);
    } else {
      r.producer->retired = true;
    }
  }
}

Producer* producer_for(const std::shared_ptr<BatchSink::State>& state) {
  for (Registration& r : t_registrations.entries)
    if (r.sink_id == state->id) return r.producer.get();
  std::erase_if(t_registrations.entries, [](const Registration& r) { return r.state.expired(); });
  auto producer = std::make_shared<Producer>();
  {
    std::lock_guard registry(state->registry_mu);
    state->producers.push_back(producer);
  }
  t_registrations.entries.push_back({state->id, state, producer});
  return producer.get();
}

}  // namespace

void FdOutput::write(std::span<const iovec> batch) {
  uint64_t lines_lost = 0;
  if (write_fd(fd_, batch, &lines_lost) != 0) lost_.fetch_add(lines_lost, std::memory_order_relaxed);
}

int BatchOutput::write_fd(int fd, std::span<const iovec> batch, uint64_t* lines_lost) {
  std::vector<iovec> rest(batch.begin(), batch.end());
  if (mid_line_) {  // first end the fragment a failed write left, as a line of its own
    static const char kNewline = '\n';
    rest.insert(rest.begin(), iovec{const_cast<char*>(&kNewline), 1});
  }
  const size_t first_record = mid_line_ ? 1 : 0;
  size_t i = 0;
  int error = 0;
  while (error == 0) {
    while (i < rest.size() && rest[i].iov_len == 0) ++i;
    if (first_record == 1 && i >= 1) mid_line_ = false;  // the newline went out
    if (i == rest.size()) return 0;
    // Looked at before every call that may block: stop() interrupts the call itself after it set
    // the flag (and again until the writer ends, should the first interrupt land just before it).
    if (abandoned()) {
      error = ECANCELED;
      break;
    }
    const int count = static_cast<int>(std::min<size_t>(rest.size() - i, IOV_MAX));
    ssize_t n = ::writev(fd, &rest[i], count);
    if (n >= 0) {
      skip_written(rest, i, static_cast<size_t>(n));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);  // EINTR when abandoned: the loop then gives up
    } else if (errno != EINTR) {
      error = errno;
    }
  }
  *lines_lost = newlines_in(std::span(rest).subspan(std::max(i, first_record)));  // records only
  if (error == ECANCELED) count_abandoned(*lines_lost);
  // Bytes of the line the error cut short that did go out: back from where it stopped to the
  // last newline written (of this batch; the output ended at a line's end before it).
  size_t partial = 0;
  for (size_t k = std::min(i, rest.size() - 1) + 1; k-- > first_record;) {
    const iovec& whole = batch[k - first_record];
    const size_t written = k < i ? whole.iov_len : whole.iov_len - rest[k].iov_len;
    const char* p = static_cast<const char*>(whole.iov_base);
    const char* nl = static_cast<const char*>(memrchr(p, '\n', written));
    if (nl) {
      partial += static_cast<size_t>(p + written - nl - 1);
      break;
    }
    partial += written;
  }
  if (partial > 0) {
    struct stat st {};
    const off_t end = ::lseek(fd, 0, SEEK_END);
    mid_line_ = !(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && end >= static_cast<off_t>(partial) &&
                  ::ftruncate(fd, end - static_cast<off_t>(partial)) == 0);
  }
  return error;
}

BatchSink::BatchSink(BatchOutput& output, Options options)
    : output_(output), state_(std::make_shared<State>(std::move(options))) {}

BatchSink::~BatchSink() { stop(); }

void BatchSink::start() {
  std::lock_guard control(state_->control_mu);
  if (thread_.joinable()) return;
  install_interrupt_handler();
  output_.abandoned_.store(false, std::memory_order_release);
  state_->accepting.store(true);
  thread_ = std::thread([this] {
    run();
    state_->mark_done();
  });
}

void BatchSink::request_stop() {
  std::lock_guard control(state_->control_mu);
  if (thread_.joinable()) state_->ask_stop();
}

bool BatchSink::stop(std::chrono::milliseconds grace) {
  std::lock_guard control(state_->control_mu);
  if (!thread_.joinable()) return true;
  state_->ask_stop();
  const bool finished = wait_for_writer(std::chrono::steady_clock::now() + grace);
  if (!finished) interrupt_writer_until_done();
  thread_.join();
  std::lock_guard lock(state_->wake_mu);
  state_->stop = false;
  state_->wake = false;
  state_->done = false;
  return finished;
}

bool BatchSink::wait_for_writer(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(state_->wake_mu);
  return state_->done_cv.wait_until(lock, deadline, [&] { return state_->done; });
}

// The writer is still blocked on the output past the deadline: abandon the output, then send the
// interrupt until the writer has left run(). Its final drain, if not reached yet, finds the output
// abandoned and gives its records up at once.
void BatchSink::interrupt_writer_until_done() {
  output_.abandoned_.store(true, std::memory_order_release);
  const pthread_t writer = thread_.native_handle();
  std::unique_lock lock(state_->wake_mu);
  while (!state_->done) {
    ::pthread_kill(writer, interrupt_signal());
    state_->done_cv.wait_for(lock, kInterruptEvery, [&] { return state_->done; });
  }
}

bool BatchSink::running() const { return state_->accepting.load(); }

uint64_t BatchSink::dropped() const { return state_->dropped.load(std::memory_order_relaxed); }

BatchSink::Append BatchSink::append(std::string_view record) {
  if (t_registrations_gone) return Append::kNotRunning;
  State& s = *state_;
  Producer* p = producer_for(state_);
  bool wake = false;
  {
    std::lock_guard lock(p->mu);
    if (!s.accepting.load()) return Append::kNotRunning;
    if (p->buf.size() + record.size() > s.options.buffer_bytes) {
      s.dropped.fetch_add(1, std::memory_order_relaxed);
      return Append::kDropped;
    }
    p->buf.append(record);
    if (!p->woke && p->buf.size() >= s.options.high_water_bytes) {
      p->woke = true;
      wake = true;
    }
  }
  if (s.sleeping.load(std::memory_order_relaxed) && s.sleeping.exchange(false)) wake = true;
  if (wake) s.wake_writer();
  return Append::kQueued;
}

void BatchSink::run() {
  unblock_interrupt_signal();
  State& s = *state_;
  std::vector<std::shared_ptr<Producer>> batch;
  std::vector<iovec> iov;
  std::string report;
  std::chrono::steady_clock::time_point last_report;
  bool reported_before = false;
  bool stopping = false;
  bool idle = false;  // nothing was buffered at the last look: wait for a producer, not the period
  while (!stopping) {
    {
      std::unique_lock lock(s.wake_mu);
      if (idle) s.wake_cv.wait(lock, [&] { return s.wake || s.stop; });
      else s.wake_cv.wait_for(lock, s.options.period, [&] { return s.wake || s.stop; });
      s.wake = false;
      stopping = s.stop;
    }
    idle = false;
    // The final drain: from here on producers are told kNotRunning, and everything they queued
    // before is in their buffers, which the collection below takes under their locks.
    if (stopping) s.accepting.store(false);

    {
      std::lock_guard registry(s.registry_mu);
      for (const auto& p : s.producers) {
        {
          std::lock_guard lock(p->mu);
          p->buf.swap(p->drain);
          p->woke = false;
        }
        if (!p->drain.empty()) batch.push_back(p);
      }
      // An exited thread's buffer was just taken in full (it appends no more): forget it.
      std::erase_if(s.producers, [](const std::shared_ptr<Producer>& p) { return p->retired; });
    }

    iov.clear();
    for (const auto& p : batch) iov.push_back({p->drain.data(), p->drain.size()});
    const uint64_t dropped = s.dropped.load(std::memory_order_relaxed);
    const auto now = std::chrono::steady_clock::now();
    if (!s.options.drop_report) s.dropped_reported = dropped;  // reported elsewhere, or not at all
    if (dropped > s.dropped_reported && s.options.drop_report &&
        (stopping || !reported_before || now - last_report >= s.options.drop_report_interval)) {
      report = s.options.drop_report(dropped - s.dropped_reported);
      s.dropped_reported = dropped;
      last_report = now;
      reported_before = true;
      if (!report.empty()) iov.push_back({report.data(), report.size()});
    }
    if (!iov.empty()) output_.write(iov);
    const bool wrote_records = !batch.empty();

    for (const auto& p : batch) {
      if (p->drain.capacity() > kKeepBytes) {
        std::string().swap(p->drain);
      } else {
        p->drain.clear();
      }
    }
    batch.clear();

    // Nothing came in a whole period and no drop is left to report: sleep until a producer
    // appends (an idle process does not wake this thread every period).
    if (!wrote_records && !stopping && s.dropped.load(std::memory_order_relaxed) == s.dropped_reported) {
      s.sleeping.store(true);
      bool buffered = false;
      {
        std::lock_guard registry(s.registry_mu);
        for (const auto& p : s.producers) {
          std::lock_guard lock(p->mu);
          buffered = buffered || !p->buf.empty();
        }
      }
      if (buffered) s.sleeping.store(false);  // appended meanwhile: the next period takes it
      else idle = true;
    }
  }
}

}  // namespace berth
