#include "proxy/accesslog/access_log.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "proxy/accesslog/access_log_format.h"
#include "proxy/base/log.h"

namespace berth::accesslog {
namespace {

// Each worker formats into its own scratch strings (capacity kept between records).
thread_local std::string t_line;
thread_local std::string t_message;
thread_local std::string t_header;

// Drops are reported by report_drops() on the control loop, not by the writer thread: a
// writer stalled in a write (a pipe nobody reads) would report them only once it is free again.
BatchSink::Options sink_options() {
  BatchSink::Options o;
  o.buffer_bytes = 4u << 20;  // per worker: a few seconds of records at full speed
  o.high_water_bytes = 256u << 10;
  o.period = std::chrono::milliseconds(25);
  return o;
}

// Drops go to Berth's own log (and the dropped count), never into the access log itself.
void report_dropped(const char* output, const BatchSink& sink, uint64_t& reported) {
  const uint64_t dropped = sink.dropped();
  if (dropped <= reported) return;
  log::warn("access_log_dropped").kv("output", output).kv("records", dropped - reported)
      .kv("reason", "the output is slower than the requests; records were dropped");
  reported = dropped;
}

std::chrono::milliseconds time_left(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

// Once, at exit, when an output took too long: how many records it never got (also counted in
// dropped(), which nobody can read any more once the process is gone).
void report_unwritten(const char* output, uint64_t records) {
  log::warn("access_log_unwritten_at_exit").kv("output", output).kv("records", records)
      .kv("reason", "the output took no more records within the time allowed at exit");
}

}  // namespace

AccessLog::AccessLog(const config::AccessLog& config)
    : config_(config), pid_(static_cast<int>(::getpid())), file_name_(config.path == "-" ? "stdout" : "file") {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0) hostname_ = name;
}

AccessLog::~AccessLog() { stop(); }

std::unique_ptr<AccessLog> AccessLog::open(const config::AccessLog& config, std::string& error) {
  std::unique_ptr<AccessLog> log(new AccessLog(config));
  if (!config.path.empty()) {
    log->file_ = FileOutput::open(config.path, error);
    if (!log->file_) return nullptr;
    log->file_sink_ = std::make_unique<BatchSink>(*log->file_, sink_options());
  }
  if (config.syslog_kind != config::AccessLog::Syslog::kNone) {
    log->syslog_ = std::make_unique<SyslogOutput>(config);
    log->syslog_sink_ = std::make_unique<BatchSink>(*log->syslog_, sink_options());
  }
  return log;
}

void AccessLog::start() {
  if (file_sink_) file_sink_->start();
  if (syslog_sink_) syslog_sink_->start();
}

void AccessLog::report_drops() {
  if (file_sink_) report_dropped(file_name_, *file_sink_, file_drops_reported_);
  if (syslog_sink_) report_dropped("syslog", *syslog_sink_, syslog_drops_reported_);
}

void AccessLog::stop() {
  report_drops();  // the workers have joined: nothing is dropped any more
  // Both writers drain at the same time and share one deadline: a stalled file does not eat into
  // the syslog's time, and exit waits BatchSink::kStopGrace at most (not once per output).
  if (file_sink_) file_sink_->request_stop();
  if (syslog_sink_) syslog_sink_->request_stop();
  const auto deadline = std::chrono::steady_clock::now() + BatchSink::kStopGrace;
  if (file_sink_ && !file_sink_->stop(time_left(deadline))) report_unwritten(file_name_, file_->abandoned_records());
  if (syslog_sink_ && !syslog_sink_->stop(time_left(deadline)))
    report_unwritten("syslog", syslog_->abandoned_records());
}

void AccessLog::reopen(uv_loop_t* loop) {
  if (file_) file_->reopen(loop);
}

uint64_t AccessLog::dropped() const {
  uint64_t n = 0;
  if (file_sink_) n += file_sink_->dropped();
  if (file_) n += file_->lost();
  if (syslog_sink_) n += syslog_sink_->dropped();
  if (syslog_) n += syslog_->dropped();
  return n;
}

void AccessLog::on_exchange(const ExchangeRecord& record) {
  const bool json = config_.format == config::AccessLog::Format::kJson;
  t_line.clear();
  if (json) append_json_line(t_line, record);
  else append_combined_line(t_line, record);
  if (file_sink_) file_sink_->append(t_line);
  if (syslog_sink_) {
    t_header.clear();
    append_syslog_header(t_header, record.start_unix_ns + (record.end_ns - record.start_ns), hostname_, pid_);
    t_message.clear();
    append_syslog_message(t_message, t_header, t_line, record, json);
    syslog_sink_->append(t_message);
  }
}

}  // namespace berth::accesslog
