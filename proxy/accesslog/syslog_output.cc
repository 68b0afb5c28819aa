#include "proxy/accesslog/syslog_output.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "proxy/base/log.h"

namespace berth::accesslog {
namespace {

using namespace std::chrono_literals;
constexpr auto kRetryAfter = 500ms;      // no new connection sooner than this after a failure
constexpr int kConnectTimeoutMs = 500;
constexpr int kSendStallMs = 1000;       // a receiver that takes nothing for this long: give up

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

SyslogOutput::SyslogOutput(const config::AccessLog& config)
    : kind_(config.syslog_kind),
      target_(config.syslog),
      address_(config.syslog_address),
      socket_path_(config.syslog_socket) {}

SyslogOutput::~SyslogOutput() {
  if (fd_ >= 0) ::close(fd_);
}

void SyslogOutput::disconnect(const char* why, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  next_try_ = Clock::now() + kRetryAfter;
  if (!failure_logged_) {
    failure_logged_ = true;
    connected_logged_ = false;
    log::warn("access_log_syslog_unavailable")
        .kv("target", target_)
        .kv("reason", why)
        .kv("error", err ? std::strerror(err) : "")
        .kv("action", "dropping records and retrying every 500ms");
  }
}

bool SyslogOutput::ensure_connected() {
  if (fd_ >= 0) return true;
  if (Clock::now() < next_try_) return false;
  const bool unix_socket = kind_ == config::AccessLog::Syslog::kUnix;
  const int type = kind_ == config::AccessLog::Syslog::kTcp ? SOCK_STREAM : SOCK_DGRAM;
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNIX;
  if (unix_socket) {
    auto* sun = reinterpret_cast<sockaddr_un*>(&ss);
    sun->sun_family = AF_UNIX;
    std::memcpy(sun->sun_path, socket_path_.data(), socket_path_.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size() + 1);
  } else if (address_.ipv6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = family = AF_INET6;
    sin6->sin6_port = htons(address_.port);
    inet_pton(AF_INET6, address_.host.c_str(), &sin6->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = family = AF_INET;
    sin->sin_port = htons(address_.port);
    inet_pton(AF_INET, address_.host == "localhost" ? "127.0.0.1" : address_.host.c_str(), &sin->sin_addr);
    len = sizeof(sockaddr_in);
  }
  fd_ = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    disconnect("socket", errno);
    return false;
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    if (errno != EINPROGRESS) {
      disconnect("connect", errno);
      return false;
    }
    pollfd p{fd_, POLLOUT, 0};
    int n = ::poll(&p, 1, kConnectTimeoutMs);
    int err = 0;
    socklen_t err_len = sizeof err;
    if (n <= 0) err = n == 0 ? ETIMEDOUT : errno;
    else if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) err = errno;
    if (err) {
      disconnect("connect", err);
      return false;
    }
  }
  if (!connected_logged_) {
    connected_logged_ = true;
    failure_logged_ = false;
    log::info("access_log_syslog_connected").kv("target", target_);
  }
  return true;
}

bool SyslogOutput::peer_closed() {
  // A receiver sends nothing; a readable socket means it closed (EOF) or reset the connection.
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char scratch[256];
  ssize_t n = ::recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT);
  if (n > 0) return false;  // unexpected data: ignore it
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  disconnect(n == 0 ? "closed by the receiver" : "connection error", n == 0 ? 0 : errno);
  return true;
}

void SyslogOutput::write(std::span<const iovec> batch) {
  std::vector<std::string_view> messages;
  for (const iovec& v : batch) {
    std::string_view rest(static_cast<const char*>(v.iov_base), v.iov_len);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view msg = rest.substr(0, nl);
      if (!msg.empty()) messages.push_back(msg);
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  if (messages.empty()) return;
  if (kind_ == config::AccessLog::Syslog::kTcp) send_stream(messages);
  else send_datagrams(messages);
}

void SyslogOutput::send_datagrams(const std::vector<std::string_view>& messages) {
  size_t i = 0;
  while (i < messages.size() && !abandoned()) {
    if (!ensure_connected()) break;
    ssize_t n = ::send(fd_, messages[i].data(), messages[i].size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      sent_.fetch_add(1, std::memory_order_relaxed);
      ++i;
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, kSendStallMs) > 0 || abandoned()) continue;
      // The receiver took nothing for kSendStallMs. Waiting as long again for each message would
      // hold the writer for the whole batch while the workers' buffers fill and drop: the rest
      // of the batch is dropped (counted below), and the next batch tries again.
      break;
    }
    // UDP: an ICMP "port unreachable" from an earlier datagram is reported here and this one
    // was not sent. Unix: the receiver's socket is gone. Either way: count it, and for a unix
    // socket connect again later.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    ++i;
    if (kind_ == config::AccessLog::Syslog::kUnix || (err != ECONNREFUSED && err != EMSGSIZE))
      disconnect("send", err);
  }
  count_unsent(messages.size() - i);
}

void SyslogOutput::count_unsent(size_t messages) {
  dropped_.fetch_add(messages, std::memory_order_relaxed);
  if (abandoned()) count_abandoned(messages);
}

void SyslogOutput::send_stream(const std::vector<std::string_view>& messages) {
  if (fd_ >= 0) peer_closed();
  if (abandoned() || !ensure_connected()) {
    count_unsent(messages.size());
    return;
  }
  // Every frame of the batch in one buffer; ends_[k]: where frame k ends in it.
  frames_.clear();
  std::vector<size_t> ends;
  ends.reserve(messages.size());
  for (std::string_view m : messages) {
    frames_ += std::to_string(m.size());
    frames_.push_back(' ');
    frames_.append(m);
    ends.push_back(frames_.size());
  }
  size_t off = 0;
  const auto deadline = Clock::now() + std::chrono::milliseconds(kSendStallMs);
  while (off < frames_.size() && !abandoned()) {
    ssize_t n = ::send(fd_, frames_.data() + off, frames_.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    const int err = n < 0 ? errno : EPIPE;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) > 0 || abandoned()) continue;
      disconnect("the receiver stopped reading", 0);
    } else {
      disconnect("send", err);
    }
    break;
  }
  // Given up at exit in the middle of a frame: the stream cannot carry another one.
  if (fd_ >= 0 && off < frames_.size()) {
    ::close(fd_);
    fd_ = -1;
  }
  // Frames sent whole; a frame cut short is lost with the connection.
  size_t whole = 0;
  while (whole < ends.size() && ends[whole] <= off) ++whole;
  sent_.fetch_add(whole, std::memory_order_relaxed);
  count_unsent(ends.size() - whole);
}

}  // namespace berth::accesslog
