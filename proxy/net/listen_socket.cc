#include "proxy/net/listen_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace berth {

ListenSocket open_listen_socket(const config::SocketAddress& addr, bool reuse_port, int backlog,
                                std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr.ipv6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(addr.port);
    if (inet_pton(AF_INET6, addr.host.c_str(), &sa->sin6_addr) != 1) {
      error = "invalid IPv6 address " + addr.host;
      return {};
    }
    len = sizeof *sa;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(addr.port);
    if (inet_pton(AF_INET, addr.host.c_str(), &sa->sin_addr) != 1) {
      error = "invalid IPv4 address " + addr.host;
      return {};
    }
    len = sizeof *sa;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return {};
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    ::close(fd);
    return {};
  }
  if (addr.ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    error = "bind " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return {};
  }
  if (::listen(fd, backlog) != 0) {
    error = std::string("listen: ") + std::strerror(errno);
    ::close(fd);
    return {};
  }
  sockaddr_storage actual{};
  socklen_t alen = sizeof actual;
  getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &alen);
  return {fd, sockaddr_port(reinterpret_cast<sockaddr*>(&actual))};
}

uint16_t sockaddr_port(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

}  // namespace berth
