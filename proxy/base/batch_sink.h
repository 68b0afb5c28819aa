// BatchSink: records (log lines, access-log records) appended by many threads, written off those
// threads by one writer thread in batches.
//
// Each producing thread appends to its own bounded buffer, registered with the sink the first time
// that thread appends. The hot path takes only that buffer's lock, which no other producer ever
// takes and the writer takes just long enough to swap the buffer for an empty one. Nothing is
// signalled per record: the writer wakes every `period`, or once when a buffer passes its
// high-water mark, takes every producer's buffer and hands them to the output as one batch (one
// writev for an fd). A writer that found nothing to write sleeps until the next append instead
// of waking every period; that append wakes it (once, not once per record). When a producer's buffer is full, because the output is stalled or slower than
// the producers, new records are dropped and counted; a producer never waits for the output. After
// drops, the writer adds one report record (built by `drop_report`) to a later batch.
//
// Records of one thread are written in the order appended; records of different threads are not
// ordered among themselves. A thread that exits keeps its unwritten records: the writer writes them
// and then frees the buffer. stop() writes everything appended before it and returns once written,
// or, past its grace period, gives up what the output has not taken and counts it (see stop()).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>

namespace berth {

// Where a BatchSink's batches go. write() runs on the writer thread only and may block.
class BatchOutput {
 public:
  virtual ~BatchOutput() = default;
  // Writes every byte of the batch, in order (or gives up on an error the output cannot recover).
  // Once abandoned() (see BatchSink::stop), it must give up instead of waiting for the output.
  virtual void write(std::span<const iovec> batch) = 0;

  // Set by BatchSink::stop when its deadline passed before the writer finished: every wait on the
  // output is cut short (EINTR) and write() gives up the rest of its batch, counting it in
  // abandoned_records(). Cleared when the sink starts again.
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }
  // Records (newline-terminated) given up because of abandoned(), since the output was made.
  uint64_t abandoned_records() const { return abandoned_records_.load(std::memory_order_relaxed); }

 protected:
  void count_abandoned(uint64_t records) { abandoned_records_.fetch_add(records, std::memory_order_relaxed); }
  // Writes the whole batch to fd with writev, waiting while it is full: 0, or the errno that
  // stopped it (ECANCELED once abandoned()), with *lines_lost the newlines (records) in the bytes
  // left unwritten (a record cut short counts as lost). Short writes are resumed, EINTR retried;
  // on a non-blocking fd it waits for POLLOUT.
  // A write stopped inside a line leaves no fragment for the next line to be glued to: a
  // regular file is cut back to its last whole line, anything else gets a newline first.
  int write_fd(int fd, std::span<const iovec> batch, uint64_t* lines_lost);

 private:
  friend class BatchSink;
  bool mid_line_ = false;  // the output ends inside a line a failed write cut short
  std::atomic<bool> abandoned_{false};
  std::atomic<uint64_t> abandoned_records_{0};
};

// Writes batches to a file descriptor (it does not own the fd). Other errors than EINTR/EAGAIN
// drop the batch; its records are counted in lost().
class FdOutput final : public BatchOutput {
 public:
  explicit FdOutput(int fd) : fd_(fd) {}
  void write(std::span<const iovec> batch) override;
  // Records not written: those of batches an error dropped, and those abandoned at stop().
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  std::atomic<uint64_t> lost_{0};
};

class BatchSink {
 public:
  struct Options {
    size_t buffer_bytes = 1 << 20;     // per producer; a record that does not fit is dropped
    size_t high_water_bytes = 1 << 18;  // a producer past this wakes the writer (once per batch)
    std::chrono::milliseconds period{25};  // the writer's wake-up period when no one wakes it
    std::chrono::milliseconds drop_report_interval{1000};  // at most one report per interval
    // Builds the record reporting `count` drops since the last report (empty: no report).
    std::function<std::string(uint64_t count)> drop_report;
  };
  enum class Append : uint8_t {
    kQueued,
    kDropped,      // the producer's buffer is full; counted in dropped()
    kNotRunning,   // no writer (before start, after stop, or on a thread being torn down)
  };

  // `output` must outlive the sink.
  BatchSink(BatchOutput& output, Options options);
  ~BatchSink();  // stop()
  BatchSink(const BatchSink&) = delete;
  BatchSink& operator=(const BatchSink&) = delete;

  // Starts the writer thread (idempotent).
  void start();
  // How long stop() waits by default for the writer to write what is queued.
  static constexpr std::chrono::milliseconds kStopGrace{5000};

  // Writes every record queued so far, then stops the writer thread (idempotent). Records appended
  // meanwhile are either written or answered kNotRunning. Bounded: when the writer has not
  // finished within `grace` (a stalled pipe, a reader that stopped reading), the output is
  // abandoned (BatchOutput::abandoned) and the writer's blocking call interrupted with a signal
  // until the thread ends; what was not written by then is lost and counted by the output.
  // A write the kernel does not interrupt (a regular file on a hung disk, in uninterruptible
  // sleep) still holds stop() until it returns: nothing in user space can cut it short.
  // True when the writer finished within `grace` (nothing was abandoned; write errors may still
  // have dropped records, which the output counts).
  bool stop(std::chrono::milliseconds grace = kStopGrace);
  // Tells the writer to do its final drain without waiting for it (several sinks then drain at
  // the same time); stop() waits. Idempotent; no-op when not running.
  void request_stop();
  bool running() const;

  // From any thread. Never blocks on the output; at most on the writer's brief buffer swap.
  Append append(std::string_view record);

  // Records dropped since the sink was made.
  uint64_t dropped() const;

  struct State;

 private:
  void run();
  bool wait_for_writer(std::chrono::steady_clock::time_point deadline);
  void interrupt_writer_until_done();

  BatchOutput& output_;
  std::shared_ptr<State> state_;  // shared with producers' thread-local registrations
  std::thread thread_;
};

}  // namespace berth
