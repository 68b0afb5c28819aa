// The access log's syslog output: each record of a batch (one '\n'-terminated RFC 5424 message,
// header already made by the worker) sent to a syslog receiver, on the BatchSink's writer thread.
//   udp://ip:port    one datagram per message
//   tcp://ip:port    octet-counting framing (RFC 6587: "LEN SP MSG"), one connection, reconnected
//   unix:///dev/log  one datagram per message on a unix datagram socket
// The writer never waits long: connects are non-blocking with a 500 ms limit, a send that cannot
// proceed is given up after 1 s, and after a failure no new connection is tried for 500 ms.
// Messages that could not be handed to the receiver (not connected, refused, reset, stalled) are
// dropped and counted. At exit, once abandoned() (BatchSink::stop's deadline passed), the rest
// of the batch is given up at once instead of waiting out each message's stall. A TCP receiver that closed is noticed before the next batch (its FIN is
// read), so only a message sent into a connection the receiver has already dropped, which the
// kernel still accepts, can be lost without being counted.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "config/config.h"
#include "proxy/base/batch_sink.h"

namespace berth::accesslog {

class SyslogOutput final : public BatchOutput {
 public:
  explicit SyslogOutput(const config::AccessLog& config);
  ~SyslogOutput() override;

  void write(std::span<const iovec> batch) override;  // the writer thread

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  const std::string& target() const { return target_; }

 private:
  using Clock = std::chrono::steady_clock;
  bool ensure_connected();
  void disconnect(const char* why, int err);
  bool peer_closed();
  void send_datagrams(const std::vector<std::string_view>& messages);
  void send_stream(const std::vector<std::string_view>& messages);
  void count_unsent(size_t messages);  // dropped, and abandoned too when given up at exit

  config::AccessLog::Syslog kind_;
  std::string target_;
  config::SocketAddress address_;
  std::string socket_path_;
  int fd_ = -1;
  bool connected_logged_ = false;  // whether the last state logged was "connected"
  bool failure_logged_ = false;    // a failure was logged since the last connection
  Clock::time_point next_try_{};
  std::string frames_;             // TCP: the batch's frames
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> sent_{0};
};

}  // namespace berth::accesslog
