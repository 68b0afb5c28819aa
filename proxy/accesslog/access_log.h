// The access log: a RecordSink that formats each finished exchange on the worker thread that ran
// it (JSON or combined, see access_log_format.h) and appends the line to one BatchSink per output
// (the file, syslog). Each BatchSink's writer thread does the I/O; a worker never waits for it: a
// record that finds its worker's buffer full is dropped and counted.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/accesslog/file_output.h"
#include "proxy/accesslog/syslog_output.h"
#include "proxy/base/batch_sink.h"
#include "proxy/record/exchange_record.h"

namespace berth::accesslog {

class AccessLog final : public RecordSink {
 public:
  // Opens the file (blocking: the control thread at start-up). Null, with the reason in error,
  // when the file cannot be opened. The syslog receiver is connected to by the writer thread.
  static std::unique_ptr<AccessLog> open(const config::AccessLog& config, std::string& error);
  ~AccessLog() override;

  // Starts the writer threads. stop() writes every record appended so far and stops them; call
  // it once the workers have joined, so the last requests' records are written. It waits
  // BatchSink::kStopGrace (5 s) at most: records an output has not taken by then (a stdout pipe
  // nobody reads) are given up, counted in dropped() and logged (`access_log_unwritten_at_exit`).
  void start();
  void stop();

  // SIGUSR1: reopens the file (control loop; no-op without a file or for stdout).
  void reopen(uv_loop_t* loop);
  // Control loop, every second: logs `access_log_dropped` for each output whose buffers dropped
  // records since the last call (a stalled output is reported while it stalls).
  void report_drops();

  // Records not delivered: dropped from a full buffer, those a file write failed for (a full
  // disk), plus (syslog) those the receiver could not be handed, plus those given up at stop().
  // Read from any thread.
  uint64_t dropped() const;
  uint64_t syslog_sent() const { return syslog_ ? syslog_->sent() : 0; }

  bool wants_request_details() const override { return true; }
  void on_exchange(const ExchangeRecord& record) override;  // worker threads

 private:
  explicit AccessLog(const config::AccessLog& config);

  config::AccessLog config_;
  std::string hostname_;
  int pid_ = 0;
  const char* file_name_;  // in Berth's log lines: "stdout" or "file"
  uint64_t file_drops_reported_ = 0, syslog_drops_reported_ = 0;
  std::unique_ptr<FileOutput> file_;
  std::unique_ptr<BatchSink> file_sink_;
  std::unique_ptr<SyslogOutput> syslog_;
  std::unique_ptr<BatchSink> syslog_sink_;
};

}  // namespace berth::accesslog
