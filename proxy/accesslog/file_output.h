// The access log's file output: batches appended to a file opened O_APPEND ("-": stdout).
// reopen() (SIGUSR1, after logrotate renamed the file) opens the path anew on libuv's thread pool
// and then puts the new file in the place of the old one with dup2: a write in progress finishes
// in the old file, every later write goes to the new one, and no batch is lost or split.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proxy/base/batch_sink.h"

namespace berth::accesslog {

class FileOutput final : public BatchOutput {
 public:
  // Opens path for appending (created 0644 when missing). Null, with the reason in error, when it
  // cannot be opened. Blocking: call it on the control thread at start-up, never on a worker.
  static std::unique_ptr<FileOutput> open(const std::string& path, std::string& error);
  ~FileOutput() override;

  void write(std::span<const iovec> batch) override;  // the writer thread
  // Records a write failed for (a full disk, a reader gone), and those given up at exit
  // (abandoned_records(), a reader that stopped reading): not delivered, so counted.
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }

  // From the control loop: reopens the path without blocking the loop (no-op for stdout).
  // Results are logged (`access_log_reopened` / `access_log_reopen_failed`).
  void reopen(uv_loop_t* loop);
  // Reopens done since start (for tests and logs).
  uint64_t reopens() const { return reopens_.load(std::memory_order_relaxed); }
  const std::string& path() const { return path_; }

 private:
  FileOutput(std::string path, int fd, bool owned) : path_(std::move(path)), fd_(fd), owned_(owned) {}
  static void on_opened(uv_fs_t* req);

  std::string path_;
  int fd_;       // stays the same number for the output's life; reopen dup2s over it
  bool owned_;   // false for stdout
  std::atomic<uint64_t> reopens_{0};
  std::atomic<uint64_t> lost_{0};
  int failing_errno_ = 0;  // writer thread: the error last logged, 0 while writes succeed
  bool reopening_ = false;  // control loop only
};

}  // namespace berth::accesslog
