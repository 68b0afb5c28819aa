#include "proxy/net/listen_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace berth {

namespace {
// A bound non-blocking socket (SO_REUSEADDR; SO_REUSEPORT when asked; IPv6 only for an IPv6
// address that is not IPv4-mapped), or -1 with `error` set (and *bind_errno, when bind itself failed).
int bound_socket(const config::SocketAddress& addr, bool reuse_port, std::string& error, int* bind_errno = nullptr) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr.ipv6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(addr.port);
    if (inet_pton(AF_INET6, addr.host.c_str(), &sa->sin6_addr) != 1) {
      error = "invalid IPv6 address " + addr.host;
      return -1;
    }
    len = sizeof *sa;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(addr.port);
    if (inet_pton(AF_INET, addr.host.c_str(), &sa->sin_addr) != 1) {
      error = "invalid IPv4 address " + addr.host;
      return -1;
    }
    len = sizeof *sa;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  // An IPv4-mapped address ([::ffff:127.0.0.1]) is an IPv4 one: the kernel binds it only on a
  // socket that is not IPv6-only.
  if (addr.ipv6 && !IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr))
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (bind_errno) *bind_errno = errno;
    error = "bind " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

ListenSocket open_listen_socket(const config::SocketAddress& addr, bool reuse_port, int backlog,
                                std::string& error) {
  const int fd = bound_socket(addr, reuse_port, error);
  if (fd < 0) return {};
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

std::string listening_elsewhere(const config::SocketAddress& addr) {
  if (addr.port == 0) return "";  // the kernel picks a port nobody holds
  std::string error;
  int bind_errno = 0;
  const int fd = bound_socket(addr, false, error, &bind_errno);
  if (fd >= 0) {
    ::close(fd);
    return "";
  }
  if (bind_errno != EADDRINUSE) return "";  // anything else, open_listen_socket will say
  return error + " (another process listens there; a Berth taking over from another one "
                 "starts with --share-listeners)";
}

size_t listening_sockets_on(const config::SocketAddress& addr) {
  // The kernel prints each 32-bit word of the address as a native integer in hex, then the port.
  unsigned char bytes[16] = {};
  const int family = addr.ipv6 ? AF_INET6 : AF_INET;
  if (inet_pton(family, addr.host.c_str(), bytes) != 1) return 0;
  std::string want;
  char word[9];
  for (size_t i = 0; i < (addr.ipv6 ? 16u : 4u); i += 4) {
    uint32_t w;
    std::memcpy(&w, bytes + i, 4);
    std::snprintf(word, sizeof word, "%08X", w);
    want += word;
  }
  std::snprintf(word, sizeof word, ":%04X", static_cast<unsigned>(addr.port));
  want += word;
  std::ifstream table(addr.ipv6 ? "/proc/net/tcp6" : "/proc/net/tcp");
  std::string line, slot, local, remote, state;
  size_t count = 0;
  std::getline(table, line);  // the header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    if (fields >> slot >> local >> remote >> state && local == want && state == "0A") ++count;  // 0A: LISTEN
  }
  return count;
}

uint16_t sockaddr_port(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

uint8_t sockaddr_ip(const sockaddr* sa, uint8_t (&bytes)[16]) {
  if (sa->sa_family == AF_INET) {
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return 4;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (config::ipv4_mapped(a6->s6_addr)) {  // ::ffff:a.b.c.d, an IPv4 peer
      std::memcpy(bytes, a6->s6_addr + 12, 4);
      return 4;
    }
    std::memcpy(bytes, a6, 16);
    return 6;
  }
  return 0;
}

}  // namespace berth
