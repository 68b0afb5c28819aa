#include "proxy/control/service_notify.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "proxy/base/log.h"

namespace berth::notify {

std::string ready_message(std::string_view status) {
  std::string m = "READY=1\n";
  if (!status.empty()) {
    m += "STATUS=";
    m += status;
    m += '\n';
  }
  return m;
}

std::string reloading_message(uint64_t monotonic_usec) {
  return "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" + std::to_string(monotonic_usec) + "\n";
}

std::string stopping_message() { return "STOPPING=1\nSTATUS=draining\n"; }

bool socket_address(std::string_view value, sockaddr_un& addr, socklen_t& length) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return false;
  // A path needs its terminating NUL inside sun_path; an abstract name is counted by length.
  if (value[0] == '/' ? value.size() >= sizeof addr.sun_path : value.size() > sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, value.data(), value.size());
  if (value[0] == '@') addr.sun_path[0] = '\0';
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + (value[0] == '/' ? 1 : 0));
  return true;
}

uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

Notifier::Notifier() {
  const char* value = std::getenv("NOTIFY_SOCKET");
  if (!value || !*value) return;
  if (!socket_address(value, addr_, addr_length_)) {
    log::warn("notify_socket_invalid").kv("value", value);
    return;
  }
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) log::warn("notify_socket_failed").kv("error", std::strerror(errno));
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool Notifier::send(std::string_view message) {
  if (fd_ < 0) return false;
  ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr_), addr_length_);
  if (n == static_cast<ssize_t>(message.size())) return true;
  log::warn("notify_send_failed").kv("error", n < 0 ? std::strerror(errno) : "short send");
  return false;
}

void Notifier::ready(std::string_view status) { send(ready_message(status)); }
void Notifier::reloading() { send(reloading_message(monotonic_usec())); }
void Notifier::stopping() { send(stopping_message()); }

}  // namespace berth::notify
