// The service manager's readiness protocol (sd_notify) without libsystemd: when Berth runs
// under systemd with Type=notify, $NOTIFY_SOCKET names an AF_UNIX datagram socket (a path, or
// an abstract name written with a leading '@') and Berth sends it one datagram per state
// change: READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC) when a reload starts and
// READY=1 when it is done, STOPPING=1 when it starts draining. Without $NOTIFY_SOCKET nothing is
// sent. Sends never block: the socket is non-blocking and a datagram that cannot leave at once
// is dropped (and logged).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::notify {

// The datagrams, exactly as sent (newline-separated assignments).
std::string ready_message(std::string_view status = {});
std::string reloading_message(uint64_t monotonic_usec);
std::string stopping_message();

// The address $NOTIFY_SOCKET names: "/path" or "@abstract" (the '@' becomes a leading NUL).
// false for an empty, relative or too long value.
bool socket_address(std::string_view value, sockaddr_un& addr, socklen_t& length);

// CLOCK_MONOTONIC in microseconds (what MONOTONIC_USEC carries).
uint64_t monotonic_usec();

class Notifier {
 public:
  // Reads $NOTIFY_SOCKET once; without it (or with an unusable value) the notifier is off.
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  void ready(std::string_view status = {});
  void reloading();
  void stopping();
  // One datagram, MSG_DONTWAIT. false when off or when the send failed.
  bool send(std::string_view message);

 private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_length_ = 0;
};

}  // namespace berth::notify
