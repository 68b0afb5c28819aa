// The access log's syslog output at exit: a receiver that stopped reading makes every message
// wait out a 1 s stall, so a final batch of thousands would hold exit for as many seconds; once
// the sink's stop() deadline has passed the output gives the rest up at once, and counts it.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "config/config.h"
#include "proxy/accesslog/syslog_output.h"
#include "proxy/base/batch_sink.h"

using namespace berth;

namespace {
// A unix datagram socket that never reads: its queue fills and senders then wait (EAGAIN).
class DeafReceiver {
 public:
  DeafReceiver() {
    char dir[] = "/tmp/berth-syslog-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
    path_ = dir_ + "/log";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path_.c_str(), path_.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  }
  ~DeafReceiver() {
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

constexpr uint64_t kMessages = 3000;  // far more than a unix datagram queue holds

// A syslog output to a DeafReceiver, with kMessages appended to its running sink.
struct DeafSyslog {
  DeafReceiver receiver;
  config::AccessLog config = unix_config(receiver.path());
  accesslog::SyslogOutput output{config};
  BatchSink sink{output, {}};

  DeafSyslog() {
    sink.start();
    for (uint64_t i = 0; i < kMessages; ++i)
      REQUIRE(sink.append("<134>1 - - berth 1 access - message " + std::to_string(i) + "\n") ==
              BatchSink::Append::kQueued);
  }
  static config::AccessLog unix_config(const std::string& path) {
    config::AccessLog c;
    c.enabled = true;
    c.syslog = "unix://" + path;
    c.syslog_kind = config::AccessLog::Syslog::kUnix;
    c.syslog_socket = path;
    return c;
  }
};
}  // namespace

TEST_CASE("syslog output: a datagram receiver that stopped reading costs one stall per batch, not per message",
          "[accesslog][syslog]") {
  DeafSyslog deaf;
  accesslog::SyslogOutput& output = deaf.output;
  BatchSink& sink = deaf.sink;
  // Every batch is written out (sent, or dropped after one 1 s stall) well within the grace:
  // before, each message past the queue's capacity waited its own second.
  CHECK(sink.stop(std::chrono::seconds(60)));
  CHECK(output.abandoned_records() == 0);
  CHECK(output.sent() > 0);
  CHECK(output.dropped() > 0);
  CHECK(output.sent() + output.dropped() == kMessages);
}

TEST_CASE("syslog output: stop() gives up a receiver that stopped reading, and counts the rest",
          "[accesslog][syslog][stop]") {
  DeafSyslog deaf;
  accesslog::SyslogOutput& output = deaf.output;
  BatchSink& sink = deaf.sink;

  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(sink.stop(std::chrono::milliseconds(200)));
  // Generous: without giving up, each message past the queue's capacity waits 1 s.
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  CHECK(output.abandoned_records() > 0);
  CHECK(output.dropped() >= output.abandoned_records());
  CHECK(output.sent() + output.dropped() == kMessages);
}
